//! The engine on its own: nodes and ledger in memory (`MemoryNode`, `MemoryLedger`, the
//! contracts' in-memory implementations), so these tests need no file, server or network.
//! The application's tests (`tests/` at the top) run the same engine on real SQLite stores
//! and InfluxDB servers.

use dms_config::{CheckScope, SyncSettings};
use dms_core::ledger::{EventKind, MemoryLedger, Status, SyncMode};
use dms_core::model::{
    BackupSeries, Batch, FieldValue, NANOS_PER_DAY, NANOS_PER_SEC, Nanos, Point, SeriesKey,
    TimeRange, now_nanos,
};
use dms_core::node::Node;
use dms_core::node::memory::MemoryNode;
use dms_core::retry::{Backoff, RetryPolicy};
use dms_core::schema::Schema;
use dms_engine::sync::{Engine, ReconcileRequest, Selection, SyncControl, SyncRequest};
use std::sync::Arc;
use std::time::Duration;

const DAY: Nanos = NANOS_PER_DAY;
const MINUTE: Nanos = 60 * NANOS_PER_SEC;

fn settings(batch_size: usize) -> SyncSettings {
    SyncSettings {
        default_mode: SyncMode::Incremental,
        check_enabled: true,
        check_interval: Duration::from_secs(60),
        check_scope: CheckScope::All,
        batch_size,
        max_gap: Duration::from_secs(3_600),
        initial_days: 3_650,
        max_workers: 4,
        pool_size: 2,
        retry: RetryPolicy {
            times: 0,
            delay: Duration::from_millis(1),
            backoff: Backoff::Exponential,
            max_delay: Duration::from_millis(1),
        },
        lookback: Duration::ZERO,
        future_tolerance: Duration::from_secs(2 * 86_400),
    }
}

struct Setup {
    primary: Arc<MemoryNode>,
    backups: Vec<Arc<MemoryNode>>,
    ledger: Arc<MemoryLedger>,
    engine: Engine,
}

fn setup(batch_size: usize) -> Setup {
    let schema = Schema::default();
    let primary = Arc::new(MemoryNode::new("primary", schema.clone()));
    let backups: Vec<Arc<MemoryNode>> = ["backup1", "backup2"]
        .into_iter()
        .map(|n| Arc::new(MemoryNode::new(n, schema.clone())))
        .collect();
    let ledger = Arc::new(MemoryLedger::default());
    let engine = Engine::new(
        primary.clone(),
        backups.iter().map(|b| b.clone() as Arc<dyn Node>).collect(),
        ledger.clone(),
        settings(batch_size),
    );
    Setup {
        primary,
        backups,
        ledger,
        engine,
    }
}

fn bars(symbol: &str, interval: &str, n: usize, end: Nanos, step: Nanos) -> Vec<Point> {
    let times: Vec<Nanos> = (0..n as i64)
        .map(|i| end - (n as i64 - 1 - i) * step)
        .collect();
    let b = dms_core::sample::bars(symbol, interval, &times);
    dms_core::sample::points(&Schema::default(), symbol, interval, &b)
}

async fn put(node: &MemoryNode, points: Vec<Point>) {
    node.write(Arc::new(Batch::new(points)))
        .await
        .expect("write");
}

fn all(node: &MemoryNode, s: &SeriesKey) -> Vec<Point> {
    node.points(s, TimeRange::new(Nanos::MIN, Nanos::MAX))
}

async fn sync(e: &Engine) -> dms_engine::sync::SyncReport {
    e.sync(
        &SyncRequest::new(Selection::all(), 3_650),
        &SyncControl::default(),
    )
    .await
    .expect("sync")
}

fn checkpoint(l: &MemoryLedger, backup: &str, s: &SeriesKey) -> Option<Nanos> {
    l.records()
        .checkpoints
        .get(&BackupSeries::new(backup, s.clone()))
        .copied()
}

fn minute_now() -> Nanos {
    now_nanos() / MINUTE * MINUTE
}

#[tokio::test]
async fn a_sync_copies_in_batches_and_the_next_copies_only_what_is_new() {
    let t = setup(7);
    let s = SeriesKey::new("US.AAPL", "1m");
    let end = minute_now() - 10 * MINUTE;
    put(&t.primary, bars("US.AAPL", "1m", 50, end, MINUTE)).await;
    let r = sync(&t.engine).await;
    assert_eq!(r.failed(), 0, "{r:?}");
    assert_eq!(r.records(), 100, "50 points to each of two backups");
    for b in &t.backups {
        assert_eq!(all(b, &s), all(&t.primary, &s), "{}", b.name());
        assert_eq!(checkpoint(&t.ledger, b.name(), &s), Some(end));
    }
    // One row per backup, each with every batch's records added up.
    let units = t.ledger.records().units;
    assert_eq!(units.len(), 2);
    assert!(
        units.iter().all(|u| u.1 == Status::Success && u.2 == 50),
        "{units:?}"
    );

    put(
        &t.primary,
        bars("US.AAPL", "1m", 3, end + 3 * MINUTE, MINUTE),
    )
    .await;
    let r = sync(&t.engine).await;
    // The newest bar again (it may have been rewritten) and the three new ones.
    assert_eq!(r.records(), 2 * 4, "{r:?}");
    for b in &t.backups {
        assert_eq!(checkpoint(&t.ledger, b.name(), &s), Some(end + 3 * MINUTE));
        assert_eq!(all(b, &s), all(&t.primary, &s));
    }
}

#[tokio::test]
async fn no_checkpoint_passes_now_and_later_bars_still_flow() {
    let t = setup(100);
    let s = SeriesKey::new("US.AAPL", "1m");
    let now = minute_now();
    put(
        &t.primary,
        bars("US.AAPL", "1m", 10, now - 30 * MINUTE, MINUTE),
    )
    .await;
    put(&t.primary, bars("US.AAPL", "1m", 1, now + DAY, MINUTE)).await;
    sync(&t.engine).await;
    for b in &t.backups {
        assert_eq!(checkpoint(&t.ledger, b.name(), &s), Some(now - 30 * MINUTE));
        assert!(all(b, &s).iter().any(|p| p.time == now + DAY), "copied");
    }
    // Bars stamped before tomorrow's arrive: the check loop's plan sees them.
    put(
        &t.primary,
        bars("US.AAPL", "1m", 5, now - 5 * MINUTE, MINUTE),
    )
    .await;
    let req = SyncRequest {
        only_behind: true,
        ..SyncRequest::new(Selection::all(), 3_650)
    };
    let r = t
        .engine
        .sync(&req, &SyncControl::default())
        .await
        .expect("sync");
    assert_eq!(r.units.len(), 2, "both backups are behind: {r:?}");
    for b in &t.backups {
        assert_eq!(checkpoint(&t.ledger, b.name(), &s), Some(now - 5 * MINUTE));
        assert_eq!(all(b, &s), all(&t.primary, &s));
    }
}

#[tokio::test]
async fn a_checkpoint_ahead_of_a_wiped_backup_is_moved_back_and_the_series_resynced() {
    let t = setup(100);
    let s = SeriesKey::new("US.AAPL", "1d");
    let today = now_nanos() / DAY * DAY;
    put(&t.primary, bars("US.AAPL", "1d", 30, today, DAY)).await;
    sync(&t.engine).await;
    let wiped = &t.backups[0];
    let times: Vec<Nanos> = all(wiped, &s).iter().map(|p| p.time).collect();
    wiped.delete(&s, &times[15..]).await.expect("delete");
    sync(&t.engine).await;
    let events = t.ledger.records().events;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, EventKind::Rewound);
    assert_eq!(events[0].2, Some(times[14]));
    assert_eq!(all(wiped, &s), all(&t.primary, &s));
    assert_eq!(checkpoint(&t.ledger, "backup1", &s), Some(today));
}

#[tokio::test]
async fn reconcile_repairs_an_old_change_and_never_deletes_what_only_a_backup_holds() {
    let t = setup(100);
    let s = SeriesKey::new("US.AAPL", "1d");
    let today = now_nanos() / DAY * DAY;
    let points = bars("US.AAPL", "1d", 40, today, DAY);
    put(&t.primary, points.clone()).await;
    sync(&t.engine).await;
    // An old bar revised on the primary, a series only backup1 holds, and backup2's newest
    // bar that the primary no longer has.
    let mut revised = points[5].clone();
    revised.fields.retain(|(k, _)| &**k != "volume");
    if let Some(f) = revised.fields.iter_mut().find(|(k, _)| &**k == "close") {
        f.1 = FieldValue::Float(1.25);
    }
    t.primary
        .replace(
            &s,
            &[revised.time],
            Arc::new(Batch::new(vec![revised.clone()])),
        )
        .await
        .expect("revise");
    let gone = SeriesKey::new("US.GONE", "1d");
    put(&t.backups[0], bars("US.GONE", "1d", 3, today, DAY)).await;
    t.primary.delete(&s, &[today]).await.expect("retract");
    let req = ReconcileRequest {
        selection: Selection::all(),
        backups: None,
        range: TimeRange::new(today - 100 * DAY, today + DAY),
        window: DAY,
        full: None,
        dry_run: false,
        exact: false,
        mirror_deletes: true,
        run_id: None,
        deadline: None,
        resume_from: None,
        starts: Default::default(),
        stripe: None,
        // The retracted newest bar moved the primary's newest point backwards, which holds
        // every delete back unless a person allows them: allowed, what only the backup
        // holds past the primary's newest point still stays.
        deletes: dms_engine::sync::DeleteLimits {
            allow: Some(100),
            ..Default::default()
        },
    };
    let r = t
        .engine
        .reconcile(&req, &SyncControl::default())
        .await
        .expect("reconcile");
    for b in &r.backups {
        assert!(b.counts.error.is_none(), "{b:?}");
    }
    for b in &t.backups {
        let held = all(b, &s);
        let old = held.iter().find(|p| p.time == revised.time).expect("kept");
        assert_eq!(
            old,
            &revised,
            "{}: the revision, and its dropped field, arrived",
            b.name()
        );
        assert!(
            held.iter().any(|p| p.time == today),
            "{}: past the primary's newest",
            b.name()
        );
    }
    assert_eq!(all(&t.backups[0], &gone).len(), 3, "the only copy stays");
    let b1 = &r.backups[0].counts;
    assert_eq!((b1.deleted, b1.extra), (0, 4), "{b1:?}");
}

/// A backup that takes every write and, after the `n`-th, asks for shutdown — as a signal
/// arriving while a batch is in flight: that batch is acknowledged, the next is not begun.
struct StopAfter {
    inner: MemoryNode,
    writes: std::sync::atomic::AtomicUsize,
    n: usize,
    stop: tokio_util::sync::CancellationToken,
}

#[async_trait::async_trait]
impl Node for StopAfter {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn ping(&self) -> Result<(), dms_core::node::NodeError> {
        self.inner.ping().await
    }
    async fn probe(
        &self,
        role: dms_core::node::Role,
    ) -> Result<dms_core::node::Probe, dms_core::node::NodeError> {
        self.inner.probe(role).await
    }
    async fn list_series(&self) -> Result<Vec<SeriesKey>, dms_core::node::NodeError> {
        self.inner.list_series().await
    }
    async fn newest(
        &self,
        series: &[SeriesKey],
    ) -> Result<std::collections::HashMap<SeriesKey, Nanos>, dms_core::node::NodeError> {
        self.inner.newest(series).await
    }
    async fn tips(
        &self,
        series: &[SeriesKey],
        horizon: Nanos,
    ) -> Result<std::collections::HashMap<SeriesKey, dms_core::node::Tip>, dms_core::node::NodeError>
    {
        self.inner.tips(series, horizon).await
    }
    async fn digests(
        &self,
        series: &[SeriesKey],
        range: TimeRange,
        window: Nanos,
        depth: dms_core::node::Depth,
    ) -> Result<dms_core::node::Digests, dms_core::node::NodeError> {
        self.inner.digests(series, range, window, depth).await
    }
    async fn delete(
        &self,
        series: &SeriesKey,
        times: &[Nanos],
    ) -> Result<u64, dms_core::node::NodeError> {
        self.inner.delete(series, times).await
    }
    fn read(
        &self,
        series: &SeriesKey,
        range: TimeRange,
        batch_size: usize,
    ) -> dms_core::node::BatchStream {
        self.inner.read(series, range, batch_size)
    }
    async fn write(&self, batch: Arc<Batch>) -> Result<(), dms_core::node::NodeError> {
        self.inner.write(batch).await?;
        let done = self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if done == self.n {
            self.stop.cancel();
        }
        Ok(())
    }
}

#[tokio::test]
async fn shutdown_mid_sync_interrupts_without_failing_and_the_next_sync_resumes() {
    let schema = Schema::default();
    let primary = Arc::new(MemoryNode::new("primary", schema.clone()));
    let stop = tokio_util::sync::CancellationToken::new();
    let backup = Arc::new(StopAfter {
        inner: MemoryNode::new("backup1", schema),
        writes: Default::default(),
        n: 5,
        stop: stop.clone(),
    });
    let ledger = Arc::new(MemoryLedger::default());
    // Two workers for six series too big to move as a group: when the stop comes two units
    // are mid-way and the rest have not begun.
    let engine = Engine::new(
        primary.clone(),
        vec![backup.clone() as Arc<dyn Node>],
        ledger.clone(),
        SyncSettings {
            max_workers: 2,
            ..settings(7)
        },
    );
    let end = minute_now() - 10 * MINUTE;
    let symbols = ["US.A", "US.B", "US.C", "US.D", "US.E", "US.F"];
    for s in symbols {
        put(&primary, bars(s, "1m", 4_000, end, MINUTE)).await;
    }
    let control = SyncControl {
        cancel: stop.clone(),
        progress: None,
    };
    let r = engine
        .sync(&SyncRequest::new(Selection::all(), 3_650), &control)
        .await
        .expect("an interrupted sync is no error");
    assert_eq!(r.failed(), 0, "nothing failed: {r:?}");
    assert!(r.interrupted() >= 1, "{r:?}");
    assert!(r.not_started >= 1, "{r:?}");
    assert_eq!(r.units.len() + r.not_started, symbols.len(), "{r:?}");
    assert!(r.was_interrupted());
    for u in r.units.iter().filter(|u| u.status == Status::Interrupted) {
        let e = u.error.as_deref().unwrap_or_default();
        assert!(e.starts_with("interrupted:"), "{e}");
    }
    // Rows only for the units that began; none failed.
    let rows = ledger.records().units;
    assert_eq!(rows.len(), r.units.len());
    assert!(rows.iter().all(|u| u.1 != Status::Failed), "{rows:?}");
    // Each checkpoint is exactly the newest point of the last acknowledged batch, and the
    // backup holds the primary's points up to it and nothing after.
    for s in symbols {
        let key = SeriesKey::new(s, "1m");
        let held = all(&backup.inner, &key);
        let cp = checkpoint(&ledger, "backup1", &key);
        assert_eq!(cp, held.last().map(|p| p.time), "{s}");
        let upto = cp.unwrap_or(Nanos::MIN);
        let expected: Vec<Point> = all(&primary, &key)
            .into_iter()
            .filter(|p| p.time <= upto)
            .collect();
        assert_eq!(held, expected, "{s}");
    }

    let r = engine
        .sync(
            &SyncRequest::new(Selection::all(), 3_650),
            &SyncControl::default(),
        )
        .await
        .expect("sync");
    assert!(r.units.iter().all(|u| u.status == Status::Success), "{r:?}");
    assert_eq!(r.units.len(), symbols.len());
    for s in symbols {
        let key = SeriesKey::new(s, "1m");
        assert_eq!(all(&backup.inner, &key), all(&primary, &key), "{s}");
        assert_eq!(checkpoint(&ledger, "backup1", &key), Some(end));
    }
}

#[tokio::test]
async fn shutdown_before_a_sync_starts_records_nothing() {
    let t = setup(7);
    put(&t.primary, bars("US.AAPL", "1m", 20, minute_now(), MINUTE)).await;
    let control = SyncControl::default();
    control.cancel.cancel();
    let e = t
        .engine
        .sync(&SyncRequest::new(Selection::all(), 3_650), &control)
        .await
        .expect_err("cancelled");
    assert!(e.is_cancelled(), "{e}");
    assert!(t.ledger.records().units.is_empty());
}

/// A node whose replace takes two steps (delete, then write), as InfluxDB's does, and whose
/// write fails once `crash` is set and a delete happened: a crash between the two steps.
struct TwoStep {
    inner: Arc<MemoryNode>,
    crash: std::sync::atomic::AtomicBool,
    deleted: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Node for TwoStep {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn ping(&self) -> Result<(), dms_core::node::NodeError> {
        self.inner.ping().await
    }
    async fn probe(
        &self,
        role: dms_core::node::Role,
    ) -> Result<dms_core::node::Probe, dms_core::node::NodeError> {
        self.inner.probe(role).await
    }
    async fn list_series(&self) -> Result<Vec<SeriesKey>, dms_core::node::NodeError> {
        self.inner.list_series().await
    }
    async fn newest(
        &self,
        series: &[SeriesKey],
    ) -> Result<std::collections::HashMap<SeriesKey, Nanos>, dms_core::node::NodeError> {
        self.inner.newest(series).await
    }
    async fn tips(
        &self,
        series: &[SeriesKey],
        horizon: Nanos,
    ) -> Result<std::collections::HashMap<SeriesKey, dms_core::node::Tip>, dms_core::node::NodeError>
    {
        self.inner.tips(series, horizon).await
    }
    async fn digests(
        &self,
        series: &[SeriesKey],
        range: TimeRange,
        window: Nanos,
        depth: dms_core::node::Depth,
    ) -> Result<dms_core::node::Digests, dms_core::node::NodeError> {
        self.inner.digests(series, range, window, depth).await
    }
    async fn delete(
        &self,
        series: &SeriesKey,
        times: &[Nanos],
    ) -> Result<u64, dms_core::node::NodeError> {
        self.deleted
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.delete(series, times).await
    }
    fn read(
        &self,
        series: &SeriesKey,
        range: TimeRange,
        batch_size: usize,
    ) -> dms_core::node::BatchStream {
        self.inner.read(series, range, batch_size)
    }
    async fn write(&self, batch: Arc<Batch>) -> Result<(), dms_core::node::NodeError> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.crash.load(SeqCst) && self.deleted.load(SeqCst) {
            return Err(dms_core::node::NodeError::new(
                self.name(),
                dms_core::node::ErrorKind::Unavailable,
                "killed between the delete and the write",
            ));
        }
        self.inner.write(batch).await
    }
}

#[tokio::test]
async fn a_replace_cut_between_its_two_steps_is_finished_by_the_next_reconcile() {
    let schema = Schema::default();
    let primary = Arc::new(MemoryNode::new("primary", schema.clone()));
    let inner = Arc::new(MemoryNode::new("backup1", schema.clone()));
    let backup = Arc::new(TwoStep {
        inner: inner.clone(),
        crash: false.into(),
        deleted: false.into(),
    });
    let ledger = Arc::new(MemoryLedger::default());
    let engine = Engine::new(
        primary.clone(),
        vec![backup.clone() as Arc<dyn Node>],
        ledger.clone(),
        settings(100),
    );
    let today = now_nanos() / DAY * DAY;
    let (s, other) = (
        SeriesKey::new("US.AAPL", "1d"),
        SeriesKey::new("US.MSFT", "1d"),
    );
    put(&primary, bars("US.AAPL", "1d", 30, today - DAY, DAY)).await;
    put(&primary, bars("US.MSFT", "1d", 30, today - DAY, DAY)).await;
    let ctl = SyncControl::default();
    let sync = SyncRequest::new(Selection::all(), 3_650);
    engine.sync(&sync, &ctl).await.expect("sync");
    // An old bar on the backup carries a field the primary dropped: only a replace fixes it.
    let old = all(&inner, &s)[5].clone();
    let mut extra = old.clone();
    extra
        .fields
        .push((Arc::from("stray"), FieldValue::Integer(1)));
    put(&inner, vec![extra]).await;
    let request = |selection: Selection| ReconcileRequest {
        selection,
        backups: None,
        range: TimeRange::new(today - 100 * DAY, today + DAY),
        window: DAY,
        full: None,
        dry_run: false,
        exact: false,
        mirror_deletes: true,
        run_id: None,
        deadline: None,
        resume_from: None,
        starts: Default::default(),
        stripe: None,
        deletes: Default::default(),
    };
    backup
        .crash
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = engine
        .reconcile(&request(Selection::Series(vec![s.clone()])), &ctl)
        .await
        .expect("reconcile");
    assert!(r.backups[0].counts.error.is_some(), "{r:#?}");
    assert!(
        !all(&inner, &s).iter().any(|p| p.time == old.time),
        "the crash left the hole"
    );
    assert!(
        ledger
            .records()
            .state
            .contains_key("reconcile.journal.backup1"),
        "the journal says which points"
    );
    // The next reconcile — of another series — finishes the replace first.
    backup
        .crash
        .store(false, std::sync::atomic::Ordering::SeqCst);
    engine
        .reconcile(&request(Selection::Series(vec![other])), &ctl)
        .await
        .expect("reconcile");
    assert!(ledger.records().state.is_empty(), "the journal is cleared");
    assert_eq!(
        all(&inner, &s),
        all(&primary, &s),
        "the point is back, as the primary has it"
    );
}
