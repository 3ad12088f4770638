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

/// Every metric the operator exports.
#[derive(Clone)]
pub struct Metrics {
    reconciles: Counter,
    failures: Family<StepLabel, Counter>,
    duration: Histogram,
    leader: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Counter::default(),
            failures: Family::default(),
            duration: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            leader: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("mailqueue_operator");
        r.register("reconciles", "Reconciles of MailQueues", metrics.reconciles.clone());
        r.register("reconcile_failures", "Failed reconciles, by the step that failed", metrics.failures.clone());
        r.register("reconcile_duration_seconds", "Time one reconcile took", metrics.duration.clone());
        r.register("leader", "1 while this replica holds the leader Lease", metrics.leader.clone());
        metrics
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
