//! How a series (symbol, interval) maps onto a store's measurements and tags.
//!
//! Default: measurement `kline`, tag `symbol`, tag `interval`. The measurement may be a template
//! with one `{interval}` placeholder (`kline_{interval}`), in which case the interval lives in the
//! measurement name instead of a tag.

use crate::model::{Name, Point, SeriesKey};
use std::sync::Arc;

/// Why a `schema:` block cannot be used; [`SchemaError::key`] names the setting to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A name is empty (the setting's name).
    #[error("must not be empty")]
    Empty(&'static str),
    /// The measurement template has a placeholder other than one `{interval}`.
    #[error("{0:?}: the only placeholder allowed is one {{interval}}")]
    Placeholder(String),
    /// Neither a tag nor the measurement template holds the interval.
    #[error(
        "the interval needs a home: set schema.interval_tag or put {{interval}} in schema.measurement"
    )]
    NoIntervalHome,
    /// The symbol and interval tags are the same tag.
    #[error("schema.symbol_tag and schema.interval_tag must differ")]
    SameTags,
}

impl SchemaError {
    /// The setting to blame (`schema.measurement`, …).
    pub fn key(&self) -> &'static str {
        match self {
            SchemaError::Empty(k) => k,
            SchemaError::Placeholder(_) => "schema.measurement",
            SchemaError::NoIntervalHome => "schema",
            SchemaError::SameTags => "schema.interval_tag",
        }
    }
}

/// The validated schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// Measurement name before `{interval}` (the whole name when there is no placeholder).
    prefix: String,
    /// Measurement name after `{interval}`; `None` when the name has no placeholder.
    suffix: Option<String>,
    /// Tag that holds the symbol.
    pub symbol_tag: String,
    /// Tag that holds the interval, when the measurement name does not.
    pub interval_tag: Option<String>,
    /// The field every bar carries (`close`): what a cheap digest counts.
    pub key_field: String,
}

impl Default for Schema {
    fn default() -> Self {
        Schema {
            prefix: "kline".into(),
            suffix: None,
            symbol_tag: "symbol".into(),
            interval_tag: Some("interval".into()),
            key_field: "close".into(),
        }
    }
}

impl Schema {
    /// Builds a schema from the configured template and tag names.
    ///
    /// # Errors
    /// [`SchemaError`] when the template has more than one placeholder or an unknown one, when
    /// the interval has no home (neither placeholder nor tag), or a name is empty.
    pub fn new(
        measurement: &str,
        symbol_tag: &str,
        interval_tag: Option<&str>,
    ) -> Result<Self, SchemaError> {
        if measurement.is_empty() {
            return Err(SchemaError::Empty("schema.measurement"));
        }
        if symbol_tag.is_empty() {
            return Err(SchemaError::Empty("schema.symbol_tag"));
        }
        let (prefix, suffix) = match measurement.split_once("{interval}") {
            Some((p, s)) => (p.to_string(), Some(s.to_string())),
            None => (measurement.to_string(), None),
        };
        let rest = format!("{prefix}{}", suffix.clone().unwrap_or_default());
        if rest.contains('{') || rest.contains('}') {
            return Err(SchemaError::Placeholder(measurement.to_string()));
        }
        let interval_tag = interval_tag.filter(|t| !t.is_empty()).map(str::to_string);
        if suffix.is_none() && interval_tag.is_none() {
            return Err(SchemaError::NoIntervalHome);
        }
        if interval_tag.as_deref() == Some(symbol_tag) {
            return Err(SchemaError::SameTags);
        }
        Ok(Schema {
            prefix,
            suffix,
            symbol_tag: symbol_tag.to_string(),
            interval_tag,
            key_field: "close".into(),
        })
    }

    /// The schema with `field` as the field every bar carries (what cheap digests count).
    ///
    /// # Errors
    /// [`SchemaError::Empty`] for an empty name.
    pub fn with_key_field(mut self, field: &str) -> Result<Self, SchemaError> {
        if field.is_empty() {
            return Err(SchemaError::Empty("schema.key_field"));
        }
        self.key_field = field.to_string();
        Ok(self)
    }

    /// True when the measurement name carries the interval.
    pub fn interval_in_measurement(&self) -> bool {
        self.suffix.is_some()
    }

    /// The measurement that holds `interval`'s bars.
    pub fn measurement(&self, interval: &str) -> String {
        match &self.suffix {
            Some(s) => format!("{}{interval}{s}", self.prefix),
            None => self.prefix.clone(),
        }
    }

    /// The fixed measurement name, when the name has no placeholder.
    pub fn fixed_measurement(&self) -> Option<&str> {
        self.suffix.is_none().then_some(self.prefix.as_str())
    }

    /// The interval a measurement name stands for, if it matches the template.
    pub fn interval_of_measurement<'a>(&self, measurement: &'a str) -> Option<&'a str> {
        let suffix = self.suffix.as_deref()?;
        let rest = measurement.strip_prefix(self.prefix.as_str())?;
        let interval = rest.strip_suffix(suffix)?;
        (!interval.is_empty()).then_some(interval)
    }

    /// Whether a measurement name belongs to this schema.
    pub fn matches_measurement(&self, measurement: &str) -> bool {
        match &self.suffix {
            Some(_) => self.interval_of_measurement(measurement).is_some(),
            None => measurement == self.prefix,
        }
    }

    /// The series a point belongs to, or `None` when it lacks the schema's tags.
    pub fn series_of(&self, point: &Point) -> Option<SeriesKey> {
        self.series_of_parts(&point.measurement, |k| point.tag(k))
    }

    /// The series of a measurement and a tag look-up function.
    pub fn series_of_parts<'a>(
        &self,
        measurement: &str,
        tag: impl Fn(&str) -> Option<&'a str>,
    ) -> Option<SeriesKey> {
        if !self.matches_measurement(measurement) {
            return None;
        }
        // InfluxDB reports a tag a point lacks as an empty value: not a series of the schema.
        let symbol = tag(&self.symbol_tag).filter(|v| !v.is_empty())?;
        let interval = match &self.interval_tag {
            Some(t) => tag(t).filter(|v| !v.is_empty())?,
            None => self.interval_of_measurement(measurement)?,
        };
        Some(SeriesKey::new(symbol, interval))
    }

    /// The measurement and identifying tags of a series, tags sorted by key.
    pub fn identity(&self, series: &SeriesKey) -> (Name, crate::model::Tags) {
        let mut tags: Vec<(Name, Name)> = vec![(
            Arc::from(self.symbol_tag.as_str()),
            Arc::from(series.symbol.as_str()),
        )];
        if let Some(t) = &self.interval_tag {
            tags.push((Arc::from(t.as_str()), Arc::from(series.interval.as_str())));
        }
        tags.sort_by(|a, b| a.0.cmp(&b.0));
        (
            Arc::from(self.measurement(&series.interval).as_str()),
            tags.into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schema_uses_kline_and_two_tags() {
        let s = Schema::default();
        let (m, tags) = s.identity(&SeriesKey::new("US.AAPL", "1d"));
        assert_eq!(&*m, "kline");
        assert_eq!(tags.len(), 2);
        assert_eq!(&*tags[0].0, "interval");
    }

    #[test]
    fn interval_template_round_trips() {
        let s = Schema::new("kline_{interval}", "symbol", None).unwrap();
        assert_eq!(s.measurement("1m"), "kline_1m");
        assert_eq!(s.interval_of_measurement("kline_1m"), Some("1m"));
        assert_eq!(s.interval_of_measurement("other_1m"), None);
        assert!(s.matches_measurement("kline_5m"));
        assert!(!s.matches_measurement("kline_"));
    }

    #[test]
    fn schema_rejects_homeless_interval_and_unknown_placeholders() {
        assert!(Schema::new("kline", "symbol", None).is_err());
        assert!(Schema::new("k_{symbol}", "symbol", Some("interval")).is_err());
        assert!(Schema::new("k_{interval}_{interval}", "symbol", None).is_err());
    }
}
