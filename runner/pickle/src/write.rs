//! Writes a metadata dict back into a queue entry in the form the owning Mailman
//! writes it when it recovers an entry: protocol 0 for text entries (`_parsemsg`
//! true), else protocol 1, as Python 2.7's `cPickle` (Mailman 2.1) or Python 3's
//! `pickle` (Mailman 3) would. For Mailman 3 the bytes equal what Python 3.11 writes
//! for the same values (tests check this against the real interpreter); for Mailman
//! 2.1 they differ only in which strings get memo entries (cPickle decides that by
//! reference counts), which does not change what is loaded.
//!
//! serde-pickle is not used for writing: it writes protocol 2 or 3 only, and bytes as
//! `BINBYTES`, which Python 2 cannot read, and it has no `datetime` or Python 2 `str`.
//! It is used in the tests as an independent reader for plain-data pickles.
//!
//! Only plain data can be written: instances (`Value::Object`) are an error, as
//! Mailman's metadata never holds them.

use crate::graph::MAX_DEPTH;
use crate::read::Entry;
use crate::value::{DateTime, PyStr, Value};
use std::collections::HashMap;

/// Which Python's pickler to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Mailman 2.1: Python 2.7 `cPickle`. `Bytes` are `str`, `Str` is `unicode`.
    Mailman2,
    /// Mailman 3: Python 3 `pickle`. `Bytes` are `bytes`, `Str` is `str`.
    Mailman3,
}

impl Dialect {
    /// Which Mailman wrote `entry`: Mailman 3 writes protocol 5 message objects and
    /// text (`str`) message strings; Mailman 2.1 protocol 1 objects and byte strings.
    pub fn of(entry: &Entry) -> Dialect {
        let mailman3 = entry.message_protocol >= 2
            || match &entry.message {
                Value::Str(_) => true,
                Value::Object(o) => o.module.starts_with("mailman."),
                _ => false,
            };
        if mailman3 {
            Dialect::Mailman3
        } else {
            Dialect::Mailman2
        }
    }
}

/// Why a value could not be written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write {what} into queue metadata")]
    Unsupported { what: String },
    #[error("only pickle protocols 0 and 1 are written, not {0}")]
    Protocol(u8),
    #[error("metadata nesting deeper than {limit}")]
    TooDeep { limit: usize },
}

/// The protocol Mailman uses when it rewrites the metadata of an entry (on recovery):
/// 0 for text entries, else 1.
pub fn metadata_protocol(metadata: &Value) -> u8 {
    match metadata.get("_parsemsg") {
        Some(flag) if flag.is_truthy() => 0,
        _ => 1,
    }
}

/// A new entry file: the message pickle of `file` (its first `message_len` bytes, kept
/// byte for byte) followed by `metadata` written as the owning Mailman would.
pub fn rewrite_metadata(
    file: &[u8],
    message_len: usize,
    metadata: &Value,
    dialect: Dialect,
) -> Result<Vec<u8>, WriteError> {
    let message = file.get(..message_len).unwrap_or(file);
    let mut out = message.to_vec();
    out.extend(write(metadata, dialect, metadata_protocol(metadata))?);
    Ok(out)
}

/// `value` as one pickle of `protocol` (0 or 1) in `dialect`.
pub fn write(value: &Value, dialect: Dialect, protocol: u8) -> Result<Vec<u8>, WriteError> {
    if protocol > 1 {
        return Err(WriteError::Protocol(protocol));
    }
    let mut w = Writer {
        out: Vec::new(),
        dialect,
        binary: protocol == 1,
        // cPickle numbers memo entries from 1, Python 3 from 0.
        next_memo: if dialect == Dialect::Mailman2 { 1 } else { 0 },
        shared: HashMap::new(),
    };
    w.save(value, 0)?;
    w.out.push(b'.');
    Ok(w.out)
}

/// Objects Python would find to be the *same* object, so the second occurrence is a
/// memo `GET`: classes, the `'latin1'` constant, and (Python 3) the cached empty and
/// one-character strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Shared {
    Global(String, String),
    Latin1,
    Str(Vec<u8>),
    Bytes(Vec<u8>),
}

struct Writer {
    out: Vec<u8>,
    dialect: Dialect,
    binary: bool,
    next_memo: u32,
    shared: HashMap<Shared, u32>,
}

impl Writer {
    fn save(&mut self, v: &Value, depth: usize) -> Result<(), WriteError> {
        if depth > MAX_DEPTH {
            return Err(WriteError::TooDeep { limit: MAX_DEPTH });
        }
        match v {
            Value::None => self.out.push(b'N'),
            Value::Bool(b) => self.out.extend_from_slice(if *b { b"I01\n" } else { b"I00\n" }),
            Value::Int(i) => self.int(*i),
            Value::BigInt(b) => {
                let digits = b.to_string();
                // Python 3 refuses to print such an integer, and so to pickle it.
                if digits.trim_start_matches('-').len() > crate::text::MAX_INT_DIGITS {
                    return Err(WriteError::Unsupported { what: "an integer of more than 4300 digits".into() });
                }
                self.text_op(b'L', &format!("{digits}L"));
            }
            Value::Float(f) => {
                if self.binary {
                    self.out.push(b'G');
                    self.out.extend_from_slice(&f.to_be_bytes());
                } else {
                    self.text_op(b'F', &python_float_repr(*f));
                }
            }
            Value::Bytes(b) => self.bytes(b)?,
            Value::Str(s) => self.str(s)?,
            Value::List(items) => {
                self.out.extend_from_slice(if self.binary { b"]" } else { b"(l" });
                self.memoize();
                self.batched(items.iter().map(|v| (v, None)).collect(), b'a', b'e', depth)?;
            }
            Value::Tuple(items) => self.tuple(items, depth)?,
            Value::Dict(pairs) => {
                self.out.extend_from_slice(if self.binary { b"}" } else { b"(d" });
                self.memoize();
                self.batched(pairs.iter().map(|(k, v)| (k, Some(v))).collect(), b's', b'u', depth)?;
            }
            Value::Set(items) => self.reduce_builtin("set", items, depth)?,
            Value::FrozenSet(items) => self.reduce_builtin("frozenset", items, depth)?,
            Value::DateTime(d) => {
                self.global("datetime", "datetime");
                self.tuple(&[Value::Bytes(datetime_state(d).to_vec())], depth)?;
                self.out.push(b'R');
                self.memoize();
            }
            Value::Global { module, name } => {
                if module.contains('\n') || name.contains('\n') {
                    return Err(WriteError::Unsupported { what: "a class name with a line break".into() });
                }
                self.global(module, name);
            }
            Value::Object(o) => {
                return Err(WriteError::Unsupported { what: format!("an instance of {}", o.class_path()) })
            }
        }
        Ok(())
    }

    fn text_op(&mut self, op: u8, text: &str) {
        self.out.push(op);
        self.out.extend_from_slice(text.as_bytes());
        self.out.push(b'\n');
    }

    fn int(&mut self, i: i64) {
        match (self.binary, i) {
            (true, 0..=0xFF) => self.out.extend_from_slice(&[b'K', i as u8]),
            (true, 0..=0xFFFF) => {
                self.out.push(b'M');
                self.out.extend_from_slice(&(i as u16).to_le_bytes());
            }
            (true, _) if i32::try_from(i).is_ok() => {
                self.out.push(b'J');
                self.out.extend_from_slice(&(i as i32).to_le_bytes());
            }
            // Python 2 `int` is 64 bits; Python 3 writes ints beyond 32 bits as `long`.
            _ if self.dialect == Dialect::Mailman2 || i32::try_from(i).is_ok() => self.text_op(b'I', &i.to_string()),
            _ => self.text_op(b'L', &format!("{i}L")),
        }
    }

    fn bytes(&mut self, b: &[u8]) -> Result<(), WriteError> {
        match self.dialect {
            Dialect::Mailman2 => {
                match (self.binary, u8::try_from(b.len())) {
                    (true, Ok(n)) => self.out.extend_from_slice(&[b'U', n]),
                    (true, Err(_)) => {
                        self.out.push(b'T');
                        let n = u32::try_from(b.len())
                            .map_err(|_| WriteError::Unsupported { what: "a string of 4 GiB or more".into() })?;
                        self.out.extend_from_slice(&n.to_le_bytes());
                    }
                    (false, _) => {
                        self.out.push(b'S');
                        self.out.extend_from_slice(&python2_str_repr(b));
                        self.out.push(b'\n');
                        return Ok(());
                    }
                }
                self.out.extend_from_slice(b);
            }
            Dialect::Mailman3 => {
                // Protocols < 3 have no bytes opcode: Python 3 pickles `bytes` as a call.
                let key = Shared::Bytes(b.to_vec());
                if b.len() <= 1 && self.get_shared(&key) {
                    return Ok(());
                }
                if b.is_empty() {
                    self.global("__builtin__", "bytes");
                    self.out.push(if self.binary { b')' } else { b'(' });
                    if !self.binary {
                        self.out.push(b't');
                    }
                } else {
                    self.global("_codecs", "encode");
                    self.out.push(b'(');
                    self.str(&PyStr::from_code_points(b.iter().map(|&c| u32::from(c))).unwrap_or_default())?;
                    if !self.get_shared(&Shared::Latin1) {
                        self.str(&PyStr::from("latin1"))?;
                        self.remember(Shared::Latin1);
                    }
                    self.out.push(b't');
                    self.memoize();
                }
                self.out.push(b'R');
                self.memoize();
                if b.len() <= 1 {
                    self.remember(key);
                }
            }
        }
        Ok(())
    }

    fn str(&mut self, s: &PyStr) -> Result<(), WriteError> {
        let key = Shared::Str(s.as_wtf8().to_vec());
        let mut cps = s.code_points();
        let singleton =
            self.dialect == Dialect::Mailman3 && matches!((cps.next(), cps.next()), (None, _) | (Some(0..=0xFF), None));
        if singleton && self.get_shared(&key) {
            return Ok(());
        }
        if self.binary {
            let n = u32::try_from(s.as_wtf8().len())
                .map_err(|_| WriteError::Unsupported { what: "a text of 4 GiB or more".into() })?;
            self.out.push(b'X');
            self.out.extend_from_slice(&n.to_le_bytes());
            self.out.extend_from_slice(s.as_wtf8());
        } else {
            self.out.push(b'V');
            raw_unicode_escape(&mut self.out, s, self.dialect);
            self.out.push(b'\n');
        }
        // cPickle skips the memo for strings only the pickled dict refers to.
        if self.dialect == Dialect::Mailman3 {
            self.memoize();
            if singleton {
                self.remember(key);
            }
        }
        Ok(())
    }

    fn tuple(&mut self, items: &[Value], depth: usize) -> Result<(), WriteError> {
        if items.is_empty() {
            self.out.extend_from_slice(if self.binary { b")" } else { b"(t" });
            return Ok(());
        }
        self.out.push(b'(');
        for item in items {
            self.save(item, depth + 1)?;
        }
        self.out.push(b't');
        self.memoize();
        Ok(())
    }

    /// `set(list)` / `frozenset(list)`: how protocols < 4 store sets.
    fn reduce_builtin(&mut self, name: &str, items: &[Value], depth: usize) -> Result<(), WriteError> {
        self.global("__builtin__", name);
        self.tuple(&[Value::List(items.to_vec())], depth)?;
        self.out.push(b'R');
        self.memoize();
        Ok(())
    }

    /// Items of a list (a value each) or dict (key and value), as APPEND(S) or
    /// SETITEM(S) in batches of 1000 (protocol 1) or one by one (protocol 0), as both
    /// picklers do.
    fn batched(
        &mut self,
        items: Vec<(&Value, Option<&Value>)>,
        one: u8,
        many: u8,
        depth: usize,
    ) -> Result<(), WriteError> {
        let batch_size = if self.binary { 1000 } else { 1 };
        for batch in items.chunks(batch_size) {
            if batch.len() > 1 {
                self.out.push(b'(');
            }
            for (first, second) in batch {
                self.save(first, depth + 1)?;
                if let Some(second) = second {
                    self.save(second, depth + 1)?;
                }
            }
            self.out.push(if batch.len() > 1 { many } else { one });
        }
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) {
        let key = Shared::Global(module.to_owned(), name.to_owned());
        if self.get_shared(&key) {
            return;
        }
        self.out.push(b'c');
        self.out.extend_from_slice(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'\n');
        self.memoize();
        self.remember(key);
    }

    /// Writes a memo `PUT` for the object just written.
    fn memoize(&mut self) {
        let idx = self.next_memo;
        self.next_memo += 1;
        match (self.binary, u8::try_from(idx)) {
            (true, Ok(i)) => self.out.extend_from_slice(&[b'q', i]),
            (true, Err(_)) => {
                self.out.push(b'r');
                self.out.extend_from_slice(&idx.to_le_bytes());
            }
            (false, _) => self.text_op(b'p', &idx.to_string()),
        }
    }

    /// Binds `key` to the memo entry just written.
    fn remember(&mut self, key: Shared) {
        self.shared.insert(key, self.next_memo - 1);
    }

    /// Writes a memo `GET` if `key` was written before.
    fn get_shared(&mut self, key: &Shared) -> bool {
        let Some(&idx) = self.shared.get(key) else {
            return false;
        };
        match (self.binary, u8::try_from(idx)) {
            (true, Ok(i)) => self.out.extend_from_slice(&[b'h', i]),
            (true, Err(_)) => {
                self.out.push(b'j');
                self.out.extend_from_slice(&idx.to_le_bytes());
            }
            (false, _) => self.text_op(b'g', &idx.to_string()),
        }
        true
    }
}

/// `datetime.datetime`'s pickled state (no `fold`: protocols < 4 do not store it).
fn datetime_state(d: &DateTime) -> [u8; 10] {
    let [y0, y1] = d.year.to_be_bytes();
    let [_, u0, u1, u2] = d.microsecond.to_be_bytes();
    [y0, y1, d.month, d.day, d.hour, d.minute, d.second, u0, u1, u2]
}

/// Python 2 `repr(str)`, as protocol 0 `STRING` holds it.
fn python2_str_repr(b: &[u8]) -> Vec<u8> {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') { b'"' } else { b'\'' };
    let mut out = vec![quote];
    for &c in b {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ if c == quote => out.extend_from_slice(&[b'\\', c]),
            0x20..=0x7E => out.push(c),
            _ => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(quote);
    out
}

/// Protocol 0 `UNICODE` text: raw-unicode-escape, plus the characters each pickler
/// escapes so that the line stays one line.
fn raw_unicode_escape(out: &mut Vec<u8>, s: &PyStr, dialect: Dialect) {
    for cp in s.code_points() {
        let escape = match cp {
            0x5C | 0x0A => true,
            0x00 | 0x0D | 0x1A => dialect == Dialect::Mailman3,
            _ => cp > 0xFF,
        };
        if cp > 0xFFFF {
            out.extend_from_slice(format!("\\U{cp:08x}").as_bytes());
        } else if escape {
            out.extend_from_slice(format!("\\u{cp:04x}").as_bytes());
        } else {
            out.push(cp as u8);
        }
    }
}

/// Python's `repr(float)`: the shortest text that reads back to the same float, in
/// fixed notation for exponents -4 to 15 and scientific notation otherwise.
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // Rust's `{:e}` gives the same shortest digits: "-1.2345e-7".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if !(-5 < exp && exp < 16) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}e{exp_sign}{:02}", exp.abs());
    }
    let point = exp + 1; // digits before the decimal point
    if point <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= digits.len() {
        format!("{sign}{digits}{}.0", "0".repeat(point as usize - digits.len()))
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{sign}{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        for (f, repr) in [
            (1.5, "1.5"),
            (1546304647.7135298, "1546304647.7135298"),
            (1e22, "1e+22"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (123.0, "123.0"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(python_float_repr(f), repr, "{f:e}");
        }
    }

    #[test]
    fn python2_repr_picks_quotes_like_python() {
        assert_eq!(python2_str_repr(b"a'b\""), br#"'a\'b"'"#.to_vec());
        assert_eq!(python2_str_repr(b"a'b"), br#""a'b""#.to_vec());
        assert_eq!(python2_str_repr(b"\t\x7f\x80\\"), br"'\t\x7f\x80\\'".to_vec());
    }
}
