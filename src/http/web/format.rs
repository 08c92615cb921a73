//! How the status page words numbers, lags, durations and times: one place, over the wording
//! the CLI shares ([`crate::timefmt`]), so the page's markup (`page.rs`) holds no formatting.

use chrono::{DateTime, Utc};

/// Percent-encodes a path segment (everything but unreserved characters).
pub(super) fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(super) fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// `1,234,567`.
pub(super) fn fmt_int(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// `950`, `12k`, `1.2M`.
pub(super) fn fmt_compact(n: i64) -> String {
    let f = n as f64;
    if n < 1000 {
        n.to_string()
    } else if n < 10_000 {
        format!("{:.1}k", f / 1e3)
    } else if n < 1_000_000 {
        format!("{:.0}k", f / 1e3)
    } else {
        format!("{:.1}M", f / 1e6)
    }
}

/// `99.5 %`, `100 %`.
pub(super) fn fmt_pct(rate: f64) -> String {
    let p = rate * 100.0;
    if p >= 99.95 || p.fract() == 0.0 {
        format!("{p:.0} %")
    } else {
        format!("{p:.1} %")
    }
}

/// A coordinate with at most two decimals.
pub(super) fn fmt_f(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A lag as shown; `bound`: the backup cannot be asked, so its lag (from its checkpoint) is a
/// lower bound, marked `≥`.
pub(super) fn lag_text(lag: Option<f64>, bound: bool) -> String {
    match lag {
        None => "—".into(),
        Some(l) if bound => format!("≥ {}", fmt_lag(l)),
        Some(l) => fmt_lag(l),
    }
}

/// The title of a lag that is a lower bound.
pub(super) fn lag_title(lag: Option<f64>, bound: bool) -> Option<&'static str> {
    (bound && lag.is_some())
        .then_some("the backup cannot be asked: at least this much, from its checkpoint")
}

/// A lag or interval in seconds, in the one wording of [`crate::timefmt::duration`].
pub(super) fn fmt_lag(secs: f64) -> String {
    crate::timefmt::duration(secs.max(0.0))
}

/// An interval, as [`crate::timefmt::every`].
pub(super) fn fmt_every(secs: f64) -> String {
    crate::timefmt::every(secs)
}

/// A run's wall time, as [`crate::timefmt::run_time`].
pub(super) fn fmt_duration(ms: i64) -> String {
    crate::timefmt::run_time(ms)
}

/// A data timestamp (ns) as `2026-01-05 16:30:00`, under a heading that names UTC (times
/// standing alone use [`crate::timefmt::people`], which names it itself).
pub(super) fn fmt_ns(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A wall-clock time as `2026-01-05 16:30:12` (UTC, named by the heading or the text around
/// it).
pub(super) fn fmt_stored(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_durations_read_well() {
        assert_eq!(fmt_int(0), "0");
        assert_eq!(fmt_int(1234567), "1,234,567");
        assert_eq!(fmt_int(-1000), "-1,000");
        assert_eq!(fmt_compact(999), "999");
        assert_eq!(fmt_compact(1500), "1.5k");
        assert_eq!(fmt_compact(25_000), "25k");
        assert_eq!(fmt_compact(2_500_000), "2.5M");
        assert_eq!(fmt_pct(1.0), "100 %");
        assert_eq!(fmt_pct(0.5), "50 %");
        assert_eq!(fmt_pct(0.987), "98.7 %");
        assert_eq!(fmt_lag(-3.0), "0s");
        assert_eq!(fmt_lag(300.0), "5m");
        assert_eq!(fmt_f(12.5), "12.5");
        assert_eq!(fmt_f(3.0), "3");
        assert_eq!(path_segment("a b/ü"), "a%20b%2F%C3%BC");
        assert_eq!(truncate("abcdef", 3), "abc…");
    }
}
