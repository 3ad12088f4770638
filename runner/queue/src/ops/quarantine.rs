//! Quarantine: set aside `.bak` entries stuck longer than a threshold (by the time they
//! became `.bak`, not their enqueue time), keeping name and content, into
//! `<qfiles>/.mailqueue/quarantine/<queue>/`. An entry a live runner has in flight is
//! never moved; no runner can start on a slice while its entries are being moved.

use super::tally::Tally;
use super::OpsError;
use crate::area::{self, rename_new, Area, Moved};
use crate::inflight::{bak_state, state_time, BakState, FineSlices};
use crate::slice::Slice;
use crate::switchboard::Switchboard;
use std::path::Path;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone)]
pub struct Quarantine<'a> {
    pub qfiles: &'a Path,
    pub queue: &'a str,
    /// Only `.bak` entries in that state for longer than this.
    pub older_than: Duration,
    pub dry_run: bool,
}

impl Quarantine<'_> {
    pub fn run(&self) -> Result<Tally, OpsError> {
        let sb = Switchboard::open(self.qfiles, self.queue)?;
        let dest = Area::Quarantine.dir(self.qfiles, self.queue);
        if !self.dry_run {
            area::check_writable(sb.dir())?;
            area::ensure_dir(&dest, sb.dir())?;
        }
        let cutoff = SystemTime::now().checked_sub(self.older_than).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut tally = Tally::new(self.dry_run);
        let mut stale = Vec::new();
        for bak in sb.backups(Slice::all())? {
            match state_time(&sb.path_of(&bak)) {
                Ok(t) if t < cutoff => stale.push(bak),
                Ok(_) => {}
                // Gone since the listing: finished or put back, never stale.
                Err(_) if !sb.path_of(&bak).exists() => {}
                Err(e) => tally.error(e.to_string()),
            }
        }
        tally.matched = stale.len() as u64 + tally.errors;
        if stale.is_empty() {
            return Ok(tally);
        }
        // Hold every free slice for the whole pass: a runner starting now would recover
        // the very `.bak` entries being moved.
        let fine = FineSlices::probe(self.qfiles, self.queue)?;
        for bak in stale {
            match bak_state(&fine, sb.dir(), &bak) {
                Ok(BakState::InFlight) => tally.skipped_in_flight += 1,
                Ok(BakState::Gone) => tally.skipped_gone += 1,
                Ok(BakState::Movable(_held)) if self.dry_run => tally.moved += 1,
                Ok(BakState::Movable(_held)) => match rename_new(&sb.path_of(&bak), &dest.join(bak.to_string())) {
                    Ok(Moved::Done) => {
                        tracing::info!(queue = self.queue, entry = %bak, "stale .bak quarantined");
                        tally.moved += 1;
                    }
                    Ok(Moved::Gone) => tally.skipped_gone += 1,
                    Err(e) => tally.error(e.to_string()),
                },
                Err(e) => tally.error(e.to_string()),
            }
        }
        Ok(tally)
    }
}
