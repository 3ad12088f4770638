//! `mailqueue-runner requeue`: feed entries back into a live queue from quarantine,
//! hold, shunt, bad or a directory, in batches, never over `--max-depth`.
use super::common::{finish, interrupted, start_logs, with_feed, BatchArgs, MoveArgs, QueueArgs};
use mailqueue_queue::ops::requeue::{requeue, Source};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    // The queue to feed, whose quarantine or hold area `--from` may name.
    #[command(flatten)]
    pub target: QueueArgs,
    /// Where the entries are: quarantine, hold (this queue's areas), shunt, bad, or
    /// the path of a directory on the same filesystem, written with a '/' (./saved,
    /// /srv/saved/out) so that a misspelt area name is refused rather than taken as a path.
    #[arg(long, value_name = "FROM")]
    pub from: Source,
    #[command(flatten)]
    pub batch: BatchArgs,
    /// Set `_bak_count` back to 0 (otherwise an entry recovered three times goes
    /// straight back to bad/ at its next failure).
    #[arg(long)]
    pub reset_count: bool,
    #[command(flatten)]
    pub act: MoveArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    start_logs();
    let QueueArgs { qfiles, queue } = &args.target;
    let from = &args.from;
    let tally = with_feed("requeue", &args.batch, args.reset_count, &args.act.output, &interrupted(), |feed| {
        requeue(qfiles, from, queue, feed, args.act.dry_run)
    })?;
    let dir = from.dir(qfiles, queue);
    let summary = format!("requeue {} -> {queue}: {tally}", dir.display());
    let details = serde_json::json!({ "action": "requeue", "from": dir, "queue": queue, "result": &tally });
    finish(&args.act.output, &summary, &tally, &details)
}
