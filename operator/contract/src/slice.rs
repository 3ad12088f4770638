//! The contract between the operator and the runner pods: how a slice is named, labelled,
//! and what its Lease carries.
//!
//! One Lease per slice, named like the slice's pod (`<mailqueue>-<queue>-<index>of<slices>`).
//! The slice count is part of the name, so two layouts of one queue never share a Lease: the
//! operator starts a new layout only once no Lease of the old one is held (see `apply.rs`).
//! The runner holding the Lease writes [`Heartbeat`] into [`HEARTBEAT_ANNOTATION`] at every
//! renewal; the operator writes [`DRAIN_ANNOTATION`]. Each side owns its own fields, so neither
//! overwrites the other.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Label on pods and Leases: the `MailQueue` they belong to.
pub const MAILQUEUE_LABEL: &str = "mailqueue.dev/mailqueue";
/// Label on pods and Leases: the queue name.
pub const QUEUE_LABEL: &str = "mailqueue.dev/queue";
/// Label on pods and Leases: the slice index.
pub const SLICE_LABEL: &str = "mailqueue.dev/slice";
/// Label on pods and Leases: the number of slices of the queue's layout.
pub const SLICES_LABEL: &str = "mailqueue.dev/slices";
/// Lease annotation written by the runner: its [`Heartbeat`] as JSON.
pub const HEARTBEAT_ANNOTATION: &str = "mailqueue.dev/heartbeat";
/// Lease annotation written by the operator: `"true"` asks the runner to stop claiming.
pub const DRAIN_ANNOTATION: &str = "mailqueue.dev/drain";

/// One slice of one queue of one `MailQueue`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SliceId {
    /// Name of the `MailQueue`.
    pub mailqueue: String,
    /// Queue name.
    pub queue: String,
    /// Slice index, `0..slices`.
    pub index: u32,
    /// Number of slices of the queue.
    pub slices: u32,
}

impl SliceId {
    /// `<queue>-<index>of<slices>`: the name inside one `MailQueue` (status, logs).
    pub fn short_name(&self) -> String {
        format!("{}-{}of{}", self.queue, self.index, self.slices)
    }

    /// `<mailqueue>-<queue>-<index>of<slices>`: the name of the slice's pod and Lease.
    pub fn object_name(&self) -> String {
        format!("{}-{}", self.mailqueue, self.short_name())
    }

    /// The labels that identify this slice on its pod and Lease.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MAILQUEUE_LABEL.to_owned(), self.mailqueue.clone()),
            (QUEUE_LABEL.to_owned(), self.queue.clone()),
            (SLICE_LABEL.to_owned(), self.index.to_string()),
            (SLICES_LABEL.to_owned(), self.slices.to_string()),
        ])
    }

    /// Reads the slice back from an object's labels; `None` for an object that is not a slice's.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Option<Self> {
        Some(Self {
            mailqueue: labels.get(MAILQUEUE_LABEL)?.clone(),
            queue: labels.get(QUEUE_LABEL)?.clone(),
            index: labels.get(SLICE_LABEL)?.parse().ok()?,
            slices: labels.get(SLICES_LABEL)?.parse().ok()?,
        })
    }
}

/// A runner's counters for its slice, renewed with its Lease.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct Heartbeat {
    /// `.pck` entries of this slice waiting.
    pub pending: i64,
    /// Entries being delivered now (claimed as `.bak` by this runner).
    pub in_flight: i64,
    /// `.bak` entries of this slice that this runner did not claim.
    pub stale_bak: i64,
    /// Entries delivered since the runner started.
    pub delivered: i64,
    /// Entries that failed permanently since the runner started.
    pub failed: i64,
    /// Entries in quarantine (queue-wide; every slice reports the same number).
    pub quarantined: i64,
    /// Entries in `bad/` (queue-wide).
    pub bad: i64,
    /// Entries in `shunt/` (queue-wide).
    pub shunt: i64,
    /// Age in seconds of this slice's oldest waiting entry.
    pub oldest_pending_seconds: i64,
    /// The runner saw the drain request and claims nothing new.
    pub draining: bool,
    /// Queued entries of this slice the runner cannot claim (no permission, a directory at
    /// the `.bak` name): backed off and left for an admin.
    pub unclaimable: i64,
    /// A write the queue needs (a delivered entry's `retry` or `shunt` entry) failed for lack
    /// of space: the runner claims nothing until it succeeds, and resumes by itself.
    pub disk_full: bool,
    /// Why the runner cannot use the SMTP relay right now (AUTH refused, no STARTTLS,
    /// unreachable); absent once a session opens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_error: Option<String>,
    /// Why the runner cannot get list settings right now (REST API unreachable, nothing
    /// cached); its entries wait, never sent undecorated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_settings_error: Option<String>,
}

impl Heartbeat {
    /// Reads the heartbeat from a Lease's annotations; `None` when absent or unreadable (an
    /// unreadable heartbeat counts as no heartbeat: the slice shows as not ready).
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Option<Self> {
        serde_json::from_str(annotations.get(HEARTBEAT_ANNOTATION)?).ok()
    }

    /// The annotation value the runner writes.
    pub fn to_annotation(&self) -> String {
        // A struct of integers and bools always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Separates the parts of a runner's holder identity; never in a pod name or UID.
const HOLDER_SEPARATOR: char = '_';

/// The identity a runner writes into its slice Lease: `<pod name>_<pod uid>_<random>`. Unique
/// per container start (as client-go's leader election makes it), so a force-deleted pod's
/// same-named replacement, or a restarted container, never counts as the holder still
/// running on its node: it waits for that Lease to be released or to expire.
pub fn holder_identity(pod: &str, uid: &str, nonce: &str) -> String {
    format!("{pod}{HOLDER_SEPARATOR}{uid}{HOLDER_SEPARATOR}{nonce}")
}

/// The pod name and UID in a holder identity made by [`holder_identity`]; `None` for any
/// other identity (an older runner's bare pod name, a hand-written one).
pub fn holder_pod(identity: &str) -> Option<(&str, &str)> {
    let mut parts = identity.splitn(3, HOLDER_SEPARATOR);
    let (pod, uid, _nonce) = (parts.next()?, parts.next()?, parts.next()?);
    Some((pod, uid))
}

/// Whether the operator asked this Lease's holder to drain.
pub fn drain_requested(annotations: &BTreeMap<String, String>) -> bool {
    annotations.get(DRAIN_ANNOTATION).is_some_and(|v| v == "true")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_layout() {
        let id = SliceId { mailqueue: "lists".into(), queue: "out".into(), index: 3, slices: 4 };
        assert_eq!(id.object_name(), "lists-out-3of4");
        assert_eq!(id.short_name(), "out-3of4");
        assert_eq!(SliceId::from_labels(&id.labels()), Some(id));
    }

    #[test]
    fn holder_identity_names_the_pod_and_its_uid() {
        let id = holder_identity("lists-out-0of4", "5f1c-9a", "ab12");
        assert_eq!(holder_pod(&id), Some(("lists-out-0of4", "5f1c-9a")));
        assert_eq!(holder_pod("lists-out-0of4"), None);
    }

    #[test]
    fn heartbeat_round_trips_and_tolerates_garbage() {
        let hb = Heartbeat {
            pending: 7,
            in_flight: 1,
            draining: true,
            unclaimable: 2,
            disk_full: true,
            ..Default::default()
        };
        let annotations = BTreeMap::from([(HEARTBEAT_ANNOTATION.to_owned(), hb.to_annotation())]);
        assert_eq!(Heartbeat::from_annotations(&annotations), Some(hb));
        // A runner that predates a field still reads as a heartbeat, the field at its default.
        let older = BTreeMap::from([(HEARTBEAT_ANNOTATION.to_owned(), r#"{"pending":3,"draining":false}"#.to_owned())]);
        assert_eq!(Heartbeat::from_annotations(&older), Some(Heartbeat { pending: 3, ..Default::default() }));
        let garbage = BTreeMap::from([(HEARTBEAT_ANNOTATION.to_owned(), "{nope".to_owned())]);
        assert_eq!(Heartbeat::from_annotations(&garbage), None);
    }
}
