//! The email message model Mailman pickles, and its flattening to wire bytes.

mod body_codec;
pub mod model;
pub mod py2;
pub mod py3;
mod single_byte;
pub mod unpickle;

pub use model::{Charset, Error, HeaderObj, HeaderValue, Message, PartPath, Payload, Text, Version};
pub use unpickle::message_from_value;

/// The exact DATA bytes Mailman's delivery sends for `msg` (before dot-stuffing), for a
/// list that makes no list-specific change. `envsender` is the `MAIL FROM` address
/// (Mailman 2.1 writes it into `Errors-To`; Mailman 3 leaves the message alone).
pub fn delivery_bytes(msg: &Message, version: Version, envsender: &str) -> Result<Vec<u8>, Error> {
    match version {
        Version::Mailman2 => py2::delivery_bytes(msg, envsender),
        Version::Mailman3 => py3::delivery_bytes(msg),
    }
}
