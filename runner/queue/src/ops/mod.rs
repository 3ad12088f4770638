//! The safe queue operations: set stale `.bak` entries aside, hold and release entries,
//! feed entries back in batches, compact a bloated queue directory, unshunt. Each one
//! moves entries only by rename within one filesystem, never a file a live runner has
//! in flight (see [`crate::inflight`]), and returns a [`Tally`] whose counts balance:
//! every entry it looked at is moved, skipped for a stated reason, or an error.

pub mod compact;
pub mod feed;
pub mod hold;
pub mod quarantine;
pub mod requeue;
pub mod select;
pub mod tally;
pub mod unshunt;

pub use feed::{Batching, Feed, Progress};
pub use select::Select;
pub use tally::Tally;

use std::path::PathBuf;

/// Why an operation refused to start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Queue(#[from] crate::Error),
    #[error(
        "no entries selected: name a selector (--slice, --older-than, --list, --sender-domain, \
         --recipient-domain, or entry names), or pass --all to take the whole queue"
    )]
    NoSelector,
    #[error(
        "queue {queue} has live runners ({owners}): {action} needs every runner of the queue \
         stopped, or drained first (--wait-drain)"
    )]
    Owned { queue: String, owners: String, action: &'static str },
    #[error("queue {queue}: entry {entry} is still in flight; wait for the drain to finish (or stop the runner) and run compact again")]
    InFlight { queue: String, entry: String },
    #[error(
        "compact must run as root or as the owner (uid {uid}) of {path}: the new directory gets the old one's owner"
    )]
    NotOwner { path: PathBuf, uid: u32 },
    #[error(
        "{path} is a symbolic link: compact would move the link, not the queue; compact the directory it points to"
    )]
    Symlink { path: PathBuf },
    #[error("reading the compact journal {path}: {reason}")]
    Journal { path: PathBuf, reason: String },
    #[error("{path} is the target queue itself: there is nothing to requeue from it")]
    SourceIsTarget { path: PathBuf },
    #[error("--batch must be at least 1")]
    ZeroBatch,
}
