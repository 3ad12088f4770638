//! The counters in `kubectl get mq -o yaml` come from what is on the volume: entries waiting
//! show while the queue is drained, a stale `.bak` planted beside a live runner shows as
//! `staleBak`, pending drops to zero after delivery.

mod support;

use std::path::Path;

use support::smtp::Sink;
use support::{apply, entries, eventually, make_queue_dirs, mailqueue, Setup, CLAIM};

/// `status.queues[0].<field>` as `kubectl get mq lists -o yaml` shows it.
async fn queue_field(setup: &Setup, field: &str) -> Option<i64> {
    let (ok, yaml) = setup.kubectl(&["get", "mq", "lists", "-o", "yaml"]).await;
    assert!(ok, "{yaml}");
    let mq: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("kubectl output is YAML: {e}\n{yaml}"));
    mq.get("status")?.get("queues")?.get(0)?.get(field)?.as_i64()
}

fn spec(drain: bool, smtp_port: u16) -> mailqueue_operator::MailQueue {
    mailqueue(&format!(
        "apiVersion: mailqueue.dev/v1alpha1
kind: MailQueue
metadata: {{name: lists}}
spec:
  storage: {{claimName: {CLAIM}, queueDir: qfiles}}
  queues: [{{name: out, slices: 1}}]
  smtp: {{host: 127.0.0.1, port: {smtp_port}, connectionsPerSlice: 1}}
  bakPolicy: {{quarantineAfter: 2s}}
  drain: {drain}
"
    ))
}

#[tokio::test]
async fn status_counts_come_from_the_volume() {
    let setup = Setup::new("mq-counters").await;
    let qfiles = setup.claim_dir().join("qfiles");
    make_queue_dirs(&qfiles);
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/mailman3/out");
    let mut queued: Vec<String> = entries(&vectors, ".pck");
    queued.sort();
    assert!(queued.len() >= 10, "the Mailman 3 vectors are missing at {}", vectors.display());
    // One entry is kept back to be planted later as a stale `.bak`.
    let planted = queued.pop().expect("an entry to plant");
    for name in &queued {
        std::fs::copy(vectors.join(name), qfiles.join("out").join(name)).expect("entry is queued");
    }
    let sink = Sink::start().await;
    let _operator = setup.operator("operator-counters");

    // Drained from the start: nothing is delivered, yet the waiting entries show.
    apply(&setup, &spec(true, sink.port)).await;
    let waiting = i64::try_from(queued.len()).expect("small count");
    eventually("pending to show the queued entries while drained", || async {
        (queue_field(&setup, "pending").await == Some(waiting)).then_some(())
    })
    .await;
    assert!(sink.deliveries().is_empty(), "delivered while drained");
    assert!(queue_field(&setup, "oldestPendingSeconds").await.is_some_and(|s| s > 0), "the vectors are dated in the past");

    // A `.bak` no runner claimed, planted beside the live runner: stale after 2s.
    std::fs::copy(vectors.join(&planted), qfiles.join("out").join(planted.replace(".pck", ".bak"))).expect("bak is planted");
    eventually("staleBak to show the planted .bak", || async {
        (queue_field(&setup, "staleBak").await == Some(1)).then_some(())
    })
    .await;

    // Delivery resumes; pending drops to zero, the stale `.bak` stays counted until handled.
    apply(&setup, &spec(false, sink.port)).await;
    eventually("pending to reach zero after delivery", || async {
        (queue_field(&setup, "pending").await == Some(0)).then_some(())
    })
    .await;
    assert!(entries(&qfiles.join("out"), ".pck").is_empty(), "status said 0 pending with entries left");
    assert!(!sink.deliveries().is_empty(), "nothing reached the SMTP sink");
    assert_eq!(queue_field(&setup, "staleBak").await, Some(1));
    assert_eq!(queue_field(&setup, "bad").await.unwrap_or(0), 0, "entries went to bad/");
}
