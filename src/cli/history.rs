//! `dms history` and `dms history prune`.

use super::output::{Table, col};
use crate::history::{HistoryFilter, HistoryReader, HistoryWriter, Status};
use crate::input::{parse_age, parse_point_in_time};
use crate::timefmt::people;
use std::path::Path;
use std::process::ExitCode;

/// Arguments of `dms history`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HistoryArgs {
    /// `prune`.
    #[command(subcommand)]
    pub command: Option<HistoryCommand>,
    /// Only this backup.
    #[arg(long)]
    pub backup: Option<String>,
    /// Only this symbol.
    #[arg(long)]
    pub symbol: Option<String>,
    /// Only this interval.
    #[arg(long)]
    pub interval: Option<String>,
    /// Only this status (running, success, failed, interrupted).
    #[arg(long)]
    pub status: Option<String>,
    /// Only rows started at or after: RFC 3339, a date, or an age such as 24h, 7d, 30m.
    #[arg(long)]
    pub since: Option<String>,
    /// Only rows started before (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Only rows of this task run.
    #[arg(long)]
    pub run: Option<i64>,
    /// Only rows of this task's runs (or a pseudo-task: @sync, @check, @reconcile, @restore, @verify-repair).
    #[arg(long)]
    pub task: Option<String>,
    /// At most this many rows (newest first); 0 = all.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `dms history …`
#[derive(Debug, clap::Subcommand)]
pub enum HistoryCommand {
    /// Delete sync history and task runs older than an age (checkpoints are kept). On a
    /// terminal it asks first.
    Prune {
        /// Age such as 90d, 12h; default: history.retention_days.
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
        /// Count what would be deleted and delete nothing (works while the daemon runs).
        #[arg(long)]
        dry_run: bool,
        /// Do not ask, even on a terminal.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// `dms history prune`: a writer, so it takes the lock first (refused at once while the
/// daemon holds it); counts what would go; on a terminal asks; then deletes. A dry run only
/// reads (it works while the daemon runs).
fn prune(
    path: &Path,
    settings: &crate::config::Settings,
    age: chrono::Duration,
    dry_run: bool,
    yes: bool,
) -> anyhow::Result<ExitCode> {
    if !path.exists() {
        eprintln!(
            "no sync history yet at {}: nothing to prune",
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut writer = if dry_run {
        None
    } else {
        Some(HistoryWriter::open(
            path,
            "dms history prune",
            settings.history.busy_timeout,
        )?)
    };
    let would = HistoryReader::open(path)?.prunable(age)?;
    let what = format!(
        "{} sync history rows and {} task runs started before {}",
        would.rows,
        would.runs,
        people(&would.cutoff)
    );
    let Some(db) = writer.as_mut() else {
        super::output::line(format_args!(
            "would prune {what} (dry run: nothing deleted)"
        ))?;
        return Ok(ExitCode::SUCCESS);
    };
    if would.rows == 0 && would.runs == 0 {
        super::output::line(format_args!(
            "nothing to prune: no rows started before {}",
            people(&would.cutoff)
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdin())
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    if terminal && !yes && !confirm(&format!("delete {what}? [y/N] "))? {
        eprintln!("nothing deleted");
        return Ok(ExitCode::from(1));
    }
    let p = db.prune_older_than(age)?;
    super::output::line(format_args!(
        "pruned {} sync history rows and {} task runs started before {}",
        p.rows,
        p.runs,
        people(&p.cutoff)
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Asks `question` on stderr and reads one line from stdin: yes only for `y` or `yes`.
fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::Write as _;
    let mut err = std::io::stderr();
    err.write_all(question.as_bytes())?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

pub async fn run(config: &Path, args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let settings = super::load(config)?;
    // The history of a disabled backup stays readable.
    settings.check_configured_backups(&args.backup)?;
    let path = &settings.history.path;
    if let Some(HistoryCommand::Prune {
        older_than,
        dry_run,
        yes,
    }) = args.command
    {
        let age = match older_than {
            Some(s) => parse_age(&s).map_err(super::usage)?,
            None => chrono::Duration::days(i64::from(settings.history.retention_days)),
        };
        return prune(path, &settings, age, dry_run, yes);
    }
    let status = match args.status.as_deref().map(|s| (s, Status::parse(s))) {
        Some((
            _,
            Some(s @ (Status::Running | Status::Success | Status::Failed | Status::Interrupted)),
        )) => Some(s),
        Some((s, _)) => {
            return Err(super::usage(format!(
                "--status {s:?}: use running, success, failed or interrupted"
            )));
        }
        None => None,
    };
    let filter = HistoryFilter {
        backup: args.backup,
        symbol: args.symbol,
        interval: args.interval,
        status,
        since: args
            .since
            .as_deref()
            .map(parse_point_in_time)
            .transpose()
            .map_err(super::usage)?,
        until: args
            .until
            .as_deref()
            .map(parse_point_in_time)
            .transpose()
            .map_err(super::usage)?,
        run_id: args.run,
        task: args.task,
        before_id: None,
        limit: args.limit,
    };
    let db = HistoryReader::open_if_exists(path)?;
    if let Some(t) = filter
        .task
        .as_deref()
        .filter(|t| !crate::app::tasks::is_named(&settings, t))
    {
        let has_runs = match &db {
            Some(db) => !db.runs(Some(t), 1)?.is_empty(),
            None => false,
        };
        crate::app::tasks::check_known(&settings, t, has_runs)?;
    }
    let Some(db) = db else {
        if args.json {
            super::output::line("[]")?;
        } else {
            eprintln!("no sync history yet at {}", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    };
    let rows = db.history(&filter)?;
    if rows.is_empty() && (filter.symbol.is_some() || filter.interval.is_some()) {
        // Nothing matched: a name the history never saw is a mistake, not an empty answer.
        crate::names::NoMatch::check(
            "in the history",
            filter.symbol.as_slice(),
            filter.interval.as_slice(),
            &db.series_names()?,
        )?;
    }
    if args.json {
        super::output::json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(vec![
        col("id").drop(3),
        col("run").drop(2),
        col("backup"),
        col("symbol"),
        col("interval"),
        col("mode").drop(1),
        col("started"),
        col("status"),
        col("records").drop(4),
        col("error").cut(8).drop(5),
    ]);
    for r in &rows {
        t.add_row(vec![
            r.id.to_string(),
            super::output::opt(r.run_id),
            r.key.backup.clone(),
            r.key.series.symbol.clone(),
            r.key.series.interval.clone(),
            r.mode.clone(),
            people(&r.started_at),
            r.status.as_str().to_string(),
            r.records.to_string(),
            r.error.clone().unwrap_or_default(),
        ]);
    }
    t.print()?;
    Ok(ExitCode::SUCCESS)
}
