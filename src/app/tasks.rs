//! The task summary — schedule, time zone, next fire time, whether it runs now, last run —
//! built once here for `dms task list`, `GET /api/dms/tasks` and the status page.

use crate::config::Settings;
use crate::config::de::CronExpr;
use crate::history::RunRow;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// One task as operators see it.
#[derive(Debug, Clone)]
pub struct TaskSummary {
    /// Task name.
    pub name: String,
    /// Whether it runs at all.
    pub enabled: bool,
    /// Its cron schedule, if any.
    pub schedule: Option<CronExpr>,
    /// The zone the schedule is read in.
    pub timezone: Tz,
    /// The next time the schedule fires (enabled tasks only), in the task's zone.
    pub next_run: Option<DateTime<Tz>>,
    /// The script, relative to the project root when it lies below it.
    pub script: Option<String>,
    /// Whether a run is going now.
    pub running: bool,
    /// The latest run.
    pub last_run: Option<RunRow>,
}

/// Summaries of every task in file order, from the latest runs and `running` (which tells
/// whether a task has a run in progress; `|_| false` outside the daemon).
pub fn summaries(
    settings: &Settings,
    last_runs: &[RunRow],
    now: DateTime<Utc>,
    running: impl Fn(&str) -> bool,
) -> Vec<TaskSummary> {
    settings
        .tasks
        .iter()
        .map(|t| TaskSummary {
            name: t.name.clone(),
            enabled: t.enabled,
            schedule: t.schedule.clone(),
            timezone: t.timezone,
            next_run: t
                .schedule
                .as_ref()
                .filter(|_| t.enabled)
                .and_then(|c| crate::scheduler::next_after(&c.schedule, t.timezone, now))
                .map(|n| n.with_timezone(&t.timezone)),
            script: t
                .script
                .as_ref()
                .map(|p| crate::script::display_path(p, &settings.root)),
            running: running(&t.name),
            last_run: last_runs.iter().find(|r| r.task == t.name).cloned(),
        })
        .collect()
}
