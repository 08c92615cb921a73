//! Serde helpers for the forms people write in option tables (Lua `dms.sync{...}`, …): one
//! name or a list of names, a time as integer nanoseconds or RFC 3339 text (or, where a
//! command line would take one, a date or an age before now too).

use crate::model::{Nanos, parse_time};
use serde::{Deserialize, Deserializer};

/// A name or a list of names; absent or `null` is `None`.
///
/// # Errors
/// A value that is neither a string nor a list of strings.
pub fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a string or a list of strings")]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Option::<OneOrMany>::deserialize(d)?.map(|v| match v {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    }))
}

/// A time as integer nanoseconds since the epoch or RFC 3339 text; absent or `null` is `None`.
///
/// # Errors
/// Another type, or text that is not RFC 3339.
pub fn time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Nanos>, D::Error> {
    #[derive(Deserialize)]
    #[serde(
        untagged,
        expecting = "integer nanoseconds or an RFC 3339 time (2026-12-01T00:00:00Z)"
    )]
    enum Time {
        Nanos(Nanos),
        Text(String),
    }
    match Option::<Time>::deserialize(d)? {
        None => Ok(None),
        Some(Time::Nanos(n)) => Ok(Some(n)),
        Some(Time::Text(s)) => parse_time(&s).map(Some).map_err(serde::de::Error::custom),
    }
}

/// A point in time as `--since`/`--until` take it ([`crate::input::parse_point_in_time`]):
/// integer nanoseconds, RFC 3339, a date, or an age before now (`30d`); absent or `null` is
/// `None`.
///
/// # Errors
/// Another type, or text in none of those forms.
pub fn point_in_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Nanos>, D::Error> {
    #[derive(Deserialize)]
    #[serde(
        untagged,
        expecting = "integer nanoseconds, an RFC 3339 time (2026-12-01T00:00:00Z), a date (2026-12-01) or an age (30d)"
    )]
    enum Time {
        Nanos(Nanos),
        Text(String),
    }
    match Option::<Time>::deserialize(d)? {
        None => Ok(None),
        Some(Time::Nanos(n)) => Ok(Some(n)),
        Some(Time::Text(s)) => crate::input::parse_point_in_time(&s)
            .map(|t| Some(t.timestamp_nanos_opt().unwrap_or(Nanos::MIN)))
            .map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct Opts {
        #[serde(default, deserialize_with = "one_or_many")]
        names: Option<Vec<String>>,
        #[serde(default, deserialize_with = "time")]
        since: Option<Nanos>,
        #[serde(default, deserialize_with = "point_in_time")]
        until: Option<Nanos>,
    }

    #[test]
    fn a_point_in_time_also_takes_a_date_and_an_age() {
        let o: Opts = serde_json::from_str(r#"{"until":"1970-01-02"}"#).expect("a date");
        assert_eq!(o.until, Some(86_400_000_000_000));
        let o: Opts = serde_json::from_str(r#"{"until":7}"#).expect("nanoseconds");
        assert_eq!(o.until, Some(7));
        let o: Opts = serde_json::from_str(r#"{"until":"1d"}"#).expect("an age");
        let day_ago = crate::model::now_nanos() - 86_400_000_000_000;
        assert!(
            o.until
                .is_some_and(|t| (t - day_ago).abs() < 60_000_000_000)
        );
        let e = serde_json::from_str::<Opts>(r#"{"until":"soon"}"#).expect_err("text");
        assert!(e.to_string().contains("cannot read time"), "{e}");
    }

    #[test]
    fn a_name_or_a_list_and_a_time_in_either_form() {
        let o: Opts = serde_json::from_str(r#"{"names":"US.AAPL","since":5}"#).expect("valid");
        assert_eq!(o.names, Some(vec!["US.AAPL".to_string()]));
        assert_eq!(o.since, Some(5));
        let o: Opts = serde_json::from_str(r#"{"names":["A","B"],"since":"1970-01-01T00:00:01Z"}"#)
            .expect("valid");
        assert_eq!(o.names.map(|v| v.len()), Some(2));
        assert_eq!(o.since, Some(1_000_000_000));
        let o: Opts = serde_json::from_str("{}").expect("valid");
        assert!(o.names.is_none() && o.since.is_none());
        let e = serde_json::from_str::<Opts>(r#"{"names":[1]}"#).expect_err("numbers");
        assert!(
            e.to_string().contains("a string or a list of strings"),
            "{e}"
        );
        let e = serde_json::from_str::<Opts>(r#"{"since":"yesterday"}"#).expect_err("text");
        assert!(!e.to_string().is_empty());
    }
}
