//! `mailqueue-runner qshape`: a queue's recipients per domain and age, the view
//! Postfix's `qshape` gives, so an admin sees at once which destination holds the
//! backlog (one MTA down, one provider deferring).
use super::common::QueueArgs;
use super::table::aligned;
use anyhow::Context;
use mailqueue_queue::listing::{shape, ShapeBy};
use mailqueue_queue::status::bucket_labels;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: QueueArgs,
    /// Count entries by their envelope sender's domain instead of recipients by theirs.
    #[arg(long)]
    pub senders: bool,
    /// Show only the N domains with the most; the total row still counts all.
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let by = if args.senders { ShapeBy::Sender } else { ShapeBy::Recipient };
    let (mut rows, unreadable) = shape(&args.target.qfiles, &args.target.queue, now, by)
        .with_context(|| format!("reading {}", args.target.qfiles.join(&args.target.queue).display()))?;
    if let Some(top) = args.top {
        rows.truncate(top.saturating_add(1));
    }
    if args.json {
        let out = serde_json::json!({
            "queue": args.target.queue,
            "by": if args.senders { "sender" } else { "recipient" },
            "age_buckets": bucket_labels(),
            "domains": rows,
            "unreadable_entries": unreadable,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table =
        vec![["domain".to_owned(), "total".to_owned()].into_iter().chain(bucket_labels()).collect::<Vec<_>>()];
    for row in rows {
        table.push(
            [row.domain, row.total.to_string()]
                .into_iter()
                .chain(row.age_histogram.iter().map(u64::to_string))
                .collect(),
        );
    }
    print!("{}", aligned(&table));
    if unreadable > 0 {
        eprintln!(
            "not counted, because they could not be read: {unreadable} entries (`mailqueue-runner list` says why)"
        );
    }
    Ok(ExitCode::SUCCESS)
}
