use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = mailqueue_runner::cli::Cli::parse();
    let result = mailqueue_runner::cli::dispatch(cli);
    mailqueue_runner::logging::flush();
    match result {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` prints the whole chain: "reading out/x.pck: truncated pickle at byte 812".
            eprintln!("mailqueue-runner: {err:#}");
            ExitCode::from(1)
        }
    }
}
