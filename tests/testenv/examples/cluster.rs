//! The test cluster as a standalone process, for demos and manual trials outside `cargo test`:
//!
//! ```text
//! cargo run -p mailqueue-testenv --example cluster -- STATE_DIR NAMESPACE RUNNER_BIN OPERATOR_BIN
//! ```
//!
//! Builds the project's image (`mailqueue-operator:demo`, the Dockerfile's runtime stage with the
//! two binaries given), starts the control plane and the real node with that image loaded,
//! creates NAMESPACE and binds its claim `mailman-data` to the local volume
//! `STATE_DIR/volumes/NAMESPACE/mailman-data` (owned by the image's user, 65532). Writes
//! `STATE_DIR/kubeconfig` (admin) and, once all is up, `STATE_DIR/ready` (the API server's URL).
//! Runs until SIGTERM or SIGINT, then stops everything and puts the machine back.

use std::path::PathBuf;
use std::process::ExitCode;

use mailqueue_testenv::images::{self, NONROOT_UID};
use mailqueue_testenv::Cluster;

const IMAGE: &str = "docker.io/library/mailqueue-operator:demo";
const CLAIM: &str = "mailman-data";

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
    let usage = "usage: cluster STATE_DIR NAMESPACE RUNNER_BIN OPERATOR_BIN";
    let mut args = std::env::args().skip(1);
    let state = PathBuf::from(args.next().ok_or(usage)?);
    let namespace = args.next().ok_or(usage)?;
    let runner = PathBuf::from(args.next().ok_or(usage)?);
    let operator = PathBuf::from(args.next().ok_or(usage)?);

    let image = tokio::task::spawn_blocking(move || images::product(IMAGE, &runner, &operator)).await??;
    eprintln!("cluster: image {} ({} bytes as an archive)", image.reference, std::fs::metadata(&image.path)?.len());
    let cluster = Cluster::start(vec![image]).await?;
    let plane = cluster.plane();
    std::fs::copy(plane.kubeconfig(), state.join("kubeconfig"))?;
    plane.create_namespace(&namespace).await?;
    let volume = state.join("volumes").join(&namespace).join(CLAIM);
    cluster.local_volume(&namespace, CLAIM, &volume, NONROOT_UID).await?;
    std::fs::write(state.join("ready"), format!("{}\n", plane.server_url()))?;
    eprintln!(
        "cluster: API server {} ready, node Ready; namespace {namespace}; KUBECONFIG={}",
        plane.server_url(),
        state.join("kubeconfig").display()
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!("cluster: stopping");
    let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
    Ok(())
}
