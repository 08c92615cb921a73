//! Configuration: `sync.yaml` and `task.yaml` in one folder, loaded in two stages — the raw serde
//! mirror ([`raw`]), whose errors carry file, line and column, then validation into
//! [`Settings`], which reports every problem it finds.

pub mod de;
mod problem;
pub mod raw;
pub mod settings;
mod yaml_words;

pub use problem::{ConfigFile, Problem};
pub use raw::{CheckScope, SyncMode};
pub use settings::*;

use std::path::{Path, PathBuf};

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {}: {cause}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// A file is not valid YAML or does not match the expected shape.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The files parsed but break rules between fields.
    #[error("invalid configuration in {}:{}", dir.display(), problems.iter().map(|p| format!("\n  - {p}")).collect::<String>())]
    Invalid {
        /// The config folder.
        dir: PathBuf,
        /// Every problem found, each with its file, setting and place.
        problems: Vec<Problem>,
    },
}

/// Loads and validates `sync.yaml` and `task.yaml` from `dir`.
///
/// # Errors
/// [`ConfigError`] naming the file and, where the parser knows it, line and column.
pub fn load(dir: &Path) -> Result<Settings, ConfigError> {
    let sync_path = dir.join(ConfigFile::Sync.name());
    let task_path = dir.join(ConfigFile::Task.name());
    let sync_text = read(&sync_path)?;
    let task_text = read(&task_path)?;
    let sync: raw::SyncFile = parse_str(&sync_path, &sync_text)?;
    let tasks: raw::TaskFile = parse_str(&task_path, &task_text)?;
    settings::validate(dir, sync, tasks).map_err(|problems| ConfigError::Invalid {
        dir: dir.to_path_buf(),
        problems: problems.located(&sync_text, &task_text),
    })
}

/// A configuration file's text.
fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
        path: path.to_path_buf(),
        cause,
    })
}

/// Parses one YAML file into `T`.
///
/// # Errors
/// [`ConfigError::Read`] or [`ConfigError::Parse`].
pub fn parse_file<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<T, ConfigError> {
    parse_str(path, &read(path)?)
}

/// Parses YAML text; an empty document gives `T::default()`.
///
/// # Errors
/// [`ConfigError::Parse`] with the parser's line and column.
pub fn parse_str<T: serde::de::DeserializeOwned + Default>(
    path: &Path,
    text: &str,
) -> Result<T, ConfigError> {
    let is_empty = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---");
    if is_empty {
        return Ok(T::default());
    }
    yaml_serde::from_str(text).map_err(|e| {
        let mut message = e.to_string();
        if let Some(loc) = e.location() {
            if !message.contains("line ") {
                message = format!("line {} column {}: {message}", loc.line(), loc.column());
            }
            // The parser's phrase says where; the words say why.
            if let Some(words) = yaml_words::explain(text, &message, loc.line(), loc.column()) {
                message = format!("{words} (the YAML parser: {message})");
            }
        }
        ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        }
    })
}
