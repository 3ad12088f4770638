//! Hold and release: an admin's choice of queued entries moved to
//! `<qfiles>/.mailqueue/hold/<queue>/`, where no runner sees them (so they are neither
//! delivered nor expired), and back into the queue on release, in batches.

use super::feed::Feed;
use super::select::Select;
use super::tally::Tally;
use super::OpsError;
use crate::area::{self, rename_new, Area, Moved};
use crate::name::Ext;
use crate::switchboard::Switchboard;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Moves the selected queued entries of `queue` to its hold area. Claimed (`.bak`)
/// entries that match are in flight or stuck: counted, left alone (see quarantine).
pub fn hold(qfiles: &Path, queue: &str, select: &Select, dry_run: bool) -> Result<Tally, OpsError> {
    select.check()?;
    let sb = Switchboard::open(qfiles, queue)?;
    let dest = Area::Hold.dir(qfiles, queue);
    if !dry_run {
        area::check_writable(sb.dir())?;
        area::ensure_dir(&dest, sb.dir())?;
    }
    let mut tally = Tally::new(dry_run);
    let listed = area::entries(sb.dir())?;
    let picked = select.pick(sb.dir(), listed, now(), &mut tally);
    tally.matched = picked.len() as u64;
    for name in picked {
        match name.ext() {
            Ext::Pck if dry_run => tally.moved += 1,
            Ext::Pck => match rename_new(&sb.path_of(&name), &dest.join(name.to_string())) {
                Ok(Moved::Done) => tally.moved += 1,
                Ok(Moved::Gone) => tally.skipped_gone += 1,
                Err(e) => tally.error(e.to_string()),
            },
            _ => tally.skipped_in_flight += 1,
        }
    }
    if !dry_run {
        tracing::info!(queue, moved = tally.moved, "entries held");
    }
    Ok(tally)
}

/// Feeds the selected held entries of `queue` back into it.
pub fn release(
    qfiles: &Path,
    queue: &str,
    select: &Select,
    feed: &mut Feed<'_>,
    dry_run: bool,
) -> Result<Tally, OpsError> {
    select.check()?;
    let sb = Switchboard::open(qfiles, queue)?;
    let from = Area::Hold.dir(qfiles, queue);
    let mut tally = Tally::new(dry_run);
    let listed = area::entries(&from)?;
    if listed.is_empty() {
        return Ok(tally);
    }
    if !dry_run {
        area::check_writable(sb.dir())?;
        area::same_filesystem(&from, sb.dir())?;
    }
    let picked = select.pick(&from, listed, now(), &mut tally);
    feed.run(&from, &picked, sb.dir(), &mut tally)?;
    Ok(tally)
}
