//! What an operator installs around the binary: shell completions and man pages from the real
//! `dms`, the systemd unit in `contrib/systemd/` (checked against the real command line and by
//! `systemd-analyze verify` where it exists), and the InfluxDB example's `servers.sh`.

use crate::helper::daemon::{DaemonProcess, free_port};
use crate::helper::project::{Project, sync_yaml};
use clap::Parser;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The subcommands an operator types (the hidden `__script` is not one).
const SUBCOMMANDS: [&str; 11] = [
    "run",
    "task",
    "sync",
    "history",
    "status",
    "metrics",
    "verify",
    "reconcile",
    "config",
    "completions",
    "man",
];

fn dms(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(args)
        .env_remove("DMS_CONFIG")
        .output()
        .expect("dms runs")
}

fn stdout_of(args: &[&str]) -> String {
    let out = dms(args);
    assert!(
        out.status.success(),
        "dms {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// `name` on PATH, or `None` with a note that the part needing it is skipped.
fn tool(name: &str, part: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    });
    if found.is_none() {
        crate::helper::skip(
            &format!("{name} is not installed"),
            &format!("{part} did not run; tools/test.sh installs it"),
        );
    }
    found
}

#[test]
fn bash_completion_offers_every_subcommand_and_is_valid_bash() {
    let script = stdout_of(&["completions", "bash"]);
    assert!(script.contains("_dms()"), "{script}");
    assert!(script.contains("complete -F _dms"), "{script}");
    for sub in SUBCOMMANDS {
        assert!(
            script.contains(&format!("dms,{sub})")),
            "no {sub}: {script}"
        );
    }
    assert!(
        !script.contains("__script"),
        "the internal subcommand is offered"
    );
    let Some(bash) = tool("bash", "bash -n on the script") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dms.bash");
    std::fs::write(&file, &script).unwrap();
    let check = Command::new(&bash).arg("-n").arg(&file).output().unwrap();
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Loaded into bash, it completes `dms hi<TAB>` and `dms history --st<TAB>`.
    let complete = |words: &str, cword: usize| {
        let out = Command::new(&bash)
            .arg("-c")
            .arg(format!(
                "source {f}; COMP_WORDS=({words}); COMP_CWORD={cword}; \
                 _dms dms \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; \
                 echo \"${{COMPREPLY[@]}}\"",
                f = file.display()
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(complete("dms hi", 1), "history");
    assert_eq!(complete("dms history --st", 2), "--status");
    assert_eq!(
        complete("dms completions ''", 2),
        "-c -h --config --log --log-format --help bash elvish fish powershell zsh"
    );
}

#[test]
fn zsh_fish_elvish_and_powershell_completions_name_dms() {
    let zsh = stdout_of(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef dms\n"), "{zsh}");
    let fish = stdout_of(&["completions", "fish"]);
    assert!(fish.contains("complete -c dms "), "{fish}");
    for script in [&zsh, &fish] {
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "no {sub}: {script}");
        }
    }
    for shell in ["elvish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.contains("history"), "{shell}: {script}");
    }
    for script in [zsh, fish] {
        assert!(!script.contains("__script"), "{script}");
    }
    let out = dms(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values: bash, elvish, fish"));
}

/// Renders a page with groff's warnings on; `None` without groff.
fn groff_warnings(page: &Path) -> Option<String> {
    let groff = tool("groff", "rendering the man page")?;
    let out = Command::new(groff)
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(page)
        .output()
        .unwrap();
    assert!(out.status.success(), "groff failed on {}", page.display());
    Some(String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_man_page_lists_every_subcommand_and_renders_without_warnings() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH dms 1"), "{page}");
    assert!(page.contains(".SH SYNOPSIS"), "{page}");
    // troff reads Latin-1: the help's dashes are escapes, not raw UTF-8.
    assert!(page.is_ascii(), "raw UTF-8 in the page");
    for sub in SUBCOMMANDS {
        assert!(
            page.contains(&format!("dms\\-{sub}(1)")),
            "no {sub}: {page}"
        );
    }
    assert!(
        !page.contains("script("),
        "the internal subcommand is listed"
    );
    assert!(
        !page.contains("dms\\-help(1)"),
        "a page that does not exist is listed"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dms.1");
    std::fs::write(&file, &page).unwrap();
    if let Some(warnings) = groff_warnings(&file) {
        assert_eq!(warnings, "", "groff warns about dms(1)");
    }
    if let Some(man) = tool("man", "man -l") {
        let out = Command::new(man)
            .args(["--warnings", "-l"])
            .arg(&file)
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "0")
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("dms-history(1)"), "{text}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "man warns");
    }
}

#[test]
fn man_out_writes_one_page_per_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    let printed = stdout_of(&["man", "--out", out_dir.to_str().unwrap()]);
    let mut names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for want in [
        "dms.1",
        "dms-run.1",
        "dms-history.1",
        "dms-history-prune.1",
        "dms-task-run.1",
        "dms-config-check.1",
        "dms-completions.1",
    ] {
        assert!(names.iter().any(|n| n == want), "no {want}: {names:?}");
    }
    assert!(
        !names
            .iter()
            .any(|n| n.contains("script") || n.contains("help")),
        "{names:?}"
    );
    assert_eq!(printed.lines().count(), names.len(), "{printed}");
    let prune = std::fs::read_to_string(out_dir.join("dms-history-prune.1")).unwrap();
    assert!(prune.contains(".TH dms-history-prune 1"), "{prune}");
    assert!(prune.contains("older\\-than"), "{prune}");
    for name in &names {
        if let Some(w) = groff_warnings(&out_dir.join(name)) {
            assert_eq!(w, "", "groff warns about {name}");
        }
    }
}

/// The unit file: sections of `key → values` (a key may repeat).
type Unit = HashMap<String, HashMap<String, Vec<String>>>;

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd/dms.service")
}

fn parse_unit(text: &str) -> Unit {
    let mut unit = Unit::new();
    let mut section = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_string());
            unit.entry(name.to_string()).or_default();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not key=value: {line}", n + 1));
        let section = section
            .as_ref()
            .unwrap_or_else(|| panic!("line {}: outside a section", n + 1));
        unit.get_mut(section)
            .unwrap()
            .entry(key.trim().to_string())
            .or_default()
            .push(value.trim().to_string());
    }
    unit
}

fn one<'a>(unit: &'a Unit, section: &str, key: &str) -> &'a str {
    let values = unit
        .get(section)
        .and_then(|s| s.get(key))
        .unwrap_or_else(|| panic!("[{section}] has no {key}="));
    assert_eq!(values.len(), 1, "{key}= is set {} times", values.len());
    &values[0]
}

fn seconds(v: &str) -> u64 {
    let v = v.trim_end_matches('s');
    v.parse().unwrap_or_else(|_| panic!("not seconds: {v}"))
}

#[test]
fn the_systemd_unit_runs_the_daemon_with_the_real_command_line_and_hardening() {
    let unit = parse_unit(&std::fs::read_to_string(unit_path()).unwrap());
    for s in ["Unit", "Service", "Install"] {
        assert!(unit.contains_key(s), "no [{s}]");
    }
    assert_eq!(one(&unit, "Service", "Type"), "simple");
    let exec: Vec<&str> = one(&unit, "Service", "ExecStart")
        .split_whitespace()
        .collect();
    assert_eq!(exec[0], "/usr/local/bin/dms");
    // The real parser accepts the line, and it means the daemon on /etc/dms (not --once).
    let cli = dms::cli::Cli::try_parse_from(&exec).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cli.config, Path::new("/etc/dms"));
    match &cli.command {
        dms::cli::Command::Run(args) => assert!(!args.once, "the unit runs the daemon"),
        other => panic!("ExecStart runs {other:?}, not `run`"),
    }
    for (key, want) in [
        ("Restart", "on-failure"),
        ("EnvironmentFile", "-/etc/dms/dms.env"),
        ("User", "dms"),
        ("StateDirectory", "dms"),
        ("WorkingDirectory", "/var/lib/dms"),
        ("ReadWritePaths", "/var/lib/dms"),
        ("KillSignal", "SIGTERM"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("LockPersonality", "yes"),
        ("RestrictRealtime", "yes"),
        ("SystemCallArchitectures", "native"),
        ("MemoryDenyWriteExecute", "yes"),
    ] {
        assert_eq!(one(&unit, "Service", key), want, "{key}=");
    }
    assert!(seconds(one(&unit, "Service", "RestartSec")) > 0);
    // Long enough for the default shutdown grace (30 s) to end on its own.
    assert!(seconds(one(&unit, "Service", "TimeoutStopSec")) > 30);
    assert_eq!(one(&unit, "Install", "WantedBy"), "multi-user.target");
    // MemoryDenyWriteExecute holds only without a JIT: Lua is the plain interpreter.
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let mlua = manifest.lines().find(|l| l.starts_with("mlua")).unwrap();
    assert!(
        mlua.contains("\"lua54\"") && !mlua.contains("luajit"),
        "{mlua}"
    );
}

#[test]
fn systemd_analyze_verifies_the_unit_with_the_built_binary_and_man_page() {
    let Some(analyze) = tool("systemd-analyze", "systemd-analyze verify") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Documentation=man:dms(1) is looked up: give it the pages `dms man --out` writes.
    let man1 = dir.path().join("man/man1");
    stdout_of(&["man", "--out", man1.to_str().unwrap()]);
    let text = std::fs::read_to_string(unit_path())
        .unwrap()
        .replace("/usr/local/bin/dms", env!("CARGO_BIN_EXE_dms"));
    let unit = dir.path().join("dms.service");
    std::fs::write(&unit, text).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&unit)
        .env("MANPATH", dir.path().join("man"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {err}");
    // Unknown keys are only warnings: any line about the unit is a failure here.
    let about_unit: Vec<&str> = err.lines().filter(|l| l.contains("dms")).collect();
    assert!(about_unit.is_empty(), "systemd-analyze verify: {err}");
}

/// The unit's command line, on a test project instead of /etc/dms, starts the daemon, and
/// the unit's stop signal ends it with exit 0 well within `TimeoutStopSec`.
#[tokio::test(flavor = "multi_thread")]
async fn the_units_command_line_serves_and_stops_on_its_kill_signal_in_time() {
    let unit = parse_unit(&std::fs::read_to_string(unit_path()).unwrap());
    assert_eq!(
        one(&unit, "Service", "KillSignal"),
        "SIGTERM",
        "the test sends SIGTERM"
    );
    let timeout = Duration::from_secs(seconds(one(&unit, "Service", "TimeoutStopSec")));
    let port = free_port();
    let p = Project::with_sync(&sync_yaml(
        100,
        2,
        &format!("api:\n  listen: 127.0.0.1:{port}\n"),
    ));
    let config = p.config_dir();
    let exec = one(&unit, "Service", "ExecStart").replace("/etc/dms", config.to_str().unwrap());
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    let mut d = DaemonProcess::start_with(p.root(), port, &args).await;
    let health = d.get("/healthz").await;
    assert_eq!(health["history"]["ok"], true, "{health}");
    let asked = Instant::now();
    let status = d.terminate();
    assert!(status.success(), "{status:?}: {}", d.log_text());
    assert!(asked.elapsed() < timeout, "took {:?}", asked.elapsed());
}

/// A copy of `servers.sh` in a scratch repository layout, so its `run/influxdb/` is there.
fn scratch_servers_sh() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let example = dir.path().join("config/examples/influxdb");
    std::fs::create_dir_all(&example).unwrap();
    let script = example.join("servers.sh");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/influxdb/servers.sh"),
        &script,
    )
    .unwrap();
    (dir, script)
}

#[test]
fn servers_sh_refuses_a_port_another_process_holds() {
    let Some(influxd) = crate::helper::influxd::influxd_binary() else {
        return;
    };
    if tool("ss", "servers.sh start").is_none() {
        return;
    }
    let (dir, script) = scratch_servers_sh();
    // Hold the primary's port (or find it held already: the same situation for the script).
    let held = std::net::TcpListener::bind("127.0.0.1:8086");
    // A pid file naming a live process that is not influxd (this test) is not "running".
    let primary = dir.path().join("run/influxdb/primary");
    std::fs::create_dir_all(&primary).unwrap();
    std::fs::write(primary.join("influxd.pid"), std::process::id().to_string()).unwrap();
    let path = format!(
        "{}:{}",
        influxd.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg(&script)
        .arg("start")
        .env("PATH", path)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(!stdout.contains("running"), "{stdout}");
    assert!(
        stderr.contains("cannot start primary: port 8086 is already in use by"),
        "{stderr}"
    );
    if held.is_ok() {
        let me = format!("pid {} (", std::process::id());
        assert!(stderr.contains(&me), "the holder is not named: {stderr}");
    }
    assert!(
        !primary.join("influxd.pid").exists(),
        "a stale pid file is left"
    );
    drop(held);
}
