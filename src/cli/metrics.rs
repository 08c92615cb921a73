//! `dms metrics`: success rate, average duration, lag and failures per backup (syncs a
//! shutdown interrupted are counted apart, outside the rate).

use super::output::{Table, col};
use crate::app::{metrics, status};
use crate::history::HistoryReader;
use crate::timefmt::people;
use std::path::Path;
use std::process::ExitCode;

/// Arguments of `dms metrics`.
#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    /// Window of history to count, e.g. 24h, 7d.
    #[arg(long, default_value = "24h")]
    pub window: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Path, args: MetricsArgs) -> anyhow::Result<ExitCode> {
    let settings = super::load(config)?;
    let age = crate::input::parse_age(&args.window).map_err(super::usage)?;
    let since = crate::input::before_now(age);
    let (figures, recorded) = match HistoryReader::open_if_exists(&settings.history.path)? {
        Some(db) => (db.metrics(since)?, status::Recorded::read(&db)?),
        None => (Vec::new(), status::Recorded::default()),
    };
    let nodes = crate::app::open_nodes(&settings)?;
    let st = status::collect(&settings, &recorded, nodes.primary.as_ref(), &nodes.backups).await?;
    let report = metrics::report(&settings, args.window, since, figures, &st);
    if args.json {
        super::output::json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(vec![
        col("backup"),
        col("syncs").drop(3),
        col("success rate"),
        col("failures"),
        col("interrupted").drop(4),
        col("avg duration").drop(2),
        col("records").drop(1),
        col("max lag"),
        col("behind"),
    ]);
    let lag = |l: Option<f64>| l.map(super::output::duration).unwrap_or_else(|| "—".into());
    for b in &report.backups {
        t.add_row(vec![
            b.figures.backup.clone(),
            b.figures.syncs.to_string(),
            format!("{:.1}%", b.figures.success_rate * 100.0),
            b.figures.failures.to_string(),
            b.figures.interrupted.to_string(),
            b.figures
                .avg_duration_seconds
                .map(|s| format!("{s:.2}s"))
                .unwrap_or_else(|| "—".into()),
            b.figures.records.to_string(),
            lag(b.max_lag_seconds),
            b.behind.to_string(),
        ]);
    }
    let o = &report.overall;
    t.add_row(vec![
        "(all)".to_string(),
        o.syncs.to_string(),
        format!("{:.1}%", o.success_rate * 100.0),
        o.failures.to_string(),
        o.interrupted.to_string(),
        o.avg_duration_seconds
            .map(|s| format!("{s:.2}s"))
            .unwrap_or_else(|| "—".into()),
        o.records.to_string(),
        lag(o.max_lag_seconds),
        o.behind.to_string(),
    ]);
    t.print()?;
    super::output::line(format_args!(
        "window: {} (since {})",
        report.window,
        people(&report.since)
    ))?;
    Ok(ExitCode::SUCCESS)
}
