//! SIGTERM / SIGINT: first stop claiming (soft), then, when the grace period is nearly
//! over or a second signal comes, abort in-flight SMTP transactions (hard) so the
//! process can put unfinished entries back and exit within its bound.
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Time kept back from the grace period to put aborted entries back and exit.
const DISPOSE_MARGIN: Duration = Duration::from_secs(2);

/// What every task watches to know when to stop.
#[derive(Clone)]
pub struct Stop {
    soft: watch::Receiver<bool>,
    hard: watch::Receiver<bool>,
}

/// The side that decides to stop (the signal task; tests and `--exit-when-empty`).
pub struct StopSwitch {
    soft: watch::Sender<bool>,
    hard: watch::Sender<bool>,
}

pub fn channel() -> (StopSwitch, Stop) {
    let (soft_tx, soft) = watch::channel(false);
    let (hard_tx, hard) = watch::channel(false);
    (StopSwitch { soft: soft_tx, hard: hard_tx }, Stop { soft, hard })
}

impl StopSwitch {
    /// Stop claiming; finish what is in flight.
    pub fn stop(&self) {
        self.soft.send_replace(true);
    }

    /// Abort what is in flight.
    pub fn abort(&self) {
        self.soft.send_replace(true);
        self.hard.send_replace(true);
    }

    /// Waits for SIGTERM or SIGINT, then stops; aborts when `grace` (less the time
    /// needed to put entries back) has passed or a second signal arrives.
    pub async fn on_signals(self, grace: Duration) -> std::io::Result<()> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => tracing::info!(signal = "SIGTERM", grace_secs = grace.as_secs(), "stopping: no new claims, finishing in-flight deliveries"),
            _ = int.recv() => tracing::info!(signal = "SIGINT", grace_secs = grace.as_secs(), "stopping: no new claims, finishing in-flight deliveries"),
        }
        self.stop();
        let abort_after = grace.saturating_sub(DISPOSE_MARGIN);
        tokio::select! {
            _ = tokio::time::sleep(abort_after) => tracing::warn!("grace period ending: aborting in-flight SMTP transactions"),
            _ = term.recv() => tracing::warn!("second signal: aborting in-flight SMTP transactions"),
            _ = int.recv() => tracing::warn!("second signal: aborting in-flight SMTP transactions"),
        }
        self.abort();
        Ok(())
    }
}

impl Stop {
    /// No new claims.
    pub fn stopping(&self) -> bool {
        *self.soft.borrow()
    }

    pub fn aborting(&self) -> bool {
        *self.hard.borrow()
    }

    pub async fn stopped(&self) {
        wait_true(self.soft.clone()).await
    }

    pub async fn aborted(&self) {
        wait_true(self.hard.clone()).await
    }
}

/// Resolves when the flag turns true; never, if its switch is gone while still false.
async fn wait_true(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}
