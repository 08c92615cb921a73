//! Backups that provably equal the primary (issue 11), on real SQLite stores driven through the
//! `dms` binary as a user drives it: a future-dated bar, a backup restored from an older copy
//! or wiped, revised bars (the newest, one within `lookback`, an older one), back-filled
//! history and a raised `initial_days`, points deleted on the primary with and without
//! `mirror_deletes` (the newest one too), `dms reconcile`'s filters and the shipped Lua
//! reconcile task. Each test ends with every point of both sides read and compared, and checks
//! what `dms status --json` says at the steps in between.

use crate::helper::project::{Project, all, bars, checkpoint, put, sync_yaml};
use dms::model::{FieldValue, NANOS_PER_DAY, NANOS_PER_SEC, Nanos, Point, SeriesKey, format_nanos};
use dms::node::Node;
use serde_json::Value;
use std::process::Output;

const DAY: Nanos = NANOS_PER_DAY;
/// 2030-01-01T00:00:00Z: a bar from a vendor sending milliseconds as seconds.
const Y2030: Nanos = 1_893_456_000 * NANOS_PER_SEC;
/// 1990-01-01T00:00:00Z: older than any `initial_days` range here.
const Y1990: Nanos = 631_152_000 * NANOS_PER_SEC;

/// Today at midnight UTC.
fn today() -> Nanos {
    dms::model::now_nanos() / DAY * DAY
}

/// `n` daily bars of US.AAPL, the last one at `end`.
fn daily_to(n: usize, end: Nanos) -> Vec<Point> {
    bars("US.AAPL", "1d", n, end, DAY)
}

fn aapl() -> SeriesKey {
    SeriesKey::new("US.AAPL", "1d")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

/// Runs `dms args…`, asserts exit 0, returns its `--json` output.
fn ok_json(p: &Project, args: &[&str]) -> Value {
    let out = p.cli(args);
    assert!(out.status.success(), "dms {args:?}: {}", text(&out));
    json(&out)
}

/// `dms status --json`: the exit code and the rows.
fn status(p: &Project) -> (i32, Vec<Value>) {
    let out = p.cli(&["status", "--json"]);
    let code = out.status.code().unwrap_or(-1);
    let rows = json(&out).as_array().cloned().unwrap_or_default();
    (code, rows)
}

/// The status row of `backup` for `series`.
fn row<'a>(rows: &'a [Value], backup: &str, s: &SeriesKey) -> &'a Value {
    rows.iter()
        .find(|r| r["backup"] == backup && r["symbol"] == *s.symbol && r["interval"] == *s.interval)
        .unwrap_or_else(|| panic!("no status row for {backup} {s}: {rows:#?}"))
}

/// The `dms sync --json` unit of `backup`, if it ran.
/// The history row of `backup` in a `dms sync --json` run.
fn unit<'a>(run: &'a Value, backup: &str) -> Option<&'a Value> {
    run["history"]
        .as_array()?
        .iter()
        .find(|u| u["backup"] == backup)
}

/// The `dms reconcile --json` entry of `backup`.
fn reconciled<'a>(run: &'a Value, backup: &str) -> &'a Value {
    run["report"]["backups"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["backup"] == backup))
        .unwrap_or_else(|| panic!("no reconcile entry for {backup}: {run:#}"))
}

/// Every point of `s` on `backup` equals the primary's, read in full on both sides.
async fn assert_equal(p: &Project, backup: &str, s: &SeriesKey) {
    let primary = all(p.node("primary").as_ref(), s).await;
    let copy = all(p.node(backup).as_ref(), s).await;
    assert!(!primary.is_empty(), "{s}: the primary holds nothing");
    assert_eq!(copy.len(), primary.len(), "{backup} {s}: point count");
    assert_eq!(copy, primary, "{backup} {s}: content");
}

/// `p` with the float field `field` moved by `by`.
fn nudged(p: &Point, field: &str, by: f64) -> Point {
    let mut q = p.clone();
    let f = q
        .fields
        .iter_mut()
        .find(|(k, _)| &**k == field)
        .unwrap_or_else(|| panic!("no field {field}"));
    match &mut f.1 {
        FieldValue::Float(x) => *x += by,
        other => panic!("{field} is not a float: {other:?}"),
    }
    q
}

fn rewound(p: &Project, backup: &str) -> Vec<dms::history::EventRow> {
    p.history()
        .events(0)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "rewound" && e.backup.as_deref() == Some(backup))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_dated_bar_is_copied_and_later_bars_keep_flowing() {
    let p = Project::new();
    let s = aapl();
    let today = today();
    put(&*p.node("primary"), daily_to(20, today - DAY)).await;
    ok_json(&p, &["sync", "--json"]);

    // A bar stamped 2030 reaches the primary and is synced: copied, but no checkpoint
    // follows it.
    let future = bars("US.AAPL", "1d", 1, Y2030, DAY);
    put(&*p.node("primary"), future.clone()).await;
    ok_json(&p, &["sync", "--json"]);
    for b in ["backup1", "backup2"] {
        assert_eq!(
            checkpoint(&p, b, &s),
            Some(today - DAY),
            "{b}: the checkpoint stays at the newest bar that is not future-dated"
        );
        assert_equal(&p, b, &s).await;
    }
    let (code, rows) = status(&p);
    assert_eq!(code, 0, "{rows:#?}");
    for b in ["backup1", "backup2"] {
        let r = row(&rows, b, &s);
        assert_eq!(r["state"], "current", "{r:#}");
        assert_eq!(r["future"], format_nanos(Y2030), "flagged future: {r:#}");
        assert_eq!(r["backup_newest"], format_nanos(today - DAY), "{r:#}");
        assert_eq!(r["lag_seconds"], 0.0, "{r:#}");
    }

    // Today's bar: seen as lag on both backups (from what they hold), then copied.
    put(&*p.node("primary"), daily_to(1, today)).await;
    let (_, rows) = status(&p);
    for b in ["backup1", "backup2"] {
        let r = row(&rows, b, &s);
        assert_eq!(r["state"], "lagging", "{r:#}");
        assert_eq!(r["primary_newest"], format_nanos(today), "{r:#}");
        assert_eq!(r["backup_newest"], format_nanos(today - DAY), "{r:#}");
        assert_eq!(r["lag_seconds"], 86_400.0, "{r:#}");
    }
    let units = ok_json(&p, &["sync", "--json"]);
    for b in ["backup1", "backup2"] {
        let u = unit(&units, b).unwrap_or_else(|| panic!("{b} synced: {units:#}"));
        assert_eq!(u["status"], "success", "{u:#}");
        assert_eq!(checkpoint(&p, b, &s), Some(today), "{b}");
        let held = all(&*p.node(b), &s).await;
        assert!(held.iter().any(|pt| pt.time == today), "{b}: today's bar");
        assert!(held.iter().any(|pt| pt.time == Y2030), "{b}: the 2030 bar");
        assert_equal(&p, b, &s).await;
    }
    let (code, rows) = status(&p);
    assert_eq!(code, 0, "{rows:#?}");
    for b in ["backup1", "backup2"] {
        let r = row(&rows, b, &s);
        assert_eq!(r["state"], "current", "{r:#}");
        assert_eq!(r["future"], format_nanos(Y2030), "{r:#}");
        assert_eq!(r["checkpoint"], format_nanos(today), "{r:#}");
    }
    // The check loop finds nothing to do, and verify agrees the backups are equal.
    let again = ok_json(&p, &["sync", "--only-behind", "--json"]);
    assert_eq!(
        again["history"],
        serde_json::json!([]),
        "nothing left to copy"
    );
    let out = p.cli(&["verify"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// A consistent copy of a closed SQLite store (what a file-level backup would hold).
fn snapshot(p: &Project, name: &str, to: &str) {
    let conn = rusqlite::Connection::open(p.root().join(format!("run/{name}.db"))).unwrap();
    conn.execute("VACUUM INTO ?1", [p.root().join(to).display().to_string()])
        .unwrap();
}

/// Puts the copy back in place of the store (nothing has it open).
fn restore(p: &Project, name: &str, from: &str) {
    let db = p.root().join(format!("run/{name}.db"));
    for suffix in ["-wal", "-shm"] {
        let side = p.root().join(format!("run/{name}.db{suffix}"));
        if side.exists() {
            std::fs::remove_file(side).unwrap();
        }
    }
    std::fs::copy(p.root().join(from), db).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restored_from_an_older_copy_or_wiped_shows_behind_and_the_check_loop_refills_it()
{
    let p = Project::new();
    let s = aapl();
    let today = today();
    let older = today - 5 * DAY;
    put(&*p.node("primary"), daily_to(20, older)).await;
    ok_json(&p, &["sync", "--json"]);
    snapshot(&p, "backup1", "run/backup1-old.db");
    put(&*p.node("primary"), daily_to(5, today)).await;
    ok_json(&p, &["sync", "--json"]);
    assert_eq!(checkpoint(&p, "backup1", &s), Some(today));

    // backup1 goes back to the older copy; its checkpoint still says today.
    restore(&p, "backup1", "run/backup1-old.db");
    let (code, rows) = status(&p);
    assert_eq!(code, 1, "a backup is behind: {rows:#?}");
    let r = row(&rows, "backup1", &s);
    assert_eq!(r["state"], "behind", "{r:#}");
    assert_eq!(r["behind"], true, "{r:#}");
    assert_eq!(r["backup_newest"], format_nanos(older), "{r:#}");
    assert_eq!(r["checkpoint"], format_nanos(today), "{r:#}");
    assert_eq!(
        r["lag_seconds"],
        5.0 * 86_400.0,
        "lag from what the backup holds, not from its checkpoint: {r:#}"
    );
    assert_eq!(row(&rows, "backup2", &s)["state"], "current");

    // The check loop moves the checkpoint back and refills the gap; backup2 is left alone.
    let units = ok_json(&p, &["sync", "--only-behind", "--json"]);
    let u = unit(&units, "backup1").unwrap_or_else(|| panic!("backup1 synced: {units:#}"));
    assert_eq!(u["status"], "success", "{u:#}");
    assert_eq!(
        u["window_start"],
        format_nanos(older),
        "from what backup1 holds: {u:#}"
    );
    assert_eq!(
        u["records"], 6,
        "its newest bar again and the 5 it lacked: {u:#}"
    );
    assert!(unit(&units, "backup2").is_none(), "{units:#}");
    let events = rewound(&p, "backup1");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].symbol.as_deref(), Some("US.AAPL"));
    assert_equal(&p, "backup1", &s).await;
    assert_equal(&p, "backup2", &s).await;
    let (code, rows) = status(&p);
    assert_eq!(code, 0, "{rows:#?}");
    assert!(rows.iter().all(|r| r["state"] == "current"), "{rows:#?}");

    // backup2 is wiped: it holds nothing, though its checkpoint says today.
    let conn = rusqlite::Connection::open(p.root().join("run/backup2.db")).unwrap();
    conn.execute("DELETE FROM points", []).unwrap();
    drop(conn);
    let (code, rows) = status(&p);
    assert_eq!(code, 1);
    let r = row(&rows, "backup2", &s);
    assert_eq!(r["state"], "behind", "{r:#}");
    assert_eq!(r["backup_newest"], Value::Null, "{r:#}");
    assert_eq!(r["checkpoint"], format_nanos(today), "{r:#}");
    let units = ok_json(&p, &["sync", "--only-behind", "--json"]);
    let u = unit(&units, "backup2").unwrap_or_else(|| panic!("backup2 synced: {units:#}"));
    assert_eq!(u["records"], 25, "everything again: {u:#}");
    assert!(unit(&units, "backup1").is_none(), "{units:#}");
    assert_eq!(rewound(&p, "backup2").len(), 1);
    assert_equal(&p, "backup2", &s).await;
    assert_equal(&p, "backup1", &s).await;
    let (code, rows) = status(&p);
    assert_eq!(code, 0, "{rows:#?}");
    assert!(rows.iter().all(|r| r["state"] == "current"), "{rows:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revised_newest_bar_is_copied_by_the_check_loop_and_an_older_one_by_reconcile() {
    let p = Project::new();
    let s = aapl();
    let today = today();
    let points = daily_to(20, today);
    put(&*p.node("primary"), points.clone()).await;
    ok_json(&p, &["sync", "--json"]);

    // The newest bar is revised: same timestamp, another close.
    put(
        &*p.node("primary"),
        vec![nudged(&points[19], "close", 0.37)],
    )
    .await;
    let (_, rows) = status(&p);
    for b in ["backup1", "backup2"] {
        let r = row(&rows, b, &s);
        assert_eq!(r["state"], "lagging", "same time, other values: {r:#}");
        assert_eq!(r["backup_newest"], r["primary_newest"], "{r:#}");
    }
    let units = ok_json(&p, &["sync", "--only-behind", "--json"]);
    for b in ["backup1", "backup2"] {
        let u = unit(&units, b).unwrap_or_else(|| panic!("{b} not skipped: {units:#}"));
        assert_eq!(u["records"], 1, "{u:#}");
        assert_equal(&p, b, &s).await;
    }
    let (_, rows) = status(&p);
    assert!(rows.iter().all(|r| r["state"] == "current"), "{rows:#?}");

    // An older bar is revised in one field: the tips cannot see it; reconcile does.
    let revised = nudged(&points[7], "high", 0.01);
    put(&*p.node("primary"), vec![revised.clone()]).await;
    let dry = p.cli(&["reconcile", "--dry-run", "--json"]);
    assert_eq!(
        dry.status.code(),
        Some(1),
        "a dry run that finds a difference: {}",
        text(&dry)
    );
    let dry = json(&dry);
    for b in ["backup1", "backup2"] {
        let r = reconciled(&dry, b);
        assert_eq!(
            (&r["differing"], &r["rewritten"]),
            (&1.into(), &0.into()),
            "{r:#}"
        );
        assert!(
            !all(&*p.node(b), &s).await.contains(&revised),
            "{b}: a dry run changes nothing"
        );
    }
    let run = ok_json(&p, &["reconcile", "--json"]);
    assert_eq!(run["status"], "success", "{run:#}");
    for b in ["backup1", "backup2"] {
        let r = reconciled(&run, b);
        assert_eq!(r["status"], "success", "{r:#}");
        assert_eq!(r["differing"], 1, "exactly one window: {r:#}");
        assert_eq!(r["repaired"], 1, "{r:#}");
        assert_eq!(r["rewritten"], 1, "{r:#}");
        assert_eq!(r["deleted"], 0, "{r:#}");
        assert_eq!(r["extra"], 0, "{r:#}");
        let d = &r["diffs"][0];
        assert_eq!(d["window_start"], format_nanos(revised.time), "{r:#}");
        assert_eq!((&d["different"], &d["missing"]), (&1.into(), &0.into()));
        assert_eq!(d["repaired"], true);
        assert_equal(&p, b, &s).await;
    }
    let again = ok_json(&p, &["reconcile", "--json"]);
    for b in ["backup1", "backup2"] {
        let r = reconciled(&again, b);
        assert_eq!(r["differing"], 0, "nothing left: {r:#}");
        assert_eq!(r["windows"], 20, "every window compared: {r:#}");
        assert_eq!(r["rewritten"], 0, "{r:#}");
    }
    let recorded = p.history().reconciles(false, 0).unwrap();
    assert_eq!(recorded.len(), 6, "three runs × two backups: {recorded:#?}");
    assert_eq!(
        recorded.iter().map(|r| r.counts.rewritten).sum::<u64>(),
        2,
        "{recorded:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_within_lookback_is_copied_by_the_next_ordinary_sync() {
    let p = Project::with_sync(&sync_yaml(100, 2, "").replace(
        "    initial_days: 3650\n",
        "    initial_days: 3650\n    lookback: 2h\n",
    ));
    let s = SeriesKey::new("US.AAPL", "1m");
    let now = dms::model::now_nanos() / (60 * NANOS_PER_SEC) * (60 * NANOS_PER_SEC);
    let points = bars("US.AAPL", "1m", 180, now, 60 * NANOS_PER_SEC);
    put(&*p.node("primary"), points.clone()).await;
    ok_json(&p, &["sync", "--json"]);
    // The bar of 30 minutes ago is revised; the newest is not.
    put(
        &*p.node("primary"),
        vec![nudged(&points[149], "close", 0.05)],
    )
    .await;
    let units = ok_json(&p, &["sync", "--json"]);
    for b in ["backup1", "backup2"] {
        let u = unit(&units, b).unwrap();
        assert_eq!(u["records"], 121, "two hours re-read: {u:#}");
        assert_eq!(
            u["window_start"],
            format_nanos(now - 2 * 3600 * NANOS_PER_SEC),
            "{u:#}"
        );
        assert_equal(&p, b, &s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_filled_bars_older_than_the_checkpoint_are_copied_by_reconcile() {
    let p = Project::new();
    let s = aapl();
    let points = daily_to(30, today());
    let gap: Vec<Point> = points[10..13].to_vec();
    let present: Vec<Point> = [&points[..10], &points[13..]].concat();
    put(&*p.node("primary"), present).await;
    ok_json(&p, &["sync", "--json"]);
    // A late import fills three old days on the primary.
    put(&*p.node("primary"), gap.clone()).await;
    let (code, rows) = status(&p);
    assert_eq!(code, 0, "the tips are unchanged: {rows:#?}");
    let none = ok_json(&p, &["sync", "--only-behind", "--json"]);
    assert_eq!(
        none["history"],
        serde_json::json!([]),
        "nothing new at the tip"
    );

    let run = ok_json(&p, &["reconcile", "--json"]);
    for b in ["backup1", "backup2"] {
        let r = reconciled(&run, b);
        assert_eq!(r["differing"], 3, "{r:#}");
        assert_eq!(r["repaired"], 3, "{r:#}");
        assert_eq!(r["rewritten"], 3, "{r:#}");
        let starts: Vec<&Value> = r["diffs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| &d["window_start"])
            .collect();
        let expected: Vec<Value> = gap.iter().map(|g| format_nanos(g.time).into()).collect();
        assert_eq!(starts, expected.iter().collect::<Vec<_>>(), "{r:#}");
        assert!(
            r["diffs"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["missing"] == 1 && d["different"] == 0)
        );
        assert_equal(&p, b, &s).await;
    }
    assert!(p.cli(&["verify"]).status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raising_initial_days_back_fills_the_older_range_on_reconcile() {
    let yaml = |days: u32| {
        sync_yaml(100, 2, "").replace(
            "    initial_days: 3650\n",
            &format!("    initial_days: {days}\n"),
        )
    };
    let p = Project::with_sync(&yaml(5));
    let s = aapl();
    let today = today();
    put(&*p.node("primary"), daily_to(30, today)).await;
    ok_json(&p, &["sync", "--json"]);
    for b in ["backup1", "backup2"] {
        let held = all(&*p.node(b), &s).await;
        assert_eq!(held.len(), 5, "{b}: the last 5 days only");
        assert_eq!(held[0].time, today - 4 * DAY);
    }
    let (code, rows) = status(&p);
    assert_eq!(code, 0, "{rows:#?}");

    // The operator raises initial_days for long backtests.
    p.write("config/sync.yaml", &yaml(40));
    let run = ok_json(&p, &["reconcile", "--json"]);
    for b in ["backup1", "backup2"] {
        let r = reconciled(&run, b);
        assert_eq!(r["differing"], 25, "{r:#}");
        assert_eq!(r["rewritten"], 25, "{r:#}");
        assert_eq!(r["repaired"], 25, "{r:#}");
        assert_equal(&p, b, &s).await;
    }
    let out = p.cli(&["verify"]);
    assert!(out.status.success(), "{}", text(&out));
    let again = ok_json(&p, &["reconcile", "--json"]);
    assert_eq!(reconciled(&again, "backup1")["differing"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_deleted_on_the_primary_is_reported_extra_then_mirrored_inside_the_range_only() {
    let p = Project::new();
    let s = aapl();
    let points = daily_to(20, today());
    put(&*p.node("primary"), points.clone()).await;
    // Another symbol with bars at the same times: untouched by the delete.
    let msft = SeriesKey::new("US.MSFT", "1d");
    put(&*p.node("primary"), bars("US.MSFT", "1d", 20, today(), DAY)).await;
    ok_json(&p, &["sync", "--json"]);
    // backup1 also holds what dms never synced: a bar older than initial_days, and a series
    // the primary does not have.
    let ancient = bars("US.AAPL", "1d", 1, Y1990, DAY);
    let other = SeriesKey::new("US.GONE", "1d");
    let gone = bars("US.GONE", "1d", 3, today(), DAY);
    put(&*p.node("backup1"), ancient.clone()).await;
    put(&*p.node("backup1"), gone.clone()).await;

    let victim = points[9].time;
    p.node("primary").delete(&s, &[victim]).await.unwrap();
    assert_eq!(all(&*p.node("primary"), &s).await.len(), 19);

    // mirror_deletes off: reported as extra, kept; verify passes unless --strict. backup1's
    // series the primary lacks is reported too (three windows of extra points).
    let run = ok_json(&p, &["reconcile", "--json"]);
    for (b, gone_windows) in [("backup1", 3), ("backup2", 0)] {
        let r = reconciled(&run, b);
        assert_eq!(r["differing"], 1 + gone_windows, "{r:#}");
        assert_eq!(r["extra"], 1 + gone_windows, "{r:#}");
        assert_eq!(r["deleted"], 0, "{r:#}");
        assert_eq!(r["rewritten"], 0, "{r:#}");
        assert_eq!(r["diffs"][0]["window_start"], format_nanos(victim), "{r:#}");
        assert_eq!(r["diffs"][0]["extra"], 1, "{r:#}");
        assert!(
            all(&*p.node(b), &s)
                .await
                .iter()
                .any(|pt| pt.time == victim)
        );
    }
    let out = p.cli(&["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("extra"),
        "{}",
        text(&out)
    );
    let out = p.cli(&["verify", "--strict"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // mirror_deletes on: removed from both backups, and nothing else.
    p.write(
        "config/sync.yaml",
        &sync_yaml(100, 2, "reconcile:\n  mirror_deletes: true\n"),
    );
    // The series only backup1 holds is reported, never deleted: its points are the only
    // copies there are (the primary may have lost it).
    let run = ok_json(&p, &["reconcile", "--json"]);
    for (b, gone_windows) in [("backup1", 3), ("backup2", 0)] {
        let r = reconciled(&run, b);
        assert_eq!(r["differing"], 1 + gone_windows, "{r:#}");
        assert_eq!(r["deleted"], 1, "{r:#}");
        assert_eq!(r["extra"], gone_windows, "{r:#}");
        assert_eq!(r["diffs"][0]["repaired"], true, "{r:#}");
    }
    assert_equal(&p, "backup2", &s).await;
    for b in ["backup1", "backup2"] {
        assert_equal(&p, b, &msft).await;
        assert_eq!(all(&*p.node(b), &msft).await.len(), 20, "{b}");
    }
    let mut expected = ancient.clone();
    expected.extend(all(&*p.node("primary"), &s).await);
    assert_eq!(
        all(&*p.node("backup1"), &s).await,
        expected,
        "backup1 equals the primary inside the range and keeps its 1990 bar"
    );
    assert_eq!(
        all(&*p.node("backup1"), &other).await,
        gone,
        "a series the primary lacks is not touched"
    );
    let out = p.cli(&["verify", "--strict", "--symbol", "US.AAPL"]);
    assert!(out.status.success(), "{}", text(&out));
    let again = ok_json(&p, &["reconcile", "--json", "--symbol", "US.AAPL"]);
    assert_eq!(reconciled(&again, "backup1")["differing"], 0);
}

/// A project whose primary's newest daily bar was deleted after a sync (a vendor retracts
/// today's bar): the backups hold one bar more than the primary, at the tip.
async fn newest_retracted(p: &Project) -> (SeriesKey, Nanos, Nanos) {
    let s = aapl();
    let points = daily_to(20, today());
    put(&*p.node("primary"), points.clone()).await;
    ok_json(p, &["sync", "--json"]);
    let (newest, before) = (points[19].time, points[18].time);
    p.node("primary").delete(&s, &[newest]).await.unwrap();
    (s, newest, before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_holding_a_bar_the_primary_retracted_at_the_tip_gives_the_check_loop_nothing_to_run()
 {
    let p = Project::new();
    let (s, newest, before) = newest_retracted(&p).await;
    let (_, rows) = status(&p);
    for b in ["backup1", "backup2"] {
        let r = row(&rows, b, &s);
        assert_ne!(
            r["state"], "current",
            "the backup holds a bar the primary lacks: {r:#}"
        );
        assert_eq!(r["backup_newest"], format_nanos(newest), "{r:#}");
        assert_eq!(r["primary_newest"], format_nanos(before), "{r:#}");
    }
    // Nothing on the primary is newer than what the backups hold: the check loop has
    // nothing to copy, and must not plan (and record) an empty sync pass after pass.
    for _ in 0..2 {
        let units = ok_json(&p, &["sync", "--only-behind", "--json"]);
        assert_eq!(units["history"], serde_json::json!([]), "no unit to run");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_deletes_never_reaches_past_the_primarys_newest_point() {
    // The primary's newest bar is gone: retracted, or the primary lost its last day. Either
    // way the backups hold the only copy, and mirror_deletes keeps it (reported as extra).
    let p = Project::with_sync(&sync_yaml(100, 2, "reconcile:\n  mirror_deletes: true\n"));
    let (s, newest, _) = newest_retracted(&p).await;
    let run = ok_json(&p, &["reconcile", "--json"]);
    for b in ["backup1", "backup2"] {
        let r = reconciled(&run, b);
        assert_eq!(
            (&r["differing"], &r["deleted"], &r["extra"]),
            (&1.into(), &0.into(), &1.into()),
            "{r:#}"
        );
        let held = all(&*p.node(b), &s).await;
        assert!(held.iter().any(|pt| pt.time == newest), "{b} keeps it");
        assert_eq!(checkpoint(&p, b, &s), Some(newest), "{b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_deletes_of_the_backups_newest_bar_moves_its_checkpoint_back_without_a_rewind() {
    let p = Project::with_sync(&sync_yaml(100, 2, "reconcile:\n  mirror_deletes: true\n"));
    let (s, newest, before) = newest_retracted(&p).await;
    // The primary goes on with the next bar: the retracted one was a correction, and the
    // primary's newest point is past it, so mirroring its delete is allowed.
    put(&*p.node("primary"), daily_to(1, newest + DAY)).await;
    let run = ok_json(&p, &["reconcile", "--json"]);
    for b in ["backup1", "backup2"] {
        let r = reconciled(&run, b);
        assert_eq!(
            (&r["differing"], &r["deleted"]),
            (&1.into(), &1.into()),
            "{r:#}"
        );
        assert!(
            !all(&*p.node(b), &s)
                .await
                .iter()
                .any(|pt| pt.time == newest),
            "{b}: the retracted bar is gone"
        );
        assert_eq!(
            checkpoint(&p, b, &s),
            Some(before),
            "{b}: a checkpoint is never ahead of what its backup holds (ARCHITECTURE.md), \
             also after reconcile deleted the backup's newest point"
        );
    }
    let units = ok_json(&p, &["sync", "--only-behind", "--json"]);
    assert_eq!(
        units["history"].as_array().map(Vec::len),
        Some(2),
        "{units:#}"
    );
    let (code, rows) = status(&p);
    assert_eq!(code, 0, "{rows:#?}");
    assert!(rows.iter().all(|r| r["state"] == "current"), "{rows:#?}");
    for b in ["backup1", "backup2"] {
        assert!(
            rewound(&p, b).is_empty(),
            "{b}: dms's own delete is not a restore to alert about: {:#?}",
            rewound(&p, b)
        );
        assert_equal(&p, b, &s).await;
    }
}

/// `n` daily bars of `symbol` ending today, with the bars at `gap` indexes held back.
fn with_gap(symbol: &str, n: usize, gap: std::ops::Range<usize>) -> (Vec<Point>, Vec<Point>) {
    let points = bars(symbol, "1d", n, today(), DAY);
    let held_back = points[gap.clone()].to_vec();
    let present = [&points[..gap.start], &points[gap.end..]].concat();
    (present, held_back)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_filters_compare_and_repair_only_what_they_name() {
    let p = Project::new();
    let (aapl_present, aapl_gap) = with_gap("US.AAPL", 30, 10..13);
    let (msft_present, msft_gap) = with_gap("US.MSFT", 30, 10..13);
    put(&*p.node("primary"), aapl_present).await;
    put(&*p.node("primary"), msft_present).await;
    ok_json(&p, &["sync", "--json"]);
    put(&*p.node("primary"), aapl_gap.clone()).await;
    put(&*p.node("primary"), msft_gap).await;
    let (aapl, msft) = (aapl(), SeriesKey::new("US.MSFT", "1d"));

    // One backup, one symbol, one day.
    let day = format_nanos(aapl_gap[1].time);
    let run = ok_json(
        &p,
        &[
            "reconcile",
            "--backup",
            "backup1",
            "--symbol",
            "US.AAPL",
            "--since",
            &day,
            "--until",
            &day,
            "--json",
        ],
    );
    let backups = run["report"]["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 1, "{run:#}");
    let r = reconciled(&run, "backup1");
    assert_eq!(r["series"], 1, "{r:#}");
    assert_eq!(r["windows"], 1, "{r:#}");
    assert_eq!(r["rewritten"], 1, "{r:#}");
    let held = all(&*p.node("backup1"), &aapl).await;
    assert!(held.iter().any(|pt| pt.time == aapl_gap[1].time));
    assert!(!held.iter().any(|pt| pt.time == aapl_gap[0].time));
    assert!(!held.iter().any(|pt| pt.time == aapl_gap[2].time));
    assert_eq!(all(&*p.node("backup1"), &msft).await.len(), 27);
    assert_eq!(all(&*p.node("backup2"), &aapl).await.len(), 27);

    // Everything else.
    let run = ok_json(&p, &["reconcile", "--json"]);
    assert_eq!(reconciled(&run, "backup1")["rewritten"], 5, "{run:#}");
    assert_eq!(reconciled(&run, "backup2")["rewritten"], 6, "{run:#}");
    for b in ["backup1", "backup2"] {
        assert_equal(&p, b, &aapl).await;
        assert_equal(&p, b, &msft).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_reconcile_task_repairs_back_filled_bars_from_lua() {
    let p = Project::new();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    p.write(
        "scripts/reconcile.lua",
        &std::fs::read_to_string(repo.join("scripts/reconcile.lua")).unwrap(),
    );
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: reconcile_weekly\n    sync_backups: false\n    \
         script: scripts/reconcile.lua\n    params: {days: 40}\n    timeout: 60\n",
    );
    let s = aapl();
    let (present, gap) = with_gap("US.AAPL", 30, 10..13);
    put(&*p.node("primary"), present).await;
    ok_json(&p, &["sync", "--json"]);
    put(&*p.node("primary"), gap).await;

    let out = p.cli(&["task", "run", "reconcile_weekly", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    for b in ["backup1", "backup2"] {
        assert_equal(&p, b, &s).await;
    }
    let recorded = p.history().reconciles(true, 0).unwrap();
    assert_eq!(recorded.len(), 2, "{recorded:#?}");
    for r in &recorded {
        assert_eq!(
            (r.counts.differing, r.counts.rewritten),
            (3, 3),
            "{recorded:#?}"
        );
    }
}

/// Minute bars of US.AAPL, the last one at `end`.
fn minutes_to(n: usize, end: Nanos) -> Vec<Point> {
    bars("US.AAPL", "1m", n, end, 60 * NANOS_PER_SEC)
}

/// Now, rounded down to the minute.
fn this_minute() -> Nanos {
    let m = 60 * NANOS_PER_SEC;
    dms::model::now_nanos() / m * m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bar_dated_tomorrow_within_the_tolerance_never_stops_later_bars() {
    let p = Project::new();
    let s = SeriesKey::new("US.AAPL", "1m");
    let minute = 60 * NANOS_PER_SEC;
    let now = this_minute();
    put(&*p.node("primary"), minutes_to(30, now - 40 * minute)).await;
    ok_json(&p, &["sync", "--json"]);
    // A bar stamped tomorrow: inside the default future_tolerance of two days, so copied —
    // but the checkpoint stays at or before now.
    let tomorrow = now + DAY;
    put(&*p.node("primary"), minutes_to(1, tomorrow)).await;
    ok_json(&p, &["sync", "--json"]);
    for b in ["backup1", "backup2"] {
        let cp = checkpoint(&p, b, &s).expect("a checkpoint");
        assert!(
            cp <= dms::model::now_nanos(),
            "{b}: checkpoint {} passed now",
            format_nanos(cp)
        );
        assert_eq!(cp, now - 40 * minute, "{b}");
        assert_equal(&p, b, &s).await;
    }
    // Real bars arrive after it, stamped before it: lag is seen and the check loop copies them.
    put(&*p.node("primary"), minutes_to(20, now - 5 * minute)).await;
    let (_, rows) = status(&p);
    for b in ["backup1", "backup2"] {
        let r = row(&rows, b, &s);
        assert_eq!(r["state"], "lagging", "{r:#}");
        assert_eq!(r["primary_newest"], format_nanos(now - 5 * minute), "{r:#}");
        assert!(
            r["future"].is_null(),
            "tomorrow is within the tolerance: {r:#}"
        );
    }
    ok_json(&p, &["sync", "--only-behind", "--json"]);
    for b in ["backup1", "backup2"] {
        assert_eq!(checkpoint(&p, b, &s), Some(now - 5 * minute), "{b}");
        assert_equal(&p, b, &s).await;
    }
    let (code, rows) = status(&p);
    assert_eq!(code, 0, "{rows:#?}");
    for b in ["backup1", "backup2"] {
        assert_eq!(row(&rows, b, &s)["state"], "current");
    }
    // Tomorrow's bar deleted on the primary: verify sees the backups still hold it.
    p.node("primary")
        .delete(&s, &[tomorrow])
        .await
        .expect("delete");
    let out = p.cli(&["verify", "--json", "--strict", "--window", "1h"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let found = json(&out);
    let extra: Vec<&Value> = found
        .as_array()
        .expect("rows")
        .iter()
        .filter(|m| m["extra"] == 1)
        .collect();
    assert_eq!(
        extra.len(),
        2,
        "both backups keep tomorrow's bar: {found:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_labels_a_window_from_its_content_and_fails_on_any_changed_or_missing_point() {
    let p = Project::new();
    let s = SeriesKey::new("US.AAPL", "1m");
    let hour = 3_600 * NANOS_PER_SEC;
    let minute = 60 * NANOS_PER_SEC;
    let end = this_minute() / hour * hour - minute; // the last minute of an hour
    let points = minutes_to(180, end);
    put(&*p.node("primary"), points.clone()).await;
    ok_json(&p, &["sync", "--json"]);
    let backup = p.node("backup1");
    // First hour: one value changed and one extra bar (same count as the primary: a label
    // from counts would call it "extra" and pass).
    let first = &points[..60];
    put(&*backup, vec![nudged(&first[10], "close", 0.5)]).await;
    backup.delete(&s, &[first[20].time]).await.expect("delete");
    put(&*backup, minutes_to(1, first[20].time + NANOS_PER_SEC)).await;
    // Second hour: only an extra bar.
    let second = &points[60..120];
    put(&*backup, minutes_to(1, second[5].time + NANOS_PER_SEC)).await;
    // Third hour: one bar missing.
    let third = &points[120..];
    backup.delete(&s, &[third[30].time]).await.expect("delete");

    let out = p.cli(&["verify", "--json", "--window", "1h"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let rows = json(&out);
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let at = |t: Nanos| {
        rows.iter()
            .find(|m| {
                let start = dms::model::parse_time(m["window_start"].as_str().unwrap()).unwrap();
                start <= t && t < start + hour
            })
            .unwrap_or_else(|| panic!("no row for {}: {rows:#?}", format_nanos(t)))
    };
    let m = at(first[0].time);
    assert_eq!(
        (
            m["kind"].as_str(),
            m["different"].as_u64(),
            m["missing"].as_u64(),
            m["extra"].as_u64()
        ),
        (Some("different"), Some(1), Some(1), Some(1)),
        "{m:#}"
    );
    let m = at(second[0].time);
    assert_eq!(
        (m["kind"].as_str(), m["extra"].as_u64()),
        (Some("extra"), Some(1)),
        "{m:#}"
    );
    let m = at(third[0].time);
    assert_eq!(
        (m["kind"].as_str(), m["missing"].as_u64()),
        (Some("missing"), Some(1)),
        "{m:#}"
    );
    // Only the extra window left: exit 0 without --strict, 1 with it.
    let repaired = p.cli(&["verify", "--repair", "--window", "1h"]);
    assert_eq!(repaired.status.code(), Some(0), "{}", text(&repaired));
    assert_eq!(p.cli(&["verify", "--window", "1h"]).status.code(), Some(0));
    assert_eq!(
        p.cli(&["verify", "--strict", "--window", "1h"])
            .status
            .code(),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_series_only_a_backup_holds_is_reported_by_verify_and_reconcile() {
    let p = Project::new();
    let today = today();
    put(&*p.node("primary"), daily_to(10, today)).await;
    ok_json(&p, &["sync", "--json"]);
    // A series deleted on the primary long ago, or written to the backup by hand.
    let gone = SeriesKey::new("US.GONE", "1d");
    put(&*p.node("backup1"), bars("US.GONE", "1d", 5, today, DAY)).await;
    let out = p.cli(&["verify", "--json", "--strict"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let found = json(&out);
    assert!(
        found
            .as_array()
            .expect("rows")
            .iter()
            .any(|m| m["symbol"] == *gone.symbol
                && m["backup"] == "backup1"
                && m["kind"] == "extra"),
        "{found:#}"
    );
    let run = ok_json(&p, &["reconcile", "--json"]);
    let r = reconciled(&run, "backup1");
    assert_eq!(r["extra"], 5, "{r:#}");
    assert_eq!(
        all(&*p.node("backup1"), &gone).await.len(),
        5,
        "kept: mirror_deletes is off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_left_behind_by_an_interrupted_full_sync_hides_no_missing_day() {
    use dms::ledger::{CheckpointUpdate, Commit, Ledger, Status, SyncMode, UnitStart};
    let p = Project::new();
    let s = aapl();
    let today = today();
    let points = daily_to(60, today);
    put(&*p.node("primary"), points.clone()).await;
    ok_json(&p, &["sync", "--json"]);
    // backup1 loses twenty days in the middle; a full resync then stops after its first
    // batch, leaving the checkpoint there (full mode sets it, even backwards).
    let lost: Vec<Nanos> = points[20..40].iter().map(|p| p.time).collect();
    p.node("backup1").delete(&s, &lost).await.expect("delete");
    {
        let settings = p.settings();
        let h = dms::history::History::open(
            &settings.history.path,
            "test",
            settings.history.busy_timeout,
        )
        .expect("history");
        let key = dms::model::BackupSeries::new("backup1", s.clone());
        let row = h
            .begin_unit(UnitStart {
                run_id: None,
                key: key.clone(),
                mode: SyncMode::Full,
                window_start: points[0].time,
                window_end: today,
            })
            .await
            .expect("row");
        h.commit_batch(Commit {
            row_id: row,
            key: key.clone(),
            records: 10,
            checkpoint: Some(points[9].time),
            update: CheckpointUpdate::Set,
            synced_from: None,
        })
        .await
        .expect("commit");
        h.finish_unit(row, key, Status::Interrupted, Some("interrupted".into()))
            .await
            .expect("finish");
    }
    assert_eq!(checkpoint(&p, "backup1", &s), Some(points[9].time));
    // Both comparisons see past the checkpoint.
    let out = p.cli(&["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let missing: u64 = json(&out)
        .as_array()
        .expect("rows")
        .iter()
        .filter(|m| m["backup"] == "backup1")
        .map(|m| m["missing"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(missing, 20, "every lost day is seen");
    let run = ok_json(&p, &["reconcile", "--json"]);
    assert!(
        reconciled(&run, "backup1")["differing"].as_u64() > Some(0),
        "{run:#}"
    );
    assert_equal(&p, "backup1", &s).await;
}

/// A daily bar of `symbol` with these fields and extra tags.
fn custom(
    symbol: &str,
    time: Nanos,
    extra: &[(&str, &str)],
    fields: Vec<(&str, FieldValue)>,
) -> Point {
    let schema = dms::schema::Schema::default();
    let (measurement, tags) = schema.identity(&SeriesKey::new(symbol, "1d"));
    let mut tags = tags.to_vec();
    for (k, v) in extra {
        tags.push((std::sync::Arc::from(*k), std::sync::Arc::from(*v)));
    }
    tags.sort();
    Point {
        measurement,
        tags: tags.into(),
        fields: fields
            .into_iter()
            .map(|(k, v)| (std::sync::Arc::from(k), v))
            .collect(),
        time,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_sees_retyped_retagged_tiny_and_non_finite_changes_in_old_windows() {
    use FieldValue::{Float, Integer};
    // mirror_deletes: the re-tagged bar's old tag set must go for the window to be equal.
    let p = Project::with_sync(&sync_yaml(100, 2, "reconcile:\n  mirror_deletes: true\n"));
    let today = today();
    let s = SeriesKey::new("US.BIG", "1d");
    // Sixty daily bars with a large-magnitude float, an integer and a venue tag.
    let bar = |i: i64, venue: &str, big: f64, n: FieldValue| {
        custom(
            "US.BIG",
            today - (60 - i) * DAY,
            &[("venue", venue)],
            vec![
                ("close", Float(10.0 + i as f64)),
                ("big", Float(big)),
                ("n", n),
            ],
        )
    };
    let points: Vec<Point> = (0..60)
        .map(|i| bar(i, "X", 1.0e9 + i as f64 * 0.37, Integer(i)))
        .collect();
    put(&*p.node("primary"), points.clone()).await;
    ok_json(&p, &["sync", "--json"]);
    let backup = p.node("backup1");
    // Day 5: an integer field rewritten as the float of the same value.
    put(&*backup, vec![bar(5, "X", 1.0e9 + 5.0 * 0.37, Float(5.0))]).await;
    backup
        .replace(
            &s,
            &[points[5].time],
            std::sync::Arc::new(dms::model::Batch::new(vec![bar(
                5,
                "X",
                1.0e9 + 5.0 * 0.37,
                Float(5.0),
            )])),
        )
        .await
        .expect("retype");
    // Day 10: the bar moved to another value of the extra tag.
    backup
        .replace(
            &s,
            &[points[10].time],
            std::sync::Arc::new(dms::model::Batch::new(vec![bar(
                10,
                "Y",
                1.0e9 + 10.0 * 0.37,
                Integer(10),
            )])),
        )
        .await
        .expect("retag");
    // Day 20: a change of a few units in the last bits of a value near 1e9.
    let nudged_big = f64::from_bits((1.0e9 + 20.0 * 0.37_f64).to_bits() + 3);
    put(&*backup, vec![bar(20, "X", nudged_big, Integer(20))]).await;
    // Day 30: an infinity on every node, and a changed integer next to it on backup1.
    // Day 40: an infinity on every node and nothing else: equal after an exact read.
    for node in ["primary", "backup2"] {
        put(
            &*p.node(node),
            vec![
                bar(30, "X", f64::INFINITY, Integer(30)),
                bar(40, "X", f64::INFINITY, Integer(40)),
            ],
        )
        .await;
    }
    put(&*backup, vec![bar(30, "X", f64::INFINITY, Integer(31))]).await;
    put(&*backup, vec![bar(40, "X", f64::INFINITY, Integer(40))]).await;

    let out = p.cli(&["reconcile", "--json", "--dry-run", "--symbol", "US.BIG"]);
    assert!(out.status.code().is_some(), "{}", text(&out));
    let run = json(&out);
    let r = reconciled(&run, "backup1");
    let starts: Vec<&str> = r["diffs"]
        .as_array()
        .expect("diffs")
        .iter()
        .filter_map(|d| d["window_start"].as_str())
        .collect();
    for day in [5, 10, 20, 30] {
        assert!(
            starts.contains(&format_nanos(points[day].time).as_str()),
            "day {day} not found: {r:#}"
        );
    }
    assert_eq!(
        r["differing"], 4,
        "day 40 is equal once read exactly: {r:#}"
    );
    assert_eq!(reconciled(&run, "backup2")["differing"], 0);
    // Repaired for real, then nothing differs.
    let run = ok_json(&p, &["reconcile", "--json", "--symbol", "US.BIG"]);
    assert_eq!(reconciled(&run, "backup1")["repaired"], 4, "{run:#}");
    let out = p.cli(&["verify", "--strict", "--symbol", "US.BIG"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budgeted_pass_resumes_where_the_last_one_stopped_and_says_it_was_cut_short() {
    // A budget so small that each pass compares one chunk (64 series) and stops.
    let p = Project::with_sync(&sync_yaml(100, 2, "reconcile:\n  budget: 0.000001\n"));
    let today = today();
    let symbols: Vec<String> = (0..150).map(|i| format!("S{i:03}")).collect();
    let mut all_bars = Vec::new();
    for sym in &symbols {
        all_bars.extend(bars(sym, "1d", 4, today, DAY));
    }
    put(&*p.node("primary"), all_bars).await;
    ok_json(&p, &["sync", "--json"]);
    // A revision in an old bar of the last series, on backup1 only.
    let last = SeriesKey::new("S149", "1d");
    let old = all(&*p.node("primary"), &last).await[1].clone();
    put(&*p.node("backup1"), vec![nudged(&old, "close", 0.25)]).await;
    let mut found = 0;
    let mut starts = Vec::new();
    for pass in 0..3 {
        let out = p.cli(&["reconcile", "--pass", "recent", "--json"]);
        let run = json(&out);
        let report = &run["report"];
        starts.push(report["resume_from"].clone());
        if pass < 2 {
            assert_eq!(report["complete"], false, "pass {pass}: {report:#}");
            assert!(report["resume_from"].is_object(), "pass {pass}: {report:#}");
        }
        found += reconciled(&run, "backup1")["differing"]
            .as_u64()
            .unwrap_or(0);
    }
    assert_eq!(
        found, 1,
        "the third pass reaches the last series: {starts:?}"
    );
    assert_ne!(
        starts[0], starts[1],
        "each pass starts where the last one stopped"
    );
    let runs = p.history().runs(Some("@reconcile"), 10).expect("runs");
    assert!(
        runs.iter()
            .any(|r| r.warning.as_deref().is_some_and(|w| w.contains("budget"))),
        "a cut-short pass says so in its run: {runs:#?}"
    );
    assert_equal(&p, "backup1", &last).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_series_is_compared_over_the_range_of_the_task_that_maintains_it() {
    // The global initial_days is 10; the task that maintains US.AAPL keeps 40 days.
    let p = Project::with_sync(
        &sync_yaml(100, 2, "").replace("initial_days: 3650", "initial_days: 10"),
    );
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: long\n    schedule: \"0 0 1 1 *\"\n    script: scripts/long.lua\n    initial_days: 40\n",
    );
    p.write(
        "scripts/long.lua",
        "function symbols() return {'US.AAPL'} end\nfunction intervals() return {'1d'} end\n",
    );
    let s = aapl();
    let points = daily_to(40, today());
    put(&*p.node("primary"), points.clone()).await;
    let out = p.cli(&["task", "run", "long"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        all(&*p.node("backup1"), &s).await.len(),
        40,
        "the task copied 40 days"
    );
    // A revision 30 days back on backup1: outside the global range, inside the task's.
    put(&*p.node("backup1"), vec![nudged(&points[10], "close", 0.5)]).await;
    let out = p.cli(&["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let run = ok_json(&p, &["reconcile", "--json"]);
    assert_eq!(reconciled(&run, "backup1")["differing"], 1, "{run:#}");
    assert_equal(&p, "backup1", &s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_exact_finds_what_no_digest_sees() {
    use FieldValue::{Boolean, Float, Integer, String as Str};
    let p = Project::new();
    let today = today();
    let s = SeriesKey::new("US.TXT", "1d");
    let bar = |i: i64, status: &str, halted: bool, volume: i64| {
        custom(
            "US.TXT",
            today - (30 - i) * DAY,
            &[],
            vec![
                ("close", Float(10.0 + i as f64)),
                ("volume", Integer(volume)),
                ("status", Str(status.into())),
                ("halted", Boolean(halted)),
            ],
        )
    };
    let points: Vec<Point> = (0..30).map(|i| bar(i, "open", false, 100 + i)).collect();
    put(&*p.node("primary"), points.clone()).await;
    ok_json(&p, &["sync", "--json"]);
    let backup = p.node("backup1");
    // A string revised, a boolean flipped, and two bars' volumes swapped inside one weekly
    // window: every count and sum stays the same.
    put(&*backup, vec![bar(3, "closed", false, 103)]).await;
    put(&*backup, vec![bar(9, "open", true, 109)]).await;
    let week = 7 * DAY;
    let i = (15..29)
        .find(|&i| {
            dms::node::digest::window_start(points[i].time, week)
                == dms::node::digest::window_start(points[i + 1].time, week)
        })
        .expect("two days in one week");
    let (a, b) = (i as i64, i as i64 + 1);
    put(
        &*backup,
        vec![
            bar(a, "open", false, 100 + b),
            bar(b, "open", false, 100 + a),
        ],
    )
    .await;
    p.write(
        "config/sync.yaml",
        &sync_yaml(100, 2, "reconcile:\n  window: 7d\n"),
    );
    // Digests only count strings and booleans: every window holding them is read, so the
    // complete reconcile finds all three changes (the swap too, in a window with strings).
    let out = p.cli(&["reconcile", "--json", "--dry-run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let digests = json(&out);
    let found = reconciled(&digests, "backup1");
    let different: u64 = found["diffs"]
        .as_array()
        .expect("diffs")
        .iter()
        .map(|d| d["different"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(different, 4, "{found:#}");
    let out = p.cli(&["reconcile", "--json", "--exact", "--dry-run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let exact = json(&out);
    let found = reconciled(&exact, "backup1");
    let different: u64 = found["diffs"]
        .as_array()
        .expect("diffs")
        .iter()
        .map(|d| d["different"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(different, 4, "{found:#}");
    ok_json(&p, &["reconcile", "--json", "--exact"]);
    assert_equal(&p, "backup1", &s).await;
}
