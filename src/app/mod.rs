//! Wiring: settings → nodes, history, engine and compiled scripts ([`App`]); running tasks
//! ([`runner`]); the status view shared by the CLI and the API ([`status`]); reconcile and
//! restore runs ([`reconcile`], [`restore`]); CSV imports ([`import`]).

mod feed;
pub mod health;
pub mod import;
pub mod metrics;
pub mod reconcile;
pub mod restore;
pub mod runner;
pub mod status;
pub mod tasks;
pub mod verify;

pub use runner::RunOutcome;

use crate::config::{ConfigError, Settings};
use crate::history::{History, HistoryError};
use crate::node::{self, Node, NodeError};
use crate::script::{self, Launcher, ScriptError, ScriptRef};
use crate::sync::Engine;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

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
    /// A `--symbol` or `--interval` filter names no series.
    #[error(transparent)]
    NoMatch(#[from] crate::names::NoMatch),
    /// No such task.
    #[error("no task is called {0:?} (see `dms task list`)")]
    UnknownTask(String),
    /// The scripts' HTTP client could not be built.
    #[error("scripts' dms.http: {0}")]
    Http(#[from] crate::node::ClientError),
    /// Sync request failed as a whole.
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    /// A restore was refused or could not start.
    #[error(transparent)]
    Restore(#[from] crate::restore::RestoreError),
    /// A node named for an import cannot be used.
    #[error("{name:?} {why}: an import writes to the primary or an enabled backup ({known})")]
    UnknownNode {
        /// The name given.
        name: String,
        /// Why it cannot be used.
        why: String,
        /// The nodes that can be named.
        known: String,
    },
    /// A file named for an import is not there or not a file.
    #[error(transparent)]
    ImportFile(#[from] import::ImportFileError),
}

/// Everything a writer needs: nodes, history (locked), engine and compiled scripts.
pub struct App {
    /// Validated settings.
    pub settings: Settings,
    /// The sync engine (holds the primary and enabled backups).
    pub engine: Arc<Engine>,
    /// The history.
    pub history: History,
    /// Task scripts (syntax checked; each run loads its script in its own process).
    pub scripts: HashMap<String, ScriptRef>,
    /// The HTTP client scripts use (`dms.http`).
    pub http: crate::script::HttpAccess,
    /// Tasks whose scripts do not compile, with why: only their own runs fail; commands that
    /// run no script (or another task's) work on.
    broken: Vec<(String, ScriptError)>,
    running: runner::RunningTasks,
    /// Tasks whose script did not load when the daemon started, with why: their runs fail at
    /// once until the daemon is restarted.
    unloadable: std::sync::Mutex<HashMap<String, String>>,
}

impl App {
    /// Checks `--symbol`/`--interval` filters against the series the primary and the enabled
    /// backups hold, before any work: a name that matches nothing is an error with the
    /// nearest existing name, never an empty success. No look-up without filters.
    ///
    /// # Errors
    /// [`AppError::NoMatch`], or a node's error when one cannot list its series (a backup
    /// that cannot is left out: its own work reports it).
    pub async fn check_filters(
        &self,
        symbols: &[String],
        intervals: &[String],
    ) -> Result<(), AppError> {
        if symbols.is_empty() && intervals.is_empty() {
            return Ok(());
        }
        let mut known = self.engine.primary().list_series().await?;
        for b in self.engine.backups() {
            if let Ok(theirs) = b.list_series().await {
                known.extend(theirs);
            }
        }
        crate::names::NoMatch::check("on the primary or a backup", symbols, intervals, &known)?;
        Ok(())
    }

    /// How the task scripts' processes are started.
    pub fn launcher(&self) -> Launcher {
        Launcher {
            program: self.settings.scripts.worker.clone(),
            config_dir: self.settings.config_dir.clone(),
            memory_limit: self.settings.scripts.memory_limit,
        }
    }

    /// Loads every task's script in its own process, as a run would (top level, hooks), each
    /// bounded by its task's timeout in wall-clock time; `cancel` ends the checks at once.
    /// Gives the tasks whose script does not load.
    pub async fn load_scripts(&self, cancel: &CancellationToken) -> Vec<(String, ScriptError)> {
        let launcher = self.launcher();
        let mut errors = self.broken.clone();
        for s in self.scripts.values() {
            if cancel.is_cancelled() {
                break;
            }
            let budget = self
                .settings
                .task(&s.task)
                .map_or(std::time::Duration::from_secs(30), |t| t.timeout);
            if let Err(e) = script::process::check_load(&launcher, s, budget, cancel).await
                && !cancel.is_cancelled()
            {
                errors.push((s.task.clone(), e));
            }
        }
        errors.sort_by(|a, b| a.0.cmp(&b.0));
        errors
    }

    /// [`App::load_scripts`] for a one-off command: refuses to go on with a script that cannot
    /// load.
    ///
    /// # Errors
    /// [`AppError::Scripts`] naming each task whose script does not load.
    pub async fn check_scripts(&self, cancel: &CancellationToken) -> Result<(), AppError> {
        let errors = self.load_scripts(cancel).await;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(AppError::Scripts(errors))
        }
    }

    /// `Err(AppError::Scripts)` when the script of `task` does not compile (found when the
    /// app was opened): what a run of that task, and only of that task, must fix first.
    ///
    /// # Errors
    /// [`AppError::Scripts`] naming the task and its script's error.
    pub fn check_script_of(&self, task: &str) -> Result<(), AppError> {
        match self.broken.iter().find(|(t, _)| t == task) {
            Some(b) => Err(AppError::Scripts(vec![b.clone()])),
            None => Ok(()),
        }
    }

    /// [`App::load_scripts`] for the daemon, which serves while they load: a task whose script
    /// does not load is disabled (its runs fail at once, naming why) and logged; the others
    /// run as usual.
    pub async fn disable_unloadable(&self, cancel: &CancellationToken) {
        for (task, e) in self.load_scripts(cancel).await {
            let why = crate::model::escape_controls(&e.to_string()).into_owned();
            tracing::error!(task = %task, cause = %why, "the task's script does not load: the task is disabled until the daemon restarts");
            self.unloadable
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(task, why);
        }
    }

    /// Why `task` is disabled because its script did not load, if it is.
    pub fn unloadable(&self, task: &str) -> Option<String> {
        self.unloadable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(task)
            .cloned()
    }

    /// Opens nodes from the settings, takes the history writer lock (naming `who` in it),
    /// repairs rows a crash left running, and checks every task script's syntax: a script
    /// that does not compile is remembered, failing only its own task's runs
    /// ([`App::check_script_of`]; the daemon and `run --once` refuse it up front).
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
        let (scripts, broken) = script::check_all(&settings.tasks, &settings.root);
        let http = crate::script::HttpAccess::new(&settings.scripts)?;
        let disabled = settings
            .backups
            .iter()
            .filter(|b| !b.enabled)
            .map(|b| b.name.clone())
            .collect();
        let engine = Arc::new(
            Engine::new(
                primary,
                backups,
                Arc::new(history.clone()),
                settings.sync.clone(),
            )
            .with_disabled_backups(disabled),
        );
        Ok(App {
            settings,
            engine,
            history,
            scripts,
            http,
            broken,
            running: runner::RunningTasks::default(),
            unloadable: std::sync::Mutex::default(),
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

/// Where each (backup, series) that an enabled task maintains starts: now − the longest
/// `initial_days` of those tasks (the range they keep), from the history's task scope. Verify
/// and reconcile compare each series over that range.
pub fn task_starts(
    settings: &crate::config::Settings,
    scope: Vec<crate::history::ScopeRow>,
) -> std::collections::HashMap<crate::model::BackupSeries, crate::model::Nanos> {
    let now = crate::model::now_nanos();
    let mut out = std::collections::HashMap::new();
    for r in scope {
        if !settings.task(&r.task).is_some_and(|t| t.enabled) {
            continue;
        }
        let start = now
            .saturating_sub(i64::from(r.initial_days).saturating_mul(crate::model::NANOS_PER_DAY));
        let e = out.entry(r.key).or_insert(start);
        *e = (*e).min(start);
    }
    out
}
