//! Body text as Mailman 3's decoration handles it: `get_payload(decode=True)`, the
//! few Python codecs this emulation carries, and `set_payload(bytes, charset)`'s body
//! encodings (`email.base64mime.body_encode`, `email.quoprimime.body_encode`).

use super::pystr;
use crate::body_codec::{base64_body, qp_decode};
use base64::Engine;
use mailqueue_pickle::PyStr;

/// A Python codec this emulation carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Ascii,
    Latin1,
    Utf8,
}

/// Why text could not be converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecProblem {
    /// Python would raise `UnicodeError`.
    Unicode,
    /// A codec Python may know but this emulation does not carry.
    Unsupported(String),
}

/// Python's codec lookup (`codecs.lookup`) for the names mail uses for these codecs.
pub fn codec(name: &str) -> Result<Codec, CodecProblem> {
    let norm: String = name.trim().to_lowercase().chars().map(|c| if c == '-' || c == ' ' { '_' } else { c }).collect();
    match norm.as_str() {
        "ascii" | "us_ascii" | "646" | "us" | "ansi_x3.4_1968" | "iso646_us" => Ok(Codec::Ascii),
        "latin_1" | "latin1" | "iso_8859_1" | "iso8859_1" | "8859" | "cp819" | "l1" | "latin" => Ok(Codec::Latin1),
        "utf_8" | "utf8" | "u8" | "utf" => Ok(Codec::Utf8),
        _ => Err(CodecProblem::Unsupported(name.to_owned())),
    }
}

/// `bytes.decode(codec)` (strict).
pub fn decode(bytes: &[u8], codec: Codec) -> Result<String, CodecProblem> {
    match codec {
        Codec::Ascii if bytes.is_ascii() => Ok(bytes.iter().map(|&b| b as char).collect()),
        Codec::Ascii => Err(CodecProblem::Unicode),
        Codec::Latin1 => Ok(bytes.iter().map(|&b| b as char).collect()),
        Codec::Utf8 => String::from_utf8(bytes.to_vec()).map_err(|_| CodecProblem::Unicode),
    }
}

/// `str.encode(codec)` (strict).
pub fn encode(s: &str, codec: Codec) -> Result<Vec<u8>, CodecProblem> {
    match codec {
        Codec::Utf8 => Ok(s.as_bytes().to_vec()),
        Codec::Ascii | Codec::Latin1 => {
            let limit = if codec == Codec::Ascii { 0x80 } else { 0x100 };
            s.chars().map(|c| if (c as u32) < limit { Ok(c as u8) } else { Err(CodecProblem::Unicode) }).collect()
        }
    }
}

/// `str.encode(codec, 'replace')`: what the codec lacks becomes `?`.
pub fn encode_replace(s: &str, codec: Codec) -> Vec<u8> {
    match codec {
        Codec::Utf8 => s.as_bytes().to_vec(),
        Codec::Ascii | Codec::Latin1 => {
            let limit = if codec == Codec::Ascii { 0x80 } else { 0x100 };
            s.chars().map(|c| if (c as u32) < limit { c as u8 } else { b'?' }).collect()
        }
    }
}

/// An `email.charset.Charset` that body text can be set with: its output name and
/// body encoding. Only the email package's own entries for the carried codecs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyCharset {
    pub name: &'static str,
    pub codec: Codec,
    pub encoding: BodyEncoding,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyEncoding {
    SevenOrEight,
    QuotedPrintable,
    Base64,
}

/// `Charset(name)` (after `ALIASES`), for the names whose table entry is carried.
pub fn body_charset(name: &str) -> Result<BodyCharset, CodecProblem> {
    match name.to_lowercase().as_str() {
        "us-ascii" | "ascii" => {
            Ok(BodyCharset { name: "us-ascii", codec: Codec::Ascii, encoding: BodyEncoding::SevenOrEight })
        }
        "iso-8859-1" | "latin-1" | "latin_1" => {
            Ok(BodyCharset { name: "iso-8859-1", codec: Codec::Latin1, encoding: BodyEncoding::QuotedPrintable })
        }
        "utf-8" => Ok(BodyCharset { name: "utf-8", codec: Codec::Utf8, encoding: BodyEncoding::Base64 }),
        _ => Err(CodecProblem::Unsupported(name.to_owned())),
    }
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
pub fn body_encode(bytes: &[u8], cs: BodyCharset) -> (PyStr, &'static str) {
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
