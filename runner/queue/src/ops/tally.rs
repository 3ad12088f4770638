//! The numbers every operation reports.

use serde::Serialize;
use std::fmt;

/// How many error messages a tally keeps (the count covers them all).
const KEPT_ERRORS: usize = 20;

/// What one operation did. `matched = moved + skipped_in_flight + skipped_gone + errors`
/// (+ `remaining` for a feed stopped early), so nothing goes unaccounted.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    /// Entries the operation chose to move.
    pub matched: u64,
    pub moved: u64,
    /// Held by a live runner (or being recovered by one): left alone.
    pub skipped_in_flight: u64,
    /// Gone before it could be moved (claimed, finished or moved meanwhile).
    pub skipped_gone: u64,
    /// Not looked at because their content could not be read for a selector.
    pub skipped_unreadable: u64,
    /// Chosen but not moved: still where they were (a feed interrupted or timed out).
    pub remaining: u64,
    pub errors: u64,
    /// The first error messages.
    pub error_messages: Vec<String>,
    /// Nothing was moved: the counts say what would have been.
    pub dry_run: bool,
}

impl Tally {
    pub fn new(dry_run: bool) -> Tally {
        Tally { dry_run, ..Tally::default() }
    }

    pub fn error(&mut self, message: String) {
        tracing::error!(error = %message, "entry not moved");
        self.errors += 1;
        if self.error_messages.len() < KEPT_ERRORS {
            self.error_messages.push(message);
        }
    }

    /// Adds another tally's counts (one per target queue of an unshunt).
    pub fn absorb(&mut self, other: Tally) {
        self.matched += other.matched;
        self.moved += other.moved;
        self.skipped_in_flight += other.skipped_in_flight;
        self.skipped_gone += other.skipped_gone;
        self.skipped_unreadable += other.skipped_unreadable;
        self.remaining += other.remaining;
        self.errors += other.errors;
        for m in other.error_messages {
            if self.error_messages.len() < KEPT_ERRORS {
                self.error_messages.push(m);
            }
        }
    }

    /// The counts balance.
    pub fn balanced(&self) -> bool {
        self.matched == self.moved + self.skipped_in_flight + self.skipped_gone + self.remaining + self.errors
    }
}

impl fmt::Display for Tally {
    /// `moved 412, skipped 3 in flight, 0 errors`, with the rarer counts when not zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run { "would move" } else { "moved" };
        write!(f, "{verb} {}, skipped {} in flight", self.moved, self.skipped_in_flight)?;
        if self.skipped_gone > 0 {
            write!(f, ", {} gone meanwhile", self.skipped_gone)?;
        }
        if self.skipped_unreadable > 0 {
            write!(f, ", {} unreadable", self.skipped_unreadable)?;
        }
        if self.remaining > 0 {
            write!(f, ", {} remaining", self.remaining)?;
        }
        write!(f, ", {} errors", self.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_the_numbers() {
        let t = Tally { matched: 415, moved: 412, skipped_in_flight: 3, ..Tally::default() };
        assert_eq!(t.to_string(), "moved 412, skipped 3 in flight, 0 errors");
        assert!(t.balanced());
        let t = Tally { matched: 9, moved: 5, skipped_gone: 1, remaining: 3, dry_run: true, ..Tally::default() };
        assert_eq!(t.to_string(), "would move 5, skipped 0 in flight, 1 gone meanwhile, 3 remaining, 0 errors");
    }
}
