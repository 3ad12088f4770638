//! A feed's progress (release, requeue, compact, unshunt): an indicatif bar when stderr is
//! a terminal, a log line every few seconds otherwise (`--json`, a pod's log), where a
//! redrawn line would only be noise.
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mailqueue_queue::ops::Progress;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How often a log line is written when no bar is drawn.
const LOG_EVERY: Duration = Duration::from_secs(10);

const BAR_TEMPLATE: &str = "{prefix} [{bar:30}] {pos}/{len} moved, {msg}";

pub struct Reporter {
    what: &'static str,
    bar: Option<ProgressBar>,
    last_log: Option<Instant>,
}

impl Reporter {
    /// `quiet` (`--json`): the terminal gets the JSON result only, progress goes to the log.
    pub fn new(what: &'static str, quiet: bool) -> Reporter {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            // A test checks the template; were it wrong, the default style still shows moved/total.
            if let Ok(style) = ProgressStyle::with_template(BAR_TEMPLATE) {
                bar.set_style(style.progress_chars("#>-"));
            }
            bar.set_prefix(what);
            bar
        });
        Reporter { what, bar, last_log: None }
    }

    pub fn show(&mut self, p: &Progress) {
        if let Some(bar) = &self.bar {
            // indicatif limits how often it redraws: every call may update.
            bar.set_length(p.total);
            bar.set_position(p.moved);
            let waiting = if p.waiting { " (waiting for the queue to drain)" } else { "" };
            bar.set_message(format!("queue holds {}{waiting}", p.depth));
            return;
        }
        let due = self.last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY);
        if due || p.moved == p.total {
            self.last_log = Some(Instant::now());
            tracing::info!(
                moved = p.moved,
                total = p.total,
                queue_depth = p.depth,
                waiting = p.waiting,
                "{} progress",
                self.what
            );
        }
    }

    /// Leaves the bar as it stands (an interrupted feed shows how far it got), so that the
    /// result or an error is printed below it.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bar_template_parses() {
        assert!(indicatif::ProgressStyle::with_template(super::BAR_TEMPLATE).is_ok());
    }
}
