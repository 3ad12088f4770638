//! The counters in `kubectl get mq -o yaml` come from what is on the volume: entries waiting
//! show while the queue is drained, a stale `.bak` planted beside a live runner shows as
//! `staleBak`, pending drops to zero after delivery. And a runner that owns its slice through
//! a Lease, while it may claim, also owns it as a standalone runner would: a standalone runner
//! on the same volume is refused, and the offline `drain` sees it and drains it.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use support::smtp::Sink;
use support::{
    apply, entries, eventually, hand_to_runner, mailqueue, make_queue_dirs, runner_binary, Setup, CLAIM, HOST_IP,
};

/// `status.queues[0].<field>` as `kubectl get mq lists -o yaml` shows it.
async fn queue_field(setup: &Setup, field: &str) -> Option<i64> {
    let (ok, yaml) = setup.kubectl(&["get", "mq", "lists", "-o", "yaml"]).await;
    assert!(ok, "{yaml}");
    let mq: serde_yaml::Value =
        serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("kubectl output is YAML: {e}\n{yaml}"));
    mq.get("status")?.get("queues")?.get(0)?.get(field)?.as_i64()
}

fn spec(drain: bool, smtp_port: u16) -> mailqueue_contract::crd::MailQueue {
    mailqueue(&format!(
        "apiVersion: mailqueue.dev/v1alpha1
kind: MailQueue
metadata: {{name: lists}}
spec:
  storage: {{claimName: {CLAIM}, queueDir: qfiles}}
  queues: [{{name: out, slices: 1}}]
  smtp: {{host: {HOST_IP}, port: {smtp_port}, connectionsPerSlice: 1}}
  bakPolicy: {{quarantineAfter: 2s}}
  drain: {drain}
"
    ))
}

#[tokio::test]
async fn status_counts_come_from_the_volume_and_the_lease_holder_owns_the_slice_on_disk_too() {
    let setup = Setup::new("mq-counters").await;
    let qfiles = setup.claim_dir().join("qfiles");
    make_queue_dirs(&qfiles);
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/mailman3/out");
    let mut queued: Vec<String> = entries(&vectors, ".pck");
    queued.sort();
    assert!(queued.len() >= 10, "the Mailman 3 vectors are missing at {}", vectors.display());
    // One entry is kept back to be planted later as a stale `.bak`.
    let planted = queued.pop().expect("an entry to plant");
    for name in &queued {
        std::fs::copy(vectors.join(name), qfiles.join("out").join(name)).expect("entry is queued");
        hand_to_runner(&qfiles.join("out").join(name));
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
    assert!(
        queue_field(&setup, "oldestPendingSeconds").await.is_some_and(|s| s > 0),
        "the vectors are dated in the past"
    );

    // A `.bak` no runner claimed, planted beside the live runner: stale after 2s.
    let bak = qfiles.join("out").join(planted.replace(".pck", ".bak"));
    std::fs::copy(vectors.join(&planted), &bak).expect("bak is planted");
    hand_to_runner(&bak);
    eventually("staleBak to show the planted .bak", || async {
        (queue_field(&setup, "staleBak").await == Some(1)).then_some(())
    })
    .await;

    // Delivery resumes; pending drops to zero. The stale `.bak` stays counted until handled:
    // bakPolicy may set it aside meanwhile, and then it counts as quarantined.
    apply(&setup, &spec(false, sink.port)).await;
    eventually("pending to reach zero after delivery", || async {
        (queue_field(&setup, "pending").await == Some(0)).then_some(())
    })
    .await;
    assert!(entries(&qfiles.join("out"), ".pck").is_empty(), "status said 0 pending with entries left");
    assert!(!sink.deliveries().is_empty(), "nothing reached the SMTP sink");
    eventually("the stale .bak to be counted once, as stale or as quarantined", || async {
        let (ok, yaml) = setup
            .kubectl(&[
                "get",
                "mq",
                "lists",
                "-o",
                "jsonpath={.status.queues[0].staleBak}+{.status.queues[0].quarantined}",
            ])
            .await;
        let sum: Option<i64> = yaml.split('+').map(|n| n.trim().parse::<i64>().ok()).sum();
        (ok && sum == Some(1)).then_some(())
    })
    .await;
    assert_eq!(queue_field(&setup, "bad").await.unwrap_or(0), 0, "entries went to bad/");

    // The Lease holder holds the slice's lock file too: a standalone runner is refused.
    let standalone = tokio::process::Command::new(runner_binary())
        .args(["run", "--qfiles"])
        .arg(&qfiles)
        .args(["--queue", "out", "--slices", "1", "--slice", "0", "--exit-when-empty"])
        .args(["--smtp", &format!("{HOST_IP}:{}", sink.port)])
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), standalone)
        .await
        .expect("standalone runner exits")
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a standalone runner started on a slice a Lease holder owns: {stderr}");
    assert!(stderr.contains("is owned by"), "the refusal names the owner: {stderr}");

    // The offline `drain` sees the Lease holder as the slice's owner and gets its
    // acknowledgement through the drain flag file.
    let drain = |extra: &'static [&'static str]| {
        tokio::process::Command::new(runner_binary())
            .args(["drain", "--qfiles"])
            .arg(&qfiles)
            .args(["--queue", "out", "--timeout", "60s"])
            .args(extra)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .output()
    };
    let drained = drain(&[]).await.expect("drain runs");
    let text = format!("{}{}", String::from_utf8_lossy(&drained.stdout), String::from_utf8_lossy(&drained.stderr));
    assert!(drained.status.success(), "{text}");
    assert!(text.contains("drained: 1 of 1 live runners idle"), "the Lease holder is the one owner: {text}");
    assert!(drain(&["--resume"]).await.expect("drain --resume runs").status.success());
}
