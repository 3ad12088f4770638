//! `metav1.Condition`s that keep their `lastTransitionTime` until their status changes, so
//! `kubectl describe` tells when something actually happened.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition as the reconciler decides it, before times are attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Verdict {
    pub fn new(type_: &'static str, status: bool, reason: &'static str, message: impl Into<String>) -> Self {
        Self { type_, status, reason, message: message.into() }
    }
}

/// Turns verdicts into conditions, keeping each previous `lastTransitionTime` whose status
/// did not change.
pub fn merge(previous: &[Condition], verdicts: Vec<Verdict>, generation: Option<i64>, now: Time) -> Vec<Condition> {
    verdicts
        .into_iter()
        .map(|v| {
            let status = if v.status { "True" } else { "False" }.to_owned();
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == v.type_ && c.status == status)
                .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
            Condition {
                type_: v.type_.to_owned(),
                status,
                reason: v.reason.to_owned(),
                message: v.message,
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(secs).expect("valid timestamp"))
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let first = merge(&[], vec![Verdict::new("Ready", false, "SlicesNotReady", "0 of 4")], Some(1), at(100));
        assert_eq!(first[0].last_transition_time, at(100));

        let same = merge(&first, vec![Verdict::new("Ready", false, "SlicesNotReady", "2 of 4")], Some(2), at(200));
        assert_eq!(same[0].last_transition_time, at(100));
        assert_eq!(same[0].message, "2 of 4");
        assert_eq!(same[0].observed_generation, Some(2));

        let flipped = merge(&same, vec![Verdict::new("Ready", true, "AllSlicesReady", "4 of 4")], Some(2), at(300));
        assert_eq!(flipped[0].last_transition_time, at(300));
        assert_eq!(flipped[0].status, "True");
    }
}
