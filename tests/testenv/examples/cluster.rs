//! The test control plane and node stand-in as a standalone process, for demos and manual
//! trials outside `cargo test`:
//!
//! ```text
//! cargo run -p mailqueue-testenv --example cluster -- STATE_DIR NAMESPACE [IMAGE=BINARY ...]
//! ```
//!
//! Starts etcd, kube-apiserver and kube-controller-manager, creates NAMESPACE, and runs a node
//! serving it whose pods act as their ServiceAccounts, each IMAGE run as the local BINARY.
//! Writes `STATE_DIR/kubeconfig` (admin) and, once all is up, `STATE_DIR/ready`; PVC-backed
//! volumes live under `STATE_DIR/volumes/NAMESPACE/CLAIM`. Runs until SIGTERM or SIGINT, then
//! stops everything it started.

use std::path::PathBuf;
use std::process::ExitCode;

use mailqueue_testenv::{ControlPlane, Node};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cluster: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: cluster STATE_DIR NAMESPACE [IMAGE=BINARY ...]";
    let state = PathBuf::from(args.next().ok_or(usage)?);
    let namespace = args.next().ok_or(usage)?;
    let images = args
        .map(|pair| match pair.split_once('=') {
            Some((image, binary)) => Ok((image.to_owned(), PathBuf::from(binary))),
            None => Err(format!("{pair}: expected IMAGE=BINARY")),
        })
        .collect::<Result<Vec<_>, _>>()?;

    let volumes = state.join("volumes");
    std::fs::create_dir_all(&volumes)?;
    let plane = ControlPlane::start().await?;
    std::fs::copy(plane.kubeconfig(), state.join("kubeconfig"))?;
    plane.create_namespace(&namespace).await?;
    let config = images
        .into_iter()
        .fold(plane.node_config("demo-node", &volumes).namespace(&namespace), |config, (image, binary)| {
            config.image(image, binary)
        });
    let node = Node::start(plane.client()?, config).await?;
    std::fs::write(state.join("ready"), format!("{}\n", plane.server_url()))?;
    eprintln!(
        "cluster: API server {} ready; namespace {namespace}; KUBECONFIG={}",
        plane.server_url(),
        state.join("kubeconfig").display()
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!("cluster: stopping");
    node.stop().await;
    plane.stop().await;
    Ok(())
}
