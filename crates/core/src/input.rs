//! Times and ages as people type them — CLI flags (`--since 24h`, `--older-than 90d`) and API
//! query parameters (`since=2024-01-31`, `window=7d`) — parsed into typed values.

use crate::model::{TimeError, parse_time};
use chrono::{DateTime, Utc};

/// Parses an age like `90d`, `12h`, `30m`, `45s`, `2w`.
///
/// # Errors
/// [`AgeError`], which names the accepted forms.
pub fn parse_age(s: &str) -> Result<chrono::Duration, AgeError> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let bad = || AgeError(s.to_string());
    let n: i64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "s" => chrono::Duration::try_seconds(n),
        "m" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        "d" => chrono::Duration::try_days(n),
        "w" => chrono::Duration::try_weeks(n),
        _ => None,
    };
    d.ok_or_else(bad)
}

/// The moment `age` before now; an age reaching past the earliest representable time gives
/// that time instead of overflowing.
pub fn before_now(age: chrono::Duration) -> DateTime<Utc> {
    Utc::now()
        .checked_sub_signed(age)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Text that is not an age ([`parse_age`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration: use a number and s, m, h, d or w (e.g. 30m, 90d)")]
pub struct AgeError(pub String);

/// Parses `--since`/`--until`: an age (before now), RFC 3339, a date or nanoseconds.
///
/// # Errors
/// [`TimeError`], which names the accepted forms.
pub fn parse_point_in_time(s: &str) -> Result<DateTime<Utc>, TimeError> {
    match parse_age(s) {
        Ok(age) => Ok(before_now(age)),
        Err(_) => parse_time(s).map(DateTime::from_timestamp_nanos),
    }
}

/// [`parse_point_in_time`] as nanoseconds since the epoch; an age reaching past the earliest
/// representable time gives `i64::MIN`.
///
/// # Errors
/// [`TimeError`], which names the accepted forms.
pub fn parse_point_in_time_nanos(s: &str) -> Result<i64, TimeError> {
    match parse_age(s) {
        Ok(age) => Ok(before_now(age).timestamp_nanos_opt().unwrap_or(i64::MIN)),
        Err(_) => parse_time(s),
    }
}

/// A duration as people type it in a config file, in seconds: a number with s, m, h, d or w
/// (`30m`, `2h`, `90d`), the same forms every CLI flag and API parameter takes.
///
/// # Errors
/// [`AgeError`] naming the accepted forms.
pub fn duration_seconds(s: &str) -> Result<f64, AgeError> {
    let age = parse_age(s)?;
    // Seconds and nanoseconds separately: a long age has no nanosecond count.
    Ok(age.num_seconds() as f64 + f64::from(age.subsec_nanos()) / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_and_reject() {
        assert_eq!(parse_age("90d").unwrap(), chrono::Duration::days(90));
        assert_eq!(parse_age("12h").unwrap(), chrono::Duration::hours(12));
        assert!(parse_age("d").is_err());
        assert!(parse_age("5y").is_err());
        assert_eq!(
            parse_point_in_time("2024-01-01").unwrap().to_rfc3339(),
            "2024-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn huge_ages_do_not_overflow() {
        let t = parse_point_in_time("1000000000d").expect("an age, however large");
        assert_eq!(t, DateTime::<Utc>::MIN_UTC);
    }
}
