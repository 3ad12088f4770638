//! `mailqueue-runner unshunt`: shunted entries back to the queue in their metadata
//! (`whichq`), as Mailman's `unshunt` does, in batches.
use super::common::{finish, interrupted, start_logs, with_feed, BatchArgs, OutputArgs};
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
    /// Count what would be moved; move nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    start_logs();
    let tally = with_feed("unshunt", &args.batch, false, &args.output, &interrupted(), |feed| {
        unshunt(&args.qfiles, args.queue.as_deref(), feed, args.dry_run)
    })?;
    let summary = format!("unshunt: {tally}");
    let details = serde_json::json!({ "action": "unshunt", "queue": args.queue, "result": &tally });
    finish(&args.output, &summary, &tally, &details)
}
