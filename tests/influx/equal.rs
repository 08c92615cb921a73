//! Backups that provably equal the primary (issue 11) on real InfluxDB servers: a future-dated
//! bar, a dropped backup database, a backup restored from an older copy of its data folder, a
//! revised newest bar, back-filled minute bars, a point deleted on the primary with
//! `mirror_deletes` (reconciled through the API), an unreachable backup (status, API,
//! `/metrics`, `dms status`, reconcile and the check loop), and the full-field digests of
//! reconciliation — one changed value in one field of one bar among months of minute bars is
//! found and repaired, and the same points written in opposite orders into another shard
//! layout are not flagged.
//!
//! Each test ends with every point of both sides read back and compared, and checks what the
//! status view (the one `dms status`, the API, `/metrics` and the page share) says in between.

use super::support::{
    self, Options, Project, Target, assert_same_points, dump, node, put, servers, sync,
};
use crate::helper::project::bars as bars_to;
use dms::app::App;
use dms::app::reconcile::ReconcileRun;
use dms::app::status::{self, SeriesStatus, State};
use dms::daemon::Daemon;
use dms::history::{HistoryReader, Status, Trigger};
use dms::model::{
    BackupSeries, FieldValue, NANOS_PER_DAY, NANOS_PER_SEC, Nanos, Point, SeriesKey, format_nanos,
};
use dms::sync::{Pass, ReconcileArgs, Selection, SyncControl};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

const DAY: Nanos = NANOS_PER_DAY;
/// 2030-01-01T00:00:00Z.
const Y2030: Nanos = 1_893_456_000 * NANOS_PER_SEC;
/// 1990-01-01T00:00:00Z: older than the `initial_days` range of these projects.
const Y1990: Nanos = 631_152_000 * NANOS_PER_SEC;

fn today() -> Nanos {
    dms::model::now_nanos() / DAY * DAY
}

/// The app of `project` inside a daemon (for its check loop), without starting any loop.
fn daemon(project: &Project) -> Arc<Daemon> {
    Daemon::new(Arc::new(project.app()), CancellationToken::new()).expect("daemon")
}

/// The status view, as `dms status` builds it.
async fn status_of(app: &App, project: &Project) -> Vec<SeriesStatus> {
    let recorded = status::Recorded::read(&HistoryReader::open(&project.history).expect("history"))
        .expect("status rows");
    status::collect(
        &app.settings,
        &recorded,
        app.engine.primary().as_ref(),
        app.engine.backups(),
    )
    .await
    .expect("status")
}

/// The line of `backup` for `series`.
fn line<'a>(lines: &'a [SeriesStatus], backup: &str, series: &SeriesKey) -> &'a SeriesStatus {
    let key = BackupSeries::new(backup, series.clone());
    lines
        .iter()
        .find(|l| l.key == key)
        .unwrap_or_else(|| panic!("no status line for {key}: {lines:#?}"))
}

/// Rewinds recorded for `backup`.
fn rewinds(project: &Project, backup: &str) -> Vec<dms::history::EventRow> {
    HistoryReader::open(&project.history)
        .expect("history")
        .events(0)
        .expect("events")
        .into_iter()
        .filter(|e| e.kind == "rewound" && e.backup.as_deref() == Some(backup))
        .collect()
}

/// `p` with the float field `field` moved by `by`.
fn nudged(p: &Point, field: &str, by: f64) -> Point {
    let mut q = p.clone();
    match q.fields.iter_mut().find(|(k, _)| &**k == field) {
        Some((_, FieldValue::Float(x))) => *x += by,
        other => panic!("{field} is not a float field: {other:?}"),
    }
    q
}

/// A recorded `dms reconcile` (full-field digests of every window), run through the app.
async fn reconcile(app: &App, dry_run: bool) -> ReconcileRun {
    let args = ReconcileArgs {
        dry_run,
        ..ReconcileArgs::default()
    };
    let run = app
        .reconcile(
            &args,
            Pass::Complete,
            Trigger::Manual,
            &SyncControl::default(),
        )
        .await
        .expect("reconcile runs");
    assert_eq!(run.status, Status::Success, "{run:#?}");
    run
}

fn counts<'a>(run: &'a ReconcileRun, backup: &str) -> &'a dms::sync::BackupReconcile {
    run.report
        .backups
        .iter()
        .find(|b| b.backup == backup)
        .unwrap_or_else(|| panic!("no entry for {backup}: {run:#?}"))
}

fn assert_all(lines: &[SeriesStatus], backup: &str, state: State) {
    let mine: Vec<&SeriesStatus> = lines.iter().filter(|l| l.key.backup == backup).collect();
    assert!(!mine.is_empty(), "no lines for {backup}");
    for l in mine {
        assert_eq!(l.state, state, "{l:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_dated_bar_is_copied_and_later_bars_keep_flowing_on_influxdb() {
    let Some(s) = servers(2).await else { return };
    let opts = Options::default();
    let schema = opts.schema();
    let (pt, bt) = (Target::on(&s[0], "market"), Target::on(&s[1], "copy"));
    let primary = node("primary", &pt, &schema);
    let backup = node("backup1", &bt, &schema);
    let key = SeriesKey::new("US.AAPL", "1d");
    let today = today();
    put(&*primary, bars_to("US.AAPL", "1d", 20, today - DAY, DAY)).await;
    let project = Project::new(&pt, std::slice::from_ref(&bt), &opts);
    let d = daemon(&project);
    let app = &d.app;
    assert_eq!(sync(app, Selection::all()).await.status, Status::Success);

    put(&*primary, bars_to("US.AAPL", "1d", 1, Y2030, DAY)).await;
    let out = sync(app, Selection::all()).await;
    assert_eq!(out.status, Status::Success, "{:?}", out.error);
    assert_eq!(project.checkpoint("backup1", &key), Some(today - DAY));
    assert!(dump(&*backup, &key).await.iter().any(|p| p.time == Y2030));
    let st = status_of(app, &project).await;
    let l = line(&st, "backup1", &key);
    assert_eq!(l.state, State::Current, "{l:#?}");
    assert_eq!(l.future.as_deref(), Some(format_nanos(Y2030).as_str()));
    assert!(
        d.check_once().await.is_none(),
        "the check loop sees both tips equal, the future point included"
    );

    // Today's bar: lagging by a day (from what the backup holds); the check loop copies it.
    put(&*primary, bars_to("US.AAPL", "1d", 1, today, DAY)).await;
    let st = status_of(app, &project).await;
    let l = line(&st, "backup1", &key);
    assert_eq!(l.state, State::Lagging, "{l:#?}");
    assert_eq!(l.lag_seconds, Some(86_400.0), "{l:#?}");
    assert_eq!(l.backup_newest_ns, Some(today - DAY));
    let run = d.check_once().await.expect("the check loop syncs");
    assert_eq!(run.status, Status::Success, "{:?}", run.error);
    assert_eq!(run.report.units.len(), 1);
    assert!(dump(&*backup, &key).await.iter().any(|p| p.time == today));
    assert_eq!(project.checkpoint("backup1", &key), Some(today));
    let st = status_of(app, &project).await;
    let l = line(&st, "backup1", &key);
    assert_eq!(l.state, State::Current, "{l:#?}");
    assert_eq!(l.future.as_deref(), Some(format_nanos(Y2030).as_str()));
    assert_same_points(&*primary, &*backup, std::slice::from_ref(&key)).await;
    assert!(d.check_once().await.is_none(), "nothing left to copy");
    let out = project.cli(&["verify"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_backup_database_is_seen_behind_and_the_check_loop_refills_it() {
    let Some(s) = servers(2).await else { return };
    let opts = Options::default();
    let schema = opts.schema();
    let pt = Target::on(&s[0], "market");
    let (b1, b2) = (Target::on(&s[1], "copy1"), Target::on(&s[1], "copy2"));
    let primary = node("primary", &pt, &schema);
    let minute = SeriesKey::new("US.AAPL", "1m");
    let daily = SeriesKey::new("US.MSFT", "1d");
    let series = [minute.clone(), daily.clone()];
    let m = support::bars(&schema, "US.AAPL", "1m", 2);
    let dl = support::bars(&schema, "US.MSFT", "1d", 10);
    let total = m.len() + dl.len();
    put(&*primary, m).await;
    put(&*primary, dl).await;
    let project = Project::new(&pt, &[b1.clone(), b2.clone()], &opts);
    let d = daemon(&project);
    let app = &d.app;
    assert_eq!(sync(app, Selection::all()).await.status, Status::Success);

    s[1].execute("copy1", "DROP DATABASE \"copy1\"").await;
    let st = status_of(app, &project).await;
    for k in &series {
        let l = line(&st, "backup1", k);
        assert_eq!(l.state, State::Behind, "{l:#?}");
        assert!(l.behind);
        assert_eq!(l.backup_newest, None, "{l:#?}");
        assert!(
            l.checkpoint.is_some(),
            "the checkpoint still claims it: {l:#?}"
        );
        assert_eq!(l.error, None, "{l:#?}");
        assert_eq!(line(&st, "backup2", k).state, State::Current);
    }

    let run = d.check_once().await.expect("the check loop syncs");
    assert_eq!(run.status, Status::Success, "{:?}", run.error);
    assert!(
        run.report.units.iter().all(|u| u.key.backup == "backup1"),
        "backup2 is up to date: {:#?}",
        run.report.units
    );
    assert_eq!(run.report.units.len(), 2);
    assert_eq!(run.report.records(), total as u64, "everything again");
    assert_eq!(rewinds(&project, "backup1").len(), 2);
    assert!(rewinds(&project, "backup2").is_empty());
    let st = status_of(app, &project).await;
    assert_all(&st, "backup1", State::Current);
    assert_all(&st, "backup2", State::Current);
    for (name, t) in [("backup1", &b1), ("backup2", &b2)] {
        assert_same_points(&*primary, &*node(name, t, &schema), &series).await;
    }
    assert!(d.check_once().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restored_from_an_older_copy_of_its_data_folder_is_refilled_by_the_check_loop() {
    let Some(mut s) = servers(2).await else {
        return;
    };
    let opts = Options::default();
    let schema = opts.schema();
    let (pt, bt) = (Target::on(&s[0], "market"), Target::on(&s[1], "copy"));
    let primary = node("primary", &pt, &schema);
    let key = SeriesKey::new("US.AAPL", "1m");
    let mut points = support::bars(&schema, "US.AAPL", "1m", 4);
    let later = points.split_off(points.len() / 2);
    let old_newest = points.last().expect("points").time;
    let newest = later.last().expect("points").time;
    put(&*primary, points).await;
    let project = Project::new(&pt, std::slice::from_ref(&bt), &opts);
    let d = daemon(&project);
    let app = &d.app;
    assert_eq!(sync(app, Selection::all()).await.status, Status::Success);

    // A file-level backup of the backup server, taken while it is stopped.
    let copy = tempfile::tempdir().expect("a temp dir");
    s[1].shut_down();
    s[1].copy_data_to(copy.path());
    s[1].restart().await;
    put(&*primary, later.clone()).await;
    assert_eq!(sync(app, Selection::all()).await.status, Status::Success);
    assert_eq!(project.checkpoint("backup1", &key), Some(newest));

    // The server is restored from that copy.
    s[1].shut_down();
    s[1].restore_data_from(copy.path());
    s[1].restart().await;
    let backup = node("backup1", &bt, &schema);
    assert_eq!(
        dump(&*backup, &key).await.len(),
        later.len(),
        "the older copy"
    );
    let st = status_of(app, &project).await;
    let l = line(&st, "backup1", &key);
    assert_eq!(l.backup_newest_ns, Some(old_newest), "{l:#?}");
    assert_eq!(l.checkpoint_ns, Some(newest), "{l:#?}");
    assert_eq!(
        l.lag_seconds,
        Some((newest - old_newest) as f64 / NANOS_PER_SEC as f64),
        "lag from what the backup holds: {l:#?}"
    );
    assert_eq!(l.state, State::Behind, "more than a day behind: {l:#?}");

    let run = d.check_once().await.expect("the check loop syncs");
    assert_eq!(run.status, Status::Success, "{:?}", run.error);
    assert_eq!(run.report.units.len(), 1);
    let u = &run.report.units[0];
    assert_eq!(u.window_start, old_newest, "from what the backup holds");
    assert_eq!(u.records, later.len() as u64 + 1);
    let events = rewinds(&project, "backup1");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert!(
        events[0].detail.contains(&format_nanos(old_newest)),
        "{events:#?}"
    );
    assert_same_points(&*primary, &*backup, std::slice::from_ref(&key)).await;
    let st = status_of(app, &project).await;
    assert_eq!(line(&st, "backup1", &key).state, State::Current);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revised_newest_bar_is_copied_by_the_check_loop_on_influxdb() {
    let Some(s) = servers(2).await else { return };
    let opts = Options::default();
    let schema = opts.schema();
    let (pt, bt) = (Target::on(&s[0], "market"), Target::on(&s[1], "copy"));
    let primary = node("primary", &pt, &schema);
    let backup = node("backup1", &bt, &schema);
    let key = SeriesKey::new("US.AAPL", "1d");
    let points = support::bars(&schema, "US.AAPL", "1d", 10);
    put(&*primary, points.clone()).await;
    let project = Project::new(&pt, std::slice::from_ref(&bt), &opts);
    let d = daemon(&project);
    let app = &d.app;
    assert_eq!(sync(app, Selection::all()).await.status, Status::Success);
    assert!(d.check_once().await.is_none());

    put(&*primary, vec![nudged(&points[9], "close", 0.25)]).await;
    let st = status_of(app, &project).await;
    let l = line(&st, "backup1", &key);
    assert_eq!(l.state, State::Lagging, "same time, other values: {l:#?}");
    assert_eq!(l.backup_newest, l.primary_newest);
    let run = d
        .check_once()
        .await
        .expect("the revised bar is not skipped");
    assert_eq!(run.status, Status::Success, "{:?}", run.error);
    assert_eq!(run.report.records(), 1);
    assert_same_points(&*primary, &*backup, std::slice::from_ref(&key)).await;
    let st = status_of(app, &project).await;
    assert_eq!(line(&st, "backup1", &key).state, State::Current);
    assert!(d.check_once().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_deletes_removes_a_point_deleted_on_the_primary_and_nothing_outside_the_range() {
    let Some(s) = servers(2).await else { return };
    let opts = Options {
        extra_yaml: "reconcile:\n  mirror_deletes: true\n".into(),
        ..Options::default()
    };
    let schema = opts.schema();
    let (pt, bt) = (Target::on(&s[0], "market"), Target::on(&s[1], "copy"));
    let primary = node("primary", &pt, &schema);
    let backup = node("backup1", &bt, &schema);
    let daily = SeriesKey::new("US.AAPL", "1d");
    // Series that share the victim's timestamp and its symbol or interval: must survive.
    let neighbours = [
        SeriesKey::new("US.AAPL", "1m"),
        SeriesKey::new("US.MSFT", "1d"),
    ];
    let points = support::bars(&schema, "US.AAPL", "1d", 20);
    let victim = points[9].time;
    put(&*primary, points.clone()).await;
    put(&*primary, support::bars(&schema, "US.MSFT", "1d", 20)).await;
    let mut minutes = support::bars(&schema, "US.AAPL", "1m", 1);
    minutes.extend(bars_to("US.AAPL", "1m", 1, victim, 60 * NANOS_PER_SEC));
    put(&*primary, minutes).await;
    let project = Project::new(&pt, std::slice::from_ref(&bt), &opts);
    let d = daemon(&project);
    let app = &d.app;
    assert_eq!(sync(app, Selection::all()).await.status, Status::Success);
    // The backup also holds a bar of the series older than the synced range.
    let ancient = bars_to("US.AAPL", "1d", 1, Y1990, DAY);
    put(&*backup, ancient.clone()).await;

    assert_eq!(primary.delete(&daily, &[victim]).await.expect("delete"), 1);
    // Reconciled through the API, as an operator's tooling would.
    let api = Api::serve(d.clone()).await;
    let started = api.post("/api/dms/reconcile").await;
    assert_eq!(started["status"], "started", "{started}");
    assert!(started["run_id"].as_i64().is_some(), "{started}");
    let row = api.finished_reconcile().await;
    assert_eq!(row["backup"], "backup1", "{row:#}");
    assert_eq!(row["status"], "success", "{row:#}");
    assert_eq!(row["differing"], 1, "{row:#}");
    assert_eq!(row["deleted"], 1, "{row:#}");
    assert_eq!(row["extra"], 0, "{row:#}");
    assert_eq!(row["rewritten"], 0, "{row:#}");

    assert_same_points(&*primary, &*backup, &neighbours).await;
    for k in &neighbours {
        assert!(
            dump(&*backup, k).await.iter().any(|p| p.time == victim),
            "{k}"
        );
    }
    let mut expected = ancient;
    expected.extend(dump(&*primary, &daily).await);
    let held = dump(&*backup, &daily).await;
    assert_eq!(held.len(), expected.len(), "the 1990 bar is kept");
    assert_eq!(held, expected);
    let again = reconcile(app, false).await;
    assert_eq!(counts(&again, "backup1").counts.differing, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_backup_is_unknown_never_current_and_the_healthy_one_stays_current() {
    let Some(mut s) = servers(3).await else {
        return;
    };
    let opts = Options {
        retry_times: 1,
        ..Options::default()
    };
    let schema = opts.schema();
    let pt = Target::on(&s[0], "market");
    let (b1, b2) = (Target::on(&s[1], "copy"), Target::on(&s[2], "copy"));
    let primary = node("primary", &pt, &schema);
    let minute = SeriesKey::new("US.AAPL", "1m");
    let daily = SeriesKey::new("US.AAPL", "1d");
    let series = [minute.clone(), daily.clone()];
    let mut m = support::bars(&schema, "US.AAPL", "1m", 1);
    let new_minute = m.pop().expect("bars");
    put(&*primary, m).await;
    put(&*primary, support::bars(&schema, "US.AAPL", "1d", 5)).await;
    let project = Project::new(&pt, &[b1.clone(), b2.clone()], &opts);
    let d = daemon(&project);
    let app = &d.app;
    assert_eq!(sync(app, Selection::all()).await.status, Status::Success);
    let api = Api::serve(d.clone()).await;

    s[2].kill_hard();
    let st = status_of(app, &project).await;
    assert_all(&st, "backup1", State::Current);
    for k in &series {
        let l = line(&st, "backup2", k);
        assert_eq!(l.state, State::Unknown, "{l:#?}");
        assert!(l.error.as_deref().is_some_and(|e| !e.is_empty()), "{l:#?}");
        assert_eq!(l.backup_newest, None, "{l:#?}");
    }
    let rows = api.json("/api/dms/sync/status").await;
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), 4, "{rows:#?}");
    for r in rows {
        let want = if r["backup"] == "backup2" {
            "unknown"
        } else {
            "current"
        };
        assert_eq!(r["state"], want, "{r:#}");
        if want == "unknown" {
            assert!(r["error"].is_string(), "{r:#}");
        }
    }
    let metrics = api.text("/metrics").await;
    let gauge = |backup: &str, state: &str| -> Option<String> {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("dms_backup_series{")
                    && l.contains(&format!("backup=\"{backup}\""))
                    && l.contains(&format!("state=\"{state}\""))
            })
            .map(str::to_string)
    };
    let unknown = gauge("backup2", "unknown").unwrap_or_else(|| panic!("{metrics}"));
    assert!(unknown.ends_with(" 2"), "{unknown}");
    // Every state is exported for every backup (0 when none is in it): never current here.
    assert!(
        gauge("backup2", "current").is_some_and(|g| g.ends_with(" 0")),
        "{metrics}"
    );
    assert!(gauge("backup1", "current").is_some_and(|g| g.ends_with(" 2")));
    let out = project.cli(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(1), "an unknown backup is not ok");
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(
        cli.as_array()
            .expect("rows")
            .iter()
            .all(|r| (r["backup"] == "backup2") == (r["state"] == "unknown")),
        "{cli:#}"
    );
    // The table marks backup2's lag as a lower bound, known only from its checkpoint.
    let table = project.cli(&["status"]);
    let table = String::from_utf8_lossy(&table.stdout);
    for row in table.lines().filter(|l| l.contains("US.AAPL")) {
        assert_eq!(
            row.contains("UNKNOWN"),
            row.contains("≥0s"),
            "only an unknown row's lag is a bound: {table}"
        );
        assert_eq!(row.contains("backup2"), row.contains("UNKNOWN"), "{table}");
    }

    // A reconcile says backup2 could not be compared, and still compares backup1.
    let run = app
        .reconcile(
            &ReconcileArgs::default(),
            Pass::Complete,
            Trigger::Manual,
            &SyncControl::default(),
        )
        .await
        .expect("reconcile runs");
    assert_eq!(run.status, Status::Failed, "{run:#?}");
    let down = counts(&run, "backup2");
    assert_eq!(down.counts.status, Status::Failed, "{down:#?}");
    assert!(down.counts.error.is_some(), "{down:#?}");
    let up = counts(&run, "backup1");
    assert_eq!(up.counts.status, Status::Success, "{up:#?}");
    assert_eq!((up.counts.series, up.counts.differing), (2, 0), "{up:#?}");

    // A new bar: the check loop copies it to backup1 and sends no work to backup2, which
    // did not answer its look-up; backup2 stays unknown.
    put(&*primary, vec![new_minute]).await;
    let run = d.check_once().await.expect("the check loop syncs");
    assert_eq!(run.status, Status::Success, "{:?}", run.error);
    assert!(!run.report.units.is_empty());
    for u in &run.report.units {
        assert_eq!(u.key.backup, "backup1", "{u:#?}");
        assert_eq!(u.status, Status::Success, "{u:#?}");
    }
    let st = status_of(app, &project).await;
    assert_all(&st, "backup1", State::Current);
    assert_all(&st, "backup2", State::Unknown);

    // Back again: caught up, everything current and equal.
    s[2].restart().await;
    let run = d.check_once().await.expect("the check loop catches up");
    assert_eq!(run.status, Status::Success, "{:?}", run.error);
    assert!(run.report.units.iter().all(|u| u.key.backup == "backup2"));
    let st = status_of(app, &project).await;
    assert_all(&st, "backup1", State::Current);
    assert_all(&st, "backup2", State::Current);
    for (name, t) in [("backup1", &b1), ("backup2", &b2)] {
        assert_same_points(&*primary, &*node(name, t, &schema), &series).await;
    }
}

/// The HTTP routes of a daemon, served in-process on a free port until dropped.
struct Api {
    url: String,
    stop: CancellationToken,
}

impl Api {
    async fn serve(d: Arc<Daemon>) -> Api {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let stop = CancellationToken::new();
        let s = stop.clone();
        let router = dms::http::router(d);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await;
        });
        Api { url, stop }
    }

    async fn text(&self, path: &str) -> String {
        let r = reqwest::get(format!("{}{path}", self.url))
            .await
            .expect("the API answers");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.text().await.expect("a body")
    }

    async fn json(&self, path: &str) -> serde_json::Value {
        serde_json::from_str(&self.text(path).await).expect("JSON")
    }

    async fn post(&self, path: &str) -> serde_json::Value {
        let r = dms::node::http_client_builder()
            .build()
            .expect("http client")
            .post(format!("{}{path}", self.url))
            .send()
            .await
            .expect("the API answers");
        assert_eq!(r.status().as_u16(), 202, "POST {path}");
        serde_json::from_str(&r.text().await.expect("a body")).expect("JSON")
    }

    /// Waits (up to 20 s) for the reconcile started through the API to finish; its one row.
    async fn finished_reconcile(&self) -> serde_json::Value {
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let v = self.json("/api/dms/reconcile?latest=true").await;
            let items = v["items"].as_array().cloned().unwrap_or_default();
            if v["running"] == false && items.len() == 1 && items[0]["status"] != "running" {
                return items[0].clone();
            }
            assert!(
                Instant::now() < deadline,
                "the reconcile did not finish: {v:#}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_field_reconcile_finds_one_changed_value_among_months_of_minute_bars() {
    let Some(s) = servers(2).await else { return };
    let opts = Options {
        batch_size: 5000,
        ..Options::default()
    };
    let schema = opts.schema();
    let (pt, bt) = (Target::on(&s[0], "market"), Target::on(&s[1], "copy"));
    let primary = node("primary", &pt, &schema);
    let backup = node("backup1", &bt, &schema);
    let key = SeriesKey::new("US.AAPL", "1m");
    // 65 weekdays of the US session: three months, 25,350 bars.
    let days = 65;
    let points = support::bars(&schema, "US.AAPL", "1m", days);
    put(&*primary, points.clone()).await;
    let project = Project::new(&pt, std::slice::from_ref(&bt), &opts);
    let d = daemon(&project);
    let app = &d.app;
    assert_eq!(sync(app, Selection::all()).await.status, Status::Success);
    let clean = reconcile(app, false).await;
    assert_eq!(counts(&clean, "backup1").counts.differing, 0, "{clean:#?}");
    assert_eq!(counts(&clean, "backup1").counts.windows, days as u64);

    // One tick more in the `high` of one bar in the middle, on the backup only.
    let victim = &points[points.len() / 2];
    put(&*backup, vec![nudged(victim, "high", 0.01)]).await;
    let dry = reconcile(app, true).await;
    let r = counts(&dry, "backup1");
    assert_eq!((r.counts.differing, r.counts.rewritten), (1, 0), "{r:#?}");
    assert_ne!(
        dump(&*backup, &key).await,
        points,
        "a dry run changes nothing"
    );

    let started = Instant::now();
    let run = reconcile(app, false).await;
    let took = started.elapsed();
    let r = counts(&run, "backup1");
    assert_eq!(r.counts.windows, days as u64, "{r:#?}");
    assert_eq!(r.counts.differing, 1, "exactly that window: {r:#?}");
    assert_eq!(r.counts.repaired, 1, "{r:#?}");
    assert_eq!(r.counts.rewritten, 1, "exactly that bar: {r:#?}");
    let w = &r.diffs[0];
    assert_eq!(
        w.window_start,
        format_nanos(victim.time - victim.time.rem_euclid(DAY)),
        "{w:#?}"
    );
    assert_eq!((w.different, w.missing, w.extra), (1, 0, 0), "{w:#?}");
    assert_same_points(&*primary, &*backup, std::slice::from_ref(&key)).await;
    let again = reconcile(app, false).await;
    assert_eq!(counts(&again, "backup1").counts.differing, 0);
    eprintln!("full-field reconcile of {} bars: {took:?}", points.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_points_written_in_opposite_orders_into_other_shards_reconcile_as_equal() {
    let Some(s) = servers(2).await else { return };
    let opts = Options {
        batch_size: 5000,
        ..Options::default()
    };
    let schema = opts.schema();
    let (pt, bt) = (Target::on(&s[0], "market"), Target::on(&s[1], "copy"));
    // The backup's shards are an hour long (the primary's a week): each day window of the
    // backup is summed from several shards' partial sums.
    s[1].execute("copy", "CREATE DATABASE \"copy\" WITH SHARD DURATION 1h")
        .await;
    let primary = node("primary", &pt, &schema);
    let backup = node("backup1", &bt, &schema);
    let days = 20;
    let mut points = support::bars(&schema, "US.AAPL", "1m", days);
    points.extend(support::bars(&schema, "US.MSFT", "1m", days));
    let series = [
        SeriesKey::new("US.AAPL", "1m"),
        SeriesKey::new("US.MSFT", "1m"),
    ];
    put(&*primary, points.clone()).await;
    let project = Project::new(&pt, std::slice::from_ref(&bt), &opts);
    let d = daemon(&project);
    let app = &d.app;
    assert_eq!(sync(app, Selection::all()).await.status, Status::Success);

    // The backup's copy is rewritten newest first, 500 points at a time.
    s[1].execute("copy", "DELETE FROM \"kline\"").await;
    for k in &series {
        assert!(dump(&*backup, k).await.is_empty());
    }
    points.reverse();
    for chunk in points.chunks(500) {
        put(&*backup, chunk.to_vec()).await;
    }
    assert_same_points(&*primary, &*backup, &series).await;
    assert!(d.check_once().await.is_none(), "the tips are equal");
    // The set-up's point: the servers' own float sums of some windows differ in their last
    // bits (the backup adds partial sums of several shards), so equal windows must not be
    // flagged for it.
    let q = "SELECT sum(*) FROM \"kline\" GROUP BY time(1d), * fill(none)";
    assert_ne!(
        s[0].query("market", q).await.to_string(),
        s[1].query("copy", q).await.to_string(),
        "the servers' sums were bit-identical: this set-up no longer tests rounding"
    );
    let run = reconcile(app, false).await;
    let r = counts(&run, "backup1");
    assert_eq!(r.counts.series, 2, "{r:#?}");
    assert_eq!(r.counts.windows, 2 * days as u64, "{r:#?}");
    assert_eq!(r.counts.differing, 0, "no window flagged: {r:#?}");
    assert_eq!(r.counts.rewritten, 0, "{r:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_filled_minute_bars_are_found_and_copied_by_reconcile_on_influxdb() {
    let Some(s) = servers(2).await else { return };
    let opts = Options::default();
    let schema = opts.schema();
    let (pt, bt) = (Target::on(&s[0], "market"), Target::on(&s[1], "copy"));
    let primary = node("primary", &pt, &schema);
    let backup = node("backup1", &bt, &schema);
    let key = SeriesKey::new("US.AAPL", "1m");
    let points = support::bars(&schema, "US.AAPL", "1m", 5);
    // A whole session (the 2nd day) and ten minutes of the 4th arrive late.
    let late: Vec<Point> = points[390..780]
        .iter()
        .chain(&points[1200..1210])
        .cloned()
        .collect();
    let early: Vec<Point> = points
        .iter()
        .filter(|p| !late.contains(p))
        .cloned()
        .collect();
    put(&*primary, early).await;
    let project = Project::new(&pt, std::slice::from_ref(&bt), &opts);
    let d = daemon(&project);
    let app = &d.app;
    assert_eq!(sync(app, Selection::all()).await.status, Status::Success);
    put(&*primary, late.clone()).await;
    assert!(d.check_once().await.is_none(), "nothing new at the tip");

    let run = reconcile(app, false).await;
    let r = counts(&run, "backup1");
    assert_eq!(r.counts.differing, 2, "{r:#?}");
    assert_eq!(r.counts.repaired, 2, "{r:#?}");
    assert_eq!(r.counts.rewritten, late.len() as u64, "{r:#?}");
    let missing: Vec<u64> = r.diffs.iter().map(|w| w.missing).collect();
    assert_eq!(missing, [390, 10], "{r:#?}");
    assert_same_points(&*primary, &*backup, std::slice::from_ref(&key)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_see_retags_and_tiny_changes_and_exact_passes_see_strings_on_influxdb() {
    let Some(s) = servers(2).await else { return };
    let opts = Options {
        batch_size: 5000,
        extra_yaml: "reconcile:\n  mirror_deletes: true\n".into(),
        ..Options::default()
    };
    let schema = opts.schema();
    let (pt, bt) = (Target::on(&s[0], "market"), Target::on(&s[1], "copy"));
    let primary = node("primary", &pt, &schema);
    let backup = node("backup1", &bt, &schema);
    let key = SeriesKey::new("US.BIG", "1d");
    let (measurement, tags) = schema.identity(&key);
    let bar = |i: i64, venue: &str, big: f64, status: &str| {
        let mut t = tags.to_vec();
        t.push((Arc::from("venue"), Arc::from(venue)));
        t.sort();
        Point {
            measurement: measurement.clone(),
            tags: t.into(),
            fields: vec![
                (Arc::from("close"), FieldValue::Float(10.0 + i as f64)),
                (Arc::from("big"), FieldValue::Float(big)),
                (Arc::from("status"), FieldValue::String(status.into())),
            ],
            time: today() - (40 - i) * DAY,
        }
    };
    let big = |i: i64| 1.0e9 + i as f64 * 0.37;
    let points: Vec<Point> = (0..40).map(|i| bar(i, "X", big(i), "open")).collect();
    put(&*primary, points.clone()).await;
    let project = Project::new(&pt, std::slice::from_ref(&bt), &opts);
    let d = daemon(&project);
    let app = &d.app;
    assert_eq!(sync(app, Selection::all()).await.status, Status::Success);
    // Day 5 moved to another venue; day 20 a few bits off near 1e9 (far below the old
    // float tolerance); day 30's string revised (digests only count strings: the window is
    // read); a series only the backup holds.
    backup
        .delete(&key, &[points[5].time])
        .await
        .expect("delete");
    put(&*backup, vec![bar(5, "Y", big(5), "open")]).await;
    put(
        &*backup,
        vec![bar(20, "X", f64::from_bits(big(20).to_bits() + 3), "open")],
    )
    .await;
    put(&*backup, vec![bar(30, "X", big(30), "halted")]).await;
    let gone = SeriesKey::new("US.GONE", "1d");
    put(&*backup, bars_to("US.GONE", "1d", 2, today(), DAY)).await;

    let run = reconcile(app, true).await;
    let r = counts(&run, "backup1");
    let starts: Vec<&str> = r.diffs.iter().map(|d| d.window_start.as_str()).collect();
    let day = |i: usize| format_nanos(points[i].time);
    assert!(starts.contains(&day(5).as_str()), "the re-tag: {r:#?}");
    assert!(
        starts.contains(&day(20).as_str()),
        "the tiny change: {r:#?}"
    );
    assert!(
        starts.contains(&day(30).as_str()),
        "digests only count strings, so a window holding them is read: {r:#?}"
    );
    assert!(
        r.diffs.iter().any(|d| d.key.series == gone),
        "the backup-only series: {r:#?}"
    );

    let exact = app
        .reconcile(
            &ReconcileArgs {
                exact: true,
                ..ReconcileArgs::default()
            },
            Pass::Complete,
            Trigger::Manual,
            &SyncControl::default(),
        )
        .await
        .expect("reconcile");
    let r = counts(&exact, "backup1");
    assert!(
        r.diffs.iter().any(|d| d.window_start == day(30)),
        "the exact pass finds the string: {r:#?}"
    );
    // Repaired (the backup-only series is kept: it may be the only copy there is).
    assert_same_points(&*primary, &*backup, std::slice::from_ref(&key)).await;
    assert_eq!(dump(&*backup, &gone).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_lost_its_newest_days_or_many_points_deletes_nothing_on_influxdb() {
    let Some(s) = servers(2).await else { return };
    let opts = Options {
        extra_yaml: "reconcile:\n  mirror_deletes: true\n  max_deletes: 20\n".into(),
        ..Options::default()
    };
    let schema = opts.schema();
    let (pt, bt) = (Target::on(&s[0], "market"), Target::on(&s[1], "copy"));
    let primary = node("primary", &pt, &schema);
    let backup = node("backup1", &bt, &schema);
    let key = SeriesKey::new("US.AAPL", "1d");
    let points = support::bars(&schema, "US.AAPL", "1d", 60);
    let n = points.len();
    put(&*primary, points.clone()).await;
    let project = Project::new(&pt, std::slice::from_ref(&bt), &opts);
    let d = daemon(&project);
    let app = &d.app;
    assert_eq!(sync(app, Selection::all()).await.status, Status::Success);
    let reconcile_with = |allow: Option<u64>| {
        let args = ReconcileArgs {
            allow_deletes: allow,
            ..ReconcileArgs::default()
        };
        async move {
            app.reconcile(
                &args,
                Pass::Complete,
                Trigger::Manual,
                &SyncControl::default(),
            )
            .await
            .expect("reconcile")
        }
    };
    // Restored from an older snapshot: the last five bars gone, two older ones too.
    let lost: Vec<Nanos> = points[n - 5..]
        .iter()
        .chain(&points[10..12])
        .map(|p| p.time)
        .collect();
    primary.delete(&key, &lost).await.expect("delete");
    let run = reconcile_with(None).await;
    assert_eq!(run.status, Status::Failed, "{run:#?}");
    let r = counts(&run, "backup1");
    assert_eq!((r.counts.deleted, r.counts.refused), (0, 2), "{r:#?}");
    assert!(
        r.counts
            .error
            .as_deref()
            .is_some_and(|e| e.contains("moved backwards")),
        "{r:#?}"
    );
    assert_eq!(dump(&*backup, &key).await.len(), n, "nothing deleted");
    // Back to the full set; then thirty older bars go (more than max_deletes = 20).
    put(&*primary, points.clone()).await;
    let older: Vec<Nanos> = points[15..45].iter().map(|p| p.time).collect();
    primary.delete(&key, &older).await.expect("delete");
    let run = reconcile_with(None).await;
    let r = counts(&run, "backup1");
    assert_eq!((r.counts.deleted, r.counts.refused), (0, 30), "{r:#?}");
    assert_eq!(dump(&*backup, &key).await.len(), n, "nothing deleted");
    let run = reconcile_with(Some(30)).await;
    assert_eq!(run.status, Status::Success, "{run:#?}");
    assert_eq!(counts(&run, "backup1").counts.deleted, 30);
    assert_same_points(&*primary, &*backup, std::slice::from_ref(&key)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_typed_differently_in_two_shards_of_the_primary_is_reported() {
    let Some(s) = servers(2).await else { return };
    let opts = Options::default();
    let schema = opts.schema();
    let (pt, bt) = (Target::on(&s[0], "market"), Target::on(&s[1], "copy"));
    let primary = node("primary", &pt, &schema);
    let key = SeriesKey::new("US.AAPL", "1d");
    let (measurement, tags) = schema.identity(&key);
    let bar = |t: Nanos, note: FieldValue| Point {
        measurement: measurement.clone(),
        tags: tags.clone(),
        fields: vec![
            (Arc::from("close"), FieldValue::Float(1.0)),
            (Arc::from("note"), note),
        ],
        time: t,
    };
    // `note` is a float in a shard a month back and a string in this week's shard: InfluxDB
    // takes both writes, and `SELECT *` then returns the float one alone.
    put(
        &*primary,
        vec![bar(today() - 30 * DAY, FieldValue::Float(1.5))],
    )
    .await;
    put(
        &*primary,
        vec![bar(today() - DAY, FieldValue::String("halted".into()))],
    )
    .await;
    let project = Project::new(&pt, std::slice::from_ref(&bt), &opts);
    let d = daemon(&project);
    let run = sync(&d.app, Selection::all()).await;
    let warning = run.warning.clone().unwrap_or_default();
    assert!(
        warning.contains("note") && warning.contains("float") && warning.contains("string"),
        "the run says which field has which types: {run:#?}"
    );
    let recorded = d
        .app
        .history
        .read(|db| db.runs(None, 1))
        .await
        .expect("runs");
    assert!(
        recorded[0]
            .warning
            .as_deref()
            .is_some_and(|w| w.contains("shards")),
        "{recorded:#?}"
    );
}
