//! Mailman 3's VERP envelope sender (`mta/verp.py`, `VERPMixin._get_sender`):
//! `[mta] verp_format` expanded with the list's variables and `bounces`, `local`,
//! `domain`, then `@` and the sender's domain.

use super::decorate::{list_substitutions, safe_substitute, ListVars};

/// The envelope sender for `recipient`; the plain `sender` when the recipient has no
/// `@` (Mailman logs "Skipping VERP delivery to unqual recip").
pub fn verp_sender(verp_format: &str, list: &ListVars, sender: &str, recipient: &str) -> String {
    let Some((rlocal, rdomain)) = recipient.split_once('@') else { return sender.to_owned() };
    let (slocal, sdomain) = sender.split_once('@').unwrap_or((sender, ""));
    let mut vars = list_substitutions(list);
    vars.insert("bounces".into(), slocal.to_owned());
    vars.insert("local".into(), rlocal.to_owned());
    vars.insert("domain".into(), rdomain.to_owned());
    format!("{}@{sdomain}", safe_substitute(verp_format, &vars))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_format() {
        let list = ListVars::default();
        let s = verp_sender("${bounces}+${local}=${domain}", &list, "l-bounces@example.com", "bob.smith@example.org");
        assert_eq!(s, "l-bounces+bob.smith=example.org@example.com");
        assert_eq!(
            verp_sender("${bounces}+${local}=${domain}", &list, "l-bounces@example.com", "local"),
            "l-bounces@example.com"
        );
    }
}
