//! Holding a `coordination.k8s.io` Lease: the one mechanism behind both the operator's leader
//! election and a runner's ownership of its slice.
//!
//! Every write is a replace guarded by the `resourceVersion` that was read, so two contenders
//! can never both believe they hold the Lease: the loser gets a conflict and reads again. A
//! Lease is free when nobody holds it or its holder has not renewed it within its duration.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;

/// A Lease could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} Lease {name}: {error}")]
pub struct LeaseError {
    action: &'static str,
    name: String,
    error: kube::Error,
}

/// Outcome of one attempt to take or renew a Lease.
#[derive(Debug)]
pub enum Attempt {
    /// We hold the Lease until `renewTime + leaseDurationSeconds`; this is the stored object,
    /// with whatever others annotated on it.
    Held(Box<Lease>),
    /// Someone else holds it and renewed it in time.
    HeldByOther(String),
    /// Another writer changed the Lease between our read and our write; try again.
    Contended,
}

/// One contender for one Lease.
#[derive(Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    holder: String,
    duration: Duration,
    field_manager: String,
}

impl LeaseLock {
    /// `holder` must be unique among contenders (a pod name); `duration` is how long the Lease
    /// stays ours without renewal.
    pub fn new(api: Api<Lease>, name: &str, holder: &str, duration: Duration, field_manager: &str) -> Self {
        Self {
            api,
            name: name.to_owned(),
            holder: holder.to_owned(),
            duration,
            field_manager: field_manager.to_owned(),
        }
    }

    /// Name of the Lease.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long the Lease stays ours without renewal.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Takes the Lease if it is free, or renews it if it is ours, setting `annotations` on it.
    pub async fn try_hold(&self, annotations: &BTreeMap<String, String>) -> Result<Attempt, LeaseError> {
        let now = jiff::Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await.map_err(|e| self.error("read", e))? else {
            return self.create(annotations, now).await;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        match spec.holder_identity.as_deref() {
            Some(other) if !other.is_empty() && other != self.holder && !is_expired(spec, now) => {
                return Ok(Attempt::HeldByOther(other.to_owned()));
            }
            Some(ours) if ours == self.holder => {}
            _ => {
                spec.acquire_time = Some(MicroTime(now));
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
        }
        spec.holder_identity = Some(self.holder.clone());
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(self.duration_seconds());
        lease.metadata.annotations.get_or_insert_with(BTreeMap::new).extend(annotations.clone());
        self.write(|api, pp| async move { api.replace(&self.name, &pp, &lease).await }).await
    }

    /// Gives the Lease up if we hold it, so the next holder need not wait for it to expire.
    pub async fn release(&self) -> Result<(), LeaseError> {
        let Some(mut lease) = self.api.get_opt(&self.name).await.map_err(|e| self.error("read", e))? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut().filter(|s| s.holder_identity.as_deref() == Some(&self.holder)) else {
            return Ok(());
        };
        spec.holder_identity = None;
        spec.renew_time = None;
        match self.api.replace(&self.name, &self.post_params(), &lease).await {
            Ok(_) => Ok(()),
            // Someone changed it after our read: it is no longer simply ours to release.
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(()),
            Err(e) => Err(self.error("release", e)),
        }
    }

    async fn create(
        &self,
        annotations: &BTreeMap<String, String>,
        now: jiff::Timestamp,
    ) -> Result<Attempt, LeaseError> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                annotations: Some(annotations.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.holder.clone()),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_duration_seconds: Some(self.duration_seconds()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        self.write(|api, pp| async move { api.create(&pp, &lease).await }).await
    }

    async fn write<F, Fut>(&self, op: F) -> Result<Attempt, LeaseError>
    where
        F: FnOnce(Api<Lease>, PostParams) -> Fut,
        Fut: std::future::Future<Output = Result<Lease, kube::Error>>,
    {
        match op(self.api.clone(), self.post_params()).await {
            Ok(lease) => Ok(Attempt::Held(Box::new(lease))),
            Err(kube::Error::Api(status)) if status.is_conflict() || status.is_already_exists() => {
                Ok(Attempt::Contended)
            }
            Err(e) => Err(self.error("write", e)),
        }
    }

    fn post_params(&self) -> PostParams {
        PostParams { field_manager: Some(self.field_manager.clone()), ..PostParams::default() }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    fn error(&self, action: &'static str, error: kube::Error) -> LeaseError {
        LeaseError { action, name: self.name.clone(), error }
    }
}

/// Whether a Lease's holder failed to renew it in time (or released it).
pub fn is_expired(spec: &LeaseSpec, now: jiff::Timestamp) -> bool {
    let (Some(renewed), Some(secs)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return true;
    };
    let deadline = renewed.0.checked_add(jiff::SignedDuration::from_secs(i64::from(secs)));
    deadline.map_or(true, |deadline| deadline < now)
}

/// The live holder of a Lease: its holder, unless it expired.
pub fn live_holder(lease: &Lease, now: jiff::Timestamp) -> Option<&str> {
    let spec = lease.spec.as_ref()?;
    let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty())?;
    (!is_expired(spec, now)).then_some(holder)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(renewed_secs_ago: i64, duration: i32) -> LeaseSpec {
        let now = jiff::Timestamp::now();
        LeaseSpec {
            holder_identity: Some("runner-a".into()),
            renew_time: Some(MicroTime(now - jiff::SignedDuration::from_secs(renewed_secs_ago))),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_expires_after_its_duration() {
        let now = jiff::Timestamp::now();
        assert!(!is_expired(&spec(5, 15), now));
        assert!(is_expired(&spec(20, 15), now));
        assert!(is_expired(&LeaseSpec::default(), now));
    }

    #[test]
    fn a_released_or_expired_lease_has_no_live_holder() {
        let now = jiff::Timestamp::now();
        let mut lease = Lease { spec: Some(spec(1, 15)), ..Lease::default() };
        assert_eq!(live_holder(&lease, now), Some("runner-a"));
        lease.spec = Some(spec(60, 15));
        assert_eq!(live_holder(&lease, now), None);
        lease.spec = Some(LeaseSpec { holder_identity: Some(String::new()), ..spec(1, 15) });
        assert_eq!(live_holder(&lease, now), None);
    }
}
