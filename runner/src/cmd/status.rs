//! `mailqueue-runner status`: entries per queue (and per slice), those set aside in
//! its quarantine and hold areas, the oldest entry's age and a `qshape`-like age
//! histogram, from file names only.
use super::table::{aligned, human_age};
use anyhow::Context;
use mailqueue_queue::status::{bucket_labels, qfiles_status, Counts, QueueStatus};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The queue root: Mailman 2.1's `qfiles/` or Mailman 3's `var/queue/`.
    #[arg(long, value_name = "DIR")]
    pub qfiles: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also count per slice, for N slices (a power of two, 1 to 256).
    #[arg(long, value_name = "N")]
    pub slices: Option<u32>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let queues = qfiles_status(&args.qfiles, args.slices, now)
        .with_context(|| format!("reading the queues under {}", args.qfiles.display()))?;
    if args.json {
        let out = serde_json::json!({
            "qfiles": args.qfiles.display().to_string(),
            "now": now,
            "age_buckets": bucket_labels(),
            "slice_count": args.slices,
            "queues": queues,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", table(&queues));
    }
    Ok(ExitCode::SUCCESS)
}

fn table(queues: &[QueueStatus]) -> String {
    let mut header = vec![
        "queue".to_owned(),
        "pck".into(),
        "bak".into(),
        "psv".into(),
        "quarantined".into(),
        "held".into(),
        "ignored".into(),
        "oldest".into(),
    ];
    header.extend(bucket_labels());
    let mut rows = vec![header];
    for q in queues {
        let ignored: u64 = q.ignored.values().map(|f| f.count).sum();
        rows.push(row(&q.name, &q.counts, Some(Whole { quarantined: q.quarantined, held: q.held, ignored })));
        for (i, counts) in q.slices.iter().enumerate() {
            rows.push(row(&format!("  {}/{i}", q.name), counts, None));
        }
    }
    let mut out = aligned(&rows);
    for q in queues {
        for (reason, files) in &q.ignored {
            let more = if files.count > files.examples.len() as u64 { ", ..." } else { "" };
            out.push_str(&format!(
                "{}: {} ignored, {reason}: {}{more}\n",
                q.name,
                files.count,
                files.examples.join(", ")
            ));
        }
    }
    out
}

/// The counts a queue has as a whole but its slices do not: the areas and ignored
/// files are not sliced.
struct Whole {
    quarantined: u64,
    held: u64,
    ignored: u64,
}

fn row(name: &str, c: &Counts, whole: Option<Whole>) -> Vec<String> {
    let cell = |n: fn(&Whole) -> u64| whole.as_ref().map(|w| n(w).to_string()).unwrap_or_default();
    let mut r = vec![
        name.to_owned(),
        c.pck.to_string(),
        c.bak.to_string(),
        c.psv.to_string(),
        cell(|w| w.quarantined),
        cell(|w| w.held),
        cell(|w| w.ignored),
        c.oldest_age_seconds.map(human_age).unwrap_or_else(|| "-".into()),
    ];
    r.extend(c.age_histogram.iter().map(u64::to_string));
    r
}
