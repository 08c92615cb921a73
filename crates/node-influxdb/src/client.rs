//! The HTTP side of the `influxdb` node: its reqwest client and credentials, sending requests
//! under the node's permits, reading replies, and turning every failure into a [`NodeError`]
//! of the right [`ErrorKind`].
//!
//! Classification: connection failures are `Unavailable`, timeouts `Timeout`, 5xx `Server`,
//! 408/429 `Throttled` (with `Retry-After`), 401/403 `Auth`, other 4xx `Rejected` with the
//! server's message. Errors inside a 200 answer (a whole request refused, or one statement's
//! error) are classified by their text. Credentials go only into the `Authorization` header
//! (basic for 1.x users, `Token` for 2.x/3.x), marked sensitive; transport errors are described
//! without their URL ([`reqwest_detail`]), so no message repeats a secret.

use super::Inner;
use super::parse::{self, ParseError, Statement};
use crate::http_error::reqwest_detail;
use bytes::Bytes;
use dms_config::{InfluxAuth, InfluxSettings, Secret};
use dms_core::node::{ErrorKind, NodeError};
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use std::time::Duration;

/// Queries longer than this go in a POST form rather than the URL.
const MAX_GET_QUERY: usize = 4096;
/// Characters of a server's error message quoted in an error.
const MAX_MESSAGE: usize = 300;
/// Characters of a body that is not an InfluxDB error (an HTML page, a proxy's answer) quoted
/// in an error.
const MAX_EXCERPT: usize = 80;

/// Credentials, ready to go into a request.
pub(super) enum Auth {
    None,
    Basic {
        username: String,
        password: Secret,
    },
    /// `Token <token>`, marked sensitive.
    Token(HeaderValue),
}

impl Auth {
    /// Prepares the configured credentials; an error (without the secret) when the token
    /// cannot go into an HTTP header.
    pub(super) fn new(auth: &InfluxAuth) -> Result<Auth, &'static str> {
        Ok(match auth {
            InfluxAuth::None => Auth::None,
            InfluxAuth::Basic { username, password } => Auth::Basic {
                username: username.clone(),
                password: password.clone(),
            },
            InfluxAuth::Token(token) => {
                let mut v = HeaderValue::from_str(&format!("Token {}", token.expose()))
                    .map_err(|_| "the token has characters an HTTP header cannot carry")?;
                v.set_sensitive(true);
                Auth::Token(v)
            }
        })
    }

    /// Which kind of credentials, for `Debug` output (never the secret).
    pub(super) fn label(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Basic { .. } => "user/password",
            Auth::Token(_) => "token",
        }
    }
}

/// The HTTP client of one node: at most `pool_size` idle connections, and the node's timeout
/// (connecting gives up after at most 10 s).
pub(super) fn http_client(
    settings: &InfluxSettings,
    pool_size: usize,
) -> Result<reqwest::Client, crate::http_error::ClientError> {
    let mut builder = crate::tls::client_builder()
        .pool_max_idle_per_host(pool_size.max(1))
        .tcp_nodelay(true)
        .user_agent(concat!("dms/", env!("CARGO_PKG_VERSION")));
    if !settings.timeout.is_zero() {
        builder = builder
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)));
    }
    builder.build().map_err(crate::http_error::ClientError)
}

/// A response, read whole.
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) retry_after: Option<Duration>,
    pub(super) body: Bytes,
    /// `Content-Type`, if given.
    pub(super) content_type: Option<String>,
    /// Who answered, from the `X-Influxdb-Version` and `X-Influxdb-Build` headers.
    pub(super) server: Option<Server>,
}

/// An InfluxDB server as its headers name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Server {
    /// `X-Influxdb-Version` (`1.8.10`, `v2.7.1`, `3.0.1`), if given (2.x Cloud gives none).
    pub(super) version: Option<String>,
    /// `X-Influxdb-Build` (`OSS`, `Enterprise`, `Cloud`, `Core`), if given.
    pub(super) build: Option<String>,
}

impl Server {
    /// From a response's headers; `None` when neither header is there.
    fn of(headers: &reqwest::header::HeaderMap) -> Option<Server> {
        let get = |k: &str| {
            headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let (version, build) = (get("x-influxdb-version"), get("x-influxdb-build"));
        (version.is_some() || build.is_some()).then_some(Server { version, build })
    }

    /// The major version (1, 2, 3), when the version says.
    pub(super) fn major(&self) -> Option<u32> {
        let v = self.version.as_deref()?.trim_start_matches(['v', 'V']);
        v.split(['.', '~', '-']).next()?.parse().ok()
    }
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InfluxDB")?;
        if let Some(v) = &self.version {
            write!(f, " {}", v.trim_start_matches(['v', 'V']))?;
        }
        if let Some(b) = &self.build {
            write!(f, " ({b})")?;
        }
        Ok(())
    }
}

/// A short excerpt of a body for an error: whitespace collapsed, at most [`MAX_EXCERPT`]
/// characters.
pub(super) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let words: Vec<&str> = text.split_whitespace().collect();
    let one_line = words.join(" ");
    match one_line.char_indices().nth(MAX_EXCERPT) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

/// `s` trimmed and cut to [`MAX_MESSAGE`] characters, for quoting a server in an error.
pub(super) fn truncate(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(MAX_MESSAGE) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Whether a server's message says the database (1.x, 3.x) or its 2.x bucket does not exist.
pub(super) fn is_database_not_found(message: &str) -> bool {
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
    /// An error of this node.
    pub(super) fn err(&self, kind: ErrorKind, message: impl Into<String>) -> NodeError {
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
    pub(super) async fn call(&self, rb: RequestBuilder, what: &str) -> Result<Reply, NodeError> {
        // The semaphore is never closed, so acquiring only waits.
        let _permit = self.permits.acquire().await.ok();
        let resp = self
            .authorize(rb)
            .send()
            .await
            .map_err(|e| self.transport_error(e, what))?;
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
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let server = Server::of(resp.headers());
        if let Some(s) = &server {
            self.note_server(s);
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(e, what))?;
        let reply = Reply {
            status,
            retry_after,
            body,
            content_type,
            server,
        };
        if reply.status.is_success() && !Self::looks_like_influx(&reply) {
            return Err(self.not_influx(&reply, what));
        }
        Ok(reply)
    }

    /// A failure to send or to receive: `Timeout`, or `Unavailable` with the cause.
    pub(super) fn transport_error(&self, e: reqwest::Error, what: &str) -> NodeError {
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
                format!(
                    "{what}: cannot connect to {}: {}",
                    self.shown_url,
                    reqwest_detail(e)
                ),
            )
        } else {
            self.err(
                ErrorKind::Unavailable,
                format!(
                    "{what}: the connection to {} failed: {}",
                    self.shown_url,
                    reqwest_detail(e)
                ),
            )
        }
    }

    /// Whether a successful answer can be InfluxDB's: it names itself in its headers, or it
    /// has no body (writes, `/ping`) or a JSON one (2.x Cloud names no version).
    fn looks_like_influx(reply: &Reply) -> bool {
        reply.server.is_some()
            || reply.status == StatusCode::NO_CONTENT
            || reply
                .content_type
                .as_deref()
                .is_some_and(|t| t.contains("json"))
    }

    /// A success answer from something that is not InfluxDB (a web server or proxy on that
    /// port): never taken as a write acknowledged or a query answered.
    fn not_influx(&self, reply: &Reply, what: &str) -> NodeError {
        self.err(
            ErrorKind::Rejected,
            format!(
                "{what}: {} answered HTTP {}: {}",
                self.shown_url,
                reply.status.as_u16(),
                Self::message(reply)
            ),
        )
    }

    /// The server's message in an error reply: InfluxDB's JSON `error`, or — from anything
    /// else, such as a web server or proxy on that port — who answered and a short excerpt,
    /// never the whole body.
    pub(super) fn message(reply: &Reply) -> String {
        if let Some(m) = parse::error_message(&reply.body) {
            return truncate(&m);
        }
        let shown = excerpt(&reply.body);
        let kind = reply.content_type.as_deref().unwrap_or("no content type");
        if reply.server.is_none() {
            let body = if shown.is_empty() {
                "an empty body".to_string()
            } else {
                format!("\"{shown}\"")
            };
            return format!(
                "the server is not InfluxDB (no X-Influxdb-Version header; {kind}): {body}"
            );
        }
        if shown.is_empty() {
            reply
                .status
                .canonical_reason()
                .unwrap_or("no message")
                .to_string()
        } else {
            format!("{kind}: {shown}")
        }
    }

    /// The error for a reply whose status is not a success.
    pub(super) fn status_error(&self, reply: &Reply, what: &str) -> NodeError {
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

    /// The `/query` parameters for `q`: database, nanosecond epochs, retention policy.
    fn query_params<'a>(&'a self, q: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut params: Vec<(&str, &str)> = vec![("db", &self.database), ("epoch", "ns"), ("q", q)];
        if let Some(rp) = &self.retention_policy {
            params.push(("rp", rp));
        }
        params
    }

    /// Runs InfluxQL read statements and returns the body of a successful answer.
    pub(super) async fn query(&self, q: &str, what: &str) -> Result<Bytes, NodeError> {
        let params = self.query_params(q);
        let rb = if q.len() <= MAX_GET_QUERY {
            self.client.get(self.query_url.clone()).query(&params)
        } else {
            self.client.post(self.query_url.clone()).form(&params)
        };
        let started = std::time::Instant::now();
        let reply = self.call(rb, what).await?;
        tracing::debug!(
            node = %self.name,
            what,
            ms = started.elapsed().as_millis() as u64,
            bytes = reply.body.len(),
            query = %excerpt_of(q),
            "query answered"
        );
        if !reply.status.is_success() {
            return Err(self.status_error(&reply, what));
        }
        Ok(reply.body)
    }

    /// Runs InfluxQL statements that change data (`DELETE`), sent by POST as InfluxDB
    /// requires; `Ok(false)` when the database does not exist (nothing to change), an error
    /// of the right kind when the request or one statement fails.
    pub(super) async fn execute(&self, q: &str, what: &str) -> Result<bool, NodeError> {
        let rb = self
            .client
            .post(self.query_url.clone())
            .form(&self.query_params(q));
        let reply = self.call(rb, what).await?;
        if !reply.status.is_success() {
            return Err(self.status_error(&reply, what));
        }
        let results = self.statements(
            parse::parse_query(
                &reply.body,
                parse::Rows::Table,
                &mut parse::Interner::default(),
            ),
            what,
        )?;
        for st in &results {
            if !self.found_among(st, what).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Starts a chunked query (`chunk_size` rows per chunk) and returns the response once its
    /// status says success, with the permit it holds while its body streams.
    pub(super) async fn query_chunked(
        &self,
        q: &str,
        chunk_size: usize,
        what: &str,
    ) -> Result<(reqwest::Response, Option<tokio::sync::OwnedSemaphorePermit>), NodeError> {
        let chunk = chunk_size.to_string();
        let mut params = self.query_params(q);
        params.push(("chunked", "true"));
        params.push(("chunk_size", &chunk));
        // The semaphore is never closed, so acquiring only waits.
        let permit = self.permits.clone().acquire_owned().await.ok();
        let started = std::time::Instant::now();
        let resp = self
            .authorize(self.client.post(self.query_url.clone()).form(&params))
            .send()
            .await
            .map_err(|e| self.transport_error(e, what))?;
        tracing::debug!(
            node = %self.name,
            what,
            ms = started.elapsed().as_millis() as u64,
            query = %excerpt_of(q),
            "chunked query started answering"
        );
        if !resp.status().is_success() {
            let reply = self.read_reply(resp, what).await?;
            return Err(self.status_error(&reply, what));
        }
        let server = Server::of(resp.headers());
        let json = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.contains("json"));
        if server.is_none() && !json {
            // Read the (short excerpt of the) body to say what answered instead.
            let mut reply = self.read_reply(resp, what).await.err();
            return Err(reply.take().unwrap_or_else(|| {
                self.err(
                    ErrorKind::Rejected,
                    format!("{what}: {} is not InfluxDB", self.shown_url),
                )
            }));
        }
        Ok((resp, permit))
    }

    /// Starts a chunked query (`chunk_size` rows per chunk), to be read chunk by chunk.
    pub(super) async fn open_chunks(
        &self,
        q: &str,
        chunk_size: usize,
        what: &str,
    ) -> Result<Chunks, NodeError> {
        let (resp, permit) = self.query_chunked(q, chunk_size, what).await?;
        Ok(Chunks {
            resp,
            buf: Vec::new(),
            _permit: permit,
        })
    }

    /// The statements of a parsed answer; an error for the whole request is the server
    /// refusing it.
    pub(super) fn statements(
        &self,
        parsed: Result<parse::Response, ParseError>,
        what: &str,
    ) -> Result<Vec<Statement>, NodeError> {
        let resp = parsed.map_err(|e| self.err(ErrorKind::BadResponse, format!("{what}: {e}")))?;
        match resp.error {
            Some(e) => Err(self.err(
                ErrorKind::Rejected,
                format!("{what}: {}{}", truncate(&e), self.server_note()),
            )),
            None => Ok(resp.results),
        }
    }

    /// ` (refused by InfluxDB 3.0.1 (Core))`, naming the server that refused a statement, when
    /// it said who it is.
    fn server_note(&self) -> String {
        match self.server() {
            Some(s) => format!(" (refused by {s})"),
            None => String::new(),
        }
    }

    /// Whether a statement of a query of several found its database, as [`Inner::found`];
    /// InfluxDB 1.x answers such a query on a missing database (or any first statement that
    /// fails) with "not executed" alone, so that answer asks whether the database exists:
    /// `Ok(false)` if not, an error if so (the cause went missing: try again).
    pub(super) async fn found_among(&self, st: &Statement, what: &str) -> Result<bool, NodeError> {
        match &st.error {
            Some(e) if e.trim() == "not executed" => {
                if self.database_exists(what).await? {
                    Err(self.err(
                        ErrorKind::BadResponse,
                        format!(
                            "{what}: a statement was not executed, and the server did not say why"
                        ),
                    ))
                } else if self.creates_database {
                    Ok(false)
                } else {
                    Err(self.missing_database(self.server().as_ref()).await)
                }
            }
            Some(e) if is_database_not_found(e) && !self.creates_database => {
                Err(self.missing_database(self.server().as_ref()).await)
            }
            _ => self.found(st, what),
        }
    }

    /// Whether the node's database exists.
    pub(super) async fn database_exists(&self, what: &str) -> Result<bool, NodeError> {
        let q = super::influxql::show_retention_policies(&self.database);
        let body = self.query(&q, what).await?;
        let results = self.statements(
            parse::parse_query(&body, parse::Rows::Table, &mut parse::Interner::default()),
            what,
        )?;
        match results.first() {
            Some(st) => self.database_found(st, what),
            None => Err(self.err(ErrorKind::BadResponse, format!("{what}: no result"))),
        }
    }

    /// Whether a statement found its database: `Ok(false)` for "database not found" on a node
    /// whose first write creates it (no data yet); on any other node (the primary) a missing
    /// database is an error, never an empty store; an error for any other failure.
    pub(super) fn found(&self, st: &Statement, what: &str) -> Result<bool, NodeError> {
        match &st.error {
            Some(e) if is_database_not_found(e) && !self.creates_database => Err(self.err(
                ErrorKind::Rejected,
                format!(
                    "{what}: database {:?} does not exist on {} (dms does not create it: check the name, or create it there)",
                    self.database, self.shown_url
                ),
            )),
            _ => self.database_found(st, what),
        }
    }

    /// Whether a statement found its database, whatever the node: `Ok(false)` for "database
    /// not found", an error for any other failure.
    pub(super) fn database_found(&self, st: &Statement, what: &str) -> Result<bool, NodeError> {
        match &st.error {
            None => Ok(true),
            Some(e) if is_database_not_found(e) => Ok(false),
            Some(e) => {
                let kind = statement_error_kind(e);
                let note = if kind == ErrorKind::Rejected {
                    self.server_note()
                } else {
                    String::new()
                };
                Err(self.err(kind, format!("{what}: {}{note}", truncate(e))))
            }
        }
    }
}

/// An open chunked `/query` answer: one JSON document per line, each a chunk of at most
/// `chunk_size` rows (a chunk with `"partial": true` continues in the next one; chunked
/// answers are not cut at the server's `max-row-limit`). Holds one of the node's permits
/// until dropped.
pub(super) struct Chunks {
    resp: reqwest::Response,
    buf: Vec<u8>,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Chunks {
    /// The next chunk, or `None` at the end of the answer.
    pub(super) async fn next(
        &mut self,
        inner: &Inner,
        what: &str,
    ) -> Result<Option<Vec<u8>>, NodeError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(line));
            }
            match self
                .resp
                .chunk()
                .await
                .map_err(|e| inner.transport_error(e, what))?
            {
                Some(bytes) => self.buf.extend_from_slice(&bytes),
                None if self.buf.iter().all(u8::is_ascii_whitespace) => return Ok(None),
                None => return Ok(Some(std::mem::take(&mut self.buf))),
            }
        }
    }
}

/// The start of a query for a debug line.
fn excerpt_of(q: &str) -> String {
    match q.char_indices().nth(160) {
        Some((i, _)) => format!("{}…", &q[..i]),
        None => q.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_database_or_bucket_is_recognised() {
        assert!(is_database_not_found(r#"database not found: "x""#));
        assert!(is_database_not_found(r#"bucket "x/autogen" not found"#));
        assert!(!is_database_not_found("retention policy not found: r"));
    }
}
