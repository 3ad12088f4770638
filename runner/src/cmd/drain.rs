//! `mailqueue-runner drain`: ask the live standalone runners of a queue to stop
//! claiming (the drain flag file, see `ownership::Standalone`), and wait until every one
//! of them has acknowledged it in its heartbeat, which it publishes only between
//! batches: from then on it has nothing in flight. `--resume` removes the flag.
use super::common::{emit, interrupted, start_logs, OutputArgs, QueueArgs};
use crate::ownership::Standalone;
use anyhow::Context;
use mailqueue_contract::duration;
use mailqueue_queue::inflight::{recorded_holders, Holder};
use mailqueue_queue::lock::STATE_DIR;
use mailqueue_queue::Slice;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: QueueArgs,
    /// Undo a drain: the runners claim again.
    #[arg(long)]
    pub resume: bool,
    /// Give up waiting after this long (the drain stays requested).
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = duration::parse)]
    pub timeout: Duration,
    /// Ask for the drain and return at once, without waiting.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// One live runner process of the queue, as the drain sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Owner {
    pub pid: u32,
    pub host: String,
    /// Fine sub-slices (of 256) it holds.
    pub fine_slices: usize,
    /// Every slice it holds has acknowledged the drain.
    pub drained: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrainReport {
    pub queue: String,
    pub flag: PathBuf,
    pub requested: bool,
    pub drained: bool,
    pub owners: Vec<Owner>,
}

impl DrainReport {
    fn summary(&self) -> String {
        if !self.requested {
            return format!("drain {}: resumed (flag {} removed)", self.queue, self.flag.display());
        }
        let done = self.owners.iter().filter(|o| o.drained).count();
        let state = if self.drained { "drained" } else { "NOT drained yet" };
        let mut s = format!(
            "drain {}: {state}: {done} of {} live runners idle, nothing in flight",
            self.queue,
            self.owners.len()
        );
        for o in self.owners.iter().filter(|o| !o.drained) {
            s.push_str(&format!(
                "\n  waiting for pid {} on host {} ({} of 256 fine slices)",
                o.pid, o.host, o.fine_slices
            ));
        }
        s
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    start_logs();
    let QueueArgs { qfiles, queue } = &args.target;
    if args.resume {
        resume(qfiles, queue)?;
        let flag = Standalone::drain_flag(qfiles, queue);
        let report = DrainReport { queue: queue.clone(), flag, requested: false, drained: false, owners: Vec::new() };
        emit(&args.output, &report.summary(), &report)?;
        return Ok(ExitCode::SUCCESS);
    }
    request(qfiles, queue)?;
    let report =
        if args.no_wait { state(qfiles, queue)? } else { wait_drained(qfiles, queue, args.timeout, &interrupted())? };
    emit(&args.output, &report.summary(), &report)?;
    Ok(if report.drained || args.no_wait { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Creates the drain flag. Returns false when it was already there.
pub fn request(qfiles: &Path, queue: &str) -> anyhow::Result<bool> {
    let flag = Standalone::drain_flag(qfiles, queue);
    if flag.exists() {
        return Ok(false);
    }
    let dir = qfiles.join(STATE_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let note = format!("drain of {queue} requested by pid {}\n", std::process::id());
    std::fs::write(&flag, note).with_context(|| format!("creating the drain flag {}", flag.display()))?;
    tracing::info!(queue, flag = %flag.display(), "drain requested");
    Ok(true)
}

/// Removes the drain flag (nothing to do when there is none).
pub fn resume(qfiles: &Path, queue: &str) -> anyhow::Result<()> {
    let flag = Standalone::drain_flag(qfiles, queue);
    match std::fs::remove_file(&flag) {
        Ok(()) => {
            tracing::info!(queue, "drain lifted: runners claim again");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing the drain flag {}", flag.display())),
    }
}

/// How often the heartbeats are read while waiting.
const POLL: Duration = Duration::from_millis(100);

/// Waits until every live runner of the queue has acknowledged the drain, up to
/// `timeout`. The report says who has not when it ran out.
/// `stop` ends the wait early (an interrupt), with the report of the moment.
pub fn wait_drained(
    qfiles: &Path,
    queue: &str,
    timeout: Duration,
    stop: &dyn Fn() -> bool,
) -> anyhow::Result<DrainReport> {
    let deadline = Instant::now() + timeout;
    loop {
        let report = state(qfiles, queue)?;
        if report.drained || Instant::now() >= deadline || stop() {
            return Ok(report);
        }
        std::thread::sleep(POLL);
    }
}

/// Where the drain stands now.
pub fn state(qfiles: &Path, queue: &str) -> anyhow::Result<DrainReport> {
    let flag = Standalone::drain_flag(qfiles, queue);
    let flag_time = std::fs::metadata(&flag)
        .and_then(|m| m.modified())
        .with_context(|| format!("reading the drain flag {}", flag.display()))?;
    let acks = acknowledgements(qfiles, queue, flag_time);
    let host = this_host();
    let mut by_holder: BTreeMap<Holder, (usize, bool)> = BTreeMap::new();
    for (k, holder) in recorded_holders(qfiles, queue) {
        // A record outlives its owner; on this host a dead pid is no owner.
        if holder.host == host && !process_lives(holder.pid) {
            continue;
        }
        let acked = acks.iter().any(|(pid, slice)| *pid == holder.pid && slice.fine_range().contains(&k));
        let e = by_holder.entry(holder).or_insert((0, true));
        e.0 += 1;
        e.1 &= acked;
    }
    let owners: Vec<Owner> = by_holder
        .into_iter()
        .map(|(h, (fine_slices, drained))| Owner { pid: h.pid, host: h.host, fine_slices, drained })
        .collect();
    let drained = owners.iter().all(|o| o.drained);
    Ok(DrainReport { queue: queue.to_owned(), flag, requested: true, drained, owners })
}

/// `(pid, slice)` of each heartbeat of `queue` that acknowledges a drain asked at
/// `since`: written after it, saying `draining`.
fn acknowledgements(qfiles: &Path, queue: &str, since: SystemTime) -> Vec<(u32, Slice)> {
    let dir = qfiles.join(STATE_DIR);
    let Ok(read) = std::fs::read_dir(&dir) else { return Vec::new() };
    let prefix = format!("{queue}-");
    let mut acks = Vec::new();
    for dirent in read.flatten() {
        let name = dirent.file_name().to_string_lossy().into_owned();
        let Some(slice) = name.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".json")).and_then(parse_slice) else {
            continue;
        };
        if Standalone::heartbeat_path(qfiles, queue, slice) != dirent.path() {
            continue;
        }
        let written = dirent.metadata().and_then(|m| m.modified());
        if !written.is_ok_and(|t| t > since) {
            continue;
        }
        let Ok(text) = std::fs::read(dirent.path()) else { continue };
        let Ok(beat) = serde_json::from_slice::<serde_json::Value>(&text) else { continue };
        let draining = beat.get("draining").and_then(|v| v.as_bool()) == Some(true);
        let pid = beat.get("pid").and_then(|v| v.as_u64()).and_then(|p| u32::try_from(p).ok());
        if let (true, Some(pid)) = (draining, pid) {
            acks.push((pid, slice));
        }
    }
    acks
}

/// `2-of-4` -> slice 2/4.
fn parse_slice(s: &str) -> Option<Slice> {
    let (i, n) = s.split_once("-of-")?;
    Slice::new(i.parse().ok()?, n.parse().ok()?).ok()
}

/// A process of this host that exists and has not exited (a zombie has).
fn process_lives(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // `pid (comm) state ...`: comm may hold spaces and parentheses, the state follows
    // the last `)`.
    stat.rsplit_once(')').is_some_and(|(_, rest)| !matches!(rest.split_whitespace().next(), Some("Z" | "X")))
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_owned()).unwrap_or_default()
}
