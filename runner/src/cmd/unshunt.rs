//! `mailqueue-runner unshunt`: shunted entries back to the queue in their metadata
//! (`whichq`), as Mailman's `unshunt` does, in batches.
use super::common::{finish, interrupted, start_logs, with_feed, BatchArgs, MoveArgs};
use mailqueue_queue::ops::unshunt::unshunt;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The queue root: Mailman 2.1's `qfiles/` or Mailman 3's `var/queue/`.
    #[arg(long, value_name = "DIR")]
    pub qfiles: PathBuf,
    /// Only entries whose `whichq` is this queue.
    #[arg(long)]
    pub queue: Option<String>,
    #[command(flatten)]
    pub batch: BatchArgs,
    #[command(flatten)]
    pub act: MoveArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    start_logs();
    let tally = with_feed("unshunt", &args.batch, false, &args.act.output, &interrupted(), |feed| {
        unshunt(&args.qfiles, args.queue.as_deref(), feed, args.act.dry_run)
    })?;
    let summary = format!("unshunt: {tally}");
    let details = serde_json::json!({ "action": "unshunt", "queue": args.queue, "result": &tally });
    finish(&args.act.output, &summary, &tally, &details)
}
