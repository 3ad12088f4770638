//! Mailman 3's `handlers/decorate.py`: the list's header and footer templates expanded
//! (`string.Template.safe_substitute` over the list's and member's variables) and put
//! around the message: in the text of a text/plain body, as parts of a
//! multipart/mixed, or by wrapping anything else in a new multipart/mixed.

use super::codec_names;
use super::params;
use super::pystr;
use super::transfer::{self, BodyCharset, CodecProblem, Decoded};
use super::COMPAT32;
use crate::model::{Charset, HeaderValue, Message, Payload, Text};
use std::collections::BTreeMap;

/// Why a message cannot be decorated or personalized exactly as Mailman 3 would: the
/// entry is then set aside with this reason, never sent otherwise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecorateError {
    /// A character set Python knows that this emulation does not carry.
    #[error("cannot decorate as Mailman 3 would: character set {0:?} is not supported")]
    UnsupportedCharset(String),
    /// Python would raise `UnicodeError`.
    #[error("cannot decorate as Mailman 3 would: text that does not fit its character set")]
    Unencodable,
    /// A message shape Mailman handles in a way this emulation does not reproduce.
    #[error("cannot decorate as Mailman 3 would: {0}")]
    Shape(String),
    /// A member's address or display name Python would refuse or encode otherwise.
    #[error("cannot personalize as Mailman 3 would: {0}")]
    Member(String),
}

fn unsupported(what: impl Into<String>) -> DecorateError {
    DecorateError::Shape(what.into())
}

impl From<CodecProblem> for DecorateError {
    fn from(p: CodecProblem) -> Self {
        match p {
            CodecProblem::Unsupported(name) => DecorateError::UnsupportedCharset(name),
            CodecProblem::Unicode => DecorateError::Unencodable,
        }
    }
}

/// The list's side of the template variables (`expand()` and `decorate_template()`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListVars {
    pub fqdn_listname: String,
    pub list_name: String,
    pub mail_host: String,
    pub list_id: String,
    pub display_name: String,
    pub description: String,
    pub info: String,
    pub request_address: String,
    pub owner_address: String,
    /// The list's preferred language code.
    pub language: String,
    /// `[mailman] site_owner`.
    pub site_owner: String,
    /// The domain's base URL, when it has one.
    pub base_url: Option<String>,
    /// `[urlpatterns]` in configuration order (name, `$`-pattern).
    pub urlpatterns: Vec<(String, String)>,
}

/// One member, for personalized decoration (`msgdata['member']`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberVars {
    /// The subscribed address's display name (`_address.display_name`).
    pub address_display_name: Option<String>,
    /// `_address.email` (lower case).
    pub email: String,
    /// `_address.original_email` (case kept).
    pub original_email: String,
    /// `member.display_name`: the subscriber's, else its user's, else empty.
    pub display_name: String,
    /// The description of the member's preferred language (`English (USA)`).
    pub language_description: String,
}

/// Everything `$name` can stand for in a header or footer, in the order Mailman builds
/// it (later entries win). `extra` is `decoration-data` and archiver URLs.
pub fn substitutions(
    list: &ListVars,
    member: Option<(&MemberVars, &str)>,
    extra: &[(String, String)],
) -> Result<BTreeMap<String, String>, DecorateError> {
    let mut s = list_substitutions(list);
    let mut decorate: Vec<(String, String)> = vec![
        ("fqdn_listname".into(), list.fqdn_listname.clone()),
        ("list_name".into(), list.list_name.clone()),
        ("mail_host".into(), list.mail_host.clone()),
        ("display_name".into(), list.display_name.clone()),
        ("request_address".into(), list.request_address.clone()),
        ("description".into(), list.description.clone()),
        ("info".into(), list.info.clone()),
    ];
    if let Some((m, recipient)) = member {
        let name_or = if m.display_name.is_empty() { recipient.to_owned() } else { m.display_name.clone() };
        decorate.extend([
            ("member".into(), super::personalize::formataddr(m.address_display_name.as_deref(), &m.email)?),
            ("user_email".into(), recipient.to_owned()),
            ("user_delivered_to".into(), m.original_email.clone()),
            ("user_language".into(), m.language_description.clone()),
            ("user_name".into(), m.display_name.clone()),
            ("user_name_or_email".into(), name_or.clone()),
            ("user_name_or_address".into(), name_or),
            ("user_address".into(), recipient.to_owned()),
        ]);
    }
    decorate.extend(extra.iter().cloned());
    s.extend(decorate);
    Ok(s)
}

/// `expand(template, mlist)`'s own variables (also what `[mta] verp_format` sees).
pub fn list_substitutions(list: &ListVars) -> BTreeMap<String, String> {
    let mut s = BTreeMap::new();
    s.insert("site_email".to_owned(), list.site_owner.clone());
    for (k, v) in [
        ("listname", &list.fqdn_listname),
        ("list_id", &list.list_id),
        ("display_name", &list.display_name),
        ("short_listname", &list.list_name),
        ("domain", &list.mail_host),
        ("description", &list.description),
        ("info", &list.info),
        ("request_email", &list.request_address),
        ("owner_email", &list.owner_address),
        ("language", &list.language),
    ] {
        s.insert(k.to_owned(), v.clone());
    }
    if let Some(base) = &list.base_url {
        s.insert("base_url".to_owned(), base.clone());
        for (key, pattern) in &list.urlpatterns {
            let url = safe_substitute(pattern, &s);
            s.insert(format!("{key}_url"), url);
        }
    }
    s
}

/// `string.Template(template).safe_substitute(vars)`: `$$` is `$`, unknown names and
/// stray `$` stay as they are.
pub fn safe_substitute(template: &str, vars: &BTreeMap<String, String>) -> String {
    substitute(template, |name| vars.get(name).cloned())
}

/// The variable names a template refers to (`$name`, `${name}`).
pub fn template_names(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    substitute(template, |name| {
        names.push(name.to_owned());
        None
    });
    names
}

/// The variables member-personalized decoration adds (`process()` with a member).
pub const MEMBER_VARIABLES: [&str; 8] = [
    "member",
    "user_email",
    "user_delivered_to",
    "user_language",
    "user_name",
    "user_name_or_email",
    "user_name_or_address",
    "user_address",
];

/// `Template.safe_substitute` with a lookup function.
fn substitute(template: &str, mut lookup: impl FnMut(&str) -> Option<String>) -> String {
    let ident_len = |s: &str| -> usize {
        let b = s.as_bytes();
        match b.first() {
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                1 + b[1..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count()
            }
            _ => 0,
        }
    };
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let n = ident_len(after);
        if n > 0 {
            let name = &after[..n];
            match lookup(name) {
                Some(v) => out.push_str(&v),
                None => out.push_str(&rest[pos..pos + 1 + n]),
            }
            rest = &after[n..];
            continue;
        }
        if let Some(inner) = after.strip_prefix('{') {
            let n = ident_len(inner);
            if n > 0 && inner[n..].starts_with('}') {
                match lookup(&inner[..n]) {
                    Some(v) => out.push_str(&v),
                    None => out.push_str(&rest[pos..pos + 3 + n]),
                }
                rest = &inner[n + 1..];
                continue;
            }
        }
        out.push('$');
        rest = after;
    }
    out.push_str(rest);
    out
}

/// `decorate_template`: the expanded text, empty when only whitespace, CRLF made LF.
pub fn expand_decoration(template: &str, vars: &BTreeMap<String, String>) -> String {
    let text = safe_substitute(template, vars);
    if pystr::strip(&text).is_empty() {
        return String::new();
    }
    text.replace("\r\n", "\n")
}

/// The expanded header and footer, and the list's character set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoration {
    pub header: String,
    pub footer: String,
    /// The charset of the list's preferred language.
    pub list_charset: String,
}

/// `process()` after the templates are expanded: decorates `msg` in place.
pub fn decorate(msg: &mut Message, d: &Decoration) -> Result<(), DecorateError> {
    if d.header.is_empty() && d.footer.is_empty() {
        return Ok(());
    }
    let ctype = params::content_type(msg);
    let is_multipart = matches!(msg.payload, Payload::Parts(_));
    if !is_multipart && ctype == "text/plain" {
        if decorate_text(msg, d)? {
            return Ok(());
        }
    } else if ctype == "multipart/mixed" {
        let Payload::Parts(parts) = &mut msg.payload else {
            return Err(unsupported("a multipart/mixed message whose body was never split into parts"));
        };
        if !d.footer.is_empty() {
            parts.push(mime_text(&d.footer, &d.list_charset)?);
        }
        if !d.header.is_empty() {
            parts.insert(0, mime_text(&d.header, &d.list_charset)?);
        }
        return Ok(());
    }
    wrap(msg, d)
}

/// The text/plain case. `Ok(false)`: the body could not be decoded, so the caller wraps.
fn decorate_text(msg: &mut Message, d: &Decoration) -> Result<bool, DecorateError> {
    let mcset = content_charset(msg)?.filter(|c| !c.is_empty()).unwrap_or_else(|| "us-ascii".to_owned());
    let format_param = get_param(msg, "format")?;
    let delsp = get_param(msg, "delsp")?;
    let cte = first(msg, "content-transfer-encoding").cloned();
    let payload = match &msg.payload {
        Payload::Text(Text::Str(s)) => s.clone(),
        _ => return Err(unsupported("a text/plain part without a text body")),
    };
    let cte_name = match &cte {
        None => String::new(),
        Some(HeaderValue::Text(t)) => t.to_string_lossy().to_lowercase(),
        Some(HeaderValue::Header(_)) => return Err(unsupported("a Content-Transfer-Encoding held as a Header object")),
    };
    let raw = match transfer::payload_bytes(&payload, &cte_name) {
        Decoded::Bytes(b) => b,
        Decoded::Unsupported(what) => return Err(unsupported(what)),
    };
    // Mailman's failure path: the original Content-Transfer-Encoding is put back, at
    // the end, and the message is wrapped.
    let give_up = |msg: &mut Message| {
        if let Some(v) = &cte {
            remove(msg, "content-transfer-encoding");
            msg.headers.push((Text::from("Content-Transfer-Encoding"), v.clone()));
        }
        Ok(false)
    };
    let Some(mcodec) = lookup(&mcset)? else { return give_up(msg) };
    let old = match transfer::decode(&raw, mcodec) {
        Ok(s) => s,
        Err(CodecProblem::Unicode) => return give_up(msg),
        Err(e) => return Err(e.into()),
    };
    remove(msg, "content-transfer-encoding");
    let frontsep = if !d.header.is_empty() && !d.header.ends_with('\n') { "\n" } else { "" };
    let endsep = if !d.footer.is_empty() && !old.ends_with('\n') { "\n" } else { "" };
    let text = format!("{}{frontsep}{old}{endsep}{}", d.header, d.footer);
    for cset in [d.list_charset.as_str(), mcset.as_str(), "utf-8"] {
        let Some(codec) = lookup(cset)? else { return give_up(msg) };
        let bytes = match transfer::encode(&text, codec) {
            Ok(b) => b,
            Err(CodecProblem::Unicode) => continue,
            Err(e) => return Err(e.into()),
        };
        set_payload(msg, &bytes, &transfer::body_charset(cset)?)?;
        if let Some(f) = format_param.filter(|f| !f.is_empty()) {
            set_param(msg, "format", &f)?;
        }
        if let Some(ds) = delsp.filter(|d| !d.is_empty()) {
            set_param(msg, "delsp", &ds)?;
        }
        return Ok(true);
    }
    Err(unsupported("the decorated text fits none of the list's, the message's or utf-8"))
}

/// Python's codec lookup: `None` when Python has no such text encoding (it raises
/// `LookupError`); an error when it has one this emulation does not carry.
fn lookup(name: &str) -> Result<Option<transfer::Codec>, DecorateError> {
    match transfer::codec(name) {
        Ok(c) => Ok(Some(c)),
        Err(_) if !codec_names::python_knows(name) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Wraps the message: a copy keeping only its Content-* headers becomes the middle part
/// of a new multipart/mixed, between the header and footer parts.
fn wrap(msg: &mut Message, d: &Decoration) -> Result<(), DecorateError> {
    let mut inner = msg.clone();
    inner.headers.retain(|(n, _)| n.to_string_lossy().to_lowercase().starts_with("content-"));
    let mut parts = vec![inner];
    if !d.header.is_empty() {
        parts.insert(0, mime_text(&d.header, &d.list_charset)?);
    }
    if !d.footer.is_empty() {
        parts.push(mime_text(&d.footer, &d.list_charset)?);
    }
    msg.payload = Payload::Parts(parts);
    for h in ["content-type", "content-transfer-encoding", "content-disposition"] {
        remove(msg, h);
    }
    msg.headers.push((Text::from("Content-Type"), HeaderValue::Text(Text::from("multipart/mixed"))));
    Ok(())
}

/// `MIMEText(text.encode(lcset, errors='replace'), 'plain', lcset)` with
/// `Content-Disposition: inline`.
fn mime_text(text: &str, lcset: &str) -> Result<Message, DecorateError> {
    let bytes = transfer::encode_replace(text, transfer::codec(lcset)?);
    let cs = transfer::body_charset(lcset)?;
    let mut m = Message::new("email.mime.text.MIMEText", "text/plain");
    m.policy = Some(COMPAT32.to_owned());
    m.headers.push((
        Text::from("Content-Type"),
        HeaderValue::Text(Text::from(format!("text/plain; charset=\"{lcset}\"").as_str())),
    ));
    m.headers.push((Text::from("MIME-Version"), HeaderValue::Text(Text::from("1.0"))));
    set_payload(&mut m, &bytes, &cs)?;
    m.headers.push((Text::from("Content-Disposition"), HeaderValue::Text(Text::from("inline"))));
    Ok(m)
}

/// `set_payload(bytes, charset)` on a part without `Content-Transfer-Encoding`.
fn set_payload(msg: &mut Message, bytes: &[u8], cs: &BodyCharset) -> Result<(), DecorateError> {
    let (payload, cte) = transfer::body_encode(bytes, cs);
    msg.payload = Payload::Text(Text::Str(payload));
    msg.charset = Some(model_charset(cs));
    if first(msg, "mime-version").is_none() {
        msg.headers.push((Text::from("MIME-Version"), HeaderValue::Text(Text::from("1.0"))));
    }
    if first(msg, "content-type").is_none() {
        let ct = format!("text/plain; charset=\"{}\"", cs.name);
        msg.headers.push((Text::from("Content-Type"), HeaderValue::Text(Text::from(ct.as_str()))));
    } else {
        set_param(msg, "charset", &cs.name)?;
    }
    msg.headers.push((Text::from("Content-Transfer-Encoding"), HeaderValue::Text(Text::from(cte))));
    Ok(())
}

fn model_charset(cs: &BodyCharset) -> Charset {
    let body = match cs.encoding {
        transfer::BodyEncoding::SevenOrEight => None,
        transfer::BodyEncoding::QuotedPrintable => Some(1),
        transfer::BodyEncoding::Base64 => Some(2),
    };
    Charset {
        input_charset: cs.name.clone(),
        output_charset: Some(cs.name.clone()),
        header_encoding: cs.header_encoding,
        body_encoding: body,
        input_codec: cs.codec.clone(),
        output_codec: cs.codec.clone(),
    }
}

/// `set_param(param, value)` on `Content-Type`: appended when absent, otherwise every
/// parameter is re-formatted (quoted); the field moves to the end only if its text
/// changed.
fn set_param(msg: &mut Message, param: &str, value: &str) -> Result<(), DecorateError> {
    let current = match first(msg, "content-type") {
        None => None,
        Some(HeaderValue::Text(t)) => Some(t.to_string_lossy()),
        Some(HeaderValue::Header(_)) => return Err(unsupported("a Content-Type held as a Header object")),
    };
    let has = get_param(msg, param)?.is_some_and(|v| !v.is_empty());
    let new = if !has {
        let ctype = current.clone().unwrap_or_else(|| "text/plain".to_owned());
        format!("{ctype}; {}", format_param(param, value)?)
    } else {
        let params = params::content_type_params(msg).unwrap_or_default();
        let mut out = Vec::with_capacity(params.len());
        for (k, v) in params {
            let v = v.ok_or_else(|| unsupported("an RFC 2231 parameter in Content-Type"))?;
            out.push(if k.eq_ignore_ascii_case(param) { format_param(param, value)? } else { format_param(&k, &v)? });
        }
        out.join("; ")
    };
    if current.as_deref() != Some(new.as_str()) {
        remove(msg, "content-type");
        msg.headers.push((Text::from("Content-Type"), HeaderValue::Text(Text::from(new.as_str()))));
    }
    Ok(())
}

/// `_formatparam(param, value, quote=True)`.
fn format_param(param: &str, value: &str) -> Result<String, DecorateError> {
    if value.is_empty() {
        return Ok(param.to_owned());
    }
    if !value.is_ascii() {
        return Err(unsupported("a non-ASCII Content-Type parameter (RFC 2231 encoding)"));
    }
    Ok(format!("{param}=\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\"")))
}

/// `get_param(name)` on `Content-Type`, unquoted.
fn get_param(msg: &Message, name: &str) -> Result<Option<String>, DecorateError> {
    let Some(params) = params::content_type_params(msg) else { return Ok(None) };
    match params.into_iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
        None => Ok(None),
        Some((_, Some(v))) => Ok(Some(v)),
        Some((_, None)) => Err(unsupported(format!("an RFC 2231 {name} parameter"))),
    }
}

/// `get_content_charset()`: lower-cased, `None` when absent or not ASCII.
fn content_charset(msg: &Message) -> Result<Option<String>, DecorateError> {
    Ok(get_param(msg, "charset")?.filter(|c| c.is_ascii()).map(|c| c.to_lowercase()))
}

fn first<'a>(msg: &'a Message, name: &str) -> Option<&'a HeaderValue> {
    msg.headers.iter().find(|(n, _)| params::name_is(n, name)).map(|(_, v)| v)
}

/// `del msg[name]`: every field of that name.
pub(crate) fn remove(msg: &mut Message, name: &str) {
    msg.headers.retain(|(n, _)| !params::name_is(n, name));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn safe_substitute_like_python() {
        let v = vars(&[("a", "1"), ("b_c", "2")]);
        assert_eq!(safe_substitute("$a ${b_c} $$5 $x ${y} $ $1 ${a", &v), "1 2 $5 $x ${y} $ $1 ${a");
        assert_eq!(safe_substitute("$ab", &v), "$ab");
    }

    #[test]
    fn names_a_template_uses() {
        assert_eq!(template_names("$a ${b} $$c $ $1 ${d"), vec!["a".to_owned(), "b".to_owned()]);
    }

    #[test]
    fn whitespace_only_templates_give_nothing() {
        assert_eq!(expand_decoration(" \n\t", &BTreeMap::new()), "");
        assert_eq!(expand_decoration("a\r\nb", &BTreeMap::new()), "a\nb");
    }
}
