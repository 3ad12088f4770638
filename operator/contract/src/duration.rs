//! The one duration grammar of the CRD fields and of both command lines: jiff's "friendly"
//! format (`500ms`, `90s`, `5m`, `1h30m`, `2d`, with a day counted as 24 hours), or a bare
//! number of seconds, which the command lines took before they took units and which scripts
//! and older operators still pass. The CRD's schema pattern (`<number><ms|s|m|h>...`, see
//! `crd.rs`) admits a subset of it, so whatever the API server let through parses here.

use std::time::Duration;

use jiff::fmt::friendly::SpanParser;
use jiff::{SignedDuration, SpanRelativeTo};

/// How a duration is written, for `--help` texts.
pub const HELP: &str = "Durations are written like 30s, 5m, 1h30m, 500ms or 2d; a bare number counts as seconds.";

/// Parses a friendly format span; a parser holds no state, so one serves every call.
static PARSER: SpanParser = SpanParser::new();

/// A value that is not a duration, or a negative one.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a duration: write it like 30s, 5m, 1h30m or 500ms, or as a number of seconds")]
pub struct DurationError {
    value: String,
}

/// Parses `90`, `90s`, `1h30m`, `500ms`, `2d`.
pub fn parse(value: &str) -> Result<Duration, DurationError> {
    let error = || DurationError { value: value.to_owned() };
    let trimmed = value.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return trimmed.parse().map(Duration::from_secs).map_err(|_| error());
    }
    let span = PARSER.parse_span(trimmed).map_err(|_| error())?;
    // Months and years have no fixed length: refused here, as they would be by the CRD.
    let signed: SignedDuration = span.to_duration(SpanRelativeTo::days_are_24_hours()).map_err(|_| error())?;
    Duration::try_from(signed).map_err(|_| error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_schema_accepts() {
        assert_eq!(parse("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
    }

    #[test]
    fn parses_bare_seconds_and_days_as_the_command_lines_did() {
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(172_800)));
    }

    #[test]
    fn refuses_the_rest() {
        for bad in ["", "m", "5x", "-5s", "1mo", "1y", "soon"] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn the_error_shows_an_accepted_example() {
        let message = parse("5x").map(|_| ()).unwrap_err().to_string();
        assert!(message.contains("\"5x\"") && message.contains("1h30m"), "{message}");
    }
}
