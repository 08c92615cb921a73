//! Lua task scripts: hooks drive the sync, the `dms` module works, and broken or hostile
//! scripts fail only their own run with the script's name, line and a traceback, while the
//! history and checkpoints stay consistent and the next task still runs.

use crate::helper::project::{Project, all, checkpoint, daily, put, sync_yaml};
use dms::history::Trigger;
use dms::history::{HistoryFilter, Status};
use dms::model::SeriesKey;
use dms::sync::SyncControl;

const LIMITS: &str = "scripts:\n  memory_limit_mb: 16\n  instruction_limit: 5000000\n";

fn project_with(tasks: &[(&str, &str)]) -> Project {
    let p = Project::with_sync(&sync_yaml(100, 1, LIMITS));
    let mut yaml = String::from("tasks:\n");
    for (name, src) in tasks {
        p.write(&format!("scripts/{name}.lua"), src);
        yaml.push_str(&format!(
            "  - name: {name}\n    script: scripts/{name}.lua\n    timeout: 20\n    params:\n      symbols: [US.AAPL]\n"
        ));
    }
    p.write("config/task.yaml", &yaml);
    p
}

async fn run(p: &Project, task: &str) -> dms::app::RunOutcome {
    let app = p.app();
    app.run_task(task, Trigger::Manual, &SyncControl::default())
        .await
        .expect("the run is recorded")
}

async fn assert_contained(src: &str, needles: &[&str]) {
    let p = project_with(&[("evil", src)]);
    put(p.node("primary").as_ref(), daily("US.AAPL", 5)).await;
    let out = run(&p, "evil").await;
    assert_eq!(out.status, Status::Failed, "{src}");
    let err = out.error.clone().unwrap_or_default();
    assert!(
        err.contains("script scripts/evil.lua"),
        "names the script: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "{src}\nerror lacks {n:?}:\n{err}");
    }
    // The run is recorded as failed with that error; nothing is left running or synced.
    let db = p.history();
    let runs = db.runs(Some("evil"), 0).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status.as_str(), "failed");
    assert_eq!(runs[0].error.as_deref(), Some(err.as_str()));
    assert!(
        db.history(&HistoryFilter::default())
            .unwrap()
            .iter()
            .all(|r| r.status.as_str() != "running")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symbols_and_intervals_hooks_choose_what_is_synced() {
    let p = project_with(&[(
        "pick",
        r#"
        function symbols(ctx) return ctx.params.symbols end
        function intervals(ctx) return { "1d" } end
        function on_success(ctx, report)
          assert(report.records == 10, "records " .. tostring(report.records))
          assert(report.failed == 0)
          assert(#report.units == 2 and report.units[1].status == "success")
        end
        "#,
    )]);
    put(p.node("primary").as_ref(), daily("US.AAPL", 5)).await;
    put(p.node("primary").as_ref(), daily("US.MSFT", 5)).await;
    let out = run(&p, "pick").await;
    assert_eq!(out.status, Status::Success, "{:?}", out.error);
    assert_eq!(out.report.records(), 10);
    let aapl = SeriesKey::new("US.AAPL", "1d");
    let msft = SeriesKey::new("US.MSFT", "1d");
    assert_eq!(all(p.node("backup1").as_ref(), &aapl).await.len(), 5);
    assert!(
        all(p.node("backup1").as_ref(), &msft).await.is_empty(),
        "not chosen, not synced"
    );
    assert!(checkpoint(&p, "backup2", &aapl).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_hook_writes_to_the_primary_and_syncs_with_the_dms_module() {
    let p = project_with(&[(
        "writer",
        r#"
        function run(ctx)
          local t0 = dms.time.parse("2026-01-05T00:00:00Z")
          local pts = {}
          for i = 0, 9 do
            pts[#pts + 1] = { symbol = "US.NEW", interval = "1d", time = t0 + dms.time.days(i),
              fields = { close = dms.float(100 + i), volume = 1000 + i, note = "ok", halted = false } }
          end
          assert(dms.primary.write(pts) == 10)
          assert(dms.primary.newest("US.NEW", "1d") == t0 + dms.time.days(9))
          assert(dms.primary.newest("US.NONE", "1d") == nil)
          local syms = dms.primary.symbols()
          assert(#syms == 1 and syms[1] == "US.NEW", dms.json.encode(syms))
          assert(dms.json.decode('{"a":[1,2]}').a[2] == 2)
          assert(dms.time.format(t0) == "2026-01-05T00:00:00Z")
          local r = dms.sync { symbols = { "US.NEW" }, intervals = { "1d" }, initial_days = 36500 }
          assert(r.records == 20 and r.failed == 0, dms.json.encode(r))
          dms.log.info("done", r.records)
        end
        "#,
    )]);
    let out = run(&p, "writer").await;
    assert_eq!(out.status, Status::Success, "{:?}", out.error);
    let s = SeriesKey::new("US.NEW", "1d");
    let copy = all(p.node("backup2").as_ref(), &s).await;
    assert_eq!(copy.len(), 10);
    assert_eq!(
        copy[0].field("volume"),
        Some(&dms::model::FieldValue::Integer(1000))
    );
    assert_eq!(
        copy[0].field("close"),
        Some(&dms::model::FieldValue::Float(100.0))
    );
    assert_eq!(
        copy[0].field("halted"),
        Some(&dms::model::FieldValue::Boolean(false))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_reader_reads_the_data_folder_and_nothing_outside_it() {
    let p = project_with(&[(
        "csv",
        r#"
        function run(ctx)
          local rows = dms.csv.read("in/a.csv")
          assert(#rows == 2 and rows[2].close == "2.5", dms.json.encode(rows))
          assert(dms.csv.exists("in/a.csv") and not dms.csv.exists("in/b.csv"))
          assert(dms.csv.list("in")[1] == "a.csv")
          local ok, err = pcall(dms.csv.read, "../config/sync.yaml")
          assert(not ok and string.find(err, "outside the data folder"), err)
          ok, err = pcall(dms.csv.read, "/etc/passwd")
          assert(not ok and string.find(err, "outside the data folder"), err)
        end
        "#,
    )]);
    p.write(
        "data/in/a.csv",
        "time,close\n2026-01-01,1.5\n2026-01-02,2.5\n",
    );
    let out = run(&p, "csv").await;
    assert_eq!(out.status, Status::Success, "{:?}", out.error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_error_names_script_line_and_traceback() {
    assert_contained(
        "local function inner(t)\n  return t.missing.field\nend\nfunction run(ctx)\n  inner({})\nend\n",
        &["hook run failed", "scripts/evil.lua:2:", "attempt to index", "stack traceback", "in function"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_loops_are_stopped_by_the_instruction_budget() {
    assert_contained(
        "function run(ctx)\n  while true do end\nend\n",
        &["instruction budget exhausted"],
    )
    .await;
    // Inside a coroutine, and with the error swallowed by pcall in a loop.
    assert_contained(
        "function run(ctx)\n  local co = coroutine.wrap(function() while true do end end)\n  co()\nend\n",
        &["instruction budget exhausted"],
    )
    .await;
    assert_contained(
        "function run(ctx)\n  while true do pcall(function() while true do end end) end\nend\n",
        &["instruction budget exhausted"],
    )
    .await;
    // Inside a callback from Rust (table.sort's comparator).
    assert_contained(
        "function run(ctx)\n  table.sort({3, 2, 1}, function(a, b) while true do end end)\nend\n",
        &["instruction budget exhausted"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bombs_hit_the_memory_limit() {
    assert_contained(
        "function run(ctx)\n  local s = string.rep('x', 1 << 30)\nend\n",
        &["memory"],
    )
    .await;
    assert_contained(
        "function run(ctx)\n  local t = {}\n  for i = 1, 1e8 do t[i] = i .. 'padding-padding' end\nend\n",
        &["memory"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_has_no_io_os_execute_require_debug_or_bytecode() {
    assert_contained(
        "function run(ctx) os.execute('touch /tmp/dms-pwned') end",
        &["execute"],
    )
    .await;
    assert_contained("function run(ctx) io.open('/etc/passwd') end", &["io"]).await;
    assert_contained("function run(ctx) require('os') end", &["require"]).await;
    assert_contained("function run(ctx) debug.getinfo(1) end", &["debug"]).await;
    assert_contained("function run(ctx) os.exit(1) end", &["exit"]).await;
    assert_contained("function run(ctx) os.remove('/tmp/x') end", &["remove"]).await;
    assert_contained("function run(ctx) os.getenv('HOME') end", &["getenv"]).await;
    assert_contained("function run(ctx) dofile('/etc/passwd') end", &["dofile"]).await;
    assert_contained("function run(ctx) string.dump(run) end", &["dump"]).await;
    assert_contained(
        "function run(ctx) assert(load('\\27Lua\\84\\0', 'x', 'b')) end",
        &["only text chunks"],
    )
    .await;
    assert_contained(
        "function run(ctx) local f, e = load('\\27Lua\\84\\0') assert(f, e) end",
        &["attempt to load a binary chunk"],
    )
    .await;
    assert!(!std::path::Path::new("/tmp/dms-pwned").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dms_module_cannot_be_tampered_with() {
    // The module is not a table at all: neither its metatable nor rawset reach inside.
    assert_contained(
        "function run(ctx) setmetatable(dms, {}) end",
        &["table expected"],
    )
    .await;
    assert_contained(
        "function run(ctx) rawset(dms, 'sync', function() end) end",
        &["table expected"],
    )
    .await;
    assert_contained(
        "function run(ctx) rawset(dms.primary, 'write', nil) end",
        &["table expected"],
    )
    .await;
    assert_contained(
        "function run(ctx) local mt = getmetatable(dms); if type(mt) == 'table' then mt.__index = {} end; dms.sync{symbols={'X'}}; error('sync intact') end",
        &["sync intact"],
    )
    .await;
    assert_contained(
        "function run(ctx) dms.sync = function() end end",
        &["read-only"],
    )
    .await;
    assert_contained(
        "function run(ctx) dms.primary.write = nil end",
        &["read-only"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_must_return_what_they_promise() {
    assert_contained(
        "function symbols(ctx) return 42 end",
        &["hook symbols failed", "list of strings"],
    )
    .await;
    assert_contained(
        "function symbols(ctx) return { 'A', 7 } end",
        &["position 2 is a integer"],
    )
    .await;
    assert_contained(
        "function run(ctx) dms.sync { symbols = 'US.AAPL', mode = 'sideways' } end",
        &[
            "dms.sync",
            "unknown variant `sideways`, expected `incremental` or `full`",
        ],
    )
    .await;
    assert_contained(
        "function run(ctx) dms.primary.write({ { symbol = 'A', interval = '1d', time = 1, fields = {} } }) end",
        &["has no fields"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_task_does_not_stop_the_next_one() {
    let p = project_with(&[
        ("first", "function run(ctx) error('boom') end"),
        (
            "second",
            "function symbols(ctx) return ctx.params.symbols end",
        ),
    ]);
    put(p.node("primary").as_ref(), daily("US.AAPL", 3)).await;
    let app = p.app();
    let outcomes = app.run_once(&SyncControl::default()).await.unwrap();
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[0].status, Status::Failed);
    assert!(
        outcomes[0]
            .error
            .as_deref()
            .unwrap()
            .contains("scripts/first.lua:1: boom")
    );
    assert_eq!(
        outcomes[1].status,
        Status::Success,
        "{:?}",
        outcomes[1].error
    );
    assert_eq!(outcomes[1].report.records(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_hears_about_failed_runs() {
    let p = project_with(&[(
        "hears",
        r#"
        function run(ctx) error("first problem") end
        function on_failure(ctx, err)
          assert(string.find(err, "first problem"))
          dms.log.warn("on_failure saw", err)
          error("and on_failure fails too")
        end
        "#,
    )]);
    let out = run(&p, "hears").await;
    assert_eq!(out.status, Status::Failed);
    let err = out.error.unwrap();
    assert!(
        err.contains("first problem"),
        "the original error is kept: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_overruns_its_timeout_fails_and_keeps_what_it_copied() {
    let p = Project::with_sync(&sync_yaml(100, 1, LIMITS));
    p.write(
        "scripts/slow.lua",
        "function run(ctx)\n  dms.sync{}\n  while true do local x = 1 end\nend\n",
    );
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: slow\n    script: scripts/slow.lua\n    timeout: 0.5\n",
    );
    // A large instruction budget, so the time budget is what stops it.
    let yaml = sync_yaml(100, 1, "scripts:\n  instruction_limit: 100000000000\n");
    p.write("config/sync.yaml", &yaml);
    put(p.node("primary").as_ref(), daily("US.AAPL", 3)).await;
    let out = run(&p, "slow").await;
    assert_eq!(out.status, Status::Failed);
    let err = out.error.as_deref().unwrap();
    assert!(
        err.contains("time budget exhausted") || err.contains("timed out after 0.5 s"),
        "{err}"
    );
    assert_eq!(
        all(p.node("backup1").as_ref(), &SeriesKey::new("US.AAPL", "1d"))
            .await
            .len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_fails_to_load_stops_the_app_with_its_name() {
    // The top level runs in the script's own process, as every run does.
    let p = project_with(&[("top", "local x = nil\nx.y = 1\n")]);
    let app = dms::app::App::open(p.settings(), "test").expect("syntax is fine");
    let err = app
        .check_scripts(&tokio_util::sync::CancellationToken::new())
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("task top") && err.contains("scripts/top.lua:2:"),
        "{err}"
    );
    drop(app);
    let p = project_with(&[("both", "function run() end\nfunction symbols() end\n")]);
    let app = dms::app::App::open(p.settings(), "test").expect("syntax is fine");
    let err = app
        .check_scripts(&tokio_util::sync::CancellationToken::new())
        .await
        .expect_err("refused")
        .to_string();
    assert!(err.contains("either run(ctx) or symbols"), "{err}");
    drop(app);
    // `dms run --once` refuses to start with it (the daemon disables only that task).
    let out = p.cli(&["run", "--once"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("either run(ctx) or symbols"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dms_http_reaches_allowed_hosts_only_redirects_included() {
    use axum::response::Redirect;
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/quote", get(|| async { "{\"px\": 101.5}" }))
        .route(
            "/away",
            get(|| async { Redirect::temporary("http://localhost:9/evil") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let p = Project::with_sync(&sync_yaml(
        100,
        1,
        "scripts:\n  http_allow: [\"127.0.0.1\"]\n  http_timeout: 5\n",
    ));
    p.write(
        "scripts/fetch.lua",
        &format!(
            r#"
            function run(ctx)
              local r = dms.http.get("http://127.0.0.1:{port}/quote")
              assert(r.status == 200 and dms.json.decode(r.body).px == 101.5, r.body)
              local ok, err = pcall(dms.http.get, "http://localhost:{port}/quote")
              assert(not ok and string.find(err, "not in scripts.http_allow"), err)
              ok, err = pcall(dms.http.get, "http://127.0.0.1:{port}/away")
              assert(not ok and string.find(err, "outside scripts.http_allow"), err)
              ok, err = pcall(dms.http.get, "file:///etc/passwd")
              assert(not ok, "file URLs are refused")
            end
            "#
        ),
    );
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: fetch\n    script: scripts/fetch.lua\n",
    );
    let out = run(&p, "fetch").await;
    assert_eq!(out.status, Status::Success, "{:?}", out.error);
    // Outside the allow-list the run fails with the script's name.
    assert_contained(
        "function run(ctx) dms.http.get('http://example.com/') end",
        &["dms.http.get", "not in scripts.http_allow"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_and_global_tricks_are_contained() {
    assert_contained(
        "local function f(n) return f(n + 1) + 1 end\nfunction run(ctx) f(1) end\n",
        &["memory limit exceeded"],
    )
    .await;
    assert_contained(
        "function run(ctx) local s = 'x' for i = 1, 40 do s = s .. s end end\n",
        &["memory"],
    )
    .await;
    // A NUL in a symbol would make the series unreadable forever: refused at write time.
    assert_contained(
        "function run(ctx) dms.primary.write{ {symbol='A\\0B', interval='1d', time=1, fields={close=dms.float(1)}} } end",
        &["control character"],
    )
    .await;
    // Rewiring globals only affects this script's own state; the dms module stays intact.
    assert_contained(
        "function run(ctx)\n  setmetatable(_G, { __index = function() return os end })\n  pcall(rawset, dms, 'sync', nil)\n  dms.sync{}\n  error('still here')\nend\n",
        &["still here"],
    )
    .await;
}
