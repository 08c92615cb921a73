//! Reconciliation as a recorded run (`@reconcile`), the same for the CLI, the API and the
//! daemon's scheduled passes: build the request from the `reconcile:` settings, run it, and
//! record the outcome.

use super::{App, AppError};
use crate::history::{Status, Trigger};
use crate::sync::{Pass, ReconcileArgs, ReconcileReport, ReconcileRequest, SyncControl};
use std::time::Instant;

/// Pseudo-task name of reconcile runs.
pub const RECONCILE_TASK: &str = "@reconcile";

/// A recorded reconciliation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReconcileRun {
    /// History run id.
    pub run_id: i64,
    /// Which pass.
    pub pass: &'static str,
    /// `success`, `failed` or `interrupted`.
    pub status: Status,
    /// Why it failed.
    pub error: Option<String>,
    /// What was compared and repaired.
    pub report: ReconcileReport,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

impl App {
    /// The reconcile request for `args` in `pass`, per the settings.
    pub fn reconcile_request(&self, args: &ReconcileArgs, pass: Pass) -> ReconcileRequest {
        let s = &self.settings;
        ReconcileRequest::new(
            args,
            pass,
            s.reconcile.window,
            s.sync.initial_days,
            s.sync.horizon(),
            s.reconcile.mirror_deletes,
        )
    }

    /// Runs a reconciliation as a recorded run of `@reconcile`. A scheduled pass stops
    /// starting new series after the `reconcile.budget`.
    ///
    /// # Errors
    /// [`AppError::Sync`] for an unknown backup or an unreachable primary; history failures.
    pub async fn reconcile(
        &self,
        args: &ReconcileArgs,
        pass: Pass,
        trigger: Trigger,
        control: &SyncControl,
    ) -> Result<ReconcileRun, AppError> {
        let started = Instant::now();
        let mut req = self.reconcile_request(args, pass);
        // A budgeted pass starts where the last one of its kind stopped.
        let cursor = format!("reconcile.{}.resume_from", pass.as_str());
        if pass == Pass::Complete && args.since.is_none() {
            req.starts = self.task_starts().await?;
        }
        if pass != Pass::Complete {
            req.deadline = Some(started + self.settings.reconcile.budget);
            let key = cursor.clone();
            req.resume_from = self
                .history
                .read(move |db| db.state(&key))
                .await?
                .and_then(|v| serde_json::from_str(&v).ok());
        }
        let run_id = self
            .history
            .write(move |db| db.start_run(RECONCILE_TASK, trigger))
            .await?;
        req.run_id = Some(run_id);
        tracing::info!(run = run_id, pass = pass.as_str(), "reconcile started");
        let result = self.engine.reconcile(&req, control).await;
        let (status, error, report) = match result {
            // Shutdown cut it short: the repairs written stay; the next pass compares again
            // (a scheduled one from where this one stopped).
            Ok(r) if control.cancel.is_cancelled() && !r.complete => (
                Status::Interrupted,
                Some("interrupted by shutdown before every series was compared".to_string()),
                r,
            ),
            Err(e) if e.is_cancelled() => (
                Status::Interrupted,
                Some(e.to_string()),
                ReconcileReport::default(),
            ),
            Ok(r) => match summary_error(&r, args.dry_run) {
                Some(e) => (Status::Failed, Some(e), r),
                None => (Status::Success, None, r),
            },
            Err(e) => {
                let er = e.to_string();
                self.history
                    .write(move |db| db.finish_run(run_id, Status::Failed, Some(&er)))
                    .await?;
                return Err(e.into());
            }
        };
        let er = error.clone();
        self.history
            .write(move |db| db.finish_run(run_id, status, er.as_deref()))
            .await?;
        // An interrupted pass that never began comparing leaves the cursor where it was.
        let began = !(status == Status::Interrupted && report.backups.is_empty());
        if pass != Pass::Complete && !args.dry_run && began {
            let next = report
                .resume_from
                .as_ref()
                .and_then(|s| serde_json::to_string(s).ok());
            let budget = status != Status::Interrupted;
            let warning = report.resume_from.as_ref().filter(|_| budget).map(|s| {
                format!(
                    "stopped at the budget ({} s) before every series was compared; the next {} pass starts at {s}",
                    self.settings.reconcile.budget.as_secs(),
                    pass.as_str()
                )
            });
            self.history
                .write(move |db| {
                    db.set_state(&cursor, next.as_deref())?;
                    match &warning {
                        Some(w) => db.set_run_warning(run_id, w),
                        None => Ok(()),
                    }
                })
                .await?;
        }
        for b in &report.backups {
            tracing::info!(
                run = run_id,
                backup = %b.backup,
                windows = b.counts.windows,
                differing = b.counts.differing,
                repaired = b.counts.repaired,
                rewritten = b.counts.rewritten,
                deleted = b.counts.deleted,
                extra = b.counts.extra,
                "reconcile finished for a backup"
            );
        }
        Ok(ReconcileRun {
            run_id,
            pass: pass.as_str(),
            status,
            error,
            report,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }
}

impl App {
    /// Where each (backup, series) an enabled task maintains starts: now − the longest
    /// `initial_days` of those tasks (the range they keep; the history's task scope says which
    /// task maintains what).
    ///
    /// # Errors
    /// History failures.
    pub async fn task_starts(
        &self,
    ) -> Result<std::collections::HashMap<crate::model::BackupSeries, crate::model::Nanos>, AppError>
    {
        let rows = self.history.read(|db| db.scope()).await?;
        Ok(super::task_starts(&self.settings, rows))
    }
}

/// The run's error: a backup that failed, or (not in a dry run) windows left differing.
fn summary_error(r: &ReconcileReport, dry_run: bool) -> Option<String> {
    let failed: Vec<String> = r
        .backups
        .iter()
        .filter(|b| b.counts.status == Status::Failed)
        .map(|b| {
            format!(
                "{}: {}",
                b.backup,
                b.counts.error.as_deref().unwrap_or("failed")
            )
        })
        .collect();
    if !failed.is_empty() {
        return Some(failed.join("; "));
    }
    let left = r.unresolved();
    (!dry_run && left > 0).then(|| format!("{left} window(s) still differ after repair"))
}
