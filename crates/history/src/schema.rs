//! History schema and its migrations, versioned with `PRAGMA user_version`.

use super::{HistoryError, Result};
use rusqlite::Connection;
use std::path::Path;

/// The schema version this build writes.
pub const VERSION: i64 = 5;

/// Upper bounds (seconds) of the sync-duration histogram's buckets, as the version-3 triggers
/// sort each sync into them (a last bucket, `+Inf`, takes the rest). Frozen with that schema:
/// other bounds need a new migration.
pub const DURATION_BOUNDS: [&str; 10] = [
    "0.01", "0.05", "0.1", "0.5", "1", "5", "15", "60", "300", "1800",
];

const V1: &str = "
CREATE TABLE task_runs (
    id          INTEGER PRIMARY KEY,
    task        TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL,
    error       TEXT
);
CREATE INDEX task_runs_task ON task_runs (task, id);
CREATE TABLE sync_history (
    id           INTEGER PRIMARY KEY,
    run_id       INTEGER REFERENCES task_runs (id) ON DELETE SET NULL,
    backup       TEXT NOT NULL,
    symbol       TEXT NOT NULL,
    interval     TEXT NOT NULL,
    mode         TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    status       TEXT NOT NULL,
    records      INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    window_start INTEGER,
    window_end   INTEGER
);
CREATE INDEX sync_history_started ON sync_history (started_at);
CREATE INDEX sync_history_series ON sync_history (backup, symbol, interval, id);
CREATE INDEX sync_history_run ON sync_history (run_id);
CREATE INDEX sync_history_status ON sync_history (status);
CREATE TABLE sync_status (
    backup         TEXT NOT NULL,
    symbol         TEXT NOT NULL,
    interval       TEXT NOT NULL,
    last_sync_time INTEGER,
    last_status    TEXT,
    last_error     TEXT,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (backup, symbol, interval)
);
";

/// Version 2: where each (backup, series) was first synced from (back-fills after
/// `initial_days` grows), recorded events (checkpoints rewound, future-dated points), and one
/// row per backup and reconcile run.
const V2: &str = "
ALTER TABLE sync_status ADD COLUMN synced_from INTEGER;
UPDATE sync_status SET synced_from = (
    SELECT min(h.window_start) FROM sync_history h
    WHERE h.backup = sync_status.backup AND h.symbol = sync_status.symbol
      AND h.interval = sync_status.interval AND h.records > 0
);
CREATE TABLE sync_events (
    id       INTEGER PRIMARY KEY,
    at       TEXT NOT NULL,
    run_id   INTEGER REFERENCES task_runs (id) ON DELETE SET NULL,
    kind     TEXT NOT NULL,
    backup   TEXT,
    symbol   TEXT,
    interval TEXT,
    detail   TEXT NOT NULL
);
CREATE INDEX sync_events_at ON sync_events (at);
CREATE TABLE reconcile_history (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER REFERENCES task_runs (id) ON DELETE SET NULL,
    backup      TEXT NOT NULL,
    depth       TEXT NOT NULL,
    range_start INTEGER NOT NULL,
    range_end   INTEGER NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL,
    series      INTEGER NOT NULL DEFAULT 0,
    windows     INTEGER NOT NULL DEFAULT 0,
    differing   INTEGER NOT NULL DEFAULT 0,
    repaired    INTEGER NOT NULL DEFAULT 0,
    rewritten   INTEGER NOT NULL DEFAULT 0,
    deleted     INTEGER NOT NULL DEFAULT 0,
    extra       INTEGER NOT NULL DEFAULT 0,
    error       TEXT
);
CREATE INDEX reconcile_history_backup ON reconcile_history (backup, id);
CREATE INDEX reconcile_history_started ON reconcile_history (started_at);
";

/// The bucket (`le` as text) of a duration of `d` seconds.
fn bucket_of(d: &str) -> String {
    let mut out = String::from("CASE");
    for b in DURATION_BOUNDS {
        out.push_str(&format!(" WHEN {d} <= {b} THEN '{b}'"));
    }
    out.push_str(" ELSE '+Inf' END");
    out
}

/// Version 3: running totals behind the daemon's Prometheus counters — syncs per backup and
/// status, points acknowledged per backup, sync durations per backup and bucket, task runs
/// per task, trigger and status — kept by triggers in the same transaction as the rows they
/// count and never pruned, so a counter goes on across restarts and retention instead of
/// starting again at zero. Filled from the rows the file holds when it is migrated.
///
/// A sync is counted when its row leaves `running`; its duration (finished − started, to the
/// millisecond, never negative) only when it ended by itself (not "interrupted" by a stop or crash, whose
/// duration would be the downtime). Points are counted as each batch is acknowledged.
fn v3() -> String {
    // Times are stored to the millisecond; rounding to it keeps a sync of exactly a bound
    // (500 ms) in that bound's bucket despite julianday's floating point.
    let d = "max(round((julianday(NEW.finished_at) - julianday(NEW.started_at)) * 86400000.0) / 1000.0, 0.0)";
    let bucket = bucket_of(d);
    let backfill_d =
        "max(round((julianday(finished_at) - julianday(started_at)) * 86400000.0) / 1000.0, 0.0)";
    let backfill_bucket = bucket_of("d");
    format!(
        "
CREATE TABLE sync_totals (
    backup TEXT NOT NULL,
    status TEXT NOT NULL,
    syncs  INTEGER NOT NULL,
    PRIMARY KEY (backup, status)
);
CREATE TABLE record_totals (
    backup  TEXT PRIMARY KEY,
    records INTEGER NOT NULL
);
CREATE TABLE sync_duration_totals (
    backup  TEXT NOT NULL,
    le      TEXT NOT NULL,
    syncs   INTEGER NOT NULL,
    seconds REAL NOT NULL,
    PRIMARY KEY (backup, le)
);
CREATE TABLE task_run_totals (
    task             TEXT NOT NULL,
    trigger          TEXT NOT NULL,
    status           TEXT NOT NULL,
    runs             INTEGER NOT NULL,
    last_finished_at TEXT,
    PRIMARY KEY (task, trigger, status)
);

INSERT INTO sync_totals (backup, status, syncs)
    SELECT backup, status, count(*) FROM sync_history WHERE status != 'running'
    GROUP BY backup, status;
INSERT INTO record_totals (backup, records)
    SELECT backup, sum(records) FROM sync_history GROUP BY backup;
INSERT INTO sync_duration_totals (backup, le, syncs, seconds)
    SELECT backup, {backfill_bucket} AS le, count(*), sum(d) FROM (
        SELECT backup, {backfill_d} AS d FROM sync_history
        WHERE status != 'running' AND finished_at IS NOT NULL
          AND coalesce(error, '') NOT LIKE 'interrupted:%'
    ) GROUP BY backup, le;
INSERT INTO task_run_totals (task, trigger, status, runs, last_finished_at)
    SELECT task, trigger, status, count(*), max(finished_at) FROM task_runs
    WHERE status != 'running' GROUP BY task, trigger, status;

CREATE TRIGGER sync_closed AFTER UPDATE OF status ON sync_history
WHEN OLD.status = 'running' AND NEW.status != 'running'
BEGIN
    INSERT INTO sync_totals (backup, status, syncs) VALUES (NEW.backup, NEW.status, 1)
    ON CONFLICT (backup, status) DO UPDATE SET syncs = syncs + 1;
END;
CREATE TRIGGER sync_timed AFTER UPDATE OF status ON sync_history
WHEN OLD.status = 'running' AND NEW.status != 'running' AND NEW.finished_at IS NOT NULL
     AND coalesce(NEW.error, '') NOT LIKE 'interrupted:%'
BEGIN
    INSERT INTO sync_duration_totals (backup, le, syncs, seconds)
    VALUES (NEW.backup, {bucket}, 1, {d})
    ON CONFLICT (backup, le) DO UPDATE SET syncs = syncs + 1, seconds = seconds + excluded.seconds;
END;
CREATE TRIGGER sync_records AFTER UPDATE OF records ON sync_history
WHEN NEW.records > OLD.records
BEGIN
    INSERT INTO record_totals (backup, records) VALUES (NEW.backup, NEW.records - OLD.records)
    ON CONFLICT (backup) DO UPDATE SET records = records + excluded.records;
END;
CREATE TRIGGER task_run_closed AFTER UPDATE OF status ON task_runs
WHEN OLD.status = 'running' AND NEW.status != 'running'
BEGIN
    INSERT INTO task_run_totals (task, trigger, status, runs, last_finished_at)
    VALUES (NEW.task, NEW.trigger, NEW.status, 1, NEW.finished_at)
    ON CONFLICT (task, trigger, status) DO UPDATE SET runs = runs + 1,
        last_finished_at = coalesce(max(last_finished_at, excluded.last_finished_at),
                                    last_finished_at, excluded.last_finished_at);
END;
CREATE TRIGGER task_run_recorded AFTER INSERT ON task_runs
WHEN NEW.status != 'running'
BEGIN
    INSERT INTO task_run_totals (task, trigger, status, runs, last_finished_at)
    VALUES (NEW.task, NEW.trigger, NEW.status, 1, NEW.finished_at)
    ON CONFLICT (task, trigger, status) DO UPDATE SET runs = runs + 1,
        last_finished_at = coalesce(max(last_finished_at, excluded.last_finished_at),
                                    last_finished_at, excluded.last_finished_at);
END;
"
    )
}

/// Also version 3: which task maintains which (backup, series) (recorded by each task run, read by
/// the check loop), small daemon facts such as when its check loop last finished a pass, and a
/// run's warning (what it was asked to do and could not find).
const V3_SCOPE: &str = "
CREATE TABLE task_scope (
    task         TEXT NOT NULL,
    backup       TEXT NOT NULL,
    symbol       TEXT NOT NULL,
    interval     TEXT NOT NULL,
    initial_days INTEGER NOT NULL,
    run_id       INTEGER,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (task, backup, symbol, interval)
);
CREATE TABLE daemon_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
ALTER TABLE task_runs ADD COLUMN warning TEXT;
";

/// Version 4: deletes a reconcile pass held back (more than `reconcile.max_deletes`, or a
/// primary that moved backwards).
/// Also the feed watch: per task and series, the primary's newest point at the task's last
/// successful run and how many successful runs in a row found it unchanged and overdue.
const V4: &str = "
ALTER TABLE reconcile_history ADD COLUMN refused INTEGER NOT NULL DEFAULT 0;
CREATE TABLE feed_state (
    task      TEXT NOT NULL,
    symbol    TEXT NOT NULL,
    interval  TEXT NOT NULL,
    newest    INTEGER,
    unchanged INTEGER NOT NULL DEFAULT 0,
    stale     INTEGER NOT NULL DEFAULT 0,
    since     TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (task, symbol, interval)
);
";

/// Version 5: one row per restore (`dms restore`, `POST /api/dms/restore`, `dms.restore{}`):
/// which backup was copied into which node, over what range and how, what it wrote and kept,
/// and what the final exact comparison found. A restore moves no checkpoint.
const V5: &str = "
CREATE TABLE restore_history (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER REFERENCES task_runs (id) ON DELETE SET NULL,
    source      TEXT NOT NULL,
    target      TEXT NOT NULL,
    since       INTEGER,
    until       INTEGER,
    overwrite   INTEGER NOT NULL,
    dry_run     INTEGER NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL,
    series      INTEGER NOT NULL DEFAULT 0,
    equal       INTEGER NOT NULL DEFAULT 0,
    differing   INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    written     INTEGER NOT NULL DEFAULT 0,
    kept        INTEGER NOT NULL DEFAULT 0,
    extra       INTEGER NOT NULL DEFAULT 0,
    error       TEXT
);
CREATE INDEX restore_history_run ON restore_history (run_id);
CREATE INDEX restore_history_started ON restore_history (started_at);
";

/// Brings the database to [`VERSION`].
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let err = |cause| HistoryError::Open {
        path: path.to_path_buf(),
        cause,
    };
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    if version > VERSION {
        return Err(HistoryError::TooNew {
            path: path.to_path_buf(),
            found: version,
            supported: VERSION,
        });
    }
    if version < 1 {
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(V1).map_err(err)?;
        tx.pragma_update(None, "user_version", 1).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    if version < 2 {
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(V2).map_err(err)?;
        tx.pragma_update(None, "user_version", 2).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    if version < 3 {
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(&v3()).map_err(err)?;
        tx.execute_batch(V3_SCOPE).map_err(err)?;
        tx.pragma_update(None, "user_version", 3).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    if version < 4 {
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(V4).map_err(err)?;
        tx.pragma_update(None, "user_version", 4).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    if version < 5 {
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(V5).map_err(err)?;
        tx.pragma_update(None, "user_version", 5).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}
