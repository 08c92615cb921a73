//! A real `dms run` process on a project folder, with an HTTP client for its API; stopped by
//! PID (SIGTERM) on drop.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running daemon.
pub struct DaemonProcess {
    child: Option<Child>,
    pub url: String,
    pub log: std::path::PathBuf,
    http: reqwest::Client,
}

impl DaemonProcess {
    /// Starts `dms run` in `root` and waits until `/healthz` answers on `port`.
    pub async fn start(root: &std::path::Path, port: u16) -> DaemonProcess {
        Self::start_with(root, port, &["run"]).await
    }

    /// Starts `dms ARGS…` in `root` (a daemon command line) and waits until `/healthz`
    /// answers on `port`.
    pub async fn start_with(root: &std::path::Path, port: u16, args: &[&str]) -> DaemonProcess {
        let log = root.join("daemon.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_dms"))
            .args(args)
            .current_dir(root)
            .env("RUST_LOG", "info")
            .env_remove("DMS_CONFIG")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("dms starts");
        let d = DaemonProcess {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            log,
            http: dms::node::http_client_builder()
                .build()
                .expect("http client"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = d.http.get(format!("{}/healthz", d.url)).send().await
                && r.status().is_success()
            {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not answer; log:\n{}",
                d.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    /// GET a JSON document.
    pub async fn get(&self, path: &str) -> serde_json::Value {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("daemon answers");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        let body = r.text().await.expect("a body");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
    }

    /// GET a text document.
    pub async fn text(&self, path: &str) -> String {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("daemon answers")
            .text()
            .await
            .unwrap()
    }

    /// Polls `check` until it returns true (or panics after `secs`, with the daemon's log).
    pub async fn wait_for<F, Fut>(&self, what: &str, secs: u64, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !check().await {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; daemon log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// POSTs to `path` (no body) and reads the JSON answer.
    pub async fn post(&self, path: &str) -> serde_json::Value {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .send()
            .await
            .expect("daemon answers");
        let body = r.text().await.expect("a body");
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("POST {path}: not JSON ({e}): {body}"))
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM)
    }

    /// Sends `signal` and waits for the exit status.
    pub fn signal(&mut self, signal: i32) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) with a PID we own and a valid signal number has no memory effects.
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "daemon did not stop after signal {signal}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
