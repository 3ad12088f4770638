//! What can be wrong with a pickle, said so that a mail admin can find the damage: every
//! error names the byte offset (from the start of the file for queue entries).

use std::fmt;

/// Why a pickle could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("truncated pickle at byte {at}")]
    Truncated { at: usize },
    #[error("unknown opcode 0x{opcode:02x} at byte {at}")]
    UnknownOpcode { opcode: u8, at: usize },
    #[error("memo key {key} not defined at byte {at}")]
    MemoKeyMissing { key: u64, at: usize },
    #[error("pickle nesting deeper than {limit}")]
    TooDeep { limit: usize },
    #[error("{what} length {len} at byte {at} exceeds remaining {remaining} bytes")]
    LengthTooLarge { what: &'static str, len: u64, at: usize, remaining: usize },
    /// The pickle is well-formed up to here but makes no sense (stack underflow, a
    /// `REDUCE` whose arguments are not a tuple, bad text escapes, ...).
    #[error("{what} at byte {at}")]
    Malformed { what: String, at: usize },
    /// Valid pickle that this reader deliberately does not handle.
    #[error("unsupported pickle content at byte {at}: {what}")]
    Unsupported { what: String, at: usize },
    #[error("pickle object created at byte {at} contains itself")]
    Cycle { at: usize },
    /// Shared (memoised) objects would expand into a tree larger than the limit.
    #[error("pickle expands to more than {limit} bytes of values (shared objects repeated too often)")]
    TooLarge { limit: usize },
    /// Reading needs more copy/compare work than the limit allows for an input this size.
    #[error("pickle needs more than {limit} steps to read (hostile or corrupt input)")]
    TooMuchWork { limit: usize },
    /// An error inside one of the two pickles of a queue entry.
    #[error("{part} pickle: {error}")]
    InEntry { part: Part, error: Box<Error> },
    #[error("{count} unexpected bytes after the metadata pickle at byte {at}")]
    TrailingBytes { count: usize, at: usize },
}

/// Which pickle of a queue entry an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Message,
    Metadata,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Message => "message",
            Part::Metadata => "metadata",
        })
    }
}

impl Error {
    pub(crate) fn malformed(what: impl Into<String>, at: usize) -> Self {
        Error::Malformed { what: what.into(), at }
    }

    pub(crate) fn unsupported(what: impl Into<String>, at: usize) -> Self {
        Error::Unsupported { what: what.into(), at }
    }
}
