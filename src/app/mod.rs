//! Wiring: settings → nodes, history, engine and compiled scripts ([`App`]); running tasks
//! ([`runner`]); the status view shared by the CLI and the API ([`status`]).

pub mod health;
pub mod metrics;
pub mod reconcile;
pub mod runner;
pub mod status;
pub mod tasks;
pub mod verify;

pub use runner::RunOutcome;

use crate::config::{ConfigError, Settings};
use crate::history::{History, HistoryError};
use crate::node::{self, Node, NodeError};
use crate::script::{self, ScriptError, TaskScript};
use crate::sync::Engine;
use std::collections::HashMap;
use std::sync::Arc;

/// Why the application could not start or act.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Configuration problem.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// History problem.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// A node could not be opened.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// Scripts failed to compile.
    #[error("{} task script(s) failed to load:\n{}", .0.len(), .0.iter().map(|(t, e)| format!("  - task {t}: {e}")).collect::<Vec<_>>().join("\n"))]
    Scripts(Vec<(String, ScriptError)>),
    /// No such task.
    #[error("no task is called {0:?} (see `dms task list`)")]
    UnknownTask(String),
    /// The scripts' HTTP client could not be built.
    #[error("scripts' dms.http: {0}")]
    Http(#[from] crate::node::ClientError),
    /// Sync request failed as a whole.
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
}

/// Everything a writer needs: nodes, history (locked), engine and compiled scripts.
pub struct App {
    /// Validated settings.
    pub settings: Settings,
    /// The sync engine (holds the primary and enabled backups).
    pub engine: Arc<Engine>,
    /// The history.
    pub history: History,
    /// Compiled scripts by task name.
    pub scripts: HashMap<String, Arc<TaskScript>>,
    /// The HTTP client scripts use (`dms.http`).
    pub http: crate::script::HttpAccess,
    running: runner::RunningTasks,
}

impl App {
    /// Opens nodes from the settings, takes the history writer lock (naming `who` in it),
    /// repairs rows a crash left running, and compiles every task script.
    ///
    /// # Errors
    /// [`AppError`] naming what failed.
    pub fn open(settings: Settings, who: &str) -> Result<App, AppError> {
        let nodes = open_nodes(&settings)?;
        Self::with_nodes(settings, nodes.primary, nodes.backups, who)
    }

    /// Like [`App::open`] with nodes the caller built (tests wrap real nodes with faults).
    ///
    /// # Errors
    /// [`AppError`] naming what failed.
    pub fn with_nodes(
        settings: Settings,
        primary: Arc<dyn Node>,
        backups: Vec<Arc<dyn Node>>,
        who: &str,
    ) -> Result<App, AppError> {
        let history = History::open(&settings.history.path, who, settings.history.busy_timeout)?;
        let (runs, rows) = history.blocking_write(|db| db.repair_interrupted())?;
        if runs + rows > 0 {
            tracing::warn!(
                runs,
                syncs = rows,
                "marked work left running by an earlier crash as interrupted"
            );
        }
        let (scripts, errors) =
            script::compile_all(&settings.tasks, &settings.root, &settings.scripts);
        if !errors.is_empty() {
            return Err(AppError::Scripts(errors));
        }
        let http = crate::script::HttpAccess::new(&settings.scripts)?;
        let engine = Arc::new(Engine::new(
            primary,
            backups,
            history.clone(),
            settings.sync.clone(),
        ));
        Ok(App {
            settings,
            engine,
            history,
            scripts,
            http,
            running: runner::RunningTasks::default(),
        })
    }
}

/// The nodes of a configuration.
pub struct Nodes {
    /// The primary.
    pub primary: Arc<dyn Node>,
    /// The enabled backups, in configuration order.
    pub backups: Vec<Arc<dyn Node>>,
}

/// Opens the primary and every enabled backup from the settings (InfluxDB nodes connect on
/// first use).
///
/// # Errors
/// [`NodeError`] when a store cannot be opened.
pub fn open_nodes(settings: &Settings) -> Result<Nodes, NodeError> {
    let pool = settings.sync.pool_size;
    let primary = node::open(&settings.primary, &settings.schema, pool)?;
    let backups = settings
        .enabled_backups()
        .map(|b| node::open(b, &settings.schema, pool))
        .collect::<Result<_, _>>()?;
    Ok(Nodes { primary, backups })
}
