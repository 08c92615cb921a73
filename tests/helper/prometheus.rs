//! The real Prometheus tools from Debian's `prometheus` package: `promtool check metrics` over
//! a scrape body, and a `prometheus` server with a temporary config and data folder that
//! scrapes a test daemon on loopback, queried through its HTTP API; stopped by PID on drop.
//!
//! Without them: under `CI=true` the test fails; otherwise it prints a loud `SKIPPED` notice
//! and the fixture returns `None`. `DMS_TEST_PROMTOOL` and `DMS_TEST_PROMETHEUS` pick other
//! binaries.

use crate::helper::daemon::free_port;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Finds `name` (`$env`, else `PATH`, `/usr/bin`, `/usr/local/bin`); `None` after a loud
/// notice when it is missing outside CI.
fn binary(env: &str, name: &str) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os(env) {
        Some(p) => vec![PathBuf::from(p)],
        None => std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
            .map(|d| d.join(name))
            .collect(),
    };
    if let Some(found) = candidates.into_iter().find(|c| c.is_file()) {
        return Some(found);
    }
    super::skip(
        &format!("{name} is not installed"),
        "install Debian's `prometheus` package; tools/test.sh does it",
    );
    None
}

/// `promtool check metrics` over `body`: `Ok(())` when it finds nothing, else its output.
/// `None` without promtool.
pub fn promtool_check(body: &str) -> Option<Result<(), String>> {
    let bin = binary("DMS_TEST_PROMTOOL", "promtool")?;
    let mut child = Command::new(bin)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(body.as_bytes())
        .expect("writing to promtool");
    let out = child.wait_with_output().expect("promtool ends");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(if out.status.success() && text.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("promtool check metrics: {}: {text}", out.status))
    })
}

/// `promtool check rules FILE`: `Ok(its output)` when it passes, else its output. `None`
/// without promtool.
pub fn promtool_check_rules(file: &std::path::Path) -> Option<Result<String, String>> {
    let bin = binary("DMS_TEST_PROMTOOL", "promtool")?;
    let out = Command::new(bin)
        .args(["check", "rules"])
        .arg(file)
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    })
}

/// A running Prometheus server scraping one target every second.
pub struct PrometheusServer {
    child: Option<Child>,
    dir: TempDir,
    pub url: String,
    http: reqwest::Client,
}

impl PrometheusServer {
    /// Starts `prometheus` scraping `target` (`host:port`) at `/metrics` every second as job
    /// `dms`, and waits until it is ready. `None` without prometheus.
    pub async fn start(target: &str) -> Option<PrometheusServer> {
        Self::start_with_rules(target, None).await
    }

    /// [`PrometheusServer::start`], also loading the alerting rules in `rules` and evaluating
    /// them every second.
    pub async fn start_with_rules(
        target: &str,
        rules: Option<&std::path::Path>,
    ) -> Option<PrometheusServer> {
        let bin = binary("DMS_TEST_PROMETHEUS", "prometheus")?;
        let dir = tempfile::Builder::new()
            .prefix("dms-prometheus-")
            .tempdir()
            .expect("a temp dir for prometheus");
        let rule_files = rules
            .map(|r| {
                format!(
                    "  evaluation_interval: 1s\nrule_files: [\"{}\"]\n",
                    r.display()
                )
            })
            .unwrap_or_default();
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n{rule_files}\
                 scrape_configs:\n  - job_name: dms\n    metrics_path: /metrics\n    \
                 static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .expect("writing prometheus.yml");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("the log");
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        let p = PrometheusServer {
            child: Some(child),
            dir,
            url: format!("http://127.0.0.1:{port}"),
            http: dms::node::http_client_builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
        };
        p.wait_for("prometheus to be ready", 60, || async {
            p.http
                .get(format!("{}/-/ready", p.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        Some(p)
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query; panics unless Prometheus answers `success`. Returns `data.result`.
    pub async fn query(&self, promql: &str) -> Vec<Value> {
        let r = self
            .http
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .send()
            .await
            .expect("prometheus answers");
        let body = json(r).await;
        assert_eq!(body["status"], "success", "{promql}: {body}");
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The series matching a selector (`/api/v1/series`).
    pub async fn series(&self, selector: &str) -> Vec<Value> {
        let body = self
            .http
            .get(format!("{}/api/v1/series", self.url))
            .query(&[("match[]", selector)])
            .send()
            .await
            .expect("prometheus answers");
        let body = json(body).await;
        assert_eq!(body["status"], "success", "{selector}: {body}");
        body["data"].as_array().cloned().unwrap_or_default()
    }

    /// A GET of the HTTP API (`/api/v1/rules`, `/api/v1/alerts`); panics unless `success`.
    /// Returns `data`.
    pub async fn api(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("prometheus answers");
        let body = json(r).await;
        assert_eq!(body["status"], "success", "{path}: {body}");
        body["data"].clone()
    }

    /// The scrape target's state (`/api/v1/targets`): health and last error.
    pub async fn target(&self) -> Value {
        let body = self
            .http
            .get(format!("{}/api/v1/targets", self.url))
            .send()
            .await
            .expect("prometheus answers");
        let body = json(body).await;
        body["data"]["activeTargets"][0].clone()
    }

    /// Polls `check` until it returns true (or panics after `secs`, with the server's log).
    pub async fn wait_for<F, Fut>(&self, what: &str, secs: u64, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !check().await {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; prometheus log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A JSON answer (reqwest is built without its `json` feature).
async fn json(r: reqwest::Response) -> Value {
    let text = r.text().await.expect("a body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
