//! The `sqlite` node kind on its own: overwrite semantics, paging, batched newest.

use crate::helper::project::{Project, all, put};
use dms::model::{FieldValue, Point, SeriesKey, TimeRange};
use dms::node::Node;
use futures::StreamExt;
use std::sync::Arc;

fn point(symbol: &str, venue: Option<&str>, time: i64, close: f64) -> Point {
    let (m, tags) = dms::schema::Schema::default().identity(&SeriesKey::new(symbol, "1m"));
    let mut tags = tags.to_vec();
    if let Some(v) = venue {
        tags.push(("venue".into(), Arc::from(v)));
        tags.sort_by(|a, b| a.0.cmp(&b.0));
    }
    let tags = tags.into();
    Point {
        measurement: m,
        tags,
        fields: vec![("close".into(), FieldValue::Float(close))],
        time,
    }
}

#[tokio::test]
async fn same_series_and_timestamp_replaces_the_old_point() {
    let p = Project::new();
    let node = p.node("primary");
    put(
        node.as_ref(),
        vec![point("A", None, 10, 1.0), point("A", None, 20, 2.0)],
    )
    .await;
    put(node.as_ref(), vec![point("A", None, 20, 9.5)]).await;
    let s = SeriesKey::new("A", "1m");
    let got = all(node.as_ref(), &s).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].field("close"), Some(&FieldValue::Float(9.5)));
}

#[tokio::test]
async fn pages_never_split_the_points_of_one_timestamp() {
    let p = Project::new();
    let node = p.node("primary");
    // Five venues (extra tag) per timestamp, 20 timestamps: 100 points in one series.
    let mut pts = Vec::new();
    for t in 0..20 {
        for v in ["v1", "v2", "v3", "v4", "v5"] {
            pts.push(point("A", Some(v), 1000 + t, t as f64));
        }
    }
    put(node.as_ref(), pts).await;
    let s = SeriesKey::new("A", "1m");
    for batch_size in [1, 3, 5, 7, 100] {
        let mut stream = node.read(&s, TimeRange::new(0, i64::MAX), batch_size);
        let mut seen = Vec::new();
        while let Some(b) = stream.next().await {
            let b = b.unwrap();
            let first = b.first_time().unwrap();
            let last = b.last_time().unwrap();
            // Every timestamp in the batch is complete.
            for t in first..=last {
                let n = b.points.iter().filter(|p| p.time == t).count();
                assert!(
                    n == 0 || n == 5,
                    "batch_size {batch_size}: {n} points at {t}"
                );
            }
            assert!(
                seen.last().is_none_or(|l: &i64| *l < first),
                "batches are in time order"
            );
            seen.extend(b.points.iter().map(|p| p.time));
        }
        assert_eq!(seen.len(), 100, "batch_size {batch_size}");
    }
}

#[tokio::test]
async fn newest_is_looked_up_for_many_series_at_once_and_missing_ones_are_absent() {
    let p = Project::new();
    let node = p.node("primary");
    put(
        node.as_ref(),
        vec![
            point("A", None, 10, 1.0),
            point("A", None, 30, 1.0),
            point("B", Some("x"), 20, 1.0),
        ],
    )
    .await;
    let a = SeriesKey::new("A", "1m");
    let b = SeriesKey::new("B", "1m");
    let c = SeriesKey::new("C", "1m");
    let newest = node
        .newest(&[a.clone(), b.clone(), c.clone()])
        .await
        .unwrap();
    assert_eq!(newest.get(&a), Some(&30));
    assert_eq!(newest.get(&b), Some(&20));
    assert_eq!(newest.get(&c), None);
    assert_eq!(node.list_series().await.unwrap(), vec![a, b]);
}

#[tokio::test]
async fn a_file_that_is_not_a_database_gives_a_clear_error() {
    let p = Project::new();
    p.write(
        "run/garbage.db",
        "this is not sqlite, just text that is long enough to be read as a header......",
    );
    let err = dms::node::sqlite::SqliteNode::open(
        "garbage",
        &p.root().join("run/garbage.db"),
        dms::schema::Schema::default(),
        1,
    )
    .err()
    .expect("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("garbage") && msg.contains("not a database"),
        "{msg}"
    );
}
