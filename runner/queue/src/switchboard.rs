//! The switchboard: the type that renames, writes and unlinks entries in a queue
//! directory along Mailman's lifecycle, modelled on Mailman's `Switchboard` (enqueue,
//! files, claim, put back, finish, preserve, recover). Every move is a rename within one
//! filesystem. (The offline operations' moves between queues and holding areas are
//! `crate::area`'s.)

use crate::entry::{self, QueueEntry, MAX_BAK_COUNT};
use crate::inflight::{self, Probe};
use crate::name::{fifo_order, EntryName, Ext};
use crate::open::DEFAULT_MAX_ENTRY_SIZE;
use crate::scan::{scan, Found};
use crate::slice::Slice;
use crate::{Error, Result};
use mailqueue_message::Version;
use mailqueue_pickle::write::python_float_repr;
use mailqueue_pickle::Value;
use sha1::{Digest, Sha1};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Name of Mailman's queue of preserved entries, a sibling of every queue.
pub const BAD_QUEUE: &str = "bad";

/// Mode Mailman gives the queue directories it creates.
const DIR_MODE: u32 = 0o770;

/// One queue directory (`<qfiles>/<name>`), with `bad/` beside it.
#[derive(Debug, Clone)]
pub struct Switchboard {
    name: String,
    dir: PathBuf,
    bad_dir: PathBuf,
    /// Entries larger than this are not read (see [`crate::open`]).
    max_entry_size: u64,
}

/// A new entry for [`Switchboard::enqueue`].
#[derive(Debug, Clone, Copy)]
pub struct NewEntry<'a> {
    /// The message pickle, stored byte for byte.
    pub message_pickle: &'a [u8],
    /// The metadata dict, before Mailman's enqueue rules are applied.
    pub metadata: &'a Value,
    pub version: Version,
    /// The message pickle holds text (`_parsemsg`), not a message object.
    pub text: bool,
}

/// What [`Switchboard::recover`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Back to `.pck`, with `_bak_count` incremented.
    pub requeued: Vec<EntryName>,
    /// Moved to `bad/` (as `.psv`), with the reason.
    pub preserved: Vec<(EntryName, String)>,
    /// Back to `.pck` without `_bak_count` incremented: the entry could not be read or
    /// its count not written (an I/O error, a full disk), with the reason.
    pub requeued_uncounted: Vec<(EntryName, String)>,
    /// Left alone: a live runner holds the entry's lock.
    pub in_flight: Vec<EntryName>,
    /// Left alone: the name holds a link, fifo, device or directory.
    pub not_files: Vec<(EntryName, String)>,
}

impl Switchboard {
    /// Opens queue `name` under `qfiles`. Refuses a missing directory, and a `bad/`
    /// on another filesystem (preserving an entry must be a rename).
    pub fn open(qfiles: &Path, name: &str) -> Result<Switchboard> {
        let dir = qfiles.join(name);
        let meta = fs::metadata(&dir).map_err(Error::io("opening queue", &dir))?;
        if !meta.is_dir() {
            return Err(Error::NotAQueue { path: dir, reason: "not a directory" });
        }
        let bad_dir = qfiles.join(BAD_QUEUE);
        if let Ok(bad) = fs::metadata(&bad_dir) {
            if bad.dev() != meta.dev() {
                return Err(Error::CrossDevice { from: dir, to: bad_dir });
            }
        }
        Ok(Switchboard { name: name.to_owned(), dir, bad_dir, max_entry_size: DEFAULT_MAX_ENTRY_SIZE })
    }

    /// Sets the largest entry this switchboard reads; a larger one is bad input.
    pub fn with_max_entry_size(mut self, limit: u64) -> Switchboard {
        self.max_entry_size = limit;
        self
    }

    pub fn max_entry_size(&self) -> u64 {
        self.max_entry_size
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_of(&self, name: &EntryName) -> PathBuf {
        self.dir.join(name.to_string())
    }

    /// The queued (`.pck`) entries of `slice`, first in first out.
    pub fn files(&self, slice: Slice) -> Result<Vec<EntryName>> {
        self.list(Ext::Pck, slice)
    }

    /// The claimed (`.bak`) entries of `slice`, first in first out.
    pub fn backups(&self, slice: Slice) -> Result<Vec<EntryName>> {
        self.list(Ext::Bak, slice)
    }

    fn list(&self, ext: Ext, slice: Slice) -> Result<Vec<EntryName>> {
        let mut names = Vec::new();
        scan(&self.dir, |found| {
            if let Found::Entry(name) = found {
                if name.ext() == ext && slice.contains(&name) {
                    names.push(name);
                }
            }
        })?;
        Ok(fifo_order(names))
    }

    /// Claims a queued entry: renames `.pck` to `.bak`. `Ok(None)` when the `.pck` is
    /// gone: another runner claimed it first, which is not an error.
    pub fn claim(&self, pck: &EntryName) -> Result<Option<EntryName>> {
        let bak = pck.with_ext(Ext::Bak);
        match fs::rename(self.path_of(pck), self.path_of(&bak)) {
            Ok(()) => Ok(Some(bak)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::from_rename(self.path_of(pck), self.path_of(&bak), e)),
        }
    }

    /// Undoes a claim: renames the `.bak` back to `.pck`, untouched, for an entry that
    /// was not worked on (not due yet, or its list settings unavailable).
    pub fn put_back(&self, bak: &EntryName) -> Result<EntryName> {
        let pck = bak.with_ext(Ext::Pck);
        let (from, to) = (self.path_of(bak), self.path_of(&pck));
        fs::rename(&from, &to).map_err(|e| Error::from_rename(from, to, e))?;
        Ok(pck)
    }

    /// Reads and parses an entry of this queue (a regular file within the size limit,
    /// never followed if a link).
    pub fn read(&self, name: &EntryName) -> Result<QueueEntry> {
        QueueEntry::read_limited(&self.path_of(name), self.max_entry_size)
    }

    /// Done with a claimed entry: unlinks the `.bak`.
    pub fn finish(&self, bak: &EntryName) -> Result<()> {
        let path = self.path_of(bak);
        fs::remove_file(&path).map_err(Error::io("removing", path))
    }

    /// Sets an entry aside in `bad/<base>.psv` (created if needed) and logs why.
    pub fn preserve(&self, name: &EntryName, reason: &str) -> Result<PathBuf> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&self.bad_dir)
            .map_err(Error::io("creating", &self.bad_dir))?;
        let from = self.path_of(name);
        let to = self.bad_dir.join(name.with_ext(Ext::Psv).to_string());
        fs::rename(&from, &to).map_err(|e| Error::from_rename(from.clone(), to.clone(), e))?;
        tracing::warn!(queue = %self.name, entry = %name, to = %to.display(), reason, "entry preserved in bad/");
        Ok(to)
    }

    /// Moves a claimed entry to `target` (retry, shunt, ...) with new metadata: writes
    /// a new entry there (same message pickle bytes, a new name as Mailman's enqueue
    /// gives it), then unlinks the `.bak`.
    ///
    /// Crash window: after the new entry is renamed into place and before the `.bak`
    /// is unlinked, the entry exists in both queues; recovery then requeues the `.bak`
    /// and the message can be delivered twice. It is never lost.
    pub fn move_to(
        &self,
        bak: &EntryName,
        current: &QueueEntry,
        metadata: &Value,
        target: &Switchboard,
    ) -> Result<EntryName> {
        self.move_to_with_pickle(bak, current.message_pickle(), current, metadata, target)
    }

    /// [`Switchboard::move_to`] with the message pickle given (read again from the
    /// file when the entry's bytes were released).
    pub fn move_to_with_pickle(
        &self,
        bak: &EntryName,
        message_pickle: &[u8],
        current: &QueueEntry,
        metadata: &Value,
        target: &Switchboard,
    ) -> Result<EntryName> {
        let target_dev = fs::metadata(&target.dir).map_err(Error::io("opening queue", &target.dir))?.dev();
        let own_dev = fs::metadata(&self.dir).map_err(Error::io("opening queue", &self.dir))?.dev();
        if target_dev != own_dev {
            return Err(Error::CrossDevice { from: self.dir.clone(), to: target.dir.clone() });
        }
        let new = target.enqueue(NewEntry {
            message_pickle,
            metadata,
            version: current.version(),
            text: current.is_text(),
        })?;
        self.finish(bak)?;
        Ok(new)
    }

    /// Adds an entry as Mailman's `Switchboard.enqueue` does: keys starting with `_`
    /// dropped, `version` 3 and `_parsemsg` set, 2.1's `received_time` defaulted to
    /// now; named `<time>+<sha1(message pickle + list key + repr(now))>.pck`; written
    /// to `.pck.tmp`, fsynced, renamed into place.
    pub fn enqueue(&self, new: NewEntry<'_>) -> Result<EntryName> {
        let now = now_seconds();
        let now_text = python_float_repr(now);
        let key_field = entry::list_key_field(new.version);
        let list_key = new.metadata.get(key_field).and_then(Value::as_text).unwrap_or_else(|| "--nolist--".to_owned());
        let mut hasher = Sha1::new();
        hasher.update(new.message_pickle);
        hasher.update(list_key.as_bytes());
        hasher.update(now_text.as_bytes());
        let digest = hex::encode(hasher.finalize());

        let mut metadata = new.metadata.clone();
        let time_text = match new.version {
            // 2.1 names the file after the time the post first entered Mailman.
            Version::Mailman2 => match metadata.get("received_time") {
                Some(Value::Float(t)) => python_float_repr(*t),
                _ => {
                    metadata = entry::with_field(&metadata, new.version, "received_time", Value::Float(now));
                    now_text.clone()
                }
            },
            Version::Mailman3 => now_text.clone(),
        };
        metadata = entry::with_field(&metadata, new.version, "version", Value::Int(3));
        if let Value::Dict(items) = &mut metadata {
            items.retain(|(k, _)| !k.as_text().is_some_and(|k| k.starts_with('_')));
        }
        metadata = entry::with_field(&metadata, new.version, "_parsemsg", Value::Bool(new.text));
        // Mailman 3 itself writes protocol 5 here; protocol 1 (what its recovery
        // writes) reads back the same in every Mailman 3.
        let protocol = if new.text { 0 } else { 1 };
        let metadata_pickle = entry::metadata_pickle(&metadata, new.version, protocol)
            .map_err(|error| Error::Entry { path: self.dir.clone(), error })?;

        let name = EntryName::new(&time_text, &digest, Ext::Pck)?;
        let mut bytes = new.message_pickle.to_vec();
        bytes.extend(metadata_pickle);
        self.write_atomically(&name, &bytes)?;
        Ok(name)
    }

    /// Recovers the `.bak` entries of `slice` left by a crashed runner, as Mailman does
    /// at start: `_bak_count` incremented and written back (message pickle kept), then
    /// back to `.pck`; to `bad/` once the count reaches 3, or when undecodable. Only the
    /// slice's owner may call this. Each `.bak` is locked first: one whose lock a live
    /// runner holds is left alone (see [`crate::inflight`]). An I/O error (the entry
    /// cannot be opened or read, or the count cannot be written: a full disk) is not the
    /// entry's fault: it goes back to `.pck` by rename alone, which needs no space, and
    /// its count waits for the next recovery.
    pub fn recover(&self, slice: Slice) -> Result<Recovery> {
        let mut done = Recovery::default();
        for bak in self.backups(slice)? {
            let path = self.path_of(&bak);
            let _lock = match inflight::probe(&path) {
                Ok(Probe::Free(lock)) => lock,
                Ok(Probe::Gone) => continue,
                Ok(Probe::InFlight) => {
                    tracing::warn!(queue = %self.name, entry = %bak, "a live runner holds this .bak: left alone");
                    done.in_flight.push(bak);
                    continue;
                }
                Err(e @ Error::NotAFile { .. }) => {
                    tracing::warn!(queue = %self.name, entry = %bak, error = %e, "not recovered");
                    done.not_files.push((bak, e.to_string()));
                    continue;
                }
                Err(e) => {
                    self.requeue_uncounted(&bak, &e, &mut done)?;
                    continue;
                }
            };
            let entry = match self.read(&bak) {
                Ok(entry) => entry,
                Err(e) if e.is_bad_entry() => {
                    let reason = format!("unreadable at recovery: {e}");
                    self.preserve(&bak, &reason)?;
                    done.preserved.push((bak, reason));
                    continue;
                }
                Err(e @ Error::NotAFile { .. }) => {
                    done.not_files.push((bak, e.to_string()));
                    continue;
                }
                Err(e) => {
                    self.requeue_uncounted(&bak, &e, &mut done)?;
                    continue;
                }
            };
            let count = entry.bak_count() + 1;
            let bytes = match entry.rewritten(&entry.metadata_with_bak_count_incremented()) {
                Ok(bytes) => bytes,
                Err(error) => {
                    let reason = format!("unreadable at recovery: {}", Error::Entry { path: path.clone(), error });
                    self.preserve(&bak, &reason)?;
                    done.preserved.push((bak, reason));
                    continue;
                }
            };
            if let Err(e) = self.write_atomically(&bak, &bytes) {
                if count >= MAX_BAK_COUNT {
                    // Set aside anyway: a rename needs no space.
                    let reason =
                        format!("recovered {count} times (_bak_count reached {MAX_BAK_COUNT}; not written: {e})");
                    self.preserve(&bak, &reason)?;
                    done.preserved.push((bak, reason));
                } else {
                    self.requeue_uncounted(&bak, &e, &mut done)?;
                }
                continue;
            }
            if count < MAX_BAK_COUNT {
                let pck = bak.with_ext(Ext::Pck);
                let (from, to) = (self.path_of(&bak), self.path_of(&pck));
                fs::rename(&from, &to).map_err(|e| Error::from_rename(from, to, e))?;
                tracing::info!(queue = %self.name, entry = %pck, bak_count = count, "recovered .bak entry");
                done.requeued.push(pck);
                continue;
            }
            let reason = format!("recovered {count} times (_bak_count reached {MAX_BAK_COUNT})");
            self.preserve(&bak, &reason)?;
            done.preserved.push((bak, reason));
        }
        Ok(done)
    }

    /// `.bak` back to `.pck` by rename only, for an entry recovery could not read or
    /// count (not the entry's fault).
    fn requeue_uncounted(&self, bak: &EntryName, error: &Error, done: &mut Recovery) -> Result<()> {
        let pck = self.put_back(bak)?;
        tracing::warn!(queue = %self.name, entry = %pck, error = %error, "recovered .bak entry without counting the recovery (I/O error)");
        done.requeued_uncounted.push((pck, error.to_string()));
        Ok(())
    }

    /// Writes `<name>.tmp` (ignored by every listing, Mailman's included), fsyncs it,
    /// and renames it over `name`.
    fn write_atomically(&self, name: &EntryName, bytes: &[u8]) -> Result<()> {
        let path = self.path_of(name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let write = || -> io::Result<()> {
            let mut file: File = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(Error::Io { op: "writing", path: tmp, error: e });
        }
        fs::rename(&tmp, &path).map_err(|e| Error::from_rename(tmp, path, e))
    }
}

fn now_seconds() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}
