//! Mailman 2.1's delivery-time changes (`Handlers/Decorate.py` and `SMTPDirect.py`,
//! as in 2.1.27): the list's `msg_header`/`msg_footer` expanded with `%(name)s`
//! variables and put around the message (in the text of a text/plain body when the
//! charsets allow, as parts of a multipart/mixed, or by wrapping anything else in a new
//! multipart/mixed); full personalization's `To`; `X-Mailman-Copy`; `Errors-To` and
//! `Sender`; the VERP envelope sender. Everything is plain data in, message edits out.

use super::codec::{self, Char, Codec, CodecProblem, Lookup};
use super::header::Header;
use super::params;
use crate::model::{Charset, HeaderObj, HeaderValue, Message, PartPath, Payload, Text};
use std::collections::BTreeMap;

/// Why a message cannot be changed exactly as Mailman 2.1 would: the entry is then set
/// aside with this reason, never sent otherwise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecorateError {
    /// A message shape or charset Mailman 2.1 handles in a way this emulation does not
    /// reproduce.
    #[error("cannot decorate as Mailman 2.1 would: {0}")]
    Unsupported(String),
    /// The message model itself refused the change (e.g. a header Python would reject).
    #[error("cannot decorate as Mailman 2.1 would: {0}")]
    Model(crate::model::Error),
}

// By hand rather than `#[from]`, which would also expose the cause as `source()` and print
// it twice in a chain.
impl From<crate::model::Error> for DecorateError {
    fn from(e: crate::model::Error) -> Self {
        DecorateError::Model(e)
    }
}

fn unsupported(what: impl Into<String>) -> DecorateError {
    DecorateError::Unsupported(what.into())
}

/// Template variables: name -> Python 2 `str` (octets).
pub type Vars = BTreeMap<String, Vec<u8>>;

/// `template % SafeDict(vars)`: `Ok(None)` when Python raises `ValueError` or
/// `TypeError` (Mailman then uses the template as it is). With `safe`, unknown names
/// stay `%(name)s`; otherwise they are refused (a plain dict raises `KeyError`).
/// Conversions other than a bare `%(name)s` and `%%` are refused rather than guessed.
pub fn interpolate(template: &[u8], vars: &Vars, safe: bool) -> Result<Option<Vec<u8>>, DecorateError> {
    let mut out = Vec::with_capacity(template.len() + 64);
    let mut i = 0;
    while i < template.len() {
        let c = template[i];
        if c != b'%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let Some(&next) = template.get(i) else {
            return Ok(None);
        };
        if next == b'%' {
            out.push(b'%');
            i += 1;
            continue;
        }
        if next != b'(' {
            // A conversion without a key formats the whole dict.
            let spec_end = template[i..]
                .iter()
                .position(|c| !matches!(c, b'-' | b'+' | b' ' | b'#' | b'0'..=b'9' | b'.' | b'h' | b'l' | b'L'))
                .map_or(template.len(), |n| i + n);
            match template.get(spec_end) {
                // `str()`/`repr()` of Mailman's dict: its order is Python's hash order.
                Some(b's' | b'r' | b'%') => {
                    return Err(unsupported(
                        "a template has a '%' conversion without a (name), which prints Mailman's whole dict",
                    ))
                }
                // Numbers, characters and `*` widths of a dict raise TypeError; anything
                // else (or the end) ValueError.
                _ => return Ok(None),
            }
        }
        // The key runs to the matching parenthesis (Python counts nesting).
        let mut depth = 1;
        let mut j = i + 1;
        while j < template.len() && depth > 0 {
            match template[j] {
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
            j += 1;
        }
        if depth > 0 {
            // "incomplete format key"
            return Ok(None);
        }
        let key = &template[i + 1..j - 1];
        let Some(&conv) = template.get(j) else {
            return Ok(None);
        };
        let value = match std::str::from_utf8(key).ok().and_then(|k| vars.get(k)) {
            Some(v) => v.clone(),
            None if safe => [b"%(".as_slice(), key, b")s"].concat(),
            None => {
                return Err(unsupported(format!(
                    "the format names %({}), which Mailman's dict does not have",
                    String::from_utf8_lossy(key)
                )))
            }
        };
        match conv {
            b's' => out.extend_from_slice(&value),
            // A number conversion of a string: TypeError.
            b'd' | b'i' | b'o' | b'u' | b'x' | b'X' | b'e' | b'E' | b'f' | b'F' | b'g' | b'G' => return Ok(None),
            b'-' | b'+' | b' ' | b'#' | b'0'..=b'9' | b'.' | b'*' | b'h' | b'l' | b'L' | b'r' | b'c' | b'%' => {
                return Err(unsupported(format!(
                    "a template formats %({}) with flags, a width or a conversion other than s",
                    String::from_utf8_lossy(key)
                )))
            }
            // "unsupported format character"
            _ => return Ok(None),
        }
        i = j + 1;
    }
    Ok(Some(out))
}

/// `Utils.to_percent`: a `$`-string template (lists with `use_dollar_strings`) as the
/// `%`-string Mailman then interpolates: `%` doubled, `$$` made `$` first, then `$$`
/// (from `$$$$`) is `$`, and `$name` and `${name}` are `%(name)s`.
pub fn dollar_to_percent(template: &[u8]) -> Vec<u8> {
    let s = params::replace(&params::replace(template, b"%", b"%%"), b"$$", b"$");
    let ident_len = |t: &[u8]| match t.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
            1 + t[1..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count()
        }
        _ => 0,
    };
    let mut out = Vec::with_capacity(s.len() + 16);
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'$' {
            out.push(s[i]);
            i += 1;
            continue;
        }
        let rest = &s[i + 1..];
        if rest.first() == Some(&b'$') {
            out.push(b'$');
            i += 2;
            continue;
        }
        let n = ident_len(rest);
        if n > 0 {
            out.extend_from_slice(b"%(");
            out.extend_from_slice(&rest[..n]);
            out.extend_from_slice(b")s");
            i += 1 + n;
            continue;
        }
        if let Some(inner) = rest.strip_prefix(b"{") {
            let n = ident_len(inner);
            if n > 0 && inner.get(n) == Some(&b'}') {
                out.extend_from_slice(b"%(");
                out.extend_from_slice(&inner[..n]);
                out.extend_from_slice(b")s");
                i += 3 + n;
                continue;
            }
        }
        out.push(b'$');
        i += 1;
    }
    out
}

/// `Decorate.decorate()`: nothing for a template of only whitespace; else the
/// interpolated text (the template itself if Python raised) with CRLF made LF and
/// blanks before a line end removed (but one is kept after a leading `--`), ending in
/// a newline.
pub fn expand(template: &[u8], vars: &Vars) -> Result<Vec<u8>, DecorateError> {
    if template.iter().all(|&c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)) {
        return Ok(Vec::new());
    }
    let mut text = match interpolate(template, vars, true)? {
        Some(t) => trim_line_ends(&params::replace(&t, b"\r\n", b"\n")),
        None => template.to_vec(),
    };
    if !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    Ok(text)
}

/// `re.sub(r'(?m)(?<!^--) +(?=\n)', '', text)`.
fn trim_line_ends(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut line_start = 0;
    let mut i = 0;
    while i < text.len() {
        if text[i] != b' ' {
            if text[i] == b'\n' {
                line_start = i + 1;
            }
            out.push(text[i]);
            i += 1;
            continue;
        }
        let run_end = text[i..].iter().position(|&c| c != b' ').map_or(text.len(), |n| i + n);
        if text.get(run_end) == Some(&b'\n') {
            // A run right after a line's opening `--` keeps its first blank.
            let keep = usize::from(i == line_start + 2 && &text[line_start..i] == b"--");
            out.extend(std::iter::repeat_n(b' ', keep));
        } else {
            out.extend_from_slice(&text[i..run_end]);
        }
        i = run_end;
    }
    out
}

/// The expanded header and footer and the list's character set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoration {
    pub header: Vec<u8>,
    pub footer: Vec<u8>,
    /// `Utils.GetCharSet(mlist.preferred_language)`.
    pub list_charset: String,
}

/// `Decorate.process()` after the templates are expanded: decorates `msg` in place.
/// `boundary_token` stands for the random number Python's generator puts in the
/// boundary of a multipart it has to invent (when the message is wrapped).
pub fn decorate(msg: &mut Message, d: &Decoration, boundary_token: u64) -> Result<(), DecorateError> {
    if d.header.is_empty() && d.footer.is_empty() {
        return Ok(());
    }
    let part = PartPath::default();
    let lcodec = match codec::lookup(&d.list_charset) {
        Lookup::Found(c) => c,
        // Mailman decodes the header and footer outside its error handling.
        _ => return Err(unsupported(format!("the list's character set {:?} is not carried", d.list_charset))),
    };
    let ctype = params::content_type(msg, &part)?;
    let is_multipart = matches!(msg.payload, Payload::Parts(_));
    if !is_multipart && ctype == b"text/plain" {
        if decorate_text(msg, d, lcodec)? {
            return Ok(());
        }
    } else if ctype == b"multipart/mixed" {
        let mut parts = match std::mem::replace(&mut msg.payload, Payload::None) {
            Payload::Parts(p) => p,
            Payload::None => Vec::new(),
            other => {
                msg.payload = other;
                return Err(unsupported("a multipart/mixed message whose body is a single string"));
            }
        };
        if !d.footer.is_empty() {
            parts.push(mime_text(&d.footer, &d.list_charset)?);
        }
        if !d.header.is_empty() {
            parts.insert(0, mime_text(&d.header, &d.list_charset)?);
        }
        msg.payload = Payload::Parts(parts);
        return Ok(());
    }
    wrap(msg, d, boundary_token)
}

/// The text/plain case. `Ok(false)`: Python's codecs failed, so the caller wraps.
fn decorate_text(msg: &mut Message, d: &Decoration, lcodec: Codec) -> Result<bool, DecorateError> {
    let part = PartPath::default();
    let mcset = content_charset(msg)?.unwrap_or_else(|| "us-ascii".to_owned());
    let uheader = decode_or(codec::decode(&d.header, lcodec, true))?;
    let ufooter = decode_or(codec::decode(&d.footer, lcodec, true))?;
    let mcodec = match codec::lookup(&mcset) {
        Lookup::Found(c) => c,
        Lookup::Unknown => return Ok(false),
        Lookup::NotCarried(name) => {
            return Err(unsupported(format!("the message's character set {name:?} is not carried")))
        }
    };
    let raw = payload_decoded(msg)?;
    let old = match codec::decode(&raw, mcodec, false) {
        Ok(t) => t,
        Err(CodecProblem::Unicode) => return Ok(false),
        Err(CodecProblem::NotCarried(what)) => return Err(unsupported(what)),
    };
    let mut text = uheader;
    if !d.header.is_empty() && !d.header.ends_with(b"\n") {
        text.push(Char::Code(u32::from(b'\n')));
    }
    let old_ends_nl = old.last() == Some(&Char::Code(u32::from(b'\n')));
    text.extend(old);
    if !d.footer.is_empty() && !old_ends_nl {
        text.push(Char::Code(u32::from(b'\n')));
    }
    text.extend(ufooter);
    let (payload, newcset) = match codec::encode(&text, lcodec) {
        Ok(b) => (b, d.list_charset.clone()),
        Err(CodecProblem::NotCarried(what)) => return Err(unsupported(what)),
        Err(CodecProblem::Unicode) if d.list_charset != mcset => match codec::encode(&text, mcodec) {
            Ok(b) => (b, mcset.clone()),
            Err(CodecProblem::Unicode) => return Ok(false),
            Err(CodecProblem::NotCarried(what)) => return Err(unsupported(what)),
        },
        Err(CodecProblem::Unicode) => {
            return Err(unsupported("the decorated text does not fit the list's character set (Mailman fails here)"))
        }
    };
    let body_cs = body_charset(&newcset)?;
    let format = params::param(msg, &part, b"format")?;
    let delsp = params::param(msg, &part, b"delsp")?;
    remove(msg, b"content-transfer-encoding");
    remove(msg, b"content-type");
    set_payload(msg, &payload, &body_cs);
    if let Some(f) = format.filter(|f| !f.is_empty()) {
        append_param(msg, b"Format", &f)?;
    }
    if let Some(ds) = delsp.filter(|d| !d.is_empty()) {
        append_param(msg, b"DelSp", &ds)?;
    }
    Ok(true)
}

fn decode_or(r: Result<Vec<Char>, CodecProblem>) -> Result<Vec<Char>, DecorateError> {
    r.map_err(|e| match e {
        CodecProblem::NotCarried(what) => unsupported(what),
        CodecProblem::Unicode => unsupported("the list's header or footer does not decode"),
    })
}

/// Python 2.7's `get_payload(decode=True)` of a non-multipart part.
fn payload_decoded(msg: &Message) -> Result<Vec<u8>, DecorateError> {
    let payload = match &msg.payload {
        Payload::Text(Text::Bytes(b)) => b.clone(),
        Payload::None => return Err(unsupported("a text/plain message without a body (Python fails decoding None)")),
        _ => return Err(unsupported("a text/plain body that is not a byte string")),
    };
    let cte = match super::get_header(msg, b"content-transfer-encoding") {
        None => Vec::new(),
        Some(HeaderValue::Text(Text::Bytes(b))) => b.to_ascii_lowercase(),
        Some(_) => return Err(unsupported("a Content-Transfer-Encoding that is not a plain string")),
    };
    Ok(match cte.as_slice() {
        b"quoted-printable" => crate::body_codec::qp_decode(&payload),
        b"base64" => base64_decode(&payload).unwrap_or(payload),
        b"x-uuencode" | b"uuencode" | b"uue" | b"x-uue" => return Err(unsupported("a uuencoded text/plain body")),
        _ => payload,
    })
}

/// `email.utils._bdecode` (binascii's lenient `a2b_base64`): characters outside the
/// alphabet are skipped; `None` is "Incorrect padding" (Python then keeps the text).
fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits, mut quad) = (0u32, 0u32, 0usize);
    let mut padded = false;
    for (i, &c) in s.iter().enumerate() {
        if c == b'=' {
            let next_valid = s[i + 1..].iter().copied().find(|&x| x == b'=' || value(x).is_some());
            if quad < 2 || (quad == 2 && next_valid != Some(b'=')) {
                continue;
            }
            padded = true;
            break;
        }
        let Some(v) = value(c) else { continue };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        quad = (quad + 1) % 4;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if !padded && bits != 0 {
        return None;
    }
    let decoded_ends_nl = out.ends_with(b"\n");
    if !s.ends_with(b"\n") && decoded_ends_nl {
        out.pop();
    }
    Some(out)
}

/// `get_content_charset()`: lower-cased; `None` when absent, empty or not ASCII.
fn content_charset(msg: &Message) -> Result<Option<String>, DecorateError> {
    let cs = params::param(msg, &PartPath::default(), b"charset")?;
    Ok(cs.filter(|c| !c.is_empty() && c.is_ascii()).map(|c| String::from_utf8_lossy(&c).to_lowercase()))
}

/// An `email.charset.Charset` body text can be set with, from Python 2.7's table.
#[derive(Clone, Debug)]
struct BodyCharset {
    /// The input and output charset.
    name: String,
    /// `header_encoding`: 1 quoted-printable, 2 base64, 3 the shorter.
    header_encoding: Option<u8>,
    encoding: BodyEncoding,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyEncoding {
    SevenOrEight,
    QuotedPrintable,
    Base64,
}

/// `Charset(name)` in Python 2.7: lower-cased and mapped through `ALIASES`; a name in
/// neither `ALIASES` nor `CHARSETS` becomes its codec's own name
/// (`codecs.lookup(name).name`, e.g. windows-1251 becomes cp1251), then `CHARSETS`
/// gives the encodings (quoted-printable for the ISO-8859 names it lists, base64
/// bodies otherwise). Names with an output conversion, and codecs whose name is not
/// carried, are refused.
fn body_charset(name: &str) -> Result<BodyCharset, DecorateError> {
    let lower = name.to_lowercase();
    let aliased = match lower.as_str() {
        "latin_1" | "latin-1" => Some("iso-8859-1"),
        "latin_2" | "latin-2" => Some("iso-8859-2"),
        "latin_3" | "latin-3" => Some("iso-8859-3"),
        "latin_4" | "latin-4" => Some("iso-8859-4"),
        "latin_5" | "latin-5" => Some("iso-8859-9"),
        "latin_6" | "latin-6" => Some("iso-8859-10"),
        "latin_7" | "latin-7" => Some("iso-8859-13"),
        "latin_8" | "latin-8" => Some("iso-8859-14"),
        "latin_9" | "latin-9" => Some("iso-8859-15"),
        "latin_10" | "latin-10" => Some("iso-8859-16"),
        "ascii" => Some("us-ascii"),
        "cp949" | "euc_jp" | "euc_kr" => {
            return Err(unsupported(format!("setting a body in character set {name:?} is not carried")))
        }
        _ => None,
    };
    use BodyEncoding::{Base64, QuotedPrintable, SevenOrEight};
    let table = |n: &str| match n {
        "us-ascii" => Some((None, SevenOrEight)),
        "iso-2022-jp" => Some((Some(2), SevenOrEight)),
        "iso-8859-1" | "iso-8859-2" | "iso-8859-3" | "iso-8859-4" | "iso-8859-9" | "iso-8859-10" | "iso-8859-13"
        | "iso-8859-14" | "iso-8859-15" | "iso-8859-16" | "windows-1252" | "viscii" => Some((Some(1), QuotedPrintable)),
        "koi8-r" => Some((Some(2), Base64)),
        "utf-8" => Some((Some(3), Base64)),
        _ => None,
    };
    let input = match aliased {
        Some(a) => a.to_owned(),
        None if table(&lower).is_some() => lower,
        None => codec_name(&lower)
            .ok_or_else(|| unsupported(format!("setting a body in character set {name:?} is not carried")))?,
    };
    let (header_encoding, encoding) = table(&input).unwrap_or((Some(3), Base64));
    Ok(BodyCharset { name: input, header_encoding, encoding })
}

/// `codecs.lookup(name).name` for the codecs carried whose table entry is not listed
/// (the ones with an output conversion, euc-jp and shift_jis, are not carried).
fn codec_name(name: &str) -> Option<String> {
    match codec::lookup(name) {
        // "ascii", which `ALIASES` then makes us-ascii.
        Lookup::Found(Codec::Ascii) => Some("us-ascii".to_owned()),
        Lookup::Found(Codec::Latin1) => Some("iso8859-1".to_owned()),
        Lookup::Found(Codec::Utf8) => Some("utf-8".to_owned()),
        // Python 2.7's charmap modules name themselves with a hyphen for the underscore
        // (iso8859_2 is "iso8859-2", koi8_r "koi8-r"); the cp ones have none.
        Lookup::Found(Codec::SingleByte(sb)) => Some(sb.module.replace('_', "-")),
        _ => None,
    }
}

/// `set_payload(payload, charset)` on a message without Content-Type and
/// Content-Transfer-Encoding: `MIME-Version` if missing, then both added.
fn set_payload(msg: &mut Message, payload: &[u8], cs: &BodyCharset) {
    if super::get_header(msg, b"mime-version").is_none() {
        push(msg, b"MIME-Version", b"1.0");
    }
    let ct = [b"text/plain; charset=\"".as_slice(), cs.name.as_bytes(), b"\""].concat();
    push(msg, b"Content-Type", &ct);
    let (body, cte): (Vec<u8>, &[u8]) = match cs.encoding {
        BodyEncoding::Base64 => (crate::body_codec::base64_body(payload).into_bytes(), b"base64"),
        BodyEncoding::QuotedPrintable => (qp_body(payload), b"quoted-printable"),
        BodyEncoding::SevenOrEight if payload.is_ascii() || cs.name.starts_with("iso-2022-") => {
            (payload.to_vec(), b"7bit")
        }
        BodyEncoding::SevenOrEight => (payload.to_vec(), b"8bit"),
    };
    msg.payload = Payload::Text(Text::Bytes(body));
    msg.charset = Some(model_charset(cs));
    push(msg, b"Content-Transfer-Encoding", cte);
}

fn model_charset(cs: &BodyCharset) -> Charset {
    let body = match cs.encoding {
        BodyEncoding::SevenOrEight => None,
        BodyEncoding::QuotedPrintable => Some(1),
        BodyEncoding::Base64 => Some(2),
    };
    let codec = (cs.name != "us-ascii").then(|| cs.name.clone());
    Charset {
        input_charset: cs.name.clone(),
        output_charset: Some(cs.name.clone()),
        header_encoding: cs.header_encoding,
        body_encoding: body,
        input_codec: codec.clone(),
        output_codec: codec,
    }
}

/// `set_param(name, value)` for a parameter Content-Type does not have yet: appended
/// (quoted), and the field moves to the end.
fn append_param(msg: &mut Message, name: &[u8], value: &[u8]) -> Result<(), DecorateError> {
    let current = match super::get_header(msg, b"content-type") {
        Some(HeaderValue::Text(Text::Bytes(b))) => b.clone(),
        _ => return Err(unsupported("a Content-Type that is not a plain string")),
    };
    let new = [current.as_slice(), b"; ", name, b"=\"", &params::quote(value), b"\""].concat();
    remove(msg, b"content-type");
    push(msg, b"Content-Type", &new);
    Ok(())
}

/// Python 2.7's `email.quoprimime.body_encode` (76 columns, `\n`), quirks included: a
/// blank at the end of an inner line becomes `<blank>=` and an empty line follows.
fn qp_body(body: &[u8]) -> Vec<u8> {
    const MAXLINELEN: usize = 76;
    if body.is_empty() {
        return Vec::new();
    }
    let body = fix_eols(body);
    let lines = split_keepends(&body);
    let needs_quote = |c: u8| !(c == b' ' || c == b'\t' || (b'!'..=b'<').contains(&c) || (b'>'..=b'~').contains(&c));
    let mut out = Vec::with_capacity(body.len() * 11 / 10);
    for (lineno, full) in lines.iter().enumerate() {
        let line = full
            .strip_suffix(b"\r\n")
            .or_else(|| full.strip_suffix(b"\n"))
            .or_else(|| full.strip_suffix(b"\r"))
            .unwrap_or(full);
        let mut encoded: Vec<u8> = Vec::new();
        let mut prev: Option<u8> = None;
        for (j, &c) in line.iter().enumerate() {
            prev = Some(c);
            let piece: Vec<u8> = if needs_quote(c) {
                format!("={c:02X}").into_bytes()
            } else if j + 1 == line.len() {
                if c != b' ' && c != b'\t' {
                    encoded.push(c);
                }
                continue;
            } else {
                vec![c]
            };
            if encoded.len() + piece.len() >= MAXLINELEN {
                out.extend_from_slice(&encoded);
                out.extend_from_slice(b"=\n");
                encoded.clear();
            }
            encoded.extend(piece);
        }
        if let Some(p @ (b' ' | b'\t')) = prev {
            if lineno + 1 == lines.len() {
                let q = format!("={p:02X}").into_bytes();
                out.extend_from_slice(&encoded);
                if encoded.len() + q.len() > MAXLINELEN {
                    out.extend_from_slice(b"=\n");
                }
                out.extend_from_slice(&q);
            } else {
                out.extend_from_slice(&encoded);
                out.push(p);
                out.extend_from_slice(b"=\n");
            }
            encoded.clear();
        }
        out.extend_from_slice(&encoded);
        if full.ends_with(b"\n") || full.ends_with(b"\r") {
            out.push(b'\n');
        }
    }
    out
}

/// `email.utils.fix_eols`: every line ending becomes CRLF.
fn fix_eols(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + s.len() / 32);
    for (i, &c) in s.iter().enumerate() {
        match c {
            b'\n' if i == 0 || s[i - 1] != b'\r' => out.extend_from_slice(b"\r\n"),
            b'\r' if s.get(i + 1) != Some(&b'\n') => out.extend_from_slice(b"\r\n"),
            _ => out.push(c),
        }
    }
    out
}

/// `str.splitlines(True)` of text whose line ends are all CRLF.
fn split_keepends(s: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\n' {
            out.push(&s[start..=i]);
            start = i + 1;
        }
        i += 1;
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// Wraps the message: its Content-* headers and body become the middle part of a new
/// multipart/mixed, between the header and footer parts.
fn wrap(msg: &mut Message, d: &Decoration, boundary_token: u64) -> Result<(), DecorateError> {
    let mut inner = Message::new("Mailman.Message.Message", "text/plain");
    inner.headers = msg
        .headers
        .iter()
        .filter(|(n, _)| n.to_string_lossy().to_ascii_lowercase().starts_with("content-"))
        .cloned()
        .collect();
    inner.payload = msg.payload.clone();
    inner.unixfrom = msg.unixfrom.clone();
    inner.preamble = msg.preamble.clone();
    inner.epilogue = msg.epilogue.clone();
    inner.default_type = msg.default_type.clone();
    if inner.headers.is_empty() {
        let ctype = params::content_type(&inner, &PartPath::default())?;
        push(&mut inner, b"Content-Type", &ctype);
    }
    if super::get_header(msg, b"mime-version").is_none() {
        push(msg, b"MIME-Version", b"1.0");
    }
    let mut parts = vec![inner];
    if !d.header.is_empty() {
        parts.insert(0, mime_text(&d.header, &d.list_charset)?);
    }
    if !d.footer.is_empty() {
        parts.push(mime_text(&d.footer, &d.list_charset)?);
    }
    msg.payload = Payload::Parts(parts);
    for h in [b"content-type".as_slice(), b"content-transfer-encoding", b"content-disposition"] {
        remove(msg, h);
    }
    // What the generator's `_make_boundary` and `set_boundary` make of it: 19 digits
    // (`sys.maxint`'s width) between 15 and 2 `=`.
    let ct = format!("multipart/mixed; boundary=\"==============={:019}==\"", boundary_token % (i64::MAX as u64));
    push(msg, b"Content-Type", ct.as_bytes());
    Ok(())
}

/// `MIMEText(text, 'plain', lcset)` with `Content-Disposition: inline`.
fn mime_text(text: &[u8], lcset: &str) -> Result<Message, DecorateError> {
    let cs = body_charset(lcset)?;
    let mut m = Message::new("email.mime.text.MIMEText", "text/plain");
    let ct = |name: &str| [b"text/plain; charset=\"".as_slice(), name.as_bytes(), b"\""].concat();
    if cs.name == lcset {
        push(&mut m, b"Content-Type", &ct(lcset));
        push(&mut m, b"MIME-Version", b"1.0");
    } else {
        // `set_charset`'s `set_param('charset', output charset)` changed the field, so
        // it was deleted and added again, after MIME-Version.
        push(&mut m, b"MIME-Version", b"1.0");
        push(&mut m, b"Content-Type", &ct(&cs.name));
    }
    let (body, cte): (Vec<u8>, &[u8]) = match cs.encoding {
        BodyEncoding::Base64 => (crate::body_codec::base64_body(text).into_bytes(), b"base64"),
        BodyEncoding::QuotedPrintable => (qp_body(text), b"quoted-printable"),
        BodyEncoding::SevenOrEight if text.is_ascii() || lcset.starts_with("iso-2022-") => (text.to_vec(), b"7bit"),
        BodyEncoding::SevenOrEight => (text.to_vec(), b"8bit"),
    };
    m.payload = Payload::Text(Text::Bytes(body));
    m.charset = Some(model_charset(&cs));
    push(&mut m, b"Content-Transfer-Encoding", cte);
    push(&mut m, b"Content-Disposition", b"inline");
    Ok(m)
}

/// `verpdeliver`'s full personalization: `To` deleted and re-added as the recipient,
/// with the member's name (`name`, a `str` or `unicode` from the list's `usernames`)
/// encoded in the charset of the member's language (`charset`).
pub fn personalize_to(
    msg: &mut Message,
    name: Option<&Text>,
    charset: &str,
    recipient: &str,
) -> Result<(), DecorateError> {
    remove(msg, b"to");
    let value = match name.filter(|n| !n.is_empty()) {
        None => recipient.as_bytes().to_vec(),
        Some(n) => {
            let encoded = encode_name(n, charset, recipient)?;
            formataddr(&encoded, recipient)
        }
    };
    push(msg, b"To", &value);
    Ok(())
}

/// `Header(unicode(name, codec, 'replace'), Charset(charset)).encode()`.
fn encode_name(name: &Text, charset: &str, recipient: &str) -> Result<Vec<u8>, DecorateError> {
    let cs = if charset == "us-ascii" { "iso-8859-1" } else { charset };
    let not_carried = || unsupported(format!("the name of {recipient} in character set {cs:?}"));
    let chars: Vec<u32> = match name {
        Text::Str(s) => s.code_points().collect(),
        Text::Bytes(b) => match codec::lookup(cs) {
            Lookup::Found(Codec::Latin1) => b.iter().map(|&c| u32::from(c)).collect(),
            Lookup::Found(Codec::Ascii) => {
                b.iter().map(|&c| if c.is_ascii() { u32::from(c) } else { 0xFFFD }).collect()
            }
            Lookup::Found(Codec::Utf8) if std::str::from_utf8(b).is_ok() => {
                String::from_utf8_lossy(b).chars().map(u32::from).collect()
            }
            _ => return Err(not_carried()),
        },
    };
    if chars.iter().any(|c| (0xD800..0xE000).contains(c)) {
        return Err(not_carried());
    }
    let text: Vec<Char> = chars.iter().map(|&c| Char::Code(c)).collect();
    // Header.append tries us-ascii, the given charset, then utf-8.
    let member_codec = match codec::lookup(cs) {
        Lookup::Found(c @ (Codec::Latin1 | Codec::Utf8 | Codec::Ascii)) => Some(c),
        _ => None,
    };
    let (bytes, chunk_cs) = if let Ok(b) = codec::encode(&text, Codec::Ascii) {
        (b, header_charset("us-ascii"))
    } else if let Some(b) = member_codec.and_then(|c| codec::encode(&text, c).ok()) {
        (b, header_charset(cs))
    } else if member_codec.is_none() {
        return Err(not_carried());
    } else {
        (codec::encode(&text, Codec::Utf8).map_err(|_| not_carried())?, header_charset("utf-8"))
    };
    let obj = HeaderObj {
        chunks: vec![(Text::Bytes(bytes), chunk_cs)],
        maxlinelen: Some(75),
        headerlen: None,
        firstlinelen: Some(76),
        header_name: None,
        continuation_ws: Text::Bytes(b" ".to_vec()),
        charset: None,
    };
    let part = PartPath::default();
    Ok(Header::from_obj(&obj, &part)?.encode(&part, 0)?)
}

/// Python 2.7's `Charset(name)` for the charsets a member name can take.
fn header_charset(name: &str) -> Charset {
    let (h, b) = match name {
        "us-ascii" => (None, None),
        "utf-8" => (Some(3), Some(2)),
        _ => (Some(1), Some(1)),
    };
    let codec = (name != "us-ascii").then(|| name.to_owned());
    Charset {
        input_charset: name.to_owned(),
        output_charset: Some(name.to_owned()),
        header_encoding: h,
        body_encoding: b,
        input_codec: codec.clone(),
        output_codec: codec,
    }
}

/// Python 2.7's `email.utils.formataddr((name, address))` for a `str` name.
fn formataddr(name: &[u8], address: &str) -> Vec<u8> {
    let special = name.iter().any(|c| b"][\\()<>@,:;\".".contains(c));
    let mut escaped = Vec::with_capacity(name.len() + 4);
    for &c in name {
        if b"][\\()\"".contains(&c) {
            escaped.push(b'\\');
        }
        escaped.push(c);
    }
    let q: &[u8] = if special { b"\"" } else { b"" };
    [q, &escaped, q, b" <", address.as_bytes(), b">"].concat()
}

/// `del msg['x-mailman-copy']`, and `X-Mailman-Copy: yes` for a recipient in the
/// metadata's `add-dup-header`.
pub fn avoid_duplicates(msg: &mut Message, add_dup_header: bool) {
    remove(msg, b"x-mailman-copy");
    if add_dup_header {
        push(msg, b"X-Mailman-Copy", b"yes");
    }
}

/// `RCPT_BASE64_HEADER_NAME`: the recipient, base64-encoded, in a header of that name.
pub fn recipient_header(msg: &mut Message, name: &str, recipient: &str) {
    use base64::Engine;
    remove(msg, name.to_ascii_lowercase().as_bytes());
    let value = base64::engine::general_purpose::STANDARD.encode(recipient.as_bytes());
    push(msg, name.as_bytes(), value.as_bytes());
}

/// `bulkdeliver`'s last changes: `Errors-To` replaced by the envelope sender, and with
/// the list's `include_sender_header` (`real_name` given) `Sender` too.
pub fn errors_to_and_sender(msg: &mut Message, envsender: &str, sender_real_name: Option<&[u8]>) {
    remove(msg, b"errors-to");
    push(msg, b"Errors-To", envsender.as_bytes());
    if let Some(real_name) = sender_real_name {
        remove(msg, b"sender");
        let v = [b"\"".as_slice(), real_name, b"\" <", envsender.as_bytes(), b">"].concat();
        push(msg, b"Sender", &v);
    }
}

/// The VERP envelope sender: `VERP_FORMAT % {bounces, mailbox, host}` `@` the bounces
/// domain, both addresses lower-cased (`Utils.ParseEmail`). `Ok(None)`: the recipient
/// has no domain, and Mailman skips it.
pub fn verp_sender(verp_format: &str, envsender: &str, recipient: &str) -> Result<Option<String>, DecorateError> {
    let parse = |a: &str| {
        let a = a.to_lowercase();
        match a.find('@') {
            Some(at) if at >= 1 => Some((a[..at].to_owned(), a[at + 1..].to_owned())),
            _ => None,
        }
    };
    let Some((rmailbox, rhost)) = parse(recipient) else {
        return Ok(None);
    };
    let (bmailbox, bdomain) = parse(envsender)
        .ok_or_else(|| unsupported(format!("the envelope sender {envsender:?} has no domain for VERP")))?;
    let vars: Vars = [("bounces", bmailbox), ("mailbox", rmailbox), ("host", rhost)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into_bytes()))
        .collect();
    let local = interpolate(verp_format.as_bytes(), &vars, false)?
        .ok_or_else(|| unsupported("VERP_FORMAT is not a valid format for Mailman's % operator"))?;
    Ok(Some(format!("{}@{bdomain}", String::from_utf8_lossy(&local))))
}

/// `urllib.quote(s)`: letters, digits, `_.-` and `/` stay; every other octet is `%XX`.
pub fn url_quote(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for &c in s {
        if c.is_ascii_alphanumeric() || b"_.-/".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

fn push(msg: &mut Message, name: &[u8], value: &[u8]) {
    msg.headers.push((Text::Bytes(name.to_vec()), HeaderValue::Text(Text::Bytes(value.to_vec()))));
}

/// `del msg[name]`: every field of that name.
fn remove(msg: &mut Message, lowered: &[u8]) {
    msg.headers.retain(|(n, _)| !super::name_is(n, lowered));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn percent_like_python_with_safedict() {
        let v = vars(&[("a", "1")]);
        assert_eq!(interpolate(b"%(a)s %(b)s 100%%", &v, true), Ok(Some(b"1 %(b)s 100%".to_vec())));
        assert_eq!(interpolate(b"50%", &v, true), Ok(None));
        assert_eq!(interpolate(b"%(a)d", &v, true), Ok(None));
        assert_eq!(interpolate(b"%(a)y", &v, true), Ok(None));
        assert!(interpolate(b"%s", &v, true).is_err());
        assert!(interpolate(b"100% sure", &v, true).is_err());
        assert_eq!(interpolate(b"50% off", &v, true), Ok(None));
        assert_eq!(interpolate(b"5%-d", &v, true), Ok(None));
        assert!(interpolate(b"%(b)s", &v, false).is_err());
    }

    #[test]
    fn dollar_strings_like_utils_to_percent() {
        assert_eq!(
            dollar_to_percent(b"$real_name list, 100% $$5 $$$$x ${host_name}! $ $1 ${bad $a_b9c"),
            b"%(real_name)s list, 100%% $5 $x %(host_name)s! $ $1 ${bad %(a_b9c)s".to_vec()
        );
        assert_eq!(dollar_to_percent(b"x$$y$"), b"x%(y)s$".to_vec());
    }

    #[test]
    fn expand_trims_like_mailman() {
        let v = vars(&[("x", "X")]);
        assert_eq!(expand(b" \r\n\t", &v).unwrap(), b"");
        assert_eq!(expand(b"a %(x)s  \r\n--  \n-- \nb", &v).unwrap(), b"a X\n-- \n-- \nb\n");
        assert_eq!(expand(b"50% off  \r\n", &v).unwrap(), b"50% off  \r\n");
    }

    #[test]
    fn qp_body_has_python_27_quirks() {
        assert_eq!(qp_body(b"caf\xe9 \nx=y \t"), b"caf=E9 =\n\nx=3Dy =09".to_vec());
        let long = [b"a".repeat(80), b"\n".to_vec()].concat();
        assert_eq!(qp_body(&long), [b"a".repeat(75), b"=\n".to_vec(), b"a".repeat(5), b"\n".to_vec()].concat());
    }

    #[test]
    fn base64_like_binascii() {
        assert_eq!(base64_decode(b"aGk=\n"), Some(b"hi".to_vec()));
        assert_eq!(base64_decode(b"aGkK"), Some(b"hi".to_vec()));
        assert_eq!(base64_decode(b"aGk"), None);
    }

    #[test]
    fn verp_and_quote() {
        assert_eq!(
            verp_sender("%(bounces)s+%(mailbox)s=%(host)s", "L-bounces@Example.COM", "Bob@Example.org")
                .unwrap()
                .as_deref(),
            Some("l-bounces+bob=example.org@example.com")
        );
        assert_eq!(verp_sender("%(bounces)s+%(mailbox)s=%(host)s", "l-bounces@x", "local").unwrap(), None);
        assert_eq!(url_quote(b"a+b@c.d"), "a%2Bb%40c.d");
    }

    #[test]
    fn formataddr_quotes_specials() {
        assert_eq!(formataddr(b"Bob Smith", "b@x"), b"Bob Smith <b@x>".to_vec());
        assert_eq!(formataddr(b"Smith, \"Bob\"", "b@x"), b"\"Smith, \\\"Bob\\\"\" <b@x>".to_vec());
    }
}
