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
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector,
    PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec, Probe, SeccompProfile, SecurityContext,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use sha1::{Digest, Sha1};

use crate::runner_pod::runner_config;
use crate::validate::ValidSpec;
use mailqueue_contract::crd::MailQueueSpec;
use mailqueue_contract::slice::{SliceId, DRAIN_ANNOTATION};

/// Annotation on a runner pod: digest of its spec, to spot pods built from an older spec.
pub const SPEC_HASH_ANNOTATION: &str = "mailqueue.dev/spec-hash";
/// Where the shared volume is mounted in every runner pod.
pub const MOUNT_PATH: &str = "/var/lib/mailman";
/// Seconds of the pod's grace period kept back from the runner's own stop grace.
const STOP_MARGIN_SECONDS: i64 = 5;
/// Name of the runner container.
pub const CONTAINER: &str = "runner";
/// Port of the runner's `/metrics`, `/healthz` and `/readyz`, named [`METRICS_PORT_NAME`].
pub const METRICS_PORT: i32 = 9187;
/// Name of the metrics port, for probes, PodMonitors and Services.
pub const METRICS_PORT_NAME: &str = "metrics";
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

#[cfg(test)]
impl RunnerTemplate {
    /// The settings the unit tests of every reconcile step build their slices with.
    pub fn for_tests() -> RunnerTemplate {
        RunnerTemplate {
            image: "mailqueue-runner:test".into(),
            service_account: "mailqueue-runner".into(),
            grace_period_seconds: 60,
            lease_duration_seconds: 15,
        }
    }
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
            (0..slices).map(move |index| SliceId {
                mailqueue: name.to_owned(),
                queue: queue.name.clone(),
                index,
                slices,
            })
        })
        .map(|id| DesiredSlice {
            pod: pod(&id, namespace, owner, valid, template),
            lease: lease(&id, namespace, owner, spec.drain),
            id,
        })
        .collect()
}

fn metadata(id: &SliceId, namespace: &str, owner: &OwnerReference) -> ObjectMeta {
    let mut labels = id.labels();
    labels.extend(app_labels(&id.mailqueue, "runner"));
    ObjectMeta {
        name: Some(id.object_name()),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    }
}

/// The `app.kubernetes.io/*` labels of everything the operator creates for the `MailQueue`
/// `instance`: `component` is `runner` (pods, Leases) or `action` (Jobs).
pub fn app_labels(instance: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "mailqueue-runner".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), instance.to_owned()),
        ("app.kubernetes.io/component".to_owned(), component.to_owned()),
        ("app.kubernetes.io/part-of".to_owned(), "mailqueue".to_owned()),
        ("app.kubernetes.io/managed-by".to_owned(), "mailqueue-operator".to_owned()),
    ])
}

/// The runner image: the MailQueue's own, else the operator's.
pub fn runner_image(spec: &MailQueueSpec, template: &RunnerTemplate) -> String {
    spec.runner.as_ref().and_then(|r| r.image.clone()).unwrap_or_else(|| template.image.clone())
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
        &format!("{MOUNT_PATH}/{}", spec.storage.queue_dir(spec.layout)),
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
        // On the pod's own IP (POD_IP): what kubelet probes and Prometheus scrape.
        "--metrics-port",
        &METRICS_PORT.to_string(),
    ];
    let config = runner_config(valid);
    let settings = spec.runner.clone().unwrap_or_default();
    let field_env = |name: &str, path: &str| EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.to_owned(), ..ObjectFieldSelector::default() }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    let probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(METRICS_PORT_NAME.to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    let base = queue_pod_spec(
        spec,
        vec![Container {
            name: CONTAINER.to_owned(),
            image: Some(runner_image(spec, template)),
            image_pull_policy: settings.image_pull_policy.clone(),
            args: Some(args.iter().map(|a| (*a).to_owned()).chain(config.args).collect()),
            env: Some(vec![
                field_env("POD_NAME", "metadata.name"),
                field_env("POD_NAMESPACE", "metadata.namespace"),
                // With the pod name, the Lease holder identity: unique per pod, not per name.
                field_env("POD_UID", "metadata.uid"),
                field_env("POD_IP", "status.podIP"),
            ]),
            ports: Some(vec![ContainerPort {
                name: Some(METRICS_PORT_NAME.to_owned()),
                container_port: METRICS_PORT,
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            }]),
            // /healthz answers while the runner waits for its Lease; /readyz once its slice
            // is taken and recovered.
            liveness_probe: Some(probe("/healthz", 10, 6)),
            readiness_probe: Some(probe("/readyz", 5, 1)),
            resources: settings.resources.clone(),
            volume_mounts: Some(config.mounts),
            ..Container::default()
        }],
    );
    let mut volumes = base.volumes.clone().unwrap_or_default();
    volumes.extend(config.volumes);
    let pod_spec = PodSpec {
        restart_policy: Some("Always".to_owned()),
        service_account_name: Some(template.service_account.clone()),
        termination_grace_period_seconds: Some(template.grace_period_seconds),
        topology_spread_constraints: settings.topology_spread_constraints.clone(),
        volumes: Some(volumes),
        ..base
    };
    let mut metadata = metadata(id, namespace, owner);
    let mut labels = settings.labels.clone().unwrap_or_default();
    // The operator's labels win: they select the pod.
    labels.extend(metadata.labels.take().unwrap_or_default());
    metadata.labels = Some(labels);
    let mut annotations = settings.annotations.clone().unwrap_or_default();
    annotations.insert(SPEC_HASH_ANNOTATION.to_owned(), spec_hash(&pod_spec, &metadata.labels, &annotations));
    metadata.annotations = Some(annotations);
    Pod { metadata, spec: Some(pod_spec), status: None }
}

/// What every pod on the queue volume has, runner or action Job: `containers` each mount the
/// claim at `MOUNT_PATH` (besides their own mounts) and run as non-root without privileges on
/// a read-only root, as the spec's user and group, placed where `spec.runner` says. The caller
/// sets the rest (restart policy, account, grace period).
pub fn queue_pod_spec(spec: &MailQueueSpec, containers: Vec<Container>) -> PodSpec {
    let runner = spec.runner.clone().unwrap_or_default();
    let containers = containers
        .into_iter()
        .map(|container| Container {
            volume_mounts: Some(
                std::iter::once(VolumeMount {
                    name: "mailman".to_owned(),
                    mount_path: MOUNT_PATH.to_owned(),
                    ..VolumeMount::default()
                })
                .chain(container.volume_mounts.clone().unwrap_or_default())
                .collect(),
            ),
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
                // Validation refuses a spec without a claim before any pod is built.
                claim_name: spec.storage.claim_name.clone().unwrap_or_default(),
                read_only: Some(false),
            }),
            ..Volume::default()
        }]),
        node_selector: runner.node_selector.clone(),
        tolerations: runner.tolerations.clone(),
        affinity: runner.affinity.clone(),
        priority_class_name: runner.priority_class_name.clone(),
        image_pull_secrets: runner.image_pull_secrets.clone(),
        ..PodSpec::default()
    }
}

/// Digest of a pod spec and the labels and annotations asked for: pods are immutable, so a
/// change means a new pod.
fn spec_hash(
    spec: &PodSpec,
    labels: &Option<BTreeMap<String, String>>,
    annotations: &BTreeMap<String, String>,
) -> String {
    // These always serialize; an empty input would only force one needless restart.
    let json = serde_json::to_vec(&(spec, labels, annotations)).unwrap_or_default();
    hex::encode(&Sha1::digest(&json)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{tests::spec, validate};
    use mailqueue_contract::crd::RunnerSettings;

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

    fn slices_of(queues: &[(&str, i32)]) -> Vec<DesiredSlice> {
        let valid = validate("lists", &spec(queues)).expect("valid");
        desired_slices("lists", "mail", &owner(), &valid, &RunnerTemplate::for_tests())
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
        let after = desired_slices("lists", "mail", &owner(), &valid, &RunnerTemplate::for_tests());
        let hash =
            |s: &DesiredSlice| s.pod.metadata.annotations.as_ref().and_then(|a| a.get(SPEC_HASH_ANNOTATION).cloned());
        assert_ne!(hash(&before[0]), hash(&after[0]));
        let drain =
            |s: &DesiredSlice| s.lease.metadata.annotations.as_ref().and_then(|a| a.get(DRAIN_ANNOTATION).cloned());
        assert_eq!(drain(&before[0]).as_deref(), Some("false"));
        assert_eq!(drain(&after[0]).as_deref(), Some("true"));
    }

    #[test]
    fn runner_pods_are_placed_probed_and_labelled_as_the_spec_says() {
        use k8s_openapi::api::core::v1::{LocalObjectReference, ResourceRequirements, Toleration};
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        let mut s = spec(&[("out", 1)]);
        s.runner = Some(RunnerSettings {
            image: Some("registry.example/runner@sha256:ab".into()),
            image_pull_secrets: Some(vec![LocalObjectReference { name: "pull".into() }]),
            resources: Some(ResourceRequirements {
                requests: Some(BTreeMap::from([("cpu".to_owned(), Quantity("100m".into()))])),
                ..ResourceRequirements::default()
            }),
            node_selector: Some(BTreeMap::from([("mail".to_owned(), "yes".to_owned())])),
            tolerations: Some(vec![Toleration {
                key: Some("mail".into()),
                operator: Some("Exists".into()),
                ..Toleration::default()
            }]),
            priority_class_name: Some("mail-critical".into()),
            labels: Some(BTreeMap::from([
                ("team".to_owned(), "lists".to_owned()),
                (mailqueue_contract::slice::QUEUE_LABEL.to_owned(), "spoof".to_owned()),
            ])),
            annotations: Some(BTreeMap::from([("note".to_owned(), "x".to_owned())])),
            ..RunnerSettings::default()
        });
        let valid = validate("lists", &s).expect("valid");
        let pod = &desired_slices("lists", "mail", &owner(), &valid, &RunnerTemplate::for_tests())[0].pod;
        let spec = pod.spec.as_ref().expect("spec");
        let c = &spec.containers[0];
        assert_eq!(c.image.as_deref(), Some("registry.example/runner@sha256:ab"));
        assert_eq!(spec.image_pull_secrets.as_ref().map(|p| p[0].name.as_str()), Some("pull"));
        assert_eq!(spec.node_selector.as_ref().and_then(|n| n.get("mail")).map(String::as_str), Some("yes"));
        assert_eq!(spec.priority_class_name.as_deref(), Some("mail-critical"));
        assert!(spec.tolerations.is_some() && c.resources.is_some());
        let labels = pod.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels.get("team").map(String::as_str), Some("lists"));
        assert_eq!(
            labels.get(mailqueue_contract::slice::QUEUE_LABEL).map(String::as_str),
            Some("out"),
            "the operator's labels win"
        );
        assert_eq!(labels.get("app.kubernetes.io/instance").map(String::as_str), Some("lists"));
        assert_eq!(labels.get("app.kubernetes.io/managed-by").map(String::as_str), Some("mailqueue-operator"));
        let annotations = pod.metadata.annotations.as_ref().expect("annotations");
        assert!(annotations.contains_key("note") && annotations.contains_key(SPEC_HASH_ANNOTATION));
        // Probes and metrics on the named port, on the pod's own IP.
        assert_eq!(
            c.ports.as_ref().map(|p| (p[0].name.as_deref(), p[0].container_port)),
            Some((Some("metrics"), 9187))
        );
        let path = |p: &Option<Probe>| p.as_ref().and_then(|p| p.http_get.as_ref()).and_then(|h| h.path.clone());
        assert_eq!(
            (path(&c.liveness_probe).as_deref(), path(&c.readiness_probe).as_deref()),
            (Some("/healthz"), Some("/readyz"))
        );
        let args = c.args.clone().unwrap_or_default().join(" ");
        assert!(args.contains("--metrics-port 9187"), "{args}");
        let env: Vec<&str> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
        assert_eq!(env, ["POD_NAME", "POD_NAMESPACE", "POD_UID", "POD_IP"]);
        // The Lease carries the app labels too.
        let lease = &desired_slices("lists", "mail", &owner(), &valid, &RunnerTemplate::for_tests())[0].lease;
        assert!(lease.metadata.labels.as_ref().is_some_and(|l| l.contains_key("app.kubernetes.io/name")));
    }

    #[test]
    fn credentials_are_mounted_files_never_args_or_env() {
        let mut s = spec(&[("out", 1)]);
        s.smtp.tls = Some(mailqueue_contract::crd::SmtpTls { mode: mailqueue_contract::crd::TlsMode::Tls, ca: None });
        s.smtp.auth = Some(mailqueue_contract::crd::SmtpAuth {
            secret_name: "relay-auth".into(),
            username_key: "u".into(),
            password_key: "p".into(),
        });
        let valid = validate("lists", &s).expect("valid");
        let pod = &desired_slices("lists", "mail", &owner(), &valid, &RunnerTemplate::for_tests())[0].pod;
        let spec = pod.spec.as_ref().expect("spec");
        let c = &spec.containers[0];
        let args = c.args.clone().unwrap_or_default().join(" ");
        assert!(args.contains("--smtp-security tls --smtp-user-file /etc/mailqueue/smtp-auth/username"), "{args}");
        assert!(c.env.iter().flatten().all(|e| e.value_from.as_ref().is_none_or(|v| v.secret_key_ref.is_none())));
        let mounts: Vec<&str> = c.volume_mounts.iter().flatten().map(|m| m.mount_path.as_str()).collect();
        assert_eq!(mounts, ["/var/lib/mailman", "/etc/mailqueue/smtp-auth"]);
        let volumes: Vec<&str> = spec.volumes.iter().flatten().map(|v| v.name.as_str()).collect();
        assert_eq!(volumes, ["mailman", "smtp-auth"]);
    }

    #[test]
    fn the_queue_dir_defaults_to_where_the_layout_keeps_it() {
        let mut s = spec(&[("out", 1)]);
        s.storage.queue_dir = None;
        let args = |s: &MailQueueSpec| {
            let valid = validate("lists", s).expect("valid");
            let pod = desired_slices("lists", "mail", &owner(), &valid, &RunnerTemplate::for_tests()).remove(0).pod;
            pod.spec.map(|p| p.containers[0].args.clone().unwrap_or_default().join(" ")).unwrap_or_default()
        };
        assert!(args(&s).starts_with("run --qfiles /var/lib/mailman/var/queue "), "{}", args(&s));
        s.layout = mailqueue_contract::crd::Layout::Mailman2;
        assert!(args(&s).starts_with("run --qfiles /var/lib/mailman/qfiles "), "{}", args(&s));
    }

    #[test]
    fn the_runner_counts_stale_bak_by_the_bak_policy() {
        let args =
            |s: &DesiredSlice| s.pod.spec.as_ref().map(|p| p.containers[0].args.clone().unwrap_or_default().join(" "));
        let default = slices_of(&[("out", 1)]);
        assert!(args(&default[0]).is_some_and(|a| a.contains("--stale-bak-after 1800")), "{:?}", args(&default[0]));
        let mut policy = spec(&[("out", 1)]);
        policy.bak_policy = Some(mailqueue_contract::crd::BakPolicy { quarantine_after: "2m".into() });
        let valid = validate("lists", &policy).expect("valid");
        let set = desired_slices("lists", "mail", &owner(), &valid, &RunnerTemplate::for_tests());
        assert!(args(&set[0]).is_some_and(|a| a.contains("--stale-bak-after 120")), "{:?}", args(&set[0]));
    }
}
