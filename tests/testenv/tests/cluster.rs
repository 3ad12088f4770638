//! Self-tests of the test environment on its real single-node cluster: API objects, the
//! scheduler and the controller manager's Jobs and Deployments on the real kubelet, local volumes,
//! security contexts the kernel enforces, restarts, graceful deletion, logs and exec through the
//! API server, RBAC for pods reaching the API server through the `kubernetes` Service.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node as NodeObject, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::runtime::conditions::{is_crd_established, is_deleted, is_job_completed};
use kube::{Api, Client, ResourceExt};
use mailqueue_testenv::host::{NODE_NAME, POD_CIDR};
use mailqueue_testenv::images::{self, ImageArchive};
use mailqueue_testenv::{cluster, Cluster, FailureReport};
use support::{from_yaml, wait_for};

/// A namespace of the binary's cluster.
struct Setup {
    cluster: &'static Cluster,
    client: Client,
    namespace: String,
    volumes: tempfile::TempDir,
    _report: FailureReport,
}

fn kubectl_image(cluster_bin: &std::path::Path) -> ImageArchive {
    let files: [(&std::path::Path, &str); 1] = [(cluster_bin, "/kubectl")];
    images::static_binaries("localhost/kubectl:mq", &files, &[], "65534:65534", &["/kubectl"]).expect("kubectl image")
}

async fn setup(namespace: &str) -> Setup {
    let kubectl = mailqueue_testenv::Binaries::locate().expect("binaries").path("kubectl");
    let images =
        tokio::task::spawn_blocking(move || vec![images::busybox().expect("busybox image"), kubectl_image(&kubectl)])
            .await
            .expect("image task");
    let cluster = cluster::shared(images).await.expect("cluster starts");
    let plane = cluster.plane();
    let report = cluster.report_on_failure();
    plane.create_namespace(namespace).await.expect("namespace is created");
    let client = plane.client().expect("admin client");
    let volumes = tempfile::tempdir().expect("volume root");
    Setup { cluster, client, namespace: namespace.to_owned(), volumes, _report: report }
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
        self.api::<Pod>().create(&PostParams::default(), &pod).await.expect("pod is created")
    }

    async fn wait_pod(&self, name: &str, what: &str, test: impl Fn(&Pod) -> bool + Send + 'static) -> Pod {
        let pod = wait_for(&self.api::<Pod>(), name, what, move |pod: Option<&Pod>| pod.is_some_and(&test)).await;
        pod.unwrap_or_else(|| panic!("pod {name} vanished"))
    }

    async fn wait_phase(&self, name: &str, phase: &'static str) -> Pod {
        self.wait_pod(name, phase, move |pod| phase_of(pod) == Some(phase)).await
    }

    /// The current log of one container, through the API server and the kubelet.
    async fn log(&self, pod: &str, container: &str) -> String {
        let params = kube::api::LogParams { container: Some(container.to_owned()), ..Default::default() };
        self.api::<Pod>().logs(pod, &params).await.unwrap_or_else(|e| panic!("logs of {pod}/{container}: {e}"))
    }

    fn kubectl(&self, args: &[&str]) -> (bool, String) {
        let plane = self.cluster.plane();
        let output = std::process::Command::new(plane.binaries().path("kubectl"))
            .args(["--namespace", &self.namespace])
            .args(args)
            .env("KUBECONFIG", plane.kubeconfig())
            .output()
            .expect("kubectl runs");
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.success(), text)
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
    let refused = widgets.create(&PostParams::default(), &widget(0)).await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(status)) if status.code == 422),
        "invalid widget must be refused, got {refused:?}"
    );
    let leases: Api<Lease> = s.api();
    let lease: Lease =
        from_yaml("metadata: { name: leader }\nspec: { holderIdentity: replica-1, leaseDurationSeconds: 15 }\n");
    leases.create(&PostParams::default(), &lease).await.expect("lease is created");
    let holder = leases.get("leader").await.expect("lease is stored").spec.and_then(|spec| spec.holder_identity);
    assert_eq!(holder.as_deref(), Some("replica-1"));
}

#[tokio::test]
async fn the_node_is_ready_and_a_job_runs_to_completion_on_it() {
    let s = setup("jobs").await;
    let nodes: Api<NodeObject> = Api::all(s.client.clone());
    let node = nodes.get(NODE_NAME).await.expect("the node is registered");
    let info = node.status.as_ref().and_then(|s| s.node_info.as_ref()).expect("node info");
    assert_eq!(info.kubelet_version, "v1.36.3");
    assert!(info.container_runtime_version.starts_with("containerd://1."), "{}", info.container_runtime_version);

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
          image: localhost/busybox:mq
          imagePullPolicy: Never
          command: [sh, -c, 'echo "hello from $(POD_NAME) in $NS as $(id -u)"']
          env:
            - name: NS
              valueFrom: { fieldRef: { fieldPath: metadata.namespace } }
            - name: POD_NAME
              valueFrom: { fieldRef: { fieldPath: metadata.name } }
"#,
    );
    jobs.create(&PostParams::default(), &job).await.expect("job is created");
    wait_for(&jobs, "hello", "Complete", is_job_completed()).await;
    let pods = s.api::<Pod>().list(&ListParams::default().labels("job-name=hello")).await.expect("job pods");
    let [pod] = pods.items.as_slice() else { panic!("expected one pod for the job, got {}", pods.items.len()) };
    // The scheduler bound it to the one node.
    assert_eq!(pod.spec.as_ref().and_then(|s| s.node_name.as_deref()), Some(NODE_NAME));
    assert_eq!(s.log(&pod.name_any(), "main").await, format!("hello from {} in jobs as 65534\n", pod.name_any()));
}

#[tokio::test]
async fn security_contexts_and_local_volumes_are_enforced_by_the_kernel() {
    let s = setup("security").await;
    let claim_dir = s.volumes.path().join("spool");
    s.cluster.local_volume("security", "spool", &claim_dir, 4321).await.expect("local volume");
    let pod = |name: &str, uid: u32, script: &str| {
        format!(
            r#"
metadata: {{ name: {name} }}
spec:
  restartPolicy: Never
  securityContext: {{ runAsUser: {uid}, runAsGroup: {uid}, runAsNonRoot: true, seccompProfile: {{ type: RuntimeDefault }} }}
  volumes: [{{ name: queue, persistentVolumeClaim: {{ claimName: spool }} }}]
  containers:
    - name: main
      image: localhost/busybox:mq
      imagePullPolicy: Never
      command: [sh, -c, '{script}']
      securityContext: {{ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {{ drop: [ALL] }} }}
      volumeMounts: [{{ name: queue, mountPath: /var/spool/mq }}]
"#
        )
    };
    let script = "id -u; touch /root-was-writable 2>/dev/null && echo root-writable || echo root-read-only; \
                  (echo written > /var/spool/mq/msg) 2>/dev/null && echo volume-writable || echo volume-read-only";
    s.create_pod(&pod("owner", 4321, script)).await;
    s.create_pod(&pod("stranger", 1234, script)).await;
    s.wait_phase("owner", "Succeeded").await;
    s.wait_phase("stranger", "Succeeded").await;
    assert_eq!(s.log("owner", "main").await, "4321\nroot-read-only\nvolume-writable\n");
    assert_eq!(s.log("stranger", "main").await, "1234\nroot-read-only\nvolume-read-only\n");
    assert_eq!(std::fs::read_to_string(claim_dir.join("msg")).expect("the pod wrote to the claim"), "written\n");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(claim_dir.join("msg")).expect("file").uid(), 4321);
}

#[tokio::test]
async fn pods_get_their_own_ips_and_reach_the_api_server_through_its_service_as_their_account() {
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
    let secret: Secret = from_yaml("metadata: { name: creds }\nstringData: { password: hunter2 }\n");
    s.api::<Secret>().create(&PostParams::default(), &secret).await.expect("secret");
    let config: ConfigMap = from_yaml("metadata: { name: settings }\ndata: { a: b }\n");
    s.api::<ConfigMap>().create(&PostParams::default(), &config).await.expect("configmap");

    // kubectl in a pod uses the in-cluster config: KUBERNETES_SERVICE_HOST, the Service's
    // ClusterIP, which kube-proxy routes to the API server on the node IP.
    let kubectl_pod = |name: &str, resource: &str| {
        format!(
            "metadata: {{ name: {name} }}\nspec:\n  serviceAccountName: runner\n  restartPolicy: Never\n  containers: [{{ name: main, image: localhost/kubectl:mq, imagePullPolicy: Never, args: [get, {resource}, -o, name] }}]\n"
        )
    };
    s.create_pod(&kubectl_pod("lists-configmaps", "configmaps")).await;
    s.create_pod(&kubectl_pod("lists-secrets", "secrets")).await;
    let allowed = s.wait_phase("lists-configmaps", "Succeeded").await;
    s.wait_phase("lists-secrets", "Failed").await;
    let listed = s.log("lists-configmaps", "main").await;
    assert!(listed.contains("configmap/settings"), "kubectl in the pod listed: {listed}");
    let refusal = s.log("lists-secrets", "main").await;
    assert!(
        refusal.contains("\"system:serviceaccount:rbac:runner\" cannot list resource \"secrets\""),
        "kubectl said: {refusal}"
    );
    let ip = allowed.status.and_then(|s| s.pod_ip).expect("pod IP");
    let prefix = POD_CIDR.trim_end_matches("0/24");
    assert!(ip.starts_with(prefix), "pod IP {ip} is not on the pod network {POD_CIDR}");
}

#[tokio::test]
async fn killed_containers_restart_deletion_is_graceful_and_exec_works() {
    let s = setup("lifecycle").await;
    let pod = |name: &str, on_term: &str| {
        format!(
            r#"
metadata: {{ name: {name} }}
spec:
  terminationGracePeriodSeconds: 30
  volumes: [{{ name: tmp, emptyDir: {{}} }}]
  containers:
    - name: main
      image: localhost/busybox:mq
      imagePullPolicy: Never
      command: [sh, -c, 'trap "{on_term}" TERM; echo started; touch /tmp/started; while true; do sleep 0.1; done']
      readinessProbe: {{ exec: {{ command: [test, -e, /tmp/started] }}, periodSeconds: 1 }}
      volumeMounts: [{{ name: tmp, mountPath: /tmp }}]
"#
        )
    };
    s.create_pod(&pod("polite", "echo got TERM; exit 0")).await;
    s.create_pod(&pod("stubborn", "echo ignoring TERM")).await;
    let polite = s.wait_pod("polite", "Ready", is_ready).await;
    let stubborn = s.wait_pod("stubborn", "Ready", is_ready).await;

    // exec through the API server, the kubelet and containerd.
    let (ok, out) = s.kubectl(&["exec", "polite", "--", "sh", "-c", "echo $((6 * 7)) as $(id -u)"]);
    assert!(ok && out == "42 as 65534\n", "kubectl exec: {out}");

    // A container SIGKILLed through containerd is restarted by the kubelet (restartPolicy Always).
    s.cluster.node().kill_container(&stubborn, "main").await.expect("ctr kills the container");
    let restarted = s
        .wait_pod("stubborn", "a restart", |p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.restart_count >= 1))
        })
        .await;
    let last = restarted
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|c| c.into_iter().next())
        .and_then(|c| c.last_state);
    assert_eq!(last.and_then(|l| l.terminated).map(|t| t.exit_code), Some(137), "killed by SIGKILL");
    s.wait_pod("stubborn", "Ready again", is_ready).await;

    // Deletion: SIGTERM, and SIGKILL after the grace period for the one that ignores it.
    let pods: Api<Pod> = s.api();
    let before = std::time::Instant::now();
    pods.delete("polite", &DeleteParams::default()).await.expect("delete polite");
    pods.delete("stubborn", &DeleteParams::default().grace_period(2)).await.expect("delete stubborn");
    wait_for(&pods, "polite", "removed", is_deleted(&polite.uid().expect("uid"))).await;
    wait_for(&pods, "stubborn", "removed", is_deleted(&stubborn.uid().expect("uid"))).await;
    assert!(
        before.elapsed() >= std::time::Duration::from_secs(2),
        "the stubborn pod was removed before its grace period"
    );
}

#[tokio::test]
async fn a_deployment_gets_its_replicas_ready() {
    let s = setup("deployments").await;
    let deployment: Deployment = from_yaml(
        r#"
metadata: { name: web }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      volumes: [{ name: www, emptyDir: {} }]
      containers:
        - name: main
          image: localhost/busybox:mq
          imagePullPolicy: Never
          command: [sh, -c, 'echo ok > /www/index.html && httpd -f -p 8080 -h /www']
          readinessProbe: { httpGet: { path: /index.html, port: 8080 }, periodSeconds: 1 }
          volumeMounts: [{ name: www, mountPath: /www }]
"#,
    );
    let deployments: Api<Deployment> = s.api();
    deployments.create(&PostParams::default(), &deployment).await.expect("deployment");
    wait_for(&deployments, "web", "2 ready replicas", |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref()).and_then(|s| s.ready_replicas) == Some(2)
    })
    .await;
}

#[tokio::test]
async fn kubectl_and_helm_use_the_admin_kubeconfig() {
    let s = setup("tools").await;
    let plane = s.cluster.plane();
    let run = |tool: &str, args: &[&str]| {
        let output = std::process::Command::new(plane.binaries().path(tool))
            .args(args)
            .env("KUBECONFIG", plane.kubeconfig())
            .env("HELM_CACHE_HOME", s.volumes.path().join("helm-cache"))
            .env("HELM_CONFIG_HOME", s.volumes.path().join("helm-config"))
            .env("HELM_DATA_HOME", s.volumes.path().join("helm-data"))
            .output()
            .expect("tool runs");
        assert!(output.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let version: serde_json::Value = serde_json::from_str(&run("kubectl", &["version", "-o", "json"])).expect("JSON");
    assert_eq!(version["serverVersion"]["gitVersion"], "v1.36.3");
    assert_eq!(version["clientVersion"]["gitVersion"], "v1.36.3");
    assert_eq!(run("kubectl", &["get", "namespace", "tools", "-o", "name"]), "namespace/tools\n");
    assert!(run("helm", &["version", "--short"]).starts_with("v3.22.0"));
    assert_eq!(run("helm", &["list", "-n", "tools", "-q"]), "");
}
