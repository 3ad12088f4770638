//! `mailqueue-runner release`: feed held entries back into their queue, in batches.
use super::hold::SelectArgs;
use super::queue_ops::{finish, interrupt_flag, start_logs, BatchArgs, OutputArgs, Reporter};
use mailqueue_queue::ops::{hold, Feed};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The queue root: Mailman 2.1's `qfiles/` or Mailman 3's `var/queue/`.
    #[arg(long, value_name = "DIR")]
    pub qfiles: PathBuf,
    #[arg(long, default_value = "out")]
    pub queue: String,
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub batch: BatchArgs,
    /// Count what would be released; move nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    start_logs();
    let stop = interrupt_flag();
    let mut reporter = Reporter::new("release", args.output.json);
    let mut show = |p: &_| reporter.show(p);
    let stopped = || stop.load(Ordering::SeqCst);
    let mut feed = Feed { batching: args.batch.batching(), reset_count: false, on_progress: &mut show, stop: &stopped };
    let tally = hold::release(&args.qfiles, &args.queue, &args.select.select()?, &mut feed, args.dry_run)?;
    reporter.finish();
    let summary = format!("release {}: {tally}", args.queue);
    let details = serde_json::json!({ "action": "release", "queue": args.queue, "result": &tally });
    finish(&args.output, &summary, &tally, &details)
}
