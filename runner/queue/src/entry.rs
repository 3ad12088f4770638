//! One queue entry: the file's bytes, its two pickles, which Mailman wrote it, and the
//! metadata fields delivery needs. Rewriting keeps the message pickle byte for byte.

use mailqueue_message::Version;
use mailqueue_pickle::{Dialect, PyStr, Value};
use std::path::Path;

/// Why an entry's content cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    // Each cause is in the message, not `source()`: see `crate::Error`.
    #[error("{0}")]
    Pickle(mailqueue_pickle::Error),
    #[error("metadata is not a dict")]
    MetadataNotADict,
    #[error("metadata field {key:?} is {found}, expected {expected}")]
    FieldType { key: &'static str, found: &'static str, expected: &'static str },
    #[error("writing the metadata pickle: {0}")]
    Write(mailqueue_pickle::WriteError),
    #[error("message: {0}")]
    Message(mailqueue_message::Error),
    #[error(
        "no envelope sender: the metadata has no 'envsender' and Mailman 2.1 would use \
         the bounces address of list {list:?}, whose domain is only in the list's config"
    )]
    NoEnvelopeSender { list: String },
}

// Conversions that keep the cause out of `source()` (see above).
impl From<mailqueue_pickle::Error> for EntryError {
    fn from(e: mailqueue_pickle::Error) -> Self {
        EntryError::Pickle(e)
    }
}

impl From<mailqueue_pickle::WriteError> for EntryError {
    fn from(e: mailqueue_pickle::WriteError) -> Self {
        EntryError::Write(e)
    }
}

impl From<mailqueue_message::Error> for EntryError {
    fn from(e: mailqueue_message::Error) -> Self {
        EntryError::Message(e)
    }
}

/// Mailman's `_bak_count` limit: an entry recovered this many times goes to `bad/`.
pub const MAX_BAK_COUNT: i64 = 3;

/// The metadata key that counts recoveries.
const BAK_COUNT: &str = "_bak_count";

/// A queue entry read from its bytes.
#[derive(Debug, Clone)]
pub struct QueueEntry {
    bytes: Vec<u8>,
    parsed: mailqueue_pickle::Entry,
    version: Version,
    /// The file's bytes were dropped ([`QueueEntry::release_bytes`]).
    released: bool,
}

impl QueueEntry {
    pub fn from_bytes(bytes: Vec<u8>) -> Result<QueueEntry, EntryError> {
        let parsed = mailqueue_pickle::read_entry(&bytes).map_err(EntryError::Pickle)?;
        if !matches!(parsed.metadata, Value::Dict(_)) {
            return Err(EntryError::MetadataNotADict);
        }
        let version = match Dialect::of(&parsed) {
            Dialect::Mailman2 => Version::Mailman2,
            Dialect::Mailman3 => Version::Mailman3,
        };
        Ok(QueueEntry { bytes, parsed, version, released: false })
    }

    /// Reads and parses the file at `path` (a regular file, not followed if a link,
    /// within [`crate::open::DEFAULT_MAX_ENTRY_SIZE`]); errors name the file.
    pub fn read(path: &Path) -> crate::Result<QueueEntry> {
        QueueEntry::read_limited(path, crate::open::DEFAULT_MAX_ENTRY_SIZE)
    }

    /// [`QueueEntry::read`] with another size limit.
    pub fn read_limited(path: &Path, limit: u64) -> crate::Result<QueueEntry> {
        let bytes = crate::open::read_regular(path, limit)?.ok_or_else(|| crate::Error::Io {
            op: "reading",
            path: path.to_owned(),
            error: std::io::Error::from(std::io::ErrorKind::NotFound),
        })?;
        QueueEntry::parse(bytes, path)
    }

    /// Parses bytes read from `path`; errors name the file.
    pub fn parse(bytes: Vec<u8>, path: &Path) -> crate::Result<QueueEntry> {
        QueueEntry::from_bytes(bytes).map_err(|error| crate::Error::Entry { path: path.to_owned(), error })
    }

    /// Which Mailman wrote it, from the message pickle (the metadata pickle of a
    /// recovered Mailman 3 entry is protocol 1, like a 2.1 one).
    pub fn version(&self) -> Version {
        self.version
    }

    /// The whole file as read.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The message pickle's bytes, exactly as stored. Panics after
    /// [`QueueEntry::release_bytes`]: read them again from the file instead.
    pub fn message_pickle(&self) -> &[u8] {
        assert!(!self.released, "the entry's bytes were released; read its message pickle from the file");
        self.bytes.get(..self.parsed.message_len).unwrap_or(&self.bytes)
    }

    /// Length of the message pickle at the start of the file.
    pub fn message_len(&self) -> usize {
        self.parsed.message_len
    }

    /// Drops the file's bytes once the message is unpickled (a large entry is then
    /// held once fewer while it is flattened and sent). Whoever writes the entry
    /// elsewhere afterwards reads its message pickle from the file again.
    pub fn release_bytes(&mut self) {
        self.bytes = Vec::new();
        self.released = true;
    }

    /// The unpickled message: an object, or the text of a `_parsemsg` entry.
    pub fn message_value(&self) -> &Value {
        &self.parsed.message
    }

    pub fn metadata(&self) -> &Value {
        &self.parsed.metadata
    }

    pub fn message_protocol(&self) -> u8 {
        self.parsed.message_protocol
    }

    pub fn metadata_protocol(&self) -> u8 {
        self.parsed.metadata_protocol
    }

    /// `_parsemsg`: the message is stored as text, to be parsed on use.
    pub fn is_text(&self) -> bool {
        self.metadata().get("_parsemsg").is_some_and(Value::is_truthy)
    }

    /// The envelope recipients: 2.1 `recips`, Mailman 3 `recipients` (a list or a set).
    /// Missing means none.
    pub fn recipients(&self) -> Result<Vec<String>, EntryError> {
        let key = match self.version {
            Version::Mailman2 => "recips",
            Version::Mailman3 => "recipients",
        };
        let items = match self.metadata().get(key) {
            None | Some(Value::None) => return Ok(Vec::new()),
            Some(Value::List(v) | Value::Tuple(v) | Value::Set(v) | Value::FrozenSet(v)) => v,
            Some(other) => return Err(EntryError::FieldType { key, found: other.kind(), expected: "a list or set" }),
        };
        items
            .iter()
            .map(|v| v.as_text().ok_or(EntryError::FieldType { key, found: v.kind(), expected: "strings" }))
            .collect()
    }

    /// The list this entry belongs to: 2.1 `listname`, Mailman 3 `listid`.
    pub fn list_key(&self) -> Option<String> {
        self.metadata().get(list_key_field(self.version)).and_then(Value::as_text)
    }

    /// The `MAIL FROM` address: 2.1 `envsender`, Mailman 3 `sender`; otherwise the
    /// list's bounces address. Mailman 3 derives it from the list id
    /// (`<list>.<domain>` -> `<list>-bounces@<domain>`); 2.1 would need the list's
    /// host name, which only the list's config holds.
    pub fn envelope_sender(&self) -> Result<String, EntryError> {
        let explicit = match self.version {
            Version::Mailman2 => "envsender",
            Version::Mailman3 => "sender",
        };
        if let Some(sender) = self.metadata().get(explicit).and_then(Value::as_text) {
            return Ok(sender);
        }
        match (self.version, self.list_key()) {
            (Version::Mailman3, Some(list_id)) => match list_id.split_once('.') {
                Some((list, domain)) => Ok(format!("{list}-bounces@{domain}")),
                None => Err(EntryError::NoEnvelopeSender { list: list_id }),
            },
            (_, list) => Err(EntryError::NoEnvelopeSender { list: list.unwrap_or_default() }),
        }
    }

    /// How many times the entry was recovered from `.bak` (0 when never).
    pub fn bak_count(&self) -> i64 {
        match self.metadata().get(BAK_COUNT) {
            Some(Value::Int(n)) => *n,
            Some(Value::Bool(b)) => i64::from(*b),
            _ => 0,
        }
    }

    /// The message as Mailman would hold it after `dequeue` (text entries parsed).
    pub fn message(&self) -> Result<mailqueue_message::Message, EntryError> {
        mailqueue_message::message_from_value(self.message_value(), self.version).map_err(EntryError::Message)
    }

    /// The message model, built once, with the unpickled value it came from freed (a
    /// large entry is then held twice fewer): later calls of [`QueueEntry::message`]
    /// fail. The metadata and the stored bytes stay.
    ///
    /// The bodies are moved from the value into the model, not copied, so a large
    /// entry's body exists once (besides the file's bytes) while the model is built. On
    /// an error the value is left as it was.
    pub fn take_message(&mut self) -> Result<mailqueue_message::Message, EntryError> {
        let mut value = std::mem::replace(&mut self.parsed.message, Value::None);
        let mut bodies = Vec::new();
        take_bodies(&mut value, &mut bodies);
        match mailqueue_message::message_from_value(&value, self.version) {
            Ok(mut message) => {
                let mut bodies = bodies.into_iter();
                give_bodies(&mut message, &mut bodies);
                debug_assert!(bodies.next().is_none(), "a body taken was not given back");
                Ok(message)
            }
            Err(e) => {
                put_bodies_back(&mut value, &mut bodies.into_iter());
                self.parsed.message = value;
                Err(EntryError::Message(e))
            }
        }
    }

    /// The exact DATA bytes Mailman's delivery sends for this entry.
    pub fn delivery_bytes(&self) -> Result<Vec<u8>, EntryError> {
        let sender = self.envelope_sender()?;
        mailqueue_message::delivery_bytes(&self.message()?, self.version, &sender).map_err(EntryError::Message)
    }

    /// The metadata with `_bak_count` one higher, as recovery writes it.
    pub fn metadata_with_bak_count_incremented(&self) -> Value {
        let count = self.bak_count() + 1;
        with_field(self.metadata(), self.version, BAK_COUNT, Value::Int(count))
    }

    /// New file bytes: the message pickle unchanged, then `metadata` pickled as the
    /// owning Mailman writes it when it rewrites metadata in place (recovery):
    /// protocol 0 for text entries, else 1, in both versions.
    pub fn rewritten(&self, metadata: &Value) -> Result<Vec<u8>, EntryError> {
        mailqueue_pickle::rewrite_metadata(&self.bytes, self.parsed.message_len, metadata, dialect(self.version))
            .map_err(EntryError::Write)
    }
}

/// The `_payload` of a pickled message object, when it has one.
fn payload_mut(v: &mut Value) -> Option<&mut Value> {
    let Value::Object(o) = v else { return None };
    let dict = match &mut o.state {
        Some(Value::Dict(d)) => d,
        Some(Value::Tuple(t)) => match t.first_mut() {
            Some(Value::Dict(d)) => d,
            _ => return None,
        },
        _ => return None,
    };
    dict.iter_mut().find(|(k, _)| k.key_is("_payload")).map(|(_, v)| v)
}

/// Takes every text body (`_payload` that is a string) out of a message value, in the
/// order the model is built (a part, then its sub-parts in order), leaving an empty
/// string of the same type in its place.
fn take_bodies(v: &mut Value, out: &mut Vec<Value>) {
    match payload_mut(v) {
        Some(p @ Value::Str(_)) => out.push(std::mem::replace(p, Value::Str(PyStr::default()))),
        Some(p @ Value::Bytes(_)) => out.push(std::mem::replace(p, Value::Bytes(Vec::new()))),
        Some(Value::List(parts)) => parts.iter_mut().for_each(|part| take_bodies(part, out)),
        _ => {}
    }
}

/// Puts the bodies [`take_bodies`] took into the model built from the emptied value.
fn give_bodies(m: &mut mailqueue_message::Message, bodies: &mut impl Iterator<Item = Value>) {
    use mailqueue_message::{Payload, Text};
    match &mut m.payload {
        Payload::Text(t) => match bodies.next() {
            Some(Value::Str(s)) => *t = Text::Str(s),
            Some(Value::Bytes(b)) => *t = Text::Bytes(b),
            _ => {}
        },
        Payload::Parts(parts) => parts.iter_mut().for_each(|part| give_bodies(part, bodies)),
        _ => {}
    }
}

/// Undoes [`take_bodies`].
fn put_bodies_back(v: &mut Value, bodies: &mut impl Iterator<Item = Value>) {
    match payload_mut(v) {
        Some(p @ (Value::Str(_) | Value::Bytes(_))) => {
            if let Some(body) = bodies.next() {
                *p = body;
            }
        }
        Some(Value::List(parts)) => parts.iter_mut().for_each(|part| put_bodies_back(part, bodies)),
        _ => {}
    }
}

/// The metadata field that names the list, for a version.
pub fn list_key_field(version: Version) -> &'static str {
    match version {
        Version::Mailman2 => "listname",
        Version::Mailman3 => "listid",
    }
}

/// Pickles metadata (protocol 0 or 1) as the owning Python's pickler does.
pub fn metadata_pickle(metadata: &Value, version: Version, protocol: u8) -> Result<Vec<u8>, EntryError> {
    mailqueue_pickle::write(metadata, dialect(version), protocol).map_err(EntryError::Write)
}

fn dialect(version: Version) -> Dialect {
    match version {
        Version::Mailman2 => Dialect::Mailman2,
        Version::Mailman3 => Dialect::Mailman3,
    }
}

/// A copy of the dict `metadata` with `key` set, in place when present, else appended
/// as a Python dict would. The key is the version's `str`: bytes in 2.1, text in 3.
pub fn with_field(metadata: &Value, version: Version, key: &str, value: Value) -> Value {
    let mut items = match metadata {
        Value::Dict(d) => d.clone(),
        _ => Vec::new(),
    };
    match items.iter_mut().find(|(k, _)| k.key_is(key)) {
        Some((_, v)) => *v = value,
        None => items.push((version_str(version, key), value)),
    }
    Value::Dict(items)
}

/// `s` as the version's native string type.
pub fn version_str(version: Version, s: &str) -> Value {
    match version {
        Version::Mailman2 => Value::Bytes(s.as_bytes().to_vec()),
        Version::Mailman3 => Value::Str(PyStr::from(s)),
    }
}
