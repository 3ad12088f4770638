//! Restarts of every part of the cluster, on the test binary's own cluster: the API server, the
//! operator, the kubelet and containerd go away mid-run, a runner container is SIGKILLed through
//! containerd and a runner pod is force-deleted; everything converges again.

mod support;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use support::smtp::Sink;
use support::{apply, eventually, make_queue_dirs, spec_yaml, wait_condition, Setup};

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |c| c.iter().map(|c| c.restart_count).sum())
}

#[tokio::test]
async fn converges_after_api_server_kubelet_containerd_and_operator_restarts() {
    // This binary's cluster is this test's alone: restarting its parts disturbs no other test.
    let setup = Setup::new("mq-restart").await;
    let plane = setup.plane;
    let node = setup.cluster.node();
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

    // A runner container SIGKILLed through containerd is restarted by the kubelet.
    let victim = pods.get("lists-out-0of2").await.expect("pod");
    node.kill_container(&victim, "runner").await.expect("ctr kills the container");
    eventually("the killed runner container to be restarted", || async {
        let pod = pods.get("lists-out-0of2").await.ok()?;
        (restarts(&pod) > restarts(&victim)).then_some(())
    })
    .await;
    wait_condition(&setup, "lists", "Ready", "True").await;

    // The kubelet and containerd restart under running pods: the pods keep running (same
    // containers, no restart counted) and the MailQueue stays Ready.
    let before = pods.get("lists-out-0of2").await.expect("pod");
    node.restart_kubelet(plane).await.expect("kubelet restarts");
    node.restart_containerd().await.expect("containerd restarts");
    wait_condition(&setup, "lists", "Ready", "True").await;
    let after = pods.get("lists-out-0of2").await.expect("pod");
    assert_eq!(after.uid(), before.uid(), "the pod was replaced by a kubelet/containerd restart");
    assert_eq!(restarts(&after), restarts(&before), "a container restarted with the kubelet or containerd");

    // A force-deleted pod is replaced, and its replacement runs on the restarted kubelet and
    // containerd.
    let old_uid = pods.get("lists-out-1of2").await.expect("pod").uid();
    let (ok, out) = setup.kubectl(&["delete", "pod", "lists-out-1of2", "--force", "--grace-period=0"]).await;
    assert!(ok, "kubectl delete --force: {out}");
    eventually("a ready replacement of the force-deleted pod", || async {
        let pod = pods.get_opt("lists-out-1of2").await.ok().flatten()?;
        let ready = pod.status.as_ref()?.conditions.as_ref()?.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        (pod.uid() != old_uid && ready).then_some(())
    })
    .await;
    wait_condition(&setup, "lists", "Ready", "True").await;

    // The operator is killed (no clean shutdown); a drain asked for meanwhile is carried out
    // by its successor.
    drop(operator);
    let patch = serde_json::json!({"spec": {"drain": true}});
    setup
        .mailqueues()
        .patch("lists", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("drain is requested");
    let _operator = setup.operator("operator-a");
    wait_condition(&setup, "lists", "Drained", "True").await;
}
