//! One-shot maintenance actions asked for in the spec (`quarantine`, `requeue`, `compact`),
//! and the standing `bakPolicy` (an automatic quarantine whenever the runners' heartbeats count
//! stale `.bak` entries), carried out by Kubernetes Jobs running the runner's own queue
//! commands.
//!
//! Why Jobs for all three: the operator has no access to the queue volume, and the runner's
//! commands already do the work safely and resumably. A `quarantine` never moves a `.bak` a
//! live runner has in flight (the entry lock is checked on the shared volume), and a `requeue`
//! only adds `.pck` files to a live queue, so both run beside the slice owners without a drain.
//! Why not the slice owner between messages: a stale `.bak` is by definition one no live
//! runner holds, and the quarantine command already refuses any entry whose lock is held, so a
//! Job is as safe and keeps the runner's delivery loop free of maintenance work.
//! A `compact` swaps the queue directory, which the runners must not be working meanwhile, so
//! the operator first drains the queue's runners through their Leases, waits for `Drained`,
//! runs the Job, and lifts the drain when the Job is over.
//!
//! Nothing is kept in memory: the request being worked is `status.actions.<name>.requestId`,
//! and the Job's name is derived from the request, so an operator that restarts finds the same
//! Job and carries on. A Job whose pod is killed is retried by Kubernetes, and the runner
//! commands carry on from where the previous attempt stopped, so nothing is done twice.

mod job;
mod plan;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ListParams, PostParams};
use kube::Client;

use crate::events::Note;
use crate::reconcile::Context;
use crate::FIELD_MANAGER;
use mailqueue_contract::crd::{ActionsStatus, MailQueue, MailQueueStatus};

pub use job::JobOutcome;
pub use plan::{needs_drain, requests, step, ActionKind, Counts, Request, Step};

/// A Job could not be read or created.
#[derive(Debug, thiserror::Error)]
#[error("cannot {verb} the {action} Job {job}: {error}")]
pub struct ActionError {
    verb: &'static str,
    action: &'static str,
    job: String,
    error: kube::Error,
}

/// Advances every action of `mq` by one step and returns their progress for the status.
/// `current` is the status computed in this pass (drain state, stale `.bak` count).
pub async fn advance(
    ctx: &Context,
    mq: &MailQueue,
    namespace: &str,
    owner: &OwnerReference,
    current: &MailQueueStatus,
    now: jiff::Timestamp,
) -> Result<Option<ActionsStatus>, ActionError> {
    let (client, template, events) = (&ctx.client, &ctx.template, &ctx.events);
    let drained = current.conditions.iter().any(|c| c.type_ == crate::status::DRAINED && c.status == "True");
    let previous = mq.status.as_ref().and_then(|s| s.actions.clone()).unwrap_or_default();
    let mut actions = previous.clone();
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    for request in requests(mq, current.stale_bak, now) {
        let kind = request.kind;
        let job_name = job::name(&mq.metadata.name.clone().unwrap_or_default(), &request);
        let seen = jobs.get_opt(&job_name).await.map_err(|error| ActionError {
            verb: "read",
            action: kind.as_str(),
            job: job_name.clone(),
            error,
        })?;
        let outcome = seen.as_ref().map(job::outcome);
        let counts = match &seen {
            Some(_) => job::counts(&job_pods(client, namespace, &job_name).await.map_err(|error| ActionError {
                verb: "list the pods of",
                action: kind.as_str(),
                job: job_name.clone(),
                error,
            })?),
            None => Counts::default(),
        };
        let step = step(&request, kind.get(&previous), outcome.as_ref(), counts, drained, &job_name, now);
        if step.create_job {
            let job = job::build(&job_name, namespace, owner, mq, &request, template);
            match jobs
                .create(&PostParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PostParams::default() }, &job)
                .await
            {
                Ok(_) => tracing::info!(mailqueue = ?mq.metadata.name, job = %job_name, "{} started", kind.as_str()),
                // Created by an earlier pass whose status write did not land: it is the same work.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(error) => return Err(ActionError { verb: "create", action: kind.as_str(), job: job_name, error }),
            }
        }
        if let Some((type_, reason, note)) = step.event {
            events.publish(mq, Note { type_, reason: reason.to_owned(), action: kind.event_action(), note }).await;
        }
        kind.set(&mut actions, step.status);
    }
    Ok((actions != ActionsStatus::default()).then_some(actions))
}

/// The pods the Job controller made for `job` (it labels them with the Job's name).
async fn job_pods(client: &Client, namespace: &str, job: &str) -> Result<Vec<Pod>, kube::Error> {
    let params = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"));
    Ok(Api::<Pod>::namespaced(client.clone(), namespace).list(&params).await?.items)
}
