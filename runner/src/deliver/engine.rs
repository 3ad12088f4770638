//! Draining one slice of the `out` queue: list once, hand the batch to N connection
//! workers (each keeps its SMTP session open across entries), wait for the batch,
//! list again. Every entry is claimed by rename just before its delivery, so at any
//! moment only the entries really in flight are `.bak`.
use super::bounces::{Bounce, BounceLog};
use super::mm2_list;
use super::mm3_list;
use super::outcome::{EntryOutcome, Refusal, TxOutcome};
use super::plan::{self, Plan, PlanError, Policy, Transaction};
use super::smtp::{Session, SessionBroken, Settings};
use crate::lists::mm2::Mm2Lists;
use crate::lists::mm3::Mm3Rest;
use crate::metrics::Metrics;
use crate::ownership::{HeldSlice, SliceCounters};
use crate::retry::{self, RetryDecision, RetryPolicy};
use crate::shutdown::Stop;
use mailqueue_message::Version;
use mailqueue_queue::entry::{version_str, with_field, QueueEntry};
use mailqueue_queue::inflight::{self, Claimed};
use mailqueue_queue::switchboard::{NewEntry, Switchboard};
use mailqueue_queue::{EntryName, Ext, Slice};
use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;
use tracing::Instrument;

/// Settings shared by every slice of one `run`.
pub struct Engine {
    pub out: Switchboard,
    pub retry: Switchboard,
    pub shunt: Switchboard,
    pub smtp: Settings,
    pub connections: usize,
    pub policy: Policy,
    pub retry_policy: RetryPolicy,
    pub exit_when_empty: bool,
    /// Pause between listings of an empty (or unreachable-relay) slice.
    pub idle: Duration,
    pub metrics: Arc<Metrics>,
    pub bounces: BounceLog,
    pub stop: Stop,
    /// Mailman 3 list settings (`--mailman-rest`); without it Mailman 3 entries are
    /// delivered as lists that change nothing.
    pub mm3_lists: Option<Arc<Mm3Rest>>,
    /// Mailman 2.1 list settings (`--mailman2-site`); without it 2.1 entries are
    /// delivered as lists that change nothing but `Errors-To`.
    pub mm2_lists: Option<Arc<Mm2Lists>>,
    /// How long an entry waits when its list's settings cannot be had.
    pub list_retry: Duration,
    /// Dispositions that could not be written for lack of space (see [`Unwritten`]).
    pub unwritten: std::sync::Mutex<Vec<Unwritten>>,
    /// One permit: entries over [`LARGE_ENTRY`] are read and sent one at a time.
    pub large_entries: tokio::sync::Semaphore,
}

/// Entries larger than this (bytes) are delivered one at a time per process.
pub const LARGE_ENTRY: u64 = 16 * 1024 * 1024;

/// Where an entry must be written before its `.bak` can go.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    Retry,
    Shunt,
}

/// A delivered entry whose follow-up entry (its temporarily failed recipients for
/// `retry`, or the entry for `shunt`) could not be written because the queue's
/// filesystem is full. It stays claimed (`.bak`, its lock held) and the delivery
/// outcome is kept here, so that once space returns it is written and nobody who
/// already had the message gets it again. Meanwhile no slice claims anything.
pub struct Unwritten {
    claimed: Claimed,
    entry: Arc<QueueEntry>,
    target: Target,
    metadata: mailqueue_pickle::Value,
}

/// Why a slice stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SliceError {
    #[error("slice {0}: ownership lost; stopped claiming")]
    OwnershipLost(Slice),
    #[error("slice {slice}: listing the queue failed: {error}")]
    List { slice: Slice, error: mailqueue_queue::Error },
    #[error("slice {0}: a delivery worker failed: {1}")]
    Worker(Slice, String),
    #[error("stopped with {0} delivered entries still claimed: their retry or shunt entries could not be written (filesystem full); recovery will send them again in full")]
    Unwritten(usize),
}

/// What a worker reports for each name it was handed.
enum Done {
    /// Claimed and handled (delivered, retried, bad, shunted, put back) or gone.
    Handled,
    /// Not yet due (`deliver_after`): left queued, skipped until then.
    Deferred(EntryName, f64),
    /// The relay cannot be reached: not claimed; the batch stops.
    RelayDown,
    /// Left queued after a failure that is not the entry's fault: it could not be
    /// claimed (`unclaimable`: no permission, a directory at its `.bak` name, a name
    /// that is no longer a regular file) or read (an I/O error). Backed off.
    Failed { name: EntryName, reason: String, unclaimable: bool },
}

/// An entry backed off after [`Done::Failed`].
struct Trouble {
    until: Instant,
    delay: Duration,
    unclaimable: bool,
}

/// How often a runner stopped by a full filesystem tries its writes again.
const DISK_FULL_RECHECK: Duration = Duration::from_secs(1);

/// First and longest wait before an entry that failed is tried again.
const FIRST_ENTRY_BACKOFF: Duration = Duration::from_secs(1);
const MAX_ENTRY_BACKOFF: Duration = Duration::from_secs(300);

/// The most the idle pause grows to while the relay stays unreachable.
const MAX_RELAY_BACKOFF: Duration = Duration::from_secs(30);

impl Engine {
    /// Drains `slice` until stopped (or empty, with `exit_when_empty`). The caller has
    /// acquired the slice and recovered its `.bak` entries.
    pub async fn run_slice(self: Arc<Self>, slice: Slice, lease: Arc<dyn HeldSlice>) -> Result<(), SliceError> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<EntryName>(self.connections * 2);
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let mut workers = JoinSet::new();
        for n in 0..self.connections {
            let span = tracing::info_span!("worker", slice = %slice, conn = n);
            workers.spawn(self.clone().worker(lease.clone(), jobs_rx.clone(), done_tx.clone()).instrument(span));
        }
        drop(done_tx);

        let mut deferred: HashMap<EntryName, f64> = HashMap::new();
        let mut troubled: HashMap<EntryName, Trouble> = HashMap::new();
        let mut backoff = self.idle;
        let result = loop {
            if self.stop.stopping() {
                break Ok(());
            }
            if !lease.still_owned() {
                break Err(SliceError::OwnershipLost(slice));
            }
            if lease.draining() {
                self.publish(lease.as_ref(), 0, 0);
                self.pause(self.idle).await;
                continue;
            }
            // A full filesystem: nothing is claimed until what was delivered is recorded.
            if self.disk_full() {
                let me = self.clone();
                if !blocking(move || me.write_unwritten()).await {
                    self.publish(lease.as_ref(), 0, 0);
                    self.pause(self.idle.max(DISK_FULL_RECHECK)).await;
                    continue;
                }
            }
            let names = match self.list(slice).await {
                Ok(n) => n,
                Err(error) => break Err(SliceError::List { slice, error }),
            };
            self.metrics.set_depth(slice.index(), names.len() as u64);
            let now = retry::unix_secs(SystemTime::now());
            // FIFO order: the first name is the oldest entry.
            let oldest = names.first().map_or(0, |n| (now - n.timestamp()).max(0.0) as u64);
            let listed: HashSet<&EntryName> = names.iter().collect();
            troubled.retain(|n, _| listed.contains(n));
            drop(listed);
            let unclaimable = troubled.values().filter(|t| t.unclaimable).count() as u64;
            self.metrics.set_unclaimable(slice.index(), unclaimable);
            self.publish(lease.as_ref(), names.len() as u64, oldest);
            deferred.retain(|_, after| *after > now);
            let instant = Instant::now();
            let batch: Vec<EntryName> = names
                .into_iter()
                .filter(|n| !deferred.contains_key(n) && troubled.get(n).is_none_or(|t| t.until <= instant))
                .collect();
            if batch.is_empty() {
                if self.exit_when_empty {
                    if !troubled.is_empty() {
                        tracing::warn!(slice = %slice, entries = troubled.len(), unclaimable, "exiting with entries left queued that could not be claimed or read");
                    }
                    break Ok(());
                }
                self.pause(self.idle).await;
                continue;
            }
            let (mut sent, mut received, mut relay_down) = (0usize, 0usize, false);
            for name in batch {
                if self.stop.stopping() || !lease.still_owned() || lease.draining() || relay_down || self.disk_full() {
                    break;
                }
                tokio::select! {
                    r = jobs_tx.send(name) => if r.is_err() { break } else { sent += 1 },
                    _ = self.stop.stopped() => break,
                }
                while let Ok(done) = done_rx.try_recv() {
                    received += 1;
                    relay_down |= note(done, &mut deferred, &mut troubled);
                }
            }
            while received < sent {
                let Some(done) = done_rx.recv().await else { break };
                received += 1;
                relay_down |= note(done, &mut deferred, &mut troubled);
            }
            if relay_down {
                self.pause(backoff).await;
                backoff = (backoff * 2).min(MAX_RELAY_BACKOFF);
            } else {
                backoff = self.idle;
            }
        };
        drop(jobs_tx);
        let result = result.and_then(|()| match self.unwritten.lock().map(|u| u.len()).unwrap_or(0) {
            0 => Ok(()),
            n => Err(SliceError::Unwritten(n)),
        });
        while let Some(joined) = workers.join_next().await {
            if let Err(e) = joined {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
                return Err(SliceError::Worker(slice, e.to_string()));
            }
        }
        result
    }

    async fn list(&self, slice: Slice) -> Result<Vec<EntryName>, mailqueue_queue::Error> {
        let sb = self.out.clone();
        // A listing of a big directory takes milliseconds: keep it off the SMTP threads.
        match tokio::task::spawn_blocking(move || sb.files(slice)).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(mailqueue_queue::Error::Io {
                op: "listing",
                path: self.out.dir().to_owned(),
                error: std::io::Error::other(e.to_string()),
            }),
        }
    }

    async fn pause(&self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.stop.stopped() => {}
        }
    }

    fn publish(&self, lease: &dyn HeldSlice, pending: u64, oldest_pending_seconds: u64) {
        let read = |m: &std::sync::Mutex<Option<String>>| m.lock().ok().and_then(|v| v.clone());
        lease.publish(&SliceCounters {
            pending,
            unclaimable: self.metrics.unclaimable_total(),
            disk_full: self.disk_full(),
            in_flight: self.metrics.in_flight.get(),
            delivered: self.metrics.entries_delivered.get(),
            oldest_pending_seconds,
            relay_error: read(&self.metrics.relay_error),
            list_settings_error: read(&self.metrics.list_settings_error),
        });
    }

    async fn worker(
        self: Arc<Self>,
        lease: Arc<dyn HeldSlice>,
        jobs: Arc<Mutex<mpsc::Receiver<EntryName>>>,
        done: mpsc::UnboundedSender<Done>,
    ) {
        let mut session: Option<Session> = None;
        loop {
            let next = jobs.lock().await.recv().await;
            let Some(name) = next else { break };
            let span = tracing::info_span!("entry", entry = %name);
            let result = self.clone().process(lease.as_ref(), &mut session, name).instrument(span).await;
            if done.send(result).is_err() {
                break;
            }
        }
        if let Some(s) = session {
            if !self.stop.aborting() {
                s.quit().await;
            }
        }
    }

    async fn process(self: Arc<Self>, lease: &dyn HeldSlice, session: &mut Option<Session>, name: EntryName) -> Done {
        if self.stop.stopping() || !lease.still_owned() || lease.draining() || self.disk_full() {
            return Done::Handled;
        }
        // Connect before claiming: while the relay is down entries stay plain `.pck`.
        if session.is_none() {
            // Nothing is claimed yet: a stop need not wait for the relay to answer.
            let opened = tokio::select! {
                s = self.open_session() => s,
                _ = self.stop.stopped() => return Done::Handled,
            };
            let error = self.metrics.relay_error.lock().ok().and_then(|e| e.clone());
            lease.report_relay_error(error);
            match opened {
                Some(s) => *session = Some(s),
                None => return Done::RelayDown,
            }
        }
        // The entry's lock is held until it is disposed of: queue operations see it in
        // flight and leave it alone (see `mailqueue_queue::inflight`).
        // Claimed and (unless large) read in one trip to the blocking pool: read
        // through the descriptor the claim opened, never by path again.
        let (me, pck, limit) = (self.clone(), name.clone(), self.out.max_entry_size());
        let claimed = blocking(move || {
            inflight::claim(&me.out, &pck).map(|c| {
                c.map(|c| {
                    let read = (c.size() <= LARGE_ENTRY).then(|| c.read(limit));
                    (c, read)
                })
            })
        });
        let (claimed, read) = match claimed.await {
            Ok(Some(claimed)) => claimed,
            Ok(None) => return Done::Handled,
            Err(e) => {
                self.metrics.claim_failures.inc();
                return Done::Failed { name, reason: e.to_string(), unclaimable: true };
            }
        };
        self.metrics.in_flight.inc();
        // A large entry is held several times over while it is unpickled and flattened:
        // one at a time per process, so memory stays a few times the largest entry
        // whatever the number of connections.
        let read = match read {
            Some(read) => read,
            None => {
                let permit = tokio::select! {
                    p = self.large_entries.acquire() => p.ok(),
                    // Not worked on yet: back to the queue untouched.
                    _ = self.stop.stopped() => {
                        let me = self.clone();
                        let bak = claimed.bak().clone();
                        blocking(move || me.put_back(&bak)).await;
                        drop(claimed);
                        self.metrics.in_flight.dec();
                        return Done::Handled;
                    }
                };
                let (back, read) = blocking(move || {
                    let read = claimed.read(limit);
                    (claimed, read)
                })
                .await;
                let done = self.clone().deliver_claimed(session, name, back, read).await;
                self.metrics.in_flight.dec();
                drop(permit);
                return done;
            }
        };
        let done = self.clone().deliver_claimed(session, name, claimed, read).await;
        self.metrics.in_flight.dec();
        done
    }

    async fn open_session(&self) -> Option<Session> {
        let opened = tokio::select! {
            r = Session::open(&self.smtp) => r,
            _ = self.stop.aborted() => return None,
        };
        match opened {
            Ok(s) => {
                self.metrics.sessions_opened.inc();
                set(&self.metrics.relay_error, None);
                Some(s)
            }
            Err(e) => {
                self.metrics.connect_failures.inc();
                if e.is_protocol() {
                    self.metrics.smtp_protocol_errors.inc();
                }
                set(&self.metrics.relay_error, Some(e.to_string()));
                tracing::warn!(error = %e, "SMTP relay unreachable; entries stay queued");
                None
            }
        }
    }

    /// Delivers a claimed entry and disposes of it; the entry's lock (in `claimed`) is
    /// held until then.
    async fn deliver_claimed(
        self: Arc<Self>,
        session: &mut Option<Session>,
        name: EntryName,
        claimed: Claimed,
        read: mailqueue_queue::Result<QueueEntry>,
    ) -> Done {
        let bak = claimed.bak().clone();
        let entry = match read {
            Ok(e) => e,
            Err(e) if e.is_bad_entry() => {
                let me = self.clone();
                blocking(move || me.set_aside_bad(&bak, &e.to_string())).await;
                return Done::Handled;
            }
            Err(e) => {
                // Not the entry's fault (EIO, EMFILE, a volume's hiccup): back to `.pck`.
                self.metrics.read_errors.inc();
                tracing::warn!(error = %e, "cannot read the claimed entry; put back and retried later");
                let me = self.clone();
                blocking(move || me.put_back(&bak)).await;
                drop(claimed);
                return Done::Failed { name, reason: e.to_string(), unclaimable: false };
            }
        };
        if let Some(after) = retry::not_before(&entry, SystemTime::now()) {
            drop(entry);
            tracing::debug!(deliver_after = after, "not due yet; left queued");
            let me = self.clone();
            blocking(move || me.put_back(&bak)).await;
            return Done::Deferred(name, after);
        }
        // The message model once; the unpickled value it comes from is freed at once.
        let mut entry = entry;
        let message = match entry.take_message() {
            Ok(m) => m,
            Err(e) => {
                let reason = mailqueue_queue::Error::Entry { path: self.out.path_of(&bak), error: e }.to_string();
                let me = self.clone();
                blocking(move || me.set_aside_bad(&bak, &reason)).await;
                return Done::Handled;
            }
        };
        let message_id = message_id_of(&message);
        // The file's bytes are not needed to send: read again from the claimed
        // descriptor if a retry or shunt entry must be written.
        entry.release_bytes();
        let entry = Arc::new(entry);
        let planned = match (&self.mm3_lists, entry.version()) {
            (Some(rest), Version::Mailman3) => mm3_list::plan(&entry, message, rest, &self.policy).await,
            // Reading a 2.1 list's config.pck is file I/O: on the blocking pool.
            (_, Version::Mailman2) => {
                let (me, entry) = (self.clone(), entry.clone());
                blocking(move || match &me.mm2_lists {
                    Some(lists) => mm2_list::plan(&entry, message, lists, &me.policy),
                    None => plan::plan(&entry, message, &me.policy),
                })
                .await
            }
            _ => plan::plan(&entry, message, &self.policy),
        };
        if self.mm3_lists.is_some() && entry.version() == Version::Mailman3 && planned.is_ok() {
            set(&self.metrics.list_settings_error, None);
        }
        let plan = match planned {
            Ok(p) => p,
            Err(PlanError::Unavailable(reason)) => {
                set(&self.metrics.list_settings_error, Some(reason.clone()));
                tracing::warn!(
                    reason,
                    retry_secs = self.list_retry.as_secs(),
                    "list settings unavailable; entry left queued, not sent undecorated"
                );
                self.metrics.list_settings_unavailable.inc();
                let me = self.clone();
                blocking(move || me.put_back(&bak)).await;
                let after = retry::unix_secs(SystemTime::now()) + self.list_retry.as_secs_f64();
                return Done::Deferred(name, after);
            }
            Err(PlanError::Unreproducible(reason)) => {
                let me = self.clone();
                blocking(move || me.shunt(&claimed, &entry, &reason)).await;
                return Done::Handled;
            }
            Err(e @ PlanError::Corrupt(_)) => {
                let me = self.clone();
                blocking(move || me.set_aside_bad(&bak, &e.to_string())).await;
                return Done::Handled;
            }
        };
        for r in &plan.skipped {
            tracing::info!(recipient = %r, "skipping VERP delivery to unqualified recipient, as Mailman 2.1 does");
        }
        if plan.transactions.is_empty() {
            tracing::info!(entry = %bak, message_id = message_id.as_deref().unwrap_or("(none)"), "no recipients; entry finished");
            let me = self.clone();
            blocking(move || me.finish(&bak)).await;
            return Done::Handled;
        }
        let outcome = self.send_all(session, &plan).await;
        let (me, kept) = (self.clone(), entry.clone());
        let (claimed, unwritten) = blocking(move || {
            let unwritten = me.dispose(&claimed, &kept, message_id.as_deref(), &plan, outcome);
            (claimed, unwritten)
        })
        .await;
        if let Some((target, metadata)) = unwritten {
            self.keep_unwritten(Unwritten { claimed, entry, target, metadata });
        }
        Done::Handled
    }

    /// Whether a write failed for lack of space and is still pending.
    pub fn disk_full(&self) -> bool {
        self.metrics.disk_full()
    }

    fn keep_unwritten(&self, u: Unwritten) {
        tracing::error!(entry = %u.claimed.bak(), target = ?u.target, "the queue's filesystem is full: the delivered entry stays claimed with its outcome kept until its follow-up entry can be written; no new claims until then");
        if let Ok(mut list) = self.unwritten.lock() {
            list.push(u);
        }
        self.metrics.set_disk_full(true);
    }

    /// Tries the pending writes again; true when none is left (and claiming resumes).
    fn write_unwritten(&self) -> bool {
        let Ok(mut list) = self.unwritten.lock() else { return false };
        let mut still = Vec::new();
        for u in list.drain(..) {
            let bak = u.claimed.bak().clone();
            let target = match u.target {
                Target::Retry => &self.retry,
                Target::Shunt => &self.shunt,
            };
            let moved = u
                .claimed
                .read_message_pickle(u.entry.message_len())
                .and_then(|pickle| self.out.move_to_with_pickle(&bak, &pickle, &u.entry, &u.metadata, target));
            match moved {
                Ok(new) => {
                    tracing::info!(entry = %bak, new_entry = %new, target = ?u.target, "space again: follow-up entry written")
                }
                Err(e) if e.is_bad_entry() => self.set_aside_bad(&bak, &e.to_string()),
                Err(e) => {
                    tracing::debug!(entry = %bak, error = %e, "follow-up entry still cannot be written");
                    still.push(u);
                }
            }
        }
        *list = still;
        let clear = list.is_empty();
        if clear {
            tracing::info!("the queue's filesystem has space again; claiming resumes");
        }
        self.metrics.set_disk_full(!clear);
        clear
    }

    /// Runs the entry's transactions in order on the worker's session, each copy built
    /// just before its transaction and dropped after it. A hard stop abandons the
    /// transaction in progress (its DATA was not accepted) and the rest.
    async fn send_all(&self, session: &mut Option<Session>, plan: &Plan) -> EntryOutcome {
        let mut outcome = EntryOutcome::default();
        let mut txs = plan.transactions.iter();
        while let Some(tx) = txs.next() {
            let data = match tx.data.get() {
                Ok(d) => d,
                Err(e) => {
                    // Only this copy failed (the first was built when planning): its
                    // recipients go back as an entry of their own, where the same error
                    // sets them aside (shunt or bad) without this entry's other recipients.
                    tracing::error!(error = %e, recipients = tx.rcpts.len(), "cannot build this copy; its recipients are requeued on their own");
                    outcome.not_attempted.extend(tx.rcpts.iter().cloned());
                    continue;
                }
            };
            let sent = tokio::select! {
                o = self.send_one(session, tx, &data) => Some(o),
                _ = self.stop.aborted() => None,
            };
            match sent {
                Some(o) => outcome.add(o),
                None => {
                    // Whatever the relay had of this transaction dies with the session.
                    *session = None;
                    tracing::warn!("shutdown: SMTP transaction aborted before the relay accepted it");
                    outcome.not_attempted.extend(tx.rcpts.iter().cloned());
                    for rest in txs.by_ref() {
                        outcome.not_attempted.extend(rest.rcpts.iter().cloned());
                    }
                }
            }
        }
        outcome
    }

    /// One transaction; if the session turns out dead before the message could have
    /// been accepted (a relay that closed an idle connection), once more on a new one.
    async fn send_one(&self, session: &mut Option<Session>, tx: &Transaction, data: &[u8]) -> TxOutcome {
        let mut last_error = String::new();
        for _attempt in 0..2 {
            if session.is_none() {
                *session = self.open_session().await;
            }
            let Some(s) = session.as_mut() else {
                last_error = "SMTP relay unreachable".into();
                break;
            };
            match s.transaction(&tx.mail_from, &tx.rcpts, data).await {
                Ok(o) => {
                    self.metrics.observe_transaction(o.elapsed);
                    return o;
                }
                Err(broken) => {
                    if matches!(broken, SessionBroken::Protocol(_)) {
                        self.metrics.smtp_protocol_errors.inc();
                    }
                    let maybe_accepted = s.maybe_accepted();
                    *session = None;
                    tracing::warn!(error = %broken, maybe_accepted, "SMTP session lost mid-transaction");
                    last_error = broken.to_string();
                    if maybe_accepted {
                        break;
                    }
                }
            }
        }
        let mut o = TxOutcome::default();
        o.refuse_all(&tx.rcpts, &Refusal::lost_session(&last_error));
        o
    }

    /// Records the outcome: finished, moved to retry, requeued in part. Returns the
    /// follow-up entry that could not be written for lack of space (the `.bak` is then
    /// kept, claimed, for [`Engine::write_unwritten`]).
    fn dispose(
        &self,
        claimed: &Claimed,
        entry: &QueueEntry,
        message_id: Option<&str>,
        plan: &Plan,
        outcome: EntryOutcome,
    ) -> Option<(Target, mailqueue_pickle::Value)> {
        let bak = claimed.bak();
        let m = &self.metrics;
        m.recipients_delivered.inc_by(outcome.delivered.len() as u64);
        m.recipients_temporary.inc_by(outcome.temporary.len() as u64);
        m.recipients_permanent.inc_by(outcome.permanent.len() as u64);
        let sender = plan.transactions.first().map(|t| t.mail_from.as_str()).unwrap_or("");
        self.record_bounces(bak, entry, message_id, sender, &outcome.permanent);
        for (rcpt, r) in &outcome.temporary {
            tracing::info!(recipient = %rcpt, code = r.code, stage = r.stage, reply = %r.message, "temporary failure; will retry");
        }
        let nothing_happened =
            outcome.delivered.is_empty() && outcome.temporary.is_empty() && outcome.permanent.is_empty();
        if nothing_happened {
            self.put_back(bak);
            m.entries_requeued.inc();
            return None;
        }
        if !outcome.not_attempted.is_empty() {
            // Part was sent before the stop: the untried recipients go back to `out` as
            // their own entry, so the sent part is not sent again.
            let metadata = retry::with_recipients(entry, &outcome.not_attempted);
            let requeued = claimed
                .read_message_pickle(entry.message_len())
                .and_then(|pickle| self.out.enqueue(new_entry(entry, &pickle, &metadata)));
            match requeued {
                Ok(new) => {
                    tracing::info!(new_entry = %new, recipients = outcome.not_attempted.len(), "untried recipients requeued")
                }
                Err(e) if e.is_bad_entry() => {
                    let reason = format!(
                        "cannot write its metadata to requeue {} untried recipients: {e}",
                        outcome.not_attempted.len()
                    );
                    self.set_aside_bad(bak, &reason);
                    return None;
                }
                Err(e) => {
                    // Keep the whole entry rather than lose recipients: a duplicate for
                    // the delivered ones is the lesser harm.
                    tracing::error!(error = %e, "cannot requeue untried recipients; putting the whole entry back");
                    self.put_back(bak);
                    return None;
                }
            }
        }
        let failed: Vec<String> = outcome.temporary.iter().map(|(r, _)| r.clone()).collect();
        if failed.is_empty() {
            tracing::info!(recipients = outcome.delivered.len(), transactions = plan.transactions.len(), "delivered");
            self.finish(bak);
            m.entries_delivered.inc();
            return None;
        }
        match retry::decide(entry, &failed, &self.retry_policy, SystemTime::now()) {
            RetryDecision::Retry(metadata) => match claimed
                .read_message_pickle(entry.message_len())
                .and_then(|pickle| self.out.move_to_with_pickle(bak, &pickle, entry, &metadata, &self.retry))
            {
                Ok(new) => {
                    tracing::info!(retry_entry = %new, recipients = failed.len(), "moved to retry");
                    m.entries_retried.inc();
                }
                // Its metadata cannot be written back (a value Mailman's pickler would
                // write but this one does not): it never will be, so it is set aside
                // now rather than left claimed to be redelivered at every recovery.
                Err(e) if e.is_bad_entry() => {
                    let reason = format!(
                        "cannot write its metadata for the retry queue ({} recipients delivered, {} to retry): {e}",
                        outcome.delivered.len(),
                        failed.len()
                    );
                    self.set_aside_bad(bak, &reason);
                }
                Err(e) if e.is_no_space() => return Some((Target::Retry, metadata)),
                Err(e) => tracing::error!(error = %e, "cannot move to retry; the entry stays claimed for recovery"),
            },
            RetryDecision::Expire => {
                tracing::error!(
                    recipients = failed.len(),
                    "discarding message with persistent temporary failures past its retry period"
                );
                self.finish(bak);
                m.entries_expired.inc();
            }
        }
        None
    }

    fn record_bounces(
        &self,
        bak: &EntryName,
        entry: &QueueEntry,
        message_id: Option<&str>,
        sender: &str,
        failures: &[(String, Refusal)],
    ) {
        if failures.is_empty() {
            return;
        }
        let list = entry.list_key();
        let entry_name = bak.with_ext(Ext::Pck).to_string();
        let now = retry::unix_secs(SystemTime::now());
        for (rcpt, r) in failures {
            tracing::warn!(recipient = %rcpt, code = r.code, stage = r.stage, reply = %r.message, "permanent failure recorded as bounce");
            self.bounces.record(&Bounce {
                time_unix: now,
                queue: self.out.name(),
                entry: &entry_name,
                list: list.as_deref(),
                message_id,
                envelope_sender: sender,
                recipient: rcpt,
                code: r.code,
                stage: r.stage,
                reply: &r.message,
            });
        }
    }

    fn finish(&self, bak: &EntryName) {
        if let Err(e) = self.out.finish(bak) {
            tracing::error!(error = %e, "cannot remove the finished entry");
        }
    }

    /// `.bak` back to `.pck`, untouched: the entry was not worked on.
    fn put_back(&self, bak: &EntryName) {
        if let Err(e) = self.out.put_back(bak) {
            tracing::error!(error = %e, "cannot put the entry back; it stays claimed for recovery");
        }
    }

    fn set_aside_bad(&self, bak: &EntryName, reason: &str) {
        self.metrics.entries_bad.inc();
        if let Err(e) = self.out.preserve(bak, reason) {
            tracing::error!(error = %e, reason, "cannot preserve the broken entry in bad/");
        }
    }

    /// Mailman's shunt: the entry, with `whichq` naming where it came from, for an
    /// admin to look at and `unshunt`.
    fn shunt(&self, claimed: &Claimed, entry: &QueueEntry, reason: &str) {
        let bak = claimed.bak();
        self.metrics.entries_shunted.inc();
        let metadata =
            with_field(entry.metadata(), entry.version(), "whichq", version_str(entry.version(), self.out.name()));
        let moved = claimed
            .read_message_pickle(entry.message_len())
            .and_then(|pickle| self.out.move_to_with_pickle(bak, &pickle, entry, &metadata, &self.shunt));
        match moved {
            Ok(new) => tracing::warn!(shunt_entry = %new, reason, "set aside in shunt/"),
            Err(e) if e.is_bad_entry() => {
                self.set_aside_bad(bak, &format!("{reason}; cannot write its metadata for shunt/: {e}"));
            }
            Err(e) => tracing::error!(error = %e, reason, "cannot shunt the entry; it stays claimed for recovery"),
        }
    }
}

/// True when the relay was down.
/// Records a problem for the heartbeat (a poisoned lock only loses the report).
fn set(slot: &std::sync::Mutex<Option<String>>, value: Option<String>) {
    if let Ok(mut current) = slot.lock() {
        *current = value;
    }
}

fn note(done: Done, deferred: &mut HashMap<EntryName, f64>, troubled: &mut HashMap<EntryName, Trouble>) -> bool {
    match done {
        Done::Handled => false,
        Done::Deferred(name, after) => {
            deferred.insert(name, after);
            false
        }
        Done::RelayDown => true,
        Done::Failed { name, reason, unclaimable } => {
            let now = Instant::now();
            match troubled.get_mut(&name) {
                // Once per entry: a name that keeps failing is not logged again.
                None => {
                    if unclaimable {
                        tracing::warn!(entry = %name, reason, retry_secs = FIRST_ENTRY_BACKOFF.as_secs(), "cannot claim entry; left queued and retried with a growing delay (logged once)");
                    }
                    troubled.insert(
                        name,
                        Trouble { until: now + FIRST_ENTRY_BACKOFF, delay: FIRST_ENTRY_BACKOFF, unclaimable },
                    );
                }
                Some(t) => {
                    t.delay = (t.delay * 2).min(MAX_ENTRY_BACKOFF);
                    t.until = now + t.delay;
                    t.unclaimable = unclaimable;
                }
            }
            false
        }
    }
}

/// Runs blocking file work on the runtime's blocking pool, never on its async workers
/// (a slow or hung filesystem call must not stall SMTP sessions or the stop signal).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("a blocking file operation was cancelled: {e}"),
    }
}

/// The message's Message-ID header, for logs and bounce records.
fn message_id_of(m: &mailqueue_message::Message) -> Option<String> {
    m.headers.iter().find(|(n, _)| n.to_string_lossy().eq_ignore_ascii_case("message-id")).and_then(|(_, v)| match v {
        mailqueue_message::HeaderValue::Text(t) => Some(t.to_string_lossy().trim().to_owned()),
        mailqueue_message::HeaderValue::Header(_) => None,
    })
}

fn new_entry<'a>(
    entry: &'a QueueEntry,
    message_pickle: &'a [u8],
    metadata: &'a mailqueue_pickle::Value,
) -> NewEntry<'a> {
    NewEntry { message_pickle, metadata, version: entry.version(), text: entry.is_text() }
}
