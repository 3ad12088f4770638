//! Entry file names: `<repr of a float time>+<40 hex sha1>.<ext>`, and Mailman's FIFO
//! order over them.

use std::collections::HashSet;
use std::fmt;

/// What a queue file's extension says about its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ext {
    /// Queued, waiting for a runner.
    Pck,
    /// Claimed: a runner is processing it (or crashed while doing so).
    Bak,
    /// Being written; becomes `.pck` by rename. Never read.
    Tmp,
    /// Preserved in `bad/` after a failure.
    Psv,
}

impl Ext {
    pub fn as_str(self) -> &'static str {
        match self {
            Ext::Pck => "pck",
            Ext::Bak => "bak",
            Ext::Tmp => "tmp",
            Ext::Psv => "psv",
        }
    }

    fn parse(s: &str) -> Option<Ext> {
        match s {
            "pck" => Some(Ext::Pck),
            "bak" => Some(Ext::Bak),
            "tmp" => Some(Ext::Tmp),
            "psv" => Some(Ext::Psv),
            _ => None,
        }
    }
}

impl fmt::Display for Ext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a file name is not a queue entry name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{name:?} is not a queue entry name: {reason}")]
    Invalid { name: String, reason: &'static str },
}

/// A parsed entry name. The time is kept as written so that renames reproduce the
/// exact name Mailman chose.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EntryName {
    time_text: String,
    digest: String,
    ext: Ext,
}

impl EntryName {
    /// Parses a full file name such as `1546300773.9900386+52f0…a9b6.pck`.
    pub fn parse(file_name: &str) -> Result<EntryName, NameError> {
        let invalid = |reason| NameError::Invalid { name: file_name.to_owned(), reason };
        let (base, ext) = file_name.rsplit_once('.').ok_or_else(|| invalid("no extension"))?;
        let ext = Ext::parse(ext).ok_or_else(|| invalid("extension is not pck, bak, tmp or psv"))?;
        let (time_text, digest) = base.split_once('+').ok_or_else(|| invalid("no '+' between time and digest"))?;
        if !is_float_repr(time_text) {
            return Err(invalid("time part is not a decimal number"));
        }
        if digest.len() != 40 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("digest part is not 40 hexadecimal digits"));
        }
        Ok(EntryName { time_text: time_text.to_owned(), digest: digest.to_owned(), ext })
    }

    /// Builds the name Mailman gives a new entry: `repr(time)` and the digest.
    pub fn new(time_text: &str, digest: &str, ext: Ext) -> Result<EntryName, NameError> {
        EntryName::parse(&format!("{time_text}+{digest}.{ext}"))
    }

    /// The float before `+`, as Python's `float()` reads it.
    pub fn timestamp(&self) -> f64 {
        // Validated by is_float_repr, whose grammar Rust's parser accepts; 0 is unreachable.
        self.time_text.parse().unwrap_or(0.0)
    }

    pub fn time_text(&self) -> &str {
        &self.time_text
    }

    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub fn ext(&self) -> Ext {
        self.ext
    }

    /// `<time>+<digest>`: the name without extension, Mailman's "filebase".
    pub fn base(&self) -> String {
        format!("{}+{}", self.time_text, self.digest)
    }

    /// The same entry in another state (`x.pck` -> `x.bak`).
    pub fn with_ext(&self, ext: Ext) -> EntryName {
        EntryName { ext, ..self.clone() }
    }

    /// The top 8 bits of the digest, which decide slice membership for N <= 256.
    pub fn digest_top_byte(&self) -> u8 {
        let hex = self.digest.as_bytes();
        (hex_val(hex[0]) << 4) | hex_val(hex[1])
    }
}

impl fmt::Display for EntryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}.{}", self.time_text, self.digest, self.ext)
    }
}

fn hex_val(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// Digits with an optional fraction and exponent: what `repr(float)` writes for a
/// time. Python would also take `nan`, `inf` or `_` separators; no Mailman writes them.
fn is_float_repr(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int_digits = digits(&mut i);
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        frac_digits = digits(&mut i);
    }
    if int_digits + frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Mailman's duplicate-time step (`DELTA`): a later entry with the same time is keyed
/// 0.0001 later so that neither is skipped.
const DELTA: f64 = 0.0001;

/// Orders entries first in, first out, exactly as Mailman's `Switchboard.get_files`:
/// in the order given (the directory's order), each time that is already taken is
/// bumped by 0.0001 until free, then all are sorted by that key.
pub fn fifo_order(names: Vec<EntryName>) -> Vec<EntryName> {
    let mut taken: HashSet<u64> = HashSet::with_capacity(names.len());
    let mut keyed: Vec<(f64, EntryName)> = Vec::with_capacity(names.len());
    for name in names {
        let mut key = name.timestamp();
        // Python's dict compares float keys by value; the bit pattern is the same
        // thing for the finite, non-negative values a name can hold (+0.0 only).
        while !taken.insert(key.to_bits()) {
            key += DELTA;
        }
        keyed.push((key, name));
    }
    // Keys are unique by now, so an unstable sort gives the one order.
    keyed.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    keyed.into_iter().map(|(_, n)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "52f0f23b7f5ec2228e523da606f2d6bca191a9b6";

    #[test]
    fn parses_and_keeps_the_time_text() {
        let n = EntryName::parse(&format!("1546300773.9900386+{D}.pck")).unwrap();
        assert_eq!(n.time_text(), "1546300773.9900386");
        assert_eq!(n.timestamp(), 1546300773.9900386);
        assert_eq!(n.digest(), D);
        assert_eq!(n.ext(), Ext::Pck);
        assert_eq!(n.base(), format!("1546300773.9900386+{D}"));
        assert_eq!(n.with_ext(Ext::Bak).to_string(), format!("1546300773.9900386+{D}.bak"));
        assert_eq!(n.digest_top_byte(), 0x52);
        // Pythons before 2.7 wrote 12 significant digits.
        assert!(EntryName::parse(&format!("1546300773.99+{D}.bak")).is_ok());
        // Mailman splits at the first `+`, so an exponent can only be negative.
        assert!(EntryName::parse(&format!("15e-1+{D}.psv")).is_ok());
    }

    #[test]
    fn rejects_foreign_names() {
        for bad in [
            format!("1546300773.99+{D}"),
            format!("1546300773.99+{D}.pck~"),
            format!("1546300773.99+{D}.pck.tmp2"),
            format!("nan+{D}.pck"),
            format!("inf+{D}.pck"),
            format!("-1.0+{D}.pck"),
            format!(".+{D}.pck"),
            format!("1e+{D}.pck"),
            format!("{D}.pck"),
            "1546300773.99+abc.pck".to_owned(),
            format!("1546300773.99+{}g.pck", &D[..39]),
            format!("1546300773.99+{D}0.pck"),
            ".mailqueue".to_owned(),
            "README".to_owned(),
            String::new(),
        ] {
            assert!(EntryName::parse(&bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn error_names_the_file_and_reason() {
        let err = EntryName::parse("x.pck").unwrap_err().to_string();
        assert_eq!(err, "\"x.pck\" is not a queue entry name: no '+' between time and digest");
    }

    #[test]
    fn fifo_breaks_ties_like_mailman() {
        let n = |t: &str, d: char| EntryName::parse(&format!("{t}+{}.pck", d.to_string().repeat(40))).unwrap();
        // Directory order a, b, c, d: b collides with a and is keyed 1.0001; c (1.0001)
        // then collides with b's key and is keyed 1.0002; d is earlier than all.
        let order = fifo_order(vec![n("1.0", 'a'), n("1.0", 'b'), n("1.0001", 'c'), n("0.5", 'd')]);
        let digests: Vec<char> = order.iter().map(|e| e.digest().chars().next().unwrap()).collect();
        assert_eq!(digests, vec!['d', 'a', 'b', 'c']);
        // The other directory order gives the other tie-break, as in Mailman.
        let order = fifo_order(vec![n("1.0", 'b'), n("1.0", 'a')]);
        assert_eq!(order[0].digest().chars().next(), Some('b'));
    }
}
