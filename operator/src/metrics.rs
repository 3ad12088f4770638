//! Prometheus metrics of the operator, served on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabel {
    step: &'static str,
}

/// Queue names by (namespace, MailQueue).
type Published = std::collections::BTreeMap<(String, String), Vec<String>>;

/// One queue of one MailQueue.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    namespace: String,
    mailqueue: String,
    queue: String,
}

/// Every metric the operator exports.
#[derive(Clone)]
pub struct Metrics {
    reconciles: Counter,
    failures: Family<StepLabel, Counter>,
    duration: Histogram,
    leader: Gauge,
    pending: Family<QueueLabels, Gauge>,
    oldest_pending: Family<QueueLabels, Gauge>,
    stale_bak: Family<QueueLabels, Gauge>,
    live_slices: Family<QueueLabels, Gauge>,
    slices: Family<QueueLabels, Gauge>,
    unclaimable: Family<QueueLabels, Gauge>,
    disk_full_slices: Family<QueueLabels, Gauge>,
    /// The queues last published per MailQueue, to drop the series of a queue that went.
    published: std::sync::Arc<std::sync::Mutex<Published>>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Counter::default(),
            failures: Family::default(),
            duration: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            leader: Gauge::default(),
            pending: Family::default(),
            oldest_pending: Family::default(),
            stale_bak: Family::default(),
            live_slices: Family::default(),
            slices: Family::default(),
            unclaimable: Family::default(),
            disk_full_slices: Family::default(),
            published: Default::default(),
        };
        let r = registry.sub_registry_with_prefix("mailqueue_operator");
        r.register("reconciles", "Reconciles of MailQueues", metrics.reconciles.clone());
        r.register("reconcile_failures", "Failed reconciles, by the step that failed", metrics.failures.clone());
        r.register("reconcile_duration_seconds", "Time one reconcile took", metrics.duration.clone());
        r.register("leader", "1 while this replica holds the leader Lease", metrics.leader.clone());
        // Per queue, from the runners' heartbeats as aggregated into the status: an alert on a
        // stuck queue needs no scrape of each runner.
        r.register("queue_pending", "Entries waiting in the queue", metrics.pending.clone());
        r.register(
            "queue_oldest_pending_seconds",
            "Age of the queue's oldest waiting entry",
            metrics.oldest_pending.clone(),
        );
        r.register("queue_stale_bak", ".bak entries of the queue with no live runner", metrics.stale_bak.clone());
        r.register(
            "queue_live_slices",
            "Slices of the queue whose runner holds its Lease",
            metrics.live_slices.clone(),
        );
        r.register("queue_slices", "Slices the queue is split into", metrics.slices.clone());
        r.register(
            "queue_unclaimable",
            "Queued entries of the queue its runners cannot claim",
            metrics.unclaimable.clone(),
        );
        r.register(
            "queue_disk_full_slices",
            "Slices of the queue whose runner stopped claiming because the queue volume is full",
            metrics.disk_full_slices.clone(),
        );
        metrics
    }

    /// Publishes the per-queue gauges of the MailQueue `namespace/name`.
    pub fn observe_status(&self, namespace: &str, name: &str, status: &mailqueue_contract::crd::MailQueueStatus) {
        let labels = |queue: &str| QueueLabels {
            namespace: namespace.to_owned(),
            mailqueue: name.to_owned(),
            queue: queue.to_owned(),
        };
        for q in &status.queues {
            let l = labels(&q.name);
            self.pending.get_or_create(&l).set(q.pending);
            self.oldest_pending.get_or_create(&l).set(q.oldest_pending_seconds);
            self.stale_bak.get_or_create(&l).set(q.stale_bak);
            self.live_slices.get_or_create(&l).set(i64::from(q.live_slices));
            self.slices.get_or_create(&l).set(i64::from(q.slices));
            self.unclaimable.get_or_create(&l).set(q.unclaimable);
            self.disk_full_slices.get_or_create(&l).set(i64::from(q.disk_full_slices));
        }
        let now: Vec<String> = status.queues.iter().map(|q| q.name.clone()).collect();
        let Ok(mut published) = self.published.lock() else { return };
        let before = published.insert((namespace.to_owned(), name.to_owned()), now.clone()).unwrap_or_default();
        for gone in before.iter().filter(|q| !now.contains(q)) {
            self.remove(&labels(gone));
        }
    }

    /// Drops the gauges of a MailQueue that no longer exists.
    pub fn forget(&self, namespace: &str, name: &str) {
        let Ok(mut published) = self.published.lock() else { return };
        for queue in published.remove(&(namespace.to_owned(), name.to_owned())).unwrap_or_default() {
            self.remove(&QueueLabels { namespace: namespace.to_owned(), mailqueue: name.to_owned(), queue });
        }
    }

    fn remove(&self, labels: &QueueLabels) {
        for family in [
            &self.pending,
            &self.oldest_pending,
            &self.stale_bak,
            &self.live_slices,
            &self.slices,
            &self.unclaimable,
            &self.disk_full_slices,
        ] {
            family.remove(labels);
        }
    }

    /// Counts one reconcile that took `seconds`.
    pub fn reconciled(&self, seconds: f64) {
        self.reconciles.inc();
        self.duration.observe(seconds);
    }

    /// Counts a reconcile that failed in `step`.
    pub fn failed(&self, step: &'static str) {
        self.failures.get_or_create(&StepLabel { step }).inc();
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailqueue_contract::crd::{MailQueueStatus, QueueStatus};

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).expect("encodes");
        out
    }

    #[test]
    fn per_queue_gauges_follow_the_status_and_go_with_the_mailqueue() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let queue = |name: &str, pending| QueueStatus {
            name: name.into(),
            slices: 2,
            live_slices: 1,
            pending,
            oldest_pending_seconds: 90,
            stale_bak: 3,
            unclaimable: 4,
            disk_full_slices: 1,
            ..QueueStatus::default()
        };
        let status = MailQueueStatus { queues: vec![queue("out", 7), queue("retry", 1)], ..MailQueueStatus::default() };
        metrics.observe_status("mail", "lists", &status);
        let out = text(&registry);
        assert!(
            out.contains(r#"mailqueue_operator_queue_pending{namespace="mail",mailqueue="lists",queue="out"} 7"#),
            "{out}"
        );
        assert!(
            out.contains(
                r#"mailqueue_operator_queue_oldest_pending_seconds{namespace="mail",mailqueue="lists",queue="out"} 90"#
            ),
            "{out}"
        );
        assert!(
            out.contains(r#"mailqueue_operator_queue_live_slices{namespace="mail",mailqueue="lists",queue="retry"} 1"#),
            "{out}"
        );
        assert!(
            out.contains(r#"mailqueue_operator_queue_unclaimable{namespace="mail",mailqueue="lists",queue="out"} 4"#),
            "{out}"
        );
        assert!(
            out.contains(
                r#"mailqueue_operator_queue_disk_full_slices{namespace="mail",mailqueue="lists",queue="out"} 1"#
            ),
            "{out}"
        );
        // A queue removed from the spec loses its series; so does a deleted MailQueue.
        metrics.observe_status(
            "mail",
            "lists",
            &MailQueueStatus { queues: vec![queue("out", 0)], ..MailQueueStatus::default() },
        );
        assert!(!text(&registry).contains(r#"queue="retry""#));
        metrics.forget("mail", "lists");
        assert!(!text(&registry).contains(r#"mailqueue="lists""#));
    }
}
