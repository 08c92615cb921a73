//! Reconciliation as a recorded run (`@reconcile`), the same for the CLI, the API and the
//! daemon's scheduled passes: build the request from the `reconcile:` settings, run it, and
//! record the outcome.

use super::{App, AppError};
use crate::history::{Status, Trigger};
use crate::sync::{Pass, ReconcileArgs, ReconcileReport, ReconcileRequest, SyncControl};
use std::time::Instant;

/// Pseudo-task name of reconcile runs.
pub const RECONCILE_TASK: &str = "@reconcile";
/// Daemon-state key of the scrub's next stripe.
const SCRUB_STRIPE: &str = "reconcile.scrub.stripe";

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
    /// Wall time in seconds, as a run's `duration_seconds`.
    pub duration_seconds: f64,
}

impl App {
    /// The reconcile request for `args` in `pass`, per the settings.
    pub fn reconcile_request(&self, args: &ReconcileArgs, pass: Pass) -> ReconcileRequest {
        let s = &self.settings;
        let mut req = ReconcileRequest::new(
            args,
            pass,
            s.reconcile.window,
            s.sync.initial_days,
            s.sync.horizon(),
            s.reconcile.mirror_deletes,
        );
        req.deletes.max_points = s.reconcile.max_deletes;
        req.deletes.max_share = s.reconcile.max_delete_share;
        req
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
        self.reconcile_telling(args, pass, trigger, control, None)
            .await
    }

    /// [`App::reconcile`], sending the run's id to `recorded` once the run is in the history
    /// (the API answers with it before the reconcile ends).
    ///
    /// # Errors
    /// As [`App::reconcile`].
    pub async fn reconcile_telling(
        &self,
        args: &ReconcileArgs,
        pass: Pass,
        trigger: Trigger,
        control: &SyncControl,
        recorded: Option<tokio::sync::oneshot::Sender<i64>>,
    ) -> Result<ReconcileRun, AppError> {
        let started = Instant::now();
        // A scrub reads the stripe after the last one it finished.
        let pass = match pass {
            Pass::Scrub { stripes, .. } => {
                let stripes = stripes.max(1);
                let at = self
                    .history
                    .read(|db| db.state(SCRUB_STRIPE))
                    .await?
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0)
                    % stripes;
                Pass::Scrub {
                    stripe: at,
                    stripes,
                }
            }
            other => other,
        };
        let mut req = self.reconcile_request(args, pass);
        // A budgeted pass starts where the last one of its kind stopped.
        let cursor = format!("reconcile.{}.resume_from", pass.as_str());
        if matches!(pass, Pass::Complete | Pass::Scrub { .. }) && args.since.is_none() {
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
        if let Some(tx) = recorded {
            // The asker may have gone (a client that hung up): the run goes on.
            let _ = tx.send(run_id);
        }
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
            // A scrub moves to the next stripe once every series of this one was compared.
            let stripe = match (pass, report.complete) {
                (Pass::Scrub { stripe, stripes }, true) => Some((stripe + 1) % stripes.max(1)),
                _ => None,
            };
            self.history
                .write(move |db| {
                    if let Some(s) = stripe {
                        db.set_state(SCRUB_STRIPE, Some(&s.to_string()))?;
                    }
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
            duration_seconds: started.elapsed().as_secs_f64(),
        })
    }
}

impl App {
    /// How many stripes the scrub cuts the range into: as many history passes as the
    /// schedule holds in one `reconcile.scrub_period` (at least one, at most 1,000), so a
    /// stripe after each pass reads every point within the period.
    pub fn scrub_stripes(&self) -> u32 {
        let r = &self.settings.reconcile;
        let now = chrono::Utc::now();
        let end = chrono::Duration::from_std(r.scrub_period)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(now);
        // Counted on the schedule's own clock: a shift of the zone's offset moves a pass by an
        // hour, never in or out of a 30-day period by more than one.
        let n = r
            .history_schedule
            .schedule
            .after(&now)
            .take_while(|t| *t <= end)
            .take(1_000)
            .count();
        u32::try_from(n).unwrap_or(1_000).max(1)
    }

    /// The scrub pass for now (its stripe is read from the history when it runs).
    pub fn scrub_pass(&self) -> Pass {
        Pass::Scrub {
            stripe: 0,
            stripes: self.scrub_stripes(),
        }
    }

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
