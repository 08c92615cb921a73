//! One writer per history file: an exclusive lock on `<history>.lock`, held for the writer's
//! lifetime and released by the OS if the process dies.

use super::{HistoryError, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Held while this process writes the history; dropping it releases the lock.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
    path: PathBuf,
}

impl WriterLock {
    /// Takes the lock for the history at `history`, recording `what` (e.g. "dms run, pid 42").
    ///
    /// # Errors
    /// [`HistoryError::Locked`] when another process holds it, naming the holder.
    pub fn acquire(history: &Path, what: &str) -> Result<WriterLock> {
        // One lock per real file: two paths to it (a symlink, `..`) share the lock.
        let path = lock_path(&canonical(history));
        let io = |cause| HistoryError::LockIo {
            path: history.to_path_buf(),
            cause,
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(HistoryError::Locked {
                    path: history.to_path_buf(),
                    holder: if holder.is_empty() {
                        "unknown process".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let _ = write!(file, "{what}, pid {}", std::process::id());
        let _ = file.flush();
        Ok(WriterLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The file's real path: symlinks and `..` resolved, also when the file does not exist yet
/// (through its folder).
pub(crate) fn canonical(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match (std::fs::canonicalize(dir), path.file_name()) {
        (Ok(d), Some(name)) => d.join(name),
        _ => path.to_path_buf(),
    }
}

fn lock_path(history: &Path) -> PathBuf {
    let mut name = history
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".lock");
    history.with_file_name(name)
}
