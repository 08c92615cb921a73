//! Shared pieces of the InfluxDB tests: starting servers, a project folder whose `sync.yaml`
//! points at them, seeding data through the node, and comparing a backup with the primary
//! both through dms and with raw InfluxQL.

use crate::helper::influxd::InfluxServer;
use chrono::{Datelike, NaiveDate, Weekday};
use dms::app::{App, RunOutcome};
use dms::config::{InfluxAuth, InfluxSettings, NodeKind, NodeSettings, Secret};
use dms::history::{HistoryFilter, HistoryReader, HistoryRow};
use dms::model::{Batch, Nanos, Point, SeriesKey, TimeRange};
use dms::node::{self, Node};
use dms::sample;
use dms::schema::Schema;
use dms::sync::{Selection, SyncControl, SyncRequest};
use futures::TryStreamExt;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;

/// Days a first sync copies in these tests (the data is at most weeks old).
pub const INITIAL_DAYS: u32 = 3650;

/// Starts `n` servers at once; `None` when `influxd` is missing and the test is skipped.
pub async fn servers(n: usize) -> Option<Vec<InfluxServer>> {
    futures::future::join_all((0..n).map(|_| InfluxServer::start()))
        .await
        .into_iter()
        .collect()
}

/// Where a node lives and how it logs in, as `sync.yaml` spells it.
#[derive(Clone, Debug)]
pub struct Target {
    /// Base URL.
    pub url: String,
    /// Database.
    pub database: String,
    /// More keys of the node block (`username`, `gzip`, …), values as plain YAML scalars.
    pub extra: Vec<(String, String)>,
}

impl Target {
    /// Database `database` on `server`.
    pub fn on(server: &InfluxServer, database: &str) -> Target {
        Target {
            url: server.url(),
            database: database.to_string(),
            extra: Vec::new(),
        }
    }

    /// A URL where nothing listens.
    pub fn nowhere(database: &str) -> Target {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Target {
            url: format!("http://127.0.0.1:{port}"),
            database: database.to_string(),
            extra: Vec::new(),
        }
    }

    /// Adds a key to the node block; `value` goes into the YAML as it is.
    pub fn with(mut self, key: &str, value: &str) -> Target {
        self.extra.push((key.to_string(), value.to_string()));
        self
    }

    fn extra(&self, key: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn yaml(&self, name: &str, indent: &str) -> String {
        let q = |s: &str| serde_json::to_string(s).expect("a JSON string is valid YAML");
        let mut s = format!(
            "{indent}name: {name}\n{indent}type: influxdb\n{indent}url: {}\n{indent}database: {}\n{indent}timeout: 10\n",
            q(&self.url),
            q(&self.database)
        );
        for (k, v) in &self.extra {
            s.push_str(&format!("{indent}{k}: {v}\n"));
        }
        s
    }
}

/// Sync settings that vary between tests.
#[derive(Clone, Debug)]
pub struct Options {
    /// Points per batch.
    pub batch_size: usize,
    /// Retries of a failed batch.
    pub retry_times: u32,
    /// Base retry delay in seconds.
    pub retry_delay: f64,
    /// `schema.measurement`.
    pub measurement: String,
    /// `schema.interval_tag` (`None`: the interval is in the measurement name).
    pub interval_tag: Option<String>,
    /// More top-level `sync.yaml` blocks (e.g. `reconcile:`), as YAML text.
    pub extra_yaml: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_size: 500,
            retry_times: 2,
            retry_delay: 0.05,
            measurement: "kline".into(),
            interval_tag: Some("interval".into()),
            extra_yaml: String::new(),
        }
    }
}

impl Options {
    /// The schema these options describe.
    pub fn schema(&self) -> Schema {
        Schema::new(&self.measurement, "symbol", self.interval_tag.as_deref()).expect("a schema")
    }
}

/// A config folder (`sync.yaml`, `task.yaml`) and history file in a temp dir.
pub struct Project {
    /// The temp dir, kept until the project is dropped.
    _dir: TempDir,
    /// Config folder.
    pub config: PathBuf,
    /// History database.
    pub history: PathBuf,
}

impl Project {
    /// Writes the config: `primary`, then `backup1`, `backup2`, … for `backups`.
    pub fn new(primary: &Target, backups: &[Target], opts: &Options) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("dms-influx-test-")
            .tempdir()
            .expect("a temp dir");
        let config = dir.path().join("config");
        std::fs::create_dir_all(&config).expect("config dir");
        let history = dir.path().join("run/db/sync_history.db");
        let mut nodes = format!("nodes:\n  primary:\n{}", primary.yaml("primary", "    "));
        nodes.push_str("  backups:\n");
        for (i, b) in backups.iter().enumerate() {
            let block = b.yaml(&format!("backup{}", i + 1), "      ");
            nodes.push_str(&format!("    -{}", &block[5..]));
        }
        let interval_tag = match &opts.interval_tag {
            Some(t) => format!("  interval_tag: {t}\n"),
            None => "  interval_tag: null\n".to_string(),
        };
        let sync_yaml = format!(
            "root: ..\n\
             sync:\n  incremental:\n    batch_size: {batch}\n    initial_days: {INITIAL_DAYS}\n    scope: all\n\
             \x20 performance:\n    max_workers: 4\n    connection_pool_size: 4\n\
             \x20 retry_times: {times}\n  retry_delay: {delay}\n  retry_backoff: exponential\n\
             {nodes}\
             schema:\n  measurement: {measurement:?}\n  symbol_tag: symbol\n{interval_tag}\
             history:\n  path: {history:?}\n{extra}",
            batch = opts.batch_size,
            times = opts.retry_times,
            delay = opts.retry_delay,
            measurement = opts.measurement,
            history = history.display().to_string(),
            extra = opts.extra_yaml,
        );
        std::fs::write(config.join("sync.yaml"), sync_yaml).expect("sync.yaml");
        std::fs::write(config.join("task.yaml"), "tasks: []\n").expect("task.yaml");
        Project {
            _dir: dir,
            config,
            history,
        }
    }

    /// Loads the config and opens the app, as `dms` does.
    pub fn app(&self) -> App {
        let mut settings = dms::config::load(&self.config).unwrap_or_else(|e| {
            let text = std::fs::read_to_string(self.config.join("sync.yaml")).unwrap_or_default();
            panic!("{e:#}\nsync.yaml:\n{text}")
        });
        settings.scripts.worker = PathBuf::from(env!("CARGO_BIN_EXE_dms"));
        App::open(settings, "test").expect("opening the app")
    }

    /// Runs the built `dms` binary on this project's config.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_dms"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("DMS_CONFIG")
            .env("RUST_LOG", "warn")
            .output()
            .expect("dms runs")
    }

    /// Every checkpoint in the history.
    pub fn checkpoints(&self) -> HashMap<dms::model::BackupSeries, Nanos> {
        HistoryReader::open(&self.history)
            .expect("history")
            .checkpoints()
            .expect("checkpoints")
    }

    /// The checkpoint of one (backup, series).
    pub fn checkpoint(&self, backup: &str, series: &SeriesKey) -> Option<Nanos> {
        self.checkpoints()
            .get(&dms::model::BackupSeries::new(
                backup.to_string(),
                series.clone(),
            ))
            .copied()
    }

    /// History rows of one backup, newest first.
    pub fn history_rows(&self, backup: &str) -> Vec<HistoryRow> {
        HistoryReader::open(&self.history)
            .expect("history")
            .history(&HistoryFilter {
                backup: Some(backup.to_string()),
                ..HistoryFilter::default()
            })
            .expect("history rows")
    }
}

/// A manual sync of `selection` to every enabled backup (as `dms sync`).
pub async fn sync(app: &App, selection: Selection) -> RunOutcome {
    sync_with(app, selection, &SyncControl::default()).await
}

/// Like [`sync`] with a control (progress, cancellation).
pub async fn sync_with(app: &App, selection: Selection, control: &SyncControl) -> RunOutcome {
    app.manual_sync(SyncRequest::new(selection, INITIAL_DAYS), control)
        .await
        .expect("the sync runs")
}

/// Opens a node on `target`, outside the app (seeding, reading back).
pub fn node(name: &str, target: &Target, schema: &Schema) -> Arc<dyn Node> {
    let auth = match (target.extra("username"), target.extra("password")) {
        (Some(u), Some(p)) => InfluxAuth::Basic {
            username: u.to_string(),
            password: Secret::new(p.to_string()),
        },
        _ => InfluxAuth::None,
    };
    let settings = NodeSettings {
        name: name.to_string(),
        enabled: true,
        kind: NodeKind::Influxdb(InfluxSettings {
            url: target.url.clone(),
            database: target.database.clone(),
            retention_policy: None,
            auth,
            timeout: Duration::from_secs(10),
            gzip: false,
            create_database: true,
        }),
    };
    node::open(&settings, schema, 2).expect("opening a node")
}

/// Writes points through the node, 5,000 at a time.
pub async fn put(node: &dyn Node, points: Vec<Point>) {
    for chunk in points.chunks(5000) {
        node.write(Arc::new(Batch::new(chunk.to_vec())))
            .await
            .unwrap_or_else(|e| panic!("seeding {}: {e}", node.name()));
    }
}

/// Every point of a series, read through the node in one window.
pub async fn dump(node: &dyn Node, series: &SeriesKey) -> Vec<Point> {
    let batches: Vec<Batch> = node
        .read(series, TimeRange::new(0, i64::MAX / 2), 10_000)
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("reading {series} from {}: {e}", node.name()));
    batches.into_iter().flat_map(|b| b.points).collect()
}

/// Asserts that `backup` holds exactly the points of `primary` for each series: same count,
/// tags, field values and field types.
pub async fn assert_same_points(primary: &dyn Node, backup: &dyn Node, series: &[SeriesKey]) {
    for s in series {
        let a = dump(primary, s).await;
        let b = dump(backup, s).await;
        assert!(!a.is_empty(), "{s}: the primary holds nothing");
        assert_eq!(
            a.len(),
            b.len(),
            "{s}: {} has {} points, the primary {}",
            backup.name(),
            b.len(),
            a.len()
        );
        if let Some((pa, pb)) = a.iter().zip(&b).find(|(x, y)| x != y) {
            panic!(
                "{s}: {} differs from the primary:\n  primary: {pa:?}\n  backup:  {pb:?}",
                backup.name()
            );
        }
    }
}

/// Raw InfluxQL checks, independent of dms's reader: per measurement, the field keys with
/// their types, the tag keys, and the count of every field per tag set are the same.
pub async fn assert_same_raw(
    primary: (&InfluxServer, &str),
    backup: (&InfluxServer, &str),
    measurements: &[&str],
) {
    for m in measurements {
        let qm = format!("\"{}\"", m.replace('\\', "\\\\").replace('"', "\\\""));
        for q in [
            format!("SHOW FIELD KEYS FROM {qm}"),
            format!("SHOW TAG KEYS FROM {qm}"),
            format!("SELECT count(*) FROM {qm} GROUP BY *"),
        ] {
            let a = primary.0.query(primary.1, &q).await;
            let b = backup.0.query(backup.1, &q).await;
            assert!(
                a["results"][0]["series"].is_array(),
                "{q} on the primary: {a}"
            );
            assert_eq!(sorted_series(&a), sorted_series(&b), "{q}");
        }
    }
}

/// The series of a raw answer, sorted (their order is not defined).
fn sorted_series(v: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = v["results"][0]["series"]
        .as_array()
        .map(|a| a.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// The field keys of a measurement with their types, raw.
pub async fn field_keys(
    server: &InfluxServer,
    db: &str,
    measurement: &str,
) -> Vec<(String, String)> {
    let v = server
        .query(db, &format!("SHOW FIELD KEYS FROM \"{measurement}\""))
        .await;
    v["results"][0]["series"][0]["values"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r[0].as_str().unwrap_or("").to_string(),
                        r[1].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The last `n` weekdays before today.
pub fn recent_weekdays(n: usize) -> Vec<NaiveDate> {
    let mut d = chrono::Utc::now().date_naive();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        d = d.pred_opt().expect("a date");
        if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
            out.push(d);
        }
    }
    out.reverse();
    out
}

/// Sample bars of one series as points: `1d` bars on `days` weekdays, or `1m` bars of the US
/// session on the last `days` weekdays.
pub fn bars(schema: &Schema, symbol: &str, interval: &str, days: usize) -> Vec<Point> {
    let dates = recent_weekdays(days);
    let times = match interval {
        "1d" => sample::daily_times(&dates),
        _ => sample::us_minute_times(&dates),
    };
    sample::points(
        schema,
        symbol,
        interval,
        &sample::bars(symbol, interval, &times),
    )
}
