//! Unshunt: like Mailman's `unshunt`, every shunted entry goes back to the queue named
//! in its metadata (`whichq`), here by rename (name and bytes kept) and in batches.

use super::feed::Feed;
use super::requeue::SHUNT_QUEUE;
use super::tally::Tally;
use super::OpsError;
use crate::area;
use crate::entry::QueueEntry;
use crate::name::EntryName;
use crate::switchboard::Switchboard;
use std::collections::BTreeMap;
use std::path::Path;

/// Sends shunted entries back to their `whichq`; with `only`, just those for that queue.
/// Entries without `whichq` (or naming a queue that does not exist) stay and are
/// counted as errors with the reason.
pub fn unshunt(qfiles: &Path, only: Option<&str>, feed: &mut Feed<'_>, dry_run: bool) -> Result<Tally, OpsError> {
    let shunt = qfiles.join(SHUNT_QUEUE);
    let mut tally = Tally::new(dry_run);
    let mut by_queue: BTreeMap<String, Vec<EntryName>> = BTreeMap::new();
    for name in area::entries(&shunt)? {
        let path = shunt.join(name.to_string());
        let whichq = match QueueEntry::read(&path) {
            Ok(entry) => entry.metadata().get("whichq").and_then(|v| v.as_text()),
            Err(e) => {
                if only.is_none() {
                    tally.matched += 1;
                    tally.error(format!("{e}; requeue it by hand with `requeue --from shunt --queue QUEUE`"));
                } else {
                    tally.skipped_unreadable += 1;
                }
                continue;
            }
        };
        match whichq {
            Some(q) if only.is_none_or(|o| o == q) => by_queue.entry(q).or_default().push(name),
            Some(_) => {}
            None if only.is_none() => {
                tally.matched += 1;
                tally.error(format!(
                    "{}: no whichq in its metadata; requeue it with `requeue --from shunt --queue QUEUE`",
                    path.display()
                ));
            }
            None => {}
        }
    }
    for (queue, names) in by_queue {
        let sb = match Switchboard::open(qfiles, &queue) {
            Ok(sb) => sb,
            Err(e) => {
                tally.matched += names.len() as u64;
                for name in &names {
                    tally.error(format!("{name}: its whichq names queue {queue:?}, which cannot be opened: {e}"));
                }
                continue;
            }
        };
        area::same_filesystem(&shunt, sb.dir())?;
        if !dry_run {
            area::check_writable(&shunt)?;
            area::check_writable(sb.dir())?;
        }
        let mut one = Tally::new(dry_run);
        feed.run(&shunt, &names, sb.dir(), &mut one)?;
        tracing::info!(queue, moved = one.moved, "unshunted");
        tally.absorb(one);
    }
    Ok(tally)
}
