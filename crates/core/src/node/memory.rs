//! `MemoryNode`: the node contract kept in memory, by the reference computations of
//! [`super::digest`] — for the engine's tests (no files, no network) and for anyone who wants
//! to see the contract in a hundred lines. Writes merge field by field, reads never split a
//! timestamp, `replace` is atomic (one lock).

use super::digest::{Depth, Digests, Tip, digest_points, fingerprint};
use super::{BatchStream, ErrorKind, Node, NodeError, Probe, Role};
use crate::model::{Batch, Name, Nanos, Point, SeriesKey, Tags, TimeRange};
use crate::schema::Schema;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// A stored point's identity: measurement and tags (sorted), then time.
type Key = (Name, Tags, Nanos);

/// A time-series store in memory.
pub struct MemoryNode {
    name: String,
    schema: Schema,
    points: Mutex<BTreeMap<Key, Point>>,
}

impl MemoryNode {
    /// An empty store called `name`.
    pub fn new(name: &str, schema: Schema) -> MemoryNode {
        MemoryNode {
            name: name.to_string(),
            schema,
            points: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Key, Point>> {
        // A panic while holding the lock leaves whole points: still usable.
        self.points.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every point of `series` in `range`, oldest first (tag sets in order within a time).
    pub fn points(&self, series: &SeriesKey, range: TimeRange) -> Vec<Point> {
        let mut v: Vec<Point> = self
            .lock()
            .values()
            .filter(|p| p.time >= range.start && p.time <= range.end)
            .filter(|p| self.schema.series_of(p).as_ref() == Some(series))
            .cloned()
            .collect();
        v.sort_by(|a, b| (a.time, &a.tags).cmp(&(b.time, &b.tags)));
        v
    }

    fn key(p: &Point) -> Key {
        let mut tags = p.tags.to_vec();
        tags.sort();
        (p.measurement.clone(), tags.into(), p.time)
    }
}

#[async_trait::async_trait]
impl Node for MemoryNode {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        "memory".into()
    }

    async fn ping(&self) -> Result<(), NodeError> {
        Ok(())
    }

    async fn probe(&self, _role: Role) -> Result<Probe, NodeError> {
        Ok(Probe {
            server: "memory".into(),
            detail: "an in-memory store".into(),
            note: None,
        })
    }

    async fn list_series(&self) -> Result<Vec<SeriesKey>, NodeError> {
        let mut v: Vec<SeriesKey> = self
            .lock()
            .values()
            .filter_map(|p| self.schema.series_of(p))
            .collect();
        v.sort();
        v.dedup();
        Ok(v)
    }

    async fn newest(&self, series: &[SeriesKey]) -> Result<HashMap<SeriesKey, Nanos>, NodeError> {
        let mut out: HashMap<SeriesKey, Nanos> = HashMap::new();
        for p in self.lock().values() {
            if let Some(s) = self.schema.series_of(p).filter(|s| series.contains(s)) {
                let t = out.entry(s).or_insert(p.time);
                *t = (*t).max(p.time);
            }
        }
        Ok(out)
    }

    async fn tips(
        &self,
        series: &[SeriesKey],
        horizon: Nanos,
    ) -> Result<HashMap<SeriesKey, Tip>, NodeError> {
        let mut out: HashMap<SeriesKey, Tip> = HashMap::new();
        for p in self.lock().values() {
            let Some(s) = self.schema.series_of(p).filter(|s| series.contains(s)) else {
                continue;
            };
            let tip = out.entry(s).or_default();
            if p.time <= horizon {
                tip.add_newest(p.time, fingerprint(p));
            } else {
                tip.add_future(p.time);
            }
        }
        Ok(out)
    }

    async fn digests(
        &self,
        series: &[SeriesKey],
        range: TimeRange,
        window: Nanos,
        depth: Depth,
    ) -> Result<Digests, NodeError> {
        if window <= 0 {
            return Err(NodeError::new(
                &self.name,
                ErrorKind::InvalidData,
                "a digest window must be positive",
            ));
        }
        let mut out = Digests::new();
        for s in series {
            let points = self.points(s, range);
            if points.is_empty() {
                continue;
            }
            let key = &self.schema.key_field;
            digest_points(
                &points,
                window,
                depth,
                key,
                out.entry(s.clone()).or_default(),
            );
        }
        Ok(out)
    }

    async fn delete(&self, series: &SeriesKey, times: &[Nanos]) -> Result<u64, NodeError> {
        let schema = &self.schema;
        self.lock().retain(|_, p| {
            !(times.contains(&p.time) && schema.series_of(p).as_ref() == Some(series))
        });
        Ok(times.len() as u64)
    }

    fn read(&self, series: &SeriesKey, range: TimeRange, batch_size: usize) -> BatchStream {
        let points = self.points(series, range);
        let mut batches: Vec<Result<Batch, NodeError>> = Vec::new();
        let mut current: Vec<Point> = Vec::new();
        for p in points {
            // Never split one timestamp's points across two batches.
            let full = current.len() >= batch_size.max(1);
            if full && current.last().is_some_and(|l| l.time != p.time) {
                batches.push(Ok(Batch::new(std::mem::take(&mut current))));
            }
            current.push(p);
        }
        if !current.is_empty() {
            batches.push(Ok(Batch::new(current)));
        }
        Box::pin(futures::stream::iter(batches))
    }

    async fn write(&self, batch: Arc<Batch>) -> Result<(), NodeError> {
        let mut store = self.lock();
        for p in &batch.points {
            match store.get_mut(&Self::key(p)) {
                Some(old) => {
                    for (k, v) in &p.fields {
                        match old.fields.iter_mut().find(|(ok, _)| ok == k) {
                            Some(f) => f.1 = v.clone(),
                            None => old.fields.push((k.clone(), v.clone())),
                        }
                    }
                }
                None => {
                    store.insert(Self::key(p), p.clone());
                }
            }
        }
        Ok(())
    }

    async fn replace(
        &self,
        series: &SeriesKey,
        times: &[Nanos],
        points: Arc<Batch>,
    ) -> Result<(), NodeError> {
        let schema = &self.schema;
        let mut store = self.lock();
        store.retain(|_, p| {
            !(times.contains(&p.time) && schema.series_of(p).as_ref() == Some(series))
        });
        for p in &points.points {
            store.insert(Self::key(p), p.clone());
        }
        Ok(())
    }

    fn replace_is_atomic(&self) -> bool {
        true
    }
}
