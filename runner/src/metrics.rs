//! The runner's counters, rendered as Prometheus text for `/metrics`.
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the SMTP transaction latency histogram.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

#[derive(Default)]
pub struct Metrics {
    pub entries_delivered: AtomicU64,
    pub recipients_delivered: AtomicU64,
    pub recipients_temporary: AtomicU64,
    pub recipients_permanent: AtomicU64,
    pub entries_retried: AtomicU64,
    pub entries_expired: AtomicU64,
    pub entries_requeued: AtomicU64,
    pub entries_bad: AtomicU64,
    pub entries_shunted: AtomicU64,
    pub entries_moved_from_retry: AtomicU64,
    pub sessions_opened: AtomicU64,
    pub connect_failures: AtomicU64,
    /// Sessions dropped because the relay broke the protocol (a reply over the bounds).
    pub smtp_protocol_errors: AtomicU64,
    pub in_flight: AtomicU64,
    /// Answers about list settings taken from the cache because the API was down.
    pub list_settings_stale: AtomicU64,
    /// Entries left queued because their list's settings could not be had.
    pub list_settings_unavailable: AtomicU64,
    /// Failed attempts to claim an entry (no permission, a directory at its `.bak`
    /// name, a name that is no longer a regular file, an I/O error).
    pub claim_failures: AtomicU64,
    /// A write the queue protocol needs failed for lack of space: claiming stopped.
    pub disk_full: std::sync::atomic::AtomicBool,
    /// Claimed entries put back because reading them failed with an I/O error.
    pub read_errors: AtomicU64,
    /// The last failure to open an SMTP session, cleared when one opens.
    pub relay_error: Mutex<Option<String>>,
    /// The last failure to get list settings, cleared when they are had again.
    pub list_settings_error: Mutex<Option<String>>,
    /// Per slice index: `.pck` entries seen at the last listing.
    depth: Mutex<Vec<(u32, u64)>>,
    /// Per slice index: entries that could not be claimed, backed off.
    unclaimable: Mutex<Vec<(u32, u64)>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

impl Metrics {
    pub fn observe_transaction(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        for (bound, counter) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if secs <= *bound {
                counter.fetch_add(1, Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_micros
            .fetch_add(elapsed.as_micros() as u64, Relaxed);
    }

    pub fn set_depth(&self, slice: u32, pending: u64) {
        set_per_slice(&self.depth, slice, pending);
    }

    pub fn set_unclaimable(&self, slice: u32, entries: u64) {
        set_per_slice(&self.unclaimable, slice, entries);
    }

    /// Unclaimable entries over every slice of this process.
    pub fn unclaimable_total(&self) -> u64 {
        self.unclaimable.lock().map(|u| u.iter().map(|(_, v)| v).sum()).unwrap_or(0)
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self, queue: &str) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, labels: &str, v: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{queue=\"{queue}\"{labels}}} {}", v.load(Relaxed));
        };
        counter(
            &mut out,
            "mailqueue_entries_delivered_total",
            "Entries whose every recipient was accepted or permanently refused.",
            "",
            &self.entries_delivered,
        );
        counter(
            &mut out,
            "mailqueue_recipients_delivered_total",
            "Recipients accepted by the SMTP relay.",
            "",
            &self.recipients_delivered,
        );
        let _ = writeln!(out, "# HELP mailqueue_recipients_failed_total Recipients refused, by kind (temporary: retried; permanent: recorded as bounces).\n# TYPE mailqueue_recipients_failed_total counter");
        let _ = writeln!(
            out,
            "mailqueue_recipients_failed_total{{queue=\"{queue}\",kind=\"temporary\"}} {}",
            self.recipients_temporary.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "mailqueue_recipients_failed_total{{queue=\"{queue}\",kind=\"permanent\"}} {}",
            self.recipients_permanent.load(Relaxed)
        );
        counter(
            &mut out,
            "mailqueue_entries_retried_total",
            "Entries moved to the retry queue with their temporarily failed recipients.",
            "",
            &self.entries_retried,
        );
        counter(
            &mut out,
            "mailqueue_entries_expired_total",
            "Entries dropped after the retry period without progress, as Mailman does.",
            "",
            &self.entries_expired,
        );
        counter(
            &mut out,
            "mailqueue_entries_requeued_total",
            "Entries put back unfinished (shutdown, relay unreachable).",
            "",
            &self.entries_requeued,
        );
        counter(
            &mut out,
            "mailqueue_entries_bad_total",
            "Entries preserved in bad/ because they could not be read.",
            "",
            &self.entries_bad,
        );
        counter(
            &mut out,
            "mailqueue_entries_shunted_total",
            "Entries set aside in shunt/ because they cannot be delivered as Mailman would.",
            "",
            &self.entries_shunted,
        );
        counter(
            &mut out,
            "mailqueue_entries_moved_from_retry_total",
            "Retry entries moved back to out once due.",
            "",
            &self.entries_moved_from_retry,
        );
        counter(
            &mut out,
            "mailqueue_list_settings_stale_total",
            "List settings answered from the cache because the Mailman REST API was unreachable.",
            "",
            &self.list_settings_stale,
        );
        counter(&mut out, "mailqueue_list_settings_unavailable_total", "Entries left queued because their list's settings could not be read (API down, nothing cached).", "", &self.list_settings_unavailable);
        counter(
            &mut out,
            "mailqueue_smtp_sessions_opened_total",
            "SMTP sessions opened.",
            "",
            &self.sessions_opened,
        );
        counter(
            &mut out,
            "mailqueue_smtp_connect_failures_total",
            "Failed attempts to open an SMTP session.",
            "",
            &self.connect_failures,
        );
        counter(
            &mut out,
            "mailqueue_smtp_protocol_errors_total",
            "SMTP sessions dropped because the relay broke the protocol (a reply line over 8192 bytes, a reply over 16 KiB or 200 lines).",
            "",
            &self.smtp_protocol_errors,
        );
        counter(
            &mut out,
            "mailqueue_claim_failures_total",
            "Failed attempts to claim an entry (permission, a directory at its .bak name, not a regular file, I/O error); the entry stays queued and is retried with a growing delay.",
            "",
            &self.claim_failures,
        );
        counter(
            &mut out,
            "mailqueue_read_errors_total",
            "Claimed entries put back because reading them failed with an I/O error (not set aside as broken).",
            "",
            &self.read_errors,
        );
        let _ = writeln!(out, "# HELP mailqueue_disk_full 1 while a write the queue needs failed for lack of space: no entry is claimed until it succeeds.\n# TYPE mailqueue_disk_full gauge\nmailqueue_disk_full{{queue=\"{queue}\"}} {}", u8::from(self.disk_full.load(Relaxed)));
        let _ = writeln!(out, "# HELP mailqueue_unclaimable_entries Queued entries that could not be claimed at the last attempt, per slice.\n# TYPE mailqueue_unclaimable_entries gauge");
        if let Ok(d) = self.unclaimable.lock() {
            for (slice, v) in d.iter() {
                let _ = writeln!(out, "mailqueue_unclaimable_entries{{queue=\"{queue}\",slice=\"{slice}\"}} {v}");
            }
        }
        let _ = writeln!(out, "# HELP mailqueue_in_flight Entries claimed and being delivered.\n# TYPE mailqueue_in_flight gauge\nmailqueue_in_flight{{queue=\"{queue}\"}} {}", self.in_flight.load(Relaxed));
        let _ = writeln!(out, "# HELP mailqueue_queue_depth Queued (.pck) entries per slice at the last listing.\n# TYPE mailqueue_queue_depth gauge");
        if let Ok(d) = self.depth.lock() {
            for (slice, v) in d.iter() {
                let _ = writeln!(
                    out,
                    "mailqueue_queue_depth{{queue=\"{queue}\",slice=\"{slice}\"}} {v}"
                );
            }
        }
        let name = "mailqueue_smtp_transaction_seconds";
        let _ = writeln!(out, "# HELP {name} Time from MAIL FROM to the reply to the final dot.\n# TYPE {name} histogram");
        for (bound, c) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{queue=\"{queue}\",le=\"{bound}\"}} {}",
                c.load(Relaxed)
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{queue=\"{queue}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "{name}_sum{{queue=\"{queue}\"}} {}",
            self.latency_sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{queue=\"{queue}\"}} {count}");
        out
    }
}

fn set_per_slice(values: &Mutex<Vec<(u32, u64)>>, slice: u32, value: u64) {
    let Ok(mut d) = values.lock() else { return };
    match d.iter_mut().find(|(s, _)| *s == slice) {
        Some((_, v)) => *v = value,
        None => d.push((slice, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.observe_transaction(Duration::from_millis(3));
        m.observe_transaction(Duration::from_secs(2));
        let text = m.render("out");
        assert!(text
            .contains("mailqueue_smtp_transaction_seconds_bucket{queue=\"out\",le=\"0.005\"} 1"));
        assert!(
            text.contains("mailqueue_smtp_transaction_seconds_bucket{queue=\"out\",le=\"5\"} 2")
        );
        assert!(text.contains("mailqueue_smtp_transaction_seconds_count{queue=\"out\"} 2"));
    }
}
