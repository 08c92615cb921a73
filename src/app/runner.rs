//! Running one task: record the run, call the script's hooks (or sync everything when the task
//! has no script), sync the chosen series, call `on_success`/`on_failure`, record the outcome.
//! A task never runs twice at once; a script error or timeout fails only that run.

use super::{App, AppError};
use crate::config::TaskSettings;
use crate::history::{Status, Trigger};
use crate::script::{Host, RunInfo, ScriptEnv, ScriptError, ScriptProcess, SyncArgs};
use crate::shutdown::Stopped;
use crate::sync::{Plan, SyncControl, SyncReport, SyncRequest};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why the main part of a task run failed.
#[derive(Debug, thiserror::Error)]
enum TaskError {
    /// A hook failed.
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// The sync could not be planned.
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
}

/// The outcome of a task run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunOutcome {
    /// History run id.
    pub run_id: i64,
    /// Task name.
    pub task: String,
    /// Final status.
    pub status: Status,
    /// Why it failed.
    pub error: Option<String>,
    /// What it was asked to do and could not find (see [`SyncReport::warning`]).
    pub warning: Option<String>,
    /// What was synced.
    pub report: SyncReport,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Series whose feed became stale with this run: the primary's newest bar unchanged and
    /// overdue for the task's `stale_after` successful runs in a row.
    pub stale: Vec<crate::model::SeriesKey>,
}

impl RunOutcome {
    /// What shutdown left unfinished in this run: nothing unless it was interrupted.
    pub fn stopped(&self) -> Stopped {
        if self.status != Status::Interrupted {
            return Stopped::default();
        }
        Stopped {
            runs: 1,
            mid_sync: self.report.interrupted(),
            not_started: self.report.not_started,
        }
    }
}

/// Names of tasks with a run in progress.
#[derive(Default)]
pub(crate) struct RunningTasks(Mutex<HashSet<String>>);

struct RunningGuard<'a> {
    set: &'a RunningTasks,
    name: String,
}

/// One task run in progress: what its steps (body, hooks, the record of its end) share.
struct TaskRun {
    /// The task as configured when the run started.
    task: TaskSettings,
    /// Its `task_runs` row.
    run_id: i64,
    /// What the script sees of the run.
    info: RunInfo,
    /// The services the script's calls reach.
    host: Arc<Host>,
    /// The run's tracing span.
    span: tracing::Span,
    /// When it started.
    started: Instant,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.set
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.name);
    }
}

impl RunningTasks {
    fn try_start(&self, name: &str) -> Option<RunningGuard<'_>> {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !set.insert(name.to_string()) {
            return None;
        }
        Some(RunningGuard {
            set: self,
            name: name.to_string(),
        })
    }

    /// Whether `name` is running.
    pub(crate) fn is_running(&self, name: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(name)
    }
}

/// Time on-hooks get beyond the run's timeout (README "Lua task scripts": a run ends within
/// its timeout plus this grace).
const HOOK_GRACE: Duration = Duration::from_secs(5);

/// A run as soon as it is recorded ([`App::run_task_telling`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunStarted {
    /// Its id in the history.
    pub run_id: i64,
    /// Recorded as skipped: a run of the task was still going.
    pub skipped: bool,
}

impl App {
    /// Whether a task has a run in progress.
    pub fn is_running(&self, task: &str) -> bool {
        self.running.is_running(task)
    }

    /// Runs every enabled task once, in file order; failures do not stop the others.
    ///
    /// # Errors
    /// Only history failures that prevent recording runs.
    pub async fn run_once(&self, control: &SyncControl) -> Result<Vec<RunOutcome>, AppError> {
        let mut out = Vec::new();
        let names: Vec<String> = self
            .settings
            .tasks
            .iter()
            .filter(|t| t.enabled)
            .map(|t| t.name.clone())
            .collect();
        for name in names {
            if control.cancel.is_cancelled() {
                break;
            }
            out.push(self.run_task(&name, Trigger::Once, control).await?);
        }
        Ok(out)
    }

    /// Runs one task now. A run of the same task still going makes this one `skipped`.
    ///
    /// # Errors
    /// [`AppError::UnknownTask`], or history failures that prevent recording the run.
    pub async fn run_task(
        &self,
        name: &str,
        trigger: Trigger,
        control: &SyncControl,
    ) -> Result<RunOutcome, AppError> {
        self.run_task_telling(name, trigger, control, None).await
    }

    /// [`App::run_task`], telling `started` the run's id as soon as the run is recorded (so an
    /// API caller can be answered with it while the run goes on), and whether it was skipped
    /// because a run of the task was still going.
    ///
    /// # Errors
    /// As [`App::run_task`]; `started` is then dropped unsent.
    pub async fn run_task_telling(
        &self,
        name: &str,
        trigger: Trigger,
        control: &SyncControl,
        started: Option<tokio::sync::oneshot::Sender<RunStarted>>,
    ) -> Result<RunOutcome, AppError> {
        let tell = move |run_id: i64, skipped: bool| {
            if let Some(tx) = started {
                // The caller may have stopped waiting; the run goes on regardless.
                let _ = tx.send(RunStarted { run_id, skipped });
            }
        };
        let task = self
            .settings
            .task(name)
            .ok_or_else(|| AppError::UnknownTask(name.to_string()))?
            .clone();
        // A task whose script does not compile never runs (above all not as a task without
        // a script, which would sync everything).
        self.check_script_of(name)?;
        let started = Instant::now();
        let Some(_guard) = self.running.try_start(name) else {
            let outcome = self.record_skipped(name, trigger).await?;
            tell(outcome.run_id, true);
            return Ok(outcome);
        };
        let n = name.to_string();
        let run_id = self
            .history
            .write(move |db| db.start_run(&n, trigger))
            .await?;
        tell(run_id, false);
        if let Some(why) = self.unloadable(name) {
            let error = format!(
                "task disabled: its script did not load when the daemon started ({why}); fix it and restart the daemon"
            );
            let e = error.clone();
            self.history
                .write(move |db| db.finish_run(run_id, Status::Failed, Some(&e)))
                .await?;
            return Ok(RunOutcome {
                run_id,
                task: name.to_string(),
                status: Status::Failed,
                error: Some(error),
                warning: None,
                report: SyncReport::default(),
                duration_ms: 0,
                stale: Vec::new(),
            });
        }
        let span = tracing::info_span!(
            "task",
            task = name,
            run = run_id,
            trigger = trigger.as_str()
        );
        tracing::info!(parent: &span, "task run started");

        let host = Arc::new(Host::new(
            self.engine.clone(),
            task.clone(),
            Some(run_id),
            control.clone(),
            ScriptEnv {
                schema: self.settings.schema.clone(),
                data_dir: self.settings.scripts.data_dir.clone(),
                http: self.http.clone(),
                reconcile: self.settings.reconcile.clone(),
            },
        ));
        let info = RunInfo {
            task: task.name.clone(),
            run_id: Some(run_id),
            trigger: trigger.as_str().to_string(),
            mode: task.mode.as_str().to_string(),
            initial_days: task.initial_days,
            params: task.params.clone(),
        };
        let run = TaskRun {
            task,
            run_id,
            info,
            host,
            span,
            started,
        };
        let deadline = Instant::now() + run.task.timeout;
        let mut process: Option<ScriptProcess> = None;
        let body = self.task_body(&run.task, &run.host, &run.info, deadline, &mut process);
        let result = tokio::time::timeout(run.task.timeout, body).await;
        let report = run.host.take_report();
        let mut error = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => {
                if let Some(p) = process.as_mut() {
                    p.kill().await;
                }
                process = None;
                Some(format!(
                    "timed out after {} s (task timeout): the script's process was killed; finished batches are kept",
                    run.task.timeout.as_secs_f64()
                ))
            }
        };
        let interrupted = control.cancel.is_cancelled();
        if interrupted {
            // Whatever the body said then (a script killed, a sync cut short) is the stop.
            error = Some(interrupted_error(&report));
        } else if error.is_none() && report.failed() > 0 {
            error = Some(failed_summary(&report));
        }
        let mut status = match (&error, interrupted) {
            (_, true) => Status::Interrupted,
            (None, false) => Status::Success,
            (Some(_), false) => Status::Failed,
        };
        if !interrupted
            && let Some(e) = self
                .call_on_hooks(&run, &report, error.as_deref(), deadline, &mut process)
                .await
        {
            status = Status::Failed;
            error = Some(e);
        }
        if let Some(mut p) = process {
            p.kill().await;
        }

        self.finish_task_run(run, status, error, report).await
    }

    /// Records how a task run ended (status, error, the series it maintains, its warning),
    /// logs it, and gives its outcome.
    async fn finish_task_run(
        &self,
        run: TaskRun,
        status: Status,
        error: Option<String>,
        report: SyncReport,
    ) -> Result<RunOutcome, AppError> {
        let TaskRun {
            task,
            run_id,
            span,
            started,
            ..
        } = run;
        let span = &span;
        let (st, er) = (status, error.clone());
        self.history
            .write(move |db| db.finish_run(run_id, st, er.as_deref()))
            .await?;
        self.record_scope(&task, run_id, status, &report).await?;
        let stale = if status == Status::Success {
            self.watch_feed(&task, &report).await
        } else {
            Vec::new()
        };
        let warning = self.record_warning(run_id, &report, span).await?;
        match (&error, status) {
            (None, _) => {
                tracing::info!(parent: span, records = report.records(), "task run succeeded")
            }
            // The stop is reported once, for every run it cut short.
            (Some(e), Status::Interrupted) => {
                tracing::debug!(parent: span, records = report.records(), cause = %e, "task run interrupted")
            }
            (Some(e), _) => {
                tracing::error!(parent: span, records = report.records(), cause = %e, "task run {}", status.as_str())
            }
        }
        Ok(RunOutcome {
            run_id,
            task: task.name,
            status,
            error,
            warning,
            report,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            stale,
        })
    }

    /// Records and logs what a run was asked to do and could not find, once per run.
    async fn record_warning(
        &self,
        run_id: i64,
        report: &SyncReport,
        span: &tracing::Span,
    ) -> Result<Option<String>, AppError> {
        let Some(warning) = report.warning() else {
            return Ok(None);
        };
        let warning = dms_core::text::clip(&warning).into_owned();
        tracing::warn!(parent: span, "{}", dms_core::text::escape_controls(&warning));
        let w = warning.clone();
        self.history
            .write(move |db| db.set_run_warning(run_id, &w))
            .await?;
        Ok(Some(warning))
    }

    /// Records which (backup, series) the task maintains: after a successful run exactly
    /// those its syncs covered; after a failed one, those are added to what earlier runs chose.
    async fn record_scope(
        &self,
        task: &TaskSettings,
        run_id: i64,
        status: Status,
        report: &SyncReport,
    ) -> Result<(), AppError> {
        let replace = status == Status::Success;
        if !replace && report.covered.is_empty() {
            return Ok(());
        }
        let mut keys = report.covered.clone();
        keys.sort();
        keys.dedup();
        let (name, days) = (task.name.clone(), task.initial_days);
        self.history
            .write(move |db| db.record_scope(&name, &keys, days, Some(run_id), replace))
            .await?;
        Ok(())
    }

    /// Records a run that did not start because the previous one is still going.
    async fn record_skipped(&self, name: &str, trigger: Trigger) -> Result<RunOutcome, AppError> {
        let reason = "skipped: the previous run of this task is still going";
        let n = name.to_string();
        let run_id = self
            .history
            .write(move |db| db.record_skipped_run(&n, trigger, reason))
            .await?;
        tracing::warn!(task = name, trigger = trigger.as_str(), "{reason}");
        Ok(RunOutcome {
            run_id,
            task: name.to_string(),
            status: Status::Skipped,
            error: Some(reason.into()),
            warning: None,
            report: SyncReport::default(),
            duration_ms: 0,
            stale: Vec::new(),
        })
    }

    /// Calls `on_success` (after a run without error) or `on_failure` (with `error`) in the
    /// run's script process (a fresh one when the run's was killed), within what is left of the
    /// run's `deadline` plus [`HOOK_GRACE`]: the whole run ends within its timeout plus the
    /// grace. Returns the error that fails a run that had succeeded until then: `on_success`
    /// failing or timing out. An `on_failure` problem is only logged.
    async fn call_on_hooks(
        &self,
        run: &TaskRun,
        report: &SyncReport,
        error: Option<&str>,
        deadline: Instant,
        process: &mut Option<ScriptProcess>,
    ) -> Option<String> {
        let (task, info, host, span) = (&run.task, &run.info, &run.host, &run.span);
        let script = self.scripts.get(&task.name)?;
        let grace =
            (deadline + HOOK_GRACE.min(task.timeout)).saturating_duration_since(Instant::now());
        let cancel = &host.control.cancel;
        let hooks = async {
            if process.is_none() {
                let p = ScriptProcess::start(
                    &self.launcher(),
                    script,
                    info,
                    grace,
                    Some(host.as_ref()),
                    cancel,
                )
                .await?;
                *process = Some(p);
            }
            let Some(p) = process.as_mut() else {
                return Ok(());
            };
            match error {
                None => p.call_on_success(report, grace, host, cancel).await,
                Some(err) => p.call_on_failure(err, grace, host, cancel).await,
            }
        };
        let outcome = tokio::time::timeout(grace, hooks).await;
        let failed = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => {
                if let Some(p) = process.as_mut() {
                    p.kill().await;
                }
                Some(format!(
                    "script {}: the on-hook did not finish within the task's timeout plus {} s and was killed",
                    script.shown,
                    HOOK_GRACE.as_secs()
                ))
            }
        };
        match (error, failed) {
            (None, failed) => failed,
            (Some(_), Some(e)) => {
                tracing::error!(parent: span, cause = %e, "on_failure hook failed");
                None
            }
            (Some(_), None) => None,
        }
    }

    async fn task_body(
        &self,
        task: &TaskSettings,
        host: &Arc<Host>,
        info: &RunInfo,
        deadline: Instant,
        process: &mut Option<ScriptProcess>,
    ) -> Result<(), TaskError> {
        let Some(script) = self.scripts.get(&task.name) else {
            if task.sync_backups {
                host.sync(SyncArgs::default()).await?;
            }
            return Ok(());
        };
        let cancel = &host.control.cancel;
        let left = || deadline.saturating_duration_since(Instant::now());
        let p = process.insert(
            ScriptProcess::start(
                &self.launcher(),
                script,
                info,
                left(),
                Some(host.as_ref()),
                cancel,
            )
            .await?,
        );
        if p.has("run") {
            p.call("run", None, left(), host, cancel).await?;
            return Ok(());
        }
        let symbols = p.call_list("symbols", left(), host, cancel).await?;
        let intervals = p.call_list("intervals", left(), host, cancel).await?;
        if task.sync_backups {
            host.sync(SyncArgs {
                symbols,
                intervals,
                ..SyncArgs::default()
            })
            .await?;
        }
        Ok(())
    }

    /// A manual sync (`dms sync`), recorded as a run of the pseudo-task `@sync`.
    ///
    /// # Errors
    /// [`AppError::Sync`] when the request cannot be planned; history failures.
    pub async fn manual_sync(
        &self,
        mut req: SyncRequest,
        control: &SyncControl,
    ) -> Result<RunOutcome, AppError> {
        self.recorded_sync("@sync", Trigger::Manual, &mut req, control)
            .await
    }

    /// Runs a sync request as a recorded run of pseudo-task `task`.
    ///
    /// # Errors
    /// [`AppError::Sync`] when the request cannot be planned; history failures.
    pub async fn recorded_sync(
        &self,
        task: &str,
        trigger: Trigger,
        req: &mut SyncRequest,
        control: &SyncControl,
    ) -> Result<RunOutcome, AppError> {
        let started = Instant::now();
        let n = task.to_string();
        let run_id = self
            .history
            .write(move |db| db.start_run(&n, trigger))
            .await?;
        req.run_id = Some(run_id);
        let result = self.engine.sync(req, control).await;
        self.finish_recorded(task, run_id, result, control, started)
            .await
    }
}

impl App {
    /// Runs an already planned sync as a recorded run of pseudo-task `task` (the daemon's check
    /// loop plans first and records a run only when something needs copying).
    ///
    /// # Errors
    /// History failures.
    pub async fn run_plan(
        &self,
        task: &str,
        trigger: Trigger,
        plan: Plan,
        control: &SyncControl,
    ) -> Result<RunOutcome, AppError> {
        let started = Instant::now();
        let n = task.to_string();
        let run_id = self
            .history
            .write(move |db| db.start_run(&n, trigger))
            .await?;
        let result = self.engine.execute(plan, Some(run_id), control).await;
        self.finish_recorded(task, run_id, result, control, started)
            .await
    }

    async fn finish_recorded(
        &self,
        task: &str,
        run_id: i64,
        result: Result<SyncReport, crate::sync::SyncError>,
        control: &SyncControl,
        started: Instant,
    ) -> Result<RunOutcome, AppError> {
        let (status, error, report) = match result {
            // Shutdown left some of it undone: the next run resumes it.
            Ok(r) if control.cancel.is_cancelled() && r.was_interrupted() => {
                (Status::Interrupted, Some(interrupted_error(&r)), r)
            }
            Err(e) if e.is_cancelled() => (
                Status::Interrupted,
                Some(e.to_string()),
                SyncReport::default(),
            ),
            Ok(r) if r.failed() > 0 => (Status::Failed, Some(failed_summary(&r)), r),
            // Nothing asked for is on the primary: a sync that did nothing is not a success.
            Ok(r) if r.found_nothing() => (Status::Failed, r.warning(), r),
            Ok(r) => (Status::Success, None, r),
            Err(e) => (Status::Failed, Some(e.to_string()), SyncReport::default()),
        };
        let er = error.clone();
        self.history
            .write(move |db| db.finish_run(run_id, status, er.as_deref()))
            .await?;
        let span = tracing::info_span!("task", task, run = run_id);
        let warning = self.record_warning(run_id, &report, &span).await?;
        Ok(RunOutcome {
            run_id,
            task: task.to_string(),
            status,
            error,
            warning,
            report,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            stale: Vec::new(),
        })
    }
}

/// A run's error when shutdown stopped it: what it left undone, and what had failed before.
fn interrupted_error(report: &SyncReport) -> String {
    let mut e = String::from("interrupted by shutdown");
    let (mid, left) = (report.interrupted(), report.not_started);
    if mid + left > 0 {
        e.push_str(&format!(
            ": {mid} series sync{} stopped mid-way, {left} not started; the next run resumes them",
            if mid == 1 { "" } else { "s" }
        ));
    }
    if report.failed() > 0 {
        e.push_str(&format!("; before that, {}", failed_summary(report)));
    }
    e
}

/// "N of M series syncs failed", then per backup how many and the first failure's cause
/// (a dead backup's hundred "down since" rows say one thing once).
fn failed_summary(report: &SyncReport) -> String {
    let mut by_backup: Vec<(&str, usize, String)> = Vec::new();
    for u in report.units.iter().filter(|u| u.status == Status::Failed) {
        match by_backup.iter_mut().find(|(b, _, _)| *b == u.key.backup) {
            Some((_, n, _)) => *n += 1,
            None => by_backup.push((
                &u.key.backup,
                1,
                format!(
                    "{}: {}",
                    u.key.series,
                    u.error.as_deref().unwrap_or("failed")
                ),
            )),
        }
    }
    let parts: Vec<String> = by_backup
        .iter()
        .map(|(b, n, first)| match n {
            1 => format!("{b}: {first}"),
            _ => format!("{b}: {n} failed, the first {first}"),
        })
        .collect();
    format!(
        "{} of {} series syncs failed — {}",
        report.failed(),
        report.units.len(),
        parts.join("; ")
    )
}
