//! Load: the daemon holding steady with thousands of series, a short check interval, new bars
//! arriving and an API poller — memory flat, no growing lag, no errors.
//!
//! The CI variant is short; the full run from issue 6 (2,000 symbols × 2 intervals × 2 backups,
//! 10 s checks, 10 minutes) is the same test with:
//! `DMS_LOAD_SYMBOLS=2000 DMS_LOAD_SECONDS=600 DMS_LOAD_CHECK=10 cargo test --release --test tests load::`

use crate::helper::daemon::{DaemonProcess, free_port};
use crate::helper::project::{Project, sync_yaml};
use dms::model::{Batch, NANOS_PER_SEC, Point};
use dms::node::Node;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The process's resident set in KiB. A measurement that cannot be taken fails the test: a
/// zero would make the memory assertion vacuous.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status to measure RSS: {e}"));
    let kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no VmRSS line in /proc/{pid}/status: cannot measure RSS"));
    assert!(
        kib > 0,
        "/proc/{pid}/status says VmRSS is 0: cannot measure RSS"
    );
    kib
}

fn bar(symbol: &str, interval: &str, time: i64) -> Point {
    let b = dms::sample::bars(symbol, interval, &[time]);
    dms::sample::points(&dms::schema::Schema::default(), symbol, interval, &b).remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_holds_steady_under_many_series_new_bars_and_an_api_poller() {
    let symbols = env_or("DMS_LOAD_SYMBOLS", 300) as usize;
    let seconds = env_or("DMS_LOAD_SECONDS", 20);
    let check = env_or("DMS_LOAD_CHECK", 2);
    let port = free_port();
    let yaml = sync_yaml(5000, 2, &format!("api:\n  listen: 127.0.0.1:{port}\n")).replace(
        "    initial_days: 3650",
        &format!("    initial_days: 3650\n    check_interval: {check}"),
    );
    let p = Project::with_sync(&yaml);
    let primary = p.node("primary");
    let minute = 60 * NANOS_PER_SEC;
    let start = dms::model::now_nanos() / minute * minute - 1000 * minute;
    let names: Vec<String> = (0..symbols).map(|i| format!("LOAD.S{i:05}")).collect();
    // Ten bars per series to begin with.
    let mut seed = Vec::new();
    for n in &names {
        for interval in ["1m", "5m"] {
            for k in 0..10 {
                seed.push(bar(n, interval, start + k * minute));
            }
        }
    }
    for chunk in seed.chunks(20_000) {
        primary
            .write(Arc::new(Batch::new(chunk.to_vec())))
            .await
            .unwrap();
    }

    let d = DaemonProcess::start(p.root(), port).await;
    let series = symbols * 2;
    let caught_up = |st: &serde_json::Value| {
        st.as_array().is_some_and(|rows| {
            rows.len() == series * 2
                && rows
                    .iter()
                    .all(|r| r["behind"] == false && r["checkpoint"] == r["primary_newest"])
        })
    };
    d.wait_for("the initial sync", 120, || async {
        caught_up(&d.get("/api/dms/sync/status").await)
    })
    .await;
    let rss_start = rss_kib(d.pid());

    // New bars keep arriving while an API client polls.
    let stop = Instant::now() + Duration::from_secs(seconds);
    let writer = {
        let primary = primary.clone();
        let names = names.clone();
        tokio::spawn(async move {
            let mut t = start + 10 * minute;
            let mut written = 0u64;
            while Instant::now() < stop {
                let batch: Vec<Point> = names.iter().take(50).map(|n| bar(n, "1m", t)).collect();
                written += batch.len() as u64;
                primary.write(Arc::new(Batch::new(batch))).await.unwrap();
                t += minute;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            written
        })
    };
    let mut polls = 0u64;
    let mut max_rss = rss_start;
    while Instant::now() < stop {
        for path in [
            "/api/dms/sync/status?behind=true",
            "/api/dms/sync/history?limit=100",
            "/api/dms/sync/metrics?window=1h",
            "/healthz",
        ] {
            d.get(path).await;
            polls += 1;
        }
        max_rss = max_rss.max(rss_kib(d.pid()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let written = writer.await.unwrap();
    // The last bars are caught up within a couple of check intervals.
    d.wait_for("catching up the last bars", 4 * check + 30, || async {
        caught_up(&d.get("/api/dms/sync/status").await)
    })
    .await;
    let rss_end = rss_kib(d.pid());
    let failed = d.get("/api/dms/sync/history?status=failed&limit=10").await;
    let failures = failed["items"].as_array().map(Vec::len).unwrap_or(0);
    eprintln!(
        "load: {series} series × 2 backups, {seconds} s, check every {check} s: {written} new bars, {polls} API calls; \
         daemon RSS start {rss_start} KiB, peak {max_rss} KiB, end {rss_end} KiB; failures {failures}"
    );
    assert_eq!(failures, 0, "{failed}");
    assert!(
        rss_end <= rss_start + rss_start / 5 + 8 * 1024,
        "memory grew: {rss_start} KiB → {rss_end} KiB"
    );
}
