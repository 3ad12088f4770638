//! Mailman 2.1's generator: Python 2.7's `email.generator.Generator` writing the
//! top-level headers folded at 78 columns and, through its `clone()`, every sub-part
//! and attached message with `maxheaderlen=0` (headers as they are), never mangling
//! `From ` lines (Mailman calls `as_string(mangle_from_=False)`).

use super::header::Header;
use super::params::{boundary, content_type, split_type};
use super::{ascii_bytes, child, problem, MAX_NESTING};
use crate::model::{Error, HeaderValue, Message, PartPath, Payload, Text};

/// `msg.as_string(mangle_from_=False)` with `Mailman.Generator.Generator`.
pub(super) fn as_string(msg: &Message) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    Generator { maxheaderlen: 78 }.write(msg, &PartPath::default(), 0, &mut out)?;
    Ok(out)
}

struct Generator {
    /// 78 at the top; 0 (no folding) in every clone.
    maxheaderlen: i64,
}

/// The generator `clone()` makes for sub-parts: Mailman passes its
/// `children_maxheaderlen` (0) as the clone's own and its children's width.
const CHILD: Generator = Generator { maxheaderlen: 0 };

impl Generator {
    /// `_write`: the body first (into a buffer), then the headers, then the body.
    fn write(&self, msg: &Message, part: &PartPath, depth: usize, out: &mut Vec<u8>) -> Result<(), Error> {
        if depth > MAX_NESTING {
            return Err(problem(part, format!("MIME parts are nested more than {MAX_NESTING} deep")));
        }
        let mut body = Vec::new();
        super::with_stack(|| self.dispatch(msg, part, depth, &mut body))?;
        self.write_headers(msg, part, depth, out)?;
        out.extend_from_slice(&body);
        Ok(())
    }

    /// `_dispatch`: `_handle_<maintype>_<subtype>`, else `_handle_<maintype>`, else the
    /// text handler, with `-` read as `_` in the names.
    fn dispatch(&self, msg: &Message, part: &PartPath, depth: usize, out: &mut Vec<u8>) -> Result<(), Error> {
        let ctype = content_type(msg, part)?;
        let (main, sub) = split_type(&ctype);
        let name =
            |parts: &[&[u8]]| parts.concat().iter().map(|&c| if c == b'-' { b'_' } else { c }).collect::<Vec<u8>>();
        let specific = name(&[main, b"_", sub]);
        match specific.as_slice() {
            b"multipart_signed" => return self.handle_multipart(msg, part, depth, out),
            b"message_delivery_status" => return handle_delivery_status(msg, part, depth, out),
            _ => {}
        }
        match name(&[main]).as_slice() {
            b"multipart" => self.handle_multipart(msg, part, depth, out),
            b"message" => handle_message(msg, part, depth, out),
            _ => handle_text(msg, part, out),
        }
    }

    /// `_write_headers`: `print >> fp, '%s:' % h,` then the value and a newline.
    fn write_headers(&self, msg: &Message, part: &PartPath, depth: usize, out: &mut Vec<u8>) -> Result<(), Error> {
        for (name, value) in &msg.headers {
            let name = ascii_bytes(name, part, "a header name")?;
            out.extend_from_slice(&name);
            out.extend_from_slice(b": ");
            let written = match value {
                HeaderValue::Header(h) => Header::from_obj(h, part)?.encode(part, depth)?,
                HeaderValue::Text(v) if self.maxheaderlen == 0 => {
                    ascii_bytes(v, part, &format!("header {}", String::from_utf8_lossy(&name)))?.into_owned()
                }
                // Raw 8-bit octets in a byte string are written unsplit.
                HeaderValue::Text(Text::Bytes(v)) if !v.is_ascii() => v.clone(),
                HeaderValue::Text(v) => Header::for_value(v, name.len(), self.maxheaderlen).encode(part, depth)?,
            };
            out.extend_from_slice(&written);
            out.push(b'\n');
        }
        out.push(b'\n');
        Ok(())
    }

    /// `_handle_multipart` (and `_handle_multipart_signed`, which differs only in the
    /// width its clones get, already 0 here).
    fn handle_multipart(&self, msg: &Message, part: &PartPath, depth: usize, out: &mut Vec<u8>) -> Result<(), Error> {
        let subparts: &[Message] = match &msg.payload {
            Payload::None => &[],
            // A multipart whose parts could not be parsed keeps its body as a string.
            Payload::Text(t) => {
                out.extend_from_slice(&ascii_bytes(t, part, "the multipart body")?);
                return Ok(());
            }
            Payload::Parts(p) => p,
            Payload::Other => {
                return Err(problem(part, "the multipart payload is neither a list of parts nor a string"))
            }
        };
        let mut texts = Vec::with_capacity(subparts.len());
        for (i, sub) in subparts.iter().enumerate() {
            let mut s = Vec::new();
            CHILD.write(sub, &child(part, i), depth + 1, &mut s)?;
            texts.push(s);
        }
        let boundary = match boundary(msg, part)? {
            Some(b) if !b.chars.is_empty() => b.to_bytes(part)?,
            _ => {
                return Err(problem(
                    part,
                    "the multipart has no boundary parameter; Python 2 would invent a random one",
                ))
            }
        };
        if let Some(preamble) = &msg.preamble {
            out.extend_from_slice(&ascii_bytes(preamble, part, "the preamble")?);
            out.push(b'\n');
        }
        out.extend_from_slice(b"--");
        out.extend_from_slice(&boundary);
        out.push(b'\n');
        for (i, text) in texts.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\n--");
                out.extend_from_slice(&boundary);
                out.push(b'\n');
            }
            out.extend_from_slice(text);
        }
        out.extend_from_slice(b"\n--");
        out.extend_from_slice(&boundary);
        out.extend_from_slice(b"--\n");
        if let Some(epilogue) = &msg.epilogue {
            out.extend_from_slice(&ascii_bytes(epilogue, part, "the epilogue")?);
        }
        Ok(())
    }
}

/// `_handle_text` (also the default body writer), without From-mangling.
fn handle_text(msg: &Message, part: &PartPath, out: &mut Vec<u8>) -> Result<(), Error> {
    match &msg.payload {
        Payload::None => Ok(()),
        Payload::Text(t) => {
            out.extend_from_slice(&ascii_bytes(t, part, "the body")?);
            Ok(())
        }
        Payload::Parts(_) | Payload::Other => {
            Err(problem(part, "a non-multipart part has a list payload (Python 2's generator expects a string)"))
        }
    }
}

/// `_handle_message_delivery_status`: each block without its last newline, blocks
/// joined by one newline.
fn handle_delivery_status(msg: &Message, part: &PartPath, depth: usize, out: &mut Vec<u8>) -> Result<(), Error> {
    let blocks: &[Message] = match &msg.payload {
        Payload::Parts(p) => p,
        Payload::Text(t) if t.is_empty() => &[],
        _ => return Err(problem(part, "a message/delivery-status part does not hold header blocks")),
    };
    for (i, block) in blocks.iter().enumerate() {
        let mut s = Vec::new();
        CHILD.write(block, &child(part, i), depth + 1, &mut s)?;
        if s.ends_with(b"\n") {
            s.pop();
        }
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(&s);
    }
    Ok(())
}

/// `_handle_message`: the attached message (the first list item), or a string body.
fn handle_message(msg: &Message, part: &PartPath, depth: usize, out: &mut Vec<u8>) -> Result<(), Error> {
    match &msg.payload {
        Payload::Parts(p) => {
            let inner = p.first().ok_or_else(|| problem(part, "a message/* part has an empty list of messages"))?;
            CHILD.write(inner, &child(part, 0), depth + 1, out)
        }
        Payload::Text(t) => {
            out.extend_from_slice(&ascii_bytes(t, part, "the body")?);
            Ok(())
        }
        Payload::None | Payload::Other => Err(problem(part, "a message/* part has no message in it")),
    }
}
