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
