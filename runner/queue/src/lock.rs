//! Standalone slice ownership: at most one live owner per slice of a queue.
//!
//! The digest space is cut into 256 fine sub-slices, each with a lock file
//! `<qfiles>/.mailqueue/locks/<queue>/<k>` (k = top 8 bits of the digest). Slice i of N
//! takes the sub-slices `[i*256/N, (i+1)*256/N)` with non-blocking `flock`, all or
//! nothing. Because every N locks the same fine files, two owners can never cover one
//! digest even when runners use different slice counts (re-slicing). Locks die with
//! the process (or its file descriptors), so a crashed runner leaves no stale lock.
//! Mailman ignores `.mailqueue/`; so do this crate's listings.

use crate::slice::Slice;
use mailqueue_pickle::DateTime;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Directory under the qfiles root that holds this product's runtime state.
pub const STATE_DIR: &str = ".mailqueue";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("slice {slice} of queue {queue} is owned by {holder}")]
    Held { queue: String, slice: Slice, holder: String },
    #[error("{op} lock file {path}: {error}")]
    Io { op: &'static str, path: PathBuf, error: std::io::Error },
}

/// Ownership of one slice of one queue, released on drop.
#[derive(Debug)]
pub struct SliceLock {
    queue: String,
    slice: Slice,
    held: Vec<Flock<File>>,
    /// The path of each held lock file, and its (device, inode) when taken.
    paths: Vec<(PathBuf, u64, u64)>,
}

impl SliceLock {
    /// Takes `slice` of `queue` or fails at once naming the current holder. Acquiring
    /// `Slice::all()` holds the whole queue (no runner can start on any slice).
    pub fn acquire(qfiles: &Path, queue: &str, slice: Slice) -> Result<SliceLock, LockError> {
        let dir = locks_dir(qfiles, queue);
        fs::DirBuilder::new().recursive(true).mode(0o770).create(&dir).map_err(|error| LockError::Io {
            op: "creating directory for",
            path: dir.clone(),
            error,
        })?;
        let mut held = Vec::new();
        let mut paths = Vec::new();
        for k in slice.fine_range() {
            let path = fine_lock_path(qfiles, queue, k);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|error| LockError::Io { op: "opening", path: path.clone(), error })?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => {
                    let meta =
                        lock.metadata().map_err(|error| LockError::Io { op: "reading", path: path.clone(), error })?;
                    paths.push((path, meta.dev(), meta.ino()));
                    held.push(lock);
                }
                // Dropping `held` releases what was taken so far: all or nothing.
                Err((mut file, Errno::EWOULDBLOCK)) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = holder.trim();
                    let holder = if holder.is_empty() { "another process".to_owned() } else { holder.to_owned() };
                    return Err(LockError::Held { queue: queue.to_owned(), slice, holder });
                }
                Err((_, errno)) => {
                    return Err(LockError::Io { op: "locking", path, error: std::io::Error::from(errno) })
                }
            }
        }
        let record = holder_record(slice);
        for lock in &mut held {
            let write = |f: &mut File| -> std::io::Result<()> {
                f.set_len(0)?;
                f.rewind()?;
                f.write_all(record.as_bytes())
            };
            // The record only improves the refusal message; the lock is what counts.
            if let Err(e) = write(lock) {
                tracing::debug!(error = %e, "could not write the slice owner record");
            }
        }
        Ok(SliceLock { queue: queue.to_owned(), slice, held, paths })
    }

    /// Whether every lock file held is still the file at its path. A lock file deleted
    /// or replaced (`rm -r <qfiles>/.mailqueue` under a live runner) lets another
    /// runner create a new one and take the same slice: the flock held here no longer
    /// excludes anyone, and the owner must stop claiming.
    pub fn still_held(&self) -> bool {
        debug_assert_eq!(self.held.len(), self.paths.len());
        self.paths.iter().all(|(path, dev, ino)| match fs::symlink_metadata(path) {
            Ok(m) => m.dev() == *dev && m.ino() == *ino,
            Err(_) => false,
        })
    }

    pub fn queue(&self) -> &str {
        &self.queue
    }

    pub fn slice(&self) -> Slice {
        self.slice
    }
}

fn locks_dir(qfiles: &Path, queue: &str) -> PathBuf {
    qfiles.join(STATE_DIR).join("locks").join(queue)
}

/// The lock file of fine sub-slice `k` (0..256) of `queue`. Its modification time is
/// when its current (or last) owner took it: the holder record is written at acquire.
pub fn fine_lock_path(qfiles: &Path, queue: &str, k: u32) -> PathBuf {
    locks_dir(qfiles, queue).join(format!("{k:03}"))
}

/// "pid 1234 on host mx1 (since 2026-11-28T20:00:00Z, as slice 2/4)".
fn holder_record(slice: Slice) -> String {
    let host = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_else(|_| "?".into());
    let since = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!("pid {} on host {host} (since {}, as slice {slice})\n", std::process::id(), utc_iso8601(since))
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_iso8601(secs: u64) -> String {
    format!("{}Z", DateTime::from_unix(secs as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_owner_per_slice_and_across_slice_counts() {
        let root = tempfile::tempdir().unwrap();
        let s = |i, n| Slice::new(i, n).unwrap();
        let a = SliceLock::acquire(root.path(), "out", s(2, 4)).unwrap();
        let err = SliceLock::acquire(root.path(), "out", s(2, 4)).unwrap_err().to_string();
        assert!(err.starts_with("slice 2/4 of queue out is owned by pid "), "{err}");
        assert!(err.contains(&format!("pid {} on host ", std::process::id())), "{err}");
        assert!(err.ends_with("as slice 2/4)"), "{err}");
        // Other slices of 4, and another queue, are free.
        let _b = SliceLock::acquire(root.path(), "out", s(3, 4)).unwrap();
        let _c = SliceLock::acquire(root.path(), "retry", s(2, 4)).unwrap();
        // Re-slicing: 5/8 lies inside 2/4; 1/2 overlaps it; the whole queue too.
        assert!(SliceLock::acquire(root.path(), "out", s(5, 8)).is_err());
        assert!(SliceLock::acquire(root.path(), "out", s(1, 2)).is_err());
        assert!(SliceLock::acquire(root.path(), "out", Slice::all()).is_err());
        // A failed all-or-nothing attempt left nothing held: 0/2 is free.
        let zero = SliceLock::acquire(root.path(), "out", s(0, 2)).unwrap();
        drop(zero);
        drop(a);
        let again = SliceLock::acquire(root.path(), "out", s(4, 8)).unwrap();
        assert_eq!(again.slice(), s(4, 8));
    }

    #[test]
    fn a_lock_file_removed_under_its_owner_is_noticed() {
        let root = tempfile::tempdir().unwrap();
        let s = Slice::new(1, 2).unwrap();
        let a = SliceLock::acquire(root.path(), "out", s).unwrap();
        assert!(a.still_held());
        fs::remove_dir_all(root.path().join(STATE_DIR)).unwrap();
        assert!(!a.still_held());
        // A second owner can now take the slice: that is why the first must stop.
        let b = SliceLock::acquire(root.path(), "out", s).unwrap();
        assert!(b.still_held());
        assert!(!a.still_held());
    }

    #[test]
    fn formats_utc_dates() {
        assert_eq!(utc_iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_iso8601(1_704_071_318), "2024-01-01T01:08:38Z");
    }
}
