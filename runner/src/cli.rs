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
    /// List one queue's entries, oldest first: age, size, list, sender, recipient count.
    List(cmd::list::Args),
    /// Recipients (or senders) of one queue per domain and age, like Postfix's qshape.
    Qshape(cmd::qshape::Args),
    /// Work a queue until stopped: deliver `out` over SMTP, or move due `retry` entries back.
    Run(Box<cmd::run::Args>),
    /// Set aside `.bak` entries stuck longer than --older-than (never one in flight).
    Quarantine(cmd::quarantine::Args),
    /// Move chosen queued entries out of the live queue until released.
    Hold(cmd::hold::Args),
    /// Feed held entries back into their queue, in batches.
    Release(cmd::release::Args),
    /// Feed entries from quarantine, hold, shunt, bad or a directory back into a queue, in batches.
    Requeue(cmd::requeue::Args),
    /// Shrink a bloated queue directory: move it aside, recreate it, feed the entries back.
    Compact(cmd::compact::Args),
    /// Send shunted entries back to the queue in their metadata (whichq), in batches.
    Unshunt(cmd::unshunt::Args),
    /// Ask a queue's runners to stop claiming and wait until nothing is in flight (--resume undoes it).
    Drain(cmd::drain::Args),
}

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Show(args) => cmd::show::run(args),
        Command::Status(args) => cmd::status::run(args),
        Command::List(args) => cmd::list::run(args),
        Command::Qshape(args) => cmd::qshape::run(args),
        Command::Run(args) => cmd::run::run(*args),
        Command::Quarantine(args) => cmd::quarantine::run(args),
        Command::Hold(args) => cmd::hold::run(args),
        Command::Release(args) => cmd::release::run(args),
        Command::Requeue(args) => cmd::requeue::run(args),
        Command::Compact(args) => cmd::compact::run(args),
        Command::Unshunt(args) => cmd::unshunt::run(args),
        Command::Drain(args) => cmd::drain::run(args),
    }
}
