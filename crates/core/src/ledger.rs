//! The ledger: what the sync engine records as it works — one row per (run, backup, series)
//! unit, each acknowledged batch with the checkpoint it moves, the events that move a
//! checkpoint back, reconciliation and restore rows — and the [`Ledger`] trait a history implements to
//! keep them. The engine sees only this trait; the SQLite history (`dms-history`) is one
//! implementation.
//!
//! Contract every implementation keeps:
//! - [`Ledger::commit_batch`] adds the batch's records to its row and moves the checkpoint in
//!   one transaction: after a crash either both happened or neither did;
//! - [`CheckpointUpdate::Advance`] never moves a checkpoint backwards;
//! - [`Ledger::rewind`] moves a checkpoint back (or clears it) and records why, atomically;
//! - restore rows ([`Ledger::begin_restore`]) touch no checkpoint;
//! - a failure is a [`LedgerError`] that keeps its cause, and never contains a secret.
//!
//! [`MemoryLedger`] keeps the contract in memory, for the engine's tests.

use crate::model::{BackupSeries, Nanos, TimeRange};
use std::collections::HashMap;

/// Sync mode: `incremental` continues from the checkpoint, `full` recopies `initial_days`.
#[derive(Debug, serde::Deserialize, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Continue from each (backup, series) checkpoint.
    #[default]
    Incremental,
    /// Ignore checkpoints and recopy the `initial_days` range.
    Full,
}

impl SyncMode {
    /// The mode's name as stored in the history.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Incremental => "incremental",
            SyncMode::Full => "full",
        }
    }
}

/// Why a checkpoint was moved back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The backup holds less than its checkpoint said (restored, wiped): the checkpoint
    /// moved back to what it holds.
    Rewound,
    /// Reconciliation mirrored deletes of the primary onto the backup.
    Mirrored,
    /// A checkpoint past now (set before checkpoints were capped at now) moved to the
    /// backup's newest point at or before now: nothing was lost.
    Capped,
}

impl EventKind {
    /// Name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Rewound => "rewound",
            EventKind::Mirrored => "mirrored",
            EventKind::Capped => "capped",
        }
    }
}

/// How deep a reconciliation pass compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum ReconcileDepth {
    /// Full digests of every window.
    #[default]
    #[serde(rename = "full")]
    Full,
    /// Cheap digests everywhere, full ones on a slice.
    #[serde(rename = "cheap+full")]
    CheapAndFull,
    /// Every point read on both sides (`--exact`, the scrub).
    #[serde(rename = "exact")]
    Exact,
}

impl ReconcileDepth {
    /// Name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ReconcileDepth::Full => "full",
            ReconcileDepth::CheapAndFull => "cheap+full",
            ReconcileDepth::Exact => "exact",
        }
    }
}

impl std::fmt::Display for ReconcileDepth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a committed batch moves the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointUpdate {
    /// Only forward: `max(old, new)` (incremental syncs and repairs).
    Advance,
    /// To the batch's newest point, even backwards (full resyncs of a wiped backup).
    Set,
}

/// The error of a sync unit that shutdown stopped (status [`Status::Interrupted`]). It starts
/// with `interrupted:`, which the history reads as "did not end by itself": no duration is
/// counted for it.
pub const UNIT_INTERRUPTED: &str = "interrupted: dms was stopped before this sync finished; the next sync resumes after the last acknowledged batch";

/// Status of a sync unit or task run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// In progress.
    #[default]
    Running,
    /// Done.
    Success,
    /// Failed (see the error).
    Failed,
    /// Stopped by shutdown (or, for task runs, a crash): not a failure — it counts neither
    /// as one nor in a success rate — and the next run resumes where it stopped. A sync unit's
    /// error then starts with `interrupted:`.
    Interrupted,
    /// Not started because the previous run was still going (task runs only).
    Skipped,
}

impl Status {
    /// Name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Success => "success",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
            Status::Skipped => "skipped",
        }
    }

    /// Parses a stored or user-given name.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "running" => Status::Running,
            "success" => Status::Success,
            "failed" => Status::Failed,
            "interrupted" => Status::Interrupted,
            "skipped" => Status::Skipped,
            _ => return None,
        })
    }
}

/// What one backup's reconciliation found and did, as the history keeps it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReconcileCounts {
    /// `success`, `failed` or `interrupted` (`running` until it ends).
    pub status: Status,
    /// Series compared.
    pub series: u64,
    /// Windows compared.
    pub windows: u64,
    /// Windows whose points differed.
    pub differing: u64,
    /// Of those, windows left equal to the primary (but for `extra` points kept).
    pub repaired: u64,
    /// Points written from the primary.
    pub rewritten: u64,
    /// Points deleted (`mirror_deletes`).
    pub deleted: u64,
    /// Points only the backup holds, left in place.
    pub extra: u64,
    /// Deletes held back: more than the pass may delete, or a primary that moved backwards.
    pub refused: u64,
    /// Why it failed, or what cut it short.
    pub error: Option<String>,
}

/// A restore about to run, as [`Ledger::begin_restore`] records it: which node is copied into
/// which, over what range, how.
#[derive(Debug, Clone)]
pub struct RestoreStart {
    /// The task run it belongs to (`@restore`, or the task whose script called it).
    pub run_id: Option<i64>,
    /// The backup copied from.
    pub source: String,
    /// The node copied into.
    pub target: String,
    /// Start of the range asked for (`None`: the source's oldest point).
    pub since: Option<Nanos>,
    /// End of the range asked for (`None`: the source's newest point).
    pub until: Option<Nanos>,
    /// Whether the source's points replace different ones the target holds.
    pub overwrite: bool,
    /// Whether nothing is written.
    pub dry_run: bool,
}

/// What a restore did and what its final exact comparison found, summed over its series.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RestoreCounts {
    /// `success`, `failed` or `interrupted`.
    pub status: Status,
    /// Series restored (compared).
    pub series: u64,
    /// Of which the target now holds every point of the source exactly.
    pub equal: u64,
    /// Of which the target still lacks points of the source, or (with `overwrite`) holds
    /// them with other values: the restore did not take.
    pub differing: u64,
    /// Of which the restore failed with an error.
    pub failed: u64,
    /// Points written to the target (in a dry run: that would be written).
    pub written: u64,
    /// Points the target already held with other values and kept (without `overwrite`).
    pub kept: u64,
    /// Points only the target holds in the range, left in place (a restore never deletes).
    pub extra: u64,
    /// Why it failed, or what cut it short.
    pub error: Option<String>,
}

/// One acknowledged batch, as [`Ledger::commit_batch`] records it.
#[derive(Debug, Clone)]
pub struct Commit {
    /// The `sync_history` row.
    pub row_id: i64,
    /// Backup and series.
    pub key: BackupSeries,
    /// Points the backup acknowledged.
    pub records: u64,
    /// The new checkpoint: the newest acknowledged point that is not future-dated (`None`
    /// leaves the checkpoint where it is).
    pub checkpoint: Option<Nanos>,
    /// How the checkpoint moves.
    pub update: CheckpointUpdate,
    /// Set when the backup now holds the series contiguously from this time (a first sync's
    /// window start): `synced_from` becomes the earlier of it and the old value.
    pub synced_from: Option<Nanos>,
}

/// How a `sync_history` row closes.
#[derive(Debug, Clone)]
pub struct UnitFinish {
    /// The `sync_history` row.
    pub row_id: i64,
    /// Backup and series.
    pub key: BackupSeries,
    /// How it ended.
    pub status: Status,
    /// Why it failed or stopped.
    pub error: Option<String>,
}

/// A new `sync_history` row.
#[derive(Debug, Clone)]
pub struct UnitStart {
    /// The task run it belongs to.
    pub run_id: Option<i64>,
    /// Backup and series.
    pub key: BackupSeries,
    /// How the unit copies.
    pub mode: SyncMode,
    /// Window start (data time).
    pub window_start: Nanos,
    /// Window end (data time).
    pub window_end: Nanos,
}

/// A failure of the ledger's store, with its cause (the history's own error type).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct LedgerError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl LedgerError {
    /// Wraps the store's error.
    pub fn new(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        LedgerError(Box::new(cause))
    }

    /// The store's error, when it is of type `E`.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }
}

/// Where the engine records its progress (see the module's contract).
#[async_trait::async_trait]
pub trait Ledger: Send + Sync {
    /// Every checkpoint that is set.
    async fn checkpoints(&self) -> Result<HashMap<BackupSeries, Nanos>, LedgerError>;

    /// Opens a unit's row (status `running`); returns its id.
    async fn begin_unit(&self, start: UnitStart) -> Result<i64, LedgerError>;

    /// Records one acknowledged batch and moves the checkpoint, in one transaction.
    async fn commit_batch(&self, commit: Commit) -> Result<(), LedgerError>;

    /// Closes a unit's row with its status and error, and the series' last status.
    async fn finish_unit(
        &self,
        row_id: i64,
        key: BackupSeries,
        status: Status,
        error: Option<String>,
    ) -> Result<(), LedgerError>;

    /// Opens many units' rows at once (one transaction where the store has them); returns
    /// their ids in order. Many small series synced together record themselves this way.
    async fn begin_units(&self, starts: Vec<UnitStart>) -> Result<Vec<i64>, LedgerError> {
        let mut ids = Vec::with_capacity(starts.len());
        for s in starts {
            ids.push(self.begin_unit(s).await?);
        }
        Ok(ids)
    }

    /// Records many acknowledged batches (of different series) and moves their checkpoints,
    /// all in one transaction where the store has them: all or none.
    async fn commit_batches(&self, commits: Vec<Commit>) -> Result<(), LedgerError> {
        for c in commits {
            self.commit_batch(c).await?;
        }
        Ok(())
    }

    /// Closes many units' rows at once ([`Ledger::finish_unit`] each).
    async fn finish_units(&self, finished: Vec<UnitFinish>) -> Result<(), LedgerError> {
        for f in finished {
            self.finish_unit(f.row_id, f.key, f.status, f.error).await?;
        }
        Ok(())
    }

    /// Moves a checkpoint back to `to` (clears it with `None`) and records why.
    async fn rewind(
        &self,
        kind: EventKind,
        key: BackupSeries,
        to: Option<Nanos>,
        run_id: Option<i64>,
        detail: String,
    ) -> Result<(), LedgerError>;

    /// Opens a reconciliation row for one backup; returns its id.
    async fn begin_reconcile(
        &self,
        run_id: Option<i64>,
        backup: String,
        depth: ReconcileDepth,
        range: TimeRange,
    ) -> Result<i64, LedgerError>;

    /// Closes a reconciliation row with what it found and did.
    async fn finish_reconcile(
        &self,
        row_id: i64,
        counts: ReconcileCounts,
    ) -> Result<(), LedgerError>;

    /// A value kept across runs under `key` (the repair journal), `None` when unset.
    async fn state(&self, key: String) -> Result<Option<String>, LedgerError>;

    /// Sets the value under `key`, or clears it with `None`; durable when it returns.
    async fn set_state(&self, key: String, value: Option<String>) -> Result<(), LedgerError>;

    /// Opens a restore's row (status `running`); returns its id. A restore records nothing
    /// else: it never moves a checkpoint.
    async fn begin_restore(&self, start: RestoreStart) -> Result<i64, LedgerError>;

    /// Closes a restore's row with what it did and found.
    async fn finish_restore(&self, row_id: i64, counts: RestoreCounts) -> Result<(), LedgerError>;
}

/// What a [`MemoryLedger`] holds: units, checkpoints and events, in memory.
#[derive(Debug, Default, Clone)]
pub struct MemoryRecords {
    /// Checkpoints.
    pub checkpoints: HashMap<BackupSeries, Nanos>,
    /// Units by row id (index): their start, status, records and error.
    pub units: Vec<(UnitStart, Status, u64, Option<String>)>,
    /// Checkpoint moves: kind, key, new checkpoint.
    pub events: Vec<(EventKind, BackupSeries, Option<Nanos>)>,
    /// Reconciliation rows by id (index).
    pub reconciles: Vec<(String, ReconcileDepth, Option<ReconcileCounts>)>,
    /// Values kept across runs.
    pub state: HashMap<String, String>,
    /// Restores: how each started and, once finished, its counts.
    pub restores: Vec<(RestoreStart, Option<RestoreCounts>)>,
}

/// The ledger contract kept in memory (for the engine's tests, which run without files):
/// every call is one step under one lock, so the contract's atomicity holds.
#[derive(Debug, Default)]
pub struct MemoryLedger(std::sync::Mutex<MemoryRecords>);

impl MemoryLedger {
    /// A copy of what it holds.
    pub fn records(&self) -> MemoryRecords {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryRecords> {
        // Every change is made whole under the lock: a poisoned one is still consistent.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl Ledger for MemoryLedger {
    async fn checkpoints(&self) -> Result<HashMap<BackupSeries, Nanos>, LedgerError> {
        Ok(self.lock().checkpoints.clone())
    }

    async fn begin_unit(&self, start: UnitStart) -> Result<i64, LedgerError> {
        let mut r = self.lock();
        r.units.push((start, Status::Running, 0, None));
        Ok(r.units.len() as i64 - 1)
    }

    async fn commit_batch(&self, c: Commit) -> Result<(), LedgerError> {
        let mut r = self.lock();
        if let Some(u) = usize::try_from(c.row_id)
            .ok()
            .and_then(|i| r.units.get_mut(i))
        {
            u.2 += c.records;
        }
        if let Some(t) = c.checkpoint {
            let cp = r.checkpoints.entry(c.key).or_insert(t);
            *cp = match c.update {
                CheckpointUpdate::Advance => (*cp).max(t),
                CheckpointUpdate::Set => t,
            };
        }
        Ok(())
    }

    async fn finish_unit(
        &self,
        row_id: i64,
        _key: BackupSeries,
        status: Status,
        error: Option<String>,
    ) -> Result<(), LedgerError> {
        let mut r = self.lock();
        if let Some(u) = usize::try_from(row_id)
            .ok()
            .and_then(|i| r.units.get_mut(i))
        {
            u.1 = status;
            u.3 = error;
        }
        Ok(())
    }

    async fn rewind(
        &self,
        kind: EventKind,
        key: BackupSeries,
        to: Option<Nanos>,
        _run_id: Option<i64>,
        _detail: String,
    ) -> Result<(), LedgerError> {
        let mut r = self.lock();
        match to {
            Some(t) => r.checkpoints.insert(key.clone(), t),
            None => r.checkpoints.remove(&key),
        };
        r.events.push((kind, key, to));
        Ok(())
    }

    async fn begin_reconcile(
        &self,
        _run_id: Option<i64>,
        backup: String,
        depth: ReconcileDepth,
        _range: TimeRange,
    ) -> Result<i64, LedgerError> {
        let mut r = self.lock();
        r.reconciles.push((backup, depth, None));
        Ok(r.reconciles.len() as i64 - 1)
    }

    async fn finish_reconcile(
        &self,
        row_id: i64,
        counts: ReconcileCounts,
    ) -> Result<(), LedgerError> {
        let mut r = self.lock();
        if let Some(row) = usize::try_from(row_id)
            .ok()
            .and_then(|i| r.reconciles.get_mut(i))
        {
            row.2 = Some(counts);
        }
        Ok(())
    }

    async fn state(&self, key: String) -> Result<Option<String>, LedgerError> {
        Ok(self.lock().state.get(&key).cloned())
    }

    async fn set_state(&self, key: String, value: Option<String>) -> Result<(), LedgerError> {
        let mut r = self.lock();
        match value {
            Some(v) => r.state.insert(key, v),
            None => r.state.remove(&key),
        };
        Ok(())
    }

    async fn begin_restore(&self, start: RestoreStart) -> Result<i64, LedgerError> {
        let mut r = self.lock();
        r.restores.push((start, None));
        Ok(r.restores.len() as i64 - 1)
    }

    async fn finish_restore(&self, row_id: i64, counts: RestoreCounts) -> Result<(), LedgerError> {
        let mut r = self.lock();
        if let Some(row) = usize::try_from(row_id)
            .ok()
            .and_then(|i| r.restores.get_mut(i))
        {
            row.1 = Some(counts);
        }
        Ok(())
    }
}
