//! Two operator replicas: one leads and writes, the other stands by and takes over when the
//! leader stops; the endpoints answer; SIGTERM ends the operator cleanly.

mod support;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use support::smtp::Sink;
use support::{apply, eventually, make_queue_dirs, runner_pods, spec_yaml, status, wait_condition, Setup};

async fn leader(leases: &Api<Lease>) -> Option<String> {
    leases.get_opt("mailqueue-operator").await.ok()??.spec?.holder_identity
}

#[tokio::test]
async fn one_replica_leads_the_other_takes_over_after_sigterm() {
    let setup = Setup::new("mq-leader").await;
    make_queue_dirs(&setup.claim_dir().join("qfiles"));
    let sink = Sink::start().await;
    let leases: Api<Lease> = Api::namespaced(setup.client.clone(), &setup.namespace);

    let a = setup.operator("operator-a");
    eventually("operator-a to lead", || async {
        (leader(&leases).await.as_deref() == Some("operator-a")).then_some(())
    })
    .await;
    let b = setup.operator("operator-b");
    eventually("operator-b to answer /readyz", || async { (b.get("/readyz").await.0 == 200).then_some(()) }).await;

    apply(&setup, &spec_yaml("lists", 2, sink.port)).await;
    wait_condition(&setup, "lists", "Ready", "True").await;

    // Only the leader reconciles; both are healthy and ready.
    for op in [&a, &b] {
        assert_eq!(op.get("/healthz").await.0, 200);
        assert_eq!(op.get("/readyz").await.0, 200);
    }
    assert_eq!(a.metric("mailqueue_operator_leader").await, Some(1.0));
    assert!(a.metric("mailqueue_operator_reconciles_total").await.unwrap_or(0.0) >= 1.0);
    assert_eq!(b.metric("mailqueue_operator_leader").await, Some(0.0));
    assert_eq!(b.metric("mailqueue_operator_reconciles_total").await, Some(0.0), "the standby never reconciles");

    // SIGTERM: the leader exits 0 and hands over without waiting for its Lease to expire.
    assert_eq!(a.terminate().await, Some(0), "the operator exits 0 on SIGTERM");
    eventually("operator-b to lead", || async {
        (leader(&leases).await.as_deref() == Some("operator-b")).then_some(())
    })
    .await;

    // The new leader acts: re-slicing 2 -> 4 replaces the layout.
    apply(&setup, &spec_yaml("lists", 4, sink.port)).await;
    let mq = wait_condition(&setup, "lists", "Ready", "True").await;
    assert_eq!(status(&mq).slices.len(), 4);
    let names: Vec<String> = runner_pods(&setup, "lists").await.iter().map(kube::ResourceExt::name_any).collect();
    assert_eq!(names, ["lists-out-0of4", "lists-out-1of4", "lists-out-2of4", "lists-out-3of4"]);
    assert!(b.metric("mailqueue_operator_reconciles_total").await.unwrap_or(0.0) >= 1.0);
    eventually("the old layout's Leases to be cleaned up", || async {
        let old = leases.get_opt("lists-out-0of2").await.ok()?;
        old.is_none().then_some(())
    })
    .await;
}
