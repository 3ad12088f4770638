//! `mailqueue-runner hold`: move chosen queued entries out of the live queue into its
//! hold area, where they are neither delivered nor expired until released.
use super::common::{finish, start_logs, MoveArgs, QueueArgs, SelectArgs};
use mailqueue_queue::area::Area;
use mailqueue_queue::ops::hold;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: QueueArgs,
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub act: MoveArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    start_logs();
    let QueueArgs { qfiles, queue } = &args.target;
    let tally = hold::hold(qfiles, queue, &args.select.select()?, args.act.dry_run)?;
    let to = Area::Hold.dir(qfiles, queue);
    let summary = format!("hold {queue}: {tally} (to {})", to.display());
    let details = serde_json::json!({ "action": "hold", "queue": queue, "to": to, "result": &tally });
    finish(&args.act.output, &summary, &tally, &details)
}
