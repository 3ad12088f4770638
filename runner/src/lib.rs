//! mailqueue-runner: the binary's library. The queue format lives in `mailqueue-pickle`,
//! `mailqueue-message` and `mailqueue-queue`; this crate wires them to SMTP delivery,
//! the queue operations and the command line.
pub mod cli;
pub mod cmd;
pub mod deliver;
pub mod http;
pub mod lease;
pub mod lists;
pub mod logging;
pub mod metrics;
pub mod ownership;
pub mod retry;
pub mod shutdown;
pub mod slice_counters;
