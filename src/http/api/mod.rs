//! The JSON API (axum): read-only views over the history and status, plus task triggers.
//!
//! Routes: `GET /healthz`, `GET /metrics` (OpenMetrics, or Prometheus text 0.0.4 when the
//! `Accept` header prefers it), and under `/api/dms`:
//! `GET sync/history`, `GET sync/status`, `GET sync/metrics`, `GET tasks`,
//! `POST tasks/{name}/run`, `GET runs`, `GET runs/{id}`, `POST reconcile`, `GET reconcile`,
//! `POST restore`.
//! Each kind of object has one JSON shape, shared with the CLI's `--json` (README "JSON
//! shapes"). With `api.token` set, every `/api` route needs
//! `Authorization: Bearer <token>` ([`super::auth`]). Bad input gets a 400 with a JSON
//! message, never a 500.

mod params;

use super::auth::access;
use crate::app::metrics::{self, MetricsReport};
use crate::app::status::{self, SeriesStatus};
use crate::app::tasks::{self, TaskView};
use crate::daemon::metrics::Scrape;
use crate::daemon::metrics::exposition::Format;
use crate::daemon::{Daemon, RestoreTriggerError, TriggerError};
use crate::history::{self, HistoryFilter, HistoryReader, HistoryRow, RunDetail, RunRow, Trigger};
use crate::restore::RestoreArgs;
use crate::sync::{Pass, ReconcileArgs};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use params::Params;
use std::sync::Arc;

/// Largest page of history rows.
pub const MAX_LIMIT: usize = 10_000;

/// An error answer: status code and a JSON `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An answer with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

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

/// The API's routes (the `/api/dms` tree behind the token, `/healthz`, `/metrics`).
pub fn routes(daemon: Arc<Daemon>) -> Router<Arc<Daemon>> {
    let api = Router::new()
        .route("/sync/history", get(history))
        .route("/sync/status", get(sync_status))
        .route("/sync/metrics", get(metrics_json))
        .route("/tasks", get(tasks))
        .route("/tasks/{name}/run", post(run_task))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run_detail))
        .route("/reconcile", post(reconcile))
        .route("/reconcile", get(reconciles))
        .route("/restore", post(restore))
        .route_layer(axum::middleware::from_fn_with_state(daemon, auth));
    Router::new()
        .nest("/api/dms", api)
        .route("/healthz", get(healthz))
        .route("/metrics", get(prometheus))
}

async fn auth(
    State(d): State<Arc<Daemon>>,
    headers: HeaderMap,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !access(d.app.settings.api.token.as_ref(), &headers).allowed() {
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <api.token>)",
        )
        .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return r;
    }
    next.run(req).await
}

async fn read_history<R: Send + 'static>(
    d: &Daemon,
    f: impl FnOnce(&HistoryReader) -> crate::history::Result<R> + Send + 'static,
) -> ApiResult<R> {
    history::read(&d.app.settings.history.path, f)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))
}

/// A page of rows (history rows, runs), newest first, and the cursor of the next page.
#[derive(serde::Serialize)]
struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<i64>,
}

/// How many rows to read for a page of `limit` (0: every row): one more than the page, to
/// know whether another follows; 0 (no limit) for every row.
fn rows_to_read(limit: usize) -> usize {
    if limit == 0 { 0 } else { limit + 1 }
}

impl<T> Page<T> {
    /// The first `limit` of `items` (read as [`rows_to_read`]) and, when there were more,
    /// the cursor of the next page: the id of the last item kept. `limit` 0: every item, no
    /// next page.
    fn of(mut items: Vec<T>, limit: usize, id: impl Fn(&T) -> i64) -> Page<T> {
        let limit = if limit == 0 { usize::MAX } else { limit };
        let next_cursor = (items.len() > limit).then(|| {
            items.truncate(limit);
            items.last().map(id)
        });
        Page {
            items,
            next_cursor: next_cursor.flatten(),
        }
    }
}

async fn history(
    State(d): State<Arc<Daemon>>,
    q: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Page<HistoryRow>>> {
    let p = Params::new(
        q,
        &[
            "backup", "symbol", "interval", "status", "since", "until", "limit", "cursor", "run",
            "task",
        ],
    )?;
    let limit = p.limit(100, MAX_LIMIT)?;
    // The history of a disabled backup stays readable.
    d.app
        .settings
        .check_configured_backups(p.text("backup").as_ref())
        .map_err(|e| ApiError::bad_request(format!("backup: {e}")))?;
    known_task(&d, p.text("task")).await?;
    let filter = HistoryFilter {
        backup: p.text("backup"),
        symbol: p.text("symbol"),
        interval: p.text("interval"),
        status: p.status()?,
        since: p.time("since")?,
        until: p.time("until")?,
        run_id: p.int("run")?,
        task: p.text("task"),
        before_id: p.int("cursor")?,
        limit: rows_to_read(limit),
    };
    let items = read_history(&d, move |db| db.history(&filter)).await?;
    Ok(Json(Page::of(items, limit, |r| r.id)))
}

async fn collect_status(d: &Daemon) -> ApiResult<Vec<SeriesStatus>> {
    let recorded = read_history(d, status::Recorded::read).await?;
    let engine = &d.app.engine;
    status::collect_timed(
        &d.app.settings,
        &recorded,
        engine.primary().as_ref(),
        engine.backups(),
    )
    .await
    .map_err(|e| ApiError::unavailable(e.to_string()))
}

async fn sync_status(
    State(d): State<Arc<Daemon>>,
    q: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<SeriesStatus>>> {
    let p = Params::new(q, &["backup", "symbol", "interval", "behind"])?;
    let behind = p.bool("behind")?;
    let (backup, symbol, interval) = (p.text("backup"), p.text("symbol"), p.text("interval"));
    known_backup(&d, backup.clone())?;
    let mut rows = collect_status(&d).await?;
    rows.retain(|r| {
        backup.as_ref().is_none_or(|b| &r.key.backup == b)
            && symbol.as_ref().is_none_or(|s| r.key.symbol() == s)
            && interval.as_ref().is_none_or(|i| r.key.interval() == i)
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
    let age = crate::input::parse_age(&window)
        .map_err(|e| ApiError::bad_request(format!("window: {e}")))?;
    let since = crate::input::before_now(age);
    let figures = read_history(&d, move |db| db.metrics(since)).await?;
    let status = collect_status(&d).await.unwrap_or_default();
    Ok(Json(metrics::report(
        &d.app.settings,
        window,
        since,
        figures,
        &status,
    )))
}

async fn tasks(
    State(d): State<Arc<Daemon>>,
    q: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<TaskView>>> {
    Params::new(q, &[])?;
    let last = read_history(&d, |db| db.last_runs()).await?;
    let out = tasks::summaries(&d.app.settings, &last, chrono::Utc::now(), |t| {
        d.app.is_running(t)
    })
    .into_iter()
    .map(TaskView::from)
    .collect();
    Ok(Json(out))
}

/// `GET /api/dms/runs?task=&limit=&cursor=`: task runs, newest first.
async fn runs(
    State(d): State<Arc<Daemon>>,
    q: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Page<RunRow>>> {
    let p = Params::new(q, &["task", "limit", "cursor"])?;
    let limit = p.limit(100, MAX_LIMIT)?;
    let task = p.text("task");
    known_task(&d, task.clone()).await?;
    let before = p.int("cursor")?;
    let items = read_history(&d, move |db| {
        db.runs_before(task.as_deref(), before, rows_to_read(limit))
    })
    .await?;
    Ok(Json(Page::of(items, limit, |r| r.id)))
}

/// `GET /api/dms/runs/{id}`: one run with its sync history rows (404 when there is none).
async fn run_detail(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<RunDetail>> {
    Params::new(q, &[])?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("run id {id:?} is not a number")))?;
    read_history(&d, move |db| db.run_detail(id))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no run {id}")))
}

/// `POST /api/dms/tasks/{name}/run?force=`: 202 with the run id (and `Location` of the run)
/// once the run is recorded; the run goes on in the background.
async fn run_task(
    State(d): State<Arc<Daemon>>,
    Path(name): Path<String>,
    q: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<(
    StatusCode,
    [(header::HeaderName, String); 1],
    Json<serde_json::Value>,
)> {
    let p = Params::new(q, &["force"])?;
    let force = p.bool("force")?.unwrap_or(false);
    match d.trigger(&name, Trigger::Api, force).await {
        Ok(run_id) => Ok((
            StatusCode::ACCEPTED,
            [(header::LOCATION, format!("/api/dms/runs/{run_id}"))],
            Json(serde_json::json!({ "task": name, "run_id": run_id, "status": "started" })),
        )),
        Err(e @ TriggerError::Unknown(_)) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, e.to_string()))
        }
        Err(
            e @ (TriggerError::Running(_) | TriggerError::Reconciling | TriggerError::Disabled(_)),
        ) => Err(ApiError::new(StatusCode::CONFLICT, e.to_string())),
        Err(e @ (TriggerError::ShuttingDown | TriggerError::NotRecorded(_))) => {
            Err(ApiError::unavailable(e.to_string()))
        }
    }
}

/// A `backup` parameter must name an enabled backup.
fn known_backup(d: &Daemon, backup: Option<String>) -> ApiResult<()> {
    d.app
        .settings
        .check_backups(backup.as_ref())
        .map_err(|e| ApiError::bad_request(format!("backup: {e}")))
}

/// A `task` parameter must name a task, one of dms's own pseudo-tasks (`@…`), or a task the
/// history holds runs of.
async fn known_task(d: &Daemon, task: Option<String>) -> ApiResult<()> {
    let Some(t) = task else {
        return Ok(());
    };
    let settings = &d.app.settings;
    if tasks::is_named(settings, &t) {
        return Ok(());
    }
    let name = t.clone();
    let has_runs = !read_history(d, move |db| db.runs(Some(&name), 1))
        .await?
        .is_empty();
    tasks::check_known(settings, &t, has_runs)
        .map_err(|e| ApiError::bad_request(format!("task: {e}")))
}

/// Comma-separated list parameter.
fn list(p: &Params, key: &str) -> Option<Vec<String>> {
    p.text(key).map(|v| {
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

/// `POST /api/dms/reconcile?backup=&symbol=&interval=&since=&until=&dry_run=&exact=&allow_deletes=`: starts a
/// reconciliation with full-field digests of every window: 202 with the run id and
/// `Location: /api/dms/runs/{id}` once the run is recorded (as a task trigger answers), 409
/// while one runs.
async fn reconcile(
    State(d): State<Arc<Daemon>>,
    q: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<(
    StatusCode,
    [(header::HeaderName, String); 1],
    Json<serde_json::Value>,
)> {
    let p = Params::new(
        q,
        &[
            "backup",
            "symbol",
            "interval",
            "since",
            "until",
            "dry_run",
            "exact",
            "allow_deletes",
        ],
    )?;
    let nanos = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.timestamp_nanos_opt().unwrap_or(i64::MIN))
    };
    let args = ReconcileArgs {
        symbols: list(&p, "symbol"),
        intervals: list(&p, "interval"),
        backups: list(&p, "backup"),
        since: nanos(p.time("since")?),
        until: nanos(p.time("until")?),
        dry_run: p.bool("dry_run")?.unwrap_or(false),
        exact: p.bool("exact")?.unwrap_or(false),
        allow_deletes: p
            .int("allow_deletes")?
            .map(|n| {
                u64::try_from(n).map_err(|_| {
                    ApiError::bad_request("allow_deletes: give a number of points, 0 or more")
                })
            })
            .transpose()?,
    };
    if let Some(b) = &args.backups {
        d.app
            .settings
            .check_backups(b)
            .map_err(|e| ApiError::bad_request(format!("backup: {e}")))?;
    }
    match d
        .trigger_reconcile_run(args, Pass::Complete, Trigger::Api)
        .await
    {
        Ok(run_id) => Ok((
            StatusCode::ACCEPTED,
            [(header::LOCATION, format!("/api/dms/runs/{run_id}"))],
            Json(serde_json::json!({
                "task": crate::app::reconcile::RECONCILE_TASK,
                "run_id": run_id,
                "status": "started",
            })),
        )),
        Err(e @ (TriggerError::ShuttingDown | TriggerError::NotRecorded(_))) => {
            Err(ApiError::unavailable(e.to_string()))
        }
        Err(e) => Err(ApiError::new(StatusCode::CONFLICT, e.to_string())),
    }
}

/// `POST /api/dms/restore` with a JSON body of the restore's options (`from`, `to`,
/// `symbols`, `intervals`, `since`, `until`, `overwrite`, `dry_run`; unknown keys refused):
/// 202 with the run id and `Location: /api/dms/runs/{id}` once the run is recorded; 400 for a
/// node it cannot use or an empty range, 409 while another restore runs.
async fn restore(
    State(d): State<Arc<Daemon>>,
    q: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
    body: Result<Json<RestoreArgs>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(
    StatusCode,
    [(header::HeaderName, String); 1],
    Json<serde_json::Value>,
)> {
    Params::new(q, &[])?;
    let Json(args) = body.map_err(|r| {
        let status = if r.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            r.status()
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, r.body_text())
    })?;
    match d.trigger_restore(args, Trigger::Api).await {
        Ok(run_id) => Ok((
            StatusCode::ACCEPTED,
            [(header::LOCATION, format!("/api/dms/runs/{run_id}"))],
            Json(serde_json::json!({
                "task": crate::app::restore::RESTORE_TASK,
                "run_id": run_id,
                "status": "started",
            })),
        )),
        Err(e) => {
            let status = match &e {
                RestoreTriggerError::Refused(_) => StatusCode::BAD_REQUEST,
                RestoreTriggerError::Running => StatusCode::CONFLICT,
                RestoreTriggerError::ShuttingDown | RestoreTriggerError::NotRecorded => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            };
            Err(ApiError::new(status, e.to_string()))
        }
    }
}

/// `GET /api/dms/reconcile?latest=true&limit=`: recorded reconciliations, newest first.
async fn reconciles(
    State(d): State<Arc<Daemon>>,
    q: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let p = Params::new(q, &["latest", "limit"])?;
    let latest = p.bool("latest")?.unwrap_or(false);
    let limit = p.limit(100, MAX_LIMIT)?;
    let rows = read_history(&d, move |db| db.reconciles(latest, limit)).await?;
    Ok(Json(serde_json::json!({
        "running": d.is_reconciling(),
        "items": rows,
    })))
}

async fn healthz(State(d): State<Arc<Daemon>>) -> Json<serde_json::Value> {
    let nodes = d.ping_nodes().await;
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
        "started_at": history::time_text(d.started_at()),
        "stopping": d.is_stopping(),
        "nodes": nodes,
        "history": match history {
            Ok(_) => serde_json::json!({ "ok": true }),
            Err(e) => serde_json::json!({ "ok": false, "error": e }),
        },
    }))
}

/// `GET /metrics`: OpenMetrics, or the text format 0.0.4 for a scraper whose `Accept` prefers
/// `text/plain`. Pings the nodes, builds the status and reads the history's totals at once.
async fn prometheus(State(d): State<Arc<Daemon>>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let (nodes, status, totals, reconciles) = tokio::join!(
        d.ping_nodes(),
        collect_status(&d),
        read_history(&d, |db| db.totals()),
        read_history(&d, |db| db.last_reconciles_by_kind())
    );
    let body = d.metrics.render(
        Scrape {
            settings: &d.app.settings,
            totals: totals.map_err(|e| e.message),
            status: status.ok(),
            nodes: &nodes,
            reconciles: reconciles.ok(),
        },
        format,
    );
    (
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "Accept"),
        ],
        body,
    )
        .into_response()
}
