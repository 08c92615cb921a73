//! Nothing that did nothing passes as success, against real servers: a misspelled primary
//! database is an error for `sync`, `status`, `verify` and `config check --connect`; a port
//! that is not InfluxDB is named as such without its page; a retention policy that does not
//! exist is named; points without the schema's tags are reported once per run; and
//! `config check --connect` names each node with its server version.

use super::support::{Options, Project, Target, bars, node, put, servers};
use dms::history::{HistoryReader, Status};
use dms::model::{FieldValue, Point};
use std::sync::Arc;

/// A marker placed at the end of the fake server's page: no error may quote that far.
const PAGE_END: &str = "END-OF-THE-WHOLE-PAGE";

/// An HTTP server on loopback that is not InfluxDB: every path answers `status` with a long
/// HTML page. Returns its base URL.
async fn not_influx(status: u16) -> String {
    let page = format!(
        "<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body>{}<p>{PAGE_END}</p></body></html>",
        "<p>If you see this page, the web server is working.</p>\n".repeat(200)
    );
    let app = axum::Router::new().fallback(move || {
        let page = page.clone();
        async move {
            (
                axum::http::StatusCode::from_u16(status).expect("a status"),
                [(axum::http::header::CONTENT_TYPE, "text/html")],
                page,
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelled_primary_database_is_an_error_never_zero_series() {
    let Some(s) = servers(2).await else {
        return;
    };
    let opts = Options::default();
    let schema = opts.schema();
    let right = Target::on(&s[0], "market");
    put(
        &*node("primary", &right, &schema),
        bars(&schema, "US.AAPL", "1d", 5),
    )
    .await;
    let typo = Target::on(&s[0], "markte");
    let project = Project::new(&typo, &[Target::on(&s[1], "copy")], &opts);

    let out = project.cli(&["sync"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(r#"database "markte" does not exist"#)
            && t.contains("the databases there: market"),
        "{t}"
    );
    assert!(!t.contains("success"), "{t}");
    let runs = HistoryReader::open(&project.history)
        .expect("history")
        .runs(None, 0)
        .expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, Status::Failed);
    assert!(
        runs[0].error.as_deref().unwrap_or("").contains("markte"),
        "{:?}",
        runs[0].error
    );

    for args in [&["verify"][..], &["status"], &["reconcile", "--dry-run"]] {
        let out = project.cli(args);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "failed work: {args:?}: {t}");
        assert!(
            t.contains(r#"database "markte" does not exist"#),
            "{args:?}: {t}"
        );
    }

    let out = project.cli(&["config", "check", "--connect"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let primary = t
        .lines()
        .find(|l| l.contains("primary"))
        .expect("a primary line");
    assert!(
        primary.starts_with("FAILED") && primary.contains("markte"),
        "{t}"
    );
    let backup = t
        .lines()
        .find(|l| l.contains("backup1"))
        .expect("a backup line");
    // The failed sync created nothing on the backup either: the first run that writes will.
    assert!(
        backup.starts_with("note") && backup.contains("InfluxDB 1."),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_connect_names_each_node_and_its_version() {
    let Some(s) = servers(2).await else {
        return;
    };
    let opts = Options::default();
    let schema = opts.schema();
    let p = Target::on(&s[0], "market");
    put(
        &*node("primary", &p, &schema),
        bars(&schema, "US.AAPL", "1d", 5),
    )
    .await;
    let project = Project::new(&p, &[Target::on(&s[1], "copy")], &opts);
    let out = project.cli(&["config", "check", "--connect"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let lines: Vec<&str> = t
        .lines()
        .filter(|l| l.starts_with("ok") || l.starts_with("note"))
        .collect();
    assert_eq!(lines.len(), 2, "{t}");
    assert!(
        lines[0].contains("primary")
            && lines[0].contains("InfluxDB 1.")
            && lines[0].contains("can be read"),
        "{t}"
    );
    assert!(
        lines[1].starts_with("note")
            && lines[1].contains("backup1")
            && lines[1]
                .contains(r#"database "copy" does not exist yet: will be created on first run"#),
        "{t}"
    );
    // The check changed nothing: the backup's database still does not exist.
    let dbs = s[1].query("", "SHOW DATABASES").await.to_string();
    assert!(!dbs.contains(r#""copy""#), "{dbs}");
    // Once it exists, it takes writes.
    s[1].create_database("copy").await;
    let t = text(&project.cli(&["config", "check", "--connect"]));
    assert!(t.contains(r#"database "copy" can be written"#), "{t}");

    // A retention policy that does not exist is named with those that do.
    let bad_rp = Target::on(&s[0], "market").with("retention_policy", "forever");
    let project = Project::new(&bad_rp, &[Target::on(&s[1], "copy")], &opts);
    let out = project.cli(&["config", "check", "--connect"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(
            r#"retention policy "forever" does not exist in database "market" (it has: autogen)"#
        ),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_is_not_influxdb_is_named_without_its_page() {
    let Some(s) = servers(1).await else {
        return;
    };
    let opts = Options {
        retry_times: 0,
        ..Options::default()
    };
    let schema = opts.schema();
    let p = Target::on(&s[0], "market");
    put(
        &*node("primary", &p, &schema),
        bars(&schema, "US.AAPL", "1d", 5),
    )
    .await;
    let (ok, missing) = (not_influx(200).await, not_influx(404).await);
    let backups = [
        Target {
            url: ok.clone(),
            database: "copy".into(),
            extra: Vec::new(),
        },
        Target {
            url: missing.clone(),
            database: "copy".into(),
            extra: Vec::new(),
        },
    ];
    let project = Project::new(&p, &backups, &opts);

    let out = project.cli(&["config", "check", "--connect"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    for (name, status) in [("backup1", 200), ("backup2", 404)] {
        let line = t.lines().find(|l| l.contains(name)).expect("a line");
        assert!(line.starts_with("FAILED"), "{t}");
        assert!(
            line.contains(&format!("answered HTTP {status}"))
                && line.contains("is not InfluxDB")
                && line.contains("text/html"),
            "{line}"
        );
        assert!(line.len() < 400, "{} chars: {line}", line.len());
    }
    assert!(!t.contains(PAGE_END), "{t}");

    let out = project.cli(&["sync"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("is not InfluxDB"), "{t}");
    assert!(!t.contains(PAGE_END), "{t}");
    for b in ["backup1", "backup2"] {
        for r in project.history_rows(b) {
            let e = r.error.unwrap_or_default();
            assert!(e.contains("not InfluxDB") && e.len() < 400, "{e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_without_the_schemas_tags_are_reported_once_per_run() {
    let Some(s) = servers(2).await else {
        return;
    };
    let opts = Options::default();
    let schema = opts.schema();
    let p = Target::on(&s[0], "market");
    let primary = node("primary", &p, &schema);
    put(&*primary, bars(&schema, "US.AAPL", "1d", 5)).await;
    // Two points of the measurement without an interval tag, one without a symbol.
    let stray = |tags: &[(&str, &str)], time: i64| {
        let mut pt = Point {
            measurement: Arc::from("kline"),
            tags: tags
                .iter()
                .map(|(k, v)| (Arc::from(*k), Arc::from(*v)))
                .collect(),
            fields: vec![(Arc::from("close"), FieldValue::Float(1.0))],
            time,
        };
        pt.normalize();
        pt
    };
    let now = dms::model::now_nanos();
    put(
        primary.as_ref(),
        vec![
            stray(&[("symbol", "US.MSFT")], now - 1_000_000_000),
            stray(&[("symbol", "US.MSFT")], now - 2_000_000_000),
            stray(&[("interval", "1d")], now - 3_000_000_000),
        ],
    )
    .await;
    let project = Project::new(&p, &[Target::on(&s[1], "copy")], &opts);
    let out = project.cli(&["sync"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let warnings: Vec<&str> = t
        .lines()
        .filter(|l| l.contains("lack the schema"))
        .collect();
    // The log line and the summary line, each once.
    assert!(!warnings.is_empty() && warnings.len() <= 2, "{t}");
    assert!(
        warnings.iter().any(|w| w.contains("2 tag sets")
            && w.contains("kline,symbol=US.MSFT (no interval tag)")
            && w.contains("kline,interval=1d (no symbol tag)")),
        "{t}"
    );
    let runs = HistoryReader::open(&project.history)
        .expect("history")
        .runs(None, 0)
        .expect("runs");
    assert_eq!(runs[0].status, Status::Success);
    assert!(
        runs[0]
            .warning
            .as_deref()
            .unwrap_or("")
            .contains("2 tag sets"),
        "{:?}",
        runs[0].warning
    );
}

/// A script writing to a primary whose database name has a typo: the run fails (exit 1),
/// the error lists the databases that exist, and nothing is created on the primary. A backup
/// with `create_database: false` is refused the same way; one left at the default is created
/// by its first write, and the log says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dms_never_creates_the_primarys_database() {
    let Some(s) = servers(2).await else {
        return;
    };
    let opts = Options::default();
    let schema = opts.schema();
    put(
        &*node("primary", &Target::on(&s[0], "market"), &schema),
        bars(&schema, "US.AAPL", "1d", 5),
    )
    .await;
    let typo = Target::on(&s[0], "markte");
    let project = Project::new(&typo, &[Target::on(&s[1], "copy")], &opts);
    let root = project.config.parent().expect("the project folder");
    std::fs::write(
        root.join("import.lua"),
        r#"
function run(ctx)
  dms.primary.write({{symbol = "US.AAPL", interval = "1d",
    time = dms.time.parse("2024-01-02T00:00:00Z"), fields = {close = dms.float(1.5)}}})
end
"#,
    )
    .expect("script");
    std::fs::write(
        project.config.join("task.yaml"),
        "tasks:\n  - name: import\n    script: import.lua\n    schedule: \"0 0 * * *\"\n",
    )
    .expect("task.yaml");
    let out = project.cli(&["task", "run", "import"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(r#"database "markte" does not exist"#)
            && t.contains("the databases there: market"),
        "{t}"
    );
    assert!(!t.contains("created"), "{t}");
    let dbs = s[0].query("", "SHOW DATABASES").await.to_string();
    assert!(!dbs.contains("markte"), "{dbs}");

    // The key is refused on the primary.
    let refused = Project::new(
        &Target::on(&s[0], "market").with("create_database", "true"),
        &[Target::on(&s[1], "copy")],
        &opts,
    );
    let out = refused.cli(&["config", "check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("nodes.primary.create_database") && t.contains("never creates"),
        "{t}"
    );

    // A backup that may not create its database is refused with the list; one that may is
    // created by the first write, and the log says so.
    let project = Project::new(
        &Target::on(&s[0], "market"),
        &[
            Target::on(&s[1], "kopy").with("create_database", "false"),
            Target::on(&s[1], "copy"),
        ],
        &opts,
    );
    let out = project.cli(&["sync"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(r#"database "kopy" does not exist"#) && t.contains("dms does not create it"),
        "{t}"
    );
    assert!(t.contains("created it"), "{t}");
    let dbs = s[1].query("", "SHOW DATABASES").await.to_string();
    assert!(!dbs.contains("kopy") && dbs.contains(r#""copy""#), "{dbs}");
}
