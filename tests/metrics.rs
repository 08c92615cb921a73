//! `/metrics` of a real `dms run`: every series there from the first scrape, the text format
//! 0.0.4 accepted by the real `promtool check metrics`, OpenMetrics unless the scraper asks for
//! text, series in a stable order, and counters that go on from the history after a restart.

use crate::helper::daemon::{DaemonProcess, free_port};
use crate::helper::project::{Project, bars, put, sync_yaml};
use crate::helper::prometheus::promtool_check;
use dms::model::NANOS_PER_SEC;
use std::collections::BTreeMap;

const TEXT: &str = "text/plain; version=0.0.4";
/// What Prometheus 2.x sends.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
    application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A project on `port` with two tasks (one scheduled), 120 one-minute bars of two symbols on
/// the primary; `check` is the `sync.incremental` block's extra lines.
async fn project(port: u16, check: &str) -> Project {
    let sync = sync_yaml(100, 1, &format!("api:\n  listen: 127.0.0.1:{port}\n"))
        .replace("  incremental:\n", &format!("  incremental:\n{check}"));
    let p = Project::with_sync(&sync);
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: nightly\n    schedule: \"0 3 * * *\"\n  - name: adhoc\n",
    );
    let minute = 60 * NANOS_PER_SEC;
    let end = dms::model::now_nanos() / minute * minute;
    for sym in ["US.AAPL", "US.MSFT"] {
        put(
            p.node("primary").as_ref(),
            bars(sym, "1m", 120, end, minute),
        )
        .await;
    }
    p
}

/// A scrape: status, content type and body.
async fn scrape(d: &DaemonProcess, accept: Option<&str>) -> (u16, String, String) {
    let mut r = dms::node::http_client_builder()
        .build()
        .expect("http client")
        .get(format!("{}/metrics", d.url));
    if let Some(a) = accept {
        r = r.header("accept", a);
    }
    let r = r.send().await.expect("the daemon answers");
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ct, r.text().await.expect("a body"))
}

/// The sample lines of an exposition, in order: (series, value).
fn samples(body: &str) -> Vec<(String, String)> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("series and value");
            (series.to_string(), value.to_string())
        })
        .collect()
}

fn values(body: &str) -> BTreeMap<String, f64> {
    samples(body)
        .into_iter()
        .map(|(s, v)| (s, v.parse().expect("a number")))
        .collect()
}

/// OpenMetrics writes bucket bounds as floats (`le="1.0"`), 0.0.4 as Go does (`le="1"`).
fn same_bounds(series: &str) -> String {
    series.replace(".0\"}", "\"}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_is_there_from_the_first_scrape_and_promtool_accepts_the_text_format() {
    let port = free_port();
    // No check loop and no run: nothing has happened yet.
    let p = project(port, "    enabled: false\n").await;
    let d = DaemonProcess::start(p.root(), port).await;

    let (status, ct, text) = scrape(&d, Some(TEXT)).await;
    assert_eq!(status, 200);
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    let Some(lint) = promtool_check(&text) else {
        return;
    };
    lint.unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(!text.contains("# EOF"));

    let v = values(&text);
    let zero = |series: &str| {
        assert_eq!(v.get(series), Some(&0.0), "{series} in\n{text}");
    };
    for b in ["backup1", "backup2"] {
        zero(&format!(
            r#"dms_syncs_total{{backup="{b}",status="failed"}}"#
        ));
        zero(&format!(
            r#"dms_syncs_total{{backup="{b}",status="success"}}"#
        ));
        zero(&format!(r#"dms_sync_records_total{{backup="{b}"}}"#));
        zero(&format!(
            r#"dms_sync_duration_seconds_bucket{{backup="{b}",le="+Inf"}}"#
        ));
        zero(&format!(
            r#"dms_sync_duration_seconds_count{{backup="{b}"}}"#
        ));
        for state in ["current", "lagging", "unknown"] {
            zero(&format!(
                r#"dms_backup_series{{backup="{b}",state="{state}"}}"#
            ));
        }
    }
    // Every series is behind (never synced): 2 per backup.
    for b in ["backup1", "backup2"] {
        let behind = |s: &str| v.get(&s.replace("B", b)).copied();
        assert_eq!(
            behind(r#"dms_backup_series{backup="B",state="behind"}"#),
            Some(2.0)
        );
        assert_eq!(behind(r#"dms_backup_behind_series{backup="B"}"#), Some(2.0));
    }
    // The scheduled task for every trigger the daemon starts it with, the other for the API.
    for trigger in ["api", "cron", "catch-up"] {
        for status in ["success", "failed", "interrupted"] {
            zero(&format!(
                r#"dms_task_runs_total{{task="nightly",trigger="{trigger}",status="{status}"}}"#
            ));
        }
    }
    zero(r#"dms_task_runs_total{task="nightly",trigger="cron",status="skipped"}"#);
    zero(r#"dms_task_runs_total{task="adhoc",trigger="api",status="failed"}"#);
    assert!(!text.contains(r#"task="adhoc",trigger="cron""#));
    zero(r#"dms_task_last_run_timestamp_seconds{task="nightly"}"#);
    // The check loop is off: no @check series; reconcile passes are on by default.
    assert!(!text.contains(r#"task="@check""#));
    zero(r#"dms_task_runs_total{task="@reconcile",trigger="cron",status="failed"}"#);
    for n in ["primary", "backup1", "backup2"] {
        assert_eq!(v.get(&format!(r#"dms_node_up{{node="{n}"}}"#)), Some(&1.0));
    }

    // Without an Accept header, and for Prometheus itself: OpenMetrics, the same samples.
    for accept in [None, Some(PROMETHEUS_ACCEPT), Some("*/*")] {
        let (status, ct, om) = scrape(&d, accept).await;
        assert_eq!(status, 200);
        assert_eq!(
            ct, "application/openmetrics-text; version=1.0.0; charset=utf-8",
            "{accept:?}"
        );
        assert!(om.ends_with("# EOF\n"));
        assert!(om.contains("# TYPE dms_syncs counter\n"));
        let om: Vec<(String, String)> = samples(&om)
            .into_iter()
            .map(|(s, v)| (same_bounds(&s), v))
            .collect();
        assert_eq!(om, samples(&text), "{accept:?}");
    }

    // The same series in the same order at every scrape, sorted by label values.
    let order = |body: &str| {
        samples(body)
            .into_iter()
            .map(|(s, _)| s)
            .collect::<Vec<_>>()
    };
    let first = order(&text);
    for _ in 0..3 {
        assert_eq!(order(&scrape(&d, Some(TEXT)).await.2), first);
    }
    let syncs: Vec<&String> = first
        .iter()
        .filter(|s| s.starts_with("dms_syncs_total"))
        .collect();
    let mut sorted = syncs.clone();
    sorted.sort();
    assert_eq!(syncs, sorted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_go_on_from_the_history_after_a_restart() {
    let port = free_port();
    let p = project(port, "    check_interval: 0.5\n").await;
    let mut d = DaemonProcess::start(p.root(), port).await;
    d.wait_for("the catch-up syncs", 30, || async {
        let st = d.get("/api/dms/sync/status").await;
        st.as_array().is_some_and(|a| {
            a.len() == 4 && a.iter().all(|r| r["checkpoint"] == r["primary_newest"])
        })
    })
    .await;
    let r = dms::node::http_client_builder()
        .build()
        .expect("http client")
        .post(format!("{}/api/dms/tasks/nightly/run", d.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    d.wait_for("the task run", 20, || async {
        let t = d.get("/api/dms/tasks").await;
        t.as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "nightly" && t["last_run"]["status"] == "success")
    })
    .await;

    let (_, _, before) = scrape(&d, Some(TEXT)).await;
    if let Some(lint) = promtool_check(&before) {
        lint.unwrap_or_else(|e| panic!("{e}\n{before}"));
    }
    let before = values(&before);
    // The counters are what the history recorded.
    let history = d
        .get("/api/dms/sync/history?backup=backup1&status=success&limit=10000")
        .await;
    let rows = history["items"].as_array().unwrap();
    let synced: i64 = rows.iter().map(|r| r["records"].as_i64().unwrap()).sum();
    let key = r#"dms_syncs_total{backup="backup1",status="success"}"#;
    assert_eq!(before[key], rows.len() as f64);
    assert!(before[key] >= 2.0, "{before:?}");
    assert_eq!(
        before[r#"dms_sync_records_total{backup="backup1"}"#],
        synced as f64
    );
    assert!(synced >= 240, "{synced}");
    assert_eq!(
        before[r#"dms_task_runs_total{task="nightly",trigger="api",status="success"}"#],
        1.0
    );
    assert!(
        before[r#"dms_task_runs_total{task="@check",trigger="check",status="success"}"#] >= 1.0
    );
    assert!(before[r#"dms_task_last_run_timestamp_seconds{task="nightly"}"#] > 1e9);

    assert!(d.terminate().success());
    let d = DaemonProcess::start(p.root(), port).await;
    let (_, _, after) = scrape(&d, Some(TEXT)).await;
    let after = values(&after);
    // Nothing new to copy: every counter, bucket, sum and last-run time is where it was.
    let counters: Vec<&String> = before
        .keys()
        .filter(|k| {
            k.contains("_total{")
                || k.contains("_bucket{")
                || k.contains("_sum{")
                || k.contains("_count{")
                || k.starts_with("dms_task_last_run")
        })
        .collect();
    assert!(counters.len() > 40, "{counters:?}");
    for k in counters {
        assert_eq!(after.get(k), Some(&before[k]), "{k} after the restart");
    }
}
