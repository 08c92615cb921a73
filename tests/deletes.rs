//! Deletes a failing primary cannot propagate (issue 19), on real SQLite stores through the
//! `dms` binary and a real daemon: a primary restored from an older snapshot, a pass that
//! would delete more than `reconcile.max_deletes`, a window that would lose most of its
//! points — each deletes nothing, fails, records how many it held back, shows on the page, in
//! `/metrics` and at the webhook, and goes ahead only with `--allow-deletes N`.

use crate::helper::daemon::{DaemonProcess, free_port};
use crate::helper::project::{Project, all, bars, put, sync_yaml};
use dms::model::{NANOS_PER_DAY, Nanos, Point, SeriesKey};
use dms::node::Node;
use serde_json::Value;
use std::process::Output;
use std::time::Duration;

const DAY: Nanos = NANOS_PER_DAY;

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

fn reconciled<'a>(run: &'a Value, backup: &str) -> &'a Value {
    run["report"]["backups"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["backup"] == backup))
        .unwrap_or_else(|| panic!("no reconcile entry for {backup}: {run:#}"))
}

fn today() -> Nanos {
    dms::model::now_nanos() / DAY * DAY
}

/// `n` daily bars of `symbol` up to yesterday.
fn daily(symbol: &str, n: usize) -> Vec<Point> {
    bars(symbol, "1d", n, today() - DAY, DAY)
}

/// A project with `mirror_deletes` on (and `extra` reconcile settings), `symbols` × 60 daily
/// bars synced to both backups.
async fn project(extra: &str, symbols: &[&str]) -> Project {
    let p = Project::with_sync(&sync_yaml(
        100,
        1,
        &format!("reconcile:\n  mirror_deletes: true\n{extra}"),
    ));
    for s in symbols {
        put(&*p.node("primary"), daily(s, 60)).await;
    }
    let out = p.cli(&["sync", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    p
}

/// Deletes bars `range` (indexes into the 60) of `symbol` on the primary.
async fn lose(p: &Project, symbol: &str, range: std::ops::Range<usize>) -> Vec<Nanos> {
    let times: Vec<Nanos> = daily(symbol, 60)[range].iter().map(|b| b.time).collect();
    p.node("primary")
        .delete(&SeriesKey::new(symbol, "1d"), &times)
        .await
        .expect("delete on the primary");
    times
}

async fn held(p: &Project, node: &str, symbol: &str) -> usize {
    all(&*p.node(node), &SeriesKey::new(symbol, "1d"))
        .await
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_restored_from_an_older_snapshot_deletes_nothing_until_a_person_allows_it() {
    let p = project("", &["US.AAPL"]).await;
    // The primary comes back from an older, imperfect snapshot: its last ten days are gone,
    // and three older bars with them.
    lose(&p, "US.AAPL", 50..60).await;
    lose(&p, "US.AAPL", 20..23).await;
    // Status does not call it `lagging 0s`: each backup is ahead of the primary, and that
    // needs attention.
    let out = p.cli(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let lines = json(&out);
    let lines = lines.as_array().expect("status lines");
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines.iter().all(|l| l["state"] == "ahead"), "{lines:#?}");
    let out = p.cli(&["status"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("AHEAD"),
        "{}",
        text(&out)
    );
    let out = p.cli(&["reconcile", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let run = json(&out);
    // The shape every run has: duration in seconds, times in RFC 3339.
    assert!(run["duration_seconds"].is_number(), "{run:#}");
    assert!(run.get("duration_ms").is_none(), "{run:#}");
    for b in ["backup1", "backup2"] {
        let r = reconciled(&run, b);
        assert_eq!(r["deleted"], 0, "{r:#}");
        assert_eq!(r["refused"], 3, "{r:#}");
        let e = r["error"].as_str().unwrap_or_default();
        assert!(
            e.contains("primary lost 3 points") && e.contains("moved backwards"),
            "{e}"
        );
        assert!(e.contains("--allow-deletes 3"), "says how to go ahead: {e}");
        assert_eq!(held(&p, b, "US.AAPL").await, 60, "{b} keeps every point");
    }
    let rows = p.history().reconciles(true, 0).expect("rows");
    assert!(rows.iter().all(|r| r.counts.refused == 3), "{rows:#?}");
    // A person looked and goes ahead: the three older bars go; the ten days past the
    // primary's newest bar stay (they may be the only copies).
    let out = p.cli(&["reconcile", "--json", "--allow-deletes", "3"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(reconciled(&json(&out), "backup1")["deleted"], 3);
    assert_eq!(held(&p, "backup1", "US.AAPL").await, 57);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_deleting_more_than_max_deletes_deletes_none_of_them() {
    let p = project("  max_deletes: 50\n", &["US.AAPL", "US.MSFT"]).await;
    // The newest bars stay; thirty days of each series go (60 points per backup).
    lose(&p, "US.AAPL", 10..40).await;
    lose(&p, "US.MSFT", 10..40).await;
    let out = p.cli(&["reconcile", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = reconciled(&json(&out), "backup1").clone();
    assert_eq!(r["refused"], 60, "{r:#}");
    assert!(
        r["error"]
            .as_str()
            .is_some_and(|e| e.contains("more than reconcile.max_deletes (50)")),
        "{r:#}"
    );
    for s in ["US.AAPL", "US.MSFT"] {
        assert_eq!(held(&p, "backup1", s).await, 60);
    }
    // An allowance short of what the pass would delete is refused too.
    let out = p.cli(&["reconcile", "--json", "--allow-deletes", "59"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(held(&p, "backup1", "US.AAPL").await, 60);
    // Enough: every backup equals the primary.
    let out = p.cli(&["reconcile", "--json", "--allow-deletes", "60"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = p.cli(&["verify", "--strict"]);
    assert!(out.status.success(), "{}", text(&out));
    // One retracted bar later is an ordinary delete again.
    lose(&p, "US.AAPL", 45..46).await;
    let out = p.cli(&["reconcile", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(reconciled(&json(&out), "backup1")["deleted"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_losing_most_of_its_points_is_refused_and_shown_on_the_page_metrics_and_webhook() {
    use axum::routing::post;
    let got: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = Default::default();
    let sink = got.clone();
    let hook = axum::Router::new().route(
        "/hook",
        post(move |body: String| {
            let sink = sink.clone();
            async move {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_str(&body).unwrap_or(Value::Null));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });

    let port = free_port();
    let p = project(
        &format!(
            "  window: 10d\napi:\n  listen: 127.0.0.1:{port}\nalerts:\n  webhook: \"{hook_url}\"\n  retries: 1\n  timeout: 1\n"
        ),
        &["US.AAPL"],
    )
    .await;
    // Six of the ten bars of one window (aligned to the epoch) go.
    let bars = daily("US.AAPL", 60);
    let w = |t: Nanos| dms::node::digest::window_start(t, 10 * DAY);
    let first = (0..40)
        .find(|&i| w(bars[i].time) == bars[i].time)
        .expect("a window starting in the range");
    lose(&p, "US.AAPL", first..first + 6).await;
    let d = DaemonProcess::start(p.root(), port).await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/api/dms/reconcile", d.url))
        .send()
        .await
        .expect("POST");
    // A reconcile is a run: 202 with its id and where to follow it, like a task trigger.
    assert_eq!(r.status().as_u16(), 202);
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .expect("a Location header");
    let started: Value =
        serde_json::from_str(&r.text().await.expect("an answer")).expect("a JSON answer");
    let run_id = started["run_id"].as_i64().expect("a run id");
    assert_eq!(location, format!("/api/dms/runs/{run_id}"));
    assert_eq!(started["task"], "@reconcile", "{started}");
    assert_eq!(started["status"], "started", "{started}");
    d.wait_for("the reconcile run ends", 20, || async {
        d.get(&location).await["status"] != "running"
    })
    .await;
    let run = d.get(&location).await;
    assert_eq!(run["task"], "@reconcile", "{run:#}");
    assert!(run["duration_seconds"].is_number(), "{run:#}");
    d.wait_for("the reconcile refused its deletes", 20, || async {
        let rows = d.get("/api/dms/reconcile?latest=true").await;
        rows["items"]
            .as_array()
            .is_some_and(|v| v.len() == 2 && v.iter().all(|r| r["refused"] == 6))
    })
    .await;
    assert_eq!(held(&p, "backup1", "US.AAPL").await, 60);
    let rows = d.get("/api/dms/reconcile?latest=true").await;
    let e = rows["items"][0]["error"].as_str().unwrap_or_default();
    assert!(e.contains("max_delete_share"), "{rows:#}");
    let metrics = d.text("/metrics").await;
    assert!(
        metrics.contains(r#"dms_reconcile_deletes_refused{backup="backup1"} 6"#),
        "{metrics}"
    );
    let page = d.text("/").await;
    assert!(page.contains("6 deletes refused"), "the page says so");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let alerts = got.lock().unwrap().clone();
        if let Some(a) = alerts
            .iter()
            .find(|a| a.to_string().contains("deletes refused"))
        {
            assert!(a.to_string().contains("primary lost"), "{a:#}");
            // The README's one wall-clock format: RFC 3339 UTC with milliseconds.
            let time = a["time"].as_str().unwrap_or_default();
            assert!(
                time.len() == 24 && time.ends_with('Z') && time.as_bytes()[19] == b'.',
                "{a:#}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the webhook is told: {alerts:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
