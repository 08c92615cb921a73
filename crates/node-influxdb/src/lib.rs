//! The `influxdb` node kind: a server speaking the InfluxDB 1.x HTTP API — InfluxDB 1.x
//! itself, or the v1 compatibility layer of InfluxDB 2.x and 3.x.
//!
//! - `/ping` answers [`Node::ping`].
//! - `/query` (InfluxQL, `epoch=ns`) serves reads and metadata. Reads stream one series'
//!   window in batches that never split a timestamp (`read`: chunked responses for one tag
//!   set, keyset pages for several). Field types come from `SHOW FIELD KEYS` (cached per
//!   measurement here, refreshed when an unknown field appears). Newest-point look-ups send
//!   one statement per measurement, all in one request.
//! - `/write` (line protocol, `precision=ns`, optionally gzip) takes writes. A missing database
//!   is created once (`CREATE DATABASE` is idempotent) and the write retried, only where the
//!   settings allow it (`create_database`, never on the primary); elsewhere a missing database
//!   is an error that lists the databases the server has.
//! - Reconciliation (`reconcile`): tips and per-window digests computed by the server
//!   (`GROUP BY * … LIMIT 1` selectors, `count("close")` or the sums of every numeric field
//!   by window), read as chunked
//!   answers; deletes as `DELETE` statements, never across retention policies.
//!
//! Failures are classified into [`ErrorKind`]s (`client`: connection failures `Unavailable`,
//! timeouts `Timeout`, 5xx `Server`, 408/429 `Throttled`, 401/403 `Auth`, other 4xx
//! `Rejected`). Credentials travel only in the `Authorization` header and never appear in
//! errors, logs or `Debug` output.
//!
//! This file holds [`InfluxNode`] (settings → URLs, client, credentials), its [`Node`] impl,
//! the field-type cache, the newest/list look-ups and writes. Submodules: `client` (HTTP
//! client, requests, chunked answers, replies, error classification), `read` (streamed
//! reads), `reconcile` (tips, digests, deletes), [`influxql`] (quoting and statements),
//! [`line_protocol`] (write bodies), [`parse`] (query responses).

mod client;
pub mod http_error;
pub mod influxql;
mod json;
pub mod line_protocol;
pub mod parse;
mod probe;
mod read;
mod reconcile;
pub mod tls;

use bytes::Bytes;
use client::{Auth, is_database_not_found, truncate};
use dms_config::InfluxSettings;
use dms_core::model::{Batch, Nanos, Point, SeriesKey, TimeRange};
use dms_core::node::{BatchStream, Depth, Digests, ErrorKind, Node, NodeError, Probe, Role, Tip};
use dms_core::schema::Schema;
use parse::{FieldType, FieldTypes, Interner, Rows, SeriesData};
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A node reached over the InfluxDB 1.x HTTP API.
#[derive(Clone)]
pub struct InfluxNode {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    /// The base URL as shown to people.
    shown_url: String,
    ping_url: Url,
    query_url: Url,
    write_url: Url,
    database: String,
    retention_policy: Option<String>,
    auth: Auth,
    gzip: bool,
    /// Whether a missing database is created on the first write (backups that allow it);
    /// otherwise a missing database is an error, never an empty store.
    creates_database: bool,
    timeout: Duration,
    client: reqwest::Client,
    /// Requests in flight at once, at most the pool size.
    permits: Arc<tokio::sync::Semaphore>,
    schema: Schema,
    /// Field types by measurement.
    field_types: Mutex<HashMap<String, Arc<FieldTypes>>>,
    /// Bytes of line protocol per point in the last write, to size the next body at once.
    bytes_per_point: AtomicUsize,
    /// The server as its last answer named it.
    server: Mutex<Option<client::Server>>,
    /// Tag sets the last full listing found without the schema's symbol or interval tag.
    outside_schema: Mutex<Vec<String>>,
    /// Measurement → its fields typed differently in two shards, as `SHOW FIELD KEYS` lists.
    type_conflicts: Mutex<std::collections::BTreeMap<String, String>>,
}

impl fmt::Debug for InfluxNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("InfluxNode")
            .field("name", &i.name)
            .field("url", &i.shown_url)
            .field("database", &i.database)
            .field("retention_policy", &i.retention_policy)
            .field("auth", &i.auth.label())
            .finish()
    }
}

impl InfluxNode {
    /// Builds the node: one HTTP client keeping at most `pool_size` idle connections, and at
    /// most `pool_size` requests in flight. Nothing is sent until the first call.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidData`] when the URL is not usable, holds credentials, or the token
    /// cannot go into an HTTP header; the message never repeats a secret.
    pub fn open(
        name: &str,
        settings: &InfluxSettings,
        schema: Schema,
        pool_size: usize,
    ) -> Result<Self, NodeError> {
        let invalid = |m: String| NodeError::new(name, ErrorKind::InvalidData, m);
        let mut base = Url::parse(&settings.url)
            .map_err(|e| invalid(format!("the url is not a valid URL: {e}")))?;
        if !base.username().is_empty() || base.password().is_some() {
            return Err(invalid(
                "the url holds credentials: give them as username/password or token instead".into(),
            ));
        }
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the url must be an http:// or https:// URL".into()));
        }
        base.set_query(None);
        base.set_fragment(None);
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let shown_url = base.as_str().trim_end_matches('/').to_string();
        let join = |p: &str| {
            base.join(p)
                .map_err(|e| invalid(format!("cannot build the {p} URL: {e}")))
        };
        let ping_url = join("ping")?;
        let query_url = join("query")?;
        let mut write_url = join("write")?;
        {
            let mut q = write_url.query_pairs_mut();
            q.append_pair("db", &settings.database);
            if let Some(rp) = &settings.retention_policy {
                q.append_pair("rp", rp);
            }
            q.append_pair("precision", "ns");
        }
        let auth = Auth::new(&settings.auth).map_err(|m| invalid(m.into()))?;
        let client =
            client::http_client(settings, pool_size).map_err(|e| invalid(e.to_string()))?;
        Ok(InfluxNode {
            inner: Arc::new(Inner {
                name: name.to_string(),
                shown_url,
                ping_url,
                query_url,
                write_url,
                database: settings.database.clone(),
                retention_policy: settings.retention_policy.clone(),
                auth,
                gzip: settings.gzip,
                creates_database: settings.create_database,
                timeout: settings.timeout,
                client,
                permits: Arc::new(tokio::sync::Semaphore::new(pool_size.max(1))),
                schema,
                field_types: Mutex::new(HashMap::new()),
                bytes_per_point: AtomicUsize::new(0),
                server: Mutex::new(None),
                outside_schema: Mutex::new(Vec::new()),
                type_conflicts: Mutex::new(std::collections::BTreeMap::new()),
            }),
        })
    }
}

impl Inner {
    /// Field types of `measurement`, from the cache unless `refresh`.
    async fn field_types(
        &self,
        measurement: &str,
        refresh: bool,
    ) -> Result<Arc<FieldTypes>, NodeError> {
        let mut types = self
            .field_types_of(&[measurement.to_string()], refresh)
            .await?;
        Ok(types.remove(measurement).unwrap_or_default())
    }

    /// Field types of each of `measurements`, from the cache unless `refresh`; the ones
    /// to load are asked for in one request.
    async fn field_types_of(
        &self,
        measurements: &[String],
        refresh: bool,
    ) -> Result<HashMap<String, Arc<FieldTypes>>, NodeError> {
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = self.lock_types();
            for m in measurements {
                match cache.get(m) {
                    Some(t) if !refresh => {
                        out.insert(m.clone(), t.clone());
                    }
                    _ => missing.push(m.clone()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let what = format!("reading the field types of {}", missing.join(", "));
        let q: Vec<String> = missing
            .iter()
            .map(|m| influxql::show_field_keys(m))
            .collect();
        let body = self.query(&q.join("; "), &what).await?;
        let results = self.statements(
            parse::parse_query(&body, Rows::Table, &mut Interner::default()),
            &what,
        )?;
        let mut results = results.into_iter();
        for m in missing {
            let (types, conflicts) = match results.next() {
                Some(st) if self.found_among(&st, &what).await? => {
                    (types_of(&st), conflicts_of(&m, &st))
                }
                _ => (FieldTypes::new(), None),
            };
            {
                let mut known = self
                    .type_conflicts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                match conflicts {
                    Some(c) => {
                        if known.insert(m.clone(), c.clone()).as_ref() != Some(&c) {
                            tracing::warn!(node = %self.name, "field types differ between shards: {c}");
                        }
                    }
                    None => {
                        known.remove(&m);
                    }
                }
            }
            let types = Arc::new(types);
            self.lock_types().insert(m.clone(), types.clone());
            out.insert(m, types);
        }
        Ok(out)
    }

    fn lock_types(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<FieldTypes>>> {
        // The map is only read and replaced whole; a panic elsewhere cannot leave it torn.
        self.field_types.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest row of every tag set of `measurements`, in one request.
    async fn newest_rows(&self, measurements: &[String]) -> Result<Vec<SeriesData>, NodeError> {
        if measurements.is_empty() {
            return Ok(Vec::new());
        }
        let what = "looking up the newest points";
        let q: Vec<String> = measurements
            .iter()
            .map(|m| influxql::select_newest(m))
            .collect();
        let body = self.query(&q.join("; "), what).await?;
        let results = self.statements(
            parse::parse_query(&body, Rows::Times, &mut Interner::default()),
            what,
        )?;
        let mut out = Vec::new();
        for st in results {
            if self.found_among(&st, what).await? {
                out.extend(st.series);
            }
        }
        Ok(out)
    }

    /// The measurements that hold this schema's series.
    async fn measurements(&self) -> Result<Vec<String>, NodeError> {
        if let Some(m) = self.schema.fixed_measurement() {
            return Ok(vec![m.to_string()]);
        }
        let what = "listing measurements";
        let body = self.query(influxql::SHOW_MEASUREMENTS, what).await?;
        let results = self.statements(
            parse::parse_query(&body, Rows::Table, &mut Interner::default()),
            what,
        )?;
        let mut out = Vec::new();
        for st in &results {
            if !self.found(st, what)? {
                continue;
            }
            for s in &st.series {
                for row in &s.table {
                    if let Some(Some(m)) = row.first()
                        && self.schema.matches_measurement(m)
                    {
                        out.push(m.clone());
                    }
                }
            }
        }
        Ok(out)
    }

    async fn create_database(&self) -> Result<(), NodeError> {
        let what = format!(
            "database {:?} does not exist and creating it failed",
            self.database
        );
        let q = influxql::create_database(&self.database);
        let rb = self
            .client
            .post(self.query_url.clone())
            .form(&[("q", q.as_str())]);
        let reply = self.call(rb, &what).await?;
        if !reply.status.is_success() {
            return Err(self.status_error(&reply, &what));
        }
        let results = self.statements(
            parse::parse_query(&reply.body, Rows::Table, &mut Interner::default()),
            &what,
        )?;
        for st in &results {
            if let Some(e) = &st.error {
                return Err(self.err(ErrorKind::Rejected, format!("{what}: {}", truncate(e))));
            }
        }
        tracing::warn!(
            node = %self.name,
            database = %self.database,
            url = %self.shown_url,
            "the database did not exist: created it (create_database: true; set it to false to refuse)"
        );
        Ok(())
    }

    fn encode(&self, batch: &Batch) -> Result<Bytes, NodeError> {
        let points = &batch.points;
        let body = batch
            .line_protocol
            .get_or_init(|| {
                let per_point = self.bytes_per_point.load(Ordering::Relaxed).max(64);
                let mut body = Vec::with_capacity(per_point.saturating_mul(points.len()));
                line_protocol::encode(points, &mut body).map_err(|e| e.to_string())?;
                self.bytes_per_point
                    .store(body.len() / points.len().max(1) + 8, Ordering::Relaxed);
                Ok(Bytes::from(body))
            })
            .clone()
            .map_err(|e| self.err(ErrorKind::InvalidData, e))?;
        if !self.gzip {
            return Ok(body);
        }
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 4),
            flate2::Compression::fast(),
        );
        gz.write_all(&body)
            .and_then(|()| gz.finish())
            .map(Bytes::from)
            .map_err(|e| self.err(ErrorKind::InvalidData, format!("cannot gzip a write: {e}")))
    }

    async fn write(&self, batch: &Batch) -> Result<(), NodeError> {
        let body = self.encode(batch)?;
        let what = format!("writing {} points", batch.len());
        let mut created = false;
        loop {
            let mut rb = self
                .client
                .post(self.write_url.clone())
                .header(CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(body.clone());
            if self.gzip {
                rb = rb.header(CONTENT_ENCODING, "gzip");
            }
            let reply = self.call(rb, &what).await?;
            if reply.status.is_success() {
                return Ok(());
            }
            if reply.status == StatusCode::NOT_FOUND
                && !created
                && is_database_not_found(&Self::message(&reply))
            {
                if !self.creates_database {
                    return Err(self.missing_database(self.server().as_ref()).await);
                }
                self.create_database().await?;
                created = true;
                continue;
            }
            return Err(self.status_error(&reply, &what));
        }
    }
}

/// The fields a `SHOW FIELD KEYS` statement lists with more than one type (a field typed
/// differently in two shards): `m.note is float and string`, or `None`.
fn conflicts_of(measurement: &str, st: &parse::Statement) -> Option<String> {
    let mut by_field: Vec<(String, Vec<String>)> = Vec::new();
    for s in &st.series {
        let col = |name: &str| s.columns.iter().position(|c| c == name);
        let (Some(k), Some(t)) = (col("fieldKey"), col("fieldType")) else {
            continue;
        };
        for row in &s.table {
            if let (Some(Some(key)), Some(Some(ty))) = (row.get(k), row.get(t)) {
                match by_field.iter_mut().find(|(f, _)| f == key) {
                    Some((_, types)) if !types.contains(ty) => types.push(ty.clone()),
                    Some(_) => {}
                    None => by_field.push((key.clone(), vec![ty.clone()])),
                }
            }
        }
    }
    let each: Vec<String> = by_field
        .into_iter()
        .filter(|(_, types)| types.len() > 1)
        .map(|(f, types)| format!("{measurement}.{f} is {}", types.join(" and ")))
        .collect();
    (!each.is_empty()).then(|| each.join(", "))
}

/// The field types a `SHOW FIELD KEYS` statement lists.
fn types_of(st: &parse::Statement) -> FieldTypes {
    let mut types = FieldTypes::new();
    for s in &st.series {
        let col = |name: &str| s.columns.iter().position(|c| c == name);
        let (Some(k), Some(t)) = (col("fieldKey"), col("fieldType")) else {
            continue;
        };
        for row in &s.table {
            if let (Some(Some(key)), Some(Some(ty))) = (row.get(k), row.get(t))
                && let Some(ty) = FieldType::from_influx(ty)
            {
                // A field typed differently in two shards: the first type decides
                // integers; a fraction in the text still reads as a float.
                types.entry(key.clone()).or_insert(ty);
            }
        }
    }
    types
}

#[async_trait::async_trait]
impl Node for InfluxNode {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn describe(&self) -> String {
        let i = &self.inner;
        match &i.retention_policy {
            Some(rp) => format!(
                "influxdb {} database {:?} retention policy {rp:?}",
                i.shown_url, i.database
            ),
            None => format!("influxdb {} database {:?}", i.shown_url, i.database),
        }
    }

    async fn ping(&self) -> Result<(), NodeError> {
        self.inner.ping().await.map(|_| ())
    }

    async fn probe(&self, role: Role) -> Result<Probe, NodeError> {
        self.inner.probe(role).await
    }

    async fn list_series(&self) -> Result<Vec<SeriesKey>, NodeError> {
        let i = &self.inner;
        let measurements = i.measurements().await?;
        let mut keys = BTreeSet::new();
        for s in i.newest_rows(&measurements).await? {
            if let Some(k) = i.schema.series_of_parts(&s.measurement, |k| s.tag(k)) {
                keys.insert(k);
            }
        }
        Ok(keys.into_iter().collect())
    }

    async fn newest_all(&self) -> Result<HashMap<SeriesKey, Nanos>, NodeError> {
        let i = &self.inner;
        let measurements = i.measurements().await?;
        let mut out: HashMap<SeriesKey, Nanos> = HashMap::new();
        for s in i.newest_rows(&measurements).await? {
            if let (Some(key), Some(t)) = (
                i.schema.series_of_parts(&s.measurement, |k| s.tag(k)),
                s.max_time,
            ) {
                let e = out.entry(key).or_insert(t);
                *e = (*e).max(t);
            }
        }
        Ok(out)
    }

    async fn newest(&self, series: &[SeriesKey]) -> Result<HashMap<SeriesKey, Nanos>, NodeError> {
        let i = &self.inner;
        let wanted: HashSet<&SeriesKey> = series.iter().collect();
        let measurements: BTreeSet<String> = series
            .iter()
            .map(|s| i.schema.measurement(&s.interval))
            .collect();
        let measurements: Vec<String> = measurements.into_iter().collect();
        let mut out: HashMap<SeriesKey, Nanos> = HashMap::new();
        for s in i.newest_rows(&measurements).await? {
            let (Some(key), Some(t)) = (
                i.schema.series_of_parts(&s.measurement, |k| s.tag(k)),
                s.max_time,
            ) else {
                continue;
            };
            if wanted.contains(&key) {
                let e = out.entry(key).or_insert(t);
                *e = (*e).max(t);
            }
        }
        Ok(out)
    }

    async fn tips(
        &self,
        series: &[SeriesKey],
        horizon: Nanos,
    ) -> Result<HashMap<SeriesKey, Tip>, NodeError> {
        self.inner.tips(series, horizon).await
    }

    async fn tips_all(&self, horizon: Nanos) -> Result<HashMap<SeriesKey, Tip>, NodeError> {
        let measurements = self.inner.measurements().await?;
        self.inner.tips_in(&measurements, None, horizon).await
    }

    fn outside_schema(&self) -> Vec<String> {
        self.inner
            .outside_schema
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn type_conflicts(&self) -> Vec<String> {
        self.inner
            .type_conflicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// InfluxDB sums on the server (per shard, in time order): bit-equal between InfluxDB
    /// servers holding the same points, not with another kind's sums.
    fn digest_kind(&self) -> &'static str {
        "influxdb"
    }

    async fn digests(
        &self,
        series: &[SeriesKey],
        range: TimeRange,
        window: Nanos,
        depth: Depth,
    ) -> Result<Digests, NodeError> {
        self.inner.digests(series, range, window, depth).await
    }

    async fn delete(&self, series: &SeriesKey, times: &[Nanos]) -> Result<u64, NodeError> {
        self.inner.delete(series, times).await?;
        Ok(times.len() as u64)
    }

    fn read(&self, series: &SeriesKey, range: TimeRange, batch_size: usize) -> BatchStream {
        read::stream(self, series, range, batch_size)
    }

    /// One `SELECT … GROUP BY * LIMIT n` per measurement, window start and
    /// [`read::SERIES_PER_QUERY`] series.
    async fn read_many(
        &self,
        windows: &[(SeriesKey, TimeRange)],
        limit: usize,
    ) -> Result<Vec<Option<Vec<Point>>>, NodeError> {
        read::read_many(&self.inner, windows, limit).await
    }

    async fn write(&self, batch: Arc<Batch>) -> Result<(), NodeError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.inner.write(&batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dms_config::{InfluxAuth, Secret};

    fn settings(url: &str, auth: InfluxAuth) -> InfluxSettings {
        InfluxSettings {
            url: url.into(),
            database: "market".into(),
            retention_policy: None,
            auth,
            timeout: Duration::from_secs(5),
            gzip: false,
            create_database: true,
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_describe_and_urls() {
        for auth in [
            InfluxAuth::Basic {
                username: "ops".into(),
                password: Secret::new("hunter2".into()),
            },
            InfluxAuth::Token(Secret::new("hunter2".into())),
        ] {
            let n = InfluxNode::open(
                "b1",
                &settings("http://127.0.0.1:8086/", auth),
                Schema::default(),
                2,
            )
            .unwrap();
            for text in [
                format!("{n:?}"),
                n.describe(),
                n.inner.write_url.to_string(),
                n.inner.query_url.to_string(),
            ] {
                assert!(!text.contains("hunter2"), "{text}");
            }
            assert_eq!(
                n.describe(),
                "influxdb http://127.0.0.1:8086 database \"market\""
            );
        }
        let err = InfluxNode::open(
            "b1",
            &settings("http://ops:hunter2@127.0.0.1:8086", InfluxAuth::None),
            Schema::default(),
            2,
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidData);
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn urls_keep_a_path_prefix_and_name_the_database() {
        let mut s = settings("https://example.com/influx", InfluxAuth::None);
        s.retention_policy = Some("one year".into());
        let n = InfluxNode::open("b1", &s, Schema::default(), 1).unwrap();
        assert_eq!(n.inner.ping_url.as_str(), "https://example.com/influx/ping");
        assert_eq!(
            n.inner.write_url.as_str(),
            "https://example.com/influx/write?db=market&rp=one+year&precision=ns"
        );
    }
}
