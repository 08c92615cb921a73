//! Tips, digests and deletes on both node kinds, against real `influxd` processes: the same
//! points give the same tips and digests on an SQLite store and an InfluxDB server, a changed
//! value shows in its window, write order does not matter, and a delete removes exactly the
//! points it names.

use crate::helper::influxd::{ADMIN, ADMIN_PASSWORD, InfluxServer};
use dms::config::{InfluxAuth, InfluxSettings, NodeKind, NodeSettings, Secret};
use dms::model::{
    Batch, FieldValue, NANOS_PER_DAY, NANOS_PER_SEC, Nanos, Point, SeriesKey, TimeRange,
};
use dms::node::digest::{Comparison, FieldDigest, Sum, digest_points, fingerprint};
use dms::node::sqlite::SqliteNode;
use dms::node::{self, Depth, Digests, ErrorKind, Node, Tip};
use dms::schema::Schema;
use futures::TryStreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;

const HOUR: Nanos = 3_600 * NANOS_PER_SEC;
const DAY: Nanos = NANOS_PER_DAY;
/// 2024-01-01T00:00:00Z.
const T0: Nanos = 1_704_067_200 * NANOS_PER_SEC;
/// A symbol that needs quoting everywhere.
const WEIRD: &str = "X' OR symbol!='a\\b";

/// An InfluxDB node on `server`'s database `db`.
fn influx(server: &InfluxServer, db: &str, schema: &Schema) -> Arc<dyn Node> {
    influx_as(server, db, None, InfluxAuth::None, schema)
}

fn influx_as(
    server: &InfluxServer,
    db: &str,
    rp: Option<&str>,
    auth: InfluxAuth,
    schema: &Schema,
) -> Arc<dyn Node> {
    let settings = NodeSettings {
        name: format!("influx-{db}"),
        enabled: true,
        kind: NodeKind::Influxdb(InfluxSettings {
            url: server.url(),
            database: db.to_string(),
            retention_policy: rp.map(str::to_string),
            auth,
            timeout: Duration::from_secs(20),
            gzip: false,
            create_database: true,
        }),
    };
    node::open(&settings, schema, 4).expect("opening an influxdb node")
}

fn sqlite(dir: &TempDir, schema: &Schema) -> Arc<dyn Node> {
    Arc::new(
        SqliteNode::open("sqlite", &dir.path().join("store.db"), schema.clone(), 4)
            .expect("opening an sqlite node"),
    )
}

/// Runs InfluxQL that changes things (POST), as the admin when the server has auth.
async fn admin(server: &InfluxServer, db: &str, q: &str, with_auth: bool) {
    let mut rb = dms::node::http_client_builder()
        .build()
        .expect("http client")
        .post(format!("{}/query", server.url()))
        .form(&[("db", db), ("q", q)]);
    if with_auth {
        rb = rb.basic_auth(ADMIN, Some(ADMIN_PASSWORD));
    }
    let r = rb.send().await.expect("sending an admin query");
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    assert!(
        status.is_success() && !body.contains("\"error\""),
        "{q}: {status} {body}"
    );
}

async fn put(node: &dyn Node, points: &[Point], batch: usize) {
    for chunk in points.chunks(batch) {
        node.write(Arc::new(Batch::new(chunk.to_vec())))
            .await
            .unwrap_or_else(|e| panic!("writing to {}: {e}", node.name()));
    }
}

/// Every point of `series`, in time order.
async fn dump(node: &dyn Node, series: &SeriesKey) -> Vec<Point> {
    let batches: Vec<Batch> = node
        .read(series, TimeRange::new(0, i64::MAX / 2), 10_000)
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("reading {series} from {}: {e}", node.name()));
    batches.into_iter().flat_map(|b| b.points).collect()
}

/// `p` with its fields in key order (InfluxDB returns them so).
fn canon(mut p: Point) -> Point {
    p.fields.sort_by(|a, b| a.0.cmp(&b.0));
    p
}

/// A bar of `symbol` at `interval`, with an extra `venue` tag when given.
fn bar(
    schema: &Schema,
    (symbol, interval): (&str, &str),
    venue: Option<&str>,
    time: Nanos,
    fields: Vec<(&str, FieldValue)>,
) -> Point {
    let (measurement, tags) = schema.identity(&SeriesKey::new(symbol, interval));
    let mut tags = tags.to_vec();
    if let Some(v) = venue {
        tags.push((Arc::from("venue"), Arc::from(v)));
        tags.sort_by(|a, b| a.0.cmp(&b.0));
    }
    Point {
        measurement,
        tags: tags.into(),
        fields: fields.into_iter().map(|(k, v)| (Arc::from(k), v)).collect(),
        time,
    }
}

/// Hourly bars of `symbols` from 12 h before [`T0`] to 4 days after (with gaps), floats that
/// do not add up exactly, an integer volume, a string and a boolean on some bars; `S00` has a
/// second tag set (`venue=dark`) on every third hour, sharing timestamps with the first;
/// daily bars for the first three symbols.
fn market(schema: &Schema, symbols: &[String]) -> Vec<Point> {
    let mut out = Vec::new();
    for (s, symbol) in symbols.iter().enumerate() {
        for k in -12..96_i64 {
            if (k + s as i64) % 11 == 0 {
                continue;
            }
            let close = 100.0 + s as f64 / 3.0 + k as f64 * 0.01 + 1e-7 * (k % 7) as f64;
            let mut fields = vec![
                ("open", FieldValue::Float(close - 0.05)),
                ("close", FieldValue::Float(close)),
                ("volume", FieldValue::Integer(1_000 + k * s as i64)),
            ];
            if k % 5 == 0 {
                fields.push(("note", FieldValue::String(format!("n{k}"))));
            }
            if k % 7 == 0 {
                fields.push(("halted", FieldValue::Boolean(k % 2 == 0)));
            }
            let t = T0 + k * HOUR;
            out.push(bar(schema, (symbol, "1h"), None, t, fields));
            if s == 0 && k % 3 == 0 {
                let dark = vec![
                    ("close", FieldValue::Float(close + 1.0 / 7.0)),
                    ("volume", FieldValue::Integer(7)),
                ];
                out.push(bar(schema, (symbol, "1h"), Some("dark"), t, dark));
            }
        }
        if s < 3 {
            for d in -1..6_i64 {
                let fields = vec![
                    ("close", FieldValue::Float(200.0 + d as f64 / 9.0)),
                    ("volume", FieldValue::Integer(i64::MAX - 10 - d)),
                ];
                out.push(bar(schema, (symbol, "1d"), None, T0 + d * DAY, fields));
            }
        }
    }
    out
}

/// The symbols `S00`, `S01`, … and [`WEIRD`].
fn symbols(n: usize) -> Vec<String> {
    let mut s: Vec<String> = (0..n).map(|i| format!("S{i:02}")).collect();
    s.push(WEIRD.to_string());
    s
}

/// The series the points make up.
fn series_of(schema: &Schema, points: &[Point]) -> Vec<SeriesKey> {
    let mut keys: Vec<SeriesKey> = points.iter().filter_map(|p| schema.series_of(p)).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The reference digests of `points` (already in time order per series).
fn reference(
    schema: &Schema,
    points: &[Point],
    series: &[SeriesKey],
    range: TimeRange,
    window: Nanos,
    depth: Depth,
) -> Digests {
    let mut sorted: Vec<&Point> = points
        .iter()
        .filter(|p| p.time >= range.start && p.time <= range.end)
        .collect();
    sorted.sort_by_key(|p| p.time);
    let mut out = Digests::new();
    for s in series {
        let mine = sorted
            .iter()
            .copied()
            .filter(|p| schema.series_of(p).as_ref() == Some(s));
        let mut windows = BTreeMap::new();
        digest_points(mine, window, depth, &schema.key_field, &mut windows);
        if !windows.is_empty() {
            out.insert(s.clone(), windows);
        }
    }
    out
}

/// The reference tips of `points`.
fn reference_tips(
    schema: &Schema,
    points: &[Point],
    series: &[SeriesKey],
    horizon: Nanos,
) -> HashMap<SeriesKey, Tip> {
    let mut out: HashMap<SeriesKey, Tip> = HashMap::new();
    for p in points {
        let Some(key) = schema.series_of(p).filter(|k| series.contains(k)) else {
            continue;
        };
        let tip = out.entry(key).or_default();
        if p.time <= horizon {
            tip.add_newest(p.time, fingerprint(p));
        } else {
            tip.add_future(p.time);
        }
    }
    out
}

/// Same series, same windows, and in every window the same tag sets, field types, counts and
/// integer sums — float sums too where `bit_equal` (the same kind of node summed them; across
/// kinds they may differ in the last bits, and reconciliation reads such windows exactly).
fn assert_digests(a: &Digests, b: &Digests, bit_equal: bool, what: &str) {
    let keys = |d: &Digests| d.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(a), keys(b), "{what}: series");
    for (s, wa) in a {
        let wb = &b[s];
        let windows =
            |w: &BTreeMap<Nanos, dms::node::Digest>| w.keys().copied().collect::<Vec<_>>();
        assert_eq!(windows(wa), windows(wb), "{what}: windows of {s}");
        for (w, da) in wa {
            let db = &wb[w];
            let verdict = da.compare(db, bit_equal);
            let ok = if bit_equal {
                verdict == Comparison::Equal
            } else {
                verdict != Comparison::Differ
            };
            assert!(
                ok,
                "{what}: {s} window {w} ({verdict:?}):\n  {da:?}\n  {db:?}"
            );
        }
    }
}

/// [`assert_digests`] of two kinds of node.
fn assert_same(a: &Digests, b: &Digests, what: &str) {
    assert_digests(a, b, false, what);
}

/// The first entry of `field` in a digest (any tag set and type).
fn field(d: &dms::node::Digest, name: &str) -> Option<FieldDigest> {
    d.fields.iter().find(|(k, _)| k.1 == name).map(|(_, f)| *f)
}

#[tokio::test]
async fn sqlite_and_influxdb_give_the_same_tips_and_digests_for_the_same_points() {
    let Some(server) = InfluxServer::start().await else {
        return;
    };
    let schema = Schema::default();
    let dir = tempfile::tempdir().expect("a temp dir");
    let (lite, flux) = (sqlite(&dir, &schema), influx(&server, "market", &schema));
    let points = market(&schema, &symbols(40));
    put(lite.as_ref(), &points, 1_000).await;
    put(flux.as_ref(), &points, 1_000).await;
    let all = series_of(&schema, &points);
    // 44 series of one measurement: read whole, and S39 must not come back. A few (named in
    // the query), with one that has no data.
    let most: Vec<SeriesKey> = all.iter().filter(|s| s.symbol != "S39").cloned().collect();
    let few = vec![
        SeriesKey::new("S00", "1h"),
        SeriesKey::new("S01", "1d"),
        SeriesKey::new(WEIRD, "1h"),
        SeriesKey::new("NONE", "1h"),
    ];
    // Not aligned to windows: the first and last windows are partly outside.
    let range = TimeRange::new(T0 + 3 * HOUR + 1, T0 + 3 * DAY + 5 * HOUR);
    for (series, label) in [(&most, "most"), (&few, "few")] {
        // Minute windows: ~6,500 of them for 45 tag sets cut the whole-measurement query
        // into several slices.
        for window in [DAY, 6 * HOUR, 60 * NANOS_PER_SEC] {
            for depth in [Depth::Cheap, Depth::Full] {
                let what = format!("{label} series, {window} ns windows, {}", depth.as_str());
                let want = reference(&schema, &points, series, range, window, depth);
                let a = lite
                    .digests(series, range, window, depth)
                    .await
                    .expect("sqlite digests");
                let b = flux
                    .digests(series, range, window, depth)
                    .await
                    .expect("influx digests");
                assert_eq!(a, want, "{what}: sqlite is the reference fold");
                assert_same(&a, &b, &what);
                assert!(
                    !b.contains_key(&SeriesKey::new("S39", "1h")),
                    "{what}: not asked"
                );
                let s00 = &b[&SeriesKey::new("S00", "1h")];
                match depth {
                    Depth::Full => {
                        let first = s00
                            .values()
                            .find(|d| field(d, "note").is_some())
                            .expect("a window with a note");
                        assert_eq!(
                            field(first, "note").and_then(|f| f.sum),
                            None,
                            "{what}: strings are only counted"
                        );
                        let volume = field(first, "volume").and_then(|f| f.sum);
                        assert!(matches!(volume, Some(Sum::Integer(_))), "{what}");
                    }
                    Depth::Cheap => assert!(
                        s00.values().all(|d| d.fields.keys().all(|k| k.1 == "close")
                            && field(d, "close").is_some_and(|f| f.sum.is_none())),
                        "{what}: a cheap digest counts close and nothing else"
                    ),
                }
            }
        }
    }
    // Tips: the horizon falls between bars, so every hourly series has a future.
    let horizon = T0 + 2 * DAY + 30 * 60 * NANOS_PER_SEC;
    for series in [&most, &few] {
        let want = reference_tips(&schema, &points, series, horizon);
        let a = lite.tips(series, horizon).await.expect("sqlite tips");
        let b = flux.tips(series, horizon).await.expect("influx tips");
        assert_eq!(a, want);
        assert_eq!(b, want);
    }
}

#[tokio::test]
async fn integer_sums_wrap_alike_over_the_whole_time_line() {
    let Some(server) = InfluxServer::start().await else {
        return;
    };
    let schema = Schema::default();
    let dir = tempfile::tempdir().expect("a temp dir");
    let (lite, flux) = (sqlite(&dir, &schema), influx(&server, "market", &schema));
    let points = market(&schema, &symbols(3));
    put(lite.as_ref(), &points, 1_000).await;
    put(flux.as_ref(), &points, 1_000).await;
    // Daily volumes near i64::MAX, seven in one 30-day window.
    let daily = vec![SeriesKey::new("S02", "1d")];
    let everything = TimeRange::new(i64::MIN, i64::MAX);
    let a = lite
        .digests(&daily, everything, 30 * DAY, Depth::Full)
        .await
        .expect("sqlite");
    let b = flux
        .digests(&daily, everything, 30 * DAY, Depth::Full)
        .await
        .expect("influx");
    assert_same(&a, &b, "daily bars, the whole time line");
    let wrapped = (-1..6_i64).fold(0_i64, |s, d| s.wrapping_add(i64::MAX - 10 - d));
    let windows: Vec<_> = b[&daily[0]].values().collect();
    assert_eq!(windows.len(), 1);
    assert_eq!(
        field(windows[0], "volume").and_then(|f| f.sum),
        Some(Sum::Integer(wrapped))
    );
}

#[tokio::test]
async fn tips_keep_future_points_apart_and_add_the_tag_sets_of_the_newest_time() {
    let Some(server) = InfluxServer::start().await else {
        return;
    };
    let schema = Schema::default();
    let dir = tempfile::tempdir().expect("a temp dir");
    let (lite, flux) = (sqlite(&dir, &schema), influx(&server, "market", &schema));
    let close = |x: f64| vec![("close", FieldValue::Float(x))];
    let a = ("A", "1m");
    let main = bar(&schema, a, None, T0 + 60 * NANOS_PER_SEC, close(1.5));
    let dark = bar(
        &schema,
        a,
        Some("dark"),
        T0 + 60 * NANOS_PER_SEC,
        close(2.5),
    );
    let points = vec![
        bar(&schema, a, None, T0, close(1.0)),
        main.clone(),
        dark.clone(),
        bar(&schema, a, None, T0 + DAY, close(9.0)),
        bar(&schema, ("OLD", "1m"), None, T0 - DAY, close(3.0)),
        bar(&schema, ("NEW", "1m"), None, T0 + 2 * DAY, close(4.0)),
    ];
    put(lite.as_ref(), &points, 100).await;
    put(flux.as_ref(), &points, 100).await;
    let series = ["A", "OLD", "NEW", "NONE"].map(|s| SeriesKey::new(s, "1m"));
    let horizon = T0 + HOUR;
    for node in [&lite, &flux] {
        let tips = node.tips(&series, horizon).await.expect("tips");
        let who = node.name();
        assert_eq!(
            tips.len(),
            3,
            "{who}: series without data have no tip: {tips:?}"
        );
        let a = tips[&series[0]];
        let fp = fingerprint(&main).wrapping_add(fingerprint(&dark));
        assert_eq!(a.newest, Some((T0 + 60 * NANOS_PER_SEC, fp)), "{who}");
        assert_eq!(
            a.future,
            Some(T0 + DAY),
            "{who}: the future point is only in future"
        );
        assert_eq!(tips[&series[1]].future, None, "{who}");
        assert_eq!(tips[&series[2]].newest, None, "{who}");
        assert_eq!(tips[&series[2]].future, Some(T0 + 2 * DAY), "{who}");
        // At the future point's own time it is the newest, and nothing lies beyond.
        let later = node.tips(&series[..1], T0 + DAY).await.expect("tips");
        assert_eq!(later[&series[0]].newest_time(), Some(T0 + DAY), "{who}");
        assert_eq!(later[&series[0]].future, None, "{who}");
        // Horizons at the ends of the time line.
        let end = node
            .tips(&series[..1], i64::MAX)
            .await
            .expect("tips at the end");
        assert_eq!(end[&series[0]].latest(), Some(T0 + DAY), "{who}");
        let start = node
            .tips(&series[..1], i64::MIN)
            .await
            .expect("tips at the start");
        assert_eq!(
            start[&series[0]],
            Tip {
                newest: None,
                future: Some(T0 + DAY)
            },
            "{who}"
        );
    }
}

#[tokio::test]
async fn one_changed_value_changes_only_its_windows_digest_on_both_kinds() {
    let Some(server) = InfluxServer::start().await else {
        return;
    };
    let schema = Schema::default();
    let dir = tempfile::tempdir().expect("a temp dir");
    let (lite, flux) = (sqlite(&dir, &schema), influx(&server, "market", &schema));
    let points = market(&schema, &symbols(2));
    put(lite.as_ref(), &points, 1_000).await;
    put(flux.as_ref(), &points, 1_000).await;
    let series = series_of(&schema, &points);
    let range = TimeRange::new(T0, T0 + 4 * DAY);
    let s00 = SeriesKey::new("S00", "1h");
    // One bar of S00 on day 2, changed by one tick in `close`, then in `open`.
    let target = points
        .iter()
        .find(|p| {
            p.time == T0 + 2 * DAY + 5 * HOUR
                && p.tag("venue").is_none()
                && schema.series_of(p) == Some(s00.clone())
        })
        .expect("the bar")
        .clone();
    let nudge = |field: &str| {
        let mut p = target.clone();
        for (k, v) in &mut p.fields {
            if &**k == field
                && let FieldValue::Float(x) = v
            {
                *x += 0.0001;
            }
        }
        p
    };
    for node in [&lite, &flux] {
        let who = node.name().to_string();
        let before_full = node
            .digests(&series, range, DAY, Depth::Full)
            .await
            .expect("digests");
        let before_cheap = node
            .digests(&series, range, DAY, Depth::Cheap)
            .await
            .expect("digests");
        // A cheap digest counts bars: a changed value is for the full one.
        for (field, cheap_sees_it) in [("close", false), ("open", false)] {
            put(node.as_ref(), &[nudge(field)], 1).await;
            let full = node
                .digests(&series, range, DAY, Depth::Full)
                .await
                .expect("digests");
            let cheap = node
                .digests(&series, range, DAY, Depth::Cheap)
                .await
                .expect("digests");
            for (s, windows) in &full {
                for (w, d) in windows {
                    let changed = s == &s00 && *w == T0 + 2 * DAY;
                    assert_eq!(
                        d.compare(&before_full[s][w], true) != Comparison::Equal,
                        changed,
                        "{who}: {field}, full, {s} {w}"
                    );
                    let cheap_changed =
                        cheap[s][w].compare(&before_cheap[s][w], true) != Comparison::Equal;
                    assert_eq!(
                        cheap_changed,
                        changed && cheap_sees_it,
                        "{who}: {field}, cheap, {s} {w}"
                    );
                }
            }
            put(node.as_ref(), std::slice::from_ref(&target), 1).await;
            let back = node
                .digests(&series, range, DAY, Depth::Full)
                .await
                .expect("digests");
            assert_digests(
                &back,
                &before_full,
                true,
                &format!("{who}: {field} put back"),
            );
        }
    }
}

#[tokio::test]
async fn the_same_points_written_in_opposite_orders_digest_the_same() {
    let Some(servers) = futures::future::join_all([InfluxServer::start(), InfluxServer::start()])
        .await
        .into_iter()
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let schema = Schema::default();
    let (a, b) = (
        influx(&servers[0], "market", &schema),
        influx(&servers[1], "market", &schema),
    );
    let points = market(&schema, &symbols(3));
    let mut reversed = points.clone();
    reversed.reverse();
    put(a.as_ref(), &points, 997).await;
    put(b.as_ref(), &reversed, 13).await;
    let series = series_of(&schema, &points);
    let range = TimeRange::new(T0 - DAY, T0 + 5 * DAY);
    for window in [DAY, 6 * HOUR] {
        let da = a
            .digests(&series, range, window, Depth::Full)
            .await
            .expect("digests");
        let db = b
            .digests(&series, range, window, Depth::Full)
            .await
            .expect("digests");
        assert_eq!(da.len(), series.len());
        assert_digests(&da, &db, true, &format!("{window} ns windows: bit-equal"));
    }
    let horizon = T0 + DAY;
    assert_eq!(
        a.tips(&series, horizon).await.expect("tips"),
        b.tips(&series, horizon).await.expect("tips")
    );
}

#[tokio::test]
async fn delete_removes_exactly_the_given_timestamps_of_that_series_on_both_kinds() {
    let Some(server) = InfluxServer::start().await else {
        return;
    };
    let schema = Schema::default();
    let dir = tempfile::tempdir().expect("a temp dir");
    let (lite, flux) = (sqlite(&dir, &schema), influx(&server, "market", &schema));
    let points = market(&schema, &symbols(3));
    put(lite.as_ref(), &points, 1_000).await;
    put(flux.as_ref(), &points, 1_000).await;
    let series = series_of(&schema, &points);
    let s00 = SeriesKey::new("S00", "1h");
    // T0 + 1d holds both tag sets of S00 (and the daily bar of S00@1d, and the bars of the
    // other symbols); T0 + 25h one tag set; T0 + 7d nothing.
    let gone = [T0 + DAY, T0 + 25 * HOUR, T0 + 7 * DAY];
    let want: Vec<Point> = points
        .iter()
        .filter(|p| !(schema.series_of(p) == Some(s00.clone()) && gone.contains(&p.time)))
        .cloned()
        .collect();
    assert_eq!(points.len() - want.len(), 3, "two tag sets, then one");
    for node in [&lite, &flux] {
        let who = node.name();
        assert_eq!(node.delete(&s00, &gone).await.expect("delete"), 3, "{who}");
        for s in &series {
            let left: Vec<Point> = dump(node.as_ref(), s)
                .await
                .into_iter()
                .map(canon)
                .collect();
            let expected: Vec<Point> = want
                .iter()
                .filter(|p| schema.series_of(p).as_ref() == Some(s))
                .cloned()
                .map(canon)
                .collect();
            assert_eq!(left.len(), expected.len(), "{who}: {s}");
            for p in &expected {
                assert!(left.contains(p), "{who}: {s} lost {p:?}");
            }
        }
        // Deleting again, or nothing, changes nothing.
        assert_eq!(node.delete(&s00, &gone).await.expect("delete"), 3, "{who}");
        assert_eq!(node.delete(&s00, &[]).await.expect("delete"), 0, "{who}");
    }
    let range = TimeRange::new(T0 - DAY, T0 + 5 * DAY);
    let a = lite
        .digests(&series, range, DAY, Depth::Full)
        .await
        .expect("digests");
    let b = flux
        .digests(&series, range, DAY, Depth::Full)
        .await
        .expect("digests");
    assert_same(&a, &b, "after the deletes");
    assert_eq!(
        a,
        reference(&schema, &want, &series, range, DAY, Depth::Full)
    );
}

#[tokio::test]
async fn a_template_schema_types_each_measurement_by_its_own_fields() {
    let Some(server) = InfluxServer::start().await else {
        return;
    };
    let schema = Schema::new("bars_{interval}", "symbol", None).expect("a schema");
    let dir = tempfile::tempdir().expect("a temp dir");
    let (lite, flux) = (sqlite(&dir, &schema), influx(&server, "market", &schema));
    // `volume` is an integer in bars_1h and a float (with whole values) in bars_1d.
    let mut points = Vec::new();
    for k in 0..48_i64 {
        let fields = vec![
            ("close", FieldValue::Float(1.0 + k as f64 / 3.0)),
            ("volume", FieldValue::Integer(k)),
        ];
        points.push(bar(&schema, ("A", "1h"), None, T0 + k * HOUR, fields));
        let fields = vec![
            ("close", FieldValue::Float(k as f64)),
            ("volume", FieldValue::Float(k as f64)),
        ];
        points.push(bar(&schema, ("A", "1d"), None, T0 + k * DAY, fields));
    }
    put(lite.as_ref(), &points, 500).await;
    put(flux.as_ref(), &points, 500).await;
    let series = series_of(&schema, &points);
    assert_eq!(series.len(), 2);
    let range = TimeRange::new(T0, T0 + 60 * DAY);
    let a = lite
        .digests(&series, range, 7 * DAY, Depth::Full)
        .await
        .expect("digests");
    let b = flux
        .digests(&series, range, 7 * DAY, Depth::Full)
        .await
        .expect("digests");
    assert_same(&a, &b, "template schema");
    let daily = b[&SeriesKey::new("A", "1d")]
        .values()
        .next()
        .expect("a window");
    assert!(matches!(
        field(daily, "volume").and_then(|f| f.sum),
        Some(Sum::Float(_))
    ));
    let horizon = T0 + 10 * DAY;
    let want = reference_tips(&schema, &points, &series, horizon);
    assert_eq!(lite.tips(&series, horizon).await.expect("tips"), want);
    assert_eq!(flux.tips(&series, horizon).await.expect("tips"), want);
}

#[tokio::test]
async fn a_delete_refused_for_lack_of_rights_is_an_auth_error() {
    let Some(server) = InfluxServer::start_with_auth().await else {
        return;
    };
    admin(&server, "", "CREATE DATABASE \"market\"", true).await;
    admin(
        &server,
        "",
        "CREATE USER \"reader\" WITH PASSWORD 'r3ad'",
        true,
    )
    .await;
    admin(&server, "", "GRANT READ ON \"market\" TO \"reader\"", true).await;
    let schema = Schema::default();
    let writer = influx_as(
        &server,
        "market",
        None,
        InfluxAuth::Basic {
            username: ADMIN.into(),
            password: Secret::new(ADMIN_PASSWORD.into()),
        },
        &schema,
    );
    let points = market(&schema, &symbols(1));
    put(writer.as_ref(), &points, 1_000).await;
    let reader = influx_as(
        &server,
        "market",
        None,
        InfluxAuth::Basic {
            username: "reader".into(),
            password: Secret::new("r3ad".into()),
        },
        &schema,
    );
    let s00 = SeriesKey::new("S00", "1h");
    let err = reader
        .delete(&s00, &[T0])
        .await
        .expect_err("a reader cannot delete");
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert!(!err.retryable());
    assert!(!err.to_string().contains("r3ad"), "{err}");
    let before = points
        .iter()
        .filter(|p| schema.series_of(p) == Some(s00.clone()))
        .count();
    assert_eq!(
        dump(writer.as_ref(), &s00).await.len(),
        before,
        "nothing was deleted"
    );
}

#[tokio::test]
async fn a_delete_never_reaches_into_another_retention_policy() {
    let Some(server) = InfluxServer::start().await else {
        return;
    };
    let schema = Schema::default();
    let db = "market";
    admin(&server, "", "CREATE DATABASE \"market\"", false).await;
    admin(
        &server,
        db,
        "CREATE RETENTION POLICY \"other\" ON \"market\" DURATION INF REPLICATION 1",
        false,
    )
    .await;
    let main = influx(&server, db, &schema);
    let other = influx_as(&server, db, Some("other"), InfluxAuth::None, &schema);
    let a = ("A", "1h");
    let close = |x: f64| vec![("close", FieldValue::Float(x))];
    put(
        main.as_ref(),
        &[
            bar(&schema, a, None, T0, close(1.0)),
            bar(&schema, a, None, T0 + HOUR, close(2.0)),
        ],
        10,
    )
    .await;
    put(
        other.as_ref(),
        &[
            bar(&schema, a, None, T0, close(1.0)),
            bar(&schema, a, None, T0 - 30 * DAY, close(0.5)),
        ],
        10,
    )
    .await;
    let series = SeriesKey::new("A", "1h");
    // The other policy holds A at T0: InfluxDB would delete it there too, so nothing goes.
    for node in [&main, &other] {
        let err = node.delete(&series, &[T0]).await.expect_err("refused");
        assert_eq!(err.kind, ErrorKind::Rejected, "{err}");
        assert!(err.to_string().contains("retention policy"), "{err}");
    }
    assert_eq!(dump(main.as_ref(), &series).await.len(), 2);
    assert_eq!(dump(other.as_ref(), &series).await.len(), 2);
    // At T0 + 1h only the main policy holds A: the delete goes ahead there alone.
    assert_eq!(main.delete(&series, &[T0 + HOUR]).await.expect("delete"), 1);
    let times = |ps: Vec<Point>| ps.iter().map(|p| p.time).collect::<Vec<_>>();
    assert_eq!(times(dump(main.as_ref(), &series).await), [T0]);
    assert_eq!(
        times(dump(other.as_ref(), &series).await),
        [T0 - 30 * DAY, T0]
    );
}
