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
//! Recovery at a runner's start rewrites `.bak` entries without these locks; it happens
//! only while the runner holds the slice (see [`crate::lock`]). [`FineSlices`] tells
//! which fine sub-slices have a live owner and since when, and holds the others for the
//! caller, so no runner can start (and recover) under an operation.

use crate::lock::{fine_lock_path, LockError, SliceLock};
use crate::name::EntryName;
use crate::slice::Slice;
use crate::switchboard::Switchboard;
use crate::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::SystemTime;

/// A claimed entry, in flight until dropped.
#[derive(Debug)]
pub struct Claimed {
    bak: EntryName,
    _lock: Flock<File>,
}

impl Claimed {
    /// The entry's name as claimed (`.bak`).
    pub fn bak(&self) -> &EntryName {
        &self.bak
    }
}

/// Claims `pck` as [`Switchboard::claim`] does, holding the entry's lock until the
/// returned value is dropped. `Ok(None)` when the entry is gone (claimed by another
/// runner, moved by an operator) or is being moved by an operator right now.
pub fn claim(sb: &Switchboard, pck: &EntryName) -> Result<Option<Claimed>> {
    let path = sb.path_of(pck);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Io { op: "opening", path, error: e }),
    };
    let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
        Err((_, errno)) => return Err(Error::Io { op: "locking", path, error: io::Error::from(errno) }),
    };
    Ok(sb.claim(pck)?.map(|bak| Claimed { bak, _lock: lock }))
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

/// Tells whether the entry at `path` is in flight, and if not holds it.
pub fn probe(path: &Path) -> Result<Probe> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Probe::Gone),
        Err(e) => return Err(Error::Io { op: "opening", path: path.to_owned(), error: e }),
    };
    let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, Errno::EWOULDBLOCK)) => return Ok(Probe::InFlight),
        Err((_, errno)) => {
            return Err(Error::Io { op: "locking", path: path.to_owned(), error: io::Error::from(errno) })
        }
    };
    // The file may have been renamed away (and another put in its place) between the
    // open and the lock: the lock counts only if the path still names our file.
    let held = lock.metadata().map_err(Error::io("reading", path))?;
    match std::fs::symlink_metadata(path) {
        Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => Ok(Probe::Free(EntryLock { _lock: lock })),
        Ok(_) => Ok(Probe::Gone),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Probe::Gone),
        Err(e) => Err(Error::Io { op: "reading", path: path.to_owned(), error: e }),
    }
}

/// When an entry last changed state: its inode change time, which a rename sets (a
/// claim `.pck` -> `.bak`), as does a rewrite.
pub fn state_time(path: &Path) -> Result<SystemTime> {
    let meta = std::fs::symlink_metadata(path).map_err(Error::io("reading", path))?;
    Ok(SystemTime::UNIX_EPOCH + std::time::Duration::new(meta.ctime().max(0) as u64, meta.ctime_nsec().clamp(0, 999_999_999) as u32))
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
                    let since = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .map_err(Error::io("reading", path))?;
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
