//! The single-byte Python codecs both Mailman versions' decoration can convert text
//! with: the charmaps of Python's `encodings` package (identical in Python 2.7 and 3),
//! taken from encoding_rs's WHATWG tables and corrected where those differ.

use std::sync::OnceLock;

/// A single-byte Python codec (a charmap in `encodings`): encoding_rs's WHATWG mapping
/// where it equals Python's, with Python's own value at the bytes where it does not
/// (py3_codecs_differential and py2_codecs_differential prove the result over every
/// byte and BMP code point, for Python 3 and 2.7, whose tables are the same).
#[derive(Debug)]
pub struct SingleByte {
    /// The `encodings` module.
    pub module: &'static str,
    whatwg: &'static encoding_rs::Encoding,
    /// Bytes 0x80..=0xFF that Python decodes otherwise (`None`: undefined there).
    differences: &'static [(u8, Option<char>)],
    table: OnceLock<Table>,
}

impl PartialEq for SingleByte {
    fn eq(&self, other: &Self) -> bool {
        self.module == other.module
    }
}

impl Eq for SingleByte {}

/// Both directions of a single-byte codec's upper half (the lower half is ASCII).
#[derive(Debug)]
struct Table {
    decode: [Option<char>; 128],
    /// Sorted by character, for `str.encode`.
    encode: Vec<(char, u8)>,
}

impl SingleByte {
    const fn new(
        module: &'static str,
        whatwg: &'static encoding_rs::Encoding,
        differences: &'static [(u8, Option<char>)],
    ) -> Self {
        SingleByte { module, whatwg, differences, table: OnceLock::new() }
    }

    fn table(&self) -> &Table {
        self.table.get_or_init(|| {
            let upper: Vec<u8> = (0x80..=0xFF).collect();
            // A single-byte decoder gives one character per byte, U+FFFD where unmapped
            // (no WHATWG single-byte index maps a byte to U+FFFD itself).
            let (text, _) = self.whatwg.decode_without_bom_handling(&upper);
            let mut decode = [None; 128];
            for (slot, c) in decode.iter_mut().zip(text.chars()) {
                *slot = (c != char::REPLACEMENT_CHARACTER).then_some(c);
            }
            for &(byte, c) in self.differences {
                decode[usize::from(byte - 0x80)] = c;
            }
            let mut encode: Vec<(char, u8)> =
                decode.iter().zip(0x80u8..=0xFF).filter_map(|(c, b)| c.map(|c| (c, b))).collect();
            encode.sort_unstable();
            Table { decode, encode }
        })
    }

    pub fn decode_byte(&self, b: u8) -> Option<char> {
        if b.is_ascii() {
            Some(char::from(b))
        } else {
            self.table().decode[usize::from(b - 0x80)]
        }
    }

    pub fn encode_char(&self, c: char) -> Option<u8> {
        if c.is_ascii() {
            return Some(c as u8);
        }
        let encode = &self.table().encode;
        encode.binary_search_by(|(k, _)| k.cmp(&c)).ok().map(|i| encode[i].1)
    }
}

/// ISO-8859-9 is not in WHATWG (its labels name windows-1254, the same above 0x9F):
/// Python's C1 controls where windows-1254 has punctuation.
const ISO8859_9: &[(u8, Option<char>)] = &[
    (0x80, Some('\u{80}')),
    (0x82, Some('\u{82}')),
    (0x83, Some('\u{83}')),
    (0x84, Some('\u{84}')),
    (0x85, Some('\u{85}')),
    (0x86, Some('\u{86}')),
    (0x87, Some('\u{87}')),
    (0x88, Some('\u{88}')),
    (0x89, Some('\u{89}')),
    (0x8A, Some('\u{8A}')),
    (0x8B, Some('\u{8B}')),
    (0x8C, Some('\u{8C}')),
    (0x91, Some('\u{91}')),
    (0x92, Some('\u{92}')),
    (0x93, Some('\u{93}')),
    (0x94, Some('\u{94}')),
    (0x95, Some('\u{95}')),
    (0x96, Some('\u{96}')),
    (0x97, Some('\u{97}')),
    (0x98, Some('\u{98}')),
    (0x99, Some('\u{99}')),
    (0x9A, Some('\u{9A}')),
    (0x9B, Some('\u{9B}')),
    (0x9C, Some('\u{9C}')),
    (0x9F, Some('\u{9F}')),
];

/// ISO-8859-11 is not in WHATWG (its labels name windows-874, the same above 0x9F):
/// Python's C1 controls where windows-874 has punctuation.
const ISO8859_11: &[(u8, Option<char>)] = &[
    (0x80, Some('\u{80}')),
    (0x85, Some('\u{85}')),
    (0x91, Some('\u{91}')),
    (0x92, Some('\u{92}')),
    (0x93, Some('\u{93}')),
    (0x94, Some('\u{94}')),
    (0x95, Some('\u{95}')),
    (0x96, Some('\u{96}')),
    (0x97, Some('\u{97}')),
];

/// Bytes Python's table leaves undefined (strict decoding fails) where WHATWG maps
/// them to C1 controls.
const CP1250: &[(u8, Option<char>)] = &[(0x81, None), (0x83, None), (0x88, None), (0x90, None), (0x98, None)];

/// Bytes Python's table leaves undefined (strict decoding fails) where WHATWG maps
/// them to C1 controls.
const CP1251: &[(u8, Option<char>)] = &[(0x98, None)];

/// Bytes Python's table leaves undefined (strict decoding fails) where WHATWG maps
/// them to C1 controls.
const CP1252: &[(u8, Option<char>)] = &[(0x81, None), (0x8D, None), (0x8F, None), (0x90, None), (0x9D, None)];

/// Bytes Python's table leaves undefined (strict decoding fails) where WHATWG maps
/// them to C1 controls.
const CP1253: &[(u8, Option<char>)] = &[
    (0x81, None),
    (0x88, None),
    (0x8A, None),
    (0x8C, None),
    (0x8D, None),
    (0x8E, None),
    (0x8F, None),
    (0x90, None),
    (0x98, None),
    (0x9A, None),
    (0x9C, None),
    (0x9D, None),
    (0x9E, None),
    (0x9F, None),
];

/// Bytes Python's table leaves undefined (strict decoding fails) where WHATWG maps
/// them to C1 controls.
const CP1254: &[(u8, Option<char>)] =
    &[(0x81, None), (0x8D, None), (0x8E, None), (0x8F, None), (0x90, None), (0x9D, None), (0x9E, None)];

/// Bytes Python's table leaves undefined (strict decoding fails) where WHATWG maps
/// them to C1 controls (0xCA: to a Hebrew point).
const CP1255: &[(u8, Option<char>)] = &[
    (0x81, None),
    (0x8A, None),
    (0x8C, None),
    (0x8D, None),
    (0x8E, None),
    (0x8F, None),
    (0x90, None),
    (0x9A, None),
    (0x9C, None),
    (0x9D, None),
    (0x9E, None),
    (0x9F, None),
    (0xCA, None),
];

/// Bytes Python's table leaves undefined (strict decoding fails) where WHATWG maps
/// them to C1 controls.
const CP1257: &[(u8, Option<char>)] = &[
    (0x81, None),
    (0x83, None),
    (0x88, None),
    (0x8A, None),
    (0x8C, None),
    (0x90, None),
    (0x98, None),
    (0x9A, None),
    (0x9C, None),
    (0x9F, None),
];

/// Bytes Python's table leaves undefined (strict decoding fails) where WHATWG maps
/// them to C1 controls.
const CP1258: &[(u8, Option<char>)] = &[
    (0x81, None),
    (0x8A, None),
    (0x8D, None),
    (0x8E, None),
    (0x8F, None),
    (0x90, None),
    (0x9A, None),
    (0x9D, None),
    (0x9E, None),
];

/// WHATWG's KOI8-U is KOI8-RU: Python's box drawing where it has Belarusian short U.
const KOI8_U: &[(u8, Option<char>)] = &[(0xAE, Some('\u{255D}')), (0xBE, Some('\u{256C}'))];

/// The single-byte codecs carried, by Python module.
static SINGLE_BYTE: [SingleByte; 25] = [
    SingleByte::new("iso8859_2", encoding_rs::ISO_8859_2, &[]),
    SingleByte::new("iso8859_3", encoding_rs::ISO_8859_3, &[]),
    SingleByte::new("iso8859_4", encoding_rs::ISO_8859_4, &[]),
    SingleByte::new("iso8859_5", encoding_rs::ISO_8859_5, &[]),
    SingleByte::new("iso8859_6", encoding_rs::ISO_8859_6, &[]),
    SingleByte::new("iso8859_7", encoding_rs::ISO_8859_7, &[]),
    SingleByte::new("iso8859_8", encoding_rs::ISO_8859_8, &[]),
    SingleByte::new("iso8859_9", encoding_rs::WINDOWS_1254, ISO8859_9),
    SingleByte::new("iso8859_10", encoding_rs::ISO_8859_10, &[]),
    SingleByte::new("iso8859_11", encoding_rs::WINDOWS_874, ISO8859_11),
    SingleByte::new("iso8859_13", encoding_rs::ISO_8859_13, &[]),
    SingleByte::new("iso8859_14", encoding_rs::ISO_8859_14, &[]),
    SingleByte::new("iso8859_15", encoding_rs::ISO_8859_15, &[]),
    SingleByte::new("iso8859_16", encoding_rs::ISO_8859_16, &[]),
    SingleByte::new("cp1250", encoding_rs::WINDOWS_1250, CP1250),
    SingleByte::new("cp1251", encoding_rs::WINDOWS_1251, CP1251),
    SingleByte::new("cp1252", encoding_rs::WINDOWS_1252, CP1252),
    SingleByte::new("cp1253", encoding_rs::WINDOWS_1253, CP1253),
    SingleByte::new("cp1254", encoding_rs::WINDOWS_1254, CP1254),
    SingleByte::new("cp1255", encoding_rs::WINDOWS_1255, CP1255),
    SingleByte::new("cp1256", encoding_rs::WINDOWS_1256, &[]),
    SingleByte::new("cp1257", encoding_rs::WINDOWS_1257, CP1257),
    SingleByte::new("cp1258", encoding_rs::WINDOWS_1258, CP1258),
    SingleByte::new("koi8_r", encoding_rs::KOI8_R, &[]),
    SingleByte::new("koi8_u", encoding_rs::KOI8_U, KOI8_U),
];

/// The single-byte codec Python's module `module` implements, when carried.
pub fn by_module(module: &str) -> Option<&'static SingleByte> {
    SINGLE_BYTE.iter().find(|s| s.module == module)
}

/// The modules carried.
pub fn modules() -> impl Iterator<Item = &'static str> {
    SINGLE_BYTE.iter().map(|s| s.module)
}
