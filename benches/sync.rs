//! `cargo bench --bench sync` — dms against the machine's own ceiling, measured in one run on the
//! same servers.
//!
//! 1. Starts its own `influxd` primary and two backups on loopback and loads a deterministic
//!    OHLCV dataset (default ≈2M points: 20 symbols × `1m` × ~250 trading days, plus `1d` bars).
//! 2. Ceilings, with the same HTTP client and batch size but no sync logic: a raw streaming read
//!    of every series from the primary; raw writes of the same pre-encoded batches to one backup
//!    and to both at once; and the raw copy (read once, write to both, piped).
//! 3. dms itself, as a child process (`dms sync`): the initial sync to both backups (points/s,
//!    wall time, CPU time, peak RSS), a no-op check of every series (`--only-behind`, counting
//!    the queries each node served), the same check over 1,000 series, and an incremental sync
//!    after appending one bar per series.
//! 4. The same with `sqlite` nodes (files).
//! 5. One table on stdout and JSON (`--out`, default `target/bench/sync.json`), with the ratios.
//!
//! Options (after `--`): `--points N` (default 2000000), `--batch N` (5000), `--workers N` (5),
//! `--memory-scale K` (also sync K× the data and compare peak RSS; default 0 = skip),
//! `--only influx|sqlite|universe|import`, `--universe N` (symbols of the universe scenario, default
//! 10000), `--out FILE`.
//!
//! The universe scenario (issue: a sync costs what its points cost): N symbols of daily bars
//! on InfluxDB, an initial sync of 10 bars each, the daily sync of one new bar per series, a
//! sync with nothing new and a check-loop pass — each against the ceiling of one
//! multi-series read of the same points plus posting them (pre-encoded) to both backups.

#[path = "../tests/helper/influxd.rs"]
#[allow(dead_code)]
mod influxd;

/// What the test fixtures call when a server is missing: a measurement that cannot be taken
/// fails the benchmark.
fn skip(missing: &str, how: &str) {
    panic!("{missing}: the benchmark cannot measure without it ({how})");
}

use dms::model::{Batch, NANOS_PER_DAY, Nanos, Point, SeriesKey, TimeRange};
use dms::node::Node;
use dms::node::sqlite::SqliteNode;
use dms::schema::Schema;
use futures::StreamExt;
use influxd::InfluxServer;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SYMBOLS: usize = 20;
const DB: &str = "market";

#[derive(Debug, Clone)]
struct Args {
    points: u64,
    batch: usize,
    workers: usize,
    memory_scale: u64,
    universe: usize,
    only: Option<String>,
    out: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        points: 2_000_000,
        batch: 5000,
        workers: 5,
        memory_scale: 0,
        universe: 10_000,
        only: None,
        out: PathBuf::from("target/bench/sync.json"),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let val = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--points" => a.points = val.parse().expect("--points N"),
            "--batch" => a.batch = val.parse().expect("--batch N"),
            "--workers" => a.workers = val.parse().expect("--workers N"),
            "--memory-scale" => a.memory_scale = val.parse().expect("--memory-scale K"),
            "--only" => a.only = Some(val),
            "--universe" => a.universe = val.parse().expect("--universe N"),
            "--out" => a.out = PathBuf::from(val),
            // `cargo bench` passes --bench; anything else is a mistake.
            "--bench" => {
                i += 1;
                continue;
            }
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    a
}

/// The dataset: `SYMBOLS` symbols with `days` trading days of `1m` bars and `1d` bars.
#[derive(Clone)]
struct Dataset {
    days: Vec<chrono::NaiveDate>,
    symbols: Vec<String>,
}

impl Dataset {
    fn new(points: u64, prefix: &str) -> Dataset {
        let per_day = (SYMBOLS * 391) as u64;
        let n_days = points.div_ceil(per_day).max(1) as usize;
        let end = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
        let mut days = dms::sample::weekdays(end - chrono::Duration::days(n_days as i64 * 2), end);
        days.drain(..days.len().saturating_sub(n_days));
        Dataset {
            days,
            symbols: (0..SYMBOLS).map(|i| format!("{prefix}.S{i:02}")).collect(),
        }
    }

    fn series(&self) -> Vec<SeriesKey> {
        let mut v = Vec::new();
        for s in &self.symbols {
            v.push(SeriesKey::new(s.clone(), "1m"));
            v.push(SeriesKey::new(s.clone(), "1d"));
        }
        v
    }

    fn points_of(&self, s: &SeriesKey) -> Vec<Point> {
        let times = if s.interval == "1m" {
            dms::sample::us_minute_times(&self.days)
        } else {
            dms::sample::daily_times(&self.days)
        };
        let bars = dms::sample::bars(&s.symbol, &s.interval, &times);
        dms::sample::points(&Schema::default(), &s.symbol, &s.interval, &bars)
    }

    fn total(&self) -> u64 {
        (self.symbols.len() * self.days.len() * 391) as u64
    }

    fn newest(&self) -> Nanos {
        dms::sample::us_minute_times(&self.days[self.days.len() - 1..])
            .last()
            .copied()
            .unwrap_or(0)
    }
}

/// Outcome of a `dms` child process.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
struct Proc {
    wall_s: f64,
    cpu_s: f64,
    max_rss_mb: f64,
}

/// Runs the release `dms` binary and reports wall time, CPU time and peak RSS (from wait4).
fn dms(config: &Path, args: &[&str]) -> Proc {
    if let Ok(keep) = std::env::var("DMS_BENCH_KEEP") {
        let _ = std::fs::create_dir_all(&keep);
        let _ = std::process::Command::new("cp")
            .arg("-r")
            .arg(config.parent().unwrap_or(config))
            .arg(&keep)
            .status();
    }
    let started = Instant::now();
    // Reaped by wait4 below, which also gives its resource usage.
    #[allow(clippy::zombie_processes)]
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_dms"))
        .arg("--config")
        .arg(config)
        .args(args)
        // DMS_BENCH_LOG (e.g. `dms=debug`) shows what each measured run does.
        .env(
            "RUST_LOG",
            std::env::var("DMS_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("dms starts");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // Peak RSS from the child's own high-water mark (VmHWM), polled until it exits: wait4's
    // ru_maxrss would include this process's memory, copied at fork before exec.
    let mut hwm_kib = 0u64;
    // SAFETY: wait4 fills the zeroed rusage for our own child.
    let usage = loop {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(v) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        {
            hwm_kib = hwm_kib.max(v);
        }
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            break ru;
        }
        assert_eq!(r, 0, "wait4");
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = started.elapsed().as_secs_f64();
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "dms {args:?} failed (status {status})"
    );
    Proc {
        wall_s: wall,
        cpu_s: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_mb: hwm_kib as f64 / 1024.0,
    }
}

fn cores() -> f64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as f64)
        .unwrap_or(1.0)
}

/// Writes a project config for `dms`: primary and two backups.
fn write_config(dir: &Path, nodes: &str, batch: usize, workers: usize) -> PathBuf {
    let cfg = dir.join("config");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("sync.yaml"),
        format!(
            "sync:\n  incremental:\n    batch_size: {batch}\n    initial_days: 3650\n  performance:\n    max_workers: {workers}\n    connection_pool_size: {workers}\n  retry_times: 1\n  retry_delay: 0.5\n{nodes}history:\n  path: run/history.db\n"
        ),
    )
    .unwrap();
    std::fs::write(cfg.join("task.yaml"), "tasks: []\n").unwrap();
    cfg
}

fn influx_nodes(p: &str, b1: &str, b2: &str, db: &str) -> String {
    format!(
        "nodes:\n  primary: {{name: primary, type: influxdb, url: \"{p}\", database: {db}}}\n  backups:\n    - {{name: backup1, type: influxdb, url: \"{b1}\", database: {db}}}\n    - {{name: backup2, type: influxdb, url: \"{b2}\", database: {db}}}\n"
    )
}

fn influx_node(name: &str, url: &str, db: &str, pool: usize) -> Arc<dyn Node> {
    let settings = dms::config::NodeSettings {
        name: name.into(),
        enabled: true,
        kind: dms::config::NodeKind::Influxdb(dms::config::InfluxSettings {
            url: url.into(),
            database: db.into(),
            retention_policy: None,
            auth: dms::config::InfluxAuth::None,
            timeout: Duration::from_secs(60),
            gzip: false,
            create_database: true,
        }),
    };
    dms::node::open(&settings, &Schema::default(), pool).expect("node")
}

/// Loads the dataset into `node` with `workers` writers; returns points/s.
async fn load(node: Arc<dyn Node>, data: &Dataset, batch: usize, workers: usize) -> f64 {
    let started = Instant::now();
    let total = std::sync::atomic::AtomicU64::new(0);
    futures::stream::iter(data.series())
        .for_each_concurrent(workers, |s| {
            let node = node.clone();
            let total = &total;
            async move {
                let pts = data.points_of(&s);
                total.fetch_add(pts.len() as u64, std::sync::atomic::Ordering::Relaxed);
                for chunk in pts.chunks(batch) {
                    node.write(Arc::new(Batch::new(chunk.to_vec())))
                        .await
                        .expect("load");
                }
            }
        })
        .await;
    total.load(std::sync::atomic::Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Pre-encoded line protocol batches of one series.
fn encoded(data: &Dataset, s: &SeriesKey, batch: usize) -> Vec<bytes::Bytes> {
    data.points_of(s)
        .chunks(batch)
        .map(|c| {
            let mut buf = Vec::new();
            dms::node::influxdb::line_protocol::encode(c, &mut buf).expect("encodes");
            bytes::Bytes::from(buf)
        })
        .collect()
}

async fn post(http: &reqwest::Client, url: &str, db: &str, body: bytes::Bytes) {
    let r = http
        .post(format!("{url}/write"))
        .query(&[("db", db), ("precision", "ns")])
        .body(body)
        .send()
        .await
        .expect("write");
    assert_eq!(
        r.status().as_u16(),
        204,
        "{}",
        r.text().await.unwrap_or_default()
    );
}

async fn query(http: &reqwest::Client, url: &str, q: &str) -> serde_json::Value {
    http.post(format!("{url}/query"))
        .form(&[("q", q)])
        .send()
        .await
        .expect("query")
        .text()
        .await
        .map(|t| serde_json::from_str(&t).expect("json"))
        .expect("body")
}

/// Query requests a server has answered (`/debug/vars`, httpd.queryReq).
async fn queries_served(http: &reqwest::Client, url: &str) -> u64 {
    let v: serde_json::Value = http
        .get(format!("{url}/debug/vars"))
        .send()
        .await
        .expect("debug vars")
        .text()
        .await
        .map(|t| serde_json::from_str(&t).expect("json"))
        .expect("body");
    v.as_object()
        .into_iter()
        .flat_map(|o| o.values())
        .filter(|x| x["name"] == "httpd")
        .map(|x| x["values"]["queryReq"].as_u64().unwrap_or(0))
        .sum()
}

/// Raw streaming read of one series: a chunked query, the body read and dropped.
async fn raw_read(http: &reqwest::Client, url: &str, db: &str, s: &SeriesKey, batch: usize) -> u64 {
    let q = format!(
        "SELECT * FROM kline WHERE symbol = '{}' AND \"interval\" = '{}' GROUP BY *",
        s.symbol, s.interval
    );
    let mut r = http
        .post(format!("{url}/query"))
        .form(&[
            ("db", db),
            ("q", &q),
            ("epoch", "ns"),
            ("chunked", "true"),
            ("chunk_size", &batch.to_string()),
        ])
        .send()
        .await
        .expect("read");
    let mut bytes = 0;
    while let Some(c) = r.chunk().await.expect("body") {
        bytes += c.len() as u64;
    }
    bytes
}

struct Row {
    name: String,
    value: String,
    note: String,
}

fn row(rows: &mut Vec<Row>, name: &str, value: String, note: &str) {
    println!("  {name:<52} {value:>16}  {note}");
    rows.push(Row {
        name: name.into(),
        value,
        note: note.into(),
    });
}

fn kps(v: f64) -> String {
    format!("{:.1}k pts/s", v / 1000.0)
}

async fn bench_influx(
    a: &Args,
    out: &mut serde_json::Map<String, serde_json::Value>,
    rows: &mut Vec<Row>,
) {
    println!("\n== influxdb: three influxd on loopback ==");
    let servers = futures::future::join_all((0..3).map(|_| InfluxServer::start())).await;
    let Some(servers) = servers.into_iter().collect::<Option<Vec<_>>>() else {
        println!("influxd is not installed: skipping the influxdb part");
        return;
    };
    let (p, b1, b2) = (servers[0].url(), servers[1].url(), servers[2].url());
    let http = dms::node::http_client_builder()
        .pool_max_idle_per_host(a.workers * 2)
        .build()
        .unwrap();
    let data = Dataset::new(a.points, "BENCH");
    let n = data.total() as f64;
    let series = data.series();
    let primary = influx_node("primary", &p, DB, a.workers);
    let load_rate = load(primary.clone(), &data, a.batch, 4).await;
    row(
        rows,
        "dataset",
        format!("{} points", data.total()),
        &format!(
            "{} series, {} days; loaded at {}",
            series.len(),
            data.days.len(),
            kps(load_rate)
        ),
    );

    // Ceilings.
    let t = Instant::now();
    futures::stream::iter(series.iter())
        .for_each_concurrent(a.workers, |s| {
            let http = &http;
            let p = &p;
            async move {
                raw_read(http, p, DB, s, a.batch).await;
            }
        })
        .await;
    let read_ceiling = n / t.elapsed().as_secs_f64();
    row(
        rows,
        "ceiling: raw streaming read (primary)",
        kps(read_ceiling),
        "chunked JSON, no parsing",
    );

    let enc: Vec<Vec<bytes::Bytes>> = series.iter().map(|s| encoded(&data, s, a.batch)).collect();
    for (u, db) in [
        (&b1, "c1"),
        (&b1, "c2"),
        (&b2, "c2"),
        (&b1, "c3"),
        (&b2, "c3"),
    ] {
        query(&http, u, &format!("CREATE DATABASE {db}")).await;
    }
    let all: Vec<bytes::Bytes> = enc.iter().flatten().cloned().collect();
    let t = Instant::now();
    futures::stream::iter(all.iter().cloned())
        .for_each_concurrent(a.workers, |b| {
            let (http, b1) = (&http, &b1);
            async move { post(http, b1, "c1", b).await }
        })
        .await;
    let write_one = n / t.elapsed().as_secs_f64();
    row(
        rows,
        "ceiling: raw write, one backup",
        kps(write_one),
        "pre-encoded batches",
    );
    let t = Instant::now();
    futures::stream::iter(all.iter().cloned())
        .for_each_concurrent(a.workers, |b| {
            let (http, b1, b2) = (&http, &b1, &b2);
            async move {
                tokio::join!(post(http, b1, "c2", b.clone()), post(http, b2, "c2", b));
            }
        })
        .await;
    let write_both = n / t.elapsed().as_secs_f64();
    row(
        rows,
        "ceiling: raw write, both backups at once",
        kps(write_both),
        "source points/s",
    );
    drop(all);
    // Raw copy: per series, a chunked read of the primary hands the matching pre-encoded
    // batch to one writer per backup, each with a queue of one batch (the shape of a dms
    // fan-out, without parsing, encoding or bookkeeping).
    let t = Instant::now();
    futures::stream::iter(series.iter().zip(enc.iter()))
        .for_each_concurrent(a.workers, |(s, batches)| {
            let (http, p, b1, b2) = (&http, &p, &b1, &b2);
            async move {
                let q = format!(
                    "SELECT * FROM kline WHERE symbol = '{}' AND \"interval\" = '{}' GROUP BY *",
                    s.symbol, s.interval
                );
                let mut r = http
                    .post(format!("{p}/query"))
                    .form(&[
                        ("db", DB),
                        ("q", q.as_str()),
                        ("epoch", "ns"),
                        ("chunked", "true"),
                        ("chunk_size", &a.batch.to_string()),
                    ])
                    .send()
                    .await
                    .expect("read");
                let (tx1, mut rx1) = tokio::sync::mpsc::channel::<bytes::Bytes>(1);
                let (tx2, mut rx2) = tokio::sync::mpsc::channel::<bytes::Bytes>(1);
                let w1 = async move {
                    while let Some(b) = rx1.recv().await {
                        post(http, b1, "c3", b).await;
                    }
                };
                let w2 = async move {
                    while let Some(b) = rx2.recv().await {
                        post(http, b2, "c3", b).await;
                    }
                };
                let reader = async move {
                    // One batch per chunk received (chunks are batch-sized parts of the series).
                    let mut next = batches.iter();
                    let mut buf = Vec::new();
                    while let Some(c) = r.chunk().await.expect("body") {
                        buf.extend_from_slice(&c);
                        while let Some(pos) = buf.iter().position(|&x| x == b'\n') {
                            buf.drain(..=pos);
                            if let Some(b) = next.next() {
                                let _ = tx1.send(b.clone()).await;
                                let _ = tx2.send(b.clone()).await;
                            }
                        }
                    }
                    for b in next {
                        let _ = tx1.send(b.clone()).await;
                        let _ = tx2.send(b.clone()).await;
                    }
                };
                tokio::join!(reader, w1, w2);
            }
        })
        .await;
    let copy_ceiling = n / t.elapsed().as_secs_f64();
    row(
        rows,
        "ceiling: raw copy (read once, write both, piped)",
        kps(copy_ceiling),
        "source points/s",
    );
    drop(enc);
    for (u, db) in [
        (&b1, "c1"),
        (&b1, "c2"),
        (&b2, "c2"),
        (&b1, "c3"),
        (&b2, "c3"),
    ] {
        query(&http, u, &format!("DROP DATABASE {db}")).await;
    }

    // The node alone: paged, parsed reads of every series; encoded writes of every batch.
    let t = Instant::now();
    let read_n = std::sync::atomic::AtomicU64::new(0);
    futures::stream::iter(series.iter())
        .for_each_concurrent(a.workers, |s| {
            let (primary, read_n) = (&primary, &read_n);
            async move {
                let mut st = primary.read(s, TimeRange::new(i64::MIN, i64::MAX), a.batch);
                while let Some(b) = st.next().await {
                    read_n.fetch_add(
                        b.expect("read").len() as u64,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                }
            }
        })
        .await;
    let node_read = read_n.into_inner() as f64 / t.elapsed().as_secs_f64();
    row(
        rows,
        "dms influxdb node: read every series",
        kps(node_read),
        "paged and parsed, same concurrency",
    );
    let b1_node = influx_node("backup1", &b1, "nodew", a.workers);
    let t = Instant::now();
    load(b1_node, &data, a.batch, a.workers).await;
    let node_write = n / t.elapsed().as_secs_f64();
    row(
        rows,
        "dms influxdb node: write to one backup",
        kps(node_write),
        "encoded from points (incl. generating them)",
    );
    query(&http, &b1, "DROP DATABASE nodew").await;

    // dms.
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &influx_nodes(&p, &b1, &b2, DB),
        a.batch,
        a.workers,
    );
    let sync = dms(&cfg, &["sync"]);
    let rate = n / sync.wall_s;
    let cpu_share = sync.cpu_s / (sync.wall_s * cores());
    row(
        rows,
        "dms: initial sync → 2 backups",
        kps(rate),
        &format!("{:.1} s wall, per backup", sync.wall_s),
    );
    row(
        rows,
        "dms / raw copy ceiling",
        format!("{:.0}%", rate / copy_ceiling * 100.0),
        "target ≥ 85%",
    );
    row(
        rows,
        "dms CPU share of the machine during the copy",
        format!("{:.1}%", cpu_share * 100.0),
        &format!("{:.1} s CPU on {} cores; target ≤ 15%", sync.cpu_s, cores()),
    );
    row(
        rows,
        "dms peak RSS",
        format!("{:.1} MB", sync.max_rss_mb),
        "target < 64 MB",
    );

    let before: Vec<u64> =
        futures::future::join_all([&p, &b1, &b2].map(|u| queries_served(&http, u))).await;
    let noop = dms(&cfg, &["sync", "--only-behind"]);
    let after: Vec<u64> =
        futures::future::join_all([&p, &b1, &b2].map(|u| queries_served(&http, u))).await;
    let q: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    row(
        rows,
        &format!("dms: no-op check of {} series × 2 backups", series.len()),
        format!("{:.0} ms", noop.wall_s * 1000.0),
        &format!("queries: primary {}, backups {} + {}", q[0], q[1], q[2]),
    );

    // 1,000 series.
    let many = Dataset {
        days: data.days[data.days.len() - 1..].to_vec(),
        symbols: (0..500).map(|i| format!("MANY.S{i:03}")).collect(),
    };
    let many_primary = influx_node("primary", &p, "many", a.workers);
    for s in many.series() {
        let pts: Vec<Point> = many.points_of(&s).into_iter().rev().take(3).collect();
        many_primary.write(Arc::new(Batch::new(pts))).await.unwrap();
    }
    let dir_many = tempfile::tempdir().unwrap();
    let cfg_many = write_config(
        dir_many.path(),
        &influx_nodes(&p, &b1, &b2, "many"),
        a.batch,
        a.workers,
    );
    dms(&cfg_many, &["sync"]);
    let before: Vec<u64> =
        futures::future::join_all([&p, &b1, &b2].map(|u| queries_served(&http, u))).await;
    let noop_many = dms(&cfg_many, &["sync", "--only-behind"]);
    let after: Vec<u64> =
        futures::future::join_all([&p, &b1, &b2].map(|u| queries_served(&http, u))).await;
    let qm: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    row(
        rows,
        "dms: no-op check of 1,000 series × 2 backups",
        format!("{:.0} ms", noop_many.wall_s * 1000.0),
        &format!(
            "queries: primary {}, backups {} + {}; target < 1 s",
            qm[0], qm[1], qm[2]
        ),
    );

    // One new bar per series.
    let next = data.newest() + 60 * 1_000_000_000;
    let mut fresh = Vec::new();
    for s in &series {
        let mut pt = data.points_of(s).pop().unwrap();
        pt.time = if s.interval == "1m" {
            next
        } else {
            pt.time + NANOS_PER_DAY
        };
        fresh.push(pt);
    }
    primary.write(Arc::new(Batch::new(fresh))).await.unwrap();
    let inc = dms(&cfg, &["sync"]);
    row(
        rows,
        "dms: incremental after one new bar per series",
        format!("{:.0} ms", inc.wall_s * 1000.0),
        &format!("{} series × 2 backups", series.len()),
    );

    let reconcile = bench_reconcile(rows, &cfg, &data, &b1, a.workers).await;

    let mut mem = serde_json::Value::Null;
    if a.memory_scale > 1 {
        let big = Dataset::new(a.points * a.memory_scale, "BIG");
        let bn = influx_node("primary", &p, "big", a.workers);
        load(bn, &big, a.batch, 4).await;
        let dir_big = tempfile::tempdir().unwrap();
        let cfg_big = write_config(
            dir_big.path(),
            &influx_nodes(&p, &b1, &b2, "big"),
            a.batch,
            a.workers,
        );
        let big_sync = dms(&cfg_big, &["sync"]);
        row(
            rows,
            &format!("dms peak RSS at {}× the data", a.memory_scale),
            format!("{:.1} MB", big_sync.max_rss_mb),
            &format!(
                "{:+.0}% vs 1× (target within 20%)",
                (big_sync.max_rss_mb / sync.max_rss_mb - 1.0) * 100.0
            ),
        );
        mem = json!({ "scale": a.memory_scale, "points": big.total(), "sync": big_sync, "rss_ratio": big_sync.max_rss_mb / sync.max_rss_mb });
    }

    out.insert(
        "influxdb".into(),
        json!({
            "points": data.total(),
            "series": series.len(),
            "load_points_per_s": load_rate,
            "ceiling": {
                "read_points_per_s": read_ceiling,
                "write_one_points_per_s": write_one,
                "write_both_points_per_s": write_both,
                "copy_points_per_s": copy_ceiling,
            },
            "node": { "read_points_per_s": node_read, "write_one_points_per_s": node_write },
            "dms": {
                "initial": sync,
                "initial_points_per_s": rate,
                "ratio_to_copy_ceiling": rate / copy_ceiling,
                "cpu_share": cpu_share,
                "noop": noop,
                "noop_queries": { "primary": q[0], "backup1": q[1], "backup2": q[2] },
                "noop_1000": noop_many,
                "noop_1000_queries": { "primary": qm[0], "backup1": qm[1], "backup2": qm[2] },
                "incremental_one_bar": inc,
            },
            "reconcile": reconcile,
            "memory_scale": mem,
        }),
    );
}

/// Reconciliation against an exact `dms verify` of the same range, side by side: the daemon's
/// scheduled passes (default settings; `initial_days` set to the data's span so the history
/// pass's slice holds a seventh of the data), a complete full-field reconcile, and
/// one changed value in one field of one bar found and repaired.
async fn bench_reconcile(
    rows: &mut Vec<Row>,
    cfg: &Path,
    data: &Dataset,
    backup1: &str,
    workers: usize,
) -> serde_json::Value {
    let span_days = (chrono::Utc::now().date_naive() - data.days[0]).num_days() + 2;
    let sync_yaml = cfg.join("sync.yaml");
    let text = std::fs::read_to_string(&sync_yaml).unwrap();
    std::fs::write(
        &sync_yaml,
        text.replace("initial_days: 3650", &format!("initial_days: {span_days}")),
    )
    .unwrap();
    let verify = dms(cfg, &["verify"]);
    row(
        rows,
        "dms verify (exact, every point) of the synced range",
        format!("{:.1} s", verify.wall_s),
        &format!("{span_days} days × 2 backups"),
    );
    let ratio = |p: &Proc| p.wall_s / verify.wall_s;
    let history = dms(cfg, &["reconcile", "--pass", "history"]);
    row(
        rows,
        "dms reconcile, scheduled history pass, nothing to fix",
        format!(
            "{:.2} s = {:.0}% of verify",
            history.wall_s,
            ratio(&history) * 100.0
        ),
        "full-field digests of tonight's 1/7 of the range; target ≤ 10%",
    );
    let recent = dms(cfg, &["reconcile", "--pass", "recent"]);
    row(
        rows,
        "dms reconcile, scheduled recent pass (7 days)",
        format!(
            "{:.2} s = {:.0}% of verify",
            recent.wall_s,
            ratio(&recent) * 100.0
        ),
        "full-field digests of the last 7 days",
    );
    // The exact scrub: three stripes in turn (of 30: the nightly history schedule over the
    // default 30-day scrub_period), each should cost about verify ÷ 30.
    let stripes = 30.0;
    let scrubs: Vec<Proc> = (0..3)
        .map(|_| dms(cfg, &["reconcile", "--pass", "scrub"]))
        .collect();
    let scrub_s = scrubs.iter().map(|p| p.wall_s).sum::<f64>() / scrubs.len() as f64;
    let scrub_vs_share = scrub_s / (verify.wall_s / stripes);
    row(
        rows,
        "dms reconcile --pass scrub: one stripe of the exact scrub (mean of 3)",
        format!(
            "{scrub_s:.2} s = {:.1}% of verify = {:.2} × verify/30",
            scrub_s / verify.wall_s * 100.0,
            scrub_vs_share
        ),
        "target ≈ verify ÷ scrub_period (±20%)",
    );
    let nightly = history.wall_s + recent.wall_s + scrub_s;
    row(
        rows,
        "the daemon's nightly work: history pass + recent pass + one scrub stripe",
        format!(
            "{nightly:.2} s = {:.0}% of verify",
            nightly / verify.wall_s * 100.0
        ),
        "target ≤ 10%",
    );
    let complete = dms(cfg, &["reconcile"]);
    row(
        rows,
        "dms reconcile, complete (full-field digests of every window)",
        format!(
            "{:.2} s = {:.0}% of verify",
            complete.wall_s,
            ratio(&complete) * 100.0
        ),
        "target ≤ 30%",
    );

    // One changed value (the `open` of one 1m bar in the middle of the range) on backup1.
    let s = SeriesKey::new(data.symbols[0].clone(), "1m");
    let points = data.points_of(&s);
    let mut changed = points[points.len() / 2].clone();
    for (k, v) in &mut changed.fields {
        if &**k == "open"
            && let dms::model::FieldValue::Float(x) = v
        {
            *x += 0.01;
        }
    }
    let b1 = influx_node("backup1", backup1, DB, workers);
    b1.write(Arc::new(Batch::new(vec![changed]))).await.unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dms"))
        .arg("--config")
        .arg(cfg)
        .args(["reconcile", "--json"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("dms runs");
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let b = run["report"]["backups"]
        .as_array()
        .and_then(|a| a.iter().find(|b| b["backup"] == "backup1"))
        .cloned()
        .unwrap_or_default();
    let found = format!(
        "{} window(s) differed, {} repaired, {} point(s) rewritten",
        b["differing"], b["repaired"], b["rewritten"]
    );
    row(
        rows,
        "dms reconcile after one changed value in one field of one bar",
        found.clone(),
        "target: exactly that window, one point",
    );
    let after = dms(cfg, &["verify"]);
    json!({
        "verify": verify,
        "history_pass": history,
        "history_ratio": ratio(&history),
        "recent_pass": recent,
        "recent_ratio": ratio(&recent),
        "complete": complete,
        "complete_ratio": ratio(&complete),
        "scrub_stripe_s": scrub_s,
        "scrub_vs_verify_share": scrub_vs_share,
        "nightly_ratio": nightly / verify.wall_s,
        "one_change": { "differing": b["differing"], "repaired": b["repaired"], "rewritten": b["rewritten"], "verify_after_s": after.wall_s },
    })
}

fn sqlite_nodes() -> String {
    "nodes:\n  primary: {name: primary, type: sqlite, path: run/primary.db}\n  backups:\n    - {name: backup1, type: sqlite, path: run/backup1.db}\n    - {name: backup2, type: sqlite, path: run/backup2.db}\n".into()
}

async fn bench_sqlite(
    a: &Args,
    out: &mut serde_json::Map<String, serde_json::Value>,
    rows: &mut Vec<Row>,
) {
    println!("\n== sqlite: files in a temp dir ==");
    let dir = tempfile::tempdir().unwrap();
    let data = Dataset::new(a.points, "BENCH");
    let n = data.total() as f64;
    let series = data.series();
    let open = |name: &str| -> Arc<SqliteNode> {
        Arc::new(
            SqliteNode::open(
                name,
                &dir.path().join(format!("run/{name}.db")),
                Schema::default(),
                a.workers,
            )
            .unwrap(),
        )
    };
    // Node write throughput: one writer, batches in order (SQLite has one writer at a time).
    let primary = open("primary");
    let batches: Vec<Arc<Batch>> = series
        .iter()
        .flat_map(|s| {
            data.points_of(s)
                .chunks(a.batch)
                .map(|c| Arc::new(Batch::new(c.to_vec())))
                .collect::<Vec<_>>()
        })
        .collect();
    let t = Instant::now();
    for b in &batches {
        primary.write(b.clone()).await.unwrap();
    }
    let write = n / t.elapsed().as_secs_f64();
    row(
        rows,
        "sqlite node: write",
        kps(write),
        "one transaction per batch; target ≥ 300k",
    );
    drop(batches);
    let t = Instant::now();
    let mut read_n = 0u64;
    for s in &series {
        let mut st = primary.read(s, TimeRange::new(i64::MIN, i64::MAX), a.batch);
        while let Some(b) = st.next().await {
            read_n += b.unwrap().len() as u64;
        }
    }
    assert_eq!(read_n, data.total());
    let read = n / t.elapsed().as_secs_f64();
    row(
        rows,
        "sqlite node: read",
        kps(read),
        "streamed in batches; target ≥ 300k",
    );

    // Raw copy ceiling: read once and write both backup files, without dms, with the same
    // number of series in flight.
    let (c1, c2) = (open("ceiling1"), open("ceiling2"));
    let t = Instant::now();
    futures::stream::iter(series.iter())
        .for_each_concurrent(a.workers, |s| {
            let (primary, c1, c2) = (&primary, &c1, &c2);
            async move {
                let mut st = primary.read(s, TimeRange::new(i64::MIN, i64::MAX), a.batch);
                while let Some(b) = st.next().await {
                    let b = Arc::new(b.unwrap());
                    let (r1, r2) = tokio::join!(c1.write(b.clone()), c2.write(b));
                    r1.unwrap();
                    r2.unwrap();
                }
            }
        })
        .await;
    let copy = n / t.elapsed().as_secs_f64();
    row(
        rows,
        "sqlite ceiling: raw copy (read once, write both)",
        kps(copy),
        "source points/s",
    );
    drop((c1, c2, primary));

    let cfg = write_config(dir.path(), &sqlite_nodes(), a.batch, a.workers);
    let sync = dms(&cfg, &["sync"]);
    let rate = n / sync.wall_s;
    row(
        rows,
        "dms (sqlite): initial sync → 2 backups",
        kps(rate),
        &format!(
            "{:.1} s wall, {:.0}% of raw copy",
            sync.wall_s,
            rate / copy * 100.0
        ),
    );
    row(
        rows,
        "dms (sqlite): CPU, peak RSS",
        format!("{:.1} s", sync.cpu_s),
        &format!("peak RSS {:.1} MB", sync.max_rss_mb),
    );
    let noop = dms(&cfg, &["sync", "--only-behind"]);
    row(
        rows,
        &format!("dms (sqlite): no-op check of {} series × 2", series.len()),
        format!("{:.0} ms", noop.wall_s * 1000.0),
        "",
    );
    out.insert(
        "sqlite".into(),
        json!({
            "points": data.total(),
            "node_write_points_per_s": write,
            "node_read_points_per_s": read,
            "ceiling_copy_points_per_s": copy,
            "dms": { "initial": sync, "initial_points_per_s": rate, "ratio_to_copy_ceiling": rate / copy, "noop": noop },
        }),
    );
}

/// Daily bars of `symbols` at `days` (one point per symbol and day).
fn universe_points(symbols: &[String], days: &[chrono::NaiveDate]) -> Vec<Point> {
    let times = dms::sample::daily_times(days);
    let mut v = Vec::with_capacity(symbols.len() * times.len());
    for s in symbols {
        let bars = dms::sample::bars(s, "1d", &times);
        v.extend(dms::sample::points(&Schema::default(), s, "1d", &bars));
    }
    v
}

/// The ceiling for moving `points`: one multi-series read of them from the primary (every
/// series, `time >= since`, streamed, not parsed) plus posting them pre-encoded to a scratch
/// database on both backups at once; seconds.
async fn universe_ceiling(
    http: &reqwest::Client,
    urls: (&str, &str, &str),
    points: &[Point],
    since: Nanos,
    scratch: &str,
    batch: usize,
    workers: usize,
) -> f64 {
    let (p, b1, b2) = urls;
    for u in [b1, b2] {
        query(http, u, &format!("CREATE DATABASE {scratch}")).await;
    }
    let bodies: Vec<bytes::Bytes> = points
        .chunks(batch)
        .map(|c| {
            let mut buf = Vec::new();
            dms::node::influxdb::line_protocol::encode(c, &mut buf).expect("encodes");
            bytes::Bytes::from(buf)
        })
        .collect();
    let t = Instant::now();
    let q = format!("SELECT * FROM kline WHERE \"interval\" = '1d' AND time >= {since} GROUP BY *");
    let mut r = http
        .post(format!("{p}/query"))
        .form(&[
            ("db", DB),
            ("q", q.as_str()),
            ("epoch", "ns"),
            ("chunked", "true"),
            ("chunk_size", &batch.to_string()),
        ])
        .send()
        .await
        .expect("read");
    while r.chunk().await.expect("body").is_some() {}
    futures::stream::iter(bodies)
        .for_each_concurrent(workers, |b| async move {
            tokio::join!(
                post(http, b1, scratch, b.clone()),
                post(http, b2, scratch, b)
            );
        })
        .await;
    t.elapsed().as_secs_f64()
}

/// The universe scenario: see the module docs.
async fn bench_universe(
    a: &Args,
    out: &mut serde_json::Map<String, serde_json::Value>,
    rows: &mut Vec<Row>,
) {
    let n = a.universe;
    println!("\n== universe: {n} symbols of daily bars, three influxd on loopback ==");
    let servers = futures::future::join_all((0..3).map(|_| InfluxServer::start())).await;
    let Some(servers) = servers.into_iter().collect::<Option<Vec<_>>>() else {
        println!("influxd is not installed: skipping the universe part");
        return;
    };
    let (p, b1, b2) = (servers[0].url(), servers[1].url(), servers[2].url());
    let http = dms::node::http_client_builder()
        .pool_max_idle_per_host(a.workers * 2)
        .build()
        .unwrap();
    let symbols: Vec<String> = (0..n).map(|i| format!("U.S{i:05}")).collect();
    let end = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
    let mut days = dms::sample::weekdays(end - chrono::Duration::days(30), end);
    let today = days.pop().expect("weekdays");
    days.drain(..days.len().saturating_sub(10));
    let primary = influx_node("primary", &p, DB, a.workers);
    let first = universe_points(&symbols, &days);
    for c in first.chunks(a.batch) {
        primary
            .write(Arc::new(Batch::new(c.to_vec())))
            .await
            .expect("load");
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &influx_nodes(&p, &b1, &b2, DB),
        a.batch,
        a.workers,
    );
    let urls = (p.as_str(), b1.as_str(), b2.as_str());
    let since_first = dms::sample::daily_times(&days[..1])[0];
    let ceil_initial =
        universe_ceiling(&http, urls, &first, since_first, "u1", a.batch, a.workers).await;
    let initial = dms(&cfg, &["sync"]);
    let ratio = |p: &Proc, c: f64| p.wall_s / c;
    row(
        rows,
        &format!("universe: initial sync, {n} series × 10 bars × 2 backups"),
        format!(
            "{:.2} s = {:.1}× ceiling ({ceil_initial:.2} s)",
            initial.wall_s,
            ratio(&initial, ceil_initial)
        ),
        "target ≤ 3×",
    );
    // The day's bar arrives for every series.
    let new = universe_points(&symbols, &[today]);
    for c in new.chunks(a.batch) {
        primary
            .write(Arc::new(Batch::new(c.to_vec())))
            .await
            .expect("load");
    }
    let since_new = dms::sample::daily_times(&[today])[0];
    let ceil_daily = universe_ceiling(&http, urls, &new, since_new, "u2", a.batch, a.workers).await;
    let daily = dms(&cfg, &["sync"]);
    let cpu_per_unit_ms = daily.cpu_s * 1000.0 / (2 * n) as f64;
    row(
        rows,
        "universe: daily sync, one new bar per series",
        format!(
            "{:.2} s = {:.1}× ceiling ({ceil_daily:.2} s)",
            daily.wall_s,
            ratio(&daily, ceil_daily)
        ),
        &format!("target ≤ 3×; dms CPU {cpu_per_unit_ms:.3} ms per backup·series (target ≤ 0.1)"),
    );
    let nothing = dms(&cfg, &["sync"]);
    row(
        rows,
        "universe: sync with nothing new",
        format!(
            "{:.2} s = {:.1}× ceiling",
            nothing.wall_s,
            ratio(&nothing, ceil_daily)
        ),
        "target ≤ 2×",
    );
    let check = dms(&cfg, &["sync", "--only-behind"]);
    row(
        rows,
        "universe: check-loop pass (sync --only-behind), nothing to do",
        format!("{:.2} s", check.wall_s),
        &format!(
            "target ≤ 1 s; peak RSS {:.1} MB",
            check.max_rss_mb.max(daily.max_rss_mb)
        ),
    );
    // The daemon over the universe: the status page and /metrics, each asked three times.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let sync_yaml = cfg.join("sync.yaml");
    let text = std::fs::read_to_string(&sync_yaml).unwrap();
    std::fs::write(
        &sync_yaml,
        format!("{text}api:\n  listen: 127.0.0.1:{port}\n"),
    )
    .unwrap();
    let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_dms"))
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dms run starts");
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the daemon did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let timed = |path: &'static str| {
        let (http, base) = (&http, &base);
        async move {
            let mut best = f64::MAX;
            let mut bytes = 0;
            for _ in 0..3 {
                let t = Instant::now();
                let body = http
                    .get(format!("{base}{path}"))
                    .send()
                    .await
                    .expect("GET")
                    .bytes()
                    .await
                    .expect("body");
                best = best.min(t.elapsed().as_secs_f64());
                bytes = body.len();
            }
            (best, bytes)
        }
    };
    let (page_s, page_bytes) = timed("/").await;
    let (metrics_s, metrics_bytes) = timed("/metrics").await;
    let daemon_rss = std::fs::read_to_string(format!("/proc/{}/status", daemon.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0;
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(daemon.id() as libc::pid_t, libc::SIGTERM);
    }
    let _ = daemon.wait();
    row(
        rows,
        "universe: status page / /metrics with the daemon up",
        format!(
            "{page_s:.2} s ({} kB) / {metrics_s:.2} s ({} kB)",
            page_bytes / 1024,
            metrics_bytes / 1024
        ),
        &format!("target < 1 s each; daemon peak RSS {daemon_rss:.1} MB (target < 150 MB)"),
    );
    out.insert(
        "universe".into(),
        json!({
            "series": n,
            "page_s": page_s,
            "page_bytes": page_bytes,
            "metrics_s": metrics_s,
            "metrics_bytes": metrics_bytes,
            "daemon_rss_mb": daemon_rss,
            "ceiling_initial_s": ceil_initial,
            "initial": initial,
            "ceiling_daily_s": ceil_daily,
            "daily": daily,
            "daily_cpu_ms_per_backup_series": cpu_per_unit_ms,
            "nothing_new": nothing,
            "check": check,
        }),
    );
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut out = serde_json::Map::new();
    out.insert("time".into(), json!(chrono::Utc::now().to_rfc3339()));
    out.insert("cores".into(), json!(cores()));
    out.insert("batch_size".into(), json!(a.batch));
    out.insert("max_workers".into(), json!(a.workers));
    let mut rows = Vec::new();
    println!(
        "dms sync benchmark: {} points, batch {}, {} workers, {} cores",
        a.points,
        a.batch,
        a.workers,
        cores()
    );
    rt.block_on(async {
        if a.only.is_none() || a.only.as_deref() == Some("influx") {
            bench_influx(&a, &mut out, &mut rows).await;
        }
        if a.only.is_none() || a.only.as_deref() == Some("sqlite") {
            bench_sqlite(&a, &mut out, &mut rows).await;
        }
        if a.only.is_none() || a.only.as_deref() == Some("universe") {
            bench_universe(&a, &mut out, &mut rows).await;
        }
        if a.only.is_none() || a.only.as_deref() == Some("import") {
            bench_import(&a, &mut out, &mut rows).await;
        }
    });
    out.insert(
        "table".into(),
        json!(
            rows.iter()
                .map(|r| json!({"name": r.name, "value": r.value, "note": r.note}))
                .collect::<Vec<_>>()
        ),
    );
    if let Some(d) = a.out.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(&a.out, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    println!("\nJSON: {}", a.out.display());
}

/// `--only import` (and every full run): CSV → primary with `dms import` as a child process
/// (rows/s, CPU, peak RSS) against, in the same run, a plain Python `csv` + `sqlite3`
/// `executemany` load of the same rows (SQLite), and the raw write ceiling of the same InfluxDB
/// server (the rows pre-encoded as line protocol in the same batches, posted one at a time as
/// the import writes them, and `--workers` at a time).
async fn bench_import(
    a: &Args,
    out: &mut serde_json::Map<String, serde_json::Value>,
    rows: &mut Vec<Row>,
) {
    use std::io::Write;
    println!("\n== import: CSV files into a primary ==");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bars.csv");
    let n = a.points as i64;
    let start = 1_600_000_000i64;
    let time = |i: i64| {
        chrono::DateTime::from_timestamp(start + 60 * i, 0)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default()
    };
    let line = |i: i64| {
        let b = 100.0 + (i % 5000) as f64 / 100.0;
        format!(
            "{},{b:.2},{:.2},{:.2},{:.2},{}\n",
            time(i),
            b + 0.5,
            b - 0.5,
            b + 0.25,
            1000 + i % 977
        )
    };
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
        w.write_all(b"time,open,high,low,close,volume\n").unwrap();
        for i in 0..n {
            w.write_all(line(i).as_bytes()).unwrap();
        }
        w.flush().unwrap();
    }
    let size_mb = std::fs::metadata(&csv).unwrap().len() as f64 / 1e6;
    let file = csv.to_str().unwrap();
    let import = |cfg: &Path| {
        dms(
            cfg,
            &[
                "import",
                "--symbol",
                "US.BENCH",
                "--interval",
                "1m",
                "--float",
                "open",
                "--float",
                "high",
                "--float",
                "low",
                "--float",
                "close",
                "--int",
                "volume",
                file,
            ],
        )
    };

    // SQLite: Python's csv + sqlite3 executemany, then dms.
    let py = dir.path().join("load.py");
    std::fs::write(
        &py,
        r#"import csv, sqlite3, sys
from datetime import datetime
db = sqlite3.connect(sys.argv[2])
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE points (time INTEGER PRIMARY KEY, open REAL, high REAL, low REAL, close REAL, volume INTEGER)")
def rows(f):
    r = csv.reader(f)
    next(r)
    for t, o, h, l, c, v in r:
        ns = int(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()) * 1000000000
        yield ns, float(o), float(h), float(l), float(c), int(v)
with open(sys.argv[1], newline="") as f:
    db.executemany("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?)", rows(f))
db.commit()
"#,
    )
    .unwrap();
    let t = Instant::now();
    let status = std::process::Command::new("python3")
        .arg(&py)
        .arg(&csv)
        .arg(dir.path().join("python.db"))
        .status()
        .expect("python3 runs");
    assert!(status.success(), "the Python load failed");
    let python = n as f64 / t.elapsed().as_secs_f64();
    row(
        rows,
        "import ceiling: Python csv + sqlite3 executemany",
        kps(python),
        &format!("{n} rows, {size_mb:.0} MB of CSV, one transaction"),
    );
    let sdir = dir.path().join("sqlite");
    let cfg = write_config(&sdir, &sqlite_nodes(), a.batch, a.workers);
    let sq = import(&cfg);
    let sq_rate = n as f64 / sq.wall_s;
    row(
        rows,
        "dms import (sqlite primary)",
        kps(sq_rate),
        &format!(
            "{:.0}% of Python; {:.1} s CPU, peak RSS {:.1} MB",
            sq_rate / python * 100.0,
            sq.cpu_s,
            sq.max_rss_mb
        ),
    );

    // InfluxDB: the server's write ceiling for the same batches, then dms.
    let mut influx = serde_json::Value::Null;
    if let Some(server) = InfluxServer::start().await {
        let url = server.url();
        let http = dms::node::http_client_builder().build().unwrap();
        for db in ["ceiling1", "ceilingn", DB] {
            query(&http, &url, &format!("CREATE DATABASE {db}")).await;
        }
        let schema = Schema::default();
        let key = SeriesKey::new("US.BENCH", "1m");
        let (m, tags) = schema.identity(&key);
        let enc: Vec<bytes::Bytes> = (0..n)
            .collect::<Vec<_>>()
            .chunks(a.batch)
            .map(|c| {
                let points: Vec<Point> = c
                    .iter()
                    .map(|&i| {
                        let b = 100.0 + (i % 5000) as f64 / 100.0;
                        let f = |k: &str, v| (Arc::<str>::from(k), v);
                        use dms::model::FieldValue::{Float, Integer};
                        Point {
                            measurement: m.clone(),
                            tags: tags.clone(),
                            fields: vec![
                                f("close", Float(b + 0.25)),
                                f("high", Float(b + 0.5)),
                                f("low", Float(b - 0.5)),
                                f("open", Float(b)),
                                f("volume", Integer(1000 + i % 977)),
                            ],
                            time: (start + 60 * i) * 1_000_000_000,
                        }
                    })
                    .collect();
                let mut buf = Vec::new();
                dms::node::influxdb::line_protocol::encode(&points, &mut buf).expect("encodes");
                bytes::Bytes::from(buf)
            })
            .collect();
        let t = Instant::now();
        for b in &enc {
            post(&http, &url, "ceiling1", b.clone()).await;
        }
        let one = n as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        futures::stream::iter(enc.iter().cloned())
            .for_each_concurrent(a.workers, |b| {
                let (http, url) = (&http, &url);
                async move { post(http, url, "ceilingn", b).await }
            })
            .await;
        let many = n as f64 / t.elapsed().as_secs_f64();
        drop(enc);
        row(
            rows,
            "import ceiling: raw write to influxd, one in flight",
            kps(one),
            "the same rows pre-encoded in the same batches",
        );
        row(
            rows,
            &format!(
                "import ceiling: raw write to influxd, {} in flight",
                a.workers
            ),
            kps(many),
            "",
        );
        let idir = dir.path().join("influx");
        let nodes = format!(
            "nodes:\n  primary: {{name: primary, type: influxdb, url: \"{url}\", database: {DB}}}\n  backups:\n    - {{name: backup1, type: sqlite, path: run/backup1.db}}\n"
        );
        let cfg = write_config(&idir, &nodes, a.batch, a.workers);
        let ix = import(&cfg);
        let ix_rate = n as f64 / ix.wall_s;
        row(
            rows,
            "dms import (influxdb primary)",
            kps(ix_rate),
            &format!(
                "{:.0}% of one in flight, {:.0}% of {} in flight; {:.1} s CPU, peak RSS {:.1} MB",
                ix_rate / one * 100.0,
                ix_rate / many * 100.0,
                a.workers,
                ix.cpu_s,
                ix.max_rss_mb
            ),
        );
        influx = json!({
            "ceiling_one_in_flight": one,
            "ceiling_workers_in_flight": many,
            "dms": ix,
            "dms_rows_per_s": ix_rate,
        });
    }
    out.insert(
        "import".into(),
        json!({
            "rows": n,
            "csv_mb": size_mb,
            "sqlite": {"python_rows_per_s": python, "dms": sq, "dms_rows_per_s": sq_rate},
            "influxdb": influx,
        }),
    );
}
