use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = mailqueue_runner::cli::Cli::parse();
    match mailqueue_runner::cli::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` prints the whole chain: "reading out/x.pck: truncated pickle at byte 812".
            eprintln!("mailqueue-runner: {err:#}");
            ExitCode::from(1)
        }
    }
}
