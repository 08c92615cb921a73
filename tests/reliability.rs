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
        // The checkpoint is the newest point held at or before the last sync's now (it never
        // passes now, though points up to future_tolerance — the default 2 days — are
        // copied; the bars may run ahead of now here): between the newest held at or before
        // that sync's start and the newest held at or before now + the tolerance.
        let tolerance = 2 * dms::model::NANOS_PER_DAY;
        let earliest = b.tips(&series, before_last).await.unwrap();
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

/// Many small series move together (one read, shared writes, one checkpoint transaction per
/// write): a `dms sync` killed at any moment of that leaves no checkpoint ahead of what its
/// backup holds, and the next runs converge to the primary exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_of_many_small_series_killed_at_random_moments_loses_nothing() {
    let Some(s) = servers(3).await else { return };
    let seed = dms::model::now_nanos() as u64;
    eprintln!("small-series crash-loop seed: {seed}");
    let mut rng = dms::sample::Rng::from_key(&seed.to_string());
    let schema = Schema::default();
    let primary = node("primary", &Target::on(&s[0], "many"), &schema);
    let b1 = node("backup1", &Target::on(&s[1], "many"), &schema);
    let b2 = node("backup2", &Target::on(&s[2], "many"), &schema);
    let mut series = Vec::new();
    let mut points = Vec::new();
    for i in 0..1000 {
        let sym = format!("G.S{i:04}");
        points.extend(bars(&schema, &sym, "1d", 5));
        series.push(SeriesKey::new(sym, "1d"));
    }
    put(primary.as_ref(), points).await;
    // Small batches: a run writes each backup in many shared writes, so kills land between
    // two of them too.
    let cfg = config(
        (&s[0].url(), "many"),
        &[
            ("backup1", &s[1].url(), "many"),
            ("backup2", &s[2].url(), "many"),
        ],
        100,
        "",
    );
    let backups: Vec<(&str, Arc<dyn Node>)> =
        vec![("backup1", b1.clone()), ("backup2", b2.clone())];
    let (mut kills, mut finished, mut midway) = (0, 0, 0);
    let started = Instant::now();
    while (kills < 8 || midway == 0) && started.elapsed() < Duration::from_secs(90) {
        let mut child = dms(&cfg.config, &["sync"]).spawn().expect("dms starts");
        std::thread::sleep(Duration::from_millis(50 + rng.next_u64() % 1000));
        match child.try_wait().unwrap() {
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
                // Cut off between two shared writes: some series are caught up, some not.
                let want = primary.newest(&series).await.unwrap();
                let held = b1.newest(&series).await.unwrap();
                let caught_up = series.iter().filter(|k| held.get(k) == want.get(k)).count();
                if caught_up > 0 && caught_up < series.len() {
                    midway += 1;
                }
            }
            Some(status) => {
                assert!(status.success(), "an unkilled run succeeds");
                finished += 1;
            }
        }
        checkpoints_never_ahead(&cfg.history, &backups, &series).await;
        // Work for the next run: a new bar for every series.
        new_minutes(primary.as_ref(), &series, 1).await;
    }
    assert!(
        kills > 0 && midway > 0,
        "{kills} kills, {midway} between two shared writes, {finished} finished"
    );
    let out = dms(&cfg.config, &["sync"]).output().unwrap();
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
    for (_, b) in &backups {
        assert_same_points(primary.as_ref(), b.as_ref(), &series).await;
    }
    let db = HistoryReader::open(&cfg.history).unwrap();
    let rows = db.history(&dms::history::HistoryFilter::default()).unwrap();
    assert!(rows.iter().all(|r| r.status.as_str() != "running"));
    eprintln!(
        "small-series crash loop: {kills} kills ({midway} between shared writes), {finished} completed runs"
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

/// Damages `backup` the ways reconciliation repairs (changed values, a dropped field, missing
/// points, points the primary no longer has before its newest) and adds what it must never
/// delete: a point past the primary's newest and a series only the backup holds. Returns the
/// points that are the only copies there are.
async fn damage(
    primary: &dyn Node,
    backup: &dyn Node,
    series: &[SeriesKey],
    round: i64,
) -> Vec<dms::model::Point> {
    use dms::model::{Batch, FieldValue, TimeRange};
    use futures::TryStreamExt;
    let mut only_copies = Vec::new();
    for (k, s) in series.iter().enumerate() {
        let batches: Vec<Batch> = primary
            .read(s, TimeRange::new(i64::MIN, i64::MAX), 10_000)
            .try_collect()
            .await
            .unwrap();
        let points: Vec<dms::model::Point> = batches.into_iter().flat_map(|b| b.points).collect();
        let mut changed = Vec::new();
        let mut gone = Vec::new();
        for (i, p) in points.iter().enumerate().skip(k % 5) {
            match i % 23 {
                0 => {
                    let mut q = p.clone();
                    for f in q.fields.iter_mut() {
                        if let FieldValue::Float(x) = &mut f.1 {
                            *x += 0.25 + round as f64;
                        }
                    }
                    changed.push(q);
                }
                7 => gone.push(p.time),
                13 => {
                    // A field the primary does not have: only a replace removes it.
                    let mut q = p.clone();
                    q.fields
                        .push((Arc::from("stale"), FieldValue::Integer(round)));
                    changed.push(q);
                }
                19 => {
                    // A point between two bars: extra, and before the primary's newest.
                    let mut q = p.clone();
                    q.time += 1;
                    changed.push(q);
                }
                _ => {}
            }
        }
        backup.delete(s, &gone).await.unwrap();
        let newest = points.last().map(|p| p.time).unwrap_or(0);
        let mut past = points.last().cloned().unwrap();
        past.time = newest + 3_600 * dms::model::NANOS_PER_SEC + round;
        only_copies.push(past.clone());
        changed.push(past);
        backup.write(Arc::new(Batch::new(changed))).await.unwrap();
    }
    let lone = crate::helper::project::bars(
        &format!("ONLY.{round}"),
        "1m",
        3,
        dms::model::now_nanos() / 60_000_000_000 * 60_000_000_000,
        60 * dms::model::NANOS_PER_SEC,
    );
    backup
        .write(Arc::new(Batch::new(lone.clone())))
        .await
        .unwrap();
    only_copies.extend(lone);
    only_copies
}

/// Every point in `points` is still on `node`, as it was.
async fn still_held(node: &dyn Node, points: &[dms::model::Point], what: &str) {
    use dms::model::TimeRange;
    use futures::TryStreamExt;
    let schema = Schema::default();
    for p in points {
        let s = schema.series_of(p).expect("a series");
        let held: Vec<dms::model::Batch> = node
            .read(&s, TimeRange::new(p.time, p.time), 100)
            .try_collect()
            .await
            .unwrap();
        assert!(
            held.iter()
                .flat_map(|b| &b.points)
                .any(|q| q.time == p.time),
            "{what}: the only copy of {s} at {} was deleted",
            p.time
        );
    }
}

/// Reconciles (with `mirror_deletes`) and kills it at random moments, damaging the backup
/// again after every run that finishes. After every kill: no only copy was deleted and no
/// checkpoint is ahead of its backup; `holes` also checks that no point the backup held at a
/// timestamp of the primary went missing (SQLite replaces in one transaction; InfluxDB's
/// replace deletes then writes, so a kill in between can leave a hole there, which the primary
/// still fills). At the end an unkilled reconcile leaves the backup equal to the primary
/// wherever the primary has data.
async fn reconcile_killed_at_random_moments(
    cfg: &Path,
    history: &Path,
    primary: Arc<dyn Node>,
    backup: Arc<dyn Node>,
    series: &[SeriesKey],
    holes: bool,
    what: &str,
) {
    let seed = dms::model::now_nanos() as u64;
    eprintln!("{what}: reconcile crash-loop seed {seed}");
    let mut rng = dms::sample::Rng::from_key(&seed.to_string());
    let status = dms(cfg, &["sync"]).status().unwrap();
    assert!(status.success());
    let mut only = damage(primary.as_ref(), backup.as_ref(), series, 1).await;
    let (mut kills, mut finished) = (0, 0);
    let started = Instant::now();
    while kills < 12 && started.elapsed() < Duration::from_secs(150) {
        let before: Vec<(SeriesKey, Vec<i64>)> = if holes {
            let mut v = Vec::new();
            for s in series {
                let p: std::collections::HashSet<i64> =
                    times(primary.as_ref(), s).await.into_iter().collect();
                let b = times(backup.as_ref(), s).await;
                v.push((s.clone(), b.into_iter().filter(|t| p.contains(t)).collect()));
            }
            v
        } else {
            Vec::new()
        };
        let mut child = dms(cfg, &["reconcile"]).spawn().expect("dms starts");
        std::thread::sleep(Duration::from_millis(15 + rng.next_u64() % 900));
        let killed = match child.try_wait().unwrap() {
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
                true
            }
            Some(_) => false,
        };
        still_held(backup.as_ref(), &only, what).await;
        checkpoints_never_ahead(history, &[("backup1", backup.clone())], series).await;
        if !killed {
            // The run finished: damage the backup again (deleting points on purpose).
            finished += 1;
            only.extend(damage(primary.as_ref(), backup.as_ref(), series, 1 + finished).await);
            continue;
        }
        for (s, held) in &before {
            let now: std::collections::HashSet<i64> =
                times(backup.as_ref(), s).await.into_iter().collect();
            let lost: Vec<&i64> = held.iter().filter(|t| !now.contains(t)).collect();
            assert!(lost.is_empty(), "{what}: {s} lost {lost:?} to a kill");
        }
    }
    assert!(kills > 0, "{what}: no run was killed ({finished} finished)");
    let status = dms(cfg, &["reconcile"]).status().unwrap();
    assert!(
        status.success(),
        "{what}: the last reconcile repairs everything"
    );
    still_held(backup.as_ref(), &only, what).await;
    for s in series {
        let p = times(primary.as_ref(), s).await;
        let b: std::collections::HashSet<i64> =
            times(backup.as_ref(), s).await.into_iter().collect();
        assert!(
            p.iter().all(|t| b.contains(t)),
            "{what}: {s} is missing points"
        );
    }
    let verify = dms(cfg, &["verify"]).status().unwrap();
    assert!(
        verify.success(),
        "{what}: verify finds nothing missing or different"
    );
    eprintln!("{what}: reconcile crash loop: {kills} kills, {finished} finished runs");
}

/// The timestamps of `s` on `node`.
async fn times(node: &dyn Node, s: &SeriesKey) -> Vec<i64> {
    use futures::TryStreamExt;
    let batches: Vec<dms::model::Batch> = node
        .read(s, dms::model::TimeRange::new(i64::MIN, i64::MAX), 10_000)
        .try_collect()
        .await
        .unwrap();
    batches
        .into_iter()
        .flat_map(|b| b.points)
        .map(|p| p.time)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_killed_at_random_moments_deletes_no_only_copy_on_influxdb() {
    let Some(s) = servers(2).await else { return };
    let schema = Schema::default();
    let primary = node("primary", &Target::on(&s[0], "rk"), &schema);
    let backup = node("backup1", &Target::on(&s[1], "rk"), &schema);
    let mut series = Vec::new();
    for sym in ["R.A", "R.B", "R.C", "R.D"] {
        put(primary.as_ref(), bars(&schema, sym, "1m", 3)).await;
        series.push(SeriesKey::new(sym, "1m"));
    }
    let cfg = config(
        (&s[0].url(), "rk"),
        &[("backup1", &s[1].url(), "rk")],
        500,
        "reconcile:\n  mirror_deletes: true\n  window: 1h\n  max_deletes: 1000000\n  max_delete_share: 1\n",
    );
    reconcile_killed_at_random_moments(
        &cfg.config,
        &cfg.history,
        primary,
        backup,
        &series,
        false,
        "influxdb",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_killed_at_random_moments_deletes_no_only_copy_and_leaves_no_hole_on_sqlite() {
    let p = crate::helper::project::Project::with_sync(&crate::helper::project::sync_yaml(
        500,
        2,
        "reconcile:\n  mirror_deletes: true\n  window: 1h\n  max_deletes: 1000000\n  max_delete_share: 1\n",
    ));
    let schema = Schema::default();
    let primary: Arc<dyn Node> = p.node("primary");
    let backup: Arc<dyn Node> = p.node("backup1");
    let mut series = Vec::new();
    for sym in ["R.A", "R.B", "R.C", "R.D"] {
        put(primary.as_ref(), bars(&schema, sym, "1m", 3)).await;
        series.push(SeriesKey::new(sym, "1m"));
    }
    reconcile_killed_at_random_moments(
        &p.config_dir(),
        &p.settings().history.path,
        primary,
        backup,
        &series,
        true,
        "sqlite",
    )
    .await;
}
