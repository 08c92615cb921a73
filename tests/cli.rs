//! The `dms` binary end to end on a copy of the shipped default project: `run --once` twice,
//! `history`, `status`, `task list`, `sync`, exit codes and `--json` shapes.

use crate::helper::project::Project;
use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A project holding the repository's own config/, scripts/ and data/.
pub(crate) fn shipped() -> Project {
    let p = Project::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for d in ["config", "scripts", "data"] {
        copy_dir(&repo.join(d), &p.root().join(d));
    }
    std::fs::remove_dir_all(p.root().join("config/examples")).ok();
    p
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn the_shipped_default_runs_once_and_a_second_run_copies_only_what_is_new() {
    let p = shipped();
    let first = p.cli(&["run", "--once", "--json"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let runs = json(&first);
    assert_eq!(runs[0]["task"], "daily_update_us");
    assert_eq!(runs[0]["status"], "success");
    // 4 symbols × (1d + 1m) × 2 backups; every shipped bar within initial_days is copied.
    assert_eq!(runs[0]["syncs"], 16);
    assert_eq!(runs[0]["history"].as_array().unwrap().len(), 16);
    let copied = runs[0]["records"].as_u64().unwrap();
    assert!(copied > 19_000, "{copied}");

    let second = p.cli(&["run", "--once", "--json"]);
    assert!(second.status.success());
    let runs = json(&second);
    assert_eq!(
        runs[0]["records"], 0,
        "nothing new: the re-read last bar of each series is compared, not rewritten"
    );

    let hist = json(&p.cli(&["history", "--json", "--limit", "0"]));
    let rows = hist.as_array().unwrap();
    // Two runs of daily_update_us (16 rows each) and of intraday_us (8 rows each).
    assert_eq!(rows.len(), 48);
    for key in [
        "backup",
        "symbol",
        "interval",
        "mode",
        "started_at",
        "finished_at",
        "status",
        "records",
        "error",
        "window_start",
        "window_end",
    ] {
        assert!(rows[0].get(key).is_some(), "history --json has {key}");
    }
    let filtered = json(&p.cli(&[
        "history",
        "--json",
        "--backup",
        "backup1",
        "--symbol",
        "US.AAPL",
        "--interval",
        "1d",
    ]));
    assert_eq!(filtered.as_array().unwrap().len(), 2);
    let intraday = json(&p.cli(&[
        "history",
        "--json",
        "--interval",
        "1m",
        "--backup",
        "backup2",
    ]));
    assert_eq!(intraday.as_array().unwrap().len(), 16);
    let none = json(&p.cli(&["history", "--json", "--status", "failed"]));
    assert_eq!(none.as_array().unwrap().len(), 0);

    let status = p.cli(&["status", "--json"]);
    assert!(status.status.success(), "nothing is behind");
    let st = json(&status);
    assert_eq!(st.as_array().unwrap().len(), 16);
    assert_eq!(st[0]["behind"], false);
    assert_eq!(st[0]["checkpoint"], st[0]["primary_newest"]);

    let tasks = json(&p.cli(&["task", "list", "--json"]));
    assert_eq!(tasks[0]["name"], "daily_update_us");
    assert_eq!(tasks[0]["timezone"], "America/New_York");
    assert_eq!(tasks[0]["last_run"]["status"], "success");
    // Machine times are RFC 3339 UTC; 16:30 in New York.
    let next = tasks[0]["next_run"].as_str().unwrap();
    assert!(next.ends_with('Z'), "{next}");
    let local = chrono::DateTime::parse_from_rfc3339(next)
        .unwrap()
        .with_timezone(&chrono_tz::America::New_York);
    assert_eq!(local.format("%H:%M").to_string(), "16:30", "{next}");
}

#[test]
fn sync_with_filters_and_full_mode() {
    let p = shipped();
    assert!(p.cli(&["run", "--once"]).status.success());
    let out = p.cli(&[
        "sync",
        "--backup",
        "backup2",
        "--symbol",
        "US.MSFT",
        "--interval",
        "1m",
        "--full",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = json(&out);
    assert_eq!(run["task"], "@sync");
    assert_eq!(run["records"], 1170, "full mode recopies the whole range");
    let units = &run["history"];
    assert_eq!(units.as_array().unwrap().len(), 1);
    assert_eq!(units[0]["backup"], "backup2");
    assert_eq!(units[0]["mode"], "full");
    assert_eq!(units[0]["records"], 1170);
    for cmd in [
        &["sync", "--backup", "nope"][..],
        &["status", "--backup", "nope"],
        &["history", "--backup", "nope"],
        &["verify", "--backup", "nope"],
        &["reconcile", "--backup", "nope"],
    ] {
        let bad = p.cli(cmd);
        assert_eq!(
            bad.status.code(),
            Some(2),
            "{cmd:?}: an unknown backup is bad input"
        );
        let err = String::from_utf8_lossy(&bad.stderr);
        // The history names every configured backup (a disabled one's history stays
        // readable); commands that work on backups name the enabled ones.
        let want = if cmd[0] == "history" {
            "no backup is called \"nope\"; the backups are: backup1, backup2"
        } else {
            "no enabled backup is called \"nope\"; the enabled backups are: backup1, backup2"
        };
        assert!(err.contains(want), "{cmd:?}: {err}");
    }
}

#[test]
fn a_failing_task_makes_run_once_exit_non_zero() {
    let p = shipped();
    p.write(
        "scripts/daily_update_us.lua",
        "function run(ctx) error('no data feed today') end\n",
    );
    let out = p.cli(&["run", "--once"]);
    assert_eq!(out.status.code(), Some(1));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("failed") && text.contains("daily_update_us.lua:1: no data feed today"),
        "{text}"
    );
}

#[test]
fn an_unknown_task_and_a_bad_filter_are_usage_errors() {
    let p = shipped();
    let out = p.cli(&["task", "run", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no task is called \"nope\""));
    let out = p.cli(&["history", "--since", "last tuesday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read time"));
}

#[test]
fn the_shipped_sample_is_what_the_generator_makes() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, text) in dms::sample::shipped_sample() {
        let on_disk = std::fs::read_to_string(repo.join("data/incoming").join(&name)).unwrap();
        assert!(
            on_disk == text,
            "data/incoming/{name} differs: run `cargo run --example gen_sample`"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_deleted_and_an_altered_point_and_repair_fixes_exactly_those_windows() {
    use crate::helper::project::{all, put};
    use dms::model::{FieldValue, SeriesKey};
    let p = shipped();
    assert!(p.cli(&["run", "--once"]).status.success());
    let ok = p.cli(&["verify"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    // Delete a 1m bar from backup1 and alter a 1d bar on backup2, behind dms's back.
    let m = SeriesKey::new("US.MSFT", "1m");
    let d = SeriesKey::new("US.NVDA", "1d");
    let victim = all(p.store("backup1", "run/data/backup1.db").as_ref(), &m).await[100].clone();
    let conn = rusqlite::Connection::open(p.root().join("run/data/backup1.db")).unwrap();
    let gone = conn
        .execute(
            "DELETE FROM points WHERE time = ?1 AND series_id IN \
             (SELECT id FROM series WHERE tags LIKE '%US.MSFT%' AND tags LIKE '%\"1m\"%')",
            [victim.time],
        )
        .unwrap();
    assert_eq!(gone, 1);
    drop(conn);
    let backup2 = p.store("backup2", "run/data/backup2.db");
    let mut altered = all(backup2.as_ref(), &d).await[200].clone();
    altered.fields.retain(|(k, _)| &**k != "close");
    altered
        .fields
        .push(("close".into(), FieldValue::Float(-1.0)));
    put(backup2.as_ref(), vec![altered.clone()]).await;

    let out = p.cli(&["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let mism = json(&out);
    let mism = mism.as_array().unwrap();
    assert_eq!(mism.len(), 2, "{mism:?}");
    let day = |t: i64| dms::model::format_nanos(t - t.rem_euclid(dms::model::NANOS_PER_DAY));
    let b1 = mism.iter().find(|m| m["backup"] == "backup1").unwrap();
    assert_eq!(
        (
            b1["symbol"].as_str(),
            b1["interval"].as_str(),
            b1["kind"].as_str()
        ),
        (Some("US.MSFT"), Some("1m"), Some("missing"))
    );
    assert_eq!(b1["window_start"].as_str().unwrap(), day(victim.time));
    assert_eq!(b1["primary_points"], 390);
    assert_eq!(b1["backup_points"], 389);
    let b2 = mism.iter().find(|m| m["backup"] == "backup2").unwrap();
    assert_eq!(
        (b2["symbol"].as_str(), b2["kind"].as_str()),
        (Some("US.NVDA"), Some("different"))
    );
    assert_eq!(b2["window_start"].as_str().unwrap(), day(altered.time));

    let fix = p.cli(&["verify", "--repair"]);
    assert!(
        fix.status.success(),
        "{}{}",
        String::from_utf8_lossy(&fix.stdout),
        String::from_utf8_lossy(&fix.stderr)
    );
    // Exactly those windows were copied: one trading day of 1m bars and one daily bar.
    let runs = json(&p.cli(&["history", "--json", "--limit", "2"]));
    let mut copied: Vec<i64> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["records"].as_i64().unwrap())
        .collect();
    copied.sort();
    assert_eq!(copied, [1, 390]);
    assert!(p.cli(&["verify"]).status.success());
}

#[test]
fn history_prune_deletes_old_rows_and_keeps_checkpoints() {
    let p = shipped();
    assert!(p.cli(&["run", "--once"]).status.success());
    let db = p.root().join("run/db/sync_history.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    // Age half of the rows by a year.
    conn.execute(
        "UPDATE sync_history SET started_at = '2025-01-01T00:00:00.000Z' WHERE id % 2 = 0",
        [],
    )
    .unwrap();
    conn.execute(
        "UPDATE task_runs SET started_at = '2025-01-01T00:00:00.000Z' WHERE task = 'intraday_us'",
        [],
    )
    .unwrap();
    let before: i64 = conn
        .query_row("SELECT count(*) FROM sync_history", [], |r| r.get(0))
        .unwrap();
    let old: i64 = conn
        .query_row(
            "SELECT count(*) FROM sync_history WHERE id % 2 = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let cps: i64 = conn
        .query_row("SELECT count(*) FROM sync_status", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    // A dry run counts exactly what the prune deletes and deletes nothing.
    let dry = p.cli(&["history", "prune", "--older-than", "90d", "--dry-run"]);
    let dry_text = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(dry.status.success(), "{dry_text}");
    assert!(
        dry_text.starts_with(&format!("would prune {old} sync history rows and ")),
        "{dry_text}"
    );
    let counted = dry_text
        .trim_start_matches("would prune ")
        .split(" started before")
        .next()
        .unwrap()
        .to_string();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let still: i64 = conn
        .query_row("SELECT count(*) FROM sync_history", [], |r| r.get(0))
        .unwrap();
    assert_eq!(still, before, "a dry run deleted rows");
    drop(conn);
    // On a terminal it asks; anything but yes deletes nothing.
    if let Some(answered) = on_a_terminal(&p, "history prune --older-than 90d", "n") {
        assert!(answered.contains("? [y/N]"), "{answered}");
        assert!(answered.contains("nothing deleted"), "{answered}");
        let conn = rusqlite::Connection::open(&db).unwrap();
        let still: i64 = conn
            .query_row("SELECT count(*) FROM sync_history", [], |r| r.get(0))
            .unwrap();
        assert_eq!(still, before, "a no deleted rows");
    }
    let out = p.cli(&["history", "prune", "--older-than", "90d"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(&format!("pruned {counted} started")),
        "dry run said {counted}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let after: i64 = conn
        .query_row("SELECT count(*) FROM sync_history", [], |r| r.get(0))
        .unwrap();
    assert_eq!(after, before - old);
    let kept: i64 = conn
        .query_row("SELECT count(*) FROM sync_status", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, cps, "checkpoints are never pruned");
    assert!(
        p.cli(&["history", "prune", "--older-than", "soon"])
            .status
            .code()
            == Some(2)
    );
}

#[test]
fn a_filter_that_matches_nothing_fails_and_a_missing_requested_series_is_a_recorded_warning() {
    let p = shipped();
    assert!(p.cli(&["run", "--once"]).status.success());
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    for (args, want) in [
        (
            &["sync", "--symbol", "US.FAKE"][..],
            "no series on the primary matches symbol US.FAKE",
        ),
        (
            &["sync", "--symbol", "US.AAPL", "--interval", "5m"],
            "no series on the primary matches interval 5m",
        ),
    ] {
        let out = p.cli(args);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {t}");
        assert!(t.contains(want), "{args:?}: {t}");
        assert!(!t.contains("success"), "{args:?}: {t}");
        let run = &p.history().runs(Some("@sync"), 1).unwrap()[0];
        assert_eq!(run.status.as_str(), "failed");
        assert!(run.error.as_deref().unwrap_or("").contains(want), "{run:?}");
    }

    // A hook naming a series the primary lacks: the run succeeds with a recorded warning.
    p.write(
        "config/task.yaml",
        &std::fs::read_to_string(p.root().join("config/task.yaml"))
            .unwrap()
            .replace(
                "    script: scripts/intraday_us.lua\n",
                "    script: scripts/intraday_us.lua\n    params: {symbols: [US.AAPL, US.NOPE]}\n",
            ),
    );
    let out = p.cli(&["task", "run", "intraday_us"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let want = "1 requested series has no data on the primary (empty_on_primary): US.NOPE@1m";
    assert!(
        t.contains("warning: task intraday_us") && t.contains(want),
        "{t}"
    );
    let run = &p.history().runs(Some("intraday_us"), 1).unwrap()[0];
    assert_eq!(run.status.as_str(), "success");
    assert!(
        run.warning.as_deref().unwrap_or("").contains(want),
        "{run:?}"
    );
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(base, &e.path(), out);
            } else {
                out.push(e.path().strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn config_check_connect_on_a_fresh_clone_changes_nothing_and_notes_what_the_first_run_creates() {
    let p = shipped();
    let before = files_under(p.root());
    let out = p.cli(&["config", "check", "--connect"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let notes: Vec<&str> = stdout.lines().filter(|l| l.starts_with("note")).collect();
    assert_eq!(notes.len(), 3, "primary and two backups: {stdout}");
    assert!(
        notes
            .iter()
            .all(|l| l.contains("does not exist yet: will be created on first run")),
        "{stdout}"
    );
    assert!(stdout.contains("3 notes"), "{stdout}");
    assert_eq!(files_under(p.root()), before, "the check created files");

    let out = p.cli(&["config", "check", "--connect", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["problems"], serde_json::json!([]));
    assert_eq!(v["nodes"][0]["role"], "primary");
    assert_eq!(v["nodes"][0]["reachable"], true);
    assert_eq!(v["nodes"][0]["note"], "will be created on first run");
    assert_eq!(files_under(p.root()), before, "the check created files");

    // After the first run the stores exist: no notes.
    assert!(p.cli(&["run", "--once"]).status.success());
    let out = p.cli(&["config", "check", "--connect", "--json"]);
    let v = json(&out);
    assert!(
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["note"].is_null() && n["reachable"] == true),
        "{v}"
    );

    // A broken config: JSON with every problem, exit 2.
    p.write(
        "config/sync.yaml",
        &std::fs::read_to_string(p.root().join("config/sync.yaml"))
            .unwrap()
            .replace("max_workers: 5", "max_workers: 0"),
    );
    let out = p.cli(&["config", "check", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        v["problems"][0].as_str().unwrap().contains("max_workers"),
        "{v}"
    );
}

#[test]
fn a_name_filter_that_matches_nothing_exits_1_everywhere_with_the_nearest_name() {
    let p = shipped();
    assert!(p.cli(&["run", "--once"]).status.success());
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    for args in [
        &["sync", "--symbol", "AAPL"][..],
        &["verify", "--symbol", "AAPL"],
        &["reconcile", "--symbol", "AAPL", "--dry-run"],
        &["status", "--symbol", "AAPL"],
        &["history", "--symbol", "AAPL"],
        &["history", "--symbol", "AAPL", "--json"],
    ] {
        let out = p.cli(args);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {t}");
        assert!(
            t.contains("matches symbol AAPL (did you mean US.AAPL?)"),
            "{args:?}: {t}"
        );
    }
    for args in [
        &["verify", "--interval", "1h"][..],
        &["history", "--interval", "1D"],
        &["sync", "--interval", "1D"],
    ] {
        let out = p.cli(args);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {t}");
        assert!(t.contains("(did you mean 1"), "{args:?}: {t}");
    }
    // A filter that names a known series but selects no rows is an answer, not a mistake.
    let out = p.cli(&["history", "--symbol", "US.AAPL", "--status", "failed"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = p.cli(&["status", "--symbol", "US.AAPL"]);
    assert!(text(&out).contains("US.AAPL"), "{}", text(&out));
    // Every --since takes the same forms: an age, RFC 3339, a date.
    for args in [
        &["verify", "--since", "7d"][..],
        &["verify", "--since", "30d", "--until", "1h"],
        &["reconcile", "--since", "7d", "--dry-run"],
        &["history", "--since", "7d"],
    ] {
        let out = p.cli(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
    }
    let out = p.cli(&["verify", "--since", "lately"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("an age before now (7d"),
        "{}",
        text(&out)
    );
}

/// Runs `dms ARGS` in the project under a pseudo-terminal (util-linux `script`), typing
/// `input` and a newline; everything the terminal showed, or `None` without `script`.
fn on_a_terminal(p: &Project, args: &str, input: &str) -> Option<String> {
    use std::io::Write as _;
    let script = ["/usr/bin/script", "/bin/script"]
        .into_iter()
        .find(|s| Path::new(s).exists())?;
    let cmd = format!("{} {args}", env!("CARGO_BIN_EXE_dms"));
    let mut child = std::process::Command::new(script)
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(p.root())
        .env_remove("DMS_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{input}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Some(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

#[test]
fn a_broken_script_blocks_only_its_own_task() {
    let p = shipped();
    p.write(
        "scripts/broken.lua",
        "function run(ctx)\n  local x = = 1\nend\n",
    );
    p.write(
        "config/task.yaml",
        &format!(
            "{}  - name: broken\n    script: scripts/broken.lua\n",
            std::fs::read_to_string(p.root().join("config/task.yaml")).unwrap()
        ),
    );
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    // The healthy task runs; the broken one is refused with its file and line, recording
    // nothing (and never running as a task without a script).
    let out = p.cli(&["task", "run", "daily_update_us"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = p.cli(&["task", "run", "broken"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("scripts/broken.lua:2:"),
        "{}",
        text(&out)
    );
    assert!(p.history().runs(Some("broken"), 0).unwrap().is_empty());
    // Commands that run no script work on.
    for args in [&["sync"][..], &["verify"], &["reconcile", "--dry-run"]] {
        let out = p.cli(args);
        assert_ne!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    }
    // The daemon and run --once, which run every task, still refuse it up front.
    let out = p.cli(&["run", "--once"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("task broken"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_task_runs_only_with_force_and_a_disabled_backups_history_stays_readable() {
    use crate::helper::daemon::{DaemonProcess, free_port};
    let p = shipped();
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let out = p.cli(&["task", "run", "reconcile_weekly"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--force"), "{}", text(&out));
    assert!(
        !p.root().join("run/db/sync_history.db").exists(),
        "a refused run records nothing"
    );
    let out = p.cli(&["task", "run", "reconcile_weekly", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // backup2 synced, then disabled: its history is still there to read.
    let out = p.cli(&["run", "--once"]);
    assert!(out.status.success(), "{}", text(&out));
    let sync = std::fs::read_to_string(p.root().join("config/sync.yaml")).unwrap();
    let at = sync.find("name: backup2").expect("backup2 in sync.yaml");
    let line_end = at + sync[at..].find('\n').unwrap();
    let indent = " ".repeat(sync[..at].rsplit('\n').next().unwrap().len());
    let port = free_port();
    p.write(
        "config/sync.yaml",
        &format!(
            "{}\n{indent}enabled: false{}\napi:\n  listen: 127.0.0.1:{port}\n",
            &sync[..line_end],
            &sync[line_end..]
        ),
    );
    let out = p.cli(&["history", "--backup", "backup2", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!json(&out).as_array().unwrap().is_empty());
    let out = p.cli(&["history", "--backup", "backup9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("backup2 (disabled)"), "{}", text(&out));

    // The page offers no "Run now" and no catch-up promise for a disabled task; the API
    // reads the disabled backup's history.
    let d = DaemonProcess::start(p.root(), port).await;
    let page = d.text("/").await;
    let row = page
        .split("data-task=\"reconcile_weekly\"")
        .nth(1)
        .expect("the task's row");
    let row = &row[..row.find("</tr>").unwrap_or(row.len())];
    assert!(!row.contains("Run now"), "{row}");
    assert!(row.contains("Disabled: the schedule does not run"), "{row}");
    let h = d.get("/api/dms/sync/history?backup=backup2").await;
    assert!(!h["items"].as_array().unwrap().is_empty(), "{h}");
}
