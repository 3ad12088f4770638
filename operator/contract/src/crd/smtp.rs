//! `spec.smtp`: the relay and how the runners talk to it. Every field maps onto one flag of
//! `mailqueue-runner run` (see `desired/runner_args.rs`); credentials only ever reach the
//! runner as mounted files.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration_schema;

/// The SMTP relay.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.auth) || (has(self.tls) && self.tls.mode != 'none')").message("smtp.auth needs smtp.tls.mode starttls, starttls-opportunistic or tls: a password is never sent in the clear"))]
pub struct Smtp {
    /// Host name or address of the relay.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,

    /// TCP port of the relay.
    #[serde(default = "default_smtp_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// SMTP connections each slice's runner keeps open to the relay.
    #[serde(default = "default_connections")]
    #[schemars(range(min = 1, max = 64))]
    pub connections_per_slice: i32,

    /// How the connection to the relay is protected. Without it, plain SMTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SmtpTls>,

    /// SMTP AUTH (PLAIN or LOGIN) with a user name and password from a Secret. Needs
    /// `tls.mode` `starttls` or `tls`, or `starttls-opportunistic` with a relay that offers
    /// STARTTLS: a password is never sent in the clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SmtpAuth>,

    /// Name the runners send in EHLO. Default: the runner pod's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub helo: Option<String>,

    /// Time limits of an SMTP session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<SmtpTimeouts>,

    /// Recipients per SMTP transaction; 0 puts all of an entry's recipients in one. Default:
    /// Mailman's own (500 for 2.1 entries, 10 for Mailman 3 entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub recipients_per_transaction: Option<i32>,

    /// When to send one transaction per recipient with a VERP envelope sender: `metadata`
    /// (default: when the entry's metadata asks, as Mailman does), `always` or `never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verp: Option<Verp>,
}

pub(crate) fn default_smtp_port() -> i32 {
    25
}

pub(crate) fn default_connections() -> i32 {
    4
}

/// Transport security towards the relay.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode != 'none' || !has(self.ca)").message("tls.ca is only used with tls.mode starttls, starttls-opportunistic or tls"))]
pub struct SmtpTls {
    /// `none` (plain SMTP), `starttls` (plain connect, then STARTTLS, refused if the relay
    /// does not offer it), `starttls-opportunistic` (STARTTLS when offered) or `tls` (TLS from
    /// the first byte, usually port 465).
    pub mode: TlsMode,

    /// A CA bundle (PEM) to trust for the relay's certificate, besides the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaBundle>,
}

/// `spec.smtp.tls.mode`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plain SMTP.
    #[default]
    None,
    /// STARTTLS, required.
    Starttls,
    /// STARTTLS when the relay offers it.
    StarttlsOpportunistic,
    /// Implicit TLS.
    Tls,
}

impl TlsMode {
    /// The runner's `--smtp-security` value.
    pub fn runner_value(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Starttls => "starttls",
            Self::StarttlsOpportunistic => "starttls-opportunistic",
            Self::Tls => "tls",
        }
    }
}

/// Where a CA bundle comes from: exactly one of `secret` and `configMap`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secret) != has(self.configMap)").message("tls.ca takes exactly one of secret and configMap"))]
pub struct CaBundle {
    /// A key of a Secret in the MailQueue's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<KeyRef>,
    /// A key of a ConfigMap in the MailQueue's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<KeyRef>,
}

/// One key of a Secret or ConfigMap in the MailQueue's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    /// Name of the Secret or ConfigMap.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key whose value is used.
    #[serde(default = "default_ca_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

fn default_ca_key() -> String {
    "ca.crt".to_owned()
}

/// SMTP AUTH credentials from a Secret. The Secret is mounted into the runner pods as files;
/// neither value appears in the pod's arguments or environment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmtpAuth {
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

pub(crate) fn default_username_key() -> String {
    "username".to_owned()
}

pub(crate) fn default_password_key() -> String {
    "password".to_owned()
}

/// Time limits of an SMTP session, as durations such as `10s` or `2m`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmtpTimeouts {
    /// To connect and be greeted (default `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_schema")]
    pub connect: Option<String>,
    /// For each reply to MAIL, RCPT and DATA (default `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_schema")]
    pub command: Option<String>,
    /// To send a message and get the reply to its final dot (default `2m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_schema")]
    pub data: Option<String>,
}

/// `spec.smtp.verp`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verp {
    /// When the entry's metadata says so.
    #[default]
    Metadata,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl Verp {
    /// The runner's `--verp` value.
    pub fn runner_value(self) -> &'static str {
        match self {
            Self::Metadata => "metadata",
            Self::Always => "always",
            Self::Never => "never",
        }
    }
}
