//! Many small series moved together (the daily job over a universe: every series one bar
//! behind). A group of units is read from the primary in one multi-series request
//! ([`Node::read_many`]), compared with what each backup already holds (one more such read
//! per backup), written to each backup in one shared batch, and recorded with one history
//! transaction for the rows' start, one for the checkpoints and one for the rows' end.
//!
//! The guarantees are the streamed path's ([`super::unit`]):
//! - a checkpoint moves only after its backup acknowledged the write that holds the points
//!   (or holds them already, bit for bit), and never past now;
//! - a shared write a backup refuses is retried series by series, so a series the backup
//!   will not take fails alone and the others go on;
//! - a window bigger than the group's per-series limit is handed back and streamed on its own;
//!   a primary that cannot be read as a group hands every unit back, each then failing (or
//!   succeeding) on its own.

use super::UnitReport;
use super::breaker::{Failure, Guarded};
use super::plan::UnitPlan;
use super::unit::UnitCtx;
use dms_core::ledger::{Commit, LedgerError, Status, UnitFinish, UnitStart};
use dms_core::model::{BackupSeries, Batch, Nanos, Point, SeriesKey, TimeRange};
use dms_core::node::Node;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Series one group takes at most.
pub(crate) const GROUP_SERIES: usize = 10_000;
/// Points a group may hold at once (all its windows together), which sets the per-series
/// limit: `GROUP_POINTS / series`, at least [`MIN_PER_SERIES`].
pub(crate) const GROUP_POINTS: usize = 100_000;
/// The least per-series limit a group reads with.
const MIN_PER_SERIES: usize = 16;

/// What a group did: its reports, and the units it handed back to be streamed one by one.
pub(crate) struct GroupOutcome {
    pub reports: Vec<UnitReport>,
    pub streamed: Vec<UnitPlan>,
}

/// Splits units into groups (in series order) of at most [`GROUP_SERIES`]; fewer than two
/// units make no group.
pub(crate) fn groups(units: Vec<UnitPlan>) -> Vec<Vec<UnitPlan>> {
    let mut out = Vec::new();
    let mut it = units.into_iter().peekable();
    while it.peek().is_some() {
        out.push(it.by_ref().take(GROUP_SERIES).collect::<Vec<_>>());
    }
    out
}

/// The per-series limit of a group of `n` series: its share of [`GROUP_POINTS`], at least
/// [`MIN_PER_SERIES`], at most a batch (so a series' window is written in one batch).
fn limit_for(n: usize, batch_size: usize) -> usize {
    (GROUP_POINTS / n.max(1))
        .max(MIN_PER_SERIES)
        .min(batch_size.max(1))
}

/// One (backup, series) of a group.
struct Lane {
    unit: usize,
    node: Arc<dyn Node>,
    key: BackupSeries,
    row_id: i64,
}

/// How one lane ended.
struct LaneEnd {
    status: Status,
    error: Option<String>,
    records: u64,
    acked: Option<Nanos>,
    /// The node was down: the breaker logged it once, the lane does not again.
    node_down: bool,
}

/// Runs a group to the end.
///
/// # Errors
/// [`LedgerError`] when the history cannot be written at all.
pub(crate) async fn run(
    ctx: Arc<UnitCtx>,
    units: Vec<UnitPlan>,
) -> Result<GroupOutcome, LedgerError> {
    let lanes_total: usize = units.iter().map(|u| u.lanes.len()).sum();
    if ctx.control.cancel.is_cancelled() {
        ctx.not_started.fetch_add(lanes_total, Ordering::Relaxed);
        return Ok(GroupOutcome {
            reports: Vec::new(),
            streamed: Vec::new(),
        });
    }
    let limit = limit_for(units.len(), ctx.batch_size);
    let windows: Vec<(SeriesKey, TimeRange)> =
        units.iter().map(|u| (u.series.clone(), u.range)).collect();
    let read = read_primary(&ctx, &windows, limit).await;
    let got = match read {
        Ok(got) => got,
        Err(f) if f.cancelled() => {
            ctx.not_started.fetch_add(lanes_total, Ordering::Relaxed);
            return Ok(GroupOutcome {
                reports: Vec::new(),
                streamed: Vec::new(),
            });
        }
        // Each unit on its own: a series the primary cannot serve fails alone, with the
        // streamed path's retries and message.
        Err(f) => {
            tracing::debug!(cause = %f.text(), "a multi-series read failed; streaming the series one by one");
            return Ok(GroupOutcome {
                reports: Vec::new(),
                streamed: units,
            });
        }
    };
    let started = Instant::now();
    let mut small: Vec<(UnitPlan, Vec<Point>)> = Vec::new();
    let mut streamed = Vec::new();
    for (u, points) in units.into_iter().zip(got) {
        match points {
            Some(p) => small.push((u, p)),
            None => streamed.push(u),
        }
    }
    if small.is_empty() {
        return Ok(GroupOutcome {
            reports: Vec::new(),
            streamed,
        });
    }

    // Every lane's row, in one transaction.
    let mut lanes = Vec::new();
    let mut starts = Vec::new();
    for (i, (u, _)) in small.iter().enumerate() {
        for node in &u.lanes {
            let key = BackupSeries::new(node.name(), u.series.clone());
            starts.push(UnitStart {
                run_id: ctx.run_id,
                key: key.clone(),
                mode: ctx.mode,
                window_start: u.range.start,
                window_end: u.range.end,
            });
            lanes.push(Lane {
                unit: i,
                node: node.clone(),
                key,
                row_id: 0,
            });
        }
    }
    let ids = ctx.history.begin_units(starts).await?;
    for (lane, id) in lanes.iter_mut().zip(ids) {
        lane.row_id = id;
    }

    // Each backup's lanes, written together; the backups side by side.
    let mut by_node: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (li, lane) in lanes.iter().enumerate() {
        by_node
            .entry(lane.node.name().to_string())
            .or_default()
            .push(li);
    }
    let ends: Vec<Vec<(usize, LaneEnd)>> =
        futures::future::join_all(by_node.into_values().map(|members| {
            let (ctx, lanes, small) = (&ctx, &lanes, &small);
            async move { write_node(ctx, lanes, small, &members, limit).await }
        }))
        .await;
    let mut ends: HashMap<usize, LaneEnd> = ends.into_iter().flatten().collect();

    // Every row closed, in one transaction.
    let mut finished = Vec::with_capacity(lanes.len());
    let mut reports = Vec::with_capacity(lanes.len());
    let mut quiet = Vec::with_capacity(lanes.len());
    for (li, lane) in lanes.iter().enumerate() {
        let end = ends.remove(&li).unwrap_or(LaneEnd {
            status: Status::Failed,
            error: Some("the group ended without this series' outcome".into()),
            records: 0,
            acked: None,
            node_down: false,
        });
        finished.push(UnitFinish {
            row_id: lane.row_id,
            key: lane.key.clone(),
            status: end.status,
            error: end.error.clone(),
        });
        let range = small[lane.unit].0.range;
        quiet.push(end.node_down);
        reports.push(UnitReport {
            key: lane.key.clone(),
            status: end.status,
            records: end.records,
            error: end.error,
            window_start: range.start,
            window_end: range.end,
            synced_to: end.acked,
            history_id: lane.row_id,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
    }
    if let Err(e) = ctx.history.finish_units(finished).await {
        let text = format!("recording the result failed: {e}");
        for r in &mut reports {
            r.status = Status::Failed;
            r.error = Some(match r.error.take() {
                Some(prev) => format!("{prev}; and {text}"),
                None => text.clone(),
            });
        }
    }
    for (r, quiet) in reports.iter().zip(quiet) {
        match r.status {
            Status::Failed if !quiet => {
                tracing::error!(backup = %r.key.backup, series = %r.key.series, records = r.records, cause = r.error.as_deref().unwrap_or(""), "sync failed")
            }
            _ => {
                tracing::debug!(backup = %r.key.backup, series = %r.key.series, records = r.records, "sync done")
            }
        }
        if let Some(p) = &ctx.control.progress {
            p.unit_finished(r);
        }
    }
    Ok(GroupOutcome { reports, streamed })
}

/// The group's windows from the primary, retried with the configured backoff.
async fn read_primary(
    ctx: &UnitCtx,
    windows: &[(SeriesKey, TimeRange)],
    limit: usize,
) -> Result<Vec<Option<Vec<Point>>>, Failure> {
    let mut guard = Guarded::new(
        ctx.breakers.gate(ctx.primary.name()),
        &ctx.retry,
        &ctx.control.cancel,
        "reading the primary",
    );
    loop {
        guard.ready().await?;
        match ctx.primary.read_many(windows, limit).await {
            Ok(v) => {
                guard.succeeded();
                return Ok(v);
            }
            Err(e) => guard.failed(e).await?,
        }
    }
}

/// A point's identity and content, for "the backup holds this point already": tags, time and
/// fields by name (nodes may return fields in different orders).
fn same_point(a: &Point, b: &Point) -> bool {
    if a.time != b.time || a.tags != b.tags || a.fields.len() != b.fields.len() {
        return false;
    }
    a.fields.iter().all(|(k, v)| {
        b.fields
            .iter()
            .find(|(k2, _)| k2 == k)
            .is_some_and(|(_, v2)| v2 == v)
    })
}

/// The primary's points the backup does not hold bit for bit (all of them when the backup's
/// window is unknown).
fn missing<'a>(primary: &'a [Point], backup: Option<&[Point]>) -> Vec<&'a Point> {
    let Some(backup) = backup else {
        return primary.iter().collect();
    };
    let mut held: HashMap<Nanos, Vec<&Point>> = HashMap::new();
    for p in backup {
        held.entry(p.time).or_default().push(p);
    }
    primary
        .iter()
        .filter(|p| {
            !held
                .get(&p.time)
                .is_some_and(|at| at.iter().any(|b| same_point(p, b)))
        })
        .collect()
}

/// Writes one backup's lanes of a group: compare, one shared write (series by series when it
/// is refused), one checkpoint transaction.
async fn write_node(
    ctx: &UnitCtx,
    lanes: &[Lane],
    small: &[(UnitPlan, Vec<Point>)],
    members: &[usize],
    limit: usize,
) -> Vec<(usize, LaneEnd)> {
    let Some(node) = members.first().map(|&li| lanes[li].node.clone()) else {
        return Vec::new();
    };
    let end_all = |status: Status, error: &str, node_down: bool| -> Vec<(usize, LaneEnd)> {
        members
            .iter()
            .map(|&li| {
                (
                    li,
                    LaneEnd {
                        status,
                        error: Some(error.to_string()),
                        records: 0,
                        acked: None,
                        node_down,
                    },
                )
            })
            .collect()
    };
    if ctx.control.cancel.is_cancelled() {
        return end_all(
            Status::Interrupted,
            dms_core::ledger::UNIT_INTERRUPTED,
            false,
        );
    }
    // What the backup already holds of these windows (one read; unknown when it fails, then
    // everything is written, as the streamed path would).
    let windows: Vec<(SeriesKey, TimeRange)> = members
        .iter()
        .map(|&li| {
            let u = &small[lanes[li].unit].0;
            (u.series.clone(), u.range)
        })
        .collect();
    let held = match node.read_many(&windows, limit).await {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!(backup = %node.name(), cause = %e, "could not read what the backup holds; writing every point");
            vec![None; windows.len()]
        }
    };
    let todo: Vec<Vec<Point>> = members
        .iter()
        .zip(&held)
        .map(|(&li, h)| {
            missing(&small[lanes[li].unit].1, h.as_deref())
                .into_iter()
                .cloned()
                .collect()
        })
        .collect();

    // Shared writes of whole series, about `batch_size` points each (a series' window never
    // holds more than the group's limit, which is at most `batch_size`), each followed by
    // one checkpoint transaction for its series; a write the backup refuses (not down, not
    // stopped) is retried series by series.
    let mut ends = Vec::with_capacity(members.len());
    let mut start = 0;
    while start < members.len() {
        let mut end = start;
        let mut n = 0;
        while end < members.len() && (end == start || n + todo[end].len() <= ctx.batch_size) {
            n += todo[end].len();
            end += 1;
        }
        let chunk = start..end;
        start = end;
        let outcomes: Vec<Result<(), Failure>> = if ctx.control.cancel.is_cancelled() {
            chunk
                .clone()
                .map(|_| {
                    Err(Failure::Interrupted(
                        dms_core::ledger::UNIT_INTERRUPTED.into(),
                    ))
                })
                .collect()
        } else {
            let mut all: Vec<Point> = todo[chunk.clone()].iter().flatten().cloned().collect();
            all.sort_by_key(|p| p.time);
            match write(ctx, &node, all).await {
                Ok(()) => chunk.clone().map(|_| Ok(())).collect(),
                Err(f) if f.cancelled() || f.node_down() => {
                    chunk.clone().map(|_| Err(f.clone())).collect()
                }
                Err(f) => {
                    tracing::debug!(backup = %node.name(), cause = %f.text(), "a shared write was refused; writing the series one by one");
                    let mut v = Vec::with_capacity(chunk.len());
                    for points in &todo[chunk.clone()] {
                        v.push(write(ctx, &node, points.clone()).await);
                    }
                    v
                }
            }
        };
        ends.extend(
            commit_chunk(
                ctx,
                lanes,
                small,
                &members[chunk.clone()],
                &todo[chunk],
                outcomes,
            )
            .await,
        );
    }
    if let Some(p) = &ctx.control.progress {
        for (li, end) in &ends {
            if end.records > 0 {
                p.batch_written(node.name(), &lanes[*li].key.series, end.records);
            }
        }
    }
    ends
}

/// The ends of a chunk's lanes after its write: the checkpoints of what was acknowledged, in
/// one transaction (all fail when it cannot be saved).
async fn commit_chunk(
    ctx: &UnitCtx,
    lanes: &[Lane],
    small: &[(UnitPlan, Vec<Point>)],
    members: &[usize],
    todo: &[Vec<Point>],
    outcomes: Vec<Result<(), Failure>>,
) -> Vec<(usize, LaneEnd)> {
    let mut commits = Vec::new();
    let mut ends = Vec::with_capacity(members.len());
    for ((&li, points), outcome) in members.iter().zip(todo).zip(outcomes) {
        let lane = &lanes[li];
        let (unit, primary_points) = &small[lane.unit];
        match outcome {
            Ok(()) => {
                let checkpoint = primary_points
                    .iter()
                    .map(|p| p.time)
                    .filter(|t| *t <= ctx.cap)
                    .max();
                let acked = primary_points.iter().map(|p| p.time).max();
                let records = points.len() as u64;
                if acked.is_some() {
                    commits.push(Commit {
                        row_id: lane.row_id,
                        key: lane.key.clone(),
                        records,
                        checkpoint,
                        update: ctx.checkpoint_update(),
                        synced_from: unit.contiguous_from_start.then_some(unit.range.start),
                    });
                }
                ends.push((
                    li,
                    LaneEnd {
                        status: Status::Success,
                        error: None,
                        records,
                        acked,
                        node_down: false,
                    },
                ));
            }
            Err(f) => {
                let (status, error) = if f.cancelled() {
                    (
                        Status::Interrupted,
                        dms_core::ledger::UNIT_INTERRUPTED.to_string(),
                    )
                } else {
                    (Status::Failed, f.text())
                };
                ends.push((
                    li,
                    LaneEnd {
                        status,
                        error: Some(error),
                        records: 0,
                        acked: None,
                        node_down: f.node_down(),
                    },
                ));
            }
        }
    }
    if let Err(e) = ctx.history.commit_batches(commits).await {
        let text =
            format!("the backup acknowledged a batch but its checkpoint could not be saved: {e}");
        for (_, end) in &mut ends {
            if end.status == Status::Success {
                *end = LaneEnd {
                    status: Status::Failed,
                    error: Some(text.clone()),
                    records: 0,
                    acked: None,
                    node_down: false,
                };
            }
        }
    }
    ends
}

/// Writes points (of any series) to a backup with retries; nothing to write succeeds.
async fn write(ctx: &UnitCtx, node: &Arc<dyn Node>, points: Vec<Point>) -> Result<(), Failure> {
    if points.is_empty() {
        return Ok(());
    }
    let batch = Arc::new(Batch::new(points));
    let mut guard = Guarded::new(
        ctx.breakers.gate(node.name()),
        &ctx.retry,
        &ctx.control.cancel,
        "writing a batch",
    );
    loop {
        guard.ready().await?;
        match node.write(batch.clone()).await {
            Ok(()) => {
                guard.succeeded();
                return Ok(());
            }
            Err(e) => guard.failed(e).await?,
        }
    }
}
