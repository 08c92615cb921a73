//! `dms config check [--connect] [--json]`: the configuration, every task script loaded as a
//! run would load it, and with `--connect` every node contacted for its role. Every problem is
//! named at once; exit 2 for a bad configuration or script, 1 for a node that is wrong. A check
//! changes nothing: a store or database the first run will create is a note, not a failure.

use crate::app::AppError;
use crate::app::health::{self, NodeHealth};
use crate::config::ConfigError;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// How long each node gets to answer `--connect`'s checks.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `dms config check` options.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Also contact every node: it answers, speaks the InfluxDB API (with its version), the
    /// primary's database exists and can be read, each backup's can be written (or will be
    /// created on first run). Nothing is created or changed.
    #[arg(long)]
    pub connect: bool,
    /// Print one JSON object: `ok`, `problems`, the counts and, with --connect, `nodes`.
    #[arg(long)]
    pub json: bool,
}

/// What `--json` prints.
#[derive(Debug, serde::Serialize)]
struct Report<'a> {
    /// The config folder.
    config: String,
    /// Whether the configuration and scripts are valid and every node checked passed.
    ok: bool,
    /// Every problem of the configuration or a script, as the human output words it.
    problems: Vec<String>,
    /// Enabled and disabled backups configured.
    backups: usize,
    /// Tasks configured.
    tasks: usize,
    /// Task scripts loaded.
    scripts: usize,
    /// Each node's checks (`--connect`), the primary first; `null` without `--connect`.
    nodes: Option<&'a [NodeHealth]>,
}

pub async fn check(dir: &Path, args: CheckArgs) -> anyhow::Result<ExitCode> {
    let settings = match super::load(dir) {
        Ok(s) => s,
        Err(e) => {
            if args.json {
                let problems = match e.downcast_ref::<ConfigError>() {
                    Some(ConfigError::Invalid { problems, .. }) => {
                        problems.iter().map(ToString::to_string).collect()
                    }
                    _ => vec![format!("{e:#}")],
                };
                super::output::json(&Report {
                    config: dir.display().to_string(),
                    ok: false,
                    problems,
                    backups: 0,
                    tasks: 0,
                    scripts: 0,
                    nodes: None,
                })?;
            }
            return Err(e);
        }
    };
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
        Some(health::check_configured(&settings, CONNECT_TIMEOUT).await?)
    } else {
        None
    };
    let bad = nodes
        .as_ref()
        .map_or(0, |n| n.iter().filter(|h| !h.reachable).count());
    if args.json {
        super::output::json(&Report {
            config: dir.display().to_string(),
            ok: errors.is_empty() && bad == 0,
            problems: errors
                .iter()
                .map(|(task, e)| format!("task {task}: {e}"))
                .collect(),
            backups: settings.backups.len(),
            tasks: settings.tasks.len(),
            scripts: scripts.len(),
            nodes: nodes.as_deref(),
        })?;
    } else if let Some(nodes) = &nodes {
        for n in nodes {
            super::output::line(node_line(n))?;
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Scripts(errors).into());
    }
    if bad > 0 {
        eprintln!(
            "error: {bad} node{} failed the checks (the configuration itself is valid)",
            if bad == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::from(1));
    }
    if args.json {
        return Ok(ExitCode::SUCCESS);
    }
    let notes = nodes
        .as_ref()
        .map_or(0, |n| n.iter().filter(|h| h.note.is_some()).count());
    super::output::line(format_args!(
        "configuration OK: {} ({} backup{}, {} task{}, {} script{} loaded{}{})",
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
        match notes {
            0 => String::new(),
            1 => ", 1 note".to_string(),
            n => format!(", {n} notes"),
        },
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `ok   primary  influxdb http://… database "market": InfluxDB 1.8.10 (OSS): database …`;
/// `note` instead of `ok` for a node with something to know (`… does not exist yet: will be
/// created on first run`).
fn node_line(n: &NodeHealth) -> String {
    let word = if n.note.is_some() { "note" } else { "ok" };
    let note = n
        .note
        .as_deref()
        .map(|t| format!(": {t}"))
        .unwrap_or_default();
    match (&n.error, &n.server, &n.detail) {
        (None, Some(server), Some(detail)) => format!(
            "{word:<6} {:<8} {:<10} {}: {server}: {detail}{note}",
            n.role, n.name, n.describe
        ),
        (Some(e), _, _) => format!("FAILED {:<8} {:<10} {}: {e}", n.role, n.name, n.describe),
        _ => format!(
            "{word:<6} {:<8} {:<10} {}{note}",
            n.role, n.name, n.describe
        ),
    }
}
