//! Feeding entries into a live queue in batches: never more than `max_depth` entries in
//! the queue directory (a big directory slows every create and rename in it), a pause
//! between batches. Each entry moves by one rename, so an interrupted feed loses and
//! duplicates nothing: run it again and it carries on with what is left in the source.

use super::tally::Tally;
use super::OpsError;
use crate::area::{self, Moved};
use crate::entry::{with_field, QueueEntry};
use crate::name::EntryName;
use crate::{Error, Result};
use mailqueue_pickle::Value;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// How a feed paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Entries per batch.
    pub batch: usize,
    /// Pause between batches (and between looks at a full queue).
    pub interval: Duration,
    /// The most entries (`.pck` + `.bak`) the queue directory may hold.
    pub max_depth: Option<u64>,
}

/// Where a feed is, for progress displays.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub moved: u64,
    pub total: u64,
    /// Entries in the queue directory at the last look.
    pub depth: u64,
    /// Waiting for the queue to drain below `max_depth`.
    pub waiting: bool,
}

/// One feed of a list of entries from one directory into one queue directory.
pub struct Feed<'a> {
    pub batching: Batching,
    /// Set `_bak_count` back to 0 on the way (rewritten in the source first).
    pub reset_count: bool,
    pub on_progress: &'a mut dyn FnMut(&Progress),
    /// Asked between entries: true stops the feed (the rest stays in the source).
    pub stop: &'a dyn Fn() -> bool,
}

/// The shortest look at a full queue, so that `--interval 0` does not spin.
const MIN_WAIT: Duration = Duration::from_millis(100);

impl Feed<'_> {
    /// Moves `names` (in this order) from `from` into `queue_dir` as `.pck`, adding to
    /// `tally` (`matched` included). A dry run only counts them.
    pub fn run(
        &mut self,
        from: &Path,
        names: &[EntryName],
        queue_dir: &Path,
        tally: &mut Tally,
    ) -> Result<(), OpsError> {
        if self.batching.batch == 0 {
            return Err(OpsError::ZeroBatch);
        }
        tally.matched += names.len() as u64;
        if tally.dry_run {
            tally.moved += names.len() as u64;
            return Ok(());
        }
        let mut progress = Progress { total: names.len() as u64, ..Progress::default() };
        let mut rest = names.iter();
        let mut left = names.len();
        while left > 0 {
            if (self.stop)() {
                break;
            }
            progress.depth = area::depth(queue_dir)?;
            let room = match self.batching.max_depth {
                Some(max) => max.saturating_sub(progress.depth).min(self.batching.batch as u64) as usize,
                None => self.batching.batch,
            };
            progress.waiting = room == 0;
            (self.on_progress)(&progress);
            if room == 0 {
                self.pause(self.batching.interval.max(MIN_WAIT));
                continue;
            }
            for name in rest.by_ref().take(room) {
                left -= 1;
                match self.move_one(from, name, queue_dir) {
                    Ok(Moved::Done) => progress.moved += 1,
                    Ok(Moved::Gone) => tally.skipped_gone += 1,
                    Err(e) => tally.error(e.to_string()),
                }
                if (self.stop)() {
                    break;
                }
            }
            (self.on_progress)(&progress);
            if left > 0 {
                self.pause(self.batching.interval);
            }
        }
        tally.moved += progress.moved;
        tally.remaining += left as u64;
        Ok(())
    }

    fn move_one(&self, from: &Path, name: &EntryName, queue_dir: &Path) -> Result<Moved> {
        if self.reset_count {
            let path = from.join(name.to_string());
            let entry = match QueueEntry::read(&path) {
                Ok(e) => e,
                Err(Error::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Moved::Gone),
                Err(e) => return Err(e),
            };
            if entry.bak_count() != 0 {
                let metadata = with_field(entry.metadata(), entry.version(), "_bak_count", Value::Int(0));
                let bytes = entry.rewritten(&metadata).map_err(|error| Error::Entry { path: path.clone(), error })?;
                rewrite(from, name, &bytes)?;
            }
        }
        area::into_queue(from, name, queue_dir)
    }

    /// Sleeps, waking early when asked to stop.
    fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        while !(self.stop)() {
            let now = Instant::now();
            if now >= until {
                break;
            }
            std::thread::sleep((until - now).min(MIN_WAIT));
        }
    }
}

/// Replaces an entry outside the live queues with new bytes: written to `.tmp`
/// (ignored by every listing), fsynced, renamed over it.
fn rewrite(dir: &Path, name: &EntryName, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name.to_string());
    let tmp = dir.join(format!("{name}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut file: File = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    if let Err(error) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Io { op: "writing", path: tmp, error });
    }
    std::fs::rename(&tmp, &path).map_err(|e| Error::from_rename(tmp, path, e))
}
