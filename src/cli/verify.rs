//! `dms verify [--repair]`.

use super::output::{Table, col};
use crate::app::App;
use crate::app::verify::{Scope, Verifier};
use crate::sync::SyncControl;
use crate::timefmt::people_text;
use crate::verify::VerifyReport;
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
    /// Also fail (exit 1) on windows where a backup only holds extra points the primary no
    /// longer has (by default they are reported, exit 0: dms never deletes unless
    /// reconcile.mirror_deletes is on).
    #[arg(long)]
    pub strict: bool,
}

pub async fn run(config: &Path, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let settings = super::load(config)?;
    settings.check_backups(&args.filter.backups)?;
    let window = crate::input::parse_age(&args.window)
        .map_err(super::usage)?
        .num_nanoseconds()
        .filter(|n| *n > 0)
        .ok_or_else(|| super::usage("--window must be positive"))?;
    let parse = |s: &Option<String>| -> anyhow::Result<Option<i64>> {
        s.as_deref()
            .map(crate::input::parse_point_in_time_nanos)
            .transpose()
            .map_err(super::usage)
    };
    let scope = Scope {
        backups: args.filter.backups,
        symbols: args.filter.symbols,
        intervals: args.filter.intervals,
        since: parse(&args.since)?,
        until: parse(&args.until)?,
        window,
    };
    let verifier = Verifier::open(&settings, &scope)?;
    // Comparing only reads: a stop ends it where it is.
    let shutdown = super::shutdown_on_signal();
    let stopped = || {
        shutdown.report(Some(
            "verify stopped before every window was compared; nothing was changed",
        ));
        Ok(ExitCode::from(1))
    };
    let Some(series) = until_stopped(&shutdown, verifier.series(&scope)).await else {
        return stopped();
    };
    let series = series?;
    if series.is_empty() {
        eprintln!("nothing to verify: the primary holds no matching series");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(report) = until_stopped(&shutdown, verifier.verify(&series, &scope)).await else {
        return stopped();
    };
    let mut report = report?;

    if args.repair && !report.mismatches.is_empty() {
        let app = App::open(settings, "dms verify --repair")?;
        let control = SyncControl {
            cancel: shutdown.token().clone(),
            progress: None,
        };
        let repairs = app.repair(&report.mismatches, &control).await?;
        if shutdown.is_stopping() {
            let done = repairs
                .iter()
                .filter(|r| r.status == crate::history::Status::Success)
                .count();
            shutdown.report(Some(&format!(
                "verify --repair stopped after repairing {done} of {} differing windows; the repairs written are kept, verify again for the rest",
                report.mismatches.len()
            )));
            return Ok(ExitCode::from(1));
        }
        for r in repairs {
            let m = &r.mismatch;
            eprintln!(
                "repaired {} {} → {}: {} points copied{}",
                m.key,
                people_text(&m.window_start),
                people_text(&m.window_end),
                r.records,
                r.error.map(|e| format!(" ({e})")).unwrap_or_default()
            );
        }
        drop(app);
        let before = report.mismatches.len();
        report = verifier.verify(&series, &scope).await?;
        eprintln!(
            "{before} window(s) repaired; {} still differ{}",
            report.mismatches.len(),
            if report.mismatches.iter().any(|m| m.extra > 0) {
                " (a backup holding points the primary lacks is not changed: dms never deletes)"
            } else {
                ""
            }
        );
    }
    print(&report, args.json)?;
    let failing = report
        .mismatches
        .iter()
        .any(|m| args.strict || m.kind.loses_data());
    Ok(if failing {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `fut`'s output, or `None` when the stop comes first (`fut` is dropped: it only reads).
async fn until_stopped<T>(
    shutdown: &crate::shutdown::Shutdown,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        out = fut => Some(out),
        _ = shutdown.stopping() => None,
    }
}

fn print(report: &VerifyReport, json: bool) -> anyhow::Result<()> {
    if json {
        return super::output::json(&report.mismatches);
    }
    if !report.mismatches.is_empty() {
        let mut t = Table::new(vec![
            col("backup"),
            col("symbol"),
            col("interval"),
            col("window start"),
            col("window end").drop(1),
            col("primary"),
            col("backup"),
            col("kind"),
        ]);
        for m in &report.mismatches {
            t.add_row(vec![
                m.key.backup.clone(),
                m.key.series.symbol.clone(),
                m.key.series.interval.clone(),
                people_text(&m.window_start),
                people_text(&m.window_end),
                m.primary_points.to_string(),
                m.backup_points.to_string(),
                m.kind.to_string(),
            ]);
        }
        t.print()?;
    }
    super::output::line(format_args!(
        "verified {} backup·series, {} windows, {} primary points: {}",
        report.compared,
        report.windows,
        report.primary_points,
        if report.mismatches.is_empty() {
            "every backup equals the primary".to_string()
        } else if report.mismatches.iter().all(|m| !m.kind.loses_data()) {
            format!(
                "{} window(s) where a backup keeps points the primary no longer has (extra: reported, not a failure without --strict)",
                report.mismatches.len()
            )
        } else {
            format!("{} window(s) differ", report.mismatches.len())
        }
    ))
}
