//! The command line: clap types and one function per subcommand. Every command returns an
//! exit code: 0 success, 1 when any task, series or check failed, 2 for bad input; a command
//! that does work and is stopped by SIGINT or SIGTERM exits 130 or 143 (the daemon, whose way
//! to end a signal is, 0).

mod completions;
mod config_check;
mod history;
mod import;
pub mod logging;
mod man;
mod metrics;
mod output;
pub mod progress;
mod reconcile;
mod restore;
mod run;
mod status;
mod sync;
mod task;
mod verify;

use crate::config::{self, Settings};
use crate::shutdown::{Shutdown, Signal};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// dms — keeps backup time-series stores in sync with a primary, driven by Lua tasks.
#[derive(Debug, Parser)]
#[command(name = "dms", version, about, long_about = None)]
pub struct Cli {
    /// Folder holding sync.yaml and task.yaml.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "DMS_CONFIG",
        default_value = "config"
    )]
    pub config: PathBuf,

    /// Log filter (error, warn, info, debug, trace or a tracing directive); default: info for
    /// commands that change data, warn for the others. RUST_LOG also works. rustls, hyper,
    /// hyper_util, reqwest and h2 stay at warn unless the filter names them.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,

    /// Log lines as text or as one JSON object per line (for log shippers).
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text)]
    pub log_format: logging::LogFormat,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every enabled task once (--once) or the daemon.
    Run(run::RunArgs),
    /// List tasks, run one now, or show a task's runs.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Sync now, outside any task (every series the primary holds unless filtered).
    Sync(sync::SyncArgs),
    /// Show sync history, or prune it.
    History(history::HistoryArgs),
    /// Show checkpoints, lag and `behind` per backup and series.
    Status(status::StatusArgs),
    /// Success rate, average sync duration, lag and failures per backup.
    Metrics(metrics::MetricsArgs),
    /// Compare primary and backups window by window; exit 1 on any difference.
    Verify(verify::VerifyArgs),
    /// Compare server-computed digests of every window and repair the windows that differ.
    Reconcile(reconcile::ReconcileCliArgs),
    /// Copy a backup back into the primary (or another node) and compare the range exactly.
    Restore(restore::RestoreCliArgs),
    /// Stream CSV files into the primary (or another node) in batches, as a recorded run.
    Import(import::ImportArgs),
    /// Validate the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print the manual page (roff), or write one page per subcommand with --out.
    Man(man::ManArgs),
    /// (internal) The process a task's script runs in, started by dms itself.
    #[command(name = "__script", hide = true)]
    Script {
        /// The task whose script to run.
        task: String,
    },
}

/// `dms config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate sync.yaml and task.yaml and compile every task script.
    Check(config_check::CheckArgs),
}

impl Cli {
    /// The default log filter for this command.
    pub fn default_log_filter(&self) -> &'static str {
        match &self.command {
            Command::Run(_) | Command::Sync(_) => "info",
            Command::Verify(v) if v.repair => "info",
            Command::Reconcile(_) | Command::Restore(_) => "info",
            Command::Import(_) => "info",
            Command::Task(task::TaskCommand::Run { .. }) => "info",
            _ => "warn",
        }
    }
}

/// Runs the parsed command on a new multi-threaded runtime (built here, in the library, so
/// the binary instantiates nothing of tokio's: an edit anywhere rebuilds a tiny `main`).
pub fn run_blocking(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(run(cli))
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> ExitCode {
    // The daemon ends on a signal by design: it exits 0 and reports its stop itself.
    let daemon = matches!(&cli.command, Command::Run(a) if !a.once);
    let result = match cli.command {
        Command::Run(args) => run::run(&cli.config, args).await,
        Command::Task(cmd) => task::run(&cli.config, cmd).await,
        Command::Sync(args) => sync::run(&cli.config, args).await,
        Command::History(args) => history::run(&cli.config, args).await,
        Command::Status(args) => status::run(&cli.config, args).await,
        Command::Metrics(args) => metrics::run(&cli.config, args).await,
        Command::Verify(args) => verify::run(&cli.config, args).await,
        Command::Reconcile(args) => reconcile::run(&cli.config, args).await,
        Command::Restore(args) => restore::run(&cli.config, args).await,
        Command::Import(args) => import::run(&cli.config, args).await,
        Command::Config(ConfigCommand::Check(args)) => config_check::check(&cli.config, args).await,
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
        Command::Script { task } => return crate::script::worker::run(&cli.config, &task).await,
    };
    let stopped = SHUTDOWN
        .get()
        .filter(|_| !daemon)
        .and_then(|s| s.signal().map(|sig| (s, sig)));
    if let Some((shutdown, signal)) = stopped {
        // Stopped by a signal: whatever the work's outcome, the caller asked for the stop.
        if let Err(e) = &result {
            eprintln!("error: {e:#}");
        }
        shutdown.report(None);
        return ExitCode::from(signal.exit_code());
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code_of(&e))
        }
    }
}

/// Bad input on the command line (an age, a time, a status name that cannot be read).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Usage(pub String);

/// A [`Usage`] error.
pub(crate) fn usage(message: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(Usage(message.to_string()))
}

/// 2 for what must be fixed before dms can work (the configuration, a script, an argument,
/// an unusable or locked history file), 1 for work that failed (a node, a sync).
fn exit_code_of(e: &anyhow::Error) -> u8 {
    let bad_input = e.chain().any(|c| {
        c.is::<config::ConfigError>()
            || c.is::<config::UnknownBackup>()
            || c.is::<config::UnknownConfiguredBackup>()
            || c.is::<Usage>()
            || c.is::<crate::history::HistoryError>()
            || c.is::<crate::ledger::LedgerError>()
            || c.downcast_ref::<crate::restore::RestoreError>()
                .is_some_and(crate::restore::RestoreError::is_bad_input)
            || matches!(
                c.downcast_ref::<crate::app::AppError>(),
                Some(
                    crate::app::AppError::Config(_)
                        | crate::app::AppError::Scripts(_)
                        | crate::app::AppError::UnknownTask(_)
                        | crate::app::AppError::History(_)
                )
            )
            || matches!(
                c.downcast_ref::<crate::app::AppError>(),
                Some(crate::app::AppError::Restore(e)) if e.is_bad_input()
            )
            || matches!(
                c.downcast_ref::<crate::app::AppError>(),
                Some(
                    crate::app::AppError::UnknownNode { .. } | crate::app::AppError::ImportFile(_)
                )
            )
    });
    if bad_input { 2 } else { 1 }
}

/// `--backup`, `--symbol`, `--interval` filters shared by `sync` and `verify`.
#[derive(Debug, clap::Args)]
pub struct SeriesFilter {
    /// Only this backup (repeatable); default: every enabled backup.
    #[arg(long = "backup", value_name = "NAME")]
    pub backups: Vec<String>,
    /// Only this symbol (repeatable); default: every symbol on the primary.
    #[arg(long = "symbol", value_name = "SYMBOL")]
    pub symbols: Vec<String>,
    /// Only this interval (repeatable); default: every interval on the primary.
    #[arg(long = "interval", value_name = "INTERVAL")]
    pub intervals: Vec<String>,
}

/// Loads the settings from `dir`.
pub(crate) fn load(dir: &std::path::Path) -> anyhow::Result<Settings> {
    Ok(config::load(dir)?)
}

/// The process's shutdown handle, once a command that does work asked for it (signals are a
/// process's, so the handle is too).
static SHUTDOWN: std::sync::OnceLock<Shutdown> = std::sync::OnceLock::new();

/// The process's shutdown handle, listening for signals from the first call: the first
/// SIGINT or SIGTERM stops it (recorded, for the exit code and the one line that reports the
/// stop); batches in flight finish and commit. A second one quits at once.
pub(crate) fn shutdown_on_signal() -> Shutdown {
    SHUTDOWN
        .get_or_init(|| {
            let shutdown = Shutdown::new();
            tokio::spawn(listen(shutdown.clone()));
            shutdown
        })
        .clone()
}

/// Stops `shutdown` on the first signal, quits the process on the second.
async fn listen(shutdown: Shutdown) {
    let Some(mut signals) = Signals::new() else {
        // Without handlers the signals keep their default action: they end the process.
        return;
    };
    let first = signals.next().await;
    shutdown.stop(Some(first));
    progress::BARS.note(&format!(
        "stopping ({}): finishing the batches in flight; again to quit at once",
        first.name()
    ));
    let second = signals.next().await;
    eprintln!(
        "dms: {} again: quitting at once; the batches in flight are lost, the next run resumes from the last acknowledged ones",
        second.name()
    );
    std::process::exit(i32::from(second.exit_code()));
}

/// SIGINT and SIGTERM, as a stream.
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers; `None` when they cannot be installed.
    fn new() -> Option<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Some(Signals {
                int: signal(SignalKind::interrupt()).ok()?,
                term: signal(SignalKind::terminate()).ok()?,
            })
        }
        #[cfg(not(unix))]
        {
            Some(Signals {})
        }
    }

    /// The next signal.
    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => Signal::Interrupt,
                _ = self.term.recv() => Signal::Terminate,
            }
        }
        #[cfg(not(unix))]
        {
            // Only Ctrl-C is known there; an error leaves the process to its default.
            match tokio::signal::ctrl_c().await {
                Ok(()) => Signal::Interrupt,
                Err(_) => std::future::pending().await,
            }
        }
    }
}
