//! `spec.mailman`: where the runners read list settings, so that decoration, Sender and
//! Errors-To, personalization and VERP come out as Mailman's own delivery makes them.
//! Without it the runners send entries as they are queued, and the status says so.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::smtp::{default_password_key, default_username_key};

/// List settings of a Mailman 3 site, a Mailman 2.1 site, or both (a queue may hold entries
/// of either).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.mailman3) || has(self.mailman2)").message("spec.mailman needs mailman3, mailman2 or both"))]
pub struct Mailman {
    /// A Mailman 3 site: list settings from its REST API, templates from the shared volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailman3: Option<Mailman3>,
    /// A Mailman 2.1 site: its `mm_cfg` values and its `lists/` directory on the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailman2: Option<Mailman2>,
}

/// A Mailman 3 site.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Mailman3 {
    /// URL of the site's REST API, for example `http://mailman-core.mail.svc:8001/3.1`.
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://"))]
    pub rest_url: String,
    /// The Secret with the REST API's user name and password.
    pub credentials: Credentials,
    /// Path, inside the shared volume, of Mailman's built-in templates: the `templates`
    /// directory of the installed `mailman` package, copied onto the volume once per Mailman
    /// upgrade (the runner image carries no Python). It must hold `en/`.
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^[^/].*$"))]
    pub templates_path: String,
    /// Path, inside the shared volume, of the site's `$template_dir` (`var/templates`),
    /// searched before the built-in templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^[^/].*$"))]
    pub site_templates_path: Option<String>,
}

/// A user name and password in a Secret, mounted into the runner pods as files.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// Name of the Secret, in the MailQueue's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// Key of the Secret holding the user name.
    #[serde(default = "default_username_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub username_key: String,
    /// Key of the Secret holding the password.
    #[serde(default = "default_password_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub password_key: String,
}

/// A Mailman 2.1 site.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Mailman2 {
    /// A ConfigMap key holding the site's `mm_cfg` values as JSON (`CGIEXT`, `VERP_FORMAT`,
    /// `SMTP_MAX_RCPTS`, `RCPT_BASE64_HEADER_NAME`, `LC_CHARSETS`, `DEFAULT_SERVER_LANGUAGE`,
    /// ...), as `mailqueue-runner run --mailman2-site` reads them.
    pub site_config: SiteConfig,
    /// Path, inside the shared volume, of the 2.1 `lists/` directory. Default: `lists`
    /// beside `storage.queueDir`'s parent, where Mailman 2.1 keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^[^/].*$"))]
    pub lists_path: Option<String>,
}

/// The ConfigMap key with a 2.1 site's `mm_cfg` values.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SiteConfig {
    /// Name of the ConfigMap, in the MailQueue's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub config_map: String,
    /// The key holding the JSON.
    #[serde(default = "default_site_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

fn default_site_key() -> String {
    "mm_cfg.json".to_owned()
}
