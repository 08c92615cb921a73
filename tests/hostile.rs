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
    let r = reqwest::Client::new()
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
