//! VERP: the recipient's address encoded in the envelope sender, so a bounce names who
//! bounced. Mailman's default format in both versions: `bounces+local=domain@bdomain`
//! (2.1 `VERP_FORMAT`, Mailman 3 `[mta] verp_format`).

/// The VERP envelope sender for `recipient`, or `None` when the recipient has no domain
/// (Mailman cannot encode it: 2.1 skips that recipient, Mailman 3 sends it with the
/// plain sender).
pub fn verp_sender(sender: &str, recipient: &str) -> Option<String> {
    let (rlocal, rdomain) = recipient.split_once('@')?;
    if rdomain.is_empty() {
        return None;
    }
    let (blocal, bdomain) = sender.split_once('@').unwrap_or((sender, ""));
    Some(format!("{blocal}+{rlocal}={rdomain}@{bdomain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_format() {
        assert_eq!(
            verp_sender("test-bounces@example.com", "bob.smith@example.org").as_deref(),
            Some("test-bounces+bob.smith=example.org@example.com")
        );
        assert_eq!(verp_sender("test-bounces@example.com", "local"), None);
    }
}
