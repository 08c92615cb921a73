//! The nodes as the application sees them: the interface from `dms-core`, the kinds from their
//! own crates, and [`open`], which turns a node's settings into one of them.

pub use dms_core::node::*;
pub use dms_node_influxdb as influxdb;
pub use dms_node_influxdb::http_error::{ClientError, describe_reqwest};
pub use dms_node_influxdb::tls::client_builder as http_client_builder;
pub use dms_node_sqlite as sqlite;

use crate::config::{NodeKind, NodeSettings};
use crate::schema::Schema;
use std::sync::Arc;

/// Opens the node described by `settings`.
///
/// # Errors
/// [`NodeError`] when the store cannot be opened (a missing folder is created) or an
/// InfluxDB URL or token is unusable. InfluxDB nodes connect on first use.
pub fn open(
    settings: &NodeSettings,
    schema: &Schema,
    pool_size: usize,
) -> Result<Arc<dyn Node>, NodeError> {
    match &settings.kind {
        NodeKind::Sqlite { path } => Ok(Arc::new(sqlite::SqliteNode::open(
            &settings.name,
            path,
            schema.clone(),
            pool_size,
        )?)),
        NodeKind::Influxdb(influx) => Ok(Arc::new(influxdb::InfluxNode::open(
            &settings.name,
            influx,
            schema.clone(),
            pool_size,
        )?)),
    }
}
