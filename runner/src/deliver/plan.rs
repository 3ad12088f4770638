//! From a queue entry to the SMTP transactions Mailman would make for it: envelope
//! sender, recipient groups, and the DATA bytes of each (per recipient under VERP).
use super::chunk;
use super::verp::verp_sender;
use mailqueue_message::{HeaderValue, Message, Text, Version};
use mailqueue_pickle::Value;
use mailqueue_queue::entry::QueueEntry;
use std::sync::Arc;

/// When to deliver one transaction per recipient with a VERP envelope sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum VerpMode {
    /// When the entry's metadata says `verp` (Mailman 2.1 sets it at enqueue; Mailman 3
    /// sets it in its out-runner from `[mta] verp_delivery_interval`).
    Metadata,
    /// Always (Mailman 3 site with `verp_delivery_interval: 1`).
    Always,
    /// Never, even if the metadata asks.
    Never,
}

#[derive(Clone, Debug)]
pub struct Policy {
    /// Recipients per transaction; `None` uses the entry's Mailman default.
    pub rcpt_limit: Option<usize>,
    pub verp: VerpMode,
}

/// One SMTP transaction.
#[derive(Clone, Debug)]
pub struct Transaction {
    pub mail_from: String,
    pub rcpts: Vec<String>,
    pub data: Data,
}

/// A transaction's DATA bytes: shared by every transaction that sends the same copy,
/// or built when the transaction is sent and dropped after it, so that the copies of a
/// message that differ per recipient are never all in memory at once.
#[derive(Clone)]
pub enum Data {
    Ready(Arc<Vec<u8>>),
    Lazy(Arc<dyn Fn() -> Result<Vec<u8>, PlanError> + Send + Sync>),
}

impl Data {
    pub fn get(&self) -> Result<Arc<Vec<u8>>, PlanError> {
        match self {
            Data::Ready(d) => Ok(d.clone()),
            Data::Lazy(build) => build().map(Arc::new),
        }
    }
}

impl From<Arc<Vec<u8>>> for Data {
    fn from(d: Arc<Vec<u8>>) -> Data {
        Data::Ready(d)
    }
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Data::Ready(d) => write!(f, "Ready({} bytes)", d.len()),
            Data::Lazy(_) => f.write_str("Lazy"),
        }
    }
}

/// Everything to send for an entry.
#[derive(Debug, Default)]
pub struct Plan {
    pub transactions: Vec<Transaction>,
    /// Recipients Mailman would not send to at all (2.1 VERP, no domain).
    pub skipped: Vec<String>,
}

/// Why an entry cannot be delivered as Mailman would.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The entry is fine but needs something this runner does not reproduce: it is set
    /// aside (shunt) for an admin, never sent wrong.
    #[error("cannot be delivered as Mailman would: {0}")]
    Unreproducible(String),
    /// What the entry needs (its list's settings) cannot be had right now: it stays
    /// queued and is tried again later.
    #[error("{0}")]
    Unavailable(String),
    /// The entry's content is broken: it goes to `bad/`.
    #[error(transparent)]
    Corrupt(#[from] mailqueue_queue::entry::EntryError),
}

/// A list whose settings are missing right now waits in the queue; one whose settings
/// cannot be reproduced is set aside, whichever Mailman version it belongs to.
impl From<crate::lists::ListError> for PlanError {
    fn from(e: crate::lists::ListError) -> Self {
        match e {
            crate::lists::ListError::Unavailable(why) => PlanError::Unavailable(why),
            crate::lists::ListError::Unreproducible(why) => PlanError::Unreproducible(why),
        }
    }
}

/// `message` is the entry's message model, built by the caller (which may then free
/// the unpickled value it came from: see [`QueueEntry::take_message`]).
pub fn plan(entry: &QueueEntry, message: Message, policy: &Policy) -> Result<Plan, PlanError> {
    let version = entry.version();
    let meta = entry.metadata();
    let recipients = entry.recipients()?;
    if recipients.is_empty() {
        return Ok(Plan::default());
    }
    let verp = match policy.verp {
        VerpMode::Always => true,
        VerpMode::Never => false,
        VerpMode::Metadata => meta.get("verp").is_some_and(Value::is_truthy),
    };
    // 2.1's SMTPDirect records `personalize` in the metadata when the list
    // personalizes; the per-member changes need the list's member database.
    if version == Version::Mailman2 && !verp && meta.get("personalize").is_some_and(Value::is_truthy) {
        return Err(PlanError::Unreproducible(
            "the list personalizes each copy (metadata 'personalize'), which needs the list's member data".into(),
        ));
    }
    let sender = match entry.envelope_sender() {
        Ok(s) => s,
        Err(e @ mailqueue_queue::entry::EntryError::NoEnvelopeSender { .. }) => {
            return Err(PlanError::Unreproducible(e.to_string()))
        }
        Err(e) => return Err(e.into()),
    };
    if verp {
        return verp_plan(&message, version, meta, &sender, recipients);
    }
    let data = Arc::new(mailqueue_message::delivery_bytes(&message, version, &sender).map_err(corrupt)?);
    let limit = policy.rcpt_limit.unwrap_or_else(|| chunk::default_limit(version));
    let transactions = chunk::chunk(&recipients, limit, version)
        .into_iter()
        .map(|rcpts| Transaction { mail_from: sender.clone(), rcpts, data: Data::Ready(data.clone()) })
        .collect();
    Ok(Plan { transactions, skipped: Vec::new() })
}

/// One transaction per recipient. Besides the envelope, both versions change one
/// header per copy: `X-Mailman-Copy` is removed, and set to `yes` for recipients in the
/// metadata's `add-dup-header` (they asked to know when they got a copy twice).
fn verp_plan(
    message: &Message,
    version: Version,
    meta: &Value,
    sender: &str,
    recipients: Vec<String>,
) -> Result<Plan, PlanError> {
    let dup_wanted = add_dup_header(meta);
    let mut base = message.clone();

    base.headers.retain(|(name, _)| !name.to_string_lossy().eq_ignore_ascii_case("x-mailman-copy"));
    let base_shared: Arc<Message> = Arc::new(base);
    let base = base_shared.as_ref();
    let mut plan = Plan::default();
    // Mailman 3's bytes do not depend on the envelope, 2.1's do (Errors-To), so
    // Mailman 3 copies share one flattening per dup flag; 2.1 copies are flattened
    // one at a time as they are sent (the first here, to find a broken message now).
    let mut shared: [Option<Arc<Vec<u8>>>; 2] = [None, None];
    let mut checked = false;
    for rcpt in recipients {
        let mail_from = match (verp_sender(sender, &rcpt), version) {
            (Some(s), _) => s,
            (None, Version::Mailman2) => {
                plan.skipped.push(rcpt);
                continue;
            }
            (None, Version::Mailman3) => sender.to_owned(),
        };
        let dup = dup_wanted.iter().any(|d| d == &rcpt);
        let cached = match version {
            Version::Mailman3 => shared[usize::from(dup)].clone(),
            Version::Mailman2 => None,
        };
        let data = match cached {
            Some(d) => Data::Ready(d),
            None if version == Version::Mailman3 => {
                let d = Arc::new(flatten_copy(base, version, &mail_from, dup)?);
                shared[usize::from(dup)] = Some(d.clone());
                Data::Ready(d)
            }
            None => {
                if !checked {
                    flatten_copy(base, version, &mail_from, dup)?;
                    checked = true;
                }
                let (base, from) = (base_shared.clone(), mail_from.clone());
                Data::Lazy(Arc::new(move || flatten_copy(&base, version, &from, dup)))
            }
        };
        plan.transactions.push(Transaction { mail_from, rcpts: vec![rcpt], data });
    }
    Ok(plan)
}

fn flatten_copy(base: &Message, version: Version, mail_from: &str, dup: bool) -> Result<Vec<u8>, PlanError> {
    if !dup {
        return mailqueue_message::delivery_bytes(base, version, mail_from).map_err(corrupt);
    }
    let mut m = base.clone();
    let (name, value) = match version {
        Version::Mailman2 => (Text::Bytes(b"X-Mailman-Copy".to_vec()), Text::Bytes(b"yes".to_vec())),
        Version::Mailman3 => (Text::from("X-Mailman-Copy"), Text::from("yes")),
    };
    m.headers.push((name, HeaderValue::Text(value)));
    mailqueue_message::delivery_bytes(&m, version, mail_from).map_err(corrupt)
}

fn corrupt(e: mailqueue_message::Error) -> PlanError {
    PlanError::Corrupt(e.into())
}

/// 2.1 keeps `add-dup-header` as a dict (address -> True), Mailman 3 as a set.
fn add_dup_header(meta: &Value) -> Vec<String> {
    match meta.get("add-dup-header") {
        Some(Value::Dict(d)) => d.iter().filter_map(|(k, _)| k.as_text()).collect(),
        Some(Value::Set(v) | Value::List(v) | Value::FrozenSet(v) | Value::Tuple(v)) => {
            v.iter().filter_map(Value::as_text).collect()
        }
        _ => Vec::new(),
    }
}
