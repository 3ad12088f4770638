//! The MailQueue operator: the reconciler that keeps one runner pod per slice. The `MailQueue`
//! resource and the Lease contract it shares with the runners live in `mailqueue-contract`.

pub mod actions;
pub mod apply;
pub mod conditions;
pub mod desired;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod observe;
pub mod reconcile;
pub mod references;
pub mod runner_pod;
pub mod status;
pub mod validate;

use kube::CustomResourceExt;
use mailqueue_contract::crd::MailQueue;

/// The one field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "mailqueue-operator";

/// File name of the generated CRD under `crds/`.
pub const CRD_FILE: &str = "mailqueue.dev_mailqueues.yaml";

/// The `MailQueue` CustomResourceDefinition as YAML, as committed under `crds/`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&MailQueue::crd())
}
