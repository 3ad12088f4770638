//! Step 2 of the reconcile: check the spec before anything is built from it.
//!
//! The API server already enforces the schema and CEL rules of `crd.rs`; this step guards the
//! operator against objects stored before a rule existed and checks what CEL cannot (durations
//! as numbers, a name that fits in a label).

use std::collections::BTreeSet;
use std::time::Duration;

use mailqueue_contract::crd::{MailQueueSpec, TlsMode, SLICE_COUNTS};
use mailqueue_contract::duration;

/// Why a `MailQueue` cannot be acted on. Shown in the `Degraded` condition.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSpec {
    #[error("the MailQueue name {0:?} is longer than 63 characters and cannot label its pods")]
    NameTooLong(String),
    #[error("queue {queue:?} has {slices} slices: use a power of two from 1 to 256")]
    Slices { queue: String, slices: i32 },
    #[error("queue {0:?} is listed twice")]
    DuplicateQueue(String),
    #[error("spec.storage.claimName is required: the name of the ReadWriteMany PersistentVolumeClaim that holds the Mailman tree")]
    MissingClaim,
    #[error("spec.smtp.auth needs spec.smtp.tls.mode starttls, starttls-opportunistic or tls: a password is never sent in the clear")]
    AuthWithoutTls,
    #[error("spec.{field}: {error}")]
    Duration { field: &'static str, error: duration::DurationError },
}

/// A spec that passed every check, with its durations parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidSpec {
    /// The spec as written.
    pub spec: MailQueueSpec,
    /// `spec.bakPolicy.quarantineAfter`, when a policy is set.
    pub quarantine_after: Option<Duration>,
    /// `spec.storage.claimName`.
    pub claim_name: String,
    /// `spec.smtp.timeouts`, parsed.
    pub smtp_timeouts: Timeouts,
}

/// `spec.smtp.timeouts`, each when set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Option<Duration>,
    pub command: Option<Duration>,
    pub data: Option<Duration>,
}

/// Checks `spec` of the `MailQueue` called `name`.
pub fn validate(name: &str, spec: &MailQueueSpec) -> Result<ValidSpec, InvalidSpec> {
    if name.len() > 63 {
        return Err(InvalidSpec::NameTooLong(name.to_owned()));
    }
    let mut seen = BTreeSet::new();
    for queue in &spec.queues {
        if !SLICE_COUNTS.contains(&queue.slices) {
            return Err(InvalidSpec::Slices { queue: queue.name.clone(), slices: queue.slices });
        }
        if !seen.insert(queue.name.as_str()) {
            return Err(InvalidSpec::DuplicateQueue(queue.name.clone()));
        }
    }
    let Some(claim_name) = spec.storage.claim_name.clone().filter(|c| !c.is_empty()) else {
        return Err(InvalidSpec::MissingClaim);
    };
    let tls = spec.smtp.tls.as_ref().map_or(TlsMode::None, |t| t.mode);
    if spec.smtp.auth.is_some() && tls == TlsMode::None {
        return Err(InvalidSpec::AuthWithoutTls);
    }
    let parse = |field, value: &str| duration::parse(value).map_err(|error| InvalidSpec::Duration { field, error });
    let timeouts = spec.smtp.timeouts.clone().unwrap_or_default();
    let optional = |field, value: &Option<String>| value.as_deref().map(|v| parse(field, v)).transpose();
    let smtp_timeouts = Timeouts {
        connect: optional("smtp.timeouts.connect", &timeouts.connect)?,
        command: optional("smtp.timeouts.command", &timeouts.command)?,
        data: optional("smtp.timeouts.data", &timeouts.data)?,
    };
    if let Some(q) = &spec.quarantine {
        parse("quarantine.olderThan", &q.older_than)?;
    }
    if let Some(r) = &spec.requeue {
        parse("requeue.interval", &r.interval)?;
    }
    let quarantine_after =
        spec.bak_policy.as_ref().map(|p| parse("bakPolicy.quarantineAfter", &p.quarantine_after)).transpose()?;
    Ok(ValidSpec { spec: spec.clone(), quarantine_after, claim_name, smtp_timeouts })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use mailqueue_contract::crd::{Layout, QueueSpec, Smtp, Storage};

    pub(crate) fn spec(queues: &[(&str, i32)]) -> MailQueueSpec {
        MailQueueSpec {
            storage: Storage { claim_name: Some("mailman-data".into()), queue_dir: Some("qfiles".into()) },
            layout: Layout::Mailman3,
            queues: queues.iter().map(|(n, s)| QueueSpec { name: (*n).into(), slices: *s }).collect(),
            smtp: Smtp {
                host: "mta.mail.svc".into(),
                port: 25,
                connections_per_slice: 4,
                tls: None,
                auth: None,
                helo: None,
                timeouts: None,
                recipients_per_transaction: None,
                verp: None,
            },
            drain: false,
            quarantine: None,
            requeue: None,
            compact: None,
            bak_policy: None,
            runner: None,
            mailman: None,
        }
    }

    #[test]
    fn accepts_a_plain_spec() {
        assert!(validate("lists", &spec(&[("out", 4), ("retry", 1)])).is_ok());
    }

    #[test]
    fn refuses_slices_that_are_not_a_power_of_two() {
        for slices in [0, 3, 512] {
            assert_eq!(
                validate("lists", &spec(&[("out", slices)])),
                Err(InvalidSpec::Slices { queue: "out".into(), slices })
            );
        }
    }

    #[test]
    fn refuses_a_missing_claim_auth_in_the_clear_and_bad_timeouts() {
        let mut no_claim = spec(&[("out", 1)]);
        no_claim.storage.claim_name = None;
        assert_eq!(validate("lists", &no_claim), Err(InvalidSpec::MissingClaim));
        let mut clear = spec(&[("out", 1)]);
        clear.smtp.auth = Some(mailqueue_contract::crd::SmtpAuth {
            secret_name: "s".into(),
            username_key: "u".into(),
            password_key: "p".into(),
        });
        assert_eq!(validate("lists", &clear), Err(InvalidSpec::AuthWithoutTls));
        let mut slow = spec(&[("out", 1)]);
        slow.smtp.timeouts = Some(mailqueue_contract::crd::SmtpTimeouts {
            connect: Some("5s".into()),
            command: None,
            data: Some("later".into()),
        });
        assert!(matches!(validate("lists", &slow), Err(InvalidSpec::Duration { field: "smtp.timeouts.data", .. })));
        slow.smtp.timeouts = Some(mailqueue_contract::crd::SmtpTimeouts {
            connect: Some("5s".into()),
            command: None,
            data: Some("3m".into()),
        });
        let valid = validate("lists", &slow).expect("valid");
        assert_eq!(valid.smtp_timeouts.connect, Some(Duration::from_secs(5)));
        assert_eq!(valid.smtp_timeouts.data, Some(Duration::from_secs(180)));
    }

    #[test]
    fn the_queue_dir_follows_the_layout_unless_set() {
        let mut s = spec(&[("out", 1)]);
        s.storage.queue_dir = None;
        assert_eq!(s.storage.queue_dir(Layout::Mailman3), "var/queue");
        assert_eq!(s.storage.queue_dir(Layout::Mailman2), "qfiles");
        s.storage.queue_dir = Some("mailman/qfiles/".into());
        assert_eq!(s.storage.queue_dir(Layout::Mailman3), "mailman/qfiles");
    }

    #[test]
    fn refuses_duplicate_queues_and_bad_durations() {
        assert_eq!(validate("lists", &spec(&[("out", 1), ("out", 2)])), Err(InvalidSpec::DuplicateQueue("out".into())));
        let mut bad = spec(&[("out", 1)]);
        bad.bak_policy = Some(mailqueue_contract::crd::BakPolicy { quarantine_after: "soon".into() });
        assert!(matches!(
            validate("lists", &bad),
            Err(InvalidSpec::Duration { field: "bakPolicy.quarantineAfter", .. })
        ));
    }
}
