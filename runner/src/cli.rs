//! The command line: one subcommand per job, each in its own `cmd` module.
use crate::cmd;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// A Mailman-compatible queue runner: reads Mailman 2.1 and 3 queue directories,
/// delivers the `out` queue over SMTP, and moves entries safely while runners run.
#[derive(Debug, Parser)]
#[command(name = "mailqueue-runner", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print one queue entry: metadata and message (readable, --json or --raw).
    Show(cmd::show::Args),
    /// Count entries per queue and slice, with the age of the oldest and an age histogram.
    Status(cmd::status::Args),
    /// Work a queue until stopped: deliver `out` over SMTP, or move due `retry` entries back.
    Run(cmd::run::Args),
}

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Show(args) => cmd::show::run(args),
        Command::Status(args) => cmd::status::run(args),
        Command::Run(args) => cmd::run::run(args),
    }
}
