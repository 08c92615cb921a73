//! The history's error type.

use std::path::{Path, PathBuf};

/// Why a history operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The database could not be opened or migrated.
    #[error("cannot open sync history {}: {cause}", path.display())]
    Open {
        /// File.
        path: PathBuf,
        /// Cause.
        cause: rusqlite::Error,
    },
    /// A statement failed.
    #[error("sync history {}: {op}: {cause}", path.display())]
    Sql {
        /// File.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// Cause.
        cause: rusqlite::Error,
    },
    /// The file was written by a newer dms.
    #[error("sync history {} has schema version {found}, newer than this dms understands ({supported}); upgrade dms", path.display())]
    TooNew {
        /// File.
        path: PathBuf,
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// Another writer holds the lock.
    #[error("sync history {} is in use by another dms writer ({holder}); stop it or use its API", path.display())]
    Locked {
        /// File.
        path: PathBuf,
        /// What the lock file says about the holder.
        holder: String,
    },
    /// The lock file could not be created.
    #[error("cannot lock sync history {}: {cause}", path.display())]
    LockIo {
        /// File.
        path: PathBuf,
        /// Cause.
        cause: std::io::Error,
    },
    /// A blocking task could not run.
    #[error("sync history task failed: {0}")]
    Task(String),
    /// The file fails SQLite's integrity check: it is not written to.
    #[error("sync history {} is damaged ({detail}); it is not written to — move it away (a new one is made) or restore a copy", path.display())]
    Corrupt {
        /// File.
        path: PathBuf,
        /// What the check found.
        detail: String,
    },
    /// The file was deleted or replaced under the running writer: writes stop.
    #[error("sync history {} was deleted or replaced while dms was writing it; writes stopped — restart dms", path.display())]
    Replaced {
        /// File.
        path: PathBuf,
    },
}

/// Result alias.
pub type Result<T, E = HistoryError> = std::result::Result<T, E>;

/// Maps a rusqlite error to [`HistoryError::Sql`] for `path` and `op`.
pub(crate) fn sql_err(
    path: &Path,
    op: &'static str,
) -> impl Fn(rusqlite::Error) -> HistoryError + use<> {
    let path = path.to_path_buf();
    move |cause| HistoryError::Sql {
        path: path.clone(),
        op,
        cause,
    }
}
