//! The `influxdb` node kind: a server speaking the InfluxDB 1.x HTTP API — InfluxDB 1.x
//! itself, or the v1 compatibility layer of InfluxDB 2.x and 3.x.
//!
//! - `/ping` answers [`Node::ping`].
//! - `/query` (InfluxQL, `epoch=ns`) serves reads and metadata. A read first asks how many tag
//!   sets make up the series (`SHOW SERIES`). One tag set (the usual case) is read with chunked
//!   responses, streamed chunk by chunk (`chunk_size` = batch size, at most 20 batches per
//!   request), so a window is never held in memory. Several tag sets (extra tags) are read in
//!   keyset pages:
//!   `SELECT * … WHERE <series tags> AND time >= cursor AND time <= end GROUP BY * ORDER BY time ASC LIMIT n`;
//!   with `GROUP BY *` the limit applies per tag set, so a page
//!   keeps the points up to the earliest last timestamp among the tag sets that came back full,
//!   and the next page starts just after it: one timestamp's points are never split across
//!   batches. Tags stay tags. Field types come from `SHOW FIELD KEYS` (cached per measurement,
//!   refreshed when an unknown field appears). Newest-point look-ups send one statement per
//!   measurement, all in one request.
//! - `/write` (line protocol, `precision=ns`, optionally gzip) takes writes. A missing database
//!   is created once (`CREATE DATABASE` is idempotent) and the write retried.
//!
//! Responses are classified into [`ErrorKind`]s: connection failures are `Unavailable`,
//! timeouts `Timeout`, 5xx `Server`, 408/429 `Throttled` (with `Retry-After`), 401/403
//! `Auth`, other 4xx `Rejected` with the server's message. Credentials travel only in the
//! `Authorization` header (basic for 1.x users, `Token` for 2.x/3.x) and never appear in
//! errors, logs or `Debug` output.
//!
//! Submodules: [`influxql`] (quoting and statements), [`line_protocol`] (write bodies),
//! [`parse`] (query responses).

pub mod influxql;
pub mod line_protocol;
pub mod parse;

use super::{BatchStream, ErrorKind, Node, NodeError};
use crate::config::{InfluxAuth, InfluxSettings, Secret};
use crate::model::{Batch, Nanos, Point, SeriesKey, TimeRange};
use crate::schema::Schema;
use bytes::Bytes;
use parse::{FieldType, FieldTypes, Interner, ParseError, Rows, SeriesData, Statement};
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode, Url};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Queries longer than this go in a POST form rather than the URL.
const MAX_GET_QUERY: usize = 4096;
/// Characters of an error body quoted in an error message.
const MAX_MESSAGE: usize = 500;

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
    timeout: Duration,
    client: reqwest::Client,
    /// Requests in flight at once, at most the pool size.
    permits: Arc<tokio::sync::Semaphore>,
    schema: Schema,
    /// Field types by measurement.
    field_types: Mutex<HashMap<String, Arc<FieldTypes>>>,
    /// Bytes of line protocol per point in the last write, to size the next body at once.
    bytes_per_point: AtomicUsize,
}

/// Credentials, ready to go into a request.
enum Auth {
    None,
    Basic {
        username: String,
        password: Secret,
    },
    /// `Token <token>`, marked sensitive.
    Token(HeaderValue),
}

/// A response, read whole.
struct Reply {
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Bytes,
}

impl fmt::Debug for InfluxNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("InfluxNode")
            .field("name", &i.name)
            .field("url", &i.shown_url)
            .field("database", &i.database)
            .field("retention_policy", &i.retention_policy)
            .field(
                "auth",
                &match i.auth {
                    Auth::None => "none",
                    Auth::Basic { .. } => "user/password",
                    Auth::Token(_) => "token",
                },
            )
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
        let auth = match &settings.auth {
            InfluxAuth::None => Auth::None,
            InfluxAuth::Basic { username, password } => Auth::Basic {
                username: username.clone(),
                password: password.clone(),
            },
            InfluxAuth::Token(token) => {
                let mut v =
                    HeaderValue::from_str(&format!("Token {}", token.expose())).map_err(|_| {
                        invalid("the token has characters an HTTP header cannot carry".into())
                    })?;
                v.set_sensitive(true);
                Auth::Token(v)
            }
        };
        let mut builder = reqwest::Client::builder()
            .pool_max_idle_per_host(pool_size.max(1))
            .tcp_nodelay(true)
            .user_agent(concat!("dms/", env!("CARGO_PKG_VERSION")));
        if !settings.timeout.is_zero() {
            builder = builder
                .timeout(settings.timeout)
                .connect_timeout(settings.timeout.min(Duration::from_secs(10)));
        }
        let client = builder
            .build()
            .map_err(|e| invalid(format!("cannot set up the HTTP client: {}", chain(&e))))?;
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
                timeout: settings.timeout,
                client,
                permits: Arc::new(tokio::sync::Semaphore::new(pool_size.max(1))),
                schema,
                field_types: Mutex::new(HashMap::new()),
                bytes_per_point: AtomicUsize::new(0),
            }),
        })
    }
}

/// An error and its sources, joined with `: ` (reqwest's own text names the URL, which may
/// carry a long query; the sources say what went wrong).
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.join(": ")
}

fn truncate(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(MAX_MESSAGE) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Whether a server's message says the database (1.x, 3.x) or its 2.x bucket does not exist.
fn is_database_not_found(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("not found") && (m.contains("database") || m.contains("bucket"))
}

/// The kind of a statement's error (these come with HTTP 200): the server's query limits and
/// timeouts pass, anything else is the query being refused.
fn statement_error_kind(message: &str) -> ErrorKind {
    let m = message.to_ascii_lowercase();
    if m.contains("timeout") || m.contains("timed out") {
        ErrorKind::Timeout
    } else if m.contains("limit exceeded") || m.contains("query killed") {
        ErrorKind::Throttled
    } else if m.contains("authoriz") || m.contains("not authorized") {
        ErrorKind::Auth
    } else {
        ErrorKind::Rejected
    }
}

impl Inner {
    fn err(&self, kind: ErrorKind, message: impl Into<String>) -> NodeError {
        NodeError::new(&self.name, kind, message)
    }

    fn authorize(&self, rb: RequestBuilder) -> RequestBuilder {
        match &self.auth {
            Auth::None => rb,
            // reqwest marks the basic-auth header sensitive.
            Auth::Basic { username, password } => rb.basic_auth(username, Some(password.expose())),
            Auth::Token(v) => rb.header(AUTHORIZATION, v.clone()),
        }
    }

    /// Sends a request and reads the whole answer, holding one of the node's permits.
    async fn call(&self, rb: RequestBuilder, what: &str) -> Result<Reply, NodeError> {
        // The semaphore is never closed, so acquiring only waits.
        let _permit = self.permits.acquire().await.ok();
        let resp = self
            .authorize(rb)
            .send()
            .await
            .map_err(|e| self.transport_error(&e, what))?;
        self.read_reply(resp, what).await
    }

    /// Reads a whole answer with its status and `Retry-After`.
    async fn read_reply(&self, resp: reqwest::Response, what: &str) -> Result<Reply, NodeError> {
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e, what))?;
        Ok(Reply {
            status,
            retry_after,
            body,
        })
    }

    fn transport_error(&self, e: &reqwest::Error, what: &str) -> NodeError {
        if e.is_timeout() {
            self.err(
                ErrorKind::Timeout,
                format!(
                    "{what}: no answer from {} within {:.1} s",
                    self.shown_url,
                    self.timeout.as_secs_f64()
                ),
            )
        } else if e.is_connect() {
            self.err(
                ErrorKind::Unavailable,
                format!("{what}: cannot connect to {}: {}", self.shown_url, chain(e)),
            )
        } else {
            self.err(
                ErrorKind::Unavailable,
                format!(
                    "{what}: the connection to {} failed: {}",
                    self.shown_url,
                    chain(e)
                ),
            )
        }
    }

    /// The server's message in an error reply.
    fn message(reply: &Reply) -> String {
        match parse::error_message(&reply.body) {
            Some(m) => truncate(&m),
            None => {
                let text = String::from_utf8_lossy(&reply.body);
                if text.trim().is_empty() {
                    reply
                        .status
                        .canonical_reason()
                        .unwrap_or("no message")
                        .to_string()
                } else {
                    truncate(&text)
                }
            }
        }
    }

    fn status_error(&self, reply: &Reply, what: &str) -> NodeError {
        let s = reply.status;
        let kind = match s.as_u16() {
            401 | 403 => ErrorKind::Auth,
            408 | 429 => ErrorKind::Throttled,
            500..=599 => ErrorKind::Server,
            400..=499 => ErrorKind::Rejected,
            _ => ErrorKind::BadResponse,
        };
        let mut e = self.err(
            kind,
            format!("{what}: HTTP {}: {}", s.as_u16(), Self::message(reply)),
        );
        if matches!(kind, ErrorKind::Throttled | ErrorKind::Server) {
            e.retry_after = reply.retry_after;
        }
        e
    }

    /// Runs InfluxQL read statements and returns the body of a successful answer.
    async fn query(&self, q: &str, what: &str) -> Result<Bytes, NodeError> {
        let mut params: Vec<(&str, &str)> = vec![("db", &self.database), ("epoch", "ns"), ("q", q)];
        if let Some(rp) = &self.retention_policy {
            params.push(("rp", rp));
        }
        let rb = if q.len() <= MAX_GET_QUERY {
            self.client.get(self.query_url.clone()).query(&params)
        } else {
            self.client.post(self.query_url.clone()).form(&params)
        };
        let reply = self.call(rb, what).await?;
        if !reply.status.is_success() {
            return Err(self.status_error(&reply, what));
        }
        Ok(reply.body)
    }

    /// The statements of a parsed answer; an error for the whole request is the server
    /// refusing it.
    fn statements(
        &self,
        parsed: Result<parse::Response, ParseError>,
        what: &str,
    ) -> Result<Vec<Statement>, NodeError> {
        let resp = parsed.map_err(|e| self.err(ErrorKind::BadResponse, format!("{what}: {e}")))?;
        match resp.error {
            Some(e) => Err(self.err(ErrorKind::Rejected, format!("{what}: {}", truncate(&e)))),
            None => Ok(resp.results),
        }
    }

    /// Whether a statement found its database: `Ok(false)` for "database not found" (no data
    /// yet), an error for any other failure.
    fn found(&self, st: &Statement, what: &str) -> Result<bool, NodeError> {
        match &st.error {
            None => Ok(true),
            Some(e) if is_database_not_found(e) => Ok(false),
            Some(e) => Err(self.err(statement_error_kind(e), format!("{what}: {}", truncate(e)))),
        }
    }

    /// Field types of `measurement`, from the cache unless `refresh`.
    async fn field_types(
        &self,
        measurement: &str,
        refresh: bool,
    ) -> Result<Arc<FieldTypes>, NodeError> {
        if !refresh && let Some(t) = self.lock_types().get(measurement) {
            return Ok(t.clone());
        }
        let what = format!("reading the field types of {measurement:?}");
        let body = self
            .query(&influxql::show_field_keys(measurement), &what)
            .await?;
        let results = self.statements(
            parse::parse_query(&body, Rows::Table, &mut Interner::default()),
            &what,
        )?;
        let mut types = FieldTypes::new();
        for st in &results {
            if !self.found(st, &what)? {
                continue;
            }
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
        }
        let types = Arc::new(types);
        self.lock_types()
            .insert(measurement.to_string(), types.clone());
        Ok(types)
    }

    fn lock_types(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<FieldTypes>>> {
        // The map is only read and replaced whole; a panic elsewhere cannot leave it torn.
        self.field_types.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tag conditions that select `series`.
    fn conditions(&self, series: &SeriesKey) -> Vec<String> {
        let mut c = vec![influxql::tag_equals(
            &self.schema.symbol_tag,
            &series.symbol,
        )];
        if let Some(t) = &self.schema.interval_tag {
            c.push(influxql::tag_equals(t, &series.interval));
        }
        c
    }

    /// How many tag sets make up `series` (one `SHOW SERIES`); 0 when none exists yet.
    async fn tag_sets(&self, measurement: &str, series: &SeriesKey) -> Result<usize, NodeError> {
        let mut tags = vec![(self.schema.symbol_tag.as_str(), series.symbol.as_str())];
        if let Some(t) = &self.schema.interval_tag {
            tags.push((t.as_str(), series.interval.as_str()));
        }
        let what = format!("listing the tag sets of {series}");
        let body = self
            .query(&influxql::show_series(measurement, &tags), &what)
            .await?;
        let results = self.statements(
            parse::parse_query(&body, Rows::Table, &mut Interner::default()),
            &what,
        )?;
        let mut n = 0;
        for st in &results {
            if self.found(st, &what)? {
                n += st.series.iter().map(|s| s.table.len()).sum::<usize>();
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
        let chunk = batch.to_string();
        let mut params: Vec<(&str, &str)> = vec![
            ("db", &self.database),
            ("epoch", "ns"),
            ("q", &q),
            ("chunked", "true"),
            ("chunk_size", &chunk),
        ];
        if let Some(rp) = &self.retention_policy {
            params.push(("rp", rp));
        }
        // The permit is held while the response streams.
        let permit = self.permits_owned().await;
        let resp = self
            .authorize(self.client.post(self.query_url.clone()).form(&params))
            .send()
            .await
            .map_err(|e| self.transport_error(&e, &what))?;
        if !resp.status().is_success() {
            let reply = self.read_reply(resp, &what).await?;
            return Err(self.status_error(&reply, &what));
        }
        Ok(Chunked {
            resp,
            buf: Vec::new(),
            got: 0,
            cap,
            types,
            _permit: permit,
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
        loop {
            if let Some(pos) = c.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = c.buf.drain(..=pos).collect();
                let line = &line[..line.len() - 1];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return self
                    .chunk_points(c, line, measurement, names)
                    .await
                    .map(Some);
            }
            match c
                .resp
                .chunk()
                .await
                .map_err(|e| self.transport_error(&e, &what))?
            {
                Some(bytes) => c.buf.extend_from_slice(&bytes),
                None if c.buf.iter().all(u8::is_ascii_whitespace) => return Ok(None),
                None => {
                    let line = std::mem::take(&mut c.buf);
                    return self
                        .chunk_points(c, &line, measurement, names)
                        .await
                        .map(Some);
                }
            }
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

    async fn permits_owned(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        // The semaphore is never closed, so acquiring only waits.
        self.permits.clone().acquire_owned().await.ok()
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
            if self.found(&st, what)? {
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
        tracing::info!(node = %self.name, database = %self.database, "created the database");
        Ok(())
    }

    fn encode(&self, batch: &Batch) -> Result<Bytes, NodeError> {
        let points = &batch.points;
        let body = batch
            .line_protocol
            .get_or_init(|| {
                let per_point = self.bytes_per_point.load(Ordering::Relaxed).max(64);
                let mut body = Vec::with_capacity(per_point.saturating_mul(points.len()));
                line_protocol::encode(points, &mut body).map_err(|e| e.0)?;
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
                self.create_database().await?;
                created = true;
                continue;
            }
            return Err(self.status_error(&reply, &what));
        }
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

struct ReadState {
    node: InfluxNode,
    series: SeriesKey,
    measurement: String,
    conditions: Vec<String>,
    cursor: Option<Nanos>,
    end: Nanos,
    limit: usize,
    names: Interner,
    mode: ReadMode,
}

/// How a read fetches its points.
enum ReadMode {
    /// Not decided yet: one `SHOW SERIES` tells.
    Unknown,
    /// Several tag sets share the series: keyset pages keep them in time order.
    Paged,
    /// One tag set: chunked responses, streamed (the open one, if any).
    Chunked(Option<Chunked>),
}

/// Batches a chunked request may cover before the next request continues it, so one request
/// never runs for long.
const CHUNKS_PER_REQUEST: usize = 20;

/// An open chunked `/query` response.
struct Chunked {
    resp: reqwest::Response,
    buf: Vec<u8>,
    /// Points received in this request.
    got: usize,
    /// Points asked for (`LIMIT`).
    cap: usize,
    types: Arc<FieldTypes>,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
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
        let i = &self.inner;
        let reply = i.call(i.client.get(i.ping_url.clone()), "ping").await?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(i.status_error(&reply, "ping"))
        }
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

    fn read(&self, series: &SeriesKey, range: TimeRange, batch_size: usize) -> BatchStream {
        let state = ReadState {
            node: self.clone(),
            series: series.clone(),
            measurement: self.inner.schema.measurement(&series.interval),
            conditions: self.inner.conditions(series),
            cursor: (!range.is_empty()).then_some(range.start),
            end: range.end,
            limit: batch_size.max(1),
            names: Interner::default(),
            mode: ReadMode::Unknown,
        };
        Box::pin(futures::stream::try_unfold(state, |mut st| async move {
            while let Some(cursor) = st.cursor {
                let inner = &st.node.inner;
                match &mut st.mode {
                    ReadMode::Unknown => {
                        st.mode = if inner.tag_sets(&st.measurement, &st.series).await? <= 1 {
                            ReadMode::Chunked(None)
                        } else {
                            ReadMode::Paged
                        };
                    }
                    ReadMode::Paged => {
                        let (points, next) = inner
                            .read_page(
                                &st.measurement,
                                &st.conditions,
                                cursor,
                                st.end,
                                st.limit,
                                &mut st.names,
                            )
                            .await?;
                        st.cursor = next;
                        if !points.is_empty() {
                            return Ok(Some((Batch::new(points), st)));
                        }
                    }
                    ReadMode::Chunked(open) => {
                        if open.is_none() {
                            *open = Some(
                                inner
                                    .open_chunked(
                                        &st.measurement,
                                        &st.conditions,
                                        cursor,
                                        st.end,
                                        st.limit,
                                    )
                                    .await?,
                            );
                        }
                        let Some(c) = open.as_mut() else { continue };
                        match inner.next_chunk(c, &st.measurement, &mut st.names).await? {
                            Some(points) => {
                                if let Some(last) = points.last().map(|p| p.time) {
                                    st.cursor = last.checked_add(1).filter(|n| *n <= st.end);
                                }
                                if !points.is_empty() {
                                    return Ok(Some((Batch::new(points), st)));
                                }
                            }
                            None => {
                                // This request is done: go on only if it stopped at its limit.
                                if c.got < c.cap {
                                    st.cursor = None;
                                }
                                *open = None;
                            }
                        }
                    }
                }
            }
            Ok(None)
        }))
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
    use crate::model::{FieldValue, Name};

    fn settings(url: &str, auth: InfluxAuth) -> InfluxSettings {
        InfluxSettings {
            url: url.into(),
            database: "market".into(),
            retention_policy: None,
            auth,
            timeout: Duration::from_secs(5),
            gzip: false,
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
        assert!(is_database_not_found(r#"database not found: "x""#));
        assert!(is_database_not_found(r#"bucket "x/autogen" not found"#));
        assert!(!is_database_not_found("retention policy not found: r"));
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
