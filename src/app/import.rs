//! Importing CSV files into the primary (or another node) as a recorded run (`@import`): check
//! the request, record a run, stream every file through the engine's importer, record the
//! outcome. An import moves no checkpoint: the next sync copies what it wrote.

use super::{App, AppError};
use crate::history::{Status, Trigger};
use crate::import::{FileReport, ImportError, ImportOptions, ImportProgress, Importer};
use crate::model::SeriesKey;
use crate::node::Node;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Pseudo-task name of import runs.
pub const IMPORT_TASK: &str = "@import";

/// What to import, and where.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// The node written to: the primary when `None`, else the primary or an enabled backup
    /// by name.
    pub to: Option<String>,
    /// The series every row belongs to.
    pub series: SeriesKey,
    /// How rows become points.
    pub options: ImportOptions,
    /// The files, imported in this order.
    pub files: Vec<PathBuf>,
}

/// A recorded import: `dms import --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportRun {
    /// History run id.
    pub run_id: i64,
    /// `success`, `failed` or `interrupted`.
    pub status: Status,
    /// Why it stopped (file and line for a bad row).
    pub error: Option<String>,
    /// Bad rows skipped, when any were.
    pub warning: Option<String>,
    /// The node written to.
    pub target: String,
    /// The series.
    pub symbol: String,
    /// The series.
    pub interval: String,
    /// One report per file imported in full; a file that stopped the import is not listed.
    pub files: Vec<FileReport>,
    /// Data rows read, over every file.
    pub rows: u64,
    /// Points written, over every file (those of a file that stopped included).
    pub written: u64,
    /// Bad rows skipped.
    pub skipped_bad: u64,
    /// Rows before `since`, passed over.
    pub skipped_before_since: u64,
    /// Wall time in seconds.
    pub duration_seconds: f64,
}

/// A file of the request that is not there or not a file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {why}", path.display())]
pub struct ImportFileError {
    /// The file.
    pub path: PathBuf,
    /// Why it cannot be imported.
    pub why: String,
}

impl App {
    /// The node an import writes to: the primary unless `to` names another; only the primary
    /// and enabled backups can be named.
    ///
    /// # Errors
    /// [`AppError::UnknownNode`] naming the nodes that can be.
    pub fn node_named(&self, to: Option<&str>) -> Result<Arc<dyn Node>, AppError> {
        let primary = self.engine.primary();
        let Some(name) = to.map(str::trim).filter(|n| *n != primary.name()) else {
            return Ok(primary.clone());
        };
        if let Some(b) = self.engine.backups().iter().find(|b| b.name() == name) {
            return Ok(b.clone());
        }
        let disabled = self.engine.disabled_backups().iter().any(|b| b == name);
        let mut known = vec![primary.name().to_string()];
        known.extend(self.engine.backups().iter().map(|b| b.name().to_string()));
        Err(AppError::UnknownNode {
            name: name.to_string(),
            why: if disabled {
                "is a disabled backup".to_string()
            } else {
                "is no node of the configuration".to_string()
            },
            known: known.join(", "),
        })
    }

    /// Imports the request's files as a recorded run of `@import`, file after file; the first
    /// file that cannot be imported ends the run (what was written stays). `progress` hears
    /// of each file (`file_started`) and batch.
    ///
    /// # Errors
    /// [`AppError::UnknownNode`] or [`AppError::ImportFile`] before any run is recorded;
    /// history failures. A file that fails is in the returned run's `error`, not an `Err`.
    pub async fn import(
        &self,
        req: &ImportRequest,
        trigger: Trigger,
        cancel: &CancellationToken,
        progress: Option<Arc<dyn FileProgress>>,
    ) -> Result<ImportRun, AppError> {
        let begun = Instant::now();
        let node = self.node_named(req.to.as_deref())?;
        let mut sizes = Vec::with_capacity(req.files.len());
        for path in &req.files {
            match std::fs::metadata(path) {
                Ok(m) if m.is_file() => sizes.push(m.len()),
                Ok(_) => {
                    return Err(ImportFileError {
                        path: path.clone(),
                        why: "not a regular file".into(),
                    }
                    .into());
                }
                Err(e) => {
                    return Err(ImportFileError {
                        path: path.clone(),
                        why: e.to_string(),
                    }
                    .into());
                }
            }
        }
        let run_id = self
            .history
            .write(move |db| db.start_run(IMPORT_TASK, trigger))
            .await?;
        let span = tracing::info_span!("task", task = IMPORT_TASK, run = run_id);
        let importer = Importer {
            node: node.clone(),
            schema: self.settings.schema.clone(),
            series: req.series.clone(),
            options: req.options.clone(),
            batch_size: self.settings.sync.batch_size,
            retry: self.settings.sync.retry,
            cancel: cancel.clone(),
            progress: progress.clone().map(|p| p as Arc<dyn ImportProgress>),
        };
        let mut run = ImportRun {
            run_id,
            status: Status::Success,
            error: None,
            warning: None,
            target: node.name().to_string(),
            symbol: req.series.symbol.clone(),
            interval: req.series.interval.clone(),
            files: Vec::new(),
            rows: 0,
            written: 0,
            skipped_bad: 0,
            skipped_before_since: 0,
            duration_seconds: 0.0,
        };
        for (path, size) in req.files.iter().zip(sizes) {
            let shown = path.display().to_string();
            if let Some(p) = &progress {
                p.file_started(&shown, size);
            }
            let result = match std::fs::File::open(path) {
                Ok(f) => {
                    importer
                        .file(&shown, Box::new(f))
                        .instrument(span.clone())
                        .await
                }
                Err(e) => Err(ImportError::Read {
                    file: shown.clone(),
                    cause: e.to_string(),
                }),
            };
            match result {
                Ok(r) => {
                    run.rows += r.rows;
                    run.written += r.written;
                    run.skipped_bad += r.skipped_bad;
                    run.skipped_before_since += r.skipped_before_since;
                    run.files.push(r);
                }
                Err(e) => {
                    run.written += e.written();
                    run.status = if matches!(e, ImportError::Interrupted { .. }) {
                        Status::Interrupted
                    } else {
                        Status::Failed
                    };
                    run.error = Some(e.to_string());
                    break;
                }
            }
        }
        if run.skipped_bad > 0 {
            let first = run
                .files
                .iter()
                .find_map(|f| {
                    f.bad_rows
                        .first()
                        .map(|b| format!("{}:{}: {}", f.file, b.line, b.error))
                })
                .unwrap_or_default();
            run.warning = Some(format!(
                "{} bad rows were skipped (the first: {first})",
                run.skipped_bad
            ));
        }
        let (status, error, warning) = (run.status, run.error.clone(), run.warning.clone());
        self.history
            .write(move |db| db.finish_run(run_id, status, error.as_deref()))
            .await?;
        if let Some(w) = warning {
            self.history
                .write(move |db| db.set_run_warning(run_id, &w))
                .await?;
        }
        run.duration_seconds = begun.elapsed().as_secs_f64();
        let _enter = span.enter();
        tracing::info!(
            run = run_id,
            target = %run.target,
            symbol = %run.symbol,
            interval = %run.interval,
            files = run.files.len(),
            rows = run.rows,
            written = run.written,
            skipped_bad = run.skipped_bad,
            status = status.as_str(),
            "import finished"
        );
        Ok(run)
    }
}

/// Progress of an import over several files (the CLI's bar).
pub trait FileProgress: ImportProgress {
    /// A file of `size` bytes is started; offsets reported next are within it.
    fn file_started(&self, file: &str, size: u64);
}
