//! What happened to each recipient of an entry, and Mailman's rule for which refusals
//! are worth retrying.
use std::time::Duration;

/// A negative SMTP reply for one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub message: String,
    /// The command refused: `MAIL`, `RCPT`, `DATA`, `message` (the final dot), or
    /// `session` when the relay could not be talked to. Mailman 2.1 does not count a
    /// whole message refused at MAIL/DATA/message as bounces of every recipient.
    pub stage: &'static str,
}

/// Mailman's code for "the relay could not be talked to" (RFC 5321 temporary,
/// unspecified), used when a session breaks: nothing in it was delivered.
pub const LOST_SESSION_CODE: u16 = 444;

impl Refusal {
    /// Both Mailman versions: 5xx is permanent except 552, which RFC 5321 says clients
    /// should treat as the (misnumbered) "too many recipients", i.e. temporary.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500 && self.code != 552
    }

    pub fn lost_session(reason: &str) -> Refusal {
        Refusal { code: LOST_SESSION_CODE, message: reason.to_owned(), stage: "session" }
    }
}

/// One SMTP transaction's result.
#[derive(Debug, Default)]
pub struct TxOutcome {
    pub accepted: Vec<String>,
    pub refused: Vec<(String, Refusal)>,
    pub elapsed: Duration,
}

impl TxOutcome {
    pub fn refuse_all(&mut self, rcpts: &[String], refusal: &Refusal) {
        self.refused.extend(rcpts.iter().map(|r| (r.clone(), refusal.clone())));
    }
}

/// The whole entry's result, over all its transactions.
#[derive(Debug, Default)]
pub struct EntryOutcome {
    pub delivered: Vec<String>,
    pub temporary: Vec<(String, Refusal)>,
    pub permanent: Vec<(String, Refusal)>,
    /// Recipients whose transaction was never started (shutdown came first).
    pub not_attempted: Vec<String>,
}

impl EntryOutcome {
    pub fn add(&mut self, tx: TxOutcome) {
        self.delivered.extend(tx.accepted);
        for (rcpt, refusal) in tx.refused {
            if refusal.is_permanent() {
                self.permanent.push((rcpt, refusal));
            } else {
                self.temporary.push((rcpt, refusal));
            }
        }
    }

    /// Recipients that must get another try: refused for now, or never tried.
    pub fn remaining(&self) -> Vec<String> {
        let mut out: Vec<String> = self.temporary.iter().map(|(r, _)| r.clone()).collect();
        out.extend(self.not_attempted.iter().cloned());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_five_two_is_temporary_like_mailman() {
        let r = |code| Refusal { code, message: String::new(), stage: "RCPT" };
        assert!(r(550).is_permanent());
        assert!(r(554).is_permanent());
        assert!(!r(552).is_permanent());
        assert!(!r(451).is_permanent());
        assert!(!r(LOST_SESSION_CODE).is_permanent());
    }
}
