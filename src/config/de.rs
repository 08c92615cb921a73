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

/// A string with `${VAR}` expanded.
pub fn env_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let raw = String::deserialize(d)?;
    expand_env(&raw).map_err(D::Error::custom)
}

/// An optional string with `${VAR}` expanded.
pub fn opt_env_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(raw) => expand_env(&raw).map(Some).map_err(D::Error::custom),
        None => Ok(None),
    }
}

/// A whole number of at least 1.
pub fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = u64::deserialize(d)?;
    if v == 0 {
        return Err(D::Error::custom("must be at least 1"));
    }
    Ok(v)
}

/// A duration written as a number of seconds (fractions allowed), at least 0.
pub fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = f64::deserialize(d)?;
    to_duration(v).map_err(D::Error::custom)
}

/// An optional duration in seconds.
pub fn opt_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match Option::<f64>::deserialize(d)? {
        Some(v) => to_duration(v).map(Some).map_err(D::Error::custom),
        None => Ok(None),
    }
}

fn to_duration(v: f64) -> Result<Duration, String> {
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{v} is not a duration: give seconds, 0 or more"));
    }
    Duration::try_from_secs_f64(v).map_err(|e| format!("{v} seconds: {e}"))
}

/// A time zone name from the IANA database (`America/New_York`, `UTC`).
pub fn timezone<'de, D: Deserializer<'de>>(d: D) -> Result<chrono_tz::Tz, D::Error> {
    let name = String::deserialize(d)?;
    name.parse::<chrono_tz::Tz>().map_err(|_| {
        D::Error::custom(format!(
            "unknown time zone {name:?}: use an IANA name such as America/New_York or UTC"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let schedule = full
            .parse::<cron::Schedule>()
            .map_err(|e| format!("invalid cron expression {text:?}: {e}"))?;
        Ok(CronExpr {
            text: text.to_string(),
            schedule,
        })
    }
}

/// An optional cron expression.
pub fn opt_cron<'de, D: Deserializer<'de>>(d: D) -> Result<Option<CronExpr>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(text) => CronExpr::parse(&text).map(Some).map_err(D::Error::custom),
        None => Ok(None),
    }
}
