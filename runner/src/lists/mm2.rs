//! Mailman 2.1 list settings: each list's `lists/<name>/config.pck` (the pickled
//! `MailList` attributes, beside `qfiles/`), read with the project's pickle reader and
//! read again when the file changes; and the site's `mm_cfg` values delivery needs,
//! from a JSON file (`--mailman2-site`).
use super::ListError;
use mailqueue_message::Text;
use mailqueue_pickle::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The `mm_cfg` settings 2.1's delivery reads, named as in `mm_cfg.py`.
/// Other keys (a manifest's full `mm_cfg` dump) are ignored.
#[derive(Clone, Debug, serde::Deserialize)]
#[allow(non_snake_case)]
pub struct Site {
    pub CGIEXT: String,
    pub VERP_FORMAT: String,
    /// Recipients per transaction; 0 or less: all in one.
    pub SMTP_MAX_RCPTS: i64,
    /// A header carrying each personalized copy's recipient in base64 ("" for none).
    #[serde(default)]
    pub RCPT_BASE64_HEADER_NAME: String,
    /// Every language the site has (`LC_DESCRIPTIONS`): code -> charset.
    pub LC_CHARSETS: BTreeMap<String, String>,
    pub DEFAULT_SERVER_LANGUAGE: String,
}

impl Site {
    pub fn load(path: &Path) -> anyhow::Result<Site> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the Mailman 2.1 site settings {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: expected a JSON object with CGIEXT, VERP_FORMAT, SMTP_MAX_RCPTS, LC_CHARSETS, DEFAULT_SERVER_LANGUAGE (mm_cfg values)",
                path.display()
            )
        })
    }

    /// `Utils.GetCharSet(lang)`.
    pub fn charset(&self, lang: &str) -> Result<&str, ListError> {
        self.LC_CHARSETS.get(lang).map(String::as_str).ok_or_else(|| {
            ListError::Unreproducible(format!("language {lang:?} is not in the site's LC_CHARSETS (--mailman2-site)"))
        })
    }
}

/// One list's configuration, as delivery needs it.
#[derive(Clone, Debug)]
pub struct List {
    /// `internal_name()`: the directory name.
    pub name: String,
    pub real_name: Text,
    pub host_name: Text,
    pub web_page_url: Text,
    pub description: Text,
    pub info: Text,
    pub msg_header: Text,
    pub msg_footer: Text,
    pub include_sender_header: bool,
    pub personalize: i64,
    pub preferred_language: String,
    pub available_languages: Vec<String>,
    /// `use_dollar_strings` (2.1.x lists that have it may use `$name` templates).
    pub use_dollar_strings: bool,
    members: HashMap<String, Value>,
    digest_members: HashMap<String, Value>,
    passwords: HashMap<String, Value>,
    language: HashMap<String, Value>,
    usernames: HashMap<String, Value>,
}

impl List {
    fn from_value(name: &str, v: &Value) -> Result<List, String> {
        let Value::Dict(items) = v else { return Err("the pickle is not a dict".into()) };
        let get = |k: &str| mailqueue_pickle::value::dict_get(items, k);
        let text = |k: &str| match get(k) {
            Some(Value::Bytes(b)) => Ok(Text::Bytes(b.clone())),
            Some(Value::Str(s)) => Ok(Text::Str(s.clone())),
            Some(_) => Err(format!("attribute {k} is not a string")),
            None => Err(format!("attribute {k} is missing")),
        };
        let int = |k: &str| match get(k) {
            Some(Value::Int(i)) => Ok(*i),
            Some(Value::Bool(b)) => Ok(i64::from(*b)),
            _ => Err(format!("attribute {k} is missing or not a number")),
        };
        let string = |k: &str| text(k).map(|t| t.to_string_lossy());
        let dict = |k: &str| -> Result<HashMap<String, Value>, String> {
            match get(k) {
                None => Ok(HashMap::new()),
                Some(Value::Dict(d)) => Ok(d.iter().filter_map(|(k, v)| Some((k.as_text()?, v.clone()))).collect()),
                Some(_) => Err(format!("attribute {k} is not a dict")),
            }
        };
        let available_languages = match get("available_languages") {
            Some(Value::List(l)) => l.iter().filter_map(Value::as_text).collect(),
            _ => Vec::new(),
        };
        Ok(List {
            name: name.to_owned(),
            real_name: text("real_name")?,
            host_name: text("host_name")?,
            web_page_url: text("web_page_url")?,
            description: text("description")?,
            info: text("info")?,
            msg_header: text("msg_header")?,
            msg_footer: text("msg_footer")?,
            include_sender_header: int("include_sender_header")? != 0,
            personalize: int("personalize")?,
            preferred_language: string("preferred_language")?,
            available_languages,
            use_dollar_strings: get("use_dollar_strings").is_some_and(Value::is_truthy),
            members: dict("members")?,
            digest_members: dict("digest_members")?,
            passwords: dict("passwords")?,
            language: dict("language")?,
            usernames: dict("usernames")?,
        })
    }

    /// `GetBouncesEmail()`.
    pub fn bounces_address(&self) -> String {
        format!("{}-bounces@{}", self.name, self.host_name.to_string_lossy())
    }

    /// `getMemberCPAddress`: the address as subscribed (case kept), if a member.
    pub fn member_cp_address(&self, lc: &str) -> Option<Text> {
        let found = self.members.get(lc).or_else(|| self.digest_members.get(lc))?;
        Some(match found {
            Value::Bytes(b) => Text::Bytes(b.clone()),
            Value::Str(s) => Text::Str(s.clone()),
            _ => Text::Bytes(lc.as_bytes().to_vec()),
        })
    }

    /// `getMemberPassword`.
    pub fn member_password(&self, lc: &str) -> Option<Text> {
        match self.passwords.get(lc)? {
            Value::Bytes(b) => Some(Text::Bytes(b.clone())),
            Value::Str(s) => Some(Text::Str(s.clone())),
            _ => None,
        }
    }

    /// `getMemberName`: the real name, `None` when there is none.
    pub fn member_name(&self, lc: &str) -> Option<Text> {
        match self.usernames.get(lc)? {
            Value::Bytes(b) => Some(Text::Bytes(b.clone())),
            Value::Str(s) => Some(Text::Str(s.clone())),
            _ => None,
        }
    }

    /// `getMemberLanguage`: the member's language if the list offers it, else the
    /// list's.
    pub fn member_language(&self, lc: &str, site: &Site) -> String {
        let lang = self.language.get(lc).and_then(Value::as_text).unwrap_or_else(|| self.preferred_language.clone());
        let available = self.available_languages.contains(&lang) || lang == site.DEFAULT_SERVER_LANGUAGE;
        if available && site.LC_CHARSETS.contains_key(&lang) {
            lang
        } else {
            self.preferred_language.clone()
        }
    }
}

struct Cached {
    stamp: (SystemTime, u64),
    list: Arc<List>,
}

/// The lists of one Mailman 2.1 installation, read on demand and cached until their
/// config.pck changes.
pub struct Mm2Lists {
    dir: PathBuf,
    site: Site,
    cache: Mutex<HashMap<String, Cached>>,
}

impl Mm2Lists {
    pub fn new(dir: PathBuf, site: Site) -> Self {
        Mm2Lists { dir, site, cache: Mutex::new(HashMap::new()) }
    }

    pub fn site(&self) -> &Site {
        &self.site
    }

    /// The list called `name`, read again if its config.pck changed (mtime or size).
    pub fn list(&self, name: &str) -> Result<Arc<List>, ListError> {
        if name.is_empty() || name.contains(['/', '\\', '\0']) || name.starts_with('.') {
            return Err(ListError::Unreproducible(format!("list name {name:?} cannot name a list directory")));
        }
        let path = self.dir.join(name).join("config.pck");
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ListError::Unreproducible(format!(
                    "no such Mailman 2.1 list {name:?} ({} is missing)",
                    path.display()
                )))
            }
            Err(e) => return Err(ListError::Unavailable(format!("cannot read {}: {e}", path.display()))),
        };
        let stamp = (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len());
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(name).filter(|c| c.stamp == stamp) {
            return Ok(c.list.clone());
        }
        let list = Arc::new(load(name, &path)?);
        tracing::info!(list = name, path = %path.display(), "read Mailman 2.1 list settings");
        cache.insert(name.to_owned(), Cached { stamp, list: list.clone() });
        Ok(list)
    }
}

/// `MailList.Load`: config.pck, else the previous good copy config.pck.last.
fn load(name: &str, path: &Path) -> Result<List, ListError> {
    let read = |p: &Path| -> Result<List, String> {
        let bytes = std::fs::read(p).map_err(|e| e.to_string())?;
        let (value, _) = mailqueue_pickle::read(&bytes).map_err(|e| e.to_string())?;
        List::from_value(name, &value)
    };
    match read(path) {
        Ok(l) => Ok(l),
        Err(first) => {
            let last = path.with_extension("pck.last");
            read(&last).map_err(|_| {
                ListError::Unreproducible(format!("list {name:?}: {} cannot be used: {first}", path.display()))
            })
        }
    }
}

/// The `run` options for Mailman 2.1 lists.
#[derive(clap::Args, Debug, Clone)]
pub struct Mm2Args {
    /// JSON file of the 2.1 site's mm_cfg values (CGIEXT, VERP_FORMAT, SMTP_MAX_RCPTS,
    /// RCPT_BASE64_HEADER_NAME, LC_CHARSETS {lang: charset}, DEFAULT_SERVER_LANGUAGE):
    /// decorate, personalize and VERP Mailman 2.1 list mail as the site does. Without
    /// it, 2.1 entries are sent as they are queued (with Errors-To).
    #[arg(long, value_name = "FILE")]
    pub mailman2_site: Option<PathBuf>,
    /// The 2.1 `lists/` directory (default: `lists` beside the qfiles directory).
    #[arg(long, value_name = "DIR")]
    pub mailman2_lists: Option<PathBuf>,
}

impl Mm2Args {
    /// The list source, if `--mailman2-site` is given.
    pub fn lists(&self, qfiles: &Path) -> anyhow::Result<Option<Arc<Mm2Lists>>> {
        let Some(site_file) = &self.mailman2_site else { return Ok(None) };
        let site = Site::load(site_file)?;
        let dir = match &self.mailman2_lists {
            Some(d) => d.clone(),
            None => qfiles.parent().map(|p| p.join("lists")).unwrap_or_else(|| PathBuf::from("lists")),
        };
        if !dir.is_dir() {
            anyhow::bail!("Mailman 2.1 lists directory {} does not exist (--mailman2-lists DIR)", dir.display());
        }
        Ok(Some(Arc::new(Mm2Lists::new(dir, site))))
    }
}
