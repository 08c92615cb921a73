//! `dms restore`: copy a backup back into the primary (or another node) and compare the
//! restored range exactly.

use super::output::{Table, col};
use crate::app::App;
use crate::app::restore::{RestoreRun, node_names};
use crate::history::{Status, Trigger};
use crate::restore::{RestoreArgs, SeriesOutcome, check_args};
use crate::sync::SyncControl;
use crate::timefmt::people_text;
use std::path::Path;
use std::process::ExitCode;

/// Arguments of `dms restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreCliArgs {
    /// The backup to copy from (an enabled backup).
    #[arg(long, value_name = "BACKUP")]
    pub from: String,
    /// The node to copy into: the primary (default) or an enabled backup.
    #[arg(long, value_name = "NODE")]
    pub to: Option<String>,
    /// Only this symbol (repeatable); default: every symbol the backup holds.
    #[arg(long = "symbol", value_name = "SYMBOL")]
    pub symbols: Vec<String>,
    /// Only this interval (repeatable); default: every interval the backup holds.
    #[arg(long = "interval", value_name = "INTERVAL")]
    pub intervals: Vec<String>,
    /// Start of the range (RFC 3339, a date, nanoseconds, or an age such as 30d); default:
    /// the backup's oldest point.
    #[arg(long)]
    pub since: Option<String>,
    /// End of the range (same forms); default: the backup's newest point.
    #[arg(long)]
    pub until: Option<String>,
    /// Write the backup's points over different ones the target holds (default: the target's
    /// are kept — they may be newer revisions).
    #[arg(long)]
    pub overwrite: bool,
    /// Compare and report what would be written; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Create the target's InfluxDB database when it does not exist (a primary whose
    /// database was dropped); without it a missing database is an error, as everywhere.
    #[arg(long)]
    pub create_database: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Path, args: RestoreCliArgs) -> anyhow::Result<ExitCode> {
    let mut settings = super::load(config)?;
    if args.create_database {
        allow_creating(&mut settings, args.to.as_deref());
    }
    let when = |flag: &str, s: &Option<String>| -> anyhow::Result<Option<i64>> {
        s.as_deref()
            .map(|v| {
                crate::input::parse_point_in_time(v)
                    .map(|t| t.timestamp_nanos_opt().unwrap_or(i64::MIN))
                    .map_err(|e| super::usage(format!("--{flag}: {e}")))
            })
            .transpose()
    };
    let non_empty = |v: &[String]| (!v.is_empty()).then(|| v.to_vec());
    let rargs = RestoreArgs {
        from: args.from.clone(),
        to: args.to.clone(),
        symbols: non_empty(&args.symbols),
        intervals: non_empty(&args.intervals),
        since: when("since", &args.since)?,
        until: when("until", &args.until)?,
        overwrite: args.overwrite,
        dry_run: args.dry_run,
    };
    // Refused before the history is locked or a node opened: a typo is an argument problem.
    check_args(&rargs, &node_names(&settings))?;
    let app = App::open(settings, "dms restore")?;
    let bar = super::progress::Bar::new();
    let shutdown = super::shutdown_on_signal();
    let control = SyncControl {
        cancel: shutdown.token().clone(),
        progress: bar.clone().map(|b| b as _),
    };
    let run = app.restore(&rargs, Trigger::Manual, &control, None).await?;
    if let Some(b) = bar {
        b.finish();
    }
    if run.status == Status::Interrupted {
        shutdown.report(Some(&format!(
            "restore run {} stopped before every series was restored and compared; what it wrote is kept, and running it again continues",
            run.run_id
        )));
    }
    if args.json {
        super::output::json(&run)?;
    } else {
        print(&run)?;
    }
    if !args.create_database
        && run.restore.results.iter().any(|r| {
            r.error
                .as_deref()
                .is_some_and(|e| e.contains("does not exist"))
        })
    {
        eprintln!(
            "the target's database does not exist: create it on the server, or run the restore with --create-database"
        );
    }
    // A dry run succeeds by reporting; it exits 1 when the target differs (as `reconcile
    // --dry-run`), so a script can ask whether a restore is needed.
    let differs = run.restore.dry_run && run.restore.counts.differing > 0;
    Ok(if run.status == Status::Success && !differs {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print(run: &RestoreRun) -> anyhow::Result<()> {
    let r = &run.restore;
    let mut t = Table::new(vec![
        col("symbol"),
        col("interval"),
        col("result"),
        col(if r.dry_run { "would write" } else { "written" }),
        col("unchanged").drop(3),
        col("kept"),
        col("missing").drop(2),
        col("different").drop(2),
        col("extra").drop(1),
        col("range").drop(4),
        col("error").cut(8).drop(5),
    ]);
    for s in &r.results {
        t.add_row(vec![
            s.series.symbol.clone(),
            s.series.interval.clone(),
            s.result.as_str().to_string(),
            s.written.to_string(),
            s.unchanged.to_string(),
            s.kept.to_string(),
            s.missing.to_string(),
            s.different.to_string(),
            s.extra.to_string(),
            match (&s.range_start, &s.range_end) {
                (Some(a), Some(b)) => format!("{} → {}", people_text(a), people_text(b)),
                _ => String::new(),
            },
            s.error.clone().unwrap_or_default(),
        ]);
    }
    t.print()?;
    let c = &r.counts;
    let written = if r.dry_run {
        format!(
            "dry run, nothing written: {} points would be written",
            c.written
        )
    } else {
        format!("{} points written", c.written)
    };
    super::output::line(format_args!(
        "run {}: {} — {} → {}, {} series: {} equal, {} differ, {} failed; {written}; {:.1}s",
        run.run_id,
        run.status.as_str(),
        r.source,
        r.target,
        c.series,
        c.equal,
        c.differing,
        c.failed,
        run.duration_seconds
    ))?;
    if c.kept > 0 {
        let how = if r.dry_run {
            "would be kept"
        } else {
            "were kept"
        };
        super::output::line(format_args!(
            "{} points the {} holds with other values {how}, not overwritten (the target may hold newer revisions; --overwrite replaces them): not a failure",
            c.kept, r.target
        ))?;
    }
    if c.extra > 0 {
        super::output::line(format_args!(
            "{} points only the {} holds in the range were left in place (a restore never deletes)",
            c.extra, r.target
        ))?;
    }
    if r.results.iter().any(|s| s.result == SeriesOutcome::Differs) && r.dry_run {
        super::output::line(format_args!(
            "run again without --dry-run to restore the series that differ"
        ))?;
    }
    // A stop is reported in its one line, not as an error.
    if let Some(e) = run
        .error
        .as_ref()
        .filter(|_| run.status != Status::Interrupted)
    {
        eprintln!("error: {e}");
    }
    if let Some(w) = &run.warning {
        eprintln!("warning: {w}");
    }
    Ok(())
}

/// Lets the restore's target (the primary unless `to` names a backup) create its InfluxDB
/// database: asked for with `--create-database`, for a primary whose database was dropped.
fn allow_creating(settings: &mut crate::config::Settings, to: Option<&str>) {
    let node = match to {
        None => Some(&mut settings.primary),
        Some(name) if name == settings.primary.name => Some(&mut settings.primary),
        Some(name) => settings.backups.iter_mut().find(|b| b.name == name),
    };
    if let Some(n) = node
        && let crate::config::NodeKind::Influxdb(i) = &mut n.kind
    {
        i.create_database = true;
    }
}
