//! Node health: each node checked for its role under one timeout ([`Node::probe`]: it
//! answers, it is what its kind says, its database can be read (primary) or written
//! (backup)), shared by `dms config check --connect`, `/healthz`, `/metrics` and the status
//! page.

use crate::config::{NodeKind, Settings};
use crate::node::{Node, NodeError, Role};
use crate::sync::Engine;
use std::sync::Arc;
use std::time::Duration;

/// How long a node gets to answer its checks.
pub const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// How one node answered.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeHealth {
    /// Node name.
    pub name: String,
    /// `primary` or `backup`.
    pub role: &'static str,
    /// Kind and location, for people.
    #[serde(skip)]
    pub describe: String,
    /// Whether it answered in time and passed its checks.
    pub reachable: bool,
    /// The server or store that answered (`InfluxDB 1.8.10 (OSS)`).
    pub server: Option<String>,
    /// What was checked.
    pub detail: Option<String>,
    /// Something to know that is not a failure (`will be created on first run`).
    pub note: Option<String>,
    /// Why not.
    pub error: Option<String>,
}

/// Checks `node` for `role` within `timeout`.
pub async fn check(node: Arc<dyn Node>, role: Role, timeout: Duration) -> NodeHealth {
    let (probe, error) = match tokio::time::timeout(timeout, node.probe(role)).await {
        Ok(Ok(p)) => (Some(p), None),
        Ok(Err(e)) => (None, Some(e.to_string())),
        Err(_) => (
            None,
            Some(format!(
                "node {}: no answer within {} s",
                node.name(),
                timeout.as_secs()
            )),
        ),
    };
    NodeHealth {
        name: node.name().to_string(),
        role: role_name(role),
        describe: node.describe(),
        reachable: error.is_none(),
        server: probe.as_ref().map(|p| p.server.clone()),
        note: probe.as_ref().and_then(|p| p.note.clone()),
        detail: probe.map(|p| p.detail),
        error,
    }
}

/// Checks the primary and every given backup at once; the primary comes first.
pub async fn check_all(
    primary: &Arc<dyn Node>,
    backups: &[Arc<dyn Node>],
    timeout: Duration,
) -> Vec<NodeHealth> {
    let nodes = std::iter::once((Role::Primary, primary.clone()))
        .chain(backups.iter().map(|b| (Role::Backup, b.clone())));
    futures::future::join_all(nodes.map(|(role, n)| check(n, role, timeout))).await
}

/// Checks the configured primary and enabled backups without changing anything (`dms
/// config check --connect`): a SQLite store whose file does not exist is not opened (opening
/// would create it) but noted as created on first run; every other node is opened and
/// probed, and probes create nothing.
///
/// # Errors
/// [`NodeError`] when an existing store cannot be opened or an InfluxDB URL is unusable.
pub async fn check_configured(
    settings: &Settings,
    timeout: Duration,
) -> Result<Vec<NodeHealth>, NodeError> {
    let nodes = std::iter::once((Role::Primary, &settings.primary))
        .chain(settings.enabled_backups().map(|b| (Role::Backup, b)));
    let mut checks = Vec::new();
    let mut missing = Vec::new();
    for (i, (role, n)) in nodes.enumerate() {
        match &n.kind {
            NodeKind::Sqlite { path } if !path.exists() => missing.push((
                i,
                NodeHealth {
                    name: n.name.clone(),
                    role: role_name(role),
                    describe: format!("sqlite {}", path.display()),
                    reachable: true,
                    server: Some(format!("SQLite {}", crate::node::sqlite::sqlite_version())),
                    detail: Some(format!("store {} does not exist yet", path.display())),
                    note: Some("will be created on first run".into()),
                    error: None,
                },
            )),
            _ => {
                let node = crate::node::open(n, &settings.schema, settings.sync.pool_size)?;
                checks.push((i, check(node, role, timeout)));
            }
        }
    }
    let (at, futures): (Vec<usize>, Vec<_>) = checks.into_iter().unzip();
    let mut out: Vec<(usize, NodeHealth)> = at
        .into_iter()
        .zip(futures::future::join_all(futures).await)
        .chain(missing)
        .collect();
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, h)| h).collect())
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Primary => "primary",
        Role::Backup => "backup",
    }
}

/// Checks the engine's primary and enabled backups with [`PING_TIMEOUT`].
pub async fn ping_all(engine: &Engine) -> Vec<NodeHealth> {
    check_all(engine.primary(), engine.backups(), PING_TIMEOUT).await
}
