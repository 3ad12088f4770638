//! The Content-Type questions Python 2.7's `email.message.Message` answers for the
//! parser and the generator: `get_content_type()` and `get_boundary()`, with their
//! quirks (a boundary is unquoted twice; RFC 2231 boundaries become unicode).

use super::{ascii_bytes, get_header, problem, rstrip, strip};
use crate::model::{HeaderValue, Message, PartPath};

/// A multipart boundary as `get_boundary()` returns it: a byte string, or (from an
/// RFC 2231 parameter) a unicode string. Held as code points: Python 2 compares a
/// unicode pattern with byte-string lines code point against octet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Boundary {
    pub chars: Vec<u32>,
    pub unicode: bool,
}

impl Boundary {
    /// The boundary as the generator writes it (cStringIO accepts unicode only as ASCII).
    pub fn to_bytes(&self, part: &PartPath) -> Result<Vec<u8>, crate::model::Error> {
        let limit = if self.unicode { 0x80 } else { 0x100 };
        self.chars.iter().map(|&c| u8::try_from(c).ok().filter(|_| c < limit)).collect::<Option<Vec<u8>>>().ok_or_else(
            || problem(part, "the multipart boundary is non-ASCII text (RFC 2231), which Python 2 cannot write"),
        )
    }
}

/// `msg.get_content_type()`: lower-cased `maintype/subtype`, the default type when
/// there is no Content-Type, `text/plain` when the value is not one `/`-separated pair.
pub(super) fn content_type(msg: &Message, part: &PartPath) -> Result<Vec<u8>, crate::model::Error> {
    let value = match content_type_value(msg, part)? {
        None => return Ok(ascii_bytes(&msg.default_type, part, "the default content type")?.into_owned()),
        Some(v) => v,
    };
    let main = value.split(|&c| c == b';').next().unwrap_or_default();
    let ctype = strip(main).to_ascii_lowercase();
    if ctype.iter().filter(|&&c| c == b'/').count() != 1 {
        return Ok(b"text/plain".to_vec());
    }
    Ok(ctype)
}

/// `(maintype, subtype)` of [`content_type`].
pub(super) fn split_type(ctype: &[u8]) -> (&[u8], &[u8]) {
    match ctype.iter().position(|&c| c == b'/') {
        Some(i) => (&ctype[..i], &ctype[i + 1..]),
        None => (ctype, b""),
    }
}

fn content_type_value(msg: &Message, part: &PartPath) -> Result<Option<Vec<u8>>, crate::model::Error> {
    match get_header(msg, b"content-type") {
        None => Ok(None),
        Some(HeaderValue::Text(t)) => Ok(Some(ascii_bytes(t, part, "the Content-Type header")?.into_owned())),
        Some(HeaderValue::Header(_)) => Err(problem(
            part,
            "the Content-Type header is an email.header.Header object, which Python 2's \
             Message.get_content_type() cannot read",
        )),
    }
}

/// A parameter value as `decode_params` leaves it: plain, or RFC 2231
/// `(charset, language, value)`.
enum ParamValue {
    Plain(Vec<u8>),
    Rfc2231 { charset: Option<Vec<u8>>, value: Vec<u8> },
}

/// `msg.get_boundary()`: `None` without a Content-Type or boundary parameter.
pub(super) fn boundary(msg: &Message, part: &PartPath) -> Result<Option<Boundary>, crate::model::Error> {
    let Some(found) = content_type_param(msg, part, b"boundary")? else {
        return Ok(None);
    };
    let collapsed = match found {
        ParamValue::Plain(v) => Boundary { chars: unquote(&v).iter().map(|&c| c as u32).collect(), unicode: false },
        ParamValue::Rfc2231 { charset, value } => {
            let raw = unquote(&value);
            Boundary { chars: decode_2231(charset.as_deref(), &raw, part)?, unicode: true }
        }
    };
    Ok(Some(rstrip_boundary(collapsed)))
}

/// `msg.get_param(name)` on Content-Type as a byte string (unquoted); RFC 2231 values
/// are refused (Python hands back a tuple the callers here do not expect).
pub(super) fn param(msg: &Message, part: &PartPath, name: &[u8]) -> Result<Option<Vec<u8>>, crate::model::Error> {
    match content_type_param(msg, part, name)? {
        None => Ok(None),
        Some(ParamValue::Plain(v)) => Ok(Some(v)),
        Some(ParamValue::Rfc2231 { .. }) => Err(problem(
            part,
            format!("the Content-Type {} parameter is RFC 2231 encoded", String::from_utf8_lossy(name)),
        )),
    }
}

fn content_type_param(msg: &Message, part: &PartPath, name: &[u8]) -> Result<Option<ParamValue>, crate::model::Error> {
    let Some(value) = content_type_value(msg, part)? else {
        return Ok(None);
    };
    let mut semi = Vec::with_capacity(value.len() + 1);
    semi.push(b';');
    semi.extend_from_slice(&value);
    let raw: Vec<(Vec<u8>, Vec<u8>)> = parse_params(&semi)
        .into_iter()
        .map(|p| match p.iter().position(|&c| c == b'=') {
            Some(i) => (strip(&p[..i]).to_vec(), strip(&p[i + 1..]).to_vec()),
            None => (strip(&p).to_vec(), Vec::new()),
        })
        .collect();
    Ok(find_param(raw, name))
}

/// `decode_params` followed by `get_param`'s search: the first parameter (the type
/// itself) is left alone, plain parameters come first in order, RFC 2231 ones
/// (`name*`, `name*N`, `name*N*`) are joined after.
fn find_param(raw: Vec<(Vec<u8>, Vec<u8>)>, wanted: &[u8]) -> Option<ParamValue> {
    let mut iter = raw.into_iter();
    let (first_name, first_value) = iter.next()?;
    if first_name.eq_ignore_ascii_case(wanted) {
        return Some(unquote_value(ParamValue::Plain(first_value)));
    }
    let mut continuations: Vec<(Option<u64>, Vec<u8>, bool)> = Vec::new();
    for (name, value) in iter {
        let encoded = name.ends_with(b"*");
        let value = unquote(&value);
        match rfc2231_name(&name) {
            Some((base, num)) if base.eq_ignore_ascii_case(wanted) => continuations.push((num, value, encoded)),
            Some(_) => {}
            None if name.eq_ignore_ascii_case(wanted) => {
                let quoted = [b"\"".as_slice(), &quote(&value), b"\""].concat();
                return Some(unquote_value(ParamValue::Plain(quoted)));
            }
            None => {}
        }
    }
    if continuations.is_empty() {
        return None;
    }
    // Python 2 sorts the (num, value, encoded) tuples; None sorts before any number.
    continuations.sort();
    let mut joined = Vec::new();
    let mut extended = false;
    for (_, s, encoded) in continuations {
        if encoded {
            joined.extend(url_unquote(&s));
            extended = true;
        } else {
            joined.extend(s);
        }
    }
    let value = quote(&joined);
    let quoted = |v: &[u8]| [b"\"".as_slice(), v, b"\""].concat();
    let pv = if extended {
        let parts: Vec<&[u8]> = value.splitn(3, |&c| c == b'\'').collect();
        match parts.as_slice() {
            [charset, _language, v] => ParamValue::Rfc2231 { charset: Some(charset.to_vec()), value: quoted(v) },
            _ => ParamValue::Rfc2231 { charset: None, value: quoted(&value) },
        }
    } else {
        ParamValue::Plain(quoted(&value))
    };
    Some(unquote_value(pv))
}

/// `_unquotevalue`.
fn unquote_value(v: ParamValue) -> ParamValue {
    match v {
        ParamValue::Plain(s) => ParamValue::Plain(unquote(&s)),
        ParamValue::Rfc2231 { charset, value } => ParamValue::Rfc2231 { charset, value: unquote(&value) },
    }
}

/// `rfc2231_continuation = r'^(?P<name>\w+)\*((?P<num>[0-9]+)\*?)?$'`.
fn rfc2231_name(name: &[u8]) -> Option<(&[u8], Option<u64>)> {
    let star = name.iter().position(|&c| c == b'*')?;
    let (base, rest) = (&name[..star], &name[star + 1..]);
    if base.is_empty() || !base.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_') {
        return None;
    }
    if rest.is_empty() {
        return Some((base, None));
    }
    let digits = rest.strip_suffix(b"*").unwrap_or(rest);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // A number too large for u64 is still a number to Python; it sorts last.
    let num = std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()).unwrap_or(u64::MAX);
    Some((base, Some(num)))
}

/// `collapse_rfc2231_value`'s `unicode(rawval, charset or 'us-ascii', 'replace')`.
fn decode_2231(charset: Option<&[u8]>, raw: &[u8], part: &PartPath) -> Result<Vec<u32>, crate::model::Error> {
    if raw.is_ascii() {
        return Ok(raw.iter().map(|&c| c as u32).collect());
    }
    let name = String::from_utf8_lossy(charset.unwrap_or_default()).to_ascii_lowercase().replace('_', "-");
    match name.as_str() {
        "" | "us-ascii" | "ascii" => Ok(raw.iter().map(|&c| if c < 0x80 { c as u32 } else { 0xFFFD }).collect()),
        "iso-8859-1" | "latin-1" | "latin1" | "l1" => Ok(raw.iter().map(|&c| c as u32).collect()),
        "utf-8" | "utf8" => std::str::from_utf8(raw)
            .map(|s| s.chars().map(|c| c as u32).collect())
            .map_err(|_| problem(part, "the RFC 2231 multipart boundary is not valid UTF-8")),
        _ => Err(problem(
            part,
            format!("the RFC 2231 multipart boundary is in charset {name:?}, which is not supported"),
        )),
    }
}

fn rstrip_boundary(mut b: Boundary) -> Boundary {
    if b.unicode {
        while b.chars.last().is_some_and(|&c| is_unicode_space(c)) {
            b.chars.pop();
        }
    } else {
        let bytes: Vec<u8> = b.chars.iter().map(|&c| c as u8).collect();
        b.chars.truncate(rstrip(&bytes).len());
    }
    b
}

/// Python 2.7 `unicode.isspace()`.
fn is_unicode_space(c: u32) -> bool {
    matches!(c, 0x09..=0x0D | 0x1C..=0x20 | 0x85 | 0xA0 | 0x1680 | 0x180E | 0x2000..=0x200A | 0x2028 | 0x2029 | 0x202F | 0x205F | 0x3000)
}

/// `email.message._parseparam` on `';' + value`.
fn parse_params(s: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut s = s;
    while s.first() == Some(&b';') {
        s = &s[1..];
        let mut end = find_from(s, b';', 0);
        while let Some(e) = end.filter(|&e| e > 0) {
            let quotes = count(&s[..e], b"\"") as i64 - count(&s[..e], b"\\\"") as i64;
            if quotes % 2 == 0 {
                break;
            }
            end = find_from(s, b';', e + 1);
        }
        let end = end.unwrap_or(s.len());
        let f = &s[..end];
        let f = match f.iter().position(|&c| c == b'=') {
            Some(i) => [strip(&f[..i]).to_ascii_lowercase().as_slice(), b"=", strip(&f[i + 1..])].concat(),
            None => f.to_vec(),
        };
        out.push(strip(&f).to_vec());
        s = &s[end..];
    }
    out
}

fn find_from(s: &[u8], c: u8, from: usize) -> Option<usize> {
    s.get(from..)?.iter().position(|&x| x == c).map(|i| i + from)
}

/// Python's `str.count`: non-overlapping occurrences.
fn count(s: &[u8], pat: &[u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i + pat.len() <= s.len() {
        if &s[i..i + pat.len()] == pat {
            n += 1;
            i += pat.len();
        } else {
            i += 1;
        }
    }
    n
}

/// Python's `str.replace`: non-overlapping, left to right.
pub(super) fn replace(s: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// `email.utils.quote`.
pub(super) fn quote(s: &[u8]) -> Vec<u8> {
    replace(&replace(s, b"\\", b"\\\\"), b"\"", b"\\\"")
}

/// `email.utils.unquote`.
fn unquote(s: &[u8]) -> Vec<u8> {
    if s.len() > 1 {
        if s.starts_with(b"\"") && s.ends_with(b"\"") {
            return replace(&replace(&s[1..s.len() - 1], b"\\\\", b"\\"), b"\\\"", b"\"");
        }
        if s.starts_with(b"<") && s.ends_with(b">") {
            return s[1..s.len() - 1].to_vec();
        }
    }
    s.to_vec()
}

/// Python 2's `urllib.unquote`: `%XX` becomes the octet, anything else stays.
fn url_unquote(s: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if let (Some(h), Some(l)) = (s.get(i + 1).and_then(|&c| hex(c)), s.get(i + 2).and_then(|&c| hex(c))) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HeaderValue, Text};

    fn msg_with(ct: &[u8]) -> Message {
        let mut m = Message::new("Mailman.Message.Message", "text/plain");
        m.headers.push((Text::Bytes(b"Content-Type".to_vec()), HeaderValue::Text(Text::Bytes(ct.to_vec()))));
        m
    }

    fn b(ct: &[u8]) -> Option<Vec<u8>> {
        boundary(&msg_with(ct), &PartPath::default()).unwrap().map(|b| b.to_bytes(&PartPath::default()).unwrap())
    }

    #[test]
    fn content_types_as_python_2_reads_them() {
        let p = PartPath::default();
        assert_eq!(content_type(&msg_with(b" Multipart/Mixed ; boundary=x"), &p).unwrap(), b"multipart/mixed");
        assert_eq!(content_type(&msg_with(b"text"), &p).unwrap(), b"text/plain");
        assert_eq!(content_type(&msg_with(b"a/b/c"), &p).unwrap(), b"text/plain");
        assert_eq!(content_type(&Message::new("M", "message/rfc822"), &p).unwrap(), b"message/rfc822");
    }

    #[test]
    fn boundaries_as_python_2_unquotes_them() {
        assert_eq!(b(b"multipart/mixed; boundary=\"abc def\"").unwrap(), b"abc def");
        assert_eq!(b(b"multipart/mixed; BOUNDARY=abc  ").unwrap(), b"abc");
        assert_eq!(b(b"multipart/mixed; boundary=\"<abc>\"").unwrap(), b"abc");
        assert_eq!(b(b"multipart/mixed; x=\"a;b\"; boundary=q").unwrap(), b"q");
        assert_eq!(b(b"multipart/mixed; boundary*0=ab; boundary*1*=%41c").unwrap(), b"abAc");
        assert_eq!(b(b"multipart/mixed; boundary*=us-ascii''x%2Dy").unwrap(), b"x-y");
        assert_eq!(b(b"multipart/mixed"), None);
    }
}
