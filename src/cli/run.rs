//! `dms run [--once]`.

use super::output::{Table, col};
use crate::app::{App, RunOutcome};
use crate::daemon::Daemon;
use crate::history::Status;
use crate::sync::SyncControl;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `dms run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Run every enabled task once, then exit (non-zero if any failed; 130/143 when SIGINT or
    /// SIGTERM stopped it). Without it: the daemon (cron scheduler, catch-up check loop, HTTP
    /// API) until SIGINT/SIGTERM, which end it gracefully with exit 0.
    #[arg(long)]
    pub once: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Path, args: RunArgs) -> anyhow::Result<ExitCode> {
    let settings = super::load(config)?;
    if !args.once {
        let api = settings.api.enabled;
        let app = App::open(settings, "dms run (daemon)")?;
        let daemon = Daemon::new(Arc::new(app), super::shutdown_on_signal())?;
        // Scripts load while the daemon serves and handles signals; one that does not load
        // disables only its own task.
        let (app, stop) = (daemon.app.clone(), daemon.shutdown_token());
        tokio::spawn(async move { app.disable_unloadable(&stop).await });
        let server = api.then(|| crate::http::server(daemon.clone()));
        crate::daemon::run(daemon, server).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let app = App::open(settings, "dms run --once")?;
    let shutdown = super::shutdown_on_signal();
    app.check_scripts(shutdown.token()).await?;
    let bar = super::progress::Bar::new();
    let control = SyncControl {
        cancel: shutdown.token().clone(),
        progress: bar.clone().map(|b| b as _),
    };
    let outcomes = app.run_once(&control).await?;
    if let Some(b) = bar {
        b.finish();
    }
    for o in &outcomes {
        shutdown.note(o.stopped());
    }
    print_outcomes(&app, &outcomes, args.json).await?;
    Ok(exit_code(&outcomes))
}

/// 0 when every run succeeded, 1 otherwise.
pub fn exit_code(outcomes: &[RunOutcome]) -> ExitCode {
    if outcomes.iter().all(|o| o.status == Status::Success) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The runs of `outcomes` as recorded, each with its sync history rows (the JSON shape of a
/// run, README "JSON shapes").
pub async fn details(
    app: &App,
    outcomes: &[RunOutcome],
) -> anyhow::Result<Vec<crate::history::RunDetail>> {
    let ids: Vec<i64> = outcomes.iter().map(|o| o.run_id).collect();
    let found = app
        .history
        .read(move |db| {
            ids.iter()
                .map(|id| db.run_detail(*id))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// Prints one run as its JSON object (with its history rows).
///
/// # Errors
/// The history cannot be read, or as [`super::output::line`].
pub async fn print_run_json(app: &App, outcome: &RunOutcome) -> anyhow::Result<()> {
    let detail = details(app, std::slice::from_ref(outcome)).await?;
    super::output::json(&detail.first())
}

/// Prints task runs as a table (with their failed series) or, with `json`, as an array of
/// run objects.
pub async fn print_outcomes(app: &App, outcomes: &[RunOutcome], json: bool) -> anyhow::Result<()> {
    if json {
        return super::output::json(&details(app, outcomes).await?);
    }
    let mut t = Table::new(vec![
        col("run").drop(3),
        col("task"),
        col("status"),
        col("series").drop(2),
        col("records"),
        col("failed"),
        col("time").drop(1),
        col("error").cut(8).drop(4),
    ]);
    for o in outcomes {
        t.add_row(vec![
            o.run_id.to_string(),
            o.task.clone(),
            o.status.as_str().to_string(),
            o.report.units.len().to_string(),
            o.report.records().to_string(),
            o.report.failed().to_string(),
            format!("{:.1}s", o.duration_ms as f64 / 1000.0),
            o.error.clone().unwrap_or_default(),
        ]);
    }
    t.print()?;
    for o in outcomes {
        if let Some(e) = &o.error
            && e.contains('\n')
        {
            eprintln!("task {} (run {}):\n{e}\n", o.task, o.run_id);
        }
        if let Some(w) = &o.warning {
            eprintln!("warning: task {} (run {}): {w}", o.task, o.run_id);
        }
    }
    Ok(())
}
