//! From a Mailman 2.1 entry and its list's config.pck (`crate::lists::mm2`) to the SMTP
//! transactions 2.1's `SMTPDirect.process` makes: one decorated copy in chunks
//! (`bulkdeliver`), or, when the entry asks for VERP or the list personalizes, one
//! decorated copy per recipient (`verpdeliver`: VERP sender, personalized variables,
//! full personalization's `To`, duplicate flag); `Errors-To` and `Sender` in every one.
//! Per-recipient copies are built as their transactions are sent (`plan::Data::Lazy`).
use super::chunk;
use super::plan::{self, Data, Plan, PlanError, Policy, Transaction, VerpMode};
use crate::lists::mm2::{List, Mm2Lists, Site};
use mailqueue_message::py2::decorate::{self, Decoration, Vars};
use mailqueue_message::{Message, Text, Version};
use mailqueue_pickle::Value;
use mailqueue_queue::entry::QueueEntry;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

/// The plan for a Mailman 2.1 entry of a list; entries without a list name are
/// planned as before.
pub fn plan(entry: &QueueEntry, message: Message, lists: &Mm2Lists, policy: &Policy) -> Result<Plan, PlanError> {
    let meta = entry.metadata();
    let Some(listname) = entry.list_key() else { return plan::plan(entry, message, policy) };
    let recipients = entry.recipients()?;
    if recipients.is_empty() {
        return Ok(Plan::default());
    }
    if let Some(r) = recipients.iter().find(|r| !r.is_ascii()) {
        return Err(unreproducible(format!("recipient {r:?} is not ASCII")));
    }
    if meta.get("undelivered").is_some() {
        return Err(unreproducible("the entry carries 'undelivered' chunks from an interrupted 2.1 delivery"));
    }
    let list = lists.list(&listname)?;
    let site = lists.site();
    let envsender = match meta.get("envsender").and_then(Value::as_text) {
        Some(s) => s,
        None => list.bounces_address(),
    };
    let verp = match policy.verp {
        VerpMode::Metadata => meta.get("verp").is_some_and(Value::is_truthy),
        VerpMode::Always => true,
        VerpMode::Never => false,
    };
    let personalize_ok = meta.get("personalize").is_none_or(Value::is_truthy);
    let d = Decorator::new(list.clone(), site, meta)?;
    let sender_name =
        list.include_sender_header.then(|| py2_str(&list.real_name, "the list's real_name")).transpose()?;
    if !(personalize_ok && (verp || list.personalize != 0)) {
        let mut m = message;
        if !meta.get("decorated").is_some_and(Value::is_truthy) {
            let personal = meta.get("personalize").is_some_and(Value::is_truthy);
            let member = match (personal, recipients.as_slice()) {
                (false, _) => None,
                (true, [only]) => Some(only.as_str()),
                (true, _) => {
                    return Err(unreproducible("metadata 'personalize' with several recipients (Mailman asserts one)"))
                }
            };
            d.decorate(&mut m, member)?;
        }
        decorate::errors_to_and_sender(&mut m, &envsender, sender_name.as_deref());
        let data = Arc::new(flatten(&m)?);
        let limit = policy.rcpt_limit.unwrap_or(usize::try_from(site.SMTP_MAX_RCPTS).unwrap_or(0));
        let transactions = chunk::chunk(&recipients, limit, Version::Mailman2)
            .into_iter()
            .map(|rcpts| Transaction { mail_from: envsender.clone(), rcpts, data: data.clone().into() })
            .collect();
        return Ok(Plan { transactions, skipped: Vec::new() });
    }
    let dups = add_dup_header(meta);
    let copies =
        Arc::new(Copies { message, decorator: d, rcpt_header: site.RCPT_BASE64_HEADER_NAME.clone(), sender_name });
    let mut plan = Plan::default();
    // Chunks are popped from the end of the list.
    for rcpt in recipients.into_iter().rev() {
        let mail_from = if verp {
            match decorate::verp_sender(&site.VERP_FORMAT, &envsender, &rcpt).map_err(decorate_error)? {
                Some(s) => s,
                None => {
                    plan.skipped.push(rcpt);
                    continue;
                }
            }
        } else {
            envsender.clone()
        };
        let to = if list.personalize == 2 {
            let lc = rcpt.to_lowercase();
            let name = list.member_cp_address(&lc).and_then(|_| list.member_name(&lc));
            Some((name, site.charset(&list.member_language(&lc, site))?.to_owned()))
        } else {
            None
        };
        let copy = PersonalCopy { dup: dups.contains(&rcpt), rcpt, mail_from, to };
        let tx = (copy.mail_from.clone(), vec![copy.rcpt.clone()]);
        // Each copy is built just before its transaction and dropped after it, so a big
        // list's copies are never all in memory. The first is built now: a message that
        // cannot be decorated or flattened at all is found before anything is sent.
        let data = if plan.transactions.is_empty() {
            Data::Ready(Arc::new(copies.build(&copy)?))
        } else {
            let copies = copies.clone();
            Data::Lazy(Arc::new(move || copies.build(&copy)))
        };
        plan.transactions.push(Transaction { mail_from: tx.0, rcpts: tx.1, data });
    }
    Ok(plan)
}

/// What every personalized copy of one entry is made from.
struct Copies {
    message: Message,
    decorator: Decorator,
    /// `RCPT_BASE64_HEADER_NAME` (empty: none).
    rcpt_header: String,
    /// The list's real name for `Sender`, when the list includes it.
    sender_name: Option<Vec<u8>>,
}

/// One recipient's copy: what differs from the others.
struct PersonalCopy {
    rcpt: String,
    mail_from: String,
    /// The recipient asked to know when a copy reached them twice.
    dup: bool,
    /// Full personalization: the member's name and its charset for `To`.
    to: Option<(Option<Text>, String)>,
}

impl Copies {
    /// `verpdeliver`'s steps for one recipient, in its order.
    fn build(&self, copy: &PersonalCopy) -> Result<Vec<u8>, PlanError> {
        let mut m = self.message.clone();
        self.decorator.decorate(&mut m, Some(&copy.rcpt))?;
        if let Some((name, charset)) = &copy.to {
            decorate::personalize_to(&mut m, name.as_ref(), charset, &copy.rcpt).map_err(decorate_error)?;
        }
        decorate::avoid_duplicates(&mut m, copy.dup);
        if !self.rcpt_header.is_empty() {
            decorate::recipient_header(&mut m, &self.rcpt_header, &copy.rcpt);
        }
        decorate::errors_to_and_sender(&mut m, &copy.mail_from, self.sender_name.as_deref());
        flatten(&m)
    }
}

/// What `Decorate.process` needs besides the message and the recipient.
struct Decorator {
    list: Arc<List>,
    /// Owned: copies are built after the planning, when the site settings lent to it are
    /// no longer at hand.
    site: Site,
    /// `isdigest` / `nodecorate`: no decoration.
    skip: bool,
    list_vars: Vars,
    /// `decoration-data` from the metadata.
    extra: Vars,
    list_charset: String,
}

impl Decorator {
    fn new(list: Arc<List>, site: &Site, meta: &Value) -> Result<Self, PlanError> {
        let skip = ["isdigest", "nodecorate"].iter().any(|k| meta.get(k).is_some_and(Value::is_truthy));
        let mut list_vars = Vars::new();
        for (k, v) in [
            ("real_name", &list.real_name),
            ("host_name", &list.host_name),
            ("web_page_url", &list.web_page_url),
            ("description", &list.description),
            ("info", &list.info),
        ] {
            list_vars.insert(k.to_owned(), py2_str(v, &format!("the list's {k}"))?);
        }
        list_vars.insert("list_name".to_owned(), list.name.as_bytes().to_vec());
        list_vars.insert("_internal_name".to_owned(), list.name.as_bytes().to_vec());
        list_vars.insert("cgiext".to_owned(), site.CGIEXT.as_bytes().to_vec());
        let extra = match meta.get("decoration-data") {
            None | Some(Value::None) => Vars::new(),
            Some(Value::Dict(d)) => d
                .iter()
                .map(|(k, v)| match (k.as_text(), v) {
                    (Some(k), Value::Bytes(b)) => Ok((k, b.clone())),
                    _ => Err(unreproducible("metadata 'decoration-data' holds values that are not byte strings")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(unreproducible("metadata 'decoration-data' is not a dict")),
        };
        let list_charset = site.charset(&list.preferred_language)?.to_owned();
        Ok(Decorator { list, site: site.clone(), skip, list_vars, extra, list_charset })
    }

    fn decorate(&self, msg: &mut Message, member: Option<&str>) -> Result<(), PlanError> {
        if self.skip {
            return Ok(());
        }
        let mut vars = self.list_vars.clone();
        if let Some(m) = member {
            vars.extend(self.member_vars(m)?);
        }
        vars.extend(self.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut header_t = py2_str(&self.list.msg_header, "the list's msg_header")?;
        let mut footer_t = py2_str(&self.list.msg_footer, "the list's msg_footer")?;
        if self.list.use_dollar_strings {
            header_t = decorate::dollar_to_percent(&header_t);
            footer_t = decorate::dollar_to_percent(&footer_t);
        }
        let d = Decoration {
            header: decorate::expand(&header_t, &vars).map_err(decorate_error)?,
            footer: decorate::expand(&footer_t, &vars).map_err(decorate_error)?,
            list_charset: self.list_charset.clone(),
        };
        decorate::decorate(msg, &d, random_token()).map_err(decorate_error)
    }

    /// The personalized variables, filled in Mailman's order: a step that finds the
    /// address is not a member (or has no password) ends the filling there.
    fn member_vars(&self, recipient: &str) -> Result<Vars, PlanError> {
        let lc = recipient.to_lowercase();
        let mut v = Vars::new();
        v.insert("user_address".into(), lc.as_bytes().to_vec());
        let Some(cp) = self.list.member_cp_address(&lc) else { return Ok(v) };
        v.insert("user_delivered_to".into(), py2_str(&cp, "a member address")?);
        let Some(password) = self.list.member_password(&lc) else { return Ok(v) };
        v.insert("user_password".into(), py2_str(&password, "a member password")?);
        let lang = self.list.member_language(&lc, &self.site);
        v.insert("user_language".into(), lang.as_bytes().to_vec());
        let charset = self.site.charset(&lang)?;
        let name = user_name(self.list.member_name(&lc).as_ref(), charset).map_err(unreproducible)?;
        v.insert("user_name".into(), name.unwrap_or_else(|| lc.as_bytes().to_vec()));
        v.insert("user_optionsurl".into(), options_url(&self.list, &self.site.CGIEXT, &lc)?);
        Ok(v)
    }
}

/// `username.encode(charset)` in Python 2: `None` where Mailman falls back to the
/// address (no name, or one the charset cannot hold).
fn user_name(name: Option<&Text>, charset: &str) -> Result<Option<Vec<u8>>, String> {
    let Some(name) = name.filter(|n| !n.is_empty()) else { return Ok(None) };
    match name {
        // `str.encode` first decodes as ASCII.
        Text::Bytes(b) => Ok(b.is_ascii().then(|| b.clone())),
        Text::Str(s) => {
            let cps: Vec<u32> = s.code_points().collect();
            if cps.iter().all(|&c| c < 0x80) {
                return Ok(Some(cps.iter().map(|&c| c as u8).collect()));
            }
            match charset.to_ascii_lowercase().as_str() {
                "us-ascii" => Ok(None),
                "iso-8859-1" => Ok(cps.iter().map(|&c| u8::try_from(c).ok()).collect()),
                "utf-8" if !s.has_surrogates() => Ok(Some(s.to_string_lossy().into_bytes())),
                other => Err(format!("a member name in character set {other:?} is not carried")),
            }
        }
    }
}

/// `GetOptionsURL(member)`: `ScriptURL('options')` (absolute unless the list's URL has
/// no path, as a qrunner has no request URI) `/<list>/` and the quoted address.
fn options_url(list: &List, cgiext: &str, lc: &str) -> Result<Vec<u8>, PlanError> {
    let base = py2_str(&list.web_page_url, "the list's web_page_url")?;
    let path = match base.windows(3).position(|w| w == b"://") {
        Some(i) => base[i + 3..].iter().position(|&c| c == b'/').map_or(&[][..], |p| &base[i + 3 + p..]),
        None => &base[..],
    };
    let script = if path.is_empty() { b"options".to_vec() } else { [base.as_slice(), b"options"].concat() };
    Ok([
        script.as_slice(),
        cgiext.as_bytes(),
        b"/",
        list.name.as_bytes(),
        b"/",
        decorate::url_quote(lc.as_bytes()).as_bytes(),
    ]
    .concat())
}

/// A Python 2 string as a byte string: `unicode` only when ASCII (mixing non-ASCII
/// unicode into `%` changes the result's type, which is not emulated).
fn py2_str(t: &Text, what: &str) -> Result<Vec<u8>, PlanError> {
    match t {
        Text::Bytes(b) => Ok(b.clone()),
        Text::Str(s) if s.as_wtf8().is_ascii() => Ok(s.as_wtf8().to_vec()),
        Text::Str(_) => Err(unreproducible(format!("{what} is a non-ASCII unicode string"))),
    }
}

/// The random number Python's generator would put into an invented boundary.
fn random_token() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

fn flatten(m: &Message) -> Result<Vec<u8>, PlanError> {
    mailqueue_message::py2::flatten(m).map_err(|e| PlanError::Corrupt(e.into()))
}

fn unreproducible(why: impl Into<String>) -> PlanError {
    PlanError::Unreproducible(why.into())
}

fn decorate_error(e: decorate::DecorateError) -> PlanError {
    PlanError::Unreproducible(e.to_string())
}

/// 2.1 keeps `add-dup-header` as a dict (address -> True).
fn add_dup_header(meta: &Value) -> Vec<String> {
    match meta.get("add-dup-header") {
        Some(Value::Dict(d)) => d.iter().filter_map(|(k, _)| k.as_text()).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailqueue_pickle::PyStr;

    #[test]
    fn user_name_encodes_as_python_2_does() {
        let uni = |s: &str| Text::Str(PyStr::from(s));
        assert_eq!(
            user_name(Some(&uni("Dave \u{d8}deg\u{e5}rd")), "iso-8859-1"),
            Ok(Some(b"Dave \xd8deg\xe5rd".to_vec()))
        );
        assert_eq!(user_name(Some(&uni("Dave \u{d8}deg\u{e5}rd")), "us-ascii"), Ok(None));
        assert_eq!(user_name(Some(&uni("Frank \u{201c}T\u{201d}")), "iso-8859-1"), Ok(None));
        assert_eq!(user_name(Some(&uni("Erin")), "us-ascii"), Ok(Some(b"Erin".to_vec())));
        // A byte string is decoded as ASCII first.
        assert_eq!(user_name(Some(&Text::Bytes(b"Z\xf6e".to_vec())), "iso-8859-1"), Ok(None));
        assert_eq!(user_name(None, "us-ascii"), Ok(None));
        assert!(user_name(Some(&uni("\u{4e2d}")), "euc-jp").is_err());
    }
}
