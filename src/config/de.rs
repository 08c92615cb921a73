//! Deserialization helpers that check single values while the YAML parser still knows where
//! they are, so their errors carry file, line and column.

use serde::de::{Deserialize, Deserializer, Error};
use std::time::Duration;

/// Expands `${VAR}` references from the environment. `$$` is a literal `$`.
///
/// # Errors
/// A message naming the variable when it is unset or the reference is not closed.
pub fn expand_env(s: &str) -> Result<String, String> {
    expand_with(s, |name| std::env::var(name).ok())
}

/// [`expand_env`] with an injected look-up, for tests.
pub fn expand_with(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = r
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {s:?}"))?;
            let name = &r[..end];
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "${{{name}}} is not a valid environment variable name"
                ));
            }
            let value = lookup(name).ok_or_else(|| {
                format!("environment variable {name} is not set (referenced as ${{{name}}})")
            })?;
            out.push_str(&value);
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Deserializes through a visitor so that a rejected value is reported at its own line and
/// column (a check after deserializing would point at the enclosing mapping instead).
macro_rules! checked {
    ($name:ident, $out:ty, $expecting:literal, |$v:ident: $in:ident| $check:expr) => {
        struct $name($out);
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($expecting)
                    }
                    checked!(@visit $in, $out, $name, |$v| $check);
                }
                checked!(@entry d, $in, V)
            }
        }
    };
    (@entry $d:ident, str, $v:ident) => { $d.deserialize_str($v) };
    (@entry $d:ident, f64, $v:ident) => { $d.deserialize_any($v) };
    (@entry $d:ident, u64, $v:ident) => { $d.deserialize_any($v) };
    (@visit str, $out:ty, $name:ident, |$v:ident| $check:expr) => {
        fn visit_str<E: Error>(self, $v: &str) -> Result<$name, E> {
            let r: Result<$out, String> = $check;
            r.map($name).map_err(E::custom)
        }
    };
    (@visit f64, $out:ty, $name:ident, |$v:ident| $check:expr) => {
        fn visit_f64<E: Error>(self, $v: f64) -> Result<$name, E> {
            let r: Result<$out, String> = $check;
            r.map($name).map_err(E::custom)
        }
        fn visit_u64<E: Error>(self, n: u64) -> Result<$name, E> {
            self.visit_f64(n as f64)
        }
        fn visit_i64<E: Error>(self, n: i64) -> Result<$name, E> {
            self.visit_f64(n as f64)
        }
    };
    (@visit u64, $out:ty, $name:ident, |$v:ident| $check:expr) => {
        fn visit_u64<E: Error>(self, $v: u64) -> Result<$name, E> {
            let r: Result<$out, String> = $check;
            r.map($name).map_err(E::custom)
        }
        fn visit_i64<E: Error>(self, n: i64) -> Result<$name, E> {
            match u64::try_from(n) {
                Ok(n) => self.visit_u64(n),
                Err(_) => Err(E::custom(format!("{n} is negative: must be at least 1"))),
            }
        }
        fn visit_f64<E: Error>(self, n: f64) -> Result<$name, E> {
            Err(E::custom(format!("{n} is not a whole number")))
        }
    };
}

checked!(
    EnvStr,
    String,
    "a string (${VAR} is read from the environment)",
    |v: str| expand_env(v)
);
checked!(Secs, Duration, "a number of seconds", |v: f64| to_duration(
    v
));
checked!(
    Positive,
    u64,
    "a whole number of at least 1",
    |v: u64| if v == 0 {
        Err("must be at least 1".to_string())
    } else {
        Ok(v)
    }
);
/// Whole numbers between 1 and a bound: each setting's sane range, checked where the YAML
/// parser still knows the line and column.
macro_rules! bounded {
    ($name:ident, $fn:ident, $max:expr, $what:literal) => {
        checked!($name, u64, "a whole number", |v: u64| if v == 0 {
            Err("must be at least 1".to_string())
        } else if v > $max {
            Err(format!("{v} is too large: at most {} ({})", $max, $what))
        } else {
            Ok(v)
        });

        #[doc = concat!("A whole number from 1 to ", stringify!($max), " (", $what, ").")]
        pub fn $fn<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
            $name::deserialize(d).map(|v| v.0)
        }
    };
}

bounded!(Workers, workers, 1024, "parallel work and connections");
bounded!(Days, days, 36_500, "a hundred years");
bounded!(BatchSize, batch_size, 1_000_000, "points per request");
bounded!(MemoryMb, memory_mb, 1_048_576, "a terabyte");
bounded!(Slices, slices, 366, "slices of the range");

/// Optional [`days`].
pub fn opt_days<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<Days>::deserialize(d).map(|v| v.map(|v| v.0))
}

checked!(
    Hours,
    f64,
    "a number of hours",
    |v: f64| if v.is_finite() && v > 0.0 && v <= 876_000.0 {
        Ok(v)
    } else {
        Err(format!(
            "{v} is not a number of hours from more than 0 to 876000 (a hundred years)"
        ))
    }
);

/// A positive number of hours, at most a hundred years.
pub fn hours<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Hours::deserialize(d).map(|v| v.0)
}

checked!(Timeout, Duration, "a number of seconds", |v: f64| {
    to_duration(v).and_then(|d| {
        if d.is_zero() {
            Err("must be more than 0 seconds".to_string())
        } else {
            Ok(d)
        }
    })
});

/// A duration in seconds, more than 0 (a time limit).
pub fn timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Timeout::deserialize(d).map(|v| v.0)
}

checked!(Zone, chrono_tz::Tz, "an IANA time zone name", |v: str| v
    .parse::<chrono_tz::Tz>()
    .map_err(|_| format!(
        "unknown time zone {v:?}: use an IANA name such as America/New_York or UTC"
    )));
checked!(Cron, CronExpr, "a cron expression", |v: str| {
    CronExpr::parse(v)
});

/// A string with `${VAR}` expanded.
pub fn env_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    EnvStr::deserialize(d).map(|v| v.0)
}

/// An optional string with `${VAR}` expanded.
pub fn opt_env_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<EnvStr>::deserialize(d).map(|v| v.map(|v| v.0))
}

/// A whole number of at least 1.
pub fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Positive::deserialize(d).map(|v| v.0)
}

/// An optional whole number of at least 1.
pub fn opt_positive<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<Positive>::deserialize(d).map(|v| v.map(|v| v.0))
}

/// A duration written as a number of seconds (fractions allowed), at least 0.
pub fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Secs::deserialize(d).map(|v| v.0)
}

/// An optional duration in seconds.
pub fn opt_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Option::<Secs>::deserialize(d).map(|v| v.map(|v| v.0))
}

/// A duration given as seconds (`90`, `0.5`) or as a number with a unit (`30m`, `6h`, `2d`,
/// `1w`, `45s`).
struct Span(Duration);

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Span;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration: seconds, or a number with s, m, h, d or w (e.g. 2d)")
            }
            fn visit_f64<E: Error>(self, v: f64) -> Result<Span, E> {
                to_duration(v).map(Span).map_err(E::custom)
            }
            fn visit_u64<E: Error>(self, v: u64) -> Result<Span, E> {
                self.visit_f64(v as f64)
            }
            fn visit_i64<E: Error>(self, v: i64) -> Result<Span, E> {
                self.visit_f64(v as f64)
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Span, E> {
                let age = crate::input::parse_age(v).map_err(E::custom)?;
                let d = age
                    .to_std()
                    .map_err(|_| E::custom(format!("{v:?} is not a duration of 0 or more")))?;
                within_max(d).map(Span).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration written as seconds or with a unit (`30m`, `6h`, `2d`, `1w`).
pub fn span<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Span::deserialize(d).map(|v| v.0)
}

/// The longest duration any setting takes: ten years. Longer values are typos (and would
/// overflow the clock arithmetic they feed).
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 86_400);

fn to_duration(v: f64) -> Result<Duration, String> {
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{v} is not a duration: give seconds, 0 or more"));
    }
    let d = Duration::try_from_secs_f64(v).map_err(|e| format!("{v} seconds: {e}"))?;
    within_max(d)
}

fn within_max(d: Duration) -> Result<Duration, String> {
    if d > MAX_DURATION {
        return Err(format!(
            "{} seconds is too long: at most {} (ten years)",
            d.as_secs_f64(),
            MAX_DURATION.as_secs()
        ));
    }
    Ok(d)
}

/// A time zone name from the IANA database (`America/New_York`, `UTC`).
pub fn timezone<'de, D: Deserializer<'de>>(d: D) -> Result<chrono_tz::Tz, D::Error> {
    Zone::deserialize(d).map(|v| v.0)
}

/// A parsed cron expression together with the text it came from.
#[derive(Debug, Clone)]
pub struct CronExpr {
    /// The expression as written in the config.
    pub text: String,
    /// The parsed schedule.
    pub schedule: cron::Schedule,
}

impl CronExpr {
    /// Parses standard 5-field cron (`30 16 * * Mon-Fri`) or the `cron` crate's 6/7-field form
    /// with seconds (and years).
    ///
    /// # Errors
    /// The parser's message, with the expression.
    pub fn parse(text: &str) -> Result<CronExpr, String> {
        let fields = text.split_whitespace().count();
        let full = match fields {
            5 => format!("0 {text}"),
            6 | 7 => text.to_string(),
            n => {
                return Err(format!(
                    "cron expression {text:?} has {n} fields: use 5 (min hour day month weekday) or 6 with seconds first"
                ));
            }
        };
        let full = standard_weekdays(&full)?;
        let schedule = full.parse::<cron::Schedule>().map_err(|e| {
            let why = e.to_string();
            let why = why.lines().last().unwrap_or("").trim().to_string();
            format!("invalid cron expression {text:?}: {why}")
        })?;
        Ok(CronExpr {
            text: text.to_string(),
            schedule,
        })
    }
}

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Rewrites numeric days of week (standard cron: 0 or 7 = Sunday, 1 = Monday … 6 = Saturday)
/// as names, because the `cron` crate counts 1 = Sunday; `1-5` means Monday to Friday, as
/// everywhere else. `full` has seconds first (6 or 7 fields).
fn standard_weekdays(full: &str) -> Result<String, String> {
    let mut fields: Vec<String> = full.split_whitespace().map(str::to_string).collect();
    let Some(dow) = fields.get_mut(5) else {
        return Ok(full.to_string());
    };
    if !dow.chars().any(|c| c.is_ascii_digit()) {
        return Ok(full.to_string());
    }
    let day = |t: &str| -> Result<usize, String> {
        if let Some(i) = DAY_NAMES.iter().position(|n| n.eq_ignore_ascii_case(t)) {
            return Ok(i);
        }
        match t.parse::<usize>() {
            Ok(n) if n <= 7 => Ok(n % 7),
            _ => Err(format!(
                "day of week {t:?}: use 0-7 (0 and 7 are Sunday) or Sun-Sat"
            )),
        }
    };
    let mut set = [false; 7];
    for part in dow.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<usize>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("day of week step {s:?} must be a positive number"))?,
            ),
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" | "?" => (0, 6),
            r => match r.split_once('-') {
                // 7 closes a range as Sunday at the end of the week (5-7 = Fri, Sat, Sun).
                Some((a, b)) => (day(a)?, if b == "7" { 7 } else { day(b)? }),
                None if step > 1 => (day(r)?, 6),
                None => (day(r)?, day(r)?),
            },
        };
        if from > to {
            return Err(format!("day of week range {range:?} runs backwards"));
        }
        for d in (from..=to).step_by(step) {
            set[d % 7] = true;
        }
    }
    *dow = DAY_NAMES
        .iter()
        .zip(set)
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(",");
    Ok(fields.join(" "))
}

/// An optional cron expression.
pub fn opt_cron<'de, D: Deserializer<'de>>(d: D) -> Result<Option<CronExpr>, D::Error> {
    Option::<Cron>::deserialize(d).map(|v| v.map(|v| v.0))
}

/// A cron expression.
pub fn cron<'de, D: Deserializer<'de>>(d: D) -> Result<CronExpr, D::Error> {
    Cron::deserialize(d).map(|v| v.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_weekdays_follow_standard_cron() {
        let w = |e: &str| standard_weekdays(e).unwrap();
        assert_eq!(w("0 30 16 * * 1-5"), "0 30 16 * * MON,TUE,WED,THU,FRI");
        assert_eq!(w("0 0 0 * * 0,6"), "0 0 0 * * SUN,SAT");
        assert_eq!(w("0 0 0 * * 7"), "0 0 0 * * SUN");
        assert_eq!(w("0 0 0 * * 5-7"), "0 0 0 * * SUN,FRI,SAT");
        assert_eq!(w("0 0 0 * * */2"), "0 0 0 * * SUN,TUE,THU,SAT");
        assert_eq!(w("0 0 0 * * Mon-Fri"), "0 0 0 * * Mon-Fri");
        assert!(standard_weekdays("0 0 0 * * 8").is_err());
        assert!(standard_weekdays("0 0 0 * * 5-2").is_err());
        // And the schedule really fires Monday to Friday.
        let c = CronExpr::parse("30 16 * * 1-5").unwrap();
        let mon = chrono::DateTime::parse_from_rfc3339("2026-01-05T00:00:00Z").unwrap();
        let days: Vec<String> = c
            .schedule
            .after(&mon.with_timezone(&chrono::Utc))
            .take(6)
            .map(|d| d.format("%a").to_string())
            .collect();
        assert_eq!(days, ["Mon", "Tue", "Wed", "Thu", "Fri", "Mon"]);
    }

    #[test]
    fn expands_variables_and_dollar_escapes() {
        let look = |n: &str| (n == "PW").then(|| "s3cr$t".to_string());
        assert_eq!(expand_with("a${PW}b", look).unwrap(), "as3cr$tb");
        assert_eq!(expand_with("$$HOME", look).unwrap(), "$HOME");
        assert_eq!(expand_with("cost $5", look).unwrap(), "cost $5");
        assert!(
            expand_with("${MISSING}", look)
                .unwrap_err()
                .contains("MISSING")
        );
        assert!(expand_with("${PW", look).unwrap_err().contains("unclosed"));
        assert!(expand_with("${a-b}", look).is_err());
    }
}
