//! `dms verify [--repair]`.

use crate::app::{App, Trigger};
use crate::history::HistoryDb;
use crate::model::{SeriesKey, parse_time};
use crate::sync::{Selection, SyncControl, SyncRequest};
use crate::verify::{VerifyReport, VerifyRequest, verify};
use std::path::Path;
use std::process::ExitCode;

/// Arguments of `dms verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Which backups and series.
    #[command(flatten)]
    pub filter: super::SeriesFilter,
    /// Start of the range (RFC 3339, date or ns); default now − initial_days.
    #[arg(long)]
    pub since: Option<String>,
    /// End of the range; default each backup's checkpoint (the synced range).
    #[arg(long)]
    pub until: Option<String>,
    /// Window length, e.g. 1d, 6h.
    #[arg(long, default_value = "1d")]
    pub window: String,
    /// Re-sync exactly the windows that differ, then verify again.
    #[arg(long)]
    pub repair: bool,
    /// Print JSON (the mismatching windows).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Path, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let settings = super::load(config)?;
    let window = crate::model::parse_age(&args.window)
        .map_err(anyhow::Error::msg)?
        .num_nanoseconds()
        .filter(|n| *n > 0)
        .ok_or_else(|| anyhow::anyhow!("--window must be positive"))?;
    let parse = |s: &Option<String>| -> anyhow::Result<Option<i64>> {
        s.as_deref()
            .map(parse_time)
            .transpose()
            .map_err(anyhow::Error::msg)
    };
    let (since, until) = (parse(&args.since)?, parse(&args.until)?);

    let pool = settings.sync.pool_size;
    let primary = crate::node::open(&settings.primary, &settings.schema, pool)?;
    let mut backups = Vec::new();
    for b in settings.enabled_backups() {
        if args.filter.backups.is_empty() || args.filter.backups.contains(&b.name) {
            backups.push(crate::node::open(b, &settings.schema, pool)?);
        }
    }
    for name in &args.filter.backups {
        if !backups.iter().any(|b| b.name() == name) {
            anyhow::bail!("no enabled backup is called {name:?}");
        }
    }
    let mut series: Vec<SeriesKey> = primary.list_series().await?;
    series.retain(|s| {
        (args.filter.symbols.is_empty() || args.filter.symbols.contains(&s.symbol))
            && (args.filter.intervals.is_empty() || args.filter.intervals.contains(&s.interval))
    });
    let req = VerifyRequest {
        series: series.clone(),
        since,
        until,
        window,
        initial_days: settings.sync.initial_days,
        batch_size: settings.sync.batch_size,
    };
    let checkpoints = |settings: &crate::config::Settings| -> anyhow::Result<_> {
        Ok(if settings.history.path.exists() {
            HistoryDb::open_readonly(&settings.history.path)?.checkpoints()?
        } else {
            Default::default()
        })
    };
    if series.is_empty() {
        eprintln!("nothing to verify: the primary holds no matching series");
        return Ok(ExitCode::SUCCESS);
    }
    let mut report = verify(&primary, &backups, &checkpoints(&settings)?, &req).await?;

    if args.repair && !report.mismatches.is_empty() {
        let app = App::open(settings.clone(), "dms verify --repair")?;
        let control = SyncControl {
            cancel: super::shutdown_on_signal(),
            progress: None,
        };
        for m in &report.mismatches {
            let mut sync = SyncRequest {
                backups: Some(vec![m.backup.clone()]),
                window: Some(m.range),
                ..SyncRequest::new(
                    Selection::Series(vec![SeriesKey::new(m.symbol.clone(), m.interval.clone())]),
                    settings.sync.initial_days,
                )
            };
            let out = app
                .recorded_sync("@verify-repair", Trigger::Manual, &mut sync, &control)
                .await?;
            eprintln!(
                "repaired {} {}@{} {} → {}: {} points copied{}",
                m.backup,
                m.symbol,
                m.interval,
                m.window_start,
                m.window_end,
                out.report.records(),
                out.error.map(|e| format!(" ({e})")).unwrap_or_default()
            );
        }
        drop(app);
        let before = report.mismatches.len();
        report = verify(&primary, &backups, &checkpoints(&settings)?, &req).await?;
        eprintln!(
            "{before} window(s) repaired; {} still differ{}",
            report.mismatches.len(),
            if report.mismatches.iter().any(|m| m.kind == "extra") {
                " (a backup holding points the primary lacks is not changed: dms never deletes)"
            } else {
                ""
            }
        );
    }
    print(&report, args.json)?;
    Ok(if report.mismatches.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print(report: &VerifyReport, json: bool) -> anyhow::Result<()> {
    if json {
        return super::output::json(&report.mismatches);
    }
    if !report.mismatches.is_empty() {
        let mut t = super::output::table(&[
            "backup",
            "symbol",
            "interval",
            "window start",
            "window end",
            "primary",
            "backup",
            "kind",
        ]);
        for m in &report.mismatches {
            t.add_row(vec![
                m.backup.clone(),
                m.symbol.clone(),
                m.interval.clone(),
                m.window_start.clone(),
                m.window_end.clone(),
                m.primary_points.to_string(),
                m.backup_points.to_string(),
                m.kind.to_string(),
            ]);
        }
        println!("{t}");
    }
    println!(
        "verified {} backup·series, {} windows, {} primary points: {}",
        report.compared,
        report.windows,
        report.primary_points,
        if report.mismatches.is_empty() {
            "every backup equals the primary".to_string()
        } else {
            format!("{} window(s) differ", report.mismatches.len())
        }
    );
    Ok(())
}
