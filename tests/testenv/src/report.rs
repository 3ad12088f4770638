//! Printing logs when a test fails.

use std::path::PathBuf;

use crate::process::log_tail;

/// Lines of each log printed on failure.
const TAIL_LINES: usize = 40;

/// Prints the tails of some log files when dropped during a panic (a failing test),
/// and nothing otherwise. Keep it alive for the length of the test:
/// `let _report = plane.report_on_failure();`.
#[must_use = "the report is printed when this guard is dropped during a panic"]
pub struct FailureReport {
    logs: Vec<(String, PathBuf)>,
}

impl FailureReport {
    pub(crate) fn new(logs: Vec<(String, PathBuf)>) -> Self {
        Self { logs }
    }
}

impl Drop for FailureReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (name, path) in &self.logs {
                eprintln!("==> {name} ({}) <==\n{}", path.display(), log_tail(path, TAIL_LINES));
            }
        }
    }
}
