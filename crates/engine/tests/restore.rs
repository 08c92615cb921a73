//! Restore on its own: nodes and ledger in memory. What a restore writes, keeps, overwrites and
//! never deletes; what a dry run reports; which requests it refuses. The application's tests
//! (`tests/restore.rs`, `tests/influx/restore.rs`) run it on SQLite stores and InfluxDB.

use dms_config::{CheckScope, SyncSettings};
use dms_core::ledger::{MemoryLedger, Status, SyncMode};
use dms_core::model::{Batch, FieldValue, NANOS_PER_SEC, Nanos, Point, SeriesKey, TimeRange};
use dms_core::node::Node;
use dms_core::node::memory::MemoryNode;
use dms_core::retry::{Backoff, RetryPolicy};
use dms_core::schema::Schema;
use dms_engine::restore::{RestoreArgs, RestoreError, SeriesOutcome};
use dms_engine::sync::{Engine, SyncControl};
use std::sync::Arc;
use std::time::Duration;

const MINUTE: Nanos = 60 * NANOS_PER_SEC;
/// 2024-01-02T00:00:00Z.
const T0: Nanos = 1_704_153_600 * NANOS_PER_SEC;

fn settings() -> SyncSettings {
    SyncSettings {
        default_mode: SyncMode::Incremental,
        check_enabled: true,
        check_interval: Duration::from_secs(60),
        check_scope: CheckScope::All,
        batch_size: 7,
        max_gap: Duration::from_secs(3_600),
        initial_days: 3_650,
        max_workers: 2,
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
    backup1: Arc<MemoryNode>,
    backup2: Arc<MemoryNode>,
    ledger: Arc<MemoryLedger>,
    engine: Engine,
}

fn setup() -> Setup {
    let schema = Schema::default();
    let primary = Arc::new(MemoryNode::new("primary", schema.clone()));
    let backup1 = Arc::new(MemoryNode::new("backup1", schema.clone()));
    let backup2 = Arc::new(MemoryNode::new("backup2", schema.clone()));
    let ledger = Arc::new(MemoryLedger::default());
    let engine = Engine::new(
        primary.clone(),
        vec![backup1.clone(), backup2.clone()],
        ledger.clone(),
        settings(),
    )
    .with_disabled_backups(vec!["archive".into()]);
    Setup {
        primary,
        backup1,
        backup2,
        ledger,
        engine,
    }
}

fn bars(symbol: &str, n: usize) -> Vec<Point> {
    let times: Vec<Nanos> = (0..n as i64).map(|i| T0 + i * MINUTE).collect();
    let b = dms_core::sample::bars(symbol, "1m", &times);
    dms_core::sample::points(&Schema::default(), symbol, "1m", &b)
}

async fn put(node: &dyn Node, points: Vec<Point>) {
    node.write(Arc::new(Batch::new(points)))
        .await
        .expect("a memory write");
}

fn all(node: &MemoryNode, s: &SeriesKey) -> Vec<Point> {
    node.points(s, TimeRange::new(Nanos::MIN, Nanos::MAX))
}

fn from(backup: &str) -> RestoreArgs {
    RestoreArgs {
        from: backup.into(),
        ..RestoreArgs::default()
    }
}

/// `p` with its close moved by `by`.
fn nudged(p: &Point, by: f64) -> Point {
    let mut q = p.clone();
    for (k, v) in q.fields.iter_mut() {
        if &**k == "close"
            && let FieldValue::Float(f) = v
        {
            *f += by;
        }
    }
    q
}

#[tokio::test]
async fn a_series_dropped_on_the_primary_comes_back_exactly_and_others_are_untouched() {
    let s = setup();
    let (aapl, msft) = (SeriesKey::new("A", "1m"), SeriesKey::new("M", "1m"));
    put(s.backup1.as_ref(), bars("A", 40)).await;
    put(s.backup1.as_ref(), bars("M", 40)).await;
    // The primary lost A entirely and holds M with a newer bar the backup lacks.
    let mut m = bars("M", 41);
    put(s.primary.as_ref(), m.clone()).await;
    let report = s
        .engine
        .restore(&from("backup1"), Some(7), &SyncControl::default())
        .await
        .expect("restore runs");
    assert_eq!(report.counts.status, Status::Success, "{report:#?}");
    assert_eq!(all(&s.primary, &aapl), bars("A", 40));
    assert_eq!(all(&s.primary, &msft), m.clone());
    let a = &report.results[0];
    assert_eq!((a.written, a.result), (40, SeriesOutcome::Equal));
    let mm = &report.results[1];
    assert_eq!((mm.written, mm.unchanged, mm.extra), (0, 40, 0), "{mm:#?}");
    assert_eq!(report.counts.written, 40);
    // Recorded once, under the run, with the counts; no checkpoint anywhere.
    let rec = s.ledger.records();
    assert_eq!(rec.restores.len(), 1);
    assert_eq!(rec.restores[0].0.run_id, Some(7));
    assert_eq!(rec.restores[0].1.as_ref(), Some(&report.counts));
    assert!(rec.checkpoints.is_empty() && rec.units.is_empty());
    // The newer bar past the backup's newest is outside the restored range.
    m.pop();
    assert_eq!(report.results[1].source_points, m.len() as u64);
}

#[tokio::test]
async fn different_points_on_the_target_are_kept_unless_overwrite_and_nothing_is_deleted() {
    let s = setup();
    let key = SeriesKey::new("A", "1m");
    let src = bars("A", 20);
    put(s.backup1.as_ref(), src.clone()).await;
    let mut mine: Vec<Point> = src.iter().take(10).cloned().collect();
    mine[3] = nudged(&mine[3], 1.0);
    mine[4] = nudged(&mine[4], -1.0);
    // A point the backup lacks, inside the range: the target's own, never deleted.
    let own = {
        let mut p = src[12].clone();
        p.time += 1;
        p
    };
    mine.push(own.clone());
    put(s.primary.as_ref(), mine.clone()).await;

    let dry = s
        .engine
        .restore(
            &RestoreArgs {
                dry_run: true,
                ..from("backup1")
            },
            None,
            &SyncControl::default(),
        )
        .await
        .expect("a dry run");
    let d = &dry.results[0];
    assert_eq!((d.written, d.kept, d.extra), (10, 2, 1), "{d:#?}");
    assert_eq!(d.result, SeriesOutcome::Differs);
    assert_eq!(
        (dry.counts.status, dry.counts.differing),
        (Status::Success, 1),
        "a dry run reports differences"
    );
    assert_eq!(all(&s.primary, &key).len(), 11, "a dry run writes nothing");

    let kept = s
        .engine
        .restore(&from("backup1"), None, &SyncControl::default())
        .await
        .expect("restore runs");
    let k = &kept.results[0];
    assert_eq!((k.written, k.kept, k.unchanged), (10, 2, 8), "{k:#?}");
    assert_eq!((k.missing, k.different, k.extra), (0, 2, 1));
    assert_eq!(k.result, SeriesOutcome::Kept);
    assert_eq!(
        kept.counts.status,
        Status::Success,
        "kept values are no failure"
    );
    let held = all(&s.primary, &key);
    assert_eq!(held.iter().find(|p| p.time == mine[3].time), Some(&mine[3]));
    assert!(held.contains(&own));

    let over = s
        .engine
        .restore(
            &RestoreArgs {
                overwrite: true,
                ..from("backup1")
            },
            None,
            &SyncControl::default(),
        )
        .await
        .expect("restore runs");
    let o = &over.results[0];
    assert_eq!((o.written, o.different, o.extra), (2, 0, 1), "{o:#?}");
    assert_eq!(o.result, SeriesOutcome::Equal);
    let mut expected = src.clone();
    expected.push(own);
    expected.sort_by_key(|p| p.time);
    assert_eq!(all(&s.primary, &key), expected);
}

#[tokio::test]
async fn overwrite_replaces_a_point_whose_extra_field_a_merge_would_keep() {
    let s = setup();
    let key = SeriesKey::new("A", "1m");
    let src = bars("A", 3);
    put(s.backup1.as_ref(), src.clone()).await;
    let mut extra_field = nudged(&src[1], 2.0);
    extra_field
        .fields
        .push(("note".into(), FieldValue::String("hand-edited".into())));
    put(s.primary.as_ref(), vec![extra_field]).await;
    let r = s
        .engine
        .restore(
            &RestoreArgs {
                overwrite: true,
                to: Some("primary".into()),
                ..from("backup1")
            },
            None,
            &SyncControl::default(),
        )
        .await
        .expect("restore runs");
    assert_eq!(r.results[0].result, SeriesOutcome::Equal, "{r:#?}");
    assert_eq!(all(&s.primary, &key), src);
}

#[tokio::test]
async fn a_restore_to_another_backup_and_within_a_range_copies_only_that() {
    let s = setup();
    let key = SeriesKey::new("A", "1m");
    let src = bars("A", 30);
    put(s.backup1.as_ref(), src.clone()).await;
    let r = s
        .engine
        .restore(
            &RestoreArgs {
                to: Some("backup2".into()),
                since: Some(src[5].time),
                until: Some(src[14].time),
                symbols: Some(vec!["A".into()]),
                ..from("backup1")
            },
            None,
            &SyncControl::default(),
        )
        .await
        .expect("restore runs");
    assert_eq!(r.target, "backup2");
    assert_eq!(all(&s.backup2, &key), src[5..15].to_vec());
    assert!(all(&s.primary, &key).is_empty());
    assert_eq!(r.results[0].written, 10);
}

#[tokio::test]
async fn requests_naming_nodes_it_cannot_use_are_refused_before_anything_is_recorded() {
    let s = setup();
    put(s.backup1.as_ref(), bars("A", 3)).await;
    let ctl = SyncControl::default();
    let refused = |r: Result<_, RestoreError>| match r {
        Err(e) if e.is_bad_input() => e.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    let cases = [
        (from(""), "name the backup"),
        (from("primary"), "is the primary"),
        (from("nosuch"), "no enabled backup is called \"nosuch\""),
        (from("archive"), "disabled"),
        (
            RestoreArgs {
                to: Some("backup1".into()),
                ..from("backup1")
            },
            "both the source and the target",
        ),
        (
            RestoreArgs {
                to: Some("elsewhere".into()),
                ..from("backup1")
            },
            "no node is called \"elsewhere\"",
        ),
        (
            RestoreArgs {
                since: Some(T0),
                until: Some(T0 - 1),
                ..from("backup1")
            },
            "the range is empty",
        ),
    ];
    for (args, words) in cases {
        let e = refused(s.engine.restore(&args, None, &ctl).await);
        assert!(e.contains(words), "{e}");
    }
    assert!(s.ledger.records().restores.is_empty());
}

#[tokio::test]
async fn filters_that_match_nothing_on_the_source_fail_the_restore() {
    let s = setup();
    put(s.backup1.as_ref(), bars("A", 3)).await;
    let r = s
        .engine
        .restore(
            &RestoreArgs {
                symbols: Some(vec!["NOPE".into()]),
                ..from("backup1")
            },
            None,
            &SyncControl::default(),
        )
        .await
        .expect("restore runs");
    assert_eq!(r.counts.status, Status::Failed);
    assert!(
        r.counts
            .error
            .as_deref()
            .is_some_and(|e| e.contains("symbol NOPE")),
        "{r:#?}"
    );
    let empty = s
        .engine
        .restore(&from("backup2"), None, &SyncControl::default())
        .await
        .expect("restore runs");
    assert_eq!(
        empty.counts.status,
        Status::Failed,
        "an empty backup restores nothing"
    );
}

/// A node whose writes fail as if it went away (after its pings answered).
struct Gone(Arc<MemoryNode>, std::sync::atomic::AtomicUsize);

#[async_trait::async_trait]
impl Node for Gone {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
    async fn ping(&self) -> Result<(), dms_core::node::NodeError> {
        self.0.ping().await
    }
    async fn probe(
        &self,
        role: dms_core::node::Role,
    ) -> Result<dms_core::node::Probe, dms_core::node::NodeError> {
        self.0.probe(role).await
    }
    async fn list_series(&self) -> Result<Vec<SeriesKey>, dms_core::node::NodeError> {
        self.0.list_series().await
    }
    async fn newest(
        &self,
        series: &[SeriesKey],
    ) -> Result<std::collections::HashMap<SeriesKey, Nanos>, dms_core::node::NodeError> {
        self.0.newest(series).await
    }
    async fn tips(
        &self,
        series: &[SeriesKey],
        horizon: Nanos,
    ) -> Result<std::collections::HashMap<SeriesKey, dms_core::node::Tip>, dms_core::node::NodeError>
    {
        self.0.tips(series, horizon).await
    }
    async fn digests(
        &self,
        series: &[SeriesKey],
        range: TimeRange,
        window: Nanos,
        depth: dms_core::node::Depth,
    ) -> Result<dms_core::node::Digests, dms_core::node::NodeError> {
        self.0.digests(series, range, window, depth).await
    }
    async fn delete(
        &self,
        series: &SeriesKey,
        times: &[Nanos],
    ) -> Result<u64, dms_core::node::NodeError> {
        self.0.delete(series, times).await
    }
    fn read(
        &self,
        series: &SeriesKey,
        range: TimeRange,
        batch_size: usize,
    ) -> dms_core::node::BatchStream {
        self.0.read(series, range, batch_size)
    }
    async fn write(&self, _batch: Arc<Batch>) -> Result<(), dms_core::node::NodeError> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(dms_core::node::NodeError::new(
            self.name(),
            dms_core::node::ErrorKind::Unavailable,
            "connection refused",
        ))
    }
}

#[tokio::test]
async fn a_target_that_goes_away_fails_the_first_series_and_the_rest_at_once() {
    let schema = Schema::default();
    let primary = Arc::new(MemoryNode::new("primary", schema.clone()));
    let backup1 = Arc::new(MemoryNode::new("backup1", schema.clone()));
    for sym in ["A", "B", "C", "D", "E"] {
        put(backup1.as_ref(), bars(sym, 10)).await;
    }
    let gone = Arc::new(Gone(primary, std::sync::atomic::AtomicUsize::new(0)));
    let mut one_at_a_time = settings();
    one_at_a_time.max_workers = 1;
    let engine = Engine::new(
        gone.clone(),
        vec![backup1],
        Arc::new(MemoryLedger::default()),
        one_at_a_time,
    );
    let r = engine
        .restore(&from("backup1"), None, &SyncControl::default())
        .await
        .expect("restore runs");
    assert_eq!(r.counts.status, Status::Failed);
    assert_eq!(r.counts.failed, 5, "{r:#?}");
    assert_eq!(
        gone.1.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one write tried (no retries configured), none after it"
    );
    assert!(
        r.results[1]
            .error
            .as_deref()
            .is_some_and(|e| e
                .starts_with("not tried: an earlier series gave up: node primary: unreachable")),
        "{r:#?}"
    );
}
