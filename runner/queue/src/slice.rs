//! Slices: N runners split the 160-bit digest space evenly, as Mailman does.

use crate::name::EntryName;
use std::fmt;

/// Why a slice specification cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SliceError {
    #[error("slice count {0} is not a power of two between 1 and 256 (Mailman 3 requires a power of two)")]
    BadCount(u32),
    #[error("slice {index} does not exist with {count} slices (slices are numbered 0 to {})", count - 1)]
    BadIndex { index: u32, count: u32 },
}

/// Slice `index` of `count`: the digests `d` with
/// `2^160*index/count <= d <= 2^160*(index+1)/count - 1` (Mailman 2.1's integer bounds;
/// Mailman 3 computes the same bounds in floating point, which agrees for a power of
/// two except on a digest exactly at a boundary, which it puts in both slices).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Slice {
    index: u32,
    count: u32,
}

impl Slice {
    pub const MAX_COUNT: u32 = 256;

    pub fn new(index: u32, count: u32) -> Result<Slice, SliceError> {
        if count == 0 || count > Self::MAX_COUNT || !count.is_power_of_two() {
            return Err(SliceError::BadCount(count));
        }
        if index >= count {
            return Err(SliceError::BadIndex { index, count });
        }
        Ok(Slice { index, count })
    }

    /// The whole queue (one slice).
    pub fn all() -> Slice {
        Slice { index: 0, count: 1 }
    }

    /// Every slice of `count`, in order.
    pub fn each(count: u32) -> Result<impl Iterator<Item = Slice>, SliceError> {
        Slice::new(0, count)?;
        Ok((0..count).map(move |index| Slice { index, count }))
    }

    pub fn index(self) -> u32 {
        self.index
    }

    pub fn count(self) -> u32 {
        self.count
    }

    /// With a power of two, the integer bounds select exactly the digests whose top
    /// log2(count) bits equal `index`.
    pub fn contains(self, name: &EntryName) -> bool {
        self.index_of(name) == self.index
    }

    /// The slice of `self.count()` that owns `name`.
    pub fn index_of(self, name: &EntryName) -> u32 {
        let shift = 8 - self.count.trailing_zeros();
        // checked_shr: a shift of 8 (count 1) leaves 0, the only slice.
        u32::from(name.digest_top_byte()).checked_shr(shift).unwrap_or(0)
    }

    /// The range of 1/256 sub-slices this slice covers: `[index*256/count, (index+1)*256/count)`.
    pub fn fine_range(self) -> std::ops::Range<u32> {
        let width = Self::MAX_COUNT / self.count;
        self.index * width..(self.index + 1) * width
    }
}

impl fmt::Display for Slice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigUint;

    fn name(digest: &str) -> EntryName {
        EntryName::parse(&format!("1.0+{digest}.pck")).unwrap()
    }

    /// Mailman 2.1's arithmetic, with big integers.
    fn reference(digest: &str, count: u32) -> u32 {
        let d = BigUint::parse_bytes(digest.as_bytes(), 16).unwrap();
        let space = BigUint::from(1u8) << 160;
        (0..count)
            .find(|&i| {
                let lower = &space * i / count;
                let upper = &space * (i + 1) / count - 1u8;
                lower <= d && d <= upper
            })
            .unwrap()
    }

    #[test]
    fn counts_must_be_powers_of_two_up_to_256() {
        for good in [1, 2, 4, 8, 16, 32, 64, 128, 256] {
            assert!(Slice::new(0, good).is_ok());
        }
        for bad in [0, 3, 6, 12, 255, 512] {
            assert_eq!(Slice::new(0, bad), Err(SliceError::BadCount(bad)));
        }
        assert_eq!(Slice::new(4, 4), Err(SliceError::BadIndex { index: 4, count: 4 }));
        assert_eq!(
            Slice::new(4, 4).unwrap_err().to_string(),
            "slice 4 does not exist with 4 slices (slices are numbered 0 to 3)"
        );
    }

    #[test]
    fn membership_matches_big_integer_bounds() {
        // A simple deterministic generator (xorshift) is enough to spread digests.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut digests: Vec<String> =
            (0..300).map(|_| format!("{:016x}{:016x}{:08x}", next(), next(), next() as u32)).collect();
        // The edges of the space and of every slice boundary at 256.
        digests.push("0".repeat(40));
        digests.push("f".repeat(40));
        for top in 0..=255u32 {
            digests.push(format!("{top:02x}{}", "0".repeat(38)));
            digests.push(format!("{top:02x}{}", "f".repeat(38)));
        }
        for d in &digests {
            for count in [1, 2, 4, 8, 16, 32, 64, 128, 256] {
                let expected = reference(d, count);
                let s = Slice::new(0, count).unwrap();
                assert_eq!(s.index_of(&name(d)), expected, "digest {d}, {count} slices");
                assert!(Slice::new(expected, count).unwrap().contains(&name(d)));
            }
        }
    }

    #[test]
    fn fine_ranges_partition_256() {
        assert_eq!(Slice::new(2, 4).unwrap().fine_range(), 128..192);
        assert_eq!(Slice::all().fine_range(), 0..256);
        assert_eq!(Slice::new(255, 256).unwrap().fine_range(), 255..256);
    }
}
