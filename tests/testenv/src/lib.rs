//! A throwaway Kubernetes control plane and a node stand-in for end-to-end tests.
//!
//! No container engine exists where these tests run, so the control plane is the
//! real one built from source (`tests/build-k8s.sh`: etcd, kube-apiserver,
//! kube-controller-manager, kubectl, helm), started on free loopback ports, and the
//! node is played by [`Node`], which runs pods as local processes.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use mailqueue_testenv::{cargo_binary, ControlPlane, Node};
//!
//! // Builds the binaries on first use (minutes), then reuses them (seconds);
//! // `MQ_K8S_BIN=<dir>` points at binaries elsewhere.
//! let plane = ControlPlane::start().await?;
//! plane.create_namespace("demo").await?;
//! let volumes = tempfile::tempdir()?;
//! let node = Node::start(
//!     plane.client()?,
//!     plane
//!         .node_config("node-1", volumes.path())
//!         .image("mailqueue-runner", cargo_binary("mailqueue-runner", "mailqueue-runner")?)
//!         .namespace("demo"),
//! )
//! .await?;
//! // ... create objects with plane.client()?, run `kubectl`/`helm` with
//! // KUBECONFIG=plane.kubeconfig(), check RBAC with
//! // plane.service_account_client("demo", "runner").await? ...
//! node.stop().await;
//! plane.stop().await;
//! # Ok(()) }
//! ```
//!
//! Tests in one binary may share one control plane with [`control_plane::shared`]
//! (a cold start costs seconds); each then uses its own namespace and a node limited
//! to it ([`NodeConfig::namespace`]).
//!
//! Everything started is stopped, and every directory removed, when its owner is
//! dropped, and also when the test process ends however it ends (a watchdog process
//! kills what is left). A [`ControlPlane`] or [`Node`] dropped during a panic prints
//! the tails of its logs first; [`ControlPlane::report_on_failure`] does the same for
//! a shared control plane.

mod binaries;
mod cargo_binary;
pub mod control_plane;
mod error;
mod http_probe;
mod kubeconfig;
mod node;
mod pki;
mod process;
mod report;

pub use binaries::Binaries;
pub use cargo_binary::cargo_binary;
pub use control_plane::ControlPlane;
pub use error::{Error, Result};
pub use node::{container_pid, Node, NodeConfig, NodeError};
pub use report::FailureReport;
