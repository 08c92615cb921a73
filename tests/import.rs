//! `dms import` on SQLite primaries, through the real binary: odd time formats, column types,
//! tags, bad rows (stopping at the last whole batch, or skipped and counted), the recorded run,
//! a file of hundreds of MB streamed within 100 MB of memory, and `dms.primary.import_csv`
//! from the shipped `daily_update_us` script within the shipped memory limit.

use crate::helper::project::{Project, all, sync_yaml};
use dms::model::{FieldValue, NANOS_PER_SEC, Point, SeriesKey};
use dms::node::Node;
use std::io::Write;
use std::time::Duration;

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn field<'a>(p: &'a Point, name: &str) -> Option<&'a FieldValue> {
    p.fields.iter().find(|(k, _)| &**k == name).map(|(_, v)| v)
}

const T0: i64 = 1_706_711_400; // 2024-01-31T14:30:00Z

#[tokio::test]
async fn import_reads_odd_time_formats_and_keeps_each_columns_type() {
    let p = Project::new();
    // Every text form, one per row, and a column of each type.
    p.write(
        "in/text.csv",
        "time,open,volume,note,halted\n\
         2024-01-31T14:30:00Z,101.5,1200,open,false\n\
         2024-01-31 14:31:00,101.75,1300,mid,false\n\
         2024-01-31T09:32:00-05:00,102,1400,,true\n\
         2024-02-01,103.25,1500,next day,false\n",
    );
    // Epoch numbers: the unit is found from the first row's size.
    p.write(
        "in/ms.csv",
        &format!("time,close\n{}000,1.5\n{}000,2.5\n", T0, T0 + 60),
    );
    p.write(
        "in/us.csv",
        &format!("time,close\n{}000000,1.5\n", T0 + 120),
    );
    p.write(
        "in/ns.csv",
        &format!("time,close\n{}000000000,1.5\n", T0 + 180),
    );
    p.write("in/compact.csv", "time,close\n20240105,7\n20240108,8\n");
    p.write("in/secs.csv", &format!("stamp,close\n{T0}.25,3\n"));

    let out = p.cli(&[
        "import",
        "--symbol",
        "US.T",
        "--interval",
        "1m",
        "--json",
        "in/text.csv",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = json(&out);
    assert_eq!(run["status"], "success");
    assert_eq!(run["written"], 4);
    assert_eq!(run["files"][0]["time_unit"], "text");

    let key = SeriesKey::new("US.T", "1m");
    let pts = all(p.node("primary").as_ref(), &key).await;
    let times: Vec<i64> = pts.iter().map(|p| p.time / NANOS_PER_SEC).collect();
    assert_eq!(times, [T0, T0 + 60, T0 + 120, 1_706_745_600]);
    // A column whose first rows hold decimals is a float column, whole values included.
    assert_eq!(field(&pts[2], "open"), Some(&FieldValue::Float(102.0)));
    assert_eq!(field(&pts[0], "volume"), Some(&FieldValue::Integer(1200)));
    assert_eq!(
        field(&pts[3], "note"),
        Some(&FieldValue::String("next day".into()))
    );
    assert_eq!(field(&pts[2], "note"), None, "an empty value is no field");
    assert_eq!(field(&pts[2], "halted"), Some(&FieldValue::Boolean(true)));

    // --float makes an integer-looking column floats; --int the reverse.
    let out = p.cli(&[
        "import",
        "--symbol",
        "US.E",
        "--interval",
        "1m",
        "--float",
        "close",
        "--json",
        "in/ms.csv",
        "in/us.csv",
        "in/ns.csv",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = json(&out);
    let units: Vec<&str> = run["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["time_unit"].as_str().unwrap())
        .collect();
    assert_eq!(units, ["ms", "us", "ns"]);
    let pts = all(p.node("primary").as_ref(), &SeriesKey::new("US.E", "1m")).await;
    let times: Vec<i64> = pts.iter().map(|p| p.time / NANOS_PER_SEC).collect();
    assert_eq!(times, [T0, T0 + 60, T0 + 120, T0 + 180]);

    let out = p.cli(&[
        "import",
        "--symbol",
        "US.C",
        "--interval",
        "1d",
        "--int",
        "close",
        "in/compact.csv",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pts = all(p.node("primary").as_ref(), &SeriesKey::new("US.C", "1d")).await;
    assert_eq!(
        pts[0].time,
        1_704_412_800 * NANOS_PER_SEC,
        "YYYYMMDD is a date"
    );
    assert_eq!(field(&pts[1], "close"), Some(&FieldValue::Integer(8)));

    // A time column by another name, epoch seconds with a fraction, unit given.
    let out = p.cli(&[
        "import",
        "--symbol",
        "US.S",
        "--interval",
        "1s",
        "--time-column",
        "stamp",
        "--time-unit",
        "s",
        "--float",
        "close",
        "in/secs.csv",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pts = all(p.node("primary").as_ref(), &SeriesKey::new("US.S", "1s")).await;
    assert_eq!(pts[0].time, T0 * NANOS_PER_SEC + 250_000_000);
    assert_eq!(field(&pts[0], "close"), Some(&FieldValue::Float(3.0)));

    // Every import is a recorded run of @import.
    let runs = p.history().runs(Some("@import"), 0).expect("runs");
    assert_eq!(runs.len(), 4);
    assert!(
        runs.iter()
            .all(|r| r.status == dms::history::Status::Success)
    );
}

/// `n` good 1m rows from line 2 on.
fn good_rows(n: usize) -> String {
    let mut s = String::from("time,open,close,volume\n");
    for i in 0..n as i64 {
        s.push_str(&format!(
            "{},{}.5,{}.25,{}\n",
            T0 + 60 * i,
            100 + i,
            100 + i,
            1000 + i
        ));
    }
    s
}

#[tokio::test]
async fn a_bad_row_stops_at_the_last_whole_batch_and_names_file_and_line() {
    // batch_size 100: 250 good rows, then a bad one at line 252.
    let p = Project::new();
    let mut text = good_rows(250);
    text.push_str(&format!("{},oops,1.0,5\n", T0 + 60 * 250));
    text.push_str(&good_rows(10)[23..]);
    p.write("in/bad.csv", &text);
    let out = p.cli(&[
        "import",
        "--symbol",
        "US.B",
        "--interval",
        "1m",
        "in/bad.csv",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in/bad.csv:252:"), "{err}");
    assert!(err.contains("\"open\" holds \"oops\""), "{err}");
    assert!(err.contains("200 rows before it were written"), "{err}");
    let key = SeriesKey::new("US.B", "1m");
    let pts = all(p.node("primary").as_ref(), &key).await;
    assert_eq!(
        pts.len(),
        200,
        "the two whole batches, nothing of the third"
    );
    assert_eq!(
        pts.last().map(|p| p.time),
        Some((T0 + 60 * 199) * NANOS_PER_SEC)
    );

    let runs = p.history().runs(Some("@import"), 0).expect("runs");
    assert_eq!(runs[0].status, dms::history::Status::Failed);
    assert!(
        runs[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("in/bad.csv:252:"),
        "{:?}",
        runs[0].error
    );

    // An integer column that meets a decimal after its first batch says how to fix it.
    let mut text = good_rows(150);
    text.push_str(&format!("{},1.5,1.0,5.5\n", T0 + 60 * 150));
    p.write("in/late.csv", &text);
    let out = p.cli(&[
        "import",
        "--symbol",
        "US.L",
        "--interval",
        "1m",
        "in/late.csv",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in/late.csv:152:") && err.contains("--float volume"),
        "{err}"
    );
}

#[tokio::test]
async fn skip_bad_counts_and_reports_the_bad_rows_and_imports_the_rest() {
    let p = Project::new();
    let mut text = good_rows(5);
    text.push_str("not a time,1.0,1.0,5\n"); // line 7
    text.push_str(&format!("{},1.0,1.0\n", T0 + 600)); // line 8: a value short
    text.push_str(&format!("{},1.0,1.0,5.5\n", T0 + 660)); // line 9: not an integer (--int)
    text.push_str(&format!("{},,,\n", T0 + 720)); // line 10: no field
    text.push_str(&format!("{},9.5,9.25,9\n", T0 + 780));
    p.write("in/some.csv", &text);
    let out = p.cli(&[
        "import",
        "--symbol",
        "US.K",
        "--interval",
        "1m",
        "--skip-bad",
        "--int",
        "volume",
        "--json",
        "in/some.csv",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = json(&out);
    assert_eq!(run["written"], 6);
    assert_eq!(run["skipped_bad"], 4);
    let lines: Vec<u64> = run["files"][0]["bad_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [7, 8, 9, 10]);
    assert!(
        run["warning"].as_str().unwrap().contains("in/some.csv:7:"),
        "{run}"
    );
    let pts = all(p.node("primary").as_ref(), &SeriesKey::new("US.K", "1m")).await;
    assert_eq!(pts.len(), 6);

    // --since passes over older rows without calling them bad.
    let out = p.cli(&[
        "import",
        "--symbol",
        "US.K2",
        "--interval",
        "1m",
        "--since",
        "2024-01-31T14:33:00Z",
        "--json",
        "in/some.csv",
        "--skip-bad",
        "--int",
        "volume",
    ]);
    let run = json(&out);
    assert_eq!(run["skipped_before_since"], 3, "{run}");
}

#[tokio::test]
async fn tag_columns_and_refused_columns_and_nodes() {
    let p = Project::new();
    p.write(
        "in/venues.csv",
        &format!(
            "time,venue,close\n{T0},XNAS,1.5\n{T0},ARCX,1.75\n{},XNAS,2.5\n",
            T0 + 60
        ),
    );
    let out = p.cli(&[
        "import",
        "--to",
        "backup2",
        "--symbol",
        "US.V",
        "--interval",
        "1m",
        "--tag",
        "venue",
        "in/venues.csv",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pts = all(p.node("backup2").as_ref(), &SeriesKey::new("US.V", "1m")).await;
    assert_eq!(pts.len(), 3, "two tag sets at one time are two points");
    assert!(
        pts.iter()
            .all(|p| p.tag("venue").is_some() && field(p, "venue").is_none())
    );
    assert!(
        all(p.node("primary").as_ref(), &SeriesKey::new("US.V", "1m"))
            .await
            .is_empty()
    );

    for (args, says) in [
        (vec!["--tag", "symbol"], "is a tag the schema sets"),
        (
            vec!["--float", "nope"],
            "named by --float, but the header has only: time, venue, close",
        ),
        (
            vec!["--time-column", "ts"],
            "no column \"ts\" holds the time",
        ),
    ] {
        let mut a = vec!["import", "--symbol", "US.V", "--interval", "1m"];
        a.extend(args);
        a.push("in/venues.csv");
        let out = p.cli(&a);
        assert_eq!(out.status.code(), Some(1), "{a:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{a:?}: {err}");
    }
    let out = p.cli(&[
        "import",
        "--to",
        "backup9",
        "--symbol",
        "US.V",
        "--interval",
        "1m",
        "in/venues.csv",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("primary, backup1, backup2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = p.cli(&[
        "import",
        "--symbol",
        "US.V",
        "--interval",
        "1m",
        "in/missing.csv",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

/// Peak resident memory (VmHWM) of a child process, polled until it exits, and its status.
fn peak_rss(mut child: std::process::Child) -> (u64, std::process::ExitStatus) {
    let pid = child.id();
    let mut hwm_kib = 0u64;
    loop {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(v) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        {
            hwm_kib = hwm_kib.max(v);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            return (hwm_kib * 1024, status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A CSV of 1m bars of at least `bytes` bytes; gives its row count.
fn big_csv(path: &std::path::Path, bytes: u64) -> u64 {
    let f = std::fs::File::create(path).expect("create");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    writeln!(w, "time,open,high,low,close,volume,vwap,trades").unwrap();
    let (mut written, mut rows) = (0u64, 0u64);
    let start = 1_500_000_000i64;
    while written < bytes {
        let i = rows as i64;
        let base = 100.0 + (i % 5000) as f64 / 100.0;
        let line = format!(
            "{},{base:.2},{:.2},{:.2},{:.2},{},{:.4},{}\n",
            start + 60 * i,
            base + 0.5,
            base - 0.5,
            base + 0.25,
            1000 + i % 977,
            base + 0.125,
            10 + i % 31
        );
        written += line.len() as u64;
        w.write_all(line.as_bytes()).unwrap();
        rows += 1;
    }
    w.flush().unwrap();
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_of_hundreds_of_megabytes_is_streamed_within_100_mb() {
    let p = Project::with_sync(&sync_yaml(5000, 2, ""));
    let file = p.root().join("in/huge.csv");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let rows = big_csv(&file, 300 << 20);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dms"))
        .args([
            "import",
            "--symbol",
            "US.H",
            "--interval",
            "1m",
            "--json",
            "in/huge.csv",
        ])
        .current_dir(p.root())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("dms starts");
    let output = drain(&mut child);
    let (peak, status) = peak_rss(child);
    let out = output.join().expect("reader");
    assert!(status.success(), "{}", String::from_utf8_lossy(&out.1));
    let run: serde_json::Value = serde_json::from_slice(&out.0).expect("json");
    assert_eq!(run["written"].as_u64(), Some(rows));
    assert!(
        peak < 100 << 20,
        "peak RSS {} MB for a {} MB file",
        peak >> 20,
        std::fs::metadata(&file).unwrap().len() >> 20
    );
    let key = SeriesKey::new("US.H", "1m");
    let newest = p
        .node("primary")
        .newest(std::slice::from_ref(&key))
        .await
        .expect("newest");
    assert_eq!(
        newest.get(&key).copied(),
        Some((1_500_000_000 + 60 * (rows as i64 - 1)) * NANOS_PER_SEC)
    );
}

/// Reads a child's stdout and stderr on threads while the caller polls it.
fn drain(child: &mut std::process::Child) -> std::thread::JoinHandle<(Vec<u8>, Vec<u8>)> {
    use std::io::Read;
    let mut out = child.stdout.take().expect("stdout piped");
    let mut err = child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        let e = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = err.read_to_end(&mut v);
            v
        });
        let mut o = Vec::new();
        let _ = out.read_to_end(&mut o);
        (o, e.join().unwrap_or_default())
    })
}

#[test]
fn the_shipped_task_imports_a_large_file_within_the_shipped_memory_limit() {
    // The shipped project, its memory_limit_mb (64) untouched, with 500,000 1m bars of
    // US.AAPL ending now: as Lua tables these took 800 MB; streamed they never reach the
    // script.
    let p = crate::cli::shipped();
    let settings = std::fs::read_to_string(p.root().join("config/sync.yaml")).unwrap();
    assert!(settings.contains("memory_limit_mb: 64"), "{settings}");
    let rows = 500_000i64;
    let end = dms::model::now_nanos() / NANOS_PER_SEC / 60 * 60 - 3600;
    let start = end - 60 * (rows - 1);
    let mut text = String::with_capacity(rows as usize * 60);
    text.push_str("time,open,high,low,close,volume\n");
    for i in 0..rows {
        let t = chrono::DateTime::from_timestamp(start + 60 * i, 0).unwrap();
        let b = 100.0 + (i % 1000) as f64 / 100.0;
        text.push_str(&format!(
            "{},{b:.2},{:.2},{:.2},{:.2},{}\n",
            t.format("%Y-%m-%dT%H:%M:%SZ"),
            b + 0.1,
            b - 0.1,
            b + 0.05,
            1000 + i % 700
        ));
    }
    p.write("data/incoming/US.AAPL_1m.csv", &text);
    let out = p.cli(&["task", "run", "daily_update_us", "--json"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let run = json(&out);
    assert_eq!(run["status"], "success", "{run}");

    let key = SeriesKey::new("US.AAPL", "1m");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (primary, backup) = rt.block_on(async {
        (
            all(p.store("primary", "run/data/primary.db").as_ref(), &key).await,
            all(p.store("backup1", "run/data/backup1.db").as_ref(), &key).await,
        )
    });
    assert_eq!(primary.len(), rows as usize);
    assert_eq!(primary[0].time, start * NANOS_PER_SEC);
    // The script asks for prices as floats and volume as an integer.
    assert_eq!(
        field(&primary[0], "close"),
        Some(&FieldValue::Float(100.05))
    );
    assert_eq!(
        field(&primary[7], "volume"),
        Some(&FieldValue::Integer(1007))
    );
    assert_eq!(backup.len(), primary.len(), "then synced to the backups");

    // A second run imports from the primary's newest bar on: that bar of each of the 4
    // symbols × 2 intervals.
    let out = p.cli(&["--log", "info", "task", "run", "daily_update_us"]);
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("imported 8 bars into the primary"), "{log}");
}
