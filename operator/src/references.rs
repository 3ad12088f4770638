//! Step 2 of the reconcile, after validation: the Secrets and ConfigMaps the spec names exist
//! and hold the keys it names. A runner pod mounting a missing Secret would wait in
//! `ContainerCreating` with nothing but an Event to say why; the `MailQueue` says it instead
//! (`Degraded`, reason `ReferenceMissing`), and no runner pod is replaced meanwhile.
//!
//! Only key names are read; no value is copied into the status, an Event or a log.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};

use mailqueue_contract::crd::MailQueueSpec;

/// The kind of object a reference names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Secret,
    ConfigMap,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Secret => "Secret",
            Self::ConfigMap => "ConfigMap",
        })
    }
}

/// One Secret or ConfigMap the spec names, with the keys it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The spec field that names it, for the message.
    pub field: &'static str,
    pub kind: Kind,
    pub name: String,
    pub keys: Vec<String>,
}

/// What is wrong with one reference.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Missing {
    #[error("spec.{field}: {kind} {name:?} does not exist in this namespace")]
    Object { field: &'static str, kind: Kind, name: String },
    #[error("spec.{field}: {kind} {name:?} has no key {key:?}")]
    Key { field: &'static str, kind: Kind, name: String, key: String },
}

/// A Secret or ConfigMap could not be read (other than not existing).
#[derive(Debug, thiserror::Error)]
#[error("cannot read {kind} {name}: {error}")]
pub struct ReferenceError {
    kind: Kind,
    name: String,
    error: kube::Error,
}

/// Every Secret and ConfigMap `spec` names.
pub fn references(spec: &MailQueueSpec) -> Vec<Reference> {
    let mut out = Vec::new();
    if let Some(auth) = &spec.smtp.auth {
        out.push(Reference {
            field: "smtp.auth.secretName",
            kind: Kind::Secret,
            name: auth.secret_name.clone(),
            keys: vec![auth.username_key.clone(), auth.password_key.clone()],
        });
    }
    if let Some(ca) = spec.smtp.tls.as_ref().and_then(|t| t.ca.as_ref()) {
        if let Some(s) = &ca.secret {
            out.push(Reference {
                field: "smtp.tls.ca.secret",
                kind: Kind::Secret,
                name: s.name.clone(),
                keys: vec![s.key.clone()],
            });
        }
        if let Some(c) = &ca.config_map {
            out.push(Reference {
                field: "smtp.tls.ca.configMap",
                kind: Kind::ConfigMap,
                name: c.name.clone(),
                keys: vec![c.key.clone()],
            });
        }
    }
    if let Some(m3) = spec.mailman.as_ref().and_then(|m| m.mailman3.as_ref()) {
        let c = &m3.credentials;
        out.push(Reference {
            field: "mailman.mailman3.credentials.secretName",
            kind: Kind::Secret,
            name: c.secret_name.clone(),
            keys: vec![c.username_key.clone(), c.password_key.clone()],
        });
    }
    if let Some(m2) = spec.mailman.as_ref().and_then(|m| m.mailman2.as_ref()) {
        let c = &m2.site_config;
        out.push(Reference {
            field: "mailman.mailman2.siteConfig",
            kind: Kind::ConfigMap,
            name: c.config_map.clone(),
            keys: vec![c.key.clone()],
        });
    }
    out
}

/// What is missing of `reference`, given the keys of the object (`None`: no such object).
pub fn missing(reference: &Reference, keys: Option<&BTreeSet<String>>) -> Vec<Missing> {
    let Some(keys) = keys else {
        return vec![Missing::Object { field: reference.field, kind: reference.kind, name: reference.name.clone() }];
    };
    reference
        .keys
        .iter()
        .filter(|k| !keys.contains(*k))
        .map(|k| Missing::Key {
            field: reference.field,
            kind: reference.kind,
            name: reference.name.clone(),
            key: k.clone(),
        })
        .collect()
}

/// Reads every object `references` names in `namespace` and says what is missing.
pub async fn check(client: &Client, namespace: &str, references: &[Reference]) -> Result<Vec<Missing>, ReferenceError> {
    let mut out = Vec::new();
    for reference in references {
        let error = |error| ReferenceError { kind: reference.kind, name: reference.name.clone(), error };
        let keys: Option<BTreeSet<String>> = match reference.kind {
            Kind::Secret => {
                Api::<Secret>::namespaced(client.clone(), namespace).get_opt(&reference.name).await.map_err(error)?.map(
                    |s| {
                        s.data
                            .unwrap_or_default()
                            .into_keys()
                            .chain(s.string_data.unwrap_or_default().into_keys())
                            .collect()
                    },
                )
            }
            Kind::ConfigMap => Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .get_opt(&reference.name)
                .await
                .map_err(error)?
                .map(|c| {
                    c.data
                        .unwrap_or_default()
                        .into_keys()
                        .chain(c.binary_data.unwrap_or_default().into_keys())
                        .collect()
                }),
        };
        out.extend(missing(reference, keys.as_ref()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::tests::spec;
    use mailqueue_contract::crd::{SmtpAuth, SmtpTls, TlsMode};

    #[test]
    fn names_the_field_the_object_and_the_key() {
        let mut s = spec(&[("out", 1)]);
        s.smtp.tls = Some(SmtpTls { mode: TlsMode::Starttls, ca: None });
        s.smtp.auth =
            Some(SmtpAuth { secret_name: "relay".into(), username_key: "user".into(), password_key: "pass".into() });
        let refs = references(&s);
        assert_eq!(refs.len(), 1);
        let gone = missing(&refs[0], None);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].to_string(), "spec.smtp.auth.secretName: Secret \"relay\" does not exist in this namespace");
        let keys: BTreeSet<String> = ["user".to_owned()].into();
        let lacking = missing(&refs[0], Some(&keys));
        assert_eq!(
            lacking.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["spec.smtp.auth.secretName: Secret \"relay\" has no key \"pass\""]
        );
        let all: BTreeSet<String> = ["user".to_owned(), "pass".to_owned()].into();
        assert!(missing(&refs[0], Some(&all)).is_empty());
    }

    #[test]
    fn a_plain_spec_names_nothing() {
        assert!(references(&spec(&[("out", 1)])).is_empty());
    }
}
