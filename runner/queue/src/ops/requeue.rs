//! Requeue: feed entries from an area (quarantine, hold), Mailman's `shunt/` or
//! `bad/`, or any directory on the same filesystem back into a queue, in batches.

use super::feed::Feed;
use super::tally::Tally;
use super::OpsError;
use crate::area::{self, Area};
use crate::switchboard::{Switchboard, BAD_QUEUE};
use std::path::{Path, PathBuf};

/// Mailman's queue of entries that failed with an unexpected error.
pub const SHUNT_QUEUE: &str = "shunt";

/// Where entries come back from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Quarantine,
    Hold,
    Shunt,
    Bad,
    Path(PathBuf),
}

/// A `--from` that is neither an area name nor a path: most likely a misspelt area.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown source '{0}': name quarantine, hold, shunt or bad, or give a directory as a path \
     with a '/' in it (for example ./{0} or /srv/saved/out)"
)]
pub struct UnknownSource(pub String);

impl std::str::FromStr for Source {
    type Err = UnknownSource;

    /// `quarantine`, `hold`, `shunt`, `bad`, or a directory path. A path must contain a `/`:
    /// a bare word that is not an area is refused, so `quarantne` is an error rather than
    /// a relative directory that happens not to exist (or, worse, does).
    fn from_str(s: &str) -> Result<Source, UnknownSource> {
        match s {
            "quarantine" => Ok(Source::Quarantine),
            "hold" => Ok(Source::Hold),
            "shunt" => Ok(Source::Shunt),
            "bad" => Ok(Source::Bad),
            path if path.contains('/') => Ok(Source::Path(PathBuf::from(path))),
            other => Err(UnknownSource(other.to_owned())),
        }
    }
}

impl Source {
    /// The directory holding the entries meant for `queue`.
    pub fn dir(&self, qfiles: &Path, queue: &str) -> PathBuf {
        match self {
            Source::Quarantine => Area::Quarantine.dir(qfiles, queue),
            Source::Hold => Area::Hold.dir(qfiles, queue),
            Source::Shunt => qfiles.join(SHUNT_QUEUE),
            Source::Bad => qfiles.join(BAD_QUEUE),
            Source::Path(p) => p.clone(),
        }
    }
}

/// Feeds every entry of `from` into `queue`, oldest first.
pub fn requeue(
    qfiles: &Path,
    from: &Source,
    queue: &str,
    feed: &mut Feed<'_>,
    dry_run: bool,
) -> Result<Tally, OpsError> {
    let sb = Switchboard::open(qfiles, queue)?;
    let dir = from.dir(qfiles, queue);
    requeue_dir(&dir, &sb, feed, dry_run)
}

/// Feeds every entry of directory `dir` into the queue of `sb`, oldest first.
pub fn requeue_dir(dir: &Path, sb: &Switchboard, feed: &mut Feed<'_>, dry_run: bool) -> Result<Tally, OpsError> {
    let mut tally = Tally::new(dry_run);
    let names = area::entries(dir)?;
    if names.is_empty() {
        return Ok(tally);
    }
    if dir == sb.dir() {
        return Err(OpsError::SourceIsTarget { path: dir.to_owned() });
    }
    area::same_filesystem(dir, sb.dir())?;
    if !dry_run {
        area::check_writable(dir)?;
        area::check_writable(sb.dir())?;
    }
    feed.run(dir, &names, sb.dir(), &mut tally)?;
    Ok(tally)
}
