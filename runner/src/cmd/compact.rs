//! `mailqueue-runner compact`: shrink a bloated queue directory. Refuses while a live
//! runner owns any slice of the queue, unless `--wait-drain` (drain, swap, resume);
//! moves the directory aside, recreates it empty with the same mode and owner, and
//! feeds the old entries back in batches. Run it again after any interruption or crash
//! and it finishes the job.
use super::common::{finish, interrupted, start_logs, with_feed, BatchArgs, MoveArgs, QueueArgs};
use super::drain;
use anyhow::bail;
use mailqueue_contract::duration;
use mailqueue_queue::ops::compact::{Compact, Stage};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: QueueArgs,
    /// When live runners own the queue: drain them (they finish what they have in
    /// flight and claim nothing), compact, and let them go on; otherwise refuse.
    #[arg(long)]
    pub wait_drain: bool,
    /// How long --wait-drain waits for the runners to go idle.
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = duration::parse)]
    pub drain_timeout: Duration,
    #[command(flatten)]
    pub batch: BatchArgs,
    #[command(flatten)]
    pub act: MoveArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    start_logs();
    let QueueArgs { qfiles, queue } = &args.target;
    let op = Compact { qfiles, queue };
    let resumed = op.stage() == Stage::Refeeding;
    if resumed {
        tracing::info!(queue = %queue, aside = %op.aside_dir().display(), "a compact is under way: carrying on");
    }
    let stopped = interrupted();
    if !args.act.dry_run {
        swap(&args, &op, &stopped)?;
    }
    let report = if args.act.dry_run && !resumed {
        dry_run_report(&args, &op)?
    } else {
        with_feed("compact", &args.batch, false, &args.act.output, &stopped, |feed| op.refeed(feed, args.act.dry_run))?
    };
    let state = if report.done { "done" } else { "not finished: run the same command again to carry on" };
    let mut summary = format!("compact {queue}: {}; {state}", report.tally);
    if let Some(dir) = &report.leftover {
        summary.push_str(&format!("\n  files that are not entries were left in {}", dir.display()));
    }
    let details = serde_json::json!({ "action": "compact", "queue": queue, "resumed": resumed, "result": &report });
    finish(&args.act.output, &summary, &report.tally, &details)
}

/// Moves the queue aside, draining its live runners around the swap when asked.
fn swap(args: &Args, op: &Compact<'_>, stopped: &dyn Fn() -> bool) -> anyhow::Result<()> {
    if op.stage() == Stage::Refeeding || !args.wait_drain {
        return Ok(op.swap(false)?);
    }
    let QueueArgs { qfiles, queue } = &args.target;
    let asked = drain::request(qfiles, queue)?;
    let result = (|| {
        let state = drain::wait_drained(qfiles, queue, args.drain_timeout, stopped)?;
        if stopped() {
            bail!("interrupted while waiting for the drain; nothing was moved");
        }
        if !state.drained {
            let waiting: Vec<String> = state
                .owners
                .iter()
                .filter(|o| !o.drained)
                .map(|o| format!("pid {} on host {}", o.pid, o.host))
                .collect();
            bail!(
                "the runners of {queue} did not go idle within {:?} ({}); nothing was moved",
                args.drain_timeout,
                waiting.join(", ")
            );
        }
        Ok(op.swap(true)?)
    })();
    // Lift only a drain this command asked for: an admin's own drain stays.
    if asked {
        drain::resume(qfiles, queue)?;
    }
    result
}

/// What a compact would do now, without doing it.
fn dry_run_report(args: &Args, op: &Compact<'_>) -> anyhow::Result<mailqueue_queue::ops::compact::CompactReport> {
    let dir = args.target.qfiles.join(&args.target.queue);
    let names = mailqueue_queue::area::entries(&dir)?;
    let mut tally = mailqueue_queue::ops::Tally::new(true);
    tally.matched = names.len() as u64;
    tally.moved = names.len() as u64;
    Ok(mailqueue_queue::ops::compact::CompactReport { tally, aside: op.aside_dir(), leftover: None, done: false })
}
