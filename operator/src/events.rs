//! Kubernetes Events on a `MailQueue`, through the operator's one [`Recorder`] (it groups
//! repeats of an Event into one with a count, which only works when every Event goes through
//! the same recorder).
//!
//! [`transitions`] decides, from the status before and after a reconcile, which changes a user
//! cares about: a drain asked for, reached and lifted; a re-slice started and finished; the
//! queue degraded (an invalid spec, a missing Secret, a relay refusing the runners, crashing
//! runners) and recovered; list decoration off. Action phases are announced by `actions/`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};

use crate::status::{DEGRADED, DRAINED, DRAINING, LIST_SETTINGS, OLD_LAYOUT_STILL_HELD as RESLICING, READY};
use crate::FIELD_MANAGER;
use mailqueue_contract::crd::{MailQueue, MailQueueStatus};

/// The operator's Event writer.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

/// One Event to publish: type, reason, action and note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub type_: EventType,
    pub reason: String,
    pub action: &'static str,
    pub note: String,
}

impl Events {
    pub fn new(client: Client) -> Self {
        Self { recorder: Recorder::new(client, Reporter { controller: FIELD_MANAGER.to_owned(), instance: None }) }
    }

    /// Publishes `note` on `mq`; a failure is logged, never fatal (Events are best effort).
    pub async fn publish(&self, mq: &MailQueue, note: Note) {
        let event = Event {
            type_: note.type_,
            reason: note.reason.clone(),
            note: Some(note.note),
            action: note.action.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &mq.object_ref(&())).await {
            tracing::warn!(mailqueue = ?mq.metadata.name, reason = %note.reason, %error, "cannot record an Event");
        }
    }
}

/// The Events that the change from `before` to `after` calls for.
pub fn transitions(before: Option<&MailQueueStatus>, after: &MailQueueStatus) -> Vec<Note> {
    let old = |type_: &str| before.and_then(|s| s.conditions.iter().find(|c| c.type_ == type_));
    after.conditions.iter().filter_map(|now| note(old(&now.type_), now)).collect()
}

fn note(old: Option<&Condition>, now: &Condition) -> Option<Note> {
    let status = now.status == "True";
    let was = old.map(|c| c.status == "True");
    let same = old.is_some_and(|c| c.status == now.status && c.reason == now.reason);
    if same {
        return None;
    }
    let normal = |reason: &str, action| {
        Some(Note { type_: EventType::Normal, reason: reason.to_owned(), action, note: now.message.clone() })
    };
    let warning = |reason: &str, action| {
        Some(Note { type_: EventType::Warning, reason: reason.to_owned(), action, note: now.message.clone() })
    };
    match now.type_.as_str() {
        DRAINING if status => normal("DrainRequested", "Drain"),
        DRAINED if status => normal("Drained", "Drain"),
        DRAINED if was == Some(true) => normal("DrainLifted", "Drain"),
        // A re-slice shows as Degraded while the old layout drains: announced as what it is.
        DEGRADED if status && now.reason == RESLICING => normal("ResliceStarted", "Reslice"),
        DEGRADED if status => warning(&now.reason, "Reconcile"),
        DEGRADED if old.is_some_and(|c| c.reason == RESLICING) => normal("ResliceFinished", "Reslice"),
        DEGRADED if was == Some(true) => normal("Recovered", "Reconcile"),
        READY if status && old.is_some() => normal("Ready", "Reconcile"),
        LIST_SETTINGS if !status => warning("ListDecorationOff", "Reconcile"),
        LIST_SETTINGS => normal("ListSettingsConfigured", "Reconcile"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn condition(type_: &str, status: bool, reason: &str) -> Condition {
        Condition {
            type_: type_.to_owned(),
            status: if status { "True" } else { "False" }.to_owned(),
            reason: reason.to_owned(),
            message: format!("{type_} {reason}"),
            observed_generation: Some(1),
            last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
        }
    }

    fn status(conditions: Vec<Condition>) -> MailQueueStatus {
        MailQueueStatus { conditions, ..MailQueueStatus::default() }
    }

    fn reasons(before: Option<&MailQueueStatus>, after: &MailQueueStatus) -> Vec<String> {
        transitions(before, after).into_iter().map(|n| n.reason).collect()
    }

    #[test]
    fn a_drain_is_announced_when_asked_reached_and_lifted() {
        let idle = status(vec![condition(DRAINING, false, "NotRequested"), condition(DRAINED, false, "NotRequested")]);
        let asked = status(vec![condition(DRAINING, true, "DrainRequested"), condition(DRAINED, false, "InFlight")]);
        let reached = status(vec![condition(DRAINING, false, "Drained"), condition(DRAINED, true, "NothingInFlight")]);
        assert_eq!(reasons(Some(&idle), &asked), ["DrainRequested"]);
        assert_eq!(reasons(Some(&asked), &asked), Vec::<String>::new(), "no change, no Event");
        assert_eq!(reasons(Some(&asked), &reached), ["Drained"]);
        assert_eq!(reasons(Some(&reached), &idle), ["DrainLifted"]);
    }

    #[test]
    fn degradation_warns_with_its_reason_and_recovery_is_noted() {
        let fine = status(vec![condition(DEGRADED, false, "AsExpected")]);
        let reslice = status(vec![condition(DEGRADED, true, "OldLayoutStillHeld")]);
        let missing = status(vec![condition(DEGRADED, true, "ReferenceMissing")]);
        let warned = transitions(Some(&fine), &missing);
        assert_eq!((warned[0].type_, warned[0].reason.as_str()), (EventType::Warning, "ReferenceMissing"));
        assert_eq!(reasons(Some(&reslice), &missing), ["ReferenceMissing"]);
        assert_eq!(reasons(Some(&missing), &fine), ["Recovered"]);
        // A re-slice is announced as one, start and end.
        assert_eq!(reasons(Some(&fine), &reslice), ["ResliceStarted"]);
        assert_eq!(reasons(Some(&reslice), &fine), ["ResliceFinished"]);
        // A new MailQueue that is fine says nothing about it.
        assert_eq!(reasons(None, &fine), Vec::<String>::new());
    }

    #[test]
    fn list_decoration_off_is_a_warning_once() {
        let off = status(vec![condition(LIST_SETTINGS, false, "NotConfigured")]);
        assert_eq!(reasons(None, &off), ["ListDecorationOff"]);
        assert_eq!(reasons(Some(&off), &off), Vec::<String>::new());
    }
}
