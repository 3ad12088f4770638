//! What `spec.smtp` and `spec.mailman` put into a runner container: `mailqueue-runner run`
//! flags, and the Secret and ConfigMap volumes they point at. Credentials and CA bundles are
//! mounted as files and passed by path, so no secret value is in the pod's arguments or
//! environment (nothing `kubectl describe pod` would print).

use k8s_openapi::api::core::v1::{ConfigMapVolumeSource, KeyToPath, SecretVolumeSource, Volume, VolumeMount};

use crate::desired::MOUNT_PATH;
use crate::validate::ValidSpec;
use mailqueue_contract::crd::TlsMode;

/// Where the Secret and ConfigMap volumes are mounted, one directory each.
const CONFIG_ROOT: &str = "/etc/mailqueue";
/// Mode of the files of a Secret volume when the pod has an fsGroup: the runner's group may
/// read them, nobody else.
const SECRET_MODE_WITH_GROUP: i32 = 0o440;

/// The flags and mounts of one runner container.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunnerConfig {
    pub args: Vec<String>,
    pub volumes: Vec<Volume>,
    pub mounts: Vec<VolumeMount>,
}

impl RunnerConfig {
    fn flag(&mut self, name: &str, value: impl Into<String>) {
        self.args.push(format!("--{name}"));
        self.args.push(value.into());
    }

    /// Mounts `items` (key -> file name) of a Secret or ConfigMap at `/etc/mailqueue/<volume>`
    /// and returns that directory.
    fn mount(&mut self, volume: &str, source: Source<'_>, items: &[(&str, &str)], group_readable: bool) -> String {
        let items = Some(
            items
                .iter()
                .map(|(key, path)| KeyToPath { key: (*key).to_owned(), path: (*path).to_owned(), mode: None })
                .collect(),
        );
        let mut v = Volume { name: volume.to_owned(), ..Volume::default() };
        match source {
            Source::Secret(name) => {
                v.secret = Some(SecretVolumeSource {
                    secret_name: Some(name.to_owned()),
                    items,
                    default_mode: group_readable.then_some(SECRET_MODE_WITH_GROUP),
                    optional: Some(false),
                });
            }
            Source::ConfigMap(name) => {
                v.config_map = Some(ConfigMapVolumeSource {
                    name: name.to_owned(),
                    items,
                    optional: Some(false),
                    default_mode: None,
                });
            }
        }
        let dir = format!("{CONFIG_ROOT}/{volume}");
        self.volumes.push(v);
        self.mounts.push(VolumeMount {
            name: volume.to_owned(),
            mount_path: dir.clone(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        dir
    }
}

enum Source<'a> {
    Secret(&'a str),
    ConfigMap(&'a str),
}

/// The SMTP and list-settings part of a runner's command line, with its volumes.
pub fn runner_config(valid: &ValidSpec) -> RunnerConfig {
    let spec = &valid.spec;
    let smtp = &spec.smtp;
    // Without an fsGroup, Secret files stay world-readable inside the pod (the default mode):
    // a non-root runner could not read them otherwise.
    let group_readable = spec.runner.as_ref().and_then(|r| r.run_as_group).is_some();
    let mut config = RunnerConfig::default();
    let mode = smtp.tls.as_ref().map_or(TlsMode::None, |t| t.mode);
    if mode != TlsMode::None {
        config.flag("smtp-security", mode.runner_value());
    }
    // The CRD requires one of secret and configMap; a spec stored before that rule gets no CA.
    let ca = smtp.tls.as_ref().and_then(|t| t.ca.as_ref()).and_then(|ca| match (&ca.secret, &ca.config_map) {
        (Some(s), _) => Some((Source::Secret(&s.name), s.key.as_str())),
        (None, Some(c)) => Some((Source::ConfigMap(&c.name), c.key.as_str())),
        (None, None) => None,
    });
    if let Some((source, key)) = ca {
        let dir = config.mount("smtp-ca", source, &[(key, "ca.pem")], group_readable);
        config.flag("smtp-tls-ca", format!("{dir}/ca.pem"));
    }
    if let Some(auth) = &smtp.auth {
        let items = [(auth.username_key.as_str(), "username"), (auth.password_key.as_str(), "password")];
        let dir = config.mount("smtp-auth", Source::Secret(&auth.secret_name), &items, group_readable);
        config.flag("smtp-user-file", format!("{dir}/username"));
        config.flag("smtp-password-file", format!("{dir}/password"));
    }
    finish(config, valid)
}

fn finish(mut config: RunnerConfig, valid: &ValidSpec) -> RunnerConfig {
    let spec = &valid.spec;
    let smtp = &spec.smtp;
    let group_readable = spec.runner.as_ref().and_then(|r| r.run_as_group).is_some();
    if let Some(helo) = &smtp.helo {
        config.flag("helo", helo.clone());
    }
    let seconds = |d: std::time::Duration| d.as_secs().max(1).to_string();
    let t = valid.smtp_timeouts;
    if let Some(d) = t.connect {
        config.flag("connect-timeout", seconds(d));
    }
    if let Some(d) = t.command {
        config.flag("command-timeout", seconds(d));
    }
    if let Some(d) = t.data {
        config.flag("data-timeout", seconds(d));
    }
    if let Some(n) = smtp.recipients_per_transaction {
        config.flag("rcpts-per-transaction", n.to_string());
    }
    if let Some(verp) = smtp.verp {
        config.flag("verp", verp.runner_value());
    }
    let volume_path = |path: &str| format!("{MOUNT_PATH}/{}", path.trim_end_matches('/'));
    if let Some(m3) = spec.mailman.as_ref().and_then(|m| m.mailman3.as_ref()) {
        let c = &m3.credentials;
        let items = [(c.username_key.as_str(), "username"), (c.password_key.as_str(), "password")];
        let dir = config.mount("mailman3-rest", Source::Secret(&c.secret_name), &items, group_readable);
        config.flag("mailman-rest", m3.rest_url.clone());
        config.flag("mailman-rest-user-file", format!("{dir}/username"));
        config.flag("mailman-rest-password-file", format!("{dir}/password"));
        config.flag("mailman-templates", volume_path(&m3.templates_path));
        if let Some(site) = &m3.site_templates_path {
            config.flag("mailman-site-templates", volume_path(site));
        }
    }
    if let Some(m2) = spec.mailman.as_ref().and_then(|m| m.mailman2.as_ref()) {
        let site = &m2.site_config;
        let dir = config.mount(
            "mailman2-site",
            Source::ConfigMap(&site.config_map),
            &[(site.key.as_str(), "mm_cfg.json")],
            false,
        );
        config.flag("mailman2-site", format!("{dir}/mm_cfg.json"));
        if let Some(lists) = &m2.lists_path {
            config.flag("mailman2-lists", volume_path(lists));
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{tests::spec, validate};
    use mailqueue_contract::crd::{
        CaBundle, Credentials, KeyRef, Mailman, Mailman2, Mailman3, SiteConfig, SmtpAuth, SmtpTimeouts, SmtpTls, Verp,
    };

    fn config_of(edit: impl FnOnce(&mut mailqueue_contract::crd::MailQueueSpec)) -> RunnerConfig {
        let mut s = spec(&[("out", 1)]);
        edit(&mut s);
        runner_config(&validate("lists", &s).expect("valid"))
    }

    #[test]
    fn a_plain_relay_adds_nothing() {
        assert_eq!(config_of(|_| {}), RunnerConfig::default());
    }

    #[test]
    fn tls_auth_and_limits_become_flags_and_secrets_become_files() {
        let c = config_of(|s| {
            s.smtp.tls = Some(SmtpTls {
                mode: TlsMode::Starttls,
                ca: Some(CaBundle {
                    secret: None,
                    config_map: Some(KeyRef { name: "relay-ca".into(), key: "ca.crt".into() }),
                }),
            });
            s.smtp.auth = Some(SmtpAuth {
                secret_name: "relay-auth".into(),
                username_key: "user".into(),
                password_key: "pass".into(),
            });
            s.smtp.helo = Some("lists.example.org".into());
            s.smtp.timeouts = Some(SmtpTimeouts { connect: Some("5s".into()), command: Some("1m".into()), data: None });
            s.smtp.recipients_per_transaction = Some(0);
            s.smtp.verp = Some(Verp::Always);
        });
        assert_eq!(
            c.args.join(" "),
            "--smtp-security starttls --smtp-tls-ca /etc/mailqueue/smtp-ca/ca.pem \
             --smtp-user-file /etc/mailqueue/smtp-auth/username --smtp-password-file /etc/mailqueue/smtp-auth/password \
             --helo lists.example.org --connect-timeout 5 --command-timeout 60 --rcpts-per-transaction 0 --verp always"
        );
        let auth =
            c.volumes.iter().find(|v| v.name == "smtp-auth").and_then(|v| v.secret.as_ref()).expect("auth volume");
        assert_eq!(auth.secret_name.as_deref(), Some("relay-auth"));
        let items: Vec<(&str, &str)> = auth.items.iter().flatten().map(|i| (i.key.as_str(), i.path.as_str())).collect();
        assert_eq!(items, [("user", "username"), ("pass", "password")]);
        let ca = c.volumes.iter().find(|v| v.name == "smtp-ca").and_then(|v| v.config_map.as_ref()).expect("CA volume");
        assert_eq!(ca.name, "relay-ca");
        assert!(c.mounts.iter().all(|m| m.read_only == Some(true) && m.mount_path.starts_with("/etc/mailqueue/")));
        assert!(!c.args.iter().any(|a| a.contains("pass") && !a.starts_with("--") && !a.ends_with("/password")));
    }

    #[test]
    fn list_settings_come_from_the_rest_api_and_the_volume() {
        let c = config_of(|s| {
            s.mailman = Some(Mailman {
                mailman3: Some(Mailman3 {
                    rest_url: "http://core:8001/3.1".into(),
                    credentials: Credentials {
                        secret_name: "rest".into(),
                        username_key: "username".into(),
                        password_key: "password".into(),
                    },
                    templates_path: "templates/".into(),
                    site_templates_path: Some("var/templates".into()),
                }),
                mailman2: Some(Mailman2 {
                    site_config: SiteConfig { config_map: "mm2".into(), key: "mm_cfg.json".into() },
                    lists_path: Some("lists".into()),
                }),
            });
        });
        assert_eq!(
            c.args.join(" "),
            "--mailman-rest http://core:8001/3.1 --mailman-rest-user-file /etc/mailqueue/mailman3-rest/username \
             --mailman-rest-password-file /etc/mailqueue/mailman3-rest/password --mailman-templates /var/lib/mailman/templates \
             --mailman-site-templates /var/lib/mailman/var/templates --mailman2-site /etc/mailqueue/mailman2-site/mm_cfg.json \
             --mailman2-lists /var/lib/mailman/lists"
        );
        assert_eq!(c.volumes.len(), 2);
    }
}
