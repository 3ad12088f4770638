//! `mailqueue-runner quarantine`: set aside `.bak` entries stuck longer than a
//! threshold, never one a live runner has in flight.
use super::common::{finish, start_logs, MoveArgs, QueueArgs};
use mailqueue_contract::duration;
use mailqueue_queue::area::Area;
use mailqueue_queue::ops::quarantine::Quarantine;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: QueueArgs,
    /// Only entries that have been `.bak` for longer than this (by the time they
    /// became `.bak`, not their enqueue time), e.g. 30m.
    #[arg(long, value_name = "DUR", value_parser = duration::parse)]
    pub older_than: Duration,
    #[command(flatten)]
    pub act: MoveArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    start_logs();
    let QueueArgs { qfiles, queue } = &args.target;
    let op = Quarantine { qfiles, queue, older_than: args.older_than, dry_run: args.act.dry_run };
    let tally = op.run()?;
    let to = Area::Quarantine.dir(qfiles, queue);
    let summary = format!("quarantine {queue}: {tally} (to {})", to.display());
    let details = serde_json::json!({ "action": "quarantine", "queue": queue, "to": to, "result": &tally });
    finish(&args.act.output, &summary, &tally, &details)
}
