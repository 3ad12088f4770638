//! The counters a cluster runner puts in its Lease heartbeat, read from the queue's file
//! names (plus one `stat` per `.bak` of the slice) once per heartbeat. Read from disk rather
//! than from what the runner has done, so they stay right while it drains, waits for the
//! relay or has just started; the runner adds only what the disk cannot tell (in flight,
//! delivered, draining).
use mailqueue_queue::area::{self, Area};
use mailqueue_queue::inflight::state_time;
use mailqueue_queue::scan::{scan, Found};
use mailqueue_queue::switchboard::BAD_QUEUE;
use mailqueue_queue::{Ext, Slice};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Mailman's queue of entries it could not process and will not retry.
const SHUNT_QUEUE: &str = "shunt";

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
        Ok(counters)
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
            DiskCounters { pending: 2, oldest_pending_seconds: 720, stale_bak: 1, quarantined: 1, bad: 1, shunt: 0 }
        );
        let fresh = scan(0, Duration::from_secs(3600)).count(later).unwrap();
        assert_eq!(fresh.stale_bak, 0, "a .bak younger than the threshold is not stale");
        let one = scan(1, Duration::from_secs(60)).count(later).unwrap();
        assert_eq!((one.pending, one.oldest_pending_seconds, one.stale_bak), (1, 9120, 1));
        assert_eq!((one.quarantined, one.bad, one.shunt), (1, 1, 0), "queue-wide counts are the same for every slice");
    }
}
