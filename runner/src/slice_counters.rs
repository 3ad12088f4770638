//! The counters a cluster runner puts in its Lease heartbeat, read from the queue's file
//! names (plus one `stat` per `.bak` of the slice). Read from disk rather than from what the
//! runner has done, so they stay right while it drains, waits for the relay or has just
//! started; the runner adds only what the disk cannot tell (in flight, delivered, draining).
//!
//! A count reads every name of the queue directory (all slices) and of the queue-wide
//! directories, so its cost grows with the backlog. [`Schedule`] spaces the counts so that
//! their cost averaged over the renewals stays that of listing about [`NAMES_PER_PERIOD`]
//! names, whatever the backlog: a count that read `n` names is next due after
//! `ceil(n / NAMES_PER_PERIOD)` renewal periods (at least one). So the disk counts in a
//! heartbeat are at most one period old up to 10,000 names, ten periods (50 s with the
//! default 15 s Lease) at 100,000 and a hundred (about 8 min) at 1,000,000. Except while the
//! last count found stale `.bak`s: then every period (see [`Schedule::counted`]).
use mailqueue_queue::area::{self, Area};
use mailqueue_queue::inflight::state_time;
use mailqueue_queue::scan::{scan, Found};
use mailqueue_queue::switchboard::BAD_QUEUE;
use mailqueue_queue::{Ext, Slice};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Mailman's queue of entries it could not process and will not retry.
const SHUNT_QUEUE: &str = "shunt";

/// How many names a count may read per renewal period, averaged (see the module doc): about
/// 6 ms of CPU per period per slice on this project's machine (`cargo bench --bench
/// counters`), so the 16 slices of a queue spend about 0.1 s of CPU every 5 s whatever the
/// backlog.
pub const NAMES_PER_PERIOD: u64 = 10_000;

/// What the disk says about one slice, and about the queue-wide directories.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskCounters {
    /// `.pck` entries of the slice.
    pub pending: u64,
    /// Age in seconds of the slice's oldest `.pck` (by the time in its name).
    pub oldest_pending_seconds: u64,
    /// `.bak` entries of the slice claimed longer ago than the stale threshold. A `.bak` this
    /// runner has been sending for that long counts too: it is stuck just the same.
    pub stale_bak: u64,
    /// Entries of the queue in its quarantine area (queue-wide).
    pub quarantined: u64,
    /// Entries in `bad/` (queue-wide).
    pub bad: u64,
    /// Entries in `shunt/` (queue-wide).
    pub shunt: u64,
    /// Names read to make these counts: what the next count will cost, for [`Schedule`].
    pub listed: u64,
}

/// Where to count: one slice of one queue.
#[derive(Clone, Debug)]
pub struct SliceScan {
    pub qfiles: PathBuf,
    pub queue: String,
    pub slice: Slice,
    /// A `.bak` older than this (since it became `.bak`) is stale.
    pub stale_after: Duration,
}

impl SliceScan {
    /// Counts as of `now`.
    pub fn count(&self, now: SystemTime) -> mailqueue_queue::Result<DiskCounters> {
        let dir = self.qfiles.join(&self.queue);
        let cutoff = now.checked_sub(self.stale_after).unwrap_or(UNIX_EPOCH);
        let now_secs = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let mut counters = DiskCounters::default();
        scan(&dir, |found| {
            counters.listed += 1;
            let Found::Entry(name) = found else { return };
            if !self.slice.contains(&name) {
                return;
            }
            match name.ext() {
                Ext::Pck => {
                    counters.pending += 1;
                    let age = (now_secs - name.timestamp()).max(0.0) as u64;
                    counters.oldest_pending_seconds = counters.oldest_pending_seconds.max(age);
                }
                // A `.bak` gone since the listing was finished or put back: not stale.
                Ext::Bak if state_time(&dir.join(name.to_string())).is_ok_and(|t| t < cutoff) => {
                    counters.stale_bak += 1
                }
                _ => {}
            }
        })?;
        counters.quarantined = area::count(&Area::Quarantine.dir(&self.qfiles, &self.queue))?;
        counters.bad = area::count(&self.qfiles.join(BAD_QUEUE))?;
        counters.shunt = area::count(&self.qfiles.join(SHUNT_QUEUE))?;
        counters.listed += counters.quarantined + counters.bad + counters.shunt;
        Ok(counters)
    }
}

/// When the next count is due: after a number of renewal periods that grows with the names
/// the last count read (see the module doc).
#[derive(Clone, Debug)]
pub struct Schedule {
    period: Duration,
    next: Option<Instant>,
}

impl Schedule {
    /// Due at once, then after each count.
    pub fn new(period: Duration) -> Self {
        Self { period, next: None }
    }

    pub fn due(&self, now: Instant) -> bool {
        self.next.is_none_or(|next| now >= next)
    }

    /// Records a count finished at `at` (or failed: `last` is then the last good one).
    pub fn counted(&mut self, at: Instant, last: &DiskCounters) {
        // Stale `.bak`s are what the operator's bakPolicy acts on, and it waits only
        // `POLICY_PAUSE` (30 s) after a run for the heartbeats to show its effect: while
        // there are any, the slice is counted every period whatever it costs. They are rare
        // and short-lived (the policy sets them aside), unlike a backlog.
        let periods = match last.stale_bak {
            0 => last.listed.div_ceil(NAMES_PER_PERIOD).clamp(1, u64::from(u32::MAX)),
            _ => 1,
        };
        self.next = Some(at + self.period.saturating_mul(periods as u32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const D0: &str = "0123456789abcdef0123456789abcdef01234567";
    const DF: &str = "f123456789abcdef0123456789abcdef01234567";

    #[test]
    fn counts_the_slice_and_the_queue_wide_directories() {
        let root = tempfile::tempdir().unwrap();
        let qfiles = root.path();
        let out = qfiles.join("out");
        fs::create_dir_all(&out).unwrap();
        // A whole second, so the ages computed back from the names are exact.
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let now = UNIX_EPOCH + Duration::from_secs(secs);
        let secs = secs as f64;
        // Slice 0 of 2 holds digests starting 0-7, slice 1 those starting 8-f.
        for (age, d, ext) in
            [(600.0, D0, "pck"), (60.0, D0, "pck"), (9000.0, DF, "pck"), (5.0, D0, "bak"), (5.0, DF, "bak")]
        {
            fs::write(out.join(format!("{:.6}+{d}.{ext}", secs - age)), b"").unwrap();
        }
        fs::write(out.join(format!("{secs:.6}+{D0}.pck.tmp")), b"").unwrap();
        fs::create_dir_all(qfiles.join("bad")).unwrap();
        fs::write(qfiles.join("bad").join(format!("{secs:.6}+{D0}.psv")), b"").unwrap();
        let quarantine = Area::Quarantine.dir(qfiles, "out");
        fs::create_dir_all(&quarantine).unwrap();
        fs::write(quarantine.join(format!("{secs:.6}+{DF}.bak")), b"").unwrap();

        let scan = |index, stale_after| SliceScan {
            qfiles: qfiles.to_owned(),
            queue: "out".into(),
            slice: Slice::new(index, 2).unwrap(),
            stale_after,
        };
        // The `.bak` files were just written: stale only for a threshold in the past.
        let later = now + Duration::from_secs(120);
        let zero = scan(0, Duration::from_secs(60)).count(later).unwrap();
        assert_eq!(
            zero,
            DiskCounters {
                pending: 2,
                oldest_pending_seconds: 720,
                stale_bak: 1,
                quarantined: 1,
                bad: 1,
                shunt: 0,
                listed: 8
            }
        );
        let fresh = scan(0, Duration::from_secs(3600)).count(later).unwrap();
        assert_eq!(fresh.stale_bak, 0, "a .bak younger than the threshold is not stale");
        let one = scan(1, Duration::from_secs(60)).count(later).unwrap();
        assert_eq!((one.pending, one.oldest_pending_seconds, one.stale_bak), (1, 9120, 1));
        assert_eq!((one.quarantined, one.bad, one.shunt), (1, 1, 0), "queue-wide counts are the same for every slice");
    }

    #[test]
    fn counts_are_spaced_by_the_names_they_read() {
        let period = Duration::from_secs(5);
        let start = Instant::now();
        let mut schedule = Schedule::new(period);
        assert!(schedule.due(start), "the first count is due at once");
        let listed = |listed| DiskCounters { listed, ..DiskCounters::default() };
        schedule.counted(start, &listed(0));
        assert!(!schedule.due(start + period / 2), "an urgent renewal reuses the last count");
        assert!(schedule.due(start + period));
        schedule.counted(start, &listed(NAMES_PER_PERIOD));
        assert!(schedule.due(start + period), "a small queue is counted every period");
        let big = listed(100 * NAMES_PER_PERIOD + 1);
        schedule.counted(start, &big);
        assert!(!schedule.due(start + period * 100));
        assert!(schedule.due(start + period * 101), "a count of n names waits n / NAMES_PER_PERIOD periods");
        schedule.counted(start, &DiskCounters { stale_bak: 1, ..big });
        assert!(schedule.due(start + period), "stale .bak entries are counted every period");
    }
}
