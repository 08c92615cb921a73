//! `dms task list` and `dms task run NAME`.

use crate::app::{App, Trigger};
use crate::history::HistoryDb;
use crate::sync::SyncControl;
use std::path::Path;
use std::process::ExitCode;

/// `dms task …`
#[derive(Debug, clap::Subcommand)]
pub enum TaskCommand {
    /// List tasks with their schedule, next fire time and last run.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run one task now.
    Run {
        /// Task name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// One line of `dms task list`.
#[derive(Debug, serde::Serialize)]
pub struct TaskLine {
    name: String,
    enabled: bool,
    schedule: Option<String>,
    timezone: String,
    next_run: Option<String>,
    script: Option<String>,
    last_run: Option<String>,
    last_status: Option<String>,
}

pub async fn run(config: &Path, cmd: TaskCommand) -> anyhow::Result<ExitCode> {
    let settings = super::load(config)?;
    match cmd {
        TaskCommand::List { json } => {
            let last = if settings.history.path.exists() {
                HistoryDb::open_readonly(&settings.history.path)?.last_runs()?
            } else {
                Vec::new()
            };
            let now = chrono::Utc::now();
            let lines: Vec<TaskLine> = settings
                .tasks
                .iter()
                .map(|t| {
                    let next = t.schedule.as_ref().and_then(|c| {
                        crate::scheduler::next_after(&c.schedule, t.timezone, now)
                            .map(|d| d.with_timezone(&t.timezone).to_rfc3339())
                    });
                    let l = last.iter().find(|r| r.task == t.name);
                    TaskLine {
                        name: t.name.clone(),
                        enabled: t.enabled,
                        schedule: t.schedule.as_ref().map(|c| c.text.clone()),
                        timezone: t.timezone.name().to_string(),
                        next_run: if t.enabled { next } else { None },
                        script: t
                            .script
                            .as_ref()
                            .map(|p| crate::script::display_path(p, &settings.root)),
                        last_run: l.map(|r| r.started_at.clone()),
                        last_status: l.map(|r| r.status.clone()),
                    }
                })
                .collect();
            if json {
                super::output::json(&lines)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = super::output::table(&[
                "task", "enabled", "schedule", "timezone", "next run", "script", "last run",
                "status",
            ]);
            for l in lines {
                t.add_row(vec![
                    l.name,
                    if l.enabled { "yes".into() } else { "no".into() },
                    super::output::opt(l.schedule),
                    l.timezone,
                    super::output::opt(l.next_run),
                    super::output::opt(l.script),
                    super::output::opt(l.last_run),
                    super::output::opt(l.last_status),
                ]);
            }
            println!("{t}");
            Ok(ExitCode::SUCCESS)
        }
        TaskCommand::Run { name, json } => {
            if settings.task(&name).is_none() {
                return Err(crate::app::AppError::UnknownTask(name).into());
            }
            let app = App::open(settings, &format!("dms task run {name}"))?;
            let bar = super::progress::Bar::new();
            let control = SyncControl {
                cancel: super::shutdown_on_signal(),
                progress: bar.clone().map(|b| b as _),
            };
            let outcome = app.run_task(&name, Trigger::Manual, &control).await?;
            if let Some(b) = bar {
                b.finish();
            }
            let outcomes = [outcome];
            super::run::print_outcomes(&outcomes, json)?;
            Ok(super::run::exit_code(&outcomes))
        }
    }
}
