//! Read-side queries over the history: what `dms history`, `dms status` and the API show.

use super::{HistoryReader, Result, Status};
use chrono::{DateTime, Utc};
use dms_core::model::{BackupSeries, SeriesKey};
use dms_core::model::{Nanos, format_nanos};
use rusqlite::types::Value;
use std::collections::HashMap;

/// Filters for [`HistoryDb::history`]. Every filter is optional; rows come newest first.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// Backup node name.
    pub backup: Option<String>,
    /// Symbol.
    pub symbol: Option<String>,
    /// Interval.
    pub interval: Option<String>,
    /// Row status.
    pub status: Option<Status>,
    /// Rows started at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Rows started before this time.
    pub until: Option<DateTime<Utc>>,
    /// Rows of one task run.
    pub run_id: Option<i64>,
    /// Rows of the runs of one task (or pseudo-task: `@sync`, `@check`, …).
    pub task: Option<String>,
    /// Pagination cursor: rows with an id below this.
    pub before_id: Option<i64>,
    /// Maximum rows; 0 means no limit.
    pub limit: usize,
}

/// One `sync_history` row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryRow {
    /// Row id (the pagination cursor).
    pub id: i64,
    /// Task run id.
    pub run_id: Option<i64>,
    /// Backup and series.
    #[serde(flatten)]
    pub key: BackupSeries,
    /// `incremental` or `full`.
    pub mode: String,
    /// Wall-clock start.
    #[serde(with = "super::wallclock")]
    pub started_at: DateTime<Utc>,
    /// Wall-clock end.
    #[serde(with = "super::wallclock::option")]
    pub finished_at: Option<DateTime<Utc>>,
    /// `running`, `success` or `failed`.
    pub status: Status,
    /// Points copied.
    pub records: i64,
    /// Error, if failed.
    pub error: Option<String>,
    /// Data-time window start (RFC 3339).
    pub window_start: Option<String>,
    /// Data-time window end (RFC 3339).
    pub window_end: Option<String>,
}

/// One `sync_status` row: the checkpoint of a (backup, series).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusRow {
    /// Backup and series.
    #[serde(flatten)]
    pub key: BackupSeries,
    /// Newest point the backup acknowledged (ns), if any.
    pub last_sync_time: Option<Nanos>,
    /// Status of the last sync.
    pub last_status: Option<Status>,
    /// Error of the last sync.
    pub last_error: Option<String>,
    /// When this row last changed.
    #[serde(with = "super::wallclock")]
    pub updated_at: DateTime<Utc>,
}

/// A run with what it synced: `dms sync --json`, `dms task run --json`, `dms run --once
/// --json` and `GET /api/dms/runs/{id}`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunDetail {
    /// The run.
    #[serde(flatten)]
    pub run: RunRow,
    /// Its `sync_history` rows, newest first.
    pub history: Vec<HistoryRow>,
    /// Its restores (a run of `@restore` has one; a task's script may make several), oldest
    /// first; absent when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restores: Vec<RestoreRow>,
}

/// One `task_runs` row, with the totals of its syncs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRow {
    /// Run id.
    pub id: i64,
    /// Task name.
    pub task: String,
    /// What started it.
    pub trigger: String,
    /// Wall-clock start.
    #[serde(with = "super::wallclock")]
    pub started_at: DateTime<Utc>,
    /// Wall-clock end.
    #[serde(with = "super::wallclock::option")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Run status.
    pub status: Status,
    /// Error, if any.
    pub error: Option<String>,
    /// What the run did not do that it was asked to (requested series the primary does not
    /// hold, filters that matched nothing, points outside the schema).
    pub warning: Option<String>,
    /// Wall-clock seconds from start to end (`null` while running).
    pub duration_seconds: Option<f64>,
    /// (backup, series) synced.
    pub syncs: i64,
    /// Of which failed.
    pub failed: i64,
    /// Of which shutdown interrupted (not failures: the next run resumes them).
    pub interrupted: i64,
    /// Points copied (by its syncs, and written by its restores).
    pub records: i64,
}

impl HistoryReader {
    /// Every checkpoint, keyed by (backup, series).
    ///
    /// # Errors
    /// [`HistoryError::Sql`].
    pub fn checkpoints(&self) -> Result<HashMap<BackupSeries, Nanos>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT backup, symbol, interval, last_sync_time FROM sync_status WHERE last_sync_time IS NOT NULL",
            )
            .map_err(super::sql_err(&self.path, "read checkpoints"))?;
        let rows = stmt
            .query_map([], |r| Ok((key_cols(r, 0)?, r.get::<_, i64>(3)?)))
            .map_err(super::sql_err(&self.path, "read checkpoints"))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(super::sql_err(&self.path, "read checkpoints"))
    }

    /// What [`crate::HistoryWriter::prune_older_than`] would delete for `age`, counted without
    /// writing (a reader works while the daemon holds the writer lock): the same rows and
    /// runs — a run goes only when every row of it goes.
    ///
    /// # Errors
    /// [`HistoryError::Sql`].
    pub fn prunable(&self, age: chrono::Duration) -> Result<crate::Pruned> {
        let cutoff = crate::prune_cutoff(age);
        let at = crate::time_text(cutoff);
        let what = "count the rows a prune would delete";
        let count = |sql: &str| -> Result<usize> {
            self.conn
                .query_row(sql, [&at], |r| r.get::<_, i64>(0))
                .map(|n| usize::try_from(n).unwrap_or(0))
                .map_err(super::sql_err(&self.path, what))
        };
        let rows = count(
            "SELECT count(*) FROM sync_history WHERE started_at < ?1 AND status != 'running'",
        )?;
        let runs = count(
            "SELECT count(*) FROM task_runs t WHERE started_at < ?1 AND status != 'running' \
             AND NOT EXISTS (SELECT 1 FROM sync_history h WHERE h.run_id = t.id \
                 AND NOT (h.started_at < ?1 AND h.status != 'running')) \
             AND NOT EXISTS (SELECT 1 FROM reconcile_history r WHERE r.run_id = t.id \
                 AND NOT (r.started_at < ?1 AND r.status != 'running')) \
             AND NOT EXISTS (SELECT 1 FROM restore_history s WHERE s.run_id = t.id \
                 AND NOT (s.started_at < ?1 AND s.status != 'running'))",
        )?;
        Ok(crate::Pruned { rows, runs, cutoff })
    }

    /// Every (symbol, interval) the history has a row or a checkpoint for: what a name filter
    /// of `dms history` can match.
    ///
    /// # Errors
    /// [`HistoryError::Sql`].
    pub fn series_names(&self) -> Result<Vec<dms_core::model::SeriesKey>> {
        let what = "read the series names";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT symbol, interval FROM sync_status                  UNION SELECT DISTINCT symbol, interval FROM sync_history",
            )
            .map_err(super::sql_err(&self.path, what))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(dms_core::model::SeriesKey::new(
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                ))
            })
            .map_err(super::sql_err(&self.path, what))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(super::sql_err(&self.path, what))
    }

    /// `sync_history` rows matching `f`, newest first.
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn history(&self, f: &HistoryFilter) -> Result<Vec<HistoryRow>> {
        let mut sql = String::from(
            "SELECT id, run_id, backup, symbol, interval, mode, started_at, finished_at, status, \
             records, error, window_start, window_end FROM sync_history WHERE 1=1",
        );
        let mut args: Vec<Value> = Vec::new();
        let mut add = |clause: &str, v: Value| {
            args.push(v);
            sql.push_str(&format!(" AND {clause} ?{}", args.len()));
        };
        if let Some(v) = &f.backup {
            add("backup =", Value::Text(v.clone()));
        }
        if let Some(v) = &f.symbol {
            add("symbol =", Value::Text(v.clone()));
        }
        if let Some(v) = &f.interval {
            add("interval =", Value::Text(v.clone()));
        }
        if let Some(v) = f.status {
            add("status =", Value::Text(v.as_str().into()));
        }
        if let Some(v) = f.since {
            add("started_at >=", Value::Text(super::time_text(v)));
        }
        if let Some(v) = f.until {
            add("started_at <", Value::Text(super::time_text(v)));
        }
        if let Some(v) = f.run_id {
            add("run_id =", Value::Integer(v));
        }
        if let Some(v) = f.before_id {
            add("id <", Value::Integer(v));
        }
        // Last: its sub-select is closed right after.
        if let Some(v) = &f.task {
            add(
                "run_id IN (SELECT id FROM task_runs WHERE task =",
                Value::Text(v.clone()),
            );
        }
        if f.task.is_some() {
            // Closes the sub-select opened by the task filter.
            sql.push(')');
        }
        sql.push_str(" ORDER BY id DESC");
        if f.limit > 0 {
            sql.push_str(&format!(" LIMIT {}", f.limit));
        }
        let mut stmt = self
            .conn
            .prepare(&sql)
            .map_err(super::sql_err(&self.path, "query history"))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok(HistoryRow {
                    id: r.get(0)?,
                    run_id: r.get(1)?,
                    key: key_cols(r, 2)?,
                    mode: r.get(5)?,
                    started_at: time_col(r, 6)?,
                    finished_at: opt_time_col(r, 7)?,
                    status: status_col(r, 8)?,
                    records: r.get(9)?,
                    error: r.get(10)?,
                    window_start: r.get::<_, Option<i64>>(11)?.map(format_nanos),
                    window_end: r.get::<_, Option<i64>>(12)?.map(format_nanos),
                })
            })
            .map_err(super::sql_err(&self.path, "query history"))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(super::sql_err(&self.path, "query history"))
    }

    /// Every `sync_status` row, ordered by backup, symbol, interval.
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn status_rows(&self) -> Result<Vec<StatusRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT backup, symbol, interval, last_sync_time, last_status, last_error, updated_at \
                 FROM sync_status ORDER BY backup, symbol, interval",
            )
            .map_err(super::sql_err(&self.path, "query status"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(StatusRow {
                    key: key_cols(r, 0)?,
                    last_sync_time: r.get(3)?,
                    last_status: r
                        .get::<_, Option<String>>(4)?
                        .map(|t| parse_status(4, &t))
                        .transpose()?,
                    last_error: r.get(5)?,
                    updated_at: time_col(r, 6)?,
                })
            })
            .map_err(super::sql_err(&self.path, "query status"))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(super::sql_err(&self.path, "query status"))
    }

    /// Task runs, newest first, optionally of one task; `limit` 0 means all.
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn runs(&self, task: Option<&str>, limit: usize) -> Result<Vec<RunRow>> {
        self.runs_before(task, None, limit)
    }

    /// [`HistoryReader::runs`] with ids below `before` (the API's pagination cursor).
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn runs_before(
        &self,
        task: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<RunRow>> {
        let limit =
            i64::try_from(if limit == 0 { usize::MAX >> 1 } else { limit }).unwrap_or(i64::MAX);
        let sql = format!(
            "{} WHERE (?1 IS NULL OR r.task = ?1) AND (?2 IS NULL OR r.id < ?2) GROUP BY r.id \
             ORDER BY r.id DESC LIMIT ?3",
            self.run_select()
        );
        let mut stmt = self
            .conn
            .prepare(&sql)
            .map_err(super::sql_err(&self.path, "query runs"))?;
        let rows = stmt
            .query_map(rusqlite::params![task, before, limit], run_row)
            .map_err(super::sql_err(&self.path, "query runs"))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(super::sql_err(&self.path, "query runs"))
    }

    /// One task run.
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn run(&self, id: i64) -> Result<Option<RunRow>> {
        use rusqlite::OptionalExtension;
        let sql = format!("{} WHERE r.id = ?1 GROUP BY r.id", self.run_select());
        self.conn
            .query_row(&sql, [id], run_row)
            .optional()
            .map_err(super::sql_err(&self.path, "query run"))
    }

    /// One task run with its `sync_history` rows (newest first).
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn run_detail(&self, id: i64) -> Result<Option<RunDetail>> {
        let Some(run) = self.run(id)? else {
            return Ok(None);
        };
        let history = self.history(&HistoryFilter {
            run_id: Some(id),
            ..HistoryFilter::default()
        })?;
        let restores = self.restores(Some(id), 0)?;
        Ok(Some(RunDetail {
            run,
            history,
            restores,
        }))
    }

    /// The latest run of each task.
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn last_runs(&self) -> Result<Vec<RunRow>> {
        let sql = format!(
            "{} WHERE r.id IN (SELECT max(id) FROM task_runs GROUP BY task) GROUP BY r.id \
             ORDER BY r.task",
            self.run_select()
        );
        let mut stmt = self
            .conn
            .prepare(&sql)
            .map_err(super::sql_err(&self.path, "query runs"))?;
        let rows = stmt
            .query_map([], run_row)
            .map_err(super::sql_err(&self.path, "query runs"))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(super::sql_err(&self.path, "query runs"))
    }
}

impl HistoryReader {
    /// The columns [`run_row`] reads: a run (`task_runs r`) with its syncs' totals (its
    /// records count the points its restores wrote too); the
    /// caller adds `WHERE`, `GROUP BY r.id` and the order. `task_runs.warning` reads `NULL`
    /// in a file from before schema version 3.
    fn run_select(&self) -> String {
        format!(
            "SELECT r.id, r.task, r.trigger, r.started_at, r.finished_at, r.status, r.error, {}, \
             count(h.id), coalesce(sum(h.status = 'failed'), 0), \
             coalesce(sum(h.status = 'interrupted'), 0), coalesce(sum(h.records), 0){} \
             FROM task_runs r LEFT JOIN sync_history h ON h.run_id = r.id",
            if self.version >= 3 {
                "r.warning"
            } else {
                "NULL"
            },
            if self.version >= 5 {
                " + (SELECT coalesce(sum(s.written), 0) FROM restore_history s \
                 WHERE s.run_id = r.id AND NOT s.dry_run)"
            } else {
                ""
            }
        )
    }
}

/// (backup, symbol, interval) from three columns starting at `col`.
pub(super) fn key_cols(r: &rusqlite::Row<'_>, col: usize) -> rusqlite::Result<BackupSeries> {
    Ok(BackupSeries::new(
        r.get::<_, String>(col)?,
        SeriesKey::new(r.get::<_, String>(col + 1)?, r.get::<_, String>(col + 2)?),
    ))
}

fn conversion(col: usize, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e))
}

fn parse_time_text(col: usize, t: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| conversion(col, e))
}

fn time_col(r: &rusqlite::Row<'_>, col: usize) -> rusqlite::Result<DateTime<Utc>> {
    parse_time_text(col, &r.get::<_, String>(col)?)
}

pub(super) fn opt_time_col(
    r: &rusqlite::Row<'_>,
    col: usize,
) -> rusqlite::Result<Option<DateTime<Utc>>> {
    r.get::<_, Option<String>>(col)?
        .map(|t| parse_time_text(col, &t))
        .transpose()
}

/// A stored status name that this build does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown status {0:?} in the history")]
struct UnknownStatus(String);

fn parse_status(col: usize, t: &str) -> rusqlite::Result<Status> {
    Status::parse(t).ok_or_else(|| conversion(col, UnknownStatus(t.to_string())))
}

pub(super) fn status_col(r: &rusqlite::Row<'_>, col: usize) -> rusqlite::Result<Status> {
    parse_status(col, &r.get::<_, String>(col)?)
}

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        task: r.get(1)?,
        trigger: r.get(2)?,
        started_at: time_col(r, 3)?,
        finished_at: opt_time_col(r, 4)?,
        status: status_col(r, 5)?,
        error: r.get(6)?,
        warning: r.get(7)?,
        duration_seconds: None,
        syncs: r.get(8)?,
        failed: r.get(9)?,
        interrupted: r.get(10)?,
        records: r.get(11)?,
    }
    .with_duration())
}

impl RunRow {
    /// Fills `duration_seconds` from the start and end.
    fn with_duration(mut self) -> Self {
        self.duration_seconds = self
            .finished_at
            .map(|f| (f - self.started_at).num_milliseconds() as f64 / 1000.0);
        self
    }
}

/// Sync figures of one backup over a time window.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupMetrics {
    /// Backup node.
    pub backup: String,
    /// Syncs that ended by themselves: succeeded or failed (interrupted ones are not
    /// counted here).
    pub syncs: i64,
    /// Of which succeeded.
    pub successes: i64,
    /// Of which failed.
    pub failures: i64,
    /// Syncs shutdown interrupted: neither a success nor a failure, so outside the rate.
    pub interrupted: i64,
    /// successes / syncs (1 when there were none).
    pub success_rate: f64,
    /// Mean wall time of a sync that ended by itself, in seconds.
    pub avg_duration_seconds: Option<f64>,
    /// Points copied.
    pub records: i64,
}

impl HistoryReader {
    /// Per-backup figures for syncs started at or after `since`. Interrupted syncs are
    /// counted apart and left out of `syncs`, the success rate and the mean duration.
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn metrics(&self, since: DateTime<Utc>) -> Result<Vec<BackupMetrics>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT backup, coalesce(sum(status IN ('success', 'failed')), 0), \
                 coalesce(sum(status = 'success'), 0), coalesce(sum(status = 'failed'), 0), \
                 avg(CASE WHEN status IN ('success', 'failed') \
                     THEN (julianday(finished_at) - julianday(started_at)) * 86400.0 END), \
                 coalesce(sum(records), 0), coalesce(sum(status = 'interrupted'), 0) \
                 FROM sync_history WHERE started_at >= ?1 AND status != 'running' \
                 GROUP BY backup ORDER BY backup",
            )
            .map_err(super::sql_err(&self.path, "query metrics"))?;
        let rows = stmt
            .query_map([super::time_text(since)], |r| {
                let syncs: i64 = r.get(1)?;
                let successes: i64 = r.get(2)?;
                Ok(BackupMetrics {
                    backup: r.get(0)?,
                    syncs,
                    successes,
                    failures: r.get(3)?,
                    interrupted: r.get(6)?,
                    success_rate: if syncs == 0 {
                        1.0
                    } else {
                        successes as f64 / syncs as f64
                    },
                    avg_duration_seconds: r.get(4)?,
                    records: r.get(5)?,
                })
            })
            .map_err(super::sql_err(&self.path, "query metrics"))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(super::sql_err(&self.path, "query metrics"))
    }
}

/// What one backup did in one wall-clock hour (UTC): the status page's throughput chart.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HourlyThroughput {
    /// Backup node.
    pub backup: String,
    /// The hour the syncs started in, `YYYY-MM-DDTHH` (UTC).
    pub hour: String,
    /// Points copied by syncs that started in that hour.
    pub records: i64,
    /// Syncs that started in that hour and failed.
    pub failures: i64,
}

impl HistoryReader {
    /// Records copied and failed syncs per backup and hour, for syncs started at or after
    /// `since`, oldest hour first. Hours without syncs are absent.
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn hourly_throughput(&self, since: DateTime<Utc>) -> Result<Vec<HourlyThroughput>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT backup, substr(started_at, 1, 13) AS hour, coalesce(sum(records), 0), \
                 coalesce(sum(status = 'failed'), 0) \
                 FROM sync_history WHERE started_at >= ?1 \
                 GROUP BY backup, hour ORDER BY backup, hour",
            )
            .map_err(super::sql_err(&self.path, "query throughput"))?;
        let rows = stmt
            .query_map([super::time_text(since)], |r| {
                Ok(HourlyThroughput {
                    backup: r.get(0)?,
                    hour: r.get(1)?,
                    records: r.get(2)?,
                    failures: r.get(3)?,
                })
            })
            .map_err(super::sql_err(&self.path, "query throughput"))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(super::sql_err(&self.path, "query throughput"))
    }
}

/// One `reconcile_history` row: one backup in one reconcile run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReconcileRow {
    /// Row id.
    pub id: i64,
    /// Task run id.
    pub run_id: Option<i64>,
    /// Backup node.
    pub backup: String,
    /// `full` or `cheap+full`.
    pub depth: String,
    /// Range start (RFC 3339).
    pub range_start: String,
    /// Range end (RFC 3339).
    pub range_end: String,
    /// Wall-clock start.
    #[serde(with = "super::wallclock")]
    pub started_at: DateTime<Utc>,
    /// Wall-clock end.
    #[serde(with = "super::wallclock::option")]
    pub finished_at: Option<DateTime<Utc>>,
    /// What it found and did.
    #[serde(flatten)]
    pub counts: super::ReconcileCounts,
}

/// One `restore_history` row: one restore, what it did and what its final exact comparison
/// found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreRow {
    /// Row id.
    pub id: i64,
    /// Task run id.
    pub run_id: Option<i64>,
    /// The backup copied from.
    pub source: String,
    /// The node copied into.
    pub target: String,
    /// Start of the range asked for (RFC 3339; `null`: from the source's oldest point).
    pub since: Option<String>,
    /// End of the range asked for (RFC 3339; `null`: to the source's newest point).
    pub until: Option<String>,
    /// Whether the source's points replaced different ones on the target.
    pub overwrite: bool,
    /// Whether nothing was written (the counts say what would have been).
    pub dry_run: bool,
    /// Wall-clock start.
    #[serde(with = "super::wallclock")]
    pub started_at: DateTime<Utc>,
    /// Wall-clock end.
    #[serde(with = "super::wallclock::option")]
    pub finished_at: Option<DateTime<Utc>>,
    /// What it did and found.
    #[serde(flatten)]
    pub counts: super::RestoreCounts,
}

/// One `sync_events` row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EventRow {
    /// Row id.
    pub id: i64,
    /// When.
    #[serde(with = "super::wallclock")]
    pub at: DateTime<Utc>,
    /// Task run id.
    pub run_id: Option<i64>,
    /// `rewound`, …
    pub kind: String,
    /// Backup, when about one.
    pub backup: Option<String>,
    /// Symbol, when about one series.
    pub symbol: Option<String>,
    /// Interval, when about one series.
    pub interval: Option<String>,
    /// What happened.
    pub detail: String,
}

impl HistoryReader {
    /// Reconcile rows, newest first, optionally of one backup; only the latest per backup
    /// with `latest_only`.
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn reconciles(&self, latest_only: bool, limit: usize) -> Result<Vec<ReconcileRow>> {
        let filter = if latest_only {
            "WHERE id IN (SELECT max(id) FROM reconcile_history GROUP BY backup)"
        } else {
            ""
        };
        self.reconciles_where(filter, limit)
    }

    /// The last finished reconcile of each backup by kind, newest first: one compared by
    /// digests (`full`, `cheap+full`) and one read exactly (`exact`: the scrub, `--exact`).
    /// What the Prometheus gauges of the last reconcile and scrub show.
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn last_reconciles_by_kind(&self) -> Result<Vec<ReconcileRow>> {
        self.reconciles_where(
            "WHERE id IN (SELECT max(id) FROM reconcile_history WHERE finished_at IS NOT NULL \
             GROUP BY backup, depth = 'exact')",
            0,
        )
    }

    fn reconciles_where(&self, filter: &str, limit: usize) -> Result<Vec<ReconcileRow>> {
        if self.version < 2 {
            return Ok(Vec::new());
        }
        let limit =
            i64::try_from(if limit == 0 { usize::MAX >> 1 } else { limit }).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT id, run_id, backup, depth, range_start, range_end, started_at, finished_at, \
             status, series, windows, differing, repaired, rewritten, deleted, extra, error, \
             {refused} FROM reconcile_history {filter} ORDER BY id DESC LIMIT ?1",
            refused = if self.version >= 4 { "refused" } else { "0" }
        );
        let mut stmt = self
            .conn
            .prepare(&sql)
            .map_err(super::sql_err(&self.path, "query reconciles"))?;
        let n = |r: &rusqlite::Row<'_>, i: usize| -> rusqlite::Result<u64> {
            Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0))
        };
        let rows = stmt
            .query_map([limit], |r| {
                Ok(ReconcileRow {
                    id: r.get(0)?,
                    run_id: r.get(1)?,
                    backup: r.get(2)?,
                    depth: r.get(3)?,
                    range_start: format_nanos(r.get(4)?),
                    range_end: format_nanos(r.get(5)?),
                    started_at: time_col(r, 6)?,
                    finished_at: opt_time_col(r, 7)?,
                    counts: super::ReconcileCounts {
                        status: status_col(r, 8)?,
                        series: n(r, 9)?,
                        windows: n(r, 10)?,
                        differing: n(r, 11)?,
                        repaired: n(r, 12)?,
                        rewritten: n(r, 13)?,
                        deleted: n(r, 14)?,
                        extra: n(r, 15)?,
                        error: r.get(16)?,
                        refused: n(r, 17)?,
                    },
                })
            })
            .map_err(super::sql_err(&self.path, "query reconciles"))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(super::sql_err(&self.path, "query reconciles"))
    }

    /// Restore rows: of one task run, oldest first; or of every run, newest first. `limit` 0
    /// means all.
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn restores(&self, run_id: Option<i64>, limit: usize) -> Result<Vec<RestoreRow>> {
        if self.version < 5 {
            return Ok(Vec::new());
        }
        let limit =
            i64::try_from(if limit == 0 { usize::MAX >> 1 } else { limit }).unwrap_or(i64::MAX);
        let order = if run_id.is_some() { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT id, run_id, source, target, since, until, overwrite, dry_run, started_at, \
             finished_at, status, series, equal, differing, failed, written, kept, extra, error \
             FROM restore_history WHERE (?1 IS NULL OR run_id = ?1) ORDER BY id {order} LIMIT ?2"
        );
        let mut stmt = self
            .conn
            .prepare(&sql)
            .map_err(super::sql_err(&self.path, "query restores"))?;
        let n = |r: &rusqlite::Row<'_>, i: usize| -> rusqlite::Result<u64> {
            Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0))
        };
        let rows = stmt
            .query_map(rusqlite::params![run_id, limit], |r| {
                Ok(RestoreRow {
                    id: r.get(0)?,
                    run_id: r.get(1)?,
                    source: r.get(2)?,
                    target: r.get(3)?,
                    since: r.get::<_, Option<Nanos>>(4)?.map(format_nanos),
                    until: r.get::<_, Option<Nanos>>(5)?.map(format_nanos),
                    overwrite: r.get(6)?,
                    dry_run: r.get(7)?,
                    started_at: time_col(r, 8)?,
                    finished_at: opt_time_col(r, 9)?,
                    counts: super::RestoreCounts {
                        status: status_col(r, 10)?,
                        series: n(r, 11)?,
                        equal: n(r, 12)?,
                        differing: n(r, 13)?,
                        failed: n(r, 14)?,
                        written: n(r, 15)?,
                        kept: n(r, 16)?,
                        extra: n(r, 17)?,
                        error: r.get(18)?,
                    },
                })
            })
            .map_err(super::sql_err(&self.path, "query restores"))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(super::sql_err(&self.path, "query restores"))
    }

    /// Recorded events, newest first.
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn events(&self, limit: usize) -> Result<Vec<EventRow>> {
        if self.version < 2 {
            return Ok(Vec::new());
        }
        let limit =
            i64::try_from(if limit == 0 { usize::MAX >> 1 } else { limit }).unwrap_or(i64::MAX);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, at, run_id, kind, backup, symbol, interval, detail FROM sync_events \
                 ORDER BY id DESC LIMIT ?1",
            )
            .map_err(super::sql_err(&self.path, "query events"))?;
        let rows = stmt
            .query_map([limit], |r| {
                Ok(EventRow {
                    id: r.get(0)?,
                    at: time_col(r, 1)?,
                    run_id: r.get(2)?,
                    kind: r.get(3)?,
                    backup: r.get(4)?,
                    symbol: r.get(5)?,
                    interval: r.get(6)?,
                    detail: r.get(7)?,
                })
            })
            .map_err(super::sql_err(&self.path, "query events"))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(super::sql_err(&self.path, "query events"))
    }
}
