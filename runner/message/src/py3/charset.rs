//! Python 3's `email.charset.Charset` as the header encoder uses it: codecs, the choice
//! between base64 and quoted-printable, and `header_encode_lines`.

use crate::model::Charset;
use base64::Engine;

const QP: u8 = 1;
const BASE64: u8 = 2;
const SHORTEST: u8 = 3;
/// `=?` `?b?` `?=`: the RFC 2047 chrome around an encoded word, less the charset name.
const RFC2047_CHROME_LEN: usize = 7;
pub const UNKNOWN8BIT: &str = "unknown-8bit";

/// A problem Python would have raised while encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// A codec this emulation does not carry.
    Unsupported(String),
    /// The text has a character the codec cannot encode.
    Unencodable { codec: String, ch: char },
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodecError::Unsupported(c) => write!(f, "character set {c} is not supported for header encoding"),
            CodecError::Unencodable { codec, ch } => {
                write!(f, "character U+{:04X} cannot be encoded in {codec}", *ch as u32)
            }
        }
    }
}

/// `Charset.__eq__` against a name: the input charset, lower-cased.
pub fn is(charset: &Charset, name: &str) -> bool {
    charset.input_charset.to_lowercase() == name
}

/// `charset not in (None, 'us-ascii')`.
pub fn is_non_ascii(charset: Option<&Charset>) -> bool {
    charset.is_some_and(|c| !is(c, "us-ascii"))
}

/// `str.encode(codec)` for the codecs Mailman's headers use.
pub fn encode(s: &str, codec: &str) -> Result<Vec<u8>, CodecError> {
    let limit = match codec.to_lowercase().replace('_', "-").as_str() {
        "utf-8" | "utf8" => return Ok(s.as_bytes().to_vec()),
        // 'ascii' with surrogateescape: 8-bit octets come back as they were.
        UNKNOWN8BIT => {
            return super::header::raw_bytes(s).map_err(|ch| CodecError::Unencodable { codec: codec.to_owned(), ch })
        }
        "us-ascii" | "ascii" => 0x80,
        "iso-8859-1" | "latin-1" | "latin1" | "iso8859-1" => 0x100,
        _ => return Err(CodecError::Unsupported(codec.to_owned())),
    };
    s.chars()
        .map(|ch| {
            u8::try_from(ch as u32)
                .ok()
                .filter(|&b| (b as u32) < limit)
                .ok_or_else(|| CodecError::Unencodable { codec: codec.to_owned(), ch })
        })
        .collect()
}

/// Whether `s` encodes in the charset's output codec (`Header.append`'s check).
pub fn can_encode(charset: &Charset, s: &str) -> Result<bool, CodecError> {
    let codec = output_codec(charset);
    if codec == UNKNOWN8BIT {
        return Ok(true);
    }
    match encode(s, codec) {
        Ok(_) => Ok(true),
        Err(CodecError::Unencodable { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

fn output_codec(charset: &Charset) -> &str {
    charset.output_codec.as_deref().unwrap_or("us-ascii")
}

/// `get_output_charset()`.
fn output_charset(charset: &Charset) -> &str {
    charset.output_charset.as_deref().unwrap_or(&charset.input_charset)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Encoder {
    Base64,
    Qp,
}

impl Encoder {
    fn for_bytes(charset: &Charset, bytes: &[u8]) -> Option<Encoder> {
        match charset.header_encoding {
            Some(BASE64) => Some(Encoder::Base64),
            Some(QP) => Some(Encoder::Qp),
            Some(SHORTEST) => Some(if base64_len(bytes.len()) < qp_len(bytes) { Encoder::Base64 } else { Encoder::Qp }),
            _ => None,
        }
    }

    /// `header_encode(bytes, charset=codec)`: one encoded word, or nothing for no bytes.
    fn encode_word(self, bytes: &[u8], codec: &str) -> String {
        if bytes.is_empty() {
            return String::new();
        }
        match self {
            Encoder::Base64 => format!("=?{codec}?b?{}?=", base64::engine::general_purpose::STANDARD.encode(bytes)),
            Encoder::Qp => {
                let body: String = bytes.iter().map(|&b| qp_header_char(b)).collect();
                format!("=?{codec}?q?{body}?=")
            }
        }
    }
}

/// `Charset.header_encode(s)`: one encoded word (or the text itself for a charset
/// without a header encoding).
pub fn header_encode(charset: &Charset, s: &str) -> Result<String, CodecError> {
    let codec = output_codec(charset);
    let bytes = encode(s, codec)?;
    Ok(match Encoder::for_bytes(charset, &bytes) {
        Some(e) => e.encode_word(&bytes, codec),
        None => s.to_owned(),
    })
}

fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Octets the header Q encoding writes as themselves (space becomes `_`).
fn qp_plain(b: u8) -> bool {
    b == b' ' || b.is_ascii_alphanumeric() || matches!(b, b'-' | b'!' | b'*' | b'+' | b'/')
}

fn qp_header_char(b: u8) -> String {
    match b {
        b' ' => "_".into(),
        b if qp_plain(b) => (b as char).to_string(),
        b => format!("={b:02X}"),
    }
}

fn qp_len(bytes: &[u8]) -> usize {
    bytes.iter().map(|&b| if qp_plain(b) { 1 } else { 3 }).sum()
}

/// `Charset.header_encode_lines`: encoded words for `s`, each fitting the next length
/// from `maxlengths` (which never runs out). `None` first means not even one character
/// fit on the first line.
pub fn header_encode_lines(
    charset: &Charset,
    s: &str,
    mut maxlengths: impl FnMut() -> i64,
) -> Result<Vec<Option<String>>, CodecError> {
    let codec = output_codec(charset);
    let out_name = output_charset(charset);
    let encoder = Encoder::for_bytes(charset, &encode(s, codec)?)
        .ok_or_else(|| CodecError::Unsupported(charset.input_charset.clone()))?;
    let extra = (super::pystr::len(out_name) + RFC2047_CHROME_LEN) as i64;
    let mut lines: Vec<Option<String>> = Vec::new();
    let mut current = String::new();
    // The codecs here are stateless and both lengths add up octet by octet (base64 from
    // the octet count), so the line's length grows one character at a time; Python
    // re-encodes the whole line for every character, with the same result.
    let mut octets = 0usize;
    let mut qp = 0usize;
    let length = |octets: usize, qp: usize| match encoder {
        Encoder::Base64 => base64_len(octets),
        Encoder::Qp => qp,
    };
    let mut maxlen = maxlengths() - extra;
    let mut buf = [0u8; 4];
    for ch in s.chars() {
        let ch_bytes = encode(ch.encode_utf8(&mut buf), out_name)?;
        let ch_qp = qp_len(&ch_bytes);
        if length(octets + ch_bytes.len(), qp + ch_qp) as i64 > maxlen {
            if lines.is_empty() && current.is_empty() {
                lines.push(None);
            } else {
                lines.push(Some(encoder.encode_word(&encode(&current, codec)?, codec)));
            }
            current = ch.to_string();
            octets = ch_bytes.len();
            qp = ch_qp;
            maxlen = maxlengths() - extra;
        } else {
            current.push(ch);
            octets += ch_bytes.len();
            qp += ch_qp;
        }
    }
    lines.push(Some(encoder.encode_word(&encode(&current, codec)?, codec)));
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_picks_qp_for_mostly_ascii() {
        let lines = header_encode_lines(&Charset::utf8(), "caf\u{e9} tr\u{e8}s long", || 70).unwrap();
        assert_eq!(lines, vec![Some("=?utf-8?q?caf=C3=A9_tr=C3=A8s_long?=".to_owned())]);
    }

    #[test]
    fn shortest_picks_base64_for_mostly_non_ascii() {
        let lines = header_encode_lines(&Charset::utf8(), "\u{65e5}\u{672c}", || 70).unwrap();
        assert_eq!(lines, vec![Some("=?utf-8?b?5pel5pys?=".to_owned())]);
    }
}
