//! A single-node cluster: the control plane on the node IP and a real node ([`Node`]) running
//! the images it is given, with local PersistentVolumes for the tests' queue trees.

use std::path::Path;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::PostParams;
use kube::Api;

use crate::control_plane::ControlPlane;
use crate::error::{io, Error, Result};
use crate::host::{NODE_IP, NODE_NAME};
use crate::images::ImageArchive;
use crate::node::{HostReady, Node};
use crate::report::FailureReport;

/// A running cluster. Dropping it stops the node first, then the control plane.
pub struct Cluster {
    node: Node,
    plane: ControlPlane,
}

impl Cluster {
    /// Prepares the machine (packages, node slot, network), starts the control plane on the node
    /// IP, then the node with `images` loaded; returns once the node is Ready.
    pub async fn start(images: Vec<ImageArchive>) -> Result<Self> {
        let host = tokio::task::spawn_blocking(HostReady::prepare).await.map_err(|e| Error::Host(e.to_string()))??;
        let plane = ControlPlane::start_on(NODE_IP).await?;
        let node = Node::start(host, &plane, &images).await?;
        Ok(Self { node, plane })
    }

    pub fn plane(&self) -> &ControlPlane {
        &self.plane
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    /// A guard that prints the tails of every log of the cluster (control plane and node) if it
    /// is dropped during a panic: keep one alive for the length of a test.
    pub fn report_on_failure(&self) -> FailureReport {
        let mut logs = self.plane.logs();
        logs.extend(self.node.logs());
        FailureReport::new(logs)
    }

    /// Makes `dir` (created if missing, owned by `uid`) the PersistentVolumeClaim `claim` of
    /// `namespace`: a local PersistentVolume on the node, ReadWriteMany, bound to the claim.
    pub async fn local_volume(&self, namespace: &str, claim: &str, dir: &Path, uid: u32) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
        std::os::unix::fs::chown(dir, Some(uid), Some(uid)).map_err(io("chown", dir))?;
        let name = format!("{namespace}-{claim}");
        let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "local": {"path": dir},
                "claimRef": {"namespace": namespace, "name": claim},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE_NAME]}
                ]}]}},
            },
        }))
        .map_err(|e| Error::Host(format!("PersistentVolume {name}: {e}")))?;
        let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
            "metadata": {"name": claim},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "volumeName": name,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }))
        .map_err(|e| Error::Host(format!("PersistentVolumeClaim {claim}: {e}")))?;
        let client = self.plane.client()?;
        Api::<PersistentVolume>::all(client.clone()).create(&PostParams::default(), &pv).await?;
        Api::<PersistentVolumeClaim>::namespaced(client, namespace).create(&PostParams::default(), &pvc).await?;
        Ok(())
    }
}

/// One cluster for the whole test binary, started by the first caller with its `images` (later
/// callers' images are ignored: a test binary loads one set). Stopped, and the machine cleaned
/// up, when the test process exits. Tests sharing it use their own namespaces. A test binary that
/// uses it must not start a [`Cluster`] of its own: the machine has one node slot.
pub async fn shared(images: Vec<ImageArchive>) -> Result<&'static Cluster> {
    static SHARED: tokio::sync::OnceCell<Cluster> = tokio::sync::OnceCell::const_new();
    SHARED.get_or_try_init(|| Cluster::start(images)).await
}
