//! `helm uninstall` keeps the CRD and the MailQueues, and their runners go on delivering: the
//! runner ServiceAccount, Role and RoleBinding are kept (`helm.sh/resource-policy: keep`), so
//! the runners keep renewing their slice Leases with nobody managing them. A reinstall of the
//! same release adopts the kept objects, and its operator takes the MailQueue over again.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use mailqueue_contract::lease::live_holder;
use mailqueue_testenv::ControlPlane;
use support::smtp::Sink;
use support::{
    deliveries, entries, eventually, expected_deliveries, mailman3_vectors, make_queue_dirs, queue_copies,
    shared_cluster, spec_yaml, CLAIM, RUNNER_UID,
};

const RELEASE: &str = "mq";
const NAMESPACE: &str = "chart-uninstall";
const OPERATOR_IMAGE: &str = "mailqueue-operator";
const RUNNER_IMAGE: &str = support::RUNNER_IMAGE;

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/mailqueue-operator")
}

/// Runs helm or kubectl from the control plane's binaries as its admin.
async fn tool(plane: &ControlPlane, home: &Path, name: &str, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(plane.binaries().path(name))
        .args(args)
        .env("KUBECONFIG", plane.kubeconfig())
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{name} runs: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

async fn helm_install(plane: &ControlPlane, home: &Path) {
    let chart = chart_dir();
    let image = format!("image.repository={OPERATOR_IMAGE}");
    let runner = format!("runner.image={RUNNER_IMAGE}");
    let args = [
        "install",
        RELEASE,
        chart.to_str().expect("chart path is UTF-8"),
        "--namespace",
        NAMESPACE,
        "--set",
        "image.tag=e2e",
        "--set",
        "runner.gracePeriodSeconds=15",
        "--set",
        "replicaCount=1",
        "--set",
        &image,
        "--set",
        &runner,
    ];
    let (ok, out) = tool(plane, home, "helm", &args).await;
    assert!(ok, "helm install:\n{out}");
}

#[tokio::test]
async fn kept_mailqueues_go_on_delivering_after_helm_uninstall_and_a_reinstall_adopts_them() {
    let cluster = shared_cluster().await;
    let plane = cluster.plane();
    let _report = cluster.report_on_failure();
    let client = plane.client().expect("admin client");
    plane.create_namespace(NAMESPACE).await.expect("namespace");
    let volumes = tempfile::tempdir().expect("volume root");
    let home = tempfile::tempdir().expect("helm home");
    let claim = volumes.path().join(NAMESPACE).join(CLAIM);
    cluster.local_volume(NAMESPACE, CLAIM, &claim, RUNNER_UID).await.expect("local volume");
    helm_install(plane, home.path()).await;

    let qfiles = volumes.path().join(NAMESPACE).join(CLAIM).join("qfiles");
    make_queue_dirs(&qfiles);
    let all = mailman3_vectors();
    let sink = Sink::start().await;
    let mq = spec_yaml("lists", 2, sink.port);
    let mailqueues: Api<mailqueue_contract::crd::MailQueue> = Api::namespaced(client.clone(), NAMESPACE);
    mailqueues
        .patch("lists", &PatchParams::apply("e2e").force(), &Patch::Apply(&mq))
        .await
        .expect("MailQueue is applied");
    let (ok, out) = tool(
        plane,
        home.path(),
        "kubectl",
        &["-n", NAMESPACE, "wait", "--for=condition=Ready", "mq/lists", "--timeout=120s"],
    )
    .await;
    assert!(ok, "kubectl wait Ready: {out}");
    queue_copies(&all, &qfiles.join("out"), 0..1);
    eventually("the first wave to be delivered", || async {
        (deliveries(&sink) == expected_deliveries(&all, 1)).then_some(())
    })
    .await;

    // Uninstall: the operator goes, the runners and their RBAC stay.
    let (ok, out) = tool(plane, home.path(), "helm", &["uninstall", RELEASE, "--namespace", NAMESPACE, "--wait"]).await;
    assert!(ok, "helm uninstall: {out}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    eventually("the operator pods to go", || async {
        let left =
            pods.list(&ListParams::default().labels("app.kubernetes.io/name=mailqueue-operator")).await.ok()?.items;
        left.is_empty().then_some(())
    })
    .await;
    assert!(Api::<ServiceAccount>::namespaced(client.clone(), NAMESPACE)
        .get_opt("mailqueue-runner")
        .await
        .expect("read")
        .is_some());
    let role = format!("{RELEASE}-mailqueue-operator-runner");
    assert!(
        Api::<Role>::namespaced(client.clone(), NAMESPACE).get_opt(&role).await.expect("read").is_some(),
        "runner Role deleted"
    );
    assert!(
        Api::<RoleBinding>::namespaced(client.clone(), NAMESPACE).get_opt(&role).await.expect("read").is_some(),
        "RoleBinding deleted"
    );

    // Longer than a Lease lasts: the runners renewed theirs, and still deliver.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    for name in ["lists-out-0of2", "lists-out-1of2"] {
        let lease = leases.get(name).await.expect("slice Lease");
        assert!(live_holder(&lease, jiff::Timestamp::now()).is_some(), "{name} lapsed after the uninstall");
    }
    queue_copies(&all, &qfiles.join("out"), 1..2);
    eventually("the second wave to be delivered with no operator installed", || async {
        (deliveries(&sink) == expected_deliveries(&all, 2)).then_some(())
    })
    .await;
    for pod in pods.list(&ListParams::default().labels("mailqueue.dev/mailqueue=lists")).await.expect("pods").items {
        let log = cluster.node().pod_log(NAMESPACE, &pod.name_any()).await;
        assert!(
            !log.contains("forbidden") && !log.contains("Forbidden"),
            "{}: refused after the uninstall:\n{log}",
            pod.name_any()
        );
    }

    // Reinstall: Helm adopts the kept objects and the new operator manages the MailQueue again.
    helm_install(plane, home.path()).await;
    let patch = serde_json::json!({"spec": {"drain": true}});
    mailqueues.patch("lists", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("drain is requested");
    let (ok, out) = tool(
        plane,
        home.path(),
        "kubectl",
        &["-n", NAMESPACE, "wait", "--for=condition=Drained", "mq/lists", "--timeout=120s"],
    )
    .await;
    assert!(ok, "the reinstalled operator did not take the MailQueue over: {out}");
    assert!(entries(&qfiles.join("bad"), "").is_empty(), "entries went to bad/");
}

/// The runner PodMonitor renders only when asked for (its CRD is not on this server), and
/// selects the runner pods by the labels the operator puts on them.
#[tokio::test]
async fn the_runner_pod_monitor_renders_only_when_asked_for() {
    let plane = shared_cluster().await.plane();
    let home = tempfile::tempdir().expect("helm home");
    let chart = chart_dir();
    let chart = chart.to_str().expect("chart path is UTF-8");
    let (ok, rendered) = tool(plane, home.path(), "helm", &["template", RELEASE, chart]).await;
    assert!(ok && !rendered.contains("kind: PodMonitor"), "{rendered}");
    let (ok, rendered) =
        tool(plane, home.path(), "helm", &["template", RELEASE, chart, "--set", "metrics.podMonitor.enabled=true"])
            .await;
    assert!(ok && rendered.contains("kind: PodMonitor"), "{rendered}");
    let monitor = rendered.split("---").find(|d| d.contains("kind: PodMonitor")).unwrap_or_default();
    assert!(
        monitor.contains("app.kubernetes.io/name: mailqueue-runner") && monitor.contains("port: metrics"),
        "{monitor}"
    );
    assert!(rendered.contains("helm.sh/resource-policy: keep"), "the runner RBAC is not kept on uninstall");
}
