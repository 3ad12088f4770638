//! Python 2.7's `email.charset.Charset` as `Header.encode` uses it: cutting a header
//! chunk into characters (`to_splittable`), writing characters back
//! (`from_splittable`), and RFC 2047 encoded words (`header_encode`).
//!
//! Python converts through its codecs. Here a character keeps its own octets, which
//! gives the same bytes whenever the chunk is valid in its charset and no conversion to
//! another charset is asked for; anything else is refused by name rather than guessed.

use super::problem;
use crate::model::{Charset, Error, PartPath};
use base64::{engine::general_purpose::STANDARD, Engine as _};

const QP: u8 = 1;
const BASE64: u8 = 2;
const SHORTEST: u8 = 3;
/// `=?` `?q?` `?=`: the chrome of an encoded word, less the charset name.
const MISC_LEN: i64 = 7;

/// One character of a splittable string, as the octets its codec wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unit {
    /// An octet of a byte string, an ASCII character, or a single-byte-charset character.
    Byte(u8),
    /// A UTF-8 sequence (Python 2 also accepts encoded surrogates).
    Utf8 { bytes: [u8; 4], len: u8 },
    /// A JIS X 0208 character (ISO-2022-JP after `ESC $ B` or `ESC $ @`).
    Jis0208([u8; 2]),
    /// A JIS X 0201 Roman character that differs from ASCII (`ESC ( J` then `\` or `~`).
    JisRoman(u8),
    /// A JIS X 0201 half-width katakana (EUC-JP `8E xx`, Shift_JIS `A1`..`DF`).
    Kana(u8),
    /// A JIS X 0212 character (EUC-JP `8F xx xx`).
    Jis0212([u8; 2]),
    /// U+FFFD where decoding with `errors='replace'` met an invalid sequence.
    Replacement,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Codec {
    /// No codec (`us-ascii`), or one Python does not know: the chunk stays a byte string.
    Bytes,
    /// A single-byte charset: one octet, one character; `holes` decode to U+FFFD.
    SingleByte {
        holes: &'static [u8],
    },
    Ascii,
    Utf8,
    Iso2022Jp,
    EucJp,
    ShiftJis,
    /// A codec we do not emulate: only plain ASCII text passes through it unchanged.
    AsciiCompatible,
}

/// A `Charset` ready to work on chunks.
pub(super) struct HeaderCharset<'a> {
    pub charset: &'a Charset,
    input: Codec,
    output: Codec,
    part: &'a PartPath,
}

impl<'a> HeaderCharset<'a> {
    pub fn new(charset: &'a Charset, part: &'a PartPath) -> Self {
        HeaderCharset {
            charset,
            input: codec(charset.input_codec.as_deref()),
            output: codec(charset.output_codec.as_deref()),
            part,
        }
    }

    /// `str(charset)`: what `charset == 'us-ascii'` and `== '8bit'` compare.
    pub fn is(&self, name: &str) -> bool {
        self.charset.input_charset.eq_ignore_ascii_case(name)
    }

    fn output_name(&self) -> &str {
        match self.charset.output_charset.as_deref() {
            Some(o) if !o.is_empty() => o,
            _ => &self.charset.input_charset,
        }
    }

    /// `to_splittable`: the chunk cut into characters with the input codec.
    pub fn read_chars(&self, s: &[u8]) -> Result<Vec<Unit>, Error> {
        decode(self.input, s).ok_or_else(|| {
            problem(
                self.part,
                format!(
                    "a header chunk is not valid {} text (or uses a codec this runner does not emulate)",
                    self.charset.input_charset
                ),
            )
        })
    }

    /// `from_splittable`: characters written back with the output codec (`to_output`)
    /// or the input codec.
    pub fn write_chars(&self, units: &[Unit], to_output: bool) -> Result<Vec<u8>, Error> {
        // A byte string (no codec, or one Python lacks) is returned as it is.
        if self.input == Codec::Bytes {
            return Ok(encode(Codec::Bytes, units));
        }
        let target = if to_output { self.output } else { self.input };
        let converts = to_output && self.charset.input_codec != self.charset.output_codec;
        let plain_ascii = units.iter().all(|u| matches!(u, Unit::Byte(b) if b.is_ascii()));
        let japanese = |c: Codec| matches!(c, Codec::Iso2022Jp | Codec::EucJp | Codec::ShiftJis);
        if converts && !plain_ascii && !(japanese(self.input) && japanese(target)) {
            return Err(problem(
                self.part,
                format!(
                    "converting a {} header chunk to {} is not supported",
                    self.charset.input_charset,
                    self.output_name()
                ),
            ));
        }
        Ok(encode(target, units))
    }

    /// `encoded_header_len`.
    pub fn encoded_header_len(&self, s: &[u8]) -> i64 {
        let chrome = self.output_name().len() as i64 + MISC_LEN;
        match self.charset.header_encoding {
            Some(BASE64) => base64_len(s) + chrome,
            Some(QP) => quopri_len(s) + chrome,
            Some(SHORTEST) => base64_len(s).min(quopri_len(s)) + chrome,
            _ => s.len() as i64,
        }
    }

    /// Whether `_encode_chunks` writes chunks in this charset as they are.
    pub fn leaves_text_alone(&self) -> bool {
        !matches!(self.charset.header_encoding, Some(QP | BASE64 | SHORTEST))
    }

    /// `header_encode(s)` (no conversion): RFC 2047 encoded word(s).
    pub fn header_encode(&self, s: &[u8]) -> Result<Vec<u8>, Error> {
        let cset = self.output_name();
        match self.charset.header_encoding {
            Some(BASE64) => self.base64_words(s, cset),
            Some(QP) => Ok(quopri_words(s, cset)),
            Some(SHORTEST) if base64_len(s) < quopri_len(s) => self.base64_words(s, cset),
            Some(SHORTEST) => Ok(quopri_words(s, cset)),
            _ => Ok(s.to_vec()),
        }
    }

    /// `email.base64mime.header_encode(s, cset)` with its default 76-column words.
    fn base64_words(&self, s: &[u8], cset: &str) -> Result<Vec<u8>, Error> {
        if s.is_empty() {
            return Ok(Vec::new());
        }
        let s = fix_eols(s);
        let max_encoded = 76 - cset.len() as i64 - MISC_LEN;
        let max_unencoded = max_encoded * 3 / 4;
        if max_unencoded <= 0 {
            return Err(problem(self.part, format!("the charset name {cset:?} is too long for an encoded word")));
        }
        let words: Vec<Vec<u8>> = s
            .chunks(max_unencoded as usize)
            .map(|c| format!("=?{cset}?b?{}?=", STANDARD.encode(c)).into_bytes())
            .collect();
        Ok(words.join(b"\n ".as_slice()))
    }
}

fn codec(name: Option<&str>) -> Codec {
    let Some(name) = name else {
        return Codec::Bytes;
    };
    let n = name.to_ascii_lowercase().replace('_', "-").replace("iso8859-", "iso-8859-");
    match n.as_str() {
        // No such Python codec: `LookupError`, and the chunk stays a byte string.
        "8bit" => Codec::Bytes,
        "ascii" | "us-ascii" | "646" => Codec::Ascii,
        "utf-8" | "utf8" | "u8" => Codec::Utf8,
        "iso-2022-jp" | "iso2022jp" | "csiso2022jp" => Codec::Iso2022Jp,
        "euc-jp" | "eucjp" | "ujis" | "u-jis" => Codec::EucJp,
        "shift-jis" | "shiftjis" | "sjis" | "s-jis" | "csshiftjis" => Codec::ShiftJis,
        // Single-byte charsets whose 256 octets all decode.
        "iso-8859-1" | "iso-8859-2" | "iso-8859-4" | "iso-8859-5" | "iso-8859-9" | "iso-8859-10" | "iso-8859-13"
        | "iso-8859-14" | "iso-8859-15" | "iso-8859-16" | "latin-1" | "latin1" | "l1" | "koi8-r" | "koi8-u" => {
            Codec::SingleByte { holes: &[] }
        }
        "windows-1252" | "cp1252" => Codec::SingleByte { holes: &[0x81, 0x8d, 0x8f, 0x90, 0x9d] },
        _ => Codec::AsciiCompatible,
    }
}

fn decode(codec: Codec, s: &[u8]) -> Option<Vec<Unit>> {
    match codec {
        Codec::Bytes => Some(s.iter().map(|&b| Unit::Byte(b)).collect()),
        Codec::SingleByte { holes } => {
            Some(s.iter().map(|&b| if holes.contains(&b) { Unit::Replacement } else { Unit::Byte(b) }).collect())
        }
        Codec::Ascii => Some(s.iter().map(|&b| if b.is_ascii() { Unit::Byte(b) } else { Unit::Replacement }).collect()),
        // ESC, `+` and `~` start shifts in ASCII-looking codecs (ISO-2022, UTF-7, HZ).
        Codec::AsciiCompatible => {
            s.iter().map(|&b| (b.is_ascii() && !matches!(b, 0x1b | b'+' | b'~')).then_some(Unit::Byte(b))).collect()
        }
        Codec::Utf8 => Some(decode_utf8(s)),
        Codec::Iso2022Jp => decode_iso2022jp(s),
        Codec::EucJp => decode_eucjp(s),
        Codec::ShiftJis => decode_sjis(s),
    }
}

/// Python 2.7's UTF-8 decoder with `errors='replace'`: encoded surrogates pass; an
/// invalid start octet is one U+FFFD; a broken sequence is one U+FFFD covering its
/// start octet and the continuation octets after it, at most one fewer than the
/// sequence needed.
pub(super) fn decode_utf8(s: &[u8]) -> Vec<Unit> {
    let is_cont = |b: u8| (0x80..=0xBF).contains(&b);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let n = match c {
            0x00..=0x7F => 1,
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => 0,
        };
        if n <= 1 {
            out.push(if n == 1 { Unit::Byte(c) } else { Unit::Replacement });
            i += 1;
            continue;
        }
        let second_ok = |b: u8| match c {
            0xE0 => (0xA0..=0xBF).contains(&b),
            0xF0 => (0x90..=0xBF).contains(&b),
            0xF4 => (0x80..=0x8F).contains(&b),
            _ => is_cont(b),
        };
        let seq = &s[i..(i + n).min(s.len())];
        let valid = seq.len() == n && second_ok(seq[1]) && seq[2..].iter().all(|&b| is_cont(b));
        if valid {
            let mut bytes = [0u8; 4];
            bytes[..n].copy_from_slice(seq);
            out.push(Unit::Utf8 { bytes, len: n as u8 });
            i += n;
        } else {
            out.push(Unit::Replacement);
            i += 1 + seq[1..].iter().take(n - 2).take_while(|&&b| is_cont(b)).count();
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum JisState {
    Ascii,
    Roman,
    Jis0208,
}

pub(super) fn decode_iso2022jp(s: &[u8]) -> Option<Vec<Unit>> {
    let mut out = Vec::new();
    let mut state = JisState::Ascii;
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == 0x1b {
            state = match s.get(i + 1..i + 3)? {
                b"(B" => JisState::Ascii,
                b"(J" => JisState::Roman,
                b"$B" | b"$@" => JisState::Jis0208,
                _ => return None,
            };
            i += 3;
            continue;
        }
        if c >= 0x80 {
            return None;
        }
        match state {
            JisState::Ascii => out.push(Unit::Byte(c)),
            JisState::Roman if c == b'\\' || c == b'~' => out.push(Unit::JisRoman(c)),
            JisState::Roman => out.push(Unit::Byte(c)),
            // Python's decoder lets line breaks through without leaving the set.
            JisState::Jis0208 if c == b'\n' || c == b'\r' => out.push(Unit::Byte(c)),
            JisState::Jis0208 => {
                let d = *s.get(i + 1)?;
                if !(0x21..=0x7e).contains(&c) || !(0x21..=0x7e).contains(&d) {
                    return None;
                }
                out.push(Unit::Jis0208([c, d]));
                i += 1;
            }
        }
        i += 1;
    }
    Some(out)
}

fn encode(codec: Codec, units: &[Unit]) -> Vec<u8> {
    let mut out = Vec::with_capacity(units.len() * 2);
    match codec {
        Codec::Iso2022Jp => encode_iso2022jp(units, &mut out),
        Codec::EucJp => {
            for u in units {
                match *u {
                    Unit::Byte(b) if b.is_ascii() => out.push(b),
                    Unit::Jis0208([a, b]) => out.extend_from_slice(&[a | 0x80, b | 0x80]),
                    Unit::Kana(k) => out.extend_from_slice(&[0x8e, k | 0x80]),
                    Unit::Jis0212([a, b]) => out.extend_from_slice(&[0x8f, a | 0x80, b | 0x80]),
                    _ => out.push(b'?'),
                }
            }
        }
        Codec::ShiftJis => {
            for u in units {
                match *u {
                    Unit::Byte(b) if b.is_ascii() => out.push(b),
                    Unit::Jis0208(pair) => out.extend_from_slice(&jis_to_sjis(pair)),
                    Unit::Kana(k) => out.push(k | 0x80),
                    _ => out.push(b'?'),
                }
            }
        }
        _ => {
            for u in units {
                match *u {
                    Unit::Byte(b) => out.push(b),
                    Unit::Utf8 { bytes, len } => out.extend_from_slice(&bytes[..len as usize]),
                    // Encoding U+FFFD with `errors='replace'`: UTF-8 has it, others write `?`.
                    Unit::Replacement if codec == Codec::Utf8 => out.extend_from_slice("\u{FFFD}".as_bytes()),
                    _ => out.push(b'?'),
                }
            }
        }
    }
    out
}

/// Python's ISO-2022-JP encoder: designate a set only when it changes, end in ASCII;
/// what the charset cannot hold becomes `?` (`errors='replace'`).
pub(super) fn encode_iso2022jp(units: &[Unit], out: &mut Vec<u8>) {
    let mut state = JisState::Ascii;
    let mut put = |out: &mut Vec<u8>, to: JisState, bytes: &[u8]| {
        if state != to {
            out.extend_from_slice(match to {
                JisState::Ascii => b"\x1b(B",
                JisState::Roman => b"\x1b(J",
                JisState::Jis0208 => b"\x1b$B",
            });
            state = to;
        }
        out.extend_from_slice(bytes);
    };
    for u in units {
        match *u {
            Unit::Byte(b) if b.is_ascii() => put(out, JisState::Ascii, &[b]),
            Unit::JisRoman(b) => put(out, JisState::Roman, &[b]),
            Unit::Jis0208(pair) => put(out, JisState::Jis0208, &pair),
            _ => put(out, JisState::Ascii, b"?"),
        }
    }
    put(out, JisState::Ascii, b"");
}

/// Shift_JIS double-byte code to its JIS X 0208 row and cell.
fn sjis_to_jis(s1: u8, s2: u8) -> [u8; 2] {
    let base = if s1 <= 0x9f { 0x81 } else { 0xc1 };
    let row = (s1 - base) * 2 + 0x21;
    if s2 >= 0x9f {
        [row + 1, s2 - 0x7e]
    } else {
        [row, s2 - if s2 >= 0x80 { 0x20 } else { 0x1f }]
    }
}

fn jis_to_sjis([j1, j2]: [u8; 2]) -> [u8; 2] {
    let s1 = ((j1 - 0x21) >> 1) + if j1 <= 0x5e { 0x81 } else { 0xc1 };
    let s2 = if j1 % 2 == 1 { j2 + if j2 >= 0x60 { 0x20 } else { 0x1f } } else { j2 + 0x7e };
    [s1, s2]
}

fn decode_eucjp(s: &[u8]) -> Option<Vec<Unit>> {
    let high = |b: u8| (0xa1..=0xfe).contains(&b);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let (unit, n) = match c {
            0x00..=0x7f => (Unit::Byte(c), 1),
            0x8e => match s.get(i + 1) {
                Some(&k) if (0xa1..=0xdf).contains(&k) => (Unit::Kana(k & 0x7f), 2),
                _ => return None,
            },
            0x8f => match s.get(i + 1..i + 3) {
                Some(&[a, b]) if high(a) && high(b) => (Unit::Jis0212([a & 0x7f, b & 0x7f]), 3),
                _ => return None,
            },
            _ if high(c) => match s.get(i + 1) {
                Some(&d) if high(d) => (Unit::Jis0208([c & 0x7f, d & 0x7f]), 2),
                _ => return None,
            },
            _ => return None,
        };
        out.push(unit);
        i += n;
    }
    Some(out)
}

fn decode_sjis(s: &[u8]) -> Option<Vec<Unit>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        match c {
            0x00..=0x7f => out.push(Unit::Byte(c)),
            0xa1..=0xdf => out.push(Unit::Kana(c & 0x7f)),
            0x81..=0x9f | 0xe0..=0xef => {
                let d = *s.get(i + 1)?;
                if !matches!(d, 0x40..=0x7e | 0x80..=0xfc) {
                    return None;
                }
                out.push(Unit::Jis0208(sjis_to_jis(c, d)));
                i += 1;
            }
            _ => return None,
        }
        i += 1;
    }
    Some(out)
}

/// `email.base64mime.base64_len`.
fn base64_len(s: &[u8]) -> i64 {
    (s.len() as i64 + 2) / 3 * 4
}

/// `hqre = r'[^-a-zA-Z0-9!*+/ ]'`: octets header QP must escape.
fn needs_quoting(c: u8) -> bool {
    !(c.is_ascii_alphanumeric() || matches!(c, b'-' | b'!' | b'*' | b'+' | b'/' | b' '))
}

/// `email.quoprimime.header_quopri_len`.
fn quopri_len(s: &[u8]) -> i64 {
    s.iter().map(|&c| if needs_quoting(c) { 3 } else { 1 }).sum()
}

/// `email.quoprimime.header_encode(s, cset, maxlinelen=None)`.
fn quopri_words(s: &[u8], cset: &str) -> Vec<u8> {
    if s.is_empty() {
        return Vec::new();
    }
    const MAX_ENCODED: usize = 100_000;
    let mut words: Vec<Vec<u8>> = Vec::new();
    for &c in &fix_eols(s) {
        let piece: Vec<u8> = if c == b' ' {
            b"_".to_vec()
        } else if !needs_quoting(c) {
            vec![c]
        } else {
            format!("={c:02X}").into_bytes()
        };
        match words.last_mut() {
            Some(last) if last.len() + piece.len() <= MAX_ENCODED => last.extend(piece),
            _ => words.push(piece),
        }
    }
    let words: Vec<Vec<u8>> =
        words.into_iter().map(|w| [format!("=?{cset}?q?").as_bytes(), &w, b"?="].concat()).collect();
    words.join(b"\n ".as_slice())
}

/// `email.utils.fix_eols`: lone LF and lone CR become CRLF.
fn fix_eols(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for (i, &c) in s.iter().enumerate() {
        match c {
            b'\n' if i == 0 || s[i - 1] != b'\r' => out.extend_from_slice(b"\r\n"),
            b'\r' if s.get(i + 1) != Some(&b'\n') => out.extend_from_slice(b"\r\n"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso2022jp_round_trips_the_way_python_re_encodes() {
        let units = decode_iso2022jp(b"\x1b$@0!\n0!").unwrap();
        assert_eq!(encode(Codec::Iso2022Jp, &units), b"\x1b$B0!\x1b(B\n\x1b$B0!\x1b(B");
        let units = decode_iso2022jp(b"\x1b(Jab\\~\x1b(B").unwrap();
        assert_eq!(encode(Codec::Iso2022Jp, &units), b"ab\x1b(J\\~\x1b(B");
        assert!(decode_iso2022jp(b"\x1b$B0 \x1b(B").is_none());
    }

    #[test]
    fn utf8_replacement_matches_python_27() {
        use Unit::Replacement as R;
        let count = |s: &[u8]| decode_utf8(s).iter().filter(|u| **u == R).count();
        assert_eq!(count(b"\xe0\x80\xaf"), 2);
        assert_eq!(count(b"\xf0\x80\x80\x80"), 2);
        assert_eq!(count(b"\xf5\x80\x80\x80"), 4);
        assert_eq!(decode_utf8(b"\xe2\x82a"), vec![R, Unit::Byte(b'a')]);
        assert_eq!(decode_utf8(b"\xe0\xa0\xe0\xa0\x80")[0], R);
        assert_eq!(decode_utf8(b"\xe0\xa0\xe0\xa0\x80").len(), 2);
        assert_eq!(encode(Codec::Utf8, &decode_utf8(b"\xed\xa0\x80")), b"\xed\xa0\x80");
    }

    #[test]
    fn japanese_charsets_convert_through_jis_codes() {
        // 日本 in EUC-JP and Shift_JIS, half-width katakana ｱ unencodable in ISO-2022-JP.
        let euc = decode_eucjp(b"\xc6\xfc\xcb\xdcA\x8e\xb1").unwrap();
        assert_eq!(encode(Codec::Iso2022Jp, &euc), b"\x1b$BF|K\\\x1b(BA?");
        assert_eq!(encode(Codec::ShiftJis, &euc), b"\x93\xfa\x96{A\xb1");
        let sjis = decode_sjis(b"\x93\xfa\x96{").unwrap();
        assert_eq!(encode(Codec::EucJp, &sjis), b"\xc6\xfc\xcb\xdc");
    }

    #[test]
    fn quopri_words_escape_like_python() {
        assert_eq!(quopri_words(b"a b=\xe9\n", "utf-8"), b"=?utf-8?q?a_b=3D=E9=0D=0A?=");
    }
}
