//! Restarts on a control plane of this test's own: the API server and the operator go away
//! mid-run and everything converges again.

mod support;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use mailqueue_testenv::ControlPlane;
use support::smtp::Sink;
use support::{apply, eventually, make_queue_dirs, spec_yaml, wait_condition, Setup};

#[tokio::test]
async fn converges_after_api_server_and_operator_restarts() {
    // Leaked on purpose: the Node and the operator borrow it for the whole test, and the
    // test environment's watchdog stops its processes when the test binary exits.
    let plane: &'static ControlPlane = Box::leak(Box::new(ControlPlane::start().await.expect("own control plane")));
    let setup = Setup::on(plane, "mq-restart").await;
    make_queue_dirs(&setup.claim_dir().join("qfiles"));
    let sink = Sink::start().await;
    let operator = setup.operator("operator-a");
    apply(&setup, &spec_yaml("lists", 2, sink.port)).await;
    wait_condition(&setup, "lists", "Ready", "True").await;

    // The API server restarts; afterwards a deleted pod is still replaced.
    plane.restart_apiserver().await.expect("API server restarts");
    let pods: Api<Pod> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let old_uid = pods.get("lists-out-1of2").await.expect("pod").uid();
    pods.delete("lists-out-1of2", &DeleteParams::default()).await.expect("pod is deleted");
    eventually("lists-out-1of2 to be replaced after the API server restart", || async {
        let pod = pods.get_opt("lists-out-1of2").await.ok().flatten()?;
        (pod.uid() != old_uid).then_some(())
    })
    .await;
    wait_condition(&setup, "lists", "Ready", "True").await;

    // The operator is killed (no clean shutdown); a drain asked for meanwhile is carried out
    // by its successor.
    drop(operator);
    let patch = serde_json::json!({"spec": {"drain": true}});
    setup.mailqueues().patch("lists", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("drain is requested");
    let _operator = setup.operator("operator-a");
    wait_condition(&setup, "lists", "Drained", "True").await;
}
