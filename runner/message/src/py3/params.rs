//! What Python 3's `email.message.Message` reads from `Content-Type`: the content type
//! (`get_content_type`) and the multipart boundary (`get_boundary`), with the quirks of
//! `_parseparam`, `decode_params` (RFC 2231) and `collapse_rfc2231_value`.

use super::header::Header;
use super::pystr;
use crate::model::{HeaderValue, Message, Text};

/// `msg.get(name)` turned into text as `str()` would: the first field of that name.
fn get(msg: &Message, name: &str) -> Option<String> {
    msg.headers.iter().find(|(k, _)| k.to_string_lossy().to_lowercase() == name).map(|(_, v)| value_text(v))
}

/// `str(value)` after compat32's `header_fetch_parse`: a value with 8-bit octets becomes
/// an unknown-8bit Header, whose text shows each octet as U+FFFD.
fn value_text(v: &HeaderValue) -> String {
    match v {
        HeaderValue::Text(t) => t.to_string_lossy(),
        HeaderValue::Header(h) => match Header::from_obj(h) {
            Ok(h) => h.to_text(),
            Err(_) => h.chunks.iter().map(|(t, _)| t.to_string_lossy()).collect::<Vec<_>>().join(" "),
        },
    }
}

/// `get_content_type()`: lower-cased `maintype/subtype`, `text/plain` when malformed,
/// the default type when there is no `Content-Type`.
pub fn content_type(msg: &Message) -> String {
    match get(msg, "content-type") {
        None => msg.default_type.to_string_lossy(),
        Some(v) => {
            let ctype = pystr::strip(v.split(';').next().unwrap_or("")).to_lowercase();
            if ctype.matches('/').count() != 1 {
                "text/plain".to_owned()
            } else {
                ctype
            }
        }
    }
}

/// `get_boundary()`: `None` when there is no `Content-Type` or no `boundary` parameter.
pub fn boundary(msg: &Message) -> Option<String> {
    let value = get(msg, "content-type")?;
    let params = decode_params(parse_params(&value));
    let found = params.into_iter().find(|(k, _)| k.to_lowercase() == "boundary")?;
    let collapsed = match found.1 {
        ParamValue::Plain(v) => unquote(&unquote(&v)),
        ParamValue::Rfc2231 { charset, text, .. } => collapse_rfc2231(charset.as_deref(), &unquote(&text)),
    };
    Some(collapsed.trim_end_matches(pystr::is_space).to_owned())
}

/// `set_boundary(boundary)`: the new `Content-Type` text, parameters re-joined with the
/// boundary replaced or appended; `None` when there is no `Content-Type` (Python raises).
pub fn with_boundary(msg: &Message, boundary: &str) -> Option<String> {
    let value = get(msg, "content-type")?;
    let mut found = false;
    let mut parts = Vec::new();
    for (k, v) in decode_params(parse_params(&value)) {
        let v = if k.to_lowercase() == "boundary" {
            found = true;
            parts.push(format!("boundary=\"{boundary}\""));
            continue;
        } else {
            match v {
                ParamValue::Plain(v) => v,
                // '%s=%s' % (k, v) with v a (charset, language, value) tuple.
                ParamValue::Rfc2231 { charset, language, text } => format!(
                    "({}, {}, {})",
                    charset.as_deref().map_or("None".to_owned(), py_repr),
                    language.as_deref().map_or("None".to_owned(), py_repr),
                    py_repr(&text)
                ),
            }
        };
        parts.push(if v.is_empty() { k } else { format!("{k}={v}") });
    }
    if !found {
        parts.push(format!("boundary=\"{boundary}\""));
    }
    Some(parts.join("; "))
}

/// `get_params()` (values unquoted) of `Content-Type`; `None` without that header. An
/// RFC 2231 value, which Python hands back as a tuple, is `None`.
pub(crate) fn content_type_params(msg: &Message) -> Option<Vec<(String, Option<String>)>> {
    let value = get(msg, "content-type")?;
    Some(
        decode_params(parse_params(&value))
            .into_iter()
            .map(|(k, v)| match v {
                ParamValue::Plain(v) => (k, Some(unquote(&v))),
                ParamValue::Rfc2231 { .. } => (k, None),
            })
            .collect(),
    )
}

/// `repr(s)` for a str, as Python quotes it.
fn py_repr(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::from(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

/// `_parseparam` followed by `_get_params_preserve`'s split into (name, value).
fn parse_params(value: &str) -> Vec<(String, String)> {
    let mut s: Vec<char> = std::iter::once(';').chain(value.chars()).collect();
    let mut plist = Vec::new();
    while s.first() == Some(&';') {
        s.remove(0);
        let find = |from: usize, s: &[char]| s.iter().skip(from).position(|&c| c == ';').map(|p| p + from);
        let mut end = find(0, &s);
        while let Some(e) = end {
            let quotes = s[..e].iter().filter(|&&c| c == '"').count();
            let escaped = s[..e].windows(2).filter(|w| w == &['\\', '"']).count();
            if e == 0 || (quotes - escaped) % 2 == 0 {
                break;
            }
            end = find(e + 1, &s);
        }
        let end = end.unwrap_or(s.len());
        let f: String = s[..end].iter().collect();
        let f = match f.split_once('=') {
            Some((k, v)) => format!("{}={}", pystr::strip(k).to_lowercase(), pystr::strip(v)),
            None => f,
        };
        plist.push(pystr::strip(&f).to_owned());
        s.drain(..end);
    }
    plist
        .into_iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (pystr::strip(k).to_owned(), pystr::strip(v).to_owned()),
            None => (pystr::strip(&p).to_owned(), String::new()),
        })
        .collect()
}

enum ParamValue {
    Plain(String),
    Rfc2231 { charset: Option<String>, language: Option<String>, text: String },
}

/// One RFC 2231 segment: its number, its text, whether it was %-encoded (`name*`).
type Segment = (Option<u64>, String, bool);

/// `utils.decode_params`: RFC 2231 continuations joined and moved after the others.
fn decode_params(params: Vec<(String, String)>) -> Vec<(String, ParamValue)> {
    let mut iter = params.into_iter();
    let mut out = Vec::new();
    if let Some((k, v)) = iter.next() {
        out.push((k, ParamValue::Plain(v)));
    }
    let mut continued: Vec<(String, Vec<Segment>)> = Vec::new();
    for (name, value) in iter {
        let encoded = name.ends_with('*');
        let value = unquote(&value);
        match rfc2231_continuation(&name) {
            Some((base, num)) => match continued.iter_mut().find(|(n, _)| *n == base) {
                Some((_, segs)) => segs.push((num, value, encoded)),
                None => continued.push((base, vec![(num, value, encoded)])),
            },
            None => out.push((name, ParamValue::Plain(format!("\"{}\"", quote(&value))))),
        }
    }
    for (name, mut segs) in continued {
        segs.sort();
        let extended = segs.iter().any(|s| s.2);
        let joined: String =
            segs.into_iter().map(|(_, s, enc)| if enc { percent_decode_latin1(&s) } else { s }).collect();
        let value = quote(&joined);
        if extended {
            let parts: Vec<&str> = value.splitn(3, '\'').collect();
            let (charset, language, text) = match parts.as_slice() {
                [cs, lang, text] => (Some((*cs).to_owned()), Some((*lang).to_owned()), (*text).to_owned()),
                _ => (None, None, value.clone()),
            };
            out.push((name, ParamValue::Rfc2231 { charset, language, text: format!("\"{text}\"") }));
        } else {
            out.push((name, ParamValue::Plain(format!("\"{value}\""))));
        }
    }
    out
}

/// `^(?P<name>\w+)\*((?P<num>[0-9]+)\*?)?$` (ASCII).
fn rfc2231_continuation(name: &str) -> Option<(String, Option<u64>)> {
    let star = name.find('*')?;
    let (base, rest) = (&name[..star], &name[star + 1..]);
    if base.is_empty() || !base.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    if rest.is_empty() {
        return Some((base.to_owned(), None));
    }
    let digits = rest.strip_suffix('*').unwrap_or(rest);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((base.to_owned(), digits.parse().ok()))
}

/// `urllib.parse.unquote(s, encoding="latin-1")`.
fn percent_decode_latin1(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
            if let Ok(n) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(n as char);
                i += 3;
                continue;
            }
        }
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// `collapse_rfc2231_value` of an (charset, language, text) triple.
fn collapse_rfc2231(charset: Option<&str>, text: &str) -> String {
    // bytes(text, 'raw-unicode-escape') then decoded with the charset, errors replaced.
    let mut raw = Vec::new();
    for ch in text.chars() {
        match u8::try_from(ch as u32) {
            Ok(b) => raw.push(b),
            Err(_) if (ch as u32) < 0x10000 => raw.extend(format!("\\u{:04x}", ch as u32).bytes()),
            Err(_) => raw.extend(format!("\\U{:08x}", ch as u32).bytes()),
        }
    }
    match charset.unwrap_or("us-ascii").to_lowercase().replace('_', "-").as_str() {
        "us-ascii" | "ascii" => raw.iter().map(|&b| if b < 0x80 { b as char } else { '\u{fffd}' }).collect(),
        "utf-8" | "utf8" => String::from_utf8_lossy(&raw).into_owned(),
        "iso-8859-1" | "latin-1" | "latin1" => raw.iter().map(|&b| b as char).collect(),
        // Python would try the codec; an unknown one falls back to the text itself.
        _ => unquote(text),
    }
}

/// `utils.unquote`.
fn unquote(s: &str) -> String {
    if pystr::len(s) > 1 {
        if s.starts_with('"') && s.ends_with('"') {
            return s[1..s.len() - 1].replace("\\\\", "\\").replace("\\\"", "\"");
        }
        if s.starts_with('<') && s.ends_with('>') {
            return s[1..s.len() - 1].to_owned();
        }
    }
    s.to_owned()
}

/// `utils.quote`.
fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The text of a header name, for comparisons.
pub fn name_is(name: &Text, lower: &str) -> bool {
    name.to_string_lossy().to_lowercase() == lower
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ct: &str) -> Message {
        let mut m = Message::new("email.message.Message", "text/plain");
        m.headers.push((Text::from("Content-Type"), HeaderValue::Text(Text::from(ct))));
        m
    }

    #[test]
    fn boundary_forms() {
        assert_eq!(boundary(&msg("multipart/mixed; boundary=\"abc def\"")).as_deref(), Some("abc def"));
        assert_eq!(boundary(&msg("multipart/mixed;\n\tBOUNDARY=xyz ")).as_deref(), Some("xyz"));
        assert_eq!(boundary(&msg("multipart/mixed; charset=x")), None);
        assert_eq!(boundary(&msg("multipart/mixed; boundary*0=ab; boundary*1=cd")).as_deref(), Some("abcd"));
        assert_eq!(boundary(&msg("multipart/mixed; boundary=\"a;b\"")).as_deref(), Some("a;b"));
    }

    #[test]
    fn content_type_rules() {
        assert_eq!(content_type(&msg("Text/HTML; charset=x")), "text/html");
        assert_eq!(content_type(&msg("garbage")), "text/plain");
        assert_eq!(content_type(&Message::new("m", "message/rfc822")), "message/rfc822");
    }
}
