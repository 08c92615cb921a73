//! Faults against real InfluxDB servers: a backup killed mid-sync, an unreachable primary,
//! wrong credentials, a field type conflict on a backup.

use super::support::{
    Options, Project, Target, assert_same_points, bars, dump, node, put, servers, sync, sync_with,
};
use crate::helper::influxd::{ADMIN, ADMIN_PASSWORD, InfluxServer, wait_until_dead};
use dms::history::Status;
use dms::model::{FieldValue, SeriesKey};
use dms::sync::{Progress, Selection, SyncControl, UnitReport};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Kills a server (SIGKILL) right after a backup has acknowledged its n-th batch.
struct KillAfter {
    backup: String,
    batches: usize,
    pid: u32,
    seen: AtomicUsize,
}

impl Progress for KillAfter {
    fn planned(&self, _units: usize) {}

    fn batch_written(&self, backup: &str, _series: &SeriesKey, _records: u64) {
        if backup == self.backup && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.batches {
            let pid = i32::try_from(self.pid).expect("a pid");
            // SAFETY: signalling the test's own influxd child, not yet reaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            wait_until_dead(self.pid);
        }
    }

    fn unit_finished(&self, _report: &UnitReport) {}
}

fn unit<'a>(units: &'a [UnitReport], backup: &str, series: &SeriesKey) -> &'a UnitReport {
    units
        .iter()
        .find(|u| u.key.backup == backup && &u.key.series == series)
        .unwrap_or_else(|| panic!("no unit for {backup} {series}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_resumes_after_backup_killed_mid_sync() {
    let Some(mut s) = servers(3).await else {
        return;
    };
    let opts = Options {
        batch_size: 100,
        retry_times: 1,
        ..Options::default()
    };
    let schema = opts.schema();
    let p = Target::on(&s[0], "market");
    let b1 = Target::on(&s[1], "copy");
    let b2 = Target::on(&s[2], "copy");
    let primary = node("primary", &p, &schema);
    let key = SeriesKey::new("US.AAPL", "1m");
    let points = bars(&schema, "US.AAPL", "1m", 20);
    let total = points.len();
    let times: Vec<i64> = points.iter().map(|p| p.time).collect();
    put(&*primary, points).await;

    let project = Project::new(&p, &[b1.clone(), b2.clone()], &opts);
    let app = project.app();
    let acked_batches = 10;
    let killer = Arc::new(KillAfter {
        backup: "backup2".into(),
        batches: acked_batches,
        pid: s[2].pid().expect("running"),
        seen: AtomicUsize::new(0),
    });
    let control = SyncControl {
        progress: Some(killer.clone()),
        ..SyncControl::default()
    };
    let out = sync_with(&app, Selection::Series(vec![key.clone()]), &control).await;
    assert_eq!(out.status, Status::Failed);
    let units = &out.report.units;
    let live = unit(units, "backup1", &key);
    assert_eq!(
        (live.status, live.records),
        (Status::Success, total as u64),
        "{:?}",
        live.error
    );
    let dead = unit(units, "backup2", &key);
    assert_eq!(dead.status, Status::Failed);
    assert_eq!(dead.records, (acked_batches * 100) as u64);
    let error = dead.error.clone().unwrap_or_default();
    assert!(error.contains("unreachable"), "{error}");
    assert!(
        error.contains("cannot connect") || error.contains("connection"),
        "{error}"
    );
    let row = &project.history_rows("backup2")[0];
    assert_eq!(row.status.as_str(), "failed");
    assert_eq!(row.error.as_deref(), Some(error.as_str()));

    // The checkpoint is the newest point the dead backup acknowledged, and it holds exactly that.
    let checkpoint = project.checkpoint("backup2", &key).expect("a checkpoint");
    assert_eq!(checkpoint, times[acked_batches * 100 - 1]);
    s[2].restart().await;
    let backup2 = node("backup2", &b2, &schema);
    let held = backup2
        .newest(std::slice::from_ref(&key))
        .await
        .expect("newest");
    assert_eq!(held.get(&key), Some(&checkpoint));
    assert_eq!(dump(&*backup2, &key).await.len(), acked_batches * 100);

    // The next sync resumes there and loses nothing.
    let again = sync(&app, Selection::Series(vec![key.clone()])).await;
    assert_eq!(again.status, Status::Success, "{:?}", again.error);
    let resumed = unit(&again.report.units, "backup2", &key);
    assert_eq!(resumed.window_start, checkpoint);
    // Everything after the checkpoint; the bar at the checkpoint is re-read too (a window
    // streamed in batches writes it again, a small one moved with others finds it held).
    let after = (total - acked_batches * 100) as u64;
    assert!(
        resumed.records == after || resumed.records == after + 1,
        "{} after {after}",
        resumed.records
    );
    assert_eq!(unit(&again.report.units, "backup1", &key).records, 0);
    for (name, t) in [("backup1", &b1), ("backup2", &b2)] {
        assert_same_points(
            &*primary,
            &*node(name, t, &schema),
            std::slice::from_ref(&key),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_primary_fails_clearly_and_moves_no_checkpoint() {
    let Some(mut s) = servers(2).await else {
        return;
    };
    let opts = Options::default();
    let schema = opts.schema();
    let p = Target::on(&s[0], "market");
    let b = Target::on(&s[1], "copy");
    let primary = node("primary", &p, &schema);
    let keys = vec![
        SeriesKey::new("US.AAPL", "1m"),
        SeriesKey::new("US.AAPL", "1d"),
    ];
    put(&*primary, bars(&schema, "US.AAPL", "1m", 1)).await;
    put(&*primary, bars(&schema, "US.AAPL", "1d", 10)).await;
    let project = Project::new(&p, std::slice::from_ref(&b), &opts);
    let app = project.app();
    let first = sync(&app, Selection::Series(keys.clone())).await;
    assert_eq!(first.status, Status::Success, "{:?}", first.error);
    let before = project.checkpoints();
    assert_eq!(before.len(), 2);

    s[0].kill_hard();
    for selection in [Selection::Series(keys.clone()), Selection::all()] {
        let started = Instant::now();
        let out = sync(&app, selection).await;
        assert_eq!(out.status, Status::Failed);
        let error = out.error.unwrap_or_default();
        assert!(
            error.contains("primary: node primary: unreachable"),
            "{error}"
        );
        assert!(error.contains("node primary: unreachable"), "{error}");
        assert!(
            error.contains(&p.url) && error.contains("cannot connect"),
            "{error}"
        );
        assert!(out.report.units.is_empty());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(project.checkpoints(), before);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_fast_without_retrying() {
    let (secured, plain) = tokio::join!(InfluxServer::start_with_auth(), InfluxServer::start());
    let (Some(secured), Some(plain)) = (secured, plain) else {
        return;
    };
    let opts = Options {
        retry_times: 3,
        retry_delay: 2.0,
        ..Options::default()
    };
    let schema = opts.schema();
    let p = Target::on(&secured, "market")
        .with("username", ADMIN)
        .with("password", ADMIN_PASSWORD);
    let wrong = Target::on(&secured, "copy")
        .with("username", ADMIN)
        .with("password", "not-the-password");
    let good = Target::on(&plain, "copy");
    let primary = node("primary", &p, &schema);
    let keys = vec![
        SeriesKey::new("US.AAPL", "1d"),
        SeriesKey::new("US.MSFT", "1d"),
    ];
    for k in &keys {
        put(&*primary, bars(&schema, &k.symbol, "1d", 10)).await;
    }
    let project = Project::new(&p, &[wrong, good.clone()], &opts);
    let app = project.app();

    let started = Instant::now();
    let out = sync(&app, Selection::Series(keys.clone())).await;
    let elapsed = started.elapsed();
    assert_eq!(out.status, Status::Failed);
    // A retry would have waited retry_delay (2 s) first.
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    for k in &keys {
        let u = unit(&out.report.units, "backup1", k);
        assert_eq!(u.status, Status::Failed);
        let error = u.error.clone().unwrap_or_default();
        assert!(error.contains("authentication failed"), "{error}");
        assert!(error.contains("not retried"), "{error}");
        assert!(!error.contains("not-the-password"), "{error}");
        assert!(u.duration_ms < 2000, "{} ms", u.duration_ms);
        // The primary was read with the right credentials.
        let ok = unit(&out.report.units, "backup2", k);
        assert_eq!(ok.status, Status::Success, "{:?}", ok.error);
    }
    assert_same_points(&*primary, &*node("backup2", &good, &schema), &keys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_type_conflict_fails_that_series_only() {
    let Some(s) = servers(2).await else { return };
    let opts = Options::default();
    let schema = opts.schema();
    let p = Target::on(&s[0], "market");
    let b1 = Target::on(&s[1], "copy1");
    let b2 = Target::on(&s[1], "copy2");
    let primary = node("primary", &p, &schema);
    let aapl = SeriesKey::new("US.AAPL", "1m");
    let msft = SeriesKey::new("US.MSFT", "1m");
    // AAPL carries an integer field `trades`; MSFT does not.
    let mut points = bars(&schema, "US.AAPL", "1m", 1);
    for (i, p) in points.iter_mut().enumerate() {
        p.fields
            .push((Arc::from("trades"), FieldValue::Integer(i as i64 + 1)));
    }
    let first = points[0].time;
    put(&*primary, points).await;
    put(&*primary, bars(&schema, "US.MSFT", "1m", 1)).await;
    // backup1 already holds `trades` as a float in the same shard.
    s[1].create_database("copy1").await;
    s[1].write_lines(
        "copy1",
        &format!("kline,symbol=SEED,interval=1m trades=1.5 {first}\n"),
    )
    .await;

    let project = Project::new(&p, &[b1.clone(), b2.clone()], &opts);
    let app = project.app();
    let out = sync(&app, Selection::Series(vec![aapl.clone(), msft.clone()])).await;
    assert_eq!(out.status, Status::Failed);
    let failed = unit(&out.report.units, "backup1", &aapl);
    assert_eq!(failed.status, Status::Failed);
    let error = failed.error.clone().unwrap_or_default();
    assert!(error.contains("request rejected"), "{error}");
    assert!(error.contains("field type conflict"), "{error}");
    assert!(error.contains("not retried"), "{error}");
    assert_eq!(project.checkpoint("backup1", &aapl), None);
    for (backup, k) in [("backup1", &msft), ("backup2", &aapl), ("backup2", &msft)] {
        let u = unit(&out.report.units, backup, k);
        assert_eq!(u.status, Status::Success, "{backup} {k}: {:?}", u.error);
    }
    assert_same_points(
        &*primary,
        &*node("backup1", &b1, &schema),
        std::slice::from_ref(&msft),
    )
    .await;
    assert_same_points(&*primary, &*node("backup2", &b2, &schema), &[aapl, msft]).await;
}

/// One of two backups dead, 100 series: the dead one is retried by one series only (the
/// run's circuit breaker), the rest of its units fail at once with "down since", the healthy
/// backup ends equal to the primary, and the log has one error for the dead node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backup_costs_one_series_retry_budget_and_logs_one_error() {
    let Some(s) = servers(2).await else {
        return;
    };
    // Retry budget of one series: 1 + 2 + 4 = 7 s.
    let opts = Options {
        retry_times: 3,
        retry_delay: 1.0,
        ..Options::default()
    };
    let schema = opts.schema();
    let p = Target::on(&s[0], "market");
    let good = Target::on(&s[1], "copy");
    let dead = Target::nowhere("copy");
    let primary = node("primary", &p, &schema);
    let keys: Vec<SeriesKey> = (0..100)
        .map(|i| SeriesKey::new(format!("US.S{i:03}"), "1d"))
        .collect();
    let mut points = Vec::new();
    for k in &keys {
        points.extend(bars(&schema, &k.symbol, "1d", 5));
    }
    put(&*primary, points).await;
    let project = Project::new(&p, &[good.clone(), dead], &opts);

    let started = Instant::now();
    let out = project.cli(&["sync"]);
    let elapsed = started.elapsed();
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{log}");
    // Without the breaker: 100 series / 4 workers × 7 s ≈ 175 s.
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}\n{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one error for the dead node:\n{log}");
    assert!(
        errors[0].contains("backup2") && errors[0].contains("down"),
        "{log}"
    );
    let retries = log.lines().filter(|l| l.contains("retrying")).count();
    assert_eq!(retries, 3, "only the probe retries:\n{log}");

    let rows = project.history_rows("backup2");
    assert_eq!(rows.len(), 100);
    assert!(rows.iter().all(|r| r.status == Status::Failed));
    // The 100 small series go to backup2 as one shared write (or, streamed, one probe and
    // 99 "down since"): every row names why.
    assert!(
        rows.iter().all(|r| r
            .error
            .as_deref()
            .is_some_and(|e| e.contains("down since") || e.contains("unreachable"))),
        "{:?}",
        rows.first().map(|r| &r.error)
    );
    let ok = project.history_rows("backup1");
    assert_eq!(ok.len(), 100);
    assert!(ok.iter().all(|r| r.status == Status::Success));
    assert_same_points(&*primary, &*node("backup1", &good, &schema), &keys).await;
}
