//! The data folder scripts read through `dms.csv`. Every path is resolved beneath the folder
//! by the operating system (cap-std: `openat2(RESOLVE_BENEATH)` where the kernel has it), so
//! neither `..`, an absolute path, nor a symlink swapped in while the file is opened reaches
//! anything outside. Only regular files are read, and they are opened without blocking, so a
//! FIFO in the folder cannot hang a run.

use cap_std::fs::{Dir, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why a data file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The folder itself cannot be opened.
    #[error("cannot open the data folder {}: {cause}", dir.display())]
    Folder {
        /// The folder.
        dir: PathBuf,
        /// Cause.
        cause: std::io::Error,
    },
    /// The path leads outside the folder, or cannot be opened inside it.
    #[error(
        "{path:?} is outside the data folder or cannot be opened there ({cause}); give a path relative to scripts.data_dir"
    )]
    Open {
        /// As the script gave it.
        path: String,
        /// Cause (an escape is "a path led outside of the filesystem").
        cause: std::io::Error,
    },
    /// Not a regular file (a folder, a FIFO, a device).
    #[error("{0:?} is not a regular file")]
    NotAFile(String),
    /// Larger than the limit.
    #[error("{path:?} is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// As the script gave it.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

/// The data folder, opened as a capability.
pub struct DataDir {
    dir: Dir,
}

impl DataDir {
    /// Opens the folder.
    ///
    /// # Errors
    /// [`DataError::Folder`].
    pub fn open(path: &Path) -> Result<DataDir, DataError> {
        Dir::open_ambient_dir(path, cap_std::ambient_authority())
            .map(|dir| DataDir { dir })
            .map_err(|cause| DataError::Folder {
                dir: path.to_path_buf(),
                cause,
            })
    }

    /// Reads a regular file beneath the folder, of at most `limit` bytes.
    ///
    /// # Errors
    /// [`DataError`] when it is outside, not a regular file, or too large.
    pub fn read(&self, rel: &str, limit: u64) -> Result<Vec<u8>, DataError> {
        let open_err = |cause| DataError::Open {
            path: rel.to_string(),
            cause,
        };
        let mut opts = OpenOptions::new();
        opts.read(true);
        #[cfg(unix)]
        {
            use cap_std::fs::OpenOptionsExt;
            // A FIFO would block an open for reading until a writer appears.
            opts.custom_flags(libc::O_NONBLOCK);
        }
        let file = self.dir.open_with(rel, &opts).map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        if !meta.is_file() {
            return Err(DataError::NotAFile(rel.to_string()));
        }
        if meta.len() > limit {
            return Err(DataError::TooLarge {
                path: rel.to_string(),
                size: meta.len(),
                limit,
            });
        }
        let mut out = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.into_std()
            .take(limit.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(open_err)?;
        if out.len() as u64 > limit {
            return Err(DataError::TooLarge {
                path: rel.to_string(),
                size: out.len() as u64,
                limit,
            });
        }
        Ok(out)
    }

    /// Opens a regular file beneath the folder for reading as a stream, whatever its size
    /// (`dms.primary.import_csv` reads it in batches, never whole).
    ///
    /// # Errors
    /// [`DataError`] when it is outside or not a regular file.
    pub fn open_stream(&self, rel: &str) -> Result<std::fs::File, DataError> {
        let open_err = |cause| DataError::Open {
            path: rel.to_string(),
            cause,
        };
        let mut opts = OpenOptions::new();
        opts.read(true);
        #[cfg(unix)]
        {
            use cap_std::fs::OpenOptionsExt;
            // A FIFO would block an open for reading until a writer appears.
            opts.custom_flags(libc::O_NONBLOCK);
        }
        let file = self.dir.open_with(rel, &opts).map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        if !meta.is_file() {
            return Err(DataError::NotAFile(rel.to_string()));
        }
        Ok(file.into_std())
    }

    /// Whether `rel` is a regular file beneath the folder.
    pub fn exists(&self, rel: &str) -> bool {
        self.dir.metadata(rel).is_ok_and(|m| m.is_file())
    }

    /// The regular files of a folder beneath the data folder (`""`: the folder itself),
    /// sorted.
    ///
    /// # Errors
    /// [`DataError::Open`].
    pub fn list(&self, rel: &str) -> Result<Vec<String>, DataError> {
        let open_err = |cause| DataError::Open {
            path: rel.to_string(),
            cause,
        };
        let entries = if rel.is_empty() {
            self.dir.entries()
        } else {
            self.dir.read_dir(rel)
        }
        .map_err(open_err)?;
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_beneath_the_folder_and_only_regular_files_are_read() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("a.csv"), "x\n1\n").unwrap();
        std::fs::write(root.path().join("secret.txt"), "no").unwrap();
        std::os::unix::fs::symlink(root.path().join("secret.txt"), data.join("link.csv")).unwrap();
        let fifo = data.join("pipe.csv");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let d = DataDir::open(&data).unwrap();
        assert_eq!(d.read("a.csv", 100).unwrap(), b"x\n1\n");
        for bad in [
            "../secret.txt",
            "/etc/passwd",
            "link.csv",
            "sub/../../secret.txt",
        ] {
            assert!(d.read(bad, 100).is_err(), "{bad}");
        }
        assert!(matches!(
            d.read("pipe.csv", 100),
            Err(DataError::NotAFile(_))
        ));
        assert!(matches!(
            d.read("sub", 100),
            Err(DataError::NotAFile(_)) | Err(DataError::Open { .. })
        ));
        assert!(matches!(
            d.read("a.csv", 2),
            Err(DataError::TooLarge { .. })
        ));
        assert!(d.exists("a.csv") && !d.exists("pipe.csv") && !d.exists("../secret.txt"));
        assert_eq!(d.list("").unwrap(), ["a.csv"]);
        assert!(d.list("..").is_err());
    }
}
