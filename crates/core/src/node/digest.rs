//! What the check loop and reconciliation compare between the primary and a backup without
//! reading every point: a series' [`Tip`] (its newest point, fingerprinted, and the newest
//! point past the horizon) and per-window [`Digest`]s (per-field counts and sums), computed by
//! the node itself — InfluxQL aggregates on an InfluxDB server, a pass over the rows of the
//! embedded SQLite store.
//!
//! Digests are kept per tag set and per field type, and equal means bit-equal: a digest never
//! calls two windows equal within a tolerance. Float sums depend on the order of addition, so
//! they are compared bit for bit only between nodes that sum the same way
//! ([`super::Node::digest_kind`]); a window whose float sums cannot be compared so (two kinds
//! of node, a sum that is not finite) is [`Comparison::Unsure`] and read exactly.

use crate::model::{FieldValue, Nanos, Point, SeriesKey, Tags};
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
    point_hash(p, false)
}

/// [`fingerprint`] that also tells the types apart: a float is its bits, never the integer it
/// equals. For exact comparisons of points read with their types (reconciliation's window
/// reads), where an integer field rewritten as a float must show.
pub fn exact_fingerprint(p: &Point) -> u64 {
    point_hash(p, true)
}

/// The FNV hash of a point's measurement, sorted tags and sorted typed fields; `typed`: a
/// float is always its bits (else an integral float hashes as the integer it equals).
fn point_hash(p: &Point, typed: bool) -> u64 {
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
            FieldValue::Float(f) => match integral(*f).filter(|_| !typed) {
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
/// A cheap digest counts the points of the schema's key field (`close` by default: missing
/// and extra bars). A full digest sums every numeric field and counts every other field. Both
/// are kept per tag set and per field type, and two digests are equal only bit for bit (see
/// [`Digest::compare`]). String and boolean values are only counted, so a window holding them
/// is read (see [`Digest::counts_only`]). What no digest sees — a point moved in time inside
/// its window, two points' values swapped — is the exact scrub's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// The count of the key field: a fraction of the cost of a full digest.
    Cheap,
    /// The sum of every numeric field, the count of every string and boolean field.
    Full,
}

impl Depth {
    /// Whether this depth counts the points that carry `field` (`numeric`: it holds numbers;
    /// `key_field`: the schema's key field). A cheap digest counts the bars (points with the
    /// key field); a full one sums every numeric field instead — a missing, extra or changed
    /// bar changes a sum unless all its numbers are 0, and a count per window costs the server
    /// as much as another sum — and counts only the fields it cannot sum.
    pub fn counts(self, field: &str, numeric: bool, key_field: &str) -> bool {
        match self {
            Depth::Cheap => field == key_field,
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

/// A field's type, as a digest keeps it: the same name holding an integer in one place and a
/// float in another is two entries, so a type change shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FieldKind {
    /// 64-bit float.
    Float,
    /// 64-bit integer.
    Integer,
    /// String.
    String,
    /// Boolean.
    Boolean,
}

impl FieldKind {
    /// The kind of a value.
    pub fn of(v: &FieldValue) -> FieldKind {
        match v {
            FieldValue::Float(_) => FieldKind::Float,
            FieldValue::Integer(_) => FieldKind::Integer,
            FieldValue::String(_) => FieldKind::String,
            FieldValue::Boolean(_) => FieldKind::Boolean,
        }
    }

    /// Whether it holds numbers.
    pub fn numeric(self) -> bool {
        matches!(self, FieldKind::Float | FieldKind::Integer)
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

/// One field of one tag set in one window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FieldDigest {
    /// Points that carry the field (0 where the depth does not count it).
    pub count: u64,
    /// Sum of its values (numeric fields the depth sums).
    pub sum: Option<Sum>,
}

/// What a digest keys its entries by: the tag set (every tag of the points, sorted by key),
/// the field and its type.
pub type DigestKey = (Tags, String, FieldKind);

/// One series in one window: what each field of each tag set holds, in a form that does not
/// depend on how the node stores the points.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Digest {
    /// By tag set, field and type.
    pub fields: BTreeMap<DigestKey, FieldDigest>,
}

/// Digests of several series, by series and window start.
pub type Digests = BTreeMap<SeriesKey, BTreeMap<Nanos, Digest>>;

/// What comparing two digests of one window tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// Bit-equal: the same tag sets, fields, types, counts and sums.
    Equal,
    /// They differ in something exact (a count, an integer sum, a tag set, a type, or a float
    /// sum of two nodes whose sums are comparable).
    Differ,
    /// Nothing exact differs, but a float sum cannot be compared bit for bit (not finite, or
    /// summed by two kinds of node): only reading the window can tell.
    Unsure,
}

/// `tags` sorted by key (points carry them sorted; a node's answer may not).
pub fn tag_set(tags: &Tags) -> Tags {
    if tags.windows(2).all(|w| w[0].0 <= w[1].0) {
        return tags.clone();
    }
    let mut v = tags.to_vec();
    v.sort();
    v.into()
}

impl Digest {
    /// Whether the window holds string or boolean fields: their values are only counted, so
    /// the window must be read to compare them.
    pub fn counts_only(&self) -> bool {
        self.fields.keys().any(|(_, _, kind)| !kind.numeric())
    }

    /// Adds one point (callers add a window's points in time order).
    pub fn add(&mut self, p: &Point, depth: Depth, key_field: &str) {
        let tags = tag_set(&p.tags);
        for (k, v) in &p.fields {
            let kind = FieldKind::of(v);
            if depth.counts(k, kind.numeric(), key_field) {
                self.add_count(&tags, k, kind, 1);
            }
            if !depth.sums(kind.numeric()) {
                continue;
            }
            match v {
                FieldValue::Integer(i) => self.add_sum(&tags, k, Sum::Integer(*i)),
                FieldValue::Float(x) => self.add_sum(&tags, k, Sum::Float(*x)),
                FieldValue::String(_) | FieldValue::Boolean(_) => {}
            }
        }
    }

    /// Adds `count` points of tag set `tags` that carry `field` as `kind` (a node's own count
    /// of them); a count of zero adds nothing, so a field never shows with no points.
    pub fn add_count(&mut self, tags: &Tags, field: &str, kind: FieldKind, count: u64) {
        if count == 0 {
            return;
        }
        self.fields
            .entry((tag_set(tags), field.to_string(), kind))
            .or_default()
            .count += count;
    }

    /// Adds values of `field` in tag set `tags` (one value, or a node's own sum of several)
    /// to its sum of their type: integers wrap, floats add.
    pub fn add_sum(&mut self, tags: &Tags, field: &str, sum: Sum) {
        let kind = match sum {
            Sum::Integer(_) => FieldKind::Integer,
            Sum::Float(_) => FieldKind::Float,
        };
        let f = self
            .fields
            .entry((tag_set(tags), field.to_string(), kind))
            .or_default();
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

    /// Compares two digests of the same window, bit for bit. `floats_comparable`: both were
    /// summed the same way (the same kind of node), so equal points give bit-equal float sums;
    /// otherwise a float sum proves nothing either way.
    pub fn compare(&self, other: &Digest, floats_comparable: bool) -> Comparison {
        if self.fields.len() != other.fields.len() {
            return Comparison::Differ;
        }
        let mut unsure = false;
        for ((ka, a), (kb, b)) in self.fields.iter().zip(&other.fields) {
            if ka != kb || a.count != b.count {
                return Comparison::Differ;
            }
            match (a.sum, b.sum) {
                (Some(Sum::Float(x)), Some(Sum::Float(y))) => {
                    if !floats_comparable || !x.is_finite() || !y.is_finite() {
                        unsure = true;
                    } else if x.to_bits() != y.to_bits() {
                        return Comparison::Differ;
                    }
                }
                (x, y) if x != y => return Comparison::Differ,
                _ => {}
            }
        }
        if unsure {
            Comparison::Unsure
        } else {
            Comparison::Equal
        }
    }
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
    key_field: &str,
    out: &mut BTreeMap<Nanos, Digest>,
) {
    for p in points {
        out.entry(window_start(p.time, window))
            .or_default()
            .add(p, depth, key_field);
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
    fn equal_is_bit_equal_and_one_changed_value_differs() {
        let values: Vec<f64> = (0..1440).map(|i| 100.0 + (i as f64) * 0.01 + 0.1).collect();
        let digest = |change: Option<(usize, f64)>| {
            let mut d = Digest::default();
            for (i, v) in values.iter().enumerate() {
                let v = match change {
                    Some((at, by)) if at == i => v + by,
                    _ => *v,
                };
                d.add(&bar(i as i64, v, 1), Depth::Full, "close");
            }
            d
        };
        assert_eq!(digest(None).compare(&digest(None), true), Comparison::Equal);
        // A change of one value far below the old rounding tolerance (8·n·ε·|Σ| ≈ 4e-7
        // here) but above the last bit of the sum is seen: no tolerance.
        assert_eq!(
            digest(None).compare(&digest(Some((700, 1e-9))), true),
            Comparison::Differ
        );
        // Sums of another kind of node prove nothing either way: read the window.
        assert_eq!(
            digest(None).compare(&digest(None), false),
            Comparison::Unsure
        );
        // A sum that is not finite proves nothing.
        let (mut a, mut b) = (digest(None), digest(None));
        a.add(&bar(5000, f64::INFINITY, 1), Depth::Full, "close");
        b.add(&bar(5000, f64::INFINITY, 1), Depth::Full, "close");
        assert_eq!(a.compare(&b, true), Comparison::Unsure);
        // Counts and integer sums are exact whatever the nodes.
        let (mut a, mut b) = (Digest::default(), Digest::default());
        a.add(&bar(0, 1.0, 7), Depth::Cheap, "close");
        b.add(&bar(0, 1.0, 7), Depth::Cheap, "close");
        assert_eq!(a.compare(&b, false), Comparison::Equal);
        b.add(&bar(1, 1.0, 7), Depth::Cheap, "close");
        assert_eq!(a.compare(&b, false), Comparison::Differ, "one bar more");
    }

    #[test]
    fn tag_sets_and_field_types_are_kept_apart() {
        let mut a = Digest::default();
        a.add(&bar(0, 1.0, 7), Depth::Full, "close");
        // The same bar under another value of an extra tag.
        let mut moved = bar(0, 1.0, 7);
        moved.tags = Arc::from(vec![
            (Arc::<str>::from("symbol"), Arc::<str>::from("A")),
            (Arc::from("venue"), Arc::from("X")),
        ]);
        let mut b = Digest::default();
        b.add(&moved, Depth::Full, "close");
        assert_eq!(a.compare(&b, true), Comparison::Differ);
        // An integer rewritten as the float of the same value.
        let mut retyped = bar(0, 1.0, 7);
        retyped.fields[1].1 = FieldValue::Float(7.0);
        let mut c = Digest::default();
        c.add(&retyped, Depth::Full, "close");
        assert_eq!(a.compare(&c, true), Comparison::Differ);
        // Mixed types in one window are two entries, not a sum that drops one of them.
        let mut d = Digest::default();
        d.add(&bar(0, 1.0, 7), Depth::Full, "close");
        d.add(&retyped, Depth::Full, "close");
        assert_eq!(d.fields.len(), 3, "{d:?}");
    }

    #[test]
    fn cheap_digests_count_the_key_field_and_full_ones_sum_every_number() {
        let tags = bar(0, 0.0, 0).tags;
        let key = |f: &str, k: FieldKind| (tags.clone(), f.to_string(), k);
        let mut d = Digest::default();
        d.add(&bar(0, 2.0, 7), Depth::Cheap, "close");
        assert_eq!(d.fields.len(), 1, "{d:?}");
        assert_eq!(
            d.fields[&key("close", FieldKind::Float)],
            FieldDigest {
                count: 1,
                sum: None
            }
        );
        assert_eq!(d.points(), 1);
        let mut v = Digest::default();
        v.add(&bar(0, 2.0, 7), Depth::Cheap, "volume");
        assert_eq!(
            v.fields.keys().next().map(|k| k.1.as_str()),
            Some("volume"),
            "the key field is the schema's"
        );
        let mut f = Digest::default();
        f.add(&bar(0, 2.0, 7), Depth::Full, "close");
        assert_eq!(
            f.fields[&key("close", FieldKind::Float)],
            FieldDigest {
                count: 0,
                sum: Some(Sum::Float(2.0))
            },
            "a full digest sums numbers, it does not count them"
        );
        assert_eq!(
            f.fields[&key("volume", FieldKind::Integer)],
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
            whole.add(p, Depth::Full, "close");
        }
        // A node's partial aggregates of the same window, in time order.
        let mut parts = Digest::default();
        for half in points.chunks(5) {
            let mut d = Digest::default();
            for p in half {
                d.add(p, Depth::Full, "close");
            }
            for ((tags, field, kind), f) in &d.fields {
                parts.add_count(tags, field, *kind, f.count);
                parts.add_sum(tags, field, f.sum.unwrap());
            }
        }
        assert_eq!(parts.fields.len(), whole.fields.len());
        let volume = |d: &Digest| {
            d.fields
                .iter()
                .find(|(k, _)| k.1 == "volume")
                .map(|(_, f)| *f)
        };
        assert_eq!(volume(&parts), volume(&whole), "integers wrap exactly");
        let tags = points[0].tags.clone();
        parts.add_count(&tags, "gone", FieldKind::String, 0);
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
