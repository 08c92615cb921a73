//! The HTTP API in-process over a real daemon state: every history filter and the cursor, auth,
//! and 400s with a message for bad input.

use crate::helper::project::{Project, bars, put, sync_yaml};
use dms::app::App;
use dms::model::NANOS_PER_SEC;
use dms::sync::{Selection, SyncControl, SyncRequest};
use std::sync::Arc;

struct Api {
    url: String,
    http: reqwest::Client,
    stop: tokio_util::sync::CancellationToken,
    _p: Project,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A project with two symbols synced twice to both backups, served by the API.
async fn api(token: Option<&str>) -> Api {
    let extra = match token {
        Some(t) => format!("api:\n  token: \"{t}\"\n"),
        None => String::new(),
    };
    let p = Project::with_sync(&sync_yaml(100, 1, &extra));
    let now = dms::model::now_nanos();
    for sym in ["US.AAPL", "US.MSFT"] {
        put(
            p.node("primary").as_ref(),
            bars(sym, "1m", 50, now, 60 * NANOS_PER_SEC),
        )
        .await;
    }
    put(
        p.node("primary").as_ref(),
        bars("US.AAPL", "1d", 5, now, 86_400 * NANOS_PER_SEC),
    )
    .await;
    let app = App::open(p.settings(), "test").unwrap();
    for _ in 0..2 {
        app.manual_sync(
            SyncRequest::new(Selection::all(), 3650),
            &SyncControl::default(),
        )
        .await
        .unwrap();
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let daemon = dms::daemon::Daemon::new(Arc::new(app), stop.clone()).expect("daemon");
    let router = dms::http::router(daemon);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let s = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { s.cancelled().await })
            .await
            .unwrap();
    });
    Api {
        url,
        http: dms::node::http_client_builder()
            .build()
            .expect("http client"),
        stop,
        _p: p,
    }
}

impl Api {
    async fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let mut r = self.http.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            r = r.header("Authorization", format!("Bearer {t}"));
        }
        let r = r.send().await.unwrap();
        let code = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            code,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    async fn ok(&self, path: &str) -> serde_json::Value {
        let (code, v) = self.get(path, None).await;
        assert_eq!(code, 200, "GET {path}: {v}");
        v
    }
}

fn items(v: &serde_json::Value) -> &Vec<serde_json::Value> {
    v["items"].as_array().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_filters_narrow_and_the_cursor_pages_through_everything_once() {
    let a = api(None).await;
    // 3 series × 2 backups × 2 syncs.
    let all = a.ok("/api/dms/sync/history?limit=1000").await;
    assert_eq!(items(&all).len(), 12);
    assert!(all["next_cursor"].is_null());
    let ids: Vec<i64> = items(&all)
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    // limit=0 means every row, as the CLI's --limit 0.
    let zero = a.ok("/api/dms/sync/history?limit=0").await;
    assert_eq!(items(&zero).len(), 12);
    assert!(zero["next_cursor"].is_null());
    let runs = a.ok("/api/dms/runs?limit=0").await;
    assert!(!items(&runs).is_empty() && runs["next_cursor"].is_null());

    for (q, n) in [
        ("backup=backup1", 6),
        ("symbol=US.AAPL", 8),
        ("interval=1d", 4),
        ("status=success", 12),
        ("status=failed", 0),
        ("backup=backup2&symbol=US.MSFT&interval=1m", 2),
        ("since=1h", 12),
        ("since=2200-01-01", 0),
        ("until=2000-01-01", 0),
        ("run=1", 6),
        // An age reaching past the earliest representable time: everything, no panic.
        ("since=1000000000d", 12),
    ] {
        let v = a.ok(&format!("/api/dms/sync/history?{q}")).await;
        assert_eq!(items(&v).len(), n, "{q}");
    }
    // Pages of 5: 5 + 5 + 2, no row twice, none missed.
    let mut seen = Vec::new();
    let mut cursor: Option<i64> = None;
    loop {
        let path = match cursor {
            Some(c) => format!("/api/dms/sync/history?limit=5&cursor={c}"),
            None => "/api/dms/sync/history?limit=5".into(),
        };
        let v = a.ok(&path).await;
        seen.extend(items(&v).iter().map(|r| r["id"].as_i64().unwrap()));
        match v["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    // Huge windows are read, not overflowed.
    let m = a.ok("/api/dms/sync/metrics?window=1000000000d").await;
    assert_eq!(m["overall"]["syncs"], 12, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_metrics_and_tasks_answer() {
    let a = api(None).await;
    let st = a.ok("/api/dms/sync/status").await;
    assert_eq!(st.as_array().unwrap().len(), 6);
    assert_eq!(st[0]["behind"], false);
    let behind = a.ok("/api/dms/sync/status?behind=true").await;
    assert_eq!(behind.as_array().unwrap().len(), 0);
    let one = a
        .ok("/api/dms/sync/status?backup=backup1&symbol=US.AAPL&interval=1d")
        .await;
    assert_eq!(one.as_array().unwrap().len(), 1);
    let m = a.ok("/api/dms/sync/metrics?window=7d").await;
    assert_eq!(m["overall"]["syncs"], 12);
    assert_eq!(m["overall"]["success_rate"], 1.0);
    assert_eq!(m["backups"][0]["backup"], "backup1");
    assert_eq!(m["backups"][0]["failures"], 0);
    assert!(m["backups"][0]["avg_duration_seconds"].as_f64().is_some());
    assert_eq!(a.ok("/api/dms/tasks").await, serde_json::json!([]));
    let text = a
        .http
        .get(format!("{}/metrics", a.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // A current series is counted per backup; it has no per-series line by default
    // (`api.metrics_series: attention`).
    assert!(
        text.contains(r#"dms_backup_series{backup="backup1",state="current"} 3"#),
        "{text}"
    );
    assert!(
        !text.contains(r#"dms_sync_lag_seconds{backup="backup1",symbol="US.AAPL""#),
        "{text}"
    );
    assert!(text.contains(r#"dms_node_up{node="primary"} 1"#), "{text}");
    let h = a.ok("/healthz").await;
    assert_eq!(h["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_get_a_400_with_a_message() {
    let a = api(None).await;
    for (q, needle) in [
        ("/api/dms/sync/history?limit=-1", "limit"),
        ("/api/dms/sync/history?limit=10001", "limit"),
        ("/api/dms/sync/history?limit=abc", "not a whole number"),
        (
            "/api/dms/sync/history?limit=99999999999999999999",
            "not a whole number",
        ),
        (
            "/api/dms/sync/history?since=yesterday-ish",
            "cannot read time",
        ),
        ("/api/dms/sync/history?until=2999-01-01", "out of range"),
        ("/api/dms/sync/history?status=great", "not one of"),
        ("/api/dms/sync/history?cursor=x", "cursor"),
        ("/api/dms/sync/history?backup=a&backup=b", "twice"),
        ("/api/dms/sync/history?bakup=backup1", "unknown parameter"),
        ("/api/dms/sync/status?behind=maybe", "true or false"),
        ("/api/dms/sync/metrics?window=forever", "window"),
        (
            "/api/dms/sync/history?backup=nosuch",
            // The history reads disabled backups too.
            "no backup is called \"nosuch\"; the backups are: backup1, backup2",
        ),
        (
            "/api/dms/sync/status?backup=nosuch",
            "no enabled backup is called \"nosuch\"",
        ),
    ] {
        let (code, v) = a.get(q, None).await;
        assert_eq!(code, 400, "{q}: {v}");
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{q}: {msg}");
    }
    let (code, v) = a.get("/api/dms/nothing/here", None).await;
    assert_eq!(code, 404, "{v}");
    let r = a
        .http
        .post(format!("{}/api/dms/tasks/nope/run", a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_every_api_route_needs_it() {
    let a = api(Some("t0p-s3cret")).await;
    for path in [
        "/api/dms/sync/history",
        "/api/dms/sync/status",
        "/api/dms/sync/metrics",
        "/api/dms/tasks",
    ] {
        let (code, v) = a.get(path, None).await;
        assert_eq!(code, 401, "{path} without a token: {v}");
        assert!(
            !v.to_string().contains("US.AAPL"),
            "no data without the token"
        );
        let (code, _) = a.get(path, Some("wrong")).await;
        assert_eq!(code, 401, "{path} with a wrong token");
        let (code, _) = a.get(path, Some("t0p-s3cret")).await;
        assert_eq!(code, 200, "{path} with the token");
    }
    let r = a
        .http
        .post(format!("{}/api/dms/tasks/x/run", a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Liveness and scraping stay open.
    assert_eq!(a.get("/healthz", None).await.0, 200);
}

#[test]
fn a_non_loopback_listen_without_a_token_is_refused() {
    let p = Project::with_sync(&sync_yaml(100, 1, "api:\n  listen: 0.0.0.0:8686\n"));
    let out = p.cli(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a loopback address; set api.token"));
    // A token anyone could guess is no lock on a network.
    let p = Project::with_sync(&sync_yaml(
        100,
        1,
        "api:\n  listen: 0.0.0.0:8686\n  token: abc\n",
    ));
    let out = p.cli(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16 characters"));
    let p = Project::with_sync(&sync_yaml(
        100,
        1,
        "api:\n  listen: 0.0.0.0:8686\n  token: 0123456789abcdef0123\n",
    ));
    assert!(p.cli(&["config", "check"]).status.success());
}
