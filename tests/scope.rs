//! The check loop honours the tasks: it catches up a (backup, series) only when an enabled
//! task maintains it there (as the task's last run chose), with that task's `initial_days`;
//! `scope: all` catches up everything. The status view names the owning tasks.

use crate::helper::project::{Project, all, bars, put, sync_yaml};
use dms::app::status::{self, SeriesStatus};
use dms::daemon::Daemon;
use dms::history::{Status, Trigger};
use dms::model::{NANOS_PER_DAY, NANOS_PER_SEC, Nanos, SeriesKey};
use dms::node::Node;
use dms::sync::SyncControl;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const TASKS: &str = r#"tasks:
  - name: apple
    schedule: "0 0 1 1 *"
    script: scripts/apple.lua
    backups: [backup1]
    initial_days: 1
  - name: msft
    schedule: "0 0 1 1 *"
    script: scripts/msft.lua
    enabled: false
"#;

fn step() -> Nanos {
    10 * 60 * NANOS_PER_SEC
}

async fn lines(app: &dms::app::App) -> Vec<SeriesStatus> {
    let db = dms::history::HistoryReader::open(&app.settings.history.path).expect("history");
    status::collect(
        &app.settings,
        &status::Recorded::read(&db).expect("recorded"),
        app.engine.primary().as_ref(),
        app.engine.backups(),
    )
    .await
    .expect("status")
}

fn tasks_of(lines: &[SeriesStatus], backup: &str, series: &SeriesKey) -> Vec<String> {
    lines
        .iter()
        .find(|l| l.key.backup == backup && &l.key.series == series)
        .map(|l| l.tasks.clone())
        .unwrap_or_else(|| panic!("no line for {backup} {series}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_loop_catches_up_only_what_enabled_tasks_maintain_with_their_settings() {
    let yaml = sync_yaml(500, 1, "");
    let p = Project::with_sync(&yaml.replace("    scope: all\n", ""));
    p.write("config/task.yaml", TASKS);
    p.write(
        "scripts/apple.lua",
        "function symbols() return {'US.AAPL'} end\nfunction intervals() return {'1m'} end\n",
    );
    p.write(
        "scripts/msft.lua",
        "function symbols() return {'US.MSFT'} end\nfunction intervals() return {'1m'} end\n",
    );
    let aapl = SeriesKey::new("US.AAPL", "1m");
    let msft = SeriesKey::new("US.MSFT", "1m");
    // Three days of bars every 10 minutes, ending an hour ago.
    let end = dms::model::now_nanos() / step() * step() - 6 * step();
    let primary = p.node("primary");
    for s in [&aapl, &msft] {
        put(primary.as_ref(), bars(&s.symbol, "1m", 432, end, step())).await;
    }
    let app = Arc::new(p.app());
    let ctl = SyncControl::default();
    for task in ["apple", "msft"] {
        let run = app
            .run_task(task, Trigger::Manual, &ctl)
            .await
            .expect("runs");
        assert_eq!(run.status, Status::Success, "{task}: {:?}", run.error);
    }
    let (b1, b2) = (p.node("backup1"), p.node("backup2"));
    let day_ago = dms::model::now_nanos() - NANOS_PER_DAY;
    let held = all(b1.as_ref(), &aapl).await;
    assert!(
        !held.is_empty() && held.iter().all(|pt| pt.time >= day_ago - step()),
        "apple copies one day (initial_days: 1)"
    );
    assert!(
        all(b2.as_ref(), &aapl).await.is_empty(),
        "apple: backup1 only"
    );
    assert_eq!(all(b2.as_ref(), &msft).await.len(), 432);

    // New bars for both; only apple's (backup1, US.AAPL@1m) is maintained by an enabled task.
    for s in [&aapl, &msft] {
        put(
            primary.as_ref(),
            bars(&s.symbol, "1m", 6, end + 6 * step(), step()),
        )
        .await;
    }
    let d = Daemon::new(app.clone(), CancellationToken::new()).expect("daemon");
    let run = d
        .check_once()
        .await
        .expect("the check loop syncs apple's series");
    assert_eq!(run.status, Status::Success, "{:?}", run.error);
    let keys: Vec<String> = run.report.units.iter().map(|u| u.key.to_string()).collect();
    assert_eq!(keys, [format!("backup1 {aapl}")], "{keys:?}");
    assert_eq!(all(b2.as_ref(), &msft).await.len(), 432, "msft is disabled");
    assert!(all(b2.as_ref(), &aapl).await.is_empty());
    assert!(d.check_once().await.is_none(), "the rest is out of scope");

    let st = lines(&app).await;
    assert_eq!(tasks_of(&st, "backup1", &aapl), ["apple"]);
    assert!(tasks_of(&st, "backup2", &aapl).is_empty());
    assert!(
        tasks_of(&st, "backup1", &msft).is_empty(),
        "msft is disabled"
    );

    // backup1 loses the series: the check loop refills it with apple's initial_days (1), not
    // sync.initial_days (3650).
    let times: Vec<Nanos> = all(b1.as_ref(), &aapl)
        .await
        .iter()
        .map(|pt| pt.time)
        .collect();
    b1.delete(&aapl, &times).await.expect("delete");
    let run = d.check_once().await.expect("the check loop refills");
    assert_eq!(run.status, Status::Success, "{:?}", run.error);
    let held = all(b1.as_ref(), &aapl).await;
    let day_ago = dms::model::now_nanos() - NANOS_PER_DAY;
    assert!(
        held.len() > 100 && held.iter().all(|pt| pt.time >= day_ago - step()),
        "{} points, oldest {:?}",
        held.len(),
        held.first().map(|pt| pt.time)
    );
    drop(d);
    drop(app);

    // scope: all catches up every series on every backup.
    p.write("config/sync.yaml", &yaml);
    let app = Arc::new(p.app());
    let d = Daemon::new(app.clone(), CancellationToken::new()).expect("daemon");
    let run = d.check_once().await.expect("everything is caught up");
    assert_eq!(run.status, Status::Success, "{:?}", run.error);
    for b in [&b1, &b2] {
        for s in [&aapl, &msft] {
            let n = all(b.as_ref(), s).await.len();
            let want = all(primary.as_ref(), s).await.len();
            if b.name() == "backup1" && s == &aapl {
                assert!(n > 100, "{} {s}", b.name());
            } else {
                assert_eq!(n, want, "{} {s}", b.name());
            }
        }
    }
}
