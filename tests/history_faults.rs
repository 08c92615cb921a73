//! Faults of the history database itself: disk full, read-only, locked by another process,
//! a corrupted header. Each gives a clear error and no panic, never moves a checkpoint past what
//! a backup holds, and the daemon says what is wrong in /healthz.

use crate::helper::project::{Project, all, bars, sync_yaml};
use crate::helper::tmpfs::Tmpfs;
use dms::history::Status;
use dms::model::{NANOS_PER_SEC, SeriesKey};
use dms::sync::{Selection, SyncControl, SyncRequest};
use std::sync::Arc;

fn project_with_history_at(history: &std::path::Path, extra: &str) -> Project {
    let yaml = sync_yaml(50, 0, extra).replace(
        "  path: run/db/sync_history.db",
        &format!("  path: {}\n  busy_timeout: 0.3", history.display()),
    );
    Project::with_sync(&yaml)
}

fn req() -> SyncRequest {
    SyncRequest::new(Selection::all(), 3650)
}

async fn seed(p: &Project, symbols: &[&str], n: usize) {
    let now = dms::model::now_nanos();
    for s in symbols {
        crate::helper::project::put(
            p.node("primary").as_ref(),
            bars(s, "1m", n, now, 60 * NANOS_PER_SEC),
        )
        .await;
    }
}

/// Every checkpoint is at or before the newest point its backup holds.
async fn checkpoints_never_ahead(p: &Project, history: &std::path::Path, symbols: &[&str]) {
    let cps = dms::history::HistoryReader::open(history)
        .unwrap()
        .checkpoints()
        .unwrap();
    for b in ["backup1", "backup2"] {
        for s in symbols {
            let key = SeriesKey::new(*s, "1m");
            if let Some(cp) = cps.get(&dms::model::BackupSeries::new(b.to_string(), key.clone())) {
                let newest = all(p.node(b).as_ref(), &key).await.last().map(|x| x.time);
                assert!(
                    newest.is_some_and(|n| n >= *cp),
                    "{b} {key}: checkpoint {cp} ahead of {newest:?}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_clearly_loses_no_checkpoint_and_heals_when_space_returns() {
    let Some(fs) = Tmpfs::mount(1024) else { return };
    let history = fs.path().join("sync_history.db");
    let p = project_with_history_at(&history, "");
    let symbols = ["A", "B", "C", "D", "E", "F"];
    seed(&p, &symbols, 3000).await;
    let app = Arc::new(p.app());
    fs.fill(48);

    let out = app.manual_sync(req(), &SyncControl::default()).await;
    let text = match &out {
        Ok(o) => {
            assert_ne!(o.status, Status::Success, "the disk is full");
            format!(
                "{:?} {:?}",
                o.error,
                o.report.units.iter().map(|u| &u.error).collect::<Vec<_>>()
            )
        }
        Err(e) => e.to_string(),
    };
    assert!(text.contains("disk is full"), "{text}");
    checkpoints_never_ahead(&p, &history, &symbols).await;

    // The daemon reports it.
    let daemon = dms::daemon::Daemon::new(app.clone(), tokio_util::sync::CancellationToken::new())
        .expect("daemon");
    let health = health(&daemon).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["history"]["error"]
            .as_str()
            .unwrap()
            .contains("disk is full"),
        "{health}"
    );

    // Space comes back: the next sync completes, equal to the primary.
    fs.remount("size=64m");
    let out = app
        .manual_sync(req(), &SyncControl::default())
        .await
        .unwrap();
    assert_eq!(out.status, Status::Success, "{:?}", out.error);
    for b in ["backup1", "backup2"] {
        for s in symbols {
            assert_eq!(
                all(p.node(b).as_ref(), &SeriesKey::new(s, "1m"))
                    .await
                    .len(),
                3000
            );
        }
    }
    checkpoints_never_ahead(&p, &history, &symbols).await;
    assert_eq!(health_of(&daemon).await, "ok");
}

async fn health(daemon: &Arc<dms::daemon::Daemon>) -> serde_json::Value {
    use tower::ServiceExt;
    let router = dms::http::router(daemon.clone());
    let resp = router
        .oneshot(
            axum::http::Request::get("/healthz")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn health_of(daemon: &Arc<dms::daemon::Daemon>) -> String {
    health(daemon).await["status"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_history_is_refused_with_a_clear_error() {
    let Some(fs) = Tmpfs::mount(4096) else { return };
    let history = fs.path().join("sync_history.db");
    let p = project_with_history_at(&history, "");
    seed(&p, &["A"], 100).await;
    assert!(p.cli(&["sync"]).status.success());
    fs.remount("ro");
    let out = p.cli(&["sync"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sync_history.db") && err.to_lowercase().contains("read-only"),
        "{err}"
    );
    // Readers get the data or a clear error; never a panic.
    let out = p.cli(&["history"]);
    assert!(matches!(out.status.code(), Some(0 | 2)), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    fs.remount("rw");
    assert!(p.cli(&["sync"]).status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_locked_by_another_process_fails_after_the_busy_timeout() {
    let p = Project::with_sync(&sync_yaml(50, 0, "").replace(
        "  path: run/db/sync_history.db",
        "  path: run/db/sync_history.db\n  busy_timeout: 0.3",
    ));
    seed(&p, &["A"], 200).await;
    let app = p.app();
    // Another process (here: another connection) holds an exclusive lock.
    let other = rusqlite::Connection::open(p.root().join("run/db/sync_history.db")).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = std::time::Instant::now();
    let err = app
        .manual_sync(req(), &SyncControl::default())
        .await
        .expect_err("fails")
        .to_string();
    assert!(err.contains("database is locked"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    other.execute_batch("ROLLBACK").unwrap();
    drop(other);
    let out = app
        .manual_sync(req(), &SyncControl::default())
        .await
        .unwrap();
    assert_eq!(out.status, Status::Success);
    assert_eq!(out.report.records(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_history_header_is_a_clear_error_everywhere() {
    let p = Project::new();
    seed(&p, &["A"], 10).await;
    assert!(p.cli(&["sync"]).status.success());
    let path = p.root().join("run/db/sync_history.db");
    let wal = p.root().join("run/db/sync_history.db-wal");
    let _ = std::fs::remove_file(&wal);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..100].copy_from_slice(&[0x42; 100]);
    std::fs::write(&path, &bytes).unwrap();
    for args in [
        &["sync"][..],
        &["history"][..],
        &["status"][..],
        &["run", "--once"][..],
    ] {
        let out = p.cli(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("sync_history.db") && err.contains("not a database"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"));
    }
    // dms never rewrites a history it cannot read.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_page_inside_the_history_is_refused_before_any_write() {
    let p = Project::new();
    seed(&p, &["A", "B", "C"], 3000).await;
    assert!(p.cli(&["sync"]).status.success());
    let path = p.root().join("run/db/sync_history.db");
    // Fold the WAL into the file, then scribble over a page in the middle (not the header).
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 3 * 4096, "a history of several pages");
    let page = bytes.len() / 4096 / 2 * 4096;
    bytes[page..page + 4096].fill(0x5a);
    std::fs::write(&path, &bytes).unwrap();
    for args in [&["sync"][..], &["run", "--once"][..]] {
        let out = p.cli(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("sync_history.db") && err.contains("damaged"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "a damaged history is never written to"
    );
}

#[test]
fn two_paths_to_one_history_share_one_writer_lock() {
    let p = Project::new();
    let dir = p.root().join("run/db");
    std::fs::create_dir_all(&dir).unwrap();
    let real = dir.join("sync_history.db");
    let link = p.root().join("alias.db");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let busy = std::time::Duration::from_secs(1);
    let _first = dms::history::History::open(&real, "first", busy).expect("first writer");
    for other in [link.clone(), dir.join("../db/sync_history.db")] {
        let err = dms::history::History::open(&other, "second", busy)
            .err()
            .unwrap_or_else(|| panic!("{}: a second writer through another path", other.display()))
            .to_string();
        assert!(
            err.contains("in use by another dms writer") && err.contains("first"),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_deleted_under_the_writer_stops_writes_and_says_so() {
    let p = Project::new();
    let path = p.root().join("run/db/sync_history.db");
    let history =
        dms::history::History::open(&path, "test", std::time::Duration::from_secs(1)).unwrap();
    history
        .write(|db| db.start_run("t", dms::history::Trigger::Manual))
        .await
        .expect("writes work");
    std::fs::remove_file(&path).unwrap();
    let err = history
        .write(|db| db.start_run("t", dms::history::Trigger::Manual))
        .await
        .expect_err("no write to an unlinked file");
    assert!(err.to_string().contains("deleted or replaced"), "{err}");
    assert!(history.write_error().is_some(), "health says so");
    assert!(history.check_file().await.is_err());
    // Replaced by another file: the same.
    std::fs::write(&path, b"").unwrap();
    assert!(history.check_file().await.is_err());
}
