//! Property tests with a bounded budget (run in CI): config loading never panics on any input;
//! the API answers any query string or path with 2xx/4xx, never a 500; line protocol and
//! InfluxQL quoting round-trip arbitrary names and values through a real InfluxDB.

use crate::helper::project::{Project, bars, put, sync_yaml};
use crate::influx::support::{Target, dump, node, servers};
use dms::model::{FieldValue, NANOS_PER_SEC, Point, SeriesKey};
use dms::schema::Schema;
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, TestRunner};
use std::sync::Arc;

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(PtConfig {
        cases,
        failure_persistence: None,
        ..PtConfig::default()
    })
}

#[test]
fn config_parsing_never_panics_on_arbitrary_bytes() {
    let path = std::path::Path::new("sync.yaml");
    runner(500)
        .run(&proptest::collection::vec(any::<u8>(), 0..400), |bytes| {
            let text = String::from_utf8_lossy(&bytes);
            let _ = dms::config::parse_str::<dms::config::raw::SyncFile>(path, &text);
            let _ = dms::config::parse_str::<dms::config::raw::TaskFile>(path, &text);
            Ok(())
        })
        .unwrap();
    // Deep nesting is an error, not a stack overflow.
    let deep = format!("sync: {}{}", "[".repeat(20_000), "]".repeat(20_000));
    assert!(dms::config::parse_str::<dms::config::raw::SyncFile>(path, &deep).is_err());
}

#[test]
fn mutated_configs_load_or_fail_cleanly() {
    let base_sync =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/sync.yaml")).unwrap();
    let base_task =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/task.yaml")).unwrap();
    let p = Project::new();
    let strategy = (
        any::<bool>(),
        any::<prop::sample::Index>(),
        0usize..20,
        proptest::string::string_regex("[ -~\\n\\t:{}\\[\\]\"'#&*!|>%@`-]{0,12}").unwrap(),
    );
    runner(300)
        .run(&strategy, |(which, at, cut, insert)| {
            let base = if which { &base_sync } else { &base_task };
            let mut bytes: Vec<char> = base.chars().collect();
            let i = at.index(bytes.len());
            let end = (i + cut).min(bytes.len());
            bytes.splice(i..end, insert.chars());
            let text: String = bytes.into_iter().collect();
            let (s, t) = if which {
                (text.as_str(), base_task.as_str())
            } else {
                (base_sync.as_str(), text.as_str())
            };
            p.write("config/sync.yaml", s);
            p.write("config/task.yaml", t);
            // Either loads or reports; never panics.
            let _ = dms::config::load(&p.config_dir());
            Ok(())
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_never_answers_500_to_any_query_or_path() {
    use tower::ServiceExt;
    let p = Project::with_sync(&sync_yaml(100, 1, "api:\n  token: fuzz-token\n"));
    put(
        p.node("primary").as_ref(),
        bars("A", "1m", 20, dms::model::now_nanos(), 60 * NANOS_PER_SEC),
    )
    .await;
    let app = Arc::new(p.app());
    app.manual_sync(
        dms::sync::SyncRequest::new(dms::sync::Selection::all(), 3650),
        &Default::default(),
    )
    .await
    .unwrap();
    let daemon =
        dms::daemon::Daemon::new(app, tokio_util::sync::CancellationToken::new()).expect("daemon");
    let router = dms::http::router(daemon);
    let routes = [
        "/api/dms/sync/history",
        "/api/dms/sync/status",
        "/api/dms/sync/metrics",
        "/api/dms/tasks",
        "/",
        "/healthz",
    ];
    let strategy = (
        0usize..routes.len(),
        proptest::string::string_regex("[a-z_=&%0-9A-F.:+-]{0,40}").unwrap(),
        proptest::string::string_regex("[a-zA-Z0-9%./_-]{0,30}").unwrap(),
        any::<bool>(),
    );
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        runner(400)
            .run(&strategy, |(r, query, junk_path, with_token)| {
                let uris = [
                    format!("{}?{query}", routes[r]),
                    format!("/api/dms/{junk_path}"),
                    format!("/{junk_path}"),
                ];
                for uri in uris {
                    let Ok(req) = axum::http::Request::get(&uri)
                        .header(
                            "Authorization",
                            if with_token {
                                "Bearer fuzz-token"
                            } else {
                                "Bearer nope"
                            },
                        )
                        .body(axum::body::Body::empty())
                    else {
                        continue;
                    };
                    let status = handle
                        .block_on(router.clone().oneshot(req))
                        .unwrap()
                        .status();
                    prop_assert!(!status.is_server_error(), "GET {uri} → {status}");
                    if !with_token && uri.starts_with("/api/") {
                        prop_assert!(
                            status == 401 || status == 404,
                            "GET {uri} without the token → {status}"
                        );
                    }
                }
                Ok(())
            })
            .unwrap();
    });
    // An oversized body is refused, not processed.
    let big = axum::http::Request::post("/api/dms/tasks/x/run")
        .header("Authorization", "Bearer fuzz-token")
        .body(axum::body::Body::from(vec![b'x'; 10 << 20]))
        .unwrap();
    let status = router.clone().oneshot(big).await.unwrap().status();
    assert!(status.is_client_error(), "{status}");
    // Path tricks.
    for uri in [
        "/api/dms/tasks/..%2F..%2Fetc%2Fpasswd/run",
        "/api/dms//sync//history",
        "/api/dms/sync/history/../../../etc/passwd",
    ] {
        let req = axum::http::Request::post(uri)
            .header("Authorization", "Bearer fuzz-token")
            .body(axum::body::Body::empty())
            .unwrap();
        let status = router.clone().oneshot(req).await.unwrap().status();
        assert!(status.is_client_error(), "{uri}: {status}");
    }
}

/// A name line protocol can carry: non-empty, no line breaks, not ending in a backslash.
fn name() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9 ,=\"'\\\\.:_&|*()\\[\\]{}\\-äöü€株🙂]{1,16}")
        .unwrap()
        .prop_filter(
            "line protocol cannot carry a backslash at the end or before , = space \"",
            |s| {
                !s.ends_with('\\')
                    && !["\\,", "\\=", "\\ ", "\\\""]
                        .iter()
                        .any(|bad| s.contains(bad))
            },
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_values_round_trip_through_a_real_influxdb() {
    let Some(s) = servers(1).await else { return };
    let schema = Schema::default();
    let n = node("primary", &Target::on(&s[0], "fuzz"), &schema);
    let handle = tokio::runtime::Handle::current();
    let strategy = (
        name(),
        name(),
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        any::<i64>(),
        ".{0,20}",
        any::<bool>(),
    );
    let case = std::sync::atomic::AtomicI64::new(0);
    tokio::task::block_in_place(|| {
        runner(40)
            .run(&strategy, |(symbol, decoy_suffix, f, i, text, b)| {
                let case = case.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                let series = SeriesKey::new(symbol.clone(), "1m");
                let (m, tags) = schema.identity(&series);
                let t = 1_700_000_000_000_000_000 + case * NANOS_PER_SEC;
                let point = Point {
                    measurement: m.clone(),
                    tags,
                    fields: vec![
                        ("b".into(), FieldValue::Boolean(b)),
                        ("f".into(), FieldValue::Float(f)),
                        ("i".into(), FieldValue::Integer(i)),
                        ("s".into(), FieldValue::String(text.clone())),
                    ],
                    time: t,
                };
                // A decoy series whose symbol starts the same way must not be matched.
                let decoy = SeriesKey::new(format!("{symbol}{decoy_suffix}"), "1m");
                let (dm, dtags) = schema.identity(&decoy);
                let decoy_point = Point {
                    measurement: dm,
                    tags: dtags,
                    fields: vec![("f".into(), FieldValue::Float(0.5))],
                    time: t,
                };
                handle.block_on(put(n.as_ref(), vec![point.clone(), decoy_point]));
                let back = handle.block_on(dump(n.as_ref(), &series));
                let mine: Vec<&Point> = back.iter().filter(|p| p.time == t).collect();
                prop_assert_eq!(
                    mine.len(),
                    1,
                    "exactly this series' point comes back for {:?}",
                    symbol
                );
                prop_assert_eq!(mine[0], &point);
                Ok(())
            })
            .unwrap();
    });
}
