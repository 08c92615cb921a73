//! `behind` means dms could not bring a backup current: a weekend gap in `1m` data that the
//! next check copies is never behind and raises no alert; a backup that is down is behind
//! and raises one alert for all its series; with no check loop running, a lag over
//! `max_gap_hours` is behind (nothing is coming to fix it).

use crate::helper::daemon::free_port;
use crate::helper::influxd::InfluxServer;
use crate::helper::project::{Project, bars, mixed_daemon_yaml, put, sync_yaml};
use axum::routing::post;
use chrono::{Datelike, Duration as Days, NaiveDate, Utc, Weekday};
use dms::app::App;
use dms::app::status::{self, SeriesStatus, State};
use dms::daemon::Daemon;
use dms::history::Status;
use dms::model::{NANOS_PER_SEC, Nanos, SeriesKey};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn minute() -> Nanos {
    60 * NANOS_PER_SEC
}

/// A webhook receiver on loopback: its URL and what it received.
async fn webhook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
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
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });
    (url, got)
}

/// The `behind` alerts received so far, after giving deliveries a moment.
async fn behind_alerts(got: &Mutex<Vec<Value>>) -> Vec<Value> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    got.lock()
        .unwrap()
        .iter()
        .filter(|a| a["alert"]["event"] == "behind")
        .cloned()
        .collect()
}

async fn status_of(app: &App, history: &std::path::Path) -> Vec<SeriesStatus> {
    let db = dms::history::HistoryReader::open(history).expect("history");
    let recorded = status::Recorded::read(&db).expect("recorded");
    status::collect(
        &app.settings,
        &recorded,
        app.engine.primary().as_ref(),
        app.engine.backups(),
    )
    .await
    .expect("status")
}

fn line<'a>(lines: &'a [SeriesStatus], backup: &str, series: &SeriesKey) -> &'a SeriesStatus {
    lines
        .iter()
        .find(|l| l.key.backup == backup && &l.key.series == series)
        .unwrap_or_else(|| panic!("no line for {backup} {series}"))
}

/// Midnight (UTC) of the Friday at least a week before today.
fn a_past_friday() -> NaiveDate {
    let mut d = Utc::now().date_naive() - Days::days(7);
    while d.weekday() != Weekday::Fri {
        d -= Days::days(1);
    }
    d
}

fn nanos(d: NaiveDate, h: u32, m: u32) -> Nanos {
    d.and_hms_opt(h, m, 0)
        .expect("a time")
        .and_utc()
        .timestamp_nanos_opt()
        .expect("in range")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weekend_gap_in_1m_data_is_not_behind_and_raises_no_alert() {
    let (url, got) = webhook().await;
    let p = Project::with_sync(&sync_yaml(
        500,
        1,
        &format!("alerts:\n  webhook: \"{url}\"\n  retries: 0\n  timeout: 1\n"),
    ));
    let friday = a_past_friday();
    let monday = friday + Days::days(3);
    let series = SeriesKey::new("US.AAPL", "1m");
    let primary = p.node("primary");
    // Friday's last hour, then Monday's first half hour: 64.5 h apart (max_gap_hours: 24).
    put(
        primary.as_ref(),
        bars("US.AAPL", "1m", 60, nanos(friday, 20, 59), minute()),
    )
    .await;
    let app = Arc::new(p.app());
    let history = app.settings.history.path.clone();
    let d = Daemon::new(app.clone(), CancellationToken::new()).expect("daemon");
    let first = d.check_once().await.expect("the first check copies Friday");
    assert_eq!(first.status, Status::Success, "{:?}", first.error);

    put(
        primary.as_ref(),
        bars("US.AAPL", "1m", 30, nanos(monday, 13, 59), minute()),
    )
    .await;
    // Monday's bars wait for the next check: lagging by the weekend, not behind.
    let st = status_of(&app, &history).await;
    for b in ["backup1", "backup2"] {
        let l = line(&st, b, &series);
        assert_eq!(l.state, State::Lagging, "{l:#?}");
        assert!(!l.behind, "{l:#?}");
        assert!(l.lag_seconds.is_some_and(|s| s > 64.0 * 3600.0), "{l:#?}");
    }
    let cli = p.cli(&["status"]);
    assert_eq!(
        cli.status.code(),
        Some(0),
        "nothing is behind: {}",
        String::from_utf8_lossy(&cli.stdout)
    );

    let next = d.check_once().await.expect("the next check copies Monday");
    assert_eq!(next.status, Status::Success, "{:?}", next.error);
    let st = status_of(&app, &history).await;
    assert!(st.iter().all(|l| l.state == State::Current), "{st:#?}");
    assert!(d.check_once().await.is_none(), "nothing left");
    assert_eq!(behind_alerts(&got).await, Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_check_loop_a_lag_over_max_gap_is_behind() {
    let p = Project::new();
    let series = SeriesKey::new("US.AAPL", "1m");
    let friday = a_past_friday();
    let primary = p.node("primary");
    put(
        primary.as_ref(),
        bars("US.AAPL", "1m", 60, nanos(friday, 20, 59), minute()),
    )
    .await;
    assert!(p.cli(&["sync"]).status.success());
    put(
        primary.as_ref(),
        bars(
            "US.AAPL",
            "1m",
            30,
            nanos(friday + Days::days(3), 13, 59),
            minute(),
        ),
    )
    .await;
    // No daemon has checked: nothing will copy Monday, so the weekend lag is behind.
    let out = p.cli(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let l = lines
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["backup"] == "backup1" && l["symbol"] == series.symbol)
        .expect("a line")
        .clone();
    assert_eq!(l["state"], "behind", "{l:#}");
    assert_eq!(l["behind"], true, "{l:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backup_raises_one_behind_alert_for_all_its_series() {
    let Some(mut influx) = InfluxServer::start().await else {
        return;
    };
    let (url, got) = webhook().await;
    let yaml = format!(
        "{}alerts:\n  webhook: \"{url}\"\n  retries: 0\n  timeout: 1\n",
        mixed_daemon_yaml(&influx.url(), "dms_behind", free_port())
    );
    let p = Project::with_sync(&yaml);
    let end = dms::model::now_nanos() / minute() * minute();
    let symbols = ["US.AAPL", "US.MSFT", "US.NVDA"];
    let primary = p.node("primary");
    for s in symbols {
        put(
            primary.as_ref(),
            bars(s, "1m", 120, end - 30 * minute(), minute()),
        )
        .await;
    }
    let app = Arc::new(p.app());
    let history = app.settings.history.path.clone();
    let d = Daemon::new(app.clone(), CancellationToken::new()).expect("daemon");
    let first = d.check_once().await.expect("the first check copies");
    assert_eq!(first.status, Status::Success, "{:?}", first.error);

    // backup1 (InfluxDB) dies; half an hour of new bars arrive (max_gap_hours: 0.05).
    influx.kill_hard();
    for s in symbols {
        put(primary.as_ref(), bars(s, "1m", 30, end, minute())).await;
    }
    let run = d.check_once().await.expect("backup2 is caught up");
    assert_eq!(run.status, Status::Success, "{:?}", run.error);
    assert!(run.report.units.iter().all(|u| u.key.backup == "backup2"));
    assert!(
        d.check_once().await.is_none(),
        "no work for the dead backup"
    );

    let alerts = behind_alerts(&got).await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0]["alert"];
    assert_eq!(a["backup"], "backup1", "{a:#}");
    assert_eq!(a["count"], 3, "{a:#}");
    assert!(
        a["cause"].as_str().unwrap().contains("unreachable"),
        "{a:#}"
    );
    assert!(a["max_lag_seconds"].as_f64().unwrap() >= 1800.0, "{a:#}");

    let st = status_of(&app, &history).await;
    for s in symbols {
        let key = SeriesKey::new(s, "1m");
        let down = line(&st, "backup1", &key);
        assert_eq!(
            (down.state, down.behind),
            (State::Unknown, true),
            "{down:#?}"
        );
        let up = line(&st, "backup2", &key);
        assert_eq!(up.state, State::Current, "{up:#?}");
    }
}
