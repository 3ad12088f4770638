//! `mailqueue-runner release`: feed held entries back into their queue, in batches.
use super::common::{finish, interrupted, start_logs, with_feed, BatchArgs, MoveArgs, QueueArgs, SelectArgs};
use mailqueue_queue::ops::hold;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: QueueArgs,
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub batch: BatchArgs,
    #[command(flatten)]
    pub act: MoveArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    start_logs();
    let QueueArgs { qfiles, queue } = &args.target;
    let select = args.select.select()?;
    let tally = with_feed("release", &args.batch, false, &args.act.output, &interrupted(), |feed| {
        hold::release(qfiles, queue, &select, feed, args.act.dry_run)
    })?;
    let summary = format!("release {queue}: {tally}");
    let details = serde_json::json!({ "action": "release", "queue": queue, "result": &tally });
    finish(&args.act.output, &summary, &tally, &details)
}
