//! `dms import`: stream CSV files into the primary (or another node) through its normal write
//! path, in batches, as a recorded run.

use super::output::{Table, col};
use crate::app::App;
use crate::app::import::{FileProgress, ImportRequest, ImportRun};
use crate::history::{Status, Trigger};
use crate::import::{ImportOptions, TimeUnit};
use crate::model::SeriesKey;
use crate::timefmt::people_text;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `dms import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The node to write to: the primary (default) or an enabled backup.
    #[arg(long, value_name = "NODE")]
    pub to: Option<String>,
    /// The symbol every row belongs to.
    #[arg(long, value_name = "SYMBOL")]
    pub symbol: String,
    /// The interval every row belongs to.
    #[arg(long, value_name = "INTERVAL")]
    pub interval: String,
    /// The column holding the time.
    #[arg(long, value_name = "COLUMN", default_value = "time")]
    pub time_column: String,
    /// The unit of epoch numbers in the time column (s, ms, us, ns); default: detected from
    /// the first row by its size. RFC 3339, dates and `YYYY-MM-DD HH:MM:SS` (UTC) are read
    /// whatever this says.
    #[arg(long, value_name = "UNIT")]
    pub time_unit: Option<TimeUnit>,
    /// Read this column as floats, even when its values look like integers (repeatable).
    #[arg(long = "float", value_name = "COLUMN")]
    pub floats: Vec<String>,
    /// Read this column as integers; a value that is not one is a bad row (repeatable).
    #[arg(long = "int", value_name = "COLUMN")]
    pub ints: Vec<String>,
    /// Make this column a tag instead of a field (repeatable).
    #[arg(long = "tag", value_name = "COLUMN")]
    pub tags: Vec<String>,
    /// Only rows at or after this time (RFC 3339, a date, nanoseconds, or an age such as 30d).
    #[arg(long)]
    pub since: Option<String>,
    /// Count and skip bad rows instead of stopping at the first.
    #[arg(long)]
    pub skip_bad: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The CSV files, imported in this order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

pub async fn run(config: &Path, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let settings = super::load(config)?;
    let since = args
        .since
        .as_deref()
        .map(|v| {
            crate::input::parse_point_in_time(v)
                .map(|t| t.timestamp_nanos_opt().unwrap_or(i64::MIN))
                .map_err(|e| super::usage(format!("--since: {e}")))
        })
        .transpose()?;
    let req = ImportRequest {
        to: args.to.clone(),
        series: SeriesKey::new(args.symbol.clone(), args.interval.clone()),
        options: ImportOptions {
            time_column: Some(args.time_column.clone()),
            time_unit: args.time_unit,
            floats: args.floats.clone(),
            ints: args.ints.clone(),
            tags: args.tags.clone(),
            since,
            skip_bad: args.skip_bad,
        },
        files: args.files.clone(),
    };
    let app = App::open(settings, "dms import")?;
    let bar = super::progress::ImportBar::new();
    let shutdown = super::shutdown_on_signal();
    let run = app
        .import(
            &req,
            Trigger::Manual,
            shutdown.token(),
            bar.clone().map(|b| b as Arc<dyn FileProgress>),
        )
        .await?;
    if let Some(b) = bar {
        b.finish();
    }
    if run.status == Status::Interrupted {
        shutdown.report(Some(&format!(
            "import run {} stopped; the {} rows written stay, and importing the files again rewrites them unchanged",
            run.run_id, run.written
        )));
    }
    if args.json {
        super::output::json(&run)?;
    } else {
        print(&run)?;
    }
    Ok(if run.status == Status::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print(run: &ImportRun) -> anyhow::Result<()> {
    let mut t = Table::new(vec![
        col("file").cut(12),
        col("rows"),
        col("written"),
        col("bad").drop(2),
        col("before since").drop(1),
        col("time").drop(3),
        col("range").drop(4),
    ]);
    for f in &run.files {
        t.add_row(vec![
            f.file.clone(),
            f.rows.to_string(),
            f.written.to_string(),
            f.skipped_bad.to_string(),
            f.skipped_before_since.to_string(),
            f.time_unit.clone().unwrap_or_default(),
            match (f.first, f.last) {
                (Some(a), Some(b)) => format!(
                    "{} → {}",
                    people_text(&crate::model::format_nanos(a)),
                    people_text(&crate::model::format_nanos(b))
                ),
                _ => String::new(),
            },
        ]);
    }
    t.print()?;
    let rate = if run.duration_seconds > 0.0 {
        run.written as f64 / run.duration_seconds
    } else {
        0.0
    };
    super::output::line(format_args!(
        "run {}: {} — {} rows of {}@{} written to {} from {} file(s); {} bad rows skipped; {:.1}s ({rate:.0} rows/s)",
        run.run_id,
        run.status.as_str(),
        run.written,
        run.symbol,
        run.interval,
        run.target,
        run.files.len(),
        run.skipped_bad,
        run.duration_seconds
    ))?;
    for f in &run.files {
        for b in &f.bad_rows {
            eprintln!("skipped {}:{}: {}", f.file, b.line, b.error);
        }
        if f.skipped_bad > f.bad_rows.len() as u64 {
            eprintln!(
                "… and {} more bad rows in {}",
                f.skipped_bad - f.bad_rows.len() as u64,
                f.file
            );
        }
    }
    // A stop is reported in its one line, not as an error.
    if let Some(e) = run
        .error
        .as_ref()
        .filter(|_| run.status != Status::Interrupted)
    {
        eprintln!("error: {e}");
    }
    Ok(())
}
