//! The retry queue, as Mailman keeps it: an entry whose recipients failed temporarily
//! goes to `retry` with only those recipients and the fields Mailman's out-runner
//! writes; it is dropped once the retry period has passed without progress; the retry
//! runner moves due entries back to `out`.
use crate::metrics::Metrics;
use crate::ownership::HeldSlice;
use crate::shutdown::Stop;
use mailqueue_message::Version;
use mailqueue_pickle::{DateTime, Value};
use mailqueue_queue::entry::{with_field, QueueEntry};
use mailqueue_queue::switchboard::Switchboard;
use mailqueue_queue::Slice;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Mailman's retry settings.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// 2.1 `DELIVERY_RETRY_PERIOD`, Mailman 3 `[mta] delivery_retry_period`: 5 days.
    pub period: Duration,
    /// 2.1 `DELIVERY_RETRY_WAIT` (1 hour): written as `deliver_after`. Mailman 3 has no
    /// such field; its retry runner simply wakes every 15 minutes.
    pub wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { period: Duration::from_secs(5 * 24 * 3600), wait: Duration::from_secs(3600) }
    }
}

/// What to do with an entry some of whose recipients failed temporarily.
#[derive(Debug)]
pub enum RetryDecision {
    /// Enqueue in `retry` with this metadata.
    Retry(Value),
    /// No progress since the last try and past `deliver_until`: Mailman discards it.
    Expire,
}

/// Mailman's out-runner rule (both versions): progress (fewer failures than last time)
/// extends `deliver_until` to now + period; no progress past `deliver_until` expires.
/// `failed` keeps the entry's own recipient values (their Python types) in order.
pub fn decide(entry: &QueueEntry, failed: &[String], policy: &RetryPolicy, now: SystemTime) -> RetryDecision {
    let version = entry.version();
    let meta = entry.metadata();
    let last_count = match meta.get("last_recip_count") {
        Some(Value::Int(n)) => *n,
        _ => 0,
    };
    let now_secs = unix_secs(now);
    let until_secs = match meta.get("deliver_until") {
        Some(Value::Float(f)) => *f,
        Some(Value::Int(i)) => *i as f64,
        Some(Value::DateTime(d)) => d.to_unix(),
        _ => now_secs,
    };
    let until_secs = if failed.len() as i64 == last_count {
        if now_secs > until_secs {
            return RetryDecision::Expire;
        }
        until_secs
    } else {
        now_secs + policy.period.as_secs_f64()
    };
    let (recips_key, until_value) = match version {
        Version::Mailman2 => ("recips", Value::Float(until_secs)),
        Version::Mailman3 => ("recipients", Value::DateTime(DateTime::from_unix(until_secs))),
    };
    let mut m = with_field(meta, version, "last_recip_count", Value::Int(failed.len() as i64));
    m = with_field(&m, version, "deliver_until", until_value);
    m = with_field(&m, version, recips_key, Value::List(recipient_values(entry, failed)));
    if version == Version::Mailman2 {
        m = with_field(&m, version, "deliver_after", Value::Float(now_secs + policy.wait.as_secs_f64()));
    }
    RetryDecision::Retry(m)
}

/// The metadata with only `keep` as recipients (for putting back the part of an entry
/// that was never tried).
pub fn with_recipients(entry: &QueueEntry, keep: &[String]) -> Value {
    let key = match entry.version() {
        Version::Mailman2 => "recips",
        Version::Mailman3 => "recipients",
    };
    with_field(entry.metadata(), entry.version(), key, Value::List(recipient_values(entry, keep)))
}

/// The entry's own values for `wanted` (byte strings in 2.1, text in 3), in `wanted`'s
/// order.
fn recipient_values(entry: &QueueEntry, wanted: &[String]) -> Vec<Value> {
    let key = match entry.version() {
        Version::Mailman2 => "recips",
        Version::Mailman3 => "recipients",
    };
    let originals: Vec<&Value> = match entry.metadata().get(key) {
        Some(Value::List(v) | Value::Tuple(v) | Value::Set(v) | Value::FrozenSet(v)) => v.iter().collect(),
        _ => Vec::new(),
    };
    wanted
        .iter()
        .map(|w| {
            originals
                .iter()
                .find(|o| o.as_text().as_deref() == Some(w.as_str()))
                .map(|o| (*o).clone())
                .unwrap_or_else(|| mailqueue_queue::entry::version_str(entry.version(), w))
        })
        .collect()
}

/// When the entry may be sent again: 2.1 `deliver_after` (a float), or a datetime.
/// `None` when it is due now.
pub fn not_before(entry: &QueueEntry, now: SystemTime) -> Option<f64> {
    let after = match entry.metadata().get("deliver_after") {
        Some(Value::Float(f)) => *f,
        Some(Value::Int(i)) => *i as f64,
        Some(Value::DateTime(d)) => d.to_unix(),
        _ => return None,
    };
    (unix_secs(now) < after).then_some(after)
}

/// How often an idle retry slice repeats its heartbeat between passes.
const IDLE_HEARTBEAT: Duration = Duration::from_secs(2);

/// Mailman's retry runner: every `interval`, entries whose `deliver_after` has passed
/// (all of them for Mailman 3, which writes none) go back to `out`.
pub struct RetryMover {
    pub retry: Switchboard,
    pub out: Switchboard,
    pub interval: Duration,
    /// One pass, then exit.
    pub exit_when_empty: bool,
    pub metrics: Arc<Metrics>,
    pub stop: Stop,
}

#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("retry slice {slice}: {error}")]
    Queue { slice: Slice, error: mailqueue_queue::Error },
    /// The slice's Lease was lost: the process exits so that it restarts and queues up for
    /// the Lease again, as the out runner does.
    #[error("retry slice {0}: ownership lost; claiming stopped")]
    OwnershipLost(Slice),
}

impl RetryMover {
    pub async fn run_slice(self: Arc<Self>, slice: Slice, lease: Arc<dyn HeldSlice>) -> Result<(), RetryError> {
        loop {
            let me = self.clone();
            let lease2 = lease.clone();
            let pass = tokio::task::spawn_blocking(move || me.pass(slice, lease2.as_ref()));
            match pass.await {
                Ok(r) => r.map_err(|error| RetryError::Queue { slice, error })?,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => return Ok(()),
            }
            if self.exit_when_empty || self.stop.stopping() {
                return Ok(());
            }
            // Nothing is in flight between passes; saying so at a heartbeat's pace lets a
            // drain be acknowledged within seconds instead of after the next pass (15 min).
            let next_pass = tokio::time::Instant::now() + self.interval;
            loop {
                let wake = next_pass.min(tokio::time::Instant::now() + IDLE_HEARTBEAT);
                tokio::select! {
                    _ = tokio::time::sleep_until(wake) => {}
                    _ = self.stop.stopped() => return Ok(()),
                }
                if tokio::time::Instant::now() >= next_pass {
                    break;
                }
                if !lease.still_owned() {
                    return Err(RetryError::OwnershipLost(slice));
                }
                // Asking is what acknowledges a drain (a Lease-backed slice reports
                // `draining` only once its runner was told): an idle slice must ask too, or
                // a drain waits for the next pass.
                let _ = lease.draining();
                lease.publish(&self.counters(0));
            }
        }
    }

    /// One pass over the slice. Entries not yet due are only read, never claimed. An
    /// entry that cannot be read or moved for a reason that is not its content (an I/O
    /// error, a full disk) stays where it is for the next pass; only undecodable ones go
    /// to `bad/`.
    fn pass(&self, slice: Slice, lease: &dyn HeldSlice) -> Result<(), mailqueue_queue::Error> {
        // Asked before listing, so an empty slice acknowledges a drain too.
        if !lease.still_owned() || lease.draining() {
            lease.publish(&self.counters(0));
            return Ok(());
        }
        let names = self.retry.files(slice)?;
        self.metrics.set_depth(slice.index(), names.len() as u64);
        let now = SystemTime::now();
        let mut moved = 0u64;
        for name in names {
            if self.stop.stopping() || !lease.still_owned() || lease.draining() {
                break;
            }
            let due = match self.retry.read(&name) {
                Ok(entry) => not_before(&entry, now).is_none(),
                Err(e) if e.is_bad_entry() => true, // claimed below and set aside with its reason
                Err(e) => {
                    tracing::warn!(entry = %name, error = %e, "cannot read retry entry; left for the next pass");
                    self.metrics.read_errors.inc();
                    continue;
                }
            };
            if !due {
                continue;
            }
            // Locked while it moves, like every claim (see `mailqueue_queue::inflight`).
            let claimed = match mailqueue_queue::inflight::claim(&self.retry, &name) {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(entry = %name, error = %e, "cannot claim retry entry; left for the next pass");
                    self.metrics.claim_failures.inc();
                    continue;
                }
            };
            let bak = claimed.bak().clone();
            let _span = tracing::info_span!("entry", entry = %name).entered();
            match claimed.read(self.retry.max_entry_size()) {
                Ok(entry) => match self.retry.move_to(&bak, &entry, entry.metadata(), &self.out) {
                    Ok(new) => {
                        tracing::info!(out_entry = %new, "due again: moved back to out");
                        moved += 1;
                    }
                    Err(e) => {
                        // Nothing was written to out (or a stray .tmp was removed): the
                        // entry goes back to .pck and the pass stops (a full disk fails
                        // every next move too).
                        tracing::error!(error = %e, "cannot move the entry back to out; left in retry");
                        self.retry.put_back(&bak)?;
                        if e.is_no_space() {
                            self.metrics.set_disk_full(true);
                            lease.publish(&self.counters(moved));
                            return Ok(());
                        }
                        break;
                    }
                },
                Err(e) if e.is_bad_entry() => {
                    self.metrics.entries_bad.inc();
                    self.retry.preserve(&bak, &e.to_string())?;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the claimed retry entry; put back for the next pass");
                    self.metrics.read_errors.inc();
                    self.retry.put_back(&bak)?;
                }
            }
        }
        self.metrics.set_disk_full(false);
        self.metrics.entries_moved_from_retry.inc_by(moved);
        lease.publish(&self.counters(moved));
        Ok(())
    }

    /// What the slice's heartbeat says: entries moved, and whether the last pass stopped
    /// on a full volume (the operator shows it; the next pass tries again).
    fn counters(&self, moved: u64) -> crate::ownership::SliceCounters {
        crate::ownership::SliceCounters { delivered: moved, disk_full: self.metrics.disk_full(), ..Default::default() }
    }
}

pub fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    fn vector(path: &str) -> QueueEntry {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors").join(path);
        QueueEntry::from_bytes(std::fs::read(file).expect("vector")).expect("entry")
    }

    /// The entry with some metadata fields replaced.
    fn with(entry: &QueueEntry, fields: &[(&str, Value)]) -> QueueEntry {
        let mut m = entry.metadata().clone();
        for (k, v) in fields {
            m = with_field(&m, entry.version(), k, v.clone());
        }
        QueueEntry::from_bytes(entry.rewritten(&m).expect("rewrite")).expect("entry")
    }

    /// A slice asked to drain that says yes once asked, like a Lease-backed one.
    #[derive(Default)]
    struct DrainRequested {
        asked: std::sync::atomic::AtomicUsize,
        published: std::sync::atomic::AtomicUsize,
    }

    impl HeldSlice for DrainRequested {
        fn still_owned(&self) -> bool {
            true
        }
        fn draining(&self) -> bool {
            self.asked.fetch_add(1, Relaxed);
            true
        }
        fn publish(&self, _: &crate::ownership::SliceCounters) {
            self.published.fetch_add(1, Relaxed);
        }
        fn release(&self) {}
    }

    /// The bug behind a retry queue that never reached `Drained`: an idle retry slice only
    /// published, and never asked whether a drain was wanted, so it never acknowledged one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_retry_slice_acknowledges_a_drain_between_passes() {
        let root = tempfile::tempdir().expect("temp dir");
        for q in ["retry", "out"] {
            std::fs::create_dir_all(root.path().join(q)).expect("queue dir");
        }
        let (switch, stop) = crate::shutdown::channel();
        let mover = Arc::new(RetryMover {
            retry: Switchboard::open(root.path(), "retry").expect("retry"),
            out: Switchboard::open(root.path(), "out").expect("out"),
            interval: Duration::from_secs(900),
            exit_when_empty: false,
            metrics: Arc::new(Metrics::new("retry")),
            stop,
        });
        let lease = Arc::new(DrainRequested::default());
        let slice = Slice::new(0, 1).expect("slice");
        let task = tokio::spawn(mover.run_slice(slice, lease.clone()));
        tokio::time::sleep(IDLE_HEARTBEAT + Duration::from_millis(700)).await;
        // The first pass asked once; every idle heartbeat asks again before it publishes.
        assert!(lease.asked.load(Relaxed) >= 2, "asked {} times", lease.asked.load(Relaxed));
        assert!(lease.published.load(Relaxed) >= 2);
        switch.stop();
        task.await.expect("task").expect("stops cleanly");
    }

    #[test]
    fn no_progress_past_deliver_until_expires_and_progress_extends() {
        let policy = RetryPolicy::default();
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let failed = vec!["bob@example.org".to_owned(), "dave@example.edu".to_owned()];
        for path in [
            "mailman2/out/1546301294.5+644a741cf1febdb8a75d18bfa8ce09baecd8d397.pck",
            "mailman3/out/1704068156.639687+20692f622980731a84de028636047a51b1e589b2.pck",
        ] {
            let e = vector(path);
            let past = match e.version() {
                Version::Mailman2 => Value::Float(1_700_000_000.0),
                Version::Mailman3 => Value::DateTime(DateTime::from_unix(1_700_000_000.0)),
            };
            // Same number of failures as last time, past deliver_until: dropped.
            let stuck = with(&e, &[("last_recip_count", Value::Int(2)), ("deliver_until", past.clone())]);
            assert!(matches!(decide(&stuck, &failed, &policy, now), RetryDecision::Expire), "{path}");
            // Progress (3 failures last time, 2 now): retried until now + the period.
            let progress = with(&e, &[("last_recip_count", Value::Int(3)), ("deliver_until", past)]);
            let RetryDecision::Retry(m) = decide(&progress, &failed, &policy, now) else { panic!("{path}: expired") };
            let until = match m.get("deliver_until") {
                Some(Value::Float(f)) => *f,
                Some(Value::DateTime(d)) => d.to_unix(),
                other => panic!("deliver_until {other:?}"),
            };
            assert_eq!(until.round() as u64, 1_800_000_000 + policy.period.as_secs());
            assert_eq!(m.get("last_recip_count"), Some(&Value::Int(2)));
        }
    }
}
