//! The operator on a real control plane, with real runner processes on the node stand-in:
//! pods per slice, status from the runners' Leases, replacement of deleted pods, drain,
//! delivery of real Mailman entries, leader election.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};
use support::smtp::Sink;
use support::{apply, entries, eventually, make_queue_dirs, runner_pods, spec_yaml, status, wait_condition, Setup};

#[tokio::test]
async fn one_runner_per_slice_status_replacement_and_drain() {
    let setup = Setup::new("mq-basic").await;
    make_queue_dirs(&setup.claim_dir().join("qfiles"));
    let sink = Sink::start().await;
    let _operator = setup.operator("operator-a");

    apply(&setup, &spec_yaml("lists", 4, sink.port)).await;
    let mq = wait_condition(&setup, "lists", "Ready", "True").await;

    // One pod per slice, owned by the MailQueue, each with its own slice.
    let pods = runner_pods(&setup, "lists").await;
    let names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
    assert_eq!(names, ["lists-out-0of4", "lists-out-1of4", "lists-out-2of4", "lists-out-3of4"]);
    for (i, pod) in pods.iter().enumerate() {
        let owner = pod.owner_references().first().expect("owner reference");
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("MailQueue", mq.uid().as_deref().unwrap_or_default()));
        let args =
            pod.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.args.clone()).unwrap_or_default();
        let slice = args.iter().position(|a| a == "--slice").and_then(|p| args.get(p + 1));
        assert_eq!(slice.map(String::as_str), Some(i.to_string().as_str()));
    }

    // Status: every slice's runner holds its Lease and heartbeats.
    let s = status(&mq);
    assert_eq!(s.slices.len(), 4);
    let holder_pod = |sl: &mailqueue_contract::crd::SliceStatus| {
        sl.holder.as_deref().and_then(mailqueue_contract::slice::holder_pod).map(|(pod, _uid)| pod.to_owned())
    };
    assert!(
        s.slices.iter().all(|sl| sl.ready && holder_pod(sl).as_deref() == Some(sl.pod.as_str())),
        "{:#?}",
        s.slices
    );
    assert_eq!((s.queues[0].name.as_str(), s.queues[0].live_slices), ("out", 4));
    assert_eq!(s.phase.as_deref(), Some("Running"));
    let (ok, table) = setup.kubectl(&["get", "mq", "lists"]).await;
    assert!(ok, "{table}");
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "QUEUES", "SLICES", "PENDING", "STALE", "BAK", "PHASE", "AGE"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert_eq!(row.get(..6), Some(&["lists", "out", "4/4", "0", "0", "Running"][..]), "{table}");

    // A deleted pod is replaced.
    let pods_api: Api<Pod> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let old_uid = pods_api.get("lists-out-2of4").await.expect("pod").uid();
    pods_api.delete("lists-out-2of4", &DeleteParams::default()).await.expect("pod is deleted");
    eventually("lists-out-2of4 to be replaced and running", || async {
        let pod = pods_api.get_opt("lists-out-2of4").await.ok().flatten()?;
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        (pod.uid() != old_uid && running).then_some(())
    })
    .await;
    let leases: Api<Lease> = Api::namespaced(setup.client.clone(), &setup.namespace);
    eventually("the new runner to hold the slice Lease", || async {
        let mq = setup.mailqueues().get("lists").await.ok()?;
        let slice = mq.status?.slices.into_iter().find(|s| s.pod == "lists-out-2of4")?;
        slice.ready.then_some(())
    })
    .await;
    let lease = leases.get("lists-out-2of4").await.expect("slice Lease");
    assert!(lease.spec.and_then(|s| s.lease_transitions).unwrap_or(0) >= 1, "the Lease changed hands");

    // Drain with kubectl, as an admin would, and wait for Drained with kubectl.
    let (ok, out) =
        setup.kubectl(&["patch", "mq", "lists", "--type", "merge", "-p", r#"{"spec":{"drain":true}}"#]).await;
    assert!(ok, "{out}");
    let (ok, out) = setup.kubectl(&["wait", "--for=condition=Drained", "mq/lists", "--timeout=120s"]).await;
    assert!(ok, "kubectl wait: {out}");
    let mq = wait_condition(&setup, "lists", "Drained", "True").await;
    let s = status(&mq);
    assert_eq!(s.phase.as_deref(), Some("Drained"));
    assert!(s.slices.iter().all(|sl| sl.draining && sl.in_flight == 0), "{:#?}", s.slices);

    // Patching back resumes.
    let (ok, out) =
        setup.kubectl(&["patch", "mq", "lists", "--type", "merge", "-p", r#"{"spec":{"drain":false}}"#]).await;
    assert!(ok, "{out}");
    let mq = wait_condition(&setup, "lists", "Drained", "False").await;
    eventually("the runners to resume", || async {
        let mq = setup.mailqueues().get("lists").await.ok()?;
        let s = mq.status?;
        (s.phase.as_deref() == Some("Running") && s.slices.iter().all(|sl| !sl.draining)).then_some(())
    })
    .await;
    assert_eq!(status(&mq).conditions.iter().find(|c| c.type_ == "Draining").map(|c| c.status.as_str()), Some("False"));
}

/// A Mailman 3 `out` entry from the shared conformance vectors, with what must reach the wire.
struct Vector {
    file: PathBuf,
    filebase: String,
    slice_of_4: u32,
    message: Vec<u8>,
    recipients: BTreeSet<String>,
}

fn mailman3_vectors() -> Vec<Vector> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors");
    let text = std::fs::read_to_string(root.join("manifest.json"))
        .unwrap_or_else(|e| panic!("the conformance vectors are missing at {}: {e}", root.display()));
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("manifest is JSON");
    let vectors = manifest["vectors"].as_array().expect("vector list");
    vectors
        .iter()
        .filter(|v| v["version"] == "mailman3")
        .map(|v| Vector {
            file: root.join(v["path"].as_str().expect("path")),
            filebase: v["filebase"].as_str().expect("filebase").to_owned(),
            slice_of_4: v["slices"]["4"].as_u64().and_then(|s| u32::try_from(s).ok()).expect("slice of 4"),
            message: base64::engine::general_purpose::STANDARD
                .decode(v["expected_message_b64"].as_str().expect("expected message"))
                .expect("expected message is base64"),
            recipients: v["expected_recipients"]
                .as_array()
                .expect("recipients")
                .iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect(),
        })
        .collect()
}

#[tokio::test]
async fn delivers_real_entries_across_slices_without_loss_when_a_pod_is_deleted_mid_delivery() {
    let setup = Setup::new("mq-deliver").await;
    let qfiles = setup.claim_dir().join("qfiles");
    make_queue_dirs(&qfiles);
    let vectors = mailman3_vectors();
    assert!(vectors.len() >= 30, "expected the full Mailman 3 vector set, found {}", vectors.len());
    for v in &vectors {
        let entry = qfiles.join("out").join(format!("{}.pck", v.filebase));
        std::fs::copy(&v.file, &entry).expect("entry is queued");
        support::hand_to_runner(&entry);
    }
    // Slow enough that deliveries are still under way when a pod is deleted.
    let sink = Sink::with_delay(Duration::from_millis(150)).await;
    let _operator = setup.operator("operator-deliver");
    apply(&setup, &spec_yaml("lists", 4, sink.port)).await;

    // Once delivery is under way, delete the pod of a slice that still has entries.
    eventually("the first deliveries", || async { (sink.deliveries().len() >= 4).then_some(()) }).await;
    let waiting: BTreeMap<u32, usize> =
        entries(&qfiles.join("out"), ".pck").iter().fold(BTreeMap::new(), |mut m, name| {
            if let Some(v) = vectors.iter().find(|v| name.starts_with(&v.filebase)) {
                *m.entry(v.slice_of_4).or_default() += 1;
            }
            m
        });
    let (&busy, &left) =
        waiting.iter().max_by_key(|(_, n)| **n).expect("delivery finished before a pod could be deleted");
    assert!(left > 0);
    let victim = format!("lists-out-{busy}of4");
    let pods_api: Api<Pod> = Api::namespaced(setup.client.clone(), &setup.namespace);
    pods_api.delete(&victim, &DeleteParams::default()).await.expect("pod is deleted");

    // Everything leaves the queue, nothing is set aside, and the status says so.
    eventually("the out queue to empty", || async {
        let out = qfiles.join("out");
        (entries(&out, ".pck").is_empty() && entries(&out, ".bak").is_empty()).then_some(())
    })
    .await;
    assert!(
        entries(&qfiles.join("bad"), "").is_empty(),
        "entries went to bad/: {:?}",
        entries(&qfiles.join("bad"), "")
    );
    assert!(entries(&qfiles.join("shunt"), ".pck").is_empty(), "entries were shunted");
    eventually("status to report an empty queue", || async {
        let s = setup.mailqueues().get("lists").await.ok()?.status?;
        (s.pending == 0 && s.queues.first()?.in_flight == 0 && s.queues.first()?.live_slices == 4).then_some(())
    })
    .await;

    // Every entry reached every recipient with Mailman's exact bytes, none twice. Some
    // vectors carry the same message (a recovered copy of another), so messages are keyed by
    // the first vector that has them.
    let key = |message: &[u8]| vectors.iter().position(|v| v.message == message);
    let mut expected: BTreeMap<(usize, String), usize> = BTreeMap::new();
    for v in &vectors {
        for rcpt in &v.recipients {
            *expected.entry((key(&v.message).unwrap_or_default(), rcpt.clone())).or_default() += 1;
        }
    }
    let mut seen: BTreeMap<(usize, String), usize> = BTreeMap::new();
    for d in sink.deliveries() {
        let Some(index) = key(&d.data) else {
            panic!("the sink got a message that matches no entry: {:?}", String::from_utf8_lossy(&d.data));
        };
        for rcpt in d.rcpts {
            *seen.entry((index, rcpt)).or_default() += 1;
        }
    }
    assert_eq!(seen, expected, "(entry, recipient) -> deliveries");
    let pod = pods_api.get(&victim).await.expect("the deleted pod was replaced");
    assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Running"));
}

#[tokio::test]
async fn queues_added_and_removed() {
    let setup = Setup::new("mq-queues").await;
    make_queue_dirs(&setup.claim_dir().join("qfiles"));
    let sink = Sink::start().await;
    let _operator = setup.operator("operator-queues");
    let mut mq = spec_yaml("lists", 2, sink.port);
    apply(&setup, &mq).await;
    wait_condition(&setup, "lists", "Ready", "True").await;

    // Adding `retry` adds its runner.
    mq.spec.queues.push(mailqueue_contract::crd::QueueSpec { name: "retry".into(), slices: 1 });
    apply(&setup, &mq).await;
    let ready = wait_condition(&setup, "lists", "Ready", "True").await;
    let queues: Vec<&str> = status(&ready).queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(queues, ["out", "retry"]);
    let names: Vec<String> = runner_pods(&setup, "lists").await.iter().map(|p| p.name_any()).collect();
    assert_eq!(names, ["lists-out-0of2", "lists-out-1of2", "lists-retry-0of1"]);
    let (ok, table) = setup.kubectl(&["get", "mq", "lists"]).await;
    let row: Vec<&str> = table.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert!(ok && row.get(..3) == Some(&["lists", "out,retry", "3/3"][..]), "{table}");

    // Removing it removes the pod, and its Lease once released.
    mq.spec.queues.retain(|q| q.name == "out");
    apply(&setup, &mq).await;
    let leases: Api<Lease> = Api::namespaced(setup.client.clone(), &setup.namespace);
    eventually("the retry runner and its Lease to go", || async {
        let pods = runner_pods(&setup, "lists").await;
        let gone = pods.iter().all(|p| p.name_any() != "lists-retry-0of1");
        (gone && leases.get_opt("lists-retry-0of1").await.ok()?.is_none()).then_some(())
    })
    .await;
    let mq = wait_condition(&setup, "lists", "Ready", "True").await;
    assert_eq!(status(&mq).slices.len(), 2);
}
