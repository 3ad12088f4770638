//! The `MailQueue` custom resource (`mailqueue.dev/v1alpha1`).
//!
//! Everything the API server can check by itself is declared here, in the schema and in CEL
//! rules, so a bad spec is refused at `kubectl apply` time with a message the admin can act on.
//! `validate.rs` repeats the checks the schema cannot express (duration ranges in numbers).

mod mailman;
mod runner;
mod smtp;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

pub use mailman::{Credentials, Mailman, Mailman2, Mailman3, SiteConfig};
pub use runner::RunnerSettings;
pub use smtp::{CaBundle, KeyRef, Smtp, SmtpAuth, SmtpTimeouts, SmtpTls, TlsMode, Verp};

/// Slice counts the runners accept: Mailman 3 needs a power of two, and with a power of two
/// Mailman 2.1's integer bounds agree with it.
pub const SLICE_COUNTS: [i32; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// A set of Mailman queue directories on one shared volume, each worked by one runner pod per
/// slice of its hash space.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mailqueue.dev",
    version = "v1alpha1",
    kind = "MailQueue",
    plural = "mailqueues",
    shortname = "mq",
    category = "mail",
    namespaced,
    status = "MailQueueStatus",
    validation = Rule::new("self.metadata.name.size() <= 63").message("a MailQueue name must be at most 63 characters: it labels every runner pod"),
    doc = "A set of Mailman queue directories on a shared volume, each delivered by one runner pod per slice.",
    printcolumn(name = "Queues", type_ = "string", json_path = ".status.queueNames", description = "Queue names"),
    printcolumn(name = "Slices", type_ = "string", json_path = ".status.readySlices", description = "Slices with a live runner, of all slices"),
    printcolumn(name = "Pending", type_ = "integer", json_path = ".status.pending", description = "Entries waiting in all queues"),
    printcolumn(name = "Stale Bak", type_ = "integer", json_path = ".status.staleBak", description = ".bak entries left behind by a runner that is gone"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase", description = "Running, Draining, Drained, Degraded or Pending"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct MailQueueSpec {
    /// The shared ReadWriteMany volume that holds the Mailman tree.
    pub storage: Storage,

    /// Which Mailman writes the queue files: `mailman3` (default) or `mailman2`. New entries
    /// and rewritten metadata use this format; runners read both.
    #[serde(default)]
    pub layout: Layout,

    /// The queues to run. Each name is a directory under `storage.queueDir`.
    #[schemars(length(min = 1, max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[x_kube(validation = Rule::new("self.all(q, self.exists_one(p, p.name == q.name))").message("queue names must be unique"))]
    pub queues: Vec<QueueSpec>,

    /// The SMTP relay the runners deliver to.
    pub smtp: Smtp,

    /// When true every runner stops claiming new entries and finishes those in flight; the
    /// `Drained` condition turns True once nothing is in flight. Set back to false to resume.
    #[serde(default)]
    pub drain: bool,

    /// Move `.bak` entries older than `olderThan` out of the queues into quarantine, once per
    /// `requestId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<QuarantineRequest>,

    /// Feed entries back into a queue in batches, once per `requestId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requeue: Option<RequeueRequest>,

    /// Shrink a bloated queue directory (drain, move aside, recreate, refeed), once per
    /// `requestId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact: Option<CompactRequest>,

    /// Standing policy for `.bak` entries whose runner is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bak_policy: Option<BakPolicy>,

    /// How the runner pods run and where they are placed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<RunnerSettings>,

    /// Where the runners read list settings (decoration, Sender/Errors-To, personalization,
    /// VERP). Without it entries are sent as they are queued, and the `ListSettings`
    /// condition says that list decoration is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailman: Option<Mailman>,
}

/// Where the Mailman tree lives.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
// Presence is checked by a rule rather than the schema's `required`: a missing required field
// makes the API server skip every rule and add "some validation rules were not checked" to
// the one message the admin needs.
#[x_kube(validation = Rule::new("has(self.claimName)").message("storage.claimName is required: the name of the ReadWriteMany PersistentVolumeClaim that holds the Mailman tree"))]
pub struct Storage {
    /// Name of the PersistentVolumeClaim (ReadWriteMany) in this namespace that holds the
    /// Mailman tree. Every runner pod mounts it. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: Option<String>,

    /// Path of the queue directory inside the volume. Default: from `layout`, `var/queue` for
    /// `mailman3` and `qfiles` for `mailman2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^[^/].*$"))]
    pub queue_dir: Option<String>,
}

impl Storage {
    /// The queue directory inside the volume: as written, or where `layout`'s Mailman keeps it.
    pub fn queue_dir(&self, layout: Layout) -> &str {
        match (&self.queue_dir, layout) {
            (Some(dir), _) => dir.trim_end_matches('/'),
            (None, Layout::Mailman3) => "var/queue",
            (None, Layout::Mailman2) => "qfiles",
        }
    }
}

/// The on-disk format that new writes use.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Mailman 2.1: protocol-1 pickles, byte strings.
    Mailman2,
    /// Mailman 3: highest-protocol pickles, text strings.
    #[default]
    Mailman3,
}

/// One queue directory and how many runners share it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueueSpec {
    /// Queue name, the directory under `storage.queueDir` (for example `out` or `retry`).
    #[schemars(length(min = 1, max = 24), regex(pattern = r"^[a-z][a-z0-9]*$"))]
    pub name: String,

    /// Number of slices of the hash space, one runner pod each. A power of two from 1 to 256.
    #[serde(default = "default_slices")]
    #[schemars(range(min = 1, max = 256))]
    #[x_kube(validation = Rule::new("self in [1, 2, 4, 8, 16, 32, 64, 128, 256]").message("slices must be a power of two from 1 to 256 (1, 2, 4, ... 256), as Mailman 3 requires"))]
    pub slices: i32,
}

fn default_slices() -> i32 {
    1
}

/// A one-shot quarantine of stale `.bak` entries.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuarantineRequest {
    /// Any new value starts the action once; repeating the same value does nothing.
    #[schemars(length(max = 63))]
    pub request_id: String,

    /// Only `.bak` entries older than this are moved, for example `30m`.
    #[serde(default = "default_stale_after")]
    #[schemars(schema_with = "duration_schema")]
    pub older_than: String,
}

/// Where a requeue takes entries from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RequeueSource {
    /// Entries set aside by a quarantine.
    #[default]
    Quarantine,
    /// Entries in `shunt/`.
    Shunt,
    /// Preserved entries in `bad/`.
    Bad,
}

/// A one-shot batch requeue.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequeueRequest {
    /// Any new value starts the action once; repeating the same value does nothing.
    #[schemars(length(max = 63))]
    pub request_id: String,

    /// Where entries come from: `quarantine`, `shunt` or `bad`.
    #[serde(default)]
    pub from: RequeueSource,

    /// The queue that receives the entries.
    #[serde(default = "default_requeue_queue")]
    #[schemars(length(min = 1, max = 24), regex(pattern = r"^[a-z][a-z0-9]*$"))]
    pub queue: String,

    /// Entries moved per batch.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1, max = 100000))]
    pub batch_size: i32,

    /// Pause between batches, for example `5s`.
    #[serde(default = "default_interval")]
    #[schemars(schema_with = "duration_schema")]
    pub interval: String,

    /// No batch is moved while the target queue holds this many entries or more.
    #[serde(default = "default_max_depth")]
    #[schemars(range(min = 1, max = 10000000))]
    pub max_depth: i32,
}

fn default_requeue_queue() -> String {
    "out".to_owned()
}

fn default_batch_size() -> i32 {
    500
}

fn default_interval() -> String {
    "5s".to_owned()
}

fn default_max_depth() -> i32 {
    5000
}

/// A one-shot compaction of a queue directory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompactRequest {
    /// Any new value starts the action once; repeating the same value does nothing.
    #[schemars(length(max = 63))]
    pub request_id: String,

    /// The queue whose directory is compacted.
    #[serde(default = "default_requeue_queue")]
    #[schemars(length(min = 1, max = 24), regex(pattern = r"^[a-z][a-z0-9]*$"))]
    pub queue: String,
}

/// Standing policy for stale `.bak` entries.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BakPolicy {
    /// A `.bak` entry with no live runner older than this is quarantined automatically.
    #[serde(default = "default_stale_after")]
    #[schemars(schema_with = "duration_schema")]
    pub quarantine_after: String,
}

fn default_stale_after() -> String {
    "30m".to_owned()
}

/// Schema of a duration field: Go-style `90s`, `30m`, `1h30m`, `500ms`, greater than zero.
/// The rule only runs on strings the pattern accepts: on any other, CEL's `duration()` would
/// fail too and add a conversion error to the pattern's clear message.
fn duration_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": DURATION_PATTERN,
        "maxLength": 32,
        "x-kubernetes-validations": [{
            "rule": format!("!self.matches('{DURATION_PATTERN}') || duration(self) > duration('0s')"),
            "message": "must be a duration greater than zero, such as 90s, 30m or 1h30m"
        }]
    })
}

/// What a duration field accepts (Go's units that `validate.rs` parses too).
const DURATION_PATTERN: &str = "^([0-9]+(ms|s|m|h))+$";

/// What the operator last saw of a `MailQueue`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailQueueStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`, `Draining`, `Drained` and `Degraded`, each with its own observedGeneration.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// One word for `kubectl get`: Pending, Running, Draining, Drained or Degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,

    /// The queue names, comma-separated, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_names: Option<String>,

    /// `<ready>/<all>` slices, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_slices: Option<String>,

    /// Entries waiting in all queues, as last reported by the runners.
    #[serde(default)]
    pub pending: i64,

    /// Stale `.bak` entries in all queues.
    #[serde(default)]
    pub stale_bak: i64,

    /// Counts per queue.
    #[serde(default)]
    pub queues: Vec<QueueStatus>,

    /// One entry per slice of every queue.
    #[serde(default)]
    pub slices: Vec<SliceStatus>,

    /// Progress of the one-shot actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<ActionsStatus>,
}

/// Counts of one queue, summed over its slices' heartbeats.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    /// Queue name.
    pub name: String,
    /// Slices the queue is split into.
    pub slices: i32,
    /// Slices whose runner holds its Lease and heartbeats.
    pub live_slices: i32,
    /// `.pck` entries waiting.
    pub pending: i64,
    /// Entries being delivered right now.
    pub in_flight: i64,
    /// `.bak` entries with no live runner.
    pub stale_bak: i64,
    /// Entries set aside in quarantine.
    pub quarantined: i64,
    /// Entries in `bad/`.
    pub bad: i64,
    /// Entries in `shunt/`.
    pub shunt: i64,
    /// Entries delivered since the runners started.
    pub delivered: i64,
    /// Age in seconds of the oldest waiting entry.
    pub oldest_pending_seconds: i64,
    /// Queued entries the runners cannot claim (no permission for the runner's user, a
    /// directory at the entry's `.bak` name): they stay queued for an admin.
    // Defaulted: a status stored by an older operator lacks it and must still be read.
    #[serde(default)]
    pub unclaimable: i64,
    /// Slices whose runner stopped claiming because the queue volume is full.
    #[serde(default)]
    pub disk_full_slices: i32,
}

/// State of one slice: its pod and its runner's last heartbeat.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SliceStatus {
    /// `<queue>-<index>of<slices>`.
    pub name: String,
    /// The runner pod for this slice.
    pub pod: String,
    /// The pod is running and its runner holds the slice's Lease.
    pub ready: bool,
    /// Holder of the slice's Lease, empty when nobody holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// Last renewal of the slice's Lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<Time>,
    /// The runner acknowledged the drain and claims nothing new.
    pub draining: bool,
    /// `.pck` entries waiting in this slice.
    pub pending: i64,
    /// Entries this slice's runner is delivering right now.
    pub in_flight: i64,
    /// Stale `.bak` entries in this slice.
    pub stale_bak: i64,
    /// Entries delivered by this slice's runner since it started.
    pub delivered: i64,
    /// Queued entries of this slice its runner cannot claim.
    // Defaulted: a status stored by an older operator lacks it and must still be read.
    #[serde(default)]
    pub unclaimable: i64,
    /// The runner stopped claiming: a write the queue needs failed for lack of space. It
    /// resumes by itself once the write succeeds.
    #[serde(default)]
    pub disk_full: bool,
}

/// Progress of the one-shot actions, by action name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionsStatus {
    /// The last `spec.quarantine` request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<ActionStatus>,
    /// The last `spec.requeue` request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requeue: Option<ActionStatus>,
    /// The last `spec.compact` request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact: Option<ActionStatus>,
    /// The last automatic quarantine under `spec.bakPolicy` (its `requestId` is made by the
    /// operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bak_policy: Option<ActionStatus>,
}

/// Where an action stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ActionPhase {
    /// Accepted, not started yet.
    Pending,
    /// Under way.
    Running,
    /// Finished; the counts are final.
    Succeeded,
    /// Stopped; `message` says why.
    Failed,
}

/// Progress of one action.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionStatus {
    /// The `requestId` this progress belongs to.
    pub request_id: String,
    /// Pending, Running, Succeeded or Failed.
    pub phase: ActionPhase,
    /// Entries moved aside.
    #[serde(default)]
    pub moved: i64,
    /// Entries fed back into a queue.
    #[serde(default)]
    pub requeued: i64,
    /// Entries still to do.
    #[serde(default)]
    pub remaining: i64,
    /// Entries left alone because a live runner was delivering them.
    #[serde(default)]
    pub skipped_in_flight: i64,
    /// When the action started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the action ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// What happened, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
