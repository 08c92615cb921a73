//! The status view: per (backup, series), what the primary and the backup each hold (their
//! newest points, looked up on each node in one batched request), the checkpoint, the lag
//! (primary newest − backup newest) and a state: `current`, `lagging`, `behind`, `ahead` (the
//! backup holds newer points than the primary) or `unknown` (the backup could not be asked). Shared by `dms status`, the API, `/metrics` and the page.

use crate::config::Settings;
use crate::history::{HistoryError, HistoryReader, ScopeRow, Status, StatusRow};
use crate::model::{BackupSeries, NANOS_PER_SEC, Nanos, SeriesKey, format_nanos};
use crate::node::{Node, NodeError, Tip};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// How long the status view may wait for the nodes (below a typical 10 s Prometheus scrape
/// timeout), for the API, `/metrics` and the status page.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(8);

/// How long one backup may take to say what it holds before its lines are `unknown`.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the lag is over `max_gap`: the primary has data and the backup holds none of the
/// series, or primary newest − backup newest exceeds `max_gap`. Only half of `behind`: see
/// [`Recorded::could_not_catch_up`].
pub fn is_behind(
    primary_newest: Option<Nanos>,
    backup_newest: Option<Nanos>,
    max_gap: Duration,
) -> bool {
    let max_gap = i64::try_from(max_gap.as_nanos()).unwrap_or(i64::MAX);
    match (primary_newest, backup_newest) {
        (Some(_), None) => true,
        (Some(p), Some(b)) => p.saturating_sub(b) > max_gap,
        (None, _) => false,
    }
}

/// What the history says that the status view needs: the checkpoints and last outcomes, which
/// task maintains what, and when the daemon's check loop last finished a pass.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// Every `sync_status` row.
    pub rows: Vec<StatusRow>,
    /// Which task maintains which (backup, series).
    pub scope: Vec<ScopeRow>,
    /// When the check loop last finished a pass.
    pub last_check: Option<DateTime<Utc>>,
    /// Series whose feed stopped (the primary's newest bar unchanged for a task's
    /// `stale_after` runs).
    pub stale: Vec<crate::history::StaleFeed>,
}

impl Recorded {
    /// Reads it.
    ///
    /// # Errors
    /// [`HistoryError`] from the queries.
    pub fn read(db: &HistoryReader) -> Result<Recorded, HistoryError> {
        Ok(Recorded {
            rows: db.status_rows()?,
            scope: db.scope()?,
            last_check: db.last_check()?,
            stale: db.stale_feeds()?,
        })
    }

    /// The other half of `behind`: whether dms could not bring a lagging (backup, series)
    /// current — its last sync failed, the backup cannot be asked, or no check-loop pass has
    /// finished within two check intervals (plus a minute), so no catch-up is coming. A
    /// series whose newest bar merely waits for the next check (the first bar after a
    /// weekend) is not behind.
    pub fn could_not_catch_up(
        &self,
        settings: &Settings,
        row: Option<&StatusRow>,
        unreachable: bool,
    ) -> bool {
        if unreachable || row.and_then(|r| r.last_status) == Some(Status::Failed) {
            return true;
        }
        let grace = settings.sync.check_interval.saturating_mul(2) + Duration::from_secs(60);
        let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        !settings.sync.check_enabled
            || self
                .last_check
                .is_none_or(|t| Utc::now().signed_duration_since(t) > grace)
    }
}

/// Where a backup·series stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The backup holds the primary's newest point, with the same values.
    Current,
    /// The backup differs at the tip but by no more than `max_gap_hours`.
    Lagging,
    /// Lag over `max_gap_hours` (or the backup holds none of a series the primary has) and
    /// dms could not bring it current: the last sync failed, or no catch-up is coming.
    Behind,
    /// The backup holds points newer than the primary's newest (or the primary holds none of
    /// the series): the primary lost data — restored from an older snapshot, wiped, a series
    /// dropped. Reconcile refuses to delete what only the backup holds; `dms restore` brings
    /// it back.
    Ahead,
    /// The backup could not be asked: nothing is known.
    Unknown,
}

impl State {
    /// Name as shown.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Current => "current",
            State::Lagging => "lagging",
            State::Behind => "behind",
            State::Ahead => "ahead",
            State::Unknown => "unknown",
        }
    }
}

/// One (backup, series) line of the status view.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeriesStatus {
    /// Backup and series.
    #[serde(flatten)]
    pub key: BackupSeries,
    /// Where it stands.
    pub state: State,
    /// Newest point the backup acknowledged to dms (RFC 3339).
    pub checkpoint: Option<String>,
    /// Primary's newest point at or before now + `future_tolerance` (RFC 3339).
    pub primary_newest: Option<String>,
    /// The backup's own newest point at or before now + `future_tolerance` (RFC 3339).
    pub backup_newest: Option<String>,
    /// Primary newest − backup newest, in seconds (− the checkpoint when the backup cannot
    /// be asked: at least this much).
    pub lag_seconds: Option<f64>,
    /// Lag over `max_gap_hours` (a backup that cannot be asked: judged from its checkpoint)
    /// that dms could not fix ([`Recorded::could_not_catch_up`]).
    pub behind: bool,
    /// Enabled tasks that maintain this (backup, series), as their last runs chose.
    pub tasks: Vec<String>,
    /// The primary's newest future-dated point (after now + `future_tolerance`), if any.
    pub future: Option<String>,
    /// The feed stopped: a task that maintains the series ran `stale_after` times in a row
    /// and found the primary's newest bar unchanged and overdue. Since when (RFC 3339).
    pub stale: Option<String>,
    /// Why the state is `unknown`.
    pub error: Option<String>,
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
    /// Backup newest in nanoseconds.
    #[serde(skip)]
    pub backup_newest_ns: Option<Nanos>,
}

/// Builds the status of every enabled backup × every series the primary holds or the history
/// knows, from one tips look-up on the primary and one on each backup (all at once).
///
/// # Errors
/// [`StatusError::Primary`] when the primary cannot be asked (a backup that cannot be asked
/// makes its lines `unknown`).
pub async fn collect(
    settings: &Settings,
    recorded: &Recorded,
    primary: &dyn Node,
    backups: &[Arc<dyn Node>],
) -> Result<Vec<SeriesStatus>, StatusError> {
    // Lag and state are judged on points at or before now; a point past now + the tolerance
    // is shown as future-dated.
    let now = crate::model::now_nanos();
    let horizon = settings.sync.horizon();
    let enabled: Vec<&str> = settings
        .enabled_backups()
        .map(|b| b.name.as_str())
        .collect();
    // The primary's and every backup's tips at once (one request per node): a backup is
    // asked for every series it holds, which covers whatever the primary lists.
    let primary_part = async {
        let mut primary_tips = primary.tips_all(now).await.map_err(StatusError::Primary)?;
        if primary_tips.is_empty() {
            // A typo in the primary's database is an error, not an empty table.
            primary
                .probe(crate::node::Role::Primary)
                .await
                .map_err(StatusError::Primary)?;
        }
        let mut series: Vec<SeriesKey> = primary_tips.keys().cloned().collect();
        let known: Vec<SeriesKey> = recorded
            .rows
            .iter()
            .filter(|r| enabled.contains(&r.key.backup.as_str()))
            .map(|r| r.key.series.clone())
            .filter(|s| !primary_tips.contains_key(s))
            .collect();
        if !known.is_empty() {
            // Series the history knows but the primary no longer lists: still shown.
            primary_tips.extend(
                primary
                    .tips(&known, now)
                    .await
                    .map_err(StatusError::Primary)?,
            );
            series.extend(known);
        }
        series.sort();
        series.dedup();
        Ok::<_, StatusError>((primary_tips, series))
    };
    let backups_part =
        futures::future::join_all(backups.iter().filter(|b| enabled.contains(&b.name())).map(
            |b| async {
                let tips = match tokio::time::timeout(BACKUP_TIMEOUT, b.tips_all(now)).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err(format!(
                        "node {}: no answer within {} s",
                        b.name(),
                        BACKUP_TIMEOUT.as_secs()
                    )),
                };
                (b.name().to_string(), tips)
            },
        ));
    let (primary_part, backup_tips) = tokio::join!(primary_part, backups_part);
    let (primary_tips, series) = primary_part?;
    let rows = &recorded.rows;
    let by_key: HashMap<&BackupSeries, &StatusRow> = rows.iter().map(|r| (&r.key, r)).collect();
    let mut owners: HashMap<&BackupSeries, Vec<String>> = HashMap::new();
    for r in &recorded.scope {
        if settings.task(&r.task).is_some_and(|t| t.enabled) {
            owners.entry(&r.key).or_default().push(r.task.clone());
        }
    }
    let mut out = BTreeMap::new();
    for (backup, tips) in &backup_tips {
        for s in &series {
            let key = BackupSeries::new(backup.clone(), s.clone());
            let mut line = line(
                settings,
                recorded,
                key.clone(),
                primary_tips.get(s).copied(),
                tips.as_ref().map(|t| t.get(s).copied()),
                by_key.get(&key).copied(),
            );
            line.tasks = owners.remove(&key).unwrap_or_default();
            line.stale = recorded
                .stale
                .iter()
                .filter(|f| f.series == *s && settings.task(&f.task).is_some_and(|t| t.enabled))
                .map(|f| f.since.clone().unwrap_or_default())
                .min();
            // Flagged only past now + future_tolerance; nearer future points are ordinary.
            line.future = primary_tips
                .get(s)
                .and_then(|t| t.future)
                .filter(|t| *t > horizon)
                .map(format_nanos);
            out.insert(key, line);
        }
    }
    Ok(out.into_values().collect())
}

/// One line from the two tips and the history row.
fn line(
    settings: &Settings,
    recorded: &Recorded,
    key: BackupSeries,
    primary: Option<Tip>,
    backup: Result<Option<Tip>, &String>,
    row: Option<&StatusRow>,
) -> SeriesStatus {
    let pn = primary.and_then(|t| t.newest_time());
    let (bn, error) = match &backup {
        Ok(t) => (t.and_then(|t| t.newest_time()), None),
        Err(e) => (None, Some((*e).clone())),
    };
    let cp = row.and_then(|r| r.last_sync_time);
    // A backup that cannot be asked holds at least what it acknowledged: its lag is at least
    // primary newest − checkpoint, and it is behind when that is over max_gap.
    let held = if error.is_some() { cp } else { bn };
    let lag = match (pn, held) {
        (Some(p), Some(b)) => Some(p.saturating_sub(b).max(0)),
        _ => None,
    };
    let behind = is_behind(pn, held, settings.sync.max_gap)
        && recorded.could_not_catch_up(settings, row, error.is_some());
    // The primary lost what a backup still holds: newer points, or the whole series.
    let ahead = match (pn, bn) {
        (Some(p), Some(b)) => b > p,
        (None, Some(_)) => true,
        (_, None) => false,
    };
    let state = match backup {
        Err(_) => State::Unknown,
        Ok(_) if ahead => State::Ahead,
        Ok(_) if behind => State::Behind,
        Ok(b) if b == primary => State::Current,
        Ok(_) => State::Lagging,
    };
    SeriesStatus {
        key,
        state,
        checkpoint: cp.map(format_nanos),
        primary_newest: pn.map(format_nanos),
        backup_newest: bn.map(format_nanos),
        lag_seconds: lag.map(|l| l as f64 / NANOS_PER_SEC as f64),
        behind,
        tasks: Vec::new(),
        future: primary.and_then(|t| t.future).map(format_nanos),
        stale: None,
        error,
        last_status: row.and_then(|r| r.last_status),
        last_error: row.and_then(|r| r.last_error.clone()),
        updated_at: row.map(|r| r.updated_at),
        checkpoint_ns: cp,
        primary_newest_ns: pn,
        backup_newest_ns: bn,
    }
}

/// [`collect`] waiting at most [`STATUS_TIMEOUT`] for the nodes.
///
/// # Errors
/// [`StatusError`] when the primary cannot be asked or the nodes do not answer in time.
pub async fn collect_timed(
    settings: &Settings,
    recorded: &Recorded,
    primary: &dyn Node,
    backups: &[Arc<dyn Node>],
) -> Result<Vec<SeriesStatus>, StatusError> {
    tokio::time::timeout(
        STATUS_TIMEOUT,
        collect(settings, recorded, primary, backups),
    )
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
    /// The nodes did not answer in time.
    #[error("primary {node} or a backup did not answer within {} s", after.as_secs())]
    Timeout {
        /// Primary's name.
        node: String,
        /// How long they were given.
        after: Duration,
    },
}
