//! The one-shot actions on a real control plane (with kube-controller-manager running the
//! Jobs), runner pods on the node stand-in and a real SMTP sink: a requeue from `shunt/` and
//! a compact of `out`, each checked by what reaches the sink (every entry, once).

mod support;

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use kube::Api;
use mailqueue_contract::crd::{ActionPhase, ActionStatus, CompactRequest, RequeueRequest, RequeueSource};
use support::smtp::Sink;
use support::{
    apply, deliveries, entries, eventually, expected_deliveries, mailman3_vectors, make_queue_dirs, queue_copies,
    spec_yaml, wait_condition, Setup,
};

async fn action(
    setup: &Setup,
    pick: fn(&mailqueue_contract::crd::ActionsStatus) -> Option<&ActionStatus>,
) -> Option<ActionStatus> {
    let mq = setup.mailqueues().get("lists").await.ok()?;
    pick(mq.status?.actions.as_ref()?).cloned()
}

#[tokio::test]
async fn requeue_and_compact_run_once_as_jobs_and_deliver_every_entry_once() {
    let setup = Setup::new("mq-actions").await;
    let qfiles = setup.claim_dir().join("qfiles");
    make_queue_dirs(&qfiles);
    let all = mailman3_vectors();
    assert!(all.len() >= 30, "expected the full Mailman 3 vector set, found {}", all.len());
    queue_copies(&all, &qfiles.join("shunt"), 0..1);
    let sink = Sink::with_delay(Duration::from_millis(50)).await;
    let operator = setup.operator("operator-actions");

    // A requeue from shunt/ in small batches, never more than 5 waiting in out/.
    let mut mq = spec_yaml("lists", 2, sink.port);
    mq.spec.requeue = Some(RequeueRequest {
        request_id: "r1".into(),
        from: RequeueSource::Shunt,
        queue: "out".into(),
        batch_size: 4,
        interval: "1s".into(),
        max_depth: 5,
    });
    apply(&setup, &mq).await;
    let running = eventually("the requeue to show Running", || async {
        action(&setup, |a| a.requeue.as_ref()).await.filter(|s| s.phase == ActionPhase::Running)
    })
    .await;
    assert_eq!(running.request_id, "r1");
    assert!(running.start_time.is_some());
    let (ok, yaml) = setup.kubectl(&["get", "mq", "lists", "-o", "yaml"]).await;
    assert!(ok && yaml.contains("requestId: r1"), "{yaml}");
    // The operator is killed mid-requeue; its successor follows the same Job.
    drop(operator);
    let _operator = setup.operator("operator-actions");
    let done = eventually("the requeue to succeed", || async {
        action(&setup, |a| a.requeue.as_ref()).await.filter(|s| s.phase != ActionPhase::Running)
    })
    .await;
    assert_eq!(done.phase, ActionPhase::Succeeded, "{done:?}");
    // The counts come from the runner's own JSON result, in the Job's termination message.
    assert_eq!((done.requeued, done.remaining, done.skipped_in_flight), (all.len() as i64, 0, 0), "{done:?}");
    assert!(done.completion_time.is_some());
    assert!(entries(&qfiles.join("shunt"), ".pck").is_empty(), "shunt/ still holds entries");
    eventually("every requeued entry to reach the sink", || async {
        (deliveries(&sink) == expected_deliveries(&all, 1)).then_some(())
    })
    .await;

    // Compact: drain, put a backlog in out/, ask for the compact and lift the admin's drain in
    // one apply: the operator keeps the runners drained until the compact Job is over.
    mq.spec.drain = true;
    apply(&setup, &mq).await;
    wait_condition(&setup, "lists", "Drained", "True").await;
    queue_copies(&all, &qfiles.join("out"), 0..1);
    mq.spec.drain = false;
    mq.spec.compact = Some(CompactRequest { request_id: "c1".into(), queue: "out".into() });
    apply(&setup, &mq).await;
    let compacted = eventually("the compact to finish", || async {
        action(&setup, |a| a.compact.as_ref())
            .await
            .filter(|s| matches!(s.phase, ActionPhase::Succeeded | ActionPhase::Failed))
    })
    .await;
    assert_eq!(compacted.phase, ActionPhase::Succeeded, "{compacted:?}");
    assert_eq!((compacted.requeued, compacted.remaining), (all.len() as i64, 0), "{compacted:?}");
    eventually("the compacted backlog to reach the sink once the runners resume", || async {
        (deliveries(&sink) == expected_deliveries(&all, 2)).then_some(())
    })
    .await;
    assert!(entries(&qfiles.join("out"), ".pck").is_empty());
    assert!(entries(&qfiles.join("bad"), "").is_empty(), "entries went to bad/");

    // Reapplying the same requests starts nothing: one Job per request, statuses unchanged.
    apply(&setup, &mq).await;
    let jobs: Api<Job> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let listed =
        jobs.list(&ListParams::default().labels("mailqueue.dev/action-of=lists")).await.expect("jobs are listed");
    assert_eq!(listed.items.len(), 2, "one Job per request");
    let status = setup.mailqueues().get("lists").await.expect("mq").status.and_then(|s| s.actions).expect("actions");
    assert_eq!(
        status.requeue.as_ref().map(|s| (&s.request_id, s.phase)),
        Some((&"r1".to_owned(), ActionPhase::Succeeded))
    );
    assert_eq!(status.compact.as_ref().map(|s| s.completion_time.clone()), Some(compacted.completion_time.clone()));

    // An Event marks the start and the end of each action.
    let events: Api<Event> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let reasons = eventually("the action Events", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        let reasons: Vec<String> = list
            .items
            .iter()
            .filter(|e| e.involved_object.name.as_deref() == Some("lists"))
            .filter_map(|e| e.reason.clone())
            .collect();
        (reasons.iter().filter(|r| *r == "ActionSucceeded").count() == 2).then_some(reasons)
    })
    .await;
    assert_eq!(reasons.iter().filter(|r| *r == "ActionStarted").count(), 2, "{reasons:?}");
    assert_eq!(deliveries(&sink), expected_deliveries(&all, 2), "nothing delivered twice");
}

#[tokio::test]
async fn bak_policy_sets_stale_bak_aside_and_a_requeue_delivers_them_once() {
    let setup = Setup::new("mq-bakpolicy").await;
    let qfiles = setup.claim_dir().join("qfiles");
    make_queue_dirs(&qfiles);
    let sink = Sink::start().await;
    let _operator = setup.operator("operator-bakpolicy");

    let mut mq = spec_yaml("lists", 2, sink.port);
    mq.spec.bak_policy = Some(mailqueue_contract::crd::BakPolicy { quarantine_after: "2s".into() });
    apply(&setup, &mq).await;
    wait_condition(&setup, "lists", "Ready", "True").await;
    // `.bak` entries left behind as by a runner that died: the live runners never claimed
    // them, so they are not in flight and nobody recovers them.
    let all = mailman3_vectors();
    let out = qfiles.join("out");
    for v in &all {
        std::fs::copy(&v.file, out.join(format!("{}.bak", v.filebase))).expect("stale entry");
        support::hand_to_runner(&out.join(format!("{}.bak", v.filebase)));
    }

    let done = eventually("the bakPolicy quarantine to finish", || async {
        action(&setup, |a| a.bak_policy.as_ref())
            .await
            .filter(|s| matches!(s.phase, ActionPhase::Succeeded | ActionPhase::Failed))
    })
    .await;
    assert_eq!(done.phase, ActionPhase::Succeeded, "{done:?}");
    assert!(done.request_id.starts_with("auto-"), "{done:?}");
    let aside = qfiles.join(".mailqueue").join("quarantine").join("out");
    eventually("every stale .bak to be set aside", || async {
        (entries(&out, ".bak").is_empty() && entries(&aside, "").len() == all.len()).then_some(())
    })
    .await;
    let healthy = eventually("staleBak 0 and Degraded=False", || async {
        let s = setup.mailqueues().get("lists").await.ok()?.status?;
        let degraded = s.conditions.iter().any(|c| c.type_ == "Degraded" && c.status == "True");
        (s.stale_bak == 0 && !degraded).then_some(s)
    })
    .await;
    let moved = healthy.actions.and_then(|a| a.bak_policy).map(|s| s.moved).unwrap_or_default();
    assert!(moved > 0, "the policy run reports what it moved");
    assert!(sink.deliveries().is_empty(), "a stale .bak is set aside, not sent");

    // Feed them back: each is delivered once.
    mq.spec.requeue = Some(RequeueRequest {
        request_id: "r1".into(),
        from: RequeueSource::Quarantine,
        queue: "out".into(),
        batch_size: 10,
        interval: "1s".into(),
        max_depth: 20,
    });
    apply(&setup, &mq).await;
    eventually("every quarantined entry to reach the sink", || async {
        (deliveries(&sink) == expected_deliveries(&all, 1)).then_some(())
    })
    .await;
    let requeued = eventually("the requeue to finish", || async {
        action(&setup, |a| a.requeue.as_ref()).await.filter(|s| s.phase == ActionPhase::Succeeded)
    })
    .await;
    assert_eq!(requeued.requeued, all.len() as i64);
    assert!(entries(&aside, "").is_empty());
    assert_eq!(deliveries(&sink), expected_deliveries(&all, 1), "nothing delivered twice");
}
