//! `dms sync`: a manual sync outside any task.

use super::output::{Table, col};
use crate::app::App;
use crate::config::SyncMode;
use crate::history::Status;
use crate::sync::{Selection, SyncControl, SyncRequest};
use crate::timefmt::people_nanos;
use std::path::Path;
use std::process::ExitCode;

/// Arguments of `dms sync`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Which backups and series.
    #[command(flatten)]
    pub filter: super::SeriesFilter,
    /// Ignore checkpoints and recopy the initial_days range (repair a wiped backup).
    #[arg(long)]
    pub full: bool,
    /// Days copied on first sync or with --full (default: sync.incremental.initial_days).
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    pub initial_days: Option<u32>,
    /// Only (backup, series) whose checkpoint is behind the primary's newest point (what the
    /// daemon's check loop does): no data is read when everything is current.
    #[arg(long, conflicts_with = "full")]
    pub only_behind: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Path, args: SyncArgs) -> anyhow::Result<ExitCode> {
    let settings = super::load(config)?;
    settings.check_backups(&args.filter.backups)?;
    let non_empty = |v: Vec<String>| (!v.is_empty()).then_some(v);
    let req = SyncRequest {
        selection: Selection::Primary {
            symbols: non_empty(args.filter.symbols),
            intervals: non_empty(args.filter.intervals),
        },
        backups: non_empty(args.filter.backups),
        mode: if args.full {
            SyncMode::Full
        } else {
            settings.sync.default_mode
        },
        initial_days: args.initial_days.unwrap_or(settings.sync.initial_days),
        run_id: None,
        window: None,
        only_behind: args.only_behind,
        scope: None,
    };
    let app = App::open(settings, "dms sync")?;
    let bar = super::progress::Bar::new();
    let shutdown = super::shutdown_on_signal();
    let control = SyncControl {
        cancel: shutdown.token().clone(),
        progress: bar.clone().map(|b| b as _),
    };
    let outcome = app.manual_sync(req, &control).await?;
    if let Some(b) = bar {
        b.finish();
    }
    shutdown.note(outcome.stopped());
    if args.json {
        super::run::print_run_json(&app, &outcome).await?;
    } else {
        let mut t = Table::new(vec![
            col("backup"),
            col("symbol"),
            col("interval"),
            col("status"),
            col("records").drop(2),
            col("window").drop(1),
            col("error").cut(8).drop(3),
        ]);
        for u in &outcome.report.units {
            t.add_row(vec![
                u.key.backup.clone(),
                u.key.series.symbol.clone(),
                u.key.series.interval.clone(),
                u.status.as_str().to_string(),
                u.records.to_string(),
                format!(
                    "{} → {}",
                    people_nanos(u.window_start),
                    people_nanos(u.window_end)
                ),
                u.error.clone().unwrap_or_default(),
            ]);
        }
        t.print()?;
        let r = &outcome.report;
        let stopped = if r.was_interrupted() {
            format!(
                ", {} interrupted, {} not started",
                r.interrupted(),
                r.not_started
            )
        } else {
            String::new()
        };
        super::output::line(format_args!(
            "run {}: {} — {} series·backup, {} records, {} failed{stopped}, {:.1}s",
            outcome.run_id,
            outcome.status.as_str(),
            r.units.len(),
            r.records(),
            r.failed(),
            outcome.duration_ms as f64 / 1000.0
        ))?;
        // A stop is reported in one line when the command ends, not as an error.
        if let Some(e) = outcome
            .error
            .as_ref()
            .filter(|_| outcome.status != Status::Interrupted)
        {
            eprintln!("error: {e}");
        }
        if let Some(w) = outcome
            .warning
            .as_ref()
            .filter(|w| outcome.error.as_ref() != Some(w))
        {
            eprintln!("warning: {w}");
        }
    }
    Ok(if outcome.status == Status::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
