//! The status page (`GET /`) in a real headless Chromium against a real `dms run` on loopback:
//! a dead backup shows as unreachable and behind, filters narrow the table, "Run now" starts a
//! run that then shows, and with a token nothing leaks without it. Every test also checks the
//! browser console stayed free of errors; screenshots go to `target/test-artifacts/web/`.

use crate::helper::browser::PHONE;
use crate::helper::fixture::{Page, get_json};
use crate::helper::influxd::InfluxServer;
use crate::helper::project::{Project, bars, mixed_daemon_yaml, put, sync_yaml};
use dms::model::{NANOS_PER_DAY, NANOS_PER_SEC};
use serde_json::Value;
use std::time::Duration;

fn minute() -> i64 {
    60 * NANOS_PER_SEC
}

const TASKS: &str = r#"tasks:
  - name: nightly
    schedule: "30 16 * * Mon-Fri"
    timezone: America/New_York
  - name: hourly
    schedule: "5 * * * *"
"#;

/// A project with SQLite primary and backups, two tasks, and two symbols × two intervals on
/// the primary; the daemon's first catch-up check copies them.
async fn sqlite_project(port: u16, token: Option<&str>) -> Project {
    let mut api = format!("api:\n  listen: 127.0.0.1:{port}\n");
    if let Some(t) = token {
        api.push_str(&format!("  token: \"{t}\"\n"));
    }
    let p = Project::with_sync(&sync_yaml(100, 1, &api));
    p.write("config/task.yaml", TASKS);
    let end = dms::model::now_nanos() / minute() * minute();
    let day = end / NANOS_PER_DAY * NANOS_PER_DAY;
    for sym in ["US.AAPL", "US.MSFT"] {
        put(
            p.node("primary").as_ref(),
            bars(sym, "1m", 120, end, minute()),
        )
        .await;
        put(
            p.node("primary").as_ref(),
            bars(sym, "1d", 10, day, NANOS_PER_DAY),
        )
        .await;
    }
    p
}

/// The page over [`sqlite_project`] once its 8 backup·series are current; `None` without a
/// browser.
async fn sqlite_page(token: Option<&str>) -> Option<Page> {
    Page::start(async |port| sqlite_project(port, token).await, 8, token).await
}

/// Rows of the series table.
const ROWS: &str = "#series-table tbody tr[data-backup]";

/// How the text of `css` (one element) lies on the page: words (letter and digit runs) broken
/// across two lines, the lines it takes, how far it overflows its box, its text and title.
async fn text_layout(browser: &crate::helper::browser::Browser, css: &str) -> Value {
    browser
        .js(
            r#"const el = document.querySelector(arguments[0]);
            const split = [], lines = new Set();
            const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
            while (walk.nextNode()) {
              const node = walk.currentNode, re = /[A-Za-z0-9_]+/g;
              let m;
              while ((m = re.exec(node.data))) {
                const r = document.createRange();
                r.setStart(node, m.index);
                r.setEnd(node, m.index + m[0].length);
                const rects = Array.from(r.getClientRects()).filter(x => x.width > 0);
                if (rects.length !== 1) split.push(m[0]);
                rects.forEach(x => lines.add(Math.round(x.top)));
              }
            }
            return {split, lines: lines.size, overflow: el.scrollWidth - el.clientWidth,
                    text: el.textContent, title: el.title};"#,
            vec![Value::String(css.into())],
        )
        .await
}

/// Asserts the text of `css` is whole (the title says all of it), inside its box, and broken
/// only between words; returns the lines it takes.
async fn assert_wraps_between_words(browser: &crate::helper::browser::Browser, css: &str) -> u64 {
    let l = text_layout(browser, css).await;
    assert_eq!(l["split"], serde_json::json!([]), "words cut in {css}: {l}");
    assert!(
        l["overflow"].as_i64().unwrap_or(1) <= 0,
        "{css} overflows: {l}"
    );
    assert_eq!(l["text"], l["title"], "{css} shows all of its text: {l}");
    l["lines"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backup_shows_as_unreachable_and_behind_with_its_failures() {
    let Some(mut influx) = InfluxServer::start().await else {
        return;
    };
    let influx_url = influx.url();
    let end = dms::model::now_nanos() / minute() * minute();
    let page = Page::start(
        async |port| {
            let p = Project::with_sync(&mixed_daemon_yaml(&influx_url, "dms_web", port));
            p.write("config/task.yaml", TASKS);
            for sym in ["US.AAPL", "US.MSFT"] {
                put(
                    p.node("primary").as_ref(),
                    bars(sym, "1m", 120, end - 30 * minute(), minute()),
                )
                .await;
            }
            p
        },
        4,
        None,
    )
    .await;
    let Some(page) = page else {
        return;
    };
    let (browser, p, d) = (page.browser, &page.project, &page.daemon);

    // backup1 dies; half an hour of new US.AAPL bars arrive (lag > max_gap_hours).
    influx.kill_hard();
    put(
        p.node("primary").as_ref(),
        bars("US.AAPL", "1m", 30, end, minute()),
    )
    .await;
    // The check loop sends no work to a backup that does not answer; a task run tries it
    // and records the failures (both series).
    let r = dms::node::http_client_builder()
        .build()
        .expect("http client")
        .post(format!("{}/api/dms/tasks/nightly/run", d.url))
        .send()
        .await
        .expect("the daemon answers");
    assert_eq!(r.status().as_u16(), 202);
    let failed = async || {
        d.get("/api/dms/sync/history?backup=backup1&status=failed&limit=10000")
            .await["items"]
            .as_array()
            .map_or(0, Vec::len)
    };
    d.wait_for("backup1 behind with failed syncs", 20, || async {
        let st = d.get("/api/dms/sync/status?behind=true").await;
        st.as_array().is_some_and(|a| a.len() == 1) && failed().await >= 2
    })
    .await;

    let failed_before = failed().await;
    browser.goto(&format!("{}/", d.url)).await;
    let failed_after = failed().await;
    let card = r#"#backups article[data-backup="backup1"]"#;
    assert_eq!(browser.attrs(card, "data-reachable").await, ["false"]);
    assert!(browser.text(card).await.contains("unreachable"));
    assert_eq!(
        browser.text(&format!("{card} .behind-count")).await,
        "1 of 2"
    );
    // Its lag is only known from its checkpoint: a lower bound, marked as such.
    let lag = browser.text(&format!("{card} .lag")).await;
    assert!(lag.starts_with("≥ "), "{lag}");
    let unknown = r#"#series-table tbody tr[data-state="unknown"] td.num"#;
    assert!(browser.count(unknown).await >= 1);
    for l in browser.texts(unknown).await {
        assert!(l.starts_with("≥ "), "{l}");
    }
    let ok_card = r#"#backups article[data-backup="backup2"]"#;
    assert_eq!(browser.attrs(ok_card, "data-reachable").await, ["true"]);
    assert!(browser.text(ok_card).await.contains("reachable"));
    // The primary has a card of its own, not among the backups.
    assert_eq!(browser.count("#backups article").await, 2);
    assert_eq!(browser.count("#backups [data-node]").await, 0);
    let primary = r#"#primary article[data-node="primary"]"#;
    assert_eq!(browser.attrs(primary, "data-reachable").await, ["true"]);
    assert_eq!(browser.text(&format!("{primary} .series-count")).await, "2");
    assert_eq!(
        browser.text(&format!("{primary} .newest")).await,
        dms::timefmt::people_nanos(end),
        "the zone is named"
    );
    // Its figures fit inside it (the newest point's time names its zone).
    let spill = browser
        .js(
            "const c = document.querySelector(arguments[0]);
             return Math.max(...[c, ...c.querySelectorAll('dd')].map(e => e.scrollWidth - e.clientWidth),
                             ...[...c.querySelectorAll('dd')].map(e =>
                                 e.getBoundingClientRect().right - c.getBoundingClientRect().right));",
            vec![Value::String(primary.into())],
        )
        .await;
    assert!(
        spill.as_f64().unwrap_or(1.0) <= 0.0,
        "the primary card spills: {spill}"
    );
    // The InfluxDB URL is shown whole, broken only between its parts.
    let url = format!("{card} .kind");
    assert!(
        browser
            .text(&url)
            .await
            .contains(&format!("{influx_url} database")),
        "{}",
        browser.text(&url).await
    );
    assert_wraps_between_words(&browser, &url).await;
    let summary = browser.text("#summary").await;
    assert!(
        summary.contains("1 node unreachable") && summary.contains("1 series behind"),
        "{summary}"
    );
    assert!(browser.url().await.ends_with('/'));
    assert!(
        browser
            .js("return document.title", vec![])
            .await
            .as_str()
            .unwrap_or_default()
            .contains("1 behind")
    );

    // The table marks exactly the series that is behind.
    let behind = r#"#series-table tbody tr[data-behind="true"]"#;
    assert_eq!(browser.attrs(behind, "data-backup").await, ["backup1"]);
    assert_eq!(browser.attrs(behind, "data-symbol").await, ["US.AAPL"]);
    assert_eq!(
        browser.text(&format!("{behind} .badge.behind")).await,
        "behind"
    );
    assert_eq!(browser.count(ROWS).await, 4);

    // The repeated failures are one entry: backup1, unreachable, how many since when, the
    // series, the latest error, and links to the filtered history.
    let fail = r#"#failures li[data-backup="backup1"]"#;
    assert_eq!(browser.count(fail).await, 1);
    assert_eq!(browser.attrs(fail, "data-cause").await, ["unreachable"]);
    let count: usize = browser.attrs(fail, "data-count").await[0].parse().unwrap();
    assert!(
        (failed_before..=failed_after).contains(&count) && count >= 2,
        "{failed_before} <= {count} <= {failed_after}"
    );
    let head = browser.text(&format!("{fail} .head")).await;
    assert!(
        head.starts_with(&format!(
            "backup1 unreachable — {count} failed syncs since "
        )),
        "{head}"
    );
    let err = browser.text(&format!("{fail} .err")).await;
    assert!(err.contains("unreachable"), "{err}");
    let link = browser.attrs(&format!("{fail} .series a"), "href").await;
    // The task run failed both series on backup1.
    assert!(
        [
            "/api/dms/sync/history?backup=backup1&symbol=US.AAPL&interval=1m&status=failed",
            "/api/dms/sync/history?backup=backup1&symbol=US.MSFT&interval=1m&status=failed"
        ]
        .contains(&link[0].as_str()),
        "{link:?}"
    );
    let linked = d.get(&link[0]).await;
    let items = linked["items"].as_array().unwrap();
    assert!(!items.is_empty());
    let symbol = if link[0].contains("US.AAPL") {
        "US.AAPL"
    } else {
        "US.MSFT"
    };
    assert!(
        items
            .iter()
            .all(|r| r["status"] == "failed" && r["backup"] == "backup1" && r["symbol"] == symbol),
        "{items:?}"
    );

    // The chart: records copied for both, failures marked for backup1.
    assert!(
        browser
            .count(r#"figure.chart[data-backup="backup1"] rect.fail"#)
            .await
            >= 1
    );
    assert!(
        browser
            .count(r#"figure.chart[data-backup="backup2"] rect.bar"#)
            .await
            >= 1
    );
    assert_eq!(
        browser
            .count(r#"figure.chart[data-backup="backup2"] rect.fail"#)
            .await,
        0
    );
    browser
        .assert_no_console_errors("loading the page with a dead backup")
        .await;
    browser.screenshot("dead-backup").await;

    // On a phone-sized window nothing spills sideways (wide tables scroll in their box).
    browser.resize(PHONE).await;
    let overflow = browser
        .js(
            "return document.documentElement.scrollWidth - window.innerWidth",
            vec![],
        )
        .await;
    assert!(overflow.as_i64().unwrap_or(1) <= 0, "overflow {overflow}");
    // The URL takes more than one line here, and still no word is cut.
    assert!(assert_wraps_between_words(&browser, &url).await >= 2);
    browser.screenshot("dead-backup-phone").await;

    // The console check catches real script errors.
    browser
        .js(
            "setTimeout(() => { throw new Error('dms-console-probe') }, 0); return 1",
            vec![],
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let errors = browser.console_errors().await;
    assert!(
        errors.iter().any(|e| e.contains("dms-console-probe")),
        "the console probe was not caught: {errors:?}"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_narrow_the_table_and_auto_refresh_can_be_turned_off() {
    let Some(page) = sqlite_page(None).await else {
        return;
    };
    let (browser, base) = (page.browser, page.daemon.url.clone());

    browser.goto(&format!("{base}/")).await;
    assert_eq!(browser.count(ROWS).await, 8);
    assert_eq!(browser.text("#summary").await, "All backups current");
    let refresh = browser
        .attrs(r#"meta[http-equiv="refresh"]"#, "content")
        .await;
    assert_eq!(refresh, ["30; url=/"]);
    // The schedules in words, next to the expressions.
    let nightly = browser.text(r#"tr[data-task="nightly"] .words"#).await;
    assert_eq!(nightly, "at 16:30 on Mon–Fri");
    let hourly = browser.text(r#"tr[data-task="hourly"] .words"#).await;
    assert_eq!(hourly, "every hour at :05");
    // The check loop and the tasks' catch_up option are worded apart.
    let check = browser.text("#check-loop").await;
    assert!(
        check.starts_with("Check loop: every 1m the daemon compares each backup"),
        "{check}"
    );
    assert!(!check.to_lowercase().contains("catch"), "{check}");
    assert_eq!(
        browser.text(r#"tr[data-task="nightly"] .catch-up"#).await,
        "A run missed while dms was down runs once at start (catch_up)."
    );

    // Turn auto-refresh off: a plain link, and it stays off through the filter form.
    browser.click("#refresh-toggle").await;
    browser
        .wait_until("auto-refresh off", 10, || async {
            browser.url().await.ends_with("/?refresh=off")
        })
        .await;
    assert_eq!(browser.count(r#"meta[http-equiv="refresh"]"#).await, 0);
    assert_eq!(browser.text("#refresh-toggle").await, "turn on");

    // Backup and symbol (any case, part of the name) narrow the table.
    browser
        .select(r#"#filters select[name="backup"]"#, "backup2")
        .await;
    browser
        .type_into(r#"#filters input[name="symbol"]"#, "msft")
        .await;
    browser.click(r#"#filters button[type="submit"]"#).await;
    browser
        .wait_until("the filtered page", 10, || async {
            let url = browser.url().await;
            url.contains("backup=backup2&symbol=msft") && url.ends_with("&refresh=off")
        })
        .await;
    assert_eq!(browser.attrs(ROWS, "data-backup").await, ["backup2"; 2]);
    assert_eq!(browser.attrs(ROWS, "data-symbol").await, ["US.MSFT"; 2]);
    assert!(browser.text("#series-count").await.contains("2 of 8"));
    assert_eq!(browser.count(r#"meta[http-equiv="refresh"]"#).await, 0);
    browser.screenshot("filtered").await;

    browser
        .select(r#"#filters select[name="interval"]"#, "1d")
        .await;
    browser.click(r#"#filters button[type="submit"]"#).await;
    browser
        .wait_until("the interval filter", 10, || async {
            browser.url().await.contains("interval=1d")
        })
        .await;
    assert_eq!(browser.attrs(ROWS, "data-interval").await, ["1d"]);

    // Nothing is behind: "behind only" leaves no rows, and says so.
    browser.click(r#"#filters input[name="behind"]"#).await;
    browser.click(r#"#filters button[type="submit"]"#).await;
    browser
        .wait_until("the behind filter", 10, || async {
            browser.url().await.contains("behind=1")
        })
        .await;
    assert_eq!(browser.count(ROWS).await, 0);
    assert!(
        browser
            .text("#series-table tbody")
            .await
            .contains("No series match the filter.")
    );

    // Clear keeps only the refresh choice.
    browser.click("#filters a").await;
    browser
        .wait_until("the cleared filter", 10, || async {
            browser.url().await.ends_with("/?refresh=off")
        })
        .await;
    assert_eq!(browser.count(ROWS).await, 8);

    // Plain query parameters work as links.
    browser
        .goto(&format!("{base}/?backup=backup1&symbol=US.AAPL"))
        .await;
    assert_eq!(browser.attrs(ROWS, "data-interval").await, ["1d", "1m"]);
    assert_eq!(
        browser
            .attrs(
                r#"#filters select[name="backup"] option[selected]"#,
                "value"
            )
            .await,
        ["backup1"]
    );
    browser.assert_no_console_errors("filtering").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_now_starts_a_run_that_then_appears_on_the_page() {
    let Some(page) = sqlite_page(None).await else {
        return;
    };
    let (browser, d) = (page.browser, &page.daemon);
    let base = d.url.clone();

    browser.goto(&format!("{base}/?symbol=AAPL")).await;
    // Without a token the page needs no JavaScript at all: it has none.
    assert_eq!(
        browser.js("return document.scripts.length", vec![]).await,
        0
    );
    let last = r#"tr[data-task="nightly"] .last-run"#;
    assert_eq!(browser.text(last).await, "never");
    browser.screenshot("before-run-now").await;

    browser
        .click(r#"tr[data-task="nightly"] form.run button"#)
        .await;
    browser
        .wait_until("the run-now notice", 10, || async {
            browser.text("#notice").await == "Started a run of nightly; it shows under Tasks."
        })
        .await;
    // Back on the page it came from, filters kept.
    let url = browser.url().await;
    assert!(
        url.contains("symbol=AAPL") && url.contains("ran=nightly&result=started"),
        "{url}"
    );
    assert_eq!(browser.count(ROWS).await, 4);
    // The page's own refresh URL drops the notice.
    assert_eq!(
        browser
            .attrs(r#"meta[http-equiv="refresh"]"#, "content")
            .await,
        ["30; url=/?symbol=AAPL"]
    );

    browser
        .wait_until("the run on the page", 20, || async {
            browser.goto(&format!("{base}/")).await;
            browser.text(&format!("{last} .run-status")).await == "success"
        })
        .await;
    assert_eq!(browser.text(&format!("{last} .trigger")).await, "api");
    let runs = d.get("/api/dms/tasks").await;
    let nightly = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "nightly")
        .unwrap();
    assert_eq!(nightly["last_run"]["trigger"], "api");
    assert_eq!(nightly["last_run"]["status"], "success");
    // The chart shows what the catch-up check copied.
    assert!(browser.count("figure.chart rect.bar").await >= 2);
    browser.assert_no_console_errors("running a task").await;
    browser.screenshot("after-run-now").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_the_page_shows_nothing_without_it_and_everything_with_it() {
    const TOKEN: &str = "pAge-t0ken-7f3a9c";
    let Some(page) = sqlite_page(Some(TOKEN)).await else {
        return;
    };
    let (browser, base) = (page.browser, page.daemon.url.clone());
    let http = dms::node::http_client_builder()
        .build()
        .expect("http client");
    let data = [
        "US.AAPL",
        "US.MSFT",
        "backup1",
        "backup2",
        "nightly",
        "hourly",
        "primary.db",
    ];
    let leaks = |body: &str| -> Vec<&str> {
        data.iter()
            .copied()
            .filter(|needle| body.contains(needle))
            .collect()
    };

    // The raw answers: without the token, a sign-in shell and no data, whatever the query.
    for path in ["/", "/?backup=backup1&symbol=US.AAPL"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.headers().contains_key("content-security-policy"));
        let body = r.text().await.unwrap();
        assert!(body.contains(r#"type="password""#), "{body}");
        assert_eq!(
            leaks(&body),
            Vec::<&str>::new(),
            "{path} leaks without a token"
        );
    }
    let r = http
        .get(format!("{base}/"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(leaks(&r.text().await.unwrap()), Vec::<&str>::new());
    let r = http
        .get(format!("{base}/"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body = r.text().await.unwrap();
    assert_eq!(leaks(&body).len(), data.len(), "the data with the token");
    assert!(!body.contains(TOKEN), "the page never holds the token");
    // The no-JavaScript "Run now" route needs the token too.
    let r = http
        .post(format!("{base}/ui/tasks/nightly/run"))
        .form(&[("refresh", "off")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let tasks = get_json(&format!("{base}/api/dms/tasks"), Some(TOKEN)).await;
    assert!(tasks[0]["last_run"].is_null(), "no run started: {tasks}");

    // In the browser: a password field and no data.
    browser.goto(&format!("{base}/")).await;
    assert_eq!(browser.count("#login input[type=password]").await, 1);
    assert_eq!(leaks(&browser.dom().await), Vec::<&str>::new());
    browser.screenshot("token-sign-in").await;

    // A wrong token is refused (the 401 is the only console error).
    browser.type_into("#login input", "not-the-token").await;
    browser.click("#login button").await;
    browser
        .wait_until("the refusal", 10, || async {
            browser.text("#login-msg").await == "That token was not accepted."
        })
        .await;
    let errors = browser.console_errors().await;
    assert!(
        errors.iter().all(|e| e.contains("401")),
        "only the refused request: {errors:?}"
    );
    assert_eq!(leaks(&browser.dom().await), Vec::<&str>::new());

    // The right one shows the page; it is in no URL and nowhere in the document.
    browser.type_into("#login input", TOKEN).await;
    browser.click("#login button").await;
    browser
        .wait_until("the page with the token", 10, || async {
            browser.count(ROWS).await == 8
        })
        .await;
    assert_eq!(browser.url().await, format!("{base}/"));
    assert!(!browser.dom().await.contains(TOKEN));
    assert_eq!(browser.count("#forget").await, 1);
    browser.screenshot("token-signed-in").await;

    // "Run now" goes to the API with the bearer header.
    browser
        .click(r#"tr[data-task="nightly"] form.run button"#)
        .await;
    browser
        .wait_until("the run-now notice", 10, || async {
            browser
                .text("#notice")
                .await
                .starts_with("Started a run of nightly")
        })
        .await;
    assert_eq!(
        browser.url().await,
        format!("{base}/"),
        "no notice in the URL"
    );
    let last = r#"tr[data-task="nightly"] .last-run"#;
    browser
        .wait_until("the run on the page", 20, || async {
            // A new navigation: the tab still has the token and loads the data again.
            browser.goto(&format!("{base}/")).await;
            browser
                .wait_until("the data", 10, || async { browser.count(ROWS).await == 8 })
                .await;
            browser.text(&format!("{last} .run-status")).await == "success"
        })
        .await;
    assert_eq!(browser.text(&format!("{last} .trigger")).await, "api");

    // Its links to the JSON API go with the bearer header too.
    browser
        .click(r#"footer a[href="/api/dms/sync/status"]"#)
        .await;
    browser
        .wait_until("the JSON through the link", 10, || async {
            browser.url().await.starts_with("blob:")
        })
        .await;
    let json = browser.text("body").await;
    let rows: Value = serde_json::from_str(&json).expect("the status as JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(8));
    assert!(!browser.url().await.contains(TOKEN));

    // Filters are plain query parameters here too.
    browser.goto(&format!("{base}/?symbol=msft")).await;
    browser
        .wait_until("the filtered page", 10, || async {
            browser.count(ROWS).await == 4
        })
        .await;
    assert_eq!(browser.attrs(ROWS, "data-symbol").await, ["US.MSFT"; 4]);
    assert_eq!(browser.url().await, format!("{base}/?symbol=msft"));
    browser.assert_no_console_errors("signed in").await;

    // Forgetting the token leaves a sign-in form and no data.
    browser.click("#forget").await;
    browser
        .wait_until("the sign-in form again", 10, || async {
            browser.count("#login").await == 1
        })
        .await;
    assert_eq!(leaks(&browser.dom().await), Vec::<&str>::new());
    browser.close().await;
}
