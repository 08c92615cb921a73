//! Stage two of loading: the validated settings the rest of the program uses, and the rules
//! between fields. Validation collects every problem before reporting.

use super::de::CronExpr;
use super::problem::Problems;
use super::raw::{self, CheckScope, NodeType, SyncMode};
use dms_core::retry::RetryPolicy;
use dms_core::schema::Schema;
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything `sync.yaml` and `task.yaml` say, checked and with paths resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The folder holding `sync.yaml` and `task.yaml`.
    pub config_dir: PathBuf,
    /// The folder relative paths were resolved against.
    pub root: PathBuf,
    /// Sync engine settings.
    pub sync: SyncSettings,
    /// The primary node.
    pub primary: NodeSettings,
    /// All backup nodes, enabled or not.
    pub backups: Vec<NodeSettings>,
    /// Series mapping.
    pub schema: Schema,
    /// History database.
    pub history: HistorySettings,
    /// Lua limits.
    pub scripts: ScriptSettings,
    /// HTTP API.
    pub api: ApiSettings,
    /// Failure alerts.
    pub alerts: AlertSettings,
    /// Time work in flight gets after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Tasks in file order.
    pub tasks: Vec<TaskSettings>,
    /// Reconciliation.
    pub reconcile: ReconcileSettings,
}

/// The daemon's HTTP API.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Whether `dms run` serves it.
    pub enabled: bool,
    /// Listen address.
    pub listen: std::net::SocketAddr,
    /// Bearer token for `/api` routes.
    pub token: Option<Secret>,
    /// Host names (lower case, no port) a request's `Host` may name besides IP addresses and
    /// `localhost`.
    pub allowed_hosts: Vec<String>,
    /// Whether `/metrics` lists every backup·series in its per-series families (`all`), or
    /// only those that need attention (the default: not current, or flagged).
    pub metrics_all_series: bool,
}

/// The shortest token a daemon listening beyond loopback accepts.
pub const MIN_TOKEN_LEN: usize = 16;

/// Failure alerts.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// Webhook URL.
    pub webhook: Option<String>,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Retries of a failed delivery.
    pub retries: u32,
}

impl Settings {
    /// The enabled backups.
    pub fn enabled_backups(&self) -> impl Iterator<Item = &NodeSettings> {
        self.backups.iter().filter(|b| b.enabled)
    }

    /// The task called `name`.
    pub fn task(&self, name: &str) -> Option<&TaskSettings> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// Checks backup names given by a person (a CLI filter, an API parameter).
    ///
    /// # Errors
    /// [`UnknownBackup`] naming the first that is not an enabled backup and listing those
    /// that are.
    pub fn check_backups<'a>(
        &self,
        names: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), UnknownBackup> {
        for n in names {
            if !self.enabled_backups().any(|b| &b.name == n) {
                return Err(UnknownBackup {
                    name: n.clone(),
                    known: self.enabled_backups().map(|b| b.name.clone()).collect(),
                });
            }
        }
        Ok(())
    }
}

/// A backup name that is not a configured backup (disabled ones included): for reading
/// what the history recorded of it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no backup is called {name:?}; the backups are: {}", if known.is_empty() { "none".to_string() } else { known.join(", ") })]
pub struct UnknownConfiguredBackup {
    /// The name given.
    pub name: String,
    /// The configured backups, disabled ones marked.
    pub known: Vec<String>,
}

impl Settings {
    /// `Ok` when every name is a configured backup, enabled or not: the history of a
    /// disabled backup stays readable.
    ///
    /// # Errors
    /// [`UnknownConfiguredBackup`] naming the first that is not one.
    pub fn check_configured_backups<'a>(
        &self,
        names: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), UnknownConfiguredBackup> {
        for n in names {
            if !self.backups.iter().any(|b| &b.name == n) {
                return Err(UnknownConfiguredBackup {
                    name: n.clone(),
                    known: self
                        .backups
                        .iter()
                        .map(|b| {
                            if b.enabled {
                                b.name.clone()
                            } else {
                                format!("{} (disabled)", b.name)
                            }
                        })
                        .collect(),
                });
            }
        }
        Ok(())
    }
}

/// A backup name that is not an enabled backup.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no enabled backup is called {name:?}; the enabled backups are: {}", if known.is_empty() { "none".to_string() } else { known.join(", ") })]
pub struct UnknownBackup {
    /// The name given.
    pub name: String,
    /// The enabled backups.
    pub known: Vec<String>,
}

/// The sync engine's settings.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Mode when none is given.
    pub default_mode: SyncMode,
    /// Whether the daemon's check loop runs.
    pub check_enabled: bool,
    /// Time between check-loop passes.
    pub check_interval: Duration,
    /// What the check loop catches up.
    pub check_scope: CheckScope,
    /// Points per request.
    pub batch_size: usize,
    /// Lag beyond which a (backup, series) is behind.
    pub max_gap: Duration,
    /// Days copied on a first sync.
    pub initial_days: u32,
    /// Series synced in parallel.
    pub max_workers: usize,
    /// Connections per node.
    pub pool_size: usize,
    /// Retry policy for failed batches.
    pub retry: RetryPolicy,
    /// How far before the checkpoint an incremental sync re-reads.
    pub lookback: Duration,
    /// Points newer than now + this are future-dated; no checkpoint passes now + this.
    pub future_tolerance: Duration,
}

impl SyncSettings {
    /// The newest data time a checkpoint may take now: now + `future_tolerance`.
    pub fn horizon(&self) -> dms_core::model::Nanos {
        let tol = i64::try_from(self.future_tolerance.as_nanos()).unwrap_or(i64::MAX);
        dms_core::model::now_nanos().saturating_add(tol)
    }

    /// `lookback` in nanoseconds.
    pub fn lookback_nanos(&self) -> dms_core::model::Nanos {
        i64::try_from(self.lookback.as_nanos()).unwrap_or(i64::MAX)
    }
}

/// Reconciliation: scheduled digest comparisons of primary and backups.
#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    /// Whether the daemon runs the scheduled passes.
    pub enabled: bool,
    /// Window length in nanoseconds.
    pub window: dms_core::model::Nanos,
    /// Schedule of the recent pass.
    pub recent_schedule: CronExpr,
    /// Days the recent pass covers.
    pub recent_days: u32,
    /// Schedule of the history pass.
    pub history_schedule: CronExpr,
    /// Passes over which the history pass's full-field slice covers the whole range.
    pub slices: u32,
    /// The history pass also counts the bars of every window.
    pub counts_everywhere: bool,
    /// Longest a scheduled pass may take.
    pub budget: Duration,
    /// Delete points the primary no longer has from the backups.
    pub mirror_deletes: bool,
    /// Points a pass may delete from one backup.
    pub max_deletes: u64,
    /// Share of a window's points a pass may delete.
    pub max_delete_share: f64,
    /// Each point is scrubbed (read and compared exactly) once per this period.
    pub scrub_period: Duration,
    /// Zone of the schedules.
    pub timezone: chrono_tz::Tz,
}

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One node.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// Unique name.
    pub name: String,
    /// Whether it takes part (backups).
    pub enabled: bool,
    /// Kind and connection.
    pub kind: NodeKind,
}

/// Node kind with its connection settings.
#[derive(Debug, Clone)]
pub enum NodeKind {
    /// Embedded SQLite store.
    Sqlite {
        /// Database file.
        path: PathBuf,
    },
    /// InfluxDB 1.x HTTP API (or the v1 compatibility layer of 2.x/3.x).
    Influxdb(InfluxSettings),
}

/// Connection settings of an InfluxDB node.
#[derive(Debug, Clone)]
pub struct InfluxSettings {
    /// Base URL.
    pub url: String,
    /// Database.
    pub database: String,
    /// Retention policy, if not the default.
    pub retention_policy: Option<String>,
    /// Credentials.
    pub auth: InfluxAuth,
    /// Request timeout.
    pub timeout: Duration,
    /// Gzip write bodies.
    pub gzip: bool,
    /// Create the database on the first write when it does not exist. Always false for the
    /// primary: dms never creates the primary's database (a typo would fill a new one).
    pub create_database: bool,
}

/// InfluxDB credentials.
#[derive(Debug, Clone)]
pub enum InfluxAuth {
    /// No authentication.
    None,
    /// 1.x user and password.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// 2.x/3.x token.
    Token(Secret),
}

/// History database settings.
#[derive(Debug, Clone)]
pub struct HistorySettings {
    /// File path.
    pub path: PathBuf,
    /// Days of rows kept.
    pub retention_days: u32,
    /// Wait for another process's lock.
    pub busy_timeout: Duration,
}

/// Lua limits.
#[derive(Debug, Clone)]
pub struct ScriptSettings {
    /// Bytes per Lua state.
    pub memory_limit: usize,
    /// Instructions per hook call.
    pub instruction_limit: u64,
    /// Folder scripts may read data files from.
    pub data_dir: PathBuf,
    /// Hosts `dms.http` may reach (lower case; `*.x` = subdomains of x).
    pub http_allow: Vec<String>,
    /// Time limit of one `dms.http` request.
    pub http_timeout: Duration,
    /// The program task scripts run in (this `dms`, started as `dms __script TASK`).
    pub worker: PathBuf,
}

/// One task.
#[derive(Debug, Clone)]
pub struct TaskSettings {
    /// Unique name.
    pub name: String,
    /// Mode of its syncs.
    pub mode: SyncMode,
    /// Whether the runner syncs the hooks' series.
    pub sync_backups: bool,
    /// Backups to sync to; `None` = every enabled backup.
    pub backups: Option<Vec<String>>,
    /// Days for first syncs.
    pub initial_days: u32,
    /// Cron schedule, if any.
    pub schedule: Option<CronExpr>,
    /// Zone of the schedule.
    pub timezone: chrono_tz::Tz,
    /// Script path (resolved), if any.
    pub script: Option<PathBuf>,
    /// Parameters for the script, as JSON.
    pub params: serde_json::Value,
    /// Whether it runs.
    pub enabled: bool,
    /// Time limit of one run.
    pub timeout: Duration,
    /// Catch up one missed run after downtime.
    pub catch_up: bool,
    /// Successful runs with the primary's newest bar unchanged and overdue before a series
    /// is `stale` (0: never).
    pub stale_after: u32,
}

/// Turns the raw files into settings, collecting every problem as a [`Problem`] (file and
/// key; [`crate::load`] places each in its file's text).
///
/// One `check_*` step per section, in file order; each returns its settings (or a stand-in when
/// the section is broken) and pushes its problems onto `errs`, so every problem is reported at
/// once and in the same order.
pub(super) fn validate(
    config_dir: &Path,
    sync: raw::SyncFile,
    tasks: raw::TaskFile,
) -> Result<Settings, Problems> {
    let mut errs = Problems::default();
    let root = root_dir(config_dir, sync.root.as_deref());
    let sync_settings = check_sync(&sync.sync, &mut errs);
    let (primary, backups) = check_nodes(&sync.nodes, &root, &mut errs);
    let schema = check_schema(&sync.schema, &mut errs);
    let history = check_history(&sync.history, &root);
    let scripts = check_scripts(&sync.scripts, &root, &mut errs);
    let tasks = check_tasks(tasks.tasks, &sync.sync, &backups, &root, &mut errs);
    let api = check_api(&sync.api, &mut errs);
    let alerts = check_alerts(&sync.alerts, &mut errs);
    let reconcile = check_reconcile(&sync.reconcile, &mut errs);

    match (primary, schema) {
        (Some(primary), Some(schema)) if errs.is_empty() => Ok(Settings {
            config_dir: config_dir.to_path_buf(),
            root,
            sync: sync_settings,
            primary,
            backups,
            schema,
            history,
            scripts,
            api,
            alerts,
            shutdown_grace: sync.daemon.shutdown_grace,
            tasks,
            reconcile,
        }),
        _ => Err(errs),
    }
}

/// The folder relative paths are resolved against: `root` relative to the config folder, else
/// the config folder's parent; never an empty path.
fn root_dir(config_dir: &Path, root: Option<&Path>) -> PathBuf {
    let root = match root {
        Some(r) => config_dir.join(r),
        None => config_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    if root.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        root
    }
}

/// `p` as is when absolute, else under `root`.
fn resolve(root: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    }
}

/// `sync:`: the engine's settings. A bad `max_gap_hours` stands in as one day.
fn check_sync(s: &raw::SyncBlock, errs: &mut Problems) -> SyncSettings {
    let max_gap_ok = s.incremental.max_gap_hours.is_finite() && s.incremental.max_gap_hours > 0.0;
    if !max_gap_ok {
        errs.sync(
            "sync.incremental.max_gap_hours",
            "must be a positive number of hours",
        );
    }
    if s.incremental.check_interval.is_zero() {
        errs.sync(
            "sync.incremental.check_interval",
            "must be more than 0 seconds",
        );
    }
    if s.retry_times > 20 {
        errs.sync("sync.retry_times", "at most 20");
    }
    SyncSettings {
        default_mode: s.default_mode,
        check_enabled: s.incremental.enabled,
        check_interval: s.incremental.check_interval,
        check_scope: s.incremental.scope,
        batch_size: clamp_usize(s.incremental.batch_size),
        max_gap: if max_gap_ok {
            Duration::from_secs_f64(s.incremental.max_gap_hours * 3600.0)
        } else {
            Duration::from_secs(86_400)
        },
        initial_days: clamp_u32(s.incremental.initial_days),
        max_workers: clamp_usize(s.performance.max_workers),
        pool_size: clamp_usize(s.performance.connection_pool_size),
        retry: RetryPolicy {
            times: s.retry_times,
            delay: s.retry_delay,
            backoff: s.retry_backoff,
            max_delay: Duration::MAX,
        },
        lookback: s.incremental.lookback,
        future_tolerance: s.incremental.future_tolerance,
    }
}

/// `reconcile:`.
fn check_reconcile(r: &raw::ReconcileBlock, errs: &mut Problems) -> ReconcileSettings {
    let window = i64::try_from(r.window.as_nanos()).unwrap_or(i64::MAX);
    if r.window < Duration::from_secs(60) || r.window > Duration::from_secs(366 * 86_400) {
        errs.sync(
            "reconcile.window",
            "give 1 minute to 366 days (e.g. 1d, 6h)",
        );
    }
    if r.budget.is_zero() {
        errs.sync("reconcile.budget", "must be more than 0 seconds");
    }
    if !(r.max_delete_share > 0.0 && r.max_delete_share <= 1.0) {
        errs.sync(
            "reconcile.max_delete_share",
            "give a share of a window's points above 0 and at most 1 (e.g. 0.5)",
        );
    }
    if r.scrub_period < Duration::from_secs(86_400) {
        errs.sync(
            "reconcile.scrub_period",
            "give 1 day or more (e.g. 30d): the scrub reads a stripe after each history pass",
        );
    }
    ReconcileSettings {
        enabled: r.enabled,
        window,
        recent_schedule: r.recent.schedule.clone(),
        recent_days: clamp_u32(r.recent.days),
        history_schedule: r.history.schedule.clone(),
        slices: clamp_u32(r.history.slices),
        counts_everywhere: r.history.counts_everywhere,
        budget: r.budget,
        mirror_deletes: r.mirror_deletes,
        max_deletes: r.max_deletes,
        max_delete_share: r.max_delete_share,
        scrub_period: r.scrub_period,
        timezone: r.timezone,
    }
}

/// `nodes:`: the primary (`None` when missing or broken) and the backups that are valid, with
/// the rules between nodes: unique names, an enabled primary, no backup on the primary's store.
fn check_nodes(
    nodes: &raw::NodesBlock,
    root: &Path,
    errs: &mut Problems,
) -> (Option<NodeSettings>, Vec<NodeSettings>) {
    let mut names = HashSet::new();
    let mut primary = match &nodes.primary {
        Some(p) => check_node(p, "nodes.primary", root, errs),
        None => {
            errs.sync(
                "nodes.primary",
                "missing: every configuration needs a primary node",
            );
            None
        }
    };
    if let Some(p) = &mut primary {
        names.insert(p.name.clone());
        if !p.enabled {
            errs.sync("nodes.primary.enabled", "the primary cannot be disabled");
        }
        if nodes.primary.as_ref().and_then(|b| b.create_database) == Some(true) {
            errs.sync(
                "nodes.primary.create_database",
                "dms never creates the primary's database: create it on the server",
            );
        }
        if let NodeKind::Influxdb(influx) = &mut p.kind {
            influx.create_database = false;
        }
    }
    let mut backups = Vec::new();
    for (i, b) in nodes.backups.iter().enumerate() {
        let at = format!("nodes.backups[{i}]");
        if let Some(n) = check_node(b, &at, root, errs) {
            if !names.insert(n.name.clone()) {
                errs.sync(
                    format!("{at}.name"),
                    format!("node name {:?} is used twice", n.name),
                );
            }
            backups.push(n);
        }
    }
    if let Some(p) = &primary {
        for b in &backups {
            if same_store(&p.kind, &b.kind) {
                errs.sync_file(format!(
                    "backup {:?} is the same store as the primary: a backup must be a different node",
                    b.name
                ));
            }
        }
    }
    (primary, backups)
}

/// `schema:`: the series mapping, `None` when it is broken.
fn check_schema(schema: &raw::SchemaBlock, errs: &mut Problems) -> Option<Schema> {
    let interval_tag = match &schema.interval_tag {
        Some(t) => Some(t.as_str()),
        None if schema.measurement.contains("{interval}") => None,
        None => Some("interval"),
    };
    match Schema::new(&schema.measurement, &schema.symbol_tag, interval_tag)
        .and_then(|s| s.with_key_field(&schema.key_field))
    {
        Ok(s) => Some(s),
        Err(e) => {
            errs.sync(e.key(), e.to_string());
            None
        }
    }
}

/// `history:`: nothing to check beyond what the parser did; resolves the path.
fn check_history(history: &raw::HistoryBlock, root: &Path) -> HistorySettings {
    HistorySettings {
        path: resolve(root, &history.path),
        retention_days: clamp_u32(history.retention_days),
        busy_timeout: history.busy_timeout,
    }
}

/// `scripts:`: Lua limits; every `http_allow` entry must be a host name or `*.` pattern.
fn check_scripts(scripts: &raw::ScriptsBlock, root: &Path, errs: &mut Problems) -> ScriptSettings {
    let settings = ScriptSettings {
        memory_limit: clamp_usize(scripts.memory_limit_mb.saturating_mul(1024 * 1024)),
        instruction_limit: scripts.instruction_limit,
        data_dir: resolve(root, &scripts.data_dir),
        http_allow: scripts
            .http_allow
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
        http_timeout: scripts.http_timeout,
        worker: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("dms")),
    };
    for h in &settings.http_allow {
        let name = h.strip_prefix("*.").unwrap_or(h);
        let ok = !name.is_empty()
            && !name.contains(['/', ':', '*', ' '])
            && name.split('.').all(|l| !l.is_empty());
        if !ok {
            errs.sync(
                "scripts.http_allow",
                format!("{h:?} is not a host name (use api.example.com or *.example.com)"),
            );
        }
    }
    settings
}

/// `task.yaml`: every task, in file order, with unique non-empty names. `defaults` is the
/// `sync:` block tasks inherit from; `backups` the valid backup nodes they may name.
fn check_tasks(
    tasks: Vec<raw::TaskBlock>,
    defaults: &raw::SyncBlock,
    backups: &[NodeSettings],
    root: &Path,
    errs: &mut Problems,
) -> Vec<TaskSettings> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let at = format!("tasks[{i}] ({})", t.name);
        if t.name.trim().is_empty() {
            errs.task(format!("tasks[{i}].name"), "must not be empty");
        }
        if !names.insert(t.name.clone()) {
            errs.task(format!("{at}.name"), "task name is used twice");
        }
        out.push(check_task(t, &at, defaults, backups, root, errs));
    }
    out
}

/// One task, `at` naming it in messages: its backups must exist and be enabled, its script
/// must exist, its params must convert to JSON (`null` stands in when they do not).
fn check_task(
    t: raw::TaskBlock,
    at: &str,
    defaults: &raw::SyncBlock,
    backups: &[NodeSettings],
    root: &Path,
    errs: &mut Problems,
) -> TaskSettings {
    if let Some(list) = &t.backups {
        for b in list {
            match backups.iter().find(|n| &n.name == b) {
                None => errs.task(
                    format!("{at}.backups"),
                    format!("no backup node is called {b:?}"),
                ),
                Some(n) if !n.enabled => errs.task(
                    format!("{at}.backups"),
                    format!("backup {b:?} is disabled in sync.yaml"),
                ),
                Some(_) => {}
            }
        }
    }
    let script = t.script.as_deref().map(|p| resolve(root, p));
    if let Some(p) = &script
        && !p.is_file()
    {
        errs.task(
            format!("{at}.script"),
            format!("file not found: {}", p.display()),
        );
    }
    let params = match t.params {
        None => serde_json::Value::Object(Default::default()),
        Some(v) => match serde_json::to_value(&v) {
            Ok(j) => j,
            Err(e) => {
                errs.task(
                    format!("{at}.params"),
                    format!("cannot be handed to a script: {e}"),
                );
                serde_json::Value::Null
            }
        },
    };
    TaskSettings {
        name: t.name,
        mode: t.mode.unwrap_or(defaults.default_mode),
        sync_backups: t.sync_backups,
        backups: t.backups,
        initial_days: clamp_u32(t.initial_days.unwrap_or(defaults.incremental.initial_days)),
        schedule: t.schedule,
        timezone: t.timezone,
        script,
        params,
        enabled: t.enabled,
        timeout: t.timeout,
        catch_up: t.catch_up,
        stale_after: t.stale_after,
    }
}

/// `api:`: the listen address must parse (127.0.0.1:8686 stands in when it does not), and an
/// enabled API off loopback needs a token.
fn check_api(api: &raw::ApiBlock, errs: &mut Problems) -> ApiSettings {
    let listen = match api.listen.parse::<std::net::SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            errs.sync(
                "api.listen",
                format!(
                    "{:?} is not an address:port such as 127.0.0.1:8686",
                    api.listen
                ),
            );
            None
        }
    };
    // A token that is set must be one: an empty `${DMS_API_TOKEN}` must not turn auth off
    // silently, and spaces are no secret.
    if let Some(t) = &api.token
        && (t.trim().is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        errs.sync(
            "api.token",
            if t.trim().is_empty() {
                "api.token is empty or only spaces (an empty environment variable gives that): set a token, or remove api.token to serve loopback without one".to_string()
            } else {
                "api.token contains spaces or control characters, which a bearer header cannot carry".to_string()
            },
        );
    }
    let token = api.token.clone().filter(|t| !t.is_empty()).map(Secret::new);
    if let Some(a) = listen
        && api.enabled
        && !a.ip().is_loopback()
        && token.is_none()
    {
        errs.sync(
            "api.listen",
            format!(
                "{a} is not a loopback address; set api.token (e.g. ${{DMS_API_TOKEN}}) before listening there"
            ),
        );
    }
    if let (Some(a), Some(t)) = (listen, &token)
        && api.enabled
        && !a.ip().is_loopback()
        && t.expose().chars().count() < MIN_TOKEN_LEN
    {
        errs.sync(
            "api.token",
            format!(
                "a daemon listening on {a} needs a token of at least {MIN_TOKEN_LEN} characters (e.g. from `openssl rand -hex 24`)"
            ),
        );
    }
    let mut allowed_hosts = Vec::new();
    for h in &api.allowed_hosts {
        let h = h.trim().to_ascii_lowercase();
        if h.is_empty() || h.contains(['/', ':', ' ', '*']) {
            errs.sync(
                "api.allowed_hosts",
                format!("{h:?} is not a host name (no scheme, port or wildcard)"),
            );
        } else {
            allowed_hosts.push(h);
        }
    }
    let metrics_all_series = match api.metrics_series.as_deref() {
        None | Some("attention") => false,
        Some("all") => true,
        Some(other) => {
            errs.sync(
                "api.metrics_series",
                format!("{other:?} is not one of attention, all"),
            );
            false
        }
    };
    ApiSettings {
        enabled: api.enabled,
        listen: listen.unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 8686))),
        token,
        allowed_hosts,
        metrics_all_series,
    }
}

/// `alerts:`: the webhook, when given, must be an http(s) URL.
fn check_alerts(alerts: &raw::AlertsBlock, errs: &mut Problems) -> AlertSettings {
    if let Some(w) = &alerts.webhook
        && !(w.starts_with("http://") || w.starts_with("https://"))
    {
        errs.sync(
            "alerts.webhook",
            format!("not an http:// or https:// URL ({})", scheme_of(w)),
        );
    }
    AlertSettings {
        webhook: alerts.webhook.clone().filter(|w| !w.is_empty()),
        timeout: alerts.timeout.unwrap_or(Duration::from_secs(10)),
        retries: alerts.retries.unwrap_or(3).min(20),
    }
}

fn clamp_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn same_store(a: &NodeKind, b: &NodeKind) -> bool {
    match (a, b) {
        (NodeKind::Sqlite { path: pa }, NodeKind::Sqlite { path: pb }) => pa == pb,
        (NodeKind::Influxdb(a), NodeKind::Influxdb(b)) => {
            a.url.trim_end_matches('/') == b.url.trim_end_matches('/') && a.database == b.database
        }
        _ => false,
    }
}

/// One node, `at` naming it in messages (`nodes.primary`, `nodes.backups[1]`); `None` when it
/// has any problem.
fn check_node(
    b: &raw::NodeBlock,
    at: &str,
    root: &Path,
    errs: &mut Problems,
) -> Option<NodeSettings> {
    let before = errs.len();
    let name_ok = !b.name.is_empty()
        && b.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !name_ok {
        errs.sync(
            format!("{at}.name"),
            format!(
                "{:?} is not a valid node name (letters, digits, '_', '-', '.')",
                b.name
            ),
        );
    }
    let kind = match b.kind {
        NodeType::Sqlite => check_sqlite_node(b, at, root, errs),
        NodeType::Influxdb => check_influxdb_node(b, at, errs),
    };
    if errs.len() > before {
        return None;
    }
    kind.map(|kind| NodeSettings {
        name: b.name.clone(),
        enabled: b.enabled,
        kind,
    })
}

/// Pushes a problem for each `(key, set)` that is set: keys that are no setting of a `kind` node.
fn reject_keys(at: &str, kind: &str, keys: &[(&str, bool)], errs: &mut Problems) {
    for (key, set) in keys {
        if *set {
            errs.sync(
                format!("{at}.{key}"),
                format!("not a setting of a {kind} node"),
            );
        }
    }
}

/// A sqlite node: only `path`, which it needs.
fn check_sqlite_node(
    b: &raw::NodeBlock,
    at: &str,
    root: &Path,
    errs: &mut Problems,
) -> Option<NodeKind> {
    let influx_keys = [
        ("url", b.url.is_some()),
        ("database", b.database.is_some()),
        ("retention_policy", b.retention_policy.is_some()),
        ("username", b.username.is_some()),
        ("password", b.password.is_some()),
        ("token", b.token.is_some()),
        ("timeout", b.timeout.is_some()),
        ("gzip", b.gzip.is_some()),
        ("create_database", b.create_database.is_some()),
    ];
    reject_keys(at, "sqlite", &influx_keys, errs);
    match &b.path {
        Some(p) if !p.is_empty() => Some(NodeKind::Sqlite {
            path: resolve(root, Path::new(p)),
        }),
        _ => {
            errs.sync(format!("{at}.path"), "a sqlite node needs a path");
            None
        }
    }
}

/// An influxdb node: no `path`; an http(s) `url`, a `database`, and at most one kind of
/// credentials.
fn check_influxdb_node(b: &raw::NodeBlock, at: &str, errs: &mut Problems) -> Option<NodeKind> {
    reject_keys(at, "influxdb", &[("path", b.path.is_some())], errs);
    let url = match &b.url {
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => Some(u.clone()),
        Some(u) => {
            errs.sync(
                format!("{at}.url"),
                format!("not an http:// or https:// URL ({})", scheme_of(u)),
            );
            None
        }
        None => {
            errs.sync(format!("{at}.url"), "an influxdb node needs a url");
            None
        }
    };
    let database = match &b.database {
        Some(d) if !d.is_empty() => Some(d.clone()),
        _ => {
            errs.sync(
                format!("{at}.database"),
                "an influxdb node needs a database",
            );
            None
        }
    };
    let auth = check_influx_auth(b, at, errs);
    Some(NodeKind::Influxdb(InfluxSettings {
        url: url?,
        database: database?,
        retention_policy: b.retention_policy.clone().filter(|r| !r.is_empty()),
        auth: auth?,
        timeout: b.timeout.unwrap_or(Duration::from_secs(30)),
        gzip: b.gzip.unwrap_or(false),
        create_database: b.create_database.unwrap_or(true),
    }))
}

/// An influxdb node's credentials: none, username with password, or a token.
fn check_influx_auth(b: &raw::NodeBlock, at: &str, errs: &mut Problems) -> Option<InfluxAuth> {
    match (&b.username, &b.password, &b.token) {
        (None, None, None) => Some(InfluxAuth::None),
        (Some(u), Some(p), None) => Some(InfluxAuth::Basic {
            username: u.clone(),
            password: Secret::new(p.clone()),
        }),
        (None, None, Some(t)) => Some(InfluxAuth::Token(Secret::new(t.clone()))),
        (_, _, Some(_)) => {
            errs.sync(at, "give either username/password or token, not both");
            None
        }
        _ => {
            errs.sync(at, "username and password go together");
            None
        }
    }
}

/// How a URL begins, for an error about its scheme: only the part before `:` (at most 12
/// characters), so a secret filled in from the environment is never shown.
fn scheme_of(url: &str) -> String {
    match url.split_once(':') {
        Some((scheme, _)) if scheme.len() <= 12 && !scheme.is_empty() => {
            format!("it begins with {scheme:?}")
        }
        _ => "it has no scheme".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_of_every_section_are_reported_together_in_file_order() {
        let sync = r#"
sync: {retry_times: 21}
nodes: {primary: {name: p, type: sqlite}}
schema: {measurement: ""}
scripts: {http_allow: ["a/b"]}
api: {listen: nonsense}
alerts: {webhook: "ftp://x"}
"#;
        let tasks = "tasks: [{name: t, backups: [nobody]}]\n";
        let sync = super::super::parse_str(Path::new("sync.yaml"), sync).unwrap();
        let tasks = super::super::parse_str(Path::new("task.yaml"), tasks).unwrap();
        let errs: Vec<String> = validate(Path::new("/nonexistent/config"), sync, tasks)
            .unwrap_err()
            .0
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(
            errs,
            [
                "sync.yaml: sync.retry_times: at most 20",
                "sync.yaml: nodes.primary.path: a sqlite node needs a path",
                "sync.yaml: schema.measurement: must not be empty",
                "sync.yaml: scripts.http_allow: \"a/b\" is not a host name (use api.example.com or *.example.com)",
                "task.yaml: tasks[0] (t).backups: no backup node is called \"nobody\"",
                "sync.yaml: api.listen: \"nonsense\" is not an address:port such as 127.0.0.1:8686",
                "sync.yaml: alerts.webhook: not an http:// or https:// URL (it begins with \"ftp\")",
            ]
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
