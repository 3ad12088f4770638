//! `mailqueue-runner list`: every entry of one queue, oldest first, with its age, size,
//! list, sender and recipient count (what `postqueue -p` shows for Postfix). Rows are
//! printed as they are read, so a long backlog shows progress as it goes.
use super::common::QueueArgs;
use super::table::human_age;
use anyhow::Context;
use mailqueue_queue::listing::{list_entries, EntryRow};
use std::io::Write;
use std::ops::ControlFlow;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: QueueArgs,
    /// Stop after this many entries (the oldest ones).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// One JSON object per line (file, state, age_seconds, size, sender, list,
    /// recipients, and error when the entry could not be read).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let mut out = std::io::stdout().lock();
    let (mut shown, mut unreadable) = (0usize, 0usize);
    let mut result = Ok(());
    if !args.json {
        writeln!(
            out,
            "{:<64} {:>5} {:>7} {:>9} {:>10}  {:<30} sender",
            "file", "state", "age", "size", "recipients", "list"
        )?;
    }
    let full = |shown: usize| args.limit.is_some_and(|limit| shown >= limit);
    list_entries(&args.target.qfiles, &args.target.queue, now, |row| {
        if full(shown) {
            return ControlFlow::Break(());
        }
        shown += 1;
        unreadable += usize::from(row.error.is_some());
        result = if args.json { writeln_json(&mut out, &row) } else { writeln_text(&mut out, &row) };
        if result.is_err() || full(shown) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .with_context(|| format!("listing {}", args.target.qfiles.join(&args.target.queue).display()))?;
    // A closed pipe (`list | head`) is the reader's choice, not a failure.
    if let Err(e) = result {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !args.json {
        writeln!(
            out,
            "{shown} entries{}",
            if unreadable > 0 { format!(", {unreadable} unreadable") } else { String::new() }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn writeln_json(out: &mut impl Write, row: &EntryRow) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, row)?;
    writeln!(out)
}

fn writeln_text(out: &mut impl Write, row: &EntryRow) -> std::io::Result<()> {
    let or_dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    writeln!(
        out,
        "{:<64} {:>5} {:>7} {:>9} {:>10}  {:<30} {}",
        row.file,
        row.state,
        human_age(row.age_seconds),
        human_size(row.size),
        row.recipients.map_or_else(|| "-".into(), |n| n.to_string()),
        or_dash(&row.list),
        or_dash(&row.sender),
    )?;
    if let Some(error) = &row.error {
        writeln!(out, "    unreadable: {error}")?;
    }
    Ok(())
}

/// `812`, `4.1K`, `2.3M` (powers of 1024, as `ls -h`).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 3] = ["K", "M", "G"];
    if bytes < 1024 {
        return bytes.to_string();
    }
    let mut size = bytes as f64 / 1024.0;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.1}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_like_ls() {
        assert_eq!(super::human_size(812), "812");
        assert_eq!(super::human_size(4200), "4.1K");
        assert_eq!(super::human_size(3 * 1024 * 1024 + 1), "3.0M");
    }
}
