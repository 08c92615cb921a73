//! `dms import` into a real InfluxDB primary, through the real binary: whole batches up to a
//! bad row, skipped bad rows, column types kept (integers stay integers), a template schema,
//! then a sync that leaves the backup equal.

use super::support::{
    Options, Project, Target, assert_same_points, dump, field_keys, node, servers, sync,
};
use dms::model::{NANOS_PER_SEC, SeriesKey};
use dms::sync::Selection;

const T0: i64 = 1_706_711_400; // 2024-01-31T14:30:00Z

/// `n` 1m rows from `from` on, in epoch milliseconds.
fn rows(from: i64, n: i64) -> String {
    (from..from + n)
        .map(|i| {
            format!(
                "{}000,{}.5,{}.25,{},XNAS\n",
                T0 + 60 * i,
                100 + i % 50,
                100 + i % 50,
                1000 + i
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn import_into_an_influxdb_primary_stops_at_whole_batches_and_keeps_types() {
    let Some(s) = servers(2).await else { return };
    s[0].create_database("market").await;
    let opts = Options {
        batch_size: 500,
        measurement: "kline_{interval}".into(),
        interval_tag: None,
        ..Options::default()
    };
    let schema = opts.schema();
    let (pt, bt) = (Target::on(&s[0], "market"), Target::on(&s[1], "copy"));
    let project = Project::new(&pt, std::slice::from_ref(&bt), &opts);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bars.csv");
    let header = "time,open,close,volume,venue\n";
    // 1,200 good rows, then a bad time at line 1,202.
    let text = format!(
        "{header}{}yesterday,1,1,1,XNAS\n{}",
        rows(0, 1200),
        rows(1200, 300)
    );
    std::fs::write(&file, text).unwrap();
    let path = file.to_str().unwrap();
    let out = project.cli(&[
        "import",
        "--symbol",
        "US.AAPL",
        "--interval",
        "1m",
        "--tag",
        "venue",
        path,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{path}:1202:")), "{err}");
    let key = SeriesKey::new("US.AAPL", "1m");
    let primary = node("primary", &pt, &schema);
    assert_eq!(
        dump(primary.as_ref(), &key).await.len(),
        1000,
        "two whole batches"
    );

    let out = project.cli(&[
        "import",
        "--symbol",
        "US.AAPL",
        "--interval",
        "1m",
        "--tag",
        "venue",
        "--skip-bad",
        "--json",
        path,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["written"], 1500);
    assert_eq!(run["skipped_bad"], 1);
    assert_eq!(run["files"][0]["time_unit"], "ms");
    let points = dump(primary.as_ref(), &key).await;
    assert_eq!(points.len(), 1500);
    assert_eq!(points[1499].time, (T0 + 60 * 1499) * NANOS_PER_SEC);
    assert_eq!(points[0].tag("venue"), Some("XNAS"));
    let mut types = field_keys(&s[0], "market", "kline_1m").await;
    types.sort();
    assert_eq!(
        types,
        [
            ("close".to_string(), "float".to_string()),
            ("open".to_string(), "float".to_string()),
            ("volume".to_string(), "integer".to_string()),
        ]
    );

    // What was imported is synced like any other data.
    let app = project.app();
    let outcome = sync(&app, Selection::cross(&["US.AAPL".into()], &["1m".into()])).await;
    assert_eq!(outcome.report.failed(), 0);
    let backup = node("backup1", &bt, &schema);
    assert_same_points(primary.as_ref(), backup.as_ref(), &[key]).await;
}
