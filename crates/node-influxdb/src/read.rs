//! Reading one series' window from an InfluxDB node, oldest first, without ever splitting the
//! points of one timestamp across two batches.
//!
//! A read first asks how many tag sets of the series have points in the window (one bounded
//! `SELECT … GROUP BY * LIMIT 1`, which every InfluxDB version documents; `SHOW SERIES` is
//! not in InfluxDB 3's InfluxQL).
//! - One tag set (the usual case): chunked `/query` responses, streamed chunk by chunk
//!   (`chunk_size` = batch size, at most [`CHUNKS_PER_REQUEST`] batches per request), so a
//!   window is never held in memory. A tag set has one point per timestamp, so any chunk
//!   boundary is safe; the next request starts just after the last point received.
//! - Several tag sets (extra tags): keyset pages,
//!   `SELECT * … WHERE <series tags> AND time >= cursor AND time <= end GROUP BY * ORDER BY time ASC LIMIT n`.
//!   With `GROUP BY *` the limit applies per tag set, so a page keeps the points up to the
//!   earliest last timestamp among the tag sets that came back full ([`merge_page`]), and the
//!   next page starts just after it.
//!
//! Tags stay tags. A field missing from the cached field types reloads them once.

use super::client::Chunks;
use super::parse::{self, FieldTypes, Interner, ParseError, Rows, SeriesData};
use super::{InfluxNode, Inner, influxql};
use dms_core::model::{Batch, Nanos, Point, SeriesKey, TimeRange};
use dms_core::node::{BatchStream, ErrorKind, NodeError};
use std::sync::Arc;

/// Batches a chunked request may cover before the next request continues it, so one request
/// never runs for long.
const CHUNKS_PER_REQUEST: usize = 20;

/// Streams the points of `series` in `range` from `node`, in batches of about `batch_size`.
pub(super) fn stream(
    node: &InfluxNode,
    series: &SeriesKey,
    range: TimeRange,
    batch_size: usize,
) -> BatchStream {
    let inner = &node.inner;
    // Past the times InfluxDB stores its time arithmetic overflows; a read of "everything"
    // (from `Nanos::MIN`) asks for what it stores.
    let range = TimeRange::new(
        range.start.max(influxql::MIN_TIME),
        range.end.min(influxql::MAX_TIME),
    );
    let state = ReadState {
        node: node.clone(),
        series: series.clone(),
        measurement: inner.schema.measurement(&series.interval),
        conditions: inner.conditions(series),
        cursor: (!range.is_empty()).then_some(range.start),
        end: range.end,
        limit: batch_size.max(1),
        names: Interner::default(),
        mode: ReadMode::Unknown,
        open: None,
    };
    Box::pin(futures::stream::try_unfold(state, |mut st| async move {
        Ok(st.next_batch().await?.map(|batch| (batch, st)))
    }))
}

/// Where a read stands.
struct ReadState {
    node: InfluxNode,
    series: SeriesKey,
    measurement: String,
    conditions: Vec<String>,
    /// Where the next request starts; `None` when the window is done.
    cursor: Option<Nanos>,
    end: Nanos,
    limit: usize,
    names: Interner,
    mode: ReadMode,
    /// The chunked response being streamed, if any.
    open: Option<Chunked>,
}

/// How a read fetches its points.
#[derive(Clone, Copy)]
enum ReadMode {
    /// Not decided yet: one look-up of the tag sets in the window tells.
    Unknown,
    /// Several tag sets share the series: keyset pages keep them in time order.
    Paged,
    /// One tag set: chunked responses, streamed.
    Chunked,
}

/// An open chunked `/query` response.
struct Chunked {
    chunks: Chunks,
    /// Points received in this request.
    got: usize,
    /// Points asked for (`LIMIT`).
    cap: usize,
    types: Arc<FieldTypes>,
}

impl ReadState {
    /// The next batch, or `None` when the window is done.
    async fn next_batch(&mut self) -> Result<Option<Batch>, NodeError> {
        while let Some(cursor) = self.cursor {
            let points = match self.mode {
                ReadMode::Unknown => {
                    let sets = self
                        .node
                        .inner
                        .tag_sets(&self.measurement, &self.series, (cursor, self.end))
                        .await?;
                    self.mode = if sets <= 1 {
                        ReadMode::Chunked
                    } else {
                        ReadMode::Paged
                    };
                    continue;
                }
                ReadMode::Paged => self.next_page(cursor).await?,
                ReadMode::Chunked => self.next_chunk(cursor).await?,
            };
            if !points.is_empty() {
                return Ok(Some(Batch::new(points)));
            }
        }
        Ok(None)
    }

    /// The points of the next keyset page (possibly none), moving the cursor past them.
    async fn next_page(&mut self, cursor: Nanos) -> Result<Vec<Point>, NodeError> {
        let (points, next) = self
            .node
            .inner
            .read_page(
                &self.measurement,
                &self.conditions,
                cursor,
                self.end,
                self.limit,
                &mut self.names,
            )
            .await?;
        self.cursor = next;
        Ok(points)
    }

    /// The points of the next chunk (possibly none), opening a request from `cursor` when
    /// none is open and moving the cursor past them.
    async fn next_chunk(&mut self, cursor: Nanos) -> Result<Vec<Point>, NodeError> {
        let inner = &self.node.inner;
        let c = match &mut self.open {
            Some(c) => c,
            None => self.open.insert(
                inner
                    .open_chunked(
                        &self.measurement,
                        &self.conditions,
                        cursor,
                        self.end,
                        self.limit,
                    )
                    .await?,
            ),
        };
        match inner
            .next_chunk(c, &self.measurement, &mut self.names)
            .await?
        {
            Some(points) => {
                if let Some(last) = points.last().map(|p| p.time) {
                    self.cursor = last.checked_add(1).filter(|n| *n <= self.end);
                }
                Ok(points)
            }
            None => {
                // This request is done: go on only if it stopped at its limit.
                if c.got < c.cap {
                    self.cursor = None;
                }
                self.open = None;
                Ok(Vec::new())
            }
        }
    }
}

/// Series one multi-series read names (its `WHERE` lists each one's tags).
pub(super) const SERIES_PER_QUERY: usize = 500;

/// [`dms_core::node::Node::read_many`] on InfluxDB: the windows grouped by measurement and
/// start, each group read with one query per [`SERIES_PER_QUERY`] series — up to the group's
/// latest end, `LIMIT limit + 1` per tag set — and the answer split back per series (points
/// past a window's own end dropped; a tag set over the limit, or cut short by the server,
/// makes its window `None`).
pub(super) async fn read_many(
    inner: &Inner,
    windows: &[(SeriesKey, TimeRange)],
    limit: usize,
) -> Result<Vec<Option<Vec<Point>>>, NodeError> {
    use std::collections::{BTreeMap, HashMap};
    let clamp = |r: &TimeRange| {
        TimeRange::new(
            r.start.max(influxql::MIN_TIME),
            r.end.min(influxql::MAX_TIME),
        )
    };
    let mut out: Vec<Option<Vec<Point>>> = vec![Some(Vec::new()); windows.len()];
    let mut groups: BTreeMap<(String, Nanos), Vec<usize>> = BTreeMap::new();
    for (i, (series, range)) in windows.iter().enumerate() {
        let r = clamp(range);
        if r.is_empty() {
            continue;
        }
        groups
            .entry((inner.schema.measurement(&series.interval), r.start))
            .or_default()
            .push(i);
    }
    let mut names = Interner::default();
    for ((measurement, start), members) in groups {
        // Many series from one start: one query for all of them, filtered by interval only
        // (InfluxDB evaluates a long OR of tag conditions slowly — about a second per 500);
        // the answer's other series are dropped here. Fewer: their tags, a query per chunk.
        let whole = members.len() > SERIES_PER_QUERY;
        let chunk_len = if whole {
            members.len()
        } else {
            SERIES_PER_QUERY
        };
        for chunk in members.chunks(chunk_len) {
            let end = chunk
                .iter()
                .map(|&i| clamp(&windows[i].1).end)
                .max()
                .unwrap_or(start);
            // A series may come twice (two windows from the same start).
            let mut by_key: HashMap<&SeriesKey, Vec<usize>> = HashMap::new();
            for &i in chunk {
                by_key.entry(&windows[i].0).or_default().push(i);
            }
            let filter = if whole {
                match &inner.schema.interval_tag {
                    Some(tag) => {
                        let intervals: std::collections::BTreeSet<&str> = chunk
                            .iter()
                            .map(|&i| windows[i].0.interval.as_str())
                            .collect();
                        let sets: Vec<Vec<String>> = intervals
                            .into_iter()
                            .map(|v| vec![influxql::tag_equals(tag, v)])
                            .collect();
                        Some(format!("({})", influxql::any_of(&sets)))
                    }
                    // The measurement is the interval's own.
                    None => None,
                }
            } else {
                let sets: Vec<Vec<String>> = chunk
                    .iter()
                    .map(|&i| inner.conditions(&windows[i].0))
                    .collect();
                Some(format!("({})", influxql::any_of(&sets)))
            };
            let filter: Vec<String> = filter.into_iter().collect();
            let q =
                influxql::select_page(&measurement, &filter, start, end, limit.saturating_add(1));
            let what = format!(
                "reading {} series of {measurement:?} from {start}",
                chunk.len()
            );
            let mut types = inner.field_types(&measurement, false).await?;
            let body = inner.query(&q, &what).await?;
            let mut refreshed = false;
            let parsed = loop {
                match parse::parse_query(&body, Rows::Points(&types), &mut names) {
                    Err(ParseError::UnknownField(_)) if !refreshed => {
                        types = inner.field_types(&measurement, true).await?;
                        refreshed = true;
                    }
                    Err(ParseError::UnknownField(f)) => {
                        return Err(inner.err(
                            ErrorKind::InvalidData,
                            format!(
                                "{what}: field {f:?} has a type dms cannot copy (see SHOW FIELD KEYS FROM {})",
                                influxql::quote_ident(&measurement)
                            ),
                        ));
                    }
                    other => break other,
                }
            };
            for st in inner.statements(parsed, &what)? {
                if !inner.found(&st, &what)? {
                    continue;
                }
                if st.partial {
                    // The server cut the answer short: a series it left out is not empty.
                    for &i in chunk {
                        out[i] = None;
                    }
                    continue;
                }
                for s in st.series {
                    let Some(key) = inner.schema.series_of_parts(&s.measurement, |k| s.tag(k))
                    else {
                        continue;
                    };
                    let Some(at) = by_key.get(&key) else { continue };
                    for &i in at {
                        let own = clamp(&windows[i].1);
                        if s.rows > limit || s.partial {
                            out[i] = None;
                            continue;
                        }
                        if let Some(points) = &mut out[i] {
                            points.extend(
                                s.points
                                    .iter()
                                    .filter(|p| p.time >= own.start && p.time <= own.end)
                                    .cloned(),
                            );
                        }
                    }
                }
            }
        }
    }
    for points in out.iter_mut().flatten() {
        // Stable: the points of one timestamp keep the server's tag-set order.
        points.sort_by_key(|p| p.time);
    }
    Ok(out)
}

impl Inner {
    /// The tag conditions that select `series`.
    pub(super) fn conditions(&self, series: &SeriesKey) -> Vec<String> {
        let mut c = vec![influxql::tag_equals(
            &self.schema.symbol_tag,
            &series.symbol,
        )];
        if let Some(t) = &self.schema.interval_tag {
            c.push(influxql::tag_equals(t, &series.interval));
        }
        c
    }

    /// How many tag sets of `series` hold points from `start` to `end` (one request); 0 when
    /// none does.
    async fn tag_sets(
        &self,
        measurement: &str,
        series: &SeriesKey,
        (start, end): (Nanos, Nanos),
    ) -> Result<usize, NodeError> {
        let filter = self.conditions(series).join(" AND ");
        let q = influxql::select_tag_sets(measurement, Some(&filter), start, end);
        let what = format!("listing the tag sets of {series}");
        let body = self.query(&q, &what).await?;
        let results = self.statements(
            parse::parse_query(&body, Rows::Table, &mut Interner::default()),
            &what,
        )?;
        let mut n = 0;
        for st in &results {
            if self.found(st, &what)? {
                n += st.series.len();
            }
        }
        Ok(n)
    }

    /// Starts a chunked read of one tag set from `start` to `end`, at most
    /// [`CHUNKS_PER_REQUEST`] batches long.
    async fn open_chunked(
        &self,
        measurement: &str,
        conditions: &[String],
        start: Nanos,
        end: Nanos,
        batch: usize,
    ) -> Result<Chunked, NodeError> {
        let what = format!("reading {measurement:?} from {start}");
        let cap = batch.saturating_mul(CHUNKS_PER_REQUEST);
        let q = influxql::select_page(measurement, conditions, start, end, cap);
        let types = self.field_types(measurement, false).await?;
        let chunks = self.open_chunks(&q, batch, &what).await?;
        Ok(Chunked {
            chunks,
            got: 0,
            cap,
            types,
        })
    }

    /// The points of the next chunk of a chunked read, or `None` at the end of the response.
    async fn next_chunk(
        &self,
        c: &mut Chunked,
        measurement: &str,
        names: &mut Interner,
    ) -> Result<Option<Vec<Point>>, NodeError> {
        let what = format!("reading {measurement:?}");
        match c.chunks.next(self, &what).await? {
            Some(line) => self
                .chunk_points(c, &line, measurement, names)
                .await
                .map(Some),
            None => Ok(None),
        }
    }

    /// Parses one chunk (a JSON line) into points.
    async fn chunk_points(
        &self,
        c: &mut Chunked,
        line: &[u8],
        measurement: &str,
        names: &mut Interner,
    ) -> Result<Vec<Point>, NodeError> {
        let what = format!("reading {measurement:?}");
        let mut refreshed = false;
        let parsed = loop {
            match parse::parse_query(line, Rows::Points(&c.types), names) {
                Err(ParseError::UnknownField(_)) if !refreshed => {
                    c.types = self.field_types(measurement, true).await?;
                    refreshed = true;
                }
                other => break other,
            }
        };
        let results = self.statements(parsed, &what)?;
        let mut points = Vec::new();
        for st in results {
            if self.found(&st, &what)? {
                for s in st.series {
                    c.got += s.rows;
                    points.extend(s.points);
                }
            }
        }
        Ok(points)
    }

    /// Reads one page from `start` to `end` (inclusive): the points and the cursor to go on
    /// from (`None` when the window is done). Never splits one timestamp's points.
    async fn read_page(
        &self,
        measurement: &str,
        conditions: &[String],
        start: Nanos,
        end: Nanos,
        limit: usize,
        names: &mut Interner,
    ) -> Result<(Vec<Point>, Option<Nanos>), NodeError> {
        let what = format!("reading {measurement:?} from {start}");
        let q = influxql::select_page(measurement, conditions, start, end, limit);
        let mut types = self.field_types(measurement, false).await?;
        let body = self.query(&q, &what).await?;
        let mut refreshed = false;
        let parsed = loop {
            match parse::parse_query(&body, Rows::Points(&types), names) {
                Err(ParseError::UnknownField(f)) if !refreshed => {
                    tracing::debug!(node = %self.name, measurement, field = %f, "new field; reloading field types");
                    types = self.field_types(measurement, true).await?;
                    refreshed = true;
                }
                Err(ParseError::UnknownField(f)) => {
                    return Err(self.err(
                        ErrorKind::InvalidData,
                        format!(
                            "{what}: field {f:?} has a type dms cannot copy (see SHOW FIELD KEYS FROM {})",
                            influxql::quote_ident(measurement)
                        ),
                    ));
                }
                other => break other,
            }
        };
        let results = self.statements(parsed, &what)?;
        let mut sets: Vec<SeriesData> = Vec::new();
        for st in results {
            if self.found(&st, &what)? {
                let cut = st.partial;
                sets.extend(st.series.into_iter().map(|mut s| {
                    s.partial |= cut;
                    s
                }));
            }
        }
        Ok(merge_page(sets, limit, end))
    }
}

/// Merges the tag sets of one page into time order. `limit` applied per tag set: a tag set
/// that came back full (or cut short by the server, `partial`) may have more points after its
/// last one, so the page keeps only what lies at or before the earliest such last timestamp
/// (the horizon) and continues after it.
fn merge_page(sets: Vec<SeriesData>, limit: usize, end: Nanos) -> (Vec<Point>, Option<Nanos>) {
    let horizon = sets
        .iter()
        .filter(|s| s.rows >= limit || s.partial)
        .filter_map(|s| s.last_time)
        .min();
    let mut points: Vec<Point> = Vec::with_capacity(sets.iter().map(|s| s.points.len()).sum());
    for s in sets {
        match horizon {
            None => points.extend(s.points),
            Some(h) => points.extend(s.points.into_iter().filter(|p| p.time <= h)),
        }
    }
    // Stable: points of one timestamp keep the server's tag-set order.
    points.sort_by_key(|p| p.time);
    let next = horizon.and_then(|h| h.checked_add(1)).filter(|n| *n <= end);
    (points, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dms_core::model::{FieldValue, Name};

    fn set(time_tag: &str, times: &[Nanos]) -> SeriesData {
        let m: Name = Arc::from("kline");
        let tags: Vec<(Name, Name)> = vec![(Arc::from("venue"), Arc::from(time_tag))];
        SeriesData {
            measurement: m.clone(),
            tags: tags.clone().into(),
            rows: times.len(),
            last_time: times.last().copied(),
            max_time: times.iter().copied().max(),
            points: times
                .iter()
                .map(|&t| Point {
                    measurement: m.clone(),
                    tags: tags.clone().into(),
                    fields: vec![(Arc::from("v"), FieldValue::Integer(t))],
                    time: t,
                })
                .collect(),
            ..SeriesData::default()
        }
    }

    #[test]
    fn a_page_stops_at_the_earliest_full_tag_set() {
        // Limit 3: tag set a is full up to 30, b is full up to 50, c is short (done).
        let (points, next) = merge_page(
            vec![
                set("a", &[10, 20, 30]),
                set("b", &[20, 40, 50]),
                set("c", &[30]),
            ],
            3,
            100,
        );
        let times: Vec<Nanos> = points.iter().map(|p| p.time).collect();
        assert_eq!(times, [10, 20, 20, 30, 30]);
        assert_eq!(next, Some(31));
        // A tag set the server cut short counts as full.
        let mut cut = set("a", &[1, 2]);
        cut.partial = true;
        let (points, next) = merge_page(vec![cut, set("b", &[3])], 3, 100);
        assert_eq!((points.len(), next), (2, Some(3)));
        // Nothing full: the window is done.
        let (points, next) = merge_page(vec![set("a", &[1, 2]), set("b", &[2])], 3, 100);
        assert_eq!(points.len(), 3);
        assert_eq!(next, None);
        // A full page ending at the window's end is done too.
        let (_, next) = merge_page(vec![set("a", &[1, 2, 100])], 3, 100);
        assert_eq!(next, None);
    }
}
