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
        if pass != Pass::Complete {
            req.deadline = Some(started + self.settings.reconcile.budget);
        }
        let run_id = self
            .history
            .write(move |db| db.start_run(RECONCILE_TASK, trigger))
            .await?;
        req.run_id = Some(run_id);
        tracing::info!(run = run_id, pass = pass.as_str(), "reconcile started");
        let result = self.engine.reconcile(&req, control).await;
        let (status, error, report) = match result {
            Ok(r) if control.cancel.is_cancelled() => (
                Status::Interrupted,
                Some("interrupted by shutdown".to_string()),
                r,
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

/// The run's error: a backup that failed, or (not in a dry run) windows left differing.
fn summary_error(r: &ReconcileReport, dry_run: bool) -> Option<String> {
    let failed: Vec<String> = r
        .backups
        .iter()
        .filter(|b| b.counts.status != Status::Success)
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
