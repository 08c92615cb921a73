//! `dms config check [--connect]`: the configuration, every task script loaded as a run would
//! load it, and with `--connect` every node contacted for its role. Every problem is named at
//! once; exit 2 for a bad configuration or script, 1 for a node that is wrong.

use crate::app::AppError;
use crate::app::health::{self, NodeHealth};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// How long each node gets to answer `--connect`'s checks.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `dms config check` options.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Also contact every node: it answers, speaks the InfluxDB API (with its version), the
    /// primary's database exists and can be read, each backup's can be written (or created).
    #[arg(long)]
    pub connect: bool,
}

pub async fn check(dir: &Path, args: CheckArgs) -> anyhow::Result<ExitCode> {
    let settings = super::load(dir)?;
    let (scripts, mut errors) = crate::script::check_all(&settings.tasks, &settings.root);
    // Load each script as a run would (top level, hooks), in its own process.
    let launcher = crate::script::Launcher {
        program: settings.scripts.worker.clone(),
        config_dir: settings.config_dir.clone(),
        memory_limit: settings.scripts.memory_limit,
    };
    // Each top level gets its task's timeout; SIGINT/SIGTERM end the check (and, with dms,
    // the script processes: they die with their parent).
    let never = tokio_util::sync::CancellationToken::new();
    for s in scripts.values() {
        let budget = settings
            .task(&s.task)
            .map_or(std::time::Duration::from_secs(30), |t| t.timeout);
        if let Err(e) = crate::script::process::check_load(&launcher, s, budget, &never).await {
            errors.push((s.task.clone(), e));
        }
    }
    errors.sort_by(|a, b| a.0.cmp(&b.0));
    let nodes = if args.connect {
        let nodes = crate::app::open_nodes(&settings)?;
        Some(health::check_all(&nodes.primary, &nodes.backups, CONNECT_TIMEOUT).await)
    } else {
        None
    };
    if let Some(nodes) = &nodes {
        for n in nodes {
            super::output::line(node_line(n))?;
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Scripts(errors).into());
    }
    let bad = nodes
        .as_ref()
        .map_or(0, |n| n.iter().filter(|h| !h.reachable).count());
    if bad > 0 {
        eprintln!(
            "error: {bad} node{} failed the checks (the configuration itself is valid)",
            if bad == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::from(1));
    }
    super::output::line(format_args!(
        "configuration OK: {} ({} backup{}, {} task{}, {} script{} loaded{})",
        dir.display(),
        settings.backups.len(),
        if settings.backups.len() == 1 { "" } else { "s" },
        settings.tasks.len(),
        if settings.tasks.len() == 1 { "" } else { "s" },
        scripts.len(),
        if scripts.len() == 1 { "" } else { "s" },
        if nodes.is_some() {
            ", every node answered"
        } else {
            ""
        },
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `ok   primary  influxdb http://… database "market": InfluxDB 1.8.10 (OSS): database …`.
fn node_line(n: &NodeHealth) -> String {
    match (&n.error, &n.server, &n.detail) {
        (None, Some(server), Some(detail)) => format!(
            "ok     {:<8} {:<10} {}: {server}: {detail}",
            n.role, n.name, n.describe
        ),
        (Some(e), _, _) => format!("FAILED {:<8} {:<10} {}: {e}", n.role, n.name, n.describe),
        _ => format!("ok     {:<8} {:<10} {}", n.role, n.name, n.describe),
    }
}
