//! History schema and its migrations, versioned with `PRAGMA user_version`.

use super::{HistoryError, Result};
use rusqlite::Connection;
use std::path::Path;

/// The schema version this build writes.
pub const VERSION: i64 = 1;

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
    Ok(())
}
