//! The MailQueue operator: the `MailQueue` resource, the reconciler that keeps one runner pod
//! per slice, and the Lease contract between the operator and the runners.

pub mod actions;
pub mod apply;
pub mod conditions;
pub mod crd;
pub mod desired;
pub mod duration;
pub mod events;
pub mod leader;
pub mod lease;
pub mod metrics;
pub mod observe;
pub mod reconcile;
pub mod references;
pub mod runner_pod;
pub mod slice;
pub mod status;
pub mod telemetry;
pub mod validate;

use kube::CustomResourceExt;

/// The one field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "mailqueue-operator";

/// File name of the generated CRD under `crds/`.
pub const CRD_FILE: &str = "mailqueue.dev_mailqueues.yaml";

/// The `MailQueue` CustomResourceDefinition as YAML, as committed under `crds/`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&MailQueue::crd())
}

pub use crd::MailQueue;
