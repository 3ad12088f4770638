//! Python 3's `email.header.Header`: `encode` (RFC 2047 encoding and the
//! `_ValueFormatter` folding) and `__str__`, as compat32 folds every header with them.

use super::charset::{self, CodecError};
use super::pystr;
use crate::model::{Charset, HeaderObj, Text};

/// `Header.encode`'s default split characters.
const SPLITCHARS: &str = ";, \t";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    Codec(CodecError),
    /// `HeaderParseError`: a folded line would look like a new header field.
    EmbeddedHeader(String),
    /// Something Python 3's Header cannot hold (bytes, lone surrogates in a chunk).
    BadChunk(&'static str),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Codec(e) => e.fmt(f),
            HeaderError::EmbeddedHeader(v) => write!(f, "value appears to contain an embedded header: {v:?}"),
            HeaderError::BadChunk(what) => write!(f, "Header object holds {what}"),
        }
    }
}

impl From<CodecError> for HeaderError {
    fn from(e: CodecError) -> Self {
        HeaderError::Codec(e)
    }
}

/// A Header ready to encode: chunks of surrogate-free text, each in a charset.
pub struct Header {
    chunks: Vec<(String, Charset)>,
    headerlen: usize,
    continuation_ws: String,
}

impl Header {
    /// `Header(value, header_name=name)`: us-ascii, or utf-8 when the text is not ASCII.
    pub fn from_str(value: &str, name: &str) -> Result<Header, HeaderError> {
        let ascii = Charset::us_ascii();
        let cs = if charset::can_encode(&ascii, value)? { ascii } else { Charset::utf8() };
        Ok(Header {
            chunks: vec![(value.to_owned(), cs)],
            headerlen: pystr::len(name) + 2,
            continuation_ws: " ".into(),
        })
    }

    /// `Header(value)` without a field name (nothing reserved on the first line).
    pub fn unnamed(value: &str) -> Result<Header, HeaderError> {
        let mut h = Header::from_str(value, "")?;
        h.headerlen = 0;
        Ok(h)
    }

    /// A pickled `email.header.Header`.
    pub fn from_obj(h: &HeaderObj) -> Result<Header, HeaderError> {
        let chunks = h
            .chunks
            .iter()
            .map(|(t, cs)| Ok((chunk_text(t, cs)?, cs.clone())))
            .collect::<Result<Vec<_>, HeaderError>>()?;
        Ok(Header {
            chunks,
            headerlen: h.headerlen.and_then(|n| usize::try_from(n).ok()).unwrap_or(0),
            continuation_ws: py3_text(&h.continuation_ws)?,
        })
    }

    /// `_normalize`: adjacent chunks in the same charset become one, joined by a space.
    fn normalized(&self) -> Vec<(String, Charset)> {
        let mut out: Vec<(String, Charset)> = Vec::new();
        for (s, cs) in &self.chunks {
            match out.last_mut() {
                Some((last, last_cs)) if charset::is(last_cs, &cs.input_charset.to_lowercase()) => {
                    last.push(' ');
                    last.push_str(s);
                }
                _ => out.push((s.clone(), cs.clone())),
            }
        }
        out
    }

    /// `Header.encode(maxlinelen=..., linesep=...)`; a `maxlinelen` of 0 means no folding.
    pub fn encode(&self, maxlinelen: usize, linesep: &str) -> Result<String, HeaderError> {
        let maxlen = if maxlinelen == 0 { 1_000_000 } else { maxlinelen };
        let mut f = Formatter::new(self.headerlen, maxlen, &self.continuation_ws);
        let chunks = self.normalized();
        let mut lastcs: Option<&Charset> = None;
        let mut lastspace = false;
        for (i, (s, cs)) in chunks.iter().enumerate() {
            if i > 0 {
                let hasspace = s.chars().next().is_some_and(nonctext);
                if charset::is_non_ascii(lastcs) {
                    if !hasspace || charset::is_non_ascii(Some(cs)) {
                        f.add_transition();
                    }
                } else if charset::is_non_ascii(Some(cs)) && !lastspace {
                    f.add_transition();
                }
            }
            lastspace = s.chars().last().is_some_and(nonctext);
            lastcs = Some(cs);
            let lines = pystr::splitlines(s);
            f.feed("", lines.first().copied().unwrap_or(""), cs)?;
            for line in lines.iter().skip(1) {
                f.newline();
                if cs.header_encoding.is_some() {
                    f.feed(&self.continuation_ws, &format!(" {}", pystr::lstrip(line)), cs)?;
                } else {
                    let sline = pystr::lstrip(line);
                    f.feed(&line[..line.len() - sline.len()], sline, cs)?;
                }
            }
            if lines.len() > 1 {
                f.newline();
            }
        }
        if !chunks.is_empty() {
            f.add_transition();
        }
        let value = f.finish(linesep);
        if has_embedded_header(&value) {
            return Err(HeaderError::EmbeddedHeader(value));
        }
        Ok(value)
    }

    /// `str(header)`: the chunks joined, spaces added between encoded and plain text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut lastcs: Option<Charset> = None;
        let mut lastspace = false;
        for (i, (s, cs)) in self.normalized().into_iter().enumerate() {
            let s = if charset::is(&cs, charset::UNKNOWN8BIT) {
                s.chars().map(|c| if raw_byte(c).is_ok_and(|b| b >= 0x80) { '\u{fffd}' } else { c }).collect()
            } else {
                s
            };
            let mut nextcs = Some(cs);
            if i > 0 {
                let hasspace = s.chars().next().is_some_and(nonctext);
                if charset::is_non_ascii(lastcs.as_ref()) {
                    if !charset::is_non_ascii(nextcs.as_ref()) && !hasspace {
                        out.push(' ');
                        nextcs = None;
                    }
                } else if charset::is_non_ascii(nextcs.as_ref()) && !lastspace {
                    out.push(' ');
                }
            }
            lastspace = s.chars().last().is_some_and(nonctext);
            lastcs = nextcs;
            out.push_str(&s);
        }
        out
    }
}

/// 8-bit octets (U+DC80..U+DCFF in Python) stand in a Header's Rust text as the
/// private-use characters U+10FF80..U+10FFFF, one per octet, so that lengths and
/// splitting work as on Python's str; [`raw_bytes`] turns them back into octets.
const RAW_BASE: u32 = 0x10_FF00;

/// A chunk's text. Octets kept as surrogates survive where Python lets them: in a
/// chunk that is not encoded (written back raw) or in unknown-8bit (encoded as octets).
fn chunk_text(t: &Text, cs: &Charset) -> Result<String, HeaderError> {
    let Text::Str(s) = t else { return Err(HeaderError::BadChunk("a byte string")) };
    if let Some(plain) = s.as_str() {
        return Ok(plain.to_owned());
    }
    if cs.header_encoding.is_some() && !charset::is(cs, charset::UNKNOWN8BIT) {
        return Err(HeaderError::BadChunk("8-bit octets in a chunk that must be encoded"));
    }
    s.code_points()
        .map(|cp| match cp {
            0xDC80..=0xDCFF => char::from_u32(RAW_BASE + (cp - 0xDC00)),
            _ => char::from_u32(cp),
        })
        .collect::<Option<String>>()
        .ok_or(HeaderError::BadChunk("lone surrogates that are not 8-bit octets"))
}

/// Folded header text as octets: ASCII, and 8-bit octets that were surrogates; any
/// other character is what `encode('ascii', 'surrogateescape')` rejects.
pub fn raw_bytes(s: &str) -> Result<Vec<u8>, char> {
    s.chars().map(raw_byte).collect()
}

pub fn raw_byte(c: char) -> Result<u8, char> {
    match c as u32 {
        cp @ 0..=0x7F => Ok(cp as u8),
        cp @ 0x10_FF80..=0x10_FFFF => Ok((cp - RAW_BASE) as u8),
        _ => Err(c),
    }
}

fn py3_text(t: &Text) -> Result<String, HeaderError> {
    match t {
        Text::Str(s) => s.as_str().map(str::to_owned).ok_or(HeaderError::BadChunk("text with lone surrogates")),
        Text::Bytes(_) => Err(HeaderError::BadChunk("a byte string")),
    }
}

/// `_nonctext`: whitespace or one of `( ) \`.
fn nonctext(c: char) -> bool {
    pystr::is_space(c) || matches!(c, '(' | ')' | '\\')
}

/// `_embedded_header`: `\n[^ \t]+:` anywhere (the run may cross further newlines).
fn has_embedded_header(v: &str) -> bool {
    let b = v.as_bytes();
    b.iter().enumerate().filter(|(_, &c)| c == b'\n').any(|(p, _)| {
        let run = b[p + 1..].iter().take_while(|&&c| c != b' ' && c != b'\t');
        run.enumerate().any(|(k, &c)| c == b':' && k > 0)
    })
}

/// `_Accumulator`: the line being built, as (whitespace, text) pairs.
struct Accumulator {
    initial_size: usize,
    parts: Vec<(String, String)>,
}

impl Accumulator {
    fn len(&self) -> usize {
        self.initial_size + self.parts.iter().map(|(a, b)| pystr::len(a) + pystr::len(b)).sum::<usize>()
    }

    fn text(&self) -> String {
        self.parts.iter().flat_map(|(a, b)| [a.as_str(), b.as_str()]).collect()
    }

    fn pop(&mut self) -> (String, String) {
        self.parts.pop().unwrap_or_default()
    }

    fn reset(&mut self, parts: Vec<(String, String)>) {
        self.parts = parts;
        self.initial_size = 0;
    }

    fn is_onlyws(&self) -> bool {
        self.initial_size == 0 && (self.parts.is_empty() || self.text().chars().all(pystr::is_space))
    }
}

/// `_ValueFormatter`.
struct Formatter<'a> {
    maxlen: usize,
    continuation_ws: &'a str,
    lines: Vec<String>,
    current: Accumulator,
}

impl<'a> Formatter<'a> {
    fn new(headerlen: usize, maxlen: usize, continuation_ws: &'a str) -> Self {
        Formatter {
            maxlen,
            continuation_ws,
            lines: Vec::new(),
            current: Accumulator { initial_size: headerlen, parts: Vec::new() },
        }
    }

    fn finish(mut self, linesep: &str) -> String {
        self.newline();
        self.lines.join(linesep)
    }

    fn newline(&mut self) {
        let end = self.current.pop();
        if end != (" ".to_owned(), String::new()) {
            self.current.parts.push(end);
        }
        if self.current.len() > 0 {
            if self.current.is_onlyws() && !self.lines.is_empty() {
                let text = self.current.text();
                if let Some(last) = self.lines.last_mut() {
                    last.push_str(&text);
                }
            } else {
                self.lines.push(self.current.text());
            }
        }
        self.current.reset(Vec::new());
    }

    fn add_transition(&mut self) {
        self.current.parts.push((" ".into(), String::new()));
    }

    fn feed(&mut self, fws: &str, s: &str, cs: &Charset) -> Result<(), HeaderError> {
        if cs.header_encoding.is_none() {
            self.ascii_split(fws, s);
            return Ok(());
        }
        let first_max = self.maxlen as i64 - self.current.len() as i64;
        let rest_max = self.maxlen as i64 - pystr::len(self.continuation_ws) as i64;
        let mut calls = 0;
        let mut encoded = charset::header_encode_lines(cs, s, || {
            calls += 1;
            if calls == 1 {
                first_max
            } else {
                rest_max
            }
        })?;
        if encoded.is_empty() {
            return Ok(());
        }
        let first = encoded.remove(0);
        if let Some(first) = first {
            self.append_chunk(fws, &first);
        }
        let Some(last) = encoded.pop() else { return Ok(()) };
        self.newline();
        self.current.parts.push((self.continuation_ws.to_owned(), last.unwrap_or_default()));
        for line in encoded {
            self.lines.push(format!("{}{}", self.continuation_ws, line.unwrap_or_default()));
        }
        Ok(())
    }

    /// `_ascii_split`: split at runs of blanks, each run kept with the word after it.
    fn ascii_split(&mut self, fws: &str, s: &str) {
        let joined = format!("{fws}{s}");
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut ws = String::new();
        let mut word = String::new();
        let mut in_ws = false;
        for c in joined.chars() {
            let blank = c == ' ' || c == '\t';
            if blank && !in_ws {
                pairs.push((std::mem::take(&mut ws), std::mem::take(&mut word)));
                in_ws = true;
            } else if !blank && in_ws {
                in_ws = false;
            }
            if blank {
                ws.push(c);
            } else {
                word.push(c);
            }
        }
        pairs.push((ws, word));
        // re.split gives a leading '' when the text starts with blanks; Python drops it,
        // and otherwise pairs the first word with no whitespace: both are the same as
        // skipping an empty first pair.
        let skip_first = pairs.first().is_some_and(|(w, t)| w.is_empty() && t.is_empty());
        for (w, t) in pairs.into_iter().skip(usize::from(skip_first)) {
            self.append_chunk(&w, &t);
        }
    }

    fn append_chunk(&mut self, fws: &str, s: &str) {
        self.current.parts.push((fws.to_owned(), s.to_owned()));
        if self.current.len() <= self.maxlen {
            return;
        }
        let n = self.current.parts.len();
        let mut split_at = None;
        'chars: for ch in SPLITCHARS.chars() {
            for i in (1..n).rev() {
                if pystr::is_space(ch) && self.current.parts[i].0.starts_with(ch) {
                    split_at = Some(i);
                    break 'chars;
                }
                if self.current.parts[i - 1].1.ends_with(ch) {
                    split_at = Some(i);
                    break 'chars;
                }
            }
        }
        match split_at {
            None => {
                let (mut fws, part) = self.current.pop();
                if self.current.initial_size > 0 {
                    self.newline();
                    if fws.is_empty() {
                        fws = " ".into();
                    }
                }
                self.current.parts.push((fws, part));
            }
            Some(i) => {
                let remainder = self.current.parts.split_off(i);
                self.lines.push(self.current.text());
                self.current.reset(remainder);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(name: &str, value: &str) -> String {
        Header::from_str(value, name).unwrap().encode(78, "\r\n").unwrap()
    }

    #[test]
    fn short_ascii_is_unchanged() {
        assert_eq!(fold("Subject", "hello world"), "hello world");
        assert_eq!(fold("Subject", ""), "");
    }

    #[test]
    fn long_ascii_folds_at_blanks() {
        let v = "word ".repeat(20);
        let folded = fold("Subject", v.trim_end());
        assert!(folded.split("\r\n").all(|l| l.len() <= 78));
        assert_eq!(folded.replace("\r\n", ""), v.trim_end());
    }

    #[test]
    fn existing_line_breaks_are_kept() {
        assert_eq!(fold("To", "a@example.com,\n\tb@example.com"), "a@example.com,\r\n\tb@example.com");
    }

    #[test]
    fn non_ascii_becomes_encoded_words() {
        assert_eq!(fold("Subject", "caf\u{e9}"), "=?utf-8?b?Y2Fmw6k=?=");
    }
}
