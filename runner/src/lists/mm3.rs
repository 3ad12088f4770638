//! A Mailman 3 site's list settings, read from its REST API (`--mailman-rest`) and its
//! template files, cached for a bounded time. When the API cannot be reached, answers
//! come from the cache up to a day old (`--mailman-rest-max-stale`; logged and
//! counted); with nothing usable cached the caller is told to try later.
use super::ListError;
use crate::metrics::Metrics;
use mailqueue_contract::duration;
use mailqueue_message::py3::decorate::{ListVars, MemberVars};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The template names delivery decorates with.
pub const HEADER: &str = "list:member:regular:header";
pub const FOOTER: &str = "list:member:regular:footer";

/// How to reach the API and where Mailman's own templates are.
#[derive(Clone, Debug)]
pub struct RestConfig {
    /// The API root, e.g. `http://localhost:8001/3.1`.
    pub root: String,
    pub user: String,
    pub password: String,
    /// How long an answer is used before it is asked for again.
    pub cache_ttl: Duration,
    /// How old an answer may be and still stand in while the API is down; older ones
    /// are dropped.
    pub max_stale: Duration,
    pub timeout: Duration,
    /// Mailman's built-in templates (`mailman/templates` in the installed package).
    pub builtin_templates: PathBuf,
    /// The site's `$template_dir` (`var/templates`), searched first, if any.
    pub site_templates: Option<PathBuf>,
}

/// `mlist.personalize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Personalize {
    None,
    Individual,
    Full,
}

/// The site settings delivery reads (`[mailman]`, `[mta]`, `[ARC]`).
#[derive(Clone, Debug)]
pub struct Site {
    pub site_owner: String,
    pub default_language: String,
    pub verp_delivery_interval: u64,
    pub verp_personalized_deliveries: bool,
    pub verp_format: String,
    pub max_recipients: usize,
    pub arc_enabled: bool,
    pub urlpatterns: Vec<(String, String)>,
}

/// One list as delivery needs it.
#[derive(Clone, Debug)]
pub struct List {
    pub vars: ListVars,
    pub personalize: Personalize,
    pub bounces_address: String,
    pub post_id: u64,
    /// The charset of the list's preferred language.
    pub charset: String,
    /// Raw header and footer templates (before expansion).
    pub header: String,
    pub footer: String,
    /// Archivers enabled for the list (each offers `$<name>_url` to templates).
    pub archivers: Vec<String>,
}

/// How many cached answers between sweeps of the too old ones.
const SWEEP_EVERY: usize = 1024;

/// The REST client with its cache.
pub struct Mm3Rest {
    config: RestConfig,
    client: reqwest::Client,
    cache: Mutex<HashMap<String, Cached>>,
    /// Whether the last request failed to reach the API (to log changes once).
    down: AtomicBool,
    metrics: Arc<Metrics>,
}

#[derive(Clone)]
struct Cached {
    fetched: Instant,
    /// `None`: the API answered 404.
    body: Option<Json>,
}

impl Mm3Rest {
    pub fn new(config: RestConfig, metrics: Arc<Metrics>) -> Result<Mm3Rest, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(config.timeout).build()?;
        Ok(Mm3Rest { config, client, cache: Mutex::new(HashMap::new()), down: AtomicBool::new(false), metrics })
    }

    /// `[mailman]`, `[mta]`, `[ARC]` and `[urlpatterns]`.
    pub async fn site(&self) -> Result<Site, ListError> {
        let mailman = self.require("system/configuration/mailman").await?;
        let mta = self.require("system/configuration/mta").await?;
        let arc = self.get("system/configuration/ARC").await?;
        let patterns = self.require("system/configuration/urlpatterns").await?;
        let number = |v: &Json, key: &str| -> Result<u64, ListError> {
            text(v, key)
                .trim()
                .parse()
                .map_err(|_| unreproducible(format!("[mta] {key} is not a number: {:?}", text(v, key))))
        };
        Ok(Site {
            site_owner: text(&mailman, "site_owner"),
            default_language: text(&mailman, "default_language"),
            verp_delivery_interval: number(&mta, "verp_delivery_interval")?,
            verp_personalized_deliveries: as_boolean(&text(&mta, "verp_personalized_deliveries")),
            verp_format: text(&mta, "verp_format"),
            max_recipients: usize::try_from(number(&mta, "max_recipients")?).unwrap_or(usize::MAX),
            arc_enabled: arc.as_ref().is_some_and(|a| as_boolean(&text(a, "enabled"))),
            // In name order (the API's JSON object); Mailman's own patterns use only
            // list variables, so the order they are expanded in does not matter.
            urlpatterns: patterns
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(k, _)| !matches!(k.as_str(), "self_link" | "http_etag"))
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// The list's variables, personalization, language charset and templates.
    pub async fn list(&self, list_id: &str, site: &Site) -> Result<List, ListError> {
        let config = self
            .get(&format!("lists/{list_id}/config"))
            .await?
            .ok_or_else(|| unreproducible(format!("list {list_id} does not exist on the Mailman 3 site")))?;
        let mail_host = text(&config, "mail_host");
        let language = text(&config, "preferred_language");
        let domain = self.get(&format!("domains/{mail_host}")).await?;
        let lang = self.language(&language).await?;
        let personalize = match text(&config, "personalize").as_str() {
            "none" => Personalize::None,
            "individual" => Personalize::Individual,
            "full" => Personalize::Full,
            other => return Err(unreproducible(format!("list {list_id}: unknown personalize setting {other:?}"))),
        };
        let vars = ListVars {
            fqdn_listname: text(&config, "fqdn_listname"),
            list_name: text(&config, "list_name"),
            mail_host: mail_host.clone(),
            list_id: list_id.to_owned(),
            display_name: py_str(&config, "display_name"),
            description: py_str(&config, "description"),
            info: py_str(&config, "info"),
            request_address: text(&config, "request_address"),
            owner_address: text(&config, "owner_address"),
            language: language.clone(),
            site_owner: site.site_owner.clone(),
            base_url: domain.as_ref().and_then(|d| d.get("base_url")).and_then(Json::as_str).map(str::to_owned),
            urlpatterns: site.urlpatterns.clone(),
        };
        let archivers = self
            .get(&format!("lists/{list_id}/archivers"))
            .await?
            .and_then(|a| a.as_object().cloned())
            .map(|o| o.into_iter().filter(|(_, on)| on.as_bool() == Some(true)).map(|(k, _)| k).collect())
            .unwrap_or_default();
        let header = self.template(HEADER, &vars, site).await?;
        let footer = self.template(FOOTER, &vars, site).await?;
        Ok(List {
            personalize,
            bounces_address: text(&config, "bounces_address"),
            post_id: config.get("post_id").and_then(Json::as_u64).unwrap_or(0),
            charset: lang.1,
            header,
            footer,
            archivers,
            vars,
        })
    }

    /// The list's member with this address (`mlist.members.get_member`), if any.
    pub async fn member(&self, list_id: &str, email: &str) -> Result<Option<MemberVars>, ListError> {
        let Some(member) = self.get(&format!("lists/{list_id}/member/{email}")).await? else { return Ok(None) };
        let member_id = text(&member, "member_id");
        let address_email = link_tail(&member, "address").unwrap_or_else(|| email.to_owned());
        let address = self
            .get(&format!("addresses/{address_email}"))
            .await?
            .ok_or_else(|| unreproducible(format!("member {email} of {list_id}: its address is unknown to the API")))?;
        let prefs = self
            .get(&format!("members/{member_id}/all/preferences"))
            .await?
            .ok_or_else(|| unreproducible(format!("member {email} of {list_id}: no preferences")))?;
        let (description, _) = self.language(&text(&prefs, "preferred_language")).await?;
        Ok(Some(MemberVars {
            address_display_name: address.get("display_name").and_then(Json::as_str).map(str::to_owned),
            email: text(&address, "email"),
            original_email: text(&address, "original_email"),
            display_name: text(&member, "display_name"),
            language_description: description,
        }))
    }

    /// The display name of the user owning `email` (`user_manager.get_user`): `None`
    /// when no user owns it, `""` for a user without one.
    pub async fn user_display_name(&self, email: &str) -> Result<Option<String>, ListError> {
        Ok(self.get(&format!("addresses/{email}/user")).await?.map(|u| text(&u, "display_name")))
    }

    /// A language's (description, charset).
    async fn language(&self, code: &str) -> Result<(String, String), ListError> {
        let l = self
            .get(&format!("system/configuration/language.{code}"))
            .await?
            .ok_or_else(|| unreproducible(format!("language {code:?} is not configured on the site")))?;
        Ok((text(&l, "description"), text(&l, "charset")))
    }

    /// `TemplateLoader.get(name, mlist)`: the list's, the domain's, then the site's URI;
    /// else Mailman's template files.
    async fn template(&self, name: &str, list: &ListVars, site: &Site) -> Result<String, ListError> {
        let contexts =
            [format!("lists/{}/uris", list.list_id), format!("domains/{}/uris", list.mail_host), "uris".to_owned()];
        for context in &contexts {
            let Some(uris) = self.get(context).await? else { continue };
            let entry = uris
                .get("entries")
                .and_then(Json::as_array)
                .and_then(|e| e.iter().find(|e| e.get("name").and_then(Json::as_str) == Some(name)));
            if let Some(entry) = entry {
                return self.fetch_template(&text(entry, "uri"), entry, list).await;
            }
        }
        find_template_file(&self.config, name, list, &site.default_language)
    }

    async fn fetch_template(&self, uri: &str, entry: &Json, list: &ListVars) -> Result<String, ListError> {
        let mut vars = std::collections::BTreeMap::new();
        vars.insert("site_email".to_owned(), list.site_owner.clone());
        vars.insert("list_id".to_owned(), list.list_id.clone());
        vars.insert("listname".to_owned(), list.fqdn_listname.clone());
        vars.insert("domain_name".to_owned(), list.mail_host.clone());
        vars.insert("language".to_owned(), list.language.clone());
        let uri = mailqueue_message::py3::decorate::safe_substitute(uri, &vars);
        if let Some(path) = uri.strip_prefix("file://") {
            return std::fs::read_to_string(path)
                .map_err(|e| unreproducible(format!("template {uri} of list {} cannot be read: {e}", list.list_id)));
        }
        if uri.starts_with("http://") || uri.starts_with("https://") {
            let auth = entry
                .get("username")
                .and_then(Json::as_str)
                .map(|u| (u.to_owned(), entry.get("password").and_then(Json::as_str).map(str::to_owned)));
            return self.fetch_remote_template(&uri, auth).await;
        }
        Err(unreproducible(format!(
            "template URI {uri} of list {}: only file://, http:// and https:// are read",
            list.list_id
        )))
    }

    /// A template served over HTTP; 404 is an empty template, as in Mailman.
    async fn fetch_remote_template(
        &self,
        uri: &str,
        auth: Option<(String, Option<String>)>,
    ) -> Result<String, ListError> {
        let key = format!("template {uri}");
        if let Some(fresh) = self.cached(&key, false) {
            return Ok(fresh.body.and_then(|b| b.as_str().map(str::to_owned)).unwrap_or_default());
        }
        let mut req = self.client.get(uri);
        if let Some((user, pass)) = auth {
            req = req.basic_auth(user, pass);
        }
        let result = match req.send().await {
            Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => Ok(None),
            Ok(r) if r.status().is_success() => {
                r.text().await.map(|t| Some(Json::String(t))).map_err(|e| e.to_string())
            }
            Ok(r) => Err(format!("HTTP {}", r.status())),
            Err(e) => Err(e.to_string()),
        };
        let body = self.settle(&key, result)?;
        Ok(body.and_then(|b| b.as_str().map(str::to_owned)).unwrap_or_default())
    }

    async fn require(&self, path: &str) -> Result<Json, ListError> {
        self.get(path).await?.ok_or_else(|| unreproducible(format!("the Mailman 3 API has no {path}")))
    }

    /// `GET <root>/<path>`: `Ok(None)` for 404. Fresh answers come from the cache.
    async fn get(&self, path: &str) -> Result<Option<Json>, ListError> {
        if let Some(fresh) = self.cached(path, false) {
            return Ok(fresh.body);
        }
        let url = format!("{}/{path}", self.config.root);
        let sent = self.client.get(&url).basic_auth(&self.config.user, Some(&self.config.password)).send().await;
        let result = match sent {
            Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => Ok(None),
            Ok(r) if r.status().is_success() => r.json::<Json>().await.map(Some).map_err(|e| format!("{url}: {e}")),
            Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => Err(format!(
                "{url}: the API refused the credentials (HTTP 401); check --mailman-rest-user and the password"
            )),
            Ok(r) => Err(format!("{url}: HTTP {}", r.status())),
            Err(e) => Err(format!("{url}: {e}")),
        };
        self.settle(path, result)
    }

    /// Records a fresh answer, or falls back to the cache when the API failed.
    fn settle(&self, key: &str, result: Result<Option<Json>, String>) -> Result<Option<Json>, ListError> {
        match result {
            Ok(body) => {
                if self.down.swap(false, Relaxed) {
                    tracing::info!(api = %self.config.root, "Mailman 3 REST API reachable again");
                }
                if let Ok(mut c) = self.cache.lock() {
                    c.insert(key.to_owned(), Cached { fetched: Instant::now(), body: body.clone() });
                    // Answers nobody asked for again (members who left, lists
                    // removed) go once they are too old to stand in.
                    if c.len() % SWEEP_EVERY == 0 {
                        c.retain(|_, v| v.fetched.elapsed() < self.config.max_stale);
                    }
                }
                Ok(body)
            }
            Err(problem) => {
                if !self.down.swap(true, Relaxed) {
                    tracing::warn!(api = %self.config.root, error = %problem, "Mailman 3 REST API unreachable; delivering from cached list settings where there are any");
                }
                match self.cached(key, true) {
                    Some(stale) => {
                        self.metrics.list_settings_stale.inc();
                        tracing::debug!(key, age_secs = stale.fetched.elapsed().as_secs(), "using cached answer");
                        Ok(stale.body)
                    }
                    None => Err(ListError::Unavailable(problem)),
                }
            }
        }
    }

    /// The cached answer for `key` if it is fresh (or at any age with `stale_ok`).
    fn cached(&self, key: &str, stale_ok: bool) -> Option<Cached> {
        let c = self.cache.lock().ok()?;
        let hit = c.get(key)?;
        let age = hit.fetched.elapsed();
        (age < self.config.cache_ttl || stale_ok && age < self.config.max_stale).then(|| hit.clone())
    }
}

/// Mailman's template search (`utilities/i18n.py` `search`): for each language (the
/// list's, the site default, English), the site's list, domain and site directories,
/// then the built-in ones; `list:member:regular:footer` falls back to the generic
/// footer as in `ALT_TEMPLATE_NAMES`.
fn find_template_file(
    config: &RestConfig,
    name: &str,
    list: &ListVars,
    default_language: &str,
) -> Result<String, ListError> {
    let mut files = vec![format!("{name}.txt")];
    if name == FOOTER {
        files.push("list:member:generic:footer.txt".to_owned());
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(site) = &config.site_templates {
        dirs.push(site.join("lists").join(&list.list_id));
        dirs.push(site.join("lists").join(&list.fqdn_listname));
        dirs.push(site.join("domains").join(&list.mail_host));
        dirs.push(site.join("site"));
    }
    dirs.push(config.builtin_templates.clone());
    let languages = [list.language.as_str(), default_language, "en"];
    for file in &files {
        for lang in languages {
            for dir in &dirs {
                if let Some(text) = read_if_present(&dir.join(lang).join(file))? {
                    return Ok(text);
                }
            }
        }
    }
    Err(unreproducible(format!(
        "no template {name} for list {} in {} (is --mailman-templates Mailman's templates directory?)",
        list.list_id,
        config.builtin_templates.display()
    )))
}

fn read_if_present(path: &Path) -> Result<Option<String>, ListError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(unreproducible(format!("template {} cannot be read: {e}", path.display()))),
    }
}

fn unreproducible(why: String) -> ListError {
    ListError::Unreproducible(why)
}

/// A string field ("" when absent or not a string).
fn text(v: &Json, key: &str) -> String {
    v.get(key).and_then(Json::as_str).unwrap_or("").to_owned()
}

/// A list attribute as `safe_substitute` writes it: `None` (JSON null) is `"None"`.
fn py_str(v: &Json, key: &str) -> String {
    match v.get(key) {
        Some(Json::Null) => "None".to_owned(),
        _ => text(v, key),
    }
}

/// The last path segment of a link field (`.../addresses/<email>`).
fn link_tail(v: &Json, key: &str) -> Option<String> {
    v.get(key).and_then(Json::as_str).and_then(|l| l.rsplit('/').next()).map(str::to_owned)
}

/// Mailman's `as_boolean`.
fn as_boolean(v: &str) -> bool {
    matches!(v.trim().to_lowercase().as_str(), "yes" | "true" | "on" | "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_templates_fall_back_to_the_generic_footer_and_english() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("en")).unwrap();
        std::fs::create_dir_all(dir.path().join("fr")).unwrap();
        std::fs::write(dir.path().join("en/list:member:generic:footer.txt"), "en footer").unwrap();
        std::fs::write(dir.path().join("fr/list:member:generic:footer.txt"), "fr footer").unwrap();
        std::fs::write(dir.path().join("en/list:member:regular:header.txt"), "").unwrap();
        let config = RestConfig {
            root: String::new(),
            user: String::new(),
            password: String::new(),
            cache_ttl: Duration::ZERO,
            max_stale: Duration::ZERO,
            timeout: Duration::ZERO,
            builtin_templates: dir.path().to_owned(),
            site_templates: None,
        };
        let mut list = ListVars { language: "fr".into(), ..ListVars::default() };
        assert_eq!(find_template_file(&config, FOOTER, &list, "en").unwrap(), "fr footer");
        assert_eq!(find_template_file(&config, HEADER, &list, "en").unwrap(), "");
        list.language = "de".into();
        assert_eq!(find_template_file(&config, FOOTER, &list, "en").unwrap(), "en footer");
    }
}

/// `run` options for Mailman 3 list settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Mm3Args {
    /// Mailman 3 REST API root (e.g. http://localhost:8001/3.1): decorate, personalize
    /// and VERP Mailman 3 list mail as Mailman does. Without it, Mailman 3 entries are
    /// sent as they are queued.
    #[arg(long, value_name = "URL")]
    pub mailman_rest: Option<String>,
    #[arg(long, value_name = "USER", default_value = "restadmin")]
    pub mailman_rest_user: String,
    /// File holding the REST user (a mounted Secret key); wins over --mailman-rest-user.
    #[arg(long, value_name = "FILE")]
    pub mailman_rest_user_file: Option<PathBuf>,
    /// File holding the REST password (else $MQ_MAILMAN_REST_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub mailman_rest_password_file: Option<PathBuf>,
    #[arg(long, env = "MQ_MAILMAN_REST_PASSWORD", hide_env_values = true)]
    pub mailman_rest_password: Option<String>,
    /// Mailman's built-in templates directory (`mailman/templates` of the installed
    /// package): the header and footer a list without its own use.
    #[arg(long, value_name = "DIR")]
    pub mailman_templates: Option<PathBuf>,
    /// The site's `$template_dir` (`var/templates`), searched before the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub mailman_site_templates: Option<PathBuf>,
    /// How long an answer from the API is reused before it is asked again.
    #[arg(long, alias = "mailman-rest-cache-secs", value_name = "DUR", value_parser = duration::parse, default_value = "5m")]
    pub mailman_rest_cache: Duration,
    /// How long a cached answer may stand in while the API is down.
    #[arg(long, alias = "mailman-rest-max-stale-secs", value_name = "DUR", value_parser = duration::parse, default_value = "1d")]
    pub mailman_rest_max_stale: Duration,
    /// How long an entry waits when its list's settings cannot be had (API down,
    /// nothing cached).
    #[arg(long, alias = "mailman-rest-retry-secs", value_name = "DUR", value_parser = duration::parse, default_value = "1m")]
    pub mailman_rest_retry: Duration,
}

impl Mm3Args {
    /// The client, if `--mailman-rest` is given.
    pub fn client(&self, metrics: Arc<Metrics>) -> anyhow::Result<Option<Arc<Mm3Rest>>> {
        use anyhow::Context;
        let Some(url) = &self.mailman_rest else { return Ok(None) };
        let password = match (&self.mailman_rest_password_file, &self.mailman_rest_password) {
            (Some(file), _) => std::fs::read_to_string(file)
                .with_context(|| format!("reading the Mailman REST password from {}", file.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
            (None, Some(p)) => p.clone(),
            (None, None) => anyhow::bail!(
                "--mailman-rest needs a password: --mailman-rest-password-file FILE or $MQ_MAILMAN_REST_PASSWORD"
            ),
        };
        let user = match &self.mailman_rest_user_file {
            Some(file) => std::fs::read_to_string(file)
                .with_context(|| format!("reading the Mailman REST user from {}", file.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
            None => self.mailman_rest_user.clone(),
        };
        let builtin = self.mailman_templates.clone().context(
            "--mailman-rest needs --mailman-templates DIR: Mailman's built-in templates (site-packages/mailman/templates)",
        )?;
        if !builtin.join("en").is_dir() {
            anyhow::bail!(
                "--mailman-templates {}: no en/ inside; expected Mailman's templates directory",
                builtin.display()
            );
        }
        let mut root = url.trim_end_matches('/').to_owned();
        if !(root.ends_with("/3.1") || root.ends_with("/3.0")) {
            root.push_str("/3.1");
        }
        let config = RestConfig {
            root,
            user,
            password,
            cache_ttl: self.mailman_rest_cache,
            max_stale: self.mailman_rest_max_stale.max(self.mailman_rest_cache),
            timeout: Duration::from_secs(10),
            builtin_templates: builtin,
            site_templates: self.mailman_site_templates.clone(),
        };
        Ok(Some(Arc::new(Mm3Rest::new(config, metrics).context("building the Mailman REST client")?)))
    }
}
