//! A MailQueue with `out` and `retry` queues, as the runbook's example has it: a drain is
//! reached within seconds whether the slices are idle or busy (`kubectl wait
//! --for=condition=Drained --timeout=10s`, as an admin runs it), and a compact on it runs to
//! the end; the runner pods pass their readiness probes, the operator's /metrics has per-queue
//! gauges, and each transition is an Event. Before the fix the idle retry slice never acknowledged a drain, so `Drained` never
//! came and the compact waited in `Pending` with delivery stopped.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use kube::Api;
use mailqueue_contract::crd::{ActionPhase, CompactRequest, QueueSpec};
use support::smtp::Sink;
use support::{
    apply, deliveries, entries, eventually, expected_deliveries, mailman3_vectors, make_queue_dirs, queue_copies,
    runner_pods, spec_yaml, wait_condition, Setup,
};

/// What `kubectl wait` allows: the issue's bound.
const DRAIN_BOUND: &str = "10s";

async fn set_drain(setup: &Setup, drain: bool) {
    let patch = serde_json::json!({"spec": {"drain": drain}});
    setup.mailqueues().patch("lists", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("drain is patched");
}

/// Runs `kubectl wait --for=condition=Drained` as an admin would; returns how long it took.
async fn kubectl_wait_drained(setup: &Setup) -> Duration {
    let started = Instant::now();
    let (ok, said) =
        setup.kubectl(&["wait", "--for=condition=Drained", "mq/lists", &format!("--timeout={DRAIN_BOUND}")]).await;
    let took = started.elapsed();
    let status = setup.mailqueues().get("lists").await.ok().and_then(|mq| mq.status);
    assert!(ok, "not Drained within {DRAIN_BOUND} ({took:?}): {said}\nstatus: {status:#?}");
    took
}

#[tokio::test]
async fn out_and_retry_drain_within_ten_seconds_idle_or_busy_and_compact_succeeds() {
    let setup = Setup::new("mq-drain-retry").await;
    let qfiles = setup.claim_dir().join("qfiles");
    make_queue_dirs(&qfiles);
    let all = mailman3_vectors();
    let sink = Sink::with_delay(Duration::from_millis(20)).await;
    let operator = setup.operator("operator-drain-retry");
    let mut mq = spec_yaml("lists", 2, sink.port);
    mq.spec.queues.push(QueueSpec { name: "retry".into(), slices: 1 });
    apply(&setup, &mq).await;
    wait_condition(&setup, "lists", "Ready", "True").await;

    // Runner pods pass their readiness probe (/readyz on the named port `metrics`).
    eventually("the runner pods to be Ready", || async {
        let pods = runner_pods(&setup, "lists").await;
        let ready = |p: &k8s_openapi::api::core::v1::Pod| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        };
        (pods.len() == 3 && pods.iter().all(ready)).then_some(())
    })
    .await;
    // The operator's own /metrics has a series per queue.
    let metrics = eventually("per-queue gauges on the operator's /metrics", || async {
        let (_, body) = operator.get("/metrics").await;
        body.contains(
            r#"mailqueue_operator_queue_live_slices{namespace="mq-drain-retry",mailqueue="lists",queue="retry"} 1"#,
        )
        .then_some(body)
    })
    .await;
    assert!(
        metrics
            .contains(r#"mailqueue_operator_queue_pending{namespace="mq-drain-retry",mailqueue="lists",queue="out"}"#),
        "{metrics}"
    );

    // Idle: every slice (the retry one too) acknowledges within a Lease renewal.
    set_drain(&setup, true).await;
    let idle = kubectl_wait_drained(&setup).await;
    eprintln!("idle drain took {idle:?}");
    set_drain(&setup, false).await;
    wait_condition(&setup, "lists", "Drained", "False").await;

    // Busy: a backlog in out/, drained while it is being delivered.
    queue_copies(&all, &qfiles.join("out"), 0..3);
    eventually("delivery to start", || async { (!sink.deliveries().is_empty()).then_some(()) }).await;
    set_drain(&setup, true).await;
    let busy = kubectl_wait_drained(&setup).await;
    eprintln!("busy drain took {busy:?}");
    let mq_now = setup.mailqueues().get("lists").await.expect("mq");
    let in_flight: i64 = mq_now.status.as_ref().map(|s| s.slices.iter().map(|sl| sl.in_flight).sum()).unwrap_or(-1);
    assert_eq!(in_flight, 0, "Drained with entries in flight");
    assert!(entries(&qfiles.join("out"), ".bak").is_empty(), "a .bak is left in a drained queue");

    // A compact of out on the drained MailQueue runs to the end and delivery resumes.
    mq.spec.drain = false;
    mq.spec.compact = Some(CompactRequest { request_id: "c1".into(), queue: "out".into() });
    apply(&setup, &mq).await;
    let compacted = eventually("the compact to finish", || async {
        let mq = setup.mailqueues().get("lists").await.ok()?;
        mq.status?.actions?.compact.filter(|c| matches!(c.phase, ActionPhase::Succeeded | ActionPhase::Failed))
    })
    .await;
    assert_eq!(compacted.phase, ActionPhase::Succeeded, "{compacted:?}");
    eventually("every entry to be delivered once", || async {
        (deliveries(&sink) == expected_deliveries(&all, 3)).then_some(())
    })
    .await;
    assert!(entries(&qfiles.join("bad"), "").is_empty(), "entries went to bad/");

    // Each transition was announced through the operator's Recorder.
    let events: Api<Event> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let reasons = eventually("the drain Events", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        let reasons: Vec<String> = list
            .items
            .iter()
            .filter(|e| e.involved_object.name.as_deref() == Some("lists"))
            .filter_map(|e| e.reason.clone())
            .collect();
        ["DrainRequested", "Drained", "DrainLifted", "ActionSucceeded"]
            .iter()
            .all(|r| reasons.iter().any(|x| x == r))
            .then_some(reasons)
    })
    .await;
    assert!(reasons.iter().any(|r| r == "ListDecorationOff"), "{reasons:?}");
}
