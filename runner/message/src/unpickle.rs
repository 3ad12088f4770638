//! Reading a [`Message`] from the unpickled entry. Apart from the model so that the model
//! depends on neither Python emulation, while this reader calls the owning version's parser
//! for the entries Mailman pickled as text.

use mailqueue_pickle::value::{Object, Value};

use crate::model::{Charset, Error, HeaderObj, HeaderValue, Message, PartPath, Payload, Text, Version};

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
        (other, _) => {
            Err(bad(&PartPath::default(), format!("the pickled message is a {}, not an email message", other.kind())))
        }
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
        Some(Value::List(items)) => items.iter().map(|h| header_from_value(h, part)).collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
        Some(other) => return Err(bad(part, format!("_headers is a {}, not a list", other.kind()))),
    };
    let payload = match o.attr("_payload") {
        None | Some(Value::None) => Payload::None,
        Some(Value::List(parts)) => Payload::Parts(
            parts
                .iter()
                .enumerate()
                .map(|(i, p)| match p {
                    Value::Object(po) => message_from_object(po, &part.child(i)),
                    other => {
                        Err(bad(&part.child(i), format!("a sub-part is a {}, not an email message", other.kind())))
                    }
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
        other => return Err(bad(part, format!("a header is a {}, not a (name, value) pair", other.kind()))),
    };
    let name = text(name).ok_or_else(|| bad(part, format!("a header name is a {}", name.kind())))?;
    let value = match value {
        Value::Object(o) if o.name == "Header" => HeaderValue::Header(Box::new(header_obj(o, part, &name)?)),
        v => HeaderValue::Text(
            text(v).ok_or_else(|| bad(part, format!("header {} has a {} value", name.to_string_lossy(), v.kind())))?,
        ),
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
                        other => {
                            return Err(bad(part, format!("header {field}: a chunk's charset is a {}", other.kind())))
                        }
                    };
                    Ok((s, cs))
                }
                other => Err(bad(part, format!("header {field}: a chunk is a {}", other.kind()))),
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
        input_charset: name("input_charset").ok_or_else(|| bad(part, "a Charset object has no input_charset"))?,
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
