//! The sync engine: copies new data from the primary to the backups.
//!
//! A [`SyncRequest`] names the series, backups and mode; [`Engine::sync`] plans one window per
//! (backup, series) from the checkpoints, groups the backups of a series that share a window
//! into one unit (the primary is read once and each batch fanned out), runs at most
//! `max_workers` units at a time, and returns a [`SyncReport`]. Each acknowledged batch moves
//! its backup's checkpoint in the same history transaction that counts its records.
//!
//! The engine knows nothing of Lua, cron or HTTP.

mod breaker;
mod group;
mod plan;
mod reconcile;
pub mod select;
mod unit;

pub use plan::{BackupTips, Lag, Plan, Rewind};
pub use reconcile::{
    BackupReconcile, DeleteLimits, Pass, ReconcileArgs, ReconcileReport, ReconcileRequest, Stripe,
    WindowDiff, windows_in,
};

use dms_config::{SyncMode, SyncSettings};
use dms_core::ledger::{EventKind, Ledger, LedgerError, Status};
use dms_core::model::{BackupSeries, Nanos, SeriesKey, TimeRange, format_nanos};
use dms_core::node::{Node, NodeError, Role, Tip};
use dms_core::retry::{GaveUp, with_retry};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Which series a request covers.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every series the primary holds, optionally narrowed to some symbols and intervals.
    Primary {
        /// Only these symbols.
        symbols: Option<Vec<String>>,
        /// Only these intervals.
        intervals: Option<Vec<String>>,
    },
    /// Exactly these series.
    Series(Vec<SeriesKey>),
}

impl Selection {
    /// Every series the primary holds.
    pub fn all() -> Self {
        Selection::Primary {
            symbols: None,
            intervals: None,
        }
    }

    /// Symbols × intervals: the named series while the product stays within
    /// [`select::MAX_NAMED_SERIES`], else the two lists as a filter over the series the
    /// primary holds (what exists bounds the work, never the product).
    pub fn cross(symbols: &[String], intervals: &[String]) -> Self {
        match select::named_series(symbols, intervals) {
            Some(v) => Selection::Series(v),
            None => Selection::Primary {
                symbols: Some(select::distinct(symbols)),
                intervals: Some(select::distinct(intervals)),
            },
        }
    }
}

/// What to sync.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    /// Series covered.
    pub selection: Selection,
    /// Backup names; `None` = every enabled backup.
    pub backups: Option<Vec<String>>,
    /// Incremental (from checkpoints) or full (recopy `initial_days`).
    pub mode: SyncMode,
    /// Days copied when a (backup, series) has no checkpoint, or in full mode.
    pub initial_days: u32,
    /// Task run the history rows belong to.
    pub run_id: Option<i64>,
    /// Copy exactly this data window instead of planning from checkpoints (repairs).
    pub window: Option<TimeRange>,
    /// Skip (backup, series) whose checkpoint already reaches the primary's newest point,
    /// and backups that do not answer (the check loop).
    pub only_behind: bool,
    /// Only these (backup, series), each with its own `initial_days` (the check loop's task
    /// scope); `None`: every selected series on every selected backup.
    pub scope: Option<HashMap<BackupSeries, u32>>,
}

impl SyncRequest {
    /// An incremental sync of `selection` to every enabled backup.
    pub fn new(selection: Selection, initial_days: u32) -> Self {
        SyncRequest {
            selection,
            backups: None,
            mode: SyncMode::Incremental,
            initial_days,
            run_id: None,
            window: None,
            only_behind: false,
            scope: None,
        }
    }
}

/// Outcome of one (backup, series).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UnitReport {
    /// Backup and series.
    #[serde(flatten)]
    pub key: BackupSeries,
    /// `success`, `failed`, or `interrupted` (shutdown stopped it; the next sync resumes
    /// after its last acknowledged batch).
    pub status: Status,
    /// Points acknowledged by the backup.
    pub records: u64,
    /// Error, when failed or interrupted.
    pub error: Option<String>,
    /// Window start (ns).
    pub window_start: Nanos,
    /// Window end (ns).
    pub window_end: Nanos,
    /// Newest point acknowledged in this sync (ns).
    pub synced_to: Option<Nanos>,
    /// History row id.
    pub history_id: i64,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// Outcome of a request.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SyncReport {
    /// One entry per (backup, series) synced.
    pub units: Vec<UnitReport>,
    /// Series the request named that the primary holds no data for.
    pub empty_on_primary: Vec<SeriesKey>,
    /// Filters of the request that matched no series on the primary (`symbol US.FAKE`,
    /// `interval 5m`, or `any series` when the primary holds none of the schema's); at most
    /// [`select::MAX_UNMATCHED`] of them.
    pub unmatched: Vec<String>,
    /// Filters that matched nothing beyond those kept in `unmatched`.
    #[serde(default)]
    pub unmatched_more: usize,
    /// Tag sets on the primary, in the schema's measurements, without its symbol or interval
    /// tag: their points are not synced (listed when the request listed the primary).
    pub outside_schema: Vec<String>,
    /// Fields of the primary typed differently in two places (InfluxDB shards): copied with
    /// one type, the values of the others left out by the server.
    pub type_conflicts: Vec<String>,
    /// (backup, series) skipped because they were already caught up (`only_behind`).
    pub up_to_date: usize,
    /// (backup, series) planned but not begun because shutdown came first: no history row,
    /// checkpoints untouched; the next sync plans them again.
    #[serde(default)]
    pub not_started: usize,
    /// Every (backup, series) the request covered that the primary holds, synced or
    /// already up to date: what a task maintains.
    #[serde(skip)]
    pub covered: Vec<BackupSeries>,
}

impl SyncReport {
    /// Units that failed (not counting those shutdown interrupted).
    pub fn failed(&self) -> usize {
        self.units
            .iter()
            .filter(|u| u.status == Status::Failed)
            .count()
    }

    /// Units shutdown stopped mid-way.
    pub fn interrupted(&self) -> usize {
        self.units
            .iter()
            .filter(|u| u.status == Status::Interrupted)
            .count()
    }

    /// Whether shutdown left any planned unit unfinished (stopped mid-way or not begun).
    pub fn was_interrupted(&self) -> bool {
        self.not_started > 0 || self.interrupted() > 0
    }

    /// Points copied across all units.
    pub fn records(&self) -> u64 {
        self.units.iter().map(|u| u.records).sum()
    }

    /// What the request asked for that the primary does not hold, for people: `None` when
    /// everything asked for was found.
    pub fn warning(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.unmatched.is_empty() {
            parts.push(format!(
                "no series on the primary matches {}",
                select::shorten_counted(
                    &self.unmatched,
                    self.unmatched_more,
                    ", ",
                    select::LISTED_IN_WARNING
                )
            ));
        }
        if !self.empty_on_primary.is_empty() {
            let mut names: Vec<String> = self
                .empty_on_primary
                .iter()
                .take(10)
                .map(ToString::to_string)
                .collect();
            if self.empty_on_primary.len() > names.len() {
                names.push("…".into());
            }
            parts.push(format!(
                "{} requested series {} no data on the primary (empty_on_primary): {}",
                self.empty_on_primary.len(),
                if self.empty_on_primary.len() == 1 {
                    "has"
                } else {
                    "have"
                },
                names.join(", ")
            ));
        }
        if !self.outside_schema.is_empty() {
            let mut names: Vec<&str> = self
                .outside_schema
                .iter()
                .take(5)
                .map(String::as_str)
                .collect();
            if self.outside_schema.len() > names.len() {
                names.push("…");
            }
            parts.push(format!(
                "{} tag set{} on the primary lack the schema's symbol or interval tag; their points are not synced: {}",
                self.outside_schema.len(),
                if self.outside_schema.len() == 1 { "" } else { "s" },
                names.join("; ")
            ));
        }
        if !self.type_conflicts.is_empty() {
            parts.push(format!(
                "field types differ between shards of the primary: {}; the server returns such a field with one type and leaves out the values of the others, so they are not copied — rewrite them with one type",
                self.type_conflicts.join("; ")
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// Whether the request found nothing at all to work on: no series it named or filtered
    /// for is on the primary.
    pub fn found_nothing(&self) -> bool {
        self.units.is_empty()
            && self.up_to_date == 0
            && self.covered.is_empty()
            && (!self.unmatched.is_empty() || !self.empty_on_primary.is_empty())
    }

    /// Folds another report into this one.
    pub fn merge(&mut self, other: SyncReport) {
        self.units.extend(other.units);
        self.empty_on_primary.extend(other.empty_on_primary);
        self.unmatched_more +=
            other.unmatched_more + select::extend_capped(&mut self.unmatched, other.unmatched);
        self.outside_schema.extend(other.outside_schema);
        self.outside_schema.sort();
        self.outside_schema.dedup();
        self.type_conflicts.extend(other.type_conflicts);
        self.type_conflicts.sort();
        self.type_conflicts.dedup();
        self.up_to_date += other.up_to_date;
        self.not_started += other.not_started;
        self.covered.extend(other.covered);
    }
}

/// Why a whole request failed before or outside its units.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The request named a backup that does not exist or is disabled.
    #[error("no enabled backup is called {0:?}")]
    UnknownBackup(String),
    /// The primary could not list its series or their newest points, or its database does
    /// not exist.
    #[error("primary: {0}")]
    Primary(GaveUp<NodeError>),
    /// The ledger (the sync history) could not be read or written.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Shutdown was requested before the sync started (or while its plan was being made).
    #[error("interrupted by shutdown before the sync started")]
    Cancelled,
}

impl SyncError {
    /// The primary's look-up gave up: [`SyncError::Cancelled`] when shutdown stopped it,
    /// [`SyncError::Primary`] otherwise.
    fn primary(g: GaveUp<NodeError>) -> SyncError {
        if g.cancelled {
            SyncError::Cancelled
        } else {
            SyncError::Primary(g)
        }
    }

    /// Whether shutdown stopped the request (nothing failed).
    pub fn is_cancelled(&self) -> bool {
        matches!(self, SyncError::Cancelled)
    }
}

/// Receives progress while a sync runs (the CLI draws a bar with it).
pub trait Progress: Send + Sync {
    /// The plan is made: `units` (backup, series) will run.
    fn planned(&self, units: usize);
    /// A backup acknowledged `records` points.
    fn batch_written(&self, backup: &str, series: &SeriesKey, records: u64);
    /// A unit finished.
    fn unit_finished(&self, report: &UnitReport);
    /// `n` more (backup, series) were reconciled (after [`Progress::planned`] counted them).
    fn reconciled(&self, n: usize) {
        let _ = n;
    }
}

/// Cancellation and progress for one sync call.
#[derive(Clone, Default)]
pub struct SyncControl {
    /// Stops starting new batches; batches in flight finish and commit.
    pub cancel: CancellationToken,
    /// Progress sink.
    pub progress: Option<Arc<dyn Progress>>,
}

/// The sync engine over one primary and its backups.
pub struct Engine {
    primary: Arc<dyn Node>,
    backups: Vec<Arc<dyn Node>>,
    history: Arc<dyn Ledger>,
    settings: SyncSettings,
    detach_after: Duration,
    /// Backups configured but disabled: named in errors, never used.
    disabled: Vec<String>,
}

impl Engine {
    /// Builds an engine; `backups` are the enabled backups.
    pub fn new(
        primary: Arc<dyn Node>,
        backups: Vec<Arc<dyn Node>>,
        history: Arc<dyn Ledger>,
        settings: SyncSettings,
    ) -> Self {
        Engine {
            primary,
            backups,
            history,
            settings,
            detach_after: Duration::from_secs(5),
            disabled: Vec::new(),
        }
    }

    /// Names the backups that are configured but disabled, so a request naming one says so
    /// rather than "unknown".
    pub fn with_disabled_backups(mut self, names: Vec<String>) -> Self {
        self.disabled = names;
        self
    }

    /// The backups configured but disabled.
    pub fn disabled_backups(&self) -> &[String] {
        &self.disabled
    }

    /// Where the engine records its work.
    pub(crate) fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.history
    }

    /// How long a fan-out waits on a backup that does not take its next batch before letting
    /// it continue on its own reader, so a slow backup does not hold up the others.
    pub fn with_detach_after(mut self, d: Duration) -> Self {
        self.detach_after = d;
        self
    }

    /// The primary node.
    pub fn primary(&self) -> &Arc<dyn Node> {
        &self.primary
    }

    /// The enabled backups.
    pub fn backups(&self) -> &[Arc<dyn Node>] {
        &self.backups
    }

    /// The settings.
    pub fn settings(&self) -> &SyncSettings {
        &self.settings
    }

    /// Runs a sync request to completion (or cancellation): [`Engine::plan`] then
    /// [`Engine::execute`].
    ///
    /// # Errors
    /// [`SyncError`] when the request cannot be planned (unknown backup, primary or history
    /// unavailable). Failures of single (backup, series) are in the report, not errors.
    pub async fn sync(
        &self,
        req: &SyncRequest,
        ctl: &SyncControl,
    ) -> Result<SyncReport, SyncError> {
        let plan = self.plan(req, ctl).await?;
        self.execute(plan, req.run_id, ctl).await
    }

    /// Works out what a request would copy: one look-up of the primary's newest points and one
    /// read of the checkpoints; no data is read.
    ///
    /// # Errors
    /// [`SyncError`] when the backups are unknown or the primary or history cannot be asked.
    pub async fn plan(&self, req: &SyncRequest, ctl: &SyncControl) -> Result<Plan, SyncError> {
        if ctl.cancel.is_cancelled() {
            return Err(SyncError::Cancelled);
        }
        let backups = self.select_backups(req.backups.as_deref())?;
        let mut plan = Plan::new(req);
        if backups.is_empty() {
            return Ok(plan);
        }
        // Tips split at now: what a backup holds up to now decides lag and whether it is
        // current; points after now (future-dated) are compared as the tip's `future` part.
        let now = dms_core::model::now_nanos();
        // The primary's and every backup's look-up at once (one request per node): a backup
        // is asked for the series named, or — when the request covers what the primary holds,
        // not yet known — for every series it holds (an InfluxDB node reads its whole
        // measurements either way). A backup that does not answer is planned from its
        // checkpoints (and skipped by the check loop), never retried here.
        let named: Option<Vec<SeriesKey>> = match &req.selection {
            Selection::Series(list) => {
                let mut v = list.clone();
                v.sort();
                v.dedup();
                Some(v)
            }
            Selection::Primary { .. } => None,
        };
        let named = &named;
        let backup_tips = futures::future::join_all(backups.into_iter().map(|b| async move {
            let tips = match named {
                Some(v) => b.tips(v, now).await,
                None => b.tips_all(now).await,
            };
            (b, tips.map_err(|e| e.to_string()))
        }));
        let (primary_tips, backups) = tokio::join!(self.primary_tips(req, ctl, now), backup_tips);
        let (series, primary, (unmatched, more)) = primary_tips?;
        plan.report.unmatched = unmatched;
        plan.report.unmatched_more = more;
        if matches!(req.selection, Selection::Primary { .. }) {
            plan.report.outside_schema = self.primary.outside_schema();
        }
        if series.is_empty() {
            return Ok(plan);
        }
        let backups: Vec<(Arc<dyn Node>, BackupTips)> = backups;
        let checkpoints = self.history.checkpoints().await?;
        plan::plan_units(
            &plan::Inputs {
                req,
                series: &series,
                primary: &primary,
                backups: &backups,
                checkpoints: &checkpoints,
                lookback: self.settings.lookback_nanos(),
                now,
            },
            &mut plan,
        );
        self.record_rewinds(&plan.rewinds, req.run_id).await?;
        Ok(plan)
    }

    /// The series a request covers and the primary's tip of each, in one look-up: for the
    /// named series, or for every series the primary holds (which also lists them); and the
    /// filters that matched nothing.
    async fn primary_tips(
        &self,
        req: &SyncRequest,
        ctl: &SyncControl,
        at: Nanos,
    ) -> Result<
        (
            Vec<SeriesKey>,
            HashMap<SeriesKey, Tip>,
            (Vec<String>, usize),
        ),
        SyncError,
    > {
        let policy = self.settings.retry;
        match &req.selection {
            Selection::Series(list) => {
                let mut v = list.clone();
                v.sort();
                v.dedup();
                if v.is_empty() {
                    return Ok((v, HashMap::new(), (Vec::new(), 0)));
                }
                let tips = with_retry(
                    &policy,
                    &ctl.cancel,
                    "reading the primary's newest points",
                    || self.primary.tips(&v, at),
                )
                .await
                .map_err(SyncError::primary)?;
                if tips.is_empty() {
                    self.primary_exists().await?;
                }
                Ok((v, tips, (Vec::new(), 0)))
            }
            Selection::Primary { symbols, intervals } => {
                let mut all =
                    with_retry(&policy, &ctl.cancel, "listing the primary's series", || {
                        self.primary.tips_all(at)
                    })
                    .await
                    .map_err(SyncError::primary)?;
                if all.is_empty() {
                    self.primary_exists().await?;
                }
                let (symbols, intervals) = (symbols.as_deref(), intervals.as_deref());
                let filter = select::Filter::new(symbols, intervals);
                let matched_any = all.keys().any(|k| filter.matches(k));
                let (mut unmatched, more) =
                    select::unmatched(symbols, intervals, all.keys(), matched_any);
                if all.is_empty() && symbols.is_none() && intervals.is_none() {
                    unmatched.push("any series (it holds none of the schema's)".to_string());
                }
                all.retain(|s, _| filter.matches(s));
                let mut v: Vec<SeriesKey> = all.keys().cloned().collect();
                v.sort();
                Ok((v, all, (unmatched, more)))
            }
        }
    }

    /// When the primary lists nothing: whether its database (or store) exists and can be read
    /// at all, so that a typo in its name is an error, never "0 series".
    pub(crate) async fn primary_exists(&self) -> Result<(), SyncError> {
        match self.primary.probe(Role::Primary).await {
            Ok(_) => Ok(()),
            Err(error) => Err(SyncError::Primary(GaveUp {
                error,
                attempts: 1,
                cancelled: false,
            })),
        }
    }

    /// Moves the checkpoints of `rewinds` back and records why.
    async fn record_rewinds(
        &self,
        rewinds: &[Rewind],
        run_id: Option<i64>,
    ) -> Result<(), SyncError> {
        for r in rewinds {
            let (kind, detail) = match (r.capped, r.to) {
                (true, _) => (
                    EventKind::Capped,
                    format!(
                        "checkpoint {} was past now: moved to the backup's newest point at or before now",
                        format_nanos(r.from)
                    ),
                ),
                (false, Some(t)) => (
                    EventKind::Rewound,
                    format!(
                        "checkpoint {} is newer than the backup's newest point {}: moved back to it",
                        format_nanos(r.from),
                        format_nanos(t)
                    ),
                ),
                (false, None) => (
                    EventKind::Rewound,
                    format!(
                        "checkpoint {} but the backup holds none of the series: synced from scratch",
                        format_nanos(r.from)
                    ),
                ),
            };
            if r.capped {
                tracing::info!(backup = %r.key.backup, series = %r.key.series, "{detail}");
            } else {
                tracing::warn!(backup = %r.key.backup, series = %r.key.series, "{detail}");
            }
            self.history
                .rewind(kind, r.key.clone(), r.to, run_id, detail)
                .await?;
        }
        Ok(())
    }

    /// Copies what a plan says, recording history rows under `run_id`.
    ///
    /// # Errors
    /// [`SyncError::Ledger`] when the history cannot be written at all.
    pub async fn execute(
        &self,
        plan: Plan,
        run_id: Option<i64>,
        ctl: &SyncControl,
    ) -> Result<SyncReport, SyncError> {
        let Plan {
            units,
            mut report,
            mode,
            repair,
            ..
        } = plan;
        let cap = dms_core::model::now_nanos();
        let lanes: usize = units.iter().map(|p| p.lanes.len()).sum();
        if let Some(p) = &ctl.progress {
            p.planned(lanes);
        }
        if units.is_empty() {
            return Ok(report);
        }
        tracing::info!(
            units = lanes,
            fan_outs = units.len(),
            mode = mode.as_str(),
            "sync started"
        );
        let ctx = Arc::new(unit::UnitCtx {
            primary: self.primary.clone(),
            history: self.history.clone(),
            batch_size: self.settings.batch_size,
            retry: self.settings.retry,
            mode,
            repair,
            run_id,
            control: ctl.clone(),
            detach_after: self.detach_after,
            cap,
            breakers: breaker::Breakers::default(),
            not_started: std::sync::atomic::AtomicUsize::new(0),
        });
        let permits = Arc::new(tokio::sync::Semaphore::new(
            self.settings.max_workers.max(1),
        ));
        let mut set = tokio::task::JoinSet::new();
        let spawn_unit = |set: &mut tokio::task::JoinSet<_>, p: plan::UnitPlan| {
            let ctx = ctx.clone();
            let permits = permits.clone();
            set.spawn(async move {
                // The semaphore is never closed, so acquiring only waits.
                let _permit = permits.acquire_owned().await.ok();
                unit::run(ctx, p).await.map(|reports| group::GroupOutcome {
                    reports,
                    streamed: Vec::new(),
                })
            });
        };
        // Many series: moved in groups (one read, one write per backup, one history
        // transaction per step); windows too big for a group come back to be streamed.
        if units.len() >= 2 {
            for g in group::groups(units) {
                let ctx = ctx.clone();
                let permits = permits.clone();
                set.spawn(async move {
                    let _permit = permits.acquire_owned().await.ok();
                    group::run(ctx, g).await
                });
            }
        } else {
            for p in units {
                spawn_unit(&mut set, p);
            }
        }
        while let Some(res) = set.join_next().await {
            match res {
                Ok(Ok(outcome)) => {
                    report.units.extend(outcome.reports);
                    for p in outcome.streamed {
                        spawn_unit(&mut set, p);
                    }
                }
                Ok(Err(e)) => {
                    set.abort_all();
                    return Err(e.into());
                }
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => {}
            }
        }
        report.not_started = ctx.not_started.load(std::sync::atomic::Ordering::Relaxed);
        // What the reads found about the primary's field types (InfluxDB: a field typed
        // differently in two shards).
        report.type_conflicts = self.primary.type_conflicts();
        report
            .units
            .sort_by(|a, b| (&a.key.series, &a.key.backup).cmp(&(&b.key.series, &b.key.backup)));
        Ok(report)
    }

    fn select_backups(&self, names: Option<&[String]>) -> Result<Vec<Arc<dyn Node>>, SyncError> {
        match names {
            None => Ok(self.backups.clone()),
            Some(names) => names
                .iter()
                .map(|n| {
                    self.backups
                        .iter()
                        .find(|b| b.name() == n)
                        .cloned()
                        .ok_or_else(|| SyncError::UnknownBackup(n.clone()))
                })
                .collect(),
        }
    }

    /// The primary's newest point per series, for status and lag (one batched look-up).
    ///
    /// # Errors
    /// The primary's error.
    pub async fn primary_newest(
        &self,
        series: &[SeriesKey],
    ) -> Result<HashMap<SeriesKey, Nanos>, NodeError> {
        self.primary.newest(series).await
    }
}
