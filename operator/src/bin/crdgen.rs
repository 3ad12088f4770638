//! Prints the `MailQueue` CRD as YAML: `cargo run -p mailqueue-operator --bin crdgen > crds/mailqueue.dev_mailqueues.yaml`.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let yaml = match mailqueue_operator::crd_yaml() {
        Ok(yaml) => yaml,
        Err(err) => {
            eprintln!("crdgen: cannot render the CRD as YAML: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = std::io::stdout().write_all(yaml.as_bytes()) {
        eprintln!("crdgen: cannot write to standard output: {err}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
