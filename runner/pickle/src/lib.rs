//! Python pickles as data: read and write without ever resolving code.
pub mod error;
mod graph;
pub mod read;
mod text;
pub mod value;
pub mod write;

pub use error::{Error, Part};
pub use graph::MAX_DEPTH;
pub use read::{read, read_entry, read_pickle, Entry, Pickle};
pub use value::{DateTime, Object, PyStr, Value};
pub use write::{rewrite_metadata, write, Dialect, WriteError};
