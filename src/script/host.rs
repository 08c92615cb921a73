//! What a running script can reach: the engine (for `dms.sync`, `dms.reconcile`,
//! `dms.restore`), the primary (for
//! `dms.primary`), the data folder (for `dms.csv`) and the task's defaults.

use crate::config::{ReconcileSettings, SyncMode, TaskSettings};
use crate::model::{Batch, Nanos, Point, SeriesKey};
use crate::node::NodeError;
use crate::restore::{RestoreArgs, RestoreError, RestoreReport};
use crate::retry::{GaveUp, with_retry};
use crate::schema::Schema;
use crate::sync::{
    Engine, Pass, ReconcileArgs, ReconcileReport, ReconcileRequest, Selection, SyncControl,
    SyncError, SyncReport, SyncRequest,
};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What the `dms` module asks of the outside world. In the script's process this is a proxy
/// that asks the parent over the pipe ([`super::worker`]); the parent answers with [`Host`].
#[async_trait::async_trait]
pub trait Services: Send + Sync {
    /// `dms.sync{...}`.
    async fn sync(&self, args: SyncArgs) -> Result<SyncReport, String>;
    /// `dms.reconcile{...}`: the report as JSON.
    async fn reconcile(&self, args: ReconcileArgs) -> Result<serde_json::Value, String>;
    /// `dms.restore{...}`: the report as JSON.
    async fn restore(&self, args: RestoreArgs) -> Result<serde_json::Value, String>;
    /// `dms.primary.series()`.
    async fn primary_series(&self) -> Result<Vec<SeriesKey>, String>;
    /// `dms.primary.newest(symbol, interval)`.
    async fn primary_newest(&self, series: SeriesKey) -> Result<Option<Nanos>, String>;
    /// `dms.primary.write(points)`.
    async fn primary_write(&self, points: Vec<Point>) -> Result<usize, String>;
    /// `dms.primary.import_csv{...}`: the file's report as JSON.
    async fn primary_import_csv(&self, args: ImportCsvArgs) -> Result<serde_json::Value, String>;
    /// `dms.http.get/post`: the answer as JSON (`{status, body, headers}`).
    async fn http(&self, req: HttpCall) -> Result<serde_json::Value, String>;
    /// `dms.log.*` and `print`.
    fn log(&self, level: LogLevel, script: &str, msg: &str);
    /// Series mapping, for building points.
    fn schema(&self) -> &Schema;
    /// The folder `dms.csv` reads.
    fn data_dir(&self) -> &std::path::Path;
}

/// One `dms.http` request.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HttpCall {
    /// `GET` or `POST`.
    pub post: bool,
    /// URL.
    pub url: String,
    /// Body of a POST.
    pub body: Option<String>,
    /// Request headers.
    pub headers: Vec<(String, String)>,
}

/// A script's log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LogLevel {
    /// `dms.log.debug`.
    Debug,
    /// `dms.log.info`, `print`.
    Info,
    /// `dms.log.warn`.
    Warn,
    /// `dms.log.error`.
    Error,
}

/// Per-run services handed to a script's hooks.
pub struct Host {
    /// The sync engine.
    pub engine: Arc<Engine>,
    /// The task being run.
    pub task: TaskSettings,
    /// Its history run id.
    pub run_id: Option<i64>,
    /// Cancellation and progress.
    pub control: SyncControl,
    /// What every run of every task shares.
    pub env: ScriptEnv,
    reports: Mutex<SyncReport>,
}

/// What scripts reach that is the same for every run: the schema, the data folder,
/// `dms.http`'s client and the reconcile settings.
#[derive(Clone)]
pub struct ScriptEnv {
    /// Series mapping, for building points.
    pub schema: Schema,
    /// Folder `dms.csv` reads from.
    pub data_dir: PathBuf,
    /// `dms.http`'s client.
    pub http: super::HttpAccess,
    /// Window and `mirror_deletes` for `dms.reconcile`.
    pub reconcile: ReconcileSettings,
}

/// Options of one `dms.sync{...}` call; unset ones come from the task. Lists also take one
/// name; unknown keys are refused.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncArgs {
    /// Symbols; every symbol on the primary when unset.
    #[serde(deserialize_with = "dms_core::de::one_or_many")]
    pub symbols: Option<Vec<String>>,
    /// Intervals; every interval on the primary when unset.
    #[serde(deserialize_with = "dms_core::de::one_or_many")]
    pub intervals: Option<Vec<String>>,
    /// Backups; the task's when unset.
    #[serde(deserialize_with = "dms_core::de::one_or_many")]
    pub backups: Option<Vec<String>>,
    /// Mode; the task's when unset.
    pub mode: Option<SyncMode>,
    /// Initial days; the task's when unset.
    pub initial_days: Option<u32>,
}

/// Options of one `dms.primary.import_csv{...}` call: the file (beneath `scripts.data_dir`),
/// the series its rows belong to, and how rows become points, as `dms import` takes them.
/// Unknown keys are refused.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportCsvArgs {
    /// The file, relative to `scripts.data_dir`.
    pub file: String,
    /// The symbol every row belongs to.
    pub symbol: String,
    /// The interval every row belongs to.
    pub interval: String,
    /// Only rows at or after this time (ns, RFC 3339, a date or an age).
    #[serde(deserialize_with = "dms_core::de::point_in_time")]
    pub since: Option<Nanos>,
    /// The column holding the time (default `time`).
    pub time_column: Option<String>,
    /// The unit of epoch numbers (`s`, `ms`, `us`, `ns`); detected when unset.
    pub time_unit: Option<crate::import::TimeUnit>,
    /// Columns read as floats.
    #[serde(rename = "float", deserialize_with = "dms_core::de::one_or_many")]
    pub floats: Option<Vec<String>>,
    /// Columns read as integers.
    #[serde(rename = "int", deserialize_with = "dms_core::de::one_or_many")]
    pub ints: Option<Vec<String>>,
    /// Columns that are tags.
    #[serde(rename = "tag", deserialize_with = "dms_core::de::one_or_many")]
    pub tags: Option<Vec<String>>,
    /// Count and skip bad rows instead of stopping at the first.
    pub skip_bad: bool,
}

impl Host {
    /// Builds the services for one run.
    pub fn new(
        engine: Arc<Engine>,
        task: TaskSettings,
        run_id: Option<i64>,
        control: SyncControl,
        env: ScriptEnv,
    ) -> Self {
        Host {
            engine,
            task,
            run_id,
            control,
            env,
            reports: Mutex::new(SyncReport::default()),
        }
    }

    /// Reconciles with full-field digests of every window of the range (the task's backups
    /// and `initial_days` by default), recorded under the task's run.
    ///
    /// # Errors
    /// The engine's [`SyncError`].
    pub async fn reconcile(&self, mut args: ReconcileArgs) -> Result<ReconcileReport, SyncError> {
        if args.backups.is_none() {
            args.backups = self.task.backups.clone();
        }
        let mut req = ReconcileRequest::new(
            &args,
            Pass::Complete,
            self.env.reconcile.window,
            self.task.initial_days,
            self.engine.settings().horizon(),
            self.env.reconcile.mirror_deletes,
        );
        req.run_id = self.run_id;
        self.engine.reconcile(&req, &self.control).await
    }

    /// Restores a backup into the primary (or another node), recorded under the task's run.
    ///
    /// # Errors
    /// The engine's [`RestoreError`]: a node it cannot use, an empty range, a source that
    /// cannot be asked.
    pub async fn restore(&self, args: RestoreArgs) -> Result<RestoreReport, RestoreError> {
        self.engine.restore(&args, self.run_id, &self.control).await
    }

    /// Runs a sync with the task's defaults and keeps its report for the run's outcome.
    ///
    /// # Errors
    /// The engine's [`SyncError`] when the request cannot be planned.
    pub async fn sync(&self, args: SyncArgs) -> Result<SyncReport, SyncError> {
        let selection = match (&args.symbols, &args.intervals) {
            (Some(s), Some(i)) => Selection::cross(s, i),
            (symbols, intervals) => Selection::Primary {
                symbols: symbols.clone(),
                intervals: intervals.clone(),
            },
        };
        let req = SyncRequest {
            selection,
            backups: args.backups.or_else(|| self.task.backups.clone()),
            mode: args.mode.unwrap_or(self.task.mode),
            initial_days: args.initial_days.unwrap_or(self.task.initial_days),
            run_id: self.run_id,
            window: None,
            only_behind: false,
            scope: None,
        };
        let report = self.engine.sync(&req, &self.control).await?;
        self.reports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .merge(report.clone());
        Ok(report)
    }

    /// Everything synced during this run so far.
    pub fn take_report(&self) -> SyncReport {
        std::mem::take(&mut *self.reports.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Series the primary holds.
    ///
    /// # Errors
    /// The primary's error after retries.
    pub async fn primary_series(&self) -> Result<Vec<SeriesKey>, GaveUp<NodeError>> {
        let primary = self.engine.primary().clone();
        with_retry(
            &self.engine.settings().retry,
            &self.control.cancel,
            "listing the primary's series",
            || primary.list_series(),
        )
        .await
    }

    /// Newest point of a series on the primary.
    ///
    /// # Errors
    /// The primary's error after retries.
    pub async fn primary_newest(
        &self,
        series: SeriesKey,
    ) -> Result<Option<Nanos>, GaveUp<NodeError>> {
        let primary = self.engine.primary().clone();
        let list = [series.clone()];
        let map = with_retry(
            &self.engine.settings().retry,
            &self.control.cancel,
            "reading the primary's newest point",
            || primary.newest(&list),
        )
        .await?;
        Ok(map.get(&series).copied())
    }

    /// Answers one `dms.http` request within `scripts.http_allow`.
    ///
    /// # Errors
    /// A message: host not allowed, bad URL, connection failure, body too large.
    pub async fn http(&self, req: HttpCall) -> Result<super::http::Answer, String> {
        let method = if req.post {
            reqwest::Method::POST
        } else {
            reqwest::Method::GET
        };
        self.env
            .http
            .request(method, &req.url, req.body, req.headers)
            .await
    }

    /// Streams a CSV file beneath the data folder into the primary, in batches of
    /// `batch_size` (the rows never pass through the script).
    ///
    /// # Errors
    /// A message naming the file (and line, for a bad row): the file cannot be opened beneath
    /// the data folder, a row is bad, the primary refused a batch after retries.
    pub async fn import_csv(
        &self,
        args: ImportCsvArgs,
    ) -> Result<crate::import::FileReport, String> {
        let ImportCsvArgs {
            file,
            symbol,
            interval,
            since,
            time_column,
            time_unit,
            floats,
            ints,
            tags,
            skip_bad,
        } = args;
        if file.is_empty() || symbol.is_empty() || interval.is_empty() {
            return Err("file, symbol and interval are required".to_string());
        }
        let dir = self.env.data_dir.clone();
        let rel = file.clone();
        let reader = tokio::task::spawn_blocking(move || {
            super::data::DataDir::open(&dir).and_then(|d| d.open_stream(&rel))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        let importer = crate::import::Importer {
            node: self.engine.primary().clone(),
            schema: self.env.schema.clone(),
            series: SeriesKey::new(symbol, interval),
            options: crate::import::ImportOptions {
                time_column,
                time_unit,
                floats: floats.unwrap_or_default(),
                ints: ints.unwrap_or_default(),
                tags: tags.unwrap_or_default(),
                since,
                skip_bad,
            },
            batch_size: self.engine.settings().batch_size,
            retry: self.engine.settings().retry,
            cancel: self.control.cancel.clone(),
            progress: None,
        };
        importer
            .file(&file, Box::new(reader))
            .await
            .map_err(|e| e.to_string())
    }

    /// Writes points to the primary in batches of `batch_size`.
    ///
    /// # Errors
    /// The primary's error after retries; batches before the failing one stay written.
    pub async fn primary_write(&self, points: Vec<Point>) -> Result<usize, GaveUp<NodeError>> {
        let primary = self.engine.primary().clone();
        let size = self.engine.settings().batch_size.max(1);
        let total = points.len();
        let mut rest = points;
        while !rest.is_empty() {
            let tail = rest.split_off(size.min(rest.len()));
            let batch = Arc::new(Batch::new(std::mem::replace(&mut rest, tail)));
            with_retry(
                &self.engine.settings().retry,
                &self.control.cancel,
                "writing to the primary",
                || primary.write(batch.clone()),
            )
            .await?;
        }
        Ok(total)
    }
}

/// Writes a script's log line to the daemon's log.
pub fn emit(level: LogLevel, script: &str, msg: &str) {
    match level {
        LogLevel::Error => tracing::error!(script = %script, "{msg}"),
        LogLevel::Warn => tracing::warn!(script = %script, "{msg}"),
        LogLevel::Debug => tracing::debug!(script = %script, "{msg}"),
        LogLevel::Info => tracing::info!(script = %script, "{msg}"),
    }
}
