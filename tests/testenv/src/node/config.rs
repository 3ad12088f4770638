//! The configuration files of the node's parts, as text. Each part keeps its state under the
//! node's state directory, so nothing of the machine's own (`/var/lib/containerd`,
//! `/var/lib/kubelet`, `/etc/cni`) is touched.

use std::path::Path;

use crate::host::{BRIDGE, NODE_IP, POD_CIDR};

/// The pause image every pod sandbox runs, built locally (no registry).
pub(crate) const PAUSE_IMAGE: &str = "localhost/pause:mq";

/// containerd as a plain process. `restrict_oom_score_adj`: the machine lacks CAP_SYS_RESOURCE,
/// and without it every sandbox fails with runc's "can't get final child's PID from pipe".
pub(crate) fn containerd(state: &Path) -> String {
    let s = state.display();
    format!(
        r#"version = 2
root = "{s}/containerd/root"
state = "{s}/containerd/state"
[grpc]
  address = "{s}/containerd/containerd.sock"
[ttrpc]
  address = "{s}/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{s}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{s}/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{s}/cni/net.d"
"#
    )
}

/// Pods on a bridge with their own IPs; the bridge is their gateway to the node IP.
pub(crate) fn cni(state: &Path) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "mq-pods",
        "plugins": [{
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "dataDir": state.join("cni/ipam"),
                "ranges": [[{"subnet": POD_CIDR}]],
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        }],
    })
    .to_string()
}

/// The kubelet. The machine is cgroup v1 (`failCgroupV1: false`) without systemd; no DNS
/// resolver is handed to pods (`resolvConf: ""`), so no lookup leaves the machine; image garbage
/// collection is off (images are loaded, never pulled back).
pub(crate) fn kubelet(state: &Path, ca: &Path) -> String {
    let s = state.display();
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {NODE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {healthz}
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {ca}}}
authorization: {{mode: Webhook}}
containerRuntimeEndpoint: unix://{s}/containerd/containerd.sock
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
clusterDomain: cluster.local
resolvConf: ""
podLogsDir: {s}/pod-logs
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {{memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}}
serializeImagePulls: false
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusUpdateFrequency: 5s
shutdownGracePeriod: 0s
"#,
        ca = ca.display(),
        healthz = super::KUBELET_HEALTHZ,
    )
}

/// kube-proxy in nftables mode: Services (the API server's `kubernetes` Service above all) work
/// from pods.
pub(crate) fn kube_proxy(kubeconfig: &Path, healthz_port: u16, metrics_port: u16) -> String {
    format!(
        r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {{kubeconfig: {kubeconfig}}}
hostnameOverride: {node}
clusterCIDR: {POD_CIDR}
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:{healthz_port}
metricsBindAddress: 127.0.0.1:{metrics_port}
nodePortAddresses: [{NODE_IP}/32]
conntrack: {{maxPerCore: 0, min: 0}}
"#,
        kubeconfig = kubeconfig.display(),
        node = crate::host::NODE_NAME,
    )
}
