//! Which entries an admin means: by slice, age, list, sender or recipient domain, or
//! name. With no selector nothing is chosen unless the whole queue is asked for.

use super::tally::Tally;
use super::OpsError;
use crate::entry::QueueEntry;
use crate::name::EntryName;
use crate::slice::Slice;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct Select {
    /// Entries of this slice.
    pub slice: Option<Slice>,
    /// Entries queued longer ago than this (by the time in their name).
    pub older_than: Option<Duration>,
    /// Entries of this list (2.1 list name or Mailman 3 list id).
    pub list: Option<String>,
    /// Entries whose envelope sender is in this domain.
    pub sender_domain: Option<String>,
    /// Entries with at least one recipient in this domain.
    pub recipient_domain: Option<String>,
    /// These entries, by file name with or without extension.
    pub names: Vec<String>,
    /// Every entry: required when no other selector is given.
    pub all: bool,
}

impl Select {
    fn is_empty(&self) -> bool {
        self.slice.is_none()
            && self.older_than.is_none()
            && self.list.is_none()
            && self.sender_domain.is_none()
            && self.recipient_domain.is_none()
            && self.names.is_empty()
    }

    /// Refuses a selection that would take a whole queue by accident.
    pub fn check(&self) -> Result<(), OpsError> {
        if self.is_empty() && !self.all {
            return Err(OpsError::NoSelector);
        }
        Ok(())
    }

    fn needs_content(&self) -> bool {
        self.list.is_some() || self.sender_domain.is_some() || self.recipient_domain.is_some()
    }

    fn by_name(&self, name: &EntryName, now: f64) -> bool {
        self.slice.is_none_or(|s| s.contains(name))
            && self.older_than.is_none_or(|d| now - name.timestamp() > d.as_secs_f64())
            && (self.names.is_empty() || self.names.iter().any(|n| *n == name.base() || *n == name.to_string()))
    }

    fn by_content(&self, entry: &QueueEntry) -> bool {
        let list_ok = self.list.as_ref().is_none_or(|l| entry.list_key().is_some_and(|k| k.eq_ignore_ascii_case(l)));
        let sender_ok =
            self.sender_domain.as_ref().is_none_or(|d| entry.envelope_sender().is_ok_and(|s| in_domain(&s, d)));
        let rcpt_ok = self
            .recipient_domain
            .as_ref()
            .is_none_or(|d| entry.recipients().is_ok_and(|r| r.iter().any(|a| in_domain(a, d))));
        list_ok && sender_ok && rcpt_ok
    }

    /// The entries of `dir` among `names` that match; entries whose content a selector
    /// needs but which cannot be read are counted in `tally` and left out.
    pub fn pick(&self, dir: &Path, names: Vec<EntryName>, now: f64, tally: &mut Tally) -> Vec<EntryName> {
        let mut picked: Vec<EntryName> = names.into_iter().filter(|n| self.by_name(n, now)).collect();
        if self.needs_content() {
            picked.retain(|name| match QueueEntry::read(&dir.join(name.to_string())) {
                Ok(entry) => self.by_content(&entry),
                Err(e) => {
                    tracing::warn!(entry = %name, error = %e, "cannot read the entry to select it; left alone");
                    tally.skipped_unreadable += 1;
                    false
                }
            });
        }
        picked
    }
}

/// `addr` is `...@domain` (case-insensitive).
fn in_domain(addr: &str, domain: &str) -> bool {
    addr.rsplit_once('@')
        .is_some_and(|(_, d)| d.trim_end_matches('>').eq_ignore_ascii_case(domain.trim_start_matches('@')))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "f123456789abcdef0123456789abcdef01234567";

    #[test]
    fn selects_by_name_slice_and_age() {
        let n = EntryName::parse(&format!("1000.5+{D}.pck")).unwrap();
        let none = Select::default();
        assert!(matches!(none.check(), Err(OpsError::NoSelector)));
        assert!(Select { all: true, ..Select::default() }.by_name(&n, 0.0));
        let by_base = Select { names: vec![n.base()], ..Select::default() };
        assert!(by_base.check().is_ok() && by_base.by_name(&n, 0.0));
        let by_slice = |i| Select { slice: Some(Slice::new(i, 2).unwrap()), ..Select::default() };
        assert!(by_slice(1).by_name(&n, 0.0) && !by_slice(0).by_name(&n, 0.0));
        let old = Select { older_than: Some(Duration::from_secs(60)), ..Select::default() };
        assert!(old.by_name(&n, 1100.0) && !old.by_name(&n, 1050.0));
        assert!(in_domain("a@Example.COM", "example.com") && !in_domain("a@example.com.evil", "example.com"));
    }
}
