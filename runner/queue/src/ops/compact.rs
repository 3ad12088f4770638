//! Compact: the cure for a bloated queue directory (a directory that once held 100,000
//! entries stays big, and every create and rename in it stays slow). The queue is moved
//! aside to `<qfiles>/.mailqueue/compact/<queue>` (one rename, same filesystem), an
//! empty directory with the same mode and owner takes its place, and the old entries are
//! fed back in batches. The aside directory is the whole state: after a crash at any
//! step, running compact again finishes the job.

use super::feed::Feed;
use super::requeue::requeue_dir;
use super::tally::Tally;
use super::OpsError;
use crate::area::{self, rename_new, Moved};
use crate::inflight::{probe, FineSlices, Probe};
use crate::lock::STATE_DIR;
use crate::scan::scan;
use crate::slice::Slice;
use crate::switchboard::Switchboard;
use crate::Error;
use serde::Serialize;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// One queue to compact.
#[derive(Debug, Clone)]
pub struct Compact<'a> {
    pub qfiles: &'a Path,
    pub queue: &'a str,
}

/// Where a compact stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Nothing under way: the queue is in place.
    NotStarted,
    /// The queue was moved aside; its old entries are being fed back.
    Refeeding,
}

/// What [`Compact::refeed`] did.
#[derive(Debug, Clone, Serialize)]
pub struct CompactReport {
    #[serde(flatten)]
    pub tally: Tally,
    /// The old directory, while entries remain in it.
    pub aside: PathBuf,
    /// Files that are not entries (half-written `.tmp` files, foreign names) found in
    /// the old directory, left in this directory for an admin to look at.
    pub leftover: Option<PathBuf>,
    /// The old directory is gone: the compact is complete.
    pub done: bool,
}

impl Compact<'_> {
    fn queue_dir(&self) -> PathBuf {
        self.qfiles.join(self.queue)
    }

    /// The old directory while a compact is under way.
    pub fn aside_dir(&self) -> PathBuf {
        self.qfiles.join(STATE_DIR).join("compact").join(self.queue)
    }

    pub fn stage(&self) -> Stage {
        if fs::symlink_metadata(self.aside_dir()).is_ok() {
            Stage::Refeeding
        } else {
            Stage::NotStarted
        }
    }

    /// Moves the queue aside and puts an empty one in its place. Refuses while a live
    /// runner owns any slice of the queue, unless `owners_drained` (the caller drained
    /// them: they claim nothing); even then no entry in flight is moved. Does nothing
    /// when a compact is already under way.
    pub fn swap(&self, owners_drained: bool) -> Result<(), OpsError> {
        if self.stage() == Stage::Refeeding {
            return self.recreate();
        }
        let dir = self.queue_dir();
        let meta = fs::symlink_metadata(&dir).map_err(Error::io("opening queue", &dir))?;
        if meta.file_type().is_symlink() {
            return Err(OpsError::Symlink { path: dir });
        }
        Switchboard::open(self.qfiles, self.queue)?;
        let aside = self.aside_dir();
        let parent = aside.parent().unwrap_or(self.qfiles);
        area::ensure_dir(parent, &dir)?;
        area::check_writable(self.qfiles)?;
        area::check_writable(&dir)?;
        check_owner(&dir, &meta)?;

        // Held until the swap is done: no runner starts (and recovers) meanwhile.
        let fine = FineSlices::probe(self.qfiles, self.queue)?;
        let owners = fine.owners();
        if !owners.is_empty() && !owners_drained {
            return Err(OpsError::Owned { queue: self.queue.to_owned(), owners: owners.join("; "), action: "compact" });
        }
        // Drained owners finish what they have in flight first; a stuck `.bak` of a
        // runner that died is moved with the rest and fed back as `.pck`.
        let sb = Switchboard::open(self.qfiles, self.queue)?;
        for bak in sb.backups(Slice::all())? {
            if let Probe::InFlight = probe(&sb.path_of(&bak))? {
                return Err(OpsError::InFlight { queue: self.queue.to_owned(), entry: bak.to_string() });
            }
        }
        match rename_new(&dir, &aside)? {
            Moved::Done => tracing::info!(queue = self.queue, aside = %aside.display(), "queue directory moved aside"),
            Moved::Gone => {
                return Err(Error::Io { op: "moving aside", path: dir, error: io::ErrorKind::NotFound.into() }.into())
            }
        }
        self.recreate()?;
        drop(fine);
        Ok(())
    }

    /// Makes the new empty queue directory, with the old one's mode and owner, if it is
    /// not there yet.
    fn recreate(&self) -> Result<(), OpsError> {
        let dir = self.queue_dir();
        if fs::symlink_metadata(&dir).is_ok() {
            return Ok(());
        }
        let old = fs::metadata(self.aside_dir()).map_err(Error::io("reading", self.aside_dir()))?;
        fs::DirBuilder::new().mode(old.mode() & 0o7777).create(&dir).map_err(Error::io("creating", &dir))?;
        // The umask may have taken bits off.
        fs::set_permissions(&dir, fs::Permissions::from_mode(old.mode() & 0o7777))
            .map_err(Error::io("setting the mode of", &dir))?;
        let new = fs::metadata(&dir).map_err(Error::io("reading", &dir))?;
        if new.uid() != old.uid() || new.gid() != old.gid() {
            std::os::unix::fs::chown(&dir, Some(old.uid()), Some(old.gid()))
                .map_err(Error::io("changing the owner of", &dir))?;
        }
        tracing::info!(
            queue = self.queue,
            mode = format!("{:o}", old.mode() & 0o7777),
            "queue directory recreated empty"
        );
        Ok(())
    }

    /// Feeds the old entries back into the new queue directory. When they are all back,
    /// removes the old directory (or, if files that are not entries are left in it,
    /// moves it to a `.leftover-<time>` name beside it) and the compact is done.
    pub fn refeed(&self, feed: &mut Feed<'_>, dry_run: bool) -> Result<CompactReport, OpsError> {
        let aside = self.aside_dir();
        let sb = Switchboard::open(self.qfiles, self.queue)?;
        let tally = requeue_dir(&aside, &sb, feed, dry_run)?;
        let mut report = CompactReport { tally, aside: aside.clone(), leftover: None, done: false };
        if dry_run || report.tally.remaining > 0 || !area::entries(&aside)?.is_empty() {
            return Ok(report);
        }
        let mut others = 0;
        scan(&aside, |_| others += 1)?;
        if others == 0 {
            fs::remove_dir(&aside).map_err(Error::io("removing", &aside))?;
        } else {
            let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let leftover = aside.with_file_name(format!("{}.leftover-{stamp}", self.queue));
            rename_new(&aside, &leftover)?;
            tracing::warn!(files = others, dir = %leftover.display(), "files that are not queue entries were left in the old queue directory");
            report.leftover = Some(leftover);
        }
        report.done = true;
        tracing::info!(queue = self.queue, moved = report.tally.moved, "compact finished");
        Ok(report)
    }
}

/// The new directory must get the old one's owner: only root can give it away.
fn check_owner(dir: &Path, meta: &fs::Metadata) -> Result<(), OpsError> {
    let euid = nix::unistd::geteuid().as_raw();
    if euid != 0 && euid != meta.uid() {
        return Err(OpsError::NotOwner { path: dir.to_owned(), uid: meta.uid() });
    }
    Ok(())
}
