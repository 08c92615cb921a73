//! A feed that stops is noticed (issue 19): a task whose runs keep succeeding while the
//! primary's newest bar does not advance makes its series `stale` after `stale_after` runs —
//! in `dms status`, the API, the page, `/metrics` — and the webhook is told once; a new bar
//! clears it; a series whose next bar is not yet due is not stale.

use crate::helper::project::{Project, bars, put, sync_yaml};
use dms::model::{NANOS_PER_SEC, Nanos};
use serde_json::Value;
use std::time::Duration;

const MINUTE: Nanos = 60 * NANOS_PER_SEC;

fn this_minute() -> Nanos {
    dms::model::now_nanos() / MINUTE * MINUTE
}

/// A project whose task `feed` maintains US.AAPL@1m (bars up to `end`) and US.DAY@1d (a bar
/// today: not due again before tomorrow).
async fn project(extra: &str, end: Nanos) -> Project {
    let p = Project::with_sync(&sync_yaml(100, 1, extra));
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: feed\n    script: scripts/feed.lua\n    stale_after: 2\n",
    );
    p.write(
        "scripts/feed.lua",
        "function symbols() return {'US.AAPL', 'US.DAY'} end\nfunction intervals() return {'1m', '1d'} end\n",
    );
    put(&*p.node("primary"), bars("US.AAPL", "1m", 30, end, MINUTE)).await;
    let today = dms::model::now_nanos() / dms::model::NANOS_PER_DAY * dms::model::NANOS_PER_DAY;
    put(
        &*p.node("primary"),
        bars("US.DAY", "1d", 5, today, dms::model::NANOS_PER_DAY),
    )
    .await;
    p
}

fn status(p: &Project) -> (i32, Vec<Value>) {
    let out = p.cli(&["status", "--json"]);
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out.status.code().unwrap_or(-1), rows)
}

fn stale_series(rows: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .filter(|r| !r["stale"].is_null())
        .map(|r| {
            format!(
                "{}@{}",
                r["symbol"].as_str().unwrap_or(""),
                r["interval"].as_str().unwrap_or("")
            )
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

fn run(p: &Project) {
    let out = p.cli(&["task", "run", "feed"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_that_stops_makes_its_series_stale_after_stale_after_runs_and_a_new_bar_clears_it() {
    // The last minute bar is ten minutes old: overdue.
    let end = this_minute() - 10 * MINUTE;
    let p = project("", end).await;
    run(&p);
    run(&p);
    let (code, rows) = status(&p);
    assert_eq!(code, 0, "one unchanged run is not yet stale: {rows:#?}");
    assert!(stale_series(&rows).is_empty(), "{rows:#?}");
    run(&p);
    let (code, rows) = status(&p);
    assert_eq!(
        stale_series(&rows),
        vec!["US.AAPL@1m".to_string()],
        "the daily bar is not due yet: {rows:#?}"
    );
    assert_eq!(code, 1, "dms status fails on a stale series");
    let out = p.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("+STALE") && text.contains("1 series STALE"),
        "{text}"
    );
    // The feed comes back: one new bar clears it at the next run.
    put(
        &*p.node("primary"),
        bars("US.AAPL", "1m", 1, this_minute(), MINUTE),
    )
    .await;
    run(&p);
    let (code, rows) = status(&p);
    assert!(stale_series(&rows).is_empty(), "{rows:#?}");
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_feed_is_on_the_page_in_metrics_and_told_to_the_webhook_once() {
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
    let port = crate::helper::daemon::free_port();
    let end = this_minute() - 10 * MINUTE;
    let p = project(
        &format!(
            "api:\n  listen: 127.0.0.1:{port}\nalerts:\n  webhook: \"{hook_url}\"\n  retries: 1\n  timeout: 1\n"
        ),
        end,
    )
    .await;
    let d = crate::helper::daemon::DaemonProcess::start(p.root(), port).await;
    let client = reqwest::Client::new();
    for i in 0..4 {
        let r = client
            .post(format!("{}/api/dms/tasks/feed/run", d.url))
            .send()
            .await
            .expect("POST");
        assert!(r.status().is_success(), "{}", r.status());
        d.wait_for("the run finished", 20, || async {
            let runs = d.get("/api/dms/runs?task=feed").await;
            let items = runs["items"].as_array().cloned().unwrap_or_default();
            items.len() == i + 1 && items.iter().all(|r| r["status"] == "success")
        })
        .await;
    }
    let st = d.get("/api/dms/sync/status").await;
    let stale = stale_series(st.as_array().map(Vec::as_slice).unwrap_or(&[]));
    assert_eq!(stale, vec!["US.AAPL@1m".to_string()], "{st:#}");
    let metrics = d.text("/metrics").await;
    assert!(
        metrics.contains(r#"dms_series_stale{symbol="US.AAPL",interval="1m"} 1"#)
            // A current, fresh series has no per-series line (api.metrics_series: attention).
            && !metrics.contains(r#"dms_series_stale{symbol="US.DAY""#),
        "{metrics}"
    );
    let newest = format!(
        r#"dms_primary_newest_timestamp_seconds{{symbol="US.AAPL",interval="1m"}} {}"#,
        end / NANOS_PER_SEC
    );
    assert!(metrics.contains(&newest), "{newest}\n{metrics}");
    let page = d.text("/").await;
    assert!(page.contains(">stale<"), "the page shows it");
    // Four unchanged runs, one alert (when it turned stale at the third).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alerts: Vec<Value> = got
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a["alert"]["kind"] == "stale" || a.to_string().contains("\"stale\""))
        .cloned()
        .collect();
    assert_eq!(alerts.len(), 1, "{:#?}", got.lock().unwrap());
    assert!(
        alerts[0].to_string().contains("US.AAPL@1m"),
        "{:#}",
        alerts[0]
    );
}
