//! `mailqueue-runner requeue`: feed entries back into a live queue from quarantine,
//! hold, shunt, bad or a directory, in batches, never over `--max-depth`.
use super::queue_ops::{finish, interrupt_flag, start_logs, BatchArgs, OutputArgs, Reporter};
use mailqueue_queue::ops::requeue::{requeue, Source};
use mailqueue_queue::ops::Feed;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The queue root: Mailman 2.1's `qfiles/` or Mailman 3's `var/queue/`.
    #[arg(long, value_name = "DIR")]
    pub qfiles: PathBuf,
    /// Where the entries are: quarantine, hold (this queue's areas), shunt, bad, or
    /// the path of a directory on the same filesystem.
    #[arg(long, value_name = "FROM")]
    pub from: String,
    /// The queue to feed.
    #[arg(long, default_value = "out")]
    pub queue: String,
    #[command(flatten)]
    pub batch: BatchArgs,
    /// Set `_bak_count` back to 0 (otherwise an entry recovered three times goes
    /// straight back to bad/ at its next failure).
    #[arg(long)]
    pub reset_count: bool,
    /// Count what would be moved; move nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    start_logs();
    let from = Source::parse(&args.from);
    let stop = interrupt_flag();
    let mut reporter = Reporter::new("requeue", args.output.json);
    let mut show = |p: &_| reporter.show(p);
    let stopped = || stop.load(Ordering::SeqCst);
    let mut feed = Feed { batching: args.batch.batching(), reset_count: args.reset_count, on_progress: &mut show, stop: &stopped };
    let tally = requeue(&args.qfiles, &from, &args.queue, &mut feed, args.dry_run)?;
    reporter.finish();
    let dir = from.dir(&args.qfiles, &args.queue);
    let summary = format!("requeue {} -> {}: {tally}", dir.display(), args.queue);
    let details = serde_json::json!({ "action": "requeue", "from": dir, "queue": args.queue, "result": &tally });
    finish(&args.output, &summary, &tally, &details)
}
