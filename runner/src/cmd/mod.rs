//! One module per subcommand: argument struct plus `run`.
pub mod show;
pub mod status;
pub mod list;
pub mod qshape;
pub mod table;
pub mod run;
pub mod compact;
pub mod drain;
pub mod hold;
pub mod progress;
pub mod quarantine;
pub mod common;
pub mod release;
pub mod requeue;
pub mod unshunt;
