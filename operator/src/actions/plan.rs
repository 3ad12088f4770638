//! What each action should do next, decided from the spec, the action's last status and its
//! Job, without talking to the API server.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;

use crate::desired::MOUNT_PATH;
use mailqueue_contract::crd::{ActionPhase, ActionStatus, ActionsStatus, MailQueue, RequeueSource};

use super::job::JobOutcome;

/// The three one-shot actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionKind {
    Quarantine,
    Requeue,
    Compact,
    /// The automatic quarantine of `spec.bakPolicy`.
    BakPolicy,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quarantine => "quarantine",
            Self::Requeue => "requeue",
            Self::Compact => "compact",
            Self::BakPolicy => "bak-policy",
        }
    }

    /// The Event's `action` field.
    pub fn event_action(self) -> &'static str {
        match self {
            Self::Quarantine => "Quarantine",
            Self::Requeue => "Requeue",
            Self::Compact => "Compact",
            Self::BakPolicy => "BakPolicy",
        }
    }

    /// Only a compact swaps the queue directory, which no runner may be working meanwhile.
    fn needs_drain(self) -> bool {
        self == Self::Compact
    }

    pub fn get(self, actions: &ActionsStatus) -> Option<&ActionStatus> {
        match self {
            Self::Quarantine => actions.quarantine.as_ref(),
            Self::Requeue => actions.requeue.as_ref(),
            Self::Compact => actions.compact.as_ref(),
            Self::BakPolicy => actions.bak_policy.as_ref(),
        }
    }

    pub fn set(self, actions: &mut ActionsStatus, status: ActionStatus) {
        let slot = match self {
            Self::Quarantine => &mut actions.quarantine,
            Self::Requeue => &mut actions.requeue,
            Self::Compact => &mut actions.compact,
            Self::BakPolicy => &mut actions.bak_policy,
        };
        *slot = Some(status);
    }
}

/// One action asked for in the spec, with the runner commands that do it (one per queue).
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub kind: ActionKind,
    pub request_id: String,
    /// Arguments of each `mailqueue-runner` invocation, container paths included.
    pub commands: Vec<Vec<String>>,
}

/// The actions the spec asks for (those with a non-empty `requestId`), and the `bakPolicy`
/// run when one is under way or due (`stale_bak` entries reported by the runners).
pub fn requests(mq: &MailQueue, stale_bak: i64, now: jiff::Timestamp) -> Vec<Request> {
    let spec = &mq.spec;
    let qfiles = format!("{MOUNT_PATH}/{}", spec.storage.queue_dir(spec.layout));
    let command = |words: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        args.splice(1..1, ["--qfiles".to_owned(), qfiles.clone()]);
        args.push("--json".to_owned());
        args
    };
    let quarantine = |older_than: &str| -> Vec<Vec<String>> {
        spec.queues
            .iter()
            .map(|queue| command(&["quarantine", "--queue", &queue.name, "--older-than", older_than]))
            .collect()
    };
    let mut out = Vec::new();
    if let Some(q) = spec.quarantine.as_ref().filter(|q| !q.request_id.is_empty()) {
        out.push(Request {
            kind: ActionKind::Quarantine,
            request_id: q.request_id.clone(),
            commands: quarantine(&q.older_than),
        });
    }
    if let (Some(policy), Some(request_id)) = (spec.bak_policy.as_ref(), policy_run(mq, stale_bak, now)) {
        out.push(Request { kind: ActionKind::BakPolicy, request_id, commands: quarantine(&policy.quarantine_after) });
    }
    if let Some(r) = spec.requeue.as_ref().filter(|r| !r.request_id.is_empty()) {
        let from = match r.from {
            RequeueSource::Quarantine => "quarantine",
            RequeueSource::Shunt => "shunt",
            RequeueSource::Bad => "bad",
        };
        let (batch, depth) = (r.batch_size.to_string(), r.max_depth.to_string());
        let args = [
            "requeue",
            "--from",
            from,
            "--queue",
            &r.queue,
            "--batch",
            &batch,
            "--interval",
            &r.interval,
            "--max-depth",
            &depth,
        ];
        out.push(Request {
            kind: ActionKind::Requeue,
            request_id: r.request_id.clone(),
            commands: vec![command(&args)],
        });
    }
    if let Some(c) = spec.compact.as_ref().filter(|c| !c.request_id.is_empty()) {
        // The operator drains the runners through their Leases before the Job starts, so the
        // command's own (standalone) drain is not used.
        let commands = vec![command(&["compact", "--queue", &c.queue])];
        out.push(Request { kind: ActionKind::Compact, request_id: c.request_id.clone(), commands });
    }
    out
}

/// The `requestId` of the `bakPolicy` run to work on: the one under way, or a new one when the
/// runners report stale `.bak` entries and the last run ended long enough ago for their
/// heartbeats to show its effect.
fn policy_run(mq: &MailQueue, stale_bak: i64, now: jiff::Timestamp) -> Option<String> {
    let last = mq.status.as_ref().and_then(|s| s.actions.as_ref()).and_then(|a| a.bak_policy.as_ref());
    if let Some(running) = last.filter(|l| !finished(l.phase)) {
        return Some(running.request_id.clone());
    }
    let rested = last.and_then(|l| l.completion_time.as_ref()).is_none_or(|t| now.duration_since(t.0) >= POLICY_PAUSE);
    (stale_bak > 0 && rested).then(|| format!("auto-{}", now.as_second()))
}

/// Pause after a `bakPolicy` run before the next: the runners' heartbeats must first count
/// the `.bak` entries again (they renew every few seconds).
const POLICY_PAUSE: jiff::SignedDuration = jiff::SignedDuration::from_secs(30);

fn finished(phase: ActionPhase) -> bool {
    matches!(phase, ActionPhase::Succeeded | ActionPhase::Failed)
}

/// True while an action that needs the runners drained is asked for and not finished.
pub fn needs_drain(mq: &MailQueue) -> bool {
    let actions = mq.status.as_ref().and_then(|s| s.actions.as_ref());
    requests(mq, 0, jiff::Timestamp::now()).iter().filter(|r| r.kind.needs_drain()).any(|r| {
        let done =
            actions.and_then(|a| r.kind.get(a)).is_some_and(|s| s.request_id == r.request_id && finished(s.phase));
        !done
    })
}

/// What the runner commands of an action reported (in their Job's termination messages).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub moved: i64,
    pub remaining: i64,
    pub skipped_in_flight: i64,
}

/// What to do for one action in this pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub status: ActionStatus,
    pub create_job: bool,
    /// Type, reason and note of an Event to emit.
    pub event: Option<(EventType, &'static str, String)>,
}

/// Decides the next step of `request`, given its last status, its Job and whether the runners
/// are drained. A request already finished is left alone, so reapplying it does nothing.
pub fn step(
    request: &Request,
    previous: Option<&ActionStatus>,
    job: Option<&JobOutcome>,
    counts: Counts,
    drained: bool,
    job_name: &str,
    now: jiff::Timestamp,
) -> Step {
    let same = previous.filter(|p| p.request_id == request.request_id);
    if let Some(done) = same.filter(|p| finished(p.phase)) {
        return Step { status: done.clone(), create_job: false, event: None };
    }
    let now = whole_seconds(now);
    let what = request.kind.as_str();
    let started = same.is_some_and(|p| p.phase == ActionPhase::Running);
    let sets_aside = matches!(request.kind, ActionKind::Quarantine | ActionKind::BakPolicy);
    let status = |phase, message: String| ActionStatus {
        request_id: request.request_id.clone(),
        phase,
        // A quarantine sets entries aside; a requeue or a compact feeds them (back) in.
        moved: if sets_aside { counts.moved } else { 0 },
        requeued: if sets_aside { 0 } else { counts.moved },
        remaining: counts.remaining,
        skipped_in_flight: counts.skipped_in_flight,
        start_time: Some(same.and_then(|p| p.start_time.clone()).unwrap_or_else(|| now.clone())),
        completion_time: finished(phase).then(|| now.clone()),
        message: Some(message),
    };
    let start_event = |message: &str| {
        (!started).then(|| (EventType::Normal, "ActionStarted", format!("{what} {}: {message}", request.request_id)))
    };
    match job {
        Some(JobOutcome::Succeeded) => {
            // The words are the status fields' own: `moved` for a quarantine, `requeued` for a
            // requeue or a compact, then `remaining` and `skippedInFlight`.
            let done = if sets_aside { "moved" } else { "requeued" };
            let message = format!(
                "Job {job_name} finished: {} {done}, {} remaining, {} skipped in flight",
                counts.moved, counts.remaining, counts.skipped_in_flight
            );
            let event =
                Some((EventType::Normal, "ActionSucceeded", format!("{what} {}: {message}", request.request_id)));
            Step { status: status(ActionPhase::Succeeded, message), create_job: false, event }
        }
        Some(JobOutcome::Failed(reason)) => {
            let message = format!("Job {job_name} failed: {reason}; see `kubectl logs job/{job_name}`, then set a new requestId to carry on");
            let event = Some((EventType::Warning, "ActionFailed", format!("{what} {}: {message}", request.request_id)));
            Step { status: status(ActionPhase::Failed, message), create_job: false, event }
        }
        Some(JobOutcome::Running) => {
            let message = format!("Job {job_name} is running");
            Step { event: start_event(&message), status: status(ActionPhase::Running, message), create_job: false }
        }
        None if request.kind.needs_drain() && !drained => {
            let message = "waiting for every runner of the queue to drain (condition Drained)".to_owned();
            let event = same
                .is_none()
                .then(|| (EventType::Normal, "ActionPending", format!("{what} {}: {message}", request.request_id)));
            Step { status: status(ActionPhase::Pending, message), create_job: false, event }
        }
        None => {
            // Also when a running action's Job is gone (deleted by hand): the runner commands
            // carry on from where they stopped, so starting it again repeats nothing.
            let message = format!("Job {job_name} started");
            Step { event: start_event(&message), status: status(ActionPhase::Running, message), create_job: true }
        }
    }
}

/// A time as the API server stores it, so an unchanged status compares equal when read back.
fn whole_seconds(ts: jiff::Timestamp) -> Time {
    Time(jiff::Timestamp::from_second(ts.as_second()).unwrap_or(ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: ActionKind, id: &str) -> Request {
        Request { kind, request_id: id.to_owned(), commands: vec![] }
    }

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000).expect("time")
    }

    #[test]
    fn a_new_request_starts_its_job_once_and_reports_running() {
        let r = request(ActionKind::Requeue, "r1");
        let first = step(&r, None, None, Counts::default(), false, "j", now());
        assert!(first.create_job);
        assert_eq!(first.status.phase, ActionPhase::Running);
        assert_eq!(first.event.as_ref().map(|e| e.1), Some("ActionStarted"));
        // The next pass sees the Job: no second Job, no second start Event.
        let second = step(&r, Some(&first.status), Some(&JobOutcome::Running), Counts::default(), false, "j", now());
        assert!(!second.create_job);
        assert_eq!(second.event, None);
        assert_eq!(second.status.start_time, first.status.start_time);
    }

    #[test]
    fn a_finished_request_applied_again_does_nothing() {
        let r = request(ActionKind::Quarantine, "q1");
        let running = step(&r, None, None, Counts::default(), true, "j", now()).status;
        let counts = Counts { moved: 7, remaining: 0, skipped_in_flight: 2 };
        let done = step(&r, Some(&running), Some(&JobOutcome::Succeeded), counts, true, "j", now());
        assert_eq!(done.status.phase, ActionPhase::Succeeded);
        assert_eq!((done.status.moved, done.status.requeued, done.status.skipped_in_flight), (7, 0, 2));
        assert_eq!(done.event.as_ref().map(|e| e.1), Some("ActionSucceeded"));
        let again = step(&r, Some(&done.status), None, Counts::default(), true, "j", now());
        assert_eq!((again.create_job, again.event, again.status), (false, None, done.status));
    }

    #[test]
    fn the_message_uses_the_words_of_the_status_fields() {
        let counts = Counts { moved: 2, remaining: 1, skipped_in_flight: 0 };
        for (kind, word) in [
            (ActionKind::Requeue, "2 requeued"),
            (ActionKind::Compact, "2 requeued"),
            (ActionKind::Quarantine, "2 moved"),
        ] {
            let r = request(kind, "x");
            let done = step(&r, None, Some(&JobOutcome::Succeeded), counts, true, "j", now()).status;
            let message = done.message.clone().unwrap_or_default();
            assert!(message.contains(word) && message.contains("1 remaining"), "{kind:?}: {message}");
            let field = if word.ends_with("moved") { done.moved } else { done.requeued };
            assert_eq!(field, 2, "{kind:?}: {done:?}");
        }
    }

    #[test]
    fn a_compact_waits_for_the_drain_then_starts() {
        let r = request(ActionKind::Compact, "c1");
        let waiting = step(&r, None, None, Counts::default(), false, "j", now());
        assert_eq!((waiting.status.phase, waiting.create_job), (ActionPhase::Pending, false));
        let again = step(&r, Some(&waiting.status), None, Counts::default(), false, "j", now());
        assert_eq!(again.event, None);
        let go = step(&r, Some(&again.status), None, Counts::default(), true, "j", now());
        assert_eq!((go.status.phase, go.create_job), (ActionPhase::Running, true));
        assert_eq!(go.event.as_ref().map(|e| e.1), Some("ActionStarted"));
    }

    #[test]
    fn a_failed_job_fails_the_action_and_a_new_request_id_starts_over() {
        let r = request(ActionKind::Requeue, "r1");
        let running = step(&r, None, None, Counts::default(), false, "j", now()).status;
        let failed = step(
            &r,
            Some(&running),
            Some(&JobOutcome::Failed("BackoffLimitExceeded".into())),
            Counts::default(),
            false,
            "j",
            now(),
        );
        assert_eq!(failed.status.phase, ActionPhase::Failed);
        assert!(failed.status.message.as_deref().unwrap_or_default().contains("BackoffLimitExceeded"));
        let next = step(
            &request(ActionKind::Requeue, "r2"),
            Some(&failed.status),
            None,
            Counts::default(),
            false,
            "j2",
            now(),
        );
        assert!(next.create_job);
        assert_eq!(next.status.request_id, "r2");
    }

    #[test]
    fn the_bak_policy_runs_when_runners_report_stale_bak_and_rests_after_a_run() {
        let mut mq: MailQueue = serde_yaml::from_str(
            "apiVersion: mailqueue.dev/v1alpha1
kind: MailQueue
metadata: {name: lists}
spec:
  storage: {claimName: data}
  queues: [{name: out}]
  smtp: {host: mta}
  bakPolicy: {quarantineAfter: 10m}
",
        )
        .expect("spec");
        assert!(requests(&mq, 0, now()).is_empty(), "nothing stale, nothing to do");
        let due = requests(&mq, 3, now());
        let run = due.first().expect("a policy run");
        assert_eq!(run.kind, ActionKind::BakPolicy);
        assert_eq!(
            run.commands[0].join(" "),
            "quarantine --qfiles /var/lib/mailman/var/queue --queue out --older-than 10m --json"
        );
        // Under way: the same run, whatever the count says now.
        let running = step(run, None, None, Counts::default(), false, "j", now()).status;
        let status = mailqueue_contract::crd::MailQueueStatus {
            actions: Some(ActionsStatus { bak_policy: Some(running.clone()), ..ActionsStatus::default() }),
            ..Default::default()
        };
        mq.status = Some(status.clone());
        assert_eq!(requests(&mq, 0, now())[0].request_id, run.request_id);
        // Finished just now: a stale count from an older heartbeat starts nothing yet.
        let done = step(run, Some(&running), Some(&JobOutcome::Succeeded), Counts::default(), false, "j", now()).status;
        let mut status = status;
        status.actions = Some(ActionsStatus { bak_policy: Some(done), ..ActionsStatus::default() });
        mq.status = Some(status);
        assert!(requests(&mq, 3, now()).is_empty());
        let later = now() + jiff::SignedDuration::from_secs(60);
        assert_ne!(requests(&mq, 3, later)[0].request_id, run.request_id);
    }

    #[test]
    fn commands_run_the_runner_queue_operations_on_the_mounted_volume() {
        let mq: MailQueue = serde_yaml::from_str(
            "apiVersion: mailqueue.dev/v1alpha1
kind: MailQueue
metadata: {name: lists}
spec:
  storage: {claimName: data, queueDir: qfiles}
  queues: [{name: out, slices: 4}, {name: retry, slices: 1}]
  smtp: {host: mta}
  quarantine: {requestId: a, olderThan: 30m}
  requeue: {requestId: b, from: shunt, queue: out, batchSize: 100, interval: 2s, maxDepth: 1000}
  compact: {requestId: c, queue: out}
",
        )
        .expect("spec");
        let joined: Vec<Vec<String>> =
            requests(&mq, 0, now()).iter().map(|r| r.commands.iter().map(|c| c.join(" ")).collect()).collect();
        assert_eq!(
            joined,
            [
                vec![
                    "quarantine --qfiles /var/lib/mailman/qfiles --queue out --older-than 30m --json".to_owned(),
                    "quarantine --qfiles /var/lib/mailman/qfiles --queue retry --older-than 30m --json".to_owned()
                ],
                vec!["requeue --qfiles /var/lib/mailman/qfiles --from shunt --queue out --batch 100 --interval 2s --max-depth 1000 --json".to_owned()],
                vec!["compact --qfiles /var/lib/mailman/qfiles --queue out --json".to_owned()],
            ]
        );
        assert!(needs_drain(&mq));
    }
}
