//! Set-ups several tests share: a SQLite project whose primary is seeded with bars and whose
//! nodes can be wrapped in [`Faulty`] before the `App` or `Engine` is built over them
//! ([`Seeded`]), and a browser next to a `dms run` that has caught every backup up ([`Page`]).

use crate::helper::browser::Browser;
use crate::helper::daemon::{DaemonProcess, free_port};
use crate::helper::faulty::{Faulty, Plan};
use crate::helper::project::{Project, bars, daily, put, sync_yaml, sync_yaml_default_delay};
use dms::app::App;
use dms::model::{NANOS_PER_SEC, Point, SeriesKey};
use dms::node::Node;
use dms::sync::Engine;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// A project whose primary holds bars of one series.
pub struct Seeded {
    pub project: Project,
    /// The seeded series.
    pub series: SeriesKey,
    /// What the primary holds, oldest first.
    pub points: Vec<Point>,
}

impl Seeded {
    /// `n` one-minute bars of `symbol` ending now, synced in batches of 10; a failed batch is
    /// retried `retry_times` times, 50 ms apart and doubling.
    pub async fn new(symbol: &str, n: usize, retry_times: u32) -> Seeded {
        Self::minutes(&sync_yaml(10, retry_times, ""), symbol, n).await
    }

    /// The same with the default retry delays, 5, 10, 20 s: for tests on paused time.
    pub async fn default_delay(symbol: &str, n: usize, retry_times: u32) -> Seeded {
        Self::minutes(&sync_yaml_default_delay(10, retry_times), symbol, n).await
    }

    /// `n` daily bars of `symbol` ending today, in a project with the default test settings.
    pub async fn daily(symbol: &str, n: usize) -> Seeded {
        Self::seed(Project::new(), symbol, "1d", daily(symbol, n)).await
    }

    async fn minutes(sync: &str, symbol: &str, n: usize) -> Seeded {
        let now = dms::model::now_nanos();
        let points = bars(symbol, "1m", n, now, 60 * NANOS_PER_SEC);
        Self::seed(Project::with_sync(sync), symbol, "1m", points).await
    }

    async fn seed(project: Project, symbol: &str, interval: &str, points: Vec<Point>) -> Seeded {
        put(project.node("primary").as_ref(), points.clone()).await;
        Seeded {
            project,
            series: SeriesKey::new(symbol, interval),
            points,
        }
    }

    /// The store `name` (`primary`, `backup1`, `backup2`) wrapped so its writes fail by `plan`.
    pub fn faulty(&self, name: &str, plan: Plan) -> Arc<Faulty> {
        Faulty::new(self.project.node(name), plan)
    }

    /// The store `name` wrapped so every write first waits `delay`.
    pub fn slow(&self, name: &str, delay: Duration) -> Arc<Faulty> {
        Faulty::slow(self.project.node(name), Plan::Healthy, delay)
    }

    /// The app over the real primary and `backups`.
    pub fn app(&self, backups: Vec<Arc<dyn Node>>) -> App {
        self.app_with_primary(self.project.node("primary"), backups)
    }

    /// The app over `primary` and `backups`.
    pub fn app_with_primary(&self, primary: Arc<dyn Node>, backups: Vec<Arc<dyn Node>>) -> App {
        App::with_nodes(self.project.settings(), primary, backups, "test").expect("app opens")
    }

    /// The bare engine (no recorded run) over the real primary and `backups`.
    pub fn engine(&self, backups: Vec<Arc<dyn Node>>) -> Engine {
        let settings = self.project.settings();
        let history = dms::history::History::open(
            &settings.history.path,
            "test",
            settings.history.busy_timeout,
        )
        .expect("history opens");
        Engine::new(
            self.project.node("primary"),
            backups,
            Arc::new(history),
            settings.sync.clone(),
        )
    }
}

/// A browser and `dms run` on a project, once the daemon has caught every backup·series up.
/// Fields drop in order: the daemon stops before its project folder goes.
pub struct Page {
    pub daemon: DaemonProcess,
    pub project: Project,
    pub browser: Browser,
}

impl Page {
    /// Starts a browser (`None` when there is none), builds the project with `project` for a
    /// free API port, starts the daemon on it and waits until all of its `rows` backup·series
    /// are current (asking with `token`, when given).
    pub async fn start(
        project: impl AsyncFnOnce(u16) -> Project,
        rows: usize,
        token: Option<&str>,
    ) -> Option<Page> {
        let browser = Browser::start().await?;
        let port = free_port();
        let project = project(port).await;
        let daemon = DaemonProcess::start(project.root(), port).await;
        wait_all_current(&daemon, rows, token).await;
        Some(Page {
            daemon,
            project,
            browser,
        })
    }
}

/// GET a JSON document, with a bearer token when given.
pub async fn get_json(url: &str, token: Option<&str>) -> Value {
    let mut r = dms::node::http_client_builder()
        .build()
        .expect("http client")
        .get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.expect("the daemon answers");
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    serde_json::from_str(&r.text().await.expect("a body")).expect("JSON")
}

/// Waits until every backup·series is current (checkpoint = primary newest).
async fn wait_all_current(d: &DaemonProcess, rows: usize, token: Option<&str>) {
    let url = format!("{}/api/dms/sync/status", d.url);
    d.wait_for("every backup·series current", 30, || async {
        let st = get_json(&url, token).await;
        let st = st.as_array().cloned().unwrap_or_default();
        st.len() == rows
            && st
                .iter()
                .all(|r| r["behind"] == false && r["checkpoint"] == r["primary_newest"])
    })
    .await;
}
