//! The Python 2.7 codecs Mailman 2.1's decoration converts text with
//! (`unicode(s, charset)`, `u.encode(charset)`): `codecs.lookup`'s name handling, and
//! the codecs carried here (ASCII, Latin-1, UTF-8, ISO-2022-JP and the single-byte
//! ones). A name Python knows but this emulation does not carry is reported as such,
//! never guessed.

use super::charset::{self, decode_iso2022jp, encode_iso2022jp, Unit};
use crate::single_byte::{self, SingleByte};
use mailqueue_pickle::PyStr;

/// A codec carried here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Ascii,
    Latin1,
    Utf8,
    Iso2022Jp,
    SingleByte(&'static SingleByte),
}

/// What `codecs.lookup(name)` gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(Codec),
    /// Python raises `LookupError`: no such codec.
    Unknown,
    /// Python has this codec; this emulation does not.
    NotCarried(String),
}

/// Why text could not be converted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodecProblem {
    /// Python raises `UnicodeError`.
    Unicode,
    /// Python would convert, through a mapping this emulation does not carry.
    NotCarried(String),
}

/// One character of a Python 2 unicode string, as decoded here: a code point, or a
/// Japanese character kept as its JIS code (no JIS-to-Unicode table is carried).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Char {
    Code(u32),
    Jis(Unit),
}

/// `codecs.lookup(name)`: lower-cased, runs of anything but letters, digits and `.`
/// made one `_` (leading and trailing ones dropped), then aliases and module names.
pub fn lookup(name: &str) -> Lookup {
    let norm = normalize(name);
    let under = norm.replace('.', "_");
    let known = |n: &str| PYTHON_27_CODECS.binary_search(&n).is_ok();
    if !(known(&norm) || known(&under)) {
        return Lookup::Unknown;
    }
    let is = |group: &[&str]| group.contains(&norm.as_str()) || group.contains(&under.as_str());
    if is(&[
        "ascii",
        "646",
        "ansi_x3.4_1968",
        "ansi_x3.4_1986",
        "ansi_x3_4_1968",
        "cp367",
        "csascii",
        "ibm367",
        "iso646_us",
        "iso_646.irv_1991",
        "iso_ir_6",
        "us",
        "us_ascii",
    ]) {
        Lookup::Found(Codec::Ascii)
    } else if is(&[
        "latin_1",
        "8859",
        "cp819",
        "csisolatin1",
        "ibm819",
        "iso8859",
        "iso8859_1",
        "iso_8859_1",
        "iso_8859_1_1987",
        "iso_ir_100",
        "l1",
        "latin",
        "latin1",
    ]) {
        Lookup::Found(Codec::Latin1)
    } else if is(&["utf_8", "u8", "utf", "utf8", "utf8_ucs2", "utf8_ucs4"]) {
        Lookup::Found(Codec::Utf8)
    } else if is(&["iso2022_jp", "csiso2022jp", "iso2022jp", "iso_2022_jp"]) {
        Lookup::Found(Codec::Iso2022Jp)
    } else if let Some(sb) = single_byte_module(&norm, &under).and_then(single_byte::by_module) {
        Lookup::Found(Codec::SingleByte(sb))
    } else {
        Lookup::NotCarried(name.to_owned())
    }
}

/// The `encodings` modules of the single-byte codecs carried, for the differential
/// test that proves them against Python 2.7 (with the three functions below).
pub fn carried_single_byte() -> impl Iterator<Item = &'static str> {
    single_byte::modules()
}

/// The carried single-byte module `codecs.lookup(name)` finds.
pub fn single_byte_lookup(name: &str) -> Option<&'static str> {
    match lookup(name) {
        Lookup::Found(Codec::SingleByte(sb)) => Some(sb.module),
        _ => None,
    }
}

/// `unicode(bytes, name[, 'ignore'])` as code points, for a carried single-byte codec.
pub fn single_byte_decode(name: &str, bytes: &[u8], ignore: bool) -> Option<Vec<u32>> {
    let Lookup::Found(c @ Codec::SingleByte(_)) = lookup(name) else { return None };
    let text = decode(bytes, c, ignore).ok()?;
    // A single-byte codec gives code points only, never JIS units.
    text.into_iter().map(|ch| if let Char::Code(cp) = ch { Some(cp) } else { None }).collect()
}

/// `u.encode(name)` of code points, for a carried single-byte codec.
pub fn single_byte_encode(name: &str, code_points: &[u32]) -> Option<Vec<u8>> {
    let Lookup::Found(c @ Codec::SingleByte(_)) = lookup(name) else { return None };
    let text: Vec<Char> = code_points.iter().map(|&cp| Char::Code(cp)).collect();
    encode(&text, c).ok()
}

/// The module Python 2.7's `encodings.search_function` loads for a carried
/// single-byte codec: the alias (also with `.` read as `_`), else the name itself.
fn single_byte_module(norm: &str, under: &str) -> Option<&'static str> {
    let alias = |n: &str| SINGLE_BYTE_ALIASES.binary_search_by(|(a, _)| (*a).cmp(n)).ok();
    match alias(norm).or_else(|| alias(under)) {
        Some(i) => Some(SINGLE_BYTE_ALIASES[i].1),
        None => single_byte::modules().find(|m| *m == norm),
    }
}

fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut punct = false;
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() || c == '.' {
            if punct && !out.is_empty() {
                out.push('_');
            }
            out.push(c);
            punct = false;
        } else {
            punct = true;
        }
    }
    out
}

/// `unicode(bytes, codec)` (strict), or with `errors='ignore'`.
pub fn decode(bytes: &[u8], codec: Codec, ignore: bool) -> Result<Vec<Char>, CodecProblem> {
    match codec {
        Codec::Ascii => bytes
            .iter()
            .filter(|b| !ignore || b.is_ascii())
            .map(|&b| if b.is_ascii() { Ok(Char::Code(u32::from(b))) } else { Err(CodecProblem::Unicode) })
            .collect(),
        Codec::Latin1 => Ok(bytes.iter().map(|&b| Char::Code(u32::from(b))).collect()),
        Codec::SingleByte(sb) => bytes
            .iter()
            .filter_map(|&b| match sb.decode_byte(b) {
                Some(c) => Some(Ok(Char::Code(u32::from(c)))),
                None if ignore => None,
                None => Some(Err(CodecProblem::Unicode)),
            })
            .collect(),
        Codec::Utf8 => decode_utf8(bytes, ignore),
        Codec::Iso2022Jp => match decode_iso2022jp(bytes) {
            Some(units) => units
                .into_iter()
                .map(|u| match u {
                    Unit::Byte(b) => Ok(Char::Code(u32::from(b))),
                    other => Ok(Char::Jis(other)),
                })
                .collect(),
            None if ignore => Err(CodecProblem::NotCarried("ISO-2022-JP text with errors ignored".into())),
            None => Err(CodecProblem::Unicode),
        },
    }
}

/// Python 2.7's UTF-8 decoder: encoded surrogates are accepted; with `ignore` each
/// invalid sequence is dropped where Python's replace handler would mark it.
fn decode_utf8(s: &[u8], ignore: bool) -> Result<Vec<Char>, CodecProblem> {
    let mut out = Vec::with_capacity(s.len());
    for unit in charset::decode_utf8(s) {
        match unit {
            Unit::Byte(b) => out.push(Char::Code(u32::from(b))),
            Unit::Utf8 { bytes, len } => out.push(Char::Code(utf8_code_point(bytes, len))),
            Unit::Replacement if ignore => {}
            _ => return Err(CodecProblem::Unicode),
        }
    }
    Ok(out)
}

/// The code point of a sequence the UTF-8 decoder accepted: the lead octet's payload
/// bits (fewer the longer the sequence), then six bits per continuation octet.
fn utf8_code_point(bytes: [u8; 4], len: u8) -> u32 {
    let lead = u32::from(bytes[0] & (0x7F >> len));
    bytes.iter().take(usize::from(len)).skip(1).fold(lead, |cp, &b| cp << 6 | u32::from(b & 0x3F))
}

/// `u.encode(codec)` (strict).
pub fn encode(text: &[Char], codec: Codec) -> Result<Vec<u8>, CodecProblem> {
    let jis_elsewhere = || {
        CodecProblem::NotCarried("Japanese text converted to another character set (no JIS table is carried)".into())
    };
    match codec {
        Codec::Ascii | Codec::Latin1 => {
            let limit = if codec == Codec::Ascii { 0x80 } else { 0x100 };
            text.iter()
                .map(|c| match *c {
                    Char::Code(cp) if cp < limit => Ok(cp as u8),
                    Char::Code(_) => Err(CodecProblem::Unicode),
                    // No JIS character is ASCII; a few are Latin-1 (the table), the rest lie beyond.
                    Char::Jis(u) => match jis_latin1(u) {
                        Some(cp) if cp < limit => Ok(cp as u8),
                        _ => Err(CodecProblem::Unicode),
                    },
                })
                .collect()
        }
        Codec::SingleByte(sb) => text
            .iter()
            .map(|c| {
                let cp = match *c {
                    Char::Code(cp) => cp,
                    Char::Jis(u) => jis_latin1(u).ok_or_else(jis_elsewhere)?,
                };
                // A lone surrogate is in no charmap.
                char::from_u32(cp).and_then(|c| sb.encode_char(c)).ok_or(CodecProblem::Unicode)
            })
            .collect(),
        Codec::Utf8 => {
            let cps = text
                .iter()
                .map(|c| match *c {
                    Char::Code(cp) => Ok(cp),
                    Char::Jis(u) => jis_latin1(u).ok_or_else(jis_elsewhere),
                })
                .collect::<Result<Vec<u32>, _>>()?;
            // Python 2 writes lone surrogates as three octets, as WTF-8 does.
            PyStr::from_code_points(cps).map(|s| s.as_wtf8().to_vec()).map_err(|_| CodecProblem::Unicode)
        }
        Codec::Iso2022Jp => {
            let units = text
                .iter()
                .map(|c| match *c {
                    Char::Code(cp) if cp < 0x80 => Ok(Unit::Byte(cp as u8)),
                    Char::Code(cp) if cp < 0x100 => match JIS_LATIN1.iter().find(|(_, c)| *c == cp) {
                        Some((u, _)) => Ok(*u),
                        // The other Latin-1 characters are in neither JIS set.
                        None => Err(CodecProblem::Unicode),
                    },
                    Char::Code(_) => Err(CodecProblem::NotCarried(
                        "non-ASCII text converted to ISO-2022-JP (no JIS table is carried)".into(),
                    )),
                    Char::Jis(u) => Ok(u),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = Vec::with_capacity(units.len() * 2);
            encode_iso2022jp(&units, &mut out);
            Ok(out)
        }
    }
}

/// The JIS characters Python 2.7's ISO-2022-JP codec maps to Latin-1 (and JIS Roman's
/// overline), both ways; every other JIS character lies beyond U+00FF.
const JIS_LATIN1: [(Unit, u32); 13] = [
    (Unit::Jis0208(*b"!q"), 0xa2),
    (Unit::Jis0208(*b"!r"), 0xa3),
    (Unit::JisRoman(b'\\'), 0xa5),
    (Unit::Jis0208(*b"!x"), 0xa7),
    (Unit::Jis0208(*b"!/"), 0xa8),
    (Unit::Jis0208(*b"\"L"), 0xac),
    (Unit::Jis0208(*b"!k"), 0xb0),
    (Unit::Jis0208(*b"!^"), 0xb1),
    (Unit::Jis0208(*b"!-"), 0xb4),
    (Unit::Jis0208(*b"\"y"), 0xb6),
    (Unit::Jis0208(*b"!_"), 0xd7),
    (Unit::Jis0208(*b"!`"), 0xf7),
    (Unit::JisRoman(b'~'), 0x203e),
];

fn jis_latin1(u: Unit) -> Option<u32> {
    JIS_LATIN1.iter().find(|(j, _)| *j == u).map(|(_, cp)| *cp)
}

/// Python 2.7's `encodings.aliases.aliases` entries for the carried single-byte codecs.
const SINGLE_BYTE_ALIASES: [(&str, &str); 94] = [
    ("1250", "cp1250"),
    ("1251", "cp1251"),
    ("1252", "cp1252"),
    ("1253", "cp1253"),
    ("1254", "cp1254"),
    ("1255", "cp1255"),
    ("1256", "cp1256"),
    ("1257", "cp1257"),
    ("1258", "cp1258"),
    ("arabic", "iso8859_6"),
    ("asmo_708", "iso8859_6"),
    ("csisolatin2", "iso8859_2"),
    ("csisolatin3", "iso8859_3"),
    ("csisolatin4", "iso8859_4"),
    ("csisolatin5", "iso8859_9"),
    ("csisolatin6", "iso8859_10"),
    ("csisolatinarabic", "iso8859_6"),
    ("csisolatincyrillic", "iso8859_5"),
    ("csisolatingreek", "iso8859_7"),
    ("csisolatinhebrew", "iso8859_8"),
    ("cskoi8r", "koi8_r"),
    ("cyrillic", "iso8859_5"),
    ("ecma_114", "iso8859_6"),
    ("ecma_118", "iso8859_7"),
    ("elot_928", "iso8859_7"),
    ("greek", "iso8859_7"),
    ("greek8", "iso8859_7"),
    ("hebrew", "iso8859_8"),
    ("iso_8859_10", "iso8859_10"),
    ("iso_8859_10_1992", "iso8859_10"),
    ("iso_8859_11", "iso8859_11"),
    ("iso_8859_11_2001", "iso8859_11"),
    ("iso_8859_13", "iso8859_13"),
    ("iso_8859_14", "iso8859_14"),
    ("iso_8859_14_1998", "iso8859_14"),
    ("iso_8859_15", "iso8859_15"),
    ("iso_8859_16", "iso8859_16"),
    ("iso_8859_16_2001", "iso8859_16"),
    ("iso_8859_2", "iso8859_2"),
    ("iso_8859_2_1987", "iso8859_2"),
    ("iso_8859_3", "iso8859_3"),
    ("iso_8859_3_1988", "iso8859_3"),
    ("iso_8859_4", "iso8859_4"),
    ("iso_8859_4_1988", "iso8859_4"),
    ("iso_8859_5", "iso8859_5"),
    ("iso_8859_5_1988", "iso8859_5"),
    ("iso_8859_6", "iso8859_6"),
    ("iso_8859_6_1987", "iso8859_6"),
    ("iso_8859_7", "iso8859_7"),
    ("iso_8859_7_1987", "iso8859_7"),
    ("iso_8859_8", "iso8859_8"),
    ("iso_8859_8_1988", "iso8859_8"),
    ("iso_8859_9", "iso8859_9"),
    ("iso_8859_9_1989", "iso8859_9"),
    ("iso_celtic", "iso8859_14"),
    ("iso_ir_101", "iso8859_2"),
    ("iso_ir_109", "iso8859_3"),
    ("iso_ir_110", "iso8859_4"),
    ("iso_ir_126", "iso8859_7"),
    ("iso_ir_127", "iso8859_6"),
    ("iso_ir_138", "iso8859_8"),
    ("iso_ir_144", "iso8859_5"),
    ("iso_ir_148", "iso8859_9"),
    ("iso_ir_157", "iso8859_10"),
    ("iso_ir_199", "iso8859_14"),
    ("iso_ir_226", "iso8859_16"),
    ("l10", "iso8859_16"),
    ("l2", "iso8859_2"),
    ("l3", "iso8859_3"),
    ("l4", "iso8859_4"),
    ("l5", "iso8859_9"),
    ("l6", "iso8859_10"),
    ("l7", "iso8859_13"),
    ("l8", "iso8859_14"),
    ("l9", "iso8859_15"),
    ("latin10", "iso8859_16"),
    ("latin2", "iso8859_2"),
    ("latin3", "iso8859_3"),
    ("latin4", "iso8859_4"),
    ("latin5", "iso8859_9"),
    ("latin6", "iso8859_10"),
    ("latin7", "iso8859_13"),
    ("latin8", "iso8859_14"),
    ("latin9", "iso8859_15"),
    ("thai", "iso8859_11"),
    ("windows_1250", "cp1250"),
    ("windows_1251", "cp1251"),
    ("windows_1252", "cp1252"),
    ("windows_1253", "cp1253"),
    ("windows_1254", "cp1254"),
    ("windows_1255", "cp1255"),
    ("windows_1256", "cp1256"),
    ("windows_1257", "cp1257"),
    ("windows_1258", "cp1258"),
];

/// Every name Python 2.7.18's `codecs.lookup` accepts after normalization: the
/// `encodings` package's modules and `encodings.aliases` (generated with that Python).
const PYTHON_27_CODECS: &[&str] = &[
    "037",
    "1026",
    "1140",
    "1250",
    "1251",
    "1252",
    "1253",
    "1254",
    "1255",
    "1256",
    "1257",
    "1258",
    "424",
    "437",
    "500",
    "646",
    "775",
    "850",
    "852",
    "855",
    "857",
    "858",
    "860",
    "861",
    "862",
    "863",
    "864",
    "865",
    "866",
    "869",
    "8859",
    "932",
    "936",
    "949",
    "950",
    "ansi_x3.4_1968",
    "ansi_x3.4_1986",
    "ansi_x3_4_1968",
    "arabic",
    "ascii",
    "asmo_708",
    "base64",
    "base64_codec",
    "base_64",
    "big5",
    "big5_hkscs",
    "big5_tw",
    "big5hkscs",
    "bz2",
    "bz2_codec",
    "charmap",
    "chinese",
    "cp037",
    "cp1006",
    "cp1026",
    "cp1140",
    "cp1250",
    "cp1251",
    "cp1252",
    "cp1253",
    "cp1254",
    "cp1255",
    "cp1256",
    "cp1257",
    "cp1258",
    "cp1361",
    "cp154",
    "cp367",
    "cp424",
    "cp437",
    "cp500",
    "cp720",
    "cp737",
    "cp775",
    "cp819",
    "cp850",
    "cp852",
    "cp855",
    "cp856",
    "cp857",
    "cp858",
    "cp860",
    "cp861",
    "cp862",
    "cp863",
    "cp864",
    "cp865",
    "cp866",
    "cp869",
    "cp874",
    "cp875",
    "cp932",
    "cp936",
    "cp949",
    "cp950",
    "cp_gr",
    "cp_is",
    "csascii",
    "csbig5",
    "csibm037",
    "csibm1026",
    "csibm424",
    "csibm500",
    "csibm855",
    "csibm857",
    "csibm858",
    "csibm860",
    "csibm861",
    "csibm863",
    "csibm864",
    "csibm865",
    "csibm866",
    "csibm869",
    "csiso2022jp",
    "csiso2022kr",
    "csiso58gb231280",
    "csisolatin1",
    "csisolatin2",
    "csisolatin3",
    "csisolatin4",
    "csisolatin5",
    "csisolatin6",
    "csisolatinarabic",
    "csisolatincyrillic",
    "csisolatingreek",
    "csisolatinhebrew",
    "cskoi8r",
    "cspc775baltic",
    "cspc850multilingual",
    "cspc862latinhebrew",
    "cspc8codepage437",
    "cspcp852",
    "csptcp154",
    "csshiftjis",
    "cyrillic",
    "cyrillic_asian",
    "ebcdic_cp_be",
    "ebcdic_cp_ca",
    "ebcdic_cp_ch",
    "ebcdic_cp_he",
    "ebcdic_cp_nl",
    "ebcdic_cp_us",
    "ebcdic_cp_wt",
    "ecma_114",
    "ecma_118",
    "elot_928",
    "euc_cn",
    "euc_jis2004",
    "euc_jis_2004",
    "euc_jisx0213",
    "euc_jp",
    "euc_kr",
    "euccn",
    "eucgb2312_cn",
    "eucjis2004",
    "eucjisx0213",
    "eucjp",
    "euckr",
    "gb18030",
    "gb18030_2000",
    "gb2312",
    "gb2312_1980",
    "gb2312_80",
    "gbk",
    "greek",
    "greek8",
    "hebrew",
    "hex",
    "hex_codec",
    "hkscs",
    "hp_roman8",
    "hz",
    "hz_gb",
    "hz_gb_2312",
    "hzgb",
    "ibm037",
    "ibm039",
    "ibm1026",
    "ibm1140",
    "ibm367",
    "ibm424",
    "ibm437",
    "ibm500",
    "ibm775",
    "ibm819",
    "ibm850",
    "ibm852",
    "ibm855",
    "ibm857",
    "ibm858",
    "ibm860",
    "ibm861",
    "ibm862",
    "ibm863",
    "ibm864",
    "ibm865",
    "ibm866",
    "ibm869",
    "idna",
    "iso2022_jp",
    "iso2022_jp_1",
    "iso2022_jp_2",
    "iso2022_jp_2004",
    "iso2022_jp_3",
    "iso2022_jp_ext",
    "iso2022_kr",
    "iso2022jp",
    "iso2022jp_1",
    "iso2022jp_2",
    "iso2022jp_2004",
    "iso2022jp_3",
    "iso2022jp_ext",
    "iso2022kr",
    "iso646_us",
    "iso8859",
    "iso8859_1",
    "iso8859_10",
    "iso8859_11",
    "iso8859_13",
    "iso8859_14",
    "iso8859_15",
    "iso8859_16",
    "iso8859_2",
    "iso8859_3",
    "iso8859_4",
    "iso8859_5",
    "iso8859_6",
    "iso8859_7",
    "iso8859_8",
    "iso8859_9",
    "iso_2022_jp",
    "iso_2022_jp_1",
    "iso_2022_jp_2",
    "iso_2022_jp_2004",
    "iso_2022_jp_3",
    "iso_2022_jp_ext",
    "iso_2022_kr",
    "iso_646.irv_1991",
    "iso_8859_1",
    "iso_8859_10",
    "iso_8859_10_1992",
    "iso_8859_11",
    "iso_8859_11_2001",
    "iso_8859_13",
    "iso_8859_14",
    "iso_8859_14_1998",
    "iso_8859_15",
    "iso_8859_16",
    "iso_8859_16_2001",
    "iso_8859_1_1987",
    "iso_8859_2",
    "iso_8859_2_1987",
    "iso_8859_3",
    "iso_8859_3_1988",
    "iso_8859_4",
    "iso_8859_4_1988",
    "iso_8859_5",
    "iso_8859_5_1988",
    "iso_8859_6",
    "iso_8859_6_1987",
    "iso_8859_7",
    "iso_8859_7_1987",
    "iso_8859_8",
    "iso_8859_8_1988",
    "iso_8859_9",
    "iso_8859_9_1989",
    "iso_celtic",
    "iso_ir_100",
    "iso_ir_101",
    "iso_ir_109",
    "iso_ir_110",
    "iso_ir_126",
    "iso_ir_127",
    "iso_ir_138",
    "iso_ir_144",
    "iso_ir_148",
    "iso_ir_157",
    "iso_ir_166",
    "iso_ir_199",
    "iso_ir_226",
    "iso_ir_58",
    "iso_ir_6",
    "jisx0213",
    "johab",
    "koi8_r",
    "koi8_u",
    "korean",
    "ks_c_5601",
    "ks_c_5601_1987",
    "ks_x_1001",
    "ksc5601",
    "ksx1001",
    "l1",
    "l10",
    "l2",
    "l3",
    "l4",
    "l5",
    "l6",
    "l7",
    "l8",
    "l9",
    "latin",
    "latin1",
    "latin10",
    "latin2",
    "latin3",
    "latin4",
    "latin5",
    "latin6",
    "latin7",
    "latin8",
    "latin9",
    "latin_1",
    "mac_arabic",
    "mac_centeuro",
    "mac_croatian",
    "mac_cyrillic",
    "mac_farsi",
    "mac_greek",
    "mac_iceland",
    "mac_latin2",
    "mac_roman",
    "mac_romanian",
    "mac_turkish",
    "maccentraleurope",
    "maccyrillic",
    "macgreek",
    "maciceland",
    "maclatin2",
    "macroman",
    "macturkish",
    "ms1361",
    "ms932",
    "ms936",
    "ms949",
    "ms950",
    "ms_kanji",
    "mskanji",
    "palmos",
    "pt154",
    "ptcp154",
    "punycode",
    "quopri",
    "quopri_codec",
    "quoted_printable",
    "quotedprintable",
    "r8",
    "raw_unicode_escape",
    "roman8",
    "rot13",
    "rot_13",
    "s_jis",
    "s_jis_2004",
    "s_jisx0213",
    "shift_jis",
    "shift_jis_2004",
    "shift_jisx0213",
    "shiftjis",
    "shiftjis2004",
    "shiftjisx0213",
    "sjis",
    "sjis_2004",
    "sjisx0213",
    "string_escape",
    "thai",
    "tis620",
    "tis_620",
    "tis_620_0",
    "tis_620_2529_0",
    "tis_620_2529_1",
    "u16",
    "u32",
    "u7",
    "u8",
    "u_jis",
    "uhc",
    "ujis",
    "undefined",
    "unicode_1_1_utf_7",
    "unicode_escape",
    "unicode_internal",
    "unicodebigunmarked",
    "unicodelittleunmarked",
    "us",
    "us_ascii",
    "utf",
    "utf16",
    "utf32",
    "utf7",
    "utf8",
    "utf8_ucs2",
    "utf8_ucs4",
    "utf_16",
    "utf_16_be",
    "utf_16_le",
    "utf_16be",
    "utf_16le",
    "utf_32",
    "utf_32_be",
    "utf_32_le",
    "utf_32be",
    "utf_32le",
    "utf_7",
    "utf_8",
    "utf_8_sig",
    "uu",
    "uu_codec",
    "windows_1250",
    "windows_1251",
    "windows_1252",
    "windows_1253",
    "windows_1254",
    "windows_1255",
    "windows_1256",
    "windows_1257",
    "windows_1258",
    "zip",
    "zlib",
    "zlib_codec",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_normalizes_like_python() {
        assert_eq!(lookup("ISO-8859-1"), Lookup::Found(Codec::Latin1));
        assert_eq!(lookup("  utf-8 "), Lookup::Found(Codec::Utf8));
        assert_eq!(lookup("us-ascii"), Lookup::Found(Codec::Ascii));
        assert_eq!(lookup("iso-2022-jp"), Lookup::Found(Codec::Iso2022Jp));
        assert_eq!(lookup("x-unknown"), Lookup::Unknown);
        assert_eq!(lookup("unknown-8bit"), Lookup::Unknown);
        assert!(matches!(lookup("koi8-r"), Lookup::Found(Codec::SingleByte(sb)) if sb.module == "koi8_r"));
        assert_eq!(lookup("big5"), Lookup::NotCarried("big5".into()));
        assert!(PYTHON_27_CODECS.windows(2).all(|w| w[0] < w[1]));
        assert!(SINGLE_BYTE_ALIASES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn jis_meets_latin1_where_python_maps_it() {
        let text = decode(b"\x1b$B!_\x1b(J\\\x1b(B", Codec::Iso2022Jp, false).unwrap();
        assert_eq!(encode(&text, Codec::Latin1), Ok(b"\xd7\xa5".to_vec()));
        let kanji = decode(b"\x1b$B2q\x1b(B", Codec::Iso2022Jp, false).unwrap();
        assert_eq!(encode(&kanji, Codec::Latin1), Err(CodecProblem::Unicode));
        assert_eq!(encode(&[Char::Code(0xd7), Char::Code(0x41)], Codec::Iso2022Jp), Ok(b"\x1b$B!_\x1b(BA".to_vec()));
        assert_eq!(encode(&[Char::Code(0xfc)], Codec::Iso2022Jp), Err(CodecProblem::Unicode));
    }

    #[test]
    fn utf8_strict_and_ignoring() {
        assert_eq!(decode(b"a\xc3\xa9", Codec::Utf8, false), Ok(vec![Char::Code(0x61), Char::Code(0xe9)]));
        assert_eq!(decode(b"a\xff", Codec::Utf8, false), Err(CodecProblem::Unicode));
        assert_eq!(decode(b"a\xffb", Codec::Utf8, true), Ok(vec![Char::Code(0x61), Char::Code(0x62)]));
        assert_eq!(encode(&[Char::Code(0x20ac)], Codec::Utf8), Ok(b"\xe2\x82\xac".to_vec()));
        assert_eq!(encode(&[Char::Code(0x20ac)], Codec::Latin1), Err(CodecProblem::Unicode));
    }
}
