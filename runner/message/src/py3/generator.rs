//! Python 3.11's `email.generator.BytesGenerator` under the compat32 policy with
//! `linesep='\r\n'`, as `smtplib.SMTP.send_message` runs it (`mangle_from_` true).

use super::header::Header;
use super::params;
use crate::model::{Error, HeaderValue, Message, PartPath, Payload, Text};
use mailqueue_pickle::PyStr;

const NL: &[u8] = b"\r\n";
/// compat32's `max_line_length`.
pub const MAX_LINE_LENGTH: usize = 78;

fn bad(part: &PartPath, problem: impl Into<String>) -> Error {
    Error::Unrepresentable { part: part.clone(), problem: problem.into() }
}

/// `flatten(msg, unixfrom=False)`: headers folded at `maxlen` (0: unfolded), then body.
/// `skip_header` drops fields the caller removed from its shallow copy.
pub fn flatten(
    msg: &Message,
    part: &PartPath,
    maxlen: usize,
    skip_header: &dyn Fn(&Text) -> bool,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    // The body is rendered first: a multipart without a boundary gets one there, and
    // its Content-Type is rewritten before the headers are written.
    let mut body = Vec::new();
    let new_content_type =
        dispatch(msg, part, maxlen, &mut body)?.map(|v| HeaderValue::Text(Text::Str(PyStr::from(v))));
    let mut head = Vec::new();
    for (name, value) in msg.headers.iter().filter(|(n, _)| !skip_header(n)) {
        let value = match &new_content_type {
            Some(ct) if params::name_is(name, "content-type") => ct,
            _ => value,
        };
        fold_binary(name, value, maxlen, part, &mut head)?;
    }
    head.extend_from_slice(NL);
    if out.is_empty() {
        // The headers go in front of the body in place: a large body is not copied.
        body.splice(0..0, head);
        *out = body;
    } else {
        out.extend_from_slice(&head);
        out.extend_from_slice(&body);
    }
    Ok(())
}

/// compat32 `fold_binary`: `Name: value` refolded, or written as is when the value holds
/// 8-bit octets (surrogates), which compat32 never splits.
fn fold_binary(
    name: &Text,
    value: &HeaderValue,
    maxlen: usize,
    part: &PartPath,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let name_s = py3_str(name, part, "a header name")?;
    let field = name_s.to_string_lossy();
    let mut line = Vec::new();
    line.extend_from_slice(&encode_ascii(&name_s, part, &format!("header name {field}"))?);
    line.extend_from_slice(b": ");
    let header = match value {
        HeaderValue::Text(t) => {
            let v = py3_str(t, part, &format!("header {field}"))?;
            match v.as_str() {
                None => {
                    line.extend_from_slice(&encode_ascii(&v, part, &format!("header {field}"))?);
                    None
                }
                Some(s) => Some(Header::from_str(s, &field)),
            }
        }
        HeaderValue::Header(h) => Some(Header::from_obj(h)),
    };
    if let Some(h) = header {
        let encoded =
            h.and_then(|h| h.encode(maxlen, "\r\n")).map_err(|e| bad(part, format!("header {field}: {e}")))?;
        let bytes = super::header::raw_bytes(&encoded).map_err(|c| {
            bad(part, format!("header {field}: the character U+{:04X} cannot be written as bytes", c as u32))
        })?;
        line.extend_from_slice(&bytes);
    }
    line.extend_from_slice(NL);
    out.extend_from_slice(&line);
    Ok(())
}

/// `_dispatch`: the handler is chosen by the content type's name. Returns the new
/// `Content-Type` value when the part had to be given a boundary.
fn dispatch(msg: &Message, part: &PartPath, maxlen: usize, out: &mut Vec<u8>) -> Result<Option<String>, Error> {
    let ctype = params::content_type(msg);
    let (main, sub) =
        ctype.split_once('/').ok_or_else(|| bad(part, format!("default content type {ctype:?} has no subtype")))?;
    let specific = format!("{main}_{sub}").replace('-', "_");
    let generic = main.replace('-', "_");
    for name in [specific.as_str(), generic.as_str()] {
        match name {
            "text" => return handle_text(msg, part, out).map(|()| None),
            "multipart" => return handle_multipart(msg, part, maxlen, out),
            // Signed parts must stay byte-exact, so nothing below is refolded.
            "multipart_signed" => return handle_multipart(msg, part, 0, out),
            "message_delivery_status" => return handle_delivery_status(msg, part, maxlen, out).map(|()| None),
            "message" => return handle_message(msg, part, maxlen, out).map(|()| None),
            _ => {}
        }
    }
    handle_text(msg, part, out).map(|()| None)
}

/// `_handle_text` (also `_writeBody`): `From ` mangled, line endings made CRLF.
fn handle_text(msg: &Message, part: &PartPath, out: &mut Vec<u8>) -> Result<(), Error> {
    match &msg.payload {
        Payload::None => Ok(()),
        Payload::Text(t) => write_body_lines(py3_str_ref(t, part, "the body")?, part, "the body", out),
        Payload::Parts(_) => Err(bad(part, "a non-multipart part holds sub-parts (Python: string payload expected)")),
        Payload::Other => Err(bad(part, "the body is neither text nor a list of parts")),
    }
}

fn handle_multipart(msg: &Message, part: &PartPath, maxlen: usize, out: &mut Vec<u8>) -> Result<Option<String>, Error> {
    let subparts = match &msg.payload {
        Payload::None => &[][..],
        // A multipart that could not be parsed keeps its body as one string, written as is.
        Payload::Text(t) => {
            let s = py3_str(t, part, "the body")?;
            if s.has_surrogates() {
                // get_payload() decodes 8-bit octets with the charset (errors replaced),
                // and the generator then cannot write the non-ASCII result.
                return Err(bad(
                    part,
                    "an unparsed multipart body holds 8-bit octets, which Python's generator cannot write",
                ));
            }
            out.extend_from_slice(&encode_ascii(&s, part, "the body")?);
            return Ok(None);
        }
        Payload::Parts(p) => &p[..],
        Payload::Other => return Err(bad(part, "the multipart body is neither text nor a list of parts")),
    };
    let mut texts = Vec::with_capacity(subparts.len());
    for (i, p) in subparts.iter().enumerate() {
        let mut buf = Vec::new();
        flatten(p, &child(part, i), maxlen, &|_| false, &mut buf)?;
        texts.push(buf);
    }
    let (boundary, new_content_type) = match params::boundary(msg) {
        Some(b) if !b.is_empty() => (b, None),
        _ => {
            let b = invent_boundary(&texts);
            let ct = params::with_boundary(msg, &b)
                .ok_or_else(|| bad(part, "multipart has no Content-Type header to put a boundary in"))?;
            (b, Some(ct))
        }
    };
    let boundary = boundary.as_bytes();
    if let Some(pre) = &msg.preamble {
        write_body_lines(py3_str_ref(pre, part, "the preamble")?, part, "the preamble", out)?;
        out.extend_from_slice(NL);
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary);
    out.extend_from_slice(NL);
    for (i, t) in texts.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(NL);
            out.extend_from_slice(b"--");
            out.extend_from_slice(boundary);
            out.extend_from_slice(NL);
        }
        out.extend_from_slice(t);
    }
    out.extend_from_slice(NL);
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary);
    out.extend_from_slice(b"--");
    out.extend_from_slice(NL);
    if let Some(epi) = &msg.epilogue {
        write_body_lines(py3_str_ref(epi, part, "the epilogue")?, part, "the epilogue", out)?;
    }
    Ok(new_content_type)
}

/// `_make_boundary`: Python draws a random 19-digit token. Any token is as good, so
/// ours comes from the content, which keeps a redelivery byte-identical.
fn invent_boundary(texts: &[Vec<u8>]) -> String {
    // FNV-1a over the parts as Python joins them for its collision check.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, t) in texts.iter().enumerate() {
        let sep: &[u8] = if i > 0 { NL } else { b"" };
        for &b in sep.iter().chain(t) {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    let base = format!("{}{:019}==", "=".repeat(15), hash % (i64::MAX as u64));
    let alltext = texts.join(NL);
    let mut candidate = base.clone();
    let mut counter = 0u64;
    while has_boundary_line(&alltext, candidate.as_bytes()) {
        candidate = format!("{base}.{counter}");
        counter += 1;
    }
    candidate
}

/// `re.search('^--' + re.escape(b) + '(--)?$', text, re.MULTILINE)` on bytes: lines end
/// at LF only, so a CRLF line never matches (as in Python).
fn has_boundary_line(text: &[u8], b: &[u8]) -> bool {
    text.split(|&c| c == b'\n').any(|line| {
        line.strip_prefix(b"--").and_then(|r| r.strip_prefix(b)).is_some_and(|r| r.is_empty() || r == b"--")
    })
}

/// `_handle_message_delivery_status`: header blocks, each without its final line end.
fn handle_delivery_status(msg: &Message, part: &PartPath, maxlen: usize, out: &mut Vec<u8>) -> Result<(), Error> {
    let Payload::Parts(blocks) = &msg.payload else {
        return Err(bad(part, "a message/delivery-status part does not hold header blocks"));
    };
    for (i, b) in blocks.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(NL);
        }
        let mut buf = Vec::new();
        flatten(b, &child(part, i), maxlen, &|_| false, &mut buf)?;
        if buf.ends_with(NL) {
            buf.truncate(buf.len() - NL.len());
        }
        out.extend_from_slice(&buf);
    }
    Ok(())
}

/// `_handle_message`: the attached message, or a text payload written unchanged.
fn handle_message(msg: &Message, part: &PartPath, maxlen: usize, out: &mut Vec<u8>) -> Result<(), Error> {
    match &msg.payload {
        Payload::Parts(p) => {
            let first = p.first().ok_or_else(|| bad(part, "a message/* part holds an empty list"))?;
            flatten(first, &child(part, 0), maxlen, &|_| false, out)
        }
        Payload::Text(t) => {
            let s = py3_str(t, part, "the body")?;
            match s.as_str() {
                Some(a) if a.is_ascii() => {
                    out.extend_from_slice(a.as_bytes());
                    Ok(())
                }
                _ => Err(bad(part, "a message/* part has a text body that is not ASCII")),
            }
        }
        Payload::None | Payload::Other => Err(bad(part, "a message/* part has no attached message")),
    }
}

fn child(part: &PartPath, i: usize) -> PartPath {
    let mut p = part.0.clone();
    p.push(i + 1);
    PartPath(p)
}

/// `fcre.sub('>From ', s)` (`From ` at the start or after a LF, not after a lone CR),
/// then `_write_lines` (every CRLF, CR or LF becomes CRLF; a last line without one stays
/// so) of `s.encode('ascii', 'surrogateescape')`: in one pass straight into `out`, so a
/// large body is not copied on the way.
fn write_body_lines(s: &PyStr, part: &PartPath, what: &str, out: &mut Vec<u8>) -> Result<(), Error> {
    let w = s.as_wtf8();
    out.reserve(w.len() + w.len() / 32);
    let mut i = 0;
    while i < w.len() {
        if (i == 0 || w[i - 1] == b'\n') && w[i..].starts_with(b"From ") {
            out.push(b'>');
        }
        let b = w[i];
        if b < 0x80 {
            match b {
                b'\r' => {
                    out.extend_from_slice(NL);
                    i += if w.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
                    continue;
                }
                b'\n' => out.extend_from_slice(NL),
                _ => out.push(b),
            }
            i += 1;
            continue;
        }
        // A multi-byte code point (WTF-8: surrogates too); only escaped bytes are written.
        let len = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            _ => 4,
        };
        let seq = w.get(i..i + len).ok_or_else(|| bad(part, format!("{what}: truncated WTF-8")))?;
        let cp = match len {
            2 => (u32::from(seq[0] & 0x1F) << 6) | u32::from(seq[1] & 0x3F),
            3 => (u32::from(seq[0] & 0x0F) << 12) | (u32::from(seq[1] & 0x3F) << 6) | u32::from(seq[2] & 0x3F),
            _ => {
                (u32::from(seq[0] & 0x07) << 18)
                    | (u32::from(seq[1] & 0x3F) << 12)
                    | (u32::from(seq[2] & 0x3F) << 6)
                    | u32::from(seq[3] & 0x3F)
            }
        };
        match cp {
            0xDC80..=0xDCFF => out.push((cp - 0xDC00) as u8),
            _ => {
                return Err(bad(
                    part,
                    format!("{what} has the character U+{cp:04X}, which Python cannot write as bytes here"),
                ))
            }
        }
        i += len;
    }
    Ok(())
}

/// `s.encode('ascii', 'surrogateescape')`: 8-bit octets kept as surrogates come back.
fn encode_ascii(s: &PyStr, part: &PartPath, what: &str) -> Result<Vec<u8>, Error> {
    s.encode_surrogateescape().map_err(|cp| {
        bad(part, format!("{what} has the character U+{cp:04X}, which Python cannot write as bytes here"))
    })
}

fn py3_str_ref<'a>(t: &'a Text, part: &PartPath, what: &str) -> Result<&'a PyStr, Error> {
    match t {
        Text::Str(s) => Ok(s),
        Text::Bytes(_) => Err(bad(part, format!("{what} is a byte string, which Python 3's generator cannot write"))),
    }
}

fn py3_str(t: &Text, part: &PartPath, what: &str) -> Result<PyStr, Error> {
    match t {
        Text::Str(s) => Ok(s.clone()),
        Text::Bytes(_) => Err(bad(part, format!("{what} is a byte string, which Python 3's generator cannot write"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &PyStr) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        write_body_lines(s, &PartPath::default(), "the body", &mut out).map(|()| out)
    }

    #[test]
    fn mangles_only_after_lf_and_makes_every_line_end_crlf() {
        assert_eq!(body(&PyStr::from("From a\nFrom b\rFrom c")).unwrap(), b">From a\r\n>From b\r\nFrom c");
        assert_eq!(body(&PyStr::from("a\r\nFrom b\r\rc\n")).unwrap(), b"a\r\n>From b\r\n\r\nc\r\n");
        // Surrogate-escaped 8-bit bytes come back; other non-ASCII is refused.
        assert_eq!(body(&PyStr::decode_surrogateescape(b"caf\xe9\n")).unwrap(), b"caf\xe9\r\n");
        let err = body(&PyStr::from("caf\u{e9}")).unwrap_err().to_string();
        assert!(err.contains("U+00E9"), "{err}");
        assert!(body(&PyStr::from("\u{1F600}")).unwrap_err().to_string().contains("U+1F600"));
    }
}
