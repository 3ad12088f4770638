//! Mailman queue directories: entry names, slices, entries, slice ownership, status,
//! and the switchboard that owns every rename in a queue. Knows nothing of SMTP or
//! Kubernetes.
pub mod area;
pub mod entry;
pub mod error;
pub mod inflight;
pub mod listing;
pub mod lock;
pub mod name;
pub mod open;
pub mod ops;
pub mod scan;
pub mod slice;
pub mod status;
pub mod switchboard;

pub use error::{Error, Result};
pub use lock::{LockError, SliceLock};
pub use name::{EntryName, Ext};
pub use slice::Slice;
pub use switchboard::Switchboard;
