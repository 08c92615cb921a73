//! [`HistoryWriter`]'s methods: opening (lock, create, migrate, check), and every write.

use crate::*;
use dms_core::model::{BackupSeries, Nanos};
use dms_core::text::clip;
use rusqlite::{Connection, params};
use std::path::Path;
use std::time::Duration;

impl HistoryWriter {
    /// Takes the writer lock (naming `who`), then opens for writing, creating the folder, file
    /// and tables as needed.
    ///
    /// # Errors
    /// [`HistoryError::Locked`], [`HistoryError::Open`] or [`HistoryError::TooNew`].
    pub fn open(path: &Path, who: &str, busy_timeout: Duration) -> Result<HistoryWriter> {
        let open_err = |cause| HistoryError::Open {
            path: path.to_path_buf(),
            cause,
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            return Err(open_err(rusqlite::Error::ToSqlConversionFailure(Box::new(
                e,
            ))));
        }
        let lock = WriterLock::acquire(path, who)?;
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(busy_timeout).map_err(open_err)?;
        check_integrity(&conn, path)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .map_err(open_err)?;
        schema::migrate(&mut conn, path)?;
        Ok(HistoryWriter {
            db: HistoryReader {
                conn,
                path: path.to_path_buf(),
                version: schema::VERSION,
            },
            identity: file_identity(path),
            _lock: lock,
        })
    }

    /// Whether the file at the path is still the one this writer opened.
    ///
    /// # Errors
    /// [`HistoryError::Replaced`] when it was deleted or another file took its place.
    pub fn check_file(&self) -> Result<()> {
        match self.identity {
            Some(id) if file_identity(&self.db.path) != Some(id) => Err(HistoryError::Replaced {
                path: self.db.path.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Marks rows a crash left `running`: sync rows become `failed` ("interrupted"), task
    /// runs and restores `interrupted`. Returns (task runs, sync rows) repaired.
    ///
    /// # Errors
    /// [`HistoryError::Sql`].
    pub fn repair_interrupted(&mut self) -> Result<(usize, usize)> {
        let now = now_text();
        let tx = self
            .db
            .conn
            .transaction()
            .map_err(sql_err(&self.db.path, "repair"))?;
        let rows = tx
            .execute(
                "UPDATE sync_history SET status = 'failed', finished_at = ?1, \
                 error = 'interrupted: dms stopped before this sync finished' WHERE status = 'running'",
                params![now],
            )
            .map_err(sql_err(&self.db.path, "repair"))?;
        let runs = tx
            .execute(
                "UPDATE task_runs SET status = 'interrupted', finished_at = ?1, \
                 error = coalesce(error, 'interrupted: dms stopped before this run finished') \
                 WHERE status = 'running'",
                params![now],
            )
            .map_err(sql_err(&self.db.path, "repair"))?;
        tx.execute(
            "UPDATE restore_history SET status = 'interrupted', finished_at = ?1, \
             error = coalesce(error, 'interrupted: dms stopped before this restore finished') \
             WHERE status = 'running'",
            params![now],
        )
        .map_err(sql_err(&self.db.path, "repair"))?;
        tx.commit().map_err(sql_err(&self.db.path, "repair"))?;
        Ok((runs, rows))
    }

    /// Marks everything still `running` — task runs, their syncs, reconciliations — as
    /// `interrupted`: what a stopping daemon does with the work its grace period did not
    /// let finish (it holds the writer lock, so all of it is its own). Returns (task runs,
    /// sync rows) marked.
    ///
    /// # Errors
    /// [`HistoryError::Sql`].
    pub fn interrupt_running(&mut self) -> Result<(usize, usize)> {
        let now = now_text();
        let err = sql_err(&self.db.path, "mark interrupted work");
        let tx = self.db.conn.transaction().map_err(&err)?;
        let rows = tx
            .execute(
                "UPDATE sync_history SET status = 'interrupted', finished_at = ?1, error = ?2 \
                 WHERE status = 'running'",
                params![now, UNIT_INTERRUPTED],
            )
            .map_err(&err)?;
        tx.execute(
            "UPDATE reconcile_history SET status = 'interrupted', finished_at = ?1, \
             error = coalesce(error, 'interrupted: dms was stopped before this reconcile finished') \
             WHERE status = 'running'",
            params![now],
        )
        .map_err(&err)?;
        let runs = tx
            .execute(
                "UPDATE task_runs SET status = 'interrupted', finished_at = ?1, \
                 error = coalesce(error, 'interrupted by shutdown') WHERE status = 'running'",
                params![now],
            )
            .map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok((runs, rows))
    }

    /// Records the start of a task run; returns its id.
    ///
    /// # Errors
    /// [`HistoryError::Sql`].
    pub fn start_run(&mut self, task: &str, trigger: Trigger) -> Result<i64> {
        self.db.conn
            .execute(
                "INSERT INTO task_runs (task, trigger, started_at, status) VALUES (?1, ?2, ?3, 'running')",
                params![task, trigger.as_str(), now_text()],
            )
            .map_err(sql_err(&self.db.path, "start run"))?;
        Ok(self.db.conn.last_insert_rowid())
    }

    /// Records a run that did not start (`skipped`), with the reason.
    ///
    /// # Errors
    /// [`HistoryError::Sql`].
    pub fn record_skipped_run(
        &mut self,
        task: &str,
        trigger: Trigger,
        reason: &str,
    ) -> Result<i64> {
        let now = now_text();
        self.db
            .conn
            .execute(
                "INSERT INTO task_runs (task, trigger, started_at, finished_at, status, error) \
                 VALUES (?1, ?2, ?3, ?3, 'skipped', ?4)",
                params![task, trigger.as_str(), now, reason],
            )
            .map_err(sql_err(&self.db.path, "record skipped run"))?;
        Ok(self.db.conn.last_insert_rowid())
    }

    /// Records the end of a task run. Sync rows of the run still `running` are closed as
    /// `interrupted` when the run was, otherwise as `failed` with the same error (or
    /// "interrupted").
    ///
    /// # Errors
    /// [`HistoryError::Sql`].
    pub fn finish_run(&mut self, run_id: i64, status: Status, error: Option<&str>) -> Result<()> {
        let now = now_text();
        let tx = self
            .db
            .conn
            .transaction()
            .map_err(sql_err(&self.db.path, "finish run"))?;
        tx.execute(
            "UPDATE task_runs SET status = ?2, finished_at = ?3, error = ?4 WHERE id = ?1",
            params![run_id, status.as_str(), now, error.map(clip)],
        )
        .map_err(sql_err(&self.db.path, "finish run"))?;
        let (left, why) = match status {
            Status::Interrupted => ("interrupted", UNIT_INTERRUPTED.into()),
            _ => (
                "failed",
                clip(error.unwrap_or("interrupted: the run ended before this sync finished")),
            ),
        };
        tx.execute(
            "UPDATE sync_history SET status = ?4, finished_at = ?2, error = ?3 \
             WHERE run_id = ?1 AND status = 'running'",
            params![run_id, now, why, left],
        )
        .map_err(sql_err(&self.db.path, "finish run"))?;
        tx.commit().map_err(sql_err(&self.db.path, "finish run"))
    }

    /// Inserts a `running` sync row; returns its id.
    ///
    /// # Errors
    /// [`HistoryError::Sql`].
    pub fn begin_unit(&mut self, u: &UnitStart) -> Result<i64> {
        let mut ids = self.begin_units(std::slice::from_ref(u))?;
        Ok(ids.pop().unwrap_or_default())
    }

    /// Inserts many `running` sync rows in one transaction; returns their ids in order.
    ///
    /// # Errors
    /// [`HistoryError::Sql`]; then none was inserted.
    pub fn begin_units(&mut self, units: &[UnitStart]) -> Result<Vec<i64>> {
        let now = now_text();
        let err = sql_err(&self.db.path, "begin sync");
        let tx = self.db.conn.transaction().map_err(&err)?;
        let mut ids = Vec::with_capacity(units.len());
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO sync_history (run_id, backup, symbol, interval, mode, started_at, status, \
                     records, window_start, window_end) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', 0, ?7, ?8)",
                )
                .map_err(&err)?;
            for u in units {
                st.execute(params![
                    u.run_id,
                    u.key.backup,
                    u.key.series.symbol,
                    u.key.series.interval,
                    u.mode.as_str(),
                    now,
                    u.window_start,
                    u.window_end
                ])
                .map_err(&err)?;
                ids.push(tx.last_insert_rowid());
            }
        }
        tx.commit().map_err(&err)?;
        Ok(ids)
    }

    /// Records an acknowledged batch: adds its records to the row and moves the checkpoint
    /// (and `synced_from`), in one transaction.
    ///
    /// # Errors
    /// [`HistoryError::Sql`]; then neither change happened.
    pub fn commit_batch(&mut self, c: &Commit) -> Result<()> {
        self.commit_batches(std::slice::from_ref(c))
    }

    /// Records many acknowledged batches (of any series) in one transaction: all or none.
    ///
    /// # Errors
    /// [`HistoryError::Sql`]; then none of the changes happened.
    pub fn commit_batches(&mut self, commits: &[Commit]) -> Result<()> {
        let now = now_text();
        let err = sql_err(&self.db.path, "commit batch");
        let tx = self.db.conn.transaction().map_err(&err)?;
        for c in commits {
            let records = i64::try_from(c.records).unwrap_or(i64::MAX);
            tx.prepare_cached("UPDATE sync_history SET records = records + ?2 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![c.row_id, records]))
                .map_err(&err)?;
            let checkpoint = match c.update {
                CheckpointUpdate::Advance => {
                    "CASE WHEN ?4 IS NULL THEN last_sync_time ELSE max(coalesce(last_sync_time, ?4), ?4) END"
                }
                CheckpointUpdate::Set => "coalesce(?4, last_sync_time)",
            };
            let sql = format!(
                "INSERT INTO sync_status (backup, symbol, interval, last_sync_time, last_status, updated_at, synced_from) \
                 VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6) ON CONFLICT (backup, symbol, interval) DO UPDATE SET \
                 last_sync_time = {checkpoint}, last_status = 'running', updated_at = ?5, \
                 synced_from = CASE WHEN ?6 IS NULL THEN synced_from ELSE min(coalesce(synced_from, ?6), ?6) END"
            );
            tx.prepare_cached(&sql)
                .and_then(|mut s| {
                    s.execute(params![
                        c.key.backup,
                        c.key.series.symbol,
                        c.key.series.interval,
                        c.checkpoint,
                        now,
                        c.synced_from
                    ])
                })
                .map_err(&err)?;
        }
        tx.commit().map_err(&err)
    }

    /// Moves a checkpoint back to what its backup holds (`to`; `None` when it holds nothing of
    /// the series) and records an event of `kind` saying why (`rewound`: the backup lost
    /// data; `mirrored`: reconcile deleted its newest points), in one transaction.
    ///
    /// # Errors
    /// [`HistoryError::Sql`].
    pub fn rewind(
        &mut self,
        kind: EventKind,
        key: &BackupSeries,
        to: Option<Nanos>,
        run_id: Option<i64>,
        detail: &str,
    ) -> Result<()> {
        let now = now_text();
        let tx = self
            .db
            .conn
            .transaction()
            .map_err(sql_err(&self.db.path, "rewind checkpoint"))?;
        tx.execute(
            "UPDATE sync_status SET last_sync_time = ?4, updated_at = ?5, \
             synced_from = CASE WHEN ?4 IS NULL THEN NULL ELSE synced_from END \
             WHERE backup = ?1 AND symbol = ?2 AND interval = ?3",
            params![key.backup, key.series.symbol, key.series.interval, to, now],
        )
        .map_err(sql_err(&self.db.path, "rewind checkpoint"))?;
        insert_event(&tx, &now, run_id, kind.as_str(), Some(key), detail)
            .map_err(sql_err(&self.db.path, "rewind checkpoint"))?;
        tx.commit()
            .map_err(sql_err(&self.db.path, "rewind checkpoint"))
    }

    /// Starts a `reconcile_history` row for one backup; returns its id.
    ///
    /// # Errors
    /// [`HistoryError::Sql`].
    pub fn begin_reconcile(
        &mut self,
        run_id: Option<i64>,
        backup: &str,
        depth: ReconcileDepth,
        range: dms_core::model::TimeRange,
    ) -> Result<i64> {
        self.db
            .conn
            .execute(
                "INSERT INTO reconcile_history (run_id, backup, depth, range_start, range_end, \
                 started_at, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running')",
                params![
                    run_id,
                    backup,
                    depth.as_str(),
                    range.start,
                    range.end,
                    now_text()
                ],
            )
            .map_err(sql_err(&self.db.path, "begin reconcile"))?;
        Ok(self.db.conn.last_insert_rowid())
    }

    /// Closes a `reconcile_history` row with what the reconciliation found and did.
    ///
    /// # Errors
    /// [`HistoryError::Sql`].
    pub fn finish_reconcile(&mut self, row_id: i64, r: &ReconcileCounts) -> Result<()> {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.db
            .conn
            .execute(
                "UPDATE reconcile_history SET finished_at = ?2, status = ?3, series = ?4, \
                 windows = ?5, differing = ?6, repaired = ?7, rewritten = ?8, deleted = ?9, \
                 extra = ?10, error = ?11, refused = ?12 WHERE id = ?1",
                params![
                    row_id,
                    now_text(),
                    r.status.as_str(),
                    n(r.series),
                    n(r.windows),
                    n(r.differing),
                    n(r.repaired),
                    n(r.rewritten),
                    n(r.deleted),
                    n(r.extra),
                    r.error,
                    n(r.refused)
                ],
            )
            .map_err(sql_err(&self.db.path, "finish reconcile"))?;
        Ok(())
    }

    /// Starts a `restore_history` row; returns its id.
    ///
    /// # Errors
    /// [`HistoryError::Sql`].
    pub fn begin_restore(&mut self, r: &RestoreStart) -> Result<i64> {
        self.db
            .conn
            .execute(
                "INSERT INTO restore_history (run_id, source, target, since, until, overwrite, \
                 dry_run, started_at, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'running')",
                params![
                    r.run_id,
                    r.source,
                    r.target,
                    r.since,
                    r.until,
                    r.overwrite,
                    r.dry_run,
                    now_text()
                ],
            )
            .map_err(sql_err(&self.db.path, "begin restore"))?;
        Ok(self.db.conn.last_insert_rowid())
    }

    /// Closes a `restore_history` row with what the restore did and found.
    ///
    /// # Errors
    /// [`HistoryError::Sql`].
    pub fn finish_restore(&mut self, row_id: i64, r: &RestoreCounts) -> Result<()> {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.db
            .conn
            .execute(
                "UPDATE restore_history SET finished_at = ?2, status = ?3, series = ?4, \
                 equal = ?5, differing = ?6, failed = ?7, written = ?8, kept = ?9, extra = ?10, \
                 error = ?11 WHERE id = ?1",
                params![
                    row_id,
                    now_text(),
                    r.status.as_str(),
                    n(r.series),
                    n(r.equal),
                    n(r.differing),
                    n(r.failed),
                    n(r.written),
                    n(r.kept),
                    n(r.extra),
                    r.error
                ],
            )
            .map_err(sql_err(&self.db.path, "finish restore"))?;
        Ok(())
    }

    /// Records an event (`future`, `reconcile`, …) about a backup·series, or about the run.
    ///
    /// # Errors
    /// [`HistoryError::Sql`].
    pub fn record_event(
        &mut self,
        kind: &str,
        key: Option<&BackupSeries>,
        run_id: Option<i64>,
        detail: &str,
    ) -> Result<()> {
        insert_event(&self.db.conn, &now_text(), run_id, kind, key, detail)
            .map(|_| ())
            .map_err(sql_err(&self.db.path, "record event"))
    }

    /// Closes a sync row with its final status and error, and notes it in `sync_status`.
    ///
    /// # Errors
    /// [`HistoryError::Sql`].
    pub fn finish_unit(
        &mut self,
        row_id: i64,
        key: &BackupSeries,
        status: Status,
        error: Option<&str>,
    ) -> Result<()> {
        self.finish_units(&[UnitFinish {
            row_id,
            key: key.clone(),
            status,
            error: error.map(str::to_string),
        }])
    }

    /// Closes many sync rows in one transaction ([`HistoryWriter::finish_unit`] each).
    ///
    /// # Errors
    /// [`HistoryError::Sql`]; then none was closed.
    pub fn finish_units(&mut self, finished: &[UnitFinish]) -> Result<()> {
        let now = now_text();
        let err = sql_err(&self.db.path, "finish sync");
        let tx = self.db.conn.transaction().map_err(&err)?;
        for f in finished {
            tx.prepare_cached(
                "UPDATE sync_history SET status = ?2, finished_at = ?3, error = ?4 WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    f.row_id,
                    f.status.as_str(),
                    now,
                    f.error.as_deref().map(clip)
                ])
            })
            .map_err(&err)?;
            tx.prepare_cached(
                "INSERT INTO sync_status (backup, symbol, interval, last_sync_time, last_status, last_error, updated_at) \
                 VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6) ON CONFLICT (backup, symbol, interval) DO UPDATE SET \
                 last_status = ?4, last_error = ?5, updated_at = ?6",
            )
            .and_then(|mut s| {
                s.execute(params![
                    f.key.backup,
                    f.key.series.symbol,
                    f.key.series.interval,
                    f.status.as_str(),
                    f.error.as_deref().map(clip),
                    now
                ])
            })
            .map_err(&err)?;
        }
        tx.commit().map_err(&err)
    }

    /// Deletes finished `sync_history` and task-run rows that started more than `age` ago.
    /// `sync_status` is never pruned. An age reaching before the epoch prunes nothing.
    ///
    /// # Errors
    /// [`HistoryError::Sql`].
    pub fn prune_older_than(&mut self, age: chrono::Duration) -> Result<Pruned> {
        let cutoff = crate::prune_cutoff(age);
        let (rows, runs) = self.prune(&time_text(cutoff))?;
        Ok(Pruned { rows, runs, cutoff })
    }

    fn prune(&mut self, cutoff: &str) -> Result<(usize, usize)> {
        let tx = self
            .db
            .conn
            .transaction()
            .map_err(sql_err(&self.db.path, "prune"))?;
        let rows = tx
            .execute(
                "DELETE FROM sync_history WHERE started_at < ?1 AND status != 'running'",
                params![cutoff],
            )
            .map_err(sql_err(&self.db.path, "prune"))?;
        tx.execute(
            "DELETE FROM reconcile_history WHERE started_at < ?1 AND status != 'running'",
            params![cutoff],
        )
        .map_err(sql_err(&self.db.path, "prune"))?;
        tx.execute(
            "DELETE FROM restore_history WHERE started_at < ?1 AND status != 'running'",
            params![cutoff],
        )
        .map_err(sql_err(&self.db.path, "prune"))?;
        tx.execute("DELETE FROM sync_events WHERE at < ?1", params![cutoff])
            .map_err(sql_err(&self.db.path, "prune"))?;
        let runs = tx
            .execute(
                "DELETE FROM task_runs WHERE started_at < ?1 AND status != 'running' \
                 AND NOT EXISTS (SELECT 1 FROM sync_history h WHERE h.run_id = task_runs.id) \
                 AND NOT EXISTS (SELECT 1 FROM reconcile_history r WHERE r.run_id = task_runs.id) \
                 AND NOT EXISTS (SELECT 1 FROM restore_history s WHERE s.run_id = task_runs.id)",
                params![cutoff],
            )
            .map_err(sql_err(&self.db.path, "prune"))?;
        tx.commit().map_err(sql_err(&self.db.path, "prune"))?;
        Ok((rows, runs))
    }
}

/// `PRAGMA quick_check`: refuses a damaged file before anything is written to it.
fn check_integrity(conn: &Connection, path: &Path) -> Result<()> {
    let corrupt = |detail: String| HistoryError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let found: Vec<String> = conn
        .prepare("PRAGMA quick_check(5)")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(|e| corrupt(e.to_string()))?;
    if found.len() == 1 && found[0] == "ok" {
        Ok(())
    } else {
        Err(corrupt(found.join("; ")))
    }
}

/// Device and inode of a file (none off Unix, or when it cannot be read).
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

fn insert_event(
    conn: &Connection,
    at: &str,
    run_id: Option<i64>,
    kind: &str,
    key: Option<&BackupSeries>,
    detail: &str,
) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO sync_events (at, run_id, kind, backup, symbol, interval, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            at,
            run_id,
            kind,
            key.map(|k| &k.backup),
            key.map(|k| &k.series.symbol),
            key.map(|k| &k.series.interval),
            detail
        ],
    )
}
