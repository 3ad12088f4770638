//! `mailqueue-runner hold`: move chosen queued entries out of the live queue into its
//! hold area, where they are neither delivered nor expired until released.
use super::queue_ops::{finish, parse_duration, start_logs, OutputArgs};
use mailqueue_queue::area::Area;
use mailqueue_queue::ops::{hold, Select};
use mailqueue_queue::Slice;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Which entries: at least one selector, or `--all`. Selectors combine (all must match).
#[derive(Debug, Clone, clap::Args)]
pub struct SelectArgs {
    /// Entries of slice I (with --slices N).
    #[arg(long, value_name = "I", requires = "slices")]
    pub slice: Option<u32>,
    /// Slice count for --slice (a power of two, 1..256).
    #[arg(long, value_name = "N")]
    pub slices: Option<u32>,
    /// Entries queued longer ago than this (by the time in their name), e.g. 2h.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub older_than: Option<Duration>,
    /// Entries of this list (2.1 list name or Mailman 3 list id).
    #[arg(long)]
    pub list: Option<String>,
    /// Entries whose envelope sender is in this domain.
    #[arg(long, value_name = "DOMAIN")]
    pub sender_domain: Option<String>,
    /// Entries with a recipient in this domain (the whole entry is taken).
    #[arg(long, value_name = "DOMAIN")]
    pub recipient_domain: Option<String>,
    /// Every entry of the queue (needed when no other selector is given).
    #[arg(long)]
    pub all: bool,
    /// Entry file names (with or without extension).
    #[arg(value_name = "ENTRY")]
    pub names: Vec<String>,
}

impl SelectArgs {
    pub fn select(&self) -> anyhow::Result<Select> {
        let slice = match (self.slice, self.slices) {
            (Some(i), Some(n)) => Some(Slice::new(i, n)?),
            _ => None,
        };
        Ok(Select {
            slice,
            older_than: self.older_than,
            list: self.list.clone(),
            sender_domain: self.sender_domain.clone(),
            recipient_domain: self.recipient_domain.clone(),
            names: self.names.clone(),
            all: self.all,
        })
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The queue root: Mailman 2.1's `qfiles/` or Mailman 3's `var/queue/`.
    #[arg(long, value_name = "DIR")]
    pub qfiles: PathBuf,
    #[arg(long, default_value = "out")]
    pub queue: String,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Count what would be held; move nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    start_logs();
    let tally = hold::hold(&args.qfiles, &args.queue, &args.select.select()?, args.dry_run)?;
    let to = Area::Hold.dir(&args.qfiles, &args.queue);
    let summary = format!("hold {}: {tally} (to {})", args.queue, to.display());
    let details = serde_json::json!({ "action": "hold", "queue": args.queue, "to": to, "result": &tally });
    finish(&args.output, &summary, &tally, &details)
}
