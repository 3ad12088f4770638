//! The places an entry can be outside its live queue, and the one move between any two
//! of them: a rename within one filesystem that never replaces an existing file.
//!
//! Quarantine and hold areas live under the state directory,
//! `<qfiles>/.mailqueue/quarantine/<queue>/` and `<qfiles>/.mailqueue/hold/<queue>/`,
//! where Mailman's tools (which only look at the queues they run) never see them. Shunt
//! and `bad/` are Mailman's own queues.

use crate::lock::STATE_DIR;
use crate::name::{fifo_order, EntryName, Ext};
use crate::scan::{scan, Found};
use crate::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
use nix::unistd::{access, AccessFlags};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Mode of the directories this module creates (Mailman's for queue directories).
const DIR_MODE: u32 = 0o770;

/// An area outside the live queues that this product owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    /// Stale `.bak` entries set aside: never worked on until requeued.
    Quarantine,
    /// Entries an admin holds back: never delivered nor expired until released.
    Hold,
}

impl Area {
    pub fn as_str(self) -> &'static str {
        match self {
            Area::Quarantine => "quarantine",
            Area::Hold => "hold",
        }
    }

    /// The area's directory for `queue`.
    pub fn dir(self, qfiles: &Path, queue: &str) -> PathBuf {
        qfiles.join(STATE_DIR).join(self.as_str()).join(queue)
    }
}

/// What became of one move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    Done,
    /// The source was gone (claimed, finished or moved meanwhile): nothing happened.
    Gone,
}

/// Renames `from` to `to`, refusing to replace anything at `to` and to cross
/// filesystems. The one primitive behind every move of this module's callers.
pub fn rename_new(from: &Path, to: &Path) -> Result<Moved> {
    match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(Moved::Done),
        Err(Errno::ENOENT) if fs::symlink_metadata(from).is_err() => Ok(Moved::Gone),
        Err(Errno::EEXIST) => Err(Error::TargetExists { from: from.to_owned(), to: to.to_owned() }),
        // Filesystems without RENAME_NOREPLACE (some network ones): check, then rename.
        // Entry names carry a sha1, so a clash between the check and the rename is not
        // a practical concern.
        Err(Errno::EINVAL | Errno::ENOSYS) => {
            if fs::symlink_metadata(to).is_ok() {
                return Err(Error::TargetExists { from: from.to_owned(), to: to.to_owned() });
            }
            match fs::rename(from, to) {
                Ok(()) => Ok(Moved::Done),
                Err(e) if e.kind() == io::ErrorKind::NotFound && fs::symlink_metadata(from).is_err() => Ok(Moved::Gone),
                Err(e) => Err(Error::from_rename(from.to_owned(), to.to_owned(), e)),
            }
        }
        Err(errno) => Err(Error::from_rename(from.to_owned(), to.to_owned(), io::Error::from(errno))),
    }
}

/// Moves entry `name` from directory `from` into queue directory `queue_dir` as a queued
/// `.pck` (a `.bak` or `.psv` is renamed on the way), refusing when the queue already
/// has an entry with the same base name in any state.
pub fn into_queue(from: &Path, name: &EntryName, queue_dir: &Path) -> Result<Moved> {
    let to = queue_dir.join(name.with_ext(Ext::Pck).to_string());
    let claimed = queue_dir.join(name.with_ext(Ext::Bak).to_string());
    if fs::symlink_metadata(&claimed).is_ok() {
        return Err(Error::TargetExists { from: from.join(name.to_string()), to: claimed });
    }
    rename_new(&from.join(name.to_string()), &to)
}

/// Creates `dir` (and its parents) if needed and checks it is on the filesystem of
/// `like`, so that moves between them are renames.
pub fn ensure_dir(dir: &Path, like: &Path) -> Result<()> {
    fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir).map_err(Error::io("creating", dir))?;
    same_filesystem(like, dir)
}

/// Refuses when `a` and `b` (both existing) are on different filesystems.
pub fn same_filesystem(a: &Path, b: &Path) -> Result<()> {
    let dev = |p: &Path| fs::metadata(p).map(|m| m.dev()).map_err(Error::io("opening", p));
    if dev(a)? != dev(b)? {
        return Err(Error::CrossDevice { from: a.to_owned(), to: b.to_owned() });
    }
    Ok(())
}

/// Refuses when this process may not create and rename files in `dir`.
pub fn check_writable(dir: &Path) -> Result<()> {
    access(dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|errno| Error::Io {
        op: "no permission to move entries in",
        path: dir.to_owned(),
        error: io::Error::from(errno),
    })
}

/// The entries (`.pck`, `.bak`, `.psv`) of a directory, first in first out. A missing
/// directory has none.
pub fn entries(dir: &Path) -> Result<Vec<EntryName>> {
    let mut names = Vec::new();
    scan_entries(dir, |name| names.push(name))?;
    Ok(fifo_order(names))
}

/// How many entries (`.pck`, `.bak`, `.psv`) a directory holds; a missing one none.
pub fn count(dir: &Path) -> Result<u64> {
    let mut n = 0;
    scan_entries(dir, |_| n += 1)?;
    Ok(n)
}

/// Calls `f` with each entry of `dir`. An area is created on its first move, so a
/// missing directory is an empty one, not an error.
fn scan_entries(dir: &Path, mut f: impl FnMut(EntryName)) -> Result<()> {
    match scan(dir, |found| {
        if let Found::Entry(name) = found {
            f(name);
        }
    }) {
        Err(Error::Io { error, .. }) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// How many entries (queued or claimed) a queue directory holds.
pub fn depth(dir: &Path) -> Result<u64> {
    let mut n = 0;
    scan(dir, |found| {
        if let Found::Entry(name) = found {
            if matches!(name.ext(), Ext::Pck | Ext::Bak) {
                n += 1;
            }
        }
    })?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn moves_never_replace_and_report_gone_sources() {
        let root = tempfile::tempdir().unwrap();
        let (a, q) = (root.path().join("a"), root.path().join("q"));
        ensure_dir(&a, root.path()).unwrap();
        ensure_dir(&q, root.path()).unwrap();
        let bak = EntryName::parse(&format!("1.5+{D}.bak")).unwrap();
        fs::write(a.join(bak.to_string()), b"entry").unwrap();
        assert_eq!(into_queue(&a, &bak, &q).unwrap(), Moved::Done);
        assert_eq!(fs::read(q.join(format!("1.5+{D}.pck"))).unwrap(), b"entry");
        assert_eq!(into_queue(&a, &bak, &q).unwrap(), Moved::Gone);

        fs::write(a.join(bak.to_string()), b"other").unwrap();
        let err = into_queue(&a, &bak, &q).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(fs::read(q.join(format!("1.5+{D}.pck"))).unwrap(), b"entry", "never replaced");
        assert_eq!(entries(&a).unwrap(), vec![bak]);
        assert_eq!(depth(&q).unwrap(), 1);
        assert!(entries(&root.path().join("missing")).unwrap().is_empty());
        assert_eq!(count(&a).unwrap(), 1);
        assert_eq!(count(&root.path().join("missing")).unwrap(), 0);
    }
}
