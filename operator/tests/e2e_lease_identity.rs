//! A force-deleted runner pod whose container may still run on its node: its same-named
//! replacement does not take the slice Lease from it. The holder identity is
//! `<pod>_<uid>_<random>`, so the replacement is another holder; it waits until the old holder
//! stops renewing and the Lease expires, and only then delivers. Played here by renewing the
//! old runner's identity from the test after the pod is gone.

mod support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};
use mailqueue_contract::slice::holder_pod;
use support::smtp::Sink;
use support::{
    apply, entries, eventually, mailman3_vectors, make_queue_dirs, queue_copies, spec_yaml, wait_condition, Setup,
};

const LEASE: &str = "lists-out-0of1";

/// Renews the Lease as `holder`, as that runner would, retrying on conflicts.
async fn renew_as(leases: &Api<Lease>, holder: &str) {
    loop {
        let Ok(mut lease) = leases.get(LEASE).await else { return };
        let spec = lease.spec.get_or_insert_with(Default::default);
        spec.holder_identity = Some(holder.to_owned());
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        spec.lease_duration_seconds = Some(15);
        match leases.replace(LEASE, &PostParams::default(), &lease).await {
            Err(kube::Error::Api(status)) if status.is_conflict() => continue,
            _ => return,
        }
    }
}

#[tokio::test]
async fn a_same_named_replacement_waits_for_the_old_holder_of_the_slice_lease() {
    let setup = Setup::new("mq-lease-identity").await;
    let qfiles = setup.claim_dir().join("qfiles");
    make_queue_dirs(&qfiles);
    let sink = Sink::start().await;
    let _operator = setup.operator("operator-lease-identity");
    apply(&setup, &spec_yaml("lists", 1, sink.port)).await;
    wait_condition(&setup, "lists", "Ready", "True").await;
    let leases: Api<Lease> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let pods: Api<Pod> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let old_uid = pods.get(LEASE).await.expect("runner pod").uid().expect("uid");
    let old_holder = leases.get(LEASE).await.expect("Lease").spec.and_then(|s| s.holder_identity).expect("held");
    assert_eq!(holder_pod(&old_holder), Some((LEASE, old_uid.as_str())), "holder identity {old_holder}");

    // The pod is force-deleted; its runner "keeps running" and renewing on its node.
    let renewer = {
        let (leases, holder) = (leases.clone(), old_holder.clone());
        tokio::spawn(async move {
            loop {
                renew_as(&leases, &holder).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    pods.delete(LEASE, &DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() })
        .await
        .expect("pod is deleted");
    let new_uid = eventually("the same-named replacement pod", || async {
        let pod = pods.get_opt(LEASE).await.ok()??;
        let uid = pod.uid()?;
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        (uid != old_uid && running).then_some(uid)
    })
    .await;
    let all = mailman3_vectors();
    queue_copies(&all, &qfiles.join("out"), 0..1);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(sink.deliveries().is_empty(), "the replacement delivered while the old holder still held the slice");
    assert_eq!(entries(&qfiles.join("out"), ".pck").len(), all.len(), "entries were claimed without the Lease");
    let holder = leases.get(LEASE).await.expect("Lease").spec.and_then(|s| s.holder_identity);
    assert_eq!(holder.as_deref(), Some(old_holder.as_str()), "the replacement took the Lease from its live holder");
    let slice = setup.mailqueues().get("lists").await.expect("mq").status.map(|s| s.slices[0].clone()).expect("slice");
    assert!(!slice.ready, "a slice held by a deleted pod's runner counts as ready: {slice:?}");

    // The old runner stops; once its Lease expires the replacement takes it and delivers.
    renewer.abort();
    eventually("the replacement to hold the Lease", || async {
        let holder = leases.get(LEASE).await.ok()?.spec?.holder_identity?;
        (holder_pod(&holder) == Some((LEASE, new_uid.as_str()))).then_some(())
    })
    .await;
    eventually("every entry to be delivered", || async {
        (entries(&qfiles.join("out"), ".pck").is_empty() && !sink.deliveries().is_empty()).then_some(())
    })
    .await;
    assert!(entries(&qfiles.join("bad"), "").is_empty(), "entries went to bad/");
}
