//! Times for people: one format in every CLI table, summary line and the status page —
//! seconds precision, UTC, the zone named (`2026-12-02 10:32:53 UTC`). Machine formats
//! (`--json`, the API, the history file) are not made here.

use crate::model::Nanos;
use chrono::{DateTime, TimeZone, Utc};

/// The people format of a wall-clock or data time: `2026-12-02 10:32:53 UTC`. Sub-second
/// digits are dropped (truncated, so a time never shows later than it is).
pub fn people<Z: TimeZone>(t: &DateTime<Z>) -> String {
    t.with_timezone(&Utc)
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

/// [`people`] for a data time in nanoseconds since the epoch.
pub fn people_nanos(t: Nanos) -> String {
    people(&DateTime::from_timestamp_nanos(t))
}

/// [`people`] for a time already written as RFC 3339 (as the reports that also serve
/// `--json` carry them); text that is not RFC 3339 is returned as it is.
pub fn people_text(text: &str) -> String {
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) => people(&t),
        Err(_) => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_format_whatever_the_source() {
        let t = DateTime::parse_from_rfc3339("2026-12-02T11:32:53.987654321+01:00").unwrap();
        assert_eq!(people(&t), "2026-12-02 10:32:53 UTC");
        let ns = t.timestamp_nanos_opt().unwrap();
        assert_eq!(people_nanos(ns), "2026-12-02 10:32:53 UTC");
        assert_eq!(
            people_text("2026-12-02T10:32:53.5Z"),
            "2026-12-02 10:32:53 UTC"
        );
        assert_eq!(
            people_text("2026-12-02T10:32:53Z"),
            "2026-12-02 10:32:53 UTC"
        );
        assert_eq!(people_text("soon"), "soon");
        let ny = chrono_tz::America::New_York
            .with_ymd_and_hms(2026, 12, 2, 5, 32, 53)
            .unwrap();
        assert_eq!(people(&ny), "2026-12-02 10:32:53 UTC");
    }
}
