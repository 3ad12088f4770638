//! Python pickles as data: read and write without ever resolving code.
//!
//! - `read`: the object-aware reader (protocols 0-5, Python 2 and 3 picklers) and
//!   `read_entry` for the two pickles of a Mailman queue entry; `graph` holds the
//!   shared, mutable objects while a pickle runs and turns them into a `Value` tree,
//!   within the limits that make hostile input harmless; `text` decodes protocol-0
//!   arguments.
//! - `write`: metadata back into an entry, as the owning Mailman's Python writes it.
//! - serde-pickle is not used at run time: it cannot read Mailman's message pickles
//!   (old-style `OBJ`, `BUILD` on memoised objects, class names, surrogates, no stream
//!   position) nor write what Python 2 reads; the tests use it as an independent
//!   reader of plain-data pickles.
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
