//! Step 5 of the reconcile: the `MailQueue` status, computed from the runner pods and the
//! heartbeats in the slice Leases. Pure; `reconcile.rs` writes it.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::conditions::{merge, Verdict};
use crate::crd::{MailQueueStatus, QueueStatus, SliceStatus};
use crate::desired::DesiredSlice;
use crate::lease::live_holder;
use crate::slice::Heartbeat;
use crate::validate::{InvalidSpec, ValidSpec};

pub const READY: &str = "Ready";
pub const DRAINING: &str = "Draining";
pub const DRAINED: &str = "Drained";
pub const DEGRADED: &str = "Degraded";

/// How many names a condition message lists before it says "and N more".
const NAMES_IN_MESSAGE: usize = 5;

/// The pods and Leases of one `MailQueue`, as read from the API server.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub pods: Vec<Pod>,
    pub leases: Vec<Lease>,
}

impl Observed {
    fn pod(&self, name: &str) -> Option<&Pod> {
        self.pods.iter().find(|p| p.metadata.name.as_deref() == Some(name))
    }

    fn lease(&self, name: &str) -> Option<&Lease> {
        self.leases.iter().find(|l| l.metadata.name.as_deref() == Some(name))
    }
}

/// Status of a `MailQueue` whose spec is valid. `blocked` names the queues whose new layout
/// waits for the old layout's Leases to be released.
pub fn status(
    valid: &ValidSpec,
    desired: &[DesiredSlice],
    observed: &Observed,
    blocked: &[String],
    previous: &[Condition],
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> MailQueueStatus {
    let views: Vec<SliceView> = desired.iter().map(|d| slice_view(d, observed, now)).collect();
    let queues: Vec<QueueStatus> = valid
        .spec
        .queues
        .iter()
        .map(|q| {
            let of_queue = desired.iter().zip(&views).filter(|(d, _)| d.id.queue == q.name).map(|(_, v)| v);
            queue_status(&q.name, q.slices, of_queue)
        })
        .collect();
    let pending = queues.iter().map(|q| q.pending).sum();
    let stale_bak = queues.iter().map(|q| q.stale_bak).sum();

    let not_ready: Vec<&str> = views.iter().filter(|v| !v.status.ready).map(|v| v.status.name.as_str()).collect();
    let ready = if not_ready.is_empty() {
        Verdict::new(READY, true, "AllSlicesReady", format!("{} of {} slices have a running runner holding their Lease", views.len(), views.len()))
    } else {
        Verdict::new(
            READY,
            false,
            "SlicesNotReady",
            format!("{} of {} slices ready; waiting for {}", views.len() - not_ready.len(), views.len(), list(&not_ready)),
        )
    };

    let busy: Vec<&str> = views.iter().filter(|v| !v.quiet).map(|v| v.status.name.as_str()).collect();
    let in_flight: i64 = views.iter().map(|v| v.status.in_flight).sum();
    let drained = valid.spec.drain && busy.is_empty();
    let (draining, drained_verdict) = if !valid.spec.drain {
        (
            Verdict::new(DRAINING, false, "NotRequested", "spec.drain is false"),
            Verdict::new(DRAINED, false, "NotRequested", "spec.drain is false"),
        )
    } else if drained {
        (
            Verdict::new(DRAINING, false, "Drained", "every slice stopped claiming and nothing is in flight"),
            Verdict::new(DRAINED, true, "NothingInFlight", "every slice stopped claiming and nothing is in flight"),
        )
    } else {
        let message = format!("{in_flight} entries in flight; waiting for {} to finish and acknowledge the drain", list(&busy));
        (Verdict::new(DRAINING, true, "DrainRequested", message.clone()), Verdict::new(DRAINED, false, "InFlight", message))
    };

    let degraded = if !blocked.is_empty() {
        Verdict::new(
            DEGRADED,
            true,
            "OldLayoutStillHeld",
            format!("new slices of {} wait until every runner of the old layout has released its Lease", list(blocked)),
        )
    } else if stale_bak > 0 {
        Verdict::new(
            DEGRADED,
            true,
            "StaleBak",
            format!("{stale_bak} .bak entries have no live runner; set spec.quarantine or spec.bakPolicy to set them aside"),
        )
    } else {
        Verdict::new(DEGRADED, false, "AsExpected", "nothing needs attention")
    };

    let phase = if valid.spec.drain {
        if drained { "Drained" } else { "Draining" }
    } else if degraded.status {
        "Degraded"
    } else if ready.status {
        "Running"
    } else {
        "Pending"
    };
    let conditions = merge(previous, vec![ready, draining, drained_verdict, degraded], generation, Time(now));
    MailQueueStatus {
        observed_generation: generation,
        conditions,
        phase: Some(phase.to_owned()),
        pending,
        stale_bak,
        queues,
        slices: views.into_iter().map(|v| v.status).collect(),
        actions: None,
    }
}

/// Status of a `MailQueue` whose spec cannot be acted on: counts stay as last seen, the
/// conditions say why.
pub fn invalid(error: &InvalidSpec, previous: Option<&MailQueueStatus>, generation: Option<i64>, now: jiff::Timestamp) -> MailQueueStatus {
    let previous = previous.cloned().unwrap_or_default();
    let message = error.to_string();
    let verdicts = vec![
        Verdict::new(READY, false, "InvalidSpec", message.clone()),
        Verdict::new(DEGRADED, true, "InvalidSpec", message),
    ];
    let mut conditions = merge(&previous.conditions, verdicts, generation, Time(now));
    conditions.extend(previous.conditions.iter().filter(|c| c.type_ == DRAINING || c.type_ == DRAINED).cloned());
    MailQueueStatus { observed_generation: generation, conditions, phase: Some("Degraded".to_owned()), ..previous }
}

/// One slice as the status sees it.
struct SliceView {
    status: SliceStatus,
    heartbeat: Heartbeat,
    /// Nothing in flight and no claims to come.
    quiet: bool,
}

fn slice_view(desired: &DesiredSlice, observed: &Observed, now: jiff::Timestamp) -> SliceView {
    let name = desired.id.object_name();
    let pod = observed.pod(&name);
    let lease = observed.lease(&name);
    let running = pod.is_some_and(|p| {
        p.metadata.deletion_timestamp.is_none() && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    });
    let holder = lease.and_then(|l| live_holder(l, now));
    let heartbeat = lease.and_then(|l| l.metadata.annotations.as_ref()).and_then(Heartbeat::from_annotations).unwrap_or_default();
    // A slice with no live holder cannot be delivering; a new holder reads the drain request
    // from the Lease before its first claim.
    let quiet = holder.is_none() || (heartbeat.draining && heartbeat.in_flight == 0);
    let status = SliceStatus {
        name: desired.id.short_name(),
        pod: name.clone(),
        ready: running && holder == Some(name.as_str()),
        holder: holder.map(str::to_owned),
        heartbeat: lease
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.renew_time.as_ref())
            .map(|t| Time(t.0)),
        draining: heartbeat.draining,
        pending: heartbeat.pending,
        in_flight: if holder.is_some() { heartbeat.in_flight } else { 0 },
        stale_bak: heartbeat.stale_bak,
        delivered: heartbeat.delivered,
    };
    SliceView { status, heartbeat, quiet }
}

fn queue_status<'a>(name: &str, slices: i32, of_queue: impl Iterator<Item = &'a SliceView>) -> QueueStatus {
    of_queue.fold(QueueStatus { name: name.to_owned(), slices, ..QueueStatus::default() }, |mut q, v| {
        let (s, hb) = (&v.status, &v.heartbeat);
        q.live_slices += i32::from(s.ready);
        q.pending += s.pending;
        q.in_flight += s.in_flight;
        q.stale_bak += s.stale_bak;
        q.delivered += s.delivered;
        // Queue-wide directories: every slice reports the same count.
        q.quarantined = q.quarantined.max(hb.quarantined);
        q.bad = q.bad.max(hb.bad);
        q.shunt = q.shunt.max(hb.shunt);
        q.oldest_pending_seconds = q.oldest_pending_seconds.max(hb.oldest_pending_seconds);
        q
    })
}

fn list<S: AsRef<str>>(names: &[S]) -> String {
    let shown: Vec<&str> = names.iter().take(NAMES_IN_MESSAGE).map(AsRef::as_ref).collect();
    match names.len().saturating_sub(NAMES_IN_MESSAGE) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}
