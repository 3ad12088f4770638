//! Leader election on a Lease: of all operator replicas only the holder reconciles and writes;
//! the others wait for the Lease to become free.

use std::time::{Duration, Instant};

use mailqueue_contract::lease::{Attempt, LeaseError, LeaseLock};

/// This replica stopped being the leader; it must stop writing at once.
#[derive(Debug, thiserror::Error)]
pub enum LeadershipLost {
    #[error("the leader Lease {lease} was taken over by {holder}")]
    TakenOver { lease: String, holder: String },
    #[error("the leader Lease {lease} could not be renewed in time")]
    NotRenewed { lease: String },
}

/// One replica's candidacy.
pub struct Candidate {
    lock: LeaseLock,
}

impl Candidate {
    pub fn new(lock: LeaseLock) -> Self {
        Self { lock }
    }

    /// Renewals per Lease duration: a few missed renewals are survived.
    fn period(&self) -> Duration {
        self.lock.duration() / 3
    }

    /// Waits until this replica holds the leader Lease.
    pub async fn acquire(&self) {
        let none = Default::default();
        let mut announced = None;
        loop {
            match self.lock.try_hold(&none).await {
                Ok(Attempt::Held(_)) => return,
                Ok(Attempt::HeldByOther(holder)) => {
                    if announced.as_ref() != Some(&holder) {
                        tracing::info!(lease = self.lock.name(), %holder, "standing by: another replica leads");
                        announced = Some(holder);
                    }
                }
                Ok(Attempt::Contended) => continue,
                Err(error) => tracing::warn!(%error, "cannot take the leader Lease yet"),
            }
            tokio::time::sleep(self.period()).await;
        }
    }

    /// Renews the Lease until leadership is lost; returns why. A renewal that hangs counts as
    /// failed, so the replica stops before the Lease could have passed to another.
    pub async fn keep(&self) -> LeadershipLost {
        let none = Default::default();
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.period()).await;
            match tokio::time::timeout(self.period(), self.lock.try_hold(&none)).await {
                Ok(Ok(Attempt::Held(_))) => renewed = Instant::now(),
                Ok(Ok(Attempt::HeldByOther(holder))) => {
                    return LeadershipLost::TakenOver { lease: self.lock.name().to_owned(), holder };
                }
                Ok(Ok(Attempt::Contended)) => {}
                Ok(Err(error)) => tracing::warn!(%error, "leader Lease renewal failed; retrying"),
                Err(_) => tracing::warn!(lease = self.lock.name(), "leader Lease renewal timed out; retrying"),
            }
            // One more period and the Lease may pass to another replica: stop first.
            if renewed.elapsed() + self.period() >= self.lock.duration() {
                return LeadershipLost::NotRenewed { lease: self.lock.name().to_owned() };
            }
        }
    }

    /// Gives the Lease up so another replica takes over without waiting for expiry.
    pub async fn resign(&self) -> Result<(), LeaseError> {
        self.lock.release().await
    }
}
