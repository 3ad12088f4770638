//! Who may work a slice. A runner acquires a slice before it recovers or claims
//! anything in it, checks before every claim that it still owns it (and that no drain
//! was asked for), publishes the slice's counters as a heartbeat, and releases it on
//! stop. Standalone this is a lock file per slice plus a drain flag file; the cluster
//! form plugs a Kubernetes Lease in behind the same trait.
use mailqueue_queue::lock::STATE_DIR;
use mailqueue_queue::{LockError, Slice, SliceLock};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Counters a slice owner publishes with each heartbeat.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SliceCounters {
    pub pending: u64,
    pub in_flight: u64,
    pub delivered: u64,
    pub oldest_pending_seconds: u64,
    /// Queued entries this owner cannot claim (permission, a directory at the `.bak`
    /// name, ...): backed off, logged once each, left for an admin.
    pub unclaimable: u64,
    /// A write the queue needs failed for lack of space: the owner claims nothing
    /// until it succeeds.
    pub disk_full: bool,
    /// Why the relay cannot be used right now (refused AUTH, no STARTTLS, unreachable), until
    /// a session opens again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_error: Option<String>,
    /// Why list settings cannot be had right now (REST API down, nothing cached): entries
    /// wait rather than go out undecorated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_settings_error: Option<String>,
}

/// Hands out slices.
pub trait Ownership: Send + Sync {
    /// Takes `slice` of `queue`, or says clearly who holds it.
    fn acquire(&self, queue: &str, slice: Slice) -> Result<Box<dyn HeldSlice>, OwnershipError>;
}

/// A slice this runner holds, whether by its lock files (standalone, `LockedSlice`) or by
/// its Lease (cluster mode, `lease.rs`). Checks are cheap: they are made before every claim.
pub trait HeldSlice: Send + Sync {
    /// False as soon as ownership is lost (a Lease taken over, an expired renewal):
    /// the runner must stop claiming at once.
    fn still_owned(&self) -> bool;
    /// True while an admin asks the slice to drain: stop claiming, finish in flight.
    fn draining(&self) -> bool;
    /// Records the slice's counters and that its owner is alive.
    fn publish(&self, counters: &SliceCounters);
    /// Says at once why the relay cannot be used (`None`: it can again). A worker learns it
    /// while the counters are only published between batches, which a relay that stalls
    /// each attempt can delay by minutes.
    fn report_relay_error(&self, _error: Option<String>) {}
    /// Says goodbye (clears the heartbeat); the ownership itself ends when the lease
    /// is dropped.
    fn release(&self);
}

#[derive(Debug, thiserror::Error)]
pub enum OwnershipError {
    #[error("{0}; stop that runner first, or run this one for another slice")]
    Held(LockError),
    #[error("{0}")]
    Lock(LockError),
    /// Cluster mode (`lease.rs`): the slice Lease could not be taken.
    #[error("{0}")]
    Cluster(Box<dyn std::error::Error + Send + Sync>),
}

/// Standalone ownership: `mailqueue-queue`'s slice lock, and the drain flag file
/// `<qfiles>/.mailqueue/<queue>.drain` (touch it to drain, remove it to resume).
pub struct Standalone {
    qfiles: PathBuf,
}

impl Standalone {
    pub fn new(qfiles: &Path) -> Standalone {
        Standalone { qfiles: qfiles.to_owned() }
    }

    pub fn drain_flag(qfiles: &Path, queue: &str) -> PathBuf {
        qfiles.join(STATE_DIR).join(format!("{queue}.drain"))
    }

    /// The heartbeat file of a slice owner: JSON with `pid`, `heartbeat_unix`,
    /// `draining` and the [`SliceCounters`].
    pub fn heartbeat_path(qfiles: &Path, queue: &str, slice: Slice) -> PathBuf {
        qfiles.join(STATE_DIR).join(format!("{queue}-{}-of-{}.json", slice.index(), slice.count()))
    }
}

impl Ownership for Standalone {
    fn acquire(&self, queue: &str, slice: Slice) -> Result<Box<dyn HeldSlice>, OwnershipError> {
        let lock = SliceLock::acquire(&self.qfiles, queue, slice).map_err(|e| match e {
            e @ LockError::Held { .. } => OwnershipError::Held(e),
            e => OwnershipError::Lock(e),
        })?;
        Ok(Box::new(LockedSlice {
            lock,
            lost: std::sync::atomic::AtomicBool::new(false),
            owned_cache: Mutex::new(None),
            drain_flag: Standalone::drain_flag(&self.qfiles, queue),
            heartbeat: Standalone::heartbeat_path(&self.qfiles, queue, slice),
            drain_cache: Mutex::new(None),
        }))
    }
}

/// How long a drain-flag check is reused: a `stat` per claim would cost more than the
/// claim itself, and half a second is well inside any drain's expectations.
const DRAIN_RECHECK: Duration = Duration::from_millis(500);

/// A slice held by its lock files and drain flag file: standalone ownership.
struct LockedSlice {
    lock: SliceLock,
    /// Once lost, lost for good.
    lost: std::sync::atomic::AtomicBool,
    owned_cache: Mutex<Option<Instant>>,
    drain_flag: PathBuf,
    heartbeat: PathBuf,
    drain_cache: Mutex<Option<(Instant, bool)>>,
}

impl HeldSlice for LockedSlice {
    fn still_owned(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        // A flock is held until our process closes it, but it only excludes others
        // while its file is still at its path: a deleted `.mailqueue` lets a second
        // runner create new lock files. Checked at most every DRAIN_RECHECK.
        if self.lost.load(Relaxed) {
            return false;
        }
        let Ok(mut checked) = self.owned_cache.lock() else { return false };
        if checked.is_some_and(|at| at.elapsed() < DRAIN_RECHECK) {
            return true;
        }
        *checked = Some(Instant::now());
        if self.lock.still_held() {
            return true;
        }
        self.lost.store(true, Relaxed);
        tracing::error!(queue = self.lock.queue(), slice = %self.lock.slice(), "the slice's lock file is gone or replaced (was <qfiles>/.mailqueue removed?): another runner may own the slice now; stopped claiming");
        false
    }

    fn draining(&self) -> bool {
        let Ok(mut cache) = self.drain_cache.lock() else {
            return true;
        };
        match *cache {
            Some((at, draining)) if at.elapsed() < DRAIN_RECHECK => draining,
            _ => {
                let draining = self.drain_flag.exists();
                *cache = Some((Instant::now(), draining));
                draining
            }
        }
    }

    fn publish(&self, counters: &SliceCounters) {
        #[derive(Serialize)]
        struct Heartbeat<'a> {
            pid: u32,
            heartbeat_unix: u64,
            /// The owner saw the drain flag when it published this: publishing happens
            /// between batches, so from then on it has nothing in flight and claims
            /// nothing until the flag goes (`mailqueue-runner drain` waits for this).
            draining: bool,
            #[serde(flatten)]
            counters: &'a SliceCounters,
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let record = Heartbeat { pid: std::process::id(), heartbeat_unix: now, draining: self.draining(), counters };
        let Ok(json) = serde_json::to_vec(&record) else {
            return;
        };
        let tmp = self.heartbeat.with_extension("json.tmp");
        // Best effort: a missed heartbeat file is only a stale status display.
        if std::fs::write(&tmp, json).is_ok() {
            let _ = std::fs::rename(&tmp, &self.heartbeat);
        }
    }

    fn release(&self) {
        let _ = std::fs::remove_file(&self.heartbeat);
    }
}
