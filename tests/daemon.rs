//! The daemon as a real process: scheduled runs, a backup that dies and comes back (real
//! InfluxDB), behind flags in the API and /metrics, SIGTERM mid-sync, one daemon per history.

use crate::helper::daemon::{DaemonProcess, free_port};
use crate::helper::faulty::{Faulty, Plan};
use crate::helper::influxd::InfluxServer;
use crate::helper::project::{Project, all, bars, put, sync_yaml};
use dms::app::App;
use dms::history::Trigger;
use dms::history::{HistoryFilter, Status};
use dms::model::{NANOS_PER_SEC, SeriesKey};
use dms::sync::SyncControl;
use std::time::Duration;

fn minute() -> i64 {
    60 * NANOS_PER_SEC
}

fn status_of<'a>(st: &'a serde_json::Value, backup: &str) -> &'a serde_json::Value {
    st.as_array()
        .unwrap()
        .iter()
        .find(|r| r["backup"] == backup)
        .unwrap_or_else(|| panic!("no status row for {backup}: {st}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_runs_on_schedule_flags_a_dead_backup_and_catches_it_up_by_itself() {
    let Some(mut influx) = InfluxServer::start().await else {
        return;
    };
    let port = free_port();
    let p = Project::with_sync(&crate::helper::project::mixed_daemon_yaml(
        &influx.url(),
        "dms_daemon",
        port,
    ));
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: every2s\n    schedule: \"*/2 * * * * *\"\n    timezone: Europe/Berlin\n",
    );
    let s = SeriesKey::new("US.AAPL", "1m");
    let end = dms::model::now_nanos() / minute() * minute();
    put(
        p.node("primary").as_ref(),
        bars("US.AAPL", "1m", 200, end - 30 * minute(), minute()),
    )
    .await;

    let mut d = DaemonProcess::start(p.root(), port).await;
    // The cron task runs by itself.
    d.wait_for("a scheduled run", 15, || async {
        let t = d.get("/api/dms/tasks").await;
        t[0]["last_run"]["trigger"] == "cron" && t[0]["last_run"]["status"] == "success"
    })
    .await;
    d.wait_for("both backups caught up", 15, || async {
        let st = d.get("/api/dms/sync/status").await;
        ["backup1", "backup2"].iter().all(|b| {
            let r = status_of(&st, b);
            r["behind"] == false && r["checkpoint"] == r["primary_newest"]
        })
    })
    .await;

    // backup1 dies; thirty minutes of new bars arrive on the primary.
    influx.kill_hard();
    put(
        p.node("primary").as_ref(),
        bars("US.AAPL", "1m", 30, end, minute()),
    )
    .await;
    d.wait_for("backup1 behind, backup2 current", 20, || async {
        let st = d.get("/api/dms/sync/status?behind=true").await;
        let rows = st.as_array().unwrap();
        rows.len() == 1 && rows[0]["backup"] == "backup1"
    })
    .await;
    d.wait_for("failures and behind in /metrics", 20, || async {
        let m = d.text("/metrics").await;
        // The failed syncs counter is there from the start (at 0); now it has counted.
        let failed = m
            .lines()
            .find_map(|l| l.strip_prefix(r#"dms_syncs_total{backup="backup1",status="failed"} "#))
            .and_then(|v| v.parse::<f64>().ok());
        m.contains(r#"dms_sync_behind{backup="backup1",symbol="US.AAPL",interval="1m"} 1"#)
            && failed.is_some_and(|n| n >= 1.0)
            && m.contains(r#"dms_node_up{node="backup1"} 0"#)
    })
    .await;
    let failed = d
        .get("/api/dms/sync/history?backup=backup1&status=failed&limit=1")
        .await;
    let err = failed["items"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(err.contains("unreachable"), "{err}");
    let metrics = d.get("/api/dms/sync/metrics?window=1h").await;
    let b1 = metrics["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backup"] == "backup1")
        .unwrap()
        .clone();
    assert!(b1["failures"].as_i64().unwrap() >= 1, "{metrics}");
    assert!(b1["success_rate"].as_f64().unwrap() < 1.0);
    assert_eq!(b1["behind"], 1);

    // It comes back and catches up without anyone asking.
    influx.restart().await;
    d.wait_for("backup1 caught up by itself", 30, || async {
        let st = d.get("/api/dms/sync/status").await;
        let r = status_of(&st, "backup1");
        r["behind"] == false && r["checkpoint"] == r["primary_newest"]
    })
    .await;
    let health = d.get("/healthz").await;
    assert_eq!(health["status"], "ok", "{health}");

    assert!(d.terminate().success(), "SIGTERM exits 0");
    // Everything copied; nothing left running.
    let rows = p.history().history(&HistoryFilter::default()).unwrap();
    assert!(rows.iter().all(|r| r.status.as_str() != "running"));
    assert_eq!(all(p.node("backup2").as_ref(), &s).await.len(), 230);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_sync_leaves_consistent_checkpoints_and_interrupted_runs() {
    let port = free_port();
    let yaml = sync_yaml(500, 1, &format!("api:\n  listen: 127.0.0.1:{port}\n")).replace(
        "    initial_days: 3650",
        "    initial_days: 3650\n    check_interval: 0.2",
    );
    let p = Project::with_sync(&yaml);
    let end = dms::model::now_nanos() / minute() * minute();
    let symbols = ["A", "B", "C", "D"];
    for sym in symbols {
        put(
            p.node("primary").as_ref(),
            bars(sym, "1m", 60_000, end, minute()),
        )
        .await;
    }
    let mut d = DaemonProcess::start(p.root(), port).await;
    // Wait until the check loop is copying, then stop the daemon.
    d.wait_for("a sync in progress", 30, || async {
        let h = d.get("/api/dms/sync/history?status=running&limit=10").await;
        h["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["records"].as_i64().unwrap() > 0)
    })
    .await;
    let status = d.terminate();
    assert!(
        status.success(),
        "exit 0 after SIGTERM: {status:?}\n{}",
        d.log_text()
    );

    let db = p.history();
    let runs = db.runs(Some("@check"), 0).unwrap();
    assert_eq!(runs[0].status.as_str(), "interrupted", "{runs:?}");
    let rows = db.history(&HistoryFilter::default()).unwrap();
    assert!(
        rows.iter().all(|r| r.status.as_str() != "running"),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.error.as_deref().unwrap_or("").contains("interrupted")),
        "{rows:?}"
    );
    // The batch in flight finished and committed: each checkpoint is exactly the newest point
    // its backup holds.
    let cps = db.checkpoints().unwrap();
    let mut partial = 0;
    for b in ["backup1", "backup2"] {
        for sym in symbols {
            let s = SeriesKey::new(sym, "1m");
            let held = all(p.node(b).as_ref(), &s).await;
            let cp = cps
                .get(&dms::model::BackupSeries::new(b.to_string(), s.clone()))
                .copied();
            assert_eq!(cp, held.last().map(|pt| pt.time), "{b} {s}");
            if held.len() < 60_000 {
                partial += 1;
            }
        }
    }
    assert!(partial > 0, "the shutdown really interrupted a sync");

    // The next run resumes and completes.
    let app = p.app();
    let out = app
        .manual_sync(
            dms::sync::SyncRequest::new(dms::sync::Selection::all(), 3650),
            &SyncControl::default(),
        )
        .await
        .unwrap();
    assert_eq!(out.status, Status::Success, "{:?}", out.error);
    for b in ["backup1", "backup2"] {
        for sym in symbols {
            assert_eq!(
                all(p.node(b).as_ref(), &SeriesKey::new(sym, "1m"))
                    .await
                    .len(),
                60_000
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_on_the_daemons_history_is_refused_even_a_prune() {
    let port = free_port();
    let p = Project::with_sync(&sync_yaml(
        100,
        1,
        &format!("api:\n  listen: 127.0.0.1:{port}\n"),
    ));
    let mut d = DaemonProcess::start(p.root(), port).await;
    let out = p.cli(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in use by another dms writer") && err.contains("dms run (daemon)"),
        "{err}"
    );
    let out = p.cli(&["sync"]);
    assert_eq!(out.status.code(), Some(2), "a manual sync is refused too");
    let out = p.cli(&["history", "prune", "--older-than", "0s"]);
    assert_eq!(out.status.code(), Some(2), "pruning writes: refused too");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in use by another dms writer") && err.contains("pid"),
        "names the holder and its PID: {err}"
    );
    // Readers still work.
    assert!(p.cli(&["history"]).status.success());
    assert!(d.terminate().success());
    let out = p.cli(&["history", "prune", "--older-than", "0s"]);
    assert!(out.status.success(), "once the daemon is gone: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_still_going_is_not_overlapped_and_the_skip_is_recorded() {
    let p = Project::with_sync(&sync_yaml(10, 1, ""));
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: slow\n    schedule: \"* * * * *\"\n",
    );
    put(
        p.node("primary").as_ref(),
        bars("A", "1m", 200, dms::model::now_nanos(), minute()),
    )
    .await;
    let slow = Faulty::slow(p.node("backup1"), Plan::Healthy, Duration::from_millis(20));
    let app = std::sync::Arc::new(
        App::with_nodes(p.settings(), p.node("primary"), vec![slow.clone()], "test").unwrap(),
    );
    let daemon = dms::daemon::Daemon::new(app.clone(), tokio_util::sync::CancellationToken::new())
        .expect("daemon");
    // A cron run starts…
    daemon.trigger("slow", Trigger::Cron, false).await.unwrap();
    while !app.is_running("slow") {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // …a manual trigger while it runs is refused, and a due cron run is recorded as skipped.
    let err = daemon
        .trigger("slow", Trigger::Api, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already running"));
    let skipped = app
        .run_task("slow", Trigger::Cron, &SyncControl::default())
        .await
        .unwrap();
    assert_eq!(skipped.status, Status::Skipped);
    // A caller waiting for the run id (the API) learns the run was skipped, not started.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let again = app
        .run_task_telling("slow", Trigger::Api, &SyncControl::default(), Some(tx))
        .await
        .unwrap();
    assert_eq!(again.status, Status::Skipped);
    let told = rx.await.expect("told");
    assert_eq!((told.run_id, told.skipped), (again.run_id, true));
    while app.is_running("slow") {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let runs = p.history().runs(Some("slow"), 0).unwrap();
    assert_eq!(runs.len(), 3);
    for skipped in &runs[..2] {
        assert_eq!(skipped.status.as_str(), "skipped");
        assert!(skipped.error.as_deref().unwrap().contains("still going"));
    }
    assert_eq!(runs[2].status.as_str(), "success");
    assert_eq!(runs[2].trigger, "cron");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_posts_an_alert_and_an_unreachable_webhook_is_not_fatal() {
    use axum::routing::post;
    let got: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Default::default();
    let sink = got.clone();
    let hook = axum::Router::new().route(
        "/hook",
        post(move |body: String| {
            let sink = sink.clone();
            async move {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_str(&body).unwrap());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });

    for (url, expect_delivery) in [
        (hook_url, true),
        (format!("http://127.0.0.1:{}/hook", free_port()), false),
    ] {
        let p = Project::with_sync(&sync_yaml(
            100,
            1,
            &format!("alerts:\n  webhook: \"{url}\"\n  retries: 1\n  timeout: 1\n"),
        ));
        p.write(
            "scripts/bad.lua",
            "function run(ctx) error('feed is down') end\n",
        );
        p.write(
            "config/task.yaml",
            "tasks:\n  - name: bad\n    script: scripts/bad.lua\n",
        );
        let app = std::sync::Arc::new(p.app());
        let daemon =
            dms::daemon::Daemon::new(app.clone(), tokio_util::sync::CancellationToken::new())
                .expect("daemon");
        daemon.trigger("bad", Trigger::Api, false).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let runs = p.history().runs(Some("bad"), 0).unwrap();
            if runs
                .first()
                .is_some_and(|r| r.status == dms::history::Status::Failed)
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the run finishes");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if expect_delivery {
            while got.lock().unwrap().is_empty() {
                assert!(std::time::Instant::now() < deadline, "the alert arrives");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let a = got.lock().unwrap()[0].clone();
            assert_eq!(a["source"], "dms");
            assert_eq!(a["alert"]["event"], "task_failed");
            assert_eq!(a["alert"]["task"], "bad");
            assert!(
                a["alert"]["error"]
                    .as_str()
                    .unwrap()
                    .contains("feed is down")
            );
        } else {
            // Delivery fails in the background; the daemon keeps working.
            tokio::time::sleep(Duration::from_millis(300)).await;
            daemon.trigger("bad", Trigger::Api, false).await.unwrap();
        }
    }
}
