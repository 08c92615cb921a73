//! `dms reconcile`: compare every window of the range with full-field digests and repair
//! what differs.

use super::output::{Table, col};
use crate::app::App;
use crate::history::{Status, Trigger};
use crate::sync::{Pass, ReconcileArgs, SyncControl};
use crate::timefmt::people_text;
use std::path::Path;
use std::process::ExitCode;

/// `--pass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PassArg {
    /// Full-field digests of every window.
    Complete,
    /// The daemon's recent pass.
    Recent,
    /// The daemon's history pass.
    History,
    /// The daemon's exact scrub: the next stripe of the range read point by point.
    Scrub,
}

/// Arguments of `dms reconcile`.
#[derive(Debug, clap::Args)]
pub struct ReconcileCliArgs {
    /// Which backups and series.
    #[command(flatten)]
    pub filter: super::SeriesFilter,
    /// Start of the range (RFC 3339, a date, nanoseconds, or an age such as 30d); default
    /// now − initial_days.
    #[arg(long)]
    pub since: Option<String>,
    /// End of the range (same forms); default now + future_tolerance. Each backup·series is
    /// compared up to the later of its checkpoint and the newest data its backup holds.
    #[arg(long)]
    pub until: Option<String>,
    /// Compare and report; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Read and compare every window point by point, whatever the digests say: sees what no
    /// digest does (a string or boolean value changed, a point re-stamped inside its
    /// window, values swapped), at the cost of reading everything.
    #[arg(long)]
    pub exact: bool,
    /// Which comparison: `complete` (full-field digests of every window), or one of the
    /// daemon's cheaper scheduled passes by hand: `recent` (full-field digests of the last
    /// reconcile.recent.days), `history` (cheap digests of the range, full-field ones of
    /// tonight's slice) or `scrub` (the next stripe of the exact scrub), each within
    /// reconcile.budget.
    #[arg(long, value_enum, default_value_t = PassArg::Complete)]
    pub pass: PassArg,
    /// Go ahead with up to N deletes per backup: past reconcile.max_deletes and
    /// max_delete_share, and even when the primary's newest point moved backwards (what a
    /// pass refuses to delete on its own; it says how many it would).
    #[arg(long, value_name = "N")]
    pub allow_deletes: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Path, args: ReconcileCliArgs) -> anyhow::Result<ExitCode> {
    let settings = super::load(config)?;
    settings.check_backups(&args.filter.backups)?;
    let when = |s: &Option<String>| -> anyhow::Result<Option<i64>> {
        s.as_deref()
            .map(crate::input::parse_point_in_time_nanos)
            .transpose()
            .map_err(super::usage)
    };
    let non_empty = |v: Vec<String>| (!v.is_empty()).then_some(v);
    let rargs = ReconcileArgs {
        symbols: non_empty(args.filter.symbols),
        intervals: non_empty(args.filter.intervals),
        backups: non_empty(args.filter.backups),
        since: when(&args.since)?,
        until: when(&args.until)?,
        dry_run: args.dry_run,
        exact: args.exact,
        allow_deletes: args.allow_deletes,
    };
    let pass = match args.pass {
        PassArg::Complete => Pass::Complete,
        PassArg::Recent => Pass::Recent {
            days: settings.reconcile.recent_days,
        },
        PassArg::History => Pass::history_for(
            crate::model::now_nanos(),
            settings.reconcile.slices,
            settings.reconcile.counts_everywhere,
        ),
        PassArg::Scrub => Pass::Scrub {
            stripe: 0,
            stripes: 1,
        },
    };
    let app = App::open(settings, "dms reconcile")?;
    app.check_filters(
        rargs.symbols.as_deref().unwrap_or_default(),
        rargs.intervals.as_deref().unwrap_or_default(),
    )
    .await?;
    let pass = match pass {
        Pass::Scrub { .. } => app.scrub_pass(),
        other => other,
    };
    let bar = super::progress::Bar::new();
    let shutdown = super::shutdown_on_signal();
    let control = SyncControl {
        cancel: shutdown.token().clone(),
        progress: bar.clone().map(|b| b as _),
    };
    let run = app
        .reconcile(&rargs, pass, Trigger::Manual, &control)
        .await?;
    if let Some(b) = bar {
        b.finish();
    }
    if run.status == Status::Interrupted {
        shutdown.report(Some(&format!(
            "reconcile run {} stopped before every series was compared; the repairs it wrote are kept, {}",
            run.run_id,
            match args.pass {
                PassArg::Complete => "the next reconcile compares again".to_string(),
                _ => format!("the next {} pass resumes where it stopped", run.pass),
            }
        )));
    }
    if args.json {
        super::output::json(&run)?;
    } else {
        print(&run)?;
    }
    let differs = run.report.backups.iter().any(|b| {
        b.counts.differing > b.counts.repaired || (args.dry_run && b.counts.differing > 0)
    });
    Ok(if run.status == Status::Success && !differs {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print(run: &crate::app::reconcile::ReconcileRun) -> anyhow::Result<()> {
    let r = &run.report;
    let diffs: Vec<_> = r.backups.iter().flat_map(|b| &b.diffs).collect();
    if !diffs.is_empty() {
        let mut t = Table::new(vec![
            col("backup"),
            col("symbol"),
            col("interval"),
            col("window start"),
            col("window end").drop(1),
            col("missing"),
            col("different"),
            col("extra"),
            col("repaired"),
        ]);
        for d in diffs {
            t.add_row(vec![
                d.key.backup.clone(),
                d.key.series.symbol.clone(),
                d.key.series.interval.clone(),
                people_text(&d.window_start),
                people_text(&d.window_end),
                d.missing.to_string(),
                d.different.to_string(),
                d.extra.to_string(),
                if d.repaired { "yes" } else { "no" }.into(),
            ]);
        }
        t.print()?;
    }
    let mut t = Table::new(vec![
        col("backup"),
        col("status"),
        col("series").drop(2),
        col("windows").drop(3),
        col("differing"),
        col("repaired"),
        col("rewritten").drop(1),
        col("deleted"),
        col("extra"),
        col("error").cut(8).drop(4),
    ]);
    for b in &r.backups {
        let c = &b.counts;
        t.add_row(vec![
            b.backup.clone(),
            c.status.as_str().to_string(),
            c.series.to_string(),
            c.windows.to_string(),
            c.differing.to_string(),
            c.repaired.to_string(),
            c.rewritten.to_string(),
            c.deleted.to_string(),
            c.extra.to_string(),
            c.error.clone().unwrap_or_default(),
        ]);
    }
    t.print()?;
    super::output::line(format_args!(
        "run {}: {} — {} → {}, {} digests, {:.1}s{}",
        run.run_id,
        run.status.as_str(),
        people_text(&r.range_start),
        people_text(&r.range_end),
        r.depth,
        run.duration_seconds,
        if r.backups.iter().any(|b| b.counts.extra > 0) {
            " (extra points are kept: reconcile.mirror_deletes is off)"
        } else {
            ""
        }
    ))
}
