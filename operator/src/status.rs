//! Step 5 of the reconcile: the `MailQueue` status, computed from the runner pods and the
//! heartbeats in the slice Leases. Pure; `reconcile.rs` writes it.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::conditions::{merge, Verdict};
use crate::desired::DesiredSlice;
use crate::observe::Observed;
use crate::references::Missing;
use crate::validate::{InvalidSpec, ValidSpec};
use mailqueue_contract::crd::{MailQueueSpec, MailQueueStatus, QueueStatus, SliceStatus};
use mailqueue_contract::lease::live_holder;
use mailqueue_contract::slice::{holder_pod, Heartbeat};

pub const READY: &str = "Ready";
pub const DRAINING: &str = "Draining";
pub const DRAINED: &str = "Drained";
pub const DEGRADED: &str = "Degraded";
pub const LIST_SETTINGS: &str = "ListSettings";
/// The `Degraded` reason while a re-slice waits for the old layout's Leases.
pub const OLD_LAYOUT_STILL_HELD: &str = "OldLayoutStillHeld";
/// The `Degraded` reason while runners stop claiming because the queue volume is full.
pub const QUEUE_VOLUME_FULL: &str = "QueueVolumeFull";
/// The `Degraded` reason while queued entries cannot be claimed by the runners.
pub const UNCLAIMABLE_ENTRIES: &str = "UnclaimableEntries";

/// How many names a condition message lists before it says "and N more".
const NAMES_IN_MESSAGE: usize = 5;
/// How long a runner's failed exit keeps the MailQueue `Degraded`.
const CRASH_MEMORY: jiff::SignedDuration = jiff::SignedDuration::from_secs(300);

/// Status of a `MailQueue` whose spec is valid. `blocked` names the queues whose new layout
/// waits for the old layout's Leases to be released.
pub fn status(
    valid: &ValidSpec,
    desired: &[DesiredSlice],
    observed: &Observed,
    blocked: &[String],
    previous: &[Condition],
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> MailQueueStatus {
    let views: Vec<SliceView> = desired.iter().map(|d| slice_view(d, observed, now)).collect();
    let queues: Vec<QueueStatus> = valid
        .spec
        .queues
        .iter()
        .map(|q| {
            let of_queue = desired.iter().zip(&views).filter(|(d, _)| d.id.queue == q.name).map(|(_, v)| v);
            queue_status(&q.name, q.slices, of_queue)
        })
        .collect();
    let pending = queues.iter().map(|q| q.pending).sum();
    let stale_bak = queues.iter().map(|q| q.stale_bak).sum();
    let unclaimable: i64 = queues.iter().map(|q| q.unclaimable).sum();

    let not_ready: Vec<&str> = views.iter().filter(|v| !v.status.ready).map(|v| v.status.name.as_str()).collect();
    let ready = if not_ready.is_empty() {
        Verdict::new(
            READY,
            true,
            "AllSlicesReady",
            format!("{} of {} slices have a running runner holding their Lease", views.len(), views.len()),
        )
    } else {
        Verdict::new(
            READY,
            false,
            "SlicesNotReady",
            format!(
                "{} of {} slices ready; waiting for {}",
                views.len() - not_ready.len(),
                views.len(),
                list(&not_ready)
            ),
        )
    };

    let busy: Vec<&str> = views.iter().filter(|v| !v.quiet).map(|v| v.status.name.as_str()).collect();
    let in_flight: i64 = views.iter().map(|v| v.status.in_flight).sum();
    let drained = valid.spec.drain && busy.is_empty();
    let (draining, drained_verdict) = if !valid.spec.drain {
        (
            Verdict::new(DRAINING, false, "NotRequested", "spec.drain is false"),
            Verdict::new(DRAINED, false, "NotRequested", "spec.drain is false"),
        )
    } else if drained {
        (
            Verdict::new(DRAINING, false, "Drained", "every slice stopped claiming and nothing is in flight"),
            Verdict::new(DRAINED, true, "NothingInFlight", "every slice stopped claiming and nothing is in flight"),
        )
    } else {
        let message =
            format!("{in_flight} entries in flight; waiting for {} to finish and acknowledge the drain", list(&busy));
        (
            Verdict::new(DRAINING, true, "DrainRequested", message.clone()),
            Verdict::new(DRAINED, false, "InFlight", message),
        )
    };

    let crashes: Vec<&str> = views.iter().filter_map(|v| v.crash.as_deref()).collect();
    // What live runners report they cannot do: the relay refuses them (a wrong password, no
    // STARTTLS) or list settings cannot be had. Entries wait meanwhile; nothing is lost.
    let problem = |pick: fn(&Heartbeat) -> Option<&String>| -> Vec<String> {
        views
            .iter()
            .filter(|v| v.status.holder.is_some())
            .filter_map(|v| pick(&v.heartbeat).map(|e| format!("{}: {e}", v.status.name)))
            .collect()
    };
    let relay = problem(|h| h.relay_error.as_ref());
    let lists = problem(|h| h.list_settings_error.as_ref());
    // `disk_full` in the slice status is already that of live holders only.
    let full: Vec<&str> = views.iter().filter(|v| v.status.disk_full).map(|v| v.status.name.as_str()).collect();
    let degraded = if !blocked.is_empty() {
        Verdict::new(
            DEGRADED,
            true,
            OLD_LAYOUT_STILL_HELD,
            format!("new slices of {} wait until every runner of the old layout has released its Lease", list(blocked)),
        )
    } else if !crashes.is_empty() {
        Verdict::new(
            DEGRADED,
            true,
            "RunnersRestarting",
            format!("{}; see `kubectl logs --previous` of those pods", list(&crashes)),
        )
    } else if !full.is_empty() {
        // Before the relay and list problems: nothing at all is claimed meanwhile.
        Verdict::new(
            DEGRADED,
            true,
            QUEUE_VOLUME_FULL,
            format!(
                "{}: the queue volume is full; no entry is claimed until the runner can record what it delivered \
                 (retry or shunt entries), and claiming resumes by itself once space is freed",
                list(&full)
            ),
        )
    } else if !relay.is_empty() {
        Verdict::new(
            DEGRADED,
            true,
            "RelayFailing",
            format!("{}; entries stay queued until the relay accepts the runners", list(&relay)),
        )
    } else if !lists.is_empty() {
        Verdict::new(
            DEGRADED,
            true,
            "ListSettingsUnavailable",
            format!("{}; entries of those lists wait, none is sent undecorated", list(&lists)),
        )
    } else if stale_bak > 0 {
        Verdict::new(
            DEGRADED,
            true,
            "StaleBak",
            format!(
                "{stale_bak} .bak entries have no live runner; set spec.quarantine or spec.bakPolicy to set them aside"
            ),
        )
    } else if unclaimable > 0 {
        Verdict::new(
            DEGRADED,
            true,
            UNCLAIMABLE_ENTRIES,
            format!(
                "{unclaimable} queued entries cannot be claimed by the runners (no permission for the runner's user, a \
                 directory at the entry's .bak name); they stay queued, and each runner's log names each one once"
            ),
        )
    } else {
        Verdict::new(DEGRADED, false, "AsExpected", "nothing needs attention")
    };

    let phase = if valid.spec.drain {
        if drained {
            "Drained"
        } else {
            "Draining"
        }
    } else if degraded.status {
        "Degraded"
    } else if ready.status {
        "Running"
    } else {
        "Pending"
    };
    let conditions = merge(previous, vec![ready, draining, drained_verdict, degraded], generation, whole_seconds(now));
    MailQueueStatus {
        observed_generation: generation,
        conditions,
        phase: Some(phase.to_owned()),
        queue_names: Some(valid.spec.queues.iter().map(|q| q.name.as_str()).collect::<Vec<_>>().join(",")),
        ready_slices: Some(format!("{}/{}", views.len() - not_ready.len(), views.len())),
        pending,
        stale_bak,
        queues,
        slices: views.into_iter().map(|v| v.status).collect(),
        actions: None,
    }
}

/// `status` with `Degraded` naming a write the operator could not make (a pod refused for a
/// missing ServiceAccount, a quota, a permission): otherwise the admin only sees pods that
/// never appear. The operator retries, and the next successful pass clears it.
pub fn apply_failed(
    mut status: MailQueueStatus,
    failure: &impl std::fmt::Display,
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> MailQueueStatus {
    let verdict =
        Verdict::new(DEGRADED, true, "ApplyFailed", format!("{failure}; the operator retries every few seconds"));
    let degraded = merge(&status.conditions, vec![verdict], generation, whole_seconds(now));
    status.conditions.retain(|c| c.type_ != DEGRADED);
    status.conditions.extend(degraded);
    // A drain keeps its phase, as in `status`: it tells what the runners are doing.
    if !matches!(status.phase.as_deref(), Some("Draining" | "Drained")) {
        status.phase = Some("Degraded".to_owned());
    }
    status
}

/// `status` with what the spec's references and list settings tell: `ListSettings` says
/// whether deliveries are decorated from list settings (never silently off), and a Secret or
/// ConfigMap that is missing or lacks a key makes the MailQueue `Degraded` with reason
/// `ReferenceMissing`, naming the field, the object and the key.
pub fn with_spec_checks(
    mut status: MailQueueStatus,
    previous: &[Condition],
    spec: &MailQueueSpec,
    missing: &[Missing],
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> MailQueueStatus {
    let mut verdicts = vec![list_settings(spec)];
    if !missing.is_empty() {
        let what: Vec<String> = missing.iter().map(ToString::to_string).collect();
        let message = format!("{}; runner pods are not created or replaced until it is fixed", what.join("; "));
        verdicts.push(Verdict::new(DEGRADED, true, "ReferenceMissing", message));
    }
    let types: Vec<&str> = verdicts.iter().map(|v| v.type_).collect();
    // A verdict here replaces the one computed before of its type; its transition time comes
    // from the stored status, as every condition's does.
    let merged = merge(previous, verdicts, generation, whole_seconds(now));
    status.conditions.retain(|c| !types.contains(&c.type_.as_str()));
    status.conditions.extend(merged);
    if !missing.is_empty() && !matches!(status.phase.as_deref(), Some("Draining" | "Drained")) {
        status.phase = Some("Degraded".to_owned());
    }
    status
}

/// The `ListSettings` condition: where list settings come from, or that they are off.
fn list_settings(spec: &MailQueueSpec) -> Verdict {
    let mailman = spec.mailman.as_ref();
    let mut sources = Vec::new();
    if let Some(m3) = mailman.and_then(|m| m.mailman3.as_ref()) {
        sources.push(format!("Mailman 3 entries from the REST API at {}", m3.rest_url));
    }
    if let Some(m2) = mailman.and_then(|m| m.mailman2.as_ref()) {
        sources.push(format!(
            "Mailman 2.1 entries from ConfigMap {} and the lists/ directory on the volume",
            m2.site_config.config_map
        ));
    }
    if sources.is_empty() {
        Verdict::new(
            LIST_SETTINGS,
            false,
            "NotConfigured",
            "spec.mailman is not set: list decoration is off; entries are delivered as queued, without list headers and \
             footers, personalization or VERP from list settings",
        )
    } else {
        Verdict::new(LIST_SETTINGS, true, "Configured", format!("list settings for {}", sources.join("; ")))
    }
}

/// Status of a `MailQueue` whose spec cannot be acted on: counts stay as last seen, the
/// conditions say why.
pub fn invalid(
    error: &InvalidSpec,
    previous: Option<&MailQueueStatus>,
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> MailQueueStatus {
    let previous = previous.cloned().unwrap_or_default();
    let message = error.to_string();
    let verdicts = vec![
        Verdict::new(READY, false, "InvalidSpec", message.clone()),
        Verdict::new(DEGRADED, true, "InvalidSpec", message),
    ];
    let mut conditions = merge(&previous.conditions, verdicts, generation, whole_seconds(now));
    conditions.extend(previous.conditions.iter().filter(|c| c.type_ == DRAINING || c.type_ == DRAINED).cloned());
    MailQueueStatus { observed_generation: generation, conditions, phase: Some("Degraded".to_owned()), ..previous }
}

/// One slice as the status sees it.
struct SliceView {
    status: SliceStatus,
    heartbeat: Heartbeat,
    /// Nothing in flight and no claims to come.
    quiet: bool,
    /// The runner exited with an error recently: what to tell the admin.
    crash: Option<String>,
}

fn slice_view(desired: &DesiredSlice, observed: &Observed, now: jiff::Timestamp) -> SliceView {
    let name = desired.id.object_name();
    let pod = observed.pod(&name);
    let lease = observed.lease(&name);
    let running = pod.is_some_and(|p| {
        p.metadata.deletion_timestamp.is_none() && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    });
    let holder = lease.and_then(|l| live_holder(l, now));
    let heartbeat =
        lease.and_then(|l| l.metadata.annotations.as_ref()).and_then(Heartbeat::from_annotations).unwrap_or_default();
    // A slice with no live holder cannot be delivering; a new holder reads the drain request
    // from the Lease before its first claim.
    let quiet = holder.is_none() || (heartbeat.draining && heartbeat.in_flight == 0);
    let status = SliceStatus {
        name: desired.id.short_name(),
        pod: name.clone(),
        ready: running && holder.is_some_and(|h| holds(h, pod)),
        holder: holder.map(str::to_owned),
        heartbeat: lease.and_then(|l| l.spec.as_ref()).and_then(|s| s.renew_time.as_ref()).map(|t| whole_seconds(t.0)),
        draining: heartbeat.draining,
        pending: heartbeat.pending,
        in_flight: if holder.is_some() { heartbeat.in_flight } else { 0 },
        stale_bak: heartbeat.stale_bak,
        delivered: heartbeat.delivered,
        // What the runner knows from its own attempts (not from counting the volume): it
        // goes with the runner.
        unclaimable: if holder.is_some() { heartbeat.unclaimable } else { 0 },
        disk_full: holder.is_some() && heartbeat.disk_full,
    };
    SliceView { status, heartbeat, quiet, crash: pod.and_then(|p| recent_crash(p, now)) }
}

/// Whether `holder` is a runner of this very pod (its name and UID), not of a deleted pod of
/// the same name whose container may still run.
fn holds(holder: &str, pod: Option<&Pod>) -> bool {
    let Some(pod) = pod else { return false };
    let (name, uid) = (pod.metadata.name.as_deref(), pod.metadata.uid.as_deref());
    holder_pod(holder).is_some_and(|(n, u)| Some(n) == name && Some(u) == uid)
}

/// "<pod> exited with code N (R restarts): <its last words>" when the runner's last run failed
/// within [`CRASH_MEMORY`]. The last words are the last line of its log, which the kubelet keeps
/// as the termination message (`FallbackToLogsOnError`): the runner's fatal error.
fn recent_crash(pod: &Pod, now: jiff::Timestamp) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|c| {
        let last = c.last_state.as_ref()?.terminated.as_ref()?;
        let finished = last.finished_at.as_ref()?.0;
        (last.exit_code != 0 && now.duration_since(finished) < CRASH_MEMORY).then(|| {
            let why = last
                .message
                .as_deref()
                .and_then(|m| m.lines().rev().map(str::trim).find(|l| !l.is_empty()))
                .map(|l| format!(": {l}"))
                .unwrap_or_default();
            format!(
                "{} exited with code {} ({} restarts){why}",
                pod.metadata.name.as_deref().unwrap_or_default(),
                last.exit_code,
                c.restart_count
            )
        })
    })
}

/// A `Time` as the API server stores it (whole seconds), so that a status read back compares
/// equal to the one computed and unchanged statuses are not written again.
fn whole_seconds(ts: jiff::Timestamp) -> Time {
    Time(jiff::Timestamp::from_second(ts.as_second()).unwrap_or(ts))
}

fn queue_status<'a>(name: &str, slices: i32, of_queue: impl Iterator<Item = &'a SliceView>) -> QueueStatus {
    of_queue.fold(QueueStatus { name: name.to_owned(), slices, ..QueueStatus::default() }, |mut q, v| {
        let (s, hb) = (&v.status, &v.heartbeat);
        q.live_slices += i32::from(s.ready);
        q.pending += s.pending;
        q.in_flight += s.in_flight;
        q.stale_bak += s.stale_bak;
        q.delivered += s.delivered;
        q.unclaimable += s.unclaimable;
        q.disk_full_slices += i32::from(s.disk_full);
        // Queue-wide directories: every slice reports the same count.
        q.quarantined = q.quarantined.max(hb.quarantined);
        q.bad = q.bad.max(hb.bad);
        q.shunt = q.shunt.max(hb.shunt);
        q.oldest_pending_seconds = q.oldest_pending_seconds.max(hb.oldest_pending_seconds);
        q
    })
}

fn list<S: AsRef<str>>(names: &[S]) -> String {
    let shown: Vec<&str> = names.iter().take(NAMES_IN_MESSAGE).map(AsRef::as_ref).collect();
    match names.len().saturating_sub(NAMES_IN_MESSAGE) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{desired_slices, RunnerTemplate};
    use crate::validate::{tests::spec, validate};
    use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
    use mailqueue_contract::slice::HEARTBEAT_ANNOTATION;
    use std::collections::BTreeMap;

    fn slices(drain: bool) -> (ValidSpec, Vec<DesiredSlice>) {
        let mut s = spec(&[("out", 2)]);
        s.drain = drain;
        let valid = validate("lists", &s).expect("valid");
        let owner = OwnerReference { name: "lists".into(), uid: "1".into(), ..OwnerReference::default() };
        let template = RunnerTemplate::for_tests();
        let desired = desired_slices("lists", "mail", &owner, &valid, &template);
        (valid, desired)
    }

    fn running(d: &DesiredSlice) -> Pod {
        let mut pod = d.pod.clone();
        pod.metadata.uid = Some(format!("uid-{}", d.id.object_name()));
        pod.status = Some(PodStatus { phase: Some("Running".into()), ..PodStatus::default() });
        pod
    }

    fn held(d: &DesiredSlice, hb: &Heartbeat, now: jiff::Timestamp) -> Lease {
        let mut lease = d.lease.clone();
        lease
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(HEARTBEAT_ANNOTATION.into(), hb.to_annotation());
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(mailqueue_contract::slice::holder_identity(
                &d.id.object_name(),
                &format!("uid-{}", d.id.object_name()),
                "n1",
            )),
            renew_time: Some(MicroTime(now)),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        });
        lease
    }

    fn condition<'a>(s: &'a MailQueueStatus, type_: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == type_).expect("condition present")
    }

    #[test]
    fn counts_come_from_heartbeats_of_live_holders() {
        let now = jiff::Timestamp::now();
        let (valid, desired) = slices(false);
        let observed = Observed {
            pods: desired.iter().map(running).collect(),
            leases: vec![
                held(
                    &desired[0],
                    &Heartbeat { pending: 10, in_flight: 2, stale_bak: 1, bad: 3, ..Heartbeat::default() },
                    now,
                ),
                held(&desired[1], &Heartbeat { pending: 5, bad: 3, delivered: 7, ..Heartbeat::default() }, now),
            ],
        };
        let s = status(&valid, &desired, &observed, &[], &[], Some(3), now);
        assert_eq!((s.pending, s.stale_bak), (15, 1));
        assert_eq!((s.queue_names.as_deref(), s.ready_slices.as_deref()), (Some("out"), Some("2/2")));
        let q = &s.queues[0];
        assert_eq!((q.live_slices, q.in_flight, q.bad, q.delivered), (2, 2, 3, 7));
        assert_eq!(condition(&s, READY).status, "True");
        assert_eq!(condition(&s, DEGRADED).reason, "StaleBak");
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.slices[1].name, "out-1of2");
    }

    #[test]
    fn queue_wide_counts_are_taken_once_and_slice_counts_added_up() {
        let now = jiff::Timestamp::now();
        let (valid, desired) = slices(false);
        let wide = Heartbeat { quarantined: 4, bad: 2, shunt: 1, ..Heartbeat::default() };
        let observed = Observed {
            pods: desired.iter().map(running).collect(),
            leases: vec![
                held(
                    &desired[0],
                    &Heartbeat { pending: 3, stale_bak: 2, oldest_pending_seconds: 600, ..wide.clone() },
                    now,
                ),
                held(&desired[1], &Heartbeat { pending: 4, stale_bak: 1, oldest_pending_seconds: 90, ..wide }, now),
            ],
        };
        let s = status(&valid, &desired, &observed, &[], &[], Some(1), now);
        let q = &s.queues[0];
        assert_eq!((q.pending, q.stale_bak, q.oldest_pending_seconds), (7, 3, 600));
        assert_eq!((q.quarantined, q.bad, q.shunt), (4, 2, 1), "every slice reports the same queue-wide count");
        assert_eq!((s.pending, s.stale_bak), (7, 3));
        let per_slice: Vec<(i64, i64)> = s.slices.iter().map(|v| (v.pending, v.stale_bak)).collect();
        assert_eq!(per_slice, [(3, 2), (4, 1)]);
        assert_eq!(condition(&s, DEGRADED).reason, "StaleBak");
    }

    #[test]
    fn a_refused_pod_degrades_the_mailqueue_with_the_reason() {
        let now = jiff::Timestamp::now();
        let (valid, desired) = slices(false);
        let computed = status(&valid, &desired, &Observed::default(), &[], &[], Some(2), now);
        let failure = "cannot create pod lists-out-0of2: serviceaccount \"mailqueue-runner\" not found";
        let s = apply_failed(computed, &failure, Some(2), now);
        let degraded = condition(&s, DEGRADED);
        assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "ApplyFailed"));
        assert!(degraded.message.starts_with(failure), "{}", degraded.message);
        assert_eq!(degraded.observed_generation, Some(2));
        assert_eq!(s.conditions.iter().filter(|c| c.type_ == DEGRADED).count(), 1);
        assert_eq!(condition(&s, READY).status, "False");
        assert_eq!(s.phase.as_deref(), Some("Degraded"));
    }

    #[test]
    fn a_holder_of_a_deleted_pod_of_the_same_name_is_not_ready() {
        let now = jiff::Timestamp::now();
        let (valid, desired) = slices(false);
        // The replacement pod has a new UID; the Lease is still held by the old pod's runner.
        let mut replacement = running(&desired[0]);
        replacement.metadata.uid = Some("uid-replacement".into());
        let observed = Observed {
            pods: vec![replacement, running(&desired[1])],
            leases: desired.iter().map(|d| held(d, &Heartbeat::default(), now)).collect(),
        };
        let s = status(&valid, &desired, &observed, &[], &[], Some(1), now);
        assert_eq!((s.slices[0].ready, s.slices[1].ready), (false, true));
        assert!(s.slices[0].holder.as_deref().is_some_and(|h| h.starts_with("lists-out-0of2_uid-lists-out-0of2_")));
    }

    #[test]
    fn a_missing_pod_or_expired_lease_is_not_ready() {
        let now = jiff::Timestamp::now();
        let (valid, desired) = slices(false);
        let mut stale = held(&desired[1], &Heartbeat::default(), now);
        if let Some(spec) = stale.spec.as_mut() {
            spec.renew_time = Some(MicroTime(now - jiff::SignedDuration::from_secs(60)));
        }
        let observed = Observed { pods: vec![running(&desired[1])], leases: vec![stale] };
        let s = status(&valid, &desired, &observed, &[], &[], Some(1), now);
        let ready = condition(&s, READY);
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "SlicesNotReady"));
        assert!(ready.message.contains("out-0of2, out-1of2"), "{}", ready.message);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
    }

    #[test]
    fn drained_only_when_every_live_runner_acknowledged_with_nothing_in_flight() {
        let now = jiff::Timestamp::now();
        let (valid, desired) = slices(true);
        let busy = Heartbeat { in_flight: 1, draining: true, ..Heartbeat::default() };
        let quiet = Heartbeat { draining: true, ..Heartbeat::default() };
        let unaware = Heartbeat::default();

        let observed = |a: &Heartbeat, b: &Heartbeat| Observed {
            pods: desired.iter().map(running).collect(),
            leases: vec![held(&desired[0], a, now), held(&desired[1], b, now)],
        };
        let s = status(&valid, &desired, &observed(&busy, &quiet), &[], &[], Some(2), now);
        assert_eq!(condition(&s, DRAINED).status, "False");
        assert_eq!(condition(&s, DRAINING).status, "True");
        assert_eq!(s.phase.as_deref(), Some("Draining"));

        let s = status(&valid, &desired, &observed(&unaware, &quiet), &[], &[], Some(2), now);
        assert_eq!(condition(&s, DRAINED).status, "False", "a runner that has not seen the drain may still claim");

        let s = status(&valid, &desired, &observed(&quiet, &quiet), &[], &[], Some(2), now);
        assert_eq!(condition(&s, DRAINED).status, "True");
        assert_eq!(condition(&s, DRAINING).status, "False");
        assert_eq!(s.phase.as_deref(), Some("Drained"));
    }

    #[test]
    fn a_relay_that_refuses_the_runners_and_unavailable_list_settings_degrade() {
        let now = jiff::Timestamp::now();
        let (valid, desired) = slices(false);
        let refused = Heartbeat {
            relay_error: Some("SMTP authentication with relay:587 failed: 535".into()),
            ..Heartbeat::default()
        };
        let lists =
            Heartbeat { list_settings_error: Some("Mailman REST API unreachable".into()), ..Heartbeat::default() };
        let observed = |a: &Heartbeat, b: &Heartbeat| Observed {
            pods: desired.iter().map(running).collect(),
            leases: vec![held(&desired[0], a, now), held(&desired[1], b, now)],
        };
        let s = status(&valid, &desired, &observed(&refused, &lists), &[], &[], Some(1), now);
        let degraded = condition(&s, DEGRADED);
        assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "RelayFailing"));
        assert!(
            degraded.message.starts_with("out-0of2: SMTP authentication with relay:587 failed"),
            "{}",
            degraded.message
        );
        let s = status(&valid, &desired, &observed(&Heartbeat::default(), &lists), &[], &[], Some(1), now);
        let degraded = condition(&s, DEGRADED);
        assert_eq!(degraded.reason, "ListSettingsUnavailable");
        assert!(degraded.message.contains("none is sent undecorated"), "{}", degraded.message);
    }

    #[test]
    fn a_full_queue_volume_and_unclaimable_entries_show_in_the_status() {
        let now = jiff::Timestamp::now();
        let (valid, desired) = slices(false);
        let full = Heartbeat { pending: 4, disk_full: true, unclaimable: 1, ..Heartbeat::default() };
        let stuck = Heartbeat { pending: 2, unclaimable: 2, ..Heartbeat::default() };
        let observed = |a: &Heartbeat, b: &Heartbeat| Observed {
            pods: desired.iter().map(running).collect(),
            leases: vec![held(&desired[0], a, now), held(&desired[1], b, now)],
        };

        // A full volume comes before a failing relay: nothing is claimed at all meanwhile.
        let relay = Heartbeat { relay_error: Some("connection refused".into()), ..stuck.clone() };
        let s = status(&valid, &desired, &observed(&full, &relay), &[], &[], Some(1), now);
        let degraded = condition(&s, DEGRADED);
        assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", QUEUE_VOLUME_FULL));
        assert!(degraded.message.starts_with("out-0of2: the queue volume is full;"), "{}", degraded.message);
        assert_eq!(s.phase.as_deref(), Some("Degraded"));
        let per_slice: Vec<(bool, i64)> = s.slices.iter().map(|v| (v.disk_full, v.unclaimable)).collect();
        assert_eq!(per_slice, [(true, 1), (false, 2)]);
        let q = &s.queues[0];
        assert_eq!((q.disk_full_slices, q.unclaimable, q.pending), (1, 3, 6));

        // Space again: only the entries no runner can claim are left to say.
        let s = status(
            &valid,
            &desired,
            &observed(&Heartbeat { disk_full: false, ..full.clone() }, &stuck),
            &[],
            &[],
            Some(1),
            now,
        );
        let degraded = condition(&s, DEGRADED);
        assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", UNCLAIMABLE_ENTRIES));
        assert!(degraded.message.starts_with("3 queued entries cannot be claimed"), "{}", degraded.message);
        assert_eq!(s.queues[0].disk_full_slices, 0);

        // A runner that stopped heartbeating says nothing about the volume any more.
        let mut gone = held(&desired[0], &full, now);
        if let Some(spec) = gone.spec.as_mut() {
            spec.renew_time = Some(MicroTime(now - jiff::SignedDuration::from_secs(60)));
        }
        let s = status(
            &valid,
            &desired,
            &Observed { pods: desired.iter().map(running).collect(), leases: vec![gone] },
            &[],
            &[],
            Some(1),
            now,
        );
        assert_eq!((s.queues[0].disk_full_slices, s.queues[0].unclaimable), (0, 0));
        assert_ne!(condition(&s, DEGRADED).reason, QUEUE_VOLUME_FULL);
    }

    #[test]
    fn a_runner_that_failed_recently_degrades_the_mailqueue() {
        use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, ContainerStatus};
        let now = jiff::Timestamp::now();
        let (valid, desired) = slices(false);
        let crashed = |secs_ago: i64| {
            let mut pod = running(&desired[0]);
            if let Some(status) = pod.status.as_mut() {
                status.container_statuses = Some(vec![ContainerStatus {
                    name: "runner".into(),
                    restart_count: 2,
                    last_state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: 1,
                            finished_at: Some(Time(now - jiff::SignedDuration::from_secs(secs_ago))),
                            ..ContainerStateTerminated::default()
                        }),
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                }]);
            }
            Observed { pods: vec![pod, running(&desired[1])], leases: vec![] }
        };
        let s = status(&valid, &desired, &crashed(10), &[], &[], Some(1), now);
        let degraded = condition(&s, DEGRADED);
        assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "RunnersRestarting"));
        assert!(degraded.message.contains("lists-out-0of2 exited with code 1"), "{}", degraded.message);

        let s = status(&valid, &desired, &crashed(600), &[], &[], Some(1), now);
        assert_eq!(condition(&s, DEGRADED).status, "False", "an old crash is forgotten");
    }

    #[test]
    fn a_status_read_back_equals_the_one_computed() {
        let now = jiff::Timestamp::now();
        let (valid, desired) = slices(false);
        let observed = Observed {
            pods: desired.iter().map(running).collect(),
            leases: desired.iter().map(|d| held(d, &Heartbeat { pending: 3, ..Heartbeat::default() }, now)).collect(),
        };
        let first = status(&valid, &desired, &observed, &[], &[], Some(1), now);
        let stored: MailQueueStatus =
            serde_json::from_value(serde_json::to_value(&first).expect("serializes")).expect("deserializes");
        let again = status(&valid, &desired, &observed, &[], &stored.conditions, Some(1), now);
        assert_eq!(stored, again, "nothing changed, so nothing needs writing");
    }

    #[test]
    fn list_decoration_off_is_said_and_a_missing_secret_degrades() {
        let now = jiff::Timestamp::now();
        let (valid, desired) = slices(false);
        let computed = status(&valid, &desired, &Observed::default(), &[], &[], Some(1), now);
        let plain = with_spec_checks(computed.clone(), &[], &valid.spec, &[], Some(1), now);
        let off = condition(&plain, LIST_SETTINGS);
        assert_eq!((off.status.as_str(), off.reason.as_str()), ("False", "NotConfigured"));
        assert!(off.message.contains("list decoration is off"), "{}", off.message);
        assert_eq!(
            condition(&plain, DEGRADED).reason,
            computed.conditions.iter().find(|c| c.type_ == DEGRADED).map(|c| c.reason.clone()).unwrap_or_default()
        );

        let missing = [Missing::Object {
            field: "smtp.auth.secretName",
            kind: crate::references::Kind::Secret,
            name: "relay".into(),
        }];
        let s = with_spec_checks(computed, &[], &valid.spec, &missing, Some(1), now);
        let degraded = condition(&s, DEGRADED);
        assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "ReferenceMissing"));
        assert!(
            degraded.message.starts_with("spec.smtp.auth.secretName: Secret \"relay\" does not exist"),
            "{}",
            degraded.message
        );
        assert_eq!(s.conditions.iter().filter(|c| c.type_ == DEGRADED).count(), 1);
        assert_eq!(s.phase.as_deref(), Some("Degraded"));
    }

    #[test]
    fn invalid_spec_is_degraded_and_keeps_counts() {
        let now = jiff::Timestamp::now();
        let previous = MailQueueStatus { pending: 42, ..MailQueueStatus::default() };
        let error = InvalidSpec::Slices { queue: "out".into(), slices: 3 };
        let s = invalid(&error, Some(&previous), Some(4), now);
        assert_eq!(s.pending, 42);
        let degraded = condition(&s, DEGRADED);
        assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "InvalidSpec"));
        assert!(degraded.message.contains("power of two"));
    }
}
