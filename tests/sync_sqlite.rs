//! The sync engine on real SQLite stores: windows, checkpoints, retries, resume, fan-out,
//! field types and odd symbols.

use crate::helper::faulty::Plan;
use crate::helper::fixture::Seeded;
use crate::helper::project::{Project, all, bars, checkpoint, put};
use dms::app::{App, RunOutcome};
use dms::config::SyncMode;
use dms::history::{HistoryFilter, Status};
use dms::model::{FieldValue, NANOS_PER_DAY, NANOS_PER_SEC, Point, SeriesKey};
use dms::node::ErrorKind;
use dms::sync::{Selection, SyncControl, SyncRequest, UnitReport};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

fn req(initial_days: u32) -> SyncRequest {
    SyncRequest::new(Selection::all(), initial_days)
}

fn series(symbol: &str, interval: &str) -> SeriesKey {
    SeriesKey::new(symbol, interval)
}

/// A recorded sync of every series over the last 30 days.
async fn sync(app: &App) -> RunOutcome {
    app.manual_sync(req(30), &SyncControl::default())
        .await
        .unwrap()
}

/// The report of `backup`'s unit.
fn unit<'a>(units: &'a [UnitReport], backup: &str) -> &'a UnitReport {
    units.iter().find(|u| u.key.backup == backup).unwrap()
}

async fn assert_equal(p: &Project, backup: &str, s: &SeriesKey) {
    let primary = all(p.node("primary").as_ref(), s).await;
    let copy = all(p.node(backup).as_ref(), s).await;
    assert_eq!(copy.len(), primary.len(), "{backup} {s}: point count");
    assert_eq!(copy, primary, "{backup} {s}: content");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sync_honours_initial_days_and_second_copies_only_new_points() {
    let f = Seeded::daily("US.AAPL", 30).await;
    let (p, s) = (&f.project, &f.series);
    let app = p.app();

    let report = app
        .manual_sync(req(10), &SyncControl::default())
        .await
        .unwrap();
    assert_eq!(report.status, Status::Success, "{:?}", report.error);
    let cutoff = dms::model::now_nanos() - 10 * NANOS_PER_DAY;
    let expected = all(p.node("primary").as_ref(), s)
        .await
        .into_iter()
        .filter(|pt| pt.time >= cutoff)
        .count();
    assert!(
        (9..=11).contains(&expected),
        "10 days of daily bars, got {expected}"
    );
    for b in ["backup1", "backup2"] {
        let copy = all(p.node(b).as_ref(), s).await;
        assert_eq!(copy.len(), expected, "{b}: only initial_days are copied");
        assert!(copy.iter().all(|pt| pt.time >= cutoff));
        assert_eq!(unit(&report.report.units, b).records as usize, expected);
    }

    // Five new bars (within future_tolerance of now) and an updated last bar.
    let primary = p.node("primary");
    let last = all(primary.as_ref(), s).await.pop().unwrap();
    let mut updated = last.clone();
    updated.fields[0].1 = FieldValue::Float(12345.5);
    let mut fresh = bars(
        "US.AAPL",
        "1d",
        5,
        last.time + NANOS_PER_DAY,
        NANOS_PER_DAY / 5,
    );
    fresh.push(updated.clone());
    put(primary.as_ref(), fresh).await;

    let second = app
        .manual_sync(req(10), &SyncControl::default())
        .await
        .unwrap();
    assert_eq!(second.status, Status::Success);
    for u in &second.report.units {
        assert_eq!(
            u.records, 6,
            "{}: 5 new bars plus the re-read last bar",
            u.key.backup
        );
        assert_eq!(
            u.window_start, last.time,
            "the window starts at the checkpoint, inclusive"
        );
    }
    for b in ["backup1", "backup2"] {
        let copy = all(p.node(b).as_ref(), s).await;
        assert!(
            copy.contains(&updated),
            "{b}: the rewritten last bar was copied again"
        );
        // Future-dated bars are copied; the checkpoint stays at the newest one at or before now.
        let now = dms::model::now_nanos();
        assert_eq!(
            checkpoint(p, b, s),
            copy.iter().map(|pt| pt.time).filter(|t| *t <= now).max()
        );
    }
}

// On paused time: the retries wait the default 5 s, then 10 s, and the test does not.
#[tokio::test(start_paused = true)]
async fn failed_batch_is_retried_with_backoff_and_the_checkpoint_stays_at_the_last_good_batch() {
    let f = Seeded::default_delay("US.MSFT", 100, 2).await;
    let (p, s, points) = (&f.project, &f.series, &f.points);
    // backup1: write calls 4, 5 and 6 fail (the 4th batch, then its two retries).
    let faulty = f.faulty("backup1", Plan::Calls(4..=6, ErrorKind::Unavailable));
    let app = f.app(vec![faulty.clone()]);

    let start = Instant::now();
    let out = sync(&app).await;
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(5 + 10),
        "the two waits"
    );
    assert_eq!(out.status, Status::Failed);
    let unit = &out.report.units[0];
    assert_eq!(unit.status, Status::Failed);
    assert_eq!(unit.records, 30, "three good batches");
    let err = unit.error.as_deref().unwrap();
    assert!(err.contains("gave up after 3 attempts"), "{err}");
    assert!(err.contains("injected fault"), "{err}");

    // Retries waited retry_delay · 2^k: 5 s, then 10 s.
    let t = faulty.attempts.lock().unwrap().clone();
    assert_eq!(t.len(), 6);
    assert_eq!(t[4] - t[3], Duration::from_secs(5));
    assert_eq!(t[5] - t[4], Duration::from_secs(10));

    // The checkpoint is the newest point of the third batch, which the backup holds.
    let held = all(p.node("backup1").as_ref(), s).await;
    assert_eq!(held.len(), 30);
    assert_eq!(checkpoint(p, "backup1", s), Some(points[29].time));
    let rows = p.history().history(&HistoryFilter::default()).unwrap();
    assert_eq!(rows[0].status.as_str(), "failed");
    assert_eq!(rows[0].records, 30);

    // The next sync resumes there and the backup ends equal to the primary.
    faulty.set_plan(Plan::Healthy);
    let again = sync(&app).await;
    assert_eq!(again.status, Status::Success, "{:?}", again.error);
    assert_eq!(
        again.report.units[0].records, 71,
        "70 new points plus the re-read checkpoint"
    );
    assert_equal(p, "backup1", s).await;
}

// On paused time: the one retry waits the default 5 s, and the test does not.
#[tokio::test(start_paused = true)]
async fn a_transient_write_failure_is_retried_and_the_sync_succeeds() {
    let f = Seeded::default_delay("US.NVDA", 50, 3).await;
    let faulty = f.faulty("backup1", Plan::Calls(2..=2, ErrorKind::Server));
    let app = f.app(vec![faulty.clone()]);
    let start = Instant::now();
    let out = sync(&app).await;
    assert_eq!(out.status, Status::Success, "{:?}", out.error);
    assert_eq!(out.report.units[0].records, 50);
    assert_eq!(faulty.write_calls(), 6, "five batches, one retried");
    let t = faulty.attempts.lock().unwrap().clone();
    assert_eq!(t[2] - t[1], Duration::from_secs(5), "the retry waited 5 s");
    assert_eq!(start.elapsed(), Duration::from_secs(5), "and only then");
    assert_equal(&f.project, "backup1", &f.series).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_retrying_cannot_fix_fails_at_once() {
    let f = Seeded::new("US.NVDA", 20, 3).await;
    let faulty = f.faulty("backup1", Plan::Always(ErrorKind::Auth));
    let app = f.app(vec![faulty.clone()]);
    let out = sync(&app).await;
    assert_eq!(out.status, Status::Failed);
    assert_eq!(
        faulty.write_calls(),
        1,
        "authentication errors are not retried"
    );
    let err = out.report.units[0].error.as_deref().unwrap();
    assert!(err.contains("not retried"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_sync_midway_loses_no_acknowledged_batch_and_duplicates_nothing() {
    let f = Seeded::new("US.TSLA", 300, 2).await;
    let (p, s, points) = (&f.project, &f.series, &f.points);
    let slow = f.slow("backup1", Duration::from_millis(15));
    let app = Arc::new(f.app(vec![slow.clone()]));
    let a = app.clone();
    let task = tokio::spawn(async move { a.manual_sync(req(30), &SyncControl::default()).await });
    // Let a few batches land, then kill the sync.
    while slow.write_calls() < 8 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    tokio::time::sleep(Duration::from_millis(100)).await;

    let held = all(p.node("backup1").as_ref(), s).await;
    let cp = checkpoint(p, "backup1", s).expect("acknowledged batches moved the checkpoint");
    assert!(
        !held.is_empty() && held.len() < 300,
        "stopped midway: {}",
        held.len()
    );
    assert!(held.iter().all(|pt| pt.time <= points[held.len() - 1].time));
    assert_eq!(
        held,
        points[..held.len()].to_vec(),
        "the backup holds a clean prefix"
    );
    assert!(
        cp <= held.last().unwrap().time,
        "the checkpoint never passes what the backup holds"
    );
    assert!(
        held.last().unwrap().time - cp <= 10 * 60 * NANOS_PER_SEC,
        "at most the batch in flight is unrecorded"
    );
    drop(app);

    // A new process repairs the row the kill left running, then resumes from the checkpoint.
    let app = p.app();
    let rows = p.history().history(&HistoryFilter::default()).unwrap();
    assert!(rows.iter().all(|r| r.status.as_str() != "running"));
    assert!(
        rows[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("interrupted")
    );
    let out = sync(&app).await;
    assert_eq!(out.status, Status::Success);
    let b1 = unit(&out.report.units, "backup1");
    assert_eq!(b1.window_start, cp);
    assert_equal(p, "backup1", s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_backup_failing_does_not_stop_the_other() {
    let f = Seeded::new("US.AAPL", 100, 2).await;
    let (p, s) = (&f.project, &f.series);
    let dead = f.faulty("backup1", Plan::Always(ErrorKind::Unavailable));
    let app = f.app(vec![dead.clone(), p.node("backup2")]);
    let out = sync(&app).await;
    assert_eq!(out.status, Status::Failed);
    let b1 = unit(&out.report.units, "backup1");
    let b2 = unit(&out.report.units, "backup2");
    assert_eq!(b1.status, Status::Failed);
    assert_eq!(b1.records, 0);
    assert!(b1.error.as_deref().unwrap().contains("unreachable"));
    assert_eq!(b2.status, Status::Success);
    assert_eq!(b2.records, 100);
    assert_equal(p, "backup2", s).await;
    assert_eq!(checkpoint(p, "backup1", s), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_backup_does_not_hold_up_the_other() {
    let f = Seeded::new("US.AAPL", 200, 2).await;
    let (p, s) = (&f.project, &f.series);
    let slow = f.slow("backup1", Duration::from_millis(40));
    let fast = f.faulty("backup2", Plan::Healthy);
    let engine = f
        .engine(vec![slow.clone(), fast.clone()])
        .with_detach_after(Duration::from_millis(20));
    let out = engine
        .sync(&req(30), &SyncControl::default())
        .await
        .unwrap();
    assert_eq!(out.failed(), 0);
    let b1 = unit(&out.units, "backup1");
    let b2 = unit(&out.units, "backup2");
    assert_eq!((b1.records, b2.records), (200, 200));
    // 20 batches at 40 ms is ≥ 800 ms for the slow one; the fast one must not wait for it.
    assert!(b1.duration_ms >= 800, "{}", b1.duration_ms);
    assert!(
        b2.duration_ms < b1.duration_ms / 2,
        "fast {} ms vs slow {} ms",
        b2.duration_ms,
        b1.duration_ms
    );
    assert_equal(p, "backup1", s).await;
    assert_equal(p, "backup2", s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_sharing_a_checkpoint_read_the_primary_once() {
    let f = Seeded::new("US.AAPL", 95, 2).await;
    let counting = f.faulty("primary", Plan::Healthy);
    let p = &f.project;
    let app = f.app_with_primary(counting.clone(), vec![p.node("backup1"), p.node("backup2")]);
    let out = sync(&app).await;
    assert_eq!(out.status, Status::Success);
    assert_eq!(counting.reads(), 1, "one read stream for both backups");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_backup_is_healed_by_an_incremental_sync_and_full_mode_recopies_too() {
    let f = Seeded::daily("US.AAPL", 20).await;
    let (p, s) = (&f.project, &f.series);
    let app = p.app();
    sync(&app).await;
    // Wipe backup1's data behind dms's back.
    let conn = rusqlite::Connection::open(p.root().join("run/backup1.db")).unwrap();
    conn.execute("DELETE FROM points", []).unwrap();
    drop(conn);
    let inc = sync(&app).await;
    let healed = unit(&inc.report.units, "backup1");
    assert_eq!(
        healed.records, 20,
        "the checkpoint claimed more than backup1 holds: moved back, everything recopied"
    );
    assert_eq!(
        unit(&inc.report.units, "backup2").records,
        0,
        "backup2 is intact: its newest bar is re-read and found equal"
    );
    assert_equal(p, "backup1", s).await;
    let events = dms::history::HistoryReader::open(&p.settings().history.path)
        .unwrap()
        .events(10)
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "rewound" && e.backup.as_deref() == Some("backup1")),
        "the rewind is recorded: {events:?}"
    );
    conn_wipe(p);
    // Full mode recopies the initial_days range whatever the checkpoints say.
    let mut full = req(30);
    full.mode = SyncMode::Full;
    full.backups = Some(vec!["backup1".into()]);
    let out = app
        .manual_sync(full, &SyncControl::default())
        .await
        .unwrap();
    assert_eq!(out.status, Status::Success);
    assert_eq!(out.report.units.len(), 1);
    assert_eq!(out.report.units[0].records, 20);
    assert_equal(p, "backup1", s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_types_and_odd_symbols_survive_the_copy() {
    let p = Project::new();
    let odd = [
        "US.BRK'B",
        "A B",
        "C,D",
        "E=F",
        "Ü.ÄÖ 株",
        "X' OR symbol!='",
        "q\"uote\\",
    ];
    let now = dms::model::now_nanos();
    let mut points = Vec::new();
    for (i, sym) in odd.iter().enumerate() {
        let (m, tags) = dms::schema::Schema::default().identity(&series(sym, "1d"));
        points.push(Point {
            measurement: m,
            tags,
            fields: vec![
                ("f".into(), FieldValue::Float(1.0)),
                ("i".into(), FieldValue::Integer(-(i as i64) - 1)),
                (
                    "s".into(),
                    FieldValue::String(format!("say \"hi\", {sym}\n")),
                ),
                ("b".into(), FieldValue::Boolean(i % 2 == 0)),
            ],
            time: now - i as i64 * NANOS_PER_SEC + 123,
        });
    }
    put(p.node("primary").as_ref(), points).await;
    let app = p.app();
    let out = sync(&app).await;
    assert_eq!(out.status, Status::Success, "{:?}", out.error);
    assert_eq!(out.report.units.len(), odd.len() * 2);
    for sym in odd {
        let s = series(sym, "1d");
        for b in ["backup1", "backup2"] {
            assert_equal(&p, b, &s).await;
            let copy = all(p.node(b).as_ref(), &s).await;
            assert_eq!(
                copy[0].field("f"),
                Some(&FieldValue::Float(1.0)),
                "a float stays a float"
            );
            assert!(
                matches!(copy[0].field("i"), Some(FieldValue::Integer(_))),
                "an integer stays an integer"
            );
            assert_eq!(copy[0].tag("symbol"), Some(sym));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_of_a_backup_that_does_not_exist_is_refused() {
    let p = Project::new();
    let app = p.app();
    let mut r = req(30);
    r.backups = Some(vec!["nope".into()]);
    let out = app.manual_sync(r, &SyncControl::default()).await.unwrap();
    assert_eq!(out.status, Status::Failed);
    assert!(
        out.error
            .unwrap()
            .contains("no enabled backup is called \"nope\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_on_the_same_history_is_refused() {
    let p = Project::new();
    let _app = p.app();
    let err = App::open(p.settings(), "second").err().expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("in use by another dms writer"), "{msg}");
    assert!(msg.contains("test, pid"), "names the holder: {msg}");
}

/// Deletes every point of backup1's store behind dms's back.
fn conn_wipe(p: &Project) {
    let conn = rusqlite::Connection::open(p.root().join("run/backup1.db")).unwrap();
    conn.execute("DELETE FROM points", []).unwrap();
}
