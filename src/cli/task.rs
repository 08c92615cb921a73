//! `dms task list`, `dms task run NAME` and `dms task runs NAME`.

use super::output::{Table, col};
use crate::app::App;
use crate::app::tasks::{self, TaskView};
use crate::history::{HistoryReader, Trigger};
use crate::sync::SyncControl;
use crate::timefmt::people;
use std::path::Path;
use std::process::ExitCode;

/// `dms task …`
#[derive(Debug, clap::Subcommand)]
pub enum TaskCommand {
    /// List tasks with their schedule, next fire time and last run.
    List {
        /// Print JSON (an array of task objects).
        #[arg(long)]
        json: bool,
    },
    /// Run one task now.
    Run {
        /// Task name.
        name: String,
        /// Run it even when it is disabled (enabled: false), as the API's force=true.
        #[arg(long)]
        force: bool,
        /// Print JSON (the run object with its sync history rows).
        #[arg(long)]
        json: bool,
    },
    /// A task's runs, newest first (use `dms history --run ID` for one run's syncs).
    Runs {
        /// Task name (or a pseudo-task: @sync, @check, @reconcile, @restore, @verify-repair).
        name: String,
        /// At most this many runs; 0 = all.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON (an array of run objects).
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: &Path, cmd: TaskCommand) -> anyhow::Result<ExitCode> {
    let settings = super::load(config)?;
    match cmd {
        TaskCommand::List { json } => list(&settings, json),
        TaskCommand::Runs { name, limit, json } => runs(&settings, &name, limit, json),
        TaskCommand::Run { name, force, json } => run_one(settings, &name, force, json).await,
    }
}

/// `dms task list`.
fn list(settings: &crate::config::Settings, json: bool) -> anyhow::Result<ExitCode> {
    let last = match HistoryReader::open_if_exists(&settings.history.path)? {
        Some(db) => db.last_runs()?,
        None => Vec::new(),
    };
    let views: Vec<TaskView> = tasks::summaries(settings, &last, chrono::Utc::now(), |_| false)
        .into_iter()
        .map(TaskView::from)
        .collect();
    if json {
        super::output::json(&views)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(vec![
        col("task"),
        col("enabled").drop(2),
        col("schedule").drop(4),
        col("timezone").drop(3),
        col("next run"),
        col("script").cut(8).drop(1),
        col("last run").drop(5),
        col("status"),
    ]);
    for v in views {
        t.add_row(vec![
            v.name,
            if v.enabled { "yes".into() } else { "no".into() },
            super::output::opt(v.schedule),
            v.timezone,
            super::output::opt(v.next_run.as_ref().map(people)),
            super::output::opt(v.script),
            super::output::opt(v.last_run.as_ref().map(|r| people(&r.started_at))),
            super::output::opt(v.last_run.map(|r| r.status.as_str().to_string())),
        ]);
    }
    t.print()?;
    Ok(ExitCode::SUCCESS)
}

/// `dms task runs NAME`.
fn runs(
    settings: &crate::config::Settings,
    name: &str,
    limit: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let runs = match HistoryReader::open_if_exists(&settings.history.path)? {
        Some(db) => db.runs(Some(name), limit)?,
        None => Vec::new(),
    };
    tasks::check_known(settings, name, !runs.is_empty())?;
    if json {
        super::output::json(&runs)?;
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        eprintln!("no runs of {name} recorded yet");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(vec![
        col("run"),
        col("trigger").drop(3),
        col("started"),
        col("time").drop(2),
        col("status"),
        col("syncs").drop(4),
        col("failed"),
        col("records").drop(1),
        col("error").cut(12),
    ]);
    for r in &runs {
        t.add_row(vec![
            r.id.to_string(),
            r.trigger.clone(),
            people(&r.started_at),
            r.duration_seconds
                .map(|s| format!("{s:.1}s"))
                .unwrap_or_else(|| "—".into()),
            r.status.as_str().to_string(),
            r.syncs.to_string(),
            r.failed.to_string(),
            r.records.to_string(),
            r.error
                .as_deref()
                .or(r.warning.as_deref())
                .unwrap_or_default()
                .to_string(),
        ]);
    }
    t.print()?;
    Ok(ExitCode::SUCCESS)
}

/// `dms task run NAME`.
async fn run_one(
    settings: crate::config::Settings,
    name: &str,
    force: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match settings.task(name) {
        None => return Err(crate::app::AppError::UnknownTask(name.to_string()).into()),
        Some(t) if !t.enabled && !force => {
            return Err(super::usage(format!(
                "task {name:?} is disabled (enabled: false in task.yaml); --force runs it anyway"
            )));
        }
        Some(_) => {}
    }
    let app = App::open(settings, &format!("dms task run {name}"))?;
    let bar = super::progress::Bar::new();
    let shutdown = super::shutdown_on_signal();
    let control = SyncControl {
        cancel: shutdown.token().clone(),
        progress: bar.clone().map(|b| b as _),
    };
    let outcome = app.run_task(name, Trigger::Manual, &control).await?;
    if let Some(b) = bar {
        b.finish();
    }
    shutdown.note(outcome.stopped());
    let outcomes = [outcome];
    if json {
        super::run::print_run_json(&app, &outcomes[0]).await?;
    } else {
        super::run::print_outcomes(&app, &outcomes, false).await?;
    }
    Ok(super::run::exit_code(&outcomes))
}
