//! Where delivery finds what a list changes in its messages: Mailman 2.1's
//! config.pck files (`mm2`), Mailman 3's REST API (`mm3`). Settings are data here;
//! what Mailman does with them is in `mailqueue_message::py2::decorate`,
//! `mailqueue_message::py3::decorate`, `crate::deliver::mm2_list` and `crate::deliver::mm3_list`.
pub mod mm2;
pub mod mm3;

/// Why a list's settings are not at hand.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// Nothing to deliver from right now (the API is down and nothing is cached): the
    /// entry stays queued and is tried again later.
    #[error("list settings unavailable: {0}")]
    Unavailable(String),
    /// The settings cannot be reproduced (no such list, a template that cannot be
    /// read, a feature the runner does not implement): the entry is set aside.
    #[error("{0}")]
    Unreproducible(String),
}
