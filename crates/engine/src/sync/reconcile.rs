//! Reconciliation (anti-entropy): proves each backup equals the primary over the synced range
//! — and repairs where it does not — without reading every point.
//!
//! For a few dozen series at a time, the primary and each backup compute per-window digests
//! themselves ([`dms_core::node::Node::digests`]: cheap ones — counts and the sum of `close` —
//! for every window, full-field ones where asked). Only windows whose digests differ are read
//! point by point on both sides and compared exactly (by timestamp and point fingerprint):
//! points the backup lacks or holds with other values are rewritten from the primary; points
//! the primary no longer has are deleted when `mirror_deletes` is on, reported as `extra`
//! otherwise.
//!
//! A (backup, series) is compared up to its checkpoint: what lies beyond is the next sync's
//! work, and a series never synced to a backup is left to the sync. Windows before where the
//! backup was first synced from (after `initial_days` grew) differ and are back-filled here.

use super::{Engine, Selection, SyncControl, SyncError};
use dms_core::ledger::{EventKind, ReconcileCounts, ReconcileDepth, Status};
use dms_core::model::{BackupSeries, Batch, Nanos, Point, SeriesKey, TimeRange, format_nanos};
use dms_core::node::digest::{Comparison, Digest, exact_fingerprint, window_start};
use dms_core::node::{Depth, Digests, Node, NodeError, Tip};
use dms_core::retry::{GaveUp, with_retry};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

/// Series whose digests are asked for in one go.
const CHUNK: usize = 64;
/// Windows one exact read holds (per side, per series being read).
const SPAN: i64 = 32;
/// Differing windows listed per backup in a report (all are counted and repaired).
const LISTED: usize = 200;

/// What to reconcile.
#[derive(Debug, Clone)]
pub struct ReconcileRequest {
    /// Series covered.
    pub selection: Selection,
    /// Backup names; `None` = every enabled backup.
    pub backups: Option<Vec<String>>,
    /// Data-time range compared (each backup·series up to the later of its checkpoint and
    /// its newest data).
    pub range: TimeRange,
    /// Window length in nanoseconds.
    pub window: Nanos,
    /// Where windows are compared with full-field digests; elsewhere cheap ones. `None`:
    /// full everywhere.
    pub full: Option<TimeRange>,
    /// Compare and report, change nothing.
    pub dry_run: bool,
    /// Read and compare every window that holds data point by point, whatever the digests
    /// say (what no digest sees: strings, booleans, re-stamps, swaps).
    pub exact: bool,
    /// Delete from the backups points the primary no longer has (inside compared windows).
    pub mirror_deletes: bool,
    /// Task run the history rows belong to.
    pub run_id: Option<i64>,
    /// Stop starting new series after this (a scheduled pass's budget).
    pub deadline: Option<Instant>,
    /// Start at this series (and come round to the ones before it): where the previous pass
    /// of the same kind stopped, so a budget never keeps the tail of the list from a turn.
    pub resume_from: Option<SeriesKey>,
    /// Where each (backup, series) a task maintains starts: now − that task's
    /// `initial_days` (the range the task keeps), instead of `range.start`.
    pub starts: HashMap<BackupSeries, Nanos>,
    /// A scrub's share of the range (with `exact`): only the blocks of this stripe are read.
    pub stripe: Option<Stripe>,
    /// How much the pass may delete.
    pub deletes: DeleteLimits,
}

/// One stripe of an exact scrub. The range is cut into `of` blocks of whole windows, aligned
/// to the epoch (so the blocks stay put as the range moves with the days); the stripe is
/// every block whose number is `index` modulo `of`. Scrubbing stripes `0..of` in turn reads
/// every point of the range once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Stripe {
    /// Which stripe, `0..of`.
    pub index: u32,
    /// How many stripes the range is cut into.
    pub of: u32,
}

impl Stripe {
    /// The parts of `range` that belong to this stripe, for a scrub of `whole` (the range the
    /// blocks are cut from) in windows of `window`.
    pub fn parts(self, range: TimeRange, whole: TimeRange, window: Nanos) -> Vec<TimeRange> {
        let w = window.max(1);
        let of = i64::from(self.of.max(1));
        // Blocks of whole windows, `of` of them at least as long as `whole`: from its length
        // alone, so they stay put from one pass to the next as the range moves.
        let length = whole
            .end
            .saturating_sub(whole.start)
            .saturating_add(1)
            .max(1);
        let windows = (length + w - 1) / w;
        let len = ((windows + of - 1) / of).max(1).saturating_mul(w);
        let mut out = Vec::new();
        if range.is_empty() {
            return out;
        }
        let (first, last) = (range.start.div_euclid(len), range.end.div_euclid(len));
        for block in first..=last {
            if block.rem_euclid(of) != i64::from(self.index) {
                continue;
            }
            let start = block.saturating_mul(len);
            let part = TimeRange::new(
                start.max(range.start),
                start.saturating_add(len - 1).min(range.end),
            );
            if !part.is_empty() {
                out.push(part);
            }
        }
        out
    }
}

/// Points a scrub stripe's look-ahead reads at most per chunk of series and node.
const PREFETCH_POINTS: usize = 200_000;

/// Per timestamp, the sum of the exact fingerprints of the points there.
fn fingerprints_of(points: &[dms_core::model::Point]) -> Fingerprints {
    let mut out: Fingerprints = BTreeMap::new();
    for p in points {
        let e = out.entry(p.time).or_default();
        *e = e.wrapping_add(exact_fingerprint(p));
    }
    out
}

/// Cuts `range` into window-aligned parts of at most `span` windows (what one exact read holds
/// in memory per side).
fn spans(range: TimeRange, window: Nanos, span: i64) -> Vec<TimeRange> {
    let len = window.max(1).saturating_mul(span.max(1));
    let mut out = Vec::new();
    let mut start = range.start;
    while !range.is_empty() && start <= range.end {
        let end = window_start(start, len)
            .saturating_add(len - 1)
            .min(range.end);
        out.push(TimeRange::new(start, end));
        if end == Nanos::MAX {
            break;
        }
        start = end + 1;
    }
    out
}

/// Which windows a reconciliation compares, and how deeply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// By hand (CLI, API, Lua): full-field digests of every window of the range — the
    /// operator asked for a complete answer.
    Complete,
    /// The daemon's frequent pass: full-field digests of the last `days` days.
    Recent {
        /// Days before now.
        days: u32,
    },
    /// The daemon's exact scrub, a stripe at a time: both sides of stripe `stripe` of
    /// `stripes` read and compared point by point (see [`Stripe`]).
    Scrub {
        /// Which stripe, `0..stripes`.
        stripe: u32,
        /// How many stripes the range is cut into (the scrub period in passes).
        stripes: u32,
    },
    /// The daemon's nightly pass over the whole range, a slice at a time: full-field digests
    /// of slice `slice` of `slices` contiguous slices of the range (and, with
    /// `counts_everywhere`, cheap digests — counts of bars — of every other window too).
    History {
        /// Which slice, `0..slices`.
        slice: u32,
        /// How many slices the range is cut into.
        slices: u32,
        /// Also count the bars of every window of the range.
        counts_everywhere: bool,
    },
}

impl Pass {
    /// The history pass's slice for a day: day number since the epoch modulo `slices`, so
    /// `slices` consecutive nightly passes cover the whole range.
    pub fn history_for(now: Nanos, slices: u32, counts_everywhere: bool) -> Pass {
        let day = now.div_euclid(dms_core::model::NANOS_PER_DAY);
        let slices = slices.max(1);
        Pass::History {
            slice: u32::try_from(day.rem_euclid(i64::from(slices))).unwrap_or(0),
            slices,
            counts_everywhere,
        }
    }

    /// Name for the log and the history.
    pub fn as_str(self) -> &'static str {
        match self {
            Pass::Complete => "complete",
            Pass::Recent { .. } => "recent",
            Pass::History { .. } => "history",
            Pass::Scrub { .. } => "scrub",
        }
    }
}

/// Options of one reconciliation as people give them; unset ones come from the settings.
/// Lists also take one name, times integer nanoseconds or RFC 3339; unknown keys are refused.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcileArgs {
    /// Only these symbols.
    #[serde(deserialize_with = "dms_core::de::one_or_many")]
    pub symbols: Option<Vec<String>>,
    /// Only these intervals.
    #[serde(deserialize_with = "dms_core::de::one_or_many")]
    pub intervals: Option<Vec<String>>,
    /// Only these backups.
    #[serde(deserialize_with = "dms_core::de::one_or_many")]
    pub backups: Option<Vec<String>>,
    /// Start of the range; default now − `initial_days`.
    #[serde(deserialize_with = "dms_core::de::time")]
    pub since: Option<Nanos>,
    /// End of the range; default now + `future_tolerance`.
    #[serde(deserialize_with = "dms_core::de::time")]
    pub until: Option<Nanos>,
    /// Compare and report only.
    pub dry_run: bool,
    /// Compare every window exactly, whatever the digests say.
    pub exact: bool,
    /// Go ahead with up to this many deletes per backup, past `reconcile.max_deletes` and
    /// a primary that moved backwards.
    pub allow_deletes: Option<u64>,
}

impl ReconcileRequest {
    /// The request for `args` in `pass`: `window` and `mirror_deletes` from the `reconcile:`
    /// settings, the default range `now − initial_days` to the horizon.
    pub fn new(
        args: &ReconcileArgs,
        pass: Pass,
        window: Nanos,
        initial_days: u32,
        horizon: Nanos,
        mirror_deletes: bool,
    ) -> ReconcileRequest {
        let now = dms_core::model::now_nanos();
        let days = |d: u32| {
            now.saturating_sub(i64::from(d).saturating_mul(dms_core::model::NANOS_PER_DAY))
        };
        let mut range = TimeRange::new(
            args.since.unwrap_or_else(|| days(initial_days)),
            args.until.unwrap_or(horizon),
        );
        let mut stripe = None;
        let full = match pass {
            Pass::Complete => None,
            Pass::Scrub {
                stripe: index,
                stripes,
            } => {
                stripe = Some(Stripe {
                    index,
                    of: stripes.max(1),
                });
                None
            }
            Pass::Recent { days: d } => {
                range.start = range.start.max(days(d));
                None
            }
            Pass::History {
                slice,
                slices,
                counts_everywhere,
            } => {
                let len = (range.end.saturating_sub(range.start) / i64::from(slices.max(1))).max(1);
                let start = range
                    .start
                    .saturating_add(len.saturating_mul(i64::from(slice)));
                let end = if slice + 1 >= slices {
                    range.end
                } else {
                    start.saturating_add(len - 1)
                };
                let part = TimeRange::new(start, end);
                if counts_everywhere {
                    Some(part)
                } else {
                    range = part;
                    None
                }
            }
        };
        ReconcileRequest {
            selection: match (&args.symbols, &args.intervals) {
                (Some(s), Some(i)) => Selection::cross(s, i),
                (s, i) => Selection::Primary {
                    symbols: s.clone(),
                    intervals: i.clone(),
                },
            },
            backups: args.backups.clone(),
            range,
            window,
            full,
            dry_run: args.dry_run,
            exact: args.exact || stripe.is_some(),
            mirror_deletes,
            run_id: None,
            deadline: None,
            resume_from: None,
            starts: HashMap::new(),
            stripe,
            deletes: DeleteLimits {
                allow: args.allow_deletes,
                ..DeleteLimits::default()
            },
        }
    }
}

/// One window that differed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WindowDiff {
    /// Backup and series.
    #[serde(flatten)]
    pub key: BackupSeries,
    /// Window start (RFC 3339).
    pub window_start: String,
    /// Window end, inclusive (RFC 3339).
    pub window_end: String,
    /// Timestamps the backup lacks.
    pub missing: u64,
    /// Timestamps the backup holds with other values.
    pub different: u64,
    /// Timestamps only the backup holds.
    pub extra: u64,
    /// Whether the window equals the primary's now (after repair).
    pub repaired: bool,
}

/// What one backup's reconciliation found and did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupReconcile {
    /// Backup node.
    pub backup: String,
    /// Counts, status and error, as recorded.
    #[serde(flatten)]
    pub counts: ReconcileCounts,
    /// The differing windows (at most 200 listed).
    pub diffs: Vec<WindowDiff>,
    /// History row id.
    #[serde(skip)]
    pub row_id: i64,
    /// The pass's deletes, held back until they are weighed together.
    #[serde(skip)]
    guard: DeleteGuard,
}

/// How many points a pass may delete from a backup before it deletes none of them. Deletes
/// (and replaces that drop fields or tag sets) are planned during the pass and carried out at
/// its end only when they stay within these limits: a primary that lost data must not take
/// the backups' copies with it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeleteLimits {
    /// Points per backup per pass (`reconcile.max_deletes`).
    pub max_points: u64,
    /// Share of one window's points on the backup (`reconcile.max_delete_share`); one point
    /// alone is always allowed.
    pub max_share: f64,
    /// A person's go-ahead for up to this many (`--allow-deletes N`): the other limits and a
    /// primary that moved backwards no longer hold the deletes back.
    pub allow: Option<u64>,
}

impl Default for DeleteLimits {
    fn default() -> Self {
        DeleteLimits {
            max_points: 100,
            max_share: 0.5,
            allow: None,
        }
    }
}

/// Deletes of one window, planned.
#[derive(Debug, Clone)]
struct PlannedDeletes {
    key: BackupSeries,
    range: TimeRange,
    checkpoint: Nanos,
    /// Timestamps whose points are replaced by the primary's (`keep`).
    replace: Vec<Nanos>,
    keep: Vec<Point>,
    /// Timestamps whose points are deleted.
    delete: Vec<Nanos>,
    /// Extra points left in place (past the primary's newest).
    kept_extra: usize,
    /// Index of the window in the report's `diffs` (when listed).
    diff: usize,
}

/// What a pass would delete from one backup, and why it may not.
#[derive(Debug, Clone, Default)]
struct DeleteGuard {
    planned: Vec<PlannedDeletes>,
    /// Points (timestamps) the plans delete or replace.
    points: u64,
    /// Series whose primary newest point is older than the backup's checkpoint.
    regressed: Vec<String>,
    /// Windows that would lose more than the allowed share.
    wide: Vec<String>,
}

impl DeleteGuard {
    /// Why the planned deletes may not go ahead under `limits`, if they may not.
    fn refusal(&self, limits: &DeleteLimits) -> Option<String> {
        if self.points == 0 {
            return None;
        }
        let allow = format!(
            "nothing was deleted; `dms reconcile --allow-deletes {}` deletes them deliberately",
            self.points
        );
        if let Some(n) = limits.allow {
            return (self.points > n).then(|| {
                format!(
                    "deletes refused: {} points to delete, more than --allow-deletes {n}; {allow}",
                    self.points
                )
            });
        }
        let some = |v: &[String]| {
            let mut s = v.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
            if v.len() > 3 {
                s.push_str(&format!("; and {} more", v.len() - 3));
            }
            s
        };
        if !self.regressed.is_empty() {
            return Some(format!(
                "deletes refused: the primary lost {} points of {} series whose newest point moved backwards ({}); {allow}",
                self.points,
                self.regressed.len(),
                some(&self.regressed)
            ));
        }
        if self.points > limits.max_points {
            return Some(format!(
                "deletes refused: the primary lost {} points, more than reconcile.max_deletes ({}); {allow}",
                self.points, limits.max_points
            ));
        }
        if !self.wide.is_empty() {
            return Some(format!(
                "deletes refused: the primary lost most of a window ({}), more than reconcile.max_delete_share ({}); {allow}",
                some(&self.wide),
                limits.max_share
            ));
        }
        None
    }
}

/// The outcome of a reconciliation.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReconcileReport {
    /// Range compared (RFC 3339).
    pub range_start: String,
    /// Range end (RFC 3339).
    pub range_end: String,
    /// `full`, or `cheap+full` (cheap digests everywhere, full ones on a slice).
    pub depth: ReconcileDepth,
    /// Whether every series was compared (false when the budget or shutdown cut it short).
    pub complete: bool,
    /// The scrub's stripe, when the pass was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stripe: Option<Stripe>,
    /// When cut short: the first series not compared, where the next pass should start.
    pub resume_from: Option<SeriesKey>,
    /// Series of the primary in scope.
    pub series: usize,
    /// One entry per backup.
    pub backups: Vec<BackupReconcile>,
}

impl ReconcileReport {
    /// Windows that differ and were not repaired (or everything that differs, in a dry run).
    pub fn unresolved(&self) -> u64 {
        self.backups
            .iter()
            .map(|b| b.counts.differing - b.counts.repaired)
            .sum()
    }

    /// Backups whose reconciliation failed.
    pub fn failed(&self) -> usize {
        self.backups
            .iter()
            .filter(|b| b.counts.status != Status::Success)
            .count()
    }
}

/// How far one backup's comparison of a chunk of series got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finished {
    /// Every window of every series.
    All,
    /// Shutdown stopped it between windows.
    Stopped,
}

/// Exact comparison of one window: timestamp → fingerprint of the points there.
struct Exact {
    missing: Vec<Nanos>,
    different: Vec<Nanos>,
    extra: Vec<Nanos>,
    /// Timestamps the backup holds in the range.
    backup_points: usize,
}

impl Exact {
    fn equal(&self) -> bool {
        self.missing.is_empty() && self.different.is_empty() && self.extra.is_empty()
    }
}

impl Engine {
    /// Compares the backups with the primary window by window and repairs what differs.
    ///
    /// # Errors
    /// [`SyncError`] when the request names an unknown backup or the primary or history
    /// cannot be asked; a backup that fails is reported in its entry.
    pub async fn reconcile(
        &self,
        req: &ReconcileRequest,
        ctl: &SyncControl,
    ) -> Result<ReconcileReport, SyncError> {
        let backups = self.select_backups(req.backups.as_deref())?;
        // Digests cover the widest range asked for; each (backup, series) is then compared
        // from its own start.
        let default_start = req.range.start;
        let widened = ReconcileRequest {
            range: TimeRange::new(
                req.starts.values().copied().fold(default_start, Nanos::min),
                req.range.end,
            ),
            ..req.clone()
        };
        let req = &widened;
        let mut series = self.reconcile_series(&req.selection, ctl).await?;
        if let Some(from) = &req.resume_from {
            let at = series.partition_point(|s| s < from);
            series.rotate_left(at);
        }
        self.replay_journals(ctl).await;
        let checkpoints = self.history.checkpoints().await?;
        let depth = if req.exact {
            ReconcileDepth::Exact
        } else if req.full.is_some() {
            ReconcileDepth::CheapAndFull
        } else {
            ReconcileDepth::Full
        };
        let mut report = ReconcileReport {
            range_start: format_nanos(req.range.start),
            range_end: format_nanos(req.range.end),
            depth,
            complete: true,
            stripe: req.stripe,
            resume_from: None,
            series: series.len(),
            backups: Vec::new(),
        };
        for b in &backups {
            let (run_id, name, range) = (req.run_id, b.name().to_string(), req.range);
            let row_id = self
                .history
                .begin_reconcile(run_id, name, depth, range)
                .await?;
            report.backups.push(BackupReconcile {
                backup: b.name().to_string(),
                counts: ReconcileCounts::default(),
                diffs: Vec::new(),
                row_id,
                guard: DeleteGuard::default(),
            });
        }
        if let Some(p) = &ctl.progress {
            p.planned(series.len() * backups.len());
        }
        for (i, chunk) in series.chunks(CHUNK).enumerate() {
            // The budget stops a pass after its first chunk at the earliest: every pass makes
            // progress, and the next one resumes after it.
            let spent = i > 0 && req.deadline.is_some_and(|d| Instant::now() >= d);
            if ctl.cancel.is_cancelled() || spent {
                report.complete = false;
                report.resume_from = chunk.first().cloned();
                break;
            }
            if req.exact {
                let stopped = self
                    .exact_chunk(
                        &backups,
                        chunk,
                        req,
                        ctl,
                        default_start,
                        &checkpoints,
                        &mut report.backups,
                    )
                    .await;
                if stopped || ctl.cancel.is_cancelled() {
                    report.complete = false;
                    report.resume_from = chunk.first().cloned();
                }
                if let Some(p) = &ctl.progress {
                    p.reconciled(chunk.len() * backups.len());
                }
                continue;
            }
            // Every node computes its digests of the chunk at the same time.
            let active: Vec<bool> = report
                .backups
                .iter()
                .map(|r| r.counts.error.is_none())
                .collect();
            let (primary, theirs) = tokio::join!(
                self.digests_of(&self.primary, chunk, req, ctl),
                futures::future::join_all(backups.iter().zip(&active).map(|(b, on)| async move {
                    if *on {
                        Some(self.digests_of(b, chunk, req, ctl).await)
                    } else {
                        None
                    }
                }))
            );
            let primary = match primary {
                Ok(d) => d,
                // Shutdown cut the digests short: this chunk is where the next pass resumes.
                Err(_) if ctl.cancel.is_cancelled() => {
                    report.complete = false;
                    report.resume_from = chunk.first().cloned();
                    break;
                }
                Err(e) => {
                    for r in report.backups.iter_mut() {
                        r.counts
                            .error
                            .get_or_insert_with(|| format!("primary: {e}"));
                    }
                    break;
                }
            };
            for ((b, r), theirs) in backups.iter().zip(report.backups.iter_mut()).zip(theirs) {
                let outcome = match theirs {
                    None => continue,
                    Some(Err(e)) => Err(e),
                    Some(Ok(theirs)) => {
                        let on = OnBackup {
                            backup: b,
                            req,
                            ctl,
                            default_start,
                        };
                        self.reconcile_backup(&on, chunk, &primary, &theirs, &checkpoints, r)
                            .await
                    }
                };
                match outcome {
                    Ok(Finished::All) => {}
                    // Shutdown cut this chunk short: the next pass resumes at it.
                    Ok(Finished::Stopped) => {
                        report.complete = false;
                        report.resume_from = chunk.first().cloned();
                    }
                    Err(_) if ctl.cancel.is_cancelled() => {
                        report.complete = false;
                        report.resume_from = chunk.first().cloned();
                    }
                    Err(e) => r.counts.error = Some(e.to_string()),
                }
                if let Some(p) = &ctl.progress {
                    p.reconciled(chunk.len());
                }
            }
        }
        // The planned deletes are carried out at the end of the pass; a stop starts none (the
        // next pass plans them again), so the pass did not finish its work.
        for (b, r) in backups.iter().zip(report.backups.iter_mut()) {
            if ctl.cancel.is_cancelled() {
                if !r.guard.planned.is_empty() {
                    report.complete = false;
                }
                continue;
            }
            match self.finish_deletes(b, r, req, ctl).await {
                Ok(()) => {}
                Err(_) if ctl.cancel.is_cancelled() => report.complete = false,
                Err(e) => {
                    r.counts.error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        let interrupted = !report.complete && ctl.cancel.is_cancelled();
        for r in &mut report.backups {
            let c = &mut r.counts;
            c.status = match (&c.error, interrupted) {
                (Some(_), _) => Status::Failed,
                (None, true) => Status::Interrupted,
                (None, false) => Status::Success,
            };
            if !report.complete && c.error.is_none() {
                c.error = Some(if interrupted {
                    "interrupted: dms was stopped before every series was compared".into()
                } else {
                    "stopped at the budget before every series was compared".into()
                });
            }
            let (row_id, counts) = (r.row_id, c.clone());
            self.history.finish_reconcile(row_id, counts).await?;
        }
        Ok(report)
    }

    /// The series the selection covers, sorted: named ones, or every series the primary or a
    /// backup holds (a series left only on a backup is compared too).
    async fn reconcile_series(
        &self,
        selection: &Selection,
        ctl: &SyncControl,
    ) -> Result<Vec<SeriesKey>, SyncError> {
        let mut v = match selection {
            Selection::Series(list) => list.clone(),
            Selection::Primary { symbols, intervals } => {
                // Every node's listing at once.
                let (primary, backups) = tokio::join!(
                    with_retry(
                        &self.settings.retry,
                        &ctl.cancel,
                        "listing the primary's series",
                        || self.primary.list_series(),
                    ),
                    futures::future::join_all(self.backups.iter().map(|b| b.list_series()))
                );
                let mut all = primary.map_err(SyncError::primary)?;
                if all.is_empty() {
                    self.primary_exists().await?;
                }
                for (b, listed) in self.backups.iter().zip(backups) {
                    match listed {
                        Ok(theirs) => all.extend(theirs),
                        // Its digests fail too and say so in its counts.
                        Err(e) => {
                            tracing::warn!(backup = b.name(), cause = %e, "cannot list the backup's series")
                        }
                    }
                }
                let filter = super::select::Filter::new(symbols.as_deref(), intervals.as_deref());
                all.retain(|s| filter.matches(s));
                all
            }
        };
        v.sort();
        v.dedup();
        Ok(v)
    }

    /// Digests of `series` on `node` as the request asks: full everywhere, or cheap
    /// everywhere plus full where `req.full` says (the full ones replace the cheap ones).
    async fn digests_of(
        &self,
        node: &Arc<dyn Node>,
        series: &[SeriesKey],
        req: &ReconcileRequest,
        ctl: &SyncControl,
    ) -> Result<Digests, GaveUp<NodeError>> {
        let policy = &self.settings.retry;
        let what = "computing digests";
        let ask = |range: TimeRange, depth: Depth| {
            with_retry(policy, &ctl.cancel, what, move || {
                node.digests(series, range, req.window, depth)
            })
        };
        let Some(full) = req.full else {
            return ask(req.range, Depth::Full).await;
        };
        let mut out = ask(req.range, Depth::Cheap).await?;
        // Whole windows: a full digest replaces the cheap one of its window, so it must cover
        // all of the window the cheap one did.
        let w = req.window.max(1);
        let full = TimeRange::new(
            window_start(full.start, w).max(req.range.start),
            window_start(full.end, w)
                .saturating_add(w - 1)
                .min(req.range.end),
        );
        if !full.is_empty() {
            for (s, windows) in ask(full, Depth::Full).await? {
                out.entry(s).or_default().extend(windows);
            }
        }
        Ok(out)
    }

    async fn reconcile_backup(
        &self,
        on: &OnBackup<'_>,
        series: &[SeriesKey],
        primary: &Digests,
        theirs: &Digests,
        checkpoints: &HashMap<BackupSeries, Nanos>,
        out: &mut BackupReconcile,
    ) -> Result<Finished, GaveUp<NodeError>> {
        let (backup, req) = (on.backup, on.req);
        let comparable = self.primary.digest_kind() == backup.digest_kind();
        let empty = BTreeMap::new();
        let no_digest = Digest::default();
        for s in series {
            let key = BackupSeries::new(backup.name(), s.clone());
            let mine = primary.get(s).unwrap_or(&empty);
            let other = theirs.get(s).unwrap_or(&empty);
            // Compared up to the later of the checkpoint and the newest window the backup holds
            // data in: a checkpoint behind the backup's data (an interrupted full sync) or a
            // backup point past it (a future-dated point the primary deleted) hides nothing.
            // What only the primary holds past both is the next sync's work.
            let cp = checkpoints.get(&key).copied();
            let held = other
                .keys()
                .next_back()
                .map(|w| w.saturating_add(req.window - 1));
            let Some(end) = cp.max(held).map(|e| e.min(req.range.end)) else {
                continue;
            };
            let start = req.starts.get(&key).copied().unwrap_or(on.default_start);
            if end < start {
                continue;
            }
            out.counts.series += 1;
            let mut starts: Vec<Nanos> = mine.keys().chain(other.keys()).copied().collect();
            starts.sort_unstable();
            starts.dedup();
            let last_before = window_start(start, req.window);
            for ws in starts
                .into_iter()
                .filter(|w| *w <= end && *w >= last_before)
            {
                // Shutdown: the window being repaired finished; no other is begun.
                if on.ctl.cancel.is_cancelled() {
                    return Ok(Finished::Stopped);
                }
                out.counts.windows += 1;
                // A window one node has no digest for is empty there (a node may answer an
                // empty digest where the other answers nothing, e.g. a series without `close`
                // at cheap depth); empty on one side and not the other differs.
                let a = mine.get(&ws).unwrap_or(&no_digest);
                let b = other.get(&ws).unwrap_or(&no_digest);
                // Equal only bit for bit; a window whose float sums cannot be compared so
                // (another kind of node, a sum that is not finite), or that holds string or
                // boolean values (which digests only count), is read exactly.
                let unseen = a.counts_only() || b.counts_only();
                if !unseen && a.compare(b, comparable) == Comparison::Equal {
                    continue;
                }
                let we = ws.saturating_add(req.window - 1).min(end);
                let range = TimeRange::new(ws.max(start), we);
                self.repair_window(on, &key, cp.unwrap_or(Nanos::MAX), range, out)
                    .await?;
            }
        }
        Ok(Finished::All)
    }

    /// Reads every point of `series` on the primary and each backup over each backup's
    /// compared range (or the request's stripe of it), many windows at a time and several
    /// series at once — the primary once for all backups — and repairs the windows that
    /// differ: what `--exact` and the scrub do instead of digests. Returns whether shutdown
    /// stopped it. A backup that fails is marked in its entry and left out of the rest.
    #[allow(clippy::too_many_arguments)]
    async fn exact_chunk(
        &self,
        backups: &[Arc<dyn Node>],
        series: &[SeriesKey],
        req: &ReconcileRequest,
        ctl: &SyncControl,
        default_start: Nanos,
        checkpoints: &HashMap<BackupSeries, Nanos>,
        outs: &mut [BackupReconcile],
    ) -> bool {
        let now = dms_core::model::now_nanos();
        let tips =
            futures::future::join_all(backups.iter().zip(outs.iter()).map(|(b, o)| async move {
                if o.counts.error.is_some() {
                    return None;
                }
                Some(
                    with_retry(&self.settings.retry, &ctl.cancel, "looking up tips", || {
                        b.tips(series, now)
                    })
                    .await,
                )
            }))
            .await;
        // Each backup's compared range per series.
        let mut ranges: Vec<HashMap<&SeriesKey, (Option<Nanos>, TimeRange)>> =
            vec![HashMap::new(); backups.len()];
        for (i, t) in tips.into_iter().enumerate() {
            let tips = match t {
                None => continue,
                Some(Ok(t)) => t,
                Some(Err(e)) => {
                    outs[i].counts.error = Some(e.to_string());
                    continue;
                }
            };
            for s in series {
                let key = BackupSeries::new(backups[i].name(), s.clone());
                // Up to the later of the checkpoint and the newest point the backup holds,
                // as with digests.
                let cp = checkpoints.get(&key).copied();
                let held = tips.get(s).and_then(Tip::latest);
                let Some(end) = cp.max(held).map(|e| e.min(req.range.end)) else {
                    continue;
                };
                let start = req.starts.get(&key).copied().unwrap_or(default_start);
                if end < start {
                    continue;
                }
                outs[i].counts.series += 1;
                ranges[i].insert(s, (cp, TimeRange::new(start, end)));
            }
        }
        // Spans of the union of the backups' ranges, each read once on the primary.
        let mut jobs = Vec::new();
        for s in series {
            let mine: Vec<(usize, Option<Nanos>, TimeRange)> = ranges
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.get(s).map(|(cp, range)| (i, *cp, *range)))
                .collect();
            let (Some(start), Some(end)) = (
                mine.iter().map(|m| m.2.start).min(),
                mine.iter().map(|m| m.2.end).max(),
            ) else {
                continue;
            };
            let union = TimeRange::new(start, end);
            let parts = match req.stripe {
                Some(stripe) => stripe.parts(union, req.range, req.window),
                None => vec![union],
            };
            for part in parts {
                for span in spans(part, req.window, SPAN) {
                    let members: Vec<(usize, Option<Nanos>, TimeRange)> = mine
                        .iter()
                        .filter_map(|(i, cp, r)| {
                            let clip = TimeRange::new(span.start.max(r.start), span.end.min(r.end));
                            (!clip.is_empty()).then_some((*i, *cp, clip))
                        })
                        .collect();
                    if !members.is_empty() {
                        jobs.push((s.clone(), span, members));
                    }
                }
            }
        }
        // A scrub's stripe holds small windows: each node's are read with one multi-series
        // request (what one holds beyond its share is streamed on its own below).
        let mut pre_primary: Vec<Option<Fingerprints>> = vec![None; jobs.len()];
        let mut pre_backups: Vec<HashMap<usize, Fingerprints>> = vec![HashMap::new(); jobs.len()];
        if req.stripe.is_some() && !jobs.is_empty() {
            let limit = (PREFETCH_POINTS / jobs.len()).max(16);
            let windows: Vec<(SeriesKey, TimeRange)> =
                jobs.iter().map(|(s, span, _)| (s.clone(), *span)).collect();
            let mut asks = vec![(usize::MAX, windows, Vec::new())];
            for i in 0..backups.len() {
                let mut w = Vec::new();
                let mut at = Vec::new();
                for (j, (s, _, members)) in jobs.iter().enumerate() {
                    if let Some((_, _, clip)) = members.iter().find(|m| m.0 == i) {
                        w.push((s.clone(), *clip));
                        at.push(j);
                    }
                }
                asks.push((i, w, at));
            }
            let answers = futures::future::join_all(asks.iter().map(|(i, w, _)| {
                let node = if *i == usize::MAX {
                    &self.primary
                } else {
                    &backups[*i]
                };
                async move { node.read_many(w, limit).await }
            }))
            .await;
            for ((i, _, at), answer) in asks.iter().zip(answers) {
                // A failed look-ahead costs nothing: those windows are read one by one.
                let Ok(got) = answer else { continue };
                for (k, points) in got.into_iter().enumerate() {
                    let Some(points) = points else { continue };
                    let f = fingerprints_of(&points);
                    if *i == usize::MAX {
                        pre_primary[k] = Some(f);
                    } else if let Some(&j) = at.get(k) {
                        pre_backups[j].insert(*i, f);
                    }
                }
            }
        }
        let workers = self.settings.max_workers.max(1);
        let mut read =
            futures::stream::iter(jobs.into_iter().zip(pre_primary).zip(pre_backups).map(
                |(((s, span, members), pre_p), mut pre_b)| async move {
                    let primary = async {
                        match pre_p {
                            Some(f) => Ok(f),
                            None => self.fingerprints(&self.primary, &s, span, ctl).await,
                        }
                    };
                    let s_ref = &s;
                    let theirs = futures::future::join_all(members.iter().map(|(i, _, clip)| {
                        let pre = pre_b.remove(i);
                        let s = s_ref;
                        async move {
                            match pre {
                                Some(f) => Ok(f),
                                None => self.fingerprints(&backups[*i], s, *clip, ctl).await,
                            }
                        }
                    }));
                    let (p, theirs) = tokio::join!(primary, theirs);
                    (s, p, members, theirs)
                },
            ))
            .buffered(workers);
        let w = req.window.max(1);
        while let Some((s, p, members, theirs)) = read.next().await {
            // Shutdown: the span being repaired finished; no other is compared.
            if ctl.cancel.is_cancelled() {
                return true;
            }
            let p = match p {
                Ok(p) => p,
                Err(e) => {
                    for o in outs.iter_mut() {
                        o.counts
                            .error
                            .get_or_insert_with(|| format!("primary: {e}"));
                    }
                    return false;
                }
            };
            for ((i, cp, clip), b) in members.into_iter().zip(theirs) {
                if outs[i].counts.error.is_some() {
                    continue;
                }
                let b = match b {
                    Ok(b) => b,
                    Err(e) => {
                        outs[i].counts.error = Some(e.to_string());
                        continue;
                    }
                };
                let mine: Fingerprints = p
                    .range(clip.start..=clip.end)
                    .map(|(t, f)| (*t, *f))
                    .collect();
                let mut held: Vec<Nanos> = mine
                    .keys()
                    .chain(b.keys())
                    .map(|t| window_start(*t, w))
                    .collect();
                held.sort_unstable();
                held.dedup();
                outs[i].counts.windows += held.len() as u64;
                let exact = diff(&mine, &b);
                if exact.equal() {
                    continue;
                }
                let mut differing: Vec<Nanos> = exact
                    .missing
                    .iter()
                    .chain(&exact.different)
                    .chain(&exact.extra)
                    .map(|t| window_start(*t, w))
                    .collect();
                differing.sort_unstable();
                differing.dedup();
                let on = OnBackup {
                    backup: &backups[i],
                    req,
                    ctl,
                    default_start,
                };
                let key = BackupSeries::new(backups[i].name(), s.clone());
                for ws in differing {
                    let range =
                        TimeRange::new(ws.max(clip.start), ws.saturating_add(w - 1).min(clip.end));
                    if let Err(e) = self
                        .repair_window(&on, &key, cp.unwrap_or(Nanos::MAX), range, &mut outs[i])
                        .await
                    {
                        if ctl.cancel.is_cancelled() {
                            return true;
                        }
                        outs[i].counts.error = Some(e.to_string());
                        break;
                    }
                }
            }
        }
        false
    }

    /// Compares one window exactly and repairs it (unless a dry run).
    async fn repair_window(
        &self,
        on: &OnBackup<'_>,
        key: &BackupSeries,
        checkpoint: Nanos,
        range: TimeRange,
        out: &mut BackupReconcile,
    ) -> Result<(), GaveUp<NodeError>> {
        let (backup, req, ctl) = (on.backup, on.req, on.ctl);
        let exact = self.compare_window(backup, &key.series, range, ctl).await?;
        if exact.equal() {
            return Ok(());
        }
        out.counts.differing += 1;
        let mut diff = WindowDiff {
            key: key.clone(),
            window_start: format_nanos(range.start),
            window_end: format_nanos(range.end),
            missing: exact.missing.len() as u64,
            different: exact.different.len() as u64,
            extra: exact.extra.len() as u64,
            repaired: false,
        };
        if !req.dry_run {
            let rewrite: Vec<Nanos> = exact
                .missing
                .iter()
                .chain(&exact.different)
                .copied()
                .collect();
            // Write first (a write merges, so it never loses what the backup holds), then
            // replace only the points a write cannot make equal: fields or tag sets the
            // primary no longer has, which only `mirror_deletes` may drop.
            let points = self
                .primary_points(&key.series, range, &rewrite, ctl)
                .await?;
            out.counts.rewritten += self.write_points(backup, &points, ctl).await?;
            // What a write cannot make equal — fields or tag sets the primary no longer has
            // (a replace), points it no longer has (a delete) — is only planned here: the
            // pass's deletes are weighed together at its end (see `finish_deletes`).
            let mut plan = PlannedDeletes {
                key: key.clone(),
                range,
                checkpoint,
                replace: Vec::new(),
                keep: Vec::new(),
                delete: Vec::new(),
                kept_extra: 0,
                diff: out.diffs.len(),
            };
            if req.mirror_deletes && !exact.different.is_empty() {
                let still = self.compare_window(backup, &key.series, range, ctl).await?;
                if !still.different.is_empty() {
                    let stale: std::collections::HashSet<Nanos> =
                        still.different.iter().copied().collect();
                    plan.keep = points
                        .iter()
                        .filter(|p| stale.contains(&p.time))
                        .cloned()
                        .collect();
                    plan.replace = still.different;
                }
            }
            // Deletes never reach past the primary's newest point (future-dated ones
            // included): what a backup holds beyond it, or of a series the primary holds
            // nothing of, may be the only copy there is.
            if req.mirror_deletes && !exact.extra.is_empty() {
                let newest = self
                    .tip(&self.primary, &key.series, ctl)
                    .await?
                    .and_then(|t| t.latest());
                plan.delete = exact
                    .extra
                    .iter()
                    .copied()
                    .filter(|t| newest.is_some_and(|n| *t <= n))
                    .collect();
                // A primary whose newest point is older than what it once gave this backup
                // lost its last points (a restore from an older snapshot).
                if let Some(n) = newest
                    && checkpoint != Nanos::MAX
                    && n < checkpoint
                {
                    out.guard.regressed.push(format!(
                        "{} (newest {} on the primary, {} copied before)",
                        key.series,
                        format_nanos(n),
                        format_nanos(checkpoint)
                    ));
                }
            }
            plan.kept_extra = exact.extra.len() - plan.delete.len();
            out.counts.extra += plan.kept_extra as u64;
            let points_here = exact.backup_points.max(1);
            let removing = plan.delete.len() + plan.replace.len();
            if removing > 1 && removing as f64 > req.deletes.max_share * points_here as f64 {
                out.guard.wide.push(format!(
                    "{} {}: {removing} of {points_here} points",
                    key.series, diff.window_start
                ));
            }
            if removing > 0 {
                out.guard.points += removing as u64;
                out.guard.planned.push(plan);
                if out.diffs.len() < LISTED {
                    out.diffs.push(diff);
                }
                return Ok(());
            }
            let after = self.compare_window(backup, &key.series, range, ctl).await?;
            let settled = after.missing.is_empty()
                && after.different.is_empty()
                && (after.extra.len() <= plan.kept_extra || !req.mirror_deletes);
            if settled {
                out.counts.repaired += 1;
                diff.repaired = after.equal();
            }
            tracing::info!(
                backup = %key.backup,
                series = %key.series,
                window = %diff.window_start,
                missing = diff.missing,
                different = diff.different,
                extra = diff.extra,
                "reconcile: window repaired"
            );
        } else {
            out.counts.extra += exact.extra.len() as u64;
        }
        if out.diffs.len() < LISTED {
            out.diffs.push(diff);
        }
        Ok(())
    }

    /// Finishes what a replace cut off by a crash left undone: rewrites from the primary the
    /// points of each backup's journal entry (a write merges, so this is safe to repeat), then
    /// clears it. A backup that cannot be reached keeps its entry for the next time.
    async fn replay_journals(&self, ctl: &SyncControl) {
        for backup in &self.backups {
            let key = journal_key(backup);
            let entry = match self.history.state(key.clone()).await {
                Ok(Some(text)) => match serde_json::from_str::<Journal>(&text) {
                    Ok(j) => j,
                    Err(e) => {
                        tracing::warn!(backup = backup.name(), cause = %e, "unreadable repair journal entry dropped");
                        let _ = self.history.set_state(key, None).await;
                        continue;
                    }
                },
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(backup = backup.name(), cause = %e, "cannot read the repair journal");
                    continue;
                }
            };
            let series = SeriesKey::new(entry.symbol.clone(), entry.interval.clone());
            let (Some(first), Some(last)) = (
                entry.times.iter().min().copied(),
                entry.times.iter().max().copied(),
            ) else {
                let _ = self.history.set_state(key, None).await;
                continue;
            };
            let range = TimeRange::new(first, last);
            let done = async {
                let points = self
                    .primary_points(&series, range, &entry.times, ctl)
                    .await?;
                self.write_points(backup, &points, ctl).await
            }
            .await;
            match done {
                Ok(n) => {
                    tracing::warn!(backup = backup.name(), series = %series, points = n, "repair journal: rewrote the points a replace stopped by a crash had deleted");
                    if let Err(e) = self.history.set_state(key, None).await {
                        tracing::warn!(backup = backup.name(), cause = %e, "cannot clear the repair journal");
                    }
                }
                Err(e) => {
                    tracing::warn!(backup = backup.name(), cause = %e, "repair journal: cannot rewrite yet; kept for the next reconcile")
                }
            }
        }
    }

    /// Carries out the deletes a pass planned on one backup when they stay within the
    /// request's limits, or refuses all of them (the backup's entry fails, saying why and how
    /// to go ahead). Each window is compared again after.
    async fn finish_deletes(
        &self,
        backup: &Arc<dyn Node>,
        out: &mut BackupReconcile,
        req: &ReconcileRequest,
        ctl: &SyncControl,
    ) -> Result<(), GaveUp<NodeError>> {
        let guard = std::mem::take(&mut out.guard);
        if guard.planned.is_empty() {
            return Ok(());
        }
        if let Some(why) = guard.refusal(&req.deletes) {
            tracing::error!(backup = backup.name(), points = guard.points, "{why}");
            out.counts.refused += guard.points;
            out.counts.error.get_or_insert(why);
            return Ok(());
        }
        for plan in guard.planned {
            let series = &plan.key.series;
            if !plan.replace.is_empty() {
                // A replace in two steps (delete, then write) is written down first: a crash
                // between them leaves the journal, and the next reconcile rewrites those points
                // from the primary before anything else.
                let journal = !backup.replace_is_atomic();
                if journal {
                    let entry = Journal {
                        symbol: series.symbol.clone(),
                        interval: series.interval.clone(),
                        times: plan.replace.clone(),
                    };
                    let text = serde_json::to_string(&entry).ok();
                    if let Err(e) = self.history.set_state(journal_key(backup), text).await {
                        // Without the journal the replace is not started: the write before it
                        // already gave the backup every value the primary has.
                        tracing::error!(backup = backup.name(), cause = %e, "cannot write the repair journal; replace skipped");
                        out.counts.error.get_or_insert_with(|| {
                            format!("the repair journal cannot be written ({e}); fields the primary dropped were kept")
                        });
                        continue;
                    }
                }
                let keep = Arc::new(Batch::new(plan.keep.clone()));
                with_retry(
                    &self.settings.retry,
                    &ctl.cancel,
                    "replacing points",
                    || backup.replace(series, &plan.replace, keep.clone()),
                )
                .await?;
                if journal && let Err(e) = self.history.set_state(journal_key(backup), None).await {
                    tracing::warn!(backup = backup.name(), cause = %e, "cannot clear the repair journal (the next reconcile rewrites those points again)");
                }
            }
            if !plan.delete.is_empty() {
                out.counts.deleted += self
                    .delete_points(backup, series, &plan.delete, ctl)
                    .await?;
                if plan.delete.iter().any(|t| *t >= plan.checkpoint) {
                    self.follow_deleted_checkpoint(
                        backup,
                        &plan.key,
                        plan.checkpoint,
                        req.run_id,
                        ctl,
                    )
                    .await?;
                }
            }
            let after = self.compare_window(backup, series, plan.range, ctl).await?;
            if after.missing.is_empty()
                && after.different.is_empty()
                && after.extra.len() <= plan.kept_extra
            {
                out.counts.repaired += 1;
                if let Some(d) = out.diffs.get_mut(plan.diff) {
                    d.repaired = after.equal();
                }
            }
        }
        Ok(())
    }

    /// After deleting the point a checkpoint stood on, moves the checkpoint back to what the
    /// backup now holds (recorded as a `mirrored` event, not a `rewound` one: nothing was lost).
    async fn follow_deleted_checkpoint(
        &self,
        backup: &Arc<dyn Node>,
        key: &BackupSeries,
        checkpoint: Nanos,
        run_id: Option<i64>,
        ctl: &SyncControl,
    ) -> Result<(), GaveUp<NodeError>> {
        let held = self
            .tip(backup, &key.series, ctl)
            .await?
            .and_then(|t| t.newest_time());
        if held.is_some_and(|h| h >= checkpoint) {
            return Ok(());
        }
        let detail = format!(
            "mirror_deletes removed the backup's newest point {}: checkpoint moved to {}",
            format_nanos(checkpoint),
            held.map_or_else(|| "none".to_string(), format_nanos)
        );
        let k = key.clone();
        if let Err(e) = self
            .history
            .rewind(EventKind::Mirrored, k, held, run_id, detail)
            .await
        {
            tracing::error!(backup = %key.backup, series = %key.series, cause = %e, "could not move a checkpoint after a mirrored delete");
        }
        Ok(())
    }

    /// Reads one window on both sides and compares it timestamp by timestamp.
    async fn compare_window(
        &self,
        backup: &Arc<dyn Node>,
        series: &SeriesKey,
        range: TimeRange,
        ctl: &SyncControl,
    ) -> Result<Exact, GaveUp<NodeError>> {
        let (p, b) = self.read_both(backup, series, range, ctl).await?;
        Ok(diff(&p, &b))
    }

    /// Timestamp → fingerprint of one range on the primary and on `backup`, read at once.
    async fn read_both(
        &self,
        backup: &Arc<dyn Node>,
        series: &SeriesKey,
        range: TimeRange,
        ctl: &SyncControl,
    ) -> Result<(Fingerprints, Fingerprints), GaveUp<NodeError>> {
        let (p, b) = tokio::join!(
            self.fingerprints(&self.primary, series, range, ctl),
            self.fingerprints(backup, series, range, ctl)
        );
        Ok((p?, b?))
    }

    /// Timestamp → summed fingerprints of the points at it, for one window of one node.
    async fn fingerprints(
        &self,
        node: &Arc<dyn Node>,
        series: &SeriesKey,
        range: TimeRange,
        ctl: &SyncControl,
    ) -> Result<Fingerprints, GaveUp<NodeError>> {
        let batch_size = self.settings.batch_size;
        with_retry(
            &self.settings.retry,
            &ctl.cancel,
            "reading a window",
            || async {
                let mut out: BTreeMap<Nanos, u64> = BTreeMap::new();
                let mut stream = node.read(series, range, batch_size);
                while let Some(batch) = stream.next().await {
                    for p in batch?.points {
                        let e = out.entry(p.time).or_default();
                        *e = e.wrapping_add(exact_fingerprint(&p));
                    }
                }
                Ok(out)
            },
        )
        .await
    }

    /// The tip of `series` on `node`, split at now (`None`: it holds nothing of it).
    async fn tip(
        &self,
        node: &Arc<dyn Node>,
        series: &SeriesKey,
        ctl: &SyncControl,
    ) -> Result<Option<Tip>, GaveUp<NodeError>> {
        let wanted = [series.clone()];
        let now = dms_core::model::now_nanos();
        let tips = with_retry(
            &self.settings.retry,
            &ctl.cancel,
            "looking up a tip",
            || node.tips(&wanted, now),
        )
        .await?;
        Ok(tips.get(series).copied())
    }

    /// The primary's points at `times` (inside `range`).
    async fn primary_points(
        &self,
        series: &SeriesKey,
        range: TimeRange,
        times: &[Nanos],
        ctl: &SyncControl,
    ) -> Result<Vec<Point>, GaveUp<NodeError>> {
        if times.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: std::collections::HashSet<Nanos> = times.iter().copied().collect();
        let batch_size = self.settings.batch_size;
        with_retry(
            &self.settings.retry,
            &ctl.cancel,
            "reading a window",
            || async {
                let mut v = Vec::new();
                let mut stream = self.primary.read(series, range, batch_size);
                while let Some(batch) = stream.next().await {
                    v.extend(
                        batch?
                            .points
                            .into_iter()
                            .filter(|p| wanted.contains(&p.time)),
                    );
                }
                Ok(v)
            },
        )
        .await
    }

    /// Writes `points` to `backup` in batches; returns how many.
    async fn write_points(
        &self,
        backup: &Arc<dyn Node>,
        points: &[Point],
        ctl: &SyncControl,
    ) -> Result<u64, GaveUp<NodeError>> {
        for chunk in points.chunks(self.settings.batch_size.max(1)) {
            let batch = Arc::new(Batch::new(chunk.to_vec()));
            with_retry(
                &self.settings.retry,
                &ctl.cancel,
                "repairing a window",
                || backup.write(batch.clone()),
            )
            .await?;
        }
        Ok(points.len() as u64)
    }

    async fn delete_points(
        &self,
        backup: &Arc<dyn Node>,
        series: &SeriesKey,
        times: &[Nanos],
        ctl: &SyncControl,
    ) -> Result<u64, GaveUp<NodeError>> {
        with_retry(&self.settings.retry, &ctl.cancel, "deleting points", || {
            backup.delete(series, times)
        })
        .await
    }
}

/// A replace in progress on a node whose replace takes two steps: the timestamps whose
/// points it deletes and writes back.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Journal {
    symbol: String,
    interval: String,
    times: Vec<Nanos>,
}

/// The ledger key of a backup's repair journal.
fn journal_key(backup: &Arc<dyn Node>) -> String {
    format!("reconcile.journal.{}", backup.name())
}

/// Timestamp → summed exact fingerprints of the points at it.
type Fingerprints = BTreeMap<Nanos, u64>;

/// The primary's fingerprints `p` against the backup's `b`, timestamp by timestamp.
fn diff(p: &Fingerprints, b: &Fingerprints) -> Exact {
    let mut exact = Exact {
        missing: Vec::new(),
        different: Vec::new(),
        extra: Vec::new(),
        backup_points: b.len(),
    };
    for (t, fp) in p {
        match b.get(t) {
            None => exact.missing.push(*t),
            Some(other) if other != fp => exact.different.push(*t),
            Some(_) => {}
        }
    }
    exact
        .extra
        .extend(b.keys().filter(|t| !p.contains_key(t)).copied());
    exact
}

/// What every step of reconciling one backup shares: the backup, the request, its control.
struct OnBackup<'a> {
    backup: &'a Arc<dyn Node>,
    req: &'a ReconcileRequest,
    ctl: &'a SyncControl,
    /// Where a (backup, series) without a start of its own in `req.starts` is compared from.
    default_start: Nanos,
}

/// Window starts of `range` (aligned to the epoch), for progress and budgeting.
pub fn windows_in(range: TimeRange, window: Nanos) -> u64 {
    if range.is_empty() {
        return 0;
    }
    let first = window_start(range.start, window);
    let last = window_start(range.end, window);
    u64::try_from((last - first) / window.max(1) + 1).unwrap_or(0)
}
