//! The status view: per (backup, series), the checkpoint, the primary's newest point, the lag
//! and whether it is `behind` (lag over `max_gap_hours`, or never synced while the primary has
//! data). Shared by `dms status` and the API.

use crate::config::Settings;
use crate::history::{Status, StatusRow};
use crate::model::{BackupSeries, NANOS_PER_SEC, Nanos, SeriesKey, format_nanos};
use crate::node::{Node, NodeError};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// How long the status view may wait for the primary (below a typical 10 s Prometheus scrape
/// timeout), for the API, `/metrics` and the status page.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(8);

/// The `behind` rule: the primary has data and the backup was never synced, or its lag
/// (primary newest − checkpoint) exceeds `max_gap`.
pub fn is_behind(
    primary_newest: Option<Nanos>,
    checkpoint: Option<Nanos>,
    max_gap: Duration,
) -> bool {
    let max_gap = i64::try_from(max_gap.as_nanos()).unwrap_or(i64::MAX);
    match (primary_newest, checkpoint) {
        (Some(_), None) => true,
        (Some(p), Some(c)) => p.saturating_sub(c) > max_gap,
        (None, _) => false,
    }
}

/// One (backup, series) line of the status view.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeriesStatus {
    /// Backup and series.
    #[serde(flatten)]
    pub key: BackupSeries,
    /// Newest point the backup acknowledged (RFC 3339).
    pub checkpoint: Option<String>,
    /// Primary's newest point (RFC 3339).
    pub primary_newest: Option<String>,
    /// Primary newest − checkpoint, in seconds.
    pub lag_seconds: Option<f64>,
    /// Lag over `max_gap_hours`, or never synced while the primary has data.
    pub behind: bool,
    /// Status of the last sync.
    pub last_status: Option<Status>,
    /// Error of the last sync.
    pub last_error: Option<String>,
    /// When the checkpoint row last changed.
    #[serde(with = "crate::history::wallclock::option")]
    pub updated_at: Option<DateTime<Utc>>,
    /// Checkpoint in nanoseconds.
    #[serde(skip)]
    pub checkpoint_ns: Option<Nanos>,
    /// Primary newest in nanoseconds.
    #[serde(skip)]
    pub primary_newest_ns: Option<Nanos>,
}

/// Builds the status of every enabled backup × every series the primary holds or the history
/// knows. `primary_newest` comes from one batched look-up.
///
/// # Errors
/// [`StatusError::Primary`] when the primary cannot be asked.
pub async fn collect(
    settings: &Settings,
    rows: &[StatusRow],
    primary: &dyn Node,
) -> Result<Vec<SeriesStatus>, StatusError> {
    let mut series: Vec<SeriesKey> = primary.list_series().await.map_err(StatusError::Primary)?;
    let backups: Vec<String> = settings.enabled_backups().map(|b| b.name.clone()).collect();
    for r in rows {
        if backups.contains(&r.key.backup) {
            series.push(r.key.series.clone());
        }
    }
    series.sort();
    series.dedup();
    let newest: HashMap<SeriesKey, Nanos> = primary
        .newest(&series)
        .await
        .map_err(StatusError::Primary)?;
    let by_key: HashMap<&BackupSeries, &StatusRow> = rows.iter().map(|r| (&r.key, r)).collect();
    let mut out = BTreeMap::new();
    for b in &backups {
        for s in &series {
            let key = BackupSeries::new(b.clone(), s.clone());
            let row = by_key.get(&key);
            let cp = row.and_then(|r| r.last_sync_time);
            let pn = newest.get(s).copied();
            let lag = match (pn, cp) {
                (Some(p), Some(c)) => Some(p.saturating_sub(c).max(0)),
                _ => None,
            };
            let behind = is_behind(pn, cp, settings.sync.max_gap);
            out.insert(
                key.clone(),
                SeriesStatus {
                    key,
                    checkpoint: cp.map(format_nanos),
                    primary_newest: pn.map(format_nanos),
                    lag_seconds: lag.map(|l| l as f64 / NANOS_PER_SEC as f64),
                    behind,
                    last_status: row.and_then(|r| r.last_status),
                    last_error: row.and_then(|r| r.last_error.clone()),
                    updated_at: row.map(|r| r.updated_at),
                    checkpoint_ns: cp,
                    primary_newest_ns: pn,
                },
            );
        }
    }
    Ok(out.into_values().collect())
}

/// [`collect`] waiting at most [`STATUS_TIMEOUT`] for the primary.
///
/// # Errors
/// [`StatusError`] when the primary cannot be asked or does not answer in time.
pub async fn collect_timed(
    settings: &Settings,
    rows: &[StatusRow],
    primary: &dyn Node,
) -> Result<Vec<SeriesStatus>, StatusError> {
    tokio::time::timeout(STATUS_TIMEOUT, collect(settings, rows, primary))
        .await
        .map_err(|_| StatusError::Timeout {
            node: primary.name().to_string(),
            after: STATUS_TIMEOUT,
        })?
}

/// Why the status could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The primary could not be asked.
    #[error("primary: {0}")]
    Primary(NodeError),
    /// The primary did not answer in time.
    #[error("primary {node} did not answer within {} s", after.as_secs())]
    Timeout {
        /// Primary's name.
        node: String,
        /// How long it was given.
        after: Duration,
    },
}
