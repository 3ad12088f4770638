//! Mailman 3 on Python 3.11: its parser for text entries and `smtplib.send_message`'s
//! flattening with `BytesGenerator` under the compat32 policy.

pub mod parser;

use crate::model::{Error, Message, PartPath};

/// What `SMTP.send_message` puts in DATA for `msg` (before dot-stuffing).
pub fn delivery_bytes(_msg: &Message) -> Result<Vec<u8>, Error> {
    Err(Error::Unrepresentable { part: PartPath::default(), problem: "not implemented yet".into() })
}
