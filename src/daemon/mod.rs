//! The daemon (`dms run`): the cron scheduler, the catch-up check loop, daily history retention
//! and the HTTP server under one runtime, stopped together by one shutdown token. The HTTP
//! routes are built by the caller (`crate::http::router`) and handed in: the daemon knows
//! nothing of them.
//!
//! Shutdown: the token stops the loops from starting work and tells the engine to stop starting
//! batches; batches in flight finish and commit; runs and syncs still going are recorded
//! `interrupted` (not failed: the next run resumes them); after `shutdown_grace` whatever is
//! left is stopped where it is and recorded `interrupted` too. The stop is logged in one line
//! saying what it left unfinished, not one per series.

pub mod alerts;
mod judge;
pub mod metrics;

use crate::app::health::{self, NodeHealth};
use crate::app::reconcile::RECONCILE_TASK;
use crate::app::restore::RESTORE_TASK;
use crate::app::runner::RunStarted;
use crate::app::{App, AppError, RunOutcome};
use crate::config::CheckScope;
use crate::history::{self, Status, Trigger};
use crate::model::{BackupSeries, Nanos, format_nanos};
use crate::restore::RestoreArgs;
use crate::scheduler::Scheduler;
use crate::shutdown::{Shutdown, Stopped};
use crate::sync::{Pass, ReconcileArgs};
use crate::sync::{Selection, SyncControl, SyncRequest};
use alerts::{Alert, Alerter};
use judge::Flagged;
use metrics::Metrics;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often the daemon checks that its history file is still there.
const HISTORY_WATCH: Duration = Duration::from_secs(5);

/// Pseudo-task name of the check loop's runs.
pub const CHECK_TASK: &str = "@check";

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The API address could not be bound.
    #[error("cannot listen on {addr}: {cause}")]
    Listen {
        /// Address.
        addr: std::net::SocketAddr,
        /// Cause.
        cause: std::io::Error,
    },
    /// Opening or using the application failed.
    #[error(transparent)]
    App(#[from] AppError),
    /// A webhook is configured but alerts cannot be sent.
    #[error("alerts.webhook: {0}")]
    Alerts(#[from] crate::node::ClientError),
}

/// Why a trigger was refused.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// No such task.
    #[error("no task is called {0:?}")]
    Unknown(String),
    /// A run of the task is going.
    #[error("task {0:?} is already running")]
    Running(String),
    /// The task is disabled and the trigger did not force it.
    #[error("task {0:?} is disabled (enabled: false); force=true runs it anyway")]
    Disabled(String),
    /// The daemon is stopping.
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// A reconciliation is going.
    #[error("a reconcile is already running")]
    Reconciling,

    /// The run could not be recorded in the history (the daemon's log has the cause).
    #[error("task {0:?} could not start: its run could not be recorded in the sync history")]
    NotRecorded(String),
}

/// Why a restore was not started.
#[derive(Debug, thiserror::Error)]
pub enum RestoreTriggerError {
    /// The request names a node it cannot use, or an empty range.
    #[error(transparent)]
    Refused(crate::restore::RestoreError),
    /// A restore is going.
    #[error("a restore is already running")]
    Running,
    /// The daemon is stopping.
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// The run could not be recorded in the history (the daemon's log has the cause).
    #[error("the restore could not start: its run could not be recorded in the sync history")]
    NotRecorded,
}

/// The running daemon, shared by its loops and the API.
pub struct Daemon {
    /// The application.
    pub app: Arc<App>,
    /// What `/metrics` last read (repeated when a read fails).
    pub metrics: Arc<Metrics>,
    alerter: Option<Alerter>,
    shutdown: Shutdown,
    /// Cancelled on shutdown: stops engines from starting batches.
    work: CancellationToken,
    tracker: TaskTracker,
    behind: Flagged,
    future: Flagged,
    reconciling: std::sync::atomic::AtomicBool,
    restoring: Arc<std::sync::atomic::AtomicBool>,
    started_at: chrono::DateTime<chrono::Utc>,
}

impl Daemon {
    /// Builds the daemon around an opened app, stopped by `shutdown` (a [`Shutdown`] handle,
    /// or a plain token a caller cancels).
    ///
    /// # Errors
    /// [`DaemonError::Alerts`] when a webhook is configured but no HTTP client can be built.
    pub fn new(app: Arc<App>, shutdown: impl Into<Shutdown>) -> Result<Arc<Daemon>, DaemonError> {
        let alerter = Alerter::new(&app.settings.alerts)?;
        Ok(Arc::new(Daemon {
            app,
            metrics: Arc::new(Metrics::new()),
            alerter,
            shutdown: shutdown.into(),
            work: CancellationToken::new(),
            tracker: TaskTracker::new(),
            behind: Flagged::default(),
            future: Flagged::default(),
            reconciling: std::sync::atomic::AtomicBool::new(false),
            restoring: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            started_at: chrono::Utc::now(),
        }))
    }

    /// When the daemon started.
    pub fn started_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.started_at
    }

    /// Pings every node.
    pub async fn ping_nodes(&self) -> Vec<NodeHealth> {
        health::ping_all(&self.app.engine).await
    }

    /// The token that shutdown cancels (for work the daemon's owner starts beside it).
    pub fn shutdown_token(&self) -> tokio_util::sync::CancellationToken {
        self.shutdown.token().clone()
    }

    /// Whether shutdown was requested.
    pub fn is_stopping(&self) -> bool {
        self.shutdown.is_stopping()
    }

    fn control(&self) -> SyncControl {
        SyncControl {
            cancel: self.work.clone(),
            progress: None,
        }
    }

    /// Starts a run of `task` in the background (a disabled task only with `force`) and
    /// returns its run id once the run is recorded.
    ///
    /// # Errors
    /// [`TriggerError`] when the task is unknown, disabled (without `force`) or running, the
    /// daemon is stopping, or the run could not be recorded.
    pub async fn trigger(
        self: &Arc<Self>,
        task: &str,
        trigger: Trigger,
        force: bool,
    ) -> Result<i64, TriggerError> {
        if self.shutdown.is_stopping() {
            return Err(TriggerError::ShuttingDown);
        }
        match self.app.settings.task(task) {
            None => return Err(TriggerError::Unknown(task.to_string())),
            Some(t) if !t.enabled && !force => {
                return Err(TriggerError::Disabled(task.to_string()));
            }
            Some(_) => {}
        }
        if self.app.is_running(task) {
            return Err(TriggerError::Running(task.to_string()));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.spawn_run_telling(task.to_string(), trigger, Some(tx));
        match rx.await {
            Ok(RunStarted { skipped: true, .. }) => Err(TriggerError::Running(task.to_string())),
            Ok(RunStarted { run_id, .. }) => Ok(run_id),
            Err(_) => Err(TriggerError::NotRecorded(task.to_string())),
        }
    }

    /// Starts a reconciliation in the background (one at a time): `passes` one after the
    /// other, each a recorded run.
    ///
    /// # Errors
    /// [`TriggerError::Reconciling`] when one is going, [`TriggerError::ShuttingDown`].
    pub fn trigger_reconcile(
        self: &Arc<Self>,
        args: ReconcileArgs,
        passes: Vec<Pass>,
        trigger: Trigger,
    ) -> Result<(), TriggerError> {
        self.spawn_reconcile(args, passes, trigger, None)
    }

    /// Starts one reconcile pass in the background (as [`Daemon::trigger_reconcile`]) and
    /// returns its run id once the run is recorded, for the API's `Location`.
    ///
    /// # Errors
    /// [`TriggerError`]: one already going, the daemon stopping; `NotRecorded` when the
    /// reconcile ended before its run was recorded (an unreachable primary, the history).
    pub async fn trigger_reconcile_run(
        self: &Arc<Self>,
        args: ReconcileArgs,
        pass: Pass,
        trigger: Trigger,
    ) -> Result<i64, TriggerError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.spawn_reconcile(args, vec![pass], trigger, Some(tx))?;
        rx.await
            .map_err(|_| TriggerError::NotRecorded(RECONCILE_TASK.to_string()))
    }

    fn spawn_reconcile(
        self: &Arc<Self>,
        args: ReconcileArgs,
        passes: Vec<Pass>,
        trigger: Trigger,
        mut recorded: Option<tokio::sync::oneshot::Sender<i64>>,
    ) -> Result<(), TriggerError> {
        use std::sync::atomic::Ordering;
        if self.shutdown.is_stopping() {
            return Err(TriggerError::ShuttingDown);
        }
        if self.reconciling.swap(true, Ordering::SeqCst) {
            return Err(TriggerError::Reconciling);
        }
        let this = self.clone();
        self.tracker.spawn(async move {
            let control = this.control();
            for pass in passes {
                if control.cancel.is_cancelled() {
                    break;
                }
                this.reconcile_pass(&args, pass, trigger, &control, recorded.take())
                    .await;
            }
            this.reconciling.store(false, Ordering::SeqCst);
        });
        Ok(())
    }

    /// One reconcile pass, its failure sent to the webhook.
    async fn reconcile_pass(
        &self,
        args: &ReconcileArgs,
        pass: Pass,
        trigger: Trigger,
        control: &crate::sync::SyncControl,
        recorded: Option<tokio::sync::oneshot::Sender<i64>>,
    ) {
        match self
            .app
            .reconcile_telling(args, pass, trigger, control, recorded)
            .await
        {
            Ok(run) if run.status == Status::Interrupted => self.shutdown.note(Stopped {
                runs: 1,
                ..Stopped::default()
            }),
            Ok(run) if run.status == Status::Failed => {
                if let Some(a) = &self.alerter {
                    a.send(Alert::TaskFailed {
                        task: RECONCILE_TASK.to_string(),
                        run_id: run.run_id,
                        trigger: trigger.as_str().to_string(),
                        error: run.error.clone().unwrap_or_default(),
                    });
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(cause = %e, "reconcile failed"),
        }
    }

    /// Starts a restore in the background (one at a time) and returns its run id once the
    /// run is recorded.
    ///
    /// # Errors
    /// [`RestoreTriggerError`]: a request naming a node it cannot use or an empty range, a
    /// restore already going, the daemon stopping, the run not recorded.
    pub async fn trigger_restore(
        self: &Arc<Self>,
        args: RestoreArgs,
        trigger: Trigger,
    ) -> Result<i64, RestoreTriggerError> {
        use std::sync::atomic::Ordering;
        if self.shutdown.is_stopping() {
            return Err(RestoreTriggerError::ShuttingDown);
        }
        self.app
            .engine
            .check_restore(&args)
            .map_err(RestoreTriggerError::Refused)?;
        if self.restoring.swap(true, Ordering::SeqCst) {
            return Err(RestoreTriggerError::Running);
        }
        // Cleared when the background run ends, however it ends (even by panic).
        let flag = ClearOnDrop(self.restoring.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let this = self.clone();
        self.tracker.spawn(async move {
            let _flag = flag;
            let control = this.control();
            match this.app.restore(&args, trigger, &control, Some(tx)).await {
                Ok(run) if run.status == Status::Interrupted => this.shutdown.note(Stopped {
                    runs: 1,
                    ..Stopped::default()
                }),
                Ok(run) if run.status == Status::Failed => {
                    if let Some(a) = &this.alerter {
                        a.send(Alert::TaskFailed {
                            task: RESTORE_TASK.to_string(),
                            run_id: run.run_id,
                            trigger: trigger.as_str().to_string(),
                            error: run.error.clone().unwrap_or_default(),
                        });
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::error!(cause = %e, "restore failed"),
            }
        });
        rx.await.map_err(|_| RestoreTriggerError::NotRecorded)
    }

    /// Whether a restore is going.
    pub fn is_restoring(&self) -> bool {
        self.restoring.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether a reconciliation is going.
    pub fn is_reconciling(&self) -> bool {
        self.reconciling.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn spawn_run(self: &Arc<Self>, task: String, trigger: Trigger) {
        self.spawn_run_telling(task, trigger, None);
    }

    /// Starts a run in the background; its id goes to `started` once it is recorded.
    fn spawn_run_telling(
        self: &Arc<Self>,
        task: String,
        trigger: Trigger,
        started: Option<tokio::sync::oneshot::Sender<RunStarted>>,
    ) {
        let this = self.clone();
        self.tracker.spawn(async move {
            let control = this.control();
            match this
                .app
                .run_task_telling(&task, trigger, &control, started)
                .await
            {
                Ok(outcome) => this.after_run(trigger, &outcome),
                Err(e) => tracing::error!(task = %task, cause = %e, "could not record a task run"),
            }
        });
    }

    fn after_run(&self, trigger: Trigger, outcome: &RunOutcome) {
        self.shutdown.note(outcome.stopped());
        if outcome.status == Status::Failed
            && let Some(a) = &self.alerter
        {
            a.send(Alert::TaskFailed {
                task: outcome.task.clone(),
                run_id: outcome.run_id,
                trigger: trigger.as_str().to_string(),
                error: outcome.error.clone().unwrap_or_default(),
            });
        }
        if !outcome.stale.is_empty()
            && let Some(a) = &self.alerter
        {
            let runs = self
                .app
                .settings
                .tasks
                .iter()
                .find(|t| t.name == outcome.task)
                .map_or(0, |t| t.stale_after);
            a.send(Alert::Stale {
                task: outcome.task.clone(),
                count: outcome.stale.len(),
                series: outcome
                    .stale
                    .iter()
                    .take(20)
                    .map(|s| s.to_string())
                    .collect(),
                runs,
            });
        }
    }

    /// One pass of the check loop: plan an incremental sync of what is behind the primary
    /// within the check scope (one batched tips look-up per node, no data read when nothing is
    /// new; backups that do not answer get no work), sync it, then judge what is `behind`:
    /// lag over `max_gap_hours` that this catch-up could not fix.
    pub async fn check_once(self: &Arc<Self>) -> Option<RunOutcome> {
        let settings = &self.app.settings;
        let scope = match self.check_scope().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(cause = %e, "check: cannot read the tasks' scope");
                return None;
            }
        };
        let selection = match &scope {
            None => Selection::all(),
            Some(pairs) => {
                let mut series: Vec<_> = pairs.keys().map(|k| k.series.clone()).collect();
                series.sort();
                series.dedup();
                Selection::Series(series)
            }
        };
        let req = SyncRequest {
            only_behind: true,
            scope,
            ..SyncRequest::new(selection, settings.sync.initial_days)
        };
        let control = self.control();
        let plan = match self.app.engine.plan(&req, &control).await {
            Ok(p) => p,
            // Stopping: the pass is simply not made.
            Err(e) if e.is_cancelled() => return None,
            Err(e) => {
                tracing::warn!(cause = %e, "check: cannot plan a catch-up sync");
                return None;
            }
        };
        self.note_future(&plan.lags);
        self.note_rewinds(&plan.rewinds);
        let lags = plan.lags.clone();
        if plan.is_empty() || self.shutdown.is_stopping() {
            self.judge(&lags, None);
            self.record_check().await;
            return None;
        }
        // A task run syncs on its own; do not copy the same data twice at once.
        if settings.tasks.iter().any(|t| self.app.is_running(&t.name)) {
            tracing::debug!("check: a task is running; catch-up postponed");
            self.record_check().await;
            return None;
        }
        tracing::info!(
            units = plan.lanes(),
            "check: backups are behind the primary; catching up"
        );
        match self
            .app
            .run_plan(CHECK_TASK, Trigger::Check, plan, &control)
            .await
        {
            Ok(outcome) => {
                self.after_run(Trigger::Check, &outcome);
                self.judge(&lags, Some(&outcome.report));
                self.record_check().await;
                Some(outcome)
            }
            Err(e) => {
                tracing::error!(cause = %e, "check: could not record the catch-up run");
                None
            }
        }
    }

    /// The (backup, series) the check loop catches up: with `scope: tasks`, those enabled
    /// tasks maintain on enabled backups (each with the largest `initial_days` of its tasks);
    /// `None` with `scope: all`.
    async fn check_scope(
        &self,
    ) -> Result<Option<HashMap<BackupSeries, u32>>, history::HistoryError> {
        let settings = &self.app.settings;
        if settings.sync.check_scope == CheckScope::All {
            return Ok(None);
        }
        let rows = self.app.history.read(|db| db.scope()).await?;
        let mut pairs: HashMap<BackupSeries, u32> = HashMap::new();
        for r in rows {
            let task_on = settings.task(&r.task).is_some_and(|t| t.enabled);
            let backup_on = settings.enabled_backups().any(|b| b.name == r.key.backup);
            if task_on && backup_on {
                let days = pairs.entry(r.key).or_insert(0);
                *days = (*days).max(r.initial_days);
            }
        }
        Ok(Some(pairs))
    }

    /// Notes in the history that a check pass finished (the status view's `behind` needs it).
    async fn record_check(&self) {
        let now = chrono::Utc::now();
        if let Err(e) = self.app.history.write(move |db| db.record_check(now)).await {
            tracing::warn!(cause = %e, "check: could not record the pass");
        }
    }

    /// After a pass: a (backup, series) is behind when its lag is over `max_gap_hours` and
    /// the pass could not fix it ([`judge::behind`]). Newly behind ones are logged and alerted
    /// once per backup, not once per series ([`judge::newly_behind`]).
    fn judge(&self, lags: &[crate::sync::Lag], report: Option<&crate::sync::SyncReport>) {
        let behind = judge::behind(lags, report, self.app.settings.sync.max_gap);
        let (turned, caught_up) = self.behind.update(behind.iter().map(|(l, _)| &l.key));
        for b in judge::newly_behind(&behind, &turned) {
            tracing::warn!(
                backup = %b.backup,
                series = b.count,
                first = %b.series.first().map(String::as_str).unwrap_or(""),
                max_lag_seconds = b.max_lag_seconds,
                cause = %b.cause,
                "backup is behind the primary by more than max_gap_hours and dms could not catch it up"
            );
            if let Some(a) = &self.alerter {
                a.send(Alert::Behind {
                    backup: b.backup,
                    count: b.count,
                    series: b.series,
                    max_lag_seconds: b.max_lag_seconds,
                    cause: b.cause,
                });
            }
        }
        for key in caught_up {
            tracing::info!(backup = %key.backup, symbol = %key.series.symbol, interval = %key.series.interval, "backup caught up");
        }
    }

    fn note_rewinds(&self, rewinds: &[crate::sync::Rewind]) {
        let Some(a) = &self.alerter else { return };
        for r in rewinds.iter().filter(|r| !r.capped) {
            a.send(Alert::Rewound {
                key: r.key.clone(),
                from: format_nanos(r.from),
                to: r.to.map(format_nanos),
            });
        }
    }

    /// Alerts once per (backup, series) when the primary holds a point stamped after now +
    /// `future_tolerance` (tips split at now, so nearer future points are ordinary).
    fn note_future(&self, lags: &[crate::sync::Lag]) {
        let horizon = self.app.settings.sync.horizon();
        let future: Vec<(&BackupSeries, Nanos)> = lags
            .iter()
            .filter_map(|l| Some((&l.key, l.primary.future?)))
            .filter(|(_, t)| *t > horizon)
            .collect();
        let (new, _) = self.future.update(future.iter().map(|(k, _)| *k));
        for (key, t) in future.iter().filter(|(k, _)| new.contains(k)) {
            tracing::warn!(
                backup = %key.backup,
                symbol = %key.series.symbol,
                interval = %key.series.interval,
                time = %format_nanos(*t),
                "the primary holds a point stamped after now + future_tolerance; it is copied, the checkpoint stays before it"
            );
            if let Some(a) = &self.alerter {
                a.send(Alert::Future {
                    key: (*key).clone(),
                    time: format_nanos(*t),
                });
            }
        }
    }

    async fn scheduler_loop(self: Arc<Self>) {
        let tasks = self.app.settings.tasks.clone();
        let mut sched = Scheduler::new(&tasks, chrono::Utc::now());
        loop {
            let now = chrono::Utc::now();
            for (task, trigger) in sched.due(now) {
                if self.app.is_running(&task) {
                    // Recorded as skipped by the runner.
                    let this = self.clone();
                    self.tracker.spawn(async move {
                        let _ = this.app.run_task(&task, trigger, &this.control()).await;
                    });
                } else {
                    self.spawn_run(task, trigger);
                }
            }
            // Wake at the next fire time, and at least every 30 s so clock jumps are noticed.
            let wait = sched
                .next_wakeup()
                .map(|t| (t - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(30))
                .min(Duration::from_secs(30));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.shutdown.stopping() => return,
            }
        }
    }

    /// Runs the scheduled reconcile passes: the recent one (full-field digests of the last
    /// days) and the history one (cheap digests of the whole range, full-field ones of a
    /// rolling slice), each on its cron schedule, one at a time, within the budget.
    async fn reconcile_loop(self: Arc<Self>) {
        let r = self.app.settings.reconcile.clone();
        let next = |c: &crate::config::de::CronExpr, after| {
            crate::scheduler::next_after(&c.schedule, r.timezone, after)
        };
        let now = chrono::Utc::now();
        let (mut recent, mut history) = (
            next(&r.recent_schedule, now),
            next(&r.history_schedule, now),
        );
        loop {
            let now = chrono::Utc::now();
            for (due, pass) in [
                (
                    &mut recent,
                    Pass::Recent {
                        days: r.recent_days,
                    },
                ),
                (
                    &mut history,
                    Pass::history_for(crate::model::now_nanos(), r.slices, r.counts_everywhere),
                ),
            ] {
                if due.is_some_and(|d| d.with_timezone(&chrono::Utc) <= now) {
                    let schedule = match pass {
                        Pass::Recent { .. } => &r.recent_schedule,
                        _ => &r.history_schedule,
                    };
                    *due = next(schedule, now);
                    // Each history pass is followed by a stripe of the exact scrub.
                    let passes = match pass {
                        Pass::History { .. } => vec![pass, self.app.scrub_pass()],
                        _ => vec![pass],
                    };
                    match self.trigger_reconcile(ReconcileArgs::default(), passes, Trigger::Cron) {
                        Ok(()) => {
                            tracing::info!(pass = pass.as_str(), "scheduled reconcile started")
                        }
                        Err(e) => {
                            tracing::info!(pass = pass.as_str(), cause = %e, "scheduled reconcile skipped")
                        }
                    }
                }
            }
            let wake = [recent, history]
                .into_iter()
                .flatten()
                .map(|t| {
                    (t.with_timezone(&chrono::Utc) - now)
                        .to_std()
                        .unwrap_or(Duration::ZERO)
                })
                .min()
                .unwrap_or(Duration::from_secs(30))
                .min(Duration::from_secs(30));
            tokio::select! {
                _ = tokio::time::sleep(wake) => {}
                _ = self.shutdown.stopping() => return,
            }
        }
    }

    /// Every few seconds, checks that the history file is still the one opened: a file
    /// deleted or replaced under the daemon stops its writes, degrades `/healthz` and is
    /// alerted once (until writes work again).
    async fn history_watch_loop(self: Arc<Self>) {
        let mut alerted = false;
        loop {
            match self.app.history.check_file().await {
                Ok(()) => alerted = false,
                Err(e) if !alerted => {
                    alerted = true;
                    tracing::error!(cause = %e, "the sync history cannot be written");
                    if let Some(a) = &self.alerter {
                        a.send(Alert::HistoryFailed {
                            error: e.to_string(),
                        });
                    }
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(HISTORY_WATCH) => {}
                _ = self.shutdown.stopping() => return,
            }
        }
    }

    async fn check_loop(self: Arc<Self>) {
        let every = self.app.settings.sync.check_interval;
        loop {
            self.check_once().await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.shutdown.stopping() => return,
            }
        }
    }

    async fn retention_loop(self: Arc<Self>) {
        let days = self.app.settings.history.retention_days;
        let age = chrono::Duration::days(i64::from(days));
        loop {
            match self
                .app
                .history
                .write(move |db| db.prune_older_than(age))
                .await
            {
                Ok(p) if p.rows + p.runs > 0 => {
                    tracing::info!(
                        rows = p.rows,
                        runs = p.runs,
                        retention_days = days,
                        "pruned old sync history"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::error!(cause = %e, "could not prune the sync history"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(86_400)) => {}
                _ = self.shutdown.stopping() => return,
            }
        }
    }

    async fn catch_up(self: &Arc<Self>) {
        let settings = &self.app.settings;
        let last: HashMap<String, chrono::DateTime<chrono::Utc>> =
            match history::read(&settings.history.path, |db| db.last_runs()).await {
                Ok(rows) => rows.into_iter().map(|r| (r.task, r.started_at)).collect(),
                Err(e) => {
                    tracing::warn!(cause = %e, "cannot read last runs; no catch-up");
                    return;
                }
            };
        for task in Scheduler::catch_ups(&settings.tasks, &last, chrono::Utc::now()) {
            tracing::info!(task = %task, "a scheduled run was missed while dms was down; catching up once");
            self.spawn_run(task, Trigger::CatchUp);
        }
    }
}

impl Daemon {
    /// After the grace period: records the runs and syncs still going as `interrupted` (the
    /// daemon holds the history's writer lock, so all of them are its own) and counts them
    /// in what the stop left unfinished.
    async fn record_unfinished(&self) {
        let marked = tokio::time::timeout(
            HISTORY_WATCH,
            self.app.history.write(|db| db.interrupt_running()),
        )
        .await;
        match marked {
            Ok(Ok((runs, rows))) => self.shutdown.note(Stopped {
                runs,
                mid_sync: rows,
                not_started: 0,
            }),
            Ok(Err(e)) => {
                tracing::error!(cause = %e, "could not record the unfinished work as interrupted")
            }
            Err(_) => tracing::error!(
                "could not record the unfinished work as interrupted: the history did not answer"
            ),
        }
    }
}

/// Clears a flag when dropped.
struct ClearOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Serves the HTTP surface on the listener the daemon bound, until the token is cancelled.
/// Built by the caller (`dms run` hands in `crate::http::server`): the daemon knows no route.
pub type Server = Box<
    dyn FnOnce(
            tokio::net::TcpListener,
            CancellationToken,
        ) -> futures::future::BoxFuture<'static, ()>
        + Send,
>;

/// Runs the daemon until its shutdown token is cancelled, with `server` (when given) on
/// `api.listen`, then stops gracefully.
///
/// # Errors
/// [`DaemonError::Listen`] when the API address cannot be bound.
pub async fn run(daemon: Arc<Daemon>, server: Option<Server>) -> Result<(), DaemonError> {
    let app = daemon.app.clone();
    let shutdown = daemon.shutdown.clone();
    let settings = &app.settings;

    let server = match server {
        Some(serve) => {
            let addr = settings.api.listen;
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|cause| DaemonError::Listen { addr, cause })?;
            tracing::info!(addr = %l.local_addr().unwrap_or(addr), "HTTP API listening");
            Some((l, serve))
        }
        None => None,
    };

    tracing::info!(
        tasks = settings.tasks.iter().filter(|t| t.enabled).count(),
        backups = settings.enabled_backups().count(),
        check_interval_s = settings.sync.check_interval.as_secs_f64(),
        "dms daemon started"
    );
    daemon.catch_up().await;
    let mut loops = tokio::task::JoinSet::new();
    loops.spawn(daemon.clone().scheduler_loop());
    if settings.sync.check_enabled {
        loops.spawn(daemon.clone().check_loop());
    }
    loops.spawn(daemon.clone().retention_loop());
    loops.spawn(daemon.clone().history_watch_loop());
    if settings.reconcile.enabled {
        loops.spawn(daemon.clone().reconcile_loop());
    }
    if let Some((l, serve)) = server {
        loops.spawn(serve(l, shutdown.token().clone()));
    }

    shutdown.stopping().await;
    tracing::info!(
        grace_s = settings.shutdown_grace.as_secs_f64(),
        "shutting down ({}): no new work; letting batches in flight finish",
        shutdown.cause()
    );
    // Cancelling the work token also kills every task's script process.
    daemon.work.cancel();
    daemon.tracker.close();
    let grace = settings.shutdown_grace;
    let drained = tokio::time::timeout(grace, async {
        daemon.tracker.wait().await;
        while loops.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            grace_s = grace.as_secs_f64(),
            "work still going after the grace period is stopped where it is"
        );
        daemon.record_unfinished().await;
    }
    if shutdown.stopped().any() {
        shutdown.report(None);
    }
    tracing::info!("dms daemon stopped");
    Ok(())
}
