//! From a Mailman 3 entry and its list's settings (`crate::lists::mm3`) to the SMTP
//! transactions Mailman 3's `deliver()` makes: one decorated copy for everyone
//! (`BulkDelivery`), or one copy per recipient (`Deliver`: VERP, duplicate flag,
//! personalized decoration, full personalization's `To`). Personalized copies are built
//! as their transactions are sent (`plan::Data::Lazy`).
use super::chunk;
use super::plan::{self, Data, Plan, PlanError, Policy, Transaction};
use crate::lists::mm3::{List, Mm3Rest, Personalize, Site};
use crate::lists::ListError;
use futures::{StreamExt, TryStreamExt};
use mailqueue_message::py3::decorate::{self, Decoration, MemberVars};
use mailqueue_message::py3::{personalize, verp};
use mailqueue_message::{Message, Version};
use mailqueue_pickle::Value;
use mailqueue_queue::entry::QueueEntry;
use std::sync::Arc;

/// Member lookups in flight at once for one entry.
const LOOKUPS_AT_ONCE: usize = 8;

/// The plan for a Mailman 3 entry of a list; entries without a list id (site mail) are
/// planned as before.
pub async fn plan(entry: &QueueEntry, message: Message, rest: &Mm3Rest, policy: &Policy) -> Result<Plan, PlanError> {
    let meta = entry.metadata();
    let Some(list_id) = entry.list_key() else { return plan::plan(entry, message, policy) };
    let recipients = entry.recipients()?;
    if recipients.is_empty() {
        return Ok(Plan::default());
    }
    let site = rest.site().await?;
    let list = rest.list(&list_id, &site).await?;
    if site.arc_enabled {
        return Err(PlanError::Unreproducible(
            "the site signs outgoing mail with ARC ([ARC] enabled), which the runner does not do".into(),
        ));
    }
    let verp = wants_verp(meta, &list, &site);
    let sender = match meta.get("sender").and_then(Value::as_text) {
        Some(s) => s,
        None => list.bounces_address.clone(),
    };
    let templates = Templates::new(&list, meta)?;
    if !verp && list.personalize == Personalize::None {
        let mut m = message;
        templates.decorate(&mut m, &list, None)?;
        let data = Arc::new(flatten(&m)?);
        let limit = policy.rcpt_limit.unwrap_or(site.max_recipients);
        let transactions = chunk::chunk(&recipients, limit, Version::Mailman3)
            .into_iter()
            .map(|rcpts| Transaction { mail_from: sender.clone(), rcpts, data: data.clone().into() })
            .collect();
        return Ok(Plan { transactions, skipped: Vec::new() });
    }
    let dups = add_dup_header(meta);
    // Member data only changes the copies when the templates use it; the lookups for
    // a big list then run a few at a time.
    let needs_member = !templates.skip && templates.uses_member_variables(&list);
    let full = list.personalize == Personalize::Full;
    let list_id = list_id.as_str();
    // Per recipient: the member (when the templates need it), and for full
    // personalization the user owning the address (`None` inside: no user).
    let lookups: Vec<(String, Option<MemberVars>, Option<Option<String>>)> = futures::stream::iter(recipients)
        .map(|rcpt| async move {
            let member = if needs_member { rest.member(list_id, &rcpt).await? } else { None };
            let user = if full { Some(rest.user_display_name(&rcpt).await?) } else { None };
            Ok::<_, ListError>((rcpt, member, user))
        })
        .buffered(LOOKUPS_AT_ONCE)
        .try_collect()
        .await?;
    // Without member data or personal `To`, copies differ only by the duplicate flag:
    // those two are flattened once each and shared.
    let personal = needs_member || full;
    let copies = Arc::new(Copies { message, templates, list });
    let mut shared: [Option<Arc<Vec<u8>>>; 2] = [None, None];
    let mut plan = Plan::default();
    for (rcpt, member, user) in lookups {
        let dup = dups.contains(&rcpt);
        let list = &copies.list;
        let mail_from =
            if verp { verp::verp_sender(&site.verp_format, &list.vars, &sender, &rcpt) } else { sender.clone() };
        let rcpts = vec![rcpt.clone()];
        let copy = PersonalCopy { rcpt, dup, member, user };
        let data = if !personal {
            let data = match &shared[usize::from(dup)] {
                Some(data) => data.clone(),
                None => Arc::new(copies.build(&copy)?),
            };
            shared[usize::from(dup)] = Some(data.clone());
            Data::Ready(data)
        } else if plan.transactions.is_empty() {
            // The first copy now: a message that cannot be decorated or flattened at all is
            // found before anything is sent.
            Data::Ready(Arc::new(copies.build(&copy)?))
        } else {
            // Built just before its transaction and dropped after it: a big list's copies
            // are never all in memory.
            let copies = copies.clone();
            Data::Lazy(Arc::new(move || copies.build(&copy)))
        };
        plan.transactions.push(Transaction { mail_from, rcpts, data });
    }
    Ok(plan)
}

/// What every copy of one entry is made from.
struct Copies {
    message: Message,
    templates: Templates,
    list: List,
}

/// One recipient's copy: what differs from the others.
struct PersonalCopy {
    rcpt: String,
    /// The recipient asked to know when a copy reached them twice.
    dup: bool,
    /// The member, when the templates use member variables.
    member: Option<MemberVars>,
    /// Full personalization: the display name of the user owning the address (`None`
    /// inside: no user).
    user: Option<Option<String>>,
}

impl Copies {
    /// `Deliver`'s steps for one recipient, in its order.
    fn build(&self, copy: &PersonalCopy) -> Result<Vec<u8>, PlanError> {
        let mut m = self.message.clone();
        personalize::avoid_duplicates(&mut m, copy.dup);
        self.templates.decorate(&mut m, &self.list, copy.member.as_ref().map(|mm| (mm, copy.rcpt.as_str())))?;
        if let Some(user) = &copy.user {
            personalize::personalize_to(&mut m, user.as_deref(), &copy.rcpt).map_err(decorate_error)?;
        }
        flatten(&m)
    }
}

/// The out-runner's choice: the metadata's `verp` if set; else personalized lists
/// follow `verp_personalized_deliveries`, others `verp_delivery_interval`.
fn wants_verp(meta: &Value, list: &List, site: &Site) -> bool {
    if let Some(v) = meta.get("verp") {
        return v.is_truthy();
    }
    if list.personalize != Personalize::None {
        return site.verp_personalized_deliveries;
    }
    match site.verp_delivery_interval {
        0 => false,
        1 => true,
        n => list.post_id.checked_rem(n) == Some(0),
    }
}

/// The header and footer templates and what decorating with them needs.
struct Templates {
    /// The entry is not decorated (`nodecorate`: already done before a retry; digests).
    skip: bool,
    /// `decoration-data` from the metadata.
    extra: Vec<(String, String)>,
}

impl Templates {
    fn new(list: &List, meta: &Value) -> Result<Templates, PlanError> {
        let skip = ["isdigest", "nodecorate"].iter().any(|k| meta.get(k).is_some_and(Value::is_truthy));
        let extra = match meta.get("decoration-data") {
            None | Some(Value::None) => Vec::new(),
            Some(Value::Dict(d)) => d
                .iter()
                .map(|(k, v)| match (k.as_text(), v.as_text()) {
                    (Some(k), Some(v)) => Ok((k, v)),
                    _ => Err(PlanError::Unreproducible(
                        "metadata 'decoration-data' holds values that are not text".into(),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(PlanError::Unreproducible("metadata 'decoration-data' is not a dict".into())),
        };
        // Enabled archivers offer `$<name>_url`, a permalink the runner cannot compute.
        for name in &list.archivers {
            let var = format!("{name}_url");
            if list.header.contains(&var) || list.footer.contains(&var) {
                return Err(PlanError::Unreproducible(format!(
                    "list {}: a template uses ${var}, the {name} archive permalink, which the runner cannot compute",
                    list.vars.list_id
                )));
            }
        }
        Ok(Templates { skip, extra })
    }

    /// Whether the header or footer refers to a member variable.
    fn uses_member_variables(&self, list: &List) -> bool {
        [&list.header, &list.footer]
            .iter()
            .flat_map(|t| decorate::template_names(t))
            .any(|n| decorate::MEMBER_VARIABLES.contains(&n.as_str()))
    }

    fn decorate(&self, msg: &mut Message, list: &List, member: Option<(&MemberVars, &str)>) -> Result<(), PlanError> {
        if self.skip {
            return Ok(());
        }
        let vars = decorate::substitutions(&list.vars, member, &self.extra).map_err(decorate_error)?;
        let d = Decoration {
            header: decorate::expand_decoration(&list.header, &vars),
            footer: decorate::expand_decoration(&list.footer, &vars),
            list_charset: list.charset.clone(),
        };
        decorate::decorate(msg, &d).map_err(decorate_error)
    }
}

fn flatten(m: &Message) -> Result<Vec<u8>, PlanError> {
    mailqueue_message::py3::delivery_bytes(m).map_err(|e| PlanError::Corrupt(e.into()))
}

fn decorate_error(e: decorate::DecorateError) -> PlanError {
    PlanError::Unreproducible(e.to_string())
}

/// Mailman 3 keeps `add-dup-header` as a set of addresses.
fn add_dup_header(meta: &Value) -> Vec<String> {
    match meta.get("add-dup-header") {
        Some(Value::Set(v) | Value::List(v) | Value::FrozenSet(v) | Value::Tuple(v)) => {
            v.iter().filter_map(Value::as_text).collect()
        }
        Some(Value::Dict(d)) => d.iter().filter_map(|(k, _)| k.as_text()).collect(),
        _ => Vec::new(),
    }
}
