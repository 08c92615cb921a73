//! Bad configuration gets a clear error naming file, line and column (or the key), through the
//! real `dms config check` binary; nothing is written.

use crate::helper::project::{Project, sync_yaml};

fn check(p: &Project) -> (i32, String) {
    let out = p.cli(&["config", "check"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn assert_rejected(p: &Project, needles: &[&str]) {
    let (code, text) = check(p);
    assert_eq!(code, 2, "config check must fail: {text}");
    for n in needles {
        assert!(text.contains(n), "message lacks {n:?}: {text}");
    }
    assert!(
        !p.root().join("run/db/sync_history.db").exists(),
        "a failed check writes nothing"
    );
}

#[test]
fn a_valid_project_passes_config_check() {
    let p = Project::new();
    let (code, text) = check(&p);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("configuration OK"), "{text}");
}

#[test]
fn yaml_syntax_errors_name_file_line_and_column() {
    let p = Project::with_sync("sync:\n  incremental:\n    batch_size: 1\n   retry_times: 2\n");
    assert_rejected(
        &p,
        &["sync.yaml", "did not find expected key at line 4 column 4"],
    );
}

#[test]
fn unknown_keys_are_errors_with_their_position() {
    let p = Project::with_sync(&sync_yaml(100, 2, "").replace("batch_size", "batch_sise"));
    assert_rejected(
        &p,
        &["sync.yaml", "unknown field `batch_sise`", "line 3 column 5"],
    );
}

#[test]
fn wrong_types_and_bad_values_are_errors_with_their_position() {
    let p =
        Project::with_sync(&sync_yaml(100, 2, "").replace("retry_times: 2", "retry_times: many"));
    assert_rejected(
        &p,
        &["sync.retry_times", "invalid type", "line 8 column 16"],
    );
    let p = Project::with_sync(&sync_yaml(0, 2, ""));
    assert_rejected(
        &p,
        &[
            "sync.incremental.batch_size",
            "must be at least 1",
            "line 3 column 17",
        ],
    );
    let p = Project::with_sync(&sync_yaml(10, 2, "").replace("exponential", "random"));
    assert_rejected(
        &p,
        &["retry_backoff", "unknown variant `random`", "line 10"],
    );
    let p =
        Project::with_sync(&sync_yaml(10, 2, "").replace("retry_delay: 0.05", "retry_delay: -1"));
    assert_rejected(&p, &["retry_delay", "not a duration", "line 9"]);
}

#[test]
fn task_errors_name_the_task_and_key() {
    let p = Project::new();
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: t1\n    schedule: \"61 * * * *\"\n",
    );
    assert_rejected(
        &p,
        &[
            "task.yaml",
            "tasks[0].schedule",
            "invalid cron expression",
            "line 3",
        ],
    );
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: t1\n    timezone: Mars/Olympus\n",
    );
    assert_rejected(&p, &["unknown time zone \"Mars/Olympus\"", "line 3"]);
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: t1\n    script: scripts/missing.lua\n",
    );
    assert_rejected(
        &p,
        &["tasks[0] (t1).script", "file not found", "missing.lua"],
    );
}

#[test]
fn every_rule_violation_is_reported_at_once() {
    let p = Project::new();
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: a\n    script: scripts/nope.lua\n  - name: a\n    backups: [backup9]\n",
    );
    assert_rejected(
        &p,
        &[
            "file not found",
            "task name is used twice",
            "no backup node is called \"backup9\"",
        ],
    );
}

#[test]
fn node_settings_of_the_wrong_kind_and_missing_env_vars_are_errors() {
    let yaml = sync_yaml(10, 2, "").replace(
        "      path: run/backup2.db",
        "      path: run/backup2.db\n      url: http://x",
    );
    let p = Project::with_sync(&yaml);
    assert_rejected(
        &p,
        &["nodes.backups[1].url", "not a setting of a sqlite node"],
    );
    let yaml = sync_yaml(10, 2, "").replace("path: run/backup2.db", "path: ${DMS_TEST_UNSET_VAR}");
    let p = Project::with_sync(&yaml);
    assert_rejected(&p, &["DMS_TEST_UNSET_VAR is not set", "line 22"]);
}

#[test]
fn lua_syntax_errors_are_reported_with_script_and_line() {
    let p = Project::new();
    p.write(
        "scripts/bad.lua",
        "function run(ctx)\n  local x = = 1\nend\n",
    );
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: broken\n    script: scripts/bad.lua\n",
    );
    assert_rejected(&p, &["task broken", "scripts/bad.lua:2:"]);
}

#[test]
fn env_vars_fill_secrets_and_paths() {
    let p = Project::with_sync(
        &sync_yaml(10, 2, "").replace("path: run/backup2.db", "path: run/${DMS_TEST_BACKUP_FILE}"),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(["config", "check"])
        .current_dir(p.root())
        .env("DMS_TEST_BACKUP_FILE", "b2.db")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_measurement_template_needs_no_interval_tag() {
    let p = Project::with_sync(&sync_yaml(
        10,
        2,
        "schema:\n  measurement: kline_{interval}\n",
    ));
    let s = p.settings();
    assert!(s.schema.interval_tag.is_none());
    assert_eq!(s.schema.measurement("1m"), "kline_1m");
    let p = Project::with_sync(&sync_yaml(10, 2, "schema:\n  measurement: bars\n"));
    assert_eq!(
        p.settings().schema.interval_tag.as_deref(),
        Some("interval")
    );
}

/// Values that would pass a type check and then overflow the clock arithmetic, allocate
/// without bound or stop every run at once are refused where they are written.
#[test]
fn out_of_range_numbers_are_errors_with_their_position_never_a_panic() {
    for (from, to, needle) in [
        (
            "initial_days: 3650",
            "initial_days: 3650\n    max_gap_hours: 1e16",
            "sync.incremental.max_gap_hours",
        ),
        (
            "batch_size: 10",
            "batch_size: 1000000000",
            "at most 1000000",
        ),
        ("max_workers: 4", "max_workers: 1000000000", "at most 1024"),
        ("retry_delay: 0.05", "retry_delay: 1e19", "too long"),
    ] {
        let yaml = sync_yaml(10, 2, "");
        assert!(yaml.contains(from), "fixture has {from:?}");
        let p = Project::with_sync(&yaml.replace(from, to));
        assert_rejected(&p, &[needle, "line "]);
    }
    let p = Project::with_sync(&sync_yaml(10, 2, "").replace(
        "path: run/db/sync_history.db",
        "path: run/db/sync_history.db\n  retention_days: 1000000000",
    ));
    assert_rejected(&p, &["history.retention_days", "at most 36500", "line "]);
    let p = Project::new();
    for (task, needle) in [
        ("timeout: 1e19", "too long"),
        ("timeout: 0", "must be more than 0 seconds"),
        ("initial_days: 99999999", "at most 36500"),
    ] {
        p.write(
            "config/task.yaml",
            &format!("tasks:\n  - name: t1\n    {task}\n"),
        );
        assert_rejected(&p, &["tasks[0]", needle, "line 3"]);
    }
}

#[test]
fn a_bad_url_scheme_error_never_shows_the_secret_filled_into_it() {
    let yaml = sync_yaml(
        10,
        2,
        "alerts:\n  webhook: \"ftp://user:${DMS_TEST_SECRET}@hooks.example/x\"\n",
    );
    let p = Project::with_sync(&yaml);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(["config", "check"])
        .current_dir(p.root())
        .env("DMS_TEST_SECRET", "hunter2-secret")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("alerts.webhook") && err.contains("\"ftp\""),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "the secret leaked: {err}");
}

#[test]
fn ages_past_the_earliest_time_are_read_on_the_command_line_not_panicked() {
    let p = Project::new();
    for args in [
        &["history", "--since", "1000000000d"][..],
        &["history", "prune", "--older-than", "1000000000d"][..],
        &["metrics", "--window", "1000000000d"][..],
    ] {
        let out = p.cli(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}

#[test]
fn cron_mistakes_are_named_in_words_with_their_line() {
    let p = Project::new();
    for (schedule, needle) in [
        ("0 24 * * *", "hour 24 is out of range 0–23"),
        (
            "* * * *",
            "has 4 fields: use 5 fields (minute hour day-of-month month day-of-week)",
        ),
        (
            "0 0 * * 8",
            "day of week 8 is out of range 0–7 (0 and 7 are Sunday)",
        ),
        ("@fortnightly", "unknown cron macro \"@fortnightly\""),
    ] {
        p.write(
            "config/task.yaml",
            &format!("tasks:\n  - name: t1\n    schedule: \"{schedule}\"\n"),
        );
        assert_rejected(
            &p,
            &["task.yaml", "tasks[0].schedule", needle, "line 3 column 15"],
        );
        let (_, text) = check(&p);
        assert!(
            !text.contains("must be less than"),
            "the crate's words: {text}"
        );
    }
}

#[test]
fn cron_macros_and_seven_fields_pass_config_check() {
    let p = Project::new();
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: hourly\n    schedule: \"@hourly\"\n  - name: daily\n    schedule: \"@daily\"\n  - name: weekly\n    schedule: \"@weekly\"\n  - name: monthly\n    schedule: \"@monthly\"\n  - name: yearly\n    schedule: \"@yearly\"\n  - name: with_year\n    schedule: \"0 30 16 * * Mon-Fri 2030\"\n",
    );
    let (code, text) = check(&p);
    assert_eq!(code, 0, "{text}");
    let out = p.cli(&["task", "list", "--json"]);
    let tasks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let weekly = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "weekly")
        .unwrap_or_else(|| panic!("{tasks}"));
    assert_eq!(weekly["schedule"], "@weekly", "{weekly}");
    // Standard cron's @weekly: Sunday, 00:00 (in the task's zone, UTC here).
    let next = weekly["next_run"]
        .as_str()
        .unwrap_or_else(|| panic!("{weekly}"));
    let next = chrono::DateTime::parse_from_rfc3339(next).unwrap();
    assert_eq!(
        next.format("%a %H:%M:%S").to_string(),
        "Sun 00:00:00",
        "{next}"
    );
}

#[test]
fn a_tab_indented_sync_yaml_says_to_indent_with_spaces() {
    let yaml = sync_yaml(10, 2, "").replace("  retry_times: 2", "\tretry_times: 2");
    let p = Project::with_sync(&yaml);
    assert_rejected(
        &p,
        &[
            "sync.yaml",
            "tabs are not allowed in YAML indentation (a tab at line 8 column 1); indent with spaces",
            "line 8 column 1",
        ],
    );
}

#[test]
fn a_misindented_task_yaml_says_what_it_lines_up_with() {
    let p = Project::new();
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: t1\n    schedule: \"0 * * * *\"\n   timezone: UTC\n",
    );
    assert_rejected(
        &p,
        &[
            "task.yaml",
            "wrong indentation: line 4 is indented 3 spaces, which lines up with no key above it",
            "`schedule` (line 3) at 4 spaces",
            "the list item `- name` (line 2) at 2 spaces",
            "line 4 column 4",
        ],
    );
}

#[test]
fn rules_between_settings_name_the_line_and_column_of_the_setting_they_blame() {
    let yaml = sync_yaml(100, 2, "").replace("retry_times: 2", "retry_times: 50");
    let line = yaml
        .lines()
        .position(|l| l.contains("retry_times: 50"))
        .expect("the fixture has retry_times")
        + 1;
    let column = yaml
        .lines()
        .nth(line - 1)
        .unwrap()
        .find("retry_times")
        .unwrap()
        + 1;
    let p = Project::with_sync(&yaml);
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: daily\n    script: scripts/nowhere.lua\n",
    );
    assert_rejected(
        &p,
        &[
            &format!("sync.yaml line {line} column {column}: sync.retry_times: at most 20"),
            "task.yaml line 3 column 5: tasks[0] (daily).script: file not found",
        ],
    );
}

#[test]
fn durations_take_the_same_forms_in_every_setting() {
    let p = Project::with_sync(
        &sync_yaml(10, 2, "")
            .replace(
                "    initial_days: 3650\n",
                "    initial_days: 52w\n    check_interval: 1m\n    max_gap_hours: 2d\n    lookback: 2h\n",
            )
            .replace("  retry_delay: 0.05\n", "  retry_delay: 500ms\n")
            .replace(
                "history:\n  path: run/db/sync_history.db\n",
                "history:\n  path: run/db/sync_history.db\n  retention_days: 90d\n  busy_timeout: 1m\n",
            ),
    );
    p.write(
        "config/task.yaml",
        "tasks:\n  - name: t\n    timeout: 30m\n    initial_days: 7d\n",
    );
    // Milliseconds are not a unit here (the grammar is s, m, h, d, w): the message says so,
    // with the line.
    let (code, text) = check(&p);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("sync.yaml:") && text.contains("\"500ms\" is not a duration"),
        "{text}"
    );
    let fixed = std::fs::read_to_string(p.root().join("config/sync.yaml"))
        .unwrap()
        .replace("retry_delay: 500ms", "retry_delay: 5s");
    p.write("config/sync.yaml", &fixed);
    let (code, text) = check(&p);
    assert_eq!(code, 0, "{text}");
    let s = p.settings();
    assert_eq!(s.sync.check_interval.as_secs(), 60);
    assert_eq!(s.sync.max_gap.as_secs(), 2 * 86_400);
    assert_eq!(s.sync.lookback.as_secs(), 2 * 3600);
    assert_eq!(s.sync.initial_days, 364);
    assert_eq!(s.sync.retry.delay.as_secs(), 5);
    assert_eq!(s.history.retention_days, 90);
    assert_eq!(s.history.busy_timeout.as_secs(), 60);
    assert_eq!(s.tasks[0].timeout.as_secs(), 1800);
    assert_eq!(s.tasks[0].initial_days, 7);

    // Plain numbers keep their unit: days, hours, seconds.
    p.write(
        "config/sync.yaml",
        &fixed
            .replace("retention_days: 90d", "retention_days: 90")
            .replace("max_gap_hours: 2d", "max_gap_hours: 36")
            .replace("check_interval: 1m", "check_interval: 90"),
    );
    let s = p.settings();
    assert_eq!(s.history.retention_days, 90);
    assert_eq!(s.sync.max_gap.as_secs(), 36 * 3600);
    assert_eq!(s.sync.check_interval.as_secs(), 90);

    // Days must be whole.
    p.write(
        "config/sync.yaml",
        &fixed.replace("retention_days: 90d", "retention_days: 36h"),
    );
    assert_rejected(&p, &["sync.yaml:", "\"36h\" is not a whole number of days"]);
}
