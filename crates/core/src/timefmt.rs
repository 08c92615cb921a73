//! Times and durations for people: one wording in every CLI table, summary line and the
//! status page. Times: seconds precision, UTC, the zone named (`2026-12-02 10:32:53 UTC`).
//! Durations: at most two units, no decimals past a minute (`42s`, `5m`, `3h 12m`, `2d 4h`).
//! Machine formats (`--json`, the API, the history file) are not made here.

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

/// A lag or an age in seconds: `0s`, `42s`, `5m`, `3h`, `3h 12m`, `2d`, `2d 4h` (rounded to
/// the second, the smaller unit cut, never rounded up); negative ones lead with `-`.
pub fn duration(secs: f64) -> String {
    let sign = if secs < 0.0 { "-" } else { "" };
    let s = secs.abs().round().min(1e15) as i64;
    let text = match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 if s % 3600 / 60 == 0 => format!("{}h", s / 3600),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ if s % 86_400 / 3600 == 0 => format!("{}d", s / 86_400),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    };
    format!("{sign}{text}")
}

/// An interval: tenths of a second below ten seconds when it has them (`0.5s`), else as
/// [`duration`].
pub fn every(secs: f64) -> String {
    if secs < 10.0 && secs.fract() != 0.0 {
        format!("{secs:.1}s")
    } else {
        duration(secs)
    }
}

/// How long something ran, from milliseconds: `0.4s`, `12s`, `3m 5s`, `2h 4m`.
pub fn run_time(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 60_000 {
        format!("{}s", ms / 1000)
    } else if ms < 3_600_000 {
        format!("{}m {}s", ms / 60_000, ms % 60_000 / 1000)
    } else {
        duration(ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_duration_wording() {
        assert_eq!(duration(0.0), "0s");
        assert_eq!(duration(59.4), "59s");
        assert_eq!(duration(300.0), "5m");
        assert_eq!(duration(3600.0), "1h");
        assert_eq!(duration(3.0 * 3600.0 + 720.0), "3h 12m");
        assert_eq!(duration(86_400.0), "1d");
        assert_eq!(duration(2.0 * 86_400.0 + 4.0 * 3600.0), "2d 4h");
        assert_eq!(duration(-90.0), "-1m");
        assert_eq!(every(0.5), "0.5s");
        assert_eq!(every(60.0), "1m");
        assert_eq!(run_time(420), "0.4s");
        assert_eq!(run_time(12_300), "12s");
        assert_eq!(run_time(185_000), "3m 5s");
        assert_eq!(run_time(2 * 3_600_000 + 4 * 60_000), "2h 4m");
    }

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
