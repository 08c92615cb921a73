//! Task scopes and daemon facts: which task maintains which (backup, series), as its last
//! run chose (the check loop catches up only those), and when the check loop last finished a
//! pass (the status view's `behind` needs to know whether a catch-up is still coming).

use super::{HistoryReader, HistoryWriter, Result, now_text, sql_err, time_text};
use chrono::{DateTime, Utc};
use dms_core::model::BackupSeries;
use rusqlite::params;

/// `daemon_state` key: when the check loop last finished a pass.
const LAST_CHECK: &str = "last_check_at";

/// One (task, backup, series) a task maintains.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScopeRow {
    /// Task name.
    pub task: String,
    /// Backup and series.
    #[serde(flatten)]
    pub key: BackupSeries,
    /// The task's `initial_days`.
    pub initial_days: u32,
}

impl HistoryWriter {
    /// Records that `task` maintains `keys` with `initial_days`; with `replace`, they become
    /// all it maintains (a run that finished), otherwise they are added (a run that failed
    /// part-way keeps what earlier runs chose).
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn record_scope(
        &mut self,
        task: &str,
        keys: &[BackupSeries],
        initial_days: u32,
        run_id: Option<i64>,
        replace: bool,
    ) -> Result<()> {
        let now = now_text();
        let path = self.db.path.clone();
        let tx = self
            .db
            .conn
            .transaction()
            .map_err(sql_err(&path, "record task scope"))?;
        if replace {
            tx.execute("DELETE FROM task_scope WHERE task = ?1", params![task])
                .map_err(sql_err(&path, "record task scope"))?;
        }
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO task_scope (task, backup, symbol, interval, initial_days, run_id, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (task, backup, symbol, interval) DO UPDATE SET \
                     initial_days = ?5, run_id = ?6, updated_at = ?7",
                )
                .map_err(sql_err(&path, "record task scope"))?;
            for k in keys {
                stmt.execute(params![
                    task,
                    k.backup,
                    k.series.symbol,
                    k.series.interval,
                    initial_days,
                    run_id,
                    now
                ])
                .map_err(sql_err(&path, "record task scope"))?;
            }
        }
        tx.commit().map_err(sql_err(&path, "record task scope"))
    }

    /// Records a run's warning (see [`super::RunRow::warning`]).
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn set_run_warning(&mut self, run_id: i64, warning: &str) -> Result<()> {
        self.db
            .conn
            .execute(
                "UPDATE task_runs SET warning = ?2 WHERE id = ?1",
                params![run_id, dms_core::text::clip(warning)],
            )
            .map(|_| ())
            .map_err(sql_err(&self.db.path, "record run warning"))
    }

    /// Notes that the check loop finished a pass now.
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn record_check(&mut self, at: DateTime<Utc>) -> Result<()> {
        self.set_state(LAST_CHECK, Some(&time_text(at)))
    }
}

impl HistoryWriter {
    /// Sets (or with `None` clears) a value of the daemon's state, such as where a budgeted
    /// reconcile pass stopped.
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn set_state(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        let done = match value {
            Some(v) => self.db.conn.execute(
                "INSERT INTO daemon_state (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = ?2",
                params![key, v],
            ),
            None => self
                .db
                .conn
                .execute("DELETE FROM daemon_state WHERE key = ?1", params![key]),
        };
        done.map(|_| ())
            .map_err(sql_err(&self.db.path, "record daemon state"))
    }
}

impl HistoryReader {
    /// A value of the daemon's state ([`HistoryWriter::set_state`]).
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn state(&self, key: &str) -> Result<Option<String>> {
        if self.version < 3 {
            return Ok(None);
        }
        self.conn
            .query_row(
                "SELECT value FROM daemon_state WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .map_err(sql_err(&self.path, "query daemon state"))
    }

    /// Every recorded (task, backup, series), ordered by task, backup, symbol, interval.
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn scope(&self) -> Result<Vec<ScopeRow>> {
        if self.version < 3 {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT task, backup, symbol, interval, initial_days FROM task_scope \
                 ORDER BY task, backup, symbol, interval",
            )
            .map_err(sql_err(&self.path, "query task scope"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ScopeRow {
                    task: r.get(0)?,
                    key: super::query::key_cols(r, 1)?,
                    initial_days: r.get(4)?,
                })
            })
            .map_err(sql_err(&self.path, "query task scope"))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(sql_err(&self.path, "query task scope"))
    }

    /// When the check loop last finished a pass, if ever.
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn last_check(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(self.state(LAST_CHECK)?.and_then(|t| {
            DateTime::parse_from_rfc3339(&t)
                .ok()
                .map(|d| d.with_timezone(&Utc))
        }))
    }
}
