//! Decoding of the text arguments of protocol-0 opcodes (`INT`, `LONG`, `FLOAT`,
//! `STRING`, `UNICODE`), as CPython's unpickler decodes them. Each function gets the
//! line without its final `\n` and says what is wrong in words; the caller adds the
//! byte offset.

use crate::value::{PyStr, Value};
use num_bigint::BigInt;

/// Python 3.11 refuses to convert integers of more than 4300 decimal digits (quadratic
/// conversion); the same bound keeps a hostile `INT`/`LONG` line cheap here.
pub const MAX_INT_DIGITS: usize = 4300;

/// `INT`: `01`/`00` are the protocol 0/1 booleans, anything else a decimal integer.
pub fn parse_int(line: &[u8]) -> Result<Value, String> {
    match line {
        b"01" => Ok(Value::Bool(true)),
        b"00" => Ok(Value::Bool(false)),
        _ => parse_decimal(line),
    }
}

/// `LONG`: a decimal integer with an optional trailing `L` (Python 2 `repr(long)`).
pub fn parse_long(line: &[u8]) -> Result<Value, String> {
    parse_decimal(line.strip_suffix(b"L").unwrap_or(line))
}

fn parse_decimal(text: &[u8]) -> Result<Value, String> {
    let text = text.trim_ascii();
    let digits = text.strip_prefix(b"-").or_else(|| text.strip_prefix(b"+")).unwrap_or(text);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(format!("invalid integer {:?}", String::from_utf8_lossy(text)));
    }
    if digits.len() > MAX_INT_DIGITS {
        return Err(format!("integer with more than {MAX_INT_DIGITS} digits"));
    }
    // All ASCII digits with an optional sign: valid UTF-8 and parseable.
    let s = std::str::from_utf8(text).map_err(|e| e.to_string())?;
    Ok(match s.parse::<i64>() {
        Ok(i) => Value::Int(i),
        Err(_) => Value::BigInt(s.parse::<BigInt>().map_err(|e| e.to_string())?),
    })
}

/// `FLOAT`: Python's `float()` of the line (`repr` output, also `inf`/`nan`).
pub fn parse_float(line: &[u8]) -> Result<f64, String> {
    let bad = || format!("invalid float {:?}", String::from_utf8_lossy(line));
    let s = std::str::from_utf8(line.trim_ascii()).map_err(|_| bad())?;
    s.parse::<f64>().map_err(|_| bad())
}

/// `STRING`: a quoted Python 2 `repr` of a byte string, decoded with the rules of
/// `codecs.escape_decode` (what the unpickler uses).
pub fn parse_string(line: &[u8]) -> Result<Vec<u8>, String> {
    let inner = match line {
        [q, inner @ .., e] if q == e && (*q == b'\'' || *q == b'"') => inner,
        _ => return Err("the STRING opcode argument must be quoted".into()),
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while let Some(&c) = inner.get(i) {
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = inner.get(i) else {
            return Err("trailing \\ in STRING".into());
        };
        i += 1;
        match e {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match inner.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                // Python keeps the low byte of octal escapes above \377.
                out.push((v & 0xFF) as u8);
            }
            b'x' => {
                let hex = inner.get(i..i + 2).and_then(hex_value);
                let Some(v) = hex else {
                    return Err(format!("invalid \\x escape at position {}", i - 2));
                };
                out.push(v as u8);
                i += 2;
            }
            _ => {
                out.push(b'\\');
                out.push(e);
            }
        }
    }
    Ok(out)
}

/// `UNICODE`: raw-unicode-escape. Bytes are latin-1 code points, except `\uXXXX` and
/// `\UXXXXXXXX`, which count only after an odd number of backslashes. Surrogates
/// (also escaped ones) are kept as they are, as Python does.
pub fn parse_unicode(line: &[u8]) -> Result<PyStr, String> {
    let mut cps: Vec<u32> = Vec::with_capacity(line.len());
    let mut i = 0;
    while let Some(&c) = line.get(i) {
        i += 1;
        if c != b'\\' {
            cps.push(u32::from(c));
            continue;
        }
        // Count this run of backslashes: only the last one of an odd run escapes.
        let mut run = 1;
        while line.get(i) == Some(&b'\\') {
            run += 1;
            i += 1;
        }
        cps.extend(std::iter::repeat_n(u32::from(b'\\'), run - 1));
        let width = match line.get(i) {
            Some(b'u') if run % 2 == 1 => 4,
            Some(b'U') if run % 2 == 1 => 8,
            _ => {
                cps.push(u32::from(b'\\'));
                continue;
            }
        };
        let digits = line.get(i + 1..i + 1 + width);
        let Some(cp) = digits.and_then(hex_value) else {
            return Err(format!("truncated \\{} escape in UNICODE", if width == 4 { 'u' } else { 'U' }));
        };
        if cp > 0x10FFFF {
            return Err(format!("\\U{cp:08x} is not a Unicode code point"));
        }
        cps.push(cp);
        i += 1 + width;
    }
    PyStr::from_code_points(cps).map_err(|e| e.to_string())
}

fn hex_value(digits: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &d in digits {
        v = v.checked_mul(16)? + char::from(d).to_digit(16)?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_escapes_follow_python2_repr() {
        assert_eq!(parse_string(br"'a\nb\\c\'d\x00\xff\101\7'").unwrap(), b"a\nb\\c'd\x00\xffA\x07");
        assert_eq!(parse_string(br#""it's""#).unwrap(), b"it's");
        assert_eq!(parse_string(br"'\q'").unwrap(), b"\\q");
        assert!(parse_string(b"'abc").is_err());
        assert!(parse_string(br"'\x4'").is_err());
        assert!(parse_string(br"'ab\'").is_err());
    }

    #[test]
    fn raw_unicode_escape_counts_backslashes() {
        let s = parse_unicode(br"caf\u00e9 \U0001f600 \\u0041 \udc80").unwrap();
        let cps: Vec<u32> = s.code_points().collect();
        let expected: Vec<u32> = "caf\u{e9} \u{1f600} \\\\u0041 ".chars().map(u32::from).chain([0xDC80]).collect();
        assert_eq!(cps, expected);
        assert_eq!(parse_unicode(b"\xe9").unwrap().as_str(), Some("\u{e9}"));
        assert!(parse_unicode(br"\u12").is_err());
        assert!(parse_unicode(br"\Uffffffff").is_err());
    }

    #[test]
    fn ints_and_booleans() {
        assert_eq!(parse_int(b"01").unwrap(), Value::Bool(true));
        assert_eq!(parse_int(b"00").unwrap(), Value::Bool(false));
        assert_eq!(parse_int(b"-17").unwrap(), Value::Int(-17));
        assert_eq!(
            parse_long(b"123456789012345678901234567890L").unwrap(),
            Value::BigInt("123456789012345678901234567890".parse().unwrap())
        );
        assert!(parse_int(b"12a").is_err());
        assert!(parse_int(&vec![b'9'; MAX_INT_DIGITS + 1]).is_err());
        assert_eq!(parse_float(b"1546304647.7135298").unwrap(), 1546304647.7135298);
    }
}
