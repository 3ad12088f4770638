//! Mailman 2.1 on Python 2.7 (email 4.0.3): its parser for text entries, and the bytes
//! `SMTPDirect` hands to `smtplib` (`Errors-To` set, Mailman's generator, smtplib's
//! line endings).

mod charset;
mod codec;
pub use codec::{carried_single_byte, single_byte_decode, single_byte_encode, single_byte_lookup};
pub mod decorate;
mod generator;
mod header;
mod params;
pub mod parser;

use crate::model::{Error, HeaderValue, Message, PartPath, Text};
use std::borrow::Cow;

/// Python's recursion limit (1000 frames) as Mailman 2.1's delivery meets it: the
/// generator spends 4 frames per MIME nesting level (`_write`, `_dispatch`, the
/// handler, `flatten`) below 13 frames of qrunner, Runner, OutgoingRunner, SMTPDirect
/// and `as_string`, so Mailman fails on parts nested deeper than this, and so do we.
/// (py2_differential.py replays that call depth and checks both sides of the limit.)
const MAX_NESTING: usize = 245;

/// How many times `Header._split` can recurse (one encoded line each) while the
/// top-level headers are written, by the same frame count; 4 fewer per nesting level.
const MAX_SPLIT_LINES_AT_TOP: usize = 979;

/// What Mailman 2.1's delivery sends in DATA for `msg` (before dot-stuffing): every
/// `Errors-To` replaced by one carrying `envsender`, then [`flatten`].
pub fn delivery_bytes(msg: &Message, envsender: &str) -> Result<Vec<u8>, Error> {
    flatten(&with_errors_to(msg, envsender))
}

/// `msg.as_string(mangle_from_=False)` with Mailman 2.1's generator, after smtplib's
/// line-ending fix (every CRLF, lone LF and lone CR becomes CRLF; a final CRLF added).
pub fn flatten(msg: &Message) -> Result<Vec<u8>, Error> {
    Ok(smtp_line_endings(&generator::as_string(msg)?))
}

/// `SMTPDirect`: `del msg['errors-to']; msg['Errors-To'] = envsender`.
fn with_errors_to(msg: &Message, envsender: &str) -> Message {
    let mut out = msg.clone();
    out.headers.retain(|(name, _)| !name_is(name, b"errors-to"));
    out.headers
        .push((Text::Bytes(b"Errors-To".to_vec()), HeaderValue::Text(Text::Bytes(envsender.as_bytes().to_vec()))));
    out
}

/// `smtplib.SMTP.data`'s `re.sub(r'(?:\r\n|\n|\r(?!\n))', CRLF, msg)` plus the final CRLF.
fn smtp_line_endings(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 16 + 2);
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'\r' if data.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
            }
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Python's `name.lower() == lowered` for a header name (`lower` of a byte string only
/// changes ASCII letters).
fn name_is(name: &Text, lowered: &[u8]) -> bool {
    match name {
        Text::Bytes(b) => b.eq_ignore_ascii_case(lowered),
        Text::Str(s) => s.as_wtf8().eq_ignore_ascii_case(lowered),
    }
}

/// The first header called `name` (any case), as `Message.get` finds it.
fn get_header<'a>(msg: &'a Message, lowered: &[u8]) -> Option<&'a HeaderValue> {
    msg.headers.iter().find(|(k, _)| name_is(k, lowered)).map(|(_, v)| v)
}

/// A Python 2 string where the email package needs a byte string: `str` as it is,
/// `unicode` only when it is ASCII (what cStringIO and implicit coercion accept).
fn ascii_bytes<'a>(t: &'a Text, part: &PartPath, what: &str) -> Result<Cow<'a, [u8]>, Error> {
    match t {
        Text::Bytes(b) => Ok(Cow::Borrowed(b)),
        Text::Str(s) if s.as_wtf8().is_ascii() => Ok(Cow::Borrowed(s.as_wtf8())),
        Text::Str(_) => {
            Err(problem(part, format!("{what} is a non-ASCII unicode string, which Python 2's generator cannot write")))
        }
    }
}

/// Runs one level of the parser's or generator's recursion with enough stack: a part
/// nested [`MAX_NESTING`] deep must not overflow whatever thread flattens it.
fn with_stack<T>(f: impl FnOnce() -> T) -> T {
    stacker::maybe_grow(64 * 1024, 1024 * 1024, f)
}

fn problem(part: &PartPath, text: impl Into<String>) -> Error {
    Error::Unrepresentable { part: part.clone(), problem: text.into() }
}

fn child(part: &PartPath, index: usize) -> PartPath {
    let mut p = part.0.clone();
    p.push(index + 1);
    PartPath(p)
}

/// Python 2 `str.isspace()` per byte: what `strip`, `lstrip` and `rstrip` remove.
fn is_py2_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn strip(s: &[u8]) -> &[u8] {
    rstrip(lstrip(s))
}

fn lstrip(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&c| !is_py2_space(c)).unwrap_or(s.len());
    &s[start..]
}

fn rstrip(s: &[u8]) -> &[u8] {
    let end = s.iter().rposition(|&c| !is_py2_space(c)).map_or(0, |i| i + 1);
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtplib_makes_every_line_end_crlf() {
        assert_eq!(smtp_line_endings(b"a\nb\r\nc\rd"), b"a\r\nb\r\nc\r\nd\r\n");
        assert_eq!(smtp_line_endings(b"a\r\r\n"), b"a\r\n\r\n");
        assert_eq!(smtp_line_endings(b""), b"\r\n");
    }
}
