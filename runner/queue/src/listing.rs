//! Per-entry views of one queue directory, for an admin looking at a backlog the way
//! `postqueue -p` and `qshape` look at Postfix's: each entry with its age, size, sender,
//! list and recipient count, and recipients by domain and age. Unlike [`crate::status`]
//! these open every file (through [`crate::entry::QueueEntry::read`]: bounded, never
//! following a link), so they cost a read per entry.

use crate::entry::QueueEntry;
use crate::name::{fifo_order, EntryName, Ext};
use crate::scan::{scan, Found};
use crate::status::bucket_of;
use crate::{Error, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;

/// One entry as read from its file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryRow {
    pub file: String,
    /// `pck` (queued), `bak` (claimed) or `psv` (preserved).
    pub state: &'static str,
    /// Seconds since the time in its name; 0 for a time in the future.
    pub age_seconds: f64,
    pub size: u64,
    /// The `MAIL FROM` it would be delivered with.
    pub sender: Option<String>,
    /// 2.1 `listname`, Mailman 3 `listid`.
    pub list: Option<String>,
    pub recipients: Option<usize>,
    /// Why the entry could not be read; the other fields are then partly empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Calls `visit` for every entry of `queue`, first in first out, as Mailman would take
/// them, until it returns `ControlFlow::Break` (so a `--limit` reads only what it shows). An
/// entry gone since the listing (delivered meanwhile) is skipped; one that cannot be read is
/// reported in its row, not as an error of the whole listing.
pub fn list_entries(
    qfiles: &Path,
    queue: &str,
    now: f64,
    mut visit: impl FnMut(EntryRow) -> ControlFlow<()>,
) -> Result<()> {
    let dir = qfiles.join(queue);
    for name in entry_names(&dir)? {
        let path = dir.join(name.to_string());
        let mut row = EntryRow {
            file: name.to_string(),
            state: name.ext().as_str(),
            age_seconds: (now - name.timestamp()).max(0.0),
            size: 0,
            sender: None,
            list: None,
            recipients: None,
            error: None,
        };
        match QueueEntry::read(&path) {
            Ok(entry) => {
                row.size = entry.bytes().len() as u64;
                row.list = entry.list_key();
                match (entry.envelope_sender(), entry.recipients()) {
                    (Ok(sender), Ok(recipients)) => {
                        row.sender = Some(sender);
                        row.recipients = Some(recipients.len());
                    }
                    (sender, recipients) => {
                        row.sender = sender.as_ref().ok().cloned();
                        row.recipients = recipients.as_ref().ok().map(Vec::len);
                        row.error = sender.err().or(recipients.err()).map(|e| e.to_string());
                    }
                }
            }
            Err(e) if gone(&e) => continue,
            Err(e) => row.error = Some(e.to_string()),
        }
        if visit(row).is_break() {
            break;
        }
    }
    Ok(())
}

/// Recipients of one domain (or senders of one domain, see [`shape`]) by age.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainRow {
    pub domain: String,
    pub total: u64,
    /// Per bucket of [`crate::status::bucket_labels`].
    pub age_histogram: Vec<u64>,
}

/// What [`shape`] counts per domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeBy {
    /// Each recipient address, by its domain (qshape's default).
    Recipient,
    /// Each entry once, by its envelope sender's domain (qshape's `-s`).
    Sender,
}

/// The queue's shape: per domain, how many recipients (or entries, by sender) wait,
/// by age, most first; the first row is the total over all domains (`T`, as qshape
/// prints it). Also returns how many entries could not be read (they are not counted).
pub fn shape(qfiles: &Path, queue: &str, now: f64, by: ShapeBy) -> Result<(Vec<DomainRow>, u64)> {
    let dir = qfiles.join(queue);
    let buckets = crate::status::BUCKET_LIMITS_MINUTES.len() + 1;
    let mut total = DomainRow { domain: "T".to_owned(), total: 0, age_histogram: vec![0; buckets] };
    let mut domains: HashMap<String, DomainRow> = HashMap::new();
    let mut unreadable = 0;
    for name in entry_names(&dir)? {
        let entry = match QueueEntry::read(&dir.join(name.to_string())) {
            Ok(entry) => entry,
            Err(e) if gone(&e) => continue,
            Err(_) => {
                unreadable += 1;
                continue;
            }
        };
        let addresses = match by {
            ShapeBy::Recipient => entry.recipients().ok(),
            ShapeBy::Sender => entry.envelope_sender().ok().map(|s| vec![s]),
        };
        let Some(addresses) = addresses else {
            unreadable += 1;
            continue;
        };
        let bucket = bucket_of((now - name.timestamp()).max(0.0));
        for address in addresses {
            let domain = domain_of(&address);
            let row = domains.entry(domain.clone()).or_insert_with(|| DomainRow {
                domain,
                total: 0,
                age_histogram: vec![0; buckets],
            });
            for r in [&mut *row, &mut total] {
                r.total += 1;
                r.age_histogram[bucket] += 1;
            }
        }
    }
    let mut rows: Vec<DomainRow> = domains.into_values().collect();
    rows.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.domain.cmp(&b.domain)));
    rows.insert(0, total);
    Ok((rows, unreadable))
}

/// The part after the last `@`, lower-cased (domains are case-insensitive); an address
/// without one is shown as itself in angle brackets, so that it stands out.
fn domain_of(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((_, domain)) if !domain.is_empty() => domain.to_ascii_lowercase(),
        _ => format!("<{address}>"),
    }
}

/// The entries of a queue directory (not `.tmp`), first in first out.
fn entry_names(dir: &Path) -> Result<Vec<EntryName>> {
    let mut names = Vec::new();
    scan(dir, |found| {
        if let Found::Entry(name) = found {
            if name.ext() != Ext::Tmp {
                names.push(name);
            }
        }
    })?;
    Ok(fifo_order(names))
}

/// Taken by a runner or moved since the listing.
fn gone(e: &Error) -> bool {
    matches!(e, Error::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_case_insensitive_and_odd_addresses_stand_out() {
        assert_eq!(domain_of("Alice@Example.ORG"), "example.org");
        assert_eq!(domain_of("a@b@c.example"), "c.example");
        assert_eq!(domain_of("postmaster"), "<postmaster>");
        assert_eq!(domain_of("x@"), "<x@>");
    }
}
