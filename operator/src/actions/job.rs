//! The Job that runs an action: `mailqueue-runner <command> --json` on the queue volume, with
//! the runner pods' security settings.

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ObjectMeta;
use sha1::{Digest, Sha1};

use crate::desired::{app_labels, queue_pod_spec, runner_image, RunnerTemplate};
use mailqueue_contract::crd::MailQueue;

use super::plan::{Counts, Request};

/// Where each runner command writes its JSON result: the container's termination message.
const RESULT_FILE: &str = "/dev/termination-log";

/// Label on action Jobs and their pods: the MailQueue. Not the runner pods' label, so the
/// reconcile never takes an action pod for a slice runner.
const ACTION_LABEL: &str = "mailqueue.dev/action-of";
/// Attempts before a Job counts as failed; each attempt carries on where the last stopped.
const BACKOFF_LIMIT: i32 = 6;
/// Longest MailQueue name kept in a Job name: a Job name must fit in a 63-character label.
const NAME_PREFIX_MAX: usize = 40;

/// How a Job stands.
#[derive(Clone, Debug, PartialEq)]
pub enum JobOutcome {
    Running,
    Succeeded,
    /// With the Job's reason and message.
    Failed(String),
}

/// The Job name of a request: the same for the same request, so a restarted operator finds
/// the Job it created and never starts a second one.
pub fn name(mailqueue: &str, request: &Request) -> String {
    let digest = hex::encode(&Sha1::digest(request.request_id.as_bytes())[..4]);
    let prefix: String = mailqueue.chars().take(NAME_PREFIX_MAX).collect();
    format!("{}-{}-{digest}", prefix.trim_end_matches('-'), request.kind.as_str())
}

/// Reads a Job's conditions.
pub fn outcome(job: &Job) -> JobOutcome {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    let holds = |type_: &str| conditions.and_then(|cs| cs.iter().find(|c| c.type_ == type_ && c.status == "True"));
    if holds("Complete").is_some() {
        JobOutcome::Succeeded
    } else if let Some(failed) = holds("Failed") {
        let reason = failed.reason.clone().unwrap_or_default();
        let message = failed.message.clone().unwrap_or_default();
        JobOutcome::Failed(format!("{reason} {message}").trim().to_owned())
    } else {
        JobOutcome::Running
    }
}

/// Sums what the runner commands of a Job's pods reported. Every attempt counts what it
/// moved itself (a retried command carries on, it does not redo), so `moved` is summed over
/// attempts; what is left is the latest report's. An attempt killed outright reports nothing.
pub fn counts(pods: &[Pod]) -> Counts {
    let mut pods: Vec<&Pod> = pods.iter().collect();
    pods.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
    let mut counts = Counts::default();
    for pod in pods {
        let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref());
        for status in statuses.into_iter().flatten() {
            let ended = [status.state.as_ref(), status.last_state.as_ref()];
            let Some(tally) = ended
                .into_iter()
                .flatten()
                .filter_map(|s| s.terminated.as_ref()?.message.as_deref())
                .find_map(result_tally)
            else {
                continue;
            };
            counts.moved += tally.moved;
            counts.remaining = tally.remaining;
            counts.skipped_in_flight = tally.skipped_in_flight;
        }
    }
    counts
}

/// The counts of one command's JSON result: `result` is the tally itself, or (compact) holds
/// it under `tally`.
fn result_tally(message: &str) -> Option<Counts> {
    let value: serde_json::Value = serde_json::from_str(message).ok()?;
    let result = value.get("result")?;
    let tally = result.get("tally").unwrap_or(result);
    let count = |field: &str| tally.get(field).and_then(serde_json::Value::as_i64).unwrap_or(0);
    Some(Counts { moved: count("moved"), remaining: count("remaining"), skipped_in_flight: count("skipped_in_flight") })
}

/// The Job for `request`: one container per runner command, run to completion.
pub fn build(
    name: &str,
    namespace: &str,
    owner: &OwnerReference,
    mq: &MailQueue,
    request: &Request,
    template: &RunnerTemplate,
) -> Job {
    let spec = &mq.spec;
    let instance = mq.metadata.name.clone().unwrap_or_default();
    let mut labels = app_labels(&instance, "action");
    labels.insert(ACTION_LABEL.to_owned(), instance);
    let containers = request
        .commands
        .iter()
        .enumerate()
        .map(|(i, args)| Container {
            name: format!("{}-{i}", request.kind.as_str()),
            image: Some(runner_image(spec, template)),
            args: Some(args.iter().cloned().chain(["--result-file".to_owned(), RESULT_FILE.to_owned()]).collect()),
            termination_message_path: Some(RESULT_FILE.to_owned()),
            ..Container::default()
        })
        .collect();
    let pod = PodSpec {
        restart_policy: Some("Never".to_owned()),
        // The queue commands need no API access.
        automount_service_account_token: Some(false),
        // SIGTERM stops a command between two moves; the next attempt carries on.
        termination_grace_period_seconds: Some(template.grace_period_seconds),
        ..queue_pod_spec(spec, containers)
    };
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(BACKOFF_LIMIT),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..ObjectMeta::default() }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::plan::ActionKind;

    #[test]
    fn counts_come_from_the_runner_results_of_every_attempt() {
        let pod = |created: i64, message: &str| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"creationTimestamp": jiff::Timestamp::from_second(created).expect("time").to_string()},
                "status": {"containerStatuses": [{
                    "name": "requeue-0", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 2, "message": message}}
                }]}
            }))
            .expect("pod")
        };
        let first = r#"{"action":"requeue","result":{"moved":30,"remaining":10,"skipped_in_flight":0}}"#;
        let second =
            r#"{"action":"compact","result":{"tally":{"moved":10,"remaining":0,"skipped_in_flight":1},"done":true}}"#;
        let killed = pod(3, "");
        assert_eq!(
            counts(&[pod(2, second), pod(1, first), killed]),
            Counts { moved: 40, remaining: 0, skipped_in_flight: 1 }
        );
    }

    #[test]
    fn the_job_name_is_stable_per_request_and_fits_a_label() {
        let r = |id: &str| Request { kind: ActionKind::Compact, request_id: id.to_owned(), commands: vec![] };
        assert_eq!(name("lists", &r("a")), name("lists", &r("a")));
        assert_ne!(name("lists", &r("a")), name("lists", &r("b")));
        assert!(name(&"x".repeat(63), &r("a")).len() <= 63);
    }

    #[test]
    fn every_action_container_mounts_the_claim_and_runs_locked_down() {
        let mut spec = crate::validate::tests::spec(&[("out", 1)]);
        spec.runner = Some(mailqueue_contract::crd::RunnerSettings {
            run_as_user: Some(1000),
            run_as_group: Some(1001),
            ..Default::default()
        });
        let mq = MailQueue::new("lists", spec);
        let commands = vec![vec!["compact".to_owned()], vec!["compact".to_owned()]];
        let request = Request { kind: ActionKind::Compact, request_id: "a".to_owned(), commands };
        let template = RunnerTemplate {
            image: "mailqueue-runner:test".into(),
            service_account: "mailqueue-runner".into(),
            grace_period_seconds: 60,
            lease_duration_seconds: 15,
        };
        let job = build("lists-compact", "mail", &OwnerReference::default(), &mq, &request, &template);
        let pod = job.spec.and_then(|s| s.template.spec).expect("pod spec");
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let claim = pod.volumes.as_ref().and_then(|v| v.first()).and_then(|v| v.persistent_volume_claim.as_ref());
        assert_eq!(claim.map(|c| c.claim_name.as_str()), Some("mailman-data"));
        let user = pod.security_context.as_ref().map(|s| (s.run_as_user, s.run_as_group, s.fs_group));
        assert_eq!(user, Some((Some(1000), Some(1001), Some(1001))));
        assert_eq!(pod.containers.len(), 2);
        for container in &pod.containers {
            let mounts: Vec<_> = container.volume_mounts.iter().flatten().map(|m| m.mount_path.as_str()).collect();
            assert_eq!(mounts, ["/var/lib/mailman"]);
            let sc = container.security_context.as_ref().expect("container security context");
            assert_eq!((sc.read_only_root_filesystem, sc.allow_privilege_escalation), (Some(true), Some(false)));
        }
    }
}
