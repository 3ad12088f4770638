//! Cluster ownership: a slice is owned by holding its `coordination.k8s.io` Lease.
//!
//! The operator names the Lease (`--lease-name`) and asks for a drain through an annotation
//! on it; the runner holds it, renews it every third of its duration with the slice's
//! counters as the heartbeat (the disk's counts refreshed less often as the backlog grows:
//! see `slice_counters`), and releases it on stop. Renewal runs in a background task; the
//! checks the runner makes before every claim only read atomics. Ownership ends for good when a
//! renewal fails for as long as the Lease lasts, or another holder shows up: from then on
//! `still_owned` is false and the runner stops claiming (it must restart to own again).
//! A watch on the Lease carries the operator's drain request at once rather than at the
//! next renewal, so `kubectl wait --for=condition=Drained` returns within a second or two.
//! While it may claim, the runner also owns the slice as a standalone runner does (lock file,
//! drain flag file, heartbeat file), so a standalone runner is refused the slice and the
//! offline queue operations (quarantine, compact, `drain`) see it as the owner. It gives that
//! up once it has acknowledged the operator's drain with nothing in flight (the operator's
//! queue-wide Jobs then act on the drained queue) and takes it back before claiming again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use mailqueue_contract::duration;
use mailqueue_contract::lease::{Attempt, LeaseLock};
use mailqueue_contract::slice::{drain_requested, Heartbeat, HEARTBEAT_ANNOTATION};
use mailqueue_queue::Slice;
use tokio::sync::Notify;

use crate::ownership::{HeldSlice, Ownership, OwnershipError, SliceCounters, Standalone};
use crate::slice_counters::{DiskCounters, Schedule, SliceScan};

/// Field manager of the runner's writes to its Lease.
const FIELD_MANAGER: &str = "mailqueue-runner";

/// Command-line switches of cluster mode.
#[derive(Debug, Clone, clap::Args)]
pub struct LeaseArgs {
    /// Own the slice through this Kubernetes Lease instead of a lock file (set by the operator).
    #[arg(long, requires_all = ["lease_namespace", "slice"])]
    pub lease_name: Option<String>,
    /// Namespace of the Lease.
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// The pod name, the first part of the identity written into the Lease.
    #[arg(long, env = "POD_NAME")]
    pub lease_holder: Option<String>,
    /// The pod's UID, the second part: a force-deleted pod's same-named replacement is
    /// another holder, not this one.
    #[arg(long, env = "POD_UID")]
    pub lease_pod_uid: Option<String>,
    /// How long the Lease stays ours without renewal (at least 3s).
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "15s")]
    pub lease_duration: Duration,
    /// A `.bak` entry of the slice claimed longer ago than this counts as stale in the
    /// heartbeat (the operator passes spec.bakPolicy.quarantineAfter).
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "30m")]
    pub stale_bak_after: Duration,
}

/// The Lease could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LeaseOwnershipError {
    #[error("slice Lease {lease} is held by {holder}; that runner must stop (or its Lease expire) first")]
    HeldByOther { lease: String, holder: String },
    #[error(transparent)]
    Api(#[from] mailqueue_contract::lease::LeaseError),
    #[error("cannot configure the Kubernetes client for cluster mode: {0}")]
    Client(kube::Error),
}

/// Hands out the one slice named by `--lease-name`.
pub struct ClusterOwnership {
    api: Api<Lease>,
    lock: LeaseLock,
    qfiles: PathBuf,
    stale_bak_after: Duration,
    runtime: tokio::runtime::Handle,
}

impl ClusterOwnership {
    /// Cluster mode when `--lease-name` is given, else `None` (standalone).
    pub async fn from_args(args: &LeaseArgs, qfiles: &Path) -> Result<Option<Self>, LeaseOwnershipError> {
        let (Some(name), Some(namespace)) = (&args.lease_name, &args.lease_namespace) else {
            return Ok(None);
        };
        let client = Client::try_default().await.map_err(LeaseOwnershipError::Client)?;
        let pod = args.lease_holder.clone().unwrap_or_else(|| format!("mailqueue-runner-{}", std::process::id()));
        // A random part per start, as client-go's leader election does: a restarted
        // container is a new holder and waits for the old one's Lease like anyone else.
        let holder = holder_identity(&pod, args.lease_pod_uid.as_deref().unwrap_or_default(), &nonce());
        tracing::info!(%holder, "slice Lease identity");
        let api = Api::<Lease>::namespaced(client, namespace);
        let lock =
            LeaseLock::new(api.clone(), name, &holder, args.lease_duration.max(Duration::from_secs(3)), FIELD_MANAGER);
        Ok(Some(Self {
            api,
            lock,
            qfiles: qfiles.to_owned(),
            stale_bak_after: args.stale_bak_after,
            runtime: tokio::runtime::Handle::current(),
        }))
    }

    /// Waits for the Lease to be free (its previous holder releases it or lets it expire), up
    /// to twice its duration. Returns the Lease and when the winning request was sent.
    async fn take(&self) -> Result<(Lease, Instant), LeaseOwnershipError> {
        let deadline = Instant::now() + self.lock.duration() * 2;
        let initial = annotations(&Heartbeat::default());
        loop {
            let sent = Instant::now();
            match self.lock.try_hold(&initial).await? {
                Attempt::Held(lease) => return Ok((*lease, sent)),
                Attempt::Contended => continue,
                Attempt::HeldByOther(holder) if Instant::now() >= deadline => {
                    return Err(LeaseOwnershipError::HeldByOther { lease: self.lock.name().to_owned(), holder });
                }
                Attempt::HeldByOther(holder) => {
                    tracing::info!(lease = self.lock.name(), %holder, "waiting for the slice Lease");
                    tokio::time::sleep(self.lock.duration() / 3).await;
                }
            }
        }
    }
}

impl Ownership for ClusterOwnership {
    fn acquire(&self, queue: &str, slice: Slice) -> Result<Box<dyn HeldSlice>, OwnershipError> {
        let (lease, sent) = tokio::task::block_in_place(|| self.runtime.block_on(self.take()))
            .map_err(|e| OwnershipError::Cluster(Box::new(e)))?;
        // The Lease keeps other pods out; the standalone ownership keeps out what runs beside
        // us on the volume without a Lease (a standalone runner, a queue operation).
        let local = match Standalone::new(&self.qfiles).acquire(queue, slice) {
            Ok(local) => local,
            Err(error) => {
                if let Err(e) = tokio::task::block_in_place(|| self.runtime.block_on(self.lock.release())) {
                    tracing::warn!(error = %e, "could not release the slice Lease; it expires by itself");
                }
                return Err(error);
            }
        };
        let shared = Arc::new(Shared {
            owned: AtomicBool::new(true),
            renewed: Mutex::new(sent),
            duration: self.lock.duration(),
            drain: AtomicBool::new(drain_requested(lease.metadata.annotations.as_ref().unwrap_or(&BTreeMap::new()))),
            acknowledged: AtomicBool::new(false),
            heartbeat: Mutex::new(Heartbeat::default()),
            wake: Notify::new(),
            stop: AtomicBool::new(false),
        });
        tracing::info!(lease = self.lock.name(), "holding the slice Lease");
        let scan = SliceScan {
            qfiles: self.qfiles.clone(),
            queue: queue.to_owned(),
            slice,
            stale_after: self.stale_bak_after,
        };
        let renewal = self.runtime.spawn(renew(self.lock.clone(), scan, shared.clone()));
        let follower = self.runtime.spawn(follow_drain(self.api.clone(), self.lock.name().to_owned(), shared.clone()));
        Ok(Box::new(ClusterLease {
            local: Mutex::new(Some(local)),
            qfiles: self.qfiles.clone(),
            queue: queue.to_owned(),
            slice,
            kept_out: AtomicBool::new(false),
            shared,
            renewal: Mutex::new(Some(renewal)),
            follower,
            runtime: self.runtime.clone(),
        }))
    }
}

/// State shared by the runner's checks and the renewal task.
struct Shared {
    owned: AtomicBool,
    /// When the last successful renewal was sent: the API server recorded a `renewTime` no
    /// earlier than this, so the Lease is ours until at least this plus its duration.
    renewed: Mutex<Instant>,
    duration: Duration,
    drain: AtomicBool,
    /// The runner asked `draining()` and was told yes: the counters it publishes from then on
    /// describe a slice that claims nothing new.
    acknowledged: AtomicBool,
    heartbeat: Mutex<Heartbeat>,
    wake: Notify,
    stop: AtomicBool,
}

impl Shared {
    /// Records the operator's drain request as last read from the Lease.
    fn set_drain(&self, drain: bool) {
        if !drain {
            self.acknowledged.store(false, Ordering::SeqCst);
        }
        if self.drain.swap(drain, Ordering::SeqCst) && !drain {
            tracing::info!("drain lifted: claiming resumes");
        }
    }

    fn lose(&self, why: &str) {
        if self.owned.swap(false, Ordering::SeqCst) {
            tracing::error!(reason = why, "slice Lease lost: claiming stops now");
        }
    }
}

struct ClusterLease {
    /// The slice as a standalone runner owns it, while the runner may claim (see the module
    /// doc); released when the runner drops the lease, after the Lease itself.
    local: Mutex<Option<Box<dyn HeldSlice>>>,
    qfiles: PathBuf,
    queue: String,
    slice: Slice,
    /// Taking the standalone ownership back failed and was logged.
    kept_out: AtomicBool,
    shared: Arc<Shared>,
    renewal: Mutex<Option<tokio::task::JoinHandle<()>>>,
    follower: tokio::task::JoinHandle<()>,
    runtime: tokio::runtime::Handle,
}

impl HeldSlice for ClusterLease {
    fn still_owned(&self) -> bool {
        // Checked against the clock too, so a stuck renewal task cannot keep us claiming past
        // the point where another runner may take over.
        let fresh = self.shared.renewed.lock().map(|at| fresh(at.elapsed(), self.shared.duration)).unwrap_or(false);
        fresh && self.shared.owned.load(Ordering::SeqCst)
    }

    fn draining(&self) -> bool {
        if self.shared.drain.load(Ordering::SeqCst) {
            if !self.shared.acknowledged.swap(true, Ordering::SeqCst) {
                tracing::info!("drain requested: claiming stops, in-flight entries finish");
            }
            return true;
        }
        let Ok(mut local) = self.local.lock() else { return true };
        if local.is_none() {
            match Standalone::new(&self.qfiles).acquire(&self.queue, self.slice) {
                Ok(taken) => {
                    tracing::info!("slice lock file taken back: claiming resumes");
                    self.kept_out.store(false, Ordering::SeqCst);
                    *local = Some(taken);
                }
                Err(error) => {
                    if !self.kept_out.swap(true, Ordering::SeqCst) {
                        tracing::warn!(%error, "drain lifted, but the slice lock file is held: no claims until it is free");
                    }
                    return true;
                }
            }
        }
        // A queue operation's drain flag file counts too (its answer is cached: cheap).
        local.as_ref().is_none_or(|l| l.draining())
    }

    fn publish(&self, counters: &SliceCounters) {
        let draining = self.shared.acknowledged.load(Ordering::SeqCst) && self.shared.drain.load(Ordering::SeqCst);
        if let Ok(mut local) = self.local.lock() {
            // Published between batches: with the drain acknowledged and nothing in flight,
            // no claim comes until the drain is lifted and the lock file taken back.
            if draining && counters.in_flight == 0 {
                if let Some(given_up) = local.take() {
                    given_up.release();
                    tracing::info!("drain acknowledged: slice lock file given up to the queue operations");
                }
            } else if let Some(held) = local.as_ref() {
                held.publish(counters);
            }
        }
        let next = heartbeat(counters, draining);
        let Ok(mut current) = self.shared.heartbeat.lock() else { return };
        let urgent = urgent(&current, &next);
        *current = next;
        drop(current);
        if urgent {
            self.shared.wake.notify_one();
        }
    }

    fn report_relay_error(&self, error: Option<String>) {
        let Ok(mut current) = self.shared.heartbeat.lock() else { return };
        if current.relay_error == error {
            return;
        }
        current.relay_error = error;
        drop(current);
        // News the admin waits for in the status: renew now rather than at the next period.
        self.shared.wake.notify_one();
    }

    fn release(&self) {
        if let Some(held) = self.local.lock().ok().and_then(|mut l| l.take()) {
            held.release();
        }
        self.follower.abort();
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
        let Some(task) = self.renewal.lock().ok().and_then(|mut t| t.take()) else { return };
        let runtime = self.runtime.clone();
        tokio::task::block_in_place(|| {
            // The task releases the Lease on its way out; a failure there only means the next
            // holder waits for expiry.
            let _ = runtime.block_on(task);
        });
    }
}

impl Drop for ClusterLease {
    fn drop(&mut self) {
        self.follower.abort();
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
    }
}

/// Renews the Lease with the latest heartbeat until stopped or lost; releases it when stopped.
async fn renew(lock: LeaseLock, scan: SliceScan, shared: Arc<Shared>) {
    let period = lock.duration() / 3;
    let mut disk = DiskCounters::default();
    // Counts are spaced by their cost (see `slice_counters`), so a renewal's cost does not grow
    // with the backlog; an urgent renewal (a drain acknowledged) reuses the last count.
    let mut schedule = Schedule::new(period);
    // A count of a big queue takes a second or more: it runs beside the renewals, which send
    // the last finished count, rather than delaying them towards the Lease's expiry. Only the
    // first one is waited for, so the first heartbeat already holds the disk's counts.
    let mut counting = None::<tokio::task::JoinHandle<mailqueue_queue::Result<DiskCounters>>>;
    let mut first = true;
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = shared.wake.notified() => {}
        }
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        if counting.is_none() && schedule.due(Instant::now()) {
            let scan = scan.clone();
            counting = Some(tokio::task::spawn_blocking(move || scan.count(std::time::SystemTime::now())));
        }
        if let Some(task) = counting.take_if(|task| first || task.is_finished()) {
            first = false;
            match task.await {
                Ok(Ok(now)) => disk = now,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "cannot count the slice's entries; the heartbeat keeps the last counts")
                }
                Err(error) => tracing::warn!(%error, "counting the slice's entries failed"),
            }
            // A failed count is retried as late as the last good one would have been.
            schedule.counted(Instant::now(), &disk);
        }
        let mut heartbeat = shared.heartbeat.lock().map(|h| h.clone()).unwrap_or_default();
        with_disk(&mut heartbeat, &disk);
        // Measured from before the request: the reply may come late, the renewTime it
        // wrote does not.
        let sent = Instant::now();
        match tokio::time::timeout(period, lock.try_hold(&annotations(&heartbeat))).await {
            Ok(Ok(Attempt::Held(lease))) => {
                if let Ok(mut at) = shared.renewed.lock() {
                    *at = sent;
                }
                shared.set_drain(lease.metadata.annotations.as_ref().is_some_and(drain_requested));
            }
            Ok(Ok(Attempt::HeldByOther(holder))) => {
                shared.lose(&format!("taken over by {holder}"));
                return;
            }
            Ok(Ok(Attempt::Contended)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "slice Lease renewal failed; retrying"),
            Err(_) => tracing::warn!(lease = lock.name(), "slice Lease renewal timed out; retrying"),
        }
        let since = shared.renewed.lock().map(|at| at.elapsed()).unwrap_or(Duration::MAX);
        if !fresh(since + period, lock.duration()) {
            shared.lose("not renewed in time");
            return;
        }
    }
    match lock.release().await {
        Ok(()) => tracing::info!(lease = lock.name(), "released the slice Lease"),
        Err(error) => tracing::warn!(%error, "could not release the slice Lease; it expires by itself"),
    }
}

/// Follows the Lease's drain annotation as it changes. Renewals read it too, so a broken
/// watch only delays a drain to the next renewal.
async fn follow_drain(api: Api<Lease>, name: String, shared: Arc<Shared>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut leases = watcher(api, config).default_backoff().applied_objects().boxed();
    while let Some(event) = leases.next().await {
        match event {
            Ok(lease) => shared.set_drain(lease.metadata.annotations.as_ref().is_some_and(drain_requested)),
            Err(error) => tracing::debug!(%error, "watching the slice Lease"),
        }
    }
}

/// The heartbeat of a runner that published `counters`; the disk's counts are put in at
/// each renewal ([`with_disk`]).
fn heartbeat(counters: &SliceCounters, draining: bool) -> Heartbeat {
    Heartbeat {
        pending: saturating(counters.pending),
        in_flight: saturating(counters.in_flight),
        delivered: saturating(counters.delivered),
        oldest_pending_seconds: saturating(counters.oldest_pending_seconds),
        draining,
        unclaimable: saturating(counters.unclaimable),
        disk_full: counters.disk_full,
        relay_error: counters.relay_error.clone(),
        list_settings_error: counters.list_settings_error.clone(),
        ..Heartbeat::default()
    }
}

/// Whether `next` is news the operator waits for (a drain acknowledged, the relay refusing
/// us, the volume full or not any more): renew now rather than at the next period.
fn urgent(current: &Heartbeat, next: &Heartbeat) -> bool {
    current.draining != next.draining || current.relay_error != next.relay_error || current.disk_full != next.disk_full
}

/// The disk's counts replace the runner's own view of what waits.
fn with_disk(heartbeat: &mut Heartbeat, disk: &DiskCounters) {
    heartbeat.pending = saturating(disk.pending);
    heartbeat.oldest_pending_seconds = saturating(disk.oldest_pending_seconds);
    heartbeat.stale_bak = saturating(disk.stale_bak);
    heartbeat.quarantined = saturating(disk.quarantined);
    heartbeat.bad = saturating(disk.bad);
    heartbeat.shunt = saturating(disk.shunt);
}

fn annotations(heartbeat: &Heartbeat) -> BTreeMap<String, String> {
    BTreeMap::from([(HEARTBEAT_ANNOTATION.to_owned(), heartbeat.to_annotation())])
}

/// Whether a Lease last renewed (request sent) `since` ago still lets us claim. The margin
/// keeps us from claiming through the last part of the Lease: another node's clock may run
/// ahead of ours, and it may take the Lease the moment it thinks `renewTime + duration` passed.
fn fresh(since: Duration, duration: Duration) -> bool {
    since.saturating_add(safety_margin(duration)) < duration
}

/// A fifth of the Lease duration, at least one second.
fn safety_margin(duration: Duration) -> Duration {
    (duration / 5).max(Duration::from_secs(1))
}

/// `<pod name>_<pod uid>_<random>`: unique per container start. Pod names and UIDs hold no
/// `_`, so the operator can read the pod back (`mailqueue_contract::slice::holder_pod`).
fn holder_identity(pod: &str, uid: &str, nonce: &str) -> String {
    mailqueue_contract::slice::holder_identity(pod, uid, nonce)
}

/// A random part for the holder identity: the kernel's UUID source, else a hash seeded by
/// the standard library's per-process random keys, the time and the pid.
fn nonce() -> String {
    let from_kernel = std::fs::read_to_string("/proc/sys/kernel/random/uuid").ok().map(|u| u.trim().replace('-', ""));
    from_kernel.filter(|u| u.len() >= 8).map(|u| u[..12.min(u.len())].to_owned()).unwrap_or_else(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0),
        );
        h.write_u32(std::process::id());
        format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
    })
}

fn saturating(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claiming_stops_before_another_runner_may_take_the_lease() {
        let duration = Duration::from_secs(15);
        assert!(fresh(Duration::from_secs(11), duration));
        // 3 s before the Lease could be taken, whatever the reply's delay was.
        assert!(!fresh(Duration::from_secs(12), duration));
        assert!(!fresh(Duration::from_secs(15), duration));
        // A short Lease keeps at least one second.
        assert!(!fresh(Duration::from_millis(2100), Duration::from_secs(3)));
    }

    #[test]
    fn a_full_volume_and_unclaimable_entries_go_into_the_heartbeat_at_once() {
        let counters = SliceCounters { pending: 5, unclaimable: 2, disk_full: true, ..SliceCounters::default() };
        let hb = heartbeat(&counters, false);
        assert_eq!((hb.pending, hb.unclaimable, hb.disk_full), (5, 2, true));
        // What the operator reads back from the Lease annotation.
        let read = Heartbeat::from_annotations(&annotations(&hb)).expect("heartbeat");
        assert_eq!((read.unclaimable, read.disk_full), (2, true));
        let before = heartbeat(&SliceCounters { pending: 5, unclaimable: 2, ..SliceCounters::default() }, false);
        assert!(urgent(&before, &hb), "a full volume is sent without waiting for the next renewal");
        assert!(urgent(&hb, &before), "and so is its end");
        assert!(!urgent(&hb, &heartbeat(&SliceCounters { pending: 9, ..counters }, false)), "counts alone wait");
    }

    #[test]
    fn each_start_is_a_new_holder_of_the_same_pod() {
        let (a, b) = (
            holder_identity("lists-out-0of1", "uid-1", &nonce()),
            holder_identity("lists-out-0of1", "uid-1", &nonce()),
        );
        assert_ne!(a, b, "two starts share an identity");
        assert_eq!(mailqueue_contract::slice::holder_pod(&a), Some(("lists-out-0of1", "uid-1")));
    }
}
