//! `dms restore` between real InfluxDB servers, through the real binary: a symbol dropped on
//! the primary (`DROP SERIES`) comes back exactly, a primary whose database was dropped comes
//! back from one backup with every field type intact (schema `kline_{interval}`), a database
//! that does not exist yet is filled, revised values are kept unless `--overwrite` (which also
//! replaces a point whose extra field a merge would keep), a restore killed at random
//! moments converges when run again, and a SQLite primary comes back from an InfluxDB backup
//! with two tag sets sharing every timestamp.

use super::support::{
    Options, Project, Target, assert_same_points, assert_same_raw, bars, dump, node, put, servers,
};
use dms::model::{FieldValue, Name, Nanos, Point, SeriesKey};
use dms::node::Node;
use dms::schema::Schema;
use serde_json::Value;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `dms ARGS…` and asserts it succeeded.
fn ok(project: &Project, args: &[&str]) -> Output {
    let out = project.cli(args);
    assert!(out.status.success(), "dms {args:?}: {}", text(&out));
    out
}

/// `dms restore ARGS… --json`: the exit code and the run.
fn restore_json(project: &Project, args: &[&str]) -> (i32, Value) {
    let mut a = vec!["restore"];
    a.extend_from_slice(args);
    a.push("--json");
    let out = project.cli(&a);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (out.status.code().unwrap_or(-1), v)
}

/// A series with every field type: integers at their limits, floats that print like integers,
/// strings with quotes and line breaks, booleans, points that lack some fields.
fn typed(schema: &Schema, series: &SeriesKey, start: Nanos) -> Vec<Point> {
    let (measurement, tags) = schema.identity(series);
    let k = |s: &str| -> Name { Arc::from(s) };
    (0..30)
        .map(|i: i64| {
            let mut fields = vec![
                (k("close"), FieldValue::Float(100.0 + i as f64)),
                (k("ratio"), FieldValue::Float(0.1 + 0.2 * i as f64)),
                (k("volume"), FieldValue::Integer(i64::MAX - i)),
                (k("halted"), FieldValue::Boolean(i % 2 == 0)),
            ];
            if i % 3 == 0 {
                fields.push((
                    k("note"),
                    FieldValue::String(format!("say \"hi\" \\ {i}\n株")),
                ));
            }
            Point {
                measurement: measurement.clone(),
                tags: tags.clone(),
                fields,
                time: start + i * 86_400_000_000_000 + 123_456_789,
            }
        })
        .collect()
}

/// Seeds `symbols` × (`1m` over 2 weekdays, `1d` over 40) on the primary, plus a typed
/// series; returns every series.
async fn seed(primary: &dyn Node, schema: &Schema, symbols: &[&str]) -> Vec<SeriesKey> {
    let mut series = Vec::new();
    for sym in symbols {
        for (interval, days) in [("1m", 2), ("1d", 40)] {
            put(primary, bars(schema, sym, interval, days)).await;
            series.push(SeriesKey::new(*sym, interval));
        }
    }
    let t = SeriesKey::new("US.TYPES", "1d");
    put(primary, typed(schema, &t, 1_700_000_000_000_000_000)).await;
    series.push(t);
    series
}

/// `p` with its close moved by `by`.
fn nudged(p: &Point, by: f64) -> Point {
    let mut q = p.clone();
    if let Some((_, FieldValue::Float(x))) = q.fields.iter_mut().find(|(k, _)| &**k == "close") {
        *x += by;
    }
    q
}

/// `p` with its fields in name order (InfluxDB answers them so).
fn sorted(p: &Point) -> Point {
    let mut q = p.clone();
    q.fields.sort_by(|a, b| a.0.cmp(&b.0));
    q
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symbol_dropped_on_the_primary_comes_back_exactly_on_influxdb() {
    let Some(s) = servers(2).await else { return };
    let opts = Options::default();
    let schema = opts.schema();
    let (pt, bt) = (Target::on(&s[0], "market"), Target::on(&s[1], "copy"));
    let primary = node("primary", &pt, &schema);
    let backup = node("backup1", &bt, &schema);
    let series = seed(&*primary, &schema, &["US.AAPL", "US.MSFT"]).await;
    let project = Project::new(&pt, std::slice::from_ref(&bt), &opts);
    ok(&project, &["sync"]);
    let cps = project.checkpoints();
    let aapl: Vec<&SeriesKey> = series.iter().filter(|k| k.symbol == "US.AAPL").collect();
    let lost: usize = {
        let mut n = 0;
        for k in &aapl {
            n += dump(&*primary, k).await.len();
        }
        n
    };
    s[0].execute(
        "market",
        "DROP SERIES FROM \"kline\" WHERE \"symbol\" = 'US.AAPL'",
    )
    .await;
    for k in &aapl {
        assert!(dump(&*primary, k).await.is_empty(), "{k} dropped");
    }

    let (code, dry) = restore_json(&project, &["--from", "backup1", "--dry-run"]);
    assert_eq!(code, 1, "the primary lacks a symbol: {dry:#}");
    assert_eq!(dry["status"], "success", "{dry:#}");
    assert_eq!(dry["restore"]["written"], lost);
    assert_eq!(dry["restore"]["differing"], 2);
    for k in &aapl {
        assert!(
            dump(&*primary, k).await.is_empty(),
            "a dry run writes nothing"
        );
    }

    let (code, run) = restore_json(&project, &["--from", "backup1"]);
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["restore"]["written"], lost);
    assert_eq!(run["restore"]["equal"], series.len());
    assert_same_points(&*backup, &*primary, &series).await;
    assert_same_raw((&s[1], "copy"), (&s[0], "market"), &["kline"]).await;
    assert_eq!(project.checkpoints(), cps, "a restore moves no checkpoint");
    ok(&project, &["verify"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_database_dropped_entirely_comes_back_from_one_backup_on_influxdb() {
    let Some(s) = servers(3).await else { return };
    let opts = Options {
        measurement: "kline_{interval}".into(),
        interval_tag: None,
        batch_size: 300,
        ..Options::default()
    };
    let schema = opts.schema();
    let pt = Target::on(&s[0], "market");
    let (b1, b2) = (Target::on(&s[1], "copy"), Target::on(&s[2], "copy"));
    let primary = node("primary", &pt, &schema);
    let series = seed(&*primary, &schema, &["US.AAPL", "US.MSFT", "US.NVDA"]).await;
    let project = Project::new(&pt, &[b1.clone(), b2.clone()], &opts);
    ok(&project, &["sync"]);
    let before: Vec<Vec<Point>> = {
        let mut v = Vec::new();
        for k in &series {
            v.push(dump(&*primary, k).await);
        }
        v
    };
    s[0].execute("market", "DROP DATABASE \"market\"").await;

    // dms never creates the primary's database on its own: the restore says how.
    let refused = project.cli(&["restore", "--from", "backup2"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--create-database"),
        "{}",
        text(&refused)
    );
    let out = ok(
        &project,
        &["restore", "--from", "backup2", "--create-database"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "backup2 → primary, {} series: {} equal",
            series.len(),
            series.len()
        )),
        "{stdout}"
    );
    for (k, points) in series.iter().zip(&before) {
        assert_eq!(&dump(&*primary, k).await, points, "{k}");
    }
    let backup1 = node("backup1", &b1, &schema);
    assert_same_points(&*primary, &*backup1, &series).await;
    // Field types come back as they were: integers stay integers, strings strings.
    assert_same_raw(
        (&s[2], "copy"),
        (&s[0], "market"),
        &["kline_1d", "kline_1m"],
    )
    .await;
    ok(&project, &["verify"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_database_is_filled_and_revised_values_are_kept_unless_overwrite_on_influxdb() {
    let Some(s) = servers(2).await else { return };
    let opts = Options::default();
    let schema = opts.schema();
    let pt = Target::on(&s[0], "market");
    let (b1, fresh) = (Target::on(&s[1], "copy"), Target::on(&s[1], "fresh"));
    let primary = node("primary", &pt, &schema);
    let series = seed(&*primary, &schema, &["US.AAPL"]).await;
    let project = Project::new(&pt, &[b1.clone(), fresh.clone()], &opts);
    ok(&project, &["sync", "--backup", "backup1"]);
    let backup1 = node("backup1", &b1, &schema);

    // Restoring from a database that does not exist is an error naming it, not "nothing".
    let out = project.cli(&["restore", "--from", "backup2"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("source: node backup2") && err.contains("\"fresh\" does not exist"),
        "{err}"
    );

    // A database that does not exist yet, filled from backup1.
    let (code, run) = restore_json(&project, &["--from", "backup1", "--to", "backup2"]);
    assert_eq!(code, 0, "{run:#}");
    let backup2 = node("backup2", &fresh, &schema);
    assert_same_points(&*backup1, &*backup2, &series).await;
    assert!(
        project.checkpoints().keys().all(|k| k.backup != "backup2"),
        "a restore is not a sync"
    );

    // The primary revised three daily bars after the backup copied them, holds one with a
    // field the backup lacks, and lost two.
    let daily = SeriesKey::new("US.AAPL", "1d");
    let original = dump(&*backup1, &daily).await;
    let revised: Vec<Point> = original[3..6].iter().map(|p| nudged(p, 0.5)).collect();
    put(&*primary, revised.clone()).await;
    let mut annotated = original[10].clone();
    annotated.fields.push((
        Arc::from("remark"),
        FieldValue::String("checked by hand".into()),
    ));
    put(&*primary, vec![annotated.clone()]).await;
    let lost = [original[20].time, original[21].time];
    primary.delete(&daily, &lost).await.expect("delete");

    let (code, run) = restore_json(
        &project,
        &[
            "--from",
            "backup1",
            "--symbol",
            "US.AAPL",
            "--interval",
            "1d",
        ],
    );
    assert_eq!(code, 0, "kept values are no failure: {run:#}");
    let r = &run["restore"]["results"][0];
    assert_eq!(
        (
            r["result"].as_str(),
            r["written"].as_i64(),
            r["kept"].as_i64()
        ),
        (Some("kept"), Some(2), Some(4)),
        "{r:#}"
    );
    let held = dump(&*primary, &daily).await;
    assert_eq!(held.len(), original.len());
    assert_eq!(held[3..6], revised[..]);
    assert_eq!(sorted(&held[10]), sorted(&annotated));

    let (code, run) = restore_json(
        &project,
        &[
            "--from",
            "backup1",
            "--symbol",
            "US.AAPL",
            "--interval",
            "1d",
            "--overwrite",
        ],
    );
    assert_eq!(code, 0, "{run:#}");
    let r = &run["restore"]["results"][0];
    assert_eq!(
        (r["result"].as_str(), r["written"].as_i64()),
        (Some("equal"), Some(4)),
        "{r:#}"
    );
    assert_eq!(dump(&*primary, &daily).await, original);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_killed_at_random_moments_converges_on_influxdb() {
    let Some(s) = servers(2).await else { return };
    let opts = Options {
        batch_size: 40,
        ..Options::default()
    };
    let schema = opts.schema();
    let (pt, bt) = (Target::on(&s[0], "market"), Target::on(&s[1], "copy"));
    let primary = node("primary", &pt, &schema);
    let mut series = Vec::new();
    for sym in ["K.A", "K.B", "K.C", "K.D"] {
        put(&*primary, bars(&schema, sym, "1m", 2)).await;
        series.push(SeriesKey::new(sym, "1m"));
    }
    let project = Project::new(&pt, std::slice::from_ref(&bt), &opts);
    ok(&project, &["sync"]);
    let backup = node("backup1", &bt, &schema);
    let total: usize = {
        let mut n = 0;
        for k in &series {
            n += dump(&*backup, k).await.len();
        }
        n
    };
    s[0].execute("market", "DROP DATABASE \"market\"").await;
    let seed = dms::model::now_nanos() as u64;
    eprintln!("influxdb restore crash-loop seed {seed}");
    let mut rng = dms::sample::Rng::from_key(&seed.to_string());
    let (mut kills, mut tries, mut midway) = (0, 0, 0);
    let started = Instant::now();
    while kills < 4 && tries < 12 && started.elapsed() < Duration::from_secs(120) {
        tries += 1;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dms"))
            .arg("--config")
            .arg(&project.config)
            .args(["restore", "--from", "backup1", "--create-database"])
            .env_remove("DMS_CONFIG")
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dms starts");
        std::thread::sleep(Duration::from_millis(60 + rng.next_u64() % 1200));
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
            kills += 1;
            let mut held = 0;
            for k in &series {
                let now = dump(&*primary, k).await;
                let want = dump(&*backup, k).await;
                assert!(
                    now.iter().all(|p| want.contains(p)),
                    "{k}: only the backup's points"
                );
                held += now.len();
            }
            if held > 0 && held < total {
                midway += 1;
            }
        } else {
            // It finished: lose everything again, so the next run has work.
            s[0].execute("market", "DROP DATABASE \"market\"").await;
        }
    }
    assert!(
        kills > 0 && midway > 0,
        "{kills} kills, {midway} midway in {tries} tries"
    );
    let (code, run) = restore_json(&project, &["--from", "backup1", "--create-database"]);
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["restore"]["equal"], series.len());
    assert_same_points(&*backup, &*primary, &series).await;
    eprintln!("influxdb restore crash loop: {kills} kills, {midway} midway, {tries} tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_primary_wiped_comes_back_from_an_influxdb_backup_with_every_tag_set() {
    use crate::helper::project::{Project as Folder, all};
    let Some(s) = servers(1).await else { return };
    let p = Folder::with_sync(&format!(
        "sync:\n  incremental:\n    batch_size: 70\n    initial_days: 3650\n  retry_times: 1\n  retry_delay: 0.05\n\
         nodes:\n  primary: {{name: primary, type: sqlite, path: run/primary.db}}\n  backups:\n\
         \x20   - {{name: backup1, type: influxdb, url: \"{}\", database: copy, timeout: 10}}\n\
         history:\n  path: run/db/sync_history.db\n",
        s[0].url()
    ));
    let schema = Schema::default();
    let primary = p.node("primary");
    let aapl = SeriesKey::new("US.AAPL", "1m");
    put(primary.as_ref(), bars(&schema, "US.AAPL", "1m", 1)).await;
    // Two tag sets of one series sharing every timestamp: a venue tag beside the schema's.
    let dark = SeriesKey::new("US.DARK", "1d");
    let mut venues = Vec::new();
    for (i, p) in typed(&schema, &dark, 1_600_000_000_000_000_000)
        .into_iter()
        .enumerate()
    {
        for venue in ["lit", "dark"] {
            let mut q = p.clone();
            let mut tags = q.tags.to_vec();
            tags.push((Arc::from("venue"), Arc::from(venue)));
            tags.sort();
            q.tags = tags.into();
            if venue == "dark" {
                q.fields.retain(|(k, _)| &**k != "note" || i % 2 == 0);
            }
            venues.push(q);
        }
    }
    put(primary.as_ref(), venues).await;
    let series = [aapl, dark];
    drop(primary);
    ok_in(&p, &["sync"]);
    let canonical = |mut v: Vec<Point>| {
        for q in v.iter_mut() {
            q.fields.sort_by(|a, b| a.0.cmp(&b.0));
        }
        v.sort_by(|a, b| (a.time, &a.tags).cmp(&(b.time, &b.tags)));
        v
    };
    let mut before = Vec::new();
    for k in &series {
        before.push(canonical(all(p.node("primary").as_ref(), k).await));
    }
    assert_eq!(before[1].len(), 60);
    for f in ["primary.db", "primary.db-wal", "primary.db-shm"] {
        let _ = std::fs::remove_file(p.root().join("run").join(f));
    }

    let out = ok_in(&p, &["restore", "--from", "backup1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2 series: 2 equal"), "{stdout}");
    for (k, points) in series.iter().zip(&before) {
        let held = canonical(all(p.node("primary").as_ref(), k).await);
        assert_eq!(&held, points, "{k}");
    }
    ok_in(&p, &["verify"]);
}

/// Runs `dms ARGS…` in a project folder and asserts it succeeded.
fn ok_in(p: &crate::helper::project::Project, args: &[&str]) -> Output {
    let out = p.cli(args);
    assert!(out.status.success(), "dms {args:?}: {}", text(&out));
    out
}
