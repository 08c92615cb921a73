//! The HTTP API (axum): read-only views over the history and status, plus task triggers.
//!
//! Routes: `GET /healthz`, `GET /metrics` (Prometheus text), and under `/api/dms`:
//! `GET sync/history`, `GET sync/status`, `GET sync/metrics`, `GET tasks`,
//! `POST tasks/{name}/run`. With `api.token` set, every `/api` route needs
//! `Authorization: Bearer <token>`. Bad input gets a 400 with a JSON message, never a 500.

mod params;

use crate::app::Trigger;
use crate::app::metrics::{self, MetricsReport};
use crate::app::status::{self, SeriesStatus};
use crate::daemon::{Daemon, TriggerError};
use crate::history::{HistoryDb, HistoryFilter, HistoryRow};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use params::Params;
use std::sync::Arc;
use std::time::Duration;

/// Largest page of history rows.
pub const MAX_LIMIT: usize = 10_000;

/// An error answer: status code and a JSON `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The router over a running daemon.
pub fn router(daemon: Arc<Daemon>) -> Router {
    let api = Router::new()
        .route("/sync/history", get(history))
        .route("/sync/status", get(sync_status))
        .route("/sync/metrics", get(metrics_json))
        .route("/tasks", get(tasks))
        .route("/tasks/{name}/run", post(run_task))
        .route_layer(axum::middleware::from_fn_with_state(daemon.clone(), auth));
    Router::new()
        .nest("/api/dms", api)
        .route("/healthz", get(healthz))
        .route("/metrics", get(prometheus))
        .merge(crate::web::routes())
        .fallback(|| async {
            ApiError {
                status: StatusCode::NOT_FOUND,
                message: "no such route".into(),
            }
        })
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(daemon)
}

/// Compares in time independent of where the strings differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a request may see data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Access {
    /// No token is configured.
    Open,
    /// The right bearer token came with the request.
    Granted,
    /// A token is configured and the request brought none.
    Missing,
    /// The request brought a wrong token.
    Wrong,
}

/// Checks the `Authorization: Bearer` header against `api.token` (the scheme name is
/// case-insensitive, as RFC 7235 says).
pub(crate) fn access(d: &Daemon, headers: &HeaderMap) -> Access {
    let Some(token) = &d.app.settings.api.token else {
        return Access::Open;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim_start().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
        });
    match given {
        None => Access::Missing,
        Some(g) if same_secret(g.as_bytes(), token.expose().as_bytes()) => Access::Granted,
        Some(_) => Access::Wrong,
    }
}

async fn auth(
    State(d): State<Arc<Daemon>>,
    headers: HeaderMap,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if matches!(access(&d, &headers), Access::Missing | Access::Wrong) {
        {
            let mut r = ApiError {
                status: StatusCode::UNAUTHORIZED,
                message: "missing or wrong bearer token (Authorization: Bearer <api.token>)".into(),
            }
            .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
    }
    next.run(req).await
}

async fn read_history<R: Send + 'static>(
    d: &Daemon,
    f: impl FnOnce(&HistoryDb) -> crate::history::Result<R> + Send + 'static,
) -> ApiResult<R> {
    let path = d.app.settings.history.path.clone();
    tokio::task::spawn_blocking(move || HistoryDb::open_readonly(&path).and_then(|db| f(&db)))
        .await
        .map_err(|e| ApiError::unavailable(format!("history reader failed: {e}")))?
        .map_err(|e| ApiError::unavailable(e.to_string()))
}

/// A page of history rows and the cursor of the next page.
#[derive(serde::Serialize)]
struct HistoryPage {
    items: Vec<HistoryRow>,
    next_cursor: Option<i64>,
}

async fn history(
    State(d): State<Arc<Daemon>>,
    q: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<HistoryPage>> {
    let p = Params::new(
        q,
        &[
            "backup", "symbol", "interval", "status", "since", "until", "limit", "cursor", "run",
        ],
    )?;
    let limit = p.limit(100, MAX_LIMIT)?;
    let filter = HistoryFilter {
        backup: p.text("backup"),
        symbol: p.text("symbol"),
        interval: p.text("interval"),
        status: p.status()?,
        since: p.time("since")?,
        until: p.time("until")?,
        run_id: p.int("run")?,
        before_id: p.int("cursor")?,
        limit: limit + 1,
    };
    let mut items = read_history(&d, move |db| db.history(&filter)).await?;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|r| r.id)
    } else {
        None
    };
    Ok(Json(HistoryPage { items, next_cursor }))
}

/// How long the status view may wait for the primary before answering 503 (below a typical
/// 10 s Prometheus scrape timeout).
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(8);

async fn collect_status(d: &Daemon) -> ApiResult<Vec<SeriesStatus>> {
    let rows = read_history(d, |db| db.status_rows()).await?;
    let primary = d.app.engine.primary();
    match tokio::time::timeout(
        STATUS_TIMEOUT,
        status::collect(&d.app.settings, &rows, primary.as_ref()),
    )
    .await
    {
        Ok(r) => r.map_err(|e| ApiError::unavailable(e.to_string())),
        Err(_) => Err(ApiError::unavailable(format!(
            "primary {} did not answer within {} s",
            primary.name(),
            STATUS_TIMEOUT.as_secs()
        ))),
    }
}

async fn sync_status(
    State(d): State<Arc<Daemon>>,
    q: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<SeriesStatus>>> {
    let p = Params::new(q, &["backup", "symbol", "interval", "behind"])?;
    let behind = p.bool("behind")?;
    let (backup, symbol, interval) = (p.text("backup"), p.text("symbol"), p.text("interval"));
    let mut rows = collect_status(&d).await?;
    rows.retain(|r| {
        backup.as_ref().is_none_or(|b| &r.backup == b)
            && symbol.as_ref().is_none_or(|s| &r.symbol == s)
            && interval.as_ref().is_none_or(|i| &r.interval == i)
            && behind.is_none_or(|b| r.behind == b)
    });
    Ok(Json(rows))
}

async fn metrics_json(
    State(d): State<Arc<Daemon>>,
    q: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<MetricsReport>> {
    let p = Params::new(q, &["window"])?;
    let window = p.text("window").unwrap_or_else(|| "24h".into());
    let age = crate::model::parse_age(&window)
        .map_err(|e| ApiError::bad_request(format!("window: {e}")))?;
    let since = (chrono::Utc::now() - age).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let s = since.clone();
    let figures = read_history(&d, move |db| db.metrics(&s)).await?;
    let status = collect_status(&d).await.unwrap_or_default();
    Ok(Json(metrics::report(
        &d.app.settings,
        window,
        since,
        figures,
        &status,
    )))
}

/// One task as the API shows it.
#[derive(serde::Serialize)]
pub struct TaskInfo {
    name: String,
    enabled: bool,
    schedule: Option<String>,
    timezone: String,
    next_run: Option<String>,
    running: bool,
    last_run: Option<crate::history::RunRow>,
}

async fn tasks(State(d): State<Arc<Daemon>>) -> ApiResult<Json<Vec<TaskInfo>>> {
    let last = read_history(&d, |db| db.last_runs()).await?;
    let now = chrono::Utc::now();
    let out = d
        .app
        .settings
        .tasks
        .iter()
        .map(|t| TaskInfo {
            name: t.name.clone(),
            enabled: t.enabled,
            schedule: t.schedule.as_ref().map(|c| c.text.clone()),
            timezone: t.timezone.name().to_string(),
            next_run: t
                .schedule
                .as_ref()
                .filter(|_| t.enabled)
                .and_then(|c| crate::scheduler::next_after(&c.schedule, t.timezone, now))
                .map(|n| n.with_timezone(&t.timezone).to_rfc3339()),
            running: d.app.is_running(&t.name),
            last_run: last.iter().find(|r| r.task == t.name).cloned(),
        })
        .collect();
    Ok(Json(out))
}

async fn run_task(
    State(d): State<Arc<Daemon>>,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    match d.trigger(&name, Trigger::Api) {
        Ok(()) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "task": name, "status": "started" })),
        )),
        Err(e @ TriggerError::Unknown(_)) => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: e.to_string(),
        }),
        Err(e @ TriggerError::Running(_)) => Err(ApiError {
            status: StatusCode::CONFLICT,
            message: e.to_string(),
        }),
        Err(e @ TriggerError::ShuttingDown) => Err(ApiError::unavailable(e.to_string())),
    }
}

/// Reachability of one node.
#[derive(serde::Serialize)]
struct NodeHealth {
    name: String,
    role: &'static str,
    reachable: bool,
    error: Option<String>,
}

async fn ping_nodes(d: &Daemon) -> Vec<NodeHealth> {
    let engine = &d.app.engine;
    let mut nodes = vec![("primary", engine.primary().clone())];
    nodes.extend(engine.backups().iter().map(|b| ("backup", b.clone())));
    let checks = nodes.into_iter().map(|(role, n)| async move {
        let r = tokio::time::timeout(Duration::from_secs(3), n.ping()).await;
        let error = match r {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("node {}: no answer within 3 s", n.name())),
        };
        NodeHealth {
            name: n.name().to_string(),
            role,
            reachable: error.is_none(),
            error,
        }
    });
    let out = futures::future::join_all(checks).await;
    for n in &out {
        d.metrics.set_node_up(&n.name, n.reachable);
    }
    out
}

async fn healthz(State(d): State<Arc<Daemon>>) -> Json<serde_json::Value> {
    let nodes = ping_nodes(&d).await;
    let history = match read_history(&d, |db| db.runs(None, 1)).await {
        Ok(_) => match d.app.history.write_error() {
            None => Ok(()),
            Some(e) => Err(format!("writes fail: {e}")),
        },
        Err(e) => Err(format!("reads fail: {}", e.message)),
    };
    let healthy = nodes.iter().all(|n| n.reachable) && history.is_ok();
    Json(serde_json::json!({
        "status": if healthy { "ok" } else { "degraded" },
        "started_at": d.started_at().to_rfc3339(),
        "stopping": d.is_stopping(),
        "nodes": nodes,
        "history": match history {
            Ok(_) => serde_json::json!({ "ok": true }),
            Err(e) => serde_json::json!({ "ok": false, "error": e }),
        },
    }))
}

async fn prometheus(State(d): State<Arc<Daemon>>) -> Response {
    ping_nodes(&d).await;
    if let Ok(rows) = collect_status(&d).await {
        d.metrics.set_status(&rows);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        d.metrics.encode(),
    )
        .into_response()
}
