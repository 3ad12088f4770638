//! The data a pickle holds, as a tree. Classes are names, never code: an instance is
//! its class name plus the arguments and state the pickle gave it.

use num_bigint::BigInt;
use std::fmt;

/// A Python value read from (or to be written to) a pickle.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer beyond 64 bits (`LONG`, `LONG1`, `LONG4`).
    BigInt(BigInt),
    Float(f64),
    /// A byte string: Python 2 `str`, Python 3 `bytes`.
    Bytes(Vec<u8>),
    /// A text string: Python 2 `unicode`, Python 3 `str`. May hold lone surrogates.
    Str(PyStr),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// Insertion-ordered, as Python dicts are; keys are not deduplicated by the reader
    /// beyond what `SETITEM(S)` on an equal key does.
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    FrozenSet(Vec<Value>),
    /// A naive `datetime.datetime` (Mailman stores UTC this way).
    DateTime(DateTime),
    /// A reference to a class or function (`GLOBAL`, `STACK_GLOBAL`), never resolved.
    Global {
        module: String,
        name: String,
    },
    /// An instance of a class, built from `OBJ`, `INST`, `NEWOBJ(_EX)` or `REDUCE`,
    /// then `BUILD`.
    Object(Box<Object>),
}

/// An instance, described by what the pickle said about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    pub module: String,
    pub name: String,
    /// Arguments given to the class (`NEWOBJ`, `REDUCE`, `OBJ`, `INST`).
    pub args: Vec<Value>,
    /// What `BUILD` applied: usually the instance `__dict__`; for classes with
    /// `__slots__`, a `(dict, slots)` tuple as Python writes it.
    pub state: Option<Value>,
    /// Items appended (`APPEND(S)`) or set (`SETITEM(S)`) on a `REDUCE`d object.
    pub list_items: Vec<Value>,
    pub dict_items: Vec<(Value, Value)>,
}

impl Object {
    /// `module.name`, e.g. `email.header.Header`.
    pub fn class_path(&self) -> String {
        format!("{}.{}", self.module, self.name)
    }

    /// Looks up an attribute in the `BUILD` state dict (by text or byte-string key).
    pub fn attr(&self, key: &str) -> Option<&Value> {
        let dict = match &self.state {
            Some(Value::Dict(d)) => d,
            Some(Value::Tuple(t)) => match t.first() {
                Some(Value::Dict(d)) => d,
                _ => return None,
            },
            _ => return None,
        };
        dict_get(dict, key)
    }
}

/// Looks up `key` in a dict whose keys are text (`str`/`unicode`) or byte strings.
pub fn dict_get<'a>(dict: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    dict.iter().rev().find(|(k, _)| k.key_is(key)).map(|(_, v)| v)
}

impl Value {
    /// What kind of Python value this is, in words for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Bytes(_) => "byte string",
            Value::Str(_) => "text string",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Set(_) => "set",
            Value::FrozenSet(_) => "frozenset",
            Value::DateTime(_) => "datetime",
            Value::Global { .. } => "class reference",
            Value::Object(_) => "object",
        }
    }

    /// True for a text or byte string equal to `key`.
    pub fn key_is(&self, key: &str) -> bool {
        match self {
            Value::Str(s) => s.as_wtf8() == key.as_bytes(),
            Value::Bytes(b) => b == key.as_bytes(),
            _ => false,
        }
    }

    /// Looks up `key` when this is a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => dict_get(d, key),
            _ => None,
        }
    }

    /// Python truthiness, for flags such as `_parsemsg` (stored as `INT 01` in 2.1).
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::None => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::BigInt(_) => true,
            Value::Float(f) => *f != 0.0,
            Value::Bytes(b) => !b.is_empty(),
            Value::Str(s) => !s.is_empty(),
            Value::List(v) | Value::Tuple(v) | Value::Set(v) | Value::FrozenSet(v) => !v.is_empty(),
            Value::Dict(d) => !d.is_empty(),
            Value::DateTime(_) | Value::Global { .. } | Value::Object(_) => true,
        }
    }

    /// The text of a text string, or a byte string read as latin-1 (how Mailman 2.1's
    /// byte strings map to characters). Lone surrogates are replaced.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.to_string_lossy()),
            Value::Bytes(b) => Some(b.iter().map(|&c| c as char).collect()),
            _ => None,
        }
    }
}

/// Python text that may contain lone surrogates (Mailman 3 keeps 8-bit mail octets as
/// U+DC80..U+DCFF). Stored as WTF-8: UTF-8 that also encodes surrogate code points in
/// three bytes, which is exactly what pickle's `surrogatepass` UTF-8 holds.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct PyStr(Vec<u8>);

impl PyStr {
    pub fn new() -> Self {
        PyStr(Vec::new())
    }

    /// Takes WTF-8 bytes as found in a pickle. Fails on bytes that are not UTF-8 even
    /// with surrogates allowed.
    pub fn from_wtf8(bytes: Vec<u8>) -> Result<Self, InvalidWtf8> {
        let mut i = 0;
        while i < bytes.len() {
            match decode_one(&bytes[i..]) {
                Some((_, n)) => i += n,
                None => return Err(InvalidWtf8 { offset: i }),
            }
        }
        Ok(PyStr(bytes))
    }

    /// Text from raw-unicode-escape bytes as protocol 0 `UNICODE` stores it is decoded by
    /// the reader; this builds from code points (surrogates allowed).
    pub fn from_code_points(cps: impl IntoIterator<Item = u32>) -> Result<Self, InvalidWtf8> {
        let mut out = Vec::new();
        for cp in cps {
            if !push_code_point(&mut out, cp) {
                return Err(InvalidWtf8 { offset: out.len() });
            }
        }
        Ok(PyStr(out))
    }

    pub fn as_wtf8(&self) -> &[u8] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The text as `&str` when it holds no surrogates.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    pub fn has_surrogates(&self) -> bool {
        self.as_str().is_none()
    }

    /// Code points in order, surrogates included.
    pub fn code_points(&self) -> impl Iterator<Item = u32> + '_ {
        let mut rest: &[u8] = &self.0;
        std::iter::from_fn(move || {
            // from_wtf8/push_code_point guarantee well-formed content.
            let (cp, n) = decode_one(rest)?;
            rest = &rest[n..];
            Some(cp)
        })
    }

    pub fn to_string_lossy(&self) -> String {
        match self.as_str() {
            Some(s) => s.to_owned(),
            None => self.code_points().map(|cp| char::from_u32(cp).unwrap_or('\u{FFFD}')).collect(),
        }
    }

    /// Python's `s.encode('ascii', 'surrogateescape')`: ASCII stays, U+DC80..U+DCFF
    /// become the octets 0x80..0xFF; anything else is `Err(code point)`.
    pub fn encode_surrogateescape(&self) -> Result<Vec<u8>, u32> {
        let mut out = Vec::with_capacity(self.0.len());
        for cp in self.code_points() {
            match cp {
                0..=0x7F => out.push(cp as u8),
                0xDC80..=0xDCFF => out.push((cp - 0xDC00) as u8),
                _ => return Err(cp),
            }
        }
        Ok(out)
    }

    /// Python's `b.decode('ascii', 'surrogateescape')`.
    pub fn decode_surrogateescape(bytes: &[u8]) -> Self {
        let mut out = Vec::with_capacity(bytes.len());
        for &b in bytes {
            let cp = if b < 0x80 { b as u32 } else { 0xDC00 + b as u32 };
            push_code_point(&mut out, cp);
        }
        PyStr(out)
    }
}

impl From<&str> for PyStr {
    fn from(s: &str) -> Self {
        PyStr(s.as_bytes().to_vec())
    }
}

impl From<String> for PyStr {
    fn from(s: String) -> Self {
        PyStr(s.into_bytes())
    }
}

impl fmt::Debug for PyStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string_lossy())
    }
}

/// Bytes that are not UTF-8 even with surrogate code points allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid UTF-8 in text string at byte {offset}")]
pub struct InvalidWtf8 {
    pub offset: usize,
}

fn push_code_point(out: &mut Vec<u8>, cp: u32) -> bool {
    match cp {
        0..=0x7F => out.push(cp as u8),
        0x80..=0x7FF => out.extend_from_slice(&[0xC0 | (cp >> 6) as u8, 0x80 | (cp & 0x3F) as u8]),
        0x800..=0xFFFF => {
            out.extend_from_slice(&[0xE0 | (cp >> 12) as u8, 0x80 | ((cp >> 6) & 0x3F) as u8, 0x80 | (cp & 0x3F) as u8])
        }
        0x10000..=0x10FFFF => out.extend_from_slice(&[
            0xF0 | (cp >> 18) as u8,
            0x80 | ((cp >> 12) & 0x3F) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]),
        _ => return false,
    }
    true
}

/// Decodes one WTF-8 sequence: (code point, length).
fn decode_one(b: &[u8]) -> Option<(u32, usize)> {
    let first = *b.first()?;
    let (len, init) = match first {
        0x00..=0x7F => return Some((first as u32, 1)),
        0xC2..=0xDF => (2, (first & 0x1F) as u32),
        0xE0..=0xEF => (3, (first & 0x0F) as u32),
        0xF0..=0xF4 => (4, (first & 0x07) as u32),
        _ => return None,
    };
    if b.len() < len {
        return None;
    }
    let mut cp = init;
    for &c in &b[1..len] {
        if c & 0xC0 != 0x80 {
            return None;
        }
        cp = (cp << 6) | (c & 0x3F) as u32;
    }
    let min = [0, 0, 0x80, 0x800, 0x10000][len];
    if cp < min || cp > 0x10FFFF {
        return None;
    }
    Some((cp, len))
}

/// A naive `datetime.datetime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub microsecond: u32,
}

impl DateTime {
    /// The UTC datetime of Unix time `secs`, to the microsecond, as Python's
    /// `datetime.utcfromtimestamp` gives it. Years outside Python's 1 to 9999 are
    /// clamped rather than wrapped.
    pub fn from_unix(secs: f64) -> DateTime {
        // `as` from a float saturates (NaN gives 0): no value panics here.
        let micros_total = (secs * 1e6).round() as i64;
        let total = micros_total.div_euclid(1_000_000);
        let (days, rem) = (total.div_euclid(86_400), total.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        // Every cast below is of a value the arithmetic above keeps in range.
        DateTime {
            year: year.clamp(1, 9999) as u16,
            month: month as u8,
            day: day as u8,
            hour: (rem / 3600) as u8,
            minute: (rem % 3600 / 60) as u8,
            second: (rem % 60) as u8,
            microsecond: micros_total.rem_euclid(1_000_000) as u32,
        }
    }

    /// This datetime, taken as UTC (as Mailman 3 stores them), as Unix seconds.
    pub fn to_unix(&self) -> f64 {
        let days = days_from_civil(i64::from(self.year), i64::from(self.month), i64::from(self.day));
        let secs = days * 86_400 + i64::from(self.hour) * 3600 + i64::from(self.minute) * 60 + i64::from(self.second);
        secs as f64 + f64::from(self.microsecond) / 1e6
    }
}

// Howard Hinnant's proleptic Gregorian day-count algorithms.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl fmt::Display for DateTime {
    /// ISO 8601 as Python's `isoformat()` writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )?;
        if self.microsecond != 0 {
            write!(f, ".{:06}", self.microsecond)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surrogates_round_trip_through_surrogateescape() {
        let raw = b"caf\xe9 ok";
        let s = PyStr::decode_surrogateescape(raw);
        assert!(s.has_surrogates());
        assert_eq!(s.encode_surrogateescape().unwrap(), raw);
        assert_eq!(s.as_wtf8(), b"caf\xed\xb3\xa9 ok");
    }

    #[test]
    fn rejects_non_utf8() {
        assert!(PyStr::from_wtf8(vec![0xff]).is_err());
        assert!(PyStr::from_wtf8(vec![0xe2, 0x82]).is_err());
        assert!(PyStr::from_wtf8("é".as_bytes().to_vec()).is_ok());
    }

    #[test]
    fn isoformat_matches_python() {
        let d = DateTime { year: 2024, month: 1, day: 2, hour: 3, minute: 4, second: 5, microsecond: 60 };
        assert_eq!(d.to_string(), "2024-01-02T03:04:05.000060");
    }

    #[test]
    fn unix_times_round_trip() {
        let d = DateTime { year: 2024, month: 2, day: 29, hour: 23, minute: 59, second: 58, microsecond: 123_456 };
        let secs = d.to_unix();
        assert!((secs - 1_709_251_198.123_456).abs() < 1e-6);
        assert_eq!(DateTime::from_unix(secs), d);
        assert_eq!(DateTime::from_unix(0.0).to_string(), "1970-01-01T00:00:00");
        assert_eq!(DateTime::from_unix(951_782_400.0).to_string(), "2000-02-29T00:00:00");
        assert_eq!(DateTime::from_unix(f64::NAN).to_string(), "1970-01-01T00:00:00");
        assert_eq!(DateTime::from_unix(1e300).year, 9999);
    }
}
