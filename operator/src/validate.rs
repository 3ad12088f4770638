//! Step 2 of the reconcile: check the spec before anything is built from it.
//!
//! The API server already enforces the schema and CEL rules of `crd.rs`; this step guards the
//! operator against objects stored before a rule existed and checks what CEL cannot (durations
//! as numbers, a name that fits in a label).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::crd::{MailQueueSpec, SLICE_COUNTS};
use crate::duration;

/// Why a `MailQueue` cannot be acted on. Shown in the `Degraded` condition.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSpec {
    #[error("the MailQueue name {0:?} is longer than 63 characters and cannot label its pods")]
    NameTooLong(String),
    #[error("queue {queue:?} has {slices} slices: use a power of two from 1 to 256")]
    Slices { queue: String, slices: i32 },
    #[error("queue {0:?} is listed twice")]
    DuplicateQueue(String),
    #[error("spec.{field}: {source}")]
    Duration {
        field: &'static str,
        #[source]
        source: duration::DurationError,
    },
}

/// A spec that passed every check, with its durations parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidSpec {
    /// The spec as written.
    pub spec: MailQueueSpec,
    /// `spec.bakPolicy.quarantineAfter`, when a policy is set.
    pub quarantine_after: Option<Duration>,
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
    let parse = |field, value: &str| duration::parse(value).map_err(|source| InvalidSpec::Duration { field, source });
    if let Some(q) = &spec.quarantine {
        parse("quarantine.olderThan", &q.older_than)?;
    }
    if let Some(r) = &spec.requeue {
        parse("requeue.interval", &r.interval)?;
    }
    let quarantine_after = spec
        .bak_policy
        .as_ref()
        .map(|p| parse("bakPolicy.quarantineAfter", &p.quarantine_after))
        .transpose()?;
    Ok(ValidSpec { spec: spec.clone(), quarantine_after })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crd::{Layout, QueueSpec, Smtp, Storage};

    pub(crate) fn spec(queues: &[(&str, i32)]) -> MailQueueSpec {
        MailQueueSpec {
            storage: Storage { claim_name: "mailman-data".into(), queue_dir: "qfiles".into() },
            layout: Layout::Mailman3,
            queues: queues.iter().map(|(n, s)| QueueSpec { name: (*n).into(), slices: *s }).collect(),
            smtp: Smtp { host: "mta.mail.svc".into(), port: 25, connections_per_slice: 4 },
            drain: false,
            quarantine: None,
            requeue: None,
            compact: None,
            bak_policy: None,
            runner: None,
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
    fn refuses_duplicate_queues_and_bad_durations() {
        assert_eq!(validate("lists", &spec(&[("out", 1), ("out", 2)])), Err(InvalidSpec::DuplicateQueue("out".into())));
        let mut bad = spec(&[("out", 1)]);
        bad.bak_policy = Some(crate::crd::BakPolicy { quarantine_after: "soon".into() });
        assert!(matches!(validate("lists", &bad), Err(InvalidSpec::Duration { field: "bakPolicy.quarantineAfter", .. })));
    }
}
