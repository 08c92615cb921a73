//! The serde mirror of `sync.yaml` and `task.yaml`: stage one of loading. Every field has a
//! default; unknown keys are errors; single values are checked here so their errors keep the
//! parser's line and column. Rules between fields are checked in [`super::settings`].

use super::de;
use dms_core::retry::Backoff;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `sync.yaml`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SyncFile {
    /// Folder that relative paths are resolved against, itself relative to the config folder.
    /// Default: the config folder's parent.
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// The seed's `sync:` block.
    #[serde(default)]
    pub sync: SyncBlock,
    /// The primary and backup nodes.
    #[serde(default)]
    pub nodes: NodesBlock,
    /// How series map onto measurements and tags.
    #[serde(default)]
    pub schema: SchemaBlock,
    /// The sync history database.
    #[serde(default)]
    pub history: HistoryBlock,
    /// Limits and resources for Lua task scripts.
    #[serde(default)]
    pub scripts: ScriptsBlock,
    /// The daemon's HTTP API.
    #[serde(default)]
    pub api: ApiBlock,
    /// Failure alerts.
    #[serde(default)]
    pub alerts: AlertsBlock,
    /// Daemon behaviour.
    #[serde(default)]
    pub daemon: DaemonBlock,
    /// Reconciliation: digests of primary and backups compared window by window.
    #[serde(default)]
    pub reconcile: ReconcileBlock,
}

/// `reconcile:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileBlock {
    /// Whether the daemon runs the scheduled passes.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Length of one compared window (seconds or `6h`, `1d`).
    #[serde(default = "default_reconcile_window", deserialize_with = "de::span")]
    pub window: Duration,
    /// The frequent pass over recent windows, with full-field digests.
    #[serde(default)]
    pub recent: RecentPass,
    /// The rarer pass over the whole `initial_days` range: cheap digests of every window and
    /// full-field digests of a rolling slice.
    #[serde(default)]
    pub history: HistoryPass,
    /// Seconds (or `10m`) a scheduled pass may take; it stops there and says so.
    #[serde(default = "default_reconcile_budget", deserialize_with = "de::span")]
    pub budget: Duration,
    /// Delete from a backup the points the primary no longer has, inside the compared
    /// windows. Off by default: such points are reported as `extra`.
    #[serde(default)]
    pub mirror_deletes: bool,
    /// Points a pass may delete from one backup (`mirror_deletes`); past it the pass deletes
    /// none and fails, until a person allows them (`dms reconcile --allow-deletes N`).
    #[serde(default = "default_max_deletes")]
    pub max_deletes: u64,
    /// Share of one window's points a pass may delete from a backup (0 to 1).
    #[serde(default = "default_max_delete_share")]
    pub max_delete_share: f64,
    /// Every point of every backup is read and compared exactly once per this period (default
    /// 30 days), a stripe after each history pass.
    #[serde(default = "default_scrub_period", deserialize_with = "de::span")]
    pub scrub_period: Duration,
    /// IANA zone the schedules are read in (default UTC).
    #[serde(default = "utc", deserialize_with = "de::timezone")]
    pub timezone: chrono_tz::Tz,
}

impl Default for ReconcileBlock {
    fn default() -> Self {
        ReconcileBlock {
            enabled: true,
            window: default_reconcile_window(),
            recent: RecentPass::default(),
            history: HistoryPass::default(),
            budget: default_reconcile_budget(),
            mirror_deletes: false,
            max_deletes: default_max_deletes(),
            max_delete_share: default_max_delete_share(),
            scrub_period: default_scrub_period(),
            timezone: utc(),
        }
    }
}

/// `reconcile.recent`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecentPass {
    /// Cron schedule (default: every hour at :15).
    #[serde(default = "default_recent_schedule", deserialize_with = "de::cron")]
    pub schedule: de::CronExpr,
    /// Days before now it covers.
    #[serde(default = "default_recent_days", deserialize_with = "de::days")]
    pub days: u64,
}

impl Default for RecentPass {
    fn default() -> Self {
        RecentPass {
            schedule: default_recent_schedule(),
            days: default_recent_days(),
        }
    }
}

/// `reconcile.history`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryPass {
    /// Cron schedule (default: every day at 02:45).
    #[serde(default = "default_history_schedule", deserialize_with = "de::cron")]
    pub schedule: de::CronExpr,
    /// Full-field digests cover 1/slices of the range per pass, so the whole range is
    /// compared in full every `slices` passes (default 7: a week of nightly passes).
    #[serde(default = "default_slices", deserialize_with = "de::slices")]
    pub slices: u64,
    /// Also count the bars of every window of the range each pass (cheap digests: finds a
    /// missing or extra bar anywhere the same night; roughly doubles the pass's cost).
    #[serde(default)]
    pub counts_everywhere: bool,
}

impl Default for HistoryPass {
    fn default() -> Self {
        HistoryPass {
            schedule: default_history_schedule(),
            slices: default_slices(),
            counts_everywhere: false,
        }
    }
}

fn default_reconcile_window() -> Duration {
    Duration::from_secs(86_400)
}
fn default_max_deletes() -> u64 {
    100
}
fn default_max_delete_share() -> f64 {
    0.5
}
fn default_scrub_period() -> Duration {
    Duration::from_secs(30 * 86_400)
}
fn default_reconcile_budget() -> Duration {
    Duration::from_secs(600)
}
fn default_recent_schedule() -> de::CronExpr {
    de::CronExpr::parse("15 * * * *").unwrap_or_else(|e| unreachable!("fixed expression: {e}"))
}
fn default_recent_days() -> u64 {
    7
}
fn default_history_schedule() -> de::CronExpr {
    de::CronExpr::parse("45 2 * * *").unwrap_or_else(|e| unreachable!("fixed expression: {e}"))
}
fn default_slices() -> u64 {
    7
}

/// `api:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiBlock {
    /// Whether `dms run` serves the HTTP API.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Address and port to listen on; a non-loopback address needs a token.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Bearer token every `/api` route requires (use `${ENV_VAR}`); none by default.
    #[serde(default, deserialize_with = "de::opt_env_string")]
    pub token: Option<String>,
    /// Host names browsers may reach the daemon as (besides IP addresses and `localhost`),
    /// e.g. `[dms.internal.example]`; any other `Host` header is refused (DNS rebinding).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Which backup·series `/metrics` lists in its per-series families: `attention` (those
    /// not current, or flagged future or stale) or `all`.
    #[serde(default)]
    pub metrics_series: Option<String>,
}

impl Default for ApiBlock {
    fn default() -> Self {
        ApiBlock {
            enabled: true,
            listen: default_listen(),
            token: None,
            allowed_hosts: Vec::new(),
            metrics_series: None,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8686".into()
}

/// `alerts:`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AlertsBlock {
    /// URL that receives a JSON POST when a task run fails or a series turns behind.
    #[serde(default, deserialize_with = "de::opt_env_string")]
    pub webhook: Option<String>,
    /// Seconds per delivery attempt (default 10).
    #[serde(default, deserialize_with = "de::opt_seconds")]
    pub timeout: Option<Duration>,
    /// Retries of a failed delivery (default 3).
    #[serde(default)]
    pub retries: Option<u32>,
}

/// `daemon:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonBlock {
    /// Seconds to let work in flight finish after SIGINT/SIGTERM before exiting.
    #[serde(default = "default_grace", deserialize_with = "de::seconds")]
    pub shutdown_grace: Duration,
}

impl Default for DaemonBlock {
    fn default() -> Self {
        DaemonBlock {
            shutdown_grace: default_grace(),
        }
    }
}

fn default_grace() -> Duration {
    Duration::from_secs(30)
}

pub use dms_core::ledger::SyncMode;

/// The seed's `sync:` block, keys and defaults exactly.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncBlock {
    /// Mode used when a task or command does not say: `incremental` or `full`.
    #[serde(default)]
    pub default_mode: SyncMode,
    /// Incremental sync settings.
    #[serde(default)]
    pub incremental: IncrementalBlock,
    /// Parallelism and pooling.
    #[serde(default)]
    pub performance: PerformanceBlock,
    /// How many times a failed batch is retried.
    #[serde(default = "default_retry_times")]
    pub retry_times: u32,
    /// Base retry delay in seconds.
    #[serde(default = "default_retry_delay", deserialize_with = "de::seconds")]
    pub retry_delay: Duration,
    /// `exponential` or `linear`.
    #[serde(default)]
    pub retry_backoff: Backoff,
}

impl Default for SyncBlock {
    fn default() -> Self {
        SyncBlock {
            default_mode: SyncMode::default(),
            incremental: IncrementalBlock::default(),
            performance: PerformanceBlock::default(),
            retry_times: default_retry_times(),
            retry_delay: default_retry_delay(),
            retry_backoff: Backoff::default(),
        }
    }
}

fn default_retry_times() -> u32 {
    3
}
fn default_retry_delay() -> Duration {
    Duration::from_secs(5)
}

/// `sync.incremental`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncrementalBlock {
    /// Whether the daemon's check loop keeps backups caught up between task runs.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Seconds between check-loop passes.
    #[serde(default = "default_check_interval", deserialize_with = "de::timeout")]
    pub check_interval: Duration,
    /// Points per read and per write request.
    #[serde(default = "default_batch_size", deserialize_with = "de::batch_size")]
    pub batch_size: u64,
    /// Lag in hours beyond which a (backup, series) is `behind`.
    #[serde(default = "default_max_gap_hours", deserialize_with = "de::hours")]
    pub max_gap_hours: f64,
    /// Days of history copied on a first sync.
    #[serde(default = "default_initial_days", deserialize_with = "de::days")]
    pub initial_days: u64,
    /// How far before the checkpoint every incremental sync re-reads, so revisions of recent
    /// bars reach the backups (seconds or `30m`, `2h`, `1d`); 0: the newest bar only.
    #[serde(default, deserialize_with = "de::span")]
    pub lookback: Duration,
    /// Points newer than now + this are future-dated: copied, but no checkpoint passes
    /// now + this, so later bars keep flowing (seconds or `6h`, `2d`).
    #[serde(default = "default_future_tolerance", deserialize_with = "de::span")]
    pub future_tolerance: Duration,
    /// What the check loop catches up: `tasks` (what enabled tasks maintain) or `all`.
    #[serde(default)]
    pub scope: CheckScope,
}

/// What the daemon's check loop catches up between task runs.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckScope {
    /// Each (backup, series) some enabled task maintains (as its last run chose), with that
    /// task's `initial_days`.
    #[default]
    Tasks,
    /// Every series the primary holds, on every enabled backup.
    All,
}

impl Default for IncrementalBlock {
    fn default() -> Self {
        IncrementalBlock {
            enabled: true,
            check_interval: default_check_interval(),
            batch_size: default_batch_size(),
            max_gap_hours: default_max_gap_hours(),
            initial_days: default_initial_days(),
            lookback: Duration::ZERO,
            future_tolerance: default_future_tolerance(),
            scope: CheckScope::Tasks,
        }
    }
}

fn default_future_tolerance() -> Duration {
    // A daily bar stamped at the end of its trading date, in UTC+14, is up to 38 h ahead of
    // UTC: two days cover every zone.
    Duration::from_secs(2 * 86_400)
}

pub(crate) fn yes() -> bool {
    true
}
fn default_check_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_batch_size() -> u64 {
    5000
}
fn default_max_gap_hours() -> f64 {
    24.0
}
fn default_stale_after() -> u32 {
    2
}
pub(crate) fn default_initial_days() -> u64 {
    1825
}

/// `sync.performance`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerformanceBlock {
    /// Series synced in parallel (each read once and fanned out to its backups).
    #[serde(default = "five", deserialize_with = "de::workers")]
    pub max_workers: u64,
    /// Connections per node.
    #[serde(default = "five", deserialize_with = "de::workers")]
    pub connection_pool_size: u64,
}

impl Default for PerformanceBlock {
    fn default() -> Self {
        PerformanceBlock {
            max_workers: five(),
            connection_pool_size: five(),
        }
    }
}

fn five() -> u64 {
    5
}

/// `nodes:`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NodesBlock {
    /// The node every copy is read from.
    #[serde(default)]
    pub primary: Option<NodeBlock>,
    /// The nodes every copy is written to.
    #[serde(default)]
    pub backups: Vec<NodeBlock>,
}

/// Node kind.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    /// Embedded SQLite file store.
    Sqlite,
    /// A server speaking the InfluxDB 1.x HTTP API.
    Influxdb,
}

/// One node. Which keys apply depends on `type`; the others are rejected in validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeBlock {
    /// Unique node name (`primary`, `backup1`, …).
    pub name: String,
    /// `sqlite` or `influxdb`.
    #[serde(rename = "type")]
    pub kind: NodeType,
    /// Whether the node takes part (backups only).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// sqlite: the database file.
    #[serde(default, deserialize_with = "de::opt_env_string")]
    pub path: Option<String>,
    /// influxdb: base URL, e.g. `http://127.0.0.1:8086`.
    #[serde(default, deserialize_with = "de::opt_env_string")]
    pub url: Option<String>,
    /// influxdb: database name (1.x) or the bucket's DBRP-mapped database (2.x/3.x).
    #[serde(default, deserialize_with = "de::opt_env_string")]
    pub database: Option<String>,
    /// influxdb: retention policy; the database default when unset.
    #[serde(default, deserialize_with = "de::opt_env_string")]
    pub retention_policy: Option<String>,
    /// influxdb 1.x: user name.
    #[serde(default, deserialize_with = "de::opt_env_string")]
    pub username: Option<String>,
    /// influxdb 1.x: password (use `${ENV_VAR}`).
    #[serde(default, deserialize_with = "de::opt_env_string")]
    pub password: Option<String>,
    /// influxdb 2.x/3.x: API token (use `${ENV_VAR}`).
    #[serde(default, deserialize_with = "de::opt_env_string")]
    pub token: Option<String>,
    /// influxdb: request timeout in seconds.
    #[serde(default, deserialize_with = "de::opt_seconds")]
    pub timeout: Option<Duration>,
    /// influxdb: gzip request bodies of writes.
    #[serde(default)]
    pub gzip: Option<bool>,
    /// influxdb backups: create the database on the first write when it does not exist
    /// (default true). Never on the primary: dms does not create the primary's database.
    #[serde(default)]
    pub create_database: Option<bool>,
}

/// `schema:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaBlock {
    /// Measurement name; may contain one `{interval}` placeholder.
    #[serde(default = "default_measurement")]
    pub measurement: String,
    /// Tag holding the symbol.
    #[serde(default = "default_symbol_tag")]
    pub symbol_tag: String,
    /// Tag holding the interval. Default: `interval`, or none when the measurement name
    /// carries the interval (`kline_{interval}`).
    #[serde(default)]
    pub interval_tag: Option<String>,
    /// The field every bar carries, which cheap digests count.
    #[serde(default = "default_key_field")]
    pub key_field: String,
}

impl Default for SchemaBlock {
    fn default() -> Self {
        SchemaBlock {
            measurement: default_measurement(),
            symbol_tag: default_symbol_tag(),
            interval_tag: None,
            key_field: default_key_field(),
        }
    }
}

fn default_key_field() -> String {
    "close".into()
}

fn default_measurement() -> String {
    "kline".into()
}
fn default_symbol_tag() -> String {
    "symbol".into()
}

/// `history:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryBlock {
    /// The history database file.
    #[serde(default = "default_history_path")]
    pub path: PathBuf,
    /// Days of `sync_history` and task-run rows to keep.
    #[serde(default = "default_retention_days", deserialize_with = "de::days")]
    pub retention_days: u64,
    /// Seconds a write waits for another process's lock on the file before failing.
    #[serde(default = "default_busy_timeout", deserialize_with = "de::seconds")]
    pub busy_timeout: Duration,
}

fn default_busy_timeout() -> Duration {
    Duration::from_secs(10)
}

impl Default for HistoryBlock {
    fn default() -> Self {
        HistoryBlock {
            path: default_history_path(),
            retention_days: default_retention_days(),
            busy_timeout: default_busy_timeout(),
        }
    }
}

fn default_history_path() -> PathBuf {
    PathBuf::from("run/db/sync_history.db")
}
fn default_retention_days() -> u64 {
    90
}

/// `scripts:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptsBlock {
    /// Memory limit per task's Lua state, in MiB.
    #[serde(default = "default_memory_mb", deserialize_with = "de::memory_mb")]
    pub memory_limit_mb: u64,
    /// Lua instructions allowed per hook call.
    #[serde(
        default = "default_instruction_limit",
        deserialize_with = "de::positive"
    )]
    pub instruction_limit: u64,
    /// Folder `dms.csv` may read from.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Hosts `dms.http` may reach: exact names, or `*.example.com` for its subdomains.
    #[serde(default)]
    pub http_allow: Vec<String>,
    /// Seconds a `dms.http` request may take.
    #[serde(default = "default_http_timeout", deserialize_with = "de::seconds")]
    pub http_timeout: Duration,
}

fn default_http_timeout() -> Duration {
    Duration::from_secs(30)
}

impl Default for ScriptsBlock {
    fn default() -> Self {
        ScriptsBlock {
            memory_limit_mb: default_memory_mb(),
            instruction_limit: default_instruction_limit(),
            data_dir: default_data_dir(),
            http_allow: Vec::new(),
            http_timeout: default_http_timeout(),
        }
    }
}

fn default_memory_mb() -> u64 {
    64
}
fn default_instruction_limit() -> u64 {
    200_000_000
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

/// `task.yaml`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    /// The maintenance tasks.
    #[serde(default)]
    pub tasks: Vec<TaskBlock>,
}

/// One task.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskBlock {
    /// Unique task name.
    pub name: String,
    /// Sync mode for this task's syncs (`incremental` or `full`); `sync.default_mode` when unset.
    #[serde(rename = "type", default)]
    pub mode: Option<SyncMode>,
    /// Whether the task syncs its series to the backups after its hooks ran.
    #[serde(default = "yes")]
    pub sync_backups: bool,
    /// Backups this task syncs to; all enabled backups when unset.
    #[serde(default)]
    pub backups: Option<Vec<String>>,
    /// Days of history for this task's first syncs; the global `initial_days` when unset.
    #[serde(default, deserialize_with = "de::opt_days")]
    pub initial_days: Option<u64>,
    /// Cron expression (5 fields, or 6 with seconds); the task only runs by hand when unset.
    #[serde(default, deserialize_with = "de::opt_cron")]
    pub schedule: Option<de::CronExpr>,
    /// Time zone the schedule is read in.
    #[serde(default = "utc", deserialize_with = "de::timezone")]
    pub timezone: chrono_tz::Tz,
    /// Lua script, relative to the root; without one the task syncs every series the primary holds.
    #[serde(default)]
    pub script: Option<PathBuf>,
    /// Free-form parameters handed to the script as `ctx.params`.
    #[serde(default)]
    pub params: Option<yaml_serde::Value>,
    /// Whether the task runs at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Seconds a run may take before it is stopped and recorded as failed.
    #[serde(default = "default_timeout", deserialize_with = "de::timeout")]
    pub timeout: Duration,
    /// After downtime, run a missed schedule once at start.
    #[serde(default = "yes")]
    pub catch_up: bool,
    /// A series this task maintains is `stale` when this many successful runs in a row found
    /// the primary's newest bar unchanged and overdue (older than two bars); 0: never.
    #[serde(default = "default_stale_after")]
    pub stale_after: u32,
}

fn utc() -> chrono_tz::Tz {
    chrono_tz::UTC
}
fn default_timeout() -> Duration {
    Duration::from_secs(3600)
}
