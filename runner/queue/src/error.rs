//! The queue layer's errors: each names the file and what went wrong with it.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // Causes are part of each message and not exposed as `source()`, so that chain
    // printers (anyhow's `{:#}`) do not repeat them.
    #[error("{op} {path}: {error}")]
    Io { op: &'static str, path: PathBuf, error: io::Error },

    #[error("moving {from} to {to}: {error}")]
    Move { from: PathBuf, to: PathBuf, error: io::Error },

    /// Entries only ever move by rename, which cannot cross filesystems; a copy could
    /// leave an entry in two places or in none.
    #[error(
        "{from} and {to} are on different filesystems: queue entries are only moved by \
         rename, so both must be on the same filesystem"
    )]
    CrossDevice { from: PathBuf, to: PathBuf },

    #[error("{to} already exists: refusing to overwrite it with {from}")]
    TargetExists { from: PathBuf, to: PathBuf },

    #[error("{path} is not a queue directory ({reason})")]
    NotAQueue { path: PathBuf, reason: &'static str },

    #[error("{path}: {error}")]
    Entry { path: PathBuf, error: crate::entry::EntryError },

    /// A queue name that is not a regular file (any more): never followed, never read.
    #[error("{path} is {kind}, not a regular file: left alone")]
    NotAFile { path: PathBuf, kind: &'static str },

    #[error("{path} is {size} bytes, more than the entry size limit of {limit} bytes")]
    TooLarge { path: PathBuf, size: u64, limit: u64 },

    #[error(transparent)]
    Slice(#[from] crate::slice::SliceError),

    #[error(transparent)]
    Name(#[from] crate::name::NameError),

    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
}

impl Error {
    /// The entry's bytes were read and cannot be used (undecodable, or over the size
    /// limit): it belongs in `bad/`. Every other error (an errno from the filesystem:
    /// EMFILE, EIO, EACCES, ENOSPC, a network volume's hiccup) says nothing about the
    /// entry, which is put back or left for later, never set aside as broken.
    pub fn is_bad_entry(&self) -> bool {
        matches!(self, Error::Entry { .. } | Error::TooLarge { .. })
    }

    /// The errno behind an I/O error, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { error, .. } | Error::Move { error, .. } => error.raw_os_error(),
            _ => None,
        }
    }

    /// A write failed because the filesystem is full (ENOSPC, or EDQUOT for a quota).
    pub fn is_no_space(&self) -> bool {
        matches!(self.raw_os_error(), Some(nix::libc::ENOSPC | nix::libc::EDQUOT))
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |error| Error::Io { op, path, error }
    }

    /// Classifies a failed rename: a different filesystem gets its own message.
    pub(crate) fn from_rename(from: PathBuf, to: PathBuf, error: io::Error) -> Error {
        if error.raw_os_error() == Some(nix::libc::EXDEV) {
            Error::CrossDevice { from, to }
        } else {
            Error::Move { from, to, error }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
