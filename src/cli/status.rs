//! `dms status`.

use crate::app::status;
use crate::history::{HistoryReader, Status};
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
    let rows = match HistoryReader::open_if_exists(&settings.history.path)? {
        Some(db) => db.status_rows()?,
        None => Vec::new(),
    };
    let primary = crate::node::open(&settings.primary, &settings.schema, 1)?;
    let mut lines = status::collect(&settings, &rows, primary.as_ref()).await?;
    lines.retain(|l| {
        args.backup.as_ref().is_none_or(|b| &l.key.backup == b)
            && args.symbol.as_ref().is_none_or(|s| l.key.symbol() == s)
            && (!args.behind || l.behind)
    });
    let any_behind = lines.iter().any(|l| l.behind);
    if args.json {
        super::output::json(&lines)?;
    } else {
        let mut t = super::output::table(&[
            "backup",
            "symbol",
            "interval",
            "checkpoint",
            "primary newest",
            "lag",
            "behind",
            "last",
        ]);
        for l in &lines {
            t.add_row(vec![
                l.key.backup.clone(),
                l.key.series.symbol.clone(),
                l.key.series.interval.clone(),
                super::output::opt(l.checkpoint.clone()),
                super::output::opt(l.primary_newest.clone()),
                l.lag_seconds
                    .map(super::output::duration)
                    .unwrap_or_else(|| "—".into()),
                if l.behind {
                    "BEHIND".into()
                } else {
                    String::new()
                },
                super::output::opt(l.last_status.map(Status::as_str)),
            ]);
        }
        println!("{t}");
        let behind = lines.iter().filter(|l| l.behind).count();
        println!(
            "{} backup·series, {} behind (max_gap_hours = {})",
            lines.len(),
            behind,
            settings.sync.max_gap.as_secs_f64() / 3600.0
        );
    }
    Ok(if any_behind {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
