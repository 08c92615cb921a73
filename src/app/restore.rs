//! Restoring from a backup as a recorded run (`@restore`), the same for the CLI and the API:
//! check the request, record a run, let the engine restore and compare, record the outcome.
//! A restore is no sync: it moves no checkpoint.

use super::{App, AppError};
use crate::config::Settings;
use crate::history::{Status, Trigger};
use crate::restore::{NodeNames, RestoreArgs, RestoreReport};
use crate::sync::SyncControl;
use std::time::Instant;
use tracing::Instrument;

/// Pseudo-task name of restore runs.
pub const RESTORE_TASK: &str = "@restore";

/// The nodes a restore may name, from the settings (to check a request before opening any).
pub fn node_names(settings: &Settings) -> NodeNames {
    let backups = |enabled: bool| {
        settings
            .backups
            .iter()
            .filter(|b| b.enabled == enabled)
            .map(|b| b.name.clone())
            .collect()
    };
    NodeNames {
        primary: settings.primary.name.clone(),
        enabled: backups(true),
        disabled: backups(false),
    }
}

/// A recorded restore: `dms restore --json`, and what the API's run shows while it goes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreRun {
    /// History run id.
    pub run_id: i64,
    /// `success`, `failed` or `interrupted`.
    pub status: Status,
    /// Why it failed: series that failed or still differ, filters that matched nothing.
    pub error: Option<String>,
    /// Named series the backup holds nothing of.
    pub warning: Option<String>,
    /// What was written, kept and compared, per series.
    pub restore: RestoreReport,
    /// Wall time in seconds, as a run's `duration_seconds`.
    pub duration_seconds: f64,
}

impl App {
    /// Runs a restore as a recorded run of `@restore`; `started` gets the run id as soon as
    /// the run is recorded (the API answers with it then). A request naming nodes it cannot
    /// use, or an empty range, is refused before any run is recorded.
    ///
    /// # Errors
    /// [`AppError::Restore`] for a request the engine refuses or a source that cannot be
    /// asked; history failures.
    pub async fn restore(
        &self,
        args: &RestoreArgs,
        trigger: Trigger,
        control: &SyncControl,
        started: Option<tokio::sync::oneshot::Sender<i64>>,
    ) -> Result<RestoreRun, AppError> {
        let begun = Instant::now();
        self.engine.check_restore(args)?;
        let run_id = self
            .history
            .write(move |db| db.start_run(RESTORE_TASK, trigger))
            .await?;
        if let Some(tx) = started {
            // The API may have stopped waiting; the run goes on regardless.
            let _ = tx.send(run_id);
        }
        let span = tracing::info_span!("task", task = RESTORE_TASK, run = run_id);
        let result = self
            .engine
            .restore(args, Some(run_id), control)
            .instrument(span)
            .await;
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                let er = e.to_string();
                let status = if control.cancel.is_cancelled() {
                    Status::Interrupted
                } else {
                    Status::Failed
                };
                self.history
                    .write(move |db| db.finish_run(run_id, status, Some(&er)))
                    .await?;
                return Err(e.into());
            }
        };
        let (status, error) = (report.counts.status, report.counts.error.clone());
        let er = error.clone();
        self.history
            .write(move |db| db.finish_run(run_id, status, er.as_deref()))
            .await?;
        let warning = report.warning();
        if let Some(w) = warning.clone() {
            tracing::warn!(run = run_id, "{w}");
            self.history
                .write(move |db| db.set_run_warning(run_id, &w))
                .await?;
        }
        let c = &report.counts;
        tracing::info!(
            run = run_id,
            source = %report.source,
            target = %report.target,
            series = c.series,
            written = c.written,
            kept = c.kept,
            extra = c.extra,
            differing = c.differing,
            failed = c.failed,
            dry_run = report.dry_run,
            status = status.as_str(),
            "restore finished"
        );
        Ok(RestoreRun {
            run_id,
            status,
            error,
            warning,
            restore: report,
            duration_seconds: begun.elapsed().as_secs_f64(),
        })
    }
}
