//! The status page: `GET /` on the daemon's listen address, server-rendered HTML for people
//! (backups, series, tasks, failures, a throughput chart), with everything — markup, CSS, the
//! little JavaScript there is — compiled into the binary.
//!
//! - [`routes`]: `GET /` (the page) and `POST /ui/tasks/{name}/run` (the "Run now" button of a
//!   page without JavaScript: triggers the run and answers 303 back to the page).
//! - `page.rs`: the markup ([maud]); `cron.rs`: schedules in words; `failures.rs`: failed
//!   syncs grouped by backup and cause.
//!
//! Auth follows the API: without `api.token` the page works with no JavaScript at all. With a
//! token, `GET /` without `Authorization: Bearer …` answers only a sign-in shell with no data;
//! its script keeps the token in `sessionStorage`, fetches `/` again with the bearer header and
//! puts the answer's body in place, and sends "Run now" to the API with the header too. The
//! token is never put in a URL or in a page.
//!
//! Like the API, the page only reads the history (through [`HistoryReader`]'s queries) and
//! triggers task runs through [`Daemon::trigger`].

mod cron;
mod failures;
mod format;
mod page;

use super::auth::{Access, access};
use crate::app::health::NodeHealth;
use crate::app::metrics::{self, BackupFigures};
use crate::app::status::{self, SeriesStatus};
use crate::app::tasks::{self, TaskSummary};
use crate::daemon::{CHECK_TASK, Daemon, TriggerError};
use crate::history::{
    self, HistoryFilter, HistoryReader, HistoryRow, HourlyThroughput, RunRow, Status, Trigger,
};
use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// Default seconds between automatic reloads of the page.
pub const DEFAULT_REFRESH: u32 = 30;
/// Shortest allowed refresh interval, seconds.
const MIN_REFRESH: u32 = 5;
/// Longest allowed refresh interval, seconds.
const MAX_REFRESH: u32 = 3600;
/// Most series rows the table shows; narrow with the filter for the rest.
const MAX_ROWS: usize = 500;
/// Groups of failed syncs shown (each one backup and cause).
const MAX_FAILURE_GROUPS: usize = 10;
/// Newest failed syncs read to group.
const FAILURE_ROWS: usize = 1000;

/// The page's routes, merged with the API's by [`super::router`].
pub fn routes() -> Router<Arc<Daemon>> {
    Router::new()
        .route("/", get(page))
        .route("/ui/tasks/{name}/run", post(run_now))
}

/// Which part of the page a request asks for: filters, refresh and a one-off notice, all from
/// plain query parameters so every state has a URL and works without JavaScript.
#[derive(Debug, Clone, Default, PartialEq)]
struct View {
    /// Only this backup (exact name).
    backup: Option<String>,
    /// Only symbols containing this text (case-insensitive).
    symbol: Option<String>,
    /// Only this interval (exact).
    interval: Option<String>,
    /// Only series that are behind.
    behind: bool,
    /// Seconds between reloads; `None` when turned off.
    refresh: Option<u32>,
    /// The outcome of a "Run now" that redirected here.
    notice: Option<Notice>,
}

/// What happened to a "Run now".
#[derive(Debug, Clone, PartialEq)]
struct Notice {
    task: String,
    outcome: RunOutcome,
}

/// The outcome of a "Run now", as carried in the redirect's query string.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RunOutcome {
    Started,
    Running,
    Unknown,
    Stopping,
    Disabled,
    NotRecorded,
}

impl RunOutcome {
    fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Started => "started",
            RunOutcome::Running => "running",
            RunOutcome::Unknown => "unknown",
            RunOutcome::Stopping => "stopping",
            RunOutcome::Disabled => "disabled",
            RunOutcome::NotRecorded => "not-recorded",
        }
    }

    fn parse(s: &str) -> Option<RunOutcome> {
        Some(match s {
            "started" => RunOutcome::Started,
            "running" => RunOutcome::Running,
            "unknown" => RunOutcome::Unknown,
            "stopping" => RunOutcome::Stopping,
            "disabled" => RunOutcome::Disabled,
            "not-recorded" => RunOutcome::NotRecorded,
            _ => return None,
        })
    }
}

impl View {
    /// Reads the parameters; unknown ones are ignored and unreadable values fall back to the
    /// defaults (a page, unlike the API, always answers).
    fn from_pairs(pairs: &[(String, String)]) -> View {
        let get = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let refresh = match get("refresh").as_deref() {
            None => Some(DEFAULT_REFRESH),
            Some("0" | "off" | "false" | "no") => None,
            Some(v) => Some(
                v.parse::<u32>()
                    .map_or(DEFAULT_REFRESH, |n| n.clamp(MIN_REFRESH, MAX_REFRESH)),
            ),
        };
        let notice = match (
            get("ran"),
            get("result").as_deref().and_then(RunOutcome::parse),
        ) {
            (Some(task), Some(outcome)) => Some(Notice { task, outcome }),
            _ => None,
        };
        View {
            backup: get("backup"),
            symbol: get("symbol"),
            interval: get("interval"),
            behind: matches!(get("behind").as_deref(), Some("1" | "true" | "on")),
            refresh,
            notice,
        }
    }

    /// The parameters that say this view, defaults left out (no notice).
    fn params(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (k, v) in [
            ("backup", &self.backup),
            ("symbol", &self.symbol),
            ("interval", &self.interval),
        ] {
            if let Some(v) = v {
                out.push((k, v.clone()));
            }
        }
        if self.behind {
            out.push(("behind", "1".into()));
        }
        match self.refresh {
            None => out.push(("refresh", "off".into())),
            Some(DEFAULT_REFRESH) => {}
            Some(n) => out.push(("refresh", n.to_string())),
        }
        out
    }

    /// The page's own URL for this view (no notice).
    fn href(&self) -> String {
        href(&self.params())
    }

    /// This view with auto-refresh switched.
    fn with_refresh(&self, refresh: Option<u32>) -> View {
        View {
            refresh,
            notice: None,
            ..self.clone()
        }
    }

    /// Whether any filter narrows the table.
    fn is_filtered(&self) -> bool {
        self.backup.is_some() || self.symbol.is_some() || self.interval.is_some() || self.behind
    }

    /// Whether a status row passes the filters.
    fn shows(&self, r: &SeriesStatus) -> bool {
        self.backup.as_ref().is_none_or(|b| &r.key.backup == b)
            && self.symbol.as_ref().is_none_or(|s| {
                r.key
                    .series
                    .symbol
                    .to_lowercase()
                    .contains(&s.to_lowercase())
            })
            && self
                .interval
                .as_ref()
                .is_none_or(|i| &r.key.series.interval == i)
            && (!self.behind || r.behind)
    }
}

/// `/` with a query string built from `params` (percent-encoded).
fn href(params: &[(&str, String)]) -> String {
    if params.is_empty() {
        return "/".into();
    }
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    format!("/?{}", q.finish())
}

/// A link to the JSON history API with these filters.
fn history_href(params: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    format!("/api/dms/sync/history?{}", q.finish())
}

/// The Content-Security-Policy of every page: nothing from elsewhere, and no script or style
/// but the page's own (by hash).
static CSP: LazyLock<String> = LazyLock::new(|| {
    use base64::Engine;
    use sha2::Digest;
    let hash = |text: &str| {
        let digest = sha2::Sha256::digest(text.as_bytes());
        format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    };
    format!(
        "default-src 'none'; script-src {}; style-src {}; img-src data:; connect-src 'self'; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        hash(page::SCRIPT),
        hash(page::STYLE)
    )
});

/// An HTML answer with the page's security headers.
fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if let Ok(v) = HeaderValue::from_str(&CSP) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

fn unauthorized(message: &str) -> Response {
    let mut r = html(
        StatusCode::UNAUTHORIZED,
        page::message(message).into_string(),
    );
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// `GET /`: the page, or the sign-in shell when a token is configured and not given.
async fn page(
    State(d): State<Arc<Daemon>>,
    headers: HeaderMap,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let pairs = q.map(|Query(p)| p).unwrap_or_default();
    let mut view = View::from_pairs(&pairs);
    // A notice is only a hint from the redirect; one about a task that does not exist can
    // only say so (a link cannot make the page claim a run started).
    if view
        .notice
        .as_ref()
        .is_some_and(|n| d.app.settings.task(&n.task).is_none() && n.outcome != RunOutcome::Unknown)
    {
        view.notice = None;
    }
    match access(d.app.settings.api.token.as_ref(), &headers) {
        Access::Missing => html(StatusCode::OK, page::shell().into_string()),
        Access::Wrong => unauthorized("That token was not accepted."),
        a @ (Access::Open | Access::Granted) => {
            let data = gather(&d, view, a == Access::Granted).await;
            html(StatusCode::OK, page::render(&data).into_string())
        }
    }
}

/// `POST /ui/tasks/{name}/run`: "Run now" from a plain form; triggers the run and sends the
/// browser back to the page (303) with the outcome and the filters it came from.
async fn run_now(
    State(d): State<Arc<Daemon>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    if !access(d.app.settings.api.token.as_ref(), &headers).allowed() {
        return unauthorized("This dms needs its API token: sign in on the status page.");
    }
    let pairs = form.map(|Form(p)| p).unwrap_or_default();
    let outcome = match d.trigger(&name, Trigger::Api, false).await {
        Ok(_) => RunOutcome::Started,
        Err(TriggerError::Running(_) | TriggerError::Reconciling) => RunOutcome::Running,
        Err(TriggerError::Disabled(_)) => RunOutcome::Disabled,
        Err(TriggerError::Unknown(_)) => RunOutcome::Unknown,
        Err(TriggerError::ShuttingDown) => RunOutcome::Stopping,
        Err(TriggerError::NotRecorded(_)) => RunOutcome::NotRecorded,
    };
    let view = View::from_pairs(&pairs);
    let mut params = view.params();
    params.push(("ran", name));
    params.push(("result", outcome.as_str().into()));
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&href(&params)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// One backup's card.
struct BackupView {
    node: NodeHealth,
    figures: BackupFigures,
    series: usize,
    reconcile: Option<crate::history::ReconcileRow>,
}

/// Everything the page shows, read at one moment.
struct PageData {
    now: DateTime<Utc>,
    started_at: DateTime<Utc>,
    view: View,
    /// A token is configured (and was given): the page offers to forget it.
    signed_in: bool,
    primary: NodeHealth,
    backups: Vec<BackupView>,
    disabled_backups: Vec<String>,
    /// Every status row (before filters); empty when the status could not be built.
    status: Vec<SeriesStatus>,
    tasks: Vec<TaskSummary>,
    /// Tasks with `catch_up: true` (a run missed while dms was down runs once at start).
    catch_up: std::collections::HashSet<String>,
    check: Option<RunRow>,
    check_every: Option<Duration>,
    failures: Vec<failures::FailureGroup>,
    /// The failed syncs grouped were the newest [`FAILURE_ROWS`]; older ones were not read.
    failures_capped: bool,
    throughput: Vec<HourlyThroughput>,
    /// Problems reading the history or the primary, shown at the top.
    problems: Vec<String>,
}

/// What the page reads from the history in one read-only pass.
#[derive(Default)]
struct HistoryView {
    recorded: status::Recorded,
    figures: Vec<crate::history::BackupMetrics>,
    last_runs: Vec<RunRow>,
    failures: Vec<HistoryRow>,
    failures_capped: bool,
    throughput: Vec<HourlyThroughput>,
    reconciles: Vec<crate::history::ReconcileRow>,
}

fn read_history(
    db: &HistoryReader,
    since: DateTime<Utc>,
    view: &View,
) -> crate::history::Result<HistoryView> {
    let mut failures = db.history(&HistoryFilter {
        backup: view.backup.clone(),
        interval: view.interval.clone(),
        status: Some(Status::Failed),
        limit: FAILURE_ROWS,
        ..HistoryFilter::default()
    })?;
    let failures_capped = failures.len() == FAILURE_ROWS;
    if let Some(s) = &view.symbol {
        let s = s.to_lowercase();
        failures.retain(|r| r.key.series.symbol.to_lowercase().contains(&s));
    }
    Ok(HistoryView {
        recorded: status::Recorded::read(db)?,
        figures: db.metrics(since)?,
        last_runs: db.last_runs()?,
        failures,
        failures_capped,
        throughput: db.hourly_throughput(since)?,
        reconciles: db.reconciles(true, 0)?,
    })
}

/// The history, then the status view built from it (which asks the primary for its newest
/// points). Without the checkpoints every series would look never synced, so a history that
/// cannot be read gives no table (the history problem is reported).
async fn history_and_status(
    d: &Daemon,
    since: DateTime<Utc>,
    view: View,
) -> (
    Result<HistoryView, String>,
    Result<Vec<SeriesStatus>, String>,
) {
    let settings = &d.app.settings;
    let history = history::read(&settings.history.path, move |db| {
        read_history(db, since, &view)
    })
    .await
    .map_err(|e| e.to_string());
    let status = match &history {
        Err(_) => Ok(Vec::new()),
        Ok(h) => status::collect_timed(
            settings,
            &h.recorded,
            d.app.engine.primary().as_ref(),
            d.app.engine.backups(),
        )
        .await
        .map_err(|e| format!("cannot build the series status: {e}")),
    };
    (history, status)
}

/// The backup cards: the figures of each enabled backup with its ping.
fn backup_cards(
    report: metrics::MetricsReport,
    mut nodes: Vec<NodeHealth>,
    status: &[SeriesStatus],
    reconciles: &[crate::history::ReconcileRow],
) -> Vec<BackupView> {
    report
        .backups
        .into_iter()
        .map(|figures| {
            let name = figures.figures.backup.clone();
            let node = match nodes.iter().position(|n| n.name == name) {
                Some(i) => nodes.swap_remove(i),
                None => NodeHealth {
                    name: name.clone(),
                    role: "backup",
                    describe: String::new(),
                    reachable: false,
                    server: None,
                    detail: None,
                    note: None,
                    error: Some("not opened by this daemon".into()),
                },
            };
            BackupView {
                series: status.iter().filter(|r| r.key.backup == name).count(),
                reconcile: reconciles.iter().find(|r| r.backup == name).cloned(),
                node,
                figures,
            }
        })
        .collect()
}

/// Reads everything the page shows: pings the nodes, reads the history, asks the primary for
/// its newest points — concurrently. Failures become `problems`, never a failed page.
async fn gather(d: &Arc<Daemon>, view: View, signed_in: bool) -> PageData {
    let settings = &d.app.settings;
    let now = Utc::now();
    let since = now - chrono::Duration::hours(24);
    let mut problems = Vec::new();

    let (mut nodes, (history, status)) =
        tokio::join!(d.ping_nodes(), history_and_status(d, since, view.clone()));
    let primary = nodes.remove(0);
    let history = history.unwrap_or_else(|e| {
        problems.push(e);
        HistoryView::default()
    });
    let status = status.unwrap_or_else(|e| {
        problems.push(e);
        Vec::new()
    });

    let report = metrics::report(settings, "24h".into(), since, history.figures, &status);
    let backups = backup_cards(report, nodes, &status, &history.reconciles);
    let disabled_backups = settings
        .backups
        .iter()
        .filter(|b| !b.enabled)
        .map(|b| b.name.clone())
        .collect();
    let tasks = tasks::summaries(settings, &history.last_runs, now, |t| d.app.is_running(t));
    let check = history
        .last_runs
        .iter()
        .find(|r| r.task == CHECK_TASK)
        .cloned();

    PageData {
        now,
        started_at: d.started_at(),
        view,
        signed_in,
        primary,
        backups,
        disabled_backups,
        status,
        tasks,
        catch_up: settings
            .tasks
            .iter()
            .filter(|t| t.catch_up)
            .map(|t| t.name.clone())
            .collect(),
        check,
        check_every: settings
            .sync
            .check_enabled
            .then_some(settings.sync.check_interval),
        failures: {
            let mut groups = failures::group(history.failures);
            groups.truncate(MAX_FAILURE_GROUPS);
            groups
        },
        failures_capped: history.failures_capped,
        throughput: history.throughput,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(q: &str) -> View {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        View::from_pairs(&pairs)
    }

    #[test]
    fn query_parameters_round_trip_through_the_page_url() {
        let v = view("backup=backup1&symbol=US.A%26B&behind=1&refresh=60&junk=x");
        assert_eq!(v.backup.as_deref(), Some("backup1"));
        assert_eq!(v.symbol.as_deref(), Some("US.A&B"));
        assert!(v.behind);
        assert_eq!(v.refresh, Some(60));
        assert_eq!(
            v.href(),
            "/?backup=backup1&symbol=US.A%26B&behind=1&refresh=60"
        );
        assert_eq!(view(&v.href()[2..]), v);
        assert_eq!(view("").href(), "/");
        assert_eq!(view("").refresh, Some(DEFAULT_REFRESH));
    }

    #[test]
    fn refresh_can_be_turned_off_and_is_kept_in_bounds() {
        assert_eq!(view("refresh=off").refresh, None);
        assert_eq!(view("refresh=0").refresh, None);
        assert_eq!(view("refresh=1").refresh, Some(MIN_REFRESH));
        assert_eq!(view("refresh=999999").refresh, Some(MAX_REFRESH));
        assert_eq!(view("refresh=soon").refresh, Some(DEFAULT_REFRESH));
        assert_eq!(view("refresh=off").href(), "/?refresh=off");
    }

    #[test]
    fn a_notice_needs_a_task_and_a_known_outcome() {
        let v = view("ran=daily&result=started");
        assert_eq!(
            v.notice,
            Some(Notice {
                task: "daily".into(),
                outcome: RunOutcome::Started
            })
        );
        assert_eq!(
            v.href(),
            "/",
            "the notice is not part of the page's own URL"
        );
        assert_eq!(view("ran=daily&result=<script>").notice, None);
    }
}
