//! One module per subcommand: argument struct plus `run`.
pub mod common;
pub mod compact;
pub mod drain;
pub mod hold;
pub mod list;
pub mod progress;
pub mod qshape;
pub mod quarantine;
pub mod release;
pub mod requeue;
pub mod run;
pub mod show;
pub mod status;
pub mod table;
pub mod unshunt;
