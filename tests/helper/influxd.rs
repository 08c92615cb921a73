//! Real `influxd` processes for the tests.
//!
//! [`InfluxServer::start`] runs an InfluxDB 1.x server from the machine's `influxd` (Debian's
//! `influxdb` package) on free loopback ports, with its meta, data and WAL folders and a
//! generated config in a temporary folder, and waits until `/ping` answers. Dropping it stops
//! the process by PID (SIGTERM, then SIGKILL after a grace period) and removes the folder.
//! [`InfluxServer::kill_hard`] and [`InfluxServer::restart`] let a test kill a server mid-sync
//! and bring it back on the same data and port; [`InfluxServer::shut_down`],
//! [`InfluxServer::copy_data_to`] and [`InfluxServer::restore_data_from`] take a file-level
//! backup of a stopped server and put it back.
//!
//! Without `influxd`: under `CI=true` the test fails; otherwise it prints a loud
//! `SKIPPED: influxd not installed` and `start` returns `None`, so the test returns early.
//! `DMS_TEST_INFLUXD=/path/to/influxd` picks another binary (e.g. an InfluxDB 1.8 tarball).

use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The admin user created on servers started with auth.
pub const ADMIN: &str = "admin";
/// The admin user's password.
pub const ADMIN_PASSWORD: &str = "s3cret-admin";

/// How long a server gets to answer `/ping` after starting.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// A running `influxd` owned by a test.
pub struct InfluxServer {
    dir: TempDir,
    bin: PathBuf,
    child: Option<Child>,
    http_port: u16,
    auth: bool,
    http: reqwest::Client,
}

/// Finds `influxd` (`$DMS_TEST_INFLUXD`, else `PATH`, `/usr/bin`, `/usr/local/bin`); `None`
/// (after a loud notice) when missing outside CI.
pub fn influxd_binary() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("DMS_TEST_INFLUXD") {
        Some(p) => vec![PathBuf::from(p)],
        None => std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
            .map(|d| d.join("influxd"))
            .collect(),
    };
    if let Some(found) = candidates.into_iter().find(|c| c.is_file()) {
        return Some(found);
    }
    super::skip(
        "influxd is not installed",
        "install Debian's `influxdb` package; tools/test.sh does it",
    );
    None
}

/// A port that was free a moment ago (bind to port 0, note the port, release it).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    l.local_addr().expect("local address").port()
}

fn config_text(dir: &Path, http_port: u16, rpc_port: u16, auth: bool) -> String {
    let p = |sub: &str| format!("{:?}", dir.join(sub).display().to_string());
    format!(
        r#"reporting-enabled = false
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = {meta}
  logging-enabled = false

[data]
  dir = {data}
  wal-dir = {wal}
  wal-fsync-delay = "0s"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = {auth}
  log-enabled = false
  pprof-enabled = false

[logging]
  level = "warn"
  suppress-logo = true

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false

[retention]
  enabled = false

[shard-precreation]
  enabled = false
"#,
        meta = p("meta"),
        data = p("data"),
        wal = p("wal"),
    )
}

/// Why a start attempt failed.
enum StartError {
    /// The chosen port was taken in the meantime: try others.
    PortTaken,
    /// Anything else, with the details.
    Failed(String),
}

impl InfluxServer {
    /// Starts a server without authentication.
    pub async fn start() -> Option<InfluxServer> {
        Self::launch(false).await
    }

    /// Starts a server with `auth-enabled = true` and an admin user
    /// ([`ADMIN`]/[`ADMIN_PASSWORD`]) with all privileges.
    pub async fn start_with_auth() -> Option<InfluxServer> {
        Self::launch(true).await
    }

    async fn launch(auth: bool) -> Option<InfluxServer> {
        let bin = influxd_binary()?;
        let mut last = String::new();
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("dms-influxd-")
                .tempdir()
                .expect("creating a temp dir for influxd");
            let http_port = free_port();
            let rpc_port = free_port();
            std::fs::write(
                dir.path().join("influxdb.conf"),
                config_text(dir.path(), http_port, rpc_port, auth),
            )
            .expect("writing influxdb.conf");
            let mut server = InfluxServer {
                dir,
                bin: bin.clone(),
                child: None,
                http_port,
                auth,
                http: dms::node::http_client_builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("http client"),
            };
            match server.spawn_and_wait().await {
                Ok(()) => {
                    if auth {
                        // The first admin user may be created without credentials.
                        let q = format!(
                            "CREATE USER \"{ADMIN}\" WITH PASSWORD '{ADMIN_PASSWORD}' WITH ALL PRIVILEGES"
                        );
                        server.admin_query(&q, false).await;
                    }
                    return Some(server);
                }
                Err(StartError::PortTaken) => {
                    last = server.log();
                    continue;
                }
                Err(StartError::Failed(why)) => panic!("{why}"),
            }
        }
        panic!("influxd could not find free ports after 5 tries; last log:\n{last}");
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("opening the influxd log");
        let mut cmd = Command::new(&self.bin);
        cmd.arg("run")
            .arg("-config")
            .arg(self.dir.path().join("influxdb.conf"))
            .env("INFLUXDB_REPORTING_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log);
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe. If the test process dies without running
            // Drop (killed, aborted), the kernel kills this influxd too.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        self.child = Some(cmd.spawn().expect("spawning influxd"));
    }

    async fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        self.spawn();
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                let log = self.log();
                if log.contains("address already in use") {
                    return Err(StartError::PortTaken);
                }
                return Err(StartError::Failed(format!(
                    "influxd exited at start ({status}); its log:\n{log}"
                )));
            }
            let ping = self
                .http
                .get(format!("{}/ping", self.url()))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if let Ok(r) = ping
                && r.status().as_u16() == 204
            {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                self.stop();
                return Err(StartError::Failed(format!(
                    "influxd did not answer /ping on {} within {READY_TIMEOUT:?}; its log:\n{}",
                    self.url(),
                    self.log()
                )));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("influxd.log")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL (no shutdown, as in a crash) and reaps it.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same data folder and port, and waits for `/ping`.
    pub async fn restart(&mut self) {
        self.kill_hard();
        let url = self.url();
        match self.spawn_and_wait().await {
            Ok(()) => {}
            Err(StartError::PortTaken) => panic!(
                "influxd could not restart on {url}: the port was taken; log:\n{}",
                self.log()
            ),
            Err(StartError::Failed(why)) => panic!("{why}"),
        }
    }

    /// Stops the server as an operator would (SIGTERM, then SIGKILL after a grace period);
    /// [`InfluxServer::restart`] brings it back on the same data and port.
    pub fn shut_down(&mut self) {
        self.stop();
    }

    /// Copies the stopped server's meta, data and WAL folders to `dest` (a file-level backup).
    pub fn copy_data_to(&self, dest: &Path) {
        assert!(
            self.child.is_none(),
            "stop the server before copying its data"
        );
        for sub in ["meta", "data", "wal"] {
            copy_tree(&self.dir.path().join(sub), &dest.join(sub));
        }
    }

    /// Replaces the stopped server's meta, data and WAL folders with the copy in `src`
    /// (restoring a file-level backup).
    pub fn restore_data_from(&self, src: &Path) {
        assert!(
            self.child.is_none(),
            "stop the server before restoring its data"
        );
        for sub in ["meta", "data", "wal"] {
            let to = self.dir.path().join(sub);
            if to.exists() {
                std::fs::remove_dir_all(&to).expect("removing a data folder");
            }
            copy_tree(&src.join(sub), &to);
        }
    }

    /// SIGTERM, a grace period, then SIGKILL.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: signalling our own child, which has not been reaped yet.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn with_auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.auth {
            rb.basic_auth(ADMIN, Some(ADMIN_PASSWORD))
        } else {
            rb
        }
    }

    async fn admin_query(&self, q: &str, as_admin: bool) -> serde_json::Value {
        let mut r = self
            .http
            .post(format!("{}/query", self.url()))
            .form(&[("q", q)]);
        if as_admin {
            r = self.with_auth(r);
        }
        let r = r.send().await.expect("sending a query");
        let status = r.status();
        let text = r.text().await.expect("an answer");
        let v: serde_json::Value = serde_json::from_str(&text).expect("a JSON answer");
        assert!(status.is_success(), "{q}: HTTP {status}: {v}");
        v
    }

    /// Runs InfluxQL against `db` as the admin (raw JSON, `epoch=ns`), for checks that do not
    /// go through dms.
    pub async fn query(&self, db: &str, q: &str) -> serde_json::Value {
        let r = self.http.get(format!("{}/query", self.url())).query(&[
            ("db", db),
            ("q", q),
            ("epoch", "ns"),
        ]);
        let r = self.with_auth(r).send().await.expect("sending a query");
        let status = r.status();
        let text = r.text().await.expect("an answer");
        let v: serde_json::Value = serde_json::from_str(&text).expect("a JSON answer");
        assert!(status.is_success(), "{q}: HTTP {status}: {v}");
        v
    }

    /// Runs InfluxQL that changes things (POST `/query`, e.g. `DROP DATABASE`) against `db`
    /// as the admin; panics when the server reports an error.
    pub async fn execute(&self, db: &str, q: &str) -> serde_json::Value {
        let r = self
            .http
            .post(format!("{}/query", self.url()))
            .form(&[("db", db), ("q", q)]);
        let r = self.with_auth(r).send().await.expect("sending a query");
        let status = r.status();
        let text = r.text().await.expect("an answer");
        let v: serde_json::Value = serde_json::from_str(&text).expect("a JSON answer");
        assert!(
            status.is_success() && v["results"][0].get("error").is_none(),
            "{q}: HTTP {status}: {v}"
        );
        v
    }

    /// Creates a database.
    pub async fn create_database(&self, db: &str) {
        let q = format!("CREATE DATABASE \"{db}\"");
        self.admin_query(&q, true).await;
    }

    /// Writes raw line protocol (nanosecond timestamps) as the admin; panics unless 204.
    pub async fn write_lines(&self, db: &str, lines: &str) {
        let r = self
            .http
            .post(format!("{}/write", self.url()))
            .query(&[("db", db), ("precision", "ns")])
            .body(lines.to_string());
        let r = self.with_auth(r).send().await.expect("sending a write");
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(status.as_u16(), 204, "write to {db}: {body}");
    }
}

impl Drop for InfluxServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Copies a folder tree (files and sub-folders).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creating a folder");
    for e in std::fs::read_dir(from).expect("reading a folder") {
        let e = e.expect("a folder entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("a file type").is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).expect("copying a file");
        }
    }
}

/// Waits until process `pid` has exited (a zombie or gone), so its sockets are closed.
pub fn wait_until_dead(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let stat = format!("/proc/{pid}/stat");
    while Instant::now() < deadline {
        match std::fs::read_to_string(&stat) {
            Err(_) => return,
            Ok(s) => {
                // The state follows the parenthesised command name.
                let state = s
                    .rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().next());
                if matches!(state, Some("Z" | "X")) {
                    return;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("process {pid} did not die within 10 s");
}
