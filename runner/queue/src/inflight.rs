//! What a live runner has in flight, known without asking it.
//!
//! A runner claims an entry holding an exclusive `flock` on the entry's file, taken on
//! the `.pck` before the rename to `.bak` and kept until the entry is finished, moved or
//! put back (the lock follows the inode through the rename). So a `.bak` whose lock is
//! held is in flight; one whose lock is free is not, and an operation that holds the
//! lock itself can move it without racing the runner: a runner that meets the lock held
//! leaves the entry alone. Locks die with their process, so a crashed runner's `.bak` is
//! free.
//!
//! Recovery at a runner's start takes each `.bak`'s lock before it rewrites it and
//! leaves a held one alone, and it happens only while the runner holds the slice (see
//! [`crate::lock`]). [`FineSlices`] tells
//! which fine sub-slices have a live owner and since when, and holds the others for the
//! caller, so no runner can start (and recover) under an operation.

use crate::entry::QueueEntry;
use crate::lock::{fine_lock_path, LockError, SliceLock};
use crate::name::EntryName;
use crate::open;
use crate::slice::Slice;
use crate::switchboard::Switchboard;
use crate::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A claimed entry, in flight until dropped. It keeps the descriptor it was claimed
/// through: its content is read from that, never again by path.
#[derive(Debug)]
pub struct Claimed {
    bak: EntryName,
    path: PathBuf,
    size: u64,
    lock: Flock<File>,
}

impl Claimed {
    /// The entry's name as claimed (`.bak`).
    pub fn bak(&self) -> &EntryName {
        &self.bak
    }

    /// Its size when it was claimed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The first `len` bytes of the claimed file (its message pickle), read through its
    /// descriptor again.
    pub fn read_message_pickle(&self, len: usize) -> Result<Vec<u8>> {
        let mut bytes = open::read_limited(&self.lock, self.size, self.size, &self.path)?;
        if bytes.len() < len {
            return Err(Error::Io {
                op: "reading the message pickle of",
                path: self.path.clone(),
                error: io::Error::from(io::ErrorKind::UnexpectedEof),
            });
        }
        bytes.truncate(len);
        Ok(bytes)
    }

    /// Reads and parses the claimed file through its descriptor, at most `limit` bytes.
    pub fn read(&self, limit: u64) -> Result<QueueEntry> {
        let bytes = open::read_limited(&self.lock, self.size, limit, &self.path)?;
        QueueEntry::parse(bytes, &self.path)
    }
}

/// Claims `pck` as [`Switchboard::claim`] does, through a descriptor: the file is
/// opened without following links or blocking (see [`crate::open`]), must be a regular
/// file, is locked, and is renamed to `.bak` only while its name still names the file
/// held; the entry's lock is held until the returned value is dropped. `Ok(None)` when
/// the entry is gone (claimed by another runner, moved by an operator), is being moved
/// by an operator right now, or was replaced under its name meanwhile.
/// [`Error::NotAFile`] when the name now holds a link, fifo, device or directory.
pub fn claim(sb: &Switchboard, pck: &EntryName) -> Result<Option<Claimed>> {
    let path = sb.path_of(pck);
    let Some(opened) = open::open_regular(&path)? else { return Ok(None) };
    let lock = match Flock::lock(opened.file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
        Err((_, errno)) => return Err(Error::Io { op: "locking", path, error: io::Error::from(errno) }),
    };
    let held = lock.metadata().map_err(Error::io("reading the status of", &path))?;
    if !names_file(&path, &held)? {
        return Ok(None);
    }
    let Some(bak) = sb.claim(pck)? else { return Ok(None) };
    let bak_path = sb.path_of(&bak);
    if !names_file(&bak_path, &held)? {
        // Replaced between the check and the rename: what was renamed is not the file
        // held. Give the name back as it was; the next listing judges it.
        let _ = sb.put_back(&bak);
        return Ok(None);
    }
    Ok(Some(Claimed { bak, path: bak_path, size: opened.size, lock }))
}

/// Whether `path` (not followed) is the file whose status is `held`.
fn names_file(path: &Path, held: &std::fs::Metadata) -> Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::Io { op: "reading the status of", path: path.to_owned(), error: e }),
    }
}

/// A `.bak` file held by an operation: no runner works on it while this lives.
#[derive(Debug)]
pub struct EntryLock {
    _lock: Flock<File>,
}

/// What [`probe`] found at a path.
#[derive(Debug)]
pub enum Probe {
    /// A live runner holds it.
    InFlight,
    /// Nothing there any more (finished, put back or moved meanwhile).
    Gone,
    /// Not in flight; held for the caller until the lock is dropped.
    Free(EntryLock),
}

/// Tells whether the entry at `path` is in flight, and if not holds it. The file is
/// opened as [`claim`] opens it: a link, fifo or device is [`Error::NotAFile`].
pub fn probe(path: &Path) -> Result<Probe> {
    let Some(opened) = open::open_regular(path)? else { return Ok(Probe::Gone) };
    let lock = match Flock::lock(opened.file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, Errno::EWOULDBLOCK)) => return Ok(Probe::InFlight),
        Err((_, errno)) => {
            return Err(Error::Io { op: "locking", path: path.to_owned(), error: io::Error::from(errno) })
        }
    };
    // The file may have been renamed away (and another put in its place) between the
    // open and the lock: the lock counts only if the path still names our file.
    let held = lock.metadata().map_err(Error::io("reading", path))?;
    if names_file(path, &held)? {
        Ok(Probe::Free(EntryLock { _lock: lock }))
    } else {
        Ok(Probe::Gone)
    }
}

/// When an entry last changed state: its inode change time, which a rename sets (a
/// claim `.pck` -> `.bak`), as does a rewrite.
pub fn state_time(path: &Path) -> Result<SystemTime> {
    let meta = std::fs::symlink_metadata(path).map_err(Error::io("reading", path))?;
    Ok(SystemTime::UNIX_EPOCH
        + std::time::Duration::new(meta.ctime().max(0) as u64, meta.ctime_nsec().clamp(0, 999_999_999) as u32))
}

/// One fine sub-slice (1/256 of the digest space) of a queue.
#[derive(Debug)]
pub enum Fine {
    /// No live owner: held for the caller, so none can start.
    Held(SliceLock),
    /// A live runner owns it; it took it at `since`.
    Owned { since: SystemTime, holder: String },
}

/// The 256 fine sub-slices of a queue: which have a live owner, the others held.
#[derive(Debug)]
pub struct FineSlices {
    fine: Vec<Fine>,
}

impl FineSlices {
    /// Probes (and takes, where free) every fine sub-slice of `queue`.
    pub fn probe(qfiles: &Path, queue: &str) -> Result<FineSlices> {
        let mut fine = Vec::with_capacity(Slice::MAX_COUNT as usize);
        for k in 0..Slice::MAX_COUNT {
            let slice = Slice::new(k, Slice::MAX_COUNT)?;
            match SliceLock::acquire(qfiles, queue, slice) {
                Ok(lock) => fine.push(Fine::Held(lock)),
                Err(LockError::Held { holder, .. }) => {
                    let path = fine_lock_path(qfiles, queue, k);
                    let since =
                        std::fs::metadata(&path).and_then(|m| m.modified()).map_err(Error::io("reading", path))?;
                    fine.push(Fine::Owned { since, holder });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(FineSlices { fine })
    }

    /// The fine sub-slice an entry belongs to.
    pub fn of(&self, name: &EntryName) -> Option<&Fine> {
        self.fine.get(usize::from(name.digest_top_byte()))
    }

    /// The live owners, one line per distinct holder.
    pub fn owners(&self) -> Vec<String> {
        let mut holders: Vec<String> = self
            .fine
            .iter()
            .filter_map(|f| match f {
                Fine::Owned { holder, .. } => Some(holder.clone()),
                Fine::Held(_) => None,
            })
            .collect();
        holders.sort();
        holders.dedup();
        holders
    }
}

/// Whether a `.bak` may be moved now.
pub enum BakState {
    /// Held by a live runner, or being recovered by one that is starting.
    InFlight,
    Gone,
    /// Not in flight; held for the caller until the lock is dropped.
    Movable(EntryLock),
}

/// Decides about one `.bak` of the queue whose fine slices are `fine`.
pub fn bak_state(fine: &FineSlices, dir: &Path, bak: &EntryName) -> Result<BakState> {
    let path = dir.join(bak.to_string());
    if let Some(Fine::Owned { since, .. }) = fine.of(bak) {
        // A live owner recovers every `.bak` of its slice older than its lock when it
        // starts, without entry locks: one still here is being recovered right now. The
        // owner's own claims come later. Both times are the filesystem's clock.
        let changed = match state_time(&path) {
            Ok(t) => t,
            Err(Error::Io { error, .. }) if error.kind() == io::ErrorKind::NotFound => return Ok(BakState::Gone),
            Err(e) => return Err(e),
        };
        if changed <= *since {
            return Ok(BakState::InFlight);
        }
    }
    Ok(match probe(&path)? {
        Probe::InFlight => BakState::InFlight,
        Probe::Gone => BakState::Gone,
        Probe::Free(lock) => BakState::Movable(lock),
    })
}

/// Who took a fine sub-slice last, from the record its lock file keeps (see
/// [`crate::lock`]): `pid <pid> on host <host> (...)`. The record outlives its owner,
/// so whether that process still lives is the reader's question.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
}

/// The recorded holder of each fine sub-slice of `queue` that has one.
pub fn recorded_holders(qfiles: &Path, queue: &str) -> Vec<(u32, Holder)> {
    (0..Slice::MAX_COUNT)
        .filter_map(|k| {
            let record = std::fs::read_to_string(fine_lock_path(qfiles, queue, k)).ok()?;
            let mut words = record.split_whitespace();
            match (words.next(), words.next(), words.next(), words.next(), words.next()) {
                (Some("pid"), Some(pid), Some("on"), Some("host"), Some(host)) => {
                    Some((k, Holder { pid: pid.parse().ok()?, host: host.to_owned() }))
                }
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::Ext;

    const D: &str = "a123456789abcdef0123456789abcdef01234567";

    #[test]
    fn a_claimed_entry_is_in_flight_until_dropped() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("out")).unwrap();
        let sb = Switchboard::open(root.path(), "out").unwrap();
        let pck = EntryName::parse(&format!("1.5+{D}.pck")).unwrap();
        std::fs::write(sb.path_of(&pck), b"entry").unwrap();
        let claimed = claim(&sb, &pck).unwrap().expect("claimed");
        let bak = claimed.bak().clone();
        assert_eq!(bak.ext(), Ext::Bak);
        assert!(matches!(probe(&sb.path_of(&bak)).unwrap(), Probe::InFlight));
        drop(claimed);
        let held = match probe(&sb.path_of(&bak)).unwrap() {
            Probe::Free(lock) => lock,
            other => panic!("{other:?}"),
        };
        // While an operation holds it, a runner cannot claim it back once it is `.pck`.
        std::fs::rename(sb.path_of(&bak), sb.path_of(&pck)).unwrap();
        assert!(claim(&sb, &pck).unwrap().is_none());
        drop(held);
        assert!(claim(&sb, &pck).unwrap().is_some());
        assert!(matches!(probe(&sb.path_of(&pck)).unwrap(), Probe::Gone));
    }

    #[test]
    fn fine_slices_tell_live_owners_from_free_slices() {
        let root = tempfile::tempdir().unwrap();
        let owner = SliceLock::acquire(root.path(), "out", Slice::new(1, 4).unwrap()).unwrap();
        let fine = FineSlices::probe(root.path(), "out").unwrap();
        let in_slice = |top: &str| EntryName::parse(&format!("1.5+{top}{}.bak", &D[2..])).unwrap();
        assert!(matches!(fine.of(&in_slice("40")), Some(Fine::Owned { .. })));
        assert!(matches!(fine.of(&in_slice("00")), Some(Fine::Held(_))));
        assert_eq!(fine.owners().len(), 1);
        assert!(fine.owners()[0].starts_with(&format!("pid {} on host ", std::process::id())));
        let holders = recorded_holders(root.path(), "out");
        assert_eq!(holders.len(), 256);
        drop(owner);
        // The free slices are held by the probe: no runner can start on them.
        assert!(SliceLock::acquire(root.path(), "out", Slice::new(0, 4).unwrap()).is_err());
        drop(fine);
        assert!(SliceLock::acquire(root.path(), "out", Slice::new(0, 4).unwrap()).is_ok());
    }
}
