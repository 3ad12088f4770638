//! Slow tier (`#[ignore]`): the project's `Dockerfile`, unchanged, builds here with buildah (on
//! local stand-ins for its two base images, under their exact names) and its image runs on the
//! real node: the runner is the entrypoint, the operator binary is beside it, the user is the
//! distroless `nonroot`.

mod support;

use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::Api;
use mailqueue_testenv::{cluster, images};
use support::{eventually, runner_namespace};

const REFERENCE: &str = "docker.io/library/mailqueue-operator:dockerfile";

#[tokio::test]
#[ignore = "slow tier: builds the Dockerfile (a release build of both binaries); tests/all.sh runs it"]
async fn the_dockerfile_builds_and_its_image_runs_on_the_node() {
    let started = std::time::Instant::now();
    let image = tokio::task::spawn_blocking(|| images::dockerfile(REFERENCE))
        .await
        .expect("task")
        .expect("the Dockerfile builds");
    let size = std::fs::metadata(&image.path).expect("archive").len();
    eprintln!(
        "Dockerfile built in {:.0?}: {REFERENCE}, {:.1} MB as an OCI archive",
        started.elapsed(),
        size as f64 / 1e6
    );
    let cluster = cluster::shared(vec![image]).await.expect("the cluster starts");
    let plane = cluster.plane();
    let client = plane.client().expect("admin client");
    runner_namespace(plane, &client, "mq-dockerfile").await;
    let pod = |name: &str, command: &str, args: &str| -> Pod {
        serde_yaml::from_str(&format!(
            "metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  containers:
    - name: main
      image: mailqueue-operator:dockerfile
      imagePullPolicy: Never
      {command}
      args: {args}
      securityContext: {{readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}
"
        ))
        .expect("pod YAML")
    };
    let pods: Api<Pod> = Api::namespaced(client, "mq-dockerfile");
    // No command: the image's entrypoint, the runner.
    pods.create(&PostParams::default(), &pod("runner", "", "[--version]")).await.expect("pod");
    pods.create(&PostParams::default(), &pod("operator", "command: [/usr/local/bin/mailqueue-operator]", "[--help]"))
        .await
        .expect("pod");
    for name in ["runner", "operator"] {
        eventually(&format!("pod {name} to succeed"), || async {
            let phase = pods.get(name).await.ok()?.status?.phase?;
            assert_ne!(phase, "Failed", "pod {name} failed: {}", cluster.node().pod_log("mq-dockerfile", name).await);
            (phase == "Succeeded").then_some(())
        })
        .await;
    }
    let runner = cluster.node().pod_log("mq-dockerfile", "runner").await;
    assert!(runner.contains("mailqueue-runner "), "the entrypoint is the runner: {runner}");
    let operator = cluster.node().pod_log("mq-dockerfile", "operator").await;
    assert!(operator.contains("Usage"), "the operator binary is in the image: {operator}");
}
