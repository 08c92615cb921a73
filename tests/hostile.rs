//! A hostile corpus against a real `dms run`: what a web page the operator visits, or anyone
//! who can open a socket to the daemon, might send. Each request ends as a 4xx (or is cut off
//! by the header timeout), the daemon keeps answering `/healthz` within a second throughout,
//! and SIGTERM still ends it with exit 0.

use crate::helper::daemon::{DaemonProcess, free_port};
use crate::helper::project::{Project, sync_yaml};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const TASKS: &str = "tasks:\n  - name: on\n    enabled: true\n  - name: off\n    enabled: false\n";

async fn daemon() -> (Project, DaemonProcess, u16) {
    let port = free_port();
    let p = Project::with_sync(&sync_yaml(
        100,
        1,
        &format!(
            "api:\n  listen: 127.0.0.1:{port}\n  allowed_hosts: [dms.internal]\nreconcile:\n  enabled: false\n"
        ),
    ));
    p.write("config/task.yaml", TASKS);
    let d = DaemonProcess::start(p.root(), port).await;
    (p, d, port)
}

/// Sends raw request bytes and returns the status code of the answer.
fn raw(port: u16, request: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

fn post(port: u16, path: &str, headers: &str) -> u16 {
    raw(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    )
}

fn get(port: u16, path: &str, host: &str) -> u16 {
    raw(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
}

async fn healthz_within_a_second(d: &DaemonProcess) {
    let started = Instant::now();
    let r = dms::node::http_client_builder()
        .build()
        .expect("http client")
        .get(format!("{}/healthz", d.url))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .expect("/healthz answers within 1 s");
    assert!(r.status().is_success());
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_posts_foreign_hosts_and_absurd_numbers_are_refused() {
    let (_p, mut d, port) = daemon().await;
    let run = "/api/dms/tasks/on/run";
    // A plain form post from another site, the classic CSRF.
    for headers in [
        "Origin: http://evil.example\r\nContent-Type: application/x-www-form-urlencoded\r\n",
        "Sec-Fetch-Site: cross-site\r\n",
        "Origin: null\r\n",
        "Content-Type: text/plain\r\n",
        "Content-Type: multipart/form-data; boundary=x\r\n",
    ] {
        assert_eq!(post(port, run, headers), 403, "{headers:?}");
        assert_eq!(
            post(port, "/api/dms/reconcile", headers),
            403,
            "{headers:?}"
        );
        assert_eq!(post(port, "/api/dms/restore", headers), 403, "{headers:?}");
        // The page's own form may post a form, but never from another site.
        let from_elsewhere = format!("Origin: http://evil.example\r\n{headers}");
        assert_eq!(
            post(port, "/ui/tasks/on/run", &from_elsewhere),
            403,
            "{headers:?}"
        );
    }
    // DNS rebinding: the page's own name reaches the daemon, even with a matching Origin.
    assert_eq!(get(port, "/api/dms/sync/status", "evil.example:1234"), 403);
    assert_eq!(get(port, "/", "evil.example"), 403);
    assert_eq!(
        raw(
            port,
            &format!(
                "POST {run} HTTP/1.1\r\nHost: evil.example\r\nOrigin: http://evil.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        ),
        403
    );
    // What a real client or the page itself sends still works.
    assert_eq!(get(port, "/healthz", &format!("localhost:{port}")), 200);
    assert_eq!(
        get(port, "/healthz", "dms.internal"),
        200,
        "an allowed name"
    );
    assert_eq!(post(port, run, "Content-Type: application/json\r\n"), 202);
    // A disabled task needs force.
    assert_eq!(post(port, "/api/dms/tasks/off/run", ""), 409);
    assert_eq!(post(port, "/api/dms/tasks/off/run?force=true", ""), 202);
    // Unknown parameters, absurd numbers: 400, never a crash.
    for path in [
        "/api/dms/tasks?x=1",
        "/api/dms/sync/history?limit=99999999999999999999",
        "/api/dms/sync/metrics?window=99999999999999999999d",
    ] {
        assert_eq!(get(port, path, "127.0.0.1"), 400, "{path}");
    }
    assert_eq!(
        get(port, "/api/dms/sync/history?since=1000000000d", "127.0.0.1"),
        200
    );
    healthz_within_a_second(&d).await;
    assert!(d.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_the_daemon_keeps_answering() {
    let (_p, mut d, port) = daemon().await;
    // Slowloris: connections that never finish their headers.
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .unwrap();
        slow.push(s);
    }
    for _ in 0..3 {
        healthz_within_a_second(&d).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // After the header timeout the server has closed them.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut closed = 0;
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 512];
        if s.read(&mut buf).is_ok() {
            closed += 1;
        }
    }
    assert_eq!(
        closed,
        slow.len(),
        "every slow connection was closed by the server"
    );
    healthz_within_a_second(&d).await;
    assert!(
        d.terminate().success(),
        "SIGTERM ends the daemon with exit 0"
    );
}

/// Scripts that try to outlive their limits, each a task of a real daemon.
const HOSTILE: &[(&str, &str)] = &[
    // Replacing `error` to swallow the limits, then spinning inside pcall.
    (
        "swallow",
        "function run(ctx) error = function() end; while true do pcall(function() while true do end end) end end",
    ),
    // Catastrophic backtracking inside a C function: no Lua instruction runs.
    (
        "pattern",
        "function run(ctx) string.find(string.rep('a', 5000), '.-.-.-.-.-.-.-.-.-.-b') end",
    ),
    // An endless finalizer (hooks do not run in __gc).
    (
        "finalizer",
        "function run(ctx) setmetatable({}, {__gc = function() while true do end end}); local t = {} for i = 1, 1e6 do t[i] = {} end t = nil; local x = {} for i = 1, 1e7 do x[i % 100] = {} end end",
    ),
    // Memory the Lua allocator does not see: a large CSV read into rows.
    (
        "csv",
        "function run(ctx) local rows = dms.csv.read('big.csv'); error('read ' .. #rows) end",
    ),
    // … and a decoded JSON array.
    (
        "json",
        "function run(ctx) local s = '[' .. string.rep('1234567890,', 2500000) .. '1]'; local t = dms.json.decode(s); error('decoded ' .. #t) end",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_scripts_end_as_failed_runs_and_never_stall_the_daemon() {
    let port = free_port();
    let p = Project::with_sync(&sync_yaml(
        100,
        1,
        &format!(
            "api:\n  listen: 127.0.0.1:{port}\nreconcile:\n  enabled: false\nscripts:\n  memory_limit_mb: 32\n  instruction_limit: 100000000000\ndaemon:\n  shutdown_grace: 3\n"
        ),
    ));
    let mut tasks = String::from("tasks:\n");
    for (name, src) in HOSTILE {
        p.write(&format!("scripts/{name}.lua"), src);
        // The memory cases get time to reach the limit even with the CPU cases pinning both
        // cores (the timeout must not be what stops them).
        let timeout = if ["csv", "json"].contains(name) {
            20
        } else {
            3
        };
        tasks.push_str(&format!(
            "  - name: {name}\n    script: scripts/{name}.lua\n    timeout: {timeout}\n"
        ));
    }
    p.write("config/task.yaml", &tasks);
    // 40 MB of short cells: far more than the limit once split into rows and strings.
    let row = "1,2,3,4,5,6,7,8,9,10\n";
    p.write(
        "data/big.csv",
        &format!(
            "a,b,c,d,e,f,g,h,i,j\n{}",
            row.repeat(40 * 1024 * 1024 / row.len())
        ),
    );
    let mut d = DaemonProcess::start(p.root(), port).await;
    let http = dms::node::http_client_builder()
        .build()
        .expect("http client");
    for (name, _) in HOSTILE {
        let r = http
            .post(format!("{}/api/dms/tasks/{name}/run", d.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202, "{name}");
    }
    // While they misbehave, the daemon answers within a second.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        healthz_within_a_second(&d).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Each ends as a failed run within its timeout (plus a little).
    d.wait_for("every hostile run failed", 30, || async {
        let t = d.get("/api/dms/tasks").await;
        t.as_array().is_some_and(|a| {
            a.iter().all(|t| {
                t["last_run"]["status"] == "failed" && !t["running"].as_bool().unwrap_or(true)
            })
        })
    })
    .await;
    let tasks = d.get("/api/dms/tasks").await;
    let error_of = |name: &str| {
        tasks
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .and_then(|t| t["last_run"]["error"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    for name in ["swallow", "pattern", "finalizer"] {
        let e = error_of(name);
        assert!(
            e.contains("timed out after 3 s") || e.contains("time budget exhausted"),
            "{name}: {e}"
        );
    }
    for name in ["json", "csv"] {
        let e = error_of(name);
        assert!(e.contains("memory"), "{name}: {e}");
    }
    healthz_within_a_second(&d).await;
    // A run hung in a C function does not keep the daemon from stopping.
    let r = http
        .post(format!("{}/api/dms/tasks/pattern/run", d.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = Instant::now();
    assert!(
        d.terminate().success(),
        "SIGTERM ends the daemon with exit 0"
    );
    assert!(
        stopping.elapsed() < Duration::from_secs(3 + 2),
        "within shutdown_grace"
    );
}

/// The peak resident memory of process `pid` in MiB (`VmHWM`).
fn peak_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// How many sockets process `pid` holds open.
fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Lua that builds `n` distinct names with `prefix`.
fn lua_names(prefix: &str, n: usize) -> String {
    format!(
        "(function() local t = {{}} for i = 1, {n} do t[i] = '{prefix}' .. i end return t end)()"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selections_of_huge_name_lists_stay_proportional_to_what_exists() {
    let port = free_port();
    let p = Project::with_sync(&sync_yaml(
        100,
        1,
        &format!("api:\n  listen: 127.0.0.1:{port}\nreconcile:\n  enabled: false\n"),
    ));
    crate::helper::project::put(
        p.node("primary").as_ref(),
        crate::helper::project::daily("US.AAPL", 5),
    )
    .await;
    let (syms, ints) = (lua_names("S", 30_000), lua_names("I", 30_000));
    p.write(
        "scripts/hooks.lua",
        &format!(
            "function symbols() local t = {syms}; t[#t + 1] = 'US.AAPL'; return t end\nfunction intervals() local t = {ints}; t[#t + 1] = '1d'; return t end\n"
        ),
    );
    p.write(
        "scripts/calls.lua",
        &format!(
            "function run(ctx)\n  local s, i = {syms}, {ints}\n  dms.sync{{symbols = s, intervals = i}}\n  dms.reconcile{{symbols = s, intervals = i}}\nend\n"
        ),
    );
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: hooks\n    script: scripts/hooks.lua\n    timeout: 60\n  - name: calls\n    script: scripts/calls.lua\n    timeout: 60\n",
    );
    let mut d = DaemonProcess::start(p.root(), port).await;
    let http = dms::node::http_client_builder()
        .build()
        .expect("http client");
    // 5,000 × 5,000 names of three characters in one URI (a product of 25 million series).
    let names = |prefix: char| {
        const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        (0..5_000)
            .map(|i| {
                let d = |k: usize| char::from(DIGITS[(i / k) % 36]);
                format!("{prefix}{}{}{}", d(1296), d(36), d(1))
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let r = http
        .post(format!(
            "{}/api/dms/reconcile?symbol={}&interval={}",
            d.url,
            names('S'),
            names('I')
        ))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the daemon answers a huge reconcile request: {}",
                e.without_url()
            )
        });
    assert_eq!(r.status().as_u16(), 202, "{}", r.text().await.unwrap());
    for task in ["hooks", "calls"] {
        let r = http
            .post(format!("{}/api/dms/tasks/{task}/run", d.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202, "{task}");
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        healthz_within_a_second(&d).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    d.wait_for("both runs ended", 60, || async {
        let t = d.get("/api/dms/tasks").await;
        t.as_array().is_some_and(|a| {
            a.iter()
                .all(|t| !t["last_run"].is_null() && t["running"] == false)
        })
    })
    .await;
    let tasks = d.get("/api/dms/tasks").await;
    let hooks = tasks
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "hooks"))
        .expect("the hooks task");
    // The one series that exists was synced; the 60,000 names that match nothing are
    // summed up in a short warning, not listed in full.
    assert_eq!(hooks["last_run"]["status"], "success", "{hooks}");
    let warning = hooks["last_run"]["warning"].as_str().unwrap_or_default();
    assert!(warning.contains("symbol S1"), "{warning}");
    assert!(warning.contains("more"), "{warning}");
    assert!(warning.len() < 2_000, "{} bytes", warning.len());
    let synced = crate::helper::project::all(
        p.node("backup1").as_ref(),
        &dms::model::SeriesKey::new("US.AAPL", "1d"),
    )
    .await;
    assert_eq!(synced.len(), 5);
    assert!(
        tasks.to_string().len() < 20_000,
        "the task list stays small"
    );
    healthz_within_a_second(&d).await;
    assert!(
        peak_mib(d.pid()) < 1024,
        "peak memory {} MiB",
        peak_mib(d.pid())
    );
    assert!(d.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_and_half_prefaces_are_closed_from_their_first_byte() {
    let (_p, mut d, port) = daemon().await;
    let mut held = Vec::new();
    // More silent connections than the old limit of 512, half HTTP/2 prefaces, a whole one.
    for i in 0..700 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        match i % 3 {
            0 => {}
            1 => s.write_all(b"PRI * HTTP/2.0\r\n").unwrap(),
            _ => s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap(),
        }
        held.push(s);
    }
    for _ in 0..4 {
        healthz_within_a_second(&d).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // After the header timeout (5 s from the first byte) every one of them is closed.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut closed = 0;
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 512];
        // EOF (0) or a reset: closed; a timeout: still held open.
        match s.read(&mut buf) {
            Ok(_) => closed += 1,
            Err(e)
                if e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut =>
            {
                closed += 1
            }
            Err(_) => {}
        }
    }
    assert_eq!(closed, held.len(), "every silent connection was closed");
    // An idle keep-alive connection is closed too.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut all = Vec::new();
    let _ = idle.read_to_end(&mut all);
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200"));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the idle connection was closed after {:?}",
        started.elapsed()
    );
    healthz_within_a_second(&d).await;
    assert!(d.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_and_readers_that_never_read_are_cut_off() {
    let (p, mut d, port) = daemon().await;
    // A body announced but sent a byte at a time, slower than the request timeout allows.
    let mut body = TcpStream::connect(("127.0.0.1", port)).unwrap();
    body.write_all(
        format!("POST /api/dms/restore HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{{").as_bytes(),
    )
    .unwrap();
    let before = sockets(d.pid());
    // Clients that ask for the metrics again and again and never read the answers, with a
    // receive buffer so small that the answers pile up on the daemon's side.
    let mut readers = Vec::new();
    for _ in 0..10 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let s = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
        let mut s = s.into_std().unwrap();
        s.set_nonblocking(false).unwrap();
        let req = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(200);
        s.set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let _ = s.write_all(req.as_bytes());
        readers.push(s);
    }
    let started = Instant::now();
    let mut answered = String::new();
    while started.elapsed() < Duration::from_secs(40) {
        healthz_within_a_second(&d).await;
        let _ = body.write_all(b" ");
        body.set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        let mut buf = [0u8; 4096];
        if let Ok(n) = body.read(&mut buf)
            && n > 0
        {
            answered = String::from_utf8_lossy(&buf[..n]).into_owned();
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        answered.starts_with("HTTP/1.1 408"),
        "the slow body got a 408: {answered:?}"
    );
    // The readers that never read were cut off: the daemon holds none of their sockets.
    let open = sockets(d.pid());
    assert!(
        open <= before + 2,
        "the daemon still holds {open} sockets ({before} before the readers came)"
    );
    drop(readers);
    assert!(peak_mib(d.pid()) < 512, "peak {} MiB", peak_mib(d.pid()));
    healthz_within_a_second(&d).await;
    drop(p);
    assert!(d.terminate().success());
}

/// A top level or hook stuck in a C function, where no Lua instruction hook runs.
const C_LOOP: &str = "string.find(string.rep('a', 5000), '.-.-.-.-.-.-.-.-.-.-b')";

/// The `dms __script` children of process `parent`.
fn script_children(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid …
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(parent) && String::from_utf8_lossy(&cmdline).contains("__script")
        })
        .collect()
}

/// Waits until `pid` is gone (or a zombie); false after `secs`.
fn gone_within(pid: u32, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next().map(str::to_string));
        if stat.is_empty() || state.as_deref() == Some("Z") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn spawn_dms(root: &std::path::Path, args: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(args)
        .current_dir(root)
        .env_remove("DMS_CONFIG")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dms starts")
}

/// Waits for `parent`'s script child to appear.
fn script_child_of(parent: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(c) = script_children(parent).first() {
            return *c;
        }
        assert!(Instant::now() < deadline, "no script process appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_top_level_that_hangs_disables_only_its_task_and_never_holds_up_the_daemon() {
    let port = free_port();
    let p = Project::with_sync(&sync_yaml(
        100,
        1,
        &format!(
            "api:\n  listen: 127.0.0.1:{port}\nreconcile:\n  enabled: false\ndaemon:\n  shutdown_grace: 3\n"
        ),
    ));
    p.write(
        "scripts/hang.lua",
        &format!("{C_LOOP}\nfunction run(ctx) end\n"),
    );
    p.write("scripts/fine.lua", "function run(ctx) end\n");
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: hang\n    script: scripts/hang.lua\n    timeout: 3\n  - name: fine\n    script: scripts/fine.lua\n    timeout: 30\n",
    );
    // `dms config check` names the task within its timeout instead of hanging.
    let started = Instant::now();
    let out = p.cli(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hang") && err.contains("did not finish within 3 s"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // The daemon serves at once, while the script loads.
    let mut d = DaemonProcess::start(p.root(), port).await;
    healthz_within_a_second(&d).await;
    d.wait_for(
        "the load check gave up on the hanging script",
        20,
        || async { d.log_text().contains("the task is disabled") },
    )
    .await;
    let http = dms::node::http_client_builder().build().unwrap();
    for task in ["hang", "fine"] {
        let r = http
            .post(format!("{}/api/dms/tasks/{task}/run", d.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202, "{task}");
    }
    d.wait_for("both runs ended", 20, || async {
        let t = d.get("/api/dms/tasks").await;
        t.as_array().is_some_and(|a| {
            a.iter()
                .all(|t| !t["last_run"].is_null() && t["running"] == false)
        })
    })
    .await;
    let tasks = d.get("/api/dms/tasks").await;
    let run_of = |name: &str| {
        tasks
            .as_array()
            .and_then(|a| a.iter().find(|t| t["name"] == name))
            .map(|t| t["last_run"].clone())
            .unwrap_or_default()
    };
    assert_eq!(run_of("fine")["status"], "success");
    assert_eq!(run_of("hang")["status"], "failed");
    assert!(
        run_of("hang")["error"]
            .as_str()
            .unwrap_or_default()
            .contains("task disabled"),
        "{}",
        run_of("hang")
    );
    healthz_within_a_second(&d).await;
    assert!(d.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_processes_die_with_their_parent() {
    let p = Project::new();
    p.write(
        "scripts/spin.lua",
        &format!("function run(ctx) {C_LOOP} end\n"),
    );
    p.write("scripts/load.lua", &format!("{C_LOOP}\n"));
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: spin\n    script: scripts/spin.lua\n    timeout: 120\n  - name: load\n    script: scripts/load.lua\n    timeout: 120\n    enabled: false\n",
    );
    // kill -9 of `dms task run` while its script spins in a C function.
    let mut parent = spawn_dms(p.root(), &["task", "run", "spin"]);
    let child = script_child_of(parent.id());
    parent.kill().unwrap();
    parent.wait().unwrap();
    assert!(
        gone_within(child, 3),
        "the script process outlived its parent"
    );
    // SIGTERM of `dms config check` while a top level spins.
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: load\n    script: scripts/load.lua\n    timeout: 120\n",
    );
    let mut parent = spawn_dms(p.root(), &["config", "check"]);
    let child = script_child_of(parent.id());
    // SAFETY: kill(2) with a PID we own and a valid signal number has no memory effects.
    unsafe {
        libc::kill(parent.id() as libc::pid_t, libc::SIGTERM);
    }
    parent.wait().unwrap();
    assert!(
        gone_within(child, 3),
        "the script process outlived its parent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_run_with_a_stuck_on_failure_ends_within_its_timeout_plus_the_grace() {
    let p = Project::new();
    p.write(
        "scripts/slow.lua",
        &format!("function run(ctx) {C_LOOP} end\nfunction on_failure(ctx, err) {C_LOOP} end\n"),
    );
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: slow\n    script: scripts/slow.lua\n    timeout: 10\n",
    );
    let started = Instant::now();
    let out = p.cli(&["task", "run", "slow"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("timed out after 10 s"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // 10 s of timeout, 5 s of grace for the hooks (it used to be another 10 s).
    assert!(took >= Duration::from_secs(10), "{took:?}");
    assert!(took < Duration::from_secs(17), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_larger_than_the_pipe_allows_fails_the_run_with_a_clear_error() {
    let p = Project::with_sync(&sync_yaml(100, 1, "scripts:\n  memory_limit_mb: 200\n"));
    p.write(
        "scripts/big.lua",
        "function run(ctx) dms.log.info(string.rep('x', 40 * 1024 * 1024)) end\n",
    );
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: big\n    script: scripts/big.lua\n    timeout: 60\n",
    );
    let out = p.cli(&["task", "run", "big", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("longer than 32 MiB"),
        "{}",
        &text[..text.len().min(2000)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_or_blank_tokens_are_refused_instead_of_turning_auth_off() {
    let port = free_port();
    let p = Project::with_sync(&sync_yaml(
        100,
        1,
        &format!("api:\n  listen: 127.0.0.1:{port}\n  token: ${{DMS_API_TOKEN}}\n"),
    ));
    for value in ["", "   ", "two words here and more"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dms"))
            .args(["run"])
            .current_dir(p.root())
            .env_remove("DMS_CONFIG")
            .env("DMS_API_TOKEN", value)
            .output()
            .expect("dms runs");
        assert_eq!(out.status.code(), Some(2), "{value:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("api.token"), "{value:?}: {err}");
    }
    // An optional variable written explicitly: a default when it is unset.
    p.write(
        "config/sync.yaml",
        &sync_yaml(
            100,
            1,
            &format!(
                "api:\n  listen: 127.0.0.1:{port}\n  token: ${{DMS_API_TOKEN:-a-default-token-of-24-chars}}\n"
            ),
        ),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(["config", "check"])
        .current_dir(p.root())
        .env_remove("DMS_CONFIG")
        .env_remove("DMS_API_TOKEN")
        .output()
        .expect("dms runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
