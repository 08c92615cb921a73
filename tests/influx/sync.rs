//! Syncs between real InfluxDB servers: first and incremental syncs, measurement templates,
//! points that share a timestamp, and databases that do not exist yet.

use super::support::{
    Options, Project, Target, assert_same_points, assert_same_raw, bars, dump, field_keys, node,
    put, servers, sync,
};
use dms::history::Status;
use dms::model::{Batch, FieldValue, Name, Nanos, Point, SeriesKey, TimeRange};
use dms::node::ErrorKind;
use dms::schema::Schema;
use dms::sync::Selection;
use futures::TryStreamExt;
use std::sync::Arc;

/// A series with every field type: floats that print like integers (`100`) or need 17
/// digits, the largest integers, strings with quotes, backslashes, newlines and unicode, and
/// points that lack some fields.
fn typed_points(schema: &Schema, series: &SeriesKey, start: Nanos) -> Vec<Point> {
    let (measurement, tags) = schema.identity(series);
    let k = |s: &str| -> Name { Arc::from(s) };
    (0..40)
        .map(|i: i64| {
            let mut fields = vec![
                (k("price"), FieldValue::Float(100.0 + i as f64)),
                (k("ratio"), FieldValue::Float(0.1 + 0.2 * i as f64)),
                (
                    k("exact"),
                    FieldValue::Float(971.986_371_854_762_9 / (i + 1) as f64),
                ),
                (k("count"), FieldValue::Integer(i64::MAX - i)),
                (k("halted"), FieldValue::Boolean(i % 2 == 0)),
            ];
            if i % 3 == 0 {
                fields.push((
                    k("note"),
                    FieldValue::String(format!("say \"hi\" \\ {i}\nzweite Zeile · 株")),
                ));
            }
            Point {
                measurement: measurement.clone(),
                tags: tags.clone(),
                fields,
                time: start + i * 60_000_000_000 + 123_456_789,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_copies_every_series_to_both_backups() {
    let Some(s) = servers(3).await else { return };
    let opts = Options::default();
    let schema = opts.schema();
    let p = Target::on(&s[0], "market");
    let b1 = Target::on(&s[1], "copy1");
    let b2 = Target::on(&s[2], "copy2").with("gzip", "true");
    let primary = node("primary", &p, &schema);
    let mut series = Vec::new();
    let mut total = 0;
    for sym in ["US.AAPL", "US.MSFT", "US.NVDA"] {
        for (interval, days) in [("1m", 2), ("1d", 60)] {
            let points = bars(&schema, sym, interval, days);
            total += points.len();
            put(&*primary, points).await;
            series.push(SeriesKey::new(sym, interval));
        }
    }
    let typed = SeriesKey::new("US.TYPES", "1m");
    let points = typed_points(&schema, &typed, 1_700_000_000_000_000_000);
    total += points.len();
    put(&*primary, points).await;
    series.push(typed);

    let project = Project::new(&p, &[b1.clone(), b2.clone()], &opts);
    let app = project.app();
    let out = sync(&app, Selection::all()).await;
    assert_eq!(out.status, Status::Success, "{:?}", out.error);
    assert_eq!(out.report.units.len(), series.len() * 2);
    assert_eq!(out.report.records(), 2 * total as u64);

    let newest = primary.newest(&series).await.expect("newest");
    assert_eq!(newest.len(), series.len());
    for (name, target, server) in [("backup1", &b1, &s[1]), ("backup2", &b2, &s[2])] {
        let backup = node(name, target, &schema);
        assert_same_points(&*primary, &*backup, &series).await;
        assert_same_raw((&s[0], "market"), (server, &target.database), &["kline"]).await;
        for k in &series {
            assert_eq!(
                project.checkpoint(name, k),
                newest.get(k).copied(),
                "{name} {k}"
            );
        }
        let types = field_keys(server, &target.database, "kline").await;
        for (field, ty) in [
            ("close", "float"),
            ("volume", "integer"),
            ("price", "float"),
            ("count", "integer"),
            ("note", "string"),
            ("halted", "boolean"),
        ] {
            assert!(
                types.contains(&(field.to_string(), ty.to_string())),
                "{name}: {field} should be {ty}: {types:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_sync_copies_only_new_and_updated_bars() {
    let Some(s) = servers(2).await else { return };
    let opts = Options::default();
    let schema = opts.schema();
    let p = Target::on(&s[0], "market");
    let backups = [Target::on(&s[1], "copy1"), Target::on(&s[1], "copy2")];
    let primary = node("primary", &p, &schema);
    let minute = SeriesKey::new("US.AAPL", "1m");
    let others = [
        SeriesKey::new("US.AAPL", "1d"),
        SeriesKey::new("US.MSFT", "1m"),
    ];
    let mut bars_1m = bars(&schema, "US.AAPL", "1m", 1);
    put(&*primary, bars_1m.clone()).await;
    put(&*primary, bars(&schema, "US.AAPL", "1d", 20)).await;
    put(&*primary, bars(&schema, "US.MSFT", "1m", 1)).await;
    let project = Project::new(&p, &backups, &opts);
    let app = project.app();
    let all: Vec<SeriesKey> = std::iter::once(minute.clone())
        .chain(others.clone())
        .collect();
    let first = sync(&app, Selection::Series(all.clone())).await;
    assert_eq!(first.status, Status::Success, "{:?}", first.error);
    let before = project.checkpoints();

    // Today's bar is rewritten, and five new bars arrive.
    let mut last = bars_1m.pop().expect("bars");
    last.fields[0].1 = FieldValue::Float(12345.67);
    last.fields[4].1 = FieldValue::Integer(999_999);
    let mut changed = vec![last.clone()];
    for k in 1..=5 {
        let mut p = last.clone();
        p.time += k * 60_000_000_000;
        changed.push(p);
    }
    put(&*primary, changed).await;

    let second = sync(&app, Selection::Series(all.clone())).await;
    assert_eq!(second.status, Status::Success, "{:?}", second.error);
    for u in &second.report.units {
        let k = &u.key.series;
        // Each window starts at the checkpoint, inclusive.
        assert_eq!(Some(u.window_start), before.get(&u.key).copied());
        // The unchanged newest bar of the others is re-read and compared, not rewritten.
        let expected = if *k == minute { 6 } else { 0 };
        assert_eq!(
            u.records, expected,
            "{} {k}: the updated bar and the new ones, nothing else",
            u.key.backup
        );
    }
    for (i, t) in backups.iter().enumerate() {
        let backup = node(&format!("backup{}", i + 1), t, &schema);
        assert_same_points(&*primary, &*backup, &all).await;
        let copied = dump(&*backup, &minute).await;
        let updated = copied
            .iter()
            .find(|p| p.time == last.time)
            .expect("the updated bar");
        assert_eq!(updated.field("close"), Some(&FieldValue::Float(12345.67)));
        assert_eq!(updated.field("volume"), Some(&FieldValue::Integer(999_999)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_schema_keeps_one_measurement_per_interval() {
    let Some(s) = servers(2).await else { return };
    let opts = Options {
        measurement: "kline_{interval}".into(),
        interval_tag: None,
        ..Options::default()
    };
    let schema = opts.schema();
    let p = Target::on(&s[0], "market");
    let b = Target::on(&s[1], "copy");
    let primary = node("primary", &p, &schema);
    let mut series = Vec::new();
    for sym in ["US.AAPL", "US.MSFT"] {
        for (interval, days) in [("1m", 1), ("1d", 30), ("5 m", 1)] {
            put(&*primary, bars(&schema, sym, interval, days)).await;
            series.push(SeriesKey::new(sym, interval));
        }
    }
    // Measurements outside the template are not series.
    s[0].write_lines(
        "market",
        "other,symbol=US.AAPL v=1 1\nkline_,symbol=US.AAPL v=1 1\n",
    )
    .await;
    series.sort();
    assert_eq!(primary.list_series().await.expect("list"), series);

    let project = Project::new(&p, std::slice::from_ref(&b), &opts);
    let app = project.app();
    let out = sync(&app, Selection::all()).await;
    assert_eq!(out.status, Status::Success, "{:?}", out.error);
    assert_eq!(out.report.units.len(), series.len());
    let backup = node("backup1", &b, &schema);
    assert_same_points(&*primary, &*backup, &series).await;
    assert_same_raw(
        (&s[0], "market"),
        (&s[1], "copy"),
        &["kline_1m", "kline_1d", "kline_5 m"],
    )
    .await;
    let m = s[1].query("copy", "SHOW MEASUREMENTS").await;
    assert_eq!(
        m["results"][0]["series"][0]["values"],
        serde_json::json!([["kline_1d"], ["kline_1m"], ["kline_5 m"]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_sharing_a_timestamp_are_never_split_across_batches() {
    let Some(s) = servers(2).await else { return };
    let opts = Options {
        batch_size: 7,
        ..Options::default()
    };
    let schema = opts.schema();
    let p = Target::on(&s[0], "market");
    let b = Target::on(&s[1], "copy");
    let primary = node("primary", &p, &schema);
    let key = SeriesKey::new("US.AAPL", "1m");
    let (measurement, tags) = schema.identity(&key);
    // Three venues (an extra tag) report the same series; not every venue every minute.
    let mut points = Vec::new();
    for i in 0..60i64 {
        for (v, every) in [("a", 1), ("b", 2), ("c", 3)] {
            if i % every != 0 {
                continue;
            }
            let mut t = tags.to_vec();
            t.push((Arc::from("venue"), Arc::from(v)));
            t.sort();
            points.push(Point {
                measurement: measurement.clone(),
                tags: t.into(),
                fields: vec![(Arc::from("close"), FieldValue::Float(i as f64 + 0.25))],
                time: 1_700_000_000_000_000_000 + i * 60_000_000_000,
            });
        }
    }
    let n = points.len();
    put(&*primary, points).await;

    let batches: Vec<Batch> = primary
        .read(&key, TimeRange::new(0, i64::MAX / 2), 7)
        .try_collect()
        .await
        .expect("read");
    assert!(batches.len() > 5, "{} batches", batches.len());
    assert_eq!(batches.iter().map(Batch::len).sum::<usize>(), n);
    for pair in batches.windows(2) {
        assert!(
            pair[0].last_time() < pair[1].first_time(),
            "a timestamp is split across batches"
        );
    }
    for b in &batches {
        assert!(
            b.points.windows(2).all(|w| w[0].time <= w[1].time),
            "not in time order"
        );
    }

    let project = Project::new(&p, std::slice::from_ref(&b), &opts);
    let app = project.app();
    let out = sync(&app, Selection::all()).await;
    assert_eq!(out.status, Status::Success, "{:?}", out.error);
    assert_eq!(out.report.records(), n as u64);
    let backup = node("backup1", &b, &schema);
    assert_same_points(&*primary, &*backup, &[key]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_database_holds_no_series_until_the_first_write_creates_it() {
    let Some(s) = servers(1).await else { return };
    let schema = Schema::default();
    let fresh = node("fresh", &Target::on(&s[0], "not yet"), &schema);
    let key = SeriesKey::new("US.AAPL", "1d");
    fresh.ping().await.expect("ping");
    assert!(fresh.list_series().await.expect("list").is_empty());
    assert!(
        fresh
            .newest(std::slice::from_ref(&key))
            .await
            .expect("newest")
            .is_empty()
    );
    assert!(dump(&*fresh, &key).await.is_empty());
    put(&*fresh, bars(&schema, "US.AAPL", "1d", 5)).await;
    assert_eq!(fresh.list_series().await.expect("list"), vec![key.clone()]);
    assert_eq!(dump(&*fresh, &key).await.len(), 5);

    let nowhere = node("gone", &Target::nowhere("x"), &schema);
    let err = nowhere.ping().await.expect_err("nothing listens there");
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(err.retryable());
}
