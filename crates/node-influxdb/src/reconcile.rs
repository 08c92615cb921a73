//! Reconciliation on an InfluxDB node: tips, digests and deletes, computed by the server
//! (InfluxQL selectors and aggregates) in few requests, never one per series.
//!
//! - Tips: one request, two statements per measurement: the newest point of every tag set
//!   at or before the horizon (typed points, fingerprinted here) and after it (times only).
//! - Digests: `count("close")` (cheap), or `sum` of every numeric field with `count` of the
//!   others (full), grouped by window and the series' tags. Up to [`MAX_NAMED_SERIES`] wanted series of a measurement are named in
//!   the `WHERE`; more read the whole measurement and keep the wanted ones. The range is cut
//!   into slices of whole windows so that one answer holds at most [`MAX_DIGEST_ROWS`] rows
//!   (series × windows). Named series over a range of at most [`UNPLANNED_SLICES`] slices are
//!   digested at once; otherwise one planning request first finds each measurement's first
//!   and last point in the range (and the tag sets that can answer), so a long or unbounded
//!   range costs no empty slices. Column types
//!   come from the field-type cache (`count_<f>` integer, `sum_<f>` the field's type), so an
//!   integer sum stays an integer and a float sum is read exactly from its text.
//! - Tips and digests read chunked answers, one chunk at a time: InfluxDB 1.x cuts a plain
//!   answer at its `max-row-limit`, and when the cut falls between two series it drops the
//!   rest without marking the answer `partial`; chunked answers are never cut.
//! - Deletes: `DELETE … WHERE <series tags> AND time >= t AND time <= t`, one statement per
//!   timestamp, at most [`DELETES_PER_REQUEST`] per request. InfluxDB 1.x deletes from every
//!   retention policy of the database, so a delete first makes sure that no other retention
//!   policy holds points of the series in that time span, and refuses otherwise.

use super::parse::{self, FieldType, FieldTypes, Interner, ParseError, Rows, Statement};
use super::{Inner, influxql};
use dms_core::model::{FieldValue, Nanos, Point, SeriesKey, TimeRange};
use dms_core::node::digest::{
    Depth, Digest, Digests, FieldKind, Sum, Tip, fingerprint, window_start,
};
use dms_core::node::{ErrorKind, NodeError};
use influxql::{Aggregate, MAX_TIME, MIN_TIME};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Rows (series × windows) one digest answer may hold.
const MAX_DIGEST_ROWS: u64 = 100_000;
/// Wanted series of one measurement named in a digest's `WHERE`; more read it whole. As many
/// as the engine asks for at once, so its digests never read series nobody asked for.
const MAX_NAMED_SERIES: usize = 64;
/// Slices a range with named series is cut into without first asking the server where its
/// points lie: a slice of time without points costs the server next to nothing, while the
/// planning statements (the first and last point of the range) cost a fifth of the digests
/// themselves over a long range.
const UNPLANNED_SLICES: u128 = 8;
/// `DELETE` statements sent in one request.
const DELETES_PER_REQUEST: usize = 500;
/// Rows per chunk of a digest's answer: the most of it held in memory at once.
const DIGEST_CHUNK_ROWS: usize = 10_000;
/// Rows per chunk of a tips answer.
const TIP_CHUNK_ROWS: usize = 10_000;

/// One measurement's part of a digest request.
struct Scope {
    measurement: String,
    wanted: BTreeSet<SeriesKey>,
    /// The condition naming the wanted series, when they are few.
    filter: Option<String>,
    /// The first and last time with points in the range, if any.
    extent: Option<(Nanos, Nanos)>,
    /// At most this many series answer per window.
    groups: u64,
}

impl Inner {
    /// The tips of `series` (see [`dms_core::node::Node::tips`]), in one request.
    pub(super) async fn tips(
        &self,
        series: &[SeriesKey],
        horizon: Nanos,
    ) -> Result<HashMap<SeriesKey, Tip>, NodeError> {
        let wanted: HashSet<&SeriesKey> = series.iter().collect();
        let measurements: Vec<String> = series
            .iter()
            .map(|s| self.schema.measurement(&s.interval))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.tips_in(&measurements, Some(&wanted), horizon).await
    }

    /// The tips of every series of `measurements` (or only the `wanted` ones), in one
    /// request.
    pub(super) async fn tips_in(
        &self,
        measurements: &[String],
        wanted: Option<&HashSet<&SeriesKey>>,
        horizon: Nanos,
    ) -> Result<HashMap<SeriesKey, Tip>, NodeError> {
        let statements = tip_statements(measurements, horizon);
        if statements.is_empty() {
            return Ok(HashMap::new());
        }
        let what = "looking up the tips of series";
        let q: Vec<&str> = statements.iter().map(|(q, _)| q.as_str()).collect();
        let q = q.join("; ");
        // Chunked, so that the server's max-row-limit cannot drop tag sets (InfluxDB 1.x does
        // that without saying so when the limit falls between two of them). Values are read
        // by their JSON alone (fingerprints see values, not types): no field-type look-up, so
        // a check costs one request per node.
        let mut out: HashMap<SeriesKey, Tip> = HashMap::new();
        let mut outside = Vec::new();
        let mut chunks = self.open_chunks(&q, TIP_CHUNK_ROWS, what).await?;
        let mut names = Interner::default();
        while let Some(chunk) = chunks.next(self, what).await? {
            let parsed = parse::parse_query(&chunk, Rows::Inferred, &mut names);
            for st in self.statements(parsed, what)? {
                if st.error.is_some() {
                    drop(chunks);
                    // An error, or no database: no series has a tip.
                    self.found_among(&st, what).await?;
                    return Ok(HashMap::new());
                }
                let future = st.id.and_then(|i| statements.get(i)).map(|(_, f)| *f);
                let Some(future) = future else {
                    return Err(self.err(
                        ErrorKind::BadResponse,
                        format!("{what}: a result for no statement ({:?})", st.id),
                    ));
                };
                self.fold_tips(st, future, wanted, &mut out, &mut outside);
            }
        }
        if wanted.is_none() {
            outside.sort();
            outside.dedup();
            *self
                .outside_schema
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = outside;
        }
        Ok(out)
    }

    /// Adds one statement's newest points (or, `future`, newest times) to the tips.
    fn fold_tips(
        &self,
        st: Statement,
        future: bool,
        wanted: Option<&HashSet<&SeriesKey>>,
        out: &mut HashMap<SeriesKey, Tip>,
        outside: &mut Vec<String>,
    ) {
        for s in st.series {
            let Some(key) = self.schema.series_of_parts(&s.measurement, |k| s.tag(k)) else {
                if self.schema.matches_measurement(&s.measurement) {
                    outside.push(self.describe_tag_set(&s));
                }
                continue;
            };
            if wanted.is_some_and(|w| !w.contains(&key)) {
                continue;
            }
            if future {
                if let Some(t) = s.max_time {
                    out.entry(key).or_default().add_future(t);
                }
            } else if let Some(p) = s.points.first() {
                out.entry(key)
                    .or_default()
                    .add_newest(p.time, fingerprint(p));
            }
        }
    }

    /// `kline,interval=1d (no symbol tag)`: a tag set outside the schema, for people.
    fn describe_tag_set(&self, s: &parse::SeriesData) -> String {
        let mut text = s.measurement.to_string();
        for (k, v) in s.tags.iter().filter(|(_, v)| !v.is_empty()) {
            text.push_str(&format!(",{k}={v}"));
        }
        let mut missing = Vec::new();
        if s.tag(&self.schema.symbol_tag).is_none_or(str::is_empty) {
            missing.push(self.schema.symbol_tag.as_str());
        }
        if let Some(t) = &self.schema.interval_tag
            && s.tag(t).is_none_or(str::is_empty)
        {
            missing.push(t.as_str());
        }
        format!("{text} (no {} tag)", missing.join(" or "))
    }

    fn unknown_field(&self, what: &str, field: &str) -> NodeError {
        self.err(
            ErrorKind::InvalidData,
            format!("{what}: field {field:?} has a type dms cannot read (see SHOW FIELD KEYS)"),
        )
    }

    /// Digests of `series` (see [`dms_core::node::Node::digests`]).
    pub(super) async fn digests(
        &self,
        series: &[SeriesKey],
        range: TimeRange,
        window: Nanos,
        depth: Depth,
    ) -> Result<Digests, NodeError> {
        if window <= 0 {
            return Err(self.err(
                ErrorKind::InvalidData,
                format!("a digest window must be positive, not {window} ns"),
            ));
        }
        let range = TimeRange::new(range.start.max(MIN_TIME), range.end.min(MAX_TIME));
        let mut out = Digests::new();
        if range.is_empty() || series.is_empty() {
            return Ok(out);
        }
        let started = std::time::Instant::now();
        let mut scopes = self.digest_scopes(series);
        // The statements name the fields: learn them afresh (a cache filled while the node
        // was empty, or before a field was added, would leave them out).
        let measurements: Vec<String> = scopes.iter().map(|s| s.measurement.clone()).collect();
        self.field_types_of(&measurements, true).await?;
        self.plan_digests(&mut scopes, range, window).await?;
        for scope in &scopes {
            let Some((first, last)) = scope.extent else {
                continue;
            };
            let per_slice = (MAX_DIGEST_ROWS / scope.groups.max(1)).max(1);
            tracing::debug!(
                node = %self.name,
                measurement = %scope.measurement,
                first,
                last,
                series = scope.groups,
                windows_per_slice = per_slice,
                "digesting"
            );
            let mut from = first;
            loop {
                let to = slice_end(from, window, per_slice).min(last);
                self.digest_slice(scope, (from, to), window, depth, &mut out)
                    .await?;
                match to.checked_add(1) {
                    Some(next) if next <= last => from = next,
                    _ => break,
                }
            }
        }
        tracing::debug!(
            node = %self.name,
            series = series.len(),
            ms = started.elapsed().as_millis() as u64,
            "digests computed"
        );
        Ok(out)
    }

    /// The wanted series grouped by measurement, named in a filter when they are few.
    fn digest_scopes(&self, series: &[SeriesKey]) -> Vec<Scope> {
        let mut by_measurement: BTreeMap<String, BTreeSet<SeriesKey>> = BTreeMap::new();
        for s in series {
            by_measurement
                .entry(self.schema.measurement(&s.interval))
                .or_default()
                .insert(s.clone());
        }
        by_measurement
            .into_iter()
            .map(|(measurement, wanted)| {
                let filter = (wanted.len() <= MAX_NAMED_SERIES).then(|| {
                    let sets: Vec<Vec<String>> =
                        wanted.iter().map(|s| self.conditions(s)).collect();
                    influxql::any_of(&sets)
                });
                Scope {
                    measurement,
                    wanted,
                    filter,
                    extent: None,
                    groups: 0,
                }
            })
            .collect()
    }

    /// Fills in each scope's extent and series bound, in one request.
    async fn plan_digests(
        &self,
        scopes: &mut [Scope],
        range: TimeRange,
        window: Nanos,
    ) -> Result<(), NodeError> {
        // Named series over a range of few slices: the range itself is the extent.
        for s in scopes.iter_mut() {
            if s.filter.is_some() {
                s.groups = s.wanted.len() as u64;
                let per_slice = (MAX_DIGEST_ROWS / s.groups.max(1)).max(1);
                if slices_in(range, window, per_slice) <= UNPLANNED_SLICES {
                    s.extent = Some((range.start, range.end));
                }
            }
        }
        let mut q = Vec::new();
        for s in scopes.iter().filter(|s| s.extent.is_none()) {
            let (m, filter) = (&s.measurement, s.filter.as_deref());
            let edge = |first| influxql::select_edge(m, filter, range.start, range.end, first);
            q.push(edge(true));
            q.push(edge(false));
            if filter.is_none() {
                q.push(influxql::select_tag_sets(m, None, range.start, range.end));
            }
        }
        if q.is_empty() {
            return Ok(());
        }
        let what = "planning digests";
        let body = self.query(&q.join("; "), what).await?;
        let results = self.statements(
            parse::parse_query(&body, Rows::Table, &mut Interner::default()),
            what,
        )?;
        for st in &results {
            if !self.found_among(st, what).await? {
                // No database: no extents, nothing to digest.
                return Ok(());
            }
        }
        let mut results = results.into_iter();
        let mut next = || {
            results.next().ok_or_else(|| {
                self.err(
                    ErrorKind::BadResponse,
                    format!("{what}: fewer results than statements"),
                )
            })
        };
        for s in scopes.iter_mut().filter(|s| s.extent.is_none()) {
            let first = self.edge_time(&next()?, what)?;
            let last = self.edge_time(&next()?, what)?;
            s.extent = first.zip(last);
            s.groups = match s.filter {
                Some(_) => s.wanted.len() as u64,
                None => next()?.series.len() as u64,
            };
        }
        Ok(())
    }

    /// The time of the one row a `select_edge` statement returns, if any.
    fn edge_time(&self, st: &Statement, what: &str) -> Result<Option<Nanos>, NodeError> {
        let cell = st
            .series
            .first()
            .and_then(|s| s.table.first())
            .and_then(|row| row.first());
        let Some(text) = cell else {
            return Ok(None);
        };
        match text.as_deref().map(str::parse::<Nanos>) {
            Some(Ok(t)) => Ok(Some(t)),
            _ => Err(self.err(
                ErrorKind::BadResponse,
                format!("{what}: {text:?} is not a time in nanoseconds"),
            )),
        }
    }

    /// Digests one slice of whole windows into `out`, from a chunked answer (so that the
    /// server's max-row-limit cannot cut it short).
    async fn digest_slice(
        &self,
        scope: &Scope,
        (start, end): (Nanos, Nanos),
        window: Nanos,
        depth: Depth,
        out: &mut Digests,
    ) -> Result<(), NodeError> {
        let m = &scope.measurement;
        let what = format!("digesting {m:?} from {start} to {end}");
        let mut types = self.field_types(m, false).await?;
        let mut refreshed = false;
        'query: loop {
            let key_field = self.schema.key_field.as_str();
            let columns = digest_columns(&types, depth, key_field);
            if columns.is_empty() {
                // Nothing this depth looks at (no `close` for a cheap digest).
                return Ok(());
            }
            let q = influxql::select_digests(
                m,
                scope.filter.as_deref(),
                (start, end),
                window,
                &columns,
            );
            let columns = aggregate_types(&types, depth, key_field);
            let mut slice = Digests::new();
            let mut chunks = self.open_chunks(&q, DIGEST_CHUNK_ROWS, &what).await?;
            let mut names = Interner::default();
            while let Some(chunk) = chunks.next(self, &what).await? {
                let results = match parse::parse_query(&chunk, Rows::Points(&columns), &mut names) {
                    // A new field: its count (and sum) need its type, and a cheap digest's
                    // statement may change: reload the types and ask again.
                    Err(ParseError::UnknownField(_)) if !refreshed => {
                        drop(chunks);
                        types = self.field_types(m, true).await?;
                        refreshed = true;
                        continue 'query;
                    }
                    Err(ParseError::UnknownField(f)) => {
                        return Err(self.unknown_field(&what, &f));
                    }
                    other => self.statements(other, &what)?,
                };
                for st in results {
                    if !self.found(&st, &what)? {
                        return Ok(());
                    }
                    self.fold_digests(st, scope, window, &types, &mut slice);
                }
            }
            // Slices hold whole windows, so no window of one slice is in another.
            for (key, windows) in slice {
                out.entry(key).or_default().extend(windows);
            }
            return Ok(());
        }
    }

    /// Adds one statement's aggregate rows of the wanted series to `out`.
    fn fold_digests(
        &self,
        st: Statement,
        scope: &Scope,
        window: Nanos,
        types: &FieldTypes,
        out: &mut Digests,
    ) {
        for s in st.series {
            let Some(key) = self.schema.series_of_parts(&s.measurement, |k| s.tag(k)) else {
                continue;
            };
            if s.points.is_empty() || !scope.wanted.contains(&key) {
                continue;
            }
            let windows = out.entry(key).or_default();
            for row in &s.points {
                let digest = windows.entry(window_start(row.time, window)).or_default();
                fold_row(digest, row, types);
            }
        }
    }

    /// Deletes the points of every tag set of `series` at `times` (see
    /// [`dms_core::node::Node::delete`]).
    pub(super) async fn delete(
        &self,
        series: &SeriesKey,
        times: &[Nanos],
    ) -> Result<(), NodeError> {
        // Nothing is stored outside InfluxDB's time range.
        let mut times: Vec<Nanos> = times
            .iter()
            .copied()
            .filter(|t| (MIN_TIME..=MAX_TIME).contains(t))
            .collect();
        times.sort_unstable();
        times.dedup();
        let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
            return Ok(());
        };
        let measurement = self.schema.measurement(&series.interval);
        let conditions = self.conditions(series);
        let what = format!("deleting {} timestamps of {series}", times.len());
        if !self
            .only_policy_holding(&measurement, &conditions, (first, last), &what)
            .await?
        {
            return Ok(());
        }
        for chunk in times.chunks(DELETES_PER_REQUEST) {
            let q: Vec<String> = chunk
                .iter()
                .map(|t| influxql::delete_at(&measurement, &conditions, *t))
                .collect();
            if !self.execute(&q.join("; "), &what).await? {
                break;
            }
        }
        Ok(())
    }

    /// Whether a delete of the series matching `conditions` from `first` to `last` touches
    /// only the retention policy this node writes to: an error when another one holds
    /// points there (InfluxDB 1.x deletes from all of them), `Ok(false)` when the database
    /// does not exist.
    async fn only_policy_holding(
        &self,
        measurement: &str,
        conditions: &[String],
        (first, last): (Nanos, Nanos),
        what: &str,
    ) -> Result<bool, NodeError> {
        let body = self
            .query(&influxql::show_retention_policies(&self.database), what)
            .await?;
        let results = self.statements(
            parse::parse_query(&body, Rows::Table, &mut Interner::default()),
            what,
        )?;
        let Some(st) = results.first() else {
            return Err(self.err(ErrorKind::BadResponse, format!("{what}: no result")));
        };
        if !self.found(st, what)? {
            return Ok(false);
        }
        let (policies, default) = policies(st);
        let ours = self.retention_policy.clone().or(default);
        let others: Vec<&String> = policies
            .iter()
            .filter(|p| Some(*p) != ours.as_ref())
            .collect();
        if others.is_empty() {
            return Ok(true);
        }
        let q: Vec<String> = others
            .iter()
            .map(|p| influxql::select_any_in_policy(p, measurement, conditions, first, last))
            .collect();
        let body = self.query(&q.join("; "), what).await?;
        let results = self.statements(
            parse::parse_query(&body, Rows::Table, &mut Interner::default()),
            what,
        )?;
        for (policy, st) in others.iter().zip(&results) {
            if self.found_among(st, what).await? && st.series.iter().any(|s| !s.table.is_empty()) {
                return Err(self.err(
                    ErrorKind::Rejected,
                    format!(
                        "{what}: retention policy {policy:?} of database {:?} also holds \
                         these points, and InfluxDB deletes from every retention policy; \
                         nothing was deleted",
                        self.database
                    ),
                ));
            }
        }
        Ok(true)
    }
}

/// The statements of a tips request, each with whether it looks past the horizon: per
/// measurement, the newest points at or before it and the newest after it. Times past
/// InfluxDB's range overflow on the server (and nothing is stored there), so they are left
/// out.
fn tip_statements(measurements: &[String], horizon: Nanos) -> Vec<(String, bool)> {
    let mut statements = Vec::new();
    for m in measurements {
        if horizon >= MIN_TIME {
            let until = influxql::select_newest_until(m, horizon.min(MAX_TIME));
            statements.push((until, false));
        }
        if horizon < MAX_TIME {
            let after = influxql::select_newest_after(m, horizon.max(MIN_TIME - 1));
            statements.push((after, true));
        }
    }
    statements
}

/// The retention policies a `SHOW RETENTION POLICIES` statement lists, and the default one.
fn policies(st: &Statement) -> (Vec<String>, Option<String>) {
    let mut names = Vec::new();
    let mut default = None;
    for s in &st.series {
        let col = |name: &str| s.columns.iter().position(|c| c == name);
        let Some(n) = col("name") else {
            continue;
        };
        let d = col("default");
        for row in &s.table {
            let Some(Some(name)) = row.get(n) else {
                continue;
            };
            if d.and_then(|d| row.get(d)) == Some(&Some("true".to_string())) {
                default = Some(name.clone());
            }
            names.push(name.clone());
        }
    }
    (names, default)
}

/// The aggregates a digest of `depth` asks for, per the field types (see [`Depth`]): for a
/// cheap digest the count of the key field, for a full one the sum of every numeric field and
/// the count of every other one. Sorted, so the statement is the same for the same fields.
fn digest_columns<'a>(types: &'a FieldTypes, depth: Depth, key_field: &str) -> Vec<Aggregate<'a>> {
    let mut fields: Vec<(&String, &FieldType)> = types.iter().collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::new();
    for (field, ty) in fields {
        let numeric = matches!(ty, FieldType::Float | FieldType::Integer);
        if depth.counts(field, numeric, key_field) {
            out.push(Aggregate::Count(field.as_str()));
        }
        if depth.sums(numeric) {
            out.push(Aggregate::Sum(field.as_str()));
        }
    }
    out
}

/// The types of a digest answer's columns: `count_<f>` integers, `sum_<f>` of `f`'s type.
fn aggregate_types(types: &FieldTypes, depth: Depth, key_field: &str) -> FieldTypes {
    let mut out = FieldTypes::with_capacity(types.len() * 2);
    for c in digest_columns(types, depth, key_field) {
        match c {
            Aggregate::Count(f) => {
                out.insert(format!("count_{f}"), FieldType::Integer);
            }
            Aggregate::Sum(f) => {
                if let Some(ty) = types.get(f) {
                    out.insert(format!("sum_{f}"), *ty);
                }
            }
        }
    }
    out
}

/// Adds one answer row (one tag set, one window: `count_<f>` and `sum_<f>` columns, absent
/// where `null`) to a window's digest; a count's type is its field's in `types`.
fn fold_row(digest: &mut Digest, row: &Point, types: &FieldTypes) {
    for (column, value) in &row.fields {
        if let (Some(field), FieldValue::Integer(n)) = (column.strip_prefix("count_"), value) {
            let kind = match types.get(field) {
                Some(FieldType::Float) => FieldKind::Float,
                Some(FieldType::Integer) => FieldKind::Integer,
                Some(FieldType::Boolean) => FieldKind::Boolean,
                Some(FieldType::String) | None => FieldKind::String,
            };
            digest.add_count(&row.tags, field, kind, u64::try_from(*n).unwrap_or(0));
        }
    }
    for (column, value) in &row.fields {
        let Some(field) = column.strip_prefix("sum_") else {
            continue;
        };
        match value {
            FieldValue::Integer(i) => digest.add_sum(&row.tags, field, Sum::Integer(*i)),
            FieldValue::Float(x) => digest.add_sum(&row.tags, field, Sum::Float(*x)),
            FieldValue::String(_) | FieldValue::Boolean(_) => {}
        }
    }
}

/// How many slices of `per_slice` windows `range` is cut into.
fn slices_in(range: TimeRange, window: Nanos, per_slice: u64) -> u128 {
    if range.is_empty() {
        return 0;
    }
    let w = window.max(1);
    let first = i128::from(window_start(range.start, w));
    let windows = (i128::from(range.end) - first) / i128::from(w) + 1;
    let per_slice = i128::from(per_slice.max(1));
    u128::try_from((windows + per_slice - 1) / per_slice).unwrap_or(u128::MAX)
}

/// The last time of the slice that starts at `from`: the end of the `per_slice`-th window
/// from the one holding `from` (windows of `window` ns aligned to the epoch).
fn slice_end(from: Nanos, window: Nanos, per_slice: u64) -> Nanos {
    let start = i128::from(window_start(from, window));
    let end = start + i128::from(window.max(1)) * i128::from(per_slice.max(1)) - 1;
    Nanos::try_from(end).unwrap_or(Nanos::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dms_core::model::Name;
    use dms_core::node::digest::digest_points;
    use std::sync::Arc;

    const DAY: Nanos = 86_400_000_000_000;

    #[test]
    fn slices_count_whole_windows_from_the_one_holding_the_start() {
        let r = |a, b| TimeRange::new(a, b);
        assert_eq!(slices_in(r(0, DAY - 1), DAY, 10), 1);
        assert_eq!(slices_in(r(DAY / 2, 10 * DAY), DAY, 10), 2, "11 windows");
        assert_eq!(slices_in(r(0, 25 * DAY - 1), DAY, 10), 3);
        assert_eq!(slices_in(r(5, 4), DAY, 10), 0);
        // An unbounded range is counted, not overflowed (for few series it can still be only a
        // few slices: slices without points cost the server next to nothing).
        assert!(slices_in(r(MIN_TIME, MAX_TIME), DAY, 2500) > UNPLANNED_SLICES);
        assert!(slices_in(r(MIN_TIME, MAX_TIME), 1, 1) > UNPLANNED_SLICES);
    }

    fn test_types() -> FieldTypes {
        [
            ("close", FieldType::Float),
            ("volume", FieldType::Integer),
            ("note", FieldType::String),
            ("halted", FieldType::Boolean),
        ]
        .into_iter()
        .map(|(k, t)| (k.to_string(), t))
        .collect()
    }

    #[test]
    fn slices_are_whole_windows() {
        assert_eq!(slice_end(DAY + 5, DAY, 1), 2 * DAY - 1);
        assert_eq!(slice_end(DAY + 5, DAY, 3), 4 * DAY - 1);
        assert_eq!(slice_end(-1, DAY, 1), -1);
        assert_eq!(
            slice_end(MAX_TIME - 3, DAY, 100_000),
            Nanos::MAX,
            "saturates"
        );
    }

    #[test]
    fn cheap_digests_count_close_and_full_ones_sum_every_number() {
        let types = test_types();
        assert_eq!(
            digest_columns(&types, Depth::Cheap, "close"),
            [Aggregate::Count("close")]
        );
        assert_eq!(
            digest_columns(&types, Depth::Cheap, "volume"),
            [Aggregate::Count("volume")],
            "the schema's key field"
        );
        assert_eq!(
            digest_columns(&types, Depth::Full, "close"),
            [
                Aggregate::Sum("close"),
                Aggregate::Count("halted"),
                Aggregate::Count("note"),
                Aggregate::Sum("volume"),
            ]
        );
        let mut no_close = test_types();
        no_close.remove("close");
        assert!(digest_columns(&no_close, Depth::Cheap, "close").is_empty());
        let columns = aggregate_types(&types, Depth::Full, "close");
        assert_eq!(columns["sum_volume"], FieldType::Integer);
        assert_eq!(columns["sum_close"], FieldType::Float);
        assert!(!columns.contains_key("sum_note"));
    }

    /// What InfluxDB answers for a full digest's statement over the points below.
    const ANSWER: &str = r#"{"results":[{"statement_id":0,"series":[
        {"name":"kline","tags":{"interval":"1d","symbol":"A"},
         "columns":["time","sum_close","count_halted","count_note","sum_volume"],
         "values":[[86400000000000,7.25,1,1,35],[172800000000000,null,null,1,null]]},
        {"name":"kline","tags":{"interval":"1d","symbol":"B"},
         "columns":["time","sum_close","count_halted","count_note","sum_volume"],
         "values":[[172800000000000,101,null,null,-9223372036854775808]]}]}]}"#;

    fn point(symbol: &str, time: Nanos, fields: Vec<(&str, FieldValue)>) -> Point {
        let name = |s: &str| -> Name { Arc::from(s) };
        Point {
            measurement: name("kline"),
            tags: vec![
                (name("interval"), name("1d")),
                (name("symbol"), name(symbol)),
            ]
            .into(),
            fields: fields.into_iter().map(|(k, v)| (name(k), v)).collect(),
            time,
        }
    }

    #[test]
    fn an_aggregate_answer_folds_into_the_reference_digests() {
        use FieldValue::{Boolean, Float, Integer, String as Str};
        let a = vec![
            point(
                "A",
                DAY + 5,
                vec![
                    ("close", Float(1.5)),
                    ("volume", Integer(10)),
                    ("note", Str("x".into())),
                    ("halted", Boolean(false)),
                ],
            ),
            point(
                "A",
                DAY + 100,
                vec![("close", Float(2.5)), ("volume", Integer(20))],
            ),
            point(
                "A",
                DAY + 100,
                vec![("close", Float(3.25)), ("volume", Integer(5))],
            ),
            point("A", 2 * DAY + 7, vec![("note", Str("y".into()))]),
        ];
        let b = vec![
            point(
                "B",
                2 * DAY + 7,
                vec![("close", Float(100.0)), ("volume", Integer(i64::MAX))],
            ),
            point(
                "B",
                2 * DAY + 8,
                vec![("close", Float(1.0)), ("volume", Integer(1))],
            ),
        ];
        let columns = aggregate_types(&test_types(), Depth::Full, "close");
        let parsed = parse::parse_query(
            ANSWER.as_bytes(),
            Rows::Points(&columns),
            &mut Interner::default(),
        )
        .unwrap();
        let mut got: BTreeMap<String, BTreeMap<Nanos, Digest>> = BTreeMap::new();
        for s in &parsed.results[0].series {
            let windows = got.entry(s.tag("symbol").unwrap().to_string()).or_default();
            for row in &s.points {
                fold_row(
                    windows.entry(window_start(row.time, DAY)).or_default(),
                    row,
                    &test_types(),
                );
            }
        }
        for (symbol, points) in [("A", &a), ("B", &b)] {
            let mut want = BTreeMap::new();
            digest_points(points, DAY, Depth::Full, "close", &mut want);
            assert_eq!(got[symbol], want, "{symbol}: exact, integers wrapped");
        }
        let field =
            |d: &Digest, name: &str| d.fields.iter().find(|(k, _)| k.1 == name).map(|(_, f)| *f);
        assert_eq!(
            field(&got["B"][&(2 * DAY)], "volume").and_then(|f| f.sum),
            Some(Sum::Integer(i64::MIN))
        );
        assert!(
            field(&got["A"][&(2 * DAY)], "close").is_none(),
            "null is absent"
        );
    }

    #[test]
    fn retention_policies_and_the_default_are_read_from_the_listing() {
        let body = r#"{"results":[{"statement_id":0,"series":[{"columns":["name","duration","shardGroupDuration","replicaN","default"],"values":[["autogen","0s","168h0m0s",1,false],["one year","8760h0m0s","168h0m0s",1,true]]}]}]}"#;
        let r = parse::parse_query(body.as_bytes(), Rows::Table, &mut Interner::default()).unwrap();
        let (names, default) = policies(&r.results[0]);
        assert_eq!(names, ["autogen", "one year"]);
        assert_eq!(default.as_deref(), Some("one year"));
    }
}
