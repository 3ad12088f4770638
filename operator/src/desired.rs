//! Step 3 of the reconcile: what should exist for a valid `MailQueue`, computed without
//! talking to the API server.
//!
//! Each slice gets one plain Pod, named like its Lease, owned by the `MailQueue`. Plain Pods
//! rather than a StatefulSet or Deployment because a slice is not a replica: each pod has its
//! own arguments (queue, slice index), and the operator must control when a new layout starts
//! (only after the old layout's Leases are released, see `apply.rs`), which a workload
//! controller would decide on its own. The runner restarts in place (`restartPolicy: Always`);
//! a deleted, failed or outdated pod is replaced by the operator.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, EnvVarSource, ObjectFieldSelector, PersistentVolumeClaimVolumeSource, Pod,
    PodSecurityContext, PodSpec, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ObjectMeta;
use sha1::{Digest, Sha1};

use crate::crd::{MailQueueSpec, RunnerSettings};
use crate::slice::{SliceId, DRAIN_ANNOTATION};
use crate::validate::ValidSpec;

/// Annotation on a runner pod: digest of its spec, to spot pods built from an older spec.
pub const SPEC_HASH_ANNOTATION: &str = "mailqueue.dev/spec-hash";
/// Where the shared volume is mounted in every runner pod.
pub const MOUNT_PATH: &str = "/var/lib/mailman";
/// Seconds of the pod's grace period kept back from the runner's own stop grace.
const STOP_MARGIN_SECONDS: i64 = 5;
/// Name of the runner container.
pub const CONTAINER: &str = "runner";
/// Age at which a `.bak` counts as stale when `spec.bakPolicy` does not say.
pub const DEFAULT_STALE_BAK_AFTER: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Operator-wide settings of the runner pods.
#[derive(Clone, Debug)]
pub struct RunnerTemplate {
    /// Container image with `mailqueue-runner` as its entrypoint.
    pub image: String,
    /// ServiceAccount that may hold the slice Leases.
    pub service_account: String,
    /// Seconds a runner gets after SIGTERM to finish the entry it is sending.
    pub grace_period_seconds: i64,
    /// Seconds a runner's Lease stays valid without renewal.
    pub lease_duration_seconds: u32,
}

/// Everything one slice needs.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredSlice {
    pub id: SliceId,
    pub pod: Pod,
    pub lease: Lease,
}

/// The slices of every queue of `spec`, in spec order.
pub fn desired_slices(
    name: &str,
    namespace: &str,
    owner: &OwnerReference,
    valid: &ValidSpec,
    template: &RunnerTemplate,
) -> Vec<DesiredSlice> {
    let spec = &valid.spec;
    spec.queues
        .iter()
        .flat_map(|queue| {
            let slices = u32::try_from(queue.slices).unwrap_or(1);
            (0..slices).map(move |index| SliceId { mailqueue: name.to_owned(), queue: queue.name.clone(), index, slices })
        })
        .map(|id| DesiredSlice {
            pod: pod(&id, namespace, owner, valid, template),
            lease: lease(&id, namespace, owner, spec.drain),
            id,
        })
        .collect()
}

fn metadata(id: &SliceId, namespace: &str, owner: &OwnerReference) -> ObjectMeta {
    ObjectMeta {
        name: Some(id.object_name()),
        namespace: Some(namespace.to_owned()),
        labels: Some(id.labels()),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    }
}

/// The slice's Lease as the operator declares it: identity, owner and the drain request. The
/// holder fields are the runner's.
fn lease(id: &SliceId, namespace: &str, owner: &OwnerReference, drain: bool) -> Lease {
    let mut metadata = metadata(id, namespace, owner);
    metadata.annotations = Some(BTreeMap::from([(DRAIN_ANNOTATION.to_owned(), drain.to_string())]));
    Lease { metadata, spec: None }
}

fn pod(id: &SliceId, namespace: &str, owner: &OwnerReference, valid: &ValidSpec, template: &RunnerTemplate) -> Pod {
    let spec = &valid.spec;
    let args = [
        "run",
        "--qfiles",
        &format!("{MOUNT_PATH}/{}", spec.storage.queue_dir.trim_end_matches('/')),
        "--queue",
        &id.queue,
        "--slices",
        &id.slices.to_string(),
        "--slice",
        &id.index.to_string(),
        "--smtp",
        &format!("{}:{}", spec.smtp.host, spec.smtp.port),
        "--connections",
        &spec.smtp.connections_per_slice.to_string(),
        // Leave the runner a margin inside the pod's grace period to put entries back.
        "--stop-grace",
        &(template.grace_period_seconds - STOP_MARGIN_SECONDS).max(1).to_string(),
        "--lease-namespace",
        namespace,
        "--lease-name",
        &id.object_name(),
        "--lease-duration",
        &template.lease_duration_seconds.to_string(),
        // The runner counts stale `.bak` entries for the status by the same threshold.
        "--stale-bak-after",
        &valid.quarantine_after.unwrap_or(DEFAULT_STALE_BAK_AFTER).as_secs().max(1).to_string(),
    ];
    let field_env = |name: &str, path: &str| EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.to_owned(), ..ObjectFieldSelector::default() }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    let pod_spec = PodSpec {
        restart_policy: Some("Always".to_owned()),
        service_account_name: Some(template.service_account.clone()),
        termination_grace_period_seconds: Some(template.grace_period_seconds),
        ..queue_pod_spec(
            spec,
            vec![Container {
                name: CONTAINER.to_owned(),
                image: Some(template.image.clone()),
                args: Some(args.iter().map(|a| (*a).to_owned()).collect()),
                env: Some(vec![field_env("POD_NAME", "metadata.name"), field_env("POD_NAMESPACE", "metadata.namespace")]),
                ..Container::default()
            }],
        )
    };
    let mut metadata = metadata(id, namespace, owner);
    metadata.annotations = Some(BTreeMap::from([(SPEC_HASH_ANNOTATION.to_owned(), spec_hash(&pod_spec))]));
    Pod { metadata, spec: Some(pod_spec), status: None }
}

/// What every pod on the queue volume has, runner or action Job: `containers` each mount the
/// claim at `MOUNT_PATH` and run as non-root without privileges on a read-only root, as the
/// spec's user and group. The caller sets the rest (restart policy, account, grace period).
pub fn queue_pod_spec(spec: &MailQueueSpec, containers: Vec<Container>) -> PodSpec {
    let runner = spec.runner.clone().unwrap_or(RunnerSettings { run_as_user: None, run_as_group: None });
    let containers = containers
        .into_iter()
        .map(|container| Container {
            volume_mounts: Some(vec![VolumeMount {
                name: "mailman".to_owned(),
                mount_path: MOUNT_PATH.to_owned(),
                ..VolumeMount::default()
            }]),
            // The runner's fatal error is its last log line; the kubelet keeps it as the
            // termination message, which the status shows (status.rs, recent_crash).
            termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
            security_context: Some(SecurityContext {
                read_only_root_filesystem: Some(true),
                allow_privilege_escalation: Some(false),
                run_as_non_root: Some(true),
                capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_owned()]), ..Capabilities::default() }),
                ..SecurityContext::default()
            }),
            ..container
        })
        .collect();
    PodSpec {
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: runner.run_as_user,
            run_as_group: runner.run_as_group,
            fs_group: runner.run_as_group,
            // A Mailman tree holds many thousands of files: relabel it only when its top is not
            // already the group's, not at every pod start.
            fs_group_change_policy: runner.run_as_group.map(|_| "OnRootMismatch".to_owned()),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".to_owned(), ..SeccompProfile::default() }),
            ..PodSecurityContext::default()
        }),
        containers,
        volumes: Some(vec![Volume {
            name: "mailman".to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: spec.storage.claim_name.clone(),
                read_only: Some(false),
            }),
            ..Volume::default()
        }]),
        ..PodSpec::default()
    }
}

/// Digest of a pod spec: pods are immutable, so a changed spec means a new pod.
fn spec_hash(spec: &PodSpec) -> String {
    // A PodSpec always serializes; an empty input would only force one needless restart.
    let json = serde_json::to_vec(spec).unwrap_or_default();
    hex::encode(&Sha1::digest(&json)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{tests::spec, validate};

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "mailqueue.dev/v1alpha1".into(),
            kind: "MailQueue".into(),
            name: "lists".into(),
            uid: "1234".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn template() -> RunnerTemplate {
        RunnerTemplate {
            image: "mailqueue-runner:test".into(),
            service_account: "mailqueue-runner".into(),
            grace_period_seconds: 60,
            lease_duration_seconds: 15,
        }
    }

    fn slices_of(queues: &[(&str, i32)]) -> Vec<DesiredSlice> {
        let valid = validate("lists", &spec(queues)).expect("valid");
        desired_slices("lists", "mail", &owner(), &valid, &template())
    }

    #[test]
    fn one_pod_per_slice_named_after_its_layout() {
        let names: Vec<_> = slices_of(&[("out", 4), ("retry", 1)]).iter().map(|s| s.id.object_name()).collect();
        assert_eq!(names, ["lists-out-0of4", "lists-out-1of4", "lists-out-2of4", "lists-out-3of4", "lists-retry-0of1"]);
    }

    #[test]
    fn pod_mounts_the_claim_passes_smtp_and_runs_locked_down() {
        let slices = slices_of(&[("out", 4)]);
        let pod = &slices[2].pod;
        assert_eq!(pod.metadata.owner_references.as_deref(), Some(&[owner()][..]));
        let spec = pod.spec.as_ref().expect("spec");
        let claim = spec.volumes.as_ref().and_then(|v| v.first()).and_then(|v| v.persistent_volume_claim.as_ref());
        assert_eq!(claim.map(|c| c.claim_name.as_str()), Some("mailman-data"));
        let container = &spec.containers[0];
        let args = container.args.clone().unwrap_or_default().join(" ");
        assert!(args.starts_with("run --qfiles /var/lib/mailman/qfiles --queue out --slices 4 --slice 2"), "{args}");
        assert!(args.contains("--smtp mta.mail.svc:25 --connections 4 --stop-grace 55"), "{args}");
        assert!(args.contains("--lease-namespace mail --lease-name lists-out-2of4"), "{args}");
        let sc = container.security_context.as_ref().expect("container security context");
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(spec.security_context.as_ref().and_then(|s| s.run_as_non_root), Some(true));
    }

    #[test]
    fn a_changed_spec_changes_the_pod_hash_and_drain_goes_to_the_lease() {
        let before = slices_of(&[("out", 1)]);
        let mut changed = spec(&[("out", 1)]);
        changed.smtp.host = "other.relay".into();
        changed.drain = true;
        let valid = validate("lists", &changed).expect("valid");
        let after = desired_slices("lists", "mail", &owner(), &valid, &template());
        let hash = |s: &DesiredSlice| s.pod.metadata.annotations.as_ref().and_then(|a| a.get(SPEC_HASH_ANNOTATION).cloned());
        assert_ne!(hash(&before[0]), hash(&after[0]));
        let drain = |s: &DesiredSlice| s.lease.metadata.annotations.as_ref().and_then(|a| a.get(DRAIN_ANNOTATION).cloned());
        assert_eq!(drain(&before[0]).as_deref(), Some("false"));
        assert_eq!(drain(&after[0]).as_deref(), Some("true"));
    }

    #[test]
    fn the_runner_counts_stale_bak_by_the_bak_policy() {
        let args = |s: &DesiredSlice| s.pod.spec.as_ref().map(|p| p.containers[0].args.clone().unwrap_or_default().join(" "));
        let default = slices_of(&[("out", 1)]);
        assert!(args(&default[0]).is_some_and(|a| a.contains("--stale-bak-after 1800")), "{:?}", args(&default[0]));
        let mut policy = spec(&[("out", 1)]);
        policy.bak_policy = Some(crate::crd::BakPolicy { quarantine_after: "2m".into() });
        let valid = validate("lists", &policy).expect("valid");
        let set = desired_slices("lists", "mail", &owner(), &valid, &template());
        assert!(args(&set[0]).is_some_and(|a| a.contains("--stale-bak-after 120")), "{:?}", args(&set[0]));
    }
}
