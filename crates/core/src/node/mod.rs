//! The node interface: what the sync engine needs from a time-series store. The kinds that
//! implement it live in crates of their own (`dms-node-sqlite`, `dms-node-influxdb`).
//!
//! Contract every node keeps:
//! - `read` yields batches in time order and never splits the points that share one timestamp
//!   across two batches, so resuming from a batch's last timestamp (inclusive) loses nothing;
//! - `write` is idempotent and merges field by field: a point written at the same tag set and
//!   timestamp as a stored one sets the fields it carries and leaves the stored point's other
//!   fields as they were (InfluxDB's own rule, which every kind follows), so writing a point
//!   again never loses a field;
//! - `replace` makes the points at given timestamps exactly the given ones (fields and tag sets
//!   they lack are gone); [`Node::replace_is_atomic`] says whether it is one step;
//! - `tips` and `digests` are the same on every kind for the same points ([`digest`] defines
//!   them), so a primary of one kind compares with a backup of another;
//! - `delete` removes the points of one series (all its tag sets) at exactly the given
//!   timestamps, and nothing else;
//! - errors say whether retrying can help ([`NodeError::retryable`]) and never contain secrets.

pub mod digest;
pub mod memory;

pub use digest::{Depth, Digest, Digests, Tip};

use crate::model::{Batch, Nanos, Point, SeriesKey, TimeRange};
use futures::stream::BoxStream;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A stream of batches read from a node.
pub type BatchStream = BoxStream<'static, Result<Batch, NodeError>>;

/// A time-series store the engine reads from or writes to.
#[async_trait::async_trait]
pub trait Node: Send + Sync {
    /// The node's configured name.
    fn name(&self) -> &str;

    /// Kind and location, for people (never a secret).
    fn describe(&self) -> String;

    /// Checks that the node answers.
    async fn ping(&self) -> Result<(), NodeError>;

    /// Checks the node for its role, like `influx ping` and more: it answers, it is what its
    /// kind says (an InfluxDB server names itself in its headers), and its database exists and
    /// can be read (primary) or written or created (backup).
    ///
    /// # Errors
    /// What is wrong, as a [`NodeError`] (a missing primary database is
    /// [`ErrorKind::Rejected`]).
    async fn probe(&self, role: Role) -> Result<Probe, NodeError>;

    /// Every series the node holds, per the schema, sorted.
    async fn list_series(&self) -> Result<Vec<SeriesKey>, NodeError>;

    /// Newest timestamp of each given series that has data (absent when empty), looked up in a
    /// constant number of requests, not one per series.
    async fn newest(&self, series: &[SeriesKey]) -> Result<HashMap<SeriesKey, Nanos>, NodeError>;

    /// Every series the node holds with its newest timestamp. The default asks
    /// [`Node::list_series`] then [`Node::newest`]; kinds that learn both from one request
    /// override it.
    async fn newest_all(&self) -> Result<HashMap<SeriesKey, Nanos>, NodeError> {
        let series = self.list_series().await?;
        self.newest(&series).await
    }

    /// The tip of each given series that has data: its newest timestamp at or before
    /// `horizon` with the fingerprint of the points there, and its newest timestamp after
    /// `horizon` — looked up in a constant number of requests, not one per series.
    async fn tips(
        &self,
        series: &[SeriesKey],
        horizon: Nanos,
    ) -> Result<HashMap<SeriesKey, Tip>, NodeError>;

    /// The tip of every series the node holds. The default lists the series, then looks up
    /// their tips; kinds that learn both from one request override it.
    async fn tips_all(&self, horizon: Nanos) -> Result<HashMap<SeriesKey, Tip>, NodeError> {
        let series = self.list_series().await?;
        self.tips(&series, horizon).await
    }

    /// Tag sets the last [`Node::tips_all`] found in the schema's measurements without its
    /// symbol or interval tag (their points are no series of the schema and are not synced),
    /// for people; kinds that cannot hold such points say none.
    fn outside_schema(&self) -> Vec<String> {
        Vec::new()
    }

    /// Fields this node found typed differently in two places (`measurement.field is float
    /// and string`), which it cannot read with all their types. Empty where types are per
    /// point.
    fn type_conflicts(&self) -> Vec<String> {
        Vec::new()
    }

    /// Per-window digests of the given series over `range` (both ends included; windows of
    /// `window` ns aligned to the epoch; empty windows and series absent), computed by the
    /// node — many series per request.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidData`] for a window that is not positive; otherwise as reads.
    async fn digests(
        &self,
        series: &[SeriesKey],
        range: TimeRange,
        window: Nanos,
        depth: Depth,
    ) -> Result<Digests, NodeError>;

    /// Which computation makes this node's digests. Float sums of two nodes are compared bit
    /// for bit only when they name the same one (equal points summed in the same order);
    /// otherwise windows holding float sums are read and compared exactly. The default is
    /// the reference computation of [`digest::digest_points`].
    fn digest_kind(&self) -> &'static str {
        "reference"
    }

    /// Deletes every point of `series` (all its tag sets) at exactly these timestamps;
    /// returns how many timestamps were asked to go (`times.len()`). Only reconciliation
    /// with `mirror_deletes` calls it.
    ///
    /// # Errors
    /// As writes (refused credentials are [`ErrorKind::Auth`]). An InfluxDB node refuses
    /// ([`ErrorKind::Rejected`]) when another retention policy of its database holds points
    /// of the series in that time span, since InfluxDB would delete them there too.
    async fn delete(&self, series: &SeriesKey, times: &[Nanos]) -> Result<u64, NodeError>;

    /// Streams the points of `series` in `range`, oldest first, in batches of about
    /// `batch_size` points (more only when one timestamp holds more points than that).
    fn read(&self, series: &SeriesKey, range: TimeRange, batch_size: usize) -> BatchStream;

    /// The points of many small windows at once, in as few requests as the kind can (one
    /// multi-series query per measurement and window start on InfluxDB): for each window, in
    /// order, its points oldest first — or `None` when it holds more than `limit` points
    /// (stream that one with [`Node::read`]). The default reads the windows one by one.
    ///
    /// # Errors
    /// As reads: one error for the whole call.
    async fn read_many(
        &self,
        windows: &[(SeriesKey, TimeRange)],
        limit: usize,
    ) -> Result<Vec<Option<Vec<Point>>>, NodeError> {
        use futures::StreamExt;
        let mut out = Vec::with_capacity(windows.len());
        for (series, range) in windows {
            let mut stream = self.read(series, *range, limit.saturating_add(1));
            let mut points = Vec::new();
            let mut over = false;
            while let Some(batch) = stream.next().await {
                points.extend(batch?.points);
                if points.len() > limit {
                    over = true;
                    break;
                }
            }
            out.push((!over).then_some(points));
        }
        Ok(out)
    }

    /// Writes a batch; returns once the node has acknowledged it durably. A point at the same
    /// tag set and timestamp as a stored one is merged into it field by field: the fields it
    /// carries take their new values, the stored point's other fields stay. Removing a field
    /// or a tag set the new data no longer has is [`Node::replace`]'s job.
    async fn write(&self, batch: Arc<Batch>) -> Result<(), NodeError>;

    /// Makes the points of `series` (all its tag sets) at exactly `times` the points of
    /// `points`, which all belong to `series` and lie at those times: stored points there that
    /// `points` lacks are gone, and so are fields the new points do not carry. Reconciliation
    /// with `mirror_deletes` uses it for points the primary changed that way.
    ///
    /// The default deletes the timestamps, then writes the points: two steps, so a crash in
    /// between leaves those points missing on this node until they are written again (kinds
    /// that cannot do better, like InfluxDB, whose writes cannot drop a field, keep it and say
    /// so through [`Node::replace_is_atomic`]).
    ///
    /// # Errors
    /// As [`Node::delete`] and [`Node::write`].
    async fn replace(
        &self,
        series: &SeriesKey,
        times: &[Nanos],
        points: Arc<Batch>,
    ) -> Result<(), NodeError> {
        if times.is_empty() {
            return Ok(());
        }
        self.delete(series, times).await?;
        self.write(points).await
    }

    /// Whether [`Node::replace`] happens in one step (a crash leaves the old points or the new
    /// ones, never neither). False for the default delete-then-write.
    fn replace_is_atomic(&self) -> bool {
        false
    }
}

/// What a node is used as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The primary: read.
    Primary,
    /// A backup: written.
    Backup,
}

/// What [`Node::probe`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Probe {
    /// The server or store (`InfluxDB 1.8.10 (OSS)`, `SQLite 3.46.0`).
    pub server: String,
    /// What was checked (`database "market" exists and can be read`).
    pub detail: String,
    /// Something to know that is not a failure (`will be created on first run`).
    pub note: Option<String>,
}

/// What kind of failure a node reported; decides whether a retry can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Could not connect, or the connection broke.
    Unavailable,
    /// The request took longer than the node's timeout.
    Timeout,
    /// The server failed (5xx).
    Server,
    /// The server asked us to slow down (408, 429).
    Throttled,
    /// The response could not be understood (truncated, malformed).
    BadResponse,
    /// Local storage failed (disk full, locked, I/O error).
    Storage,
    /// Credentials were refused (401, 403).
    Auth,
    /// The request was refused as invalid (4xx, field type conflict, parse error).
    Rejected,
    /// The data given to the node was invalid before any request was made.
    InvalidData,
}

impl ErrorKind {
    fn label(self) -> &'static str {
        match self {
            ErrorKind::Unavailable => "unreachable",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Server => "server error",
            ErrorKind::Throttled => "throttled",
            ErrorKind::BadResponse => "bad response",
            ErrorKind::Storage => "storage error",
            ErrorKind::Auth => "authentication failed",
            ErrorKind::Rejected => "request rejected",
            ErrorKind::InvalidData => "invalid data",
        }
    }
}

/// A failure reported by (or about) one node.
#[derive(Debug, Clone, thiserror::Error)]
#[error("node {node}: {}: {message}", .kind.label())]
pub struct NodeError {
    /// Node name.
    pub node: String,
    /// Failure class.
    pub kind: ErrorKind,
    /// What happened, for people.
    pub message: String,
    /// How long the server asked us to wait before retrying.
    pub retry_after: Option<Duration>,
}

impl NodeError {
    /// Builds an error.
    pub fn new(node: &str, kind: ErrorKind, message: impl Into<String>) -> Self {
        NodeError {
            node: node.to_string(),
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Whether trying again later can succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Unavailable
                | ErrorKind::Timeout
                | ErrorKind::Server
                | ErrorKind::Throttled
                | ErrorKind::BadResponse
                | ErrorKind::Storage
        )
    }
}

impl crate::retry::Retryable for NodeError {
    fn retryable(&self) -> bool {
        NodeError::retryable(self)
    }
    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}
