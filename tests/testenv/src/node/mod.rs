//! A real Kubernetes node on this machine: containerd (Debian's, with runc) as a plain background
//! process, the kubelet registered with its own client certificate, kube-proxy in nftables mode,
//! and a bridge CNI network that gives pods their own IPs. Images come from OCI archives built
//! locally ([`crate::images`]); nothing is pulled. Pods run as the cluster enforces: their users,
//! read-only roots, seccomp profiles, probes, resources and images are real.
//!
//! Only one node runs on a machine at a time ([`crate::host`] holds the slot); its state lives
//! in a temporary directory; stopping it (or the test process ending, however it ends) stops
//! every process and container, unmounts what it mounted and puts the machine's network,
//! firewall and sysctls back as they were.

mod config;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node as NodeObject, Pod};
use kube::api::LogParams;
use kube::{Api, Client};

pub(crate) use config::PAUSE_IMAGE;

use crate::control_plane::ControlPlane;
use crate::error::{io, Error, Result};
use crate::host::{self, HostLock, NODE_IP, NODE_NAME};
use crate::images::ImageArchive;
use crate::kubeconfig::{self, Credentials};
use crate::process::{log_tail, remove_at_exit, Process};

/// The kubelet's healthz port (its config binds it to 127.0.0.1).
const KUBELET_HEALTHZ: u16 = 10248;
const CONTAINERD_START: Duration = Duration::from_secs(60);
const NODE_READY: Duration = Duration::from_secs(120);
const PROXY_READY: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The machine made ready for a node (packages, slot, node IP, firewall), before any
/// control plane binds to the node IP.
pub struct HostReady {
    // Held, never read: the machine's node slot is this node's while it lives.
    _slot: HostLock,
    state: tempfile::TempDir,
    teardown: PathBuf,
}

impl HostReady {
    /// Installs what is missing, waits for the machine's node slot and sets up the node IP and
    /// the firewall rules. Blocks: call it from `spawn_blocking`.
    pub fn prepare() -> Result<Self> {
        host::require_root()?;
        host::install_packages()?;
        let slot = host::take_node_slot()?;
        let state = tempfile::Builder::new()
            .prefix("mq-node-")
            .tempdir()
            .map_err(io("create a directory in", std::env::temp_dir()))?;
        let teardown = host::prepare(state.path(), &socket(state.path()))?;
        // After the teardown (registered by prepare), so the watchdog unmounts before it removes.
        remove_at_exit(state.path());
        Ok(Self { _slot: slot, state, teardown })
    }
}

fn socket(state: &Path) -> PathBuf {
    state.join("containerd/containerd.sock")
}

/// A running node. Dropping it (or [`Node::stop`]) stops it and cleans the machine up.
pub struct Node {
    processes: Mutex<Processes>,
    kubelet_args: Vec<String>,
    containerd_args: Vec<String>,
    proxy_healthz: u16,
    // A config, not a client: a client is bound to the runtime it was made on, and a shared node
    // outlives the test that started it.
    config: kube::Config,
    // Dropped last: the slot is released only once the machine is clean.
    host: HostReady,
}

#[derive(Default)]
struct Processes {
    kube_proxy: Option<Process>,
    kubelet: Option<Process>,
    containerd: Option<Process>,
}

impl Node {
    /// Starts containerd, loads `images`, starts the kubelet and kube-proxy against `plane`, and
    /// returns once the Node is Ready and Services are programmed.
    pub async fn start(host: HostReady, plane: &ControlPlane, images: &[ImageArchive]) -> Result<Self> {
        let state = host.state.path().to_owned();
        for dir in ["containerd", "cni/net.d", "cni/ipam", "kubelet", "kubelet-pki", "pod-logs"] {
            let path = state.join(dir);
            std::fs::create_dir_all(&path).map_err(io("create directory", &path))?;
        }
        write(&state.join("containerd/config.toml"), &config::containerd(&state))?;
        write(&state.join("cni/net.d/10-mq.conflist"), &config::cni(&state))?;
        write(&state.join("kubelet/config.yaml"), &config::kubelet(&state, plane.ca_cert()))?;
        let pki = plane.pki();
        let kubelet_kubeconfig = state.join("kubelet/kubeconfig");
        kubeconfig::write(
            &kubelet_kubeconfig,
            &plane.server_url(),
            &pki.ca_cert,
            Credentials::ClientCert { cert: &pki.node_cert, key: &pki.node_key },
            None,
        )?;
        let (proxy_healthz, proxy_metrics) = (free_port()?, free_port()?);
        write(&state.join("kube-proxy.yaml"), &config::kube_proxy(plane.kubeconfig(), proxy_healthz, proxy_metrics))?;

        let containerd_args = vec!["--config".to_owned(), state.join("containerd/config.toml").display().to_string()];
        let kubelet_args = vec![
            format!("--config={}", state.join("kubelet/config.yaml").display()),
            format!("--kubeconfig={}", kubelet_kubeconfig.display()),
            format!("--hostname-override={NODE_NAME}"),
            format!("--node-ip={NODE_IP}"),
            format!("--root-dir={}", state.join("kubelet/root").display()),
            format!("--cert-dir={}", state.join("kubelet-pki").display()),
            "--v=1".to_owned(),
        ];
        let node = Self {
            processes: Mutex::new(Processes::default()),
            kubelet_args,
            containerd_args,
            proxy_healthz,
            config: plane.admin_config(),
            host,
        };
        let pause =
            tokio::task::spawn_blocking(crate::images::pause).await.map_err(|e| Error::Image(e.to_string()))??;
        node.start_containerd().await?;
        node.load(&pause).await?;
        for image in images {
            node.load(image).await?;
        }
        node.start_kubelet(plane)?;
        node.wait_kubelet_healthy().await?;
        node.wait_ready().await?;
        node.start_kube_proxy(plane)?;
        node.wait("kube-proxy /healthz", PROXY_READY, || async {
            let addr = SocketAddr::from(([127, 0, 0, 1], node.proxy_healthz));
            crate::http_probe::get_status(addr, "/healthz", Duration::from_secs(2)).await == Some(200)
        })
        .await?;
        Ok(node)
    }

    /// The node's state directory (configs, logs, the kubelet's and containerd's state).
    pub fn dir(&self) -> &Path {
        self.host.state.path()
    }

    /// `ctr` talking to this node's containerd, in the kubelet's namespace.
    pub fn ctr(&self) -> Command {
        let mut command = Command::new("ctr");
        command.arg("--address").arg(socket(self.dir())).args(["--namespace", "k8s.io"]);
        command
    }

    /// Imports an image archive into containerd, where pods find it without pulling.
    pub async fn load(&self, image: &ImageArchive) -> Result<()> {
        let mut ctr = self.ctr();
        ctr.args(["images", "import"]).arg(&image.path);
        let what = format!("ctr images import {}", image.path.display());
        tokio::task::spawn_blocking(move || host::run(&mut ctr, &what))
            .await
            .map_err(|e| Error::Image(e.to_string()))?
            .map_err(|e| Error::Image(format!("{} ({e})", image.reference)))
    }

    /// SIGKILLs one container through containerd (`ctr task kill`), as an OOM kill or a crash
    /// would end it; the kubelet then restarts it per the pod's policy.
    pub async fn kill_container(&self, pod: &Pod, container: &str) -> Result<()> {
        let id = container_id(pod, container)
            .ok_or_else(|| Error::Host(format!("container {container} of the pod has no running container id")))?;
        let mut ctr = self.ctr();
        ctr.args(["tasks", "kill", "--signal", "SIGKILL", &id]);
        tokio::task::spawn_blocking(move || host::run(&mut ctr, "ctr tasks kill"))
            .await
            .map_err(|e| Error::Host(e.to_string()))?
    }

    /// The host PID of a pod's running container (its init process), from containerd's task
    /// list: for looking at it as the kernel sees it (`/proc/<pid>/status`, `mountinfo`).
    pub async fn container_pid(&self, pod: &Pod, container: &str) -> Result<u32> {
        let id = container_id(pod, container)
            .ok_or_else(|| Error::Host(format!("container {container} of the pod has no running container id")))?;
        let mut ctr = self.ctr();
        ctr.args(["tasks", "ls"]);
        let output = tokio::task::spawn_blocking(move || ctr.output())
            .await
            .map_err(|e| Error::Host(e.to_string()))?
            .map_err(|e| Error::Host(format!("ctr tasks ls: {e}")))?;
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|line| {
                let mut fields = line.split_whitespace();
                (fields.next() == Some(id.as_str())).then(|| fields.next()?.parse().ok()).flatten()
            })
            .ok_or_else(|| Error::Host(format!("containerd lists no task {id}")))
    }

    /// Every container's log of a pod (current runs, then previous runs), through the API server
    /// and the kubelet, as `kubectl logs` reads them.
    pub async fn pod_log(&self, namespace: &str, pod: &str) -> String {
        let Ok(client) = self.client() else { return String::new() };
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let Ok(object) = pods.get(pod).await else { return String::new() };
        let names: Vec<String> = object
            .spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten().chain(s.containers.iter()))
            .map(|c| c.name.clone())
            .collect();
        let mut text = String::new();
        for name in names {
            for previous in [true, false] {
                let params = LogParams { container: Some(name.clone()), previous, ..LogParams::default() };
                if let Ok(log) = pods.logs(pod, &params).await {
                    let run = if previous { " (previous run)" } else { "" };
                    text.push_str(&format!("==> {name}{run} <==\n{log}"));
                }
            }
        }
        text
    }

    /// Stops the kubelet (SIGTERM) and starts it again; its pods keep running meanwhile.
    pub async fn restart_kubelet(&self, plane: &ControlPlane) -> Result<()> {
        let old = self.processes().kubelet.take();
        if let Some(mut process) = old {
            let _ = tokio::task::spawn_blocking(move || process.stop(STOP_GRACE)).await;
        }
        self.start_kubelet(plane)?;
        self.wait_kubelet_healthy().await?;
        self.wait_ready().await
    }

    /// Stops containerd (SIGTERM) and starts it again; containers keep running under their shims.
    pub async fn restart_containerd(&self) -> Result<()> {
        let old = self.processes().containerd.take();
        if let Some(mut process) = old {
            let _ = tokio::task::spawn_blocking(move || process.stop(STOP_GRACE)).await;
        }
        self.start_containerd().await
    }

    /// Stops everything and cleans the machine up. Dropping does the same, blocking.
    pub async fn stop(self) {
        let _ = tokio::task::spawn_blocking(move || drop(self)).await;
    }

    /// The last `lines` lines of containerd's, the kubelet's and kube-proxy's logs.
    pub fn log_tails(&self, lines: usize) -> String {
        ["containerd", "kubelet", "kube-proxy"]
            .iter()
            .map(|name| {
                let path = self.log_path(name);
                format!("==> {name} ({}) <==\n{}\n", path.display(), log_tail(&path, lines))
            })
            .collect()
    }

    pub(crate) fn logs(&self) -> Vec<(String, PathBuf)> {
        ["containerd", "kubelet", "kube-proxy"].iter().map(|n| ((*n).to_owned(), self.log_path(n))).collect()
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir().join(format!("{name}.log"))
    }

    fn client(&self) -> Result<Client> {
        Ok(Client::try_from(self.config.clone())?)
    }

    fn processes(&self) -> MutexGuard<'_, Processes> {
        self.processes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn start_containerd(&self) -> Result<()> {
        let process = Process::spawn(
            "containerd",
            Path::new("/usr/bin/containerd"),
            &self.containerd_args,
            &self.log_path("containerd"),
        )?;
        self.processes().containerd = Some(process);
        self.wait("containerd", CONTAINERD_START, || async {
            let mut ctr = self.ctr();
            ctr.arg("version");
            tokio::task::spawn_blocking(move || ctr.output().is_ok_and(|o| o.status.success())).await.unwrap_or(false)
        })
        .await
    }

    fn start_kubelet(&self, plane: &ControlPlane) -> Result<()> {
        let process = Process::spawn(
            "kubelet",
            &plane.binaries().path("kubelet"),
            &self.kubelet_args,
            &self.log_path("kubelet"),
        )?;
        self.processes().kubelet = Some(process);
        Ok(())
    }

    fn start_kube_proxy(&self, plane: &ControlPlane) -> Result<()> {
        let args = vec![format!("--config={}", self.dir().join("kube-proxy.yaml").display())];
        let process =
            Process::spawn("kube-proxy", &plane.binaries().path("kube-proxy"), &args, &self.log_path("kube-proxy"))?;
        self.processes().kube_proxy = Some(process);
        Ok(())
    }

    /// The kubelet's own health endpoint: a Ready Node in the API may be the previous kubelet's.
    async fn wait_kubelet_healthy(&self) -> Result<()> {
        self.wait("the kubelet's /healthz", NODE_READY, || async {
            let addr = SocketAddr::from(([127, 0, 0, 1], KUBELET_HEALTHZ));
            crate::http_probe::get_status(addr, "/healthz", Duration::from_secs(2)).await == Some(200)
        })
        .await
    }

    async fn wait_ready(&self) -> Result<()> {
        let nodes: Api<NodeObject> = Api::all(self.client()?);
        self.wait("the Node to be Ready", NODE_READY, || async {
            nodes.get_opt(NODE_NAME).await.ok().flatten().is_some_and(|n| {
                let conditions = n.status.and_then(|s| s.conditions).unwrap_or_default();
                conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
            })
        })
        .await
    }

    async fn wait<F, Fut>(&self, what: &str, limit: Duration, mut ready: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + limit;
        loop {
            if ready().await {
                return Ok(());
            }
            if let Some(err) = self.exited_process() {
                return Err(err);
            }
            if Instant::now() > deadline {
                return Err(Error::NotReady {
                    what: what.to_owned(),
                    seconds: limit.as_secs(),
                    log_tail: self.log_tails(20),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn exited_process(&self) -> Option<Error> {
        let mut processes = self.processes();
        let Processes { kube_proxy, kubelet, containerd } = &mut *processes;
        let exited = [kube_proxy, kubelet, containerd].into_iter().flatten().find_map(|process| {
            let status = process.exited()?;
            Some(Error::Exited {
                process: process.name().to_owned(),
                status: status.to_string(),
                log_tail: log_tail(process.log(), 30),
            })
        });
        exited
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails(40));
        }
        let mut processes = self.processes();
        let stopping = [processes.kube_proxy.take(), processes.kubelet.take(), processes.containerd.take()];
        drop(processes);
        for mut process in stopping.into_iter().flatten() {
            process.stop(STOP_GRACE);
        }
        host::teardown(&self.host.teardown);
    }
}

/// The containerd id of a pod's running container (`containerd://<id>` in its status).
pub fn container_id(pod: &Pod, container: &str) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let status = statuses.iter().find(|s| s.name == container)?;
    status.state.as_ref()?.running.as_ref()?;
    status.container_id.as_deref()?.strip_prefix("containerd://").map(str::to_owned)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(io("write", path))
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("bind a port on", "127.0.0.1"))?;
    Ok(listener.local_addr().map_err(io("bind a port on", "127.0.0.1"))?.port())
}
