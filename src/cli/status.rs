//! `dms status`.

use super::output::{Table, col};
use crate::app::status::{self, State};
use crate::history::{HistoryReader, Status};
use crate::timefmt::people_nanos;
use std::path::Path;
use std::process::ExitCode;

/// Arguments of `dms status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Only this backup.
    #[arg(long)]
    pub backup: Option<String>,
    /// Only this symbol.
    #[arg(long)]
    pub symbol: Option<String>,
    /// Only rows that are behind.
    #[arg(long)]
    pub behind: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Path, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let settings = super::load(config)?;
    settings.check_backups(&args.backup)?;
    let recorded = match HistoryReader::open_if_exists(&settings.history.path)? {
        Some(db) => status::Recorded::read(&db)?,
        None => status::Recorded::default(),
    };
    let nodes = crate::app::open_nodes(&settings)?;
    let mut lines =
        status::collect(&settings, &recorded, nodes.primary.as_ref(), &nodes.backups).await?;
    let known: Vec<_> = lines.iter().map(|l| l.key.series.clone()).collect();
    crate::names::NoMatch::check("in the status", args.symbol.as_slice(), &[], &known)?;
    lines.retain(|l| {
        args.backup.as_ref().is_none_or(|b| &l.key.backup == b)
            && args.symbol.as_ref().is_none_or(|s| l.key.symbol() == s)
            && (!args.behind || l.behind)
    });
    let any_behind = lines.iter().any(|l| {
        matches!(l.state, State::Behind | State::Ahead | State::Unknown) || l.stale.is_some()
    });
    if args.json {
        super::output::json(&lines)?;
    } else {
        let mut t = Table::new(vec![
            col("backup"),
            col("symbol"),
            col("interval"),
            col("state"),
            col("lag"),
            col("primary newest").drop(4),
            col("backup newest"),
            col("checkpoint").drop(1),
            col("last").drop(3),
            col("tasks").cut(8).drop(2),
        ]);
        let time = |t: Option<i64>| t.map_or_else(|| "—".to_string(), people_nanos);
        for l in &lines {
            t.add_row(vec![
                l.key.backup.clone(),
                l.key.series.symbol.clone(),
                l.key.series.interval.clone(),
                state_text(l),
                // A backup that cannot be asked: at least this much, from its checkpoint.
                match (l.lag_seconds, l.state) {
                    (None, _) => "—".into(),
                    (Some(s), State::Unknown) => format!("≥{}", super::output::duration(s)),
                    (Some(s), _) => super::output::duration(s),
                },
                time(l.primary_newest_ns),
                time(l.backup_newest_ns),
                time(l.checkpoint_ns),
                super::output::opt(l.last_status.map(Status::as_str)),
                if l.tasks.is_empty() {
                    "—".to_string()
                } else {
                    l.tasks.join(",")
                },
            ]);
        }
        t.print()?;
        let count = |s: State| lines.iter().filter(|l| l.state == s).count();
        super::output::line(format_args!(
            "{} backup·series: {} current, {} lagging, {} behind, {} ahead, {} unknown\n\
             lag: primary newest − backup newest; behind: over max_gap_hours ({}), not caught up",
            lines.len(),
            count(State::Current),
            count(State::Lagging),
            count(State::Behind),
            count(State::Ahead),
            count(State::Unknown),
            settings.sync.max_gap.as_secs_f64() / 3600.0
        ))?;
        let mut stale: Vec<&crate::model::SeriesKey> = lines
            .iter()
            .filter(|l| l.stale.is_some())
            .map(|l| &l.key.series)
            .collect();
        stale.sort();
        stale.dedup();
        if !stale.is_empty() {
            super::output::line(format_args!(
                "{} series STALE: the primary's newest bar has not advanced for the task's stale_after runs (the feed stopped?)",
                stale.len()
            ))?;
        }
        if count(State::Ahead) > 0 {
            super::output::line(format_args!(
                "{} backup·series AHEAD: the backup holds points newer than the primary's newest — the primary lost data (restored from an older snapshot?); reconcile deletes none of it, `dms restore --from BACKUP` brings it back",
                count(State::Ahead)
            ))?;
        }
        for l in lines.iter().filter(|l| l.state == State::Unknown).take(3) {
            eprintln!(
                "unknown: {}: {}",
                l.key,
                l.error.as_deref().unwrap_or("not answering")
            );
        }
    }
    Ok(if any_behind {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The state column: the state, in capitals when it needs attention, and the future and
/// stale flags.
fn state_text(l: &status::SeriesStatus) -> String {
    let mut s = match l.state {
        State::Behind | State::Ahead | State::Unknown => l.state.as_str().to_uppercase(),
        _ => l.state.as_str().to_string(),
    };
    if l.future.is_some() {
        s.push_str(" +FUTURE");
    }
    if l.stale.is_some() {
        s.push_str(" +STALE");
    }
    s
}
