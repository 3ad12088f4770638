//! Step 1 of the reconcile: read the runner pods and slice Leases of one `MailQueue`. What it
//! reads, [`Observed`], is the input of both the status (`status.rs`) and the changes
//! (`apply.rs`), so it lives here rather than with either.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};

use mailqueue_contract::slice::MAILQUEUE_LABEL;

/// The pods and Leases of one `MailQueue`, as read from the API server.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub pods: Vec<Pod>,
    pub leases: Vec<Lease>,
}

impl Observed {
    pub(crate) fn pod(&self, name: &str) -> Option<&Pod> {
        self.pods.iter().find(|p| p.metadata.name.as_deref() == Some(name))
    }

    pub(crate) fn lease(&self, name: &str) -> Option<&Lease> {
        self.leases.iter().find(|l| l.metadata.name.as_deref() == Some(name))
    }
}

/// The pods or Leases could not be listed.
#[derive(Debug, thiserror::Error)]
#[error("cannot list the {kind} of MailQueue {namespace}/{name}: {error}")]
pub struct ReadError {
    kind: &'static str,
    namespace: String,
    name: String,
    error: kube::Error,
}

/// Lists the objects labelled as belonging to the `MailQueue` `namespace/name`.
pub async fn observe(client: &Client, namespace: &str, name: &str) -> Result<Observed, ReadError> {
    // Served from the API server's watch cache: a reconcile runs on every heartbeat that
    // changes, and the apply step tolerates a read that is a moment old.
    let params = ListParams::default().labels(&format!("{MAILQUEUE_LABEL}={name}")).match_any();
    let error = |kind, error| ReadError { kind, namespace: namespace.to_owned(), name: name.to_owned(), error };
    let pods =
        Api::<Pod>::namespaced(client.clone(), namespace).list(&params).await.map_err(|e| error("runner pods", e))?;
    let leases = Api::<Lease>::namespaced(client.clone(), namespace)
        .list(&params)
        .await
        .map_err(|e| error("slice Leases", e))?;
    Ok(Observed { pods: pods.items, leases: leases.items })
}
