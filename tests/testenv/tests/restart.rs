//! Self-tests that need a control plane of their own: restarting the API server
//! under running clients and pods, and cleaning up on stop.

mod support;

use std::time::Instant;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::PostParams;
use kube::Api;
use mailqueue_testenv::{ControlPlane, Node, NodeConfig};
use support::{from_yaml, wait_for};

fn phase_is(phase: &'static str) -> impl Fn(Option<&Pod>) -> bool {
    move |pod: Option<&Pod>| pod.and_then(|p| p.status.as_ref()?.phase.as_deref()) == Some(phase)
}

#[tokio::test]
async fn clients_and_the_node_carry_on_after_an_apiserver_restart() {
    let started = Instant::now();
    let plane = ControlPlane::start().await.expect("control plane starts");
    // A measurement for the README, not an assertion.
    eprintln!("control plane ready in {:.1?}", started.elapsed());
    plane.create_namespace("chaos").await.expect("namespace");
    let client = plane.client().expect("admin client");
    let volumes = tempfile::tempdir().expect("volume root");
    let node = Node::start(
        client.clone(),
        NodeConfig::new("node-chaos", volumes.path())
            .image("shell", "/bin/sh")
            .namespace("chaos"),
    )
    .await
    .expect("node starts");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "chaos");
    let pod = |name: &str, script: &str| -> Pod {
        from_yaml(&format!(
            "metadata: {{ name: {name} }}\nspec:\n  restartPolicy: Never\n  containers: [{{ name: main, image: shell, command: [sh, -c, '{script}'] }}]\n"
        ))
    };
    pods.create(&PostParams::default(), &pod("before", "while true; do sleep 0.1; done"))
        .await
        .expect("pod before the restart");
    wait_for(&pods, "before", "Running", phase_is("Running")).await;

    plane.restart_apiserver().await.expect("API server comes back");

    // The client made before the restart still works...
    let namespace = Api::<Namespace>::all(client.clone()).get("chaos").await;
    assert!(namespace.is_ok(), "old client after restart: {namespace:?}");
    // ...the node's watch picks up new pods and runs them...
    pods.create(&PostParams::default(), &pod("after", "echo ran after the restart"))
        .await
        .expect("pod after the restart");
    wait_for(&pods, "after", "Succeeded", phase_is("Succeeded")).await;
    assert_eq!(node.container_log("chaos", "after", "main"), "ran after the restart\n");
    assert_eq!(node.pod_log("chaos", "after"), "==> main <==\nran after the restart\n");
    // ...and the pod from before kept running.
    let before = pods.get("before").await.expect("pod before the restart");
    assert_eq!(before.status.and_then(|s| s.phase).as_deref(), Some("Running"));

    node.stop().await;
    let dir = plane.dir().to_owned();
    let port = plane.server_url().rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).expect("port");
    plane.stop().await;
    assert!(!dir.exists(), "{} is removed on stop", dir.display());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on the API server's port after stop"
    );
}
