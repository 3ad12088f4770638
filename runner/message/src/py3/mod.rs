//! Mailman 3 on Python 3.11: its parser for text entries and `smtplib.send_message`'s
//! flattening with `BytesGenerator` under the compat32 policy.

mod charset;
mod codec_names;
pub mod decorate;
mod generator;
mod header;
mod params;
pub mod parser;
pub mod personalize;
mod pystr;
pub mod transfer;
pub mod verp;

use crate::model::{Error, Message, PartPath, Text};

/// Class path of Python's compat32 policy object.
pub(crate) const COMPAT32: &str = "email._policybase.Compat32";

/// What `SMTP.send_message` puts in DATA for `msg` (before dot-stuffing): a shallow copy
/// without top-level `Bcc`/`Resent-Bcc`, flattened, ending in CRLF.
pub fn delivery_bytes(msg: &Message) -> Result<Vec<u8>, Error> {
    // The top-level policy governs every part; only compat32's rules are emulated (it is
    // what Mailman 3 parses and builds messages with).
    match msg.policy.as_deref() {
        Some(COMPAT32) => {}
        other => {
            return Err(Error::Unrepresentable {
                part: PartPath::default(),
                problem: format!("message policy is {}, not compat32", other.unwrap_or("missing")),
            })
        }
    }
    let resent_dates = msg.headers.iter().filter(|(n, _)| params::name_is(n, "resent-date")).count();
    if resent_dates > 1 {
        return Err(Error::Unrepresentable {
            part: PartPath::default(),
            problem: "message has more than one 'Resent-' header block (smtplib refuses it)".into(),
        });
    }
    let is_bcc = |n: &Text| params::name_is(n, "bcc") || params::name_is(n, "resent-bcc");
    let mut out = Vec::new();
    generator::flatten(msg, &PartPath::default(), generator::MAX_LINE_LENGTH, &is_bcc, &mut out)?;
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    Ok(out)
}
