use std::path::PathBuf;

/// Why the test environment could not be set up or driven.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not get the Kubernetes binaries: {0}")]
    Binaries(String),
    #[error("could not build a workspace binary: {0}")]
    CargoBuild(String),
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not make the throwaway certificates: {0}")]
    Certificates(#[from] rcgen::Error),
    #[error("{what} was not ready after {seconds}s{}", tail_suffix(.log_tail))]
    NotReady { what: String, seconds: u64, log_tail: String },
    #[error("{process} exited while starting ({status}){}", tail_suffix(.log_tail))]
    Exited { process: String, status: String, log_tail: String },
    #[error("could not read the kubeconfig it wrote: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("the API server returned no token for service account {namespace}/{name}")]
    NoToken { namespace: String, name: String },
    #[error("could not prepare the machine for a real node: {0}")]
    Host(String),
    #[error("could not build or load a container image: {0}")]
    Image(String),
}

fn tail_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; last log lines:\n{tail}")
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { action, path, source }
}
