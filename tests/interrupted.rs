//! Interrupted is not failed: real `dms` processes stopped with SIGINT or SIGTERM in the middle
//! of their work, on SQLite and on real InfluxDB (slowed by the fault-injecting proxy). Every
//! command that does work exits 130 or 143 with one line saying what the stop left, no error per
//! series; the history says `interrupted`, never `failed`; checkpoints sit exactly at the last
//! acknowledged batch; success rates do not move; and the next run completes the work, leaving
//! every backup equal to the primary.

use crate::helper::daemon::{DaemonProcess, free_port};
use crate::helper::project::{Project, all, bars, put, sync_yaml};
use dms::history::{HistoryFilter, HistoryReader, Status};
use dms::model::{BackupSeries, NANOS_PER_SEC, SeriesKey};
use dms::node::Node;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const SYMBOLS: [&str; 8] = ["S.A", "S.B", "S.C", "S.D", "S.E", "S.F", "S.G", "S.H"];
const BARS: usize = 20_000;

fn minute() -> i64 {
    60 * NANOS_PER_SEC
}

fn series() -> Vec<SeriesKey> {
    SYMBOLS.iter().map(|s| SeriesKey::new(*s, "1m")).collect()
}

/// A signal as `kill(2)` takes it, with the exit code dms answers it with.
#[derive(Debug, Clone, Copy)]
enum Sig {
    Int,
    Term,
}

impl Sig {
    fn number(self) -> i32 {
        match self {
            Sig::Int => libc::SIGINT,
            Sig::Term => libc::SIGTERM,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Sig::Int => "SIGINT",
            Sig::Term => "SIGTERM",
        }
    }
    fn exit_code(self) -> i32 {
        128 + self.number()
    }
}

fn send(pid: u32, sig: Sig) {
    // SAFETY: kill(2) with a PID we own and a valid signal number has no memory effects.
    unsafe {
        libc::kill(pid as i32, sig.number());
    }
}

/// A `dms` command running in the background, its stderr in a file.
struct Running {
    child: Option<Child>,
    stderr: PathBuf,
    stdout: PathBuf,
}

impl Running {
    /// Starts `dms ARGS…` in `root` (its `config/` folder), logging at `info`.
    fn start(root: &Path, args: &[&str]) -> Running {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let stderr = root.join(format!("stderr-{n}.log"));
        let stdout = root.join(format!("stdout-{n}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_dms"))
            .args(args)
            .current_dir(root)
            .env_remove("DMS_CONFIG")
            .env_remove("COLUMNS")
            .env("RUST_LOG", "info")
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("dms starts");
        Running {
            child: Some(child),
            stderr,
            stdout,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Polls `ready` until it holds; panics if the command ended first or after 60 s.
    fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready() {
            assert!(
                !self.exited(),
                "dms ended before {what}:\n{}",
                self.stderr()
            );
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `sig` and waits for the process to end; its exit code.
    fn stop(&mut self, sig: Sig) -> Option<i32> {
        send(self.pid(), sig);
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("dms did not stop after {}:\n{}", sig.name(), self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What a stopped command must have printed on stderr: no error line at all, and exactly one
/// line reporting the stop, naming the signal.
fn assert_one_stop_line(stderr: &str, sig: Sig) {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ERROR") || l.starts_with("error:"))
        .collect();
    assert!(errors.is_empty(), "no error lines: {errors:#?}\n{stderr}");
    let stops: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("interrupted"))
        .collect();
    assert_eq!(stops.len(), 1, "one line for the stop:\n{stderr}");
    assert!(
        stops[0].contains(&format!("interrupted by {}", sig.name())),
        "{stderr}"
    );
}

/// Whether the history shows a sync in progress that has copied something.
fn copying(history: &Path) -> bool {
    let Ok(db) = HistoryReader::open(history) else {
        return false;
    };
    db.history(&HistoryFilter {
        status: Some(Status::Running),
        ..HistoryFilter::default()
    })
    .is_ok_and(|rows| rows.iter().any(|r| r.records > 0))
}

/// Every row of the history is a success or interrupted, and at least one is interrupted;
/// the newest run of `task` is interrupted.
fn assert_recorded_interrupted(history: &Path, task: &str) {
    let db = HistoryReader::open(history).unwrap();
    let rows = db.history(&HistoryFilter::default()).unwrap();
    assert!(
        rows.iter()
            .all(|r| matches!(r.status, Status::Success | Status::Interrupted)),
        "no row failed or left running: {rows:#?}"
    );
    assert!(
        rows.iter().any(|r| r.status == Status::Interrupted
            && r.error
                .as_deref()
                .is_some_and(|e| e.starts_with("interrupted:"))),
        "{rows:#?}"
    );
    let runs = db.runs(Some(task), 0).unwrap();
    assert_eq!(runs[0].status, Status::Interrupted, "{runs:#?}");
    assert_eq!(runs[0].failed, 0, "{runs:#?}");
    let m = db
        .metrics(chrono::Utc::now() - chrono::Duration::hours(1))
        .unwrap();
    for b in &m {
        assert_eq!((b.failures, b.success_rate), (0, 1.0), "{m:#?}");
    }
    assert!(m.iter().any(|b| b.interrupted > 0), "{m:#?}");
}

/// Each checkpoint is exactly the newest point its backup holds (the last acknowledged
/// batch), and the backup holds the primary's points up to it and nothing after.
async fn assert_checkpoints_at_last_batch(
    history: &Path,
    primary: &dyn Node,
    backups: &[(&str, &dyn Node)],
    bars: usize,
) -> usize {
    let cps = HistoryReader::open(history).unwrap().checkpoints().unwrap();
    let mut partial = 0;
    for (name, b) in backups {
        for s in series() {
            let held = all(*b, &s).await;
            let cp = cps.get(&BackupSeries::new(*name, s.clone())).copied();
            assert_eq!(cp, held.last().map(|p| p.time), "{name} {s}");
            let upto = cp.unwrap_or(i64::MIN);
            let want: Vec<_> = all(primary, &s)
                .await
                .into_iter()
                .filter(|p| p.time <= upto)
                .collect();
            assert!(
                held == want,
                "{name} {s}: exactly the primary's points up to the checkpoint"
            );
            if held.len() < bars {
                partial += 1;
            }
        }
    }
    partial
}

/// Every backup holds exactly what the primary holds (`bars` points of each series).
async fn assert_equal(primary: &dyn Node, backups: &[(&str, &dyn Node)], bars: usize) {
    for (name, b) in backups {
        for s in series() {
            let (p, h) = (all(primary, &s).await, all(*b, &s).await);
            assert_eq!(p.len(), bars, "{s}");
            assert!(p == h, "{name} {s}: equal to the primary");
        }
    }
}

/// A SQLite primary with 8 series × 20,000 one-minute bars, two empty SQLite backups; two
/// series synced at a time in small batches, so a sync takes a while; a task `all` that
/// syncs everything (no script).
async fn big_project(extra: &str) -> Project {
    let p =
        Project::with_sync(&sync_yaml(200, 1, extra).replace("max_workers: 4", "max_workers: 2"));
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: all\n    sync_backups: true\n",
    );
    let end = dms::model::now_nanos() / minute() * minute();
    let primary = p.node("primary");
    for sym in SYMBOLS {
        put(primary.as_ref(), bars(sym, "1m", BARS, end, minute())).await;
    }
    p
}

fn history_path(p: &Project) -> PathBuf {
    p.root().join("run/db/sync_history.db")
}

/// Stops `args` with `sig` while it copies; checks the exit code, stderr, history and
/// checkpoints; then a plain `dms sync` completes the work and `dms verify` passes.
async fn stop_mid_copy(args: &[&str], sig: Sig, task: &str) {
    let p = big_project("").await;
    let history = history_path(&p);
    let mut run = Running::start(p.root(), args);
    run.wait_until("a sync copying", || copying(&history));
    let code = run.stop(sig);
    let stderr = run.stderr();
    assert_eq!(
        code,
        Some(sig.exit_code()),
        "{args:?} under {}:\n{stderr}",
        sig.name()
    );
    assert_one_stop_line(&stderr, sig);
    assert_recorded_interrupted(&history, task);
    let (primary, b1, b2) = (p.node("primary"), p.node("backup1"), p.node("backup2"));
    let backups: [(&str, &dyn Node); 2] = [("backup1", b1.as_ref()), ("backup2", b2.as_ref())];
    let partial =
        assert_checkpoints_at_last_batch(&history, primary.as_ref(), &backups, BARS).await;
    assert!(partial > 0, "the stop really cut the copy short");

    let rerun = p.cli(&["sync"]);
    assert_eq!(
        rerun.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    assert_equal(primary.as_ref(), &backups, BARS).await;
    let verify = p.cli(&["verify"]);
    assert_eq!(verify.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_under_sigint_exits_130_records_interrupted_and_the_next_sync_completes() {
    stop_mid_copy(&["sync"], Sig::Int, "@sync").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_under_sigterm_exits_143() {
    stop_mid_copy(&["sync"], Sig::Term, "@sync").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_run_under_sigterm_exits_143_and_its_run_is_interrupted() {
    stop_mid_copy(&["task", "run", "all"], Sig::Term, "all").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_under_sigint_exits_130_and_its_run_is_interrupted() {
    stop_mid_copy(&["run", "--once"], Sig::Int, "all").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_json_under_sigint_prints_the_run_as_interrupted() {
    let p = big_project("").await;
    let history = history_path(&p);
    let mut run = Running::start(p.root(), &["sync", "--json"]);
    run.wait_until("a sync copying", || copying(&history));
    assert_eq!(run.stop(Sig::Int), Some(130));
    assert_one_stop_line(&run.stderr(), Sig::Int);
    let out: serde_json::Value = serde_json::from_str(&run.stdout()).expect("JSON on stdout");
    assert_eq!(out["status"], "interrupted", "{out}");
    assert_eq!(out["failed"], 0, "{out}");
    assert!(out["interrupted"].as_i64().unwrap() > 0, "{out}");
    let rows = out["history"].as_array().unwrap();
    assert!(
        rows.iter()
            .all(|r| r["status"] == "success" || r["status"] == "interrupted"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_reconcile_under_a_signal_exit_with_its_code() {
    let p = big_project("").await;
    assert_eq!(p.cli(&["sync"]).status.code(), Some(0));
    let history = history_path(&p);

    // verify reads every point of every window: stopped where it is, nothing changed.
    let mut run = Running::start(p.root(), &["verify", "--window", "1h"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!run.exited(), "verify still comparing:\n{}", run.stderr());
    assert_eq!(run.stop(Sig::Int), Some(130));
    assert_one_stop_line(&run.stderr(), Sig::Int);
    assert!(run.stdout().is_empty(), "no verdict: {}", run.stdout());

    // reconcile --exact reads every window point by point; its run is interrupted.
    let mut run = Running::start(p.root(), &["reconcile", "--exact"]);
    run.wait_until("a reconcile running", || {
        HistoryReader::open(&history)
            .and_then(|db| db.runs(Some("@reconcile"), 1))
            .is_ok_and(|r| r.first().is_some_and(|r| r.status == Status::Running))
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(run.stop(Sig::Term), Some(143));
    assert_one_stop_line(&run.stderr(), Sig::Term);
    let db = HistoryReader::open(&history).unwrap();
    let runs = db.runs(Some("@reconcile"), 0).unwrap();
    assert_eq!(runs[0].status, Status::Interrupted, "{runs:#?}");
    let rows = db.reconciles(false, 0).unwrap();
    assert!(
        rows.iter().all(|r| r.counts.status != Status::Failed),
        "{rows:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_stopped_mid_task_records_it_interrupted_and_the_success_rate_stays() {
    for sig in [Sig::Term, Sig::Int] {
        let port = free_port();
        let p = big_project(&format!("api:\n  listen: 127.0.0.1:{port}\n")).await;
        // No check loop: the task run does the copying.
        p.write(
            "config/sync.yaml",
            &std::fs::read_to_string(p.root().join("config/sync.yaml"))
                .unwrap()
                .replace("    scope: all", "    scope: all\n    enabled: false"),
        );
        let history = history_path(&p);
        let mut d = DaemonProcess::start(p.root(), port).await;
        let before = d.get("/api/dms/sync/metrics").await;
        let started = d.post("/api/dms/tasks/all/run").await;
        assert_eq!(started["status"], "started", "{started}");
        d.wait_for("the task copying", 60, || async { copying(&history) })
            .await;
        let status = d.signal(sig.number());
        let log = d.log_text();
        assert_eq!(status.code(), Some(0), "the daemon ends cleanly:\n{log}");
        assert_one_stop_line(&log, sig);
        assert_recorded_interrupted(&history, "all");

        // The page's and the API's figures: interrupted syncs are outside the rate.
        let mut d = DaemonProcess::start(p.root(), port).await;
        let m = d.get("/api/dms/sync/metrics").await;
        assert_eq!(m["overall"]["failures"], 0, "{m}");
        assert_eq!(m["overall"]["success_rate"], 1.0, "{m}");
        assert!(m["overall"]["interrupted"].as_i64().unwrap() > 0, "{m}");
        assert_eq!(before["overall"]["success_rate"], 1.0);
        let page = d.text("/").await;
        // Each backup card: 100 %, or "no syncs" when every sync so far was interrupted.
        let rates: Vec<&str> = page
            .split("<dd class=\"rate\">")
            .skip(1)
            .filter_map(|r| r.split("</dd>").next())
            .collect();
        assert_eq!(rates.len(), 2, "{page}");
        assert!(
            rates
                .iter()
                .all(|r| *r == "100 %" || r.contains("no syncs")),
            "{rates:?}"
        );
        assert!(
            page.contains(" interrupted"),
            "and show the interrupted syncs"
        );
        let metrics = d.text("/metrics").await;
        assert!(
            metrics.lines().any(|l| l
                .starts_with("dms_syncs_total{backup=\"backup1\",status=\"interrupted\"}")
                && !l.ends_with(" 0")),
            "{metrics}"
        );
        assert!(
            metrics
                .lines()
                .any(|l| l == "dms_syncs_total{backup=\"backup1\",status=\"failed\"} 0"),
            "{metrics}"
        );

        // The next run resumes and completes.
        let started = d.post("/api/dms/tasks/all/run").await;
        let id = started["run_id"].as_i64().unwrap();
        d.wait_for("the next run done", 120, || async {
            d.get(&format!("/api/dms/runs/{id}")).await["status"] == "success"
        })
        .await;
        assert!(d.terminate().success());
        let (primary, b1, b2) = (p.node("primary"), p.node("backup1"), p.node("backup2"));
        assert_equal(
            primary.as_ref(),
            &[("backup1", b1.as_ref()), ("backup2", b2.as_ref())],
            BARS,
        )
        .await;
    }
}

/// InfluxDB: a primary and two backups on real servers, the backups behind the proxy, which
/// slows (or stalls) their answers so a copy can be stopped in the middle.
mod influx {
    use super::*;
    use crate::helper::influxd::InfluxServer;
    use crate::helper::proxy::{Fault, Proxy};
    use crate::influx::support::{Target, node, servers};
    use dms::schema::Schema;
    use std::sync::Arc;

    const INFLUX_BARS: usize = 4_000;

    struct Setup {
        servers: Vec<InfluxServer>,
        proxies: [Proxy; 2],
        project: Project,
        primary: Arc<dyn Node>,
    }

    /// Three servers, the primary seeded, a project whose backups go through the proxies
    /// (`extra`: more top-level YAML).
    async fn setup(db: &str, extra: &str) -> Option<Setup> {
        let servers = servers(3).await?;
        let schema = Schema::default();
        let primary = node("primary", &Target::on(&servers[0], db), &schema);
        let end = dms::model::now_nanos() / minute() * minute();
        for sym in SYMBOLS {
            let points = bars(sym, "1m", INFLUX_BARS, end, minute());
            crate::influx::support::put(primary.as_ref(), points).await;
        }
        let proxies = [
            Proxy::start(servers[1].url().trim_start_matches("http://")).await,
            Proxy::start(servers[2].url().trim_start_matches("http://")).await,
        ];
        let project = Project::with_sync(&format!(
            "sync:\n  incremental:\n    batch_size: 200\n    initial_days: 3650\n    scope: all\n  performance:\n    max_workers: 2\n  retry_times: 1\n  retry_delay: 0.05\n\
             nodes:\n  primary: {{name: primary, type: influxdb, url: \"{}\", database: {db}, timeout: 20}}\n  backups:\n\
             \x20   - {{name: backup1, type: influxdb, url: \"{}\", database: {db}, timeout: 20}}\n\
             \x20   - {{name: backup2, type: influxdb, url: \"{}\", database: {db}, timeout: 20}}\n\
             history:\n  path: run/db/sync_history.db\n{extra}",
            servers[0].url(),
            proxies[0].url,
            proxies[1].url
        ));
        Some(Setup {
            servers,
            proxies,
            project,
            primary,
        })
    }

    impl Setup {
        fn backup(&self, i: usize, db: &str) -> Arc<dyn Node> {
            let name = format!("backup{i}");
            node(&name, &Target::on(&self.servers[i], db), &Schema::default())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sync_to_influxdb_under_sigterm_exits_143_and_the_next_sync_equals_the_primary() {
        let Some(t) = setup("stop", "").await else {
            return;
        };
        for p in &t.proxies {
            p.set(Fault::Latency(Duration::from_millis(40)));
        }
        let history = history_path(&t.project);
        let mut run = Running::start(t.project.root(), &["sync"]);
        run.wait_until("a sync copying", || copying(&history));
        assert_eq!(run.stop(Sig::Term), Some(143), "{}", run.stderr());
        assert_one_stop_line(&run.stderr(), Sig::Term);
        assert_recorded_interrupted(&history, "@sync");
        let (b1, b2) = (t.backup(1, "stop"), t.backup(2, "stop"));
        let backups: [(&str, &dyn Node); 2] = [("backup1", b1.as_ref()), ("backup2", b2.as_ref())];
        let partial =
            assert_checkpoints_at_last_batch(&history, t.primary.as_ref(), &backups, INFLUX_BARS)
                .await;
        assert!(partial > 0, "the stop really cut the copy short");

        for p in &t.proxies {
            p.set(Fault::None);
        }
        let rerun = t.project.cli(&["sync"]);
        assert_eq!(
            rerun.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&rerun.stderr)
        );
        assert_equal(t.primary.as_ref(), &backups, INFLUX_BARS).await;
        assert_eq!(t.project.cli(&["verify"]).status.code(), Some(0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_signal_quits_at_once_while_a_batch_in_flight_hangs() {
        let Some(t) = setup("again", "").await else {
            return;
        };
        let history = history_path(&t.project);
        let mut run = Running::start(t.project.root(), &["sync"]);
        run.wait_until("a sync copying", || copying(&history));
        // The backups stop answering: the batches in flight hang (up to the 20 s timeout).
        for p in &t.proxies {
            p.set(Fault::Stall(0));
        }
        std::thread::sleep(Duration::from_millis(300));
        send(run.pid(), Sig::Int);
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !run.exited(),
            "the first signal waits for the batches in flight"
        );
        let at = Instant::now();
        assert_eq!(run.stop(Sig::Int), Some(130));
        assert!(
            at.elapsed() < Duration::from_secs(5),
            "the second signal quits at once: {:?}",
            at.elapsed()
        );
        let stderr = run.stderr();
        assert!(
            stderr.contains("SIGINT again: quitting at once"),
            "{stderr}"
        );

        // Nothing is lost: what was in flight is marked at the next start, and that run
        // completes the copy.
        for p in &t.proxies {
            p.set(Fault::None);
        }
        let rerun = t.project.cli(&["sync"]);
        assert_eq!(
            rerun.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&rerun.stderr)
        );
        let (b1, b2) = (t.backup(1, "again"), t.backup(2, "again"));
        let backups: [(&str, &dyn Node); 2] = [("backup1", b1.as_ref()), ("backup2", b2.as_ref())];
        assert_equal(t.primary.as_ref(), &backups, INFLUX_BARS).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_daemon_whose_grace_runs_out_records_the_rest_interrupted_not_failed() {
        let port = free_port();
        let extra = format!("api:\n  listen: 127.0.0.1:{port}\ndaemon:\n  shutdown_grace: 1\n");
        let Some(t) = setup("grace", &extra).await else {
            return;
        };
        // No check loop: the task run does the copying.
        t.project.write(
            "config/sync.yaml",
            &std::fs::read_to_string(t.project.root().join("config/sync.yaml"))
                .unwrap()
                .replace("    scope: all", "    scope: all\n    enabled: false"),
        );
        t.project.write(
            "config/task.yaml",
            "tasks:\n  - name: all\n    sync_backups: true\n",
        );
        for p in &t.proxies {
            p.set(Fault::Latency(Duration::from_millis(40)));
        }
        let history = history_path(&t.project);
        let mut d = DaemonProcess::start(t.project.root(), port).await;
        let started = d.post("/api/dms/tasks/all/run").await;
        assert_eq!(started["status"], "started", "{started}");
        d.wait_for("the task copying", 60, || async { copying(&history) })
            .await;
        // The backups stop answering: the batches in flight outlast the 1 s grace.
        for p in &t.proxies {
            p.set(Fault::Stall(0));
        }
        std::thread::sleep(Duration::from_millis(300));
        let at = Instant::now();
        let status = d.terminate();
        let log = d.log_text();
        assert_eq!(status.code(), Some(0), "{log}");
        assert!(at.elapsed() < Duration::from_secs(10), "{:?}", at.elapsed());
        assert!(log.contains("after the grace period"), "{log}");
        assert_one_stop_line(&log, Sig::Term);
        assert_recorded_interrupted(&history, "all");

        for p in &t.proxies {
            p.set(Fault::None);
        }
        let rerun = t.project.cli(&["task", "run", "all"]);
        assert_eq!(
            rerun.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&rerun.stderr)
        );
        let (b1, b2) = (t.backup(1, "grace"), t.backup(2, "grace"));
        let backups: [(&str, &dyn Node); 2] = [("backup1", b1.as_ref()), ("backup2", b2.as_ref())];
        assert_equal(t.primary.as_ref(), &backups, INFLUX_BARS).await;
    }
}
