//! History schema and its migrations, versioned with `PRAGMA user_version`.

use super::{HistoryError, Result};
use rusqlite::Connection;
use std::path::Path;

/// The schema version this build writes.
pub const VERSION: i64 = 3;

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

/// Version 3: which task maintains which (backup, series) (recorded by each task run, read by
/// the check loop), small daemon facts such as when its check loop last finished a pass, and a
/// run's warning (what it was asked to do and could not find).
const V3: &str = "
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
        tx.execute_batch(V3).map_err(err)?;
        tx.pragma_update(None, "user_version", 3).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}
