//! Fault injection that wraps a real node: failing chosen writes, slowing writes down,
//! recording when each write was attempted and counting the read streams opened.

use dms::model::{Batch, Nanos, SeriesKey, TimeRange};
use dms::node::{BatchStream, ErrorKind, Node, NodeError, Probe, Role};
use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Which write calls fail.
#[derive(Clone, Debug)]
pub enum Plan {
    /// Never fail.
    Healthy,
    /// Write calls with these numbers (1-based) fail with `kind`.
    Calls(RangeInclusive<usize>, ErrorKind),
    /// Every write call fails with `kind`.
    Always(ErrorKind),
}

pub struct Faulty {
    inner: Arc<dyn Node>,
    plan: Mutex<Plan>,
    delay: Duration,
    calls: AtomicUsize,
    reads: AtomicUsize,
    /// Start time of every write call (on tokio's clock, so paused time shows exact waits).
    pub attempts: Mutex<Vec<Instant>>,
}

impl Faulty {
    pub fn new(inner: Arc<dyn Node>, plan: Plan) -> Arc<Faulty> {
        Self::slow(inner, plan, Duration::ZERO)
    }

    pub fn slow(inner: Arc<dyn Node>, plan: Plan, delay: Duration) -> Arc<Faulty> {
        Arc::new(Faulty {
            inner,
            plan: Mutex::new(plan),
            delay,
            calls: AtomicUsize::new(0),
            reads: AtomicUsize::new(0),
            attempts: Mutex::new(Vec::new()),
        })
    }

    pub fn set_plan(&self, plan: Plan) {
        *self.plan.lock().unwrap() = plan;
    }

    pub fn write_calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Read streams opened.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Node for Faulty {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn describe(&self) -> String {
        format!("faulty {}", self.inner.describe())
    }
    async fn ping(&self) -> Result<(), NodeError> {
        self.inner.ping().await
    }
    async fn probe(&self, role: Role) -> Result<Probe, NodeError> {
        self.inner.probe(role).await
    }
    async fn list_series(&self) -> Result<Vec<SeriesKey>, NodeError> {
        self.inner.list_series().await
    }
    async fn newest(&self, series: &[SeriesKey]) -> Result<HashMap<SeriesKey, Nanos>, NodeError> {
        self.inner.newest(series).await
    }
    async fn tips(
        &self,
        series: &[SeriesKey],
        horizon: Nanos,
    ) -> Result<HashMap<SeriesKey, dms::node::Tip>, NodeError> {
        self.inner.tips(series, horizon).await
    }
    async fn tips_all(
        &self,
        horizon: Nanos,
    ) -> Result<HashMap<SeriesKey, dms::node::Tip>, NodeError> {
        self.inner.tips_all(horizon).await
    }
    async fn digests(
        &self,
        series: &[SeriesKey],
        range: TimeRange,
        window: Nanos,
        depth: dms::node::Depth,
    ) -> Result<dms::node::Digests, NodeError> {
        self.inner.digests(series, range, window, depth).await
    }
    async fn delete(&self, series: &SeriesKey, times: &[Nanos]) -> Result<u64, NodeError> {
        self.inner.delete(series, times).await
    }
    fn read(&self, series: &SeriesKey, range: TimeRange, batch_size: usize) -> BatchStream {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read(series, range, batch_size)
    }
    async fn write(&self, batch: Arc<Batch>) -> Result<(), NodeError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.attempts.lock().unwrap().push(Instant::now());
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let plan = self.plan.lock().unwrap().clone();
        let fail = match plan {
            Plan::Healthy => None,
            Plan::Calls(calls, kind) => calls.contains(&n).then_some(kind),
            Plan::Always(kind) => Some(kind),
        };
        match fail {
            Some(kind) => Err(NodeError::new(
                self.inner.name(),
                kind,
                format!("injected fault on write call {n}"),
            )),
            None => self.inner.write(batch).await,
        }
    }
}
