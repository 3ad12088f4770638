//! The reconcile pipeline: read -> validate -> build desired -> apply -> status. Each step
//! lives in its own module with its own error, so a failure names the step and the reason.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::{watcher, Controller, PredicateConfig, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};

use crate::actions::{self, ActionError};
use crate::apply::{self, ApplyError};
use crate::desired::{desired_slices, RunnerTemplate};
use crate::events::{self, Events};
use crate::metrics::Metrics;
use crate::observe::{observe, ReadError};
use crate::references::{self, ReferenceError};
use crate::validate::validate;
use crate::{status, FIELD_MANAGER};
use mailqueue_contract::crd::{MailQueue, MailQueueStatus};

/// How often a `MailQueue` is looked at without any event: a runner that dies silently only
/// shows as an expired Lease, and expiry raises no event.
const RESYNC: Duration = Duration::from_secs(10);
/// Delay before retrying a failed reconcile.
const RETRY: Duration = Duration::from_secs(5);

/// What every reconcile needs.
pub struct Context {
    pub client: Client,
    pub template: RunnerTemplate,
    pub metrics: Metrics,
    /// The one Event recorder of the operator.
    pub events: Events,
}

/// A reconcile failed; the variant names the step.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("MailQueue {0} has no namespace or uid yet")]
    Incomplete(String),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    References(#[from] ReferenceError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Action(#[from] ActionError),
    #[error("status: cannot write the status of MailQueue {name}: {error}")]
    Status { name: String, error: kube::Error },
}

impl ReconcileError {
    /// The failed step, as a metric label.
    pub fn step(&self) -> &'static str {
        match self {
            Self::Incomplete(_) => "read",
            Self::Read(_) => "read",
            Self::References(_) => "references",
            Self::Apply(_) => "apply",
            Self::Action(_) => "action",
            Self::Status { .. } => "status",
        }
    }
}

/// One pass over one `MailQueue`.
pub async fn reconcile(mq: Arc<MailQueue>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let name = mq.name_any();
    let (Some(namespace), Some(owner)) = (mq.namespace(), mq.controller_owner_ref(&())) else {
        return Err(ReconcileError::Incomplete(name));
    };
    let now = jiff::Timestamp::now();
    let generation = mq.metadata.generation;
    let previous = mq.status.as_ref();

    let observed = observe(&ctx.client, &namespace, &name).await?;
    let status = match validate(&name, &mq.spec) {
        Err(invalid) => {
            tracing::warn!(mailqueue = %name, %namespace, error = %invalid, "spec cannot be acted on");
            status::invalid(&invalid, previous, generation, now)
        }
        Ok(mut valid) => {
            // A compact under way keeps the runners drained until its Job is over.
            valid.spec.drain |= actions::needs_drain(&mq);
            let missing = references::check(&ctx.client, &namespace, &references::references(&valid.spec)).await?;
            let desired = desired_slices(&name, &namespace, &owner, &valid, &ctx.template);
            let mut plan = apply::plan(&desired, &observed, now);
            if !missing.is_empty() {
                plan.hold_pods(&desired);
            }
            let applied = apply::apply(&ctx.client, &namespace, &plan).await;
            let conditions = previous.map(|s| s.conditions.as_slice()).unwrap_or_default();
            let status = status::status(&valid, &desired, &observed, &plan.blocked, conditions, generation, now);
            let mut status = status::with_spec_checks(status, conditions, &valid.spec, &missing, generation, now);
            if let Err(error) = applied {
                // Written before failing, so `kubectl get mq` says why no pod appears.
                let failed = status::apply_failed(status, &error, generation, now);
                let status = MailQueueStatus { actions: previous.and_then(|s| s.actions.clone()), ..failed };
                write_status(&ctx, &mq, &namespace, previous, status).await?;
                return Err(error.into());
            }
            status.actions = actions::advance(&ctx, &mq, &namespace, &owner, &status, now).await?;
            status
        }
    };
    ctx.metrics.observe_status(&namespace, &name, &status);
    write_status(&ctx, &mq, &namespace, previous, status).await?;
    ctx.metrics.reconciled(started.elapsed().as_secs_f64());
    Ok(Action::requeue(RESYNC))
}

/// Writes `status` with server-side apply under the operator's one field manager, unless it is
/// what the object already shows, and announces its transitions as Events once written.
async fn write_status(
    ctx: &Context,
    mq: &MailQueue,
    namespace: &str,
    previous: Option<&MailQueueStatus>,
    status: MailQueueStatus,
) -> Result<(), ReconcileError> {
    if previous == Some(&status) {
        return Ok(());
    }
    let client = &ctx.client;
    let notes = events::transitions(previous, &status);
    let name = mq.name_any();
    let patch = serde_json::json!({
        "apiVersion": MailQueue::api_version(&()),
        "kind": MailQueue::kind(&()),
        "status": status,
    });
    Api::<MailQueue>::namespaced(client.clone(), namespace)
        .patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(|error| ReconcileError::Status { name, error })?;
    for note in notes {
        ctx.events.publish(mq, note).await;
    }
    Ok(())
}

/// What in a slice Lease is worth a reconcile: its holder and its annotations (heartbeat,
/// drain request).
fn holder_and_annotations(lease: &Lease) -> Option<u64> {
    let mut hasher = DefaultHasher::new();
    lease.spec.as_ref().and_then(|s| s.holder_identity.as_ref()).hash(&mut hasher);
    lease.metadata.annotations.hash(&mut hasher);
    Some(hasher.finish())
}

fn error_policy(mq: Arc<MailQueue>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    tracing::warn!(mailqueue = %mq.name_any(), namespace = ?mq.namespace(), %error, "reconcile failed");
    ctx.metrics.failed(error.step());
    Action::requeue(RETRY)
}

/// Runs the controller over `mailqueues` until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    mailqueues: Api<MailQueue>,
    pods: Api<Pod>,
    leases: Api<Lease>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let owned = watcher::Config::default().labels(mailqueue_contract::slice::MAILQUEUE_LABEL);
    // A renewal that only moves renewTime is no news; a new holder or heartbeat is.
    let lease_news = watcher(leases, owned.clone())
        .default_backoff()
        .applied_objects()
        .predicate_filter(holder_and_annotations, PredicateConfig::default());
    Controller::new(mailqueues, watcher::Config::default())
        .owns(pods, owned)
        .owns_stream(lease_news)
        // Heartbeats arrive from every slice every few seconds: fold bursts into one pass.
        .with_config(ControllerConfig::default().debounce(Duration::from_millis(500)))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| {
            let ctx = ctx.clone();
            async move {
                match result {
                    // A MailQueue deleted since its last pass: its gauges go with it.
                    Err(kube::runtime::controller::Error::ObjectNotFound(gone)) => {
                        ctx.metrics.forget(gone.namespace.as_deref().unwrap_or_default(), &gone.name);
                    }
                    Err(error) => tracing::debug!(%error, "controller event"),
                    Ok(_) => {}
                }
            }
        })
        .await;
}
