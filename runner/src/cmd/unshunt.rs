//! `mailqueue-runner unshunt`: shunted entries back to the queue in their metadata
//! (`whichq`), as Mailman's `unshunt` does, in batches.
use super::queue_ops::{finish, interrupt_flag, start_logs, BatchArgs, OutputArgs, Reporter};
use mailqueue_queue::ops::unshunt::unshunt;
use mailqueue_queue::ops::Feed;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

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
    let stop = interrupt_flag();
    let mut reporter = Reporter::new("unshunt", args.output.json);
    let mut show = |p: &_| reporter.show(p);
    let stopped = || stop.load(Ordering::SeqCst);
    let mut feed = Feed { batching: args.batch.batching(), reset_count: false, on_progress: &mut show, stop: &stopped };
    let tally = unshunt(&args.qfiles, args.queue.as_deref(), &mut feed, args.dry_run)?;
    reporter.finish();
    let summary = format!("unshunt: {tally}");
    let details = serde_json::json!({ "action": "unshunt", "queue": args.queue, "result": &tally });
    finish(&args.output, &summary, &tally, &details)
}
