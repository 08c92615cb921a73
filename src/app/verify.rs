//! Verification and repair as one operation the CLI (and later the API and Lua) can call:
//! open the nodes, pick the series, compare window by window ([`crate::verify`]), and re-sync
//! exactly the windows that differ.

use super::{App, AppError, open_nodes};
use crate::config::Settings;
use crate::history::{self, Trigger};
use crate::model::{Nanos, SeriesKey};
use crate::node::Node;
use crate::sync::{Selection, SyncControl, SyncRequest};
use crate::verify::{Mismatch, VerifyReport, VerifyRequest, verify};
use std::sync::Arc;

/// What to verify.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only these backups (every enabled one when empty).
    pub backups: Vec<String>,
    /// Only these symbols (every one on the primary when empty).
    pub symbols: Vec<String>,
    /// Only these intervals (every one on the primary when empty).
    pub intervals: Vec<String>,
    /// Start of the range; default `now − initial_days`.
    pub since: Option<Nanos>,
    /// End of the range; default the newest point either side holds.
    pub until: Option<Nanos>,
    /// Window length (ns).
    pub window: Nanos,
}

/// The nodes a verification reads.
pub struct Verifier {
    settings: Settings,
    primary: Arc<dyn Node>,
    backups: Vec<Arc<dyn Node>>,
}

/// One repaired window.
#[derive(Debug, Clone)]
pub struct Repair {
    /// The window that differed.
    pub mismatch: Mismatch,
    /// Points copied.
    pub records: u64,
    /// How its run ended (`interrupted` when shutdown stopped it).
    pub status: crate::history::Status,
    /// Why the repair failed, if it did.
    pub error: Option<String>,
}

impl Verifier {
    /// Opens the primary and the backups `scope` names (every enabled one when it names none).
    ///
    /// # Errors
    /// [`AppError::Node`] when a node cannot be opened, [`AppError::Sync`] for a backup name
    /// that is not an enabled backup.
    pub fn open(settings: &Settings, scope: &Scope) -> Result<Verifier, AppError> {
        let super::Nodes {
            primary,
            mut backups,
        } = open_nodes(settings)?;
        for name in &scope.backups {
            if !backups.iter().any(|b| b.name() == name) {
                return Err(crate::sync::SyncError::UnknownBackup(name.clone()).into());
            }
        }
        backups.retain(|b| scope.backups.is_empty() || scope.backups.iter().any(|n| n == b.name()));
        Ok(Verifier {
            settings: settings.clone(),
            primary,
            backups,
        })
    }

    /// The series that `scope` selects among those the primary or a compared backup holds
    /// (a series left only on a backup is compared too), sorted.
    ///
    /// # Errors
    /// A node's error.
    pub async fn series(&self, scope: &Scope) -> Result<Vec<SeriesKey>, AppError> {
        let mut series = self.primary.list_series().await?;
        if series.is_empty() {
            // A typo in the primary's database is an error, not "nothing to verify".
            self.primary.probe(crate::node::Role::Primary).await?;
        }
        for b in &self.backups {
            series.extend(b.list_series().await?);
        }
        series.sort();
        series.dedup();
        crate::names::NoMatch::check(
            "on the primary or a compared backup",
            &scope.symbols,
            &scope.intervals,
            &series,
        )?;
        series.retain(|s| {
            (scope.symbols.is_empty() || scope.symbols.contains(&s.symbol))
                && (scope.intervals.is_empty() || scope.intervals.contains(&s.interval))
        });
        Ok(series)
    }

    /// Compares `series` on the primary and the backups over the synced range.
    ///
    /// # Errors
    /// A node's error, or the history's when the checkpoints cannot be read.
    pub async fn verify(
        &self,
        series: &[SeriesKey],
        scope: &Scope,
    ) -> Result<VerifyReport, AppError> {
        let path = &self.settings.history.path;
        let checkpoints = if path.exists() {
            history::read(path, |db| db.checkpoints()).await?
        } else {
            Default::default()
        };
        let req = VerifyRequest {
            series: series.to_vec(),
            since: scope.since,
            until: scope.until,
            window: scope.window,
            initial_days: self.settings.sync.initial_days,
            batch_size: self.settings.sync.batch_size,
            starts: if path.exists() {
                super::task_starts(&self.settings, history::read(path, |db| db.scope()).await?)
            } else {
                Default::default()
            },
        };
        Ok(verify(&self.primary, &self.backups, &checkpoints, &req).await?)
    }
}

impl App {
    /// Re-syncs exactly the windows of `mismatches`, each as a recorded run of
    /// `@verify-repair`. Points a backup holds that the primary lacks stay (dms never deletes).
    /// Shutdown stops it between windows (the window in progress ends `interrupted`); the
    /// windows not repaired are left out.
    ///
    /// # Errors
    /// History failures that prevent recording the runs.
    pub async fn repair(
        &self,
        mismatches: &[Mismatch],
        control: &SyncControl,
    ) -> Result<Vec<Repair>, AppError> {
        let mut out = Vec::with_capacity(mismatches.len());
        for m in mismatches {
            if control.cancel.is_cancelled() {
                break;
            }
            let mut sync = SyncRequest {
                backups: Some(vec![m.key.backup.clone()]),
                window: Some(m.range),
                ..SyncRequest::new(
                    Selection::Series(vec![m.key.series.clone()]),
                    self.settings.sync.initial_days,
                )
            };
            let run = self
                .recorded_sync("@verify-repair", Trigger::Manual, &mut sync, control)
                .await?;
            out.push(Repair {
                mismatch: m.clone(),
                records: run.report.records(),
                status: run.status,
                error: run.error,
            });
        }
        Ok(out)
    }
}
