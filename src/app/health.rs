//! Node reachability: one ping per node under one timeout, shared by `/healthz`, `/metrics`
//! and the status page.

use crate::node::Node;
use crate::sync::Engine;
use std::sync::Arc;
use std::time::Duration;

/// How long a node gets to answer its ping.
pub const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether one node answered.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeHealth {
    /// Node name.
    pub name: String,
    /// `primary` or `backup`.
    pub role: &'static str,
    /// Kind and location, for people.
    #[serde(skip)]
    pub describe: String,
    /// Whether it answered in time.
    pub reachable: bool,
    /// Why not.
    pub error: Option<String>,
}

/// Pings `node` with [`PING_TIMEOUT`].
pub async fn ping(node: Arc<dyn Node>, role: &'static str) -> NodeHealth {
    let error = match tokio::time::timeout(PING_TIMEOUT, node.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!(
            "node {}: no answer within {} s",
            node.name(),
            PING_TIMEOUT.as_secs()
        )),
    };
    NodeHealth {
        name: node.name().to_string(),
        role,
        describe: node.describe(),
        reachable: error.is_none(),
        error,
    }
}

/// Pings the primary and every enabled backup at once; the primary comes first.
pub async fn ping_all(engine: &Engine) -> Vec<NodeHealth> {
    let nodes = std::iter::once(("primary", engine.primary().clone()))
        .chain(engine.backups().iter().map(|b| ("backup", b.clone())));
    futures::future::join_all(nodes.map(|(role, n)| ping(n, role))).await
}
