//! The two text formats a Prometheus scraper reads, from one model of metric families:
//! OpenMetrics 1.0 (`application/openmetrics-text`, what Prometheus asks for first) and the
//! classic text format 0.0.4 (`text/plain`, what `promtool check metrics` and older scrapers
//! read), and the choice between them from a request's `Accept` header.
//!
//! The formats differ where it matters to a parser: a counter family is `name` in OpenMetrics
//! (samples `name_total`) but `name_total` in 0.0.4; OpenMetrics ends with `# EOF`, writes
//! bucket bounds as floats (`le="1.0"`) and escapes `"` in help text. Samples are written in
//! the order of their label values, so two scrapes list the same series in the same order.

use std::collections::BTreeMap;
use std::fmt::Write;

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0.
    OpenMetrics,
    /// The Prometheus text format 0.0.4.
    Text,
}

impl Format {
    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// The format an `Accept` header prefers: `text/plain` (0.0.4) when it ranks it above
    /// OpenMetrics, OpenMetrics otherwise — no header, `*/*`, or nothing either format
    /// matches. Each format takes the quality of the most specific media range that matches
    /// it (RFC 9110 §12.5.1); a tie goes to OpenMetrics.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::OpenMetrics;
        };
        // (specificity, quality) of the best match so far, per format.
        let mut open: Option<(u8, f32)> = None;
        let mut text: Option<(u8, f32)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut q = 1.0_f32;
            for p in parts {
                let p = p.trim();
                if let Some((k, v)) = p.split_once('=')
                    && k.trim().eq_ignore_ascii_case("q")
                {
                    q = v.trim().parse::<f32>().unwrap_or(0.0).clamp(0.0, 1.0);
                }
            }
            let (for_open, for_text) = match media.as_str() {
                "application/openmetrics-text" => (Some(2), None),
                "text/plain" => (None, Some(2)),
                "application/*" => (Some(1), None),
                "text/*" => (None, Some(1)),
                "*/*" => (Some(0), Some(0)),
                _ => (None, None),
            };
            for (spec, best) in [(for_open, &mut open), (for_text, &mut text)] {
                if let Some(spec) = spec {
                    *best = match *best {
                        Some((s, _)) if s > spec => *best,
                        Some((s, bq)) if s == spec => Some((s, bq.max(q))),
                        _ => Some((spec, q)),
                    };
                }
            }
        }
        let q = |b: Option<(u8, f32)>| b.map_or(0.0, |(_, q)| q);
        if q(text) > q(open) {
            Format::Text
        } else {
            Format::OpenMetrics
        }
    }
}

/// What kind of metric a family holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A count that only grows.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Observations counted into buckets.
    Histogram,
}

/// One series' value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter's count.
    Count(u64),
    /// A gauge's value.
    Gauge(f64),
    /// A histogram: cumulative counts per upper bound, ascending, the last one `+Inf`; and
    /// the sum of the observations.
    Histogram {
        /// `(le, observations ≤ le)`.
        buckets: Vec<(f64, u64)>,
        /// Sum of the observations.
        sum: f64,
    },
}

/// A metric family: name (without `_total`), help, kind, label names, and its series keyed
/// by label values (in the order of the names), so they come out sorted.
#[derive(Debug, Clone)]
pub struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    series: BTreeMap<Vec<String>, Value>,
}

impl Family {
    /// An empty family.
    pub fn new(
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &'static [&'static str],
    ) -> Family {
        Family {
            name,
            help,
            kind,
            labels,
            series: BTreeMap::new(),
        }
    }

    /// The family's name (without `_total`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Sets the series with these label values (one per label name, in order).
    pub fn set(&mut self, values: &[&str], value: Value) {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        self.series
            .insert(values.iter().map(|v| v.to_string()).collect(), value);
    }

    /// The series with these label values, set to `value` unless it exists.
    pub fn entry(&mut self, values: &[&str], value: Value) -> &mut Value {
        self.series
            .entry(values.iter().map(|v| v.to_string()).collect())
            .or_insert(value)
    }

    /// The value of a series, if set.
    pub fn get(&self, values: &[&str]) -> Option<&Value> {
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        self.series.get(&key)
    }
}

/// The families in `format`.
pub fn encode(families: &[Family], format: Format) -> String {
    let mut out = String::new();
    for f in families {
        encode_family(&mut out, f, format);
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

fn encode_family(out: &mut String, f: &Family, format: Format) {
    let total = format!("{}_total", f.name);
    let described = match (f.kind, format) {
        (Kind::Counter, Format::Text) => total.as_str(),
        _ => f.name,
    };
    let kind = match f.kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
    };
    // Writing into a String cannot fail.
    let _ = writeln!(out, "# HELP {described} {}", escape_help(f.help, format));
    let _ = writeln!(out, "# TYPE {described} {kind}");
    for (values, value) in &f.series {
        let labels: Vec<(&str, &str)> = f
            .labels
            .iter()
            .copied()
            .zip(values.iter().map(String::as_str))
            .collect();
        match value {
            Value::Count(n) => {
                let name = if f.kind == Kind::Counter {
                    total.as_str()
                } else {
                    f.name
                };
                sample(out, name, "", &labels, None, &n.to_string());
            }
            Value::Gauge(x) => sample(out, f.name, "", &labels, None, &float(*x)),
            Value::Histogram { buckets, sum } => {
                for (le, n) in buckets {
                    let le = bound(*le, format);
                    sample(out, f.name, "_bucket", &labels, Some(&le), &n.to_string());
                }
                let count = buckets.last().map_or(0, |(_, n)| *n);
                sample(out, f.name, "_sum", &labels, None, &float(*sum));
                sample(out, f.name, "_count", &labels, None, &count.to_string());
            }
        }
    }
}

fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    le: Option<&str>,
    value: &str,
) {
    out.push_str(name);
    out.push_str(suffix);
    let all = labels.iter().copied().chain(le.map(|le| ("le", le)));
    let mut first = true;
    for (k, v) in all {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        escape_label(out, v);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// A label value: `\`, `"` and line feeds escaped (the same in both formats).
fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Help text: `\` and line feeds escaped, and `"` in OpenMetrics (0.0.4 knows no `\"`).
fn escape_help(help: &str, format: Format) -> String {
    let mut out = String::with_capacity(help.len());
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if format == Format::OpenMetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// A sample value: shortest round-trip decimal, `NaN`, `+Inf`, `-Inf`.
fn float(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if x == x.trunc() && x.abs() < 1e15 {
        // Whole numbers without a fraction, as Prometheus' own clients write them.
        format!("{}", x as i64)
    } else {
        ryu::Buffer::new().format_finite(x).to_string()
    }
}

/// A bucket bound: `+Inf`; in OpenMetrics a float with a fraction (`1.0`, as its canonical
/// form asks), in 0.0.4 as Go's client writes it (`1`).
fn bound(le: f64, format: Format) -> String {
    if le.is_infinite() {
        return "+Inf".into();
    }
    let s = float(le);
    if format == Format::OpenMetrics && !s.contains(['.', 'e', 'E']) {
        format!("{s}.0")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn families() -> Vec<Family> {
        let mut syncs = Family::new(
            "dms_syncs",
            "Syncs \"finished\"\nby backup",
            Kind::Counter,
            &["backup", "status"],
        );
        syncs.set(&["b2", "success"], Value::Count(1));
        syncs.set(&["b1", "success"], Value::Count(3));
        syncs.set(&["b1", "failed"], Value::Count(0));
        let mut up = Family::new("dms_node_up", "Up", Kind::Gauge, &["node"]);
        up.set(&["a\"b\\c\nd"], Value::Gauge(1.0));
        let mut d = Family::new("dms_d_seconds", "D", Kind::Histogram, &["backup"]);
        d.set(
            &["b1"],
            Value::Histogram {
                buckets: vec![(0.5, 1), (1.0, 2), (f64::INFINITY, 3)],
                sum: 4.25,
            },
        );
        let empty = Family::new("dms_lag_seconds", "Lag", Kind::Gauge, &["backup"]);
        vec![syncs, up, d, empty]
    }

    #[test]
    fn openmetrics_names_counters_by_family_and_ends_with_eof() {
        assert_eq!(
            encode(&families(), Format::OpenMetrics),
            "# HELP dms_syncs Syncs \\\"finished\\\"\\nby backup\n\
             # TYPE dms_syncs counter\n\
             dms_syncs_total{backup=\"b1\",status=\"failed\"} 0\n\
             dms_syncs_total{backup=\"b1\",status=\"success\"} 3\n\
             dms_syncs_total{backup=\"b2\",status=\"success\"} 1\n\
             # HELP dms_node_up Up\n\
             # TYPE dms_node_up gauge\n\
             dms_node_up{node=\"a\\\"b\\\\c\\nd\"} 1\n\
             # HELP dms_d_seconds D\n\
             # TYPE dms_d_seconds histogram\n\
             dms_d_seconds_bucket{backup=\"b1\",le=\"0.5\"} 1\n\
             dms_d_seconds_bucket{backup=\"b1\",le=\"1.0\"} 2\n\
             dms_d_seconds_bucket{backup=\"b1\",le=\"+Inf\"} 3\n\
             dms_d_seconds_sum{backup=\"b1\"} 4.25\n\
             dms_d_seconds_count{backup=\"b1\"} 3\n\
             # HELP dms_lag_seconds Lag\n\
             # TYPE dms_lag_seconds gauge\n\
             # EOF\n"
        );
    }

    #[test]
    fn text_names_counters_with_total_and_has_no_eof() {
        let text = encode(&families(), Format::Text);
        assert!(text.starts_with(
            "# HELP dms_syncs_total Syncs \"finished\"\\nby backup\n\
             # TYPE dms_syncs_total counter\n\
             dms_syncs_total{backup=\"b1\",status=\"failed\"} 0\n"
        ));
        assert!(text.contains("dms_d_seconds_bucket{backup=\"b1\",le=\"1\"} 2\n"));
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn values_are_written_as_prometheus_reads_them() {
        assert_eq!(float(0.0), "0");
        assert_eq!(float(1_764_170_000.0), "1764170000");
        assert_eq!(float(1_764_170_000.125), "1764170000.125");
        assert_eq!(float(0.05), "0.05");
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(1e300), "1e300");
        assert_eq!(bound(0.01, Format::OpenMetrics), "0.01");
        assert_eq!(bound(1800.0, Format::OpenMetrics), "1800.0");
        assert_eq!(bound(1800.0, Format::Text), "1800");
    }

    #[test]
    fn the_accept_header_picks_the_format() {
        use Format::{OpenMetrics, Text};
        let prometheus = "application/openmetrics-text;version=1.0.0,\
             application/openmetrics-text;version=0.0.1;q=0.75,\
             text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        for (accept, want) in [
            (None, OpenMetrics),
            (Some(""), OpenMetrics),
            (Some("*/*"), OpenMetrics),
            (Some(prometheus), OpenMetrics),
            (Some("text/plain; version=0.0.4"), Text),
            (Some("text/plain;version=0.0.4;q=0.9,*/*;q=0.1"), Text),
            (Some("TEXT/PLAIN"), Text),
            (Some("text/*"), Text),
            (Some("application/json"), OpenMetrics),
            // Quality decides, then the more specific range: text/plain;q=0 refuses text.
            (
                Some("text/plain;q=0.2,application/openmetrics-text;q=0.9"),
                OpenMetrics,
            ),
            (Some("text/plain;q=0,*/*"), OpenMetrics),
            (Some("application/openmetrics-text;q=0,*/*"), Text),
            (Some("application/openmetrics-text;q=0,text/plain"), Text),
            (
                Some("application/vnd.google.protobuf;q=0.9,text/plain;q=0.5"),
                Text,
            ),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }
}
