//! The Helm chart on a real control plane: it lints clean, everything it renders passes the API
//! server's validation (server-side dry run), and, installed for real, its operator Deployment
//! runs on the real node, from the project's image, as the chart's ServiceAccount, with the chart's RBAC and nothing
//! more: two replicas elect a leader, runner pods come up as their own ServiceAccount, deliver a
//! queue of real Mailman entries and drain. A permission missing from the chart fails here.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::conditions::is_crd_established;
use kube::runtime::wait::await_condition;
use kube::{Api, Client, ResourceExt};
use mailqueue_contract::crd::MailQueue;
use mailqueue_testenv::{Cluster, ControlPlane};
use support::smtp::Sink;
use support::{
    entries, eventually, hand_to_runner, make_queue_dirs, shared_cluster, spec_yaml, CLAIM, PATIENCE, RUNNER_UID,
};

const RELEASE: &str = "mq";
/// `<release>-<chart>`, the name of the operator's Deployment, ServiceAccount and leader Lease.
const FULLNAME: &str = "mq-mailqueue-operator";
const OPERATOR_IMAGE: &str = "mailqueue-operator";
const RUNNER_IMAGE: &str = support::RUNNER_IMAGE;

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/mailqueue-operator")
}

#[test]
fn chart_ships_the_generated_crd() {
    let path = chart_dir().join("crds").join(mailqueue_operator::CRD_FILE);
    let shipped = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let generated = mailqueue_operator::crd_yaml().expect("the CRD renders as YAML");
    assert!(
        shipped == generated,
        "{} differs from the Rust types: run `cargo run -p mailqueue-operator --bin crdgen > {}`",
        path.display(),
        path.display()
    );
}

/// No container engine runs here, so the image is not built in the tests; what is checked is
/// the contract between the Dockerfile and the chart: a builder stage and a final stage, both
/// binaries where the chart and the operator expect them, the runner as the entrypoint (runner
/// pods and action Jobs set no command), and a non-root user.
#[test]
fn dockerfile_builds_the_image_the_chart_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).expect("Dockerfile at the repository root");
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    let stages: Vec<&str> = lines.iter().filter(|l| l.starts_with("FROM ")).copied().collect();
    assert_eq!(stages.len(), 2, "a build stage and a final stage: {stages:?}");
    assert!(stages.first().is_some_and(|s| s.ends_with(" AS builder")), "{stages:?}");
    let final_stage = dockerfile.split("\nFROM ").last().unwrap_or_default();
    assert!(
        final_stage.contains("COPY --from=builder /out/mailqueue-runner /out/mailqueue-operator /usr/local/bin/"),
        "the final stage copies both binaries into /usr/local/bin"
    );
    assert!(final_stage.contains(r#"ENTRYPOINT ["/usr/local/bin/mailqueue-runner"]"#), "the runner is the entrypoint");
    let user = final_stage.lines().find_map(|l| l.strip_prefix("USER ")).expect("a USER line in the final stage");
    let uid: u32 = user.split(':').next().and_then(|u| u.trim().parse().ok()).expect("a numeric user id");
    assert_ne!(uid, 0, "the image runs as root");
    assert!(lines.iter().any(|l| l.contains("cargo build --release --locked")), "a locked release build");

    let deployment =
        std::fs::read_to_string(chart_dir().join("templates/deployment.yaml")).expect("deployment template");
    assert!(
        deployment.contains("command: [/usr/local/bin/mailqueue-operator]"),
        "the chart runs the image's operator binary"
    );
}

/// Runs helm or kubectl from the control plane's binaries as its admin; returns (success,
/// stdout, stderr).
async fn tool(
    plane: &ControlPlane,
    helm_home: &Path,
    name: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(plane.binaries().path(name))
        .args(args)
        .env("KUBECONFIG", plane.kubeconfig())
        // helm keeps caches and settings under these; the test leaves the user's alone.
        .env("HELM_CACHE_HOME", helm_home.join("cache"))
        .env("HELM_CONFIG_HOME", helm_home.join("config"))
        .env("HELM_DATA_HOME", helm_home.join("data"))
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{name} runs: {e}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input).await.expect("stdin is written");
    }
    let output = child.wait_with_output().await.expect("the tool finishes");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn chart_lints_clean_and_every_rendering_passes_server_side_dry_run() {
    let plane = shared_cluster().await.plane();
    let _report = plane.report_on_failure();
    let home = tempfile::tempdir().expect("helm home");
    let chart = chart_dir();
    let chart = chart.to_str().expect("chart path is UTF-8");

    let (ok, out, err) = tool(plane, home.path(), "helm", &["lint", "--strict", chart], None).await;
    assert!(ok && out.contains("0 chart(s) failed"), "helm lint:\n{out}{err}");

    plane.create_namespace("chart-dry").await.expect("namespace");
    plane.create_namespace("chart-dry-mail").await.expect("namespace");
    for values in [
        &[][..],
        &["--set", "watchNamespace=chart-dry-mail"][..],
        &["--set", "runner.namespaces={chart-dry,chart-dry-mail}", "--set", "replicaCount=1"][..],
    ] {
        let mut args = vec!["template", RELEASE, chart, "--namespace", "chart-dry", "--include-crds"];
        args.extend_from_slice(values);
        let (ok, rendered, err) = tool(plane, home.path(), "helm", &args, None).await;
        assert!(ok, "helm template {values:?}: {err}");
        let apply = ["apply", "--server-side", "--dry-run=server", "--field-manager=e2e-chart", "-f", "-"];
        let (ok, out, err) = tool(plane, home.path(), "kubectl", &apply, Some(rendered.as_bytes())).await;
        assert!(ok, "server-side dry run of the chart with {values:?} failed:\n{out}{err}\n--- rendered:\n{rendered}");
        for kind in ["customresourcedefinition", "deployment", "serviceaccount", "service/", "rolebinding"] {
            assert!(out.contains(kind), "{kind} missing from the dry run of {values:?}:\n{out}");
        }
    }

    // The ServiceMonitor renders only when asked for (its CRD is not on this server).
    let (ok, rendered, err) = tool(plane, home.path(), "helm", &["template", RELEASE, chart], None).await;
    assert!(ok && !rendered.contains("kind: ServiceMonitor"), "{err}");
    let args = ["template", RELEASE, chart, "--set", "metrics.serviceMonitor.enabled=true"];
    let (ok, rendered, err) = tool(plane, home.path(), "helm", &args, None).await;
    assert!(ok && rendered.contains("kind: ServiceMonitor"), "{err}");

    // The values schema rejects what would only fail later in the cluster.
    for bad in ["replicaCount=-1", "runner.gracePeriodSeconds=2", "image.pullPolicy=Sometimes", "replicas=2"] {
        let (ok, _, err) = tool(plane, home.path(), "helm", &["template", RELEASE, chart, "--set", bad], None).await;
        assert!(!ok && err.contains("schema"), "--set {bad} was accepted: {err}");
    }
}

/// The chart installed in a namespace of the binary's cluster, whose node runs its pods as their
/// ServiceAccounts. One install at a time (the ClusterRole mode watches every namespace); each
/// test uninstalls at its end.
struct Installed {
    cluster: &'static Cluster,
    plane: &'static ControlPlane,
    client: Client,
    namespace: String,
    volumes: tempfile::TempDir,
    helm_home: tempfile::TempDir,
    _one_at_a_time: tokio::sync::MutexGuard<'static, ()>,
}

impl Installed {
    async fn new(namespace: &str, extra_values: &[&str]) -> Self {
        static ONE_INSTALL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let guard = ONE_INSTALL.lock().await;
        let cluster = shared_cluster().await;
        let plane = cluster.plane();
        let client = plane.client().expect("admin client");
        plane.create_namespace(namespace).await.expect("namespace");
        let volumes = tempfile::tempdir().expect("volume root");
        let helm_home = tempfile::tempdir().expect("helm home");
        let claim = volumes.path().join(namespace).join(CLAIM);
        cluster.local_volume(namespace, CLAIM, &claim, RUNNER_UID).await.expect("local volume");
        let chart = chart_dir();
        let mut args = vec!["install", RELEASE, chart.to_str().expect("chart path is UTF-8"), "--namespace", namespace];
        args.extend_from_slice(&["--set", "image.tag=e2e", "--set", "runner.gracePeriodSeconds=15"]);
        let image = format!("image.repository={OPERATOR_IMAGE}");
        let runner = format!("runner.image={RUNNER_IMAGE}");
        args.extend_from_slice(&["--set", &image, "--set", &runner]);
        args.extend_from_slice(extra_values);
        let (ok, out, err) = tool(plane, helm_home.path(), "helm", &args, None).await;
        assert!(ok, "helm install:\n{out}{err}");
        assert!(out.contains("kubectl wait --for=condition=Drained"), "NOTES.txt is shown:\n{out}");
        Self { cluster, plane, client, namespace: namespace.to_owned(), volumes, helm_home, _one_at_a_time: guard }
    }

    /// `helm uninstall`, so that the next install starts from a cluster without this one.
    async fn uninstall(self) {
        let ns = self.namespace.clone();
        let (ok, out, err) = tool(
            self.plane,
            self.helm_home.path(),
            "helm",
            &["uninstall", RELEASE, "--namespace", &ns, "--wait"],
            None,
        )
        .await;
        assert!(ok, "helm uninstall:\n{out}{err}");
    }

    fn mailqueues(&self) -> Api<MailQueue> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn apply(&self, mq: &MailQueue) {
        self.mailqueues()
            .patch(&mq.name_any(), &PatchParams::apply("e2e").force(), &Patch::Apply(mq))
            .await
            .expect("MailQueue is applied");
    }

    async fn kubectl(&self, args: &[&str]) -> (bool, String) {
        let mut all = vec!["--namespace", self.namespace.as_str()];
        all.extend_from_slice(args);
        let (ok, out, err) = tool(self.plane, self.helm_home.path(), "kubectl", &all, None).await;
        (ok, out + &err)
    }

    /// Every log line of the operator and runner pods that shows the API server refusing them,
    /// read through the logs API.
    async fn refusals(&self, pods: &[Pod]) -> Vec<String> {
        let mut refusals = Vec::new();
        for pod in pods {
            let name = pod.name_any();
            let log = self.cluster.node().pod_log(&self.namespace, &name).await;
            refusals.extend(
                log.lines()
                    .filter(|l| l.contains("forbidden") || l.contains("Forbidden"))
                    .map(|l| format!("{name}: {l}")),
            );
        }
        refusals
    }

    async fn run_queue_through_the_charts_operator(&self) {
        let ns = self.namespace.as_str();
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        tokio::time::timeout(PATIENCE, await_condition(crds, "mailqueues.mailqueue.dev", is_crd_established()))
            .await
            .expect("the chart's CRD is established in time")
            .expect("CRD watch works");

        // Two operator replicas run as the chart's ServiceAccount; one leads.
        let selector = format!("app.kubernetes.io/instance={RELEASE},app.kubernetes.io/name=mailqueue-operator");
        let operators = eventually("both operator replicas to be running and ready", || async {
            let pods = self.pods().list(&ListParams::default().labels(&selector)).await.ok()?.items;
            let ready = |p: &Pod| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            };
            (pods.len() == 2 && pods.iter().all(ready)).then_some(pods)
        })
        .await;
        for pod in &operators {
            let account = pod.spec.as_ref().and_then(|s| s.service_account_name.as_deref());
            assert_eq!(account, Some(FULLNAME));
        }
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), ns);
        let leader = eventually("a replica to take the leader Lease", || async {
            leases.get_opt(FULLNAME).await.ok()??.spec?.holder_identity
        })
        .await;
        assert!(operators.iter().any(|p| p.name_any() == leader), "leader {leader} is none of the chart's pods");

        // A queue of real Mailman 3 entries, delivered by runner pods of the chart's runner account.
        let qfiles = self.volumes.path().join(ns).join(CLAIM).join("qfiles");
        make_queue_dirs(&qfiles);
        let queued = queue_mailman3_vectors(&qfiles.join("out"));
        let sink = Sink::start().await;
        let mut mq = spec_yaml("lists", 2, sink.port);
        mq.spec.queues.push(mailqueue_contract::crd::QueueSpec { name: "retry".into(), slices: 1 });
        self.apply(&mq).await;
        let (ok, out) = self.kubectl(&["wait", "--for=condition=Ready", "mq/lists", "--timeout=120s"]).await;
        assert!(ok, "kubectl wait Ready: {out}");
        eventually("the out queue to empty and the status to say so", || async {
            let out = qfiles.join("out");
            let empty = entries(&out, ".pck").is_empty() && entries(&out, ".bak").is_empty();
            let s = self.mailqueues().get("lists").await.ok()?.status?;
            (empty && s.pending == 0 && s.queues.first()?.live_slices == 2).then_some(())
        })
        .await;
        assert!(entries(&qfiles.join("bad"), "").is_empty(), "entries went to bad/");
        assert!(entries(&qfiles.join("shunt"), ".pck").is_empty(), "entries were shunted");
        // Every entry is at least one SMTP transaction (personalized ones are one per recipient).
        let delivered = sink.deliveries().len();
        assert!(delivered >= queued, "{queued} entries left the queue but the sink saw {delivered} transactions");
        let runner_selector = format!("{}=lists", mailqueue_contract::slice::MAILQUEUE_LABEL);
        let runners =
            self.pods().list(&ListParams::default().labels(&runner_selector)).await.expect("pods are listed").items;
        assert_eq!(runners.len(), 3);
        for pod in &runners {
            let account = pod.spec.as_ref().and_then(|s| s.service_account_name.as_deref());
            assert_eq!(account, Some("mailqueue-runner"));
        }

        // Removing a queue deletes its pod and, once released, its Lease.
        mq.spec.queues.retain(|q| q.name == "out");
        self.apply(&mq).await;
        eventually("the retry runner and its Lease to go", || async {
            let gone = self.pods().get_opt("lists-retry-0of1").await.ok()?.is_none();
            (gone && leases.get_opt("lists-retry-0of1").await.ok()?.is_none()).then_some(())
        })
        .await;

        // Drain, as an admin would.
        let (ok, out) =
            self.kubectl(&["patch", "mq", "lists", "--type", "merge", "-p", r#"{"spec":{"drain":true}}"#]).await;
        assert!(ok, "{out}");
        let (ok, out) = self.kubectl(&["wait", "--for=condition=Drained", "mq/lists", "--timeout=120s"]).await;
        if !ok {
            let (_, now) = self.kubectl(&["get", "mq", "lists", "-o", "yaml"]).await;
            panic!("kubectl wait Drained: {out}\n{now}");
        }

        // A compact runs as a Job and is announced with an Event: the chart's rights cover both.
        // (Whether the compact itself succeeds is e2e_actions' business.)
        let request = r#"{"spec":{"compact":{"requestId":"c1","queue":"out"}}}"#;
        let (ok, out) = self.kubectl(&["patch", "mq", "lists", "--type", "merge", "-p", request]).await;
        assert!(ok, "{out}");
        let reasons = [
            "get",
            "events.events.k8s.io",
            "--field-selector",
            "regarding.name=lists",
            "-o",
            "jsonpath={.items[*].reason}",
        ];
        eventually("the compact Job and its start Event", || async {
            let (_, jobs) = self.kubectl(&["get", "jobs", "-o", "name"]).await;
            let (_, events) = self.kubectl(&reasons).await;
            let started = self.mailqueues().get("lists").await.ok()?.status?.actions?.compact?;
            (jobs.contains("job.batch/lists-compact-")
                && events.contains("ActionStarted")
                && started.request_id == "c1")
                .then_some(())
        })
        .await;

        let mut pods = operators;
        pods.extend(runners);
        let refusals = self.refusals(&pods).await;
        assert!(refusals.is_empty(), "the API server refused the chart's accounts:\n{}", refusals.join("\n"));

        // Least privilege: the operator's account cannot list or watch Secrets (it gets the ones
        // a MailQueue names, to check their keys) and touches no Deployments.
        let operator_account = format!("system:serviceaccount:{ns}:{FULLNAME}");
        let runner_account = format!("system:serviceaccount:{ns}:mailqueue-runner");
        for (account, verb, resource) in [
            (&operator_account, "list", "secrets"),
            (&operator_account, "watch", "secrets"),
            (&operator_account, "create", "deployments.apps"),
            (&operator_account, "update", "mailqueues.mailqueue.dev"),
            (&runner_account, "list", "pods"),
            (&runner_account, "delete", "leases.coordination.k8s.io"),
            (&runner_account, "get", "mailqueues.mailqueue.dev"),
        ] {
            let (_, out) = self.kubectl(&["auth", "can-i", verb, resource, "--as", account]).await;
            assert_eq!(out.trim(), "no", "{account} may {verb} {resource}");
        }
    }
}

/// Copies the shared Mailman 3 conformance entries into `out`; returns how many.
fn queue_mailman3_vectors(out: &Path) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors");
    let text = std::fs::read_to_string(root.join("manifest.json"))
        .unwrap_or_else(|e| panic!("the conformance vectors are missing at {}: {e}", root.display()));
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("manifest is JSON");
    let mut count = 0;
    for v in manifest["vectors"].as_array().expect("vector list").iter().filter(|v| v["version"] == "mailman3") {
        let (Some(path), Some(base)) = (v["path"].as_str(), v["filebase"].as_str()) else {
            continue;
        };
        let entry = out.join(format!("{base}.pck"));
        std::fs::copy(root.join(path), &entry).expect("entry is queued");
        hand_to_runner(&entry);
        count += 1;
    }
    assert!(count >= 30, "expected the full Mailman 3 vector set, found {count}");
    count
}

#[tokio::test]
async fn chart_operator_watching_all_namespaces_runs_with_its_cluster_role() {
    let installed = Installed::new("chart-cluster", &[]).await;
    let _report = installed.plane.report_on_failure();
    installed.run_queue_through_the_charts_operator().await;
    installed.uninstall().await;
}

#[tokio::test]
async fn chart_operator_watching_one_namespace_runs_with_namespaced_roles_only() {
    let installed = Installed::new("chart-ns", &["--set", "watchNamespace=chart-ns"]).await;
    let _report = installed.plane.report_on_failure();
    let (ok, out) = installed
        .kubectl(&["get", "clusterroles,clusterrolebindings", "-l", "app.kubernetes.io/instance=mq", "-o", "name"])
        .await;
    assert!(ok && out.trim().is_empty(), "cluster-wide RBAC in namespaced mode: {out}");
    installed.run_queue_through_the_charts_operator().await;
    installed.uninstall().await;
}
