//! Mailman 3's per-recipient changes (`mta/deliver.py`'s `Deliver` callbacks):
//! `avoid_duplicates` (`X-Mailman-Copy`) and full personalization's `To`
//! (`PersonalizedMixin.personalize_to`); and `email.utils.formataddr`, which both use.

use super::charset;
use super::decorate::{remove, DecorateError};
use super::header::Header;
use super::params;
use crate::model::{Charset, HeaderValue, Message, Text};

/// `email.utils.formataddr((name, address))` with the utf-8 default charset.
pub fn formataddr(name: Option<&str>, address: &str) -> Result<String, DecorateError> {
    if !address.is_ascii() {
        return Err(DecorateError::Member(format!("the address {address:?} is not ASCII (Python raises)")));
    }
    let Some(name) = name.filter(|n| !n.is_empty()) else { return Ok(address.to_owned()) };
    if !name.is_ascii() {
        let encoded =
            charset::header_encode(&Charset::utf8(), name).map_err(|e| DecorateError::Member(e.to_string()))?;
        return Ok(format!("{encoded} <{address}>"));
    }
    let quotes = if name.contains(|c| "][\\()<>@,:;\".".contains(c)) { "\"" } else { "" };
    let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
    Ok(format!("{quotes}{escaped}{quotes} <{address}>"))
}

/// `avoid_duplicates`: `X-Mailman-Copy` removed, and `X-Mailman-Copy: yes` added for a
/// recipient who asked to know of duplicates.
pub fn avoid_duplicates(msg: &mut Message, add_dup_header: bool) {
    remove(msg, "x-mailman-copy");
    if add_dup_header {
        msg.headers.push((Text::from("X-Mailman-Copy"), HeaderValue::Text(Text::from("yes"))));
    }
}

/// `personalize_to` for a fully personalized list: `To` becomes the recipient, with
/// the display name of the user owning the address (`None`: the address has no user;
/// a user without a name is `""`).
pub fn personalize_to(
    msg: &mut Message,
    user_display_name: Option<&str>,
    recipient: &str,
) -> Result<(), DecorateError> {
    let value = match user_display_name {
        None => recipient.to_owned(),
        Some(name) => {
            let encoded = Header::unnamed(name)
                .and_then(|h| h.encode(76, "\n"))
                .map_err(|e| DecorateError::Member(format!("the display name of {recipient}: {e}")))?;
            formataddr(Some(&encoded), recipient)?
        }
    };
    let to = msg.headers.iter_mut().find(|(n, _)| params::name_is(n, "to"));
    match to {
        // `msg.get('to')` is truthy: replaced in place, keeping the field's spelling.
        Some((_, v)) if !header_is_empty(v) => *v = HeaderValue::Text(Text::from(value.as_str())),
        _ => msg.headers.push((Text::from("To"), HeaderValue::Text(Text::from(value.as_str())))),
    }
    Ok(())
}

fn header_is_empty(v: &HeaderValue) -> bool {
    match v {
        HeaderValue::Text(t) => t.is_empty(),
        HeaderValue::Header(h) => h.chunks.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formataddr_like_python() {
        assert_eq!(formataddr(Some("Bob Smith"), "b@x").unwrap(), "Bob Smith <b@x>");
        assert_eq!(formataddr(Some("Smith, Bob"), "b@x").unwrap(), "\"Smith, Bob\" <b@x>");
        assert_eq!(formataddr(None, "b@x").unwrap(), "b@x");
        assert_eq!(
            formataddr(Some("Dave \u{d8}deg\u{e5}rd"), "d@x").unwrap(),
            "=?utf-8?b?RGF2ZSDDmGRlZ8OlcmQ=?= <d@x>"
        );
    }
}
