//! The `dms` binary as a terminal user meets it: a reader that leaves early (`| head`),
//! tables fitted to `COLUMNS`, people's timestamps, and the logging options.

use crate::cli::shipped;
use crate::helper::project::Project;
use std::io::BufRead;
use std::process::{Command, Output, Stdio};

/// The `dms` binary in the project folder, with nothing from the caller's environment that
/// changes its output.
fn dms(p: &Project, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dms"));
    c.args(args)
        .current_dir(p.root())
        .env_remove("DMS_CONFIG")
        .env_remove("COLUMNS")
        .env_remove("RUST_LOG");
    c
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The shipped project after one `run --once` (24 syncs), its history doubled `copies_log2` times
/// and the newest row failed with a long, two-line error.
fn with_history(copies_log2: u32) -> Project {
    let p = shipped();
    let out = dms(&p, &["run", "--once"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let conn = rusqlite::Connection::open(p.root().join("run/db/sync_history.db")).unwrap();
    for _ in 0..copies_log2 {
        conn.execute(
            "INSERT INTO sync_history (run_id, backup, symbol, interval, mode, started_at, \
             finished_at, status, records, error, window_start, window_end) \
             SELECT run_id, backup, symbol, interval, mode, started_at, finished_at, status, \
             records, error, window_start, window_end FROM sync_history",
            [],
        )
        .unwrap();
    }
    conn.execute(
        "UPDATE sync_history SET status = 'failed', error = ?1 \
         WHERE id = (SELECT max(id) FROM sync_history)",
        [LONG_ERROR],
    )
    .unwrap();
    p
}

const LONG_ERROR: &str = "write to backup1 failed after 3 attempts: connection refused (os error 111) \
     while sending 5000 points of US.AAPL@1m to http://10.20.30.40:8086/write?db=market\n\
     caused by: the backup did not answer within 10 s";

/// `LONG_ERROR` as a table cell: one line.
fn long_error_cell() -> String {
    LONG_ERROR.replace('\n', " ⏎ ")
}

/// Runs `args` with stdout piped, reads `lines` lines (0: none) and closes the pipe, then
/// waits: the exit status and stderr.
fn leave_early(p: &Project, args: &[&str], lines: usize) -> (Option<i32>, String) {
    let mut child = dms(p, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut reader = std::io::BufReader::new(stdout);
    for _ in 0..lines {
        let mut l = String::new();
        assert!(
            reader.read_line(&mut l).unwrap() > 0,
            "{args:?} printed a line"
        );
    }
    drop(reader);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_reader_that_leaves_early_ends_every_command_quietly() {
    // 48 × 2⁷ rows: far more than a pipe buffers, so the writer meets the closed pipe.
    let p = with_history(7);
    for (args, lines) in [
        (&["history", "--limit", "0"][..], 1),
        (&["history", "--limit", "0", "--json"], 1),
        (&["history"], 0),
        (&["status"], 0),
        (&["status", "--json"], 0),
        (&["task", "list"], 0),
        (&["metrics"], 0),
        (&["config", "check"], 0),
        (&["task", "runs", "daily_update_us", "--limit", "0"], 0),
        (&["completions", "bash"], 1),
        (&["man"], 1),
    ] {
        let (code, stderr) = leave_early(&p, args, lines);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr, "", "{args:?}: nothing to say about it");
    }
}

/// The header's column names (the line after the top border).
fn headers(table: &str) -> Vec<String> {
    table
        .lines()
        .nth(1)
        .unwrap_or("")
        .split(['│', '┆'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Lines that are table rows (not borders), header included.
fn rows(table: &str) -> Vec<&str> {
    table.lines().filter(|l| l.starts_with('│')).collect()
}

#[test]
fn history_at_80_columns_keeps_each_row_on_one_line_and_cuts_the_error() {
    let p = with_history(0);
    let out = dms(&p, &["history", "--limit", "0"])
        .env("COLUMNS", "80")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    for l in table.lines() {
        assert!(
            l.chars().count() <= 80,
            "{} chars: {l}\n{table}",
            l.chars().count()
        );
    }
    let all = [
        "id", "run", "backup", "symbol", "interval", "mode", "started", "status", "records",
        "error",
    ];
    let h = headers(&table);
    for name in &h {
        assert!(
            all.contains(&name.as_str()),
            "header {name:?} is whole: {table}"
        );
    }
    for name in ["backup", "symbol", "interval", "started", "status", "error"] {
        assert!(h.iter().any(|x| x == name), "{name} is kept at 80: {table}");
    }
    assert_eq!(rows(&table).len(), 1 + 24, "one line per row: {table}");
    assert_eq!(table.lines().count(), 24 + 4, "{table}");
    let started = h.iter().position(|x| x == "started").unwrap();
    for r in rows(&table).iter().skip(1) {
        let cells: Vec<&str> = r.split(['│', '┆']).map(str::trim).collect();
        let t = cells[started + 1];
        assert!(
            t.len() == "2026-12-02 10:32:53 UTC".len() && t.ends_with(" UTC"),
            "a whole timestamp for people: {t:?} in {r}"
        );
        chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S UTC")
            .unwrap_or_else(|e| panic!("{t:?}: {e}"));
    }
    let failed = rows(&table)
        .into_iter()
        .find(|r| r.contains("failed"))
        .unwrap_or_else(|| panic!("the failed row: {table}"));
    assert!(
        failed.contains("┆ write to") && failed.ends_with("… │"),
        "{failed}"
    );
}

#[test]
fn without_a_terminal_rows_are_whole_and_the_full_error_is_on_one_line() {
    let p = with_history(0);
    let out = dms(&p, &["history", "--limit", "0"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(table.lines().count(), 24 + 4, "{table}");
    let all = [
        "id", "run", "backup", "symbol", "interval", "mode", "started", "status", "records",
        "error",
    ];
    assert_eq!(headers(&table), all, "{table}");
    assert!(
        table.lines().any(|l| l.contains(&long_error_cell())),
        "{table}"
    );
    // A terminal that reports no width is no terminal: the same full rows.
    let zero = dms(&p, &["history", "--limit", "0"])
        .env("COLUMNS", "0")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&zero.stdout), table);
}

#[test]
fn status_at_100_columns_keeps_timestamps_whole() {
    let p = with_history(0);
    let out = dms(&p, &["status"]).env("COLUMNS", "100").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for l in stdout.lines() {
        assert!(
            l.chars().count() <= 100,
            "{} chars: {l}\n{stdout}",
            l.chars().count()
        );
    }
    let h = headers(&stdout);
    for name in [
        "backup",
        "symbol",
        "interval",
        "state",
        "lag",
        "backup newest",
    ] {
        assert!(
            h.iter().any(|x| x == name),
            "{name} is kept at 100: {stdout}"
        );
    }
    let rows = rows(&stdout);
    assert_eq!(rows.len(), 1 + 16, "{stdout}");
    for r in &rows[1..] {
        assert!(!r.contains('…'), "nothing cut: {r}");
        assert!(r.matches(" UTC").count() >= 1, "{r}");
        for cell in r
            .split(['│', '┆'])
            .map(str::trim)
            .filter(|c| c.contains("UTC"))
        {
            chrono::NaiveDateTime::parse_from_str(cell, "%Y-%m-%d %H:%M:%S UTC")
                .unwrap_or_else(|e| panic!("{cell:?}: {e}"));
        }
    }
}

#[test]
fn a_misspelt_or_broken_log_filter_is_bad_input() {
    let p = shipped();
    for (flag, env, want) in [
        (
            Some("warnn"),
            None,
            "\"warnn\" is not a level: did you mean warn?",
        ),
        (
            Some("dms=debug,inf"),
            None,
            "\"inf\" is not a level: did you mean info?",
        ),
        (Some("nonsense=[["), None, "bad log filter \"nonsense=[[\""),
        (
            None,
            Some("debgu"),
            "(from RUST_LOG): \"debgu\" is not a level",
        ),
    ] {
        let mut c = dms(&p, &["status", "--json"]);
        if let Some(f) = flag {
            c.args(["--log", f]);
        }
        if let Some(e) = env {
            c.env("RUST_LOG", e);
        }
        let out = c.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{flag:?} {env:?}: {}",
            text(&out)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: ") && err.contains(want), "{err}");
        assert!(out.stdout.is_empty(), "nothing ran: {}", text(&out));
    }
    // A bare name that is no level's is a target, as tracing reads it.
    let out = dms(&p, &["status", "--json", "--log", "dms"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn debug_logs_of_an_sqlite_project_carry_no_transport_noise_and_json_lines_parse() {
    let p = shipped();
    let out = dms(&p, &["--log", "debug", "run", "--once"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DEBUG"), "debug lines are shown: {err}");
    for l in err.lines() {
        for noise in ["rustls", "hyper", "reqwest", " h2"] {
            assert!(!l.contains(noise), "{noise}: {l}");
        }
    }

    let out = dms(&p, &["--log-format", "json", "--log", "debug", "sync"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let mut debug = 0;
    for l in err.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        let level = v["level"].as_str().unwrap_or_else(|| panic!("level: {l}"));
        assert!(v["message"].is_string(), "message: {l}");
        assert!(v["timestamp"].is_string(), "timestamp: {l}");
        debug += usize::from(level == "DEBUG");
    }
    assert!(debug > 0, "{err}");
    // The stdout table is unchanged by the log format.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("run "),
        "{}",
        text(&out)
    );
}
