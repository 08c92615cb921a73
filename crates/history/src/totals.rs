//! The running totals behind the daemon's Prometheus counters (schema version 3): what every
//! sync and task run this file recorded adds up to. Triggers keep them in the same transaction
//! as the rows they count, and retention never prunes them, so they only grow — a counter read
//! from them goes on across daemon restarts instead of starting again at zero.

use super::query::{opt_time_col, status_col};
use super::{HistoryReader, Result, Status};
use chrono::{DateTime, Utc};

/// Syncs of one backup that ended with one status.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncTotal {
    /// Backup node.
    pub backup: String,
    /// `success` or `failed`.
    pub status: Status,
    /// How many.
    pub syncs: u64,
}

/// Timed syncs of one backup in one duration bucket (not cumulative).
#[derive(Debug, Clone, PartialEq)]
pub struct DurationTotal {
    /// Backup node.
    pub backup: String,
    /// The bucket's upper bound in seconds, as text: one of [`super::DURATION_BOUNDS`] or
    /// `+Inf`.
    pub le: String,
    /// Syncs whose duration fell in the bucket.
    pub syncs: u64,
    /// Their summed duration, seconds.
    pub seconds: f64,
}

/// Task runs of one task, trigger and final status.
#[derive(Debug, Clone, PartialEq)]
pub struct RunTotal {
    /// Task name (`@check`, `@reconcile` for the daemon's own runs).
    pub task: String,
    /// What started them (`cron`, `api`, …).
    pub trigger: String,
    /// How they ended.
    pub status: Status,
    /// How many.
    pub runs: u64,
    /// When the last of them finished.
    pub last_finished_at: Option<DateTime<Utc>>,
}

/// Everything the history counted, ordered by its keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// Finished syncs per backup and status.
    pub syncs: Vec<SyncTotal>,
    /// Points acknowledged per backup.
    pub records: Vec<(String, u64)>,
    /// Sync durations per backup and bucket.
    pub durations: Vec<DurationTotal>,
    /// Finished task runs per task, trigger and status.
    pub runs: Vec<RunTotal>,
}

fn count(r: &rusqlite::Row<'_>, col: usize) -> rusqlite::Result<u64> {
    // Counts only grow from zero; a negative one cannot be stored by the triggers.
    Ok(u64::try_from(r.get::<_, i64>(col)?).unwrap_or(0))
}

impl HistoryReader {
    /// The running totals; `None` for a file older than schema version 3 that no writer
    /// has migrated yet.
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn totals(&self) -> Result<Option<Totals>> {
        if self.version < 3 {
            return Ok(None);
        }
        let err = || super::sql_err(&self.path, "query totals");
        let syncs = self
            .conn
            .prepare("SELECT backup, status, syncs FROM sync_totals ORDER BY backup, status")
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok(SyncTotal {
                        backup: r.get(0)?,
                        status: status_col(r, 1)?,
                        syncs: count(r, 2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(err())?;
        let records = self
            .conn
            .prepare("SELECT backup, records FROM record_totals ORDER BY backup")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, count(r, 1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(err())?;
        let durations = self
            .conn
            .prepare(
                "SELECT backup, le, syncs, seconds FROM sync_duration_totals ORDER BY backup, le",
            )
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok(DurationTotal {
                        backup: r.get(0)?,
                        le: r.get(1)?,
                        syncs: count(r, 2)?,
                        seconds: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(err())?;
        let runs = self
            .conn
            .prepare(
                "SELECT task, trigger, status, runs, last_finished_at FROM task_run_totals \
                 ORDER BY task, trigger, status",
            )
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok(RunTotal {
                        task: r.get(0)?,
                        trigger: r.get(1)?,
                        status: status_col(r, 2)?,
                        runs: count(r, 3)?,
                        last_finished_at: opt_time_col(r, 4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(err())?;
        Ok(Some(Totals {
            syncs,
            records,
            durations,
            runs,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Commit, HistoryWriter, UnitStart};
    use dms_core::model::{BackupSeries, SeriesKey};
    use std::time::Duration;

    fn writer(dir: &tempfile::TempDir) -> HistoryWriter {
        HistoryWriter::open(&dir.path().join("h.db"), "test", Duration::from_secs(5)).unwrap()
    }

    fn key(backup: &str) -> BackupSeries {
        BackupSeries::new(backup, SeriesKey::new("US.AAPL", "1m"))
    }

    /// One unit of `run` on `backup` acknowledging `batches` batches of 10 points, ended
    /// with `status`.
    fn unit(db: &mut HistoryWriter, run: i64, backup: &str, batches: u64, status: Status) {
        let row = db
            .begin_unit(&UnitStart {
                run_id: Some(run),
                key: key(backup),
                mode: crate::SyncMode::Incremental,
                window_start: 0,
                window_end: 1,
            })
            .unwrap();
        for _ in 0..batches {
            db.commit_batch(&Commit {
                row_id: row,
                key: key(backup),
                records: 10,
                checkpoint: Some(1),
                update: crate::CheckpointUpdate::Advance,
                synced_from: None,
            })
            .unwrap();
        }
        if status != Status::Running {
            db.finish_unit(row, &key(backup), status, None).unwrap();
        }
    }

    #[test]
    fn every_finished_sync_and_run_is_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = writer(&dir);
        assert_eq!(db.totals().unwrap(), Some(Totals::default()));

        let run = db.start_run("daily", crate::Trigger::Cron).unwrap();
        unit(&mut db, run, "b1", 3, Status::Success);
        unit(&mut db, run, "b1", 1, Status::Failed);
        unit(&mut db, run, "b2", 2, Status::Success);
        // Still running: its acknowledged points count, the sync does not yet.
        unit(&mut db, run, "b2", 1, Status::Running);
        let t = db.totals().unwrap().unwrap();
        assert_eq!(t.records, [("b1".to_string(), 40), ("b2".to_string(), 30)]);
        let syncs: Vec<(&str, Status, u64)> = t
            .syncs
            .iter()
            .map(|s| (s.backup.as_str(), s.status, s.syncs))
            .collect();
        assert_eq!(
            syncs,
            [
                ("b1", Status::Failed, 1),
                ("b1", Status::Success, 1),
                ("b2", Status::Success, 1)
            ]
        );
        // The three finished syncs are timed (each took well under a minute).
        let timed: u64 = t.durations.iter().map(|d| d.syncs).sum();
        assert_eq!(timed, 3);
        let seconds: f64 = t.durations.iter().map(|d| d.seconds).sum();
        assert!((0.0..60.0).contains(&seconds), "{t:?}");
        assert!(t.runs.is_empty(), "the run is still going");

        // Ending the run closes the running sync as failed; it is counted, not timed (the
        // run's own error would be its cause, "interrupted" when there is none).
        db.finish_run(run, Status::Failed, None).unwrap();
        db.record_skipped_run("daily", crate::Trigger::Cron, "still running")
            .unwrap();
        let t = db.totals().unwrap().unwrap();
        assert_eq!(
            t.syncs
                .iter()
                .find(|s| s.backup == "b2" && s.status == Status::Failed)
                .map(|s| s.syncs),
            Some(1)
        );
        assert_eq!(t.durations.iter().map(|d| d.syncs).sum::<u64>(), 3);
        let runs: Vec<(&str, &str, Status, u64)> = t
            .runs
            .iter()
            .map(|r| (r.task.as_str(), r.trigger.as_str(), r.status, r.runs))
            .collect();
        assert_eq!(
            runs,
            [
                ("daily", "cron", Status::Failed, 1),
                ("daily", "cron", Status::Skipped, 1)
            ]
        );
        assert!(t.runs.iter().all(|r| r.last_finished_at.is_some()));
    }

    #[test]
    fn totals_survive_retention_and_a_reopened_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = writer(&dir);
        let run = db.start_run("daily", crate::Trigger::Api).unwrap();
        unit(&mut db, run, "b1", 2, Status::Success);
        db.finish_run(run, Status::Success, None).unwrap();
        let before = db.totals().unwrap().unwrap();

        // A cutoff a second ahead: retention deletes every row.
        let pruned = db.prune_older_than(chrono::Duration::seconds(-1)).unwrap();
        assert_eq!((pruned.rows, pruned.runs), (1, 1));
        assert!(db.runs(None, 0).unwrap().is_empty());
        assert_eq!(db.totals().unwrap().unwrap(), before);

        // A crash leaves a sync running; the next writer marks it failed and counts it.
        let run = db.start_run("daily", crate::Trigger::Api).unwrap();
        unit(&mut db, run, "b1", 1, Status::Running);
        drop(db);
        let mut db = writer(&dir);
        db.repair_interrupted().unwrap();
        let after = db.totals().unwrap().unwrap();
        assert_eq!(after.records, [("b1".to_string(), 30)]);
        let failed = after
            .syncs
            .iter()
            .find(|s| s.status == Status::Failed)
            .map(|s| s.syncs);
        assert_eq!(failed, Some(1));
        // Not timed: its "duration" would be the downtime.
        assert_eq!(after.durations, before.durations);
        assert!(
            after
                .runs
                .iter()
                .any(|r| r.status == Status::Interrupted && r.runs == 1)
        );
    }

    #[test]
    fn interrupted_syncs_are_counted_apart_and_never_as_failures() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = writer(&dir);
        let run = db.start_run("@sync", crate::Trigger::Manual).unwrap();
        unit(&mut db, run, "b1", 2, Status::Success);
        let row = db
            .begin_unit(&UnitStart {
                run_id: Some(run),
                key: key("b1"),
                mode: crate::SyncMode::Incremental,
                window_start: 0,
                window_end: 1,
            })
            .unwrap();
        db.finish_unit(
            row,
            &key("b1"),
            Status::Interrupted,
            Some(crate::UNIT_INTERRUPTED),
        )
        .unwrap();
        // A unit still running when the run ends interrupted is closed interrupted too.
        unit(&mut db, run, "b2", 1, Status::Running);
        db.finish_run(run, Status::Interrupted, Some("interrupted by shutdown"))
            .unwrap();

        let t = db.totals().unwrap().unwrap();
        let syncs: Vec<(&str, Status, u64)> = t
            .syncs
            .iter()
            .map(|s| (s.backup.as_str(), s.status, s.syncs))
            .collect();
        assert_eq!(
            syncs,
            [
                ("b1", Status::Interrupted, 1),
                ("b1", Status::Success, 1),
                ("b2", Status::Interrupted, 1)
            ]
        );
        // Only the sync that ended by itself is timed.
        assert_eq!(t.durations.iter().map(|d| d.syncs).sum::<u64>(), 1);

        let m = db.metrics(Utc::now() - chrono::Duration::hours(1)).unwrap();
        let figures: Vec<(&str, i64, i64, i64, i64, f64)> = m
            .iter()
            .map(|b| {
                let f = (b.syncs, b.successes, b.failures, b.interrupted);
                (b.backup.as_str(), f.0, f.1, f.2, f.3, b.success_rate)
            })
            .collect();
        assert_eq!(
            figures,
            [("b1", 1, 1, 0, 1, 1.0), ("b2", 0, 0, 0, 1, 1.0)],
            "interrupted syncs are outside the rate"
        );
        let runs = db.runs(Some("@sync"), 0).unwrap();
        assert_eq!(runs[0].status, Status::Interrupted);
        assert_eq!(
            (runs[0].syncs, runs[0].failed, runs[0].interrupted),
            (3, 0, 2)
        );
    }

    #[test]
    fn a_stopping_daemon_marks_what_is_still_running_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = writer(&dir);
        let run = db.start_run("daily", crate::Trigger::Cron).unwrap();
        unit(&mut db, run, "b1", 1, Status::Running);
        unit(&mut db, run, "b2", 1, Status::Success);
        assert_eq!(db.interrupt_running().unwrap(), (1, 1));
        let t = db.totals().unwrap().unwrap();
        assert!(t.syncs.iter().all(|s| s.status != Status::Failed), "{t:?}");
        assert_eq!(
            db.runs(None, 0).unwrap()[0].status,
            Status::Interrupted,
            "the run"
        );
        assert_eq!(db.interrupt_running().unwrap(), (0, 0), "nothing left");
    }

    #[test]
    fn durations_fall_into_their_buckets() {
        let dir = tempfile::tempdir().unwrap();
        let db = writer(&dir);
        // Rows with set start and end times, through the same trigger.
        for (secs, backup) in [
            (0.2, "b"),
            (0.5, "b"),
            (7.0, "b"),
            (4000.0, "b"),
            (-3.0, "c"),
        ] {
            let start = "2026-01-05T10:00:00.000Z";
            let end = chrono::DateTime::parse_from_rfc3339(start).unwrap()
                + chrono::Duration::milliseconds((secs * 1000.0) as i64);
            let end = crate::time_text(end.with_timezone(&Utc));
            db.conn
                .execute(
                    "INSERT INTO sync_history (backup, symbol, interval, mode, started_at, status) \
                     VALUES (?1, 's', '1m', 'incremental', ?2, 'running')",
                    rusqlite::params![backup, start],
                )
                .unwrap();
            db.conn
                .execute(
                    "UPDATE sync_history SET status = 'success', finished_at = ?1 \
                     WHERE id = last_insert_rowid()",
                    [end],
                )
                .unwrap();
        }
        let t = db.totals().unwrap().unwrap();
        let got: Vec<(&str, &str, u64)> = t
            .durations
            .iter()
            .map(|d| (d.backup.as_str(), d.le.as_str(), d.syncs))
            .collect();
        assert_eq!(
            got,
            [
                ("b", "+Inf", 1),
                ("b", "0.5", 2),
                ("b", "15", 1),
                ("c", "0.01", 1)
            ]
        );
        let sum: f64 = t
            .durations
            .iter()
            .filter(|d| d.backup == "b")
            .map(|d| d.seconds)
            .sum();
        assert!((sum - 4007.7).abs() < 0.01, "{sum}");
        // A clock that went back counts as zero seconds, never negative.
        assert_eq!(t.durations[3].seconds, 0.0);
    }
}
