//! One pod on the node stand-in: its containers as local processes, their restarts
//! and readiness, the pod status, and termination on deletion.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, ResourceExt};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::watch;

use super::launch::{Launch, LaunchContext, PathMap};
use super::{probe, volumes, NodeError, Shared};
use crate::process::{adopt_group, release_group};

/// How often processes, probes and the stop signal are looked at.
const TICK: Duration = Duration::from_millis(100);
/// Restart back-off: doubles from this, up to [`MAX_BACKOFF`] (kubelet's are 10 s and
/// 5 min, far too slow for tests).
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(3);
/// Grace period when the pod does not say (kubelet's default).
const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// Where a container writes its termination message unless it says otherwise.
const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// Kubelet keeps this much of a termination message.
const TERMINATION_MESSAGE_MAX: usize = 4096;

/// How container ids start: the rest is the process id.
pub(crate) const CONTAINER_ID_SCHEME: &str = "testenv://";

/// What the node asks of a running pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The pod is being deleted: SIGTERM, SIGKILL after the grace period, then remove
    /// the pod object.
    Graceful(Option<Duration>),
    /// The pod object is gone already: kill at once.
    Now,
}

/// Runs the pod until it is deleted.
pub(crate) async fn run(shared: Arc<Shared>, pod: Pod, pod_ip: IpAddr, mut stop: watch::Receiver<Option<Stop>>) {
    let key = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
    let mut worker = match PodWorker::new(shared.clone(), pod, pod_ip) {
        Ok(worker) => worker,
        Err(err) => return shared.note(&format!("pod {key}: cannot run it: {err}")),
    };
    worker.run(&mut stop).await;
}

struct PodWorker {
    shared: Arc<Shared>,
    pod: Pod,
    namespace: String,
    name: String,
    pod_ip: IpAddr,
    dir: PathBuf,
    started: Time,
    restart_policy: String,
    init: Vec<ContainerRun>,
    containers: Vec<ContainerRun>,
    conditions: BTreeMap<&'static str, (bool, Time)>,
    published: Option<serde_json::Value>,
    /// The last reason the pod could not be set up, noted once rather than each retry.
    config_error: Option<String>,
}

struct ContainerRun {
    spec: Container,
    log: PathBuf,
    launch: Option<Launch>,
    paths: PathMap,
    child: Option<tokio::process::Child>,
    state: RunState,
    last_termination: Option<Terminated>,
    /// Host file standing in for the container's `terminationMessagePath`.
    message_file: Option<PathBuf>,
    restart_count: i32,
    restart_at: Option<Instant>,
    ready: bool,
    next_probe: Option<Instant>,
}

#[derive(Clone, Debug)]
enum RunState {
    Waiting { reason: String, message: Option<String> },
    Running { since: Time },
    Terminated(Terminated),
}

#[derive(Clone, Debug)]
struct Terminated {
    exit_code: i32,
    signal: Option<i32>,
    /// Kubelet's words: Completed, Error, or StartError when it never ran.
    reason: &'static str,
    message: Option<String>,
    started: Time,
    finished: Time,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl PodWorker {
    fn new(shared: Arc<Shared>, pod: Pod, pod_ip: IpAddr) -> Result<Self, NodeError> {
        let namespace = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let uid = pod.uid().unwrap_or_default();
        let dir = shared.dir.join("logs").join(&namespace).join(&name);
        let work = shared.dir.join("pods").join(&uid);
        std::fs::create_dir_all(&dir).map_err(|source| NodeError::Io {
            action: "create directory",
            path: dir.clone(),
            source,
        })?;
        let spec = pod.spec.clone().unwrap_or_default();
        let runs = |containers: Vec<Container>| {
            containers
                .into_iter()
                .map(|spec| ContainerRun::new(dir.join(format!("{}.log", spec.name)), spec))
                .collect()
        };
        Ok(Self {
            init: runs(spec.init_containers.unwrap_or_default()),
            containers: runs(spec.containers),
            restart_policy: spec.restart_policy.unwrap_or_else(|| "Always".to_owned()),
            shared,
            pod,
            namespace,
            name,
            pod_ip,
            dir: work,
            started: Time(Timestamp::now()),
            conditions: BTreeMap::new(),
            published: None,
            config_error: None,
        })
    }

    async fn run(&mut self, stop: &mut watch::Receiver<Option<Stop>>) {
        let mut prepared = false;
        loop {
            let requested = *stop.borrow_and_update();
            if let Some(request) = requested {
                return self.terminate(request).await;
            }
            if !prepared {
                match self.prepare().await {
                    Ok(()) => prepared = true,
                    Err(err) => self.wait_for_config(&err),
                }
            }
            if prepared {
                self.step().await;
            }
            self.publish().await;
            let pause = if prepared { TICK } else { Duration::from_secs(1) };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                changed = stop.changed() => {
                    // The node is going away: nothing will remove the pod object.
                    if changed.is_err() {
                        return self.terminate(Stop::Now).await;
                    }
                }
            }
        }
    }

    /// Volumes and the command line of every container; may fail until a ConfigMap
    /// or Secret the pod needs exists.
    async fn prepare(&mut self) -> Result<(), NodeError> {
        let pod_ip = self.pod_ip.to_string();
        let no_paths = PathMap::default();
        let ctx = LaunchContext {
            client: &self.shared.client,
            pod: &self.pod,
            pod_ip: &pod_ip,
            image_map: &self.shared.config.image_map,
            paths: &no_paths,
        };
        let dirs = volumes::prepare(&ctx, &self.shared.config.volume_root, &self.dir).await?;
        let api_volume = self.write_kubeconfig(&dirs)?;
        for run in self.init.iter_mut().chain(self.containers.iter_mut()) {
            let mut paths = volumes::path_map(&run.spec, &dirs)?;
            // The termination message is a per-container file, as kubelet mounts it.
            let message_file = self.dir.join(format!("{}.termination-log", run.spec.name));
            let message_path = run.spec.termination_message_path.as_deref().unwrap_or(TERMINATION_MESSAGE_PATH);
            paths.add(message_path, message_file.clone());
            run.message_file = Some(message_file);
            let ctx = LaunchContext { paths: &paths, ..ctx };
            let mut launch = ctx.launch(&run.spec).await?;
            if let Some((volume, kubeconfig)) = &api_volume {
                let mounts_it = run.spec.volume_mounts.iter().flatten().any(|m| &m.name == volume);
                if mounts_it && !launch.env.iter().any(|(name, _)| name == "KUBECONFIG") {
                    launch.env.push(("KUBECONFIG".to_owned(), kubeconfig.to_string_lossy().into_owned()));
                }
            }
            run.launch = Some(launch);
            run.paths = paths;
        }
        Ok(())
    }

    /// Processes cannot read the token at its in-cluster path, so a pod with an API
    /// access volume gets a kubeconfig using that volume's token and CA; returns the
    /// volume's name and the kubeconfig's path.
    fn write_kubeconfig(&self, dirs: &BTreeMap<String, PathBuf>) -> Result<Option<(String, PathBuf)>, NodeError> {
        let Some(server) = &self.shared.config.api_server else {
            return Ok(None);
        };
        let mut pod_volumes = self.pod.spec.iter().flat_map(|s| s.volumes.iter().flatten());
        let found = pod_volumes.find_map(|volume| {
            let credentials = volumes::api_credentials(volume, dirs.get(&volume.name)?)?;
            Some((volume.name.clone(), credentials))
        });
        let Some((volume, credentials)) = found else {
            return Ok(None);
        };
        let path = self.dir.join("kubeconfig");
        crate::kubeconfig::write(
            &path,
            server,
            &credentials.ca_cert,
            crate::kubeconfig::Credentials::TokenFile(&credentials.token),
            Some(&self.namespace),
        )
        .map_err(|err| NodeError::Io {
            action: "write",
            path: path.clone(),
            source: std::io::Error::other(err.to_string()),
        })?;
        Ok(Some((volume, path)))
    }

    fn wait_for_config(&mut self, err: &NodeError) {
        let message = err.to_string();
        if self.config_error.as_ref() != Some(&message) {
            self.shared.note(&format!("pod {}/{}: {message}", self.namespace, self.name));
            self.config_error = Some(message);
        }
        for run in self.init.iter_mut().chain(self.containers.iter_mut()) {
            run.state = RunState::Waiting {
                reason: "CreateContainerConfigError".to_owned(),
                message: Some(err.to_string()),
            };
        }
    }

    async fn step(&mut self) {
        if self.phase() == Phase::Succeeded || self.phase() == Phase::Failed {
            return;
        }
        // Init containers run one at a time, each to success, before the others.
        if let Some(index) = self.init.iter().position(|run| !run.succeeded()) {
            let policy = if self.restart_policy == "Never" { "Never" } else { "OnFailure" };
            if let Some(run) = self.init.get_mut(index) {
                run.step(policy, &self.dir, &self.name);
            }
            return;
        }
        let policy = self.restart_policy.clone();
        for run in &mut self.containers {
            run.step(&policy, &self.dir, &self.name);
        }
        let pod_ip = self.pod_ip;
        for run in &mut self.containers {
            run.probe(pod_ip).await;
        }
    }

    fn phase(&self) -> Phase {
        if self.init.iter().any(|run| !run.succeeded()) {
            return if self.init.iter().any(ContainerRun::failed_for_good) {
                Phase::Failed
            } else {
                Phase::Pending
            };
        }
        let all_done = self.containers.iter().all(|run| run.done(&self.restart_policy));
        if all_done && !self.containers.is_empty() {
            if self.containers.iter().all(ContainerRun::succeeded) {
                Phase::Succeeded
            } else {
                Phase::Failed
            }
        } else if self
            .containers
            .iter()
            .any(|run| !matches!(run.state, RunState::Waiting { .. }) || run.restart_count > 0)
        {
            Phase::Running
        } else {
            Phase::Pending
        }
    }

    async fn terminate(&mut self, request: Stop) {
        let grace = match request {
            Stop::Graceful(grace) => grace.unwrap_or(DEFAULT_GRACE),
            Stop::Now => Duration::ZERO,
        };
        let runs: Vec<&mut ContainerRun> = self.init.iter_mut().chain(self.containers.iter_mut()).collect();
        for run in &runs {
            run.signal(Signal::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        let mut runs = runs;
        while Instant::now() < deadline && runs.iter_mut().any(|run| run.running()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for run in &mut runs {
            run.kill().await;
        }
        if request == Stop::Now {
            return;
        }
        self.publish().await;
        // As kubelet does once the containers are gone: the object itself goes, and
        // only this incarnation of it (a pod recreated under the name stays).
        let pods: Api<Pod> = Api::namespaced(self.shared.client.clone(), &self.namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: self.pod.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        if let Err(err) = pods.delete(&self.name, &params).await {
            if !matches!(&err, kube::Error::Api(status) if status.code == 404 || status.code == 409) {
                self.shared
                    .note(&format!("pod {}/{}: could not remove it: {err}", self.namespace, self.name));
            }
        }
    }

    async fn publish(&mut self) {
        let status = self.status();
        let Ok(json) = serde_json::to_value(&status) else {
            return;
        };
        if self.published.as_ref() == Some(&json) {
            return;
        }
        let pods: Api<Pod> = Api::namespaced(self.shared.client.clone(), &self.namespace);
        let patch = serde_json::json!({ "status": json });
        match pods.patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => self.published = Some(json),
            // Tried again at the next tick (the API server may be restarting).
            Err(err) => self
                .shared
                .note(&format!("pod {}/{}: could not write status: {err}", self.namespace, self.name)),
        }
    }

    fn status(&mut self) -> PodStatus {
        let phase = self.phase();
        let running = phase == Phase::Running;
        let initialized = self.init.iter().all(ContainerRun::succeeded);
        let containers_ready = running && self.containers.iter().all(|run| run.ready);
        let now = Time(Timestamp::now());
        let mut conditions = Vec::new();
        for (kind, status) in [
            ("PodScheduled", true),
            ("Initialized", initialized),
            ("ContainersReady", containers_ready),
            ("Ready", containers_ready),
        ] {
            // The transition time changes only when the status does.
            let entry = self.conditions.entry(kind).or_insert((status, now.clone()));
            if entry.0 != status {
                *entry = (status, now.clone());
            }
            conditions.push(PodCondition {
                type_: kind.to_owned(),
                status: if status { "True" } else { "False" }.to_owned(),
                last_transition_time: Some(entry.1.clone()),
                reason: (!status && matches!(phase, Phase::Succeeded | Phase::Failed)).then(|| "PodCompleted".to_owned()),
                ..PodCondition::default()
            });
        }
        let ip = self.pod_ip.to_string();
        PodStatus {
            phase: Some(
                match phase {
                    Phase::Pending => "Pending",
                    Phase::Running => "Running",
                    Phase::Succeeded => "Succeeded",
                    Phase::Failed => "Failed",
                }
                .to_owned(),
            ),
            conditions: Some(conditions),
            host_ip: Some("127.0.0.1".to_owned()),
            host_ips: Some(vec![HostIP { ip: "127.0.0.1".to_owned() }]),
            pod_ip: Some(ip.clone()),
            pod_ips: Some(vec![PodIP { ip }]),
            start_time: Some(self.started.clone()),
            init_container_statuses: (!self.init.is_empty())
                .then(|| self.init.iter().map(ContainerRun::status).collect()),
            container_statuses: Some(self.containers.iter().map(ContainerRun::status).collect()),
            ..PodStatus::default()
        }
    }
}

impl ContainerRun {
    fn new(log: PathBuf, spec: Container) -> Self {
        Self {
            spec,
            log,
            launch: None,
            paths: PathMap::default(),
            child: None,
            state: RunState::Waiting {
                reason: "ContainerCreating".to_owned(),
                message: None,
            },
            last_termination: None,
            message_file: None,
            restart_count: 0,
            restart_at: None,
            ready: false,
            next_probe: None,
        }
    }

    fn succeeded(&self) -> bool {
        matches!(&self.state, RunState::Terminated(t) if t.exit_code == 0)
    }

    fn failed_for_good(&self) -> bool {
        matches!(&self.state, RunState::Terminated(t) if t.exit_code != 0) && self.restart_at.is_none()
    }

    /// Ended and not to be started again under `policy`.
    fn done(&self, policy: &str) -> bool {
        match &self.state {
            RunState::Terminated(t) => !restarts(policy, t.exit_code),
            _ => false,
        }
    }

    fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Notices an exit, schedules and performs restarts, starts a new container.
    fn step(&mut self, policy: &str, work_dir: &Path, pod_name: &str) {
        if let Some(child) = self.child.as_mut() {
            match child.try_wait() {
                Ok(Some(status)) => {
                    let pid = child.id();
                    self.child = None;
                    if let Some(pid) = pid {
                        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
                        release_group(pid);
                    }
                    self.exited(status, policy);
                }
                Ok(None) | Err(_) => return,
            }
        }
        let due = match (&self.state, self.restart_at) {
            (RunState::Waiting { .. }, _) => self.launch.is_some(),
            (RunState::Terminated(_), Some(at)) => Instant::now() >= at,
            _ => false,
        };
        if due {
            self.start(work_dir, pod_name, policy);
        }
    }

    fn exited(&mut self, status: std::process::ExitStatus, policy: &str) {
        use std::os::unix::process::ExitStatusExt;
        let started = match &self.state {
            RunState::Running { since } => since.clone(),
            _ => Time(Timestamp::now()),
        };
        let signal = status.signal();
        let exit_code = status.code().unwrap_or_else(|| 128 + signal.unwrap_or(0));
        let terminated = Terminated {
            exit_code,
            signal,
            reason: if exit_code == 0 { "Completed" } else { "Error" },
            message: self.termination_message(),
            started,
            finished: Time(Timestamp::now()),
        };
        self.ended(terminated, policy);
    }

    /// What the run wrote to its termination message file, cut to kubelet's 4096 bytes.
    fn termination_message(&self) -> Option<String> {
        let text = std::fs::read(self.message_file.as_ref()?).ok()?;
        let kept = text.get(..TERMINATION_MESSAGE_MAX).unwrap_or(&text);
        (!kept.is_empty()).then(|| String::from_utf8_lossy(kept).into_owned())
    }

    /// Records the end of a run and, if `policy` restarts it, when it starts again.
    fn ended(&mut self, terminated: Terminated, policy: &str) {
        let exit_code = terminated.exit_code;
        self.ready = false;
        self.next_probe = None;
        self.restart_at = restarts(policy, exit_code).then(|| {
            let doublings = self.restart_count.clamp(0, 4) as u32;
            Instant::now() + (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
        });
        self.state = RunState::Terminated(terminated);
    }

    fn start(&mut self, work_dir: &Path, pod_name: &str, policy: &str) {
        let Some(launch) = self.launch.clone() else {
            return;
        };
        if let RunState::Terminated(previous) = &self.state {
            self.last_termination = Some(previous.clone());
            self.restart_count += 1;
        }
        self.restart_at = None;
        // Each run starts with an empty termination message, as under kubelet.
        if let Some(file) = &self.message_file {
            if let Err(err) = std::fs::write(file, b"") {
                eprintln!("node: cannot create the termination message file {}: {err}", file.display());
            }
        }
        match self.spawn(&launch, work_dir, pod_name) {
            Ok(child) => {
                if let Some(pid) = child.id() {
                    adopt_group(pid);
                }
                self.child = Some(child);
                self.state = RunState::Running {
                    since: Time(Timestamp::now()),
                };
                self.ready = self.spec.readiness_probe.is_none();
                let delay = self
                    .spec
                    .readiness_probe
                    .as_ref()
                    .and_then(|p| p.initial_delay_seconds)
                    .unwrap_or(0);
                self.next_probe = Some(Instant::now() + Duration::from_secs(delay.max(0) as u64));
            }
            Err(err) => {
                // As kubelet reports a container whose command cannot be run: exit
                // code 128, restarted (or not) like any other failure.
                let now = Time(Timestamp::now());
                let terminated = Terminated {
                    exit_code: 128,
                    signal: None,
                    reason: "StartError",
                    message: Some(format!("could not run {}: {err}", launch.program.display())),
                    started: now.clone(),
                    finished: now,
                };
                self.ended(terminated, policy);
            }
        }
    }

    fn spawn(&self, launch: &Launch, work_dir: &Path, pod_name: &str) -> std::io::Result<tokio::process::Child> {
        let out = OpenOptions::new().create(true).append(true).open(&self.log)?;
        let err = out.try_clone()?;
        let dir = launch.working_dir.clone().unwrap_or_else(|| work_dir.to_owned());
        std::fs::create_dir_all(&dir)?;
        let mut command = tokio::process::Command::new(&launch.program);
        command
            .args(&launch.args)
            .current_dir(dir)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(true);
        // Like an image's own environment: the host's PATH and HOME, and the tooling
        // variables a test run relies on (coverage, backtraces, log levels), and
        // KUBECONFIG, which stands in for the in-cluster service-account config (its
        // token path is fixed and cannot be mapped to a host directory).
        for name in ["PATH", "HOME", "TMPDIR", "RUST_BACKTRACE", "RUST_LOG", "LLVM_PROFILE_FILE", "KUBECONFIG"] {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command.env("HOSTNAME", pod_name);
        command.envs(launch.env.iter().map(|(k, v)| (k, v)));
        command.spawn()
    }

    async fn probe(&mut self, pod_ip: IpAddr) {
        let (Some(probe), Some(launch), Some(due)) = (&self.spec.readiness_probe, &self.launch, self.next_probe) else {
            return;
        };
        if Instant::now() < due || !matches!(self.state, RunState::Running { .. }) {
            return;
        }
        let period = Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64).min(probe::MAX_PERIOD);
        self.ready = probe::passes(probe, &self.spec, pod_ip, launch, &self.paths).await;
        self.next_probe = Some(Instant::now() + period);
    }

    fn signal(&self, signal: Signal) {
        if let Some(pid) = self.child.as_ref().and_then(|c| c.id()) {
            let _ = kill(Pid::from_raw(pid as i32), signal);
        }
    }

    /// SIGKILL to the whole process group, and the exit recorded.
    async fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            release_group(pid);
        }
        if let Ok(status) = child.wait().await {
            self.exited(status, "Never");
        }
    }

    fn status(&self) -> ContainerStatus {
        let to_state = |state: &RunState| match state {
            RunState::Waiting { reason, message } => ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: message.clone(),
                }),
                ..ContainerState::default()
            },
            RunState::Running { since } => ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(since.clone()),
                }),
                ..ContainerState::default()
            },
            RunState::Terminated(t) => ContainerState {
                terminated: Some(terminated(t)),
                ..ContainerState::default()
            },
        };
        let state = match (&self.state, self.restart_at) {
            // Between a crash and its restart kubelet reports CrashLoopBackOff.
            (RunState::Terminated(_), Some(_)) => ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("CrashLoopBackOff".to_owned()),
                    message: None,
                }),
                ..ContainerState::default()
            },
            (state, _) => to_state(state),
        };
        let last_state = match (&self.state, self.restart_at) {
            (RunState::Terminated(t), Some(_)) => Some(t),
            _ => self.last_termination.as_ref(),
        }
        .map(|t| ContainerState {
            terminated: Some(terminated(t)),
            ..ContainerState::default()
        });
        ContainerStatus {
            name: self.spec.name.clone(),
            image: self.spec.image.clone().unwrap_or_default(),
            image_id: String::new(),
            container_id: self.child.as_ref().and_then(|c| c.id()).map(|pid| format!("{CONTAINER_ID_SCHEME}{pid}")),
            ready: self.ready,
            started: Some(matches!(self.state, RunState::Running { .. })),
            restart_count: self.restart_count,
            state: Some(state),
            last_state,
            ..ContainerStatus::default()
        }
    }
}

impl Drop for ContainerRun {
    fn drop(&mut self) {
        if let Some(pid) = self.child.as_ref().and_then(|c| c.id()) {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            release_group(pid);
        }
    }
}

fn restarts(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Always" => true,
        "OnFailure" => exit_code != 0,
        _ => false,
    }
}

fn terminated(t: &Terminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: Some(t.reason.to_owned()),
        message: t.message.clone(),
        started_at: Some(t.started.clone()),
        finished_at: Some(t.finished.clone()),
        ..ContainerStateTerminated::default()
    }
}
