//! A throwaway project folder: `config/sync.yaml` + `config/task.yaml` with SQLite primary and
//! two SQLite backups under `run/`, scripts and data folders, and helpers to seed and read the
//! real stores.

use dms::app::App;
use dms::config::Settings;
use dms::model::{Batch, NANOS_PER_DAY, Nanos, Point, SeriesKey, TimeRange};
use dms::node::Node;
use dms::node::sqlite::SqliteNode;
use dms::schema::Schema;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Settings every test project starts from: retries 50 ms apart, doubling; the check loop
/// catches up every series (`scope: all`); `extra_top` is appended at the top level.
pub fn sync_yaml(batch_size: usize, retry_times: u32, extra_top: &str) -> String {
    sync_yaml_retrying(batch_size, retry_times, "  retry_delay: 0.05\n", extra_top)
}

/// [`sync_yaml`] without `retry_delay`: retries wait the default 5, 10, 20 s (for tests on
/// paused time).
pub fn sync_yaml_default_delay(batch_size: usize, retry_times: u32) -> String {
    sync_yaml_retrying(batch_size, retry_times, "", "")
}

fn sync_yaml_retrying(
    batch_size: usize,
    retry_times: u32,
    retry_delay: &str,
    extra_top: &str,
) -> String {
    format!(
        r#"sync:
  incremental:
    batch_size: {batch_size}
    initial_days: 3650
    scope: all
  performance:
    max_workers: 4
  retry_times: {retry_times}
{retry_delay}  retry_backoff: exponential
nodes:
  primary:
    name: primary
    type: sqlite
    path: run/primary.db
  backups:
    - name: backup1
      type: sqlite
      path: run/backup1.db
    - name: backup2
      type: sqlite
      path: run/backup2.db
history:
  path: run/db/sync_history.db
{extra_top}"#
    )
}

/// A daemon project: SQLite primary, `backup1` on the InfluxDB at `influx_url` (database `db`,
/// 2 s timeout), SQLite `backup2`, fast checks, a tiny `max_gap_hours`, the API on `port`.
pub fn mixed_daemon_yaml(influx_url: &str, db: &str, port: u16) -> String {
    format!(
        r#"sync:
  incremental:
    check_interval: 0.5
    batch_size: 50
    max_gap_hours: 0.05
    initial_days: 3650
    scope: all
  retry_times: 1
  retry_delay: 0.05
nodes:
  primary: {{name: primary, type: sqlite, path: run/primary.db}}
  backups:
    - {{name: backup1, type: influxdb, url: "{influx_url}", database: {db}, timeout: 2}}
    - {{name: backup2, type: sqlite, path: run/backup2.db}}
history:
  path: run/db/sync_history.db
api:
  listen: 127.0.0.1:{port}
"#
    )
}

/// A project in a temporary folder.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    /// A project with the default test settings and no tasks.
    pub fn new() -> Project {
        Self::with_sync(&sync_yaml(100, 2, ""))
    }

    /// A project with this `sync.yaml` and no tasks.
    pub fn with_sync(sync: &str) -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let p = Project { dir };
        p.write("config/sync.yaml", sync);
        p.write("config/task.yaml", "tasks: []\n");
        p
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_dir(&self) -> PathBuf {
        self.root().join("config")
    }

    /// Writes a file relative to the project root.
    pub fn write(&self, rel: &str, text: &str) {
        let path = self.root().join(rel);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(path, text).unwrap();
    }

    /// The project's settings, with task scripts run by the `dms` binary (the test binary
    /// cannot be the script process).
    pub fn settings(&self) -> Settings {
        let mut s = dms::config::load(&self.config_dir()).expect("test config loads");
        s.scripts.worker = std::path::PathBuf::from(env!("CARGO_BIN_EXE_dms"));
        s
    }

    pub fn app(&self) -> App {
        App::open(self.settings(), "test").expect("app opens")
    }

    /// Opens one of the project's SQLite stores directly (`primary`, `backup1`, `backup2`).
    pub fn node(&self, name: &str) -> Arc<SqliteNode> {
        self.store(name, &format!("run/{name}.db"))
    }

    /// Opens the SQLite store at `rel` (relative to the project root) as node `name`.
    pub fn store(&self, name: &str, rel: &str) -> Arc<SqliteNode> {
        let path = self.root().join(rel);
        Arc::new(SqliteNode::open(name, &path, Schema::default(), 2).expect("store opens"))
    }

    pub fn history(&self) -> dms::history::HistoryReader {
        dms::history::HistoryReader::open(&self.root().join("run/db/sync_history.db"))
            .expect("history opens")
    }

    /// Runs the built `dms` binary in the project folder.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_dms"))
            .args(args)
            .current_dir(self.root())
            .env_remove("DMS_CONFIG")
            .env_remove("COLUMNS")
            .env("RUST_LOG", "warn")
            .output()
            .expect("dms runs")
    }
}

/// `n` OHLCV points of `series`, one every `step` ns, the last one at `end`.
pub fn bars(symbol: &str, interval: &str, n: usize, end: Nanos, step: Nanos) -> Vec<Point> {
    let times: Vec<Nanos> = (0..n as i64)
        .map(|i| end - (n as i64 - 1 - i) * step)
        .collect();
    let b = dms::sample::bars(symbol, interval, &times);
    dms::sample::points(&Schema::default(), symbol, interval, &b)
}

/// Daily bars ending today at midnight UTC.
pub fn daily(symbol: &str, n: usize) -> Vec<Point> {
    let today = dms::model::now_nanos() / NANOS_PER_DAY * NANOS_PER_DAY;
    bars(symbol, "1d", n, today, NANOS_PER_DAY)
}

/// Writes points to a node.
pub async fn put(node: &dyn Node, points: Vec<Point>) {
    node.write(Arc::new(Batch::new(points)))
        .await
        .expect("write to the store");
}

/// Every point of a series on a node, oldest first.
pub async fn all(node: &dyn Node, series: &SeriesKey) -> Vec<Point> {
    let mut s = node.read(series, TimeRange::new(i64::MIN, i64::MAX), 1000);
    let mut out = Vec::new();
    while let Some(b) = s.next().await {
        out.extend(b.expect("read from the store").points);
    }
    out
}

/// The checkpoint of (backup, series).
pub fn checkpoint(p: &Project, backup: &str, series: &SeriesKey) -> Option<Nanos> {
    p.history()
        .checkpoints()
        .unwrap()
        .get(&dms::model::BackupSeries::new(
            backup.to_string(),
            series.clone(),
        ))
        .copied()
}
