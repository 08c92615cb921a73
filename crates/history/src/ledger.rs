//! The SQLite history as the engine's [`Ledger`]: each call runs the writer's method of the
//! same name on the blocking pool.

use crate::{History, HistoryError};
use dms_core::ledger::{
    Commit, EventKind, Ledger, LedgerError, ReconcileCounts, ReconcileDepth, RestoreCounts,
    RestoreStart, Status, UnitFinish, UnitStart,
};
use dms_core::model::{BackupSeries, Nanos, TimeRange};
use std::collections::HashMap;

impl From<HistoryError> for LedgerError {
    fn from(e: HistoryError) -> Self {
        LedgerError::new(e)
    }
}

#[async_trait::async_trait]
impl Ledger for History {
    async fn checkpoints(&self) -> Result<HashMap<BackupSeries, Nanos>, LedgerError> {
        Ok(self.read(|db| db.checkpoints()).await?)
    }

    async fn begin_unit(&self, start: UnitStart) -> Result<i64, LedgerError> {
        Ok(self.write(move |db| db.begin_unit(&start)).await?)
    }

    async fn commit_batch(&self, commit: Commit) -> Result<(), LedgerError> {
        Ok(self.write(move |db| db.commit_batch(&commit)).await?)
    }

    async fn begin_units(&self, starts: Vec<UnitStart>) -> Result<Vec<i64>, LedgerError> {
        Ok(self.write(move |db| db.begin_units(&starts)).await?)
    }

    async fn commit_batches(&self, commits: Vec<Commit>) -> Result<(), LedgerError> {
        Ok(self.write(move |db| db.commit_batches(&commits)).await?)
    }

    async fn finish_units(&self, finished: Vec<UnitFinish>) -> Result<(), LedgerError> {
        Ok(self.write(move |db| db.finish_units(&finished)).await?)
    }

    async fn finish_unit(
        &self,
        row_id: i64,
        key: BackupSeries,
        status: Status,
        error: Option<String>,
    ) -> Result<(), LedgerError> {
        Ok(self
            .write(move |db| db.finish_unit(row_id, &key, status, error.as_deref()))
            .await?)
    }

    async fn rewind(
        &self,
        kind: EventKind,
        key: BackupSeries,
        to: Option<Nanos>,
        run_id: Option<i64>,
        detail: String,
    ) -> Result<(), LedgerError> {
        Ok(self
            .write(move |db| db.rewind(kind, &key, to, run_id, &detail))
            .await?)
    }

    async fn begin_reconcile(
        &self,
        run_id: Option<i64>,
        backup: String,
        depth: ReconcileDepth,
        range: TimeRange,
    ) -> Result<i64, LedgerError> {
        Ok(self
            .write(move |db| db.begin_reconcile(run_id, &backup, depth, range))
            .await?)
    }

    async fn finish_reconcile(
        &self,
        row_id: i64,
        counts: ReconcileCounts,
    ) -> Result<(), LedgerError> {
        Ok(self
            .write(move |db| db.finish_reconcile(row_id, &counts))
            .await?)
    }

    async fn state(&self, key: String) -> Result<Option<String>, LedgerError> {
        Ok(self.read(move |db| db.state(&key)).await?)
    }

    async fn set_state(&self, key: String, value: Option<String>) -> Result<(), LedgerError> {
        Ok(self
            .write(move |db| db.set_state(&key, value.as_deref()))
            .await?)
    }

    async fn begin_restore(&self, start: RestoreStart) -> Result<i64, LedgerError> {
        Ok(self.write(move |db| db.begin_restore(&start)).await?)
    }

    async fn finish_restore(&self, row_id: i64, counts: RestoreCounts) -> Result<(), LedgerError> {
        Ok(self
            .write(move |db| db.finish_restore(row_id, &counts))
            .await?)
    }
}
