//! "Nothing lost": a multi-series initial sync to two real InfluxDB backups killed with SIGKILL
//! at random moments, and syncs through a proxy that injects network faults. After every fault
//! the checkpoints never pass what the backups hold, and a later sync converges to the primary.

use crate::helper::proxy::{Fault, Proxy};
use crate::influx::support::{Target, assert_same_points, bars, node, put, servers};
use dms::history::HistoryReader;
use dms::model::SeriesKey;
use dms::node::Node;
use dms::schema::Schema;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A project folder whose config points at InfluxDB nodes given as (name, url, database).
struct Config {
    _dir: tempfile::TempDir,
    config: PathBuf,
    history: PathBuf,
}

fn config(
    primary: (&str, &str),
    backups: &[(&str, &str, &str)],
    batch: usize,
    extra: &str,
) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    let history = dir.path().join("run/history.db");
    let mut yaml = format!(
        "sync:\n  incremental:\n    batch_size: {batch}\n    initial_days: 3650\n    scope: all\n  performance:\n    max_workers: 3\n  retry_times: 3\n  retry_delay: 0.05\n{extra}nodes:\n  primary: {{name: primary, type: influxdb, url: \"{}\", database: {}, timeout: 2}}\n  backups:\n",
        primary.0, primary.1
    );
    for (name, url, db) in backups {
        yaml.push_str(&format!(
            "    - {{name: {name}, type: influxdb, url: \"{url}\", database: {db}, timeout: 2}}\n"
        ));
    }
    yaml.push_str(&format!(
        "history:\n  path: {:?}\n",
        history.display().to_string()
    ));
    std::fs::write(config.join("sync.yaml"), yaml).unwrap();
    std::fs::write(config.join("task.yaml"), "tasks: []\n").unwrap();
    Config {
        _dir: dir,
        config,
        history,
    }
}

fn dms(cfg: &Path, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_dms"));
    c.arg("--config")
        .arg(cfg)
        .args(args)
        .env("RUST_LOG", "error");
    c.stdout(std::process::Stdio::null());
    c
}

/// Every checkpoint is at or before the newest point its backup really holds.
async fn checkpoints_never_ahead(
    history: &Path,
    backups: &[(&str, Arc<dyn Node>)],
    series: &[SeriesKey],
) {
    if !history.exists() {
        return;
    }
    let cps = HistoryReader::open(history).unwrap().checkpoints().unwrap();
    for (name, b) in backups {
        let held = b.newest(series).await.unwrap();
        for s in series {
            if let Some(cp) = cps.get(&dms::model::BackupSeries::new(*name, s.clone())) {
                let h = held.get(s).copied();
                assert!(
                    h.is_some_and(|h| h >= *cp),
                    "{name} {s}: checkpoint {cp} is ahead of the newest point held ({h:?})"
                );
            }
        }
    }
}

/// Appends `n` one-minute bars after the newest point of each series.
async fn new_minutes(primary: &dyn Node, series: &[SeriesKey], n: usize) {
    let newest = primary.newest(series).await.unwrap();
    let minute = 60 * dms::model::NANOS_PER_SEC;
    for s in series {
        let end = newest[s] + n as i64 * minute;
        put(
            primary,
            crate::helper::project::bars(&s.symbol, "1m", n, end, minute),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_at_random_moments_loses_nothing() {
    let Some(s) = servers(3).await else { return };
    let seed: u64 = std::env::var("DMS_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash-loop seed: {seed} (replay with DMS_CRASH_SEED={seed})");
    let mut rng = dms::sample::Rng::from_key(&seed.to_string());
    let schema = Schema::default();
    let primary = node("primary", &Target::on(&s[0], "crash"), &schema);
    let b1 = node("backup1", &Target::on(&s[1], "crash"), &schema);
    let b2 = node("backup2", &Target::on(&s[2], "crash"), &schema);
    let symbols = ["K.A", "K.B", "K.C", "K.D", "K.E", "K.F"];
    let mut series = Vec::new();
    for sym in symbols {
        put(primary.as_ref(), bars(&schema, sym, "1m", 12)).await;
        series.push(SeriesKey::new(sym, "1m"));
    }
    let cfg = config(
        (&s[0].url(), "crash"),
        &[
            ("backup1", &s[1].url(), "crash"),
            ("backup2", &s[2].url(), "crash"),
        ],
        250,
        "",
    );
    let backups: Vec<(&str, Arc<dyn Node>)> =
        vec![("backup1", b1.clone()), ("backup2", b2.clone())];

    let mut kills = 0;
    let mut finished = 0;
    let started = Instant::now();
    while kills < 22 {
        let mut child = dms(&cfg.config, &["sync"]).spawn().expect("dms starts");
        let wait = Duration::from_millis(30 + rng.next_u64() % 400);
        std::thread::sleep(wait);
        match child.try_wait().unwrap() {
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
            }
            Some(status) => {
                assert!(status.success(), "an unkilled run succeeds");
                finished += 1;
                // Keep the copy busy: another 390 minutes arrive on the primary.
                new_minutes(primary.as_ref(), &series, 390).await;
            }
        }
        checkpoints_never_ahead(&cfg.history, &backups, &series).await;
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "crash loop took too long"
        );
    }

    // A last, undisturbed run; then everything is equal and nothing is left running.
    let before_last = dms::model::now_nanos();
    let out = dms(&cfg.config, &["sync"])
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verify = dms(&cfg.config, &["verify"])
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "verify after {kills} kills (seed {seed}):\n{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let db = HistoryReader::open(&cfg.history).unwrap();
    let rows = db.history(&dms::history::HistoryFilter::default()).unwrap();
    assert!(rows.iter().all(|r| r.status.as_str() != "running"));
    let cps = db.checkpoints().unwrap();
    for (name, b) in &backups {
        assert_same_points(primary.as_ref(), b.as_ref(), &series).await;
        // The checkpoint is the newest point held that is not future-dated (the bars run
        // days ahead of now here; future_tolerance is the default 2 days) as of the last
        // sync: between the newest held at or before the horizons of its start and of now.
        let tolerance = 2 * dms::model::NANOS_PER_DAY;
        let earliest = b.tips(&series, before_last + tolerance).await.unwrap();
        let latest = b
            .tips(&series, dms::model::now_nanos() + tolerance)
            .await
            .unwrap();
        for s in &series {
            let cp = cps.get(&dms::model::BackupSeries::new(*name, s.clone()));
            let newest = |t: &std::collections::HashMap<_, dms::node::Tip>| {
                t.get(s).and_then(|t| t.newest_time())
            };
            assert!(
                cp.is_some() && newest(&earliest).as_ref() <= cp && cp <= newest(&latest).as_ref(),
                "{name} {s}: checkpoint {cp:?}, newest held {:?}..{:?}",
                newest(&earliest),
                newest(&latest)
            );
        }
    }
    eprintln!(
        "crash loop: {kills} kills, {finished} completed runs, {} history rows, seed {seed}",
        rows.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_faults_fail_clearly_or_retry_and_a_later_sync_converges() {
    let Some(s) = servers(2).await else { return };
    let schema = Schema::default();
    let primary_addr = s[0].url().trim_start_matches("http://").to_string();
    let backup_addr = s[1].url().trim_start_matches("http://").to_string();
    let read_proxy = Proxy::start(&primary_addr).await;
    let write_proxy = Proxy::start(&backup_addr).await;
    let primary = node("primary", &Target::on(&s[0], "net"), &schema);
    let backup = node("backup1", &Target::on(&s[1], "net"), &schema);
    let mut series = Vec::new();
    for sym in ["N.A", "N.B", "N.C"] {
        put(primary.as_ref(), bars(&schema, sym, "1m", 5)).await;
        series.push(SeriesKey::new(sym, "1m"));
    }
    let cfg = config(
        (&read_proxy.url, "net"),
        &[("backup1", &write_proxy.url, "net")],
        200,
        "",
    );
    let backups: Vec<(&str, Arc<dyn Node>)> = vec![("backup1", backup.clone())];

    let cases: [(&str, &Proxy, Fault); 6] = [
        (
            "latency on writes",
            &write_proxy,
            Fault::Latency(Duration::from_millis(30)),
        ),
        ("writes cut mid-response", &write_proxy, Fault::Cut(300)),
        (
            "writes stall without closing",
            &write_proxy,
            Fault::Stall(0),
        ),
        ("write answers truncated", &write_proxy, Fault::Truncate(20)),
        ("reads cut mid-response", &read_proxy, Fault::Cut(60_000)),
        ("reads truncated", &read_proxy, Fault::Truncate(45_000)),
    ];
    for (i, (what, proxy, fault)) in cases.into_iter().enumerate() {
        // New bars for this round, so every case has something to copy.
        new_minutes(primary.as_ref(), &series, 200 + 100 * i).await;
        proxy.set(fault);
        let started = Instant::now();
        let out = tokio::task::spawn_blocking({
            let c = cfg.config.clone();
            move || {
                dms(&c, &["sync", "--json"])
                    .stdout(std::process::Stdio::piped())
                    .output()
                    .unwrap()
            }
        });
        let out = tokio::time::timeout(Duration::from_secs(90), out)
            .await
            .unwrap_or_else(|_| panic!("{what}: dms hung"))
            .unwrap();
        let took = started.elapsed();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        eprintln!("{what}: exit {:?} after {took:?}", out.status.code());
        if !out.status.success() {
            // A failure names what went wrong.
            let text = format!("{stdout}{err}");
            assert!(
                [
                    "timed out",
                    "unreachable",
                    "bad response",
                    "connection",
                    "closed"
                ]
                .iter()
                .any(|w| text.contains(w)),
                "{what}: unclear error:\n{text}"
            );
        }
        if matches!(fault, Fault::Stall(_)) {
            assert!(
                !out.status.success(),
                "{what}: a stalled backup cannot acknowledge"
            );
            assert!(
                stdout.contains("timed out") || err.contains("timed out"),
                "{what}:\n{stdout}{err}"
            );
        }
        checkpoints_never_ahead(&cfg.history, &backups, &series).await;

        // The fault goes away: the next sync converges.
        proxy.set(Fault::None);
        let ok = dms(&cfg.config, &["sync"]).output().unwrap();
        assert!(
            ok.status.success(),
            "{what}: after the fault: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        assert_same_points(primary.as_ref(), backup.as_ref(), &series).await;
        checkpoints_never_ahead(&cfg.history, &backups, &series).await;
    }
}
