//! What the queue-operation commands (quarantine, hold, release, requeue, compact,
//! unshunt, drain) share: the queue and selection switches, batching switches, progress
//! on a terminal or in the log, Ctrl-C that stops between two moves, and the result
//! printed as numbers or JSON.
use crate::logging;
use mailqueue_contract::duration;
use mailqueue_queue::ops::{Batching, Feed, Progress, Select, Tally};
use mailqueue_queue::Slice;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The queue an operation works on.
#[derive(Debug, Clone, clap::Args)]
pub struct QueueArgs {
    /// The queue root: Mailman 2.1's `qfiles/` or Mailman 3's `var/queue/`.
    #[arg(long, value_name = "DIR")]
    pub qfiles: PathBuf,
    /// The queue's name under the root.
    #[arg(long, default_value = "out")]
    pub queue: String,
}

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
    #[arg(long, value_name = "DUR", value_parser = duration::parse)]
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

/// How entries are fed back into a live queue.
#[derive(Debug, Clone, clap::Args)]
pub struct BatchArgs {
    /// Entries moved per batch.
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub batch: usize,
    /// Pause between batches (e.g. 5s).
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = duration::parse)]
    pub interval: Duration,
    /// Never let the queue directory hold more than M entries: wait for the runners
    /// to drain it below that before each batch.
    #[arg(long, value_name = "M")]
    pub max_depth: Option<u64>,
}

impl BatchArgs {
    pub fn batching(&self) -> Batching {
        Batching { batch: self.batch, interval: self.interval, max_depth: self.max_depth }
    }
}

/// Output switches every operation has.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON result to this file: in a Kubernetes Job, the container's
    /// termination message (`/dev/termination-log`), where the operator reads the counts.
    #[arg(long, value_name = "FILE")]
    pub result_file: Option<PathBuf>,
}

/// What every command that moves entries takes besides its selection: `--dry-run` and the
/// output switches.
#[derive(Debug, Clone, clap::Args)]
pub struct MoveArgs {
    /// Count and report what would be moved; move nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Starts the log (on stderr) for an operation.
pub fn start_logs() {
    logging::init(logging::Format::Text);
}

/// True once SIGINT or SIGTERM came: the operation stops after the move in progress,
/// and running it again carries on.
pub fn interrupted() -> impl Fn() -> bool {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    let listen = move || -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
        runtime.block_on(async {
            let mut term = signal(SignalKind::terminate())?;
            let mut int = signal(SignalKind::interrupt())?;
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            set.store(true, Ordering::SeqCst);
            tracing::warn!("interrupted: stopping after the current move; run the same command again to carry on");
            Ok(())
        })
    };
    std::thread::spawn(move || {
        if let Err(e) = listen() {
            tracing::warn!(error = %e, "cannot listen for SIGINT/SIGTERM; an interrupt will end the command at once (no entry is lost)");
        }
    });
    move || flag.load(Ordering::SeqCst)
}

/// Runs `op` (a release, requeue, compact or unshunt) with a feed batched as asked,
/// its progress shown under `what`, stopping between two moves once `stopped`.
pub fn with_feed<T>(
    what: &'static str,
    batch: &BatchArgs,
    reset_count: bool,
    output: &OutputArgs,
    stopped: &dyn Fn() -> bool,
    op: impl FnOnce(&mut Feed<'_>) -> T,
) -> T {
    let mut reporter = super::progress::Reporter::new(what, output.json);
    let result = {
        let mut show = |p: &Progress| reporter.show(p);
        op(&mut Feed { batching: batch.batching(), reset_count, on_progress: &mut show, stop: stopped })
    };
    // Also on an error, so that the message does not land on the bar's line.
    reporter.finish();
    result
}

/// Prints the outcome (`moved 412, skipped 3 in flight, 0 errors` or JSON) and picks
/// the exit code: 1 when any entry failed, 2 when the operation was interrupted with
/// entries left to move, else 0.
pub fn finish(output: &OutputArgs, summary: &str, tally: &Tally, details: &impl Serialize) -> anyhow::Result<ExitCode> {
    if !tally.balanced() {
        // Every entry looked at must be moved, skipped or failed: say so loudly if not.
        tracing::error!(?tally, "the counts do not balance; please report this");
    }
    let mut text = summary.to_owned();
    for m in &tally.error_messages {
        text.push_str(&format!("\n  error: {m}"));
    }
    emit(output, &text, details)?;
    Ok(if tally.errors > 0 {
        ExitCode::from(1)
    } else if tally.remaining > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints `text`, or `details` as JSON with `--json`, and writes `details` to
/// `--result-file` when one is given.
pub fn emit(output: &OutputArgs, text: &str, details: &impl Serialize) -> anyhow::Result<()> {
    if let Some(path) = &output.result_file {
        // Compact (no indentation): a termination message keeps only 4096 bytes.
        std::fs::write(path, serde_json::to_vec(details)?)
            .map_err(|e| anyhow::anyhow!("cannot write the result to {}: {e}", path.display()))?;
    }
    if output.json {
        println!("{}", serde_json::to_string_pretty(details)?);
    } else {
        println!("{text}");
    }
    Ok(())
}
