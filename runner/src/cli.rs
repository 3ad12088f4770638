//! The command line: one subcommand per job, each in its own `cmd` module.
use crate::cmd;
use clap::{Parser, Subcommand};
use mailqueue_contract::duration;
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
    #[command(after_help = duration::HELP)]
    Run(Box<cmd::run::Args>),
    /// Set aside `.bak` entries stuck longer than --older-than (never one in flight).
    #[command(after_help = duration::HELP)]
    Quarantine(cmd::quarantine::Args),
    /// Move chosen queued entries out of the live queue until released.
    #[command(after_help = duration::HELP)]
    Hold(cmd::hold::Args),
    /// Feed held entries back into their queue, in batches.
    #[command(after_help = duration::HELP)]
    Release(cmd::release::Args),
    /// Feed entries from quarantine, hold, shunt, bad or a directory back into a queue, in batches.
    #[command(after_help = duration::HELP)]
    Requeue(cmd::requeue::Args),
    /// Shrink a bloated queue directory: move it aside, recreate it, feed the entries back.
    #[command(after_help = duration::HELP)]
    Compact(cmd::compact::Args),
    /// Send shunted entries back to the queue in their metadata (whichq), in batches.
    #[command(after_help = duration::HELP)]
    Unshunt(cmd::unshunt::Args),
    /// Ask a queue's runners to stop claiming and wait until nothing is in flight (--resume undoes it).
    #[command(after_help = duration::HELP)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run_args(extra: &[&str]) -> Result<cmd::run::Args, clap::Error> {
        let argv = ["mailqueue-runner", "run", "--qfiles", "/q"].iter().chain(extra);
        match Cli::try_parse_from(argv)?.command {
            Command::Run(args) => Ok(*args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn duration_flags_take_units_and_the_bare_seconds_scripts_pass() {
        let args =
            run_args(&["--stop-grace", "55", "--data-timeout", "10m", "--lease-duration", "20s"]).expect("parses");
        assert_eq!(args.stop_grace, Duration::from_secs(55));
        assert_eq!(args.data_timeout, Duration::from_secs(600));
        assert_eq!(args.lease.lease_duration, Duration::from_secs(20));
        // The flags that named their unit keep their old spelling and meaning.
        let old = run_args(&["--mailman-rest-retry-secs", "7", "--poll-interval-ms", "50"]).expect("parses");
        assert_eq!(old.mailman3.mailman_rest_retry, Duration::from_secs(7));
        assert_eq!(old.poll_interval_ms, Some(50));
    }

    #[test]
    fn a_bad_duration_names_the_flag_and_an_example() {
        let message = run_args(&["--retry-wait", "soon"]).map(|_| ()).unwrap_err().to_string();
        assert!(message.contains("--retry-wait") && message.contains("1h30m"), "{message}");
    }
}
