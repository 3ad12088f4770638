//! The operator binary: HTTP endpoints, leader election, and the controller while leading.
//!
//! Exit codes: 0 after SIGTERM/SIGINT, 1 when leadership is lost or the process cannot start,
//! 70 when any task panics (a half-dead operator is worse than a restarted one).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clap::Parser;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use mailqueue_contract::crd::MailQueue;
use mailqueue_contract::duration;
use mailqueue_contract::lease::LeaseLock;
use mailqueue_contract::telemetry;
use prometheus_client::registry::Registry;

use mailqueue_operator::desired::RunnerTemplate;
use mailqueue_operator::leader::Candidate;
use mailqueue_operator::metrics::Metrics;
use mailqueue_operator::reconcile::{self, Context};
use mailqueue_operator::FIELD_MANAGER;

/// Keeps one mailqueue-runner pod per slice of every MailQueue and reports their state.
#[derive(Debug, Parser)]
#[command(name = "mailqueue-operator", version, after_help = duration::HELP)]
struct Args {
    /// Container image of the runner pods.
    #[arg(long, env = "RUNNER_IMAGE", default_value = concat!("mailqueue-runner:", env!("CARGO_PKG_VERSION")))]
    runner_image: String,
    /// ServiceAccount of the runner pods (needs get/create/update on Leases).
    #[arg(long, env = "RUNNER_SERVICE_ACCOUNT", default_value = "mailqueue-runner")]
    runner_service_account: String,
    /// Time a runner gets after SIGTERM to finish the entry it is sending (whole seconds).
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "60s")]
    runner_grace_period: Duration,
    /// How long a runner's slice Lease stays valid without renewal (whole seconds).
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "15s")]
    slice_lease_duration: Duration,
    /// Only watch MailQueues in this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Namespace of the leader-election Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    leader_lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "mailqueue-operator")]
    leader_lease_name: String,
    /// How long the leader Lease stays valid without renewal.
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "15s")]
    leader_lease_duration: Duration,
    /// This replica's identity in the leader Lease (the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
}

struct Http {
    registry: Registry,
    ready: AtomicBool,
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logs();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::exit(70);
    }));
    let code = match run(Args::parse()).await {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    };
    // The flush waits on the OTLP endpoint: off the async workers.
    let _ = tokio::task::spawn_blocking(telemetry::shutdown).await;
    code
}

/// Logs on stderr, and spans to an OTLP endpoint when one is configured.
fn init_logs() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // The operator runs without traces rather than not at all.
    let (otlp, otlp_error) = match telemetry::layer("mailqueue-operator") {
        Ok(layer) => (layer, None),
        Err(error) => (None, Some(error)),
    };
    tracing_subscriber::registry().with(filter).with(tracing_subscriber::fmt::layer()).with(otlp).init();
    if let Some(error) = otlp_error {
        tracing::warn!("{error}");
    }
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client =
        Client::try_default().await.map_err(|e| anyhow::anyhow!("cannot configure the Kubernetes client: {e}"))?;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let http = Arc::new(Http { registry, ready: AtomicBool::new(false) });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    tracing::info!(address = %args.listen, "serving /metrics, /healthz, /readyz");
    let app = Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(serve_ready))
        .with_state(http.clone());
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "HTTP server stopped");
            std::process::exit(1);
        }
    });

    client.apiserver_version().await.map_err(|e| anyhow::anyhow!("cannot reach the Kubernetes API server: {e}"))?;
    http.ready.store(true, Ordering::Relaxed);

    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let candidate = Candidate::new(LeaseLock::new(
        Api::<Lease>::namespaced(client.clone(), &args.leader_lease_namespace),
        &args.leader_lease_name,
        &identity,
        args.leader_lease_duration,
        FIELD_MANAGER,
    ));
    tokio::select! {
        () = candidate.acquire() => {}
        () = shutdown_signal() => return Ok(ExitCode::SUCCESS),
    }
    tracing::info!(%identity, "leading");
    metrics.set_leader(true);

    let (mailqueues, pods, leases) = match &args.namespace {
        Some(ns) => (
            Api::<MailQueue>::namespaced(client.clone(), ns),
            Api::<Pod>::namespaced(client.clone(), ns),
            Api::<Lease>::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone()), Api::all(client.clone())),
    };
    tokio::select! {
        () = wait_for_crd(&mailqueues) => {}
        () = shutdown_signal() => return Ok(ExitCode::SUCCESS),
    }
    let ctx = Arc::new(Context {
        events: mailqueue_operator::events::Events::new(client.clone()),
        client,
        template: RunnerTemplate {
            image: args.runner_image,
            service_account: args.runner_service_account,
            // The pod spec and the runner's flags count in whole seconds; no real setting
            // comes near the limits the conversions saturate at.
            grace_period_seconds: i64::try_from(args.runner_grace_period.as_secs()).unwrap_or(i64::MAX),
            lease_duration_seconds: u32::try_from(args.slice_lease_duration.as_secs()).unwrap_or(u32::MAX),
        },
        metrics: metrics.clone(),
    });
    tokio::select! {
        () = reconcile::run(ctx, mailqueues, pods, leases, shutdown_signal()) => {
            metrics.set_leader(false);
            if let Err(error) = candidate.resign().await {
                tracing::warn!(%error, "could not release the leader Lease; it expires by itself");
            }
            tracing::info!("stopped");
            Ok(ExitCode::SUCCESS)
        }
        lost = candidate.keep() => {
            tracing::error!(error = %lost, "leadership lost; exiting so that only the new leader writes");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Waits until MailQueues can be listed, saying clearly what is missing meanwhile.
async fn wait_for_crd(mailqueues: &Api<MailQueue>) {
    let mut warned = false;
    loop {
        match mailqueues.list(&kube::api::ListParams::default().limit(1)).await {
            Ok(_) => return,
            Err(kube::Error::Api(status)) if status.is_not_found() && !warned => {
                tracing::warn!(
                    "the MailQueue CRD is not installed: kubectl apply -f crds/mailqueue.dev_mailqueues.yaml"
                );
                warned = true;
            }
            Err(error) if !warned => {
                tracing::warn!(%error, "cannot list MailQueues yet");
                warned = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn default_identity() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "mailqueue-operator".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM");
            std::process::exit(1);
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// What prometheus-client's text encoder writes (`# EOF`, `_total` counters): a scraper
/// told `text/plain` would read it as the older Prometheus format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn serve_metrics(State(http): State<Arc<Http>>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &http.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics").into_response(),
    }
}

async fn serve_ready(State(http): State<Arc<Http>>) -> StatusCode {
    if http.ready.load(Ordering::Relaxed) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}
