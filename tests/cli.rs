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
fn shipped() -> Project {
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
    assert_eq!(runs[0]["series"], 16);
    let copied = runs[0]["records"].as_u64().unwrap();
    assert!(copied > 19_000, "{copied}");

    let second = p.cli(&["run", "--once", "--json"]);
    assert!(second.status.success());
    let runs = json(&second);
    assert_eq!(
        runs[0]["records"], 16,
        "only the re-read last bar of each series and backup"
    );

    let hist = json(&p.cli(&["history", "--json", "--limit", "0"]));
    let rows = hist.as_array().unwrap();
    assert_eq!(rows.len(), 32);
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
    assert_eq!(tasks[0]["last_status"], "success");
    assert!(tasks[0]["next_run"].as_str().unwrap().contains("T16:30:00"));
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
    let units = json(&out);
    assert_eq!(units.as_array().unwrap().len(), 1);
    assert_eq!(units[0]["backup"], "backup2");
    assert_eq!(
        units[0]["records"], 1170,
        "full mode recopies the whole range"
    );
    let bad = p.cli(&["sync", "--backup", "nope"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no enabled backup is called \"nope\""));
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
