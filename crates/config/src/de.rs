//! Deserialization helpers that check single values while the YAML parser still knows where
//! they are, so their errors carry file, line and column.

use serde::de::{Deserialize, Deserializer, Error};
use std::time::Duration;

/// A single value that breaks a rule, in words: what serde's `custom` error carries to the
/// file, line and column of the value (see [`crate::ConfigError::Parse`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl std::ops::Deref for Invalid {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// Expands `${VAR}` references from the environment. `$$` is a literal `$`.
///
/// # Errors
/// A message naming the variable when it is unset or the reference is not closed.
pub fn expand_env(s: &str) -> Result<String, Invalid> {
    expand_with(s, |name| std::env::var(name).ok())
}

/// [`expand_env`] with an injected look-up, for tests.
pub fn expand_with(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, Invalid> {
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
                .ok_or_else(|| Invalid(format!("unclosed ${{ in {s:?}")))?;
            let inner = &r[..end];
            // `${VAR:-default}`: the default when VAR is unset or empty.
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(Invalid(format!(
                    "${{{inner}}} is not a valid environment variable name (write ${{VAR}} or ${{VAR:-default}})"
                )));
            }
            let value = match (lookup(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => v,
                (None, Some(d)) => d.to_string(),
                (None, None) => match lookup(name) {
                    Some(empty) => empty,
                    None => {
                        return Err(Invalid(format!(
                            "environment variable {name} is not set (referenced as ${{{name}}}; write ${{{name}:-}} if it may be missing)"
                        )));
                    }
                },
            };
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
    // A duration: a number in the setting's own unit (`$unit` seconds), or text with a unit
    // (`30m`, `2h`, `90d`) in the grammar every CLI flag and API parameter takes.
    ($name:ident, $out:ty, $expecting:literal, in $unit:expr, |$v:ident: $in:ident| $check:expr) => {
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
                    fn visit_str<E: Error>(self, text: &str) -> Result<$name, E> {
                        let secs = dms_core::input::duration_seconds(text).map_err(E::custom)?;
                        checked!(@from_secs self, secs, $unit, $in, text)
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
    (@from_secs $s:ident, $secs:ident, $unit:expr, f64, $text:ident) => {
        $s.visit_f64($secs / $unit)
    };
    // Whole units (only days take this form).
    (@from_secs $s:ident, $secs:ident, $unit:expr, u64, $text:ident) => {{
        let n = $secs / $unit;
        if n.fract() != 0.0 {
            return Err(E::custom(format!("{:?} is not a whole number of days", $text)));
        }
        $s.visit_u64(n as u64)
    }};
    (@entry $d:ident, str, $v:ident) => { $d.deserialize_str($v) };
    (@entry $d:ident, f64, $v:ident) => { $d.deserialize_any($v) };
    (@entry $d:ident, u64, $v:ident) => { $d.deserialize_any($v) };
    (@visit str, $out:ty, $name:ident, |$v:ident| $check:expr) => {
        fn visit_str<E: Error>(self, $v: &str) -> Result<$name, E> {
            let r: Result<$out, Invalid> = $check;
            r.map($name).map_err(E::custom)
        }
    };
    (@visit f64, $out:ty, $name:ident, |$v:ident| $check:expr) => {
        fn visit_f64<E: Error>(self, $v: f64) -> Result<$name, E> {
            let r: Result<$out, Invalid> = $check;
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
            let r: Result<$out, Invalid> = $check;
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
checked!(
    Secs,
    Duration,
    "a number of seconds or a duration (30s, 5m, 2h)",
    in 1.0,
    |v: f64| to_duration(v)
);
checked!(
    Positive,
    u64,
    "a whole number of at least 1",
    |v: u64| if v == 0 {
        Err(Invalid("must be at least 1".to_string()))
    } else {
        Ok(v)
    }
);
/// Whole numbers between 1 and a bound: each setting's sane range, checked where the YAML
/// parser still knows the line and column.
macro_rules! bounded {
    ($name:ident, $fn:ident, $max:expr, $what:literal) => {
        checked!($name, u64, "a whole number", |v: u64| if v == 0 {
            Err(Invalid("must be at least 1".to_string()))
        } else if v > $max {
            Err(Invalid(format!(
                "{v} is too large: at most {} ({})",
                $max, $what
            )))
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
checked!(
    Days,
    u64,
    "a whole number of days or a duration in whole days (90d, 2w)",
    in 86_400.0,
    |v: u64| if v == 0 {
        Err(Invalid("must be at least 1".to_string()))
    } else if v > 36_500 {
        Err(Invalid(format!("{v} is too large: at most 36500 (a hundred years)")))
    } else {
        Ok(v)
    }
);

/// A whole number of days from 1 to 36500 (a hundred years), or a duration in whole days.
pub fn days<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Days::deserialize(d).map(|v| v.0)
}
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
    "a number of hours or a duration (36h, 2d)",
    in 3600.0,
    |v: f64| if v.is_finite() && v > 0.0 && v <= 876_000.0 {
        Ok(v)
    } else {
        Err(Invalid(format!(
            "{v} is not a number of hours from more than 0 to 876000 (a hundred years)"
        )))
    }
);

/// A positive number of hours, at most a hundred years.
pub fn hours<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Hours::deserialize(d).map(|v| v.0)
}

checked!(Timeout, Duration, "a number of seconds or a duration (30m, 1h)", in 1.0, |v: f64| {
    to_duration(v).and_then(|d| {
        if d.is_zero() {
            Err(Invalid("must be more than 0 seconds".to_string()))
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
    .map_err(|_| Invalid(format!(
        "unknown time zone {v:?}: use an IANA name such as America/New_York or UTC"
    ))));
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
                let age = dms_core::input::parse_age(v).map_err(E::custom)?;
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

fn to_duration(v: f64) -> Result<Duration, Invalid> {
    if !v.is_finite() || v < 0.0 {
        return Err(Invalid(format!(
            "{v} is not a duration: give seconds, 0 or more"
        )));
    }
    let d = Duration::try_from_secs_f64(v).map_err(|e| Invalid(format!("{v} seconds: {e}")))?;
    within_max(d)
}

fn within_max(d: Duration) -> Result<Duration, Invalid> {
    if d > MAX_DURATION {
        return Err(Invalid(format!(
            "{} seconds is too long: at most {} (ten years)",
            d.as_secs_f64(),
            MAX_DURATION.as_secs()
        )));
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
    /// Parses standard 5-field cron (`30 16 * * Mon-Fri`), 6 fields with seconds first, 7 with
    /// seconds first and a year last, or a macro (`@hourly`, `@daily`, `@weekly`, …). Numeric
    /// weekdays are standard cron's (0 and 7 = Sunday).
    ///
    /// # Errors
    /// What is wrong, in words: the field count, or the field and value that is out of range.
    pub fn parse(text: &str) -> Result<CronExpr, Invalid> {
        let expr = match text.trim() {
            m if m.starts_with('@') => macro_fields(m)?,
            t => t,
        };
        let full = match expr.split_whitespace().count() {
            5 => format!("0 {expr}"),
            6 | 7 => expr.split_whitespace().collect::<Vec<_>>().join(" "),
            0 => {
                return Err(Invalid(format!(
                    "the cron expression is empty: {ACCEPTED_SHAPES}"
                )));
            }
            n => {
                let fields = if n == 1 { "field" } else { "fields" };
                return Err(Invalid(format!(
                    "cron expression {text:?} has {n} {fields}: {ACCEPTED_SHAPES}"
                )));
            }
        };
        check_fields(&full)
            .map_err(|why| Invalid(format!("invalid cron expression {text:?}: {why}")))?;
        let full = standard_weekdays(&full)
            .map_err(|why| Invalid(format!("invalid cron expression {text:?}: {why}")))?;
        let schedule = full.parse::<cron::Schedule>().map_err(|e| {
            // Not expected after check_fields; the crate's own words, as a last resort.
            let why = e.to_string();
            let why = why.lines().last().unwrap_or("").trim().to_string();
            Invalid(format!("invalid cron expression {text:?}: {why}"))
        })?;
        Ok(CronExpr {
            text: text.to_string(),
            schedule,
        })
    }
}

/// What a schedule may look like, for the messages about its shape.
const ACCEPTED_SHAPES: &str = "use 5 fields (minute hour day-of-month month day-of-week), 6 \
     with seconds first, 7 with seconds first and a year last, or one of @hourly, @daily \
     (@midnight), @weekly, @monthly, @yearly (@annually)";

/// The 5 fields a macro stands for (standard cron's meaning; `@weekly` is Sunday at 00:00).
fn macro_fields(name: &str) -> Result<&'static str, Invalid> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "@hourly" => "0 * * * *",
        "@daily" | "@midnight" => "0 0 * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@reboot" => {
            return Err(Invalid(
                "@reboot is not a schedule dms can keep: use catch_up to run after downtime"
                    .to_string(),
            ));
        }
        _ => {
            return Err(Invalid(format!(
                "unknown cron macro {name:?}: use @hourly, @daily (@midnight), @weekly, \
                 @monthly or @yearly (@annually)"
            )));
        }
    })
}

/// One field of a 6- or 7-field expression: its name in messages, its range, and the names it
/// takes.
struct FieldSpec {
    /// The field's name in messages.
    what: &'static str,
    /// The smallest value.
    min: u32,
    /// The largest value.
    max: u32,
    /// The spellings of each name, from the value `min` on (empty: numbers only).
    names: &'static [&'static str],
    /// `?` (any) is allowed: the day fields.
    any: bool,
    /// What the field takes, in words.
    hint: &'static str,
}

/// The spellings of each month the `cron` crate takes, January first.
const MONTH_NAMES: [&str; 12] = [
    "JAN JANUARY",
    "FEB FEBRUARY",
    "MAR MARCH",
    "APR APRIL",
    "MAY",
    "JUN JUNE",
    "JUL JULY",
    "AUG AUGUST",
    "SEP SEPTEMBER",
    "OCT OCTOBER",
    "NOV NOVEMBER",
    "DEC DECEMBER",
];

/// The spellings of each weekday the `cron` crate takes, Sunday first.
const WEEKDAY_NAMES: [&str; 7] = [
    "SUN SUNDAY",
    "MON MONDAY",
    "TUE TUES TUESDAY",
    "WED WEDNESDAY",
    "THU THURS THURSDAY",
    "FRI FRIDAY",
    "SAT SATURDAY",
];

const FIELDS: [FieldSpec; 7] = [
    FieldSpec {
        what: "second",
        min: 0,
        max: 59,
        names: &[],
        any: false,
        hint: "0–59",
    },
    FieldSpec {
        what: "minute",
        min: 0,
        max: 59,
        names: &[],
        any: false,
        hint: "0–59",
    },
    FieldSpec {
        what: "hour",
        min: 0,
        max: 23,
        names: &[],
        any: false,
        hint: "0–23",
    },
    FieldSpec {
        what: "day of month",
        min: 1,
        max: 31,
        names: &[],
        any: true,
        hint: "1–31",
    },
    FieldSpec {
        what: "month",
        min: 1,
        max: 12,
        names: &MONTH_NAMES,
        any: false,
        hint: "1–12 or Jan–Dec",
    },
    FieldSpec {
        what: "day of week",
        min: 0,
        max: 7,
        names: &WEEKDAY_NAMES,
        any: true,
        hint: "0–7 (0 and 7 are Sunday) or Sun–Sat",
    },
    FieldSpec {
        what: "year",
        min: 1970,
        max: 2100,
        names: &[],
        any: false,
        hint: "1970–2100",
    },
];

/// Checks every field of a 6- or 7-field expression against standard cron's ranges, so a
/// mistake is named in words ("hour 24 is out of range 0–23") rather than in the `cron`
/// crate's.
fn check_fields(full: &str) -> Result<(), Invalid> {
    for (field, spec) in full.split_whitespace().zip(&FIELDS) {
        for part in field.split(',') {
            check_part(part, spec)?;
        }
    }
    Ok(())
}

fn check_part(part: &str, spec: &FieldSpec) -> Result<(), Invalid> {
    let what = spec.what;
    if part.is_empty() {
        return Err(Invalid(format!(
            "the {what} field has an empty item (two commas, or one at an end)"
        )));
    }
    let (range, step) = match part.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (part, None),
    };
    match range {
        "*" => {}
        "?" if spec.any => {}
        "?" => {
            return Err(Invalid(format!(
                "? (any) is only for the day fields, not the {what}"
            )));
        }
        r => match r.split_once('-') {
            Some((a, b)) => {
                // 7 closes a weekday range as Sunday at the end of the week (5-7).
                let (from, to) = (value(a, spec)?, value(b, spec)?);
                if from > to {
                    return Err(Invalid(format!("{what} range {r} runs backwards")));
                }
            }
            None => {
                value(r, spec)?;
            }
        },
    }
    if let Some(s) = step {
        let most = (spec.max - spec.min).max(1);
        match s.parse::<u32>() {
            Ok(n) if (1..=most).contains(&n) => {}
            Ok(n) => return Err(Invalid(format!("{what} step {n} is out of range 1–{most}"))),
            Err(_) => return Err(Invalid(format!("{what} step {s:?} is not a whole number"))),
        }
    }
    Ok(())
}

/// One value of a field: a number in its range or one of its names (`Mon`, `Monday`, `Jan`,
/// `January`, any case), as its number (weekdays: 0 = Sunday, months: 1 = January).
fn value(t: &str, spec: &FieldSpec) -> Result<u32, Invalid> {
    let what = spec.what;
    if let Ok(n) = t.parse::<u32>() {
        if n < spec.min || n > spec.max {
            let sunday = if spec.max == 7 {
                " (0 and 7 are Sunday)"
            } else {
                ""
            };
            return Err(Invalid(format!(
                "{what} {n} is out of range {}–{}{sunday}",
                spec.min, spec.max
            )));
        }
        return Ok(n);
    }
    if spec.names.is_empty() {
        return Err(Invalid(format!(
            "{what} {t:?} is not a number ({})",
            spec.hint
        )));
    }
    let upper = t.to_ascii_uppercase();
    spec.names
        .iter()
        .position(|names| names.split(' ').any(|n| n == upper))
        .map(|i| spec.min + i as u32)
        .ok_or_else(|| Invalid(format!("{what} {t:?} is not {}", spec.hint)))
}

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Rewrites numeric days of week (standard cron: 0 or 7 = Sunday, 1 = Monday … 6 = Saturday)
/// as names, because the `cron` crate counts 1 = Sunday; `1-5` means Monday to Friday, as
/// everywhere else. `full` has seconds first (6 or 7 fields).
fn standard_weekdays(full: &str) -> Result<String, Invalid> {
    let mut fields: Vec<String> = full.split_whitespace().map(str::to_string).collect();
    let Some(dow) = fields.get_mut(5) else {
        return Ok(full.to_string());
    };
    if !dow.chars().any(|c| c.is_ascii_digit()) {
        return Ok(full.to_string());
    }
    let day = |t: &str| value(t, &FIELDS[5]).map(|n| n as usize % 7);
    let mut set = [false; 7];
    for part in dow.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<usize>().ok().filter(|s| *s > 0).ok_or_else(|| {
                    Invalid(format!("day of week step {s:?} must be a positive number"))
                })?,
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
            return Err(Invalid(format!(
                "day of week range {range:?} runs backwards"
            )));
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
    fn macros_stand_for_their_standard_fields() {
        let fields = |e: &str| {
            CronExpr::parse(e)
                .map(|c| c.schedule.source().to_string())
                .unwrap()
        };
        assert_eq!(fields("@hourly"), "0 0 * * * *");
        assert_eq!(fields("@daily"), "0 0 0 * * *");
        assert_eq!(fields("@midnight"), "0 0 0 * * *");
        // Sunday, written the way the crate counts it.
        assert_eq!(fields("@weekly"), "0 0 0 * * SUN");
        assert_eq!(fields("@monthly"), "0 0 0 1 * *");
        assert_eq!(fields("@yearly"), "0 0 0 1 1 *");
        assert_eq!(fields("@Annually"), "0 0 0 1 1 *");
        // The text shown to people stays as written.
        assert_eq!(CronExpr::parse("@daily").unwrap().text, "@daily");
        let err = CronExpr::parse("@fortnightly").unwrap_err();
        assert!(err.contains("unknown cron macro \"@fortnightly\""), "{err}");
        assert!(err.contains("@hourly, @daily"), "{err}");
        assert!(CronExpr::parse("@reboot").unwrap_err().contains("catch_up"));
    }

    #[test]
    fn field_counts_are_named_with_every_accepted_shape() {
        let err = CronExpr::parse("* * * *").unwrap_err();
        assert!(
            err.starts_with("cron expression \"* * * *\" has 4 fields: use 5 fields"),
            "{err}"
        );
        assert!(
            err.contains("7 with seconds first and a year last"),
            "{err}"
        );
        assert!(err.contains("@daily"), "{err}");
        let err = CronExpr::parse("daily").unwrap_err();
        assert!(err.contains("has 1 field: "), "{err}");
        assert!(CronExpr::parse("  ").unwrap_err().contains("is empty"));
        // What the message offers is accepted.
        for ok in [
            "30 16 * * *",
            "0 30 16 * * *",
            "0 30 16 * * * 2030",
            "@weekly",
        ] {
            assert!(CronExpr::parse(ok).is_ok(), "{ok}");
        }
        assert!(
            CronExpr::parse("0 0 0 * * * 2030 1")
                .unwrap_err()
                .contains("has 8 fields")
        );
    }

    #[test]
    fn out_of_range_values_are_named_in_words() {
        let why = |e: &str| CronExpr::parse(e).unwrap_err();
        for (expr, want) in [
            ("0 24 * * *", "hour 24 is out of range 0–23"),
            ("60 * * * *", "minute 60 is out of range 0–59"),
            ("0 0 * * * * *", "nothing"),
            ("0 0 32 * *", "day of month 32 is out of range 1–31"),
            ("0 0 0 * * *", "nothing"),
            ("0 0 0 * *", "day of month 0 is out of range 1–31"),
            ("0 0 * 13 *", "month 13 is out of range 1–12"),
            ("0 0 * Foo *", "month \"Foo\" is not 1–12 or Jan–Dec"),
            (
                "0 0 * * 8",
                "day of week 8 is out of range 0–7 (0 and 7 are Sunday)",
            ),
            ("0 0 * * Funday", "day of week \"Funday\" is not 0–7"),
            ("0 0 * * 5-2", "day of week range 5-2 runs backwards"),
            ("0 20-8 * * *", "hour range 20-8 runs backwards"),
            ("*/0 * * * *", "minute step 0 is out of range 1–59"),
            ("0 */24 * * *", "hour step 24 is out of range 1–23"),
            ("x * * * *", "minute \"x\" is not a number (0–59)"),
            ("0,,5 * * * *", "the minute field has an empty item"),
            ("? * * * *", "? (any) is only for the day fields"),
            ("60 0 0 * * *", "second 60 is out of range 0–59"),
            ("0 0 0 * * * 1969", "year 1969 is out of range 1970–2100"),
        ] {
            if want == "nothing" {
                assert!(CronExpr::parse(expr).is_ok(), "{expr}");
                continue;
            }
            let err = why(expr);
            assert!(
                err.starts_with(&format!("invalid cron expression {expr:?}: ")),
                "{expr}: {err}"
            );
            assert!(err.contains(want), "{expr}: {err}");
            // Never the crate's own phrasing ("Hours must be less than 23").
            assert!(!err.contains("must be"), "{expr}: {err}");
        }
        // Names the crate takes are taken.
        for ok in [
            "0 0 * January Monday",
            "0 0 * * tues-thurs",
            "0 0 * * 1-7",
            "0 0 * * Fri-7",
        ] {
            assert!(CronExpr::parse(ok).is_ok(), "{ok}");
        }
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
        assert_eq!(expand_with("${MISSING:-x y}", look).unwrap(), "x y");
        assert_eq!(expand_with("${PW:-other}", look).unwrap(), "s3cr$t");
        assert_eq!(expand_with("${MISSING:-}", look).unwrap(), "");
        let empty = |n: &str| (n == "E").then(String::new);
        assert_eq!(expand_with("${E:-d}", empty).unwrap(), "d");
        assert_eq!(expand_with("${E}", empty).unwrap(), "");
    }
}
