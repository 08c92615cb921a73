//! The Grafana dashboard and the Prometheus scrape snippet in `contrib/grafana/` against a real
//! daemon's `/metrics`: every metric the dashboard queries is one the daemon exports (with the
//! labels the queries use), every metric the daemon exports has a panel, and a real Prometheus
//! scraping a daemon that has run nothing yet has data for every panel's query.

use crate::helper::daemon::{DaemonProcess, free_port};
use crate::helper::project::{Project, bars, put, sync_yaml};
use crate::helper::prometheus::PrometheusServer;
use dms::model::NANOS_PER_SEC;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

fn contrib(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib/grafana")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Sample names of a text exposition, each with the label names seen on it.
fn samples(exposition: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in exposition.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..end].to_string()).or_default();
        if line[end..].starts_with('{') {
            // name="value" pairs; values may hold escaped quotes.
            let mut rest = &line[end + 1..];
            while let Some(eq) = rest.find("=\"") {
                labels.insert(rest[..eq].trim_start_matches(',').to_string());
                let mut i = eq + 2;
                let bytes = rest.as_bytes();
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                rest = &rest[(i + 1).min(rest.len())..];
                if rest.starts_with('}') {
                    break;
                }
            }
        }
    }
    out
}

/// Every `dms_…` metric name in a PromQL expression, with the label names its selector
/// matches on (`{backup=~"…", status="failed"}`).
fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("dms_") {
        let tail = &rest[at..];
        let len = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..len].to_string();
        let mut labels = Vec::new();
        let after = &tail[len..];
        if let Some(body) = after.strip_prefix('{') {
            let close = body.find('}').expect("a closed selector");
            for m in body[..close].split(',') {
                let label = m.split(['=', '!']).next().unwrap_or("").trim();
                if !label.is_empty() {
                    labels.push(label.to_string());
                }
            }
        }
        out.push((name, labels));
        rest = after;
    }
    out
}

/// The label names in every `by (…)` of an expression.
fn grouping(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("by (").or_else(|| rest.find("by(")) {
        let open = at + rest[at..].find('(').unwrap_or(0) + 1;
        let close = open + rest[open..].find(')').expect("a closed by()");
        out.extend(
            rest[open..close]
                .split(',')
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty()),
        );
        rest = &rest[close..];
    }
    out
}

/// Every PromQL text of the dashboard: panel targets (rows included) and variable queries.
fn queries(dashboard: &Value) -> Vec<String> {
    fn walk(panels: &Value, out: &mut Vec<String>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push(e.to_string());
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(q) = v["query"]["query"].as_str() {
            out.push(q.to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_grafana_dashboard_queries_is_one_the_daemon_exports() {
    // A daemon that has done a catch-up sync and a task run, so every metric family has
    // samples (prometheus-client leaves out families without any).
    // Every backup·series listed (`metrics_series: all`): the per-series panels show the
    // current ones too.
    let port = free_port();
    let p = Project::with_sync(&sync_yaml(
        100,
        1,
        &format!("api:\n  listen: 127.0.0.1:{port}\n  metrics_series: all\n"),
    ));
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: nightly\n    schedule: \"0 3 * * *\"\n",
    );
    let minute = 60 * NANOS_PER_SEC;
    let end = dms::model::now_nanos() / minute * minute;
    put(
        p.node("primary").as_ref(),
        bars("US.AAPL", "1m", 50, end, minute),
    )
    .await;
    let d = DaemonProcess::start(p.root(), port).await;
    d.wait_for("the catch-up sync", 20, || async {
        let st = d.get("/api/dms/sync/status").await;
        st.as_array().is_some_and(|a| {
            a.len() == 2 && a.iter().all(|r| r["checkpoint"] == r["primary_newest"])
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
        t[0]["last_run"]["status"] == "success"
    })
    .await;
    let exported = samples(&d.text("/metrics").await);
    assert!(exported.contains_key("dms_syncs_total"), "{exported:?}");

    let dashboard: Value = serde_json::from_str(&contrib("dms.json")).expect("dms.json is JSON");
    let queries = queries(&dashboard);
    assert!(queries.len() >= 10, "{queries:?}");
    let mut used = BTreeSet::new();
    for q in &queries {
        let sel = selectors(q);
        assert!(!sel.is_empty(), "a query without a dms metric: {q}");
        let mut in_expr: BTreeSet<&str> = TARGET_LABELS.into_iter().collect();
        for (name, labels) in &sel {
            let Some(have) = exported.get(name) else {
                panic!("the dashboard queries {name}, which /metrics does not export: {q}");
            };
            in_expr.extend(have.iter().map(String::as_str));
            for l in labels {
                assert!(
                    have.contains(l) || TARGET_LABELS.contains(&l.as_str()),
                    "{name} has no label {l:?} (it has {have:?}): {q}"
                );
            }
            used.insert(name.clone());
        }
        for l in grouping(q) {
            assert!(
                in_expr.contains(l.as_str()),
                "by ({l}) on no such label: {q}"
            );
        }
        // `label_values(metric, label)` variables.
        if let Some(args) = q.strip_prefix("label_values(") {
            let label = args
                .trim_end_matches(')')
                .rsplit(',')
                .next()
                .unwrap()
                .trim();
            assert!(in_expr.contains(label), "no label {label}: {q}");
        }
    }
    // And the other way round: every metric the daemon exports has a panel.
    let families: BTreeSet<String> = exported
        .keys()
        .map(|n| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n)
                .to_string()
        })
        .collect();
    let used_families: BTreeSet<String> = used
        .iter()
        .map(|n| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n)
                .to_string()
        })
        .collect();
    let unused: Vec<&String> = families.difference(&used_families).collect();
    assert!(unused.is_empty(), "exported but on no panel: {unused:?}");

    // The scrape snippet points Prometheus at /metrics.
    let prom: Value = yaml_serde::from_str(&contrib("prometheus.yml")).expect("prometheus.yml");
    let job = &prom["scrape_configs"][0];
    assert_eq!(job["job_name"], "dms");
    assert_eq!(job["metrics_path"], "/metrics");
    assert!(
        job["static_configs"][0]["targets"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );
}

#[test]
fn the_query_parsers_find_names_labels_and_groupings() {
    let q = r#"sum by (backup, le) (rate(dms_sync_duration_seconds_bucket{instance=~"$i", backup!="x"}[5m])) / dms_syncs_total"#;
    assert_eq!(
        selectors(q),
        [
            (
                "dms_sync_duration_seconds_bucket".to_string(),
                vec!["instance".to_string(), "backup".to_string()]
            ),
            ("dms_syncs_total".to_string(), vec![])
        ]
    );
    assert_eq!(grouping(q), ["backup", "le"]);
    let s = samples(
        "# TYPE dms_syncs counter\ndms_syncs_total{backup=\"b\\\"1\",status=\"ok\"} 3\ndms_node_up 1\n# EOF\n",
    );
    assert_eq!(
        s["dms_syncs_total"],
        BTreeSet::from(["backup".to_string(), "status".to_string()])
    );
    assert!(s["dms_node_up"].is_empty());
}

/// A dashboard query as Prometheus gets it: Grafana's variables filled in (every instance
/// and backup, a one-minute rate window).
fn as_prometheus_query(expr: &str) -> String {
    expr.replace("$instance", ".*")
        .replace("$backup", ".*")
        .replace("$__rate_interval", "1m")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_has_data_for_every_dashboard_panel_before_any_run() {
    // A daemon that has run nothing (no check loop, no task run yet). The primary holds two
    // series, one with a future-dated bar; backup1 already holds the older half of one (so it
    // has a lag), the rest never synced (behind).
    let port = free_port();
    let p = Project::with_sync(
        &sync_yaml(100, 1, &format!("api:\n  listen: 127.0.0.1:{port}\n"))
            .replace("  incremental:\n", "  incremental:\n    enabled: false\n"),
    );
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: nightly\n    schedule: \"0 3 * * *\"\n",
    );
    let minute = 60 * NANOS_PER_SEC;
    let end = dms::model::now_nanos() / minute * minute;
    let aapl = bars("US.AAPL", "1m", 60, end, minute);
    put(p.node("primary").as_ref(), aapl.clone()).await;
    put(p.node("backup1").as_ref(), aapl[..30].to_vec()).await;
    let mut msft = bars("US.MSFT", "1m", 30, end, minute);
    msft.extend(bars(
        "US.MSFT",
        "1m",
        1,
        end + 30 * 86_400 * NANOS_PER_SEC,
        minute,
    ));
    put(p.node("primary").as_ref(), msft).await;
    let d = DaemonProcess::start(p.root(), port).await;
    let target = format!("127.0.0.1:{port}");
    let Some(prom) = PrometheusServer::start(&target).await else {
        return;
    };

    // Three scrapes, so rate() and increase() have samples to compare.
    prom.wait_for("three scrapes of the daemon", 60, || async {
        prom.query(r#"count_over_time(dms_node_up{node="primary"}[5m])"#)
            .await
            .first()
            .and_then(|r| r["value"][1].as_str()?.parse::<f64>().ok())
            .is_some_and(|n| n >= 3.0)
    })
    .await;
    // Prometheus asked for OpenMetrics and parsed every scrape.
    let t = prom.target().await;
    assert_eq!(t["health"], "up", "{t}");
    assert_eq!(t["lastError"], "", "{t}");

    let dashboard: Value = serde_json::from_str(&contrib("dms.json")).expect("dms.json is JSON");
    let mut checked = 0;
    for expr in queries(&dashboard) {
        if let Some(args) = expr.strip_prefix("label_values(") {
            // A variable: the metric's series carry the label.
            let (metric, label) = args
                .trim_end_matches(')')
                .rsplit_once(',')
                .expect("label_values(metric, label)");
            let series = prom.series(&as_prometheus_query(metric.trim())).await;
            assert!(
                series.iter().any(|s| s[label.trim()].is_string()),
                "no {label} on {metric}: {series:?}"
            );
        } else {
            let q = as_prometheus_query(&expr);
            let result = prom.query(&q).await;
            assert!(
                !result.is_empty(),
                "no data for a dashboard panel: {q}\n/metrics:\n{}",
                d.text("/metrics").await
            );
        }
        checked += 1;
    }
    assert!(checked >= 20, "{checked}");

    // The failure panels say 0, not "No data".
    let failed = prom
        .query(&as_prometheus_query(
            r#"sum(increase(dms_syncs_total{instance=~"$instance", backup=~"$backup", status="failed"}[24h]))"#,
        ))
        .await;
    assert_eq!(failed[0]["value"][1], "0");
    let per_backup = prom
        .query(r#"sum by (backup) (increase(dms_syncs_total{status="failed"}[1m]))"#)
        .await;
    assert_eq!(per_backup.len(), 2, "{per_backup:?}");
    // What the data says: backup1 lags US.AAPL by 30 minutes; three series are behind; the
    // future-dated bar is flagged for both backups.
    let lag = prom
        .query(r#"dms_sync_lag_seconds{backup="backup1",symbol="US.AAPL"}"#)
        .await;
    assert_eq!(lag[0]["value"][1], "1800");
    let behind = prom.query("sum(dms_backup_behind_series)").await;
    assert_eq!(behind[0]["value"][1], "3");
    assert_eq!(prom.query("dms_sync_future == 1").await.len(), 2);
}

/// `contrib/prometheus/alerts.yml`: `promtool check rules` passes; a real Prometheus loads
/// every rule healthy, and the rules see a daemon's state — a backup that never synced its
/// series is behind (DmsBackupBehind pending), while nothing that did not happen fires. The
/// metrics the rules read agree with each other: the behind count, the behind state and the
/// per-series flags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_alert_rules_pass_promtool_and_a_real_prometheus_evaluates_them() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/prometheus/alerts.yml");
    let Some(checked) = crate::helper::prometheus::promtool_check_rules(&rules) else {
        return;
    };
    let checked = checked.unwrap_or_else(|e| panic!("promtool check rules: {e}"));
    assert!(checked.contains("SUCCESS"), "{checked}");

    let port = free_port();
    let p = Project::with_sync(
        &sync_yaml(100, 1, &format!("api:\n  listen: 127.0.0.1:{port}\n"))
            .replace("  incremental:\n", "  incremental:\n    enabled: false\n"),
    );
    let minute = 60 * NANOS_PER_SEC;
    let end = dms::model::now_nanos() / minute * minute;
    put(
        p.node("primary").as_ref(),
        bars("US.AAPL", "1m", 60, end, minute),
    )
    .await;
    let d = DaemonProcess::start(p.root(), port).await;
    let Some(prom) =
        PrometheusServer::start_with_rules(&format!("127.0.0.1:{port}"), Some(&rules)).await
    else {
        return;
    };
    prom.wait_for("the rules to be evaluated", 60, || async {
        let data = prom.api("/api/v1/rules").await;
        data["groups"][0]["rules"].as_array().is_some_and(|r| {
            r.iter()
                .all(|r| r["lastEvaluation"] != "0001-01-01T00:00:00Z")
        })
    })
    .await;
    let data = prom.api("/api/v1/rules").await;
    let rules = data["groups"][0]["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 9, "{data:#}");
    for r in rules {
        assert_eq!(r["health"], "ok", "{r:#}");
    }
    prom.wait_for(
        "DmsBackupBehind to be pending for both backups",
        60,
        || async {
            let alerts = prom.api("/api/v1/alerts").await;
            alerts["alerts"].as_array().map(|a| {
                a.iter()
                    .filter(|a| a["labels"]["alertname"] == "DmsBackupBehind")
                    .count()
            }) == Some(2)
        },
    )
    .await;
    let alerts = prom.api("/api/v1/alerts").await;
    for a in alerts["alerts"].as_array().expect("alerts") {
        assert_eq!(a["labels"]["alertname"], "DmsBackupBehind", "{a:#}");
        assert_eq!(a["state"], "pending", "15 minutes have not passed: {a:#}");
    }
    // One series per backup, never synced: behind in every metric that says so.
    for b in ["backup1", "backup2"] {
        for q in [
            format!(r#"dms_backup_behind_series{{backup="{b}"}}"#),
            format!(r#"dms_backup_series{{backup="{b}",state="behind"}}"#),
            format!(r#"sum(dms_sync_behind{{backup="{b}"}})"#),
        ] {
            let v = prom.query(&q).await;
            assert_eq!(v[0]["value"][1], "1", "{q}: {v:?}");
        }
        let v = prom
            .query(&format!(
                r#"dms_reconcile_last_timestamp_seconds{{backup="{b}",kind="exact"}}"#
            ))
            .await;
        assert_eq!(v[0]["value"][1], "0", "never reconciled: {v:?}");
    }
    drop(d);
}
