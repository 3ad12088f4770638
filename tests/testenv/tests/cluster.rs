//! Self-tests of the test environment against one shared control plane: API
//! objects, the controller manager's Jobs, the node stand-in's pods, volumes,
//! probes, restarts and deletion, and RBAC for service accounts.

mod support;

use std::path::PathBuf;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node as NodeObject, PersistentVolumeClaim, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use kube::runtime::conditions::{is_crd_established, is_deleted, is_job_completed};
use kube::{Api, Client, ResourceExt};
use mailqueue_testenv::{container_pid, control_plane, ControlPlane, FailureReport, Node};
use support::{from_yaml, wait_for};

/// A namespace of the shared control plane with a node serving only it.
struct Setup {
    plane: &'static ControlPlane,
    client: Client,
    node: Node,
    namespace: String,
    volumes: tempfile::TempDir,
    _report: FailureReport,
}

async fn setup(namespace: &str) -> Setup {
    let plane = control_plane::shared().await.expect("control plane starts");
    let report = plane.report_on_failure();
    plane.create_namespace(namespace).await.expect("namespace is created");
    let client = plane.client().expect("admin client");
    let volumes = tempfile::tempdir().expect("volume root");
    let node = Node::start(
        client.clone(),
        plane
            .node_config(format!("node-{namespace}"), volumes.path())
            .image("shell", "/bin/sh")
            .image("python", python())
            .image("kubectl", plane.binaries().path("kubectl"))
            .namespace(namespace),
    )
    .await
    .expect("node stand-in starts");
    Setup {
        plane,
        client,
        node,
        namespace: namespace.to_owned(),
        volumes,
        _report: report,
    }
}

fn python() -> PathBuf {
    let pyenv = dirs_home().join(".pyenv/versions/3.11.7/bin/python");
    if pyenv.is_file() {
        pyenv
    } else {
        PathBuf::from("python3")
    }
}

fn dirs_home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default()
}

impl Setup {
    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn create_pod(&self, yaml: &str) -> Pod {
        let pod: Pod = from_yaml(yaml);
        self.api::<Pod>()
            .create(&PostParams::default(), &pod)
            .await
            .expect("pod is created")
    }

    async fn wait_pod(&self, name: &str, what: &str, test: impl Fn(&Pod) -> bool + Send + 'static) -> Pod {
        let pod = wait_for(&self.api::<Pod>(), name, what, move |pod: Option<&Pod>| pod.is_some_and(&test)).await;
        pod.unwrap_or_else(|| panic!("pod {name} vanished"))
    }

    async fn wait_phase(&self, name: &str, phase: &'static str) -> Pod {
        self.wait_pod(name, phase, move |pod| phase_of(pod) == Some(phase)).await
    }
}

fn phase_of(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test]
async fn serves_crds_custom_objects_and_leases() {
    let s = setup("objects").await;
    let crds: Api<CustomResourceDefinition> = Api::all(s.client.clone());
    let crd: CustomResourceDefinition = from_yaml(
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: widgets.testenv.example.com }
spec:
  group: testenv.example.com
  scope: Namespaced
  names: { plural: widgets, singular: widget, kind: Widget }
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties: { size: { type: integer, minimum: 1 } }
"#,
    );
    crds.create(&PostParams::default(), &crd).await.expect("CRD is created");
    wait_for(&crds, "widgets.testenv.example.com", "Established", is_crd_established()).await;

    let gvk = GroupVersionKind::gvk("testenv.example.com", "v1", "Widget");
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(s.client.clone(), &s.namespace, &ApiResource::from_gvk(&gvk));
    let widget = |size: i64| {
        from_yaml::<DynamicObject>(&format!(
            "apiVersion: testenv.example.com/v1\nkind: Widget\nmetadata: {{ name: w{size} }}\nspec: {{ size: {size} }}\n"
        ))
    };
    widgets.create(&PostParams::default(), &widget(3)).await.expect("valid widget is accepted");
    let stored = widgets.get("w3").await.expect("widget is stored");
    assert_eq!(stored.data["spec"]["size"], 3);
    // Schema validation is the API server's: a size below the minimum is refused.
    let refused = widgets.create(&PostParams::default(), &widget(0)).await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(status)) if status.code == 422),
        "invalid widget must be refused, got {refused:?}"
    );

    let leases: Api<Lease> = s.api();
    let lease: Lease = from_yaml(
        "metadata: { name: leader }\nspec: { holderIdentity: replica-1, leaseDurationSeconds: 15 }\n",
    );
    leases.create(&PostParams::default(), &lease).await.expect("lease is created");
    let stored = leases.get("leader").await.expect("lease is stored");
    let holder = stored.spec.and_then(|spec| spec.holder_identity);
    assert_eq!(holder.as_deref(), Some("replica-1"));
}

#[tokio::test]
async fn controller_manager_runs_a_job_to_completion_on_the_node() {
    let s = setup("jobs").await;
    let jobs: Api<Job> = s.api();
    let job: Job = from_yaml(
        r#"
metadata: { name: hello }
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: shell
          command: [sh, -c, 'echo "hello from $(POD_NAME) in $NS"']
          env:
            - name: NS
              valueFrom: { fieldRef: { fieldPath: metadata.namespace } }
            - name: POD_NAME
              valueFrom: { fieldRef: { fieldPath: metadata.name } }
"#,
    );
    jobs.create(&PostParams::default(), &job).await.expect("job is created");
    wait_for(&jobs, "hello", "Complete", is_job_completed()).await;

    let pods = s
        .api::<Pod>()
        .list(&kube::api::ListParams::default().labels("job-name=hello"))
        .await
        .expect("job pods are listed");
    let [pod] = pods.items.as_slice() else {
        panic!("expected one pod for the job, got {}", pods.items.len());
    };
    assert_eq!(phase_of(pod), Some("Succeeded"));
    assert_eq!(pod.spec.as_ref().and_then(|s| s.node_name.as_deref()), Some("node-jobs"));
    assert_eq!(
        s.node.container_log("jobs", &pod.name_any(), "main"),
        format!("hello from {} in jobs\n", pod.name_any())
    );
}

#[tokio::test]
async fn pods_mounting_one_claim_share_its_directory() {
    let s = setup("volumes").await;
    let claim: PersistentVolumeClaim = from_yaml(
        "metadata: { name: spool }\nspec: { accessModes: [ReadWriteMany], resources: { requests: { storage: 1Gi } } }\n",
    );
    s.api::<PersistentVolumeClaim>()
        .create(&PostParams::default(), &claim)
        .await
        .expect("claim is created");
    let pod = |name: &str, script: &str| {
        format!(
            r#"
metadata: {{ name: {name} }}
spec:
  restartPolicy: Never
  volumes: [{{ name: queue, persistentVolumeClaim: {{ claimName: spool }} }}]
  containers:
    - name: main
      image: shell
      command: [sh, -c, '{script}']
      env: [{{ name: QUEUE, value: /var/spool/mq/in }}]
      volumeMounts: [{{ name: queue, mountPath: /var/spool/mq }}]
"#
        )
    };
    s.create_pod(&pod("writer", r#"mkdir -p "$QUEUE" && printf "queued by writer" > /var/spool/mq/in/msg"#))
        .await;
    s.wait_phase("writer", "Succeeded").await;
    s.create_pod(&pod("reader", r#"cat "$QUEUE/msg""#)).await;
    s.wait_phase("reader", "Succeeded").await;

    let on_host = s.volumes.path().join("volumes/spool/in/msg");
    assert_eq!(std::fs::read(&on_host).expect("file is in the claim's directory"), b"queued by writer");
    assert_eq!(s.node.container_log("volumes", "reader", "main"), "queued by writer");
}

#[tokio::test]
async fn readiness_follows_the_http_probe_and_config_reaches_the_process() {
    let s = setup("probes").await;
    let config: ConfigMap = from_yaml("metadata: { name: settings }\ndata: { index.html: served-from-configmap }\n");
    s.api::<ConfigMap>().create(&PostParams::default(), &config).await.expect("configmap");
    let secret: Secret = from_yaml("metadata: { name: creds }\nstringData: { password: hunter2 }\n");
    s.api::<Secret>().create(&PostParams::default(), &secret).await.expect("secret");
    // No command: the image's binary (python) runs with the args. It listens on the
    // pod IP, serving the files of the ConfigMap volume.
    s.create_pod(
        r#"
metadata: { name: web }
spec:
  volumes: [{ name: site, configMap: { name: settings } }]
  containers:
    - name: main
      image: python
      args: [-m, http.server, --bind, $(POD_IP), --directory, /srv/site, "8080"]
      env:
        - { name: POD_IP, valueFrom: { fieldRef: { fieldPath: status.podIP } } }
        - { name: PASSWORD, valueFrom: { secretKeyRef: { name: creds, key: password } } }
      ports: [{ name: http, containerPort: 8080 }]
      readinessProbe: { httpGet: { path: /index.html, port: http }, periodSeconds: 1 }
      volumeMounts: [{ name: site, mountPath: /srv/site }]
"#,
    )
    .await;
    let pod = s.wait_pod("web", "Ready", is_ready).await;
    let ip = pod.status.and_then(|s| s.pod_ip).expect("pod has an IP");
    assert!(ip.starts_with("127."), "pod IP {ip} is a loopback address");
    let status = pod_http_status(&ip, 8080, "/index.html").await;
    assert_eq!(status.as_deref(), Some("HTTP/1.0 200 OK"));
}

async fn pod_http_status(ip: &str, port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect((ip, port)).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    response.lines().next().map(str::to_owned)
}

#[tokio::test]
async fn failed_containers_restart_per_policy() {
    let s = setup("restarts").await;
    // Fails on its first run, succeeds on the second: the scratch volume outlives
    // the container, as an emptyDir does.
    s.create_pod(
        r#"
metadata: { name: flaky }
spec:
  restartPolicy: OnFailure
  volumes: [{ name: scratch, emptyDir: {} }]
  containers:
    - name: main
      image: shell
      command: [sh, -c, 'if [ -e /scratch/ran ]; then echo second; else touch /scratch/ran; echo first; exit 3; fi']
      volumeMounts: [{ name: scratch, mountPath: /scratch }]
"#,
    )
    .await;
    let pod = s.wait_phase("flaky", "Succeeded").await;
    let status = pod
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|c| c.into_iter().next())
        .expect("container status");
    assert_eq!(status.restart_count, 1);
    let last_exit = status.last_state.and_then(|s| s.terminated).map(|t| t.exit_code);
    assert_eq!(last_exit, Some(3));
    assert_eq!(s.node.container_log("restarts", "flaky", "main"), "first\nsecond\n");
}

#[tokio::test]
async fn deletion_sends_sigterm_then_sigkill_then_removes_the_pod() {
    let s = setup("deletion").await;
    let claim: PersistentVolumeClaim =
        from_yaml("metadata: { name: out }\nspec: { accessModes: [ReadWriteOnce], resources: { requests: { storage: 1Gi } } }\n");
    s.api::<PersistentVolumeClaim>()
        .create(&PostParams::default(), &claim)
        .await
        .expect("claim");
    let pod = |name: &str, on_term: &str| {
        format!(
            r#"
metadata: {{ name: {name} }}
spec:
  terminationGracePeriodSeconds: 30
  volumes: [{{ name: out, persistentVolumeClaim: {{ claimName: out }} }}]
  containers:
    - name: main
      image: shell
      command: [sh, -c, 'trap "{on_term}" TERM; touch /out/{name}.started; while true; do sleep 0.1; done']
      readinessProbe: {{ exec: {{ command: [test, -e, /out/{name}.started] }} }}
      volumeMounts: [{{ name: out, mountPath: /out }}]
"#
        )
    };
    // One stops cleanly on SIGTERM; the other ignores it and must be killed.
    s.create_pod(&pod("polite", "echo got TERM > /out/polite.term; exit 0")).await;
    s.create_pod(&pod("stubborn", "echo ignoring TERM > /out/stubborn.term")).await;
    let polite = s.wait_pod("polite", "Ready", is_ready).await;
    let stubborn = s.wait_pod("stubborn", "Ready", is_ready).await;

    let pods: Api<Pod> = s.api();
    pods.delete("polite", &DeleteParams::default()).await.expect("delete polite");
    pods.delete("stubborn", &DeleteParams::default().grace_period(1))
        .await
        .expect("delete stubborn");
    let polite_uid = polite.uid().expect("uid");
    let stubborn_uid = stubborn.uid().expect("uid");
    wait_for(&pods, "polite", "removed", is_deleted(&polite_uid)).await;
    wait_for(&pods, "stubborn", "removed", is_deleted(&stubborn_uid)).await;

    let out = s.volumes.path().join("deletion/out");
    assert_eq!(std::fs::read_to_string(out.join("polite.term")).expect("polite saw SIGTERM"), "got TERM\n");
    assert_eq!(
        std::fs::read_to_string(out.join("stubborn.term")).expect("stubborn saw SIGTERM"),
        "ignoring TERM\n"
    );
}

#[tokio::test]
async fn rbac_applies_to_service_account_clients() {
    let s = setup("rbac").await;
    let account: ServiceAccount = from_yaml("metadata: { name: runner }\n");
    s.api::<ServiceAccount>().create(&PostParams::default(), &account).await.expect("sa");
    let role: Role = from_yaml(
        "metadata: { name: read-configmaps }\nrules: [{ apiGroups: [''], resources: [configmaps], verbs: [get, list] }]\n",
    );
    s.api::<Role>().create(&PostParams::default(), &role).await.expect("role");
    let binding: RoleBinding = from_yaml(
        r#"
metadata: { name: runner-reads-configmaps }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-configmaps }
subjects: [{ kind: ServiceAccount, name: runner, namespace: rbac }]
"#,
    );
    s.api::<RoleBinding>().create(&PostParams::default(), &binding).await.expect("binding");

    let as_runner = s
        .plane
        .service_account_client("rbac", "runner")
        .await
        .expect("service account client");
    let configmaps: Api<ConfigMap> = Api::namespaced(as_runner.clone(), "rbac");
    configmaps.list(&Default::default()).await.expect("the role grants listing configmaps");
    let forbidden = |result: Result<_, kube::Error>| matches!(result, Err(kube::Error::Api(status)) if status.code == 403);
    let secrets: Api<Secret> = Api::namespaced(as_runner.clone(), "rbac");
    assert!(forbidden(secrets.list(&Default::default()).await.map(|_| ())), "secrets must be refused");
    let config: ConfigMap = from_yaml("metadata: { name: sneaky }\n");
    assert!(
        forbidden(configmaps.create(&PostParams::default(), &config).await.map(|_| ())),
        "creating configmaps must be refused"
    );

    // A pod of that service account reaches the API server as it, through the
    // kubeconfig the node gives it.
    let kubectl_pod = |name: &str, resource: &str| {
        format!(
            "metadata: {{ name: {name} }}\nspec:\n  serviceAccountName: runner\n  restartPolicy: Never\n  containers: [{{ name: main, image: kubectl, args: [get, {resource}, -o, name] }}]\n"
        )
    };
    s.create_pod(&kubectl_pod("lists-configmaps", "configmaps")).await;
    s.create_pod(&kubectl_pod("lists-secrets", "secrets")).await;
    s.wait_phase("lists-configmaps", "Succeeded").await;
    s.wait_phase("lists-secrets", "Failed").await;
    assert_eq!(
        s.node.container_log("rbac", "lists-configmaps", "main"),
        "configmap/kube-root-ca.crt\n"
    );
    let refusal = s.node.container_log("rbac", "lists-secrets", "main");
    assert!(
        refusal.contains("\"system:serviceaccount:rbac:runner\" cannot list resource \"secrets\""),
        "kubectl said: {refusal}"
    );
}

#[tokio::test]
async fn kubectl_and_helm_use_the_admin_kubeconfig() {
    let s = setup("tools").await;
    let run = |tool: &str, args: &[&str]| {
        let output = std::process::Command::new(s.plane.binaries().path(tool))
            .args(args)
            .env("KUBECONFIG", s.plane.kubeconfig())
            .env("HELM_CACHE_HOME", s.volumes.path().join("helm-cache"))
            .env("HELM_CONFIG_HOME", s.volumes.path().join("helm-config"))
            .env("HELM_DATA_HOME", s.volumes.path().join("helm-data"))
            .output()
            .expect("tool runs");
        assert!(output.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let version = run("kubectl", &["version", "-o", "json"]);
    let version: serde_json::Value = serde_json::from_str(&version).expect("kubectl prints JSON");
    assert_eq!(version["serverVersion"]["gitVersion"], "v1.36.3");
    assert_eq!(version["clientVersion"]["gitVersion"], "v1.36.3");
    assert_eq!(run("kubectl", &["get", "namespace", "tools", "-o", "name"]), "namespace/tools\n");
    assert!(run("helm", &["version", "--short"]).starts_with("v3.22.0"));
    assert_eq!(run("helm", &["list", "-n", "tools", "-q"]), "");
}

#[tokio::test]
async fn the_node_is_ready_and_holds_its_lease() {
    let s = setup("heartbeat").await;
    let node = Api::<NodeObject>::all(s.client.clone())
        .get("node-heartbeat")
        .await
        .expect("node is registered");
    let ready = node
        .status
        .and_then(|status| status.conditions)
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status);
    assert_eq!(ready.as_deref(), Some("True"));
    let lease = Api::<Lease>::namespaced(s.client.clone(), "kube-node-lease")
        .get("node-heartbeat")
        .await
        .expect("node lease exists");
    let holder = lease.spec.and_then(|spec| spec.holder_identity);
    assert_eq!(holder.as_deref(), Some("node-heartbeat"));
}

#[tokio::test]
async fn a_deployment_gets_its_replicas_ready() {
    let s = setup("deployments").await;
    let deployments: Api<Deployment> = s.api();
    let deployment: Deployment = from_yaml(
        r#"
metadata: { name: idle }
spec:
  replicas: 2
  selector: { matchLabels: { app: idle } }
  template:
    metadata: { labels: { app: idle } }
    spec:
      containers:
        - name: main
          image: shell
          command: [sh, -c, 'while true; do sleep 0.2; done']
"#,
    );
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("deployment is created");
    let ready_replicas = |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref()).and_then(|s| s.ready_replicas) == Some(2)
    };
    wait_for(&deployments, "idle", "2 ready replicas", ready_replicas).await;
}

#[tokio::test]
async fn init_containers_run_first() {
    let s = setup("init").await;
    s.create_pod(
        r#"
metadata: { name: staged }
spec:
  restartPolicy: Never
  volumes: [{ name: work, emptyDir: {} }]
  initContainers:
    - name: prepare
      image: shell
      command: [sh, -c, 'echo prepared > /work/state']
      volumeMounts: [{ name: work, mountPath: /work }]
  containers:
    - name: main
      image: shell
      command: [sh, -c, 'cat /work/state']
      volumeMounts: [{ name: work, mountPath: /work }]
"#,
    )
    .await;
    s.wait_phase("staged", "Succeeded").await;
    assert_eq!(s.node.container_log("init", "staged", "main"), "prepared\n");
}

fn waiting_reason(pod: &Pod) -> Option<&str> {
    let status = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
    status.state.as_ref()?.waiting.as_ref()?.reason.as_deref()
}

#[tokio::test]
async fn config_and_start_errors_show_as_kubelet_shows_them() {
    let s = setup("errors").await;
    // A Secret that does not exist yet: the pod waits for it, then runs.
    s.create_pod(
        r#"
metadata: { name: late-secret }
spec:
  restartPolicy: Never
  containers:
    - name: main
      image: shell
      command: [sh, -c, 'echo "token=$TOKEN"']
      env: [{ name: TOKEN, valueFrom: { secretKeyRef: { name: late, key: token } } }]
"#,
    )
    .await;
    s.wait_pod("late-secret", "CreateContainerConfigError", |pod| {
        waiting_reason(pod) == Some("CreateContainerConfigError")
    })
    .await;
    let secret: Secret = from_yaml("metadata: { name: late }\nstringData: { token: abc123 }\n");
    s.api::<Secret>().create(&PostParams::default(), &secret).await.expect("secret");
    s.wait_phase("late-secret", "Succeeded").await;
    assert_eq!(s.node.container_log("errors", "late-secret", "main"), "token=abc123\n");

    // A command that cannot be run fails the container with exit code 128.
    s.create_pod(
        r#"
metadata: { name: no-binary }
spec:
  restartPolicy: Never
  containers: [{ name: main, image: shell, command: [/nonexistent/bin/tool] }]
"#,
    )
    .await;
    let pod = s.wait_phase("no-binary", "Failed").await;
    let terminated = pod
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|c| c.into_iter().next())
        .and_then(|c| c.state)
        .and_then(|state| state.terminated)
        .expect("container is terminated");
    assert_eq!(terminated.exit_code, 128);
    assert_eq!(terminated.reason.as_deref(), Some("StartError"));
}

#[tokio::test]
async fn a_killed_container_is_restarted() {
    let s = setup("crash").await;
    s.create_pod(
        r#"
metadata: { name: steady }
spec:
  containers: [{ name: main, image: shell, command: [sh, -c, 'echo started; while true; do sleep 0.2; done'] }]
"#,
    )
    .await;
    let pod = s.wait_phase("steady", "Running").await;
    let pid = container_pid(&pod, "main").expect("running container has a pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).expect("kill");
    let restarted = |pod: &Pod| {
        let status = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref()).and_then(|c| c.first());
        status.is_some_and(|c| c.restart_count == 1 && c.state.as_ref().is_some_and(|s| s.running.is_some()))
    };
    let pod = s.wait_pod("steady", "restarted once", restarted).await;
    let last = pod
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|c| c.into_iter().next())
        .and_then(|c| c.last_state)
        .and_then(|s| s.terminated)
        .expect("last state is the killed run");
    assert_eq!((last.exit_code, last.signal), (137, Some(9)));
    assert_eq!(s.node.container_log("crash", "steady", "main"), "started\nstarted\n");
}
