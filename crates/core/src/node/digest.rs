//! What the check loop and reconciliation compare between the primary and a backup without
//! reading every point: a series' [`Tip`] (its newest point, fingerprinted, and the newest
//! point past the horizon) and per-window [`Digest`]s (per-field counts and sums), computed by
//! the node itself — InfluxQL aggregates on an InfluxDB server, a pass over the rows of the
//! embedded SQLite store.
//!
//! Both kinds produce the same digest for the same points, so a primary of one kind compares
//! with a backup of the other. Float sums depend on the order of addition; [`Digest::same`]
//! allows the rounding error of the sum and nothing more (a false alarm costs one exact
//! comparison of that window, never a wrong repair).

use crate::model::{FieldValue, Nanos, Point, SeriesKey};
use std::collections::BTreeMap;

/// The newest points of one series on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tip {
    /// The newest timestamp at or before the horizon, with the fingerprint of the points at
    /// that timestamp ([`fingerprint`]).
    pub newest: Option<(Nanos, u64)>,
    /// The newest timestamp after the horizon (a future-dated point), if any.
    pub future: Option<Nanos>,
}

impl Tip {
    /// The newest timestamp at or before the horizon.
    pub fn newest_time(&self) -> Option<Nanos> {
        self.newest.map(|(t, _)| t)
    }

    /// The newest timestamp of all, future ones included.
    pub fn latest(&self) -> Option<Nanos> {
        self.future.or(self.newest_time())
    }

    /// Folds the points of one timestamp (or a later one) into the tip.
    pub fn add_newest(&mut self, time: Nanos, fp: u64) {
        self.newest = match self.newest {
            Some((t, f)) if t == time => Some((t, f.wrapping_add(fp))),
            Some((t, f)) if t > time => Some((t, f)),
            _ => Some((time, fp)),
        };
    }

    /// Notes a point after the horizon.
    pub fn add_future(&mut self, time: Nanos) {
        self.future = Some(self.future.map_or(time, |t| t.max(time)));
    }
}

/// A stable fingerprint of one point's measurement, tags and field values (not its time):
/// equal points give equal fingerprints on every node kind. Numbers are fingerprinted by
/// value — an integral float as the integer it equals — since InfluxDB's JSON prints `10.0`
/// as `10` and the tips look-up reads values without asking for field types. Fingerprints of
/// the points that share a timestamp are added (wrapping), so their order does not matter.
pub fn fingerprint(p: &Point) -> u64 {
    let mut h = Fnv::default();
    h.bytes(p.measurement.as_bytes());
    let mut tags: Vec<_> = p.tags.iter().collect();
    tags.sort();
    for (k, v) in tags {
        h.bytes(k.as_bytes());
        h.bytes(v.as_bytes());
    }
    let mut fields: Vec<_> = p.fields.iter().collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in fields {
        h.bytes(k.as_bytes());
        match v {
            FieldValue::Float(f) => match integral(*f) {
                Some(i) => h.tagged(1, &i.to_le_bytes()),
                None => h.tagged(0, &f.to_bits().to_le_bytes()),
            },
            FieldValue::Integer(i) => h.tagged(1, &i.to_le_bytes()),
            FieldValue::String(s) => h.tagged(2, s.as_bytes()),
            FieldValue::Boolean(b) => h.tagged(3, &[u8::from(*b)]),
        }
    }
    h.0
}

/// The integer a float equals, when it equals one an `i64` holds exactly.
fn integral(f: f64) -> Option<i64> {
    // 2^63 as f64; every integral float of smaller magnitude converts exactly.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (f.fract() == 0.0 && f.abs() < LIMIT).then_some(f as i64)
}

/// FNV-1a, 64 bit: fixed across builds and platforms (unlike `DefaultHasher`), with lengths
/// mixed in so that adjacent strings cannot run together.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn raw(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        self.raw(&(b.len() as u64).to_le_bytes());
        self.raw(b);
    }

    fn tagged(&mut self, tag: u8, b: &[u8]) {
        self.raw(&[tag]);
        self.bytes(b);
    }
}

/// How much a digest covers.
///
/// A cheap digest counts the points of the key field `close` (missing and extra bars). A
/// full digest sums every numeric field and counts every other field (a changed, missing or
/// extra value anywhere — except a bar whose numbers are all 0, which only a count sees).
/// Series without a `close` field are compared by full digests only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// The count of `close`: a fraction of the cost of a full digest.
    Cheap,
    /// The sum of every numeric field, the count of every string and boolean field.
    Full,
}

/// The field whose points a cheap digest counts.
pub const KEY_FIELD: &str = "close";

impl Depth {
    /// Whether this depth counts the points that carry `field` (`numeric`: it holds numbers).
    /// A cheap digest counts the bars (points with the key field); a full one sums every
    /// numeric field instead — a missing, extra or changed bar changes a sum unless all its
    /// numbers are 0, and a count per window costs the server as much as another sum — and
    /// counts only the fields it cannot sum.
    pub fn counts(self, field: &str, numeric: bool) -> bool {
        match self {
            Depth::Cheap => field == KEY_FIELD,
            Depth::Full => !numeric,
        }
    }

    /// Whether this depth sums `field` (`numeric`: it holds numbers).
    pub fn sums(self, numeric: bool) -> bool {
        self == Depth::Full && numeric
    }

    /// Name for people and the history.
    pub fn as_str(self) -> &'static str {
        match self {
            Depth::Cheap => "cheap",
            Depth::Full => "full",
        }
    }
}

/// A sum of one field's values in one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sum {
    /// Integer fields: exact (wrapping, as InfluxDB's own integer sum).
    Integer(i64),
    /// Float fields: summed in time order, as InfluxDB does.
    Float(f64),
}

/// One field in one window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FieldDigest {
    /// Points that carry the field (0 where the depth does not count it).
    pub count: u64,
    /// Sum of its values (numeric fields the depth sums).
    pub sum: Option<Sum>,
}

/// One series in one window: what each field holds, in a form that does not depend on how
/// the node stores the points.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Digest {
    /// By field name.
    pub fields: BTreeMap<String, FieldDigest>,
}

/// Digests of several series, by series and window start.
pub type Digests = BTreeMap<SeriesKey, BTreeMap<Nanos, Digest>>;

impl Digest {
    /// Adds one point (callers add a window's points in time order).
    pub fn add(&mut self, p: &Point, depth: Depth) {
        for (k, v) in &p.fields {
            let numeric = matches!(v, FieldValue::Integer(_) | FieldValue::Float(_));
            if depth.counts(k, numeric) {
                self.add_count(k, 1);
            }
            if !depth.sums(numeric) {
                continue;
            }
            match v {
                FieldValue::Integer(i) => self.add_sum(k, Sum::Integer(*i)),
                FieldValue::Float(x) => self.add_sum(k, Sum::Float(*x)),
                FieldValue::String(_) | FieldValue::Boolean(_) => {}
            }
        }
    }

    /// Adds `count` points that carry `field` (a node's own count of them); a count of zero
    /// adds nothing, so a field never shows with no points.
    pub fn add_count(&mut self, field: &str, count: u64) {
        if count == 0 {
            return;
        }
        match self.fields.get_mut(field) {
            Some(f) => f.count += count,
            None => {
                self.fields
                    .insert(field.to_string(), FieldDigest { count, sum: None });
            }
        }
    }

    /// Adds values of `field` (one value, or a node's own sum of several) to its sum:
    /// integers wrap, floats add; a sum of the other type than the one held is left out, as
    /// a field typed differently in two places cannot be summed.
    pub fn add_sum(&mut self, field: &str, sum: Sum) {
        let f = self.fields.entry(field.to_string()).or_default();
        f.sum = match (f.sum, sum) {
            (None, s) => Some(s),
            (Some(Sum::Integer(a)), Sum::Integer(b)) => Some(Sum::Integer(a.wrapping_add(b))),
            (Some(Sum::Float(a)), Sum::Float(b)) => Some(Sum::Float(a + b)),
            (s, _) => s,
        };
    }

    /// Points in the window, as far as the digest counts them (the largest per-field count).
    pub fn points(&self) -> u64 {
        self.fields.values().map(|f| f.count).max().unwrap_or(0)
    }

    /// Whether two digests of the same window describe the same points, allowing float sums
    /// the rounding error of adding their values in another order: at most `most` values
    /// ([`most_values`]), or as many as a counted field says when that is more.
    pub fn same(&self, other: &Digest, most: u64) -> bool {
        let n = self.points().max(other.points()).max(most).max(1);
        self.fields.len() == other.fields.len()
            && self
                .fields
                .iter()
                .zip(&other.fields)
                .all(|((ka, a), (kb, b))| {
                    ka == kb
                        && a.count == b.count
                        && match (a.sum, b.sum) {
                            (Some(Sum::Float(x)), Some(Sum::Float(y))) => close_sums(x, y, n),
                            (x, y) => x == y,
                        }
                })
    }
}

/// At most how many bars of `interval` fit in a window of `window` ns — how many values a full
/// digest's float sums add up, which bounds their rounding tolerance. Intervals are read as a
/// count and a unit (`30s`, `1m`, `5min`, `1h`, `4H`, `1d`, `1D`, `1w`, `1hour`, `1day`; a
/// bare unit is 1 of it; `M`, `mo`, `month` and `y` are months and years); any other form
/// counts as one bar per second, so the tolerance errs on the tight side (a false alarm costs
/// an exact comparison of the window, a loose tolerance could miss a change).
pub fn most_values(interval: &str, window: Nanos) -> u64 {
    const SECOND: i128 = 1_000_000_000;
    const DAY: i128 = 86_400 * SECOND;
    let per_second = || {
        u64::try_from(i128::from(window.max(1)) / SECOND)
            .unwrap_or(u64::MAX)
            .max(1)
    };
    let text = interval.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_ns: i128 = match unit {
        "s" | "S" | "sec" | "secs" | "second" | "seconds" => SECOND,
        "m" | "min" | "mins" | "minute" | "minutes" | "T" => 60 * SECOND,
        "h" | "H" | "hr" | "hour" | "hours" => 3_600 * SECOND,
        "d" | "D" | "day" | "days" => DAY,
        "w" | "W" | "wk" | "week" | "weeks" => 7 * DAY,
        // The shortest month and year: the most bars a window can hold.
        "M" | "mo" | "mon" | "month" | "months" => 28 * DAY,
        "y" | "Y" | "year" | "years" => 365 * DAY,
        _ => return per_second(),
    };
    let n = if number.is_empty() {
        Some(1)
    } else {
        number.parse::<i128>().ok().filter(|n| *n > 0)
    };
    let Some(n) = n else {
        return per_second();
    };
    let Some(bar) = n.checked_mul(unit_ns) else {
        return 1; // a bar longer than any window
    };
    let most = (i128::from(window.max(1)) + bar - 1) / bar;
    u64::try_from(most.max(1)).unwrap_or(u64::MAX)
}

/// Whether two float sums of `n` values can be the same values added in another order:
/// naive summation's error is at most about `n·ε·Σ|x|`; with `Σ|x|` unknown, `|sum|` stands in
/// (market data is positive), with room to spare.
fn close_sums(x: f64, y: f64, n: u64) -> bool {
    if x == y {
        return true;
    }
    if !x.is_finite() || !y.is_finite() {
        return false;
    }
    let scale = x.abs().max(y.abs());
    let tolerance = 8.0 * (n.max(1) as f64) * f64::EPSILON * scale;
    (x - y).abs() <= tolerance
}

/// The start of the window of `window` nanoseconds (aligned to the epoch, as InfluxDB's
/// `GROUP BY time(…)`) that holds `t`; the earliest time there is when that start lies
/// before it (the first window of the time line).
pub fn window_start(t: Nanos, window: Nanos) -> Nanos {
    let w = window.max(1);
    t.div_euclid(w).checked_mul(w).unwrap_or(Nanos::MIN)
}

/// Digests of points already in time order, by window: the reference computation every node
/// kind must agree with (the SQLite store uses it directly).
pub fn digest_points<'a>(
    points: impl IntoIterator<Item = &'a Point>,
    window: Nanos,
    depth: Depth,
    out: &mut BTreeMap<Nanos, Digest>,
) {
    for p in points {
        out.entry(window_start(p.time, window))
            .or_default()
            .add(p, depth);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Name, Tags};
    use std::sync::Arc;

    fn bar(t: Nanos, close: f64, volume: i64) -> Point {
        let name = |s: &str| -> Name { Arc::from(s) };
        let tags: Tags = Arc::from(vec![(name("symbol"), name("A"))]);
        Point {
            measurement: name("kline"),
            tags,
            fields: vec![
                (name("close"), FieldValue::Float(close)),
                (name("volume"), FieldValue::Integer(volume)),
            ],
            time: t,
        }
    }

    #[test]
    fn fingerprints_see_values_but_not_field_order() {
        let a = bar(1, 1.5, 10);
        let mut b = a.clone();
        b.fields.reverse();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&bar(1, 1.5000000001, 10)));
        let mut c = a.clone();
        c.fields[1].1 = FieldValue::Float(10.0);
        assert_eq!(
            fingerprint(&a),
            fingerprint(&c),
            "by value: InfluxDB's JSON prints 10.0 as 10"
        );
        c.fields[1].1 = FieldValue::Float(10.5);
        assert_ne!(fingerprint(&a), fingerprint(&c));
        c.fields[1].1 = FieldValue::String("10".into());
        assert_ne!(fingerprint(&a), fingerprint(&c), "a string is not a number");
    }

    #[test]
    fn sums_in_another_order_match_and_one_changed_value_does_not() {
        let values: Vec<f64> = (0..1440).map(|i| 100.0 + (i as f64) * 0.01 + 0.1).collect();
        let mut fwd = Digest::default();
        let mut rev = Digest::default();
        for (i, v) in values.iter().enumerate() {
            fwd.add(&bar(i as i64, *v, 1), Depth::Full);
        }
        for (i, v) in values.iter().enumerate().rev() {
            rev.add(&bar(i as i64, *v, 1), Depth::Full);
        }
        assert!(fwd.same(&rev, 1440));
        let mut changed = Digest::default();
        for (i, v) in values.iter().enumerate() {
            let v = if i == 700 { v + 0.0001 } else { *v };
            changed.add(&bar(i as i64, v, 1), Depth::Full);
        }
        assert!(
            !fwd.same(&changed, most_values("1m", 86_400_000_000_000)),
            "a change of one tick in one bar of 1440 is seen"
        );
        // Cheap digests count the bars: the count bounds the tolerance.
        let (mut a, mut b) = (Digest::default(), Digest::default());
        for (i, v) in values.iter().enumerate() {
            a.add(&bar(i as i64, *v, 1), Depth::Cheap);
            b.add(&bar(i as i64, *v, 1), Depth::Cheap);
        }
        assert!(a.same(&b, 1));
        b.add(&bar(5000, 1.0, 1), Depth::Cheap);
        assert!(!a.same(&b, 1), "one bar more");
        // An interval of a form not understood: one bar a second, a tight tolerance.
        assert!(!fwd.same(&changed, most_values("1 minute bars", 86_400_000_000_000)));
        // A counted field on a few bars does not tighten the bound below the interval's.
        let (mut x, mut y) = (Digest::default(), Digest::default());
        for (i, v) in values.iter().enumerate() {
            x.add(&bar(i as i64, *v, 1), Depth::Full);
        }
        for (i, v) in values.iter().enumerate().rev() {
            y.add(&bar(i as i64, *v, 1), Depth::Full);
        }
        x.add_count("note", 1);
        y.add_count("note", 1);
        assert!(x.same(&y, 1440));
    }

    #[test]
    fn the_interval_bounds_the_values_in_a_window() {
        const DAY: Nanos = 86_400_000_000_000;
        for (interval, most) in [
            ("1m", 1440),
            ("5m", 288),
            ("5min", 288),
            ("1T", 1440),
            ("30s", 2880),
            ("1h", 24),
            ("4H", 6),
            ("1hour", 24),
            ("1d", 1),
            ("1D", 1),
            ("day", 1),
            ("1w", 1),
            ("1M", 1),
            ("1mo", 1),
            ("7m", 206),
            (" 1m ", 1440),
        ] {
            assert_eq!(most_values(interval, DAY), most, "{interval:?}");
        }
        assert_eq!(most_values("1d", 30 * DAY), 30);
        assert_eq!(most_values("1w", 30 * DAY), 5, "rounded up");
        // Forms not understood: one bar a second.
        for other in ["tick", "m1", "0m", "", "-1m", "1 m", "daily"] {
            assert_eq!(most_values(other, DAY), 86_400, "{other:?}");
        }
        assert_eq!(most_values("tick", 1), 1);
        assert_eq!(most_values("99999999999999999999999d", DAY), 1);
        assert_eq!(
            most_values(&format!("{}w", i128::MAX), DAY),
            1,
            "no overflow"
        );
        assert_eq!(most_values("1s", Nanos::MAX), 9_223_372_037, "rounded up");
    }

    #[test]
    fn cheap_digests_count_close_and_full_ones_sum_every_number() {
        let mut d = Digest::default();
        d.add(&bar(0, 2.0, 7), Depth::Cheap);
        assert_eq!(d.fields.len(), 1, "{d:?}");
        assert_eq!(
            d.fields["close"],
            FieldDigest {
                count: 1,
                sum: None
            }
        );
        assert_eq!(d.points(), 1);
        let mut f = Digest::default();
        f.add(&bar(0, 2.0, 7), Depth::Full);
        assert_eq!(
            f.fields["close"],
            FieldDigest {
                count: 0,
                sum: Some(Sum::Float(2.0))
            },
            "a full digest sums numbers, it does not count them"
        );
        assert_eq!(
            f.fields["volume"],
            FieldDigest {
                count: 0,
                sum: Some(Sum::Integer(7))
            }
        );
    }

    #[test]
    fn partial_counts_and_sums_add_up_to_the_points_digest() {
        let points: Vec<Point> = (0..10)
            .map(|i| bar(i, 0.1 * i as f64, i64::MAX - i))
            .collect();
        let mut whole = Digest::default();
        for p in &points {
            whole.add(p, Depth::Full);
        }
        // Two nodes' partial aggregates of the same window (e.g. two tag sets).
        let mut parts = Digest::default();
        for half in points.chunks(5) {
            let mut d = Digest::default();
            for p in half {
                d.add(p, Depth::Full);
            }
            for (k, f) in &d.fields {
                parts.add_count(k, f.count);
                parts.add_sum(k, f.sum.unwrap());
            }
        }
        assert!(whole.same(&parts, 10));
        assert_eq!(
            parts.fields["volume"], whole.fields["volume"],
            "integers wrap exactly"
        );
        parts.add_count("gone", 0);
        assert_eq!(parts.fields.len(), 2, "a count of zero adds no field");
    }

    #[test]
    fn windows_align_to_the_epoch() {
        let day = 86_400_000_000_000;
        assert_eq!(window_start(day + 5, day), day);
        assert_eq!(window_start(-1, day), -day);
        assert_eq!(window_start(Nanos::MIN + 5, day), Nanos::MIN);
        assert_eq!(window_start(Nanos::MAX, 1), Nanos::MAX);
    }
}
