//! Kubeconfig files, written so that kubectl and helm can be pointed at the control
//! plane too (`KUBECONFIG=<path>`), and the clients built from them.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{io, Result};

/// How a kubeconfig user proves who it is.
pub(crate) enum Credentials<'a> {
    ClientCert { cert: &'a Path, key: &'a Path },
    Token(&'a str),
}

/// Writes a kubeconfig; `namespace` is the default namespace of its context (a pod's
/// own, as in-cluster clients default to it).
pub(crate) fn write(
    path: &Path,
    server: &str,
    ca_cert: &Path,
    user: Credentials<'_>,
    namespace: Option<&str>,
) -> Result<()> {
    let user = match user {
        Credentials::ClientCert { cert, key } => serde_json::json!({
            "client-certificate": cert,
            "client-key": key,
        }),
        Credentials::Token(token) => serde_json::json!({ "token": token }),
    };
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "testenv", "cluster": {
            "server": server,
            "certificate-authority": ca_cert,
        }}],
        "users": [{ "name": "testenv", "user": user }],
        "contexts": [{ "name": "testenv", "context": {
            "cluster": "testenv",
            "user": "testenv",
            "namespace": namespace.unwrap_or("default"),
        }}],
        "current-context": "testenv",
    });
    let text = serde_yaml::to_string(&doc).map_err(|e| crate::error::Error::Io {
        action: "write kubeconfig",
        path: path.to_owned(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(path, text).map_err(io("write", path))
}

pub(crate) async fn load(path: &Path) -> Result<kube::Config> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    Ok(kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?)
}
