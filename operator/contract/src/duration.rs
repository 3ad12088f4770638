//! Go-style durations as the CRD accepts them (`500ms`, `90s`, `30m`, `1h30m`): the same
//! grammar as the schema's pattern, so whatever the API server let through parses here.

use std::time::Duration;

/// A duration string that does not follow the `<number><unit>...` form.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a duration: write a number followed by ms, s, m or h, such as 90s, 30m or 1h30m")]
pub struct DurationError {
    value: String,
}

/// Parses `1h30m`, `90s`, `500ms`.
pub fn parse(value: &str) -> Result<Duration, DurationError> {
    let error = || DurationError { value: value.to_owned() };
    let mut total = Duration::ZERO;
    let mut rest = value;
    if rest.is_empty() {
        return Err(error());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let number: u64 = rest.get(..digits).and_then(|d| d.parse().ok()).ok_or_else(error)?;
        rest = rest.get(digits..).unwrap_or_default();
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else {
            return Err(error());
        };
        let part = u32::try_from(number).ok().and_then(|n| unit.checked_mul(n)).ok_or_else(error)?;
        total = total.checked_add(part).ok_or_else(error)?;
        rest = rest.get(len..).unwrap_or_default();
    }
    Ok(total)
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
    fn refuses_the_rest() {
        for bad in ["", "30", "m", "1.5h", "30 m", "-5s", "1d"] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
