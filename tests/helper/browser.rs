//! A real headless Chromium for the status page tests, driven over WebDriver: the machine's
//! `chromedriver` (Debian's `chromium-driver`) started on a free loopback port, a fresh
//! profile in a temporary folder, and a [`fantoccini`] client.
//!
//! The browser's console is recorded (`goog:loggingPrefs`) and read through chromedriver's log
//! endpoint, so uncaught exceptions, `console.error`, failed loads and CSP violations all show
//! up in [`Browser::console_errors`]. [`Browser::screenshot`] saves full-page PNGs under
//! `target/test-artifacts/web/`.
//!
//! chromedriver runs in its own process group with the Chromium it starts; [`Browser::close`]
//! ends the session, and dropping the fixture stops that group by its id (SIGTERM, then
//! SIGKILL). Without chromium or chromedriver: under `CI=true` the test fails; otherwise it
//! prints a loud `SKIPPED` notice and [`Browser::start`] returns `None`.
//! `DMS_TEST_CHROMEDRIVER` and `DMS_TEST_CHROMIUM` pick other binaries.

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Flags known to work here: as root, on a closed network, without a display.
const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Laptop-sized window.
pub const LAPTOP: (u32, u32) = (1280, 900);
/// Phone-sized window (a common 390 × 844 CSS-pixel phone).
pub const PHONE: (u32, u32) = (390, 844);

/// Where screenshots go (not committed).
pub fn artifacts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/web")
}

fn find(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.into_iter()
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| p.is_file())
}

/// `(chromedriver, chromium)`, or `None` after a loud notice (a failure under `CI=true`).
fn binaries() -> Option<(PathBuf, PathBuf)> {
    let driver = find("DMS_TEST_CHROMEDRIVER", &["chromedriver"]);
    let chromium = find(
        "DMS_TEST_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    if let (Some(d), Some(c)) = (&driver, &chromium) {
        return Some((d.clone(), c.clone()));
    }
    let missing = match (driver, chromium) {
        (None, None) => "chromium and chromedriver are",
        (None, _) => "chromedriver is",
        _ => "chromium is",
    };
    super::skip(
        &format!("{missing} not installed"),
        "install Debian's `chromium` and `chromium-driver`; tools/test.sh does it",
    );
    None
}

fn free_port() -> u16 {
    crate::helper::daemon::free_port()
}

/// A headless Chromium session.
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    driver: Option<Child>,
    driver_url: String,
    session: String,
    http: reqwest::Client,
    profile: TempDir,
}

impl Browser {
    /// Starts chromedriver and a Chromium session with a laptop-sized window.
    pub async fn start() -> Option<Browser> {
        let (driver_bin, chromium) = binaries()?;
        let profile = tempfile::Builder::new()
            .prefix("dms-chromium-")
            .tempdir()
            .expect("a temp dir for the browser profile");
        let log = std::fs::File::create(profile.path().join("chromedriver.log"))
            .expect("the chromedriver log");
        let port = free_port();
        let mut cmd = Command::new(&driver_bin);
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg("--log-level=WARNING")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        {
            use std::os::unix::process::CommandExt;
            // Its own process group, so the Chromium processes it starts can be stopped with it.
            cmd.process_group(0);
        }
        let driver = cmd.spawn().expect("chromedriver starts");
        let driver_url = format!("http://127.0.0.1:{port}");
        let http = dms::node::http_client_builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client");
        let mut b = BrowserStart {
            driver: Some(driver),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http.get(format!("{driver_url}/status")).send().await;
            if let Ok(r) = ready
                && let Ok(text) = r.text().await
                && let Ok(v) = serde_json::from_str::<Value>(&text)
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not get ready; its log:\n{}",
                std::fs::read_to_string(profile.path().join("chromedriver.log"))
                    .unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!(
            "--user-data-dir={}",
            profile.path().join("profile").display()
        ));
        args.push(format!("--window-size={},{}", LAPTOP.0, LAPTOP.1));
        args.push("--hide-scrollbars".into());
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(caps) = caps else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver_url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no Chromium session: {e}; chromedriver log:\n{}",
                    std::fs::read_to_string(profile.path().join("chromedriver.log"))
                        .unwrap_or_default()
                )
            });
        let session = client
            .session_id()
            .await
            .expect("session id")
            .expect("a session");
        Some(Browser {
            client,
            driver: b.driver.take(),
            driver_url,
            session,
            http,
            profile,
        })
    }

    /// Opens a URL and waits for the load.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// Runs a script in the page and returns its value (`null` when the page is navigating).
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or(Value::Null)
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> usize {
        self.js(
            "return document.querySelectorAll(arguments[0]).length",
            vec![json!(css)],
        )
        .await
        .as_u64()
        .unwrap_or(0) as usize
    }

    /// The text of every element matching `css`.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let v = self
            .js(
                "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent.trim())",
                vec![json!(css)],
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The text of the first element matching `css` (empty when none).
    pub async fn text(&self, css: &str) -> String {
        self.texts(css).await.into_iter().next().unwrap_or_default()
    }

    /// Attribute `name` of every element matching `css`.
    pub async fn attrs(&self, css: &str, name: &str) -> Vec<String> {
        let v = self
            .js(
                "return [...document.querySelectorAll(arguments[0])].map(e => e.getAttribute(arguments[1]) || '')",
                vec![json!(css), json!(name)],
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The address bar.
    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// The whole document as the browser holds it now (after any script ran).
    pub async fn dom(&self) -> String {
        self.js("return document.documentElement.outerHTML", vec![])
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} to click: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Types into the first element matching `css`, replacing what it held.
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self
            .client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} to type into: {e}"));
        e.clear().await.expect("clearing the field");
        e.send_keys(text).await.expect("typing");
    }

    /// Picks the option with `value` in the `<select>` matching `css`.
    pub async fn select(&self, css: &str, value: &str) {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("choosing {value} in {css}: {e}"));
    }

    /// Polls `check` until it is true; panics after `secs` with `what` and the page's text.
    pub async fn wait_until<F, Fut>(&self, what: &str, secs: u64, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !check().await {
            if Instant::now() > deadline {
                let text = self
                    .js(
                        "return document.body ? document.body.innerText : ''",
                        vec![],
                    )
                    .await;
                panic!(
                    "timed out waiting for {what}; at {} the page says:\n{}",
                    self.url().await,
                    text.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Console entries at level SEVERE since the last call (the log endpoint drains them).
    pub async fn console_errors(&self) -> Vec<String> {
        let r = self
            .http
            .post(format!(
                "{}/session/{}/se/log",
                self.driver_url, self.session
            ))
            .header("content-type", "application/json")
            .body(json!({ "type": "browser" }).to_string())
            .send()
            .await
            .expect("chromedriver answers the log request");
        let status = r.status();
        let v: Value = serde_json::from_str(&r.text().await.expect("a log")).expect("a JSON log");
        assert!(status.is_success(), "reading the browser log: {v}");
        v["value"]
            .as_array()
            .expect("log entries")
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Asserts the console had no errors since the last read.
    pub async fn assert_no_console_errors(&self, when: &str) {
        let errors = self.console_errors().await;
        assert!(errors.is_empty(), "console errors {when}: {errors:#?}");
    }

    /// Saves a full-page screenshot as `target/test-artifacts/web/<name>.png`, at the current
    /// window width.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let (w, h) = self.client.get_window_size().await.expect("window size");
        let full = self
            .js(
                "return Math.ceil(document.documentElement.scrollHeight)",
                vec![],
            )
            .await
            .as_u64()
            .unwrap_or(h)
            .clamp(200, 6000);
        self.client
            .set_window_size(w as u32, full as u32)
            .await
            .expect("resizing for the screenshot");
        let png = self.client.screenshot().await.expect("a screenshot");
        self.client
            .set_window_size(w as u32, h as u32)
            .await
            .expect("restoring the window size");
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).expect("the artifacts folder");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("writing the screenshot");
        path
    }

    /// Resizes the window (CSS pixels).
    pub async fn resize(&self, (w, h): (u32, u32)) {
        self.client
            .set_window_size(w, h)
            .await
            .expect("resizing the window");
    }

    /// Ends the session (Chromium quits) and stops chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(child) = self.driver.take() {
            stop_group(child);
        }
        let _ = &self.profile;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Owns chromedriver until the session exists, so a failed start still stops it.
struct BrowserStart {
    driver: Option<Child>,
}

impl Drop for BrowserStart {
    fn drop(&mut self) {
        if let Some(child) = self.driver.take() {
            stop_group(child);
        }
    }
}

/// SIGTERM to chromedriver's process group (its id is chromedriver's PID), a grace period,
/// then SIGKILL to whatever of the group is left (Chromium helpers); reaps chromedriver last,
/// so the group id cannot be reused while it is signalled.
fn stop_group(mut child: Child) {
    let Ok(pgid) = i32::try_from(child.id()) else {
        let _ = child.kill();
        let _ = child.wait();
        return;
    };
    // SAFETY: kill(2) on the process group we created for our own, unreaped child.
    unsafe {
        libc::kill(-pgid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && !exited(pgid) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above; the leader is not reaped yet, so the id is still this group's.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// Whether process `pid` has exited (a zombie or gone), without reaping it.
fn exited(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => matches!(
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next()),
            Some("Z" | "X")
        ),
    }
}
