//! `dms restore` on real SQLite stores, through the real binary, the API and a task's Lua: a
//! symbol dropped on the primary comes back exactly, a primary wiped entirely comes back from
//! one backup, a fresh node is filled from a backup, a dry run writes nothing, points the
//! target holds with other values are kept unless `--overwrite`, a restore killed at random
//! moments converges when run again, and requests naming nodes it cannot use are refused with
//! exit 2. No checkpoint of the normal sync moves.

use crate::helper::project::{Project, all, bars, put};
use dms::model::{BackupSeries, FieldValue, NANOS_PER_DAY, NANOS_PER_SEC, Nanos, Point, SeriesKey};
use dms::node::Node;
use serde_json::Value;
use std::collections::HashMap;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MINUTE: Nanos = 60 * NANOS_PER_SEC;
const SYMBOLS: [&str; 3] = ["US.AAPL", "US.MSFT", "US X'\"odd"];

/// Primary and three SQLite backups (`backup3` never synced: a fresh node), a disabled
/// `archive`, `extra` at the top level.
fn yaml(batch: usize, extra: &str) -> String {
    format!(
        r#"sync:
  incremental:
    batch_size: {batch}
    initial_days: 3650
    scope: all
  performance:
    max_workers: 3
  retry_times: 2
  retry_delay: 0.05
nodes:
  primary: {{name: primary, type: sqlite, path: run/primary.db}}
  backups:
    - {{name: backup1, type: sqlite, path: run/backup1.db}}
    - {{name: backup2, type: sqlite, path: run/backup2.db}}
    - {{name: backup3, type: sqlite, path: run/backup3.db}}
    - {{name: archive, type: sqlite, path: run/archive.db, enabled: false}}
history:
  path: run/db/sync_history.db
scripts:
  memory_limit_mb: 32
{extra}"#
    )
}

/// Every series the tests seed: daily and minute bars of each symbol.
fn series() -> Vec<SeriesKey> {
    let mut v = Vec::new();
    for s in SYMBOLS {
        for i in ["1d", "1m"] {
            v.push(SeriesKey::new(s, i));
        }
    }
    v
}

/// A project whose primary holds `days` daily and `minutes` minute bars of each symbol, synced
/// to backup1 and backup2 by `dms sync --backup …`.
async fn seeded(batch: usize, days: usize, minutes: usize, extra: &str) -> Project {
    let p = Project::with_sync(&yaml(batch, extra));
    let today = dms::model::now_nanos() / NANOS_PER_DAY * NANOS_PER_DAY;
    let primary = p.node("primary");
    for s in SYMBOLS {
        put(primary.as_ref(), bars(s, "1d", days, today, NANOS_PER_DAY)).await;
        put(primary.as_ref(), bars(s, "1m", minutes, today, MINUTE)).await;
    }
    drop(primary);
    let out = p.cli(&["sync", "--backup", "backup1", "--backup", "backup2"]);
    assert!(out.status.success(), "{}", text(&out));
    p
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `dms restore ARGS… --json`: the exit code and the run.
fn restore_json(p: &Project, args: &[&str]) -> (i32, Value) {
    let mut a = vec!["restore"];
    a.extend_from_slice(args);
    a.push("--json");
    let out = p.cli(&a);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (out.status.code().unwrap_or(-1), v)
}

/// Every point of every seeded series on a node.
async fn snapshot(node: &dyn Node) -> HashMap<SeriesKey, Vec<Point>> {
    let mut m = HashMap::new();
    for s in series() {
        m.insert(s.clone(), all(node, &s).await);
    }
    m
}

/// `node` holds exactly `expected`, series by series.
async fn assert_holds(node: &dyn Node, expected: &HashMap<SeriesKey, Vec<Point>>) {
    for (s, points) in expected {
        let held = all(node, s).await;
        assert_eq!(held.len(), points.len(), "{} {s}: point count", node.name());
        assert!(held == *points, "{} {s}: the points differ", node.name());
    }
}

fn checkpoints(p: &Project) -> HashMap<BackupSeries, Nanos> {
    p.history().checkpoints().expect("checkpoints")
}

/// The one result of `series` in a restore run's JSON.
fn result<'a>(run: &'a Value, s: &SeriesKey) -> &'a Value {
    run["restore"]["results"]
        .as_array()
        .and_then(|rs| {
            rs.iter()
                .find(|r| r["symbol"] == s.symbol.as_str() && r["interval"] == s.interval.as_str())
        })
        .unwrap_or_else(|| panic!("no result for {s}: {run:#}"))
}

/// `p` with its close moved by `by`.
fn nudged(p: &Point, by: f64) -> Point {
    let mut q = p.clone();
    for (k, v) in q.fields.iter_mut() {
        if &**k == "close"
            && let FieldValue::Float(f) = v
        {
            *f += by;
        }
    }
    q
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symbol_dropped_on_the_primary_comes_back_exactly_and_no_checkpoint_moves() {
    let p = seeded(40, 120, 300, "").await;
    let primary = p.node("primary");
    let before = snapshot(primary.as_ref()).await;
    let cps = checkpoints(&p);
    // The operator's mistake: every bar of one symbol gone from the primary.
    let dropped = "US X'\"odd";
    for i in ["1d", "1m"] {
        let s = SeriesKey::new(dropped, i);
        let times: Vec<Nanos> = before[&s].iter().map(|p| p.time).collect();
        primary.delete(&s, &times).await.expect("delete");
    }
    // A bar that arrived on the primary after the loss: the backups never saw it.
    let aapl = SeriesKey::new("US.AAPL", "1m");
    let newest = before[&aapl].last().expect("bars").time;
    let fresh = bars("US.AAPL", "1m", 1, newest + MINUTE, MINUTE);
    put(primary.as_ref(), fresh.clone()).await;

    let (code, run) = restore_json(&p, &["--from", "backup1", "--symbol", dropped]);
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["status"], "success");
    let r = &run["restore"];
    assert_eq!(
        (r["source"].as_str(), r["target"].as_str()),
        (Some("backup1"), Some("primary"))
    );
    assert_eq!(r["series"], 2, "only the symbol named: {r:#}");
    assert_eq!(r["equal"], 2);
    assert_eq!(r["written"], 420);
    let mut expected = before.clone();
    expected.get_mut(&aapl).expect("seeded").extend(fresh);
    assert_holds(primary.as_ref(), &expected).await;
    assert_eq!(checkpoints(&p), cps, "a restore moves no checkpoint");

    // Run again over everything: nothing to write; the primary's own newer bar stays, past
    // the backup's range.
    let (code, again) = restore_json(&p, &["--from", "backup1"]);
    assert_eq!(code, 0, "{again:#}");
    assert_eq!(again["restore"]["written"], 0);
    assert_eq!(again["restore"]["series"], 6);
    assert_eq!(result(&again, &aapl)["unchanged"], 300);
    assert_holds(primary.as_ref(), &expected).await;
    // Recorded as runs of @restore with their counts; the second run wrote nothing.
    let db = p.history();
    let runs = db.runs(Some("@restore"), 0).expect("runs");
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[1].status.as_str(), runs[1].records), ("success", 420));
    let detail = db.run_detail(runs[1].id).expect("detail").expect("a run");
    assert_eq!(detail.restores.len(), 1);
    assert_eq!(detail.restores[0].counts.written, 420);
    assert_eq!(detail.restores[0].target, "primary");
    assert!(detail.history.is_empty(), "no sync rows");
    // The normal sync goes on from its checkpoints (the primary's new bar), then `dms verify`
    // agrees with what the restore compared.
    let s = p.cli(&["sync", "--backup", "backup1"]);
    assert!(s.status.success(), "{}", text(&s));
    let v = p.cli(&["verify", "--backup", "backup1"]);
    assert!(v.status.success(), "{}", text(&v));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_wiped_entirely_comes_back_from_one_backup() {
    let p = seeded(64, 200, 500, "").await;
    let before = snapshot(p.node("primary").as_ref()).await;
    let cps = checkpoints(&p);
    for f in ["primary.db", "primary.db-wal", "primary.db-shm"] {
        let _ = std::fs::remove_file(p.root().join("run").join(f));
    }
    let out = p.cli(&["restore", "--from", "backup2"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "backup2 → primary, 6 series: 6 equal, 0 differ, 0 failed; 2100 points written"
        ),
        "{stdout}"
    );
    assert_holds(p.node("primary").as_ref(), &before).await;
    assert_eq!(checkpoints(&p), cps);
    let v = p.cli(&["verify", "--backup", "backup1", "--backup", "backup2"]);
    assert!(
        v.status.success(),
        "every backup equals the restored primary: {}",
        text(&v)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_node_is_filled_from_a_backup_within_the_range_asked_for() {
    let p = seeded(50, 60, 200, "").await;
    let backup1 = snapshot(p.node("backup1").as_ref()).await;
    let aapl = SeriesKey::new("US.AAPL", "1d");
    let since = backup1[&aapl][10].time;
    let until = backup1[&aapl][29].time;
    let (since_s, until_s) = (since.to_string(), dms::model::format_nanos(until));
    let (code, run) = restore_json(
        &p,
        &[
            "--from",
            "backup1",
            "--to",
            "backup3",
            "--symbol",
            "US.AAPL",
            "--interval",
            "1d",
            "--since",
            &since_s,
            "--until",
            &until_s,
        ],
    );
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["restore"]["target"], "backup3");
    assert_eq!(result(&run, &aapl)["written"], 20);
    assert_eq!(
        all(p.node("backup3").as_ref(), &aapl).await,
        backup1[&aapl][10..30].to_vec()
    );
    // Then all of it.
    let (code, run) = restore_json(&p, &["--from", "backup1", "--to", "backup3"]);
    assert_eq!(code, 0, "{run:#}");
    assert_holds(p.node("backup3").as_ref(), &backup1).await;
    assert!(
        checkpoints(&p).keys().all(|k| k.backup != "backup3"),
        "a restore is not a sync: backup3 has no checkpoint"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_writes_nothing_and_reports_what_it_would_write() {
    let p = seeded(30, 40, 100, "").await;
    let primary = p.node("primary");
    let msft = SeriesKey::new("US.MSFT", "1m");
    let held = all(primary.as_ref(), &msft).await;
    let gone: Vec<Nanos> = held[20..45].iter().map(|p| p.time).collect();
    primary.delete(&msft, &gone).await.expect("delete");
    let after_loss = snapshot(primary.as_ref()).await;

    let (code, run) = restore_json(&p, &["--from", "backup1", "--dry-run"]);
    assert_eq!(code, 1, "the primary differs from the backup: {run:#}");
    assert_eq!(run["restore"]["dry_run"], true);
    assert_eq!(run["restore"]["written"], 25);
    let r = result(&run, &msft);
    assert_eq!(
        (
            r["result"].as_str(),
            r["written"].as_i64(),
            r["missing"].as_i64()
        ),
        (Some("differs"), Some(25), Some(25))
    );
    assert_holds(primary.as_ref(), &after_loss).await;
    let db = p.history();
    let runs = db.runs(Some("@restore"), 0).expect("runs");
    assert_eq!(runs[0].records, 0, "a dry run wrote nothing");
    let detail = db.run_detail(runs[0].id).expect("detail").expect("a run");
    assert!(detail.restores[0].dry_run);
    assert_eq!(detail.restores[0].counts.written, 25);

    let out = p.cli(&["restore", "--from", "backup1", "--dry-run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("would write"), "{stdout}");
    assert!(
        stdout.contains("dry run, nothing written: 25 points would be written"),
        "{stdout}"
    );
    let (code, _) = restore_json(&p, &["--from", "backup1"]);
    assert_eq!(code, 0);
    assert_eq!(all(primary.as_ref(), &msft).await, held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_the_target_holds_with_other_values_are_kept_unless_overwrite() {
    let p = seeded(25, 30, 60, "").await;
    let primary = p.node("primary");
    let aapl = SeriesKey::new("US.AAPL", "1d");
    let original = all(primary.as_ref(), &aapl).await;
    // Revised on the primary after the backups copied them (newer values), and a few lost.
    let revised: Vec<Point> = original[5..8].iter().map(|p| nudged(p, 0.25)).collect();
    put(primary.as_ref(), revised.clone()).await;
    let lost: Vec<Nanos> = original[20..24].iter().map(|p| p.time).collect();
    primary.delete(&aapl, &lost).await.expect("delete");

    let out = p.cli(&[
        "restore",
        "--from",
        "backup1",
        "--symbol",
        "US.AAPL",
        "--interval",
        "1d",
    ]);
    assert!(
        out.status.success(),
        "kept values are no failure: {}",
        text(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("3 points the primary holds with other values were kept"),
        "{stdout}"
    );
    let mut expected = original.clone();
    expected.splice(5..8, revised.clone());
    assert_eq!(
        all(primary.as_ref(), &aapl).await,
        expected,
        "lost bars back, revisions kept"
    );
    let (code, run) = restore_json(
        &p,
        &[
            "--from",
            "backup1",
            "--symbol",
            "US.AAPL",
            "--interval",
            "1d",
        ],
    );
    assert_eq!(code, 0);
    let r = result(&run, &aapl);
    assert_eq!(
        (
            r["result"].as_str(),
            r["kept"].as_i64(),
            r["written"].as_i64()
        ),
        (Some("kept"), Some(3), Some(0)),
        "{r:#}"
    );

    let (code, run) = restore_json(
        &p,
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
    let r = result(&run, &aapl);
    assert_eq!(
        (
            r["result"].as_str(),
            r["written"].as_i64(),
            r["different"].as_i64()
        ),
        (Some("equal"), Some(3), Some(0)),
        "{r:#}"
    );
    assert_eq!(all(primary.as_ref(), &aapl).await, original);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_killed_at_random_moments_converges_when_run_again() {
    let p = seeded(40, 400, 2500, "").await;
    let expected = snapshot(p.node("backup1").as_ref()).await;
    for f in ["primary.db", "primary.db-wal", "primary.db-shm"] {
        let _ = std::fs::remove_file(p.root().join("run").join(f));
    }
    // The primary's own point the backups lack: no kill may lose it.
    let own = bars(
        "US.NEW",
        "1m",
        3,
        dms::model::now_nanos() / MINUTE * MINUTE,
        MINUTE,
    );
    put(p.node("primary").as_ref(), own.clone()).await;
    let seed = dms::model::now_nanos() as u64;
    eprintln!("restore crash-loop seed {seed}");
    let mut rng = dms::sample::Rng::from_key(&seed.to_string());
    let (mut kills, mut tries, mut midway) = (0, 0, 0);
    let total: usize = expected.values().map(Vec::len).sum();
    // Small batches from here on: a restore takes long enough to be killed while writing.
    p.write("config/sync.yaml", &yaml(10, ""));
    let started = Instant::now();
    while kills < 4 && tries < 15 && started.elapsed() < Duration::from_secs(120) {
        tries += 1;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dms"))
            .args(["restore", "--from", "backup1"])
            .current_dir(p.root())
            .env_remove("DMS_CONFIG")
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dms starts");
        std::thread::sleep(Duration::from_millis(40 + rng.next_u64() % 700));
        let primary = p.node("primary");
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
            kills += 1;
        } else {
            // It finished: lose the restored series again, so the next run has work.
            for (s, points) in &expected {
                let times: Vec<Nanos> = points.iter().map(|p| p.time).collect();
                primary.delete(s, &times).await.expect("delete");
            }
        }
        let held = all(primary.as_ref(), &SeriesKey::new("US.NEW", "1m")).await;
        assert_eq!(held, own, "a kill never loses the primary's own points");
        let mut held = 0;
        for (s, points) in &expected {
            let now = all(primary.as_ref(), s).await;
            assert!(
                now.iter().all(|p| points
                    .binary_search_by_key(&p.time, |q| q.time)
                    .is_ok_and(|i| points[i] == *p)),
                "{s}: only the backup's points, exactly"
            );
            held += now.len();
        }
        if held > 0 && held < total {
            midway += 1;
        }
    }
    assert!(kills > 0, "no restore was killed in {tries} tries");
    assert!(midway > 0, "no kill landed while the restore was writing");
    let (code, run) = restore_json(&p, &["--from", "backup1"]);
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["restore"]["equal"], 6);
    assert_holds(p.node("primary").as_ref(), &expected).await;
    let runs = p.history().runs(Some("@restore"), 0).expect("runs");
    assert!(
        runs.iter().all(|r| r.status.as_str() != "running"),
        "interrupted runs are marked"
    );
    let detail = p.history().restores(None, 0).expect("restores");
    assert!(detail.iter().all(|r| r.counts.status.as_str() != "running"));
    eprintln!("restore crash loop: {kills} kills in {tries} tries, {midway} midway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_a_restore_cannot_use_are_refused_with_exit_2() {
    let p = seeded(50, 5, 5, "").await;
    for (args, words) in [
        (
            vec!["--from", "nosuch"],
            "no enabled backup is called \"nosuch\"; the enabled backups are: backup1, backup2, backup3",
        ),
        (
            vec!["--from", "backup1", "--to", "backup1"],
            "\"backup1\" is both the source and the target",
        ),
        (
            vec!["--from", "backup1", "--to", "nowhere"],
            "no node is called \"nowhere\"",
        ),
        (vec!["--from", "archive"], "backup \"archive\" is disabled"),
        (
            vec!["--from", "backup1", "--to", "archive"],
            "backup \"archive\" is disabled",
        ),
        (
            vec!["--from", "primary"],
            "is the primary: a restore copies from a backup",
        ),
        (
            vec![
                "--from",
                "backup1",
                "--since",
                "2025-02-01",
                "--until",
                "2025-01-01",
            ],
            "the range is empty",
        ),
        (
            vec!["--from", "backup1", "--until", "next tuesday"],
            "--until: cannot read time",
        ),
    ] {
        let mut a = vec!["restore"];
        a.extend(args.iter().copied());
        let out = p.cli(&a);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(words), "{args:?}: {err}");
    }
    assert!(
        p.history()
            .runs(Some("@restore"), 0)
            .expect("runs")
            .is_empty(),
        "nothing recorded"
    );
    // A filter that matches nothing on the backup is work that found nothing: exit 1.
    let out = p.cli(&["restore", "--from", "backup1", "--symbol", "US.NOPE"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no series on backup1 matches symbol US.NOPE")
    );
}

async fn json_of(r: reqwest::Response) -> Value {
    serde_json::from_str(&r.text().await.expect("a body")).expect("JSON")
}

/// The API of a daemon over the project, served in-process.
struct Api {
    url: String,
    http: reqwest::Client,
    stop: tokio_util::sync::CancellationToken,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(p: &Project) -> Api {
    let stop = tokio_util::sync::CancellationToken::new();
    let daemon = dms::daemon::Daemon::new(Arc::new(p.app()), stop.clone()).expect("daemon");
    let router = dms::http::router(daemon);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let s = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { s.cancelled().await })
            .await;
    });
    Api {
        url,
        http: dms::node::http_client_builder()
            .build()
            .expect("http client"),
        stop,
    }
}

impl Api {
    async fn post(
        &self,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut r = self.http.post(format!("{}{path}", self.url));
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("the API answers")
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Value {
        let mut r = self.http.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().await.expect("the API answers");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        json_of(r).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_starts_a_restore_answering_202_with_the_run_and_its_location() {
    const TOKEN: &str = "restore-token-0123456789";
    let p = seeded(50, 30, 80, &format!("api:\n  token: {TOKEN}\n")).await;
    let expected = snapshot(p.node("backup2").as_ref()).await;
    let primary = p.node("primary");
    let msft = SeriesKey::new("US.MSFT", "1d");
    let times: Vec<Nanos> = expected[&msft].iter().map(|p| p.time).collect();
    primary.delete(&msft, &times).await.expect("delete");
    let api = serve(&p).await;
    let body = serde_json::json!({"from": "backup2", "symbols": "US.MSFT", "since": "3650d"});

    // The same token rule as every other route.
    let r = api.post("/api/dms/restore", Some(&body), None).await;
    assert_eq!(r.status().as_u16(), 401);
    // Bad bodies: 400 (415 without a JSON content type), naming what is wrong.
    for (b, words) in [
        (
            serde_json::json!({"from": "backup2", "symbol": "US.MSFT"}),
            "unknown field `symbol`",
        ),
        (
            serde_json::json!({"from": "nosuch"}),
            "no enabled backup is called \"nosuch\"",
        ),
        (
            serde_json::json!({"from": "backup2", "to": "backup2"}),
            "both the source and the target",
        ),
        (
            serde_json::json!({"from": "backup2", "until": "soon"}),
            "cannot read time",
        ),
    ] {
        let r = api.post("/api/dms/restore", Some(&b), Some(TOKEN)).await;
        assert_eq!(r.status().as_u16(), 400, "{b}");
        let v = json_of(r).await;
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains(words)),
            "{b}: {v}"
        );
    }
    let r = api.post("/api/dms/restore", None, Some(TOKEN)).await;
    assert_eq!(r.status().as_u16(), 415);

    let r = api.post("/api/dms/restore", Some(&body), Some(TOKEN)).await;
    assert_eq!(r.status().as_u16(), 202);
    let location = r.headers()["location"].to_str().expect("text").to_string();
    let v = json_of(r).await;
    let run_id = v["run_id"].as_i64().expect("a run id");
    assert_eq!(location, format!("/api/dms/runs/{run_id}"));
    assert_eq!(v["task"], "@restore");
    let deadline = Instant::now() + Duration::from_secs(30);
    let run = loop {
        let run = api.get(&location, Some(TOKEN)).await;
        if run["status"] != "running" {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "the restore did not finish: {run:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(run["status"], "success", "{run:#}");
    assert_eq!(run["trigger"], "api");
    assert_eq!(run["records"], 30);
    let r = &run["restores"][0];
    assert_eq!(
        (r["source"].as_str(), r["target"].as_str()),
        (Some("backup2"), Some("primary"))
    );
    assert_eq!(
        (
            r["series"].as_i64(),
            r["equal"].as_i64(),
            r["written"].as_i64()
        ),
        (Some(2), Some(2), Some(30)),
        "{run:#}"
    );
    assert_eq!(all(primary.as_ref(), &msft).await, expected[&msft]);
    let runs = api.get("/api/dms/runs?task=@restore", Some(TOKEN)).await;
    assert_eq!(runs["items"][0]["id"], run_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_restores_through_dms_restore_in_lua() {
    let p = seeded(50, 20, 50, "").await;
    p.write(
        "scripts/restore_primary.lua",
        r#"
        function run(ctx)
          local ok, err = pcall(dms.restore, {from = "nosuch"})
          assert(not ok and tostring(err):find("dms.restore: no enabled backup", 1, true), tostring(err))
          local r = dms.restore{from = "backup1", symbols = ctx.params.symbol, dry_run = true}
          assert(r.dry_run and r.written == 70 and r.differing == 2 and r.status == "success", dms.json.encode(r))
          r = dms.restore{from = "backup1", symbols = ctx.params.symbol}
          assert(r.status == "success", r.error)
          assert(r.source == "backup1" and r.target == "primary" and r.series == 2)
          assert(r.written == 70 and #r.results == 2 and r.results[1].result == "equal")
          dms.log.info("restored " .. r.written .. " points")
        end
        "#,
    );
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: restore_primary\n    script: scripts/restore_primary.lua\n    sync_backups: false\n    timeout: 60\n    params: {symbol: US.AAPL}\n",
    );
    let expected = snapshot(p.node("backup1").as_ref()).await;
    let primary = p.node("primary");
    for i in ["1d", "1m"] {
        let s = SeriesKey::new("US.AAPL", i);
        let times: Vec<Nanos> = expected[&s].iter().map(|p| p.time).collect();
        primary.delete(&s, &times).await.expect("delete");
    }
    let out = p.cli(&["task", "run", "restore_primary", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_holds(primary.as_ref(), &expected).await;
    let db = p.history();
    let run = &db.runs(Some("restore_primary"), 0).expect("runs")[0];
    let detail = db.run_detail(run.id).expect("detail").expect("a run");
    assert_eq!(
        detail.restores.len(),
        2,
        "the dry run and the restore, under the task's run"
    );
    assert!(detail.restores[0].dry_run && !detail.restores[1].dry_run);
    assert_eq!(detail.run.records, 70);
    assert!(db.runs(Some("@restore"), 0).expect("runs").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_does_not_answer_fails_the_restore_once_with_its_cause() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let p = seeded(50, 10, 10, "").await;
    let text_yaml = std::fs::read_to_string(p.root().join("config/sync.yaml")).expect("yaml");
    p.write(
        "config/sync.yaml",
        &text_yaml.replace(
            "    - {name: archive,",
            &format!(
                "    - {{name: dead, type: influxdb, url: \"http://127.0.0.1:{port}\", database: db, timeout: 2}}\n    - {{name: archive,"
            ),
        ),
    );
    let started = Instant::now();
    let out = p.cli(&["restore", "--from", "backup1", "--to", "dead"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("target: node dead: unreachable"), "{err}");
    assert!(err.contains("gave up after 3 attempts"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let runs = p.history().runs(Some("@restore"), 0).expect("runs");
    assert_eq!(runs[0].status.as_str(), "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_stopped_by_sigint_exits_130_is_recorded_interrupted_and_the_next_run_completes()
{
    let p = seeded(60, 300, 2000, "").await;
    let expected = snapshot(p.node("backup1").as_ref()).await;
    for f in ["primary.db", "primary.db-wal", "primary.db-shm"] {
        let _ = std::fs::remove_file(p.root().join("run").join(f));
    }
    p.write("config/sync.yaml", &yaml(10, ""));
    let stderr = p.root().join("restore.stderr");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(["restore", "--from", "backup1"])
        .current_dir(p.root())
        .env_remove("DMS_CONFIG")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("a log file"))
        .spawn()
        .expect("dms starts");
    // Stop it once it has written something.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let held = all(p.node("primary").as_ref(), &SeriesKey::new("US.AAPL", "1m")).await;
        if !held.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the restore never wrote");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "finished too soon"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // SAFETY: kill(2) with the PID of our own child and a valid signal number.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().expect("reaped");
    let err = std::fs::read_to_string(&stderr).expect("stderr");
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted by SIGINT: restore run"), "{err}");
    assert!(!err.contains("error:"), "a stop is not a failure: {err}");
    let db = p.history();
    let run = &db.runs(Some("@restore"), 1).expect("runs")[0];
    assert_eq!(run.status.as_str(), "interrupted");
    let rows = db.restores(Some(run.id), 0).expect("restores");
    assert_eq!(rows[0].counts.status.as_str(), "interrupted");
    assert!(rows[0].counts.written > 0);
    drop(db);
    let (code, again) = restore_json(&p, &["--from", "backup1"]);
    assert_eq!(code, 0, "{again:#}");
    assert_holds(p.node("primary").as_ref(), &expected).await;
}
