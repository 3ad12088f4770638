//! Step 4 of the reconcile: bring the cluster to the desired slices.
//!
//! [`plan`] decides, [`apply`] carries the plan out. Safety rule of re-slicing: when a queue's
//! slice count changes, the old pods are deleted at once, but no pod of the new layout is
//! created while any Lease of another layout of that queue is still held, so no hash is ever
//! covered by two owners.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, Client};

use crate::desired::{DesiredSlice, SPEC_HASH_ANNOTATION};
use crate::observe::Observed;
use crate::FIELD_MANAGER;
use mailqueue_contract::lease::live_holder;
use mailqueue_contract::slice::SliceId;

/// A write to the API server failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {verb} {kind} {name}: {error}")]
pub struct ApplyError {
    verb: &'static str,
    kind: &'static str,
    name: String,
    error: kube::Error,
}

/// One pod as seen: deleting by name and uid never removes a newer pod of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub name: String,
    pub uid: Option<String>,
}

/// What the apply step will do.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Leases to declare (identity, owner, drain request).
    pub apply_leases: Vec<Lease>,
    /// Pods to create.
    pub create_pods: Vec<Pod>,
    /// Pods to delete: not desired any more, finished, or built from an older spec.
    pub delete_pods: Vec<PodRef>,
    /// Leases of layouts that are gone and that nobody holds.
    pub delete_leases: Vec<String>,
    /// Queues whose new pods wait for the old layout to release its Leases.
    pub blocked: Vec<String>,
}

impl Plan {
    /// Leaves the runner pods of desired slices as they are: none is created or replaced,
    /// while what they need (a Secret the spec names) is missing. Pods of slices that are no
    /// longer desired still go, and Leases (the drain request) are still declared.
    pub fn hold_pods(&mut self, desired: &[DesiredSlice]) {
        self.create_pods.clear();
        self.delete_pods.retain(|p| !desired.iter().any(|d| d.pod.metadata.name.as_deref() == Some(p.name.as_str())));
    }
}

/// Decides what to change so that `observed` becomes `desired`.
pub fn plan(desired: &[DesiredSlice], observed: &Observed, now: jiff::Timestamp) -> Plan {
    let wanted: BTreeMap<String, &DesiredSlice> = desired.iter().map(|d| (d.id.object_name(), d)).collect();
    let layout: BTreeMap<&str, u32> = desired.iter().map(|d| (d.id.queue.as_str(), d.id.slices)).collect();

    let blocked: BTreeSet<String> = observed
        .leases
        .iter()
        .filter(|l| live_holder(l, now).is_some())
        .filter_map(|l| SliceId::from_labels(l.metadata.labels.as_ref()?))
        .filter(|id| layout.get(id.queue.as_str()).is_some_and(|slices| *slices != id.slices))
        .map(|id| id.queue)
        .collect();

    let delete_pods = observed
        .pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let name = p.metadata.name.as_deref()?;
            let keep = wanted.get(name).is_some_and(|d| !finished(p) && spec_hash(p) == spec_hash(&d.pod));
            (!keep).then(|| PodRef { name: name.to_owned(), uid: p.metadata.uid.clone() })
        })
        .collect();

    let create_pods = desired
        .iter()
        .filter(|d| !blocked.contains(&d.id.queue))
        .filter(|d| !observed.pods.iter().any(|p| p.metadata.name == d.pod.metadata.name))
        .map(|d| d.pod.clone())
        .collect();

    let apply_leases = desired
        .iter()
        .filter(|d| {
            let current = observed.leases.iter().find(|l| l.metadata.name == d.lease.metadata.name);
            current.is_none_or(|l| !declared(l, &d.lease))
        })
        .map(|d| d.lease.clone())
        .collect();

    let delete_leases = observed
        .leases
        .iter()
        .filter(|l| live_holder(l, now).is_none())
        .filter_map(|l| l.metadata.name.clone())
        .filter(|name| !wanted.contains_key(name))
        .collect();

    Plan { apply_leases, create_pods, delete_pods, delete_leases, blocked: blocked.into_iter().collect() }
}

/// Carries out `plan` in `namespace`.
pub async fn apply(client: &Client, namespace: &str, plan: &Plan) -> Result<(), ApplyError> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let leases = Api::<Lease>::namespaced(client.clone(), namespace);

    for lease in &plan.apply_leases {
        let name = lease.metadata.name.as_deref().unwrap_or_default();
        let params = PatchParams::apply(FIELD_MANAGER).force();
        leases.patch(name, &params, &Patch::Apply(lease)).await.map_err(error("declare", "Lease", name))?;
    }
    for pod in &plan.delete_pods {
        tracing::info!(pod = %pod.name, "deleting runner pod");
        let params =
            DeleteParams::default().preconditions(Preconditions { uid: pod.uid.clone(), resource_version: None });
        // Gone already, or replaced meanwhile (the uid precondition fails): nothing to do.
        match pods.delete(&pod.name, &params).await {
            Err(kube::Error::Api(status)) if status.is_not_found() || status.is_conflict() => {}
            other => other.map(|_| ()).map_err(error("delete", "pod", &pod.name))?,
        }
    }
    for pod in &plan.create_pods {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        tracing::info!(pod = %name, "creating runner pod");
        let params = PostParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PostParams::default() };
        match pods.create(&params, pod).await {
            // Still terminating from a deletion: the next reconcile creates it.
            Err(kube::Error::Api(status)) if status.is_already_exists() => {}
            other => other.map(|_| ()).map_err(error("create", "pod", name))?,
        }
    }
    for name in &plan.delete_leases {
        ignore_not_found(leases.delete(name, &DeleteParams::default()).await.map(|_| ()))
            .map_err(error("delete", "Lease", name))?;
    }
    Ok(())
}

fn ignore_not_found(result: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match result {
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        other => other,
    }
}

fn error<'a>(verb: &'static str, kind: &'static str, name: &'a str) -> impl FnOnce(kube::Error) -> ApplyError + 'a {
    move |error| ApplyError { verb, kind, name: name.to_owned(), error }
}

/// A pod whose containers will not run again.
fn finished(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Failed" | "Succeeded"))
}

fn spec_hash(pod: &Pod) -> Option<&str> {
    pod.metadata.annotations.as_ref()?.get(SPEC_HASH_ANNOTATION).map(String::as_str)
}

/// Whether `current` already carries everything the operator declares in `wanted`.
fn declared(current: &Lease, wanted: &Lease) -> bool {
    let contains = |have: &Option<BTreeMap<String, String>>, want: &Option<BTreeMap<String, String>>| {
        want.iter().flatten().all(|(k, v)| have.as_ref().and_then(|h| h.get(k)) == Some(v))
    };
    contains(&current.metadata.labels, &wanted.metadata.labels)
        && contains(&current.metadata.annotations, &wanted.metadata.annotations)
        && wanted
            .metadata
            .owner_references
            .iter()
            .flatten()
            .all(|o| current.metadata.owner_references.iter().flatten().any(|c| c.uid == o.uid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{desired_slices, RunnerTemplate};
    use crate::validate::{tests::spec, validate};
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};

    fn desired(queues: &[(&str, i32)], host: &str) -> Vec<DesiredSlice> {
        let mut s = spec(queues);
        s.smtp.host = host.into();
        let valid = validate("lists", &s).expect("valid");
        let owner = OwnerReference { name: "lists".into(), uid: "1".into(), ..OwnerReference::default() };
        let template = RunnerTemplate::for_tests();
        desired_slices("lists", "mail", &owner, &valid, &template)
    }

    fn held(lease: &Lease, now: jiff::Timestamp) -> Lease {
        let mut lease = lease.clone();
        lease.spec = Some(LeaseSpec {
            holder_identity: Some("runner".into()),
            renew_time: Some(MicroTime(now)),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        });
        lease
    }

    fn names(pods: &[Pod]) -> Vec<String> {
        pods.iter().filter_map(|p| p.metadata.name.clone()).collect()
    }

    fn deleted(plan: &Plan) -> Vec<&str> {
        plan.delete_pods.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn creates_what_is_missing_and_replaces_failed_and_outdated_pods() {
        let now = jiff::Timestamp::now();
        let want = desired(&[("out", 4)], "relay");
        let mut failed = want[1].pod.clone();
        failed.status = Some(PodStatus { phase: Some("Failed".into()), ..PodStatus::default() });
        let outdated = desired(&[("out", 4)], "old-relay")[2].pod.clone();
        let observed = Observed { pods: vec![want[0].pod.clone(), failed, outdated], leases: vec![] };
        let plan = plan(&want, &observed, now);
        assert_eq!(names(&plan.create_pods), ["lists-out-3of4"]);
        assert_eq!(deleted(&plan), ["lists-out-1of4", "lists-out-2of4"]);
        assert_eq!(plan.apply_leases.len(), 4);
        assert!(plan.blocked.is_empty());
    }

    #[test]
    fn a_new_layout_waits_until_the_old_one_released_its_leases() {
        let now = jiff::Timestamp::now();
        let old = desired(&[("out", 2)], "relay");
        let new = desired(&[("out", 4)], "relay");
        let observed = Observed {
            pods: old.iter().map(|d| d.pod.clone()).collect(),
            leases: vec![held(&old[0].lease, now), old[1].lease.clone()],
        };
        let plan1 = plan(&new, &observed, now);
        assert_eq!(deleted(&plan1), ["lists-out-0of2", "lists-out-1of2"]);
        assert!(plan1.create_pods.is_empty(), "no new owner while an old one holds a Lease");
        assert_eq!(plan1.blocked, ["out"]);
        assert_eq!(plan1.delete_leases, ["lists-out-1of2"], "only the released old Lease goes");

        let released = Observed { pods: vec![], leases: vec![old[0].lease.clone()] };
        let plan2 = plan(&new, &released, now);
        assert_eq!(plan2.create_pods.len(), 4);
        assert!(plan2.blocked.is_empty());
    }

    #[test]
    fn a_removed_queue_loses_its_pods_and_nothing_is_rewritten_when_in_place() {
        let now = jiff::Timestamp::now();
        let both = desired(&[("out", 1), ("retry", 1)], "relay");
        let only_out = desired(&[("out", 1)], "relay");
        let observed = Observed {
            pods: both.iter().map(|d| d.pod.clone()).collect(),
            leases: both.iter().map(|d| d.lease.clone()).collect(),
        };
        let plan = plan(&only_out, &observed, now);
        assert_eq!(deleted(&plan), ["lists-retry-0of1"]);
        assert!(plan.create_pods.is_empty());
        assert!(plan.apply_leases.is_empty());
        assert_eq!(plan.delete_leases, ["lists-retry-0of1"]);
    }
}
