//! etcd, kube-apiserver, kube-controller-manager and kube-scheduler, with a throwaway CA, in a
//! temporary directory that goes away with them. The API server listens on loopback, or on the
//! node IP when a real node is to join (pods reach it there through the `kubernetes` Service).

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::binaries::Binaries;
use crate::error::{io, Error, Result};
use crate::kubeconfig::{self, Credentials};
use crate::pki::Pki;
use crate::process::{log_tail, remove_at_exit, Process};
use crate::report::FailureReport;

/// How long each part may take to come up on a loaded 2-core machine.
const ETCD_START: Duration = Duration::from_secs(60);
const APISERVER_START: Duration = Duration::from_secs(120);
const CONTROLLER_MANAGER_START: Duration = Duration::from_secs(120);
const SCHEDULER_START: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);
/// SIGTERM to SIGKILL when stopping a control-plane process.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// SIGTERM to SIGKILL for the API server alone: it stops serving at once but then
/// waits on the controller manager's open watch streams for longer than a test should.
const APISERVER_STOP_GRACE: Duration = Duration::from_secs(2);

/// The service IP range; the API server's own service takes its first address.
const SERVICE_CIDR: &str = "10.0.0.0/24";
const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A running control plane. Dropping it (or [`ControlPlane::stop`]) stops every
/// process and removes its directory; when the drop happens during a panic, the last
/// lines of each process's log are printed first.
pub struct ControlPlane {
    // Declared in stopping order: dependents before what they depend on.
    processes: Mutex<Processes>,
    binaries: Binaries,
    address: Ipv4Addr,
    ports: Ports,
    pki: Pki,
    admin_kubeconfig: PathBuf,
    admin_config: kube::Config,
    dir: tempfile::TempDir,
}

struct Processes {
    scheduler: Option<Process>,
    controller_manager: Option<Process>,
    apiserver: Option<Process>,
    etcd: Option<Process>,
}

#[derive(Clone, Copy)]
struct Ports {
    etcd_client: u16,
    etcd_peer: u16,
    apiserver: u16,
    controller_manager: u16,
    scheduler: u16,
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler on loopback and
    /// returns once the API server is ready and the controller manager has created the
    /// `default` service account (so pods can be created). No node joins it: see
    /// [`crate::Cluster`] for one with a real node.
    pub async fn start() -> Result<Self> {
        Self::start_on(Ipv4Addr::LOCALHOST).await
    }

    /// The same with the API server on `address` (the node IP, for a cluster with a node).
    pub async fn start_on(address: Ipv4Addr) -> Result<Self> {
        let binaries =
            tokio::task::spawn_blocking(Binaries::locate).await.map_err(|e| Error::Binaries(e.to_string()))??;
        let dir = tempfile::Builder::new()
            .prefix("mq-testenv-")
            .tempdir()
            .map_err(io("create a directory in", std::env::temp_dir()))?;
        remove_at_exit(dir.path());
        let pki = Pki::write(&dir.path().join("pki"))?;
        let ports = free_ports()?;
        let admin_kubeconfig = dir.path().join("admin.kubeconfig");
        kubeconfig::write(
            &admin_kubeconfig,
            &format!("https://{address}:{}", ports.apiserver),
            &pki.ca_cert,
            Credentials::ClientCert { cert: &pki.admin_cert, key: &pki.admin_key },
            None,
        )?;
        let admin_config = kubeconfig::load(&admin_kubeconfig).await?;
        let plane = Self {
            processes: Mutex::new(Processes { scheduler: None, controller_manager: None, apiserver: None, etcd: None }),
            binaries,
            address,
            ports,
            pki,
            admin_kubeconfig,
            admin_config,
            dir,
        };
        plane.start_etcd().await?;
        plane.start_apiserver().await?;
        plane.start_controller_manager().await?;
        plane.start_scheduler().await?;
        Ok(plane)
    }

    /// The admin kubeconfig (client certificate in `system:masters`), for kubectl
    /// and helm: `KUBECONFIG=<this path>`.
    pub fn kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// The API server's URL, `https://<address>:<port>`.
    pub fn server_url(&self) -> String {
        format!("https://{}:{}", self.address, self.ports.apiserver)
    }

    pub(crate) fn admin_config(&self) -> kube::Config {
        self.admin_config.clone()
    }

    pub(crate) fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The PEM file of the CA that signed the API server's certificate.
    pub fn ca_cert(&self) -> &Path {
        &self.pki.ca_cert
    }

    /// Where kubectl, helm and the control-plane binaries are.
    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// The temporary directory holding certificates, kubeconfigs and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client with full rights. Each call makes a new client, bound to the calling
    /// tokio runtime (so a control plane shared by many `#[tokio::test]`s still
    /// works).
    pub fn client(&self) -> Result<Client> {
        Ok(Client::try_from(self.admin_config.clone())?)
    }

    /// A client that authenticates as the service account `namespace/name` with a
    /// token from the TokenRequest API, so RBAC applies to it as it would to a pod.
    /// The service account must exist.
    pub async fn service_account_client(&self, namespace: &str, name: &str) -> Result<Client> {
        let path = self.service_account_kubeconfig(namespace, name).await?;
        Ok(Client::try_from(kubeconfig::load(&path).await?)?)
    }

    /// Writes a kubeconfig for the service account `namespace/name` (token valid for
    /// an hour) and returns its path, e.g. to run kubectl as that account.
    pub async fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> Result<PathBuf> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client()?, namespace);
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: Some(vec![SERVICE_ACCOUNT_ISSUER.to_owned()]),
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let issued: TokenRequest = accounts.create_subresource("token", name, &PostParams::default(), &request).await?;
        let token = issued
            .status
            .and_then(|s| s.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::NoToken { namespace: namespace.to_owned(), name: name.to_owned() })?;
        let path = self.dir().join(format!("sa-{namespace}-{name}.kubeconfig"));
        kubeconfig::write(&path, &self.server_url(), &self.pki.ca_cert, Credentials::Token(&token), Some(namespace))?;
        Ok(path)
    }

    /// Creates a namespace and waits for its `default` service account, without
    /// which the API server refuses pods.
    pub async fn create_namespace(&self, name: &str) -> Result<()> {
        let client = self.client()?;
        let namespace = Namespace {
            metadata: ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &namespace).await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(client, name);
        self.wait_for(&format!("the default service account of namespace {name}"), CONTROLLER_MANAGER_START, || async {
            matches!(accounts.get_opt("default").await, Ok(Some(_)))
        })
        .await
    }

    /// Stops the API server (SIGTERM, then SIGKILL) and starts it again on the same
    /// port with the same state; returns once it is ready. Clients made before keep
    /// working once it is back. Other tests sharing this control plane see the
    /// outage too: chaos tests should start their own.
    pub async fn restart_apiserver(&self) -> Result<()> {
        self.stop_apiserver().await;
        self.start_apiserver().await
    }

    /// Stops the API server (SIGTERM, then SIGKILL after 2 s). [`ControlPlane::start_apiserver`]
    /// brings it back.
    pub async fn stop_apiserver(&self) {
        let apiserver = self.processes().apiserver.take();
        if let Some(mut process) = apiserver {
            let _ = tokio::task::spawn_blocking(move || process.stop(APISERVER_STOP_GRACE)).await;
        }
    }

    /// Starts the API server if it is not running, and waits for `/readyz`.
    pub async fn start_apiserver(&self) -> Result<()> {
        {
            let mut processes = self.processes();
            if processes.apiserver.is_none() {
                let args = self.apiserver_args();
                let log = self.log_path("kube-apiserver");
                let process = Process::spawn("kube-apiserver", &self.binaries.path("kube-apiserver"), &args, &log)?;
                processes.apiserver = Some(process);
            }
        }
        let client = self.client()?;
        self.wait_for("kube-apiserver /readyz", APISERVER_START, || async {
            let request = http::Request::get("/readyz").body(Vec::new());
            match request {
                Ok(request) => client.request_text(request).await.is_ok(),
                Err(_) => false,
            }
        })
        .await
    }

    /// Stops everything and removes the directory. Dropping does the same, but
    /// blocks the thread it runs on while the processes stop.
    pub async fn stop(self) {
        let _ = tokio::task::spawn_blocking(move || drop(self)).await;
    }

    /// The last `lines` lines of each process's log, headed by its name.
    pub fn log_tails(&self, lines: usize) -> String {
        self.logs()
            .iter()
            .map(|(name, path)| format!("==> {name} ({}) <==\n{}\n", path.display(), log_tail(path, lines)))
            .collect()
    }

    /// A guard that prints the tails of the control-plane logs if it is dropped
    /// during a panic: for tests sharing a control plane that outlives them.
    pub fn report_on_failure(&self) -> FailureReport {
        FailureReport::new(self.logs())
    }

    pub(crate) fn logs(&self) -> Vec<(String, PathBuf)> {
        ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
            .into_iter()
            .map(|name| (name.to_owned(), self.log_path(name)))
            .collect()
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir().join(format!("{name}.log"))
    }

    fn processes(&self) -> MutexGuard<'_, Processes> {
        // A panic while holding the lock leaves nothing half-done worth refusing.
        self.processes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn start_etcd(&self) -> Result<()> {
        let client_url = format!("http://127.0.0.1:{}", self.ports.etcd_client);
        let peer_url = format!("http://127.0.0.1:{}", self.ports.etcd_peer);
        let data = self.dir().join("etcd");
        let args = vec![
            "--name=testenv".to_owned(),
            format!("--data-dir={}", data.display()),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=testenv={peer_url}"),
            // Test data need not survive a power cut; fsync would dominate the run time.
            "--unsafe-no-fsync=true".to_owned(),
            "--log-level=warn".to_owned(),
        ];
        let process = Process::spawn("etcd", &self.binaries.path("etcd"), &args, &self.log_path("etcd"))?;
        self.processes().etcd = Some(process);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.ports.etcd_client));
        self.wait_for("etcd /health", ETCD_START, || async move {
            crate::http_probe::get_status(addr, "/health", Duration::from_secs(2)).await == Some(200)
        })
        .await
    }

    fn apiserver_args(&self) -> Vec<String> {
        let pki = &self.pki;
        let mut args = vec![
            format!("--etcd-servers=http://127.0.0.1:{}", self.ports.etcd_client),
            format!("--bind-address={}", self.address),
            format!("--advertise-address={}", self.address),
            format!("--secure-port={}", self.ports.apiserver),
            format!("--cert-dir={}", self.dir().join("apiserver-certs").display()),
            format!("--tls-cert-file={}", pki.serving_cert.display()),
            format!("--tls-private-key-file={}", pki.serving_key.display()),
            format!("--client-ca-file={}", pki.ca_cert.display()),
            "--authorization-mode=Node,RBAC".to_owned(),
            format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
            format!("--service-account-key-file={}", pki.sa_pub.display()),
            format!("--service-account-signing-key-file={}", pki.sa_key.display()),
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            "--allow-privileged=true".to_owned(),
            "--profiling=false".to_owned(),
        ];
        if self.address.is_loopback() {
            // The `kubernetes` service cannot have a loopback endpoint; without this
            // the API server logs a refusal every 10 s.
            args.push("--endpoint-reconciler-type=none".to_owned());
        } else {
            // Logs and exec go to the kubelet at the node's InternalIP, never through a DNS
            // lookup of the node's name (which would leave the machine).
            args.push("--kubelet-preferred-address-types=InternalIP".to_owned());
            args.push(format!("--kubelet-client-certificate={}", pki.kubelet_client_cert.display()));
            args.push(format!("--kubelet-client-key={}", pki.kubelet_client_key.display()));
        }
        args
    }

    async fn start_scheduler(&self) -> Result<()> {
        let args = vec![
            format!("--kubeconfig={}", self.admin_kubeconfig.display()),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--secure-port={}", self.ports.scheduler),
            format!("--cert-dir={}", self.dir().join("scheduler-certs").display()),
            "--leader-elect=false".to_owned(),
            "--profiling=false".to_owned(),
        ];
        let process = Process::spawn(
            "kube-scheduler",
            &self.binaries.path("kube-scheduler"),
            &args,
            &self.log_path("kube-scheduler"),
        )?;
        self.processes().scheduler = Some(process);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.ports.scheduler));
        // Its secure port is HTTPS only; listening is enough to know it has started.
        self.wait_for("kube-scheduler", SCHEDULER_START, || async move {
            crate::http_probe::tcp_open(addr, Duration::from_secs(2)).await
        })
        .await
    }

    async fn start_controller_manager(&self) -> Result<()> {
        let pki = &self.pki;
        let args = vec![
            format!("--kubeconfig={}", self.admin_kubeconfig.display()),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--secure-port={}", self.ports.controller_manager),
            format!("--cert-dir={}", self.dir().join("controller-manager-certs").display()),
            "--leader-elect=false".to_owned(),
            // The default set: Jobs, garbage collection, service accounts, namespaces,
            // Deployments/StatefulSets, node lifecycle (fed by the node stand-in's Lease).
            "--controllers=*".to_owned(),
            "--use-service-account-credentials=true".to_owned(),
            format!("--root-ca-file={}", pki.ca_cert.display()),
            format!("--service-account-private-key-file={}", pki.sa_key.display()),
            format!("--cluster-signing-cert-file={}", pki.ca_cert.display()),
            format!("--cluster-signing-key-file={}", pki.ca_key.display()),
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            "--profiling=false".to_owned(),
        ];
        let process = Process::spawn(
            "kube-controller-manager",
            &self.binaries.path("kube-controller-manager"),
            &args,
            &self.log_path("kube-controller-manager"),
        )?;
        self.processes().controller_manager = Some(process);
        // Its service-account controller making this account shows it is running.
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client()?, "default");
        self.wait_for("kube-controller-manager (default service account)", CONTROLLER_MANAGER_START, || async {
            matches!(accounts.get_opt("default").await, Ok(Some(_)))
        })
        .await
    }

    /// Polls `ready` until it holds, failing fast if a process has exited, or with
    /// the log tails once `limit` has passed.
    async fn wait_for<F, Fut>(&self, what: &str, limit: Duration, mut ready: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
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
        let Processes { scheduler, controller_manager, apiserver, etcd } = &mut *processes;
        let exited = [scheduler, controller_manager, apiserver, etcd].into_iter().flatten().find_map(|process| {
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

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails(40));
        }
        let mut processes = self.processes();
        let stopping = [
            processes.scheduler.take(),
            processes.controller_manager.take(),
            processes.apiserver.take(),
            processes.etcd.take(),
        ];
        for mut process in stopping.into_iter().flatten() {
            process.stop(STOP_GRACE);
        }
    }
}

/// Distinct free loopback ports, all held open at once while choosing so that no
/// two are the same.
fn free_ports() -> Result<Ports> {
    let mut held = Vec::new();
    let mut next = || -> Result<u16> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(io("bind a port on", "127.0.0.1"))?;
        let port = listener.local_addr().map_err(io("bind a port on", "127.0.0.1"))?.port();
        held.push(listener);
        Ok(port)
    };
    Ok(Ports {
        etcd_client: next()?,
        etcd_peer: next()?,
        apiserver: next()?,
        controller_manager: next()?,
        scheduler: next()?,
    })
}

/// One control plane for the whole test binary, started by the first caller. Its
/// processes and directory are cleaned up when the test process exits. Tests sharing
/// it should use their own namespaces, and must not restart its API server.
pub async fn shared() -> Result<&'static ControlPlane> {
    static SHARED: tokio::sync::OnceCell<ControlPlane> = tokio::sync::OnceCell::const_new();
    SHARED.get_or_try_init(ControlPlane::start).await
}
