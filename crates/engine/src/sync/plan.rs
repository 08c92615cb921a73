//! Planning: from the tips of the primary and of each backup and the checkpoints, decide per
//! (backup, series) whether anything needs copying, from where to where — and whether the
//! checkpoint claims more than the backup holds (then it is moved back: a backup restored
//! from an old snapshot, wiped, or whose database was dropped).
//!
//! Rules, per (backup, series), with `cp` the checkpoint and tips split at now (a tip's newest
//! point at or before now, and its newest future-dated point):
//! - **Rewind:** `cp` newer than the backup's newest point at or before now → `cp` becomes
//!   that point (none: the backup holds nothing, so the series is synced from scratch). A
//!   `cp` past now that the backup holds is only capped (recorded, not alerted).
//! - **Up to date** (only with `only_behind`, the check loop): the backup's tip equals the
//!   primary's — same newest time and fingerprint (so a revised newest bar is not skipped),
//!   same newest future point. A backup that cannot be asked gets no work from the check
//!   loop (its lines stay in [`Plan::lags`], so the daemon knows it is down); other requests
//!   plan it from its checkpoint (up to date when that reaches the primary's newest point).
//! - **Scope** (the check loop's task scope): only the (backup, series) named, each with its
//!   own `initial_days`.
//! - **Window:** incremental from `cp − lookback` (inclusive), or from `now − initial_days`
//!   without a checkpoint or in full mode; to the primary's newest point including
//!   future-dated ones, as seen now (a run always ends).

use super::{SyncReport, SyncRequest};
use dms_config::SyncMode;
use dms_core::model::{BackupSeries, NANOS_PER_DAY, Nanos, SeriesKey, TimeRange, now_nanos};
use dms_core::node::{Node, Tip};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One fan-out: a series window read once and written to each lane's backup.
pub(crate) struct UnitPlan {
    pub(crate) series: SeriesKey,
    pub(crate) range: TimeRange,
    pub(crate) lanes: Vec<Arc<dyn Node>>,
    /// The lanes' backups will hold the series contiguously from the window start (a first
    /// sync or a full resync).
    pub(crate) contiguous_from_start: bool,
}

/// What a backup's tips look-up gave.
pub type BackupTips = Result<HashMap<SeriesKey, Tip>, String>;

/// Where one (backup, series) stands when a sync is planned.
#[derive(Debug, Clone)]
pub struct Lag {
    /// Backup and series.
    pub key: BackupSeries,
    /// The backup's checkpoint (after any rewind).
    pub checkpoint: Option<Nanos>,
    /// The primary's tip.
    pub primary: Tip,
    /// The backup's tip (`Ok(None)`: it holds nothing of the series), or why it could not be
    /// asked.
    pub backup: Result<Option<Tip>, String>,
}

impl Lag {
    /// Primary newest − [`Lag::held`]; `None` when either side holds nothing.
    pub fn lag(&self) -> Option<Nanos> {
        let p = self.primary.newest_time()?;
        let b = self.held()?;
        Some(p.saturating_sub(b).max(0))
    }

    /// The backup's newest point at or before the horizon.
    pub fn backup_newest(&self) -> Option<Nanos> {
        self.backup.as_ref().ok()?.as_ref()?.newest_time()
    }

    /// What the backup is known to hold up to: its newest point, or its checkpoint when it
    /// could not be asked (it holds at least what it acknowledged).
    pub fn held(&self) -> Option<Nanos> {
        match &self.backup {
            Ok(t) => t.and_then(|t| t.newest_time()),
            Err(_) => self.checkpoint,
        }
    }

    /// Whether the backup holds what the primary's tip holds.
    pub fn current(&self) -> bool {
        matches!(&self.backup, Ok(Some(b)) if *b == self.primary)
    }
}

/// A checkpoint that claimed more than its backup holds, moved back.
#[derive(Debug, Clone)]
pub struct Rewind {
    /// Backup and series.
    pub key: BackupSeries,
    /// The checkpoint before.
    pub from: Nanos,
    /// The backup's newest point (the new checkpoint); `None` when it holds nothing.
    pub to: Option<Nanos>,
    /// The checkpoint was past now (an older dms let checkpoints reach future-dated points):
    /// moved to what the backup holds up to now, with nothing lost — no alert.
    pub capped: bool,
}

/// What a request will copy, made by [`super::Engine::plan`] and run by
/// [`super::Engine::execute`].
pub struct Plan {
    pub(crate) units: Vec<UnitPlan>,
    pub(crate) report: SyncReport,
    /// Where every planned (backup, series) stood.
    pub lags: Vec<Lag>,
    /// Checkpoints moved back to what their backups hold (already recorded).
    pub rewinds: Vec<Rewind>,
    pub(crate) mode: SyncMode,
    pub(crate) repair: bool,
}

impl Plan {
    pub(crate) fn new(req: &SyncRequest) -> Plan {
        Plan {
            units: Vec::new(),
            report: SyncReport::default(),
            lags: Vec::new(),
            rewinds: Vec::new(),
            mode: req.mode,
            repair: req.window.is_some(),
        }
    }

    /// Whether nothing needs copying.
    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// (backup, series) pairs that will be synced.
    pub fn lanes(&self) -> usize {
        self.units.iter().map(|u| u.lanes.len()).sum()
    }
}

/// What [`plan_units`] plans from.
pub(crate) struct Inputs<'a> {
    pub req: &'a SyncRequest,
    pub series: &'a [SeriesKey],
    pub primary: &'a HashMap<SeriesKey, Tip>,
    pub backups: &'a [(Arc<dyn Node>, BackupTips)],
    pub checkpoints: &'a HashMap<BackupSeries, Nanos>,
    pub lookback: Nanos,
    /// Now: tips are split here, and no checkpoint may pass it.
    pub now: Nanos,
}

/// Plans every (backup, series) of the request; see the module docs for the rules.
pub(crate) fn plan_units(i: &Inputs<'_>, plan: &mut Plan) {
    let req = i.req;
    let days_ago =
        |days: u32| now_nanos().saturating_sub(i64::from(days).saturating_mul(NANOS_PER_DAY));
    let initial_start = days_ago(req.initial_days);
    for s in i.series {
        let Some(&primary) = i.primary.get(s) else {
            plan.report.empty_on_primary.push(s.clone());
            continue;
        };
        // Group the backups of this series by window, preserving backup order.
        let mut groups: BTreeMap<(Nanos, bool), Vec<Arc<dyn Node>>> = BTreeMap::new();
        for (b, tips) in i.backups {
            let key = BackupSeries::new(b.name(), s.clone());
            let initial_start = match &req.scope {
                None => initial_start,
                Some(scope) => match scope.get(&key) {
                    Some(days) => days_ago(*days),
                    None => continue,
                },
            };
            plan.report.covered.push(key.clone());
            let mut cp = i.checkpoints.get(&key).copied();
            let backup = tips
                .as_ref()
                .map(|t| t.get(s).copied())
                .map_err(Clone::clone);
            if let (Some(c), Ok(held)) = (cp, &backup) {
                let newest = held.and_then(|t| t.newest_time());
                if newest.is_none_or(|n| n < c) {
                    // Past now and the backup holds it (as a future point): only the rule
                    // changed; otherwise the backup lost what the checkpoint claimed.
                    let capped = c > i.now && held.and_then(|t| t.latest()).is_some_and(|l| l >= c);
                    plan.rewinds.push(Rewind {
                        key: key.clone(),
                        from: c,
                        to: newest,
                        capped,
                    });
                    cp = newest;
                }
            }
            let lag = Lag {
                key,
                checkpoint: cp,
                primary,
                backup,
            };
            // A backup that cannot be asked is judged by its checkpoint, as it would be with
            // no tips at all: planned (and failing, recorded) unless the checkpoint reaches the
            // primary's newest point.
            let current = match &lag.backup {
                Ok(_) => lag.current(),
                Err(_) => cp.is_some_and(|c| primary.newest_time().is_none_or(|p| c >= p)),
            };
            let unreachable = lag.backup.is_err();
            plan.lags.push(lag);
            // The check loop sends no work to a backup that did not answer its look-up.
            if req.only_behind && unreachable {
                continue;
            }
            if req.only_behind && current {
                plan.report.up_to_date += 1;
                continue;
            }
            let first = req.window.is_none() && (req.mode == SyncMode::Full || cp.is_none());
            let start = match (req.window, req.mode, cp) {
                (Some(w), _, _) => w.start,
                (None, SyncMode::Incremental, Some(c)) => c.saturating_sub(i.lookback),
                (None, _, _) => initial_start,
            };
            groups.entry((start, first)).or_default().push(b.clone());
        }
        let latest = primary.latest().unwrap_or(Nanos::MIN);
        let end = match req.window {
            Some(w) => w.end.min(latest),
            None => latest,
        };
        for ((start, first), lanes) in groups {
            if start > end {
                // Nothing newer than the checkpoint (the primary's newest bar was deleted):
                // nothing to copy.
                plan.report.up_to_date += lanes.len();
                continue;
            }
            plan.units.push(UnitPlan {
                series: s.clone(),
                range: TimeRange::new(start, end),
                lanes,
                contiguous_from_start: first,
            });
        }
    }
}
