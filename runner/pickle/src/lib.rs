//! Python pickles as data: read and write without ever resolving code.
pub mod value;
pub use value::{DateTime, Object, PyStr, Value};
