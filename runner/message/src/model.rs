//! The message as Mailman pickled it: Python's `email.message.Message` tree, with each
//! string kept as the owning Python version held it. Reading it from the unpickled value is
//! `unpickle.rs`'s job, so that this model depends on neither Python emulation.

use mailqueue_pickle::value::PyStr;

/// A string as the owning Python version held it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Text {
    /// Python 2 `str` (octets).
    Bytes(Vec<u8>),
    /// Python 2 `unicode`, Python 3 `str` (may hold lone surrogates).
    Str(PyStr),
}

impl Text {
    /// The text as Rust text: bytes read as latin-1, lone surrogates replaced.
    pub fn to_string_lossy(&self) -> String {
        match self {
            Text::Bytes(b) => b.iter().map(|&c| c as char).collect(),
            Text::Str(s) => s.to_string_lossy(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Text::Bytes(b) => b.is_empty(),
            Text::Str(s) => s.is_empty(),
        }
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text::Str(PyStr::from(s))
    }
}

/// `email.charset.Charset`: how text in one character set is put into a header or body.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Charset {
    pub input_charset: String,
    pub output_charset: Option<String>,
    /// 1 quoted-printable, 2 base64, 3 whichever is shorter; `None` leaves text as is.
    pub header_encoding: Option<u8>,
    pub body_encoding: Option<u8>,
    pub input_codec: Option<String>,
    pub output_codec: Option<String>,
}

/// Python 2.7 and 3 give these two charsets the same settings (`email.charset.CHARSETS`
/// and `CODEC_MAP` agree on them), so both versions' header encoders share them.
impl Charset {
    /// `Charset('us-ascii')`: text stays as is.
    pub fn us_ascii() -> Charset {
        Charset {
            input_charset: "us-ascii".into(),
            output_charset: Some("us-ascii".into()),
            header_encoding: None,
            body_encoding: None,
            input_codec: None,
            output_codec: None,
        }
    }

    /// `Charset('utf-8')`: the shorter of base64 and quoted-printable in headers,
    /// base64 in bodies.
    pub fn utf8() -> Charset {
        Charset {
            input_charset: "utf-8".into(),
            output_charset: Some("utf-8".into()),
            header_encoding: Some(3),
            body_encoding: Some(2),
            input_codec: Some("utf-8".into()),
            output_codec: Some("utf-8".into()),
        }
    }
}

/// `email.header.Header`: a header value kept as chunks of text in a character set,
/// encoded (RFC 2047) and folded only when the message is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderObj {
    pub chunks: Vec<(Text, Charset)>,
    /// `_maxlinelen` (Python 2 stores it less the continuation whitespace width).
    pub maxlinelen: Option<i64>,
    /// `_headerlen` (Python 3): width of the field name plus `": "`.
    pub headerlen: Option<i64>,
    /// `_firstlinelen` (Python 2): room left on the first line.
    pub firstlinelen: Option<i64>,
    pub header_name: Option<Text>,
    pub continuation_ws: Text,
    /// `_charset`: the default character set of appended chunks.
    pub charset: Option<Charset>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderValue {
    Text(Text),
    /// Boxed: rare, and much larger than a plain value.
    Header(Box<HeaderObj>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    None,
    Text(Text),
    Parts(Vec<Message>),
    /// A `_payload` that is some other object (kept so Python 2 can write it as
    /// its generator would).
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Class path, e.g. `mailman.email.message.Message`, `Mailman.Message.Message`.
    pub class: String,
    pub headers: Vec<(Text, HeaderValue)>,
    pub payload: Payload,
    pub preamble: Option<Text>,
    pub epilogue: Option<Text>,
    pub unixfrom: Option<Text>,
    pub default_type: Text,
    pub charset: Option<Charset>,
    /// Class path of the policy object (Python 3 only).
    pub policy: Option<String>,
    /// `UserNotification`'s `recips` (2.1) or `recipients` (3) attribute.
    pub recipients: Option<Vec<Text>>,
}

impl Message {
    /// An empty message of the plain email class, as the parsers start one.
    pub fn new(class: &str, default_type: &str) -> Self {
        Message {
            class: class.to_owned(),
            headers: Vec::new(),
            payload: Payload::None,
            preamble: None,
            epilogue: None,
            unixfrom: None,
            default_type: Text::from(default_type),
            charset: None,
            policy: None,
            recipients: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Mailman2,
    Mailman3,
}

/// Which part of a message a problem is in: `message` or e.g. `message part 2.1`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PartPath(pub Vec<usize>);

impl PartPath {
    pub(crate) fn child(&self, index: usize) -> PartPath {
        let mut p = self.0.clone();
        p.push(index + 1);
        PartPath(p)
    }
}

impl std::fmt::Display for PartPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return write!(f, "message");
        }
        let nums: Vec<String> = self.0.iter().map(|n| n.to_string()).collect();
        write!(f, "message part {}", nums.join("."))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{part}: {problem}")]
    Unrepresentable { part: PartPath, problem: String },
}
