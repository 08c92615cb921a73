//! Test fixtures.

pub mod browser;
pub mod daemon;
pub mod faulty;
pub mod fixture;
pub mod influxd;
pub mod project;
pub mod prometheus;
pub mod proxy;
pub mod tmpfs;

/// Says that the running test could not run because `missing` is not here: under `CI=true` a
/// failure (panics with `how`), otherwise a `SKIPPED` line naming the test, written past the
/// test harness's capture so it shows in the output of a passing run, and one line in
/// `target/test-skips.txt`, which `tools/test.sh` lists at the end.
pub fn skip(missing: &str, how: &str) {
    use std::io::Write;
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{missing}, and CI=true makes that a failure: {how}");
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("an unnamed test");
    let line = format!("SKIPPED {test}: {missing} ({how})\n");
    // Straight to the process's stderr: `eprintln!` would be captured and shown only on failure.
    let _ = std::io::stderr().write_all(line.as_bytes());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("test-skips.txt"))
    {
        let _ = f.write_all(line.as_bytes());
    }
}
