//! What the byte-exact tests share: how a mismatch is shown.

/// The first differing offset with some context from both sides, escaped.
pub fn describe_mismatch(got: &[u8], want: &[u8]) -> String {
    let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
    let from = at.saturating_sub(80);
    let show = |b: &[u8]| {
        let end = (at + 80).min(b.len());
        String::from_utf8_lossy(&b[from.min(end)..end].escape_ascii().collect::<Vec<u8>>()).into_owned()
    };
    format!(
        "first difference at byte {at} (got {} bytes, want {})\n  got:  ...{}\n  want: ...{}",
        got.len(),
        want.len(),
        show(got),
        show(want)
    )
}
