//! A throwaway single-node Kubernetes cluster for end-to-end tests, made of real parts.
//!
//! The control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) and the
//! node's kubelet and kube-proxy are built from the pinned Go modules (`tests/build-k8s.sh`);
//! the node runs Debian's containerd and runc, with a bridge CNI network, and images built
//! locally with buildah ([`images`]: no registry). See [`node`](Node) for what the node changes
//! on the machine and how it puts it back ([`host`]).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use mailqueue_testenv::{images, Cluster};
//!
//! // Builds the Kubernetes binaries on first use (minutes), then reuses them;
//! // `MQ_K8S_BIN=<dir>` points at binaries elsewhere.
//! let busybox = images::busybox()?;
//! let cluster = Cluster::start(vec![busybox]).await?;
//! cluster.plane().create_namespace("demo").await?;
//! // ... create pods with cluster.plane().client()?, run `kubectl`/`helm` with
//! // KUBECONFIG=cluster.plane().kubeconfig(), read logs with cluster.node().pod_log(..) ...
//! # Ok(()) }
//! ```
//!
//! A machine runs one node at a time: tests in one binary share one cluster
//! ([`cluster::shared`]), each in its own namespace. [`ControlPlane::start`] alone (on
//! loopback, no node) serves tests that only need the API.
//!
//! Everything started is stopped, every mount and network change undone and every directory
//! removed when its owner is dropped, and also when the test process ends however it ends (a
//! watchdog process does what is left). A [`ControlPlane`] or [`Node`] dropped during a panic
//! prints the tails of its logs first; [`ControlPlane::report_on_failure`] does the same for a
//! shared one.

mod binaries;
mod cargo_binary;
pub mod cluster;
pub mod control_plane;
mod error;
pub mod host;
mod http_probe;
pub mod images;
mod kubeconfig;
mod node;
mod pki;
mod process;
mod report;

pub use binaries::Binaries;
pub use cargo_binary::cargo_binary;
pub use cluster::Cluster;
pub use control_plane::ControlPlane;
pub use error::{Error, Result};
pub use node::{container_id, HostReady, Node};
pub use report::FailureReport;
