//! The sync history: the only module that touches the history SQLite file.
//!
//! Tables: `task_runs` (one row per task run), `sync_history` (one row per run, backup and
//! series), `sync_status` (the checkpoint per backup and series), `sync_events`,
//! `reconcile_history`, `restore_history`, and the running totals behind the Prometheus counters (`totals.rs`,
//! kept by triggers, never pruned). Wall-clock times are RFC 3339
//! UTC text; data times (checkpoints, windows) are integer nanoseconds. WAL mode, so readers
//! (`dms history`, the API) work while a writer runs.
//!
//! One writer per file, enforced by the types: [`HistoryWriter`] (and the async [`History`]
//! around it) can only be made by taking the [`WriterLock`], and only it has write methods;
//! everyone else gets a [`HistoryReader`], which has none.

mod error;
mod feed;
mod handle;
mod ledger;
mod lock;
mod query;
mod schema;
mod scope;
mod time;
mod totals;
mod writer;

pub use dms_core::ledger::{
    CheckpointUpdate, Commit, EventKind, ReconcileCounts, ReconcileDepth, RestoreCounts,
    RestoreStart, Status, SyncMode, UNIT_INTERRUPTED, UnitFinish, UnitStart,
};
pub(crate) use error::sql_err;
pub use error::{HistoryError, Result};
pub use feed::StaleFeed;
pub use handle::read;
pub use lock::WriterLock;
pub use query::*;
pub use schema::DURATION_BOUNDS;
pub use scope::ScopeRow;
pub use time::{now_text, time_text, wallclock};
pub use totals::{DurationTotal, RunTotal, SyncTotal, Totals};

use rusqlite::{Connection, OpenFlags};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a write waits for another connection's lock by default.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`HistoryWriter::prune_older_than`] deleted.
#[derive(Debug, Clone, Copy)]
pub struct Pruned {
    /// `sync_history` rows deleted.
    pub rows: usize,
    /// Task runs deleted.
    pub runs: usize,
    /// Rows started before this went.
    pub cutoff: chrono::DateTime<chrono::Utc>,
}

/// The moment a prune of rows older than `age` cuts at; an age reaching before the epoch
/// gives the epoch (nothing is that old).
pub fn prune_cutoff(age: chrono::Duration) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
        .checked_sub_signed(age)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH)
}

/// What started a task run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The cron schedule.
    Cron,
    /// `dms task run` or `dms sync`.
    Manual,
    /// `POST /api/dms/tasks/{name}/run`.
    Api,
    /// A run missed during downtime, caught up at start.
    CatchUp,
    /// `dms run --once`.
    Once,
    /// The daemon's check loop.
    Check,
}

impl Trigger {
    /// Name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Cron => "cron",
            Trigger::Manual => "manual",
            Trigger::Api => "api",
            Trigger::CatchUp => "catch-up",
            Trigger::Once => "once",
            Trigger::Check => "check",
        }
    }
}

/// The history writer, shared by the async parts of the program: owns the [`WriterLock`], so
/// holding one proves this process is the file's only writer. Every call runs on the blocking
/// pool.
#[derive(Clone)]
pub struct History {
    db: Arc<Mutex<HistoryWriter>>,
    path: PathBuf,
    write_error: Arc<Mutex<Option<String>>>,
}

/// A read-only connection to the history database: every query, no write. Methods are
/// blocking; see [`read`] for the async way in.
pub struct HistoryReader {
    conn: Connection,
    path: PathBuf,
    /// Schema version of the file (a reader cannot migrate an old one).
    version: i64,
}

/// The writer's connection: the [`WriterLock`] and a read-write connection. Write methods
/// exist only here; reads come through [`Deref`] to [`HistoryReader`]. Methods are blocking.
pub struct HistoryWriter {
    db: HistoryReader,
    /// Device and inode of the file when it was opened.
    identity: Option<(u64, u64)>,
    _lock: WriterLock,
}

impl Deref for HistoryWriter {
    type Target = HistoryReader;
    fn deref(&self) -> &HistoryReader {
        &self.db
    }
}

impl HistoryReader {
    /// Opens an existing history read-only (for `dms history`, `dms status` and the API).
    ///
    /// # Errors
    /// [`HistoryError::Open`] when the file is missing or unreadable,
    /// [`HistoryError::TooNew`] when a newer dms wrote it.
    pub fn open(path: &Path) -> Result<HistoryReader> {
        let open_err = |cause| HistoryError::Open {
            path: path.to_path_buf(),
            cause,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(DEFAULT_BUSY_TIMEOUT).map_err(open_err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(open_err)?;
        if version > schema::VERSION {
            return Err(HistoryError::TooNew {
                path: path.to_path_buf(),
                found: version,
                supported: schema::VERSION,
            });
        }
        Ok(HistoryReader {
            conn,
            path: path.to_path_buf(),
            version,
        })
    }

    /// Like [`HistoryReader::open`], but `None` when no history file exists yet (nothing has
    /// been recorded).
    ///
    /// # Errors
    /// As [`HistoryReader::open`].
    pub fn open_if_exists(path: &Path) -> Result<Option<HistoryReader>> {
        if path.exists() {
            Self::open(path).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
