//! The message as Mailman pickled it: Python's `email.message.Message` tree, with each
//! string kept as the owning Python version held it, read from the unpickled value.

use mailqueue_pickle::value::{Object, PyStr, Value};

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
    fn child(&self, index: usize) -> PartPath {
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

fn bad(part: &PartPath, problem: impl Into<String>) -> Error {
    Error::Unrepresentable { part: part.clone(), problem: problem.into() }
}

/// Converts the unpickled message into a [`Message`]. A text string (the `_parsemsg`
/// entries) is parsed as the owning Mailman version parses it.
pub fn message_from_value(v: &Value, version: Version) -> Result<Message, Error> {
    match (v, version) {
        (Value::Object(o), _) => message_from_object(o, &PartPath::default()),
        (Value::Str(s), Version::Mailman3) => crate::py3::parser::parse(s),
        (Value::Bytes(b), Version::Mailman2) => crate::py2::parser::parse(b),
        (other, _) => Err(bad(
            &PartPath::default(),
            format!("the pickled message is a {}, not an email message", kind(other)),
        )),
    }
}

fn message_from_object(o: &Object, part: &PartPath) -> Result<Message, Error> {
    let class = o.class_path();
    // Any class may hold a message (MIMEText, MIMEMultipart, Mailman's own subclasses):
    // what makes one is the email package's instance state.
    if o.attr("_headers").is_none() {
        return Err(bad(part, format!("expected an email message, found a {class} object")));
    }
    let headers = match o.attr("_headers") {
        Some(Value::List(items)) => items
            .iter()
            .map(|h| header_from_value(h, part))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
        Some(other) => return Err(bad(part, format!("_headers is a {}, not a list", kind(other)))),
    };
    let payload = match o.attr("_payload") {
        None | Some(Value::None) => Payload::None,
        Some(Value::List(parts)) => Payload::Parts(
            parts
                .iter()
                .enumerate()
                .map(|(i, p)| match p {
                    Value::Object(po) => message_from_object(po, &part.child(i)),
                    other => Err(bad(
                        &part.child(i),
                        format!("a sub-part is a {}, not an email message", kind(other)),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(v) => match text(v) {
            Some(t) => Payload::Text(t),
            None => Payload::Other,
        },
    };
    let recipients = match o.attr("recipients").or_else(|| o.attr("recips")) {
        Some(Value::List(v) | Value::Set(v) | Value::Tuple(v) | Value::FrozenSet(v)) => {
            Some(v.iter().filter_map(text).collect())
        }
        _ => None,
    };
    Ok(Message {
        class,
        headers,
        payload,
        preamble: o.attr("preamble").and_then(text),
        epilogue: o.attr("epilogue").and_then(text),
        unixfrom: o.attr("_unixfrom").and_then(text),
        default_type: o.attr("_default_type").and_then(text).unwrap_or_else(|| Text::from("text/plain")),
        charset: match o.attr("_charset") {
            Some(Value::Object(c)) => Some(charset_from_object(c, part)?),
            _ => None,
        },
        policy: match o.attr("policy") {
            Some(Value::Object(p)) => Some(p.class_path()),
            _ => None,
        },
        recipients,
    })
}

fn header_from_value(h: &Value, part: &PartPath) -> Result<(Text, HeaderValue), Error> {
    let (name, value) = match h {
        Value::Tuple(t) | Value::List(t) if t.len() == 2 => (&t[0], &t[1]),
        other => return Err(bad(part, format!("a header is a {}, not a (name, value) pair", kind(other)))),
    };
    let name = text(name).ok_or_else(|| bad(part, format!("a header name is a {}", kind(name))))?;
    let value = match value {
        Value::Object(o) if o.name == "Header" => HeaderValue::Header(Box::new(header_obj(o, part, &name)?)),
        v => HeaderValue::Text(text(v).ok_or_else(|| {
            bad(part, format!("header {} has a {} value", name.to_string_lossy(), kind(v)))
        })?),
    };
    Ok((name, value))
}

fn header_obj(o: &Object, part: &PartPath, name: &Text) -> Result<HeaderObj, Error> {
    let field = name.to_string_lossy();
    let chunks = match o.attr("_chunks") {
        Some(Value::List(items)) => items
            .iter()
            .map(|c| match c {
                Value::Tuple(t) | Value::List(t) if t.len() == 2 => {
                    let s = text(&t[0]).ok_or_else(|| bad(part, format!("header {field}: a chunk is not text")))?;
                    let cs = match &t[1] {
                        Value::Object(c) => charset_from_object(c, part)?,
                        other => return Err(bad(part, format!("header {field}: a chunk's charset is a {}", kind(other)))),
                    };
                    Ok((s, cs))
                }
                other => Err(bad(part, format!("header {field}: a chunk is a {}", kind(other)))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(bad(part, format!("header {field} is a Header object without chunks"))),
    };
    Ok(HeaderObj {
        chunks,
        maxlinelen: int(o.attr("_maxlinelen")),
        headerlen: int(o.attr("_headerlen")),
        firstlinelen: int(o.attr("_firstlinelen")),
        header_name: o.attr("_header_name").and_then(text),
        continuation_ws: o.attr("_continuation_ws").and_then(text).unwrap_or_else(|| Text::from(" ")),
        charset: match o.attr("_charset") {
            Some(Value::Object(c)) => Some(charset_from_object(c, part)?),
            _ => None,
        },
    })
}

fn charset_from_object(c: &Object, part: &PartPath) -> Result<Charset, Error> {
    let name = |k: &str| c.attr(k).and_then(text).map(|t| t.to_string_lossy());
    let encoding = |k: &str| match c.attr(k) {
        Some(Value::Int(i)) => u8::try_from(*i).ok(),
        _ => None,
    };
    Ok(Charset {
        input_charset: name("input_charset")
            .ok_or_else(|| bad(part, "a Charset object has no input_charset"))?,
        output_charset: name("output_charset"),
        header_encoding: encoding("header_encoding"),
        body_encoding: encoding("body_encoding"),
        input_codec: name("input_codec"),
        output_codec: name("output_codec"),
    })
}

fn text(v: &Value) -> Option<Text> {
    match v {
        Value::Bytes(b) => Some(Text::Bytes(b.clone())),
        Value::Str(s) => Some(Text::Str(s.clone())),
        _ => None,
    }
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::BigInt(_) => "int",
        Value::Float(_) => "float",
        Value::Bytes(_) => "byte string",
        Value::Str(_) => "text string",
        Value::List(_) => "list",
        Value::Tuple(_) => "tuple",
        Value::Dict(_) => "dict",
        Value::Set(_) | Value::FrozenSet(_) => "set",
        Value::DateTime(_) => "datetime",
        Value::Global { .. } => "class reference",
        Value::Object(_) => "object",
    }
}
