//! Body text as Mailman 3's decoration handles it: `get_payload(decode=True)`, the
//! Python codecs this emulation carries (ASCII, UTF-8 and the single-byte ones), and `set_payload(bytes, charset)`'s body
//! encodings (`email.base64mime.body_encode`, `email.quoprimime.body_encode`).

use super::codec_names;
use super::pystr;
use crate::body_codec::{base64_body, qp_decode};
use crate::single_byte::{self, SingleByte};
use base64::Engine;
use mailqueue_pickle::PyStr;

/// A Python codec this emulation carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Ascii,
    Latin1,
    Utf8,
    SingleByte(&'static SingleByte),
    MultiByte(&'static MultiByte),
}

/// The `encodings` modules this emulation carries besides UTF-8 (whose mapping is
/// Unicode's own), for the differential tests that prove them.
pub fn carried_modules() -> impl Iterator<Item = &'static str> {
    ["ascii", "latin_1"].into_iter().chain(single_byte::modules()).chain(MULTI_BYTE.iter().map(|m| m.module))
}

/// A multi-byte Python codec (CJKCodecs) whose units are an ASCII byte, or a byte from
/// 0x80 followed by one more (four in all for gb18030 when the second is a digit):
/// each unit decodes on its own, by encoding_rs's WHATWG index where it equals Python's
/// and by Python's own value where it does not (py3_codecs_differential proves every
/// unit and code point).
#[derive(Debug, PartialEq, Eq)]
pub struct MultiByte {
    /// The `encodings` module, as `codec_names::module` names it.
    pub module: &'static str,
    whatwg: &'static encoding_rs::Encoding,
    /// gb18030's four-byte units.
    pub four_byte: bool,
    /// Units Python decodes otherwise (`None`: an error there).
    decode_differences: &'static [(&'static [u8], Option<char>)],
    /// Characters Python encodes otherwise (`None`: an error there).
    encode_differences: &'static [(char, Option<&'static [u8]>)],
}

impl MultiByte {
    /// Python's strict decoder: every non-ASCII unit must map (a unit cut short by the
    /// end of the input is an error too).
    fn decode(&self, bytes: &[u8]) -> Option<String> {
        let mut out = String::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii() {
                out.push(char::from(bytes[i]));
                i += 1;
                continue;
            }
            let four = self.four_byte && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
            let unit = bytes.get(i..i + if four { 4 } else { 2 })?;
            out.push(self.decode_unit(unit)?);
            i += unit.len();
        }
        Some(out)
    }

    fn decode_unit(&self, unit: &[u8]) -> Option<char> {
        if let Some((_, c)) = self.decode_differences.iter().find(|(u, _)| *u == unit) {
            return *c;
        }
        // A unit is one character in Python; WHATWG reading it as more (0x80 as the
        // euro sign, then the next byte) is not a match.
        let text = self.whatwg.decode_without_bom_handling_and_without_replacement(unit)?;
        let mut chars = text.chars();
        let c = chars.next()?;
        chars.next().is_none().then_some(c)
    }

    fn encode_char(&self, c: char, out: &mut Vec<u8>) -> Option<()> {
        if c.is_ascii() {
            out.push(c as u8);
            return Some(());
        }
        if let Some((_, bytes)) = self.encode_differences.iter().find(|(d, _)| *d == c) {
            out.extend_from_slice((*bytes)?);
            return Some(());
        }
        let mut buf = [0u8; 4];
        let (bytes, _, unmappable) = self.whatwg.encode(c.encode_utf8(&mut buf));
        if unmappable {
            return None;
        }
        out.extend_from_slice(&bytes);
        Some(())
    }
}

/// GB18030 codes where Python (GB18030-2000) keeps the private-use code points
/// that later editions, and WHATWG, moved to standard characters.
const GB18030_DECODE: &[(&[u8], Option<char>)] = &[
    // WHATWG's one four-byte swap the other way: Python keeps U+1E3F here.
    (&[0x81, 0x35, 0xF4, 0x37], Some('\u{1E3F}')),
    (&[0xA3, 0xA0], Some('\u{E5E5}')),
    (&[0xA6, 0xD9], Some('\u{E78D}')),
    (&[0xA6, 0xDA], Some('\u{E78E}')),
    (&[0xA6, 0xDB], Some('\u{E78F}')),
    (&[0xA6, 0xDC], Some('\u{E790}')),
    (&[0xA6, 0xDD], Some('\u{E791}')),
    (&[0xA6, 0xDE], Some('\u{E792}')),
    (&[0xA6, 0xDF], Some('\u{E793}')),
    (&[0xA6, 0xEC], Some('\u{E794}')),
    (&[0xA6, 0xED], Some('\u{E795}')),
    (&[0xA6, 0xF3], Some('\u{E796}')),
    (&[0xA8, 0xBC], Some('\u{E7C7}')),
    (&[0xFE, 0x59], Some('\u{E81E}')),
    (&[0xFE, 0x61], Some('\u{E826}')),
    (&[0xFE, 0x66], Some('\u{E82B}')),
    (&[0xFE, 0x67], Some('\u{E82C}')),
    (&[0xFE, 0x6D], Some('\u{E832}')),
    (&[0xFE, 0x7E], Some('\u{E843}')),
    (&[0xFE, 0x90], Some('\u{E854}')),
    (&[0xFE, 0xA0], Some('\u{E864}')),
];

/// The other direction of `GB18030_DECODE`: those standard characters go to four-byte
/// codes in Python, the private-use ones back to the two-byte codes.
const GB18030_ENCODE: &[(char, Option<&[u8]>)] = &[
    ('\u{1E3F}', Some(&[0x81, 0x35, 0xF4, 0x37])),
    ('\u{9FB4}', Some(&[0x82, 0x35, 0x90, 0x37])),
    ('\u{9FB5}', Some(&[0x82, 0x35, 0x90, 0x38])),
    ('\u{9FB6}', Some(&[0x82, 0x35, 0x90, 0x39])),
    ('\u{9FB7}', Some(&[0x82, 0x35, 0x91, 0x30])),
    ('\u{9FB8}', Some(&[0x82, 0x35, 0x91, 0x31])),
    ('\u{9FB9}', Some(&[0x82, 0x35, 0x91, 0x32])),
    ('\u{9FBA}', Some(&[0x82, 0x35, 0x91, 0x33])),
    ('\u{9FBB}', Some(&[0x82, 0x35, 0x91, 0x34])),
    ('\u{E5E5}', Some(&[0xA3, 0xA0])),
    ('\u{E7C7}', Some(&[0xA8, 0xBC])),
    ('\u{FE10}', Some(&[0x84, 0x31, 0x82, 0x36])),
    ('\u{FE11}', Some(&[0x84, 0x31, 0x82, 0x37])),
    ('\u{FE12}', Some(&[0x84, 0x31, 0x82, 0x38])),
    ('\u{FE13}', Some(&[0x84, 0x31, 0x82, 0x39])),
    ('\u{FE14}', Some(&[0x84, 0x31, 0x83, 0x30])),
    ('\u{FE15}', Some(&[0x84, 0x31, 0x83, 0x31])),
    ('\u{FE16}', Some(&[0x84, 0x31, 0x83, 0x32])),
    ('\u{FE17}', Some(&[0x84, 0x31, 0x83, 0x33])),
    ('\u{FE18}', Some(&[0x84, 0x31, 0x83, 0x34])),
    ('\u{FE19}', Some(&[0x84, 0x31, 0x83, 0x35])),
];

/// The multi-byte codecs carried, by Python module. cp949 (Unified Hangul Code:
/// `cp949`, `uhc`, `ms949`) is WHATWG's EUC-KR exactly; Python's euc_kr (also
/// `ks_c_5601-1987`) is not: it has no UHC extension and spells the syllables outside
/// KS X 1001 as eight-byte jamo sequences, so it is not carried.
static MULTI_BYTE: [MultiByte; 2] = [
    MultiByte {
        module: "cp949",
        whatwg: encoding_rs::EUC_KR,
        four_byte: false,
        decode_differences: &[],
        encode_differences: &[],
    },
    MultiByte {
        module: "gb18030",
        whatwg: encoding_rs::GB18030,
        four_byte: true,
        decode_differences: GB18030_DECODE,
        encode_differences: GB18030_ENCODE,
    },
];

/// Why text could not be converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecProblem {
    /// Python would raise `UnicodeError`.
    Unicode,
    /// A codec Python may know but this emulation does not carry.
    Unsupported(String),
}

/// Python's codec lookup (`codecs.lookup`, through `encodings.aliases`).
pub fn codec(name: &str) -> Result<Codec, CodecProblem> {
    let unsupported = || CodecProblem::Unsupported(name.to_owned());
    match codec_names::module(name).ok_or_else(unsupported)? {
        "ascii" => Ok(Codec::Ascii),
        "latin_1" => Ok(Codec::Latin1),
        "utf_8" => Ok(Codec::Utf8),
        module => single_byte::by_module(module)
            .map(Codec::SingleByte)
            .or_else(|| MULTI_BYTE.iter().find(|m| m.module == module).map(Codec::MultiByte))
            .ok_or_else(unsupported),
    }
}

/// `bytes.decode(codec)` (strict).
pub fn decode(bytes: &[u8], codec: Codec) -> Result<String, CodecProblem> {
    match codec {
        Codec::Ascii if bytes.is_ascii() => Ok(bytes.iter().map(|&b| b as char).collect()),
        Codec::Ascii => Err(CodecProblem::Unicode),
        Codec::Latin1 => Ok(bytes.iter().map(|&b| b as char).collect()),
        Codec::Utf8 => String::from_utf8(bytes.to_vec()).map_err(|_| CodecProblem::Unicode),
        Codec::SingleByte(sb) => bytes.iter().map(|&b| sb.decode_byte(b).ok_or(CodecProblem::Unicode)).collect(),
        Codec::MultiByte(mb) => mb.decode(bytes).ok_or(CodecProblem::Unicode),
    }
}

/// One character appended in a codec other than UTF-8, or `None` where Python's
/// strict encoder fails.
fn encode_char(c: char, codec: Codec, out: &mut Vec<u8>) -> Option<()> {
    let byte = match codec {
        Codec::Ascii => c.is_ascii().then_some(c as u8),
        Codec::Latin1 => u8::try_from(c).ok(),
        Codec::SingleByte(sb) => sb.encode_char(c),
        Codec::MultiByte(mb) => return mb.encode_char(c, out),
        Codec::Utf8 => None,
    };
    out.push(byte?);
    Some(())
}

/// `str.encode(codec)` (strict).
pub fn encode(s: &str, codec: Codec) -> Result<Vec<u8>, CodecProblem> {
    if codec == Codec::Utf8 {
        return Ok(s.as_bytes().to_vec());
    }
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        encode_char(c, codec, &mut out).ok_or(CodecProblem::Unicode)?;
    }
    Ok(out)
}

/// `str.encode(codec, 'replace')`: what the codec lacks becomes `?`.
pub fn encode_replace(s: &str, codec: Codec) -> Vec<u8> {
    if codec == Codec::Utf8 {
        return s.as_bytes().to_vec();
    }
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        if encode_char(c, codec, &mut out).is_none() {
            out.push(b'?');
        }
    }
    out
}

/// An `email.charset.Charset` that body text can be set with: the email package's
/// table entry for the name (`ALIASES`, `CHARSETS`, `CODEC_MAP`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyCharset {
    /// The input and output charset (the ones with an output conversion are refused).
    pub name: String,
    /// `header_encoding`: 1 quoted-printable, 2 base64, 3 the shorter (`SHORTEST`).
    pub header_encoding: Option<u8>,
    pub encoding: BodyEncoding,
    /// `CODEC_MAP`'s codec name (`None` for us-ascii).
    pub codec: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyEncoding {
    SevenOrEight,
    QuotedPrintable,
    Base64,
}

/// `Charset(name)`: Python lower-cases the name and maps it through `ALIASES`; a name
/// outside `CHARSETS` gets base64 bodies and the shorter encoding in headers.
pub fn body_charset(name: &str) -> Result<BodyCharset, CodecProblem> {
    use BodyEncoding::{Base64, QuotedPrintable, SevenOrEight};
    if !name.is_ascii() {
        // Python raises CharsetError; no text reaching here is decorated with it.
        return Err(CodecProblem::Unsupported(name.to_owned()));
    }
    let lower = name.to_lowercase();
    let input = match lower.as_str() {
        "latin_1" | "latin-1" => "iso-8859-1",
        "latin_2" | "latin-2" => "iso-8859-2",
        "latin_3" | "latin-3" => "iso-8859-3",
        "latin_4" | "latin-4" => "iso-8859-4",
        "latin_5" | "latin-5" => "iso-8859-9",
        "latin_6" | "latin-6" => "iso-8859-10",
        "latin_7" | "latin-7" => "iso-8859-13",
        "latin_8" | "latin-8" => "iso-8859-14",
        "latin_9" | "latin-9" => "iso-8859-15",
        "latin_10" | "latin-10" => "iso-8859-16",
        "cp949" => "ks_c_5601-1987",
        "euc_jp" => "euc-jp",
        "euc_kr" => "euc-kr",
        "ascii" => "us-ascii",
        other => other,
    };
    let (header_encoding, encoding) = match input {
        "iso-8859-1" | "iso-8859-2" | "iso-8859-3" | "iso-8859-4" | "iso-8859-9" | "iso-8859-10" | "iso-8859-13"
        | "iso-8859-14" | "iso-8859-15" | "iso-8859-16" | "windows-1252" | "viscii" => (Some(1), QuotedPrintable),
        "us-ascii" => (None, SevenOrEight),
        "big5" | "gb2312" | "koi8-r" => (Some(2), Base64),
        // Their bodies are converted to iso-2022-jp, which this emulation does not do.
        "euc-jp" | "shift_jis" => return Err(CodecProblem::Unsupported(name.to_owned())),
        "iso-2022-jp" => (Some(2), SevenOrEight),
        _ => (Some(3), Base64),
    };
    let codec = match input {
        "us-ascii" => None,
        "gb2312" => Some("eucgb2312_cn".to_owned()),
        "big5" => Some("big5_tw".to_owned()),
        other => Some(other.to_owned()),
    };
    Ok(BodyCharset { name: input.to_owned(), header_encoding, encoding, codec })
}

/// What `get_payload(decode=True)` hands back for a text payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Bytes(Vec<u8>),
    /// A transfer encoding this emulation does not decode (uuencode).
    Unsupported(String),
}

/// `get_payload(decode=True)` of a non-multipart part whose payload is `payload` and
/// whose first `Content-Transfer-Encoding` is `cte` (lower-cased by the caller).
pub fn payload_bytes(payload: &PyStr, cte: &str) -> Decoded {
    let raw = match payload.encode_surrogateescape() {
        Ok(b) => b,
        // raw-unicode-escape: one octet for each character below U+0100.
        Err(_) => match payload.code_points().map(|cp| u8::try_from(cp).ok()).collect::<Option<Vec<u8>>>() {
            Some(b) => b,
            None => return Decoded::Unsupported("a body with characters beyond U+00FF".into()),
        },
    };
    match cte {
        "quoted-printable" => Decoded::Bytes(qp_decode(&raw)),
        "base64" => {
            let joined: Vec<u8> = split_lines_bytes(&raw).concat();
            match base64_decode(&joined) {
                Some(b) => Decoded::Bytes(b),
                None => Decoded::Unsupported("a base64 body that is not well formed".into()),
            }
        }
        "x-uuencode" | "uuencode" | "uue" | "x-uue" => Decoded::Unsupported(format!("a {cte} body")),
        _ => Decoded::Bytes(raw),
    }
}

/// `bytes.splitlines()`: breaks at CRLF, CR and LF.
fn split_lines_bytes(b: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\r' => {
                out.push(&b[start..i]);
                i += if b.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
                start = i;
            }
            b'\n' => {
                out.push(&b[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < b.len() {
        out.push(&b[start..]);
    }
    out
}

/// `_encoded_words.decode_b` for well-formed input (padding added when short).
fn base64_decode(b: &[u8]) -> Option<Vec<u8>> {
    let mut padded = b.to_vec();
    padded.resize(b.len().div_ceil(4) * 4, b'=');
    base64::engine::general_purpose::STANDARD.decode(&padded).ok()
}

/// `set_payload(bytes, charset)` for a charset whose body encoding is base64 or
/// quoted-printable: the encoded text (the new payload) and the transfer encoding.
/// For 7bit/8bit charsets the octets stay as they are.
pub fn body_encode(bytes: &[u8], cs: &BodyCharset) -> (PyStr, &'static str) {
    match cs.encoding {
        BodyEncoding::Base64 => (PyStr::from(base64_body(bytes).as_str()), "base64"),
        BodyEncoding::QuotedPrintable => (PyStr::from(qp_body(bytes).as_str()), "quoted-printable"),
        // encode_7or8bit: 7bit unless an octet is 8-bit.
        BodyEncoding::SevenOrEight => {
            (PyStr::decode_surrogateescape(bytes), if bytes.is_ascii() { "7bit" } else { "8bit" })
        }
    }
}

/// `quoprimime.body_encode(body.decode('latin1'))` with maxlinelen 76 and `\n`.
fn qp_body(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return String::new();
    }
    const MAXLINELEN: usize = 76;
    let safe = |b: u8| b == b'\t' || b == b'\r' || b == b'\n' || (b' '..=b'~').contains(&b) && b != b'=';
    let body: String =
        bytes.iter().map(|&b| if safe(b) { (b as char).to_string() } else { format!("={b:02X}") }).collect();
    let mut encoded: Vec<String> = Vec::new();
    for line in pystr::splitlines(&body) {
        // The translated text is ASCII: byte indexes are character indexes.
        let l = line.as_bytes();
        let mut start = 0usize;
        let laststart = l.len() as isize - 1 - MAXLINELEN as isize;
        while start as isize <= laststart {
            let stop = start + MAXLINELEN - 1;
            if l[stop - 2] == b'=' {
                encoded.push(line[start..stop - 1].to_owned());
                start = stop - 2;
            } else if l[stop - 1] == b'=' {
                encoded.push(line[start..stop].to_owned());
                start = stop - 1;
            } else {
                encoded.push(format!("{}=", &line[start..stop]));
                start = stop;
            }
        }
        match l.last() {
            Some(&last @ (b' ' | b'\t')) => {
                let room = start as isize - laststart;
                let quoted = format!("={last:02X}");
                let q = if room >= 3 {
                    quoted
                } else if room == 2 {
                    format!("{}=\n", last as char)
                } else {
                    format!("=\n{quoted}")
                };
                encoded.push(format!("{}{q}", &line[start..l.len() - 1]));
            }
            _ => encoded.push(line[start..].to_owned()),
        }
    }
    if body.ends_with(['\r', '\n']) {
        encoded.push(String::new());
    }
    encoded.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qp_body_matches_python() {
        // quoprimime.body_encode('caf\xe9 = ok \n\tx\n'.encode('latin1').decode('latin1'))
        assert_eq!(qp_body(b"caf\xe9 = ok \n\tx\n"), "caf=E9 =3D ok=20\n\tx\n");
        let long = "a".repeat(80);
        assert_eq!(qp_body(long.as_bytes()), format!("{}=\n{}", "a".repeat(75), "a".repeat(5)));
    }
}
