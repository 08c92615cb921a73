//! The task summary — schedule, time zone, next fire time, whether it runs now, last run —
//! built once here for `dms task list`, `GET /api/dms/tasks` and the status page, and its one
//! JSON shape ([`TaskView`]) for `dms task list --json` and the API.

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

/// A task filter must name a configured task, a pseudo-task of dms's own runs (`@sync`,
/// `@check`, `@reconcile`, `@restore`, `@verify-repair`: any name starting with `@`), or a
/// task the history holds runs of (`has_runs`: renamed or removed since).
///
/// # Errors
/// [`super::AppError::UnknownTask`].
pub fn check_known(settings: &Settings, name: &str, has_runs: bool) -> Result<(), super::AppError> {
    if has_runs || is_named(settings, name) {
        Ok(())
    } else {
        Err(super::AppError::UnknownTask(name.to_string()))
    }
}

/// Whether `name` is a configured task or one of dms's own pseudo-tasks (`@…`): known without
/// asking the history.
pub fn is_named(settings: &Settings, name: &str) -> bool {
    name.starts_with('@') || settings.task(name).is_some()
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

/// A task as `dms task list --json` and `GET /api/dms/tasks` show it (README "JSON shapes").
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskView {
    /// Task name.
    pub name: String,
    /// Whether it runs at all.
    pub enabled: bool,
    /// Its cron schedule as written, if any.
    pub schedule: Option<String>,
    /// The IANA zone the schedule is read in.
    pub timezone: String,
    /// The next time the schedule fires (RFC 3339 UTC).
    #[serde(with = "crate::history::wallclock::option")]
    pub next_run: Option<DateTime<Utc>>,
    /// The script, relative to the project root when it lies below it.
    pub script: Option<String>,
    /// Whether a run is going now (always `false` outside the daemon).
    pub running: bool,
    /// The latest run, as a run object.
    pub last_run: Option<RunRow>,
}

impl From<TaskSummary> for TaskView {
    fn from(t: TaskSummary) -> Self {
        TaskView {
            name: t.name,
            enabled: t.enabled,
            schedule: t.schedule.map(|c| c.text),
            timezone: t.timezone.name().to_string(),
            next_run: t.next_run.map(|n| n.with_timezone(&Utc)),
            script: t.script,
            running: t.running,
            last_run: t.last_run,
        }
    }
}
