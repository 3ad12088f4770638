//! Slice ownership in the cluster: a runner whose Lease is taken from it stops delivering at
//! once, and the slice resumes when the Lease is free again.

mod support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::PostParams;
use kube::Api;
use support::smtp::Sink;
use support::{apply, entries, eventually, make_queue_dirs, spec_yaml, wait_condition, Setup};

const LEASE: &str = "lists-out-0of1";

/// Writes the Lease as held by `holder` (or free), retrying on conflicts.
async fn set_holder(leases: &Api<Lease>, holder: Option<&str>) {
    loop {
        let mut lease = leases.get(LEASE).await.expect("slice Lease");
        let spec = lease.spec.get_or_insert_with(Default::default);
        spec.holder_identity = holder.map(str::to_owned);
        spec.renew_time = holder.map(|_| MicroTime(jiff::Timestamp::now()));
        spec.lease_duration_seconds = Some(15);
        match leases.replace(LEASE, &PostParams::default(), &lease).await {
            Ok(_) => return,
            Err(kube::Error::Api(status)) if status.is_conflict() => continue,
            Err(e) => panic!("cannot write the slice Lease: {e}"),
        }
    }
}

async fn restarts(pods: &Api<Pod>) -> i32 {
    let pod = pods.get(LEASE).await.expect("runner pod");
    let statuses = pod.status.and_then(|s| s.container_statuses).unwrap_or_default();
    statuses.first().map_or(0, |c| c.restart_count)
}

#[tokio::test]
async fn a_runner_that_loses_its_lease_stops_delivering_until_it_holds_it_again() {
    let setup = Setup::new("mq-lease").await;
    let qfiles = setup.claim_dir().join("qfiles");
    make_queue_dirs(&qfiles);
    let vectors = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/mailman3/out");
    let queued: Vec<String> = entries(&vectors, ".pck");
    assert!(queued.len() >= 30, "the Mailman 3 vectors are missing at {}", vectors.display());
    for name in &queued {
        std::fs::copy(vectors.join(name), qfiles.join("out").join(name)).expect("entry is queued");
        support::hand_to_runner(&qfiles.join("out").join(name));
    }
    let sink = Sink::with_delay(Duration::from_millis(300)).await;
    let _operator = setup.operator("operator-lease");
    apply(&setup, &spec_yaml("lists", 1, sink.port)).await;
    eventually("the first deliveries", || async { (sink.deliveries().len() >= 2).then_some(()) }).await;

    // Someone else takes the Lease and keeps renewing it.
    let leases: Api<Lease> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let pods: Api<Pod> = Api::namespaced(setup.client.clone(), &setup.namespace);
    set_holder(&leases, Some("intruder")).await;
    let intruder = {
        let leases = leases.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                set_holder(&leases, Some("intruder")).await;
            }
        })
    };

    // The runner notices at its next renewal and exits; from then on nothing is delivered.
    eventually("the runner to give up the slice", || async { (restarts(&pods).await >= 1).then_some(()) }).await;
    let delivered = sink.deliveries().len();
    let waiting = entries(&qfiles.join("out"), ".pck").len();
    assert!(waiting > 0, "the queue drained before the Lease was taken; slow the sink");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sink.deliveries().len(), delivered, "deliveries went on without the Lease");
    assert_eq!(entries(&qfiles.join("out"), ".pck").len(), waiting, "entries were claimed without the Lease");
    let mq = wait_condition(&setup, "lists", "Degraded", "True").await;
    let degraded = mq.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Degraded")).cloned();
    assert_eq!(degraded.map(|c| c.reason).as_deref(), Some("RunnersRestarting"));

    // Once the Lease is free the slice's runner takes it back and finishes the queue.
    intruder.abort();
    set_holder(&leases, None).await;
    eventually("the out queue to empty", || async {
        let out = qfiles.join("out");
        (entries(&out, ".pck").is_empty() && entries(&out, ".bak").is_empty()).then_some(())
    })
    .await;
    assert!(entries(&qfiles.join("bad"), "").is_empty(), "entries went to bad/");
    let holder = leases.get(LEASE).await.expect("Lease").spec.and_then(|s| s.holder_identity);
    let pod = holder.as_deref().and_then(mailqueue_contract::slice::holder_pod).map(|(pod, _uid)| pod);
    assert_eq!(pod, Some(LEASE), "the runner pod holds its Lease again: {holder:?}");
}
