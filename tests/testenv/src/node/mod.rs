//! A stand-in for a kubelet: a Ready Node whose pods run as local processes.
//!
//! What it does, and how it differs from a kubelet:
//! - It registers the Node (Ready, 127.0.0.1) and renews its Lease in
//!   `kube-node-lease` every few seconds, so the node-lifecycle controller leaves it
//!   alone.
//! - It is the scheduler too: every pod without `spec.nodeName` (in its namespaces)
//!   is bound to it, whatever its scheduler name, selectors or tolerations.
//! - Each container runs as a local process in its own process group: the image
//!   names a binary through [`NodeConfig::image`]; see [`NodeConfig`] for the rule
//!   for `command`. The environment is the container's (`env`, `envFrom`, `$(VAR)`
//!   expansion, field, ConfigMap and Secret references) plus the host's `PATH`,
//!   `HOME`, `TMPDIR`, `KUBECONFIG` and `RUST_LOG`/`RUST_BACKTRACE`/`LLVM_PROFILE_FILE`, and
//!   `HOSTNAME` = pod name. Without `workingDir` a process starts in a per-pod
//!   directory.
//! - Volumes are host directories (see the `volumes` rules below). Processes cannot
//!   see container paths, so **every occurrence of a container mount path in
//!   `command`, `args`, env values and `workingDir` is replaced by its host
//!   directory**, as a whole path or the start of one (`--queue=/var/spool/mq/in` with
//!   `/var/spool/mq` mounted becomes `--queue=<host dir>/in`; `/var/spool/mqx` is left
//!   alone). Paths inside files (a config file from a ConfigMap) are not rewritten.
//! - Volumes: `persistentVolumeClaim` -> `<volume_root>/<namespace>/<claim name>`,
//!   shared by every pod mounting the claim and kept after them (the claim need not
//!   be bound); `emptyDir` -> a fresh per-pod directory; `configMap`, `secret`,
//!   `downwardAPI`, `projected` -> per-pod files written at start (a projected
//!   service-account token is real); `hostPath` -> the path itself.
//! - API access: a pod's token volume (the projected `kube-api-access-*` volume that
//!   admission adds) is written with a real token of the pod's service account, and,
//!   when the node knows the API server's URL ([`NodeConfig::api_server`], set by
//!   [`crate::ControlPlane::node_config`]), containers mounting it get `KUBECONFIG`
//!   pointing at a kubeconfig with that token, the cluster CA and the pod's namespace.
//!   `kube::Client::try_default()` in the process then acts as the pod's service
//!   account; code that insists on in-cluster config (fixed paths under
//!   `/var/run/secrets`) cannot work here.
//! - Each pod gets its own loopback address (127.1.x.y) as `status.podIP`; a process
//!   that listens on its pod IP (env `fieldRef: status.podIP`) can share a port number
//!   with other pods, one that listens on 0.0.0.0 cannot.
//! - Status: Pending, then Running with container statuses, `Ready` from the HTTP,
//!   TCP or exec readiness probe (run at most 1 s apart, whatever `periodSeconds`
//!   says), exit codes, Succeeded/Failed, restarts per `restartPolicy` with
//!   `restartCount` and a short back-off (0.2 s doubling to 3 s). Init containers run
//!   one by one first. Liveness and startup probes, resource limits, ports, security
//!   contexts (users, read-only root, capabilities) and image pull settings are not
//!   enforced: processes run as the test's user.
//! - Deletion (`deletionTimestamp` set): SIGTERM to each container's main process,
//!   SIGKILL to its whole process group after the grace period, then the pod object
//!   is removed (delete with grace 0, preconditioned on its uid), as kubelet does.
//! - Termination messages: each run gets an empty host file for the container's
//!   `terminationMessagePath` (default `/dev/termination-log`; occurrences of that path
//!   in `command`, `args` and env are rewritten like mount paths); what the run wrote
//!   there (up to 4096 bytes) becomes `state.terminated.message`. The policy
//!   `FallbackToLogsOnError` is not applied.
//! - Container ids are `testenv://<pid>`; [`container_pid`] reads one, so a test can
//!   SIGKILL a container to play a crash.
//! - Logs: stdout and stderr of every run of a container are appended to one file
//!   per container ([`Node::pod_log`]); they are printed when a [`Node`] is dropped
//!   during a panic.

mod launch;
mod pod;
mod probe;
mod volumes;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    Binding, Node as NodeObject, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, ObjectReference,
    Pod,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

use crate::process::log_tail;
use pod::Stop;

/// How often the node renews its Lease; the controller manager's grace period is 50 s.
const HEARTBEAT: Duration = Duration::from_secs(5);
const LEASE_SECONDS: i32 = 40;
const BIND_ATTEMPTS: u32 = 60;

/// Why the node could not start or could not run a pod. Pod errors appear in the
/// pod's status (as kubelet shows them) and in the node's own log.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image {image} has no binary in the node's image map and the container gives no command")]
    UnknownImage { image: String },
    #[error("{kind} {namespace}/{name} does not exist")]
    Missing {
        kind: &'static str,
        namespace: String,
        name: String,
    },
    #[error("key {key} is not in {name}")]
    MissingKey { name: String, key: String },
    #[error("the node stand-in does not support {what}")]
    Unsupported { what: String },
}

/// What the node runs and where it keeps volumes.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The Node's name; unique among the nodes of one control plane.
    pub name: String,
    /// Image name -> local binary. An image is looked up as written, then without its
    /// tag or digest. A container with no `command` runs the image's binary with its
    /// `args`; a `command` whose first word has the binary's file name (e.g.
    /// `/usr/local/bin/mailqueue-runner`) runs the binary with the rest; any other
    /// `command` runs as written on the host (`/bin/sh -c ...`).
    pub image_map: BTreeMap<String, PathBuf>,
    /// Where PVC-backed volumes live: `<volume_root>/<namespace>/<claim>`.
    pub volume_root: PathBuf,
    /// Only pods in these namespaces are bound and run; all namespaces if empty. Set
    /// it when tests share a control plane, so their nodes leave each other's pods
    /// alone.
    pub namespaces: BTreeSet<String>,
    /// The API server URL for pods. With it, a container that mounts its pod's
    /// service-account token volume gets `KUBECONFIG` pointing at a kubeconfig that
    /// uses that token (so `Client::try_default()` in the process acts as the pod's
    /// service account, RBAC and all). [`crate::ControlPlane::node_config`] sets it.
    pub api_server: Option<String>,
}

impl NodeConfig {
    pub fn new(name: impl Into<String>, volume_root: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            image_map: BTreeMap::new(),
            volume_root: volume_root.into(),
            namespaces: BTreeSet::new(),
            api_server: None,
        }
    }

    /// Sets [`NodeConfig::api_server`].
    pub fn api_server(mut self, url: impl Into<String>) -> Self {
        self.api_server = Some(url.into());
        self
    }

    /// Maps an image name to the binary standing in for it.
    pub fn image(mut self, image: impl Into<String>, binary: impl Into<PathBuf>) -> Self {
        self.image_map.insert(image.into(), binary.into());
        self
    }

    /// Restricts the node to pods of this namespace (may be given several times).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespaces.insert(namespace.into());
        self
    }
}

/// State shared by the node's tasks.
pub(crate) struct Shared {
    client: Client,
    config: NodeConfig,
    /// `node.log` (the node's own), `logs/<namespace>/<pod>/<container>.log`, and
    /// `pods/<uid>/` (working directories and per-pod volumes).
    dir: PathBuf,
    /// One task per pod; aborting one kills its processes.
    pods: std::sync::Mutex<JoinSet<()>>,
}

impl Shared {
    fn pod_tasks(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        // A panicked pod task leaves the set itself intact.
        self.pods.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends a line to the node's own log (what went wrong that no pod status shows).
    fn note(&self, line: &str) {
        let path = self.dir.join("node.log");
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(file, "{} {line}", Timestamp::now());
        }
    }

    fn serves(&self, pod: &Pod) -> bool {
        self.config.namespaces.is_empty()
            || pod
                .namespace()
                .is_some_and(|ns| self.config.namespaces.contains(&ns))
    }
}

/// The process id of a running container of `pod`, from its status (the node reports
/// container ids as `testenv://<pid>`): a test can signal it to play a crash.
pub fn container_pid(pod: &Pod, container: &str) -> Option<i32> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let status = statuses.iter().find(|s| s.name == container)?;
    status.container_id.as_deref()?.strip_prefix(pod::CONTAINER_ID_SCHEME)?.parse().ok()
}

/// A running node stand-in. Dropping it (or [`Node::stop`]) kills every pod process
/// at once; the Node object stays (its Lease goes stale).
pub struct Node {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Node {
    /// Registers the Node, starts renewing its Lease and starts watching pods.
    pub async fn start(client: Client, config: NodeConfig) -> Result<Self, NodeError> {
        let dir = tempfile::Builder::new()
            .prefix("mq-testenv-node-")
            .tempdir()
            .map_err(|source| NodeError::Io {
                action: "create a directory in",
                path: std::env::temp_dir(),
                source,
            })?;
        crate::process::remove_at_exit(dir.path());
        let shared = Arc::new(Shared {
            client,
            config,
            dir: dir.path().to_owned(),
            pods: std::sync::Mutex::new(JoinSet::new()),
        });
        let node = register(&shared).await?;
        renew_lease(&shared, &node).await?;
        let tasks = vec![
            tokio::spawn(heartbeat(shared.clone(), node)),
            tokio::spawn(watch_pods(shared.clone())),
        ];
        Ok(Self {
            shared,
            tasks,
            _dir: dir,
        })
    }

    pub fn name(&self) -> &str {
        &self.shared.config.name
    }

    /// What one container of the pod wrote to stdout and stderr, every run appended;
    /// empty if it never ran here.
    pub fn container_log(&self, namespace: &str, pod: &str, container: &str) -> String {
        let text = std::fs::read(self.container_log_path(namespace, pod, container)).unwrap_or_default();
        String::from_utf8_lossy(&text).into_owned()
    }

    /// Everything the pod's containers wrote, each container's output headed by
    /// `==> <name> <==`, for failure messages; empty if the pod never ran here.
    pub fn pod_log(&self, namespace: &str, pod: &str) -> String {
        self.pod_logs(namespace, pod)
            .iter()
            .map(|(container, path)| {
                let text = std::fs::read(path).unwrap_or_default();
                format!("==> {container} <==\n{}", String::from_utf8_lossy(&text))
            })
            .collect()
    }

    /// The log file of one container of a pod (it may not exist yet).
    pub fn container_log_path(&self, namespace: &str, pod: &str, container: &str) -> PathBuf {
        self.shared
            .dir
            .join("logs")
            .join(namespace)
            .join(pod)
            .join(format!("{container}.log"))
    }

    /// Kills every pod process at once and stops the node's tasks.
    pub async fn stop(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
        let mut pods = std::mem::take(&mut *self.shared.pod_tasks());
        pods.shutdown().await;
    }

    fn pod_logs(&self, namespace: &str, pod: &str) -> Vec<(String, PathBuf)> {
        let dir = self.shared.dir.join("logs").join(namespace).join(pod);
        let mut logs: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter_map(|path| {
                let container = path.file_stem()?.to_string_lossy().into_owned();
                (path.extension()? == "log").then_some((container, path))
            })
            .collect();
        logs.sort();
        logs
    }

    fn all_logs(&self) -> Vec<(String, PathBuf)> {
        let mut logs = vec![("node stand-in".to_owned(), self.shared.dir.join("node.log"))];
        let namespaces = std::fs::read_dir(self.shared.dir.join("logs")).into_iter().flatten().flatten();
        for namespace in namespaces {
            for pod in std::fs::read_dir(namespace.path()).into_iter().flatten().flatten() {
                let ns = namespace.file_name().to_string_lossy().into_owned();
                let name = pod.file_name().to_string_lossy().into_owned();
                for (container, path) in self.pod_logs(&ns, &name) {
                    logs.push((format!("pod {ns}/{name} container {container}"), path));
                }
            }
        }
        logs
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (what, path) in self.all_logs() {
                eprintln!("==> {what} ({}) <==\n{}", path.display(), log_tail(&path, 40));
            }
        }
        for task in &self.tasks {
            task.abort();
        }
        // Dropping the set aborts the pod tasks, which kill their processes.
        drop(std::mem::take(&mut *self.shared.pod_tasks()));
    }
}

async fn register(shared: &Shared) -> Result<NodeObject, NodeError> {
    let name = shared.config.name.clone();
    let nodes: Api<NodeObject> = Api::all(shared.client.clone());
    let object = NodeObject {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/hostname".to_owned(), name.clone()),
                ("kubernetes.io/os".to_owned(), "linux".to_owned()),
                ("kubernetes.io/arch".to_owned(), std::env::consts::ARCH.to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: None,
    };
    match nodes.create(&PostParams::default(), &object).await {
        Ok(_) => {}
        // A node of this name from an earlier run: taken over.
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(err) => return Err(err.into()),
    }
    let capacity = BTreeMap::from([
        ("cpu".to_owned(), Quantity("8".to_owned())),
        ("memory".to_owned(), Quantity("16Gi".to_owned())),
        ("pods".to_owned(), Quantity("250".to_owned())),
        ("ephemeral-storage".to_owned(), Quantity("100Gi".to_owned())),
    ]);
    let now = Time(Timestamp::now());
    let condition = |kind: &str, status: &str, reason: &str| NodeCondition {
        type_: kind.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
        ..NodeCondition::default()
    };
    let status = NodeStatus {
        conditions: Some(vec![
            condition("Ready", "True", "KubeletReady"),
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID"),
        ]),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".to_owned(),
                address: "127.0.0.1".to_owned(),
            },
            NodeAddress {
                type_: "Hostname".to_owned(),
                address: name.clone(),
            },
        ]),
        allocatable: Some(capacity.clone()),
        capacity: Some(capacity),
        node_info: Some(NodeSystemInfo {
            architecture: std::env::consts::ARCH.to_owned(),
            operating_system: "linux".to_owned(),
            os_image: "mailqueue-testenv node stand-in".to_owned(),
            kubelet_version: "v1.36.3".to_owned(),
            container_runtime_version: "testenv://local-processes".to_owned(),
            ..NodeSystemInfo::default()
        }),
        ..NodeStatus::default()
    };
    let patch = serde_json::json!({ "status": status });
    Ok(nodes
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?)
}

/// Creates or renews the node's Lease, owned by the Node so it goes with it.
async fn renew_lease(shared: &Shared, node: &NodeObject) -> Result<(), NodeError> {
    let name = shared.config.name.clone();
    let leases: Api<Lease> = Api::namespaced(shared.client.clone(), "kube-node-lease");
    let owner = OwnerReference {
        api_version: NodeObject::api_version(&()).into_owned(),
        kind: NodeObject::kind(&()).into_owned(),
        name: name.clone(),
        uid: node.uid().unwrap_or_default(),
        ..OwnerReference::default()
    };
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.clone()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..LeaseSpec::default()
        }),
    };
    let params = PatchParams::apply("mailqueue-testenv-node").force();
    leases.patch(&name, &params, &Patch::Apply(&lease)).await?;
    Ok(())
}

async fn heartbeat(shared: Arc<Shared>, node: NodeObject) {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        if let Err(err) = renew_lease(&shared, &node).await {
            // The API server may be restarting; the next beat tries again.
            shared.note(&format!("could not renew the node lease: {err}"));
        }
    }
}

/// A pod's task, and the way to tell it to stop.
struct Running {
    stop: watch::Sender<Option<Stop>>,
    task: AbortHandle,
}

async fn watch_pods(shared: Arc<Shared>) {
    let pods: Api<Pod> = Api::all(shared.client.clone());
    let mut events = watcher::watcher(pods, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut binding: BTreeSet<String> = BTreeSet::new();
    // Pods seen during a re-list: those not seen again are gone.
    let mut relisted: Option<BTreeSet<String>> = None;
    while let Some(event) = events.next().await {
        running.retain(|_, r| !r.task.is_finished());
        match event {
            Ok(Event::Init) => relisted = Some(BTreeSet::new()),
            Ok(Event::InitApply(pod)) | Ok(Event::Apply(pod)) => {
                if let (Some(seen), Some(uid)) = (relisted.as_mut(), pod.uid()) {
                    seen.insert(uid);
                }
                on_pod(&shared, pod, &mut running, &mut binding);
            }
            Ok(Event::InitDone) => {
                if let Some(seen) = relisted.take() {
                    for (uid, pod) in running.iter() {
                        if !seen.contains(uid) {
                            let _ = pod.stop.send(Some(Stop::Now));
                        }
                    }
                }
            }
            Ok(Event::Delete(pod)) => {
                if let Some(pod) = pod.uid().and_then(|uid| running.get(&uid)) {
                    let _ = pod.stop.send(Some(Stop::Now));
                }
            }
            Err(err) => shared.note(&format!("watching pods: {err}")),
        }
    }
}

fn on_pod(shared: &Arc<Shared>, pod: Pod, running: &mut HashMap<String, Running>, binding: &mut BTreeSet<String>) {
    if !shared.serves(&pod) {
        return;
    }
    let Some(uid) = pod.uid() else {
        return;
    };
    let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let deleting = pod.metadata.deletion_timestamp.is_some();
    match node_name {
        None if !deleting && binding.insert(uid.clone()) => {
            tokio::spawn(bind(shared.clone(), pod));
        }
        Some(node) if node == shared.config.name => {
            let grace = pod.metadata.deletion_grace_period_seconds;
            if let Some(pod) = running.get(&uid) {
                if deleting {
                    let grace = grace.map(|s| Duration::from_secs(s.max(0) as u64));
                    let _ = pod.stop.send_if_modified(|stop| {
                        let first = stop.is_none();
                        if first {
                            *stop = Some(Stop::Graceful(grace));
                        }
                        first
                    });
                }
                return;
            }
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            let finished = matches!(phase, Some("Succeeded") | Some("Failed"));
            if finished && !deleting {
                // Ran to completion under an earlier task of this node; nothing to do.
                return;
            }
            // Deleted before this node ran it (e.g. a node restarted): nothing to wait for.
            let initial = deleting.then_some(Stop::Graceful(Some(Duration::ZERO)));
            let (stop, receiver) = watch::channel(initial);
            let mut tasks = shared.pod_tasks();
            while tasks.try_join_next().is_some() {}
            let task = tasks.spawn(pod::run(shared.clone(), pod, next_pod_ip(), receiver));
            running.insert(uid, Running { stop, task });
        }
        _ => {}
    }
}

async fn bind(shared: Arc<Shared>, pod: Pod) {
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            uid: pod.uid(),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Node".to_owned()),
            name: Some(shared.config.name.clone()),
            ..ObjectReference::default()
        },
    };
    let pods: Api<Pod> = Api::namespaced(shared.client.clone(), &namespace);
    // Retried while the API server is unreachable (a restart test); a conflict means
    // the pod is bound or gone.
    for attempt in 0..BIND_ATTEMPTS {
        let result: Result<serde_json::Value, _> = pods
            .create_subresource("binding", &name, &PostParams::default(), &binding)
            .await;
        match result {
            Ok(_) => return,
            Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => return,
            Err(err) => {
                shared.note(&format!("could not bind pod {namespace}/{name} (attempt {attempt}): {err}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// A loopback address per pod: 127.1.0.1, 127.1.0.2, ...
fn next_pod_ip() -> IpAddr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let [_, _, high, low] = (n / 254 * 256 + n % 254 + 1).to_be_bytes();
    IpAddr::V4(Ipv4Addr::new(127, 1, high, low))
}
