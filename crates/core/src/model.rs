//! The data model every other module shares: points, series keys, time ranges and batches.
//!
//! A [`Point`] is what a time-series store holds: a measurement, tags, typed fields and a
//! nanosecond timestamp. A [`SeriesKey`] is what an operator thinks in: a symbol and a bar
//! interval. The mapping between the two is the configured [`crate::schema::Schema`].

use std::fmt;
use std::sync::Arc;

/// Nanoseconds since the Unix epoch, UTC. Data time and wall-clock time both use it.
pub type Nanos = i64;

/// Nanoseconds in one second.
pub const NANOS_PER_SEC: i64 = 1_000_000_000;
/// Nanoseconds in one day.
pub const NANOS_PER_DAY: i64 = 86_400 * NANOS_PER_SEC;

/// Shared, immutable string used for names that repeat on every point (tag keys, field keys,
/// measurement names), so that copying a batch does not allocate a string per point and key.
pub type Name = Arc<str>;

/// Tags of a point, sorted by key; shared by the points of one tag set, so a batch of one
/// series holds its tags once.
pub type Tags = Arc<[(Name, Name)]>;

/// A typed field value. Copies keep the type: an integer stays an integer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum FieldValue {
    /// 64-bit float.
    Float(f64),
    /// 64-bit signed integer.
    Integer(i64),
    /// UTF-8 string.
    String(String),
    /// Boolean.
    Boolean(bool),
}

impl FieldValue {
    /// The type's name as InfluxDB's `SHOW FIELD KEYS` spells it.
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldValue::Float(_) => "float",
            FieldValue::Integer(_) => "integer",
            FieldValue::String(_) => "string",
            FieldValue::Boolean(_) => "boolean",
        }
    }
}

/// One point of a time series.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Point {
    /// Measurement name.
    pub measurement: Name,
    /// Tags, sorted by key, keys unique.
    pub tags: Tags,
    /// Fields, at least one, keys unique.
    pub fields: Vec<(Name, FieldValue)>,
    /// Timestamp in nanoseconds since the epoch.
    pub time: Nanos,
}

impl Point {
    /// The value of tag `key`, if present.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
    }

    /// The value of field `key`, if present.
    pub fn field(&self, key: &str) -> Option<&FieldValue> {
        self.fields
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| v)
    }

    /// Sorts the tags by key, the canonical order every node relies on.
    pub fn normalize(&mut self) {
        if !self.tags.is_sorted_by(|a, b| a.0 <= b.0) {
            let mut v = self.tags.to_vec();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            self.tags = v.into();
        }
    }
}

/// The operator's unit of data: one symbol at one bar interval.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct SeriesKey {
    /// Instrument symbol, e.g. `US.AAPL`.
    pub symbol: String,
    /// Bar interval, e.g. `1m` or `1d`.
    pub interval: String,
}

impl SeriesKey {
    /// Builds a key.
    pub fn new(symbol: impl Into<String>, interval: impl Into<String>) -> Self {
        SeriesKey {
            symbol: symbol.into(),
            interval: interval.into(),
        }
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.symbol, self.interval)
    }
}

/// One backup's copy of one series: what checkpoints, history rows, status lines and alerts
/// are kept per. Serializes flat, as `backup`, `symbol`, `interval`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct BackupSeries {
    /// Backup node name.
    pub backup: String,
    /// The series.
    #[serde(flatten)]
    pub series: SeriesKey,
}

impl BackupSeries {
    /// Builds a key.
    pub fn new(backup: impl Into<String>, series: SeriesKey) -> Self {
        BackupSeries {
            backup: backup.into(),
            series,
        }
    }

    /// Symbol of the series.
    pub fn symbol(&self) -> &str {
        &self.series.symbol
    }

    /// Interval of the series.
    pub fn interval(&self) -> &str {
        &self.series.interval
    }
}

impl fmt::Display for BackupSeries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.backup, self.series)
    }
}

/// An inclusive time range `[start, end]` in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// First timestamp included.
    pub start: Nanos,
    /// Last timestamp included.
    pub end: Nanos,
}

impl TimeRange {
    /// Builds a range; `start > end` makes an empty range.
    pub fn new(start: Nanos, end: Nanos) -> Self {
        TimeRange { start, end }
    }

    /// True when no timestamp lies in the range.
    pub fn is_empty(&self) -> bool {
        self.start > self.end
    }
}

/// A batch of points of one series, in time order, as read from one node and written to
/// others. A batch never splits the points that share one timestamp: a reader that resumes
/// from a batch's last timestamp (inclusive) loses nothing.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Points, ordered by time.
    pub points: Vec<Point>,
    /// The points' encoded form for InfluxDB (line protocol), made on first use and shared by
    /// every InfluxDB node the batch is written to (a fan-out encodes once, not per backup).
    pub line_protocol: std::sync::OnceLock<Result<bytes::Bytes, String>>,
}

impl Batch {
    /// Wraps points that are already in time order.
    pub fn new(points: Vec<Point>) -> Self {
        Batch {
            points,
            line_protocol: std::sync::OnceLock::new(),
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True when the batch holds no point.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Timestamp of the newest point.
    pub fn last_time(&self) -> Option<Nanos> {
        self.points.iter().map(|p| p.time).max()
    }

    /// Timestamp of the oldest point.
    pub fn first_time(&self) -> Option<Nanos> {
        self.points.iter().map(|p| p.time).min()
    }
}

/// Checks a name that becomes part of the stored data (symbol, interval, tag key or value):
/// not empty, and no NUL or other control character, which no store keeps faithfully and
/// which would make the series unreadable.
///
/// # Errors
/// [`NameError`] naming what is wrong.
pub fn check_name(what: &str, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty {
            what: what.to_string(),
        });
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(NameError::Control {
            what: what.to_string(),
            name: name.to_string(),
            found: c,
        });
    }
    Ok(())
}

/// A name that cannot be stored ([`check_name`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("{what} must not be empty")]
    Empty {
        /// What the name is (`symbol`, `tag key`, …).
        what: String,
    },
    /// The name holds a control character.
    #[error("{what} {name:?} holds the control character {found:?}; names cannot")]
    Control {
        /// What the name is.
        what: String,
        /// The name.
        name: String,
        /// The first control character in it.
        found: char,
    },
}

pub use crate::text::escape_controls;

/// Current wall-clock time in nanoseconds.
pub fn now_nanos() -> Nanos {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Formats nanoseconds as RFC 3339 UTC with as many fractional digits as needed.
pub fn format_nanos(t: Nanos) -> String {
    let dt = chrono::DateTime::from_timestamp_nanos(t);
    dt.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Parses an RFC 3339 timestamp, a date (`2024-01-31`, midnight UTC) or an integer of
/// nanoseconds since the epoch.
///
/// # Errors
/// [`TimeError`]: out of range, or none of the accepted forms.
pub fn parse_time(s: &str) -> Result<Nanos, TimeError> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    let out_of_range = || TimeError::OutOfRange(s.to_string());
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s) {
        return dt.timestamp_nanos_opt().ok_or_else(out_of_range);
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        // A date always has a midnight; the constructor only fails for invalid h/m/s.
        let dt = d.and_hms_opt(0, 0, 0).map(|n| n.and_utc());
        return dt
            .and_then(|d| d.timestamp_nanos_opt())
            .ok_or_else(out_of_range);
    }
    Err(TimeError::Unreadable(s.to_string()))
}

/// A time [`parse_time`] cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// A valid time nanoseconds since the epoch cannot hold.
    #[error("time {0:?} is out of range (years 1678 to 2261)")]
    OutOfRange(String),
    /// None of the accepted forms.
    #[error(
        "cannot read time {0:?}: use an age before now (7d, 24h, 30m), RFC 3339 (2024-01-31T14:30:00Z), a date (2024-01-31) or nanoseconds"
    )]
    Unreadable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_time_accepts_rfc3339_dates_and_nanos() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(NANOS_PER_SEC));
        assert_eq!(parse_time("1970-01-02"), Ok(NANOS_PER_DAY));
        assert_eq!(parse_time("42"), Ok(42));
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn names_with_control_characters_are_refused_and_escaped_in_logs() {
        assert!(check_name("symbol", "US.AAPL").is_ok());
        assert!(check_name("symbol", "株 A'B").is_ok());
        assert!(check_name("symbol", "A\0B").is_err());
        assert!(check_name("symbol", "A\nB").is_err());
        assert!(check_name("symbol", "").is_err());
        assert_eq!(escape_controls("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
        assert_eq!(escape_controls("plain"), "plain");
    }

    #[test]
    fn format_keeps_nanoseconds() {
        assert_eq!(format_nanos(1), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(format_nanos(NANOS_PER_DAY), "1970-01-02T00:00:00Z");
    }
}

/// The length of one bar of an interval name as market data spells it (`30s`, `1m`, `5m`,
/// `1h`, `1d`, `1w`, `1M` for a month of 30 days), or `None` for a name that is no length.
pub fn interval_nanos(interval: &str) -> Option<Nanos> {
    let unit_at = interval.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = interval.split_at(unit_at);
    let n: i64 = if n.is_empty() { 1 } else { n.parse().ok()? };
    let unit = match unit {
        "s" => NANOS_PER_SEC,
        "m" | "min" => 60 * NANOS_PER_SEC,
        "h" => 3_600 * NANOS_PER_SEC,
        "d" => NANOS_PER_DAY,
        "w" => 7 * NANOS_PER_DAY,
        "M" | "mo" => 30 * NANOS_PER_DAY,
        _ => return None,
    };
    n.checked_mul(unit)
}

#[cfg(test)]
mod interval_tests {
    use super::*;

    #[test]
    fn interval_names_give_their_bar_length() {
        assert_eq!(interval_nanos("1m"), Some(60 * NANOS_PER_SEC));
        assert_eq!(interval_nanos("15m"), Some(900 * NANOS_PER_SEC));
        assert_eq!(interval_nanos("1d"), Some(NANOS_PER_DAY));
        assert_eq!(interval_nanos("1M"), Some(30 * NANOS_PER_DAY));
        assert_eq!(interval_nanos("tick"), None);
        assert_eq!(interval_nanos("1x"), None);
        assert_eq!(interval_nanos("99999999999999999999d"), None);
    }
}
