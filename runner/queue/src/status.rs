//! Queue counts and ages from file names alone (no file is opened), so that a status
//! of a 100,000-entry backlog takes milliseconds.

use crate::area::{self, Area};
use crate::name::Ext;
use crate::scan::{scan, Found};
use crate::slice::Slice;
use crate::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Upper bounds (minutes) of the age buckets, doubling as Postfix's `qshape` does; a
/// last bucket takes everything older.
pub const BUCKET_LIMITS_MINUTES: [u64; 9] = [5, 10, 20, 40, 80, 160, 320, 640, 1280];

/// How many names of each kind of ignored file a status keeps as examples.
const IGNORED_EXAMPLES: usize = 10;

/// Counts over some set of entries of one directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Queued.
    pub pck: u64,
    /// Claimed (in flight, or left by a crashed runner).
    pub bak: u64,
    /// Preserved (normally only in `bad/`).
    pub psv: u64,
    /// Age in seconds of the oldest entry (by the time in its name), if any.
    pub oldest_age_seconds: Option<f64>,
    /// Entries per age bucket, see [`bucket_labels`].
    pub age_histogram: Vec<u64>,
}

impl Counts {
    fn new() -> Counts {
        Counts { age_histogram: vec![0; BUCKET_LIMITS_MINUTES.len() + 1], ..Counts::default() }
    }

    fn add(&mut self, ext: Ext, age_seconds: f64) {
        match ext {
            Ext::Pck => self.pck += 1,
            Ext::Bak => self.bak += 1,
            Ext::Psv => self.psv += 1,
            Ext::Tmp => return,
        }
        self.oldest_age_seconds = Some(self.oldest_age_seconds.map_or(age_seconds, |a| a.max(age_seconds)));
        if let Some(n) = self.age_histogram.get_mut(bucket_of(age_seconds)) {
            *n += 1;
        }
    }
}

/// The histogram bucket of an age: an index into [`bucket_labels`].
pub fn bucket_of(age_seconds: f64) -> usize {
    let minutes = age_seconds / 60.0;
    BUCKET_LIMITS_MINUTES.iter().position(|&limit| minutes < limit as f64).unwrap_or(BUCKET_LIMITS_MINUTES.len())
}

/// Files of one reason that are not entries.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IgnoredFiles {
    pub count: u64,
    /// The first few names met.
    pub examples: Vec<String>,
}

/// One queue directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueStatus {
    pub name: String,
    #[serde(flatten)]
    pub counts: Counts,
    /// Entries of this queue set aside in its quarantine area (see [`crate::area`]).
    pub quarantined: u64,
    /// Entries of this queue held back in its hold area.
    pub held: u64,
    /// By reason (see [`crate::scan::Ignored::as_str`]).
    pub ignored: BTreeMap<&'static str, IgnoredFiles>,
    /// Per slice when a slice count was asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slices: Vec<Counts>,
}

/// Labels of the histogram buckets: `0-5m`, `5-10m`, ..., `1280m+`.
pub fn bucket_labels() -> Vec<String> {
    let mut labels = Vec::new();
    let mut lower = 0;
    for limit in BUCKET_LIMITS_MINUTES {
        labels.push(format!("{lower}-{limit}m"));
        lower = limit;
    }
    labels.push(format!("{lower}m+"));
    labels
}

/// The status of queue `name` under the qfiles root, with its quarantine and hold
/// areas; with `slice_count`, per slice too. `now` is Unix time in seconds; entries
/// dated in the future count as age 0.
pub fn queue_status(qfiles: &Path, name: &str, slice_count: Option<u32>, now: f64) -> Result<QueueStatus> {
    let slicer = slice_count.map(|n| Slice::new(0, n)).transpose()?;
    let dir = qfiles.join(name);
    let mut status = QueueStatus {
        name: name.to_owned(),
        counts: Counts::new(),
        quarantined: area::count(&Area::Quarantine.dir(qfiles, name))?,
        held: area::count(&Area::Hold.dir(qfiles, name))?,
        ignored: BTreeMap::new(),
        slices: slicer.map(|s| vec![Counts::new(); s.count() as usize]).unwrap_or_default(),
    };
    scan(&dir, |found| match found {
        Found::Entry(entry) => {
            let age = (now - entry.timestamp()).max(0.0);
            status.counts.add(entry.ext(), age);
            if let Some(slicer) = slicer {
                if let Some(counts) = status.slices.get_mut(slicer.index_of(&entry) as usize) {
                    counts.add(entry.ext(), age);
                }
            }
        }
        Found::Ignored { file_name, reason } => {
            let files = status.ignored.entry(reason.as_str()).or_default();
            files.count += 1;
            if files.examples.len() < IGNORED_EXAMPLES {
                files.examples.push(file_name);
            }
        }
    })?;
    for files in status.ignored.values_mut() {
        files.examples.sort();
    }
    Ok(status)
}

/// The status of every queue directory under the qfiles root, by name. Hidden
/// directories (this product's `.mailqueue/` state, see [`crate::lock::STATE_DIR`])
/// and plain files are skipped.
pub fn qfiles_status(qfiles: &Path, slice_count: Option<u32>, now: f64) -> Result<Vec<QueueStatus>> {
    // Refuse a bad count even when there is no queue to count.
    slice_count.map(|n| Slice::new(0, n)).transpose()?;
    let mut queues = Vec::new();
    for dirent in fs::read_dir(qfiles).map_err(Error::io("listing", qfiles))? {
        let dirent = dirent.map_err(Error::io("listing", qfiles))?;
        let name = dirent.file_name().to_string_lossy().into_owned();
        // Follows a symlinked queue directory: sites do link queues elsewhere.
        let is_dir = fs::metadata(dirent.path()).map(|m| m.is_dir()).unwrap_or(false);
        if is_dir && !name.starts_with('.') {
            queues.push(name);
        }
    }
    queues.sort();
    queues.iter().map(|name| queue_status(qfiles, name, slice_count, now)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D0: &str = "0123456789abcdef0123456789abcdef01234567";
    const DF: &str = "f123456789abcdef0123456789abcdef01234567";

    #[test]
    fn counts_ages_and_ignored_files() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        fs::create_dir_all(&out).unwrap();
        fs::create_dir_all(root.path().join(".mailqueue/locks")).unwrap();
        fs::create_dir_all(root.path().join("bad")).unwrap();
        let now = 1_000_000.0;
        for (age_min, d, ext) in [(1.0, D0, "pck"), (7.0, DF, "pck"), (30.0, D0, "bak"), (5000.0, DF, "pck")] {
            fs::write(out.join(format!("{}+{d}.{ext}", now - age_min * 60.0)), b"").unwrap();
        }
        fs::write(out.join(format!("{now}+{D0}.pck.tmp")), b"").unwrap();
        fs::write(out.join("core"), b"").unwrap();
        fs::write(root.path().join("bad").join(format!("{now}+{D0}.psv")), b"").unwrap();
        let quarantine = Area::Quarantine.dir(root.path(), "out");
        let hold = Area::Hold.dir(root.path(), "out");
        fs::create_dir_all(&quarantine).unwrap();
        fs::create_dir_all(&hold).unwrap();
        fs::write(quarantine.join(format!("{now}+{D0}.bak")), b"").unwrap();
        fs::write(quarantine.join(format!("{now}+{DF}.bak")), b"").unwrap();
        fs::write(hold.join(format!("{now}+{D0}.pck")), b"").unwrap();
        fs::write(hold.join("notes.txt"), b"").unwrap();
        // Written with a time in the future: age 0, not negative.
        fs::write(out.join(format!("{}+{D0}.pck", now + 100.0)), b"").unwrap();

        let all = qfiles_status(root.path(), Some(2), now).unwrap();
        let names: Vec<&str> = all.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["bad", "out"]);
        let out = &all[1];
        assert_eq!((out.counts.pck, out.counts.bak, out.counts.psv), (4, 1, 0));
        assert_eq!(out.counts.oldest_age_seconds, Some(5000.0 * 60.0));
        assert_eq!(out.counts.age_histogram, vec![2, 1, 0, 1, 0, 0, 0, 0, 0, 1]);
        assert_eq!(out.ignored["being written (.tmp)"].count, 1);
        assert_eq!(out.ignored["not a queue entry name"].examples, vec!["core"]);
        assert_eq!((out.slices[0].pck, out.slices[0].bak), (2, 1));
        assert_eq!((out.slices[1].pck, out.slices[1].bak), (2, 0));
        assert_eq!(all[0].counts.psv, 1);
        assert_eq!((out.quarantined, out.held), (2, 1), "areas counted apart from the queue");
        assert_eq!((all[0].quarantined, all[0].held), (0, 0), "a queue without areas");
        assert_eq!(bucket_labels().first().map(String::as_str), Some("0-5m"));
        assert_eq!(bucket_labels().last().map(String::as_str), Some("1280m+"));
    }
}
