//! What the operator's end-to-end tests share: a namespace on the test binary's real cluster
//! (control plane and a real kubelet node running the project's image), a local volume for the
//! Mailman tree, the real operator binary, and an SMTP sink on the node IP.

#![allow(dead_code)] // each test binary uses its own subset

pub mod smtp;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::conditions::is_crd_established;
use kube::runtime::wait::await_condition;
use kube::{Api, Client, CustomResourceExt, ResourceExt};
use mailqueue_contract::crd::MailQueue;
use mailqueue_contract::crd::MailQueueStatus;
use mailqueue_testenv::images::{self, ImageArchive, NONROOT_UID};
use mailqueue_testenv::{cluster, Cluster, ControlPlane, FailureReport};
use smtp::Sink;

/// How long a test waits for the cluster to reach a state before failing.
pub const PATIENCE: Duration = Duration::from_secs(120);
/// The project's image (the Dockerfile's runtime stage with this build's binaries), as the
/// operator names it in runner pods and Jobs.
pub const RUNNER_IMAGE: &str = "mailqueue-operator:e2e";
/// The same, fully qualified, as containerd stores it.
const IMAGE_REFERENCE: &str = "docker.io/library/mailqueue-operator:e2e";
/// The uid runner pods run as (the image's user) and test queue files belong to.
pub const RUNNER_UID: u32 = NONROOT_UID;
/// The claim the test MailQueues use.
pub const CLAIM: &str = "mailman-data";
/// The address on which host-side test servers (SMTP sinks, REST APIs) listen and by which
/// runner pods reach them.
pub const HOST_IP: &str = "10.200.0.1";

/// One test's namespace on the cluster, with the claim [`CLAIM`] bound to a local volume.
pub struct Setup {
    pub cluster: &'static Cluster,
    pub plane: &'static ControlPlane,
    pub client: Client,
    pub namespace: String,
    pub volumes: tempfile::TempDir,
    _report: FailureReport,
}

/// The project's image built from this build's binaries (cached by their digest; built once per
/// test binary).
pub async fn product_image() -> ImageArchive {
    static IMAGE: tokio::sync::OnceCell<ImageArchive> = tokio::sync::OnceCell::const_new();
    IMAGE
        .get_or_init(|| async {
            let runner = runner_binary();
            let operator = PathBuf::from(env!("CARGO_BIN_EXE_mailqueue-operator"));
            tokio::task::spawn_blocking(move || images::product(IMAGE_REFERENCE, &runner, &operator))
                .await
                .expect("image build task")
                .expect("the project's image builds")
        })
        .await
        .clone()
}

/// The test binary's cluster, with the project's image loaded.
pub async fn shared_cluster() -> &'static Cluster {
    let image = product_image().await;
    cluster::shared(vec![image]).await.expect("the cluster starts")
}

impl Setup {
    /// A fresh namespace with the CRD installed, the runners' ServiceAccount and RBAC, and the
    /// claim bound to a fresh local volume owned by the runners' uid.
    pub async fn new(namespace: &str) -> Self {
        let cluster = shared_cluster().await;
        let plane = cluster.plane();
        let report = cluster.report_on_failure();
        let client = plane.client().expect("admin client");
        install_crd(&client).await;
        runner_namespace(plane, &client, namespace).await;
        let volumes = tempfile::tempdir().expect("volume root");
        let claim = volumes.path().join(namespace).join(CLAIM);
        cluster.local_volume(namespace, CLAIM, &claim, RUNNER_UID).await.expect("local volume");
        Self { cluster, plane, client, namespace: namespace.to_owned(), volumes, _report: report }
    }

    /// Every container's log of a pod, through the logs API.
    pub async fn pod_log(&self, pod: &str) -> String {
        self.cluster.node().pod_log(&self.namespace, pod).await
    }

    /// The claim's directory on the node.
    pub fn claim_dir(&self) -> PathBuf {
        self.volumes.path().join(&self.namespace).join(CLAIM)
    }

    pub fn mailqueues(&self) -> Api<MailQueue> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Starts the operator binary watching this namespace.
    pub fn operator(&self, identity: &str) -> Operator {
        self.operator_for(identity, &self.namespace)
    }

    /// Starts the operator binary watching `namespace` (which no node serves, for tests that
    /// measure the operator alone).
    pub fn operator_for(&self, identity: &str, namespace: &str) -> Operator {
        let port = free_port();
        let log = self.volumes.path().join(format!("{identity}.log"));
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("operator log file");
        let err = out.try_clone().expect("operator log file");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailqueue-operator"))
            .args(["--namespace", namespace, "--leader-lease-namespace", namespace])
            .args(["--runner-image", RUNNER_IMAGE, "--runner-grace-period", "15", "--identity", identity])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("KUBECONFIG", self.plane.kubeconfig())
            .env("RUST_LOG", "info,kube=warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .expect("operator binary starts");
        Operator { child, port, log }
    }

    /// Runs kubectl against the control plane; returns (success, stdout + stderr).
    pub async fn kubectl(&self, args: &[&str]) -> (bool, String) {
        let output = tokio::process::Command::new(self.plane.binaries().path("kubectl"))
            .args(["--namespace", &self.namespace])
            .args(args)
            .env("KUBECONFIG", self.plane.kubeconfig())
            .output()
            .await
            .expect("kubectl runs");
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.success(), text)
    }
}

/// Creates `namespace` with the ServiceAccount the runner pods run as, allowed what the chart
/// allows it (its slice Leases).
pub async fn runner_namespace(plane: &ControlPlane, client: &Client, namespace: &str) {
    plane.create_namespace(namespace).await.expect("namespace is created");
    let sa: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "mailqueue-runner"}})).expect("service account");
    Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &sa)
        .await
        .expect("runner service account is created");
    let role: Role = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "mailqueue-runner"},
        "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                   "verbs": ["get", "list", "watch", "create", "update"]}],
    }))
    .expect("role");
    Api::<Role>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &role)
        .await
        .expect("runner role");
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "mailqueue-runner"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "mailqueue-runner"},
        "subjects": [{"kind": "ServiceAccount", "name": "mailqueue-runner", "namespace": namespace}],
    }))
    .expect("role binding");
    Api::<RoleBinding>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &binding)
        .await
        .expect("runner role binding");
}

/// Gives `path` (a file, or a directory and everything in it) to the runners' uid, as files in
/// a Mailman tree belong to Mailman's user.
pub fn hand_to_runner(path: &Path) {
    std::os::unix::fs::chown(path, Some(RUNNER_UID), Some(RUNNER_UID)).expect("chown");
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("directory listing").flatten() {
            hand_to_runner(&entry.path());
        }
    }
}

/// A running operator process; killed when dropped.
pub struct Operator {
    pub child: tokio::process::Child,
    pub port: u16,
    log: PathBuf,
}

impl Drop for Operator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!("==> operator log {} (last 60 lines) <==", self.log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

impl Operator {
    /// Sends SIGTERM and returns the exit code.
    pub async fn terminate(mut self) -> Option<i32> {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
        }
        tokio::time::timeout(PATIENCE, self.child.wait()).await.ok()?.ok()?.code()
    }
}

impl Operator {
    /// GETs `path` from the operator's HTTP endpoint; returns (status code, body), status 0
    /// when nothing listens.
    pub async fn get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Not listening yet reads as status 0, so callers can wait for it.
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return (0, String::new());
        };
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).await.expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("response");
        let code = response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        (code, body)
    }

    /// The value of a metric without labels, from `/metrics`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await;
        body.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }
}

/// Applies the generated CRD and waits until the API server serves it.
pub async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = MailQueue::crd();
    let name = crd.metadata.name.clone().expect("CRD name");
    crds.patch(&name, &PatchParams::apply("e2e").force(), &Patch::Apply(&crd)).await.expect("CRD is applied");
    tokio::time::timeout(PATIENCE, await_condition(crds, &name, is_crd_established()))
        .await
        .expect("CRD is established in time")
        .expect("CRD watch works");
}

/// The `mailqueue-runner` binary built in the same target directory as this test.
pub fn runner_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/mailqueue-runner
    let path = exe.parent().and_then(Path::parent).map(|dir| dir.join("mailqueue-runner")).expect("target dir");
    assert!(path.is_file(), "{} is missing: run `cargo build -p mailqueue-runner` first", path.display());
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Polls `check` until it returns `Some`, or fails the test after [`PATIENCE`] with `what`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "gave up after {PATIENCE:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A MailQueue from YAML text.
pub fn mailqueue(yaml: &str) -> MailQueue {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("test MailQueue does not parse: {e}\n{yaml}"))
}

pub fn spec_yaml(name: &str, slices: u32, smtp_port: u16) -> MailQueue {
    mailqueue(&format!(
        "apiVersion: mailqueue.dev/v1alpha1
kind: MailQueue
metadata: {{name: {name}}}
spec:
  storage: {{claimName: {claim}, queueDir: qfiles}}
  queues: [{{name: out, slices: {slices}}}]
  smtp: {{host: {host}, port: {smtp_port}, connectionsPerSlice: 1}}
",
        claim = CLAIM,
        host = HOST_IP
    ))
}

/// Creates the queue directories the way a Mailman installation has them, owned by its user.
pub fn make_queue_dirs(qfiles: &Path) {
    for queue in ["out", "retry", "shunt", "bad"] {
        std::fs::create_dir_all(qfiles.join(queue)).expect("queue directory");
    }
    hand_to_runner(qfiles);
}

pub async fn apply(setup: &Setup, mq: &MailQueue) {
    setup
        .mailqueues()
        .patch(&mq.name_any(), &PatchParams::apply("e2e").force(), &Patch::Apply(mq))
        .await
        .expect("MailQueue is applied");
}

/// Waits until condition `type_` of the MailQueue has `status` for its current generation.
pub async fn wait_condition(setup: &Setup, name: &str, type_: &str, status: &str) -> MailQueue {
    let check = |mq: Option<&MailQueue>| {
        mq.is_some_and(|mq| {
            let generation = mq.metadata.generation;
            mq.status.as_ref().is_some_and(|s| {
                s.observed_generation == generation
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == type_ && c.status == status && c.observed_generation == generation)
            })
        })
    };
    match tokio::time::timeout(PATIENCE, await_condition(setup.mailqueues(), name, check)).await {
        Ok(Ok(Some(mq))) => mq,
        Ok(other) => panic!("watching {name} for {type_}={status}: {other:?}"),
        Err(_) => {
            let now = setup.mailqueues().get(name).await.ok().and_then(|mq| mq.status);
            panic!("{name} did not reach {type_}={status} within {PATIENCE:?}; status: {now:#?}")
        }
    }
}

pub async fn runner_pods(setup: &Setup, name: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let mut list = pods
        .list(&ListParams::default().labels(&format!("mailqueue.dev/mailqueue={name}")))
        .await
        .expect("pods are listed")
        .items;
    list.sort_by_key(|p| p.name_any());
    list
}

pub fn status(mq: &MailQueue) -> &MailQueueStatus {
    mq.status.as_ref().expect("status is written")
}

/// Entries of `dir` whose name ends with `ext`.
pub fn entries(dir: &Path, ext: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.ends_with(ext)).collect())
        .unwrap_or_default()
}

/// A Mailman 3 entry of the shared conformance vectors, with what must reach the wire.
pub struct Vector {
    pub file: PathBuf,
    /// `<time>+<digest>`: the entry's name without `.pck`.
    pub filebase: String,
    pub message: Vec<u8>,
    pub recipients: Vec<String>,
}

/// Every Mailman 3 vector.
pub fn mailman3_vectors() -> Vec<Vector> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors");
    let text = std::fs::read_to_string(root.join("manifest.json")).expect("the conformance vectors are present");
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("manifest is JSON");
    let list = manifest["vectors"].as_array().cloned().unwrap_or_default();
    list.iter()
        .filter(|v| v["version"] == "mailman3")
        .map(|v| {
            let rcpts = v["expected_recipients"].as_array().cloned().unwrap_or_default();
            Vector {
                file: root.join(v["path"].as_str().unwrap_or_default()),
                filebase: v["filebase"].as_str().unwrap_or_default().to_owned(),
                message: base64::engine::general_purpose::STANDARD
                    .decode(v["expected_message_b64"].as_str().unwrap_or_default())
                    .expect("expected message is base64"),
                recipients: rcpts.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect(),
            }
        })
        .collect()
}

/// Puts `copies` copies of every vector into `dir`. A copy's digest is the original's
/// rotated, which spreads the copies over other slices.
pub fn queue_copies(vectors: &[Vector], dir: &Path, rounds: std::ops::Range<usize>) {
    for round in rounds {
        for v in vectors {
            let (time, digest) = v.filebase.split_once('+').expect("a Mailman 3 file base is <time>+<digest>");
            let digest = format!("{}{}", &digest[round * 7..], &digest[..round * 7]);
            let entry = dir.join(format!("{time}+{digest}.pck"));
            std::fs::copy(&v.file, &entry).expect("entry is queued");
            hand_to_runner(&entry);
        }
    }
}

/// (message, recipient) -> count, for `copies` deliveries of every vector.
pub fn expected_deliveries(vectors: &[Vector], copies: usize) -> BTreeMap<(Vec<u8>, String), usize> {
    let mut m = BTreeMap::new();
    for v in vectors {
        for r in &v.recipients {
            *m.entry((v.message.clone(), r.clone())).or_default() += copies;
        }
    }
    m
}

/// (message, recipient) -> count, of what reached the sink.
pub fn deliveries(sink: &Sink) -> BTreeMap<(Vec<u8>, String), usize> {
    let mut m = BTreeMap::new();
    for d in sink.deliveries() {
        for r in d.rcpts {
            *m.entry((d.data.clone(), r)).or_default() += 1;
        }
    }
    m
}
