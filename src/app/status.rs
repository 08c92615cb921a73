//! The status view: per (backup, series), the checkpoint, the primary's newest point, the lag
//! and whether it is `behind` (lag over `max_gap_hours`, or never synced while the primary has
//! data). Shared by `dms status` and the API.

use crate::config::Settings;
use crate::history::StatusRow;
use crate::model::{NANOS_PER_SEC, Nanos, SeriesKey, format_nanos};
use crate::node::{Node, NodeError};
use std::collections::{BTreeMap, HashMap};

/// One (backup, series) line of the status view.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeriesStatus {
    /// Backup node.
    pub backup: String,
    /// Symbol.
    pub symbol: String,
    /// Interval.
    pub interval: String,
    /// Newest point the backup acknowledged (RFC 3339).
    pub checkpoint: Option<String>,
    /// Primary's newest point (RFC 3339).
    pub primary_newest: Option<String>,
    /// Primary newest − checkpoint, in seconds.
    pub lag_seconds: Option<f64>,
    /// Lag over `max_gap_hours`, or never synced while the primary has data.
    pub behind: bool,
    /// Status of the last sync.
    pub last_status: Option<String>,
    /// Error of the last sync.
    pub last_error: Option<String>,
    /// When the checkpoint row last changed.
    pub updated_at: Option<String>,
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
        if backups.contains(&r.backup) {
            series.push(SeriesKey::new(r.symbol.clone(), r.interval.clone()));
        }
    }
    series.sort();
    series.dedup();
    let newest: HashMap<SeriesKey, Nanos> = primary
        .newest(&series)
        .await
        .map_err(StatusError::Primary)?;
    let by_key: HashMap<(&str, &str, &str), &StatusRow> = rows
        .iter()
        .map(|r| {
            (
                (r.backup.as_str(), r.symbol.as_str(), r.interval.as_str()),
                r,
            )
        })
        .collect();
    let max_gap = i64::try_from(settings.sync.max_gap.as_nanos()).unwrap_or(i64::MAX);
    let mut out = BTreeMap::new();
    for b in &backups {
        for s in &series {
            let row = by_key.get(&(b.as_str(), s.symbol.as_str(), s.interval.as_str()));
            let cp = row.and_then(|r| r.last_sync_time);
            let pn = newest.get(s).copied();
            let lag = match (pn, cp) {
                (Some(p), Some(c)) => Some(p.saturating_sub(c).max(0)),
                _ => None,
            };
            let behind = match (pn, cp) {
                (Some(_), None) => true,
                _ => lag.is_some_and(|l| l > max_gap),
            };
            out.insert(
                (b.clone(), s.clone()),
                SeriesStatus {
                    backup: b.clone(),
                    symbol: s.symbol.clone(),
                    interval: s.interval.clone(),
                    checkpoint: cp.map(format_nanos),
                    primary_newest: pn.map(format_nanos),
                    lag_seconds: lag.map(|l| l as f64 / NANOS_PER_SEC as f64),
                    behind,
                    last_status: row.and_then(|r| r.last_status.clone()),
                    last_error: row.and_then(|r| r.last_error.clone()),
                    updated_at: row.map(|r| r.updated_at.clone()),
                    checkpoint_ns: cp,
                    primary_newest_ns: pn,
                },
            );
        }
    }
    Ok(out.into_values().collect())
}

/// Why the status could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The primary could not be asked.
    #[error("primary: {0}")]
    Primary(NodeError),
}
