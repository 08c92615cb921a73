//! [`History`], the writer shared by the async parts of the program, and [`read`], the async
//! way in for readers: both run their calls on the blocking pool.

use crate::{History, HistoryError, HistoryReader, HistoryWriter, Result};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Runs a read `f` on a fresh read-only connection, on the blocking pool (the API, the status
/// page and the daemon's own look-ups read this way, alongside the writer).
///
/// # Errors
/// [`HistoryError::Open`] when the file is missing or unreadable, what `f` returns, or
/// [`HistoryError::Task`] when the blocking task died.
pub async fn read<R: Send + 'static>(
    path: &Path,
    f: impl FnOnce(&HistoryReader) -> Result<R> + Send + 'static,
) -> Result<R> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || HistoryReader::open(&path).and_then(|db| f(&db)))
        .await
        .map_err(|e| HistoryError::Task(e.to_string()))?
}

impl History {
    /// Takes the writer lock (naming `who` in it), then opens (creating and migrating) the
    /// history at `path`, waiting up to `busy_timeout` for a reader's lock on the file.
    ///
    /// # Errors
    /// [`HistoryError::Locked`] naming the holder when another writer has it,
    /// [`HistoryError::Open`] or [`HistoryError::TooNew`].
    pub fn open(path: &Path, who: &str, busy_timeout: Duration) -> Result<History> {
        let db = HistoryWriter::open(path, who, busy_timeout)?;
        Ok(History {
            db: Arc::new(Mutex::new(db)),
            path: path.to_path_buf(),
            write_error: Arc::new(Mutex::new(None)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs a write `f` on the blocking pool and remembers whether writes work: a failure is
    /// kept (see [`History::write_error`]) until a later write succeeds. Nothing is written
    /// once the file was deleted or replaced under the writer.
    ///
    /// # Errors
    /// What `f` returns, [`HistoryError::Replaced`], or [`HistoryError::Task`] when the
    /// blocking task died.
    pub async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut HistoryWriter) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let r = self
            .call(move |db| {
                db.check_file()?;
                f(db)
            })
            .await;
        let mut health = self.write_error.lock().unwrap_or_else(|p| p.into_inner());
        match &r {
            Ok(_) => *health = None,
            Err(e) => *health = Some(e.to_string()),
        }
        r
    }

    /// Runs a write `f` on the calling thread (for setup before the async work starts).
    ///
    /// # Errors
    /// What `f` returns.
    pub fn blocking_write<R>(&self, f: impl FnOnce(&mut HistoryWriter) -> Result<R>) -> Result<R> {
        let mut guard = self.db.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Runs a read `f` on the writer's connection, on the blocking pool.
    ///
    /// # Errors
    /// What `f` returns, or [`HistoryError::Task`] when the blocking task died.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&HistoryReader) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        self.call(move |db| f(db)).await
    }

    /// Checks that the file is still the one opened (not deleted or replaced); a failure is
    /// kept as [`History::write_error`] (a success does not clear an earlier write failure).
    ///
    /// # Errors
    /// [`HistoryError::Replaced`].
    pub async fn check_file(&self) -> Result<()> {
        let r = self.call(|db| db.check_file()).await;
        if let Err(e) = &r {
            *self.write_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        }
        r
    }

    /// The error of the last write, if it failed (disk full, read-only, locked, corrupt).
    pub fn write_error(&self) -> Option<String> {
        self.write_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut HistoryWriter) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock poisons it; the connection itself is still usable
            // because every method runs its statements in a transaction.
            let mut guard = db.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| HistoryError::Task(e.to_string()))?
    }
}
