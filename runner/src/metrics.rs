//! The runner's metrics, served on `/metrics` in the OpenMetrics text format. Every series
//! carries the runner's queue as the `queue` label.
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the SMTP transaction latency histogram.
const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// A gauge of counts: never negative, compared with the `u64` counts of the queue code.
pub type CountGauge = Gauge<u64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SliceLabel {
    slice: u32,
}

pub struct Metrics {
    registry: Registry,
    pub entries_delivered: Counter,
    pub recipients_delivered: Counter,
    /// `mailqueue_recipients_failed_total{kind="temporary"}`.
    pub recipients_temporary: Counter,
    /// `mailqueue_recipients_failed_total{kind="permanent"}`.
    pub recipients_permanent: Counter,
    pub entries_retried: Counter,
    pub entries_expired: Counter,
    pub entries_requeued: Counter,
    pub entries_bad: Counter,
    pub entries_shunted: Counter,
    pub entries_moved_from_retry: Counter,
    pub sessions_opened: Counter,
    pub connect_failures: Counter,
    /// Sessions dropped because the relay broke the protocol (a reply over the bounds).
    pub smtp_protocol_errors: Counter,
    pub in_flight: CountGauge,
    /// Answers about list settings taken from the cache because the API was down.
    pub list_settings_stale: Counter,
    /// Entries left queued because their list's settings could not be had.
    pub list_settings_unavailable: Counter,
    /// Failed attempts to claim an entry (no permission, a directory at its `.bak`
    /// name, a name that is no longer a regular file, an I/O error).
    pub claim_failures: Counter,
    /// Claimed entries put back because reading them failed with an I/O error.
    pub read_errors: Counter,
    /// The last failure to open an SMTP session, cleared when one opens.
    pub relay_error: Mutex<Option<String>>,
    /// The last failure to get list settings, cleared when they are had again.
    pub list_settings_error: Mutex<Option<String>>,
    /// 1 while a write the queue protocol needs failed for lack of space: claiming stopped.
    disk_full: CountGauge,
    /// Per slice index: `.pck` entries seen at the last listing.
    depth: Family<SliceLabel, CountGauge>,
    /// Per slice index: entries that could not be claimed, backed off.
    unclaimable: Family<SliceLabel, CountGauge>,
    /// The sum of `unclaimable` over the slices, for the heartbeat: a family cannot be
    /// iterated, so each update adds its difference here.
    unclaimable_sum: AtomicU64,
    transaction_seconds: Histogram,
}

impl Metrics {
    /// The metrics of the runner of `queue`, registered for [`Metrics::encode`].
    pub fn new(queue: &str) -> Metrics {
        let recipients_failed = Family::<KindLabel, Counter>::default();
        // Members of the family, so that both kinds are exported from the start. One
        // statement each: `get_or_create` holds the family's lock until the statement ends.
        let recipients_temporary = recipients_failed.get_or_create(&KindLabel { kind: "temporary" }).clone();
        let recipients_permanent = recipients_failed.get_or_create(&KindLabel { kind: "permanent" }).clone();
        let metrics = Metrics {
            registry: Registry::with_labels([("queue".into(), queue.to_owned().into())].into_iter()),
            entries_delivered: Counter::default(),
            recipients_delivered: Counter::default(),
            recipients_temporary,
            recipients_permanent,
            entries_retried: Counter::default(),
            entries_expired: Counter::default(),
            entries_requeued: Counter::default(),
            entries_bad: Counter::default(),
            entries_shunted: Counter::default(),
            entries_moved_from_retry: Counter::default(),
            sessions_opened: Counter::default(),
            connect_failures: Counter::default(),
            smtp_protocol_errors: Counter::default(),
            in_flight: CountGauge::default(),
            list_settings_stale: Counter::default(),
            list_settings_unavailable: Counter::default(),
            claim_failures: Counter::default(),
            read_errors: Counter::default(),
            relay_error: Mutex::default(),
            list_settings_error: Mutex::default(),
            disk_full: CountGauge::default(),
            depth: Family::default(),
            unclaimable: Family::default(),
            unclaimable_sum: AtomicU64::new(0),
            transaction_seconds: Histogram::new(LATENCY_BUCKETS),
        };
        let mut registry = metrics.registry;
        // Counters are registered without `_total`: the encoder appends it.
        let r = registry.sub_registry_with_prefix("mailqueue");
        r.register(
            "entries_delivered",
            "Entries whose every recipient was accepted or permanently refused.",
            metrics.entries_delivered.clone(),
        );
        r.register(
            "recipients_delivered",
            "Recipients accepted by the SMTP relay.",
            metrics.recipients_delivered.clone(),
        );
        r.register(
            "recipients_failed",
            "Recipients refused, by kind (temporary: retried; permanent: recorded as bounces).",
            recipients_failed,
        );
        r.register(
            "entries_retried",
            "Entries moved to the retry queue with their temporarily failed recipients.",
            metrics.entries_retried.clone(),
        );
        r.register(
            "entries_expired",
            "Entries dropped after the retry period without progress, as Mailman does.",
            metrics.entries_expired.clone(),
        );
        r.register(
            "entries_requeued",
            "Entries put back unfinished (shutdown, relay unreachable).",
            metrics.entries_requeued.clone(),
        );
        r.register(
            "entries_bad",
            "Entries preserved in bad/ because they could not be read.",
            metrics.entries_bad.clone(),
        );
        r.register(
            "entries_shunted",
            "Entries set aside in shunt/ because they cannot be delivered as Mailman would.",
            metrics.entries_shunted.clone(),
        );
        r.register(
            "entries_moved_from_retry",
            "Retry entries moved back to out once due.",
            metrics.entries_moved_from_retry.clone(),
        );
        r.register(
            "list_settings_stale",
            "List settings answered from the cache because the Mailman REST API was unreachable.",
            metrics.list_settings_stale.clone(),
        );
        r.register(
            "list_settings_unavailable",
            "Entries left queued because their list's settings could not be read (API down, nothing cached).",
            metrics.list_settings_unavailable.clone(),
        );
        r.register("smtp_sessions_opened", "SMTP sessions opened.", metrics.sessions_opened.clone());
        r.register(
            "smtp_connect_failures",
            "Failed attempts to open an SMTP session.",
            metrics.connect_failures.clone(),
        );
        r.register(
            "smtp_protocol_errors",
            "SMTP sessions dropped because the relay broke the protocol (a reply line over 8192 bytes, a reply over 16 KiB or 200 lines).",
            metrics.smtp_protocol_errors.clone(),
        );
        r.register(
            "claim_failures",
            "Failed attempts to claim an entry (permission, a directory at its .bak name, not a regular file, I/O error); the entry stays queued and is retried with a growing delay.",
            metrics.claim_failures.clone(),
        );
        r.register(
            "read_errors",
            "Claimed entries put back because reading them failed with an I/O error (not set aside as broken).",
            metrics.read_errors.clone(),
        );
        r.register(
            "disk_full",
            "1 while a write the queue needs failed for lack of space: no entry is claimed until it succeeds.",
            metrics.disk_full.clone(),
        );
        r.register(
            "unclaimable_entries",
            "Queued entries that could not be claimed at the last attempt, per slice.",
            metrics.unclaimable.clone(),
        );
        r.register("in_flight", "Entries claimed and being delivered.", metrics.in_flight.clone());
        r.register("queue_depth", "Queued (.pck) entries per slice at the last listing.", metrics.depth.clone());
        r.register(
            "smtp_transaction_seconds",
            "Time from MAIL FROM to the reply to the final dot.",
            metrics.transaction_seconds.clone(),
        );
        Metrics { registry, ..metrics }
    }

    pub fn observe_transaction(&self, elapsed: Duration) {
        self.transaction_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn set_depth(&self, slice: u32, pending: u64) {
        self.depth.get_or_create(&SliceLabel { slice }).set(pending);
    }

    pub fn set_unclaimable(&self, slice: u32, entries: u64) {
        let before = self.unclaimable.get_or_create(&SliceLabel { slice }).set(entries);
        // Wrapping: adding `entries - before` modulo 2^64 is subtracting when it shrank.
        self.unclaimable_sum.fetch_add(entries.wrapping_sub(before), Relaxed);
    }

    /// Unclaimable entries over every slice of this process.
    pub fn unclaimable_total(&self) -> u64 {
        self.unclaimable_sum.load(Relaxed)
    }

    /// Records whether a write the queue protocol needs is failing for lack of space.
    pub fn set_disk_full(&self, full: bool) {
        self.disk_full.set(u64::from(full));
    }

    pub fn disk_full(&self) -> bool {
        self.disk_full.get() != 0
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::new("out");
        m.observe_transaction(Duration::from_millis(3));
        m.observe_transaction(Duration::from_secs(2));
        let text = m.encode().expect("encodes");
        assert!(text.contains("mailqueue_smtp_transaction_seconds_bucket{queue=\"out\",le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("mailqueue_smtp_transaction_seconds_bucket{queue=\"out\",le=\"5.0\"} 2"), "{text}");
        assert!(text.contains("mailqueue_smtp_transaction_seconds_count{queue=\"out\"} 2"), "{text}");
    }

    #[test]
    fn names_and_labels_stay_what_dashboards_know() {
        let m = Metrics::new("out");
        m.entries_delivered.inc();
        m.recipients_permanent.inc_by(3);
        m.set_depth(1, 7);
        m.set_disk_full(true);
        let text = m.encode().expect("encodes");
        for line in [
            "mailqueue_entries_delivered_total{queue=\"out\"} 1",
            "mailqueue_recipients_failed_total{queue=\"out\",kind=\"temporary\"} 0",
            "mailqueue_recipients_failed_total{queue=\"out\",kind=\"permanent\"} 3",
            "mailqueue_queue_depth{queue=\"out\",slice=\"1\"} 7",
            "mailqueue_disk_full{queue=\"out\"} 1",
            "# TYPE mailqueue_in_flight gauge",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn unclaimable_total_follows_each_slice() {
        let m = Metrics::new("out");
        m.set_unclaimable(0, 5);
        m.set_unclaimable(1, 2);
        m.set_unclaimable(0, 1);
        assert_eq!(m.unclaimable_total(), 3);
    }
}
