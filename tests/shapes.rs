//! One JSON shape per kind of object (README "JSON shapes"): the CLI's `--json` and the API give
//! the same fields with the same values for history rows, status rows, metrics, tasks and runs,
//! compared field by field against a real `dms run` on the same project; runs per task from
//! both sides; `POST …/run` answers 202 with the run id to poll.

use crate::helper::daemon::{DaemonProcess, free_port};
use crate::helper::project::{Project, bars, put, sync_yaml};
use dms::model::{NANOS_PER_DAY, NANOS_PER_SEC};
use serde_json::Value;
use std::collections::BTreeSet;

const TASKS: &str = r#"tasks:
  - name: nightly
    schedule: "30 16 * * Mon-Fri"
    timezone: America/New_York
  - name: hourly
    schedule: "5 * * * *"
    enabled: false
"#;

/// The fields of each kind of object, as README "JSON shapes" lists them.
const HISTORY_ROW: &[&str] = &[
    "id",
    "run_id",
    "backup",
    "symbol",
    "interval",
    "mode",
    "started_at",
    "finished_at",
    "status",
    "records",
    "error",
    "window_start",
    "window_end",
];
const RUN: &[&str] = &[
    "id",
    "task",
    "trigger",
    "started_at",
    "finished_at",
    "duration_seconds",
    "status",
    "error",
    "warning",
    "syncs",
    "failed",
    "interrupted",
    "records",
];
const STATUS_ROW: &[&str] = &[
    "backup",
    "symbol",
    "interval",
    "state",
    "checkpoint",
    "primary_newest",
    "backup_newest",
    "lag_seconds",
    "behind",
    "tasks",
    "future",
    "stale",
    "error",
    "last_status",
    "last_error",
    "updated_at",
];
const TASK: &[&str] = &[
    "name", "enabled", "schedule", "timezone", "next_run", "script", "running", "last_run",
];
const METRICS: &[&str] = &["window", "since", "overall", "backups"];
const METRICS_OVERALL: &[&str] = &[
    "syncs",
    "successes",
    "failures",
    "interrupted",
    "success_rate",
    "avg_duration_seconds",
    "records",
    "max_lag_seconds",
    "behind",
];
const METRICS_BACKUP: &[&str] = &[
    "backup",
    "syncs",
    "successes",
    "failures",
    "interrupted",
    "success_rate",
    "avg_duration_seconds",
    "records",
    "max_lag_seconds",
    "behind",
];

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

#[track_caller]
fn assert_shape(v: &Value, fields: &[&str], what: &str) {
    let want: BTreeSet<String> = fields.iter().map(|f| f.to_string()).collect();
    assert_eq!(keys(v), want, "{what}: {v:#}");
}

/// Every wall-clock and data time in `v` (keys ending in `_at`, `next_run`, `since`, the
/// data times) is RFC 3339 UTC.
fn assert_times_are_rfc3339_utc(v: &Value) {
    const TIMES: &[&str] = &[
        "started_at",
        "finished_at",
        "updated_at",
        "next_run",
        "since",
        "window_start",
        "window_end",
        "checkpoint",
        "primary_newest",
        "backup_newest",
    ];
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if TIMES.contains(&k.as_str())
                    && let Some(s) = x.as_str()
                {
                    assert!(
                        s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok(),
                        "{k}: {s:?} is not RFC 3339 UTC"
                    );
                }
                assert_times_are_rfc3339_utc(x);
            }
        }
        Value::Array(a) => a.iter().for_each(assert_times_are_rfc3339_utc),
        _ => {}
    }
}

fn cli_json(p: &Project, args: &[&str]) -> Value {
    let out = p.cli(args);
    assert!(
        out.status.success(),
        "dms {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "dms {args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn without(mut v: Value, key: &str) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.remove(key);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_the_api_give_every_object_in_one_shape() {
    let port = free_port();
    let p = Project::with_sync(&sync_yaml(
        100,
        1,
        &format!("api:\n  listen: 127.0.0.1:{port}\n"),
    ));
    p.write("config/task.yaml", TASKS);
    let minute = 60 * NANOS_PER_SEC;
    let end = dms::model::now_nanos() / minute * minute;
    for sym in ["US.AAPL", "US.MSFT"] {
        put(p.node("primary").as_ref(), bars(sym, "1m", 60, end, minute)).await;
    }
    put(
        p.node("primary").as_ref(),
        bars(
            "US.AAPL",
            "1d",
            5,
            end / NANOS_PER_DAY * NANOS_PER_DAY,
            NANOS_PER_DAY,
        ),
    )
    .await;

    // Without a daemon: a task run and a manual sync print run objects with their history.
    let run = cli_json(&p, &["task", "run", "nightly", "--json"]);
    let mut fields = RUN.to_vec();
    fields.push("history");
    assert_shape(&run, &fields, "dms task run --json");
    assert_eq!(run["task"], "nightly");
    assert_eq!(run["trigger"], "manual");
    assert_eq!(run["status"], "success");
    assert_eq!((&run["syncs"], &run["failed"]), (&6.into(), &0.into()));
    assert_eq!(run["records"], 2 * (60 + 60 + 5));
    let history = run["history"].as_array().unwrap();
    assert_eq!(history.len(), 6);
    for h in history {
        assert_shape(h, HISTORY_ROW, "a run's history row");
        assert_eq!(h["run_id"], run["id"]);
    }
    assert_times_are_rfc3339_utc(&run);
    let sync = cli_json(&p, &["sync", "--json"]);
    assert_shape(&sync, &fields, "dms sync --json");
    assert_eq!(sync["task"], "@sync");
    let once = cli_json(&p, &["run", "--once", "--json"]);
    assert_eq!(once.as_array().map(Vec::len), Some(1), "one enabled task");
    assert_shape(&once[0], &fields, "dms run --once --json");

    let d = DaemonProcess::start(p.root(), port).await;
    // The daemon's first check finds everything current and records nothing new; wait for
    // it so both sides read the same history.
    d.wait_for("the first check pass", 20, || async {
        !d.get("/api/dms/runs?task=@check").await["items"]
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r["status"] == "running"))
            && d.get("/healthz").await["status"] == "ok"
    })
    .await;

    // POST …/run: 202 with the run id and where to poll it.
    let r = dms::node::http_client_builder()
        .build()
        .expect("http client")
        .post(format!("{}/api/dms/tasks/nightly/run", d.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let accepted: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let id = accepted["run_id"].as_i64().expect("a run id");
    assert_eq!(accepted["task"], "nightly");
    assert_eq!(location.as_deref(), Some(&*format!("/api/dms/runs/{id}")));
    d.wait_for("the triggered run to finish", 20, || async {
        d.get(&format!("/api/dms/runs/{id}")).await["status"] == "success"
    })
    .await;

    // Runs: one shape from `dms task runs`, GET /runs, GET /runs/{id} and a task's last_run.
    let api_runs = d.get("/api/dms/runs?task=nightly").await;
    let cli_runs = cli_json(&p, &["task", "runs", "nightly", "--json"]);
    assert_eq!(&api_runs["items"], &cli_runs);
    let runs = cli_runs.as_array().unwrap();
    assert_eq!(
        runs.len(),
        3,
        "task run, run --once and the API's: {cli_runs:#}"
    );
    assert_eq!(runs[0]["id"], id);
    assert_eq!(runs[0]["trigger"], "api");
    runs.iter().for_each(|r| assert_shape(r, RUN, "a run"));
    let detail = d.get(&format!("/api/dms/runs/{id}")).await;
    assert_eq!(without(detail.clone(), "history"), runs[0]);
    let cli_history = cli_json(&p, &["history", "--run", &id.to_string(), "--json"]);
    assert_eq!(detail["history"], cli_history);
    assert_eq!(cli_history.as_array().map(Vec::len), Some(6));

    // History rows: the task filter from both sides.
    let api_history = d
        .get("/api/dms/sync/history?task=nightly&limit=10000")
        .await;
    let cli_history = cli_json(
        &p,
        &["history", "--task", "nightly", "--limit", "0", "--json"],
    );
    assert_eq!(api_history["items"], cli_history);
    assert_eq!(cli_history.as_array().map(Vec::len), Some(18), "3 runs × 6");
    let all = cli_json(&p, &["history", "--limit", "0", "--json"]);
    assert_eq!(
        d.get("/api/dms/sync/history?limit=10000").await["items"],
        all
    );
    for row in all.as_array().unwrap() {
        assert_shape(row, HISTORY_ROW, "a history row");
    }

    // Tasks: last_run is a run object on both sides.
    let api_tasks = d.get("/api/dms/tasks").await;
    let cli_tasks = cli_json(&p, &["task", "list", "--json"]);
    assert_eq!(api_tasks, cli_tasks);
    for t in cli_tasks.as_array().unwrap() {
        assert_shape(t, TASK, "a task");
    }
    assert_eq!(cli_tasks[0]["last_run"], runs[0]);
    assert!(cli_tasks[1]["last_run"].is_null(), "hourly never ran");
    assert!(
        cli_tasks[1]["next_run"].is_null(),
        "a disabled task does not fire"
    );

    // Status rows.
    let api_status = d.get("/api/dms/sync/status").await;
    let cli_status = cli_json(&p, &["status", "--json"]);
    assert_eq!(api_status, cli_status);
    assert_eq!(cli_status.as_array().map(Vec::len), Some(6));
    for s in cli_status.as_array().unwrap() {
        assert_shape(s, STATUS_ROW, "a status row");
    }

    // Metrics: the same report, overall included (`since` is "now − window" on each side).
    let api_metrics = d.get("/api/dms/sync/metrics?window=7d").await;
    let cli_metrics = cli_json(&p, &["metrics", "--window", "7d", "--json"]);
    assert_shape(&cli_metrics, METRICS, "metrics");
    assert_shape(&cli_metrics["overall"], METRICS_OVERALL, "overall metrics");
    for b in cli_metrics["backups"].as_array().unwrap() {
        assert_shape(b, METRICS_BACKUP, "a backup's metrics");
    }
    assert_eq!(
        without(api_metrics, "since"),
        without(cli_metrics.clone(), "since")
    );
    assert_eq!(cli_metrics["overall"]["failures"], 0);
    assert_eq!(
        cli_metrics["overall"]["records"].as_i64(),
        Some(
            cli_metrics["backups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["records"].as_i64().unwrap())
                .sum()
        )
    );

    for v in [
        &api_runs,
        &detail,
        &api_tasks,
        &api_status,
        &all,
        &cli_metrics,
    ] {
        assert_times_are_rfc3339_utc(v);
    }
    assert_times_are_rfc3339_utc(&d.get("/healthz").await);
    assert!(
        d.get("/healthz").await["started_at"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z'))
    );

    // Pages of runs, and the bad inputs.
    let page = d.get("/api/dms/runs?task=nightly&limit=2").await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    let rest = d
        .get(&format!(
            "/api/dms/runs?task=nightly&limit=2&cursor={}",
            page["next_cursor"]
        ))
        .await;
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(1));
    assert!(rest["next_cursor"].is_null());
    let http = dms::node::http_client_builder()
        .build()
        .expect("http client");
    for (path, code, needle) in [
        ("/api/dms/runs/999999", 404, "no run 999999"),
        ("/api/dms/runs/abc", 400, "not a number"),
        ("/api/dms/runs?task=nope", 400, "no task is called \"nope\""),
        (
            "/api/dms/sync/history?task=nope",
            400,
            "no task is called \"nope\"",
        ),
    ] {
        let r = http.get(format!("{}{path}", d.url)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), code, "{path}");
        let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains(needle)),
            "{path}: {body}"
        );
    }
    for args in [
        &["task", "runs", "nope"][..],
        &["history", "--task", "nope"],
    ] {
        let out = p.cli(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no task is called \"nope\""),
            "{args:?}"
        );
    }
    // A task renamed in task.yaml keeps its recorded runs within reach.
    p.write(
        "config/task.yaml",
        &TASKS.replace("name: nightly", "name: nightly_v2"),
    );
    let renamed = cli_json(&p, &["task", "runs", "nightly", "--json"]);
    assert_eq!(renamed, cli_runs);
    let rows = cli_json(
        &p,
        &["history", "--task", "nightly", "--limit", "0", "--json"],
    );
    assert_eq!(rows.as_array().map(Vec::len), Some(18));
    let never = p.cli(&["task", "runs", "nightly_v3"]);
    assert_eq!(never.status.code(), Some(2));
    // dms's own runs are there under their pseudo-task names.
    let syncs = cli_json(&p, &["task", "runs", "@sync", "--json"]);
    assert_eq!(syncs[0]["id"], sync["id"]);
    assert_eq!(without(sync.clone(), "history"), syncs[0]);
}
