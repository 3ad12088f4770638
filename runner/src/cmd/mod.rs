//! One module per subcommand: argument struct plus `run`.
pub mod show;
pub mod status;
pub mod run;
