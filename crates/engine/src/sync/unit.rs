//! One fan-out unit: a series window read once from the primary and written to one or more
//! backups ("lanes"). Each lane commits its own checkpoint after every acknowledged batch. A lane
//! that falls behind (retrying, or slow) is detached and continues on a reader of its own from
//! its last acknowledged point, so it never holds up the others.

use super::breaker::{Breakers, Failure, Guarded};
use super::plan::UnitPlan;
use super::{SyncControl, UnitReport};
use dms_config::SyncMode;
use dms_core::ledger::{CheckpointUpdate, Commit, Ledger, LedgerError, Status, UnitStart};
use dms_core::model::{BackupSeries, Batch, Nanos, SeriesKey, TimeRange};
use dms_core::node::{BatchStream, Node};
use dms_core::retry::RetryPolicy;
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::Instrument;

/// Batches a lane may have queued before the reader waits for it.
const LANE_QUEUE: usize = 1;

/// The error recorded for a lane that shutdown stopped.
const INTERRUPTED: &str = dms_core::ledger::UNIT_INTERRUPTED;

pub(crate) struct UnitCtx {
    pub primary: Arc<dyn Node>,
    pub history: Arc<dyn Ledger>,
    pub batch_size: usize,
    pub retry: RetryPolicy,
    pub mode: SyncMode,
    pub repair: bool,
    pub run_id: Option<i64>,
    pub control: SyncControl,
    pub detach_after: Duration,
    /// No checkpoint passes this data time: now, when the sync started. Future-dated points
    /// are copied, but a checkpoint past now would hide the bars that arrive later with
    /// earlier times.
    pub cap: Nanos,
    /// This run's circuit breakers, one per node.
    pub breakers: Breakers,
    /// Lanes that shutdown stopped before they began (no history row was opened for them).
    pub not_started: AtomicUsize,
}

/// Why a lane stopped.
#[derive(Debug, Clone)]
struct LaneError {
    text: String,
    /// The node was down: the breaker logged it once, the lane does not again.
    node_down: bool,
    /// Shutdown stopped it: not a failure, and the next sync resumes it.
    interrupted: bool,
}

impl LaneError {
    fn interrupted() -> Self {
        LaneError {
            text: INTERRUPTED.to_string(),
            node_down: false,
            interrupted: true,
        }
    }
}

impl From<String> for LaneError {
    fn from(text: String) -> Self {
        LaneError {
            text,
            node_down: false,
            interrupted: false,
        }
    }
}

impl From<Failure> for LaneError {
    fn from(f: Failure) -> Self {
        if f.cancelled() {
            return LaneError::interrupted();
        }
        LaneError {
            text: f.text(),
            node_down: f.node_down(),
            interrupted: false,
        }
    }
}

impl UnitCtx {
    pub(crate) fn checkpoint_update(&self) -> CheckpointUpdate {
        if self.mode == SyncMode::Full && !self.repair {
            CheckpointUpdate::Set
        } else {
            CheckpointUpdate::Advance
        }
    }
}

enum Msg {
    Batch(Arc<Batch>),
    End,
    Failed(LaneError),
}

struct Lane {
    node: Arc<dyn Node>,
    key: BackupSeries,
    /// The window start, when the backup will hold the series contiguously from there.
    synced_from: Option<Nanos>,
    row_id: i64,
    acked: Option<Nanos>,
    records: u64,
    started: Instant,
}

/// Runs one unit to completion and reports each lane.
pub(crate) async fn run(ctx: Arc<UnitCtx>, plan: UnitPlan) -> Result<Vec<UnitReport>, LedgerError> {
    let UnitPlan {
        series,
        range,
        lanes: nodes,
        contiguous_from_start,
    } = plan;
    // Shutdown came before this unit's turn: it did not start, so it opens no history row
    // (its checkpoints are untouched and the next sync plans it again).
    if ctx.control.cancel.is_cancelled() {
        ctx.not_started.fetch_add(nodes.len(), Ordering::Relaxed);
        return Ok(Vec::new());
    }
    let mut lanes = Vec::with_capacity(nodes.len());
    for node in nodes {
        let key = BackupSeries::new(node.name(), series.clone());
        let start = UnitStart {
            run_id: ctx.run_id,
            key: key.clone(),
            mode: ctx.mode,
            window_start: range.start,
            window_end: range.end,
        };
        let row_id = ctx.history.begin_unit(start).await?;
        lanes.push(Lane {
            node,
            key,
            synced_from: contiguous_from_start.then_some(range.start),
            row_id,
            acked: None,
            records: 0,
            started: Instant::now(),
        });
    }

    if lanes.len() == 1
        && let Some(lane) = lanes.pop()
    {
        return Ok(vec![drive_lane(&ctx, &series, range, lane, None).await]);
    }

    let mut senders = Vec::with_capacity(lanes.len());
    let mut lane_futs = Vec::with_capacity(lanes.len());
    for lane in lanes {
        let (tx, rx) = mpsc::channel(LANE_QUEUE);
        senders.push(Some(tx));
        lane_futs.push(drive_lane(&ctx, &series, range, lane, Some(rx)));
    }
    let (_, reports) = tokio::join!(
        feed(&ctx, &series, range, senders),
        futures::future::join_all(lane_futs)
    );
    Ok(reports)
}

/// Reads the window once and hands each batch to every attached lane.
async fn feed(
    ctx: &UnitCtx,
    series: &SeriesKey,
    range: TimeRange,
    mut lanes: Vec<Option<mpsc::Sender<Msg>>>,
) {
    let mut reader = Reader::new(ctx, series, range);
    loop {
        if lanes.iter().all(Option::is_none) {
            return;
        }
        let msg = match reader.next().await {
            Ok(Some(batch)) => Msg::Batch(Arc::new(batch)),
            Ok(None) => Msg::End,
            Err(e) => Msg::Failed(e),
        };
        let last = !matches!(msg, Msg::Batch(_));
        for slot in lanes.iter_mut() {
            let Some(tx) = slot else { continue };
            let m = match &msg {
                Msg::Batch(b) => Msg::Batch(b.clone()),
                Msg::End => Msg::End,
                Msg::Failed(e) => Msg::Failed(e.clone()),
            };
            match tokio::time::timeout(ctx.detach_after, tx.send(m)).await {
                Ok(Ok(())) => {}
                // The lane finished (failed); nothing more to send it.
                Ok(Err(_)) => *slot = None,
                Err(_) => {
                    tracing::info!(
                        series = %series,
                        "a backup is falling behind; it continues on its own reader"
                    );
                    *slot = None;
                }
            }
        }
        if last {
            return;
        }
    }
}

async fn drive_lane(
    ctx: &UnitCtx,
    series: &SeriesKey,
    range: TimeRange,
    mut lane: Lane,
    rx: Option<mpsc::Receiver<Msg>>,
) -> UnitReport {
    let span = tracing::info_span!("sync", backup = %lane.node.name(), series = %series);
    let gate = ctx.breakers.gate(lane.node.name());
    let outcome: Result<(), LaneError> = async {
        if let Some(mut rx) = rx {
            loop {
                // While another lane probes this backup, step aside so the reader is not
                // held up; this lane goes on on its own once the probe has an outcome.
                if gate.probing() {
                    break;
                }
                match rx.recv().await {
                    Some(Msg::Batch(b)) => write_batch(ctx, series, &mut lane, b).await?,
                    Some(Msg::End) => return Ok(()),
                    Some(Msg::Failed(e)) => return Err(e),
                    None => break,
                }
            }
        }
        // A backup found down (or being probed) is waited for before reading anything.
        Guarded::new(gate.clone(), &ctx.retry, &ctx.control.cancel, "")
            .ready()
            .await?;
        // On our own: from just after the last acknowledged point (batches never split a
        // timestamp, so nothing is skipped) or from the window start.
        let start = match lane.acked {
            Some(t) => t.saturating_add(1),
            None => range.start,
        };
        let mut reader = Reader::new(ctx, series, TimeRange::new(start, range.end));
        while let Some(batch) = reader.next().await? {
            write_batch(ctx, series, &mut lane, Arc::new(batch)).await?;
        }
        Ok(())
    }
    .instrument(span.clone())
    .await;

    {
        let _g = span.enter();
        match &outcome {
            Ok(()) => tracing::debug!(records = lane.records, "sync done"),
            // One line per shutdown says what it stopped, not one per series.
            Err(e) if e.interrupted => {
                tracing::debug!(records = lane.records, "sync interrupted by shutdown")
            }
            Err(e) if e.node_down => tracing::debug!(cause = %e.text, "sync not done"),
            Err(e) => tracing::error!(records = lane.records, cause = %e.text, "sync failed"),
        }
    }
    let (status, error) = match outcome {
        Ok(()) => (Status::Success, None),
        Err(e) if e.interrupted => (Status::Interrupted, Some(e.text)),
        Err(e) => (Status::Failed, Some(e.text)),
    };
    let (row_id, key, err) = (lane.row_id, lane.key.clone(), error.clone());
    let recorded = ctx.history.finish_unit(row_id, key, status, err).await;
    let (status, error) = match recorded {
        Ok(()) => (status, error),
        Err(e) => (
            Status::Failed,
            Some(match error {
                Some(prev) => format!("{prev}; and recording the result failed: {e}"),
                None => format!("recording the result failed: {e}"),
            }),
        ),
    };
    let report = UnitReport {
        key: lane.key,
        status,
        records: lane.records,
        error,
        window_start: range.start,
        window_end: range.end,
        synced_to: lane.acked,
        history_id: lane.row_id,
        duration_ms: u64::try_from(lane.started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    if let Some(p) = &ctx.control.progress {
        p.unit_finished(&report);
    }
    report
}

/// Writes one batch to a lane's backup with retries, then commits its checkpoint.
async fn write_batch(
    ctx: &UnitCtx,
    series: &SeriesKey,
    lane: &mut Lane,
    batch: Arc<Batch>,
) -> Result<(), LaneError> {
    if ctx.control.cancel.is_cancelled() {
        return Err(LaneError::interrupted());
    }
    let Some(newest) = batch.last_time() else {
        return Ok(());
    };
    // Future-dated points are copied, but the checkpoint stays at the newest point at or
    // before now, so bars that arrive later with earlier timestamps are still read.
    let checkpoint = batch
        .points
        .iter()
        .map(|p| p.time)
        .filter(|t| *t <= ctx.cap)
        .max();
    let n = batch.len() as u64;
    let node = lane.node.clone();
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
                break;
            }
            Err(e) => guard.failed(e).await?,
        }
    }
    let commit = Commit {
        row_id: lane.row_id,
        key: lane.key.clone(),
        records: n,
        checkpoint,
        update: ctx.checkpoint_update(),
        synced_from: lane.synced_from,
    };
    ctx.history.commit_batch(commit).await.map_err(|e| {
        LaneError::from(format!(
            "the backup acknowledged a batch but its checkpoint could not be saved: {e}"
        ))
    })?;
    lane.acked = Some(newest);
    lane.records += n;
    if let Some(p) = &ctx.control.progress {
        p.batch_written(node.name(), series, n);
    }
    Ok(())
}

/// Reads a window from the primary, reopening the stream after the last delivered batch when
/// a read fails and retrying with the configured backoff.
struct Reader<'a> {
    ctx: &'a UnitCtx,
    series: &'a SeriesKey,
    end: Nanos,
    cursor: Option<Nanos>,
    stream: Option<BatchStream>,
    guard: Guarded<'a>,
}

impl<'a> Reader<'a> {
    fn new(ctx: &'a UnitCtx, series: &'a SeriesKey, range: TimeRange) -> Self {
        Reader {
            ctx,
            series,
            end: range.end,
            cursor: (!range.is_empty()).then_some(range.start),
            stream: None,
            guard: Guarded::new(
                ctx.breakers.gate(ctx.primary.name()),
                &ctx.retry,
                &ctx.control.cancel,
                "reading the primary",
            ),
        }
    }

    async fn next(&mut self) -> Result<Option<Batch>, LaneError> {
        loop {
            let Some(cursor) = self.cursor else {
                return Ok(None);
            };
            if self.ctx.control.cancel.is_cancelled() {
                return Err(LaneError::interrupted());
            }
            if self.stream.is_none() {
                self.guard
                    .ready()
                    .await
                    .map_err(|f| self.primary_failed(f))?;
            }
            let stream = self.stream.get_or_insert_with(|| {
                self.ctx.primary.read(
                    self.series,
                    TimeRange::new(cursor, self.end),
                    self.ctx.batch_size,
                )
            });
            let item = tokio::select! {
                item = stream.next() => item,
                _ = self.ctx.control.cancel.cancelled() => return Err(LaneError::interrupted()),
            };
            match item {
                None => {
                    self.cursor = None;
                    return Ok(None);
                }
                Some(Ok(batch)) => {
                    self.guard.succeeded();
                    if let Some(last) = batch.last_time() {
                        self.cursor = last.checked_add(1).filter(|c| *c <= self.end);
                    }
                    if batch.is_empty() {
                        continue;
                    }
                    return Ok(Some(batch));
                }
                Some(Err(error)) => {
                    self.stream = None;
                    self.guard
                        .failed(error)
                        .await
                        .map_err(|f| self.primary_failed(f))?;
                }
            }
        }
    }

    fn primary_failed(&self, f: Failure) -> LaneError {
        let mut e = LaneError::from(f);
        if !e.interrupted {
            e.text = format!("reading the primary: {}", e.text);
        }
        e
    }
}
