//! `dms task list` and `dms task run NAME`.

use super::output::{Table, col};
use crate::app::{App, tasks};
use crate::history::{HistoryReader, Trigger, time_text};
use crate::sync::SyncControl;
use crate::timefmt::people;
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

/// A task's times as the table shows them.
struct PeopleTimes {
    next_run: Option<String>,
    last_run: Option<String>,
}

pub async fn run(config: &Path, cmd: TaskCommand) -> anyhow::Result<ExitCode> {
    let settings = super::load(config)?;
    match cmd {
        TaskCommand::List { json } => {
            let last = match HistoryReader::open_if_exists(&settings.history.path)? {
                Some(db) => db.last_runs()?,
                None => Vec::new(),
            };
            let summaries = tasks::summaries(&settings, &last, chrono::Utc::now(), |_| false);
            let people_times: Vec<PeopleTimes> = summaries
                .iter()
                .map(|t| PeopleTimes {
                    next_run: t.next_run.as_ref().map(people),
                    last_run: t.last_run.as_ref().map(|r| people(&r.started_at)),
                })
                .collect();
            let lines: Vec<TaskLine> = summaries
                .into_iter()
                .map(|t| TaskLine {
                    name: t.name,
                    enabled: t.enabled,
                    schedule: t.schedule.map(|c| c.text),
                    timezone: t.timezone.name().to_string(),
                    next_run: t.next_run.map(|n| n.to_rfc3339()),
                    script: t.script,
                    last_run: t.last_run.as_ref().map(|r| time_text(r.started_at)),
                    last_status: t.last_run.map(|r| r.status.as_str().to_string()),
                })
                .collect();
            if json {
                super::output::json(&lines)?;
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
            for (l, s) in lines.into_iter().zip(people_times) {
                t.add_row(vec![
                    l.name,
                    if l.enabled { "yes".into() } else { "no".into() },
                    super::output::opt(l.schedule),
                    l.timezone,
                    super::output::opt(s.next_run),
                    super::output::opt(l.script),
                    super::output::opt(s.last_run),
                    super::output::opt(l.last_status),
                ]);
            }
            t.print()?;
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
