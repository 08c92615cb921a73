//! Equality that sees every change (issue 18), on real SQLite stores through the `dms`
//! binary: random single-point mutations of a backup — a value of each field type, a time, a
//! tag, a delete, an insert, two values swapped — are each found and repaired, and the exact
//! scrub finds every one of them within its period, a stripe per pass.

use crate::helper::project::{Project, all, put, sync_yaml};
use dms::model::{Batch, FieldValue, NANOS_PER_DAY, NANOS_PER_SEC, Nanos, Point, SeriesKey};
use dms::node::Node;
use serde_json::Value;
use std::process::Output;
use std::sync::Arc;

const DAY: Nanos = NANOS_PER_DAY;
const NANOS_PER_HOUR: Nanos = 3_600 * NANOS_PER_SEC;
/// Days of bars in the series.
const DAYS: i64 = 100;

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `dms args…` (exit 0 asserted) and returns its JSON.
fn ok_json(p: &Project, args: &[&str]) -> Value {
    let out = p.cli(args);
    assert!(out.status.success(), "dms {args:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out)))
}

/// The `dms reconcile --json` entry of `backup`.
fn reconciled<'a>(run: &'a Value, backup: &str) -> &'a Value {
    run["report"]["backups"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["backup"] == backup))
        .unwrap_or_else(|| panic!("no reconcile entry for {backup}: {run:#}"))
}

/// The series with string and boolean fields (`US.MUT`) or numbers only (`US.NUM`).
fn series_of(text: bool) -> SeriesKey {
    SeriesKey::new(if text { "US.MUT" } else { "US.NUM" }, "1d")
}

/// Today at midnight UTC.
fn today() -> Nanos {
    dms::model::now_nanos() / DAY * DAY
}

/// One daily bar with a float, an integer, a string and a boolean field and a venue tag.
#[derive(Clone)]
struct Bar {
    /// Whether it carries the string and boolean fields (`US.MUT`; else `US.NUM`).
    text: bool,
    time: Nanos,
    venue: &'static str,
    close: f64,
    volume: i64,
    status: String,
    halted: bool,
}

impl Bar {
    fn nth(i: i64) -> Bar {
        Bar::of(true, i)
    }

    fn of(text: bool, i: i64) -> Bar {
        Bar {
            text,
            time: today() - (DAYS - i) * DAY,
            venue: "X",
            close: 100.0 + i as f64 * 0.37,
            volume: 1_000 + i,
            status: "open".into(),
            halted: false,
        }
    }

    fn point(&self) -> Point {
        let schema = dms::schema::Schema::default();
        let (measurement, tags) = schema.identity(&series_of(self.text));
        let mut tags = tags.to_vec();
        tags.push((Arc::from("venue"), Arc::from(self.venue)));
        tags.sort();
        Point {
            measurement,
            tags: tags.into(),
            fields: [
                (Arc::from("close"), FieldValue::Float(self.close)),
                (Arc::from("volume"), FieldValue::Integer(self.volume)),
                (Arc::from("status"), FieldValue::String(self.status.clone())),
                (Arc::from("halted"), FieldValue::Boolean(self.halted)),
            ]
            .into_iter()
            .take(if self.text { 4 } else { 2 })
            .collect(),
            time: self.time,
        }
    }
}

/// A small, seeded random source (xorshift): the seed is printed so a failure can be replayed
/// with `DMS_MUTATION_SEED`.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("DMS_MUTATION_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| dms::model::now_nanos() as u64 | 1);
        eprintln!("mutation seed: {seed} (replay with DMS_MUTATION_SEED={seed})");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `lo..hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }
}

/// Kinds of single-point change made to a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mutation {
    Float,
    /// A float changed in its last bits: below what a window's sum can resolve.
    FloatBits,
    Integer,
    Str,
    Bool,
    /// The bar moved to another hour of its day (its window).
    Time,
    /// The bar moved to another value of the venue tag.
    Tag,
    Delete,
    /// A bar only the backup holds.
    Insert,
    /// Two bars of one window with their volumes swapped.
    Swap,
}

const ALL: [Mutation; 10] = [
    Mutation::Float,
    Mutation::FloatBits,
    Mutation::Integer,
    Mutation::Str,
    Mutation::Bool,
    Mutation::Time,
    Mutation::Tag,
    Mutation::Delete,
    Mutation::Insert,
    Mutation::Swap,
];

impl Mutation {
    /// Whether digests see it (else only an exact read does: the scrub, `--exact`).
    fn digests_see(self) -> bool {
        !matches!(self, Mutation::Time | Mutation::Swap | Mutation::FloatBits)
    }
}

/// Applies `m` to bar `i` of `backup` (and bar `i + 1`, in the window, for a swap).
async fn mutate(backup: &dyn Node, m: Mutation, i: i64, rng: &mut Rng) {
    mutate_in(backup, true, m, i, rng).await;
}

/// [`mutate`] in the series with strings (`text`) or the one with numbers only.
async fn mutate_in(backup: &dyn Node, text: bool, m: Mutation, i: i64, rng: &mut Rng) {
    let s = series_of(text);
    let bar = Bar::of(text, i);
    let replace = |times: Vec<Nanos>, bars: Vec<Bar>| async move {
        let points = bars.iter().map(Bar::point).collect();
        backup
            .replace(&series_of(text), &times, Arc::new(Batch::new(points)))
            .await
            .expect("mutate the backup");
    };
    match m {
        Mutation::Float => {
            let mut b = bar.clone();
            b.close += 0.25 * (1 + rng.next() % 4) as f64;
            replace(vec![bar.time], vec![b]).await;
        }
        Mutation::FloatBits => {
            let mut b = bar.clone();
            b.close = f64::from_bits(b.close.to_bits() + 1 + rng.next() % 4);
            replace(vec![bar.time], vec![b]).await;
        }
        Mutation::Integer => {
            let mut b = bar.clone();
            b.volume += 1 + (rng.next() % 5) as i64;
            replace(vec![bar.time], vec![b]).await;
        }
        Mutation::Str => {
            let mut b = bar.clone();
            b.status = format!("halt-{}", rng.next() % 100);
            replace(vec![bar.time], vec![b]).await;
        }
        Mutation::Bool => {
            let mut b = bar.clone();
            b.halted = !b.halted;
            replace(vec![bar.time], vec![b]).await;
        }
        Mutation::Time => {
            let mut b = bar.clone();
            b.time += rng.range(1, 24) * NANOS_PER_HOUR;
            replace(vec![bar.time], vec![b]).await;
        }
        Mutation::Tag => {
            let mut b = bar.clone();
            b.venue = "Y";
            replace(vec![bar.time], vec![b]).await;
        }
        Mutation::Delete => {
            backup.delete(&s, &[bar.time]).await.expect("delete");
        }
        Mutation::Insert => {
            let mut b = bar.clone();
            b.time += rng.range(1, 24) * NANOS_PER_HOUR;
            put(backup, vec![b.point()]).await;
        }
        Mutation::Swap => {
            let (mut a, mut b) = (bar.clone(), Bar::of(text, i + 1));
            std::mem::swap(&mut a.volume, &mut b.volume);
            replace(vec![a.time, b.time], vec![a, b]).await;
        }
    }
}

/// A project with US.MUT synced to both backups, reconciled in two-day windows (so a swap of
/// two neighbouring bars can stay inside one), `mirror_deletes` on, and a scrub of four
/// stripes (a history pass a day, a four-day period).
async fn project() -> Project {
    let p = Project::with_sync(
        &sync_yaml(
            100,
            2,
            "reconcile:\n  window: 2d\n  mirror_deletes: true\n  scrub_period: 4d\n",
        )
        .replace("initial_days: 3650", &format!("initial_days: {}", DAYS + 5)),
    );
    for text in [true, false] {
        let points: Vec<Point> = (0..DAYS).map(|i| Bar::of(text, i).point()).collect();
        put(&*p.node("primary"), points).await;
    }
    ok_json(&p, &["sync", "--json"]);
    assert_equal(&p, "backup1").await;
    p
}

/// Both series of `backup` equal the primary's, read in full.
async fn assert_equal(p: &Project, backup: &str) {
    for text in [true, false] {
        let s = series_of(text);
        let primary = all(p.node("primary").as_ref(), &s).await;
        let copy = all(p.node(backup).as_ref(), &s).await;
        assert_eq!(primary.len() as i64, DAYS);
        assert_eq!(copy, primary, "{backup} {s} equals the primary");
    }
}

/// A bar whose window (two days, aligned to the epoch) also holds the next bar.
fn first_of_a_window(rng: &mut Rng) -> i64 {
    loop {
        let i = rng.range(1, DAYS - 2);
        let w = |t: Nanos| dms::node::digest::window_start(t, 2 * DAY);
        if w(Bar::nth(i).time) == w(Bar::nth(i + 1).time) {
            return i;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_single_point_mutations_are_all_found_and_leave_the_backup_equal() {
    let p = project().await;
    let backup = p.node("backup1");
    let mut rng = Rng::seeded();
    // Strings and booleans are only counted by digests, so windows holding them are read:
    // there every change is found by the complete reconcile. In the series of numbers only,
    // digests find what they see; what they cannot (a re-stamp or a swap inside a window, a
    // float changed below the resolution of the window's sum) takes an exact read.
    for (round, text) in [(0, true), (1, false), (2, true), (3, false)] {
        for m in ALL {
            if !text && matches!(m, Mutation::Str | Mutation::Bool) {
                continue;
            }
            let i = first_of_a_window(&mut rng);
            mutate_in(&*backup, text, m, i, &mut rng).await;
            let args: &[&str] = if text || m.digests_see() {
                &["reconcile", "--json"]
            } else {
                &["reconcile", "--json", "--exact"]
            };
            let run = ok_json(&p, args);
            let r = reconciled(&run, "backup1");
            assert!(
                r["differing"].as_u64().unwrap_or(0) >= 1,
                "round {round}, {m:?} of bar {i} not found by {args:?}: {r:#}"
            );
            assert_eq!(r["differing"], r["repaired"], "{m:?}: {r:#}");
            assert_eq!(
                reconciled(&run, "backup2")["differing"],
                0,
                "backup2 was not touched"
            );
            assert_equal(&p, "backup1").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrub_finds_every_change_within_its_period_a_stripe_per_pass() {
    let p = project().await;
    let backup = p.node("backup1");
    let mut rng = Rng::seeded();
    // One change of every kind at once, in distinct windows spread over the range.
    let mut used = std::collections::BTreeSet::new();
    for m in ALL {
        let i = loop {
            let i = first_of_a_window(&mut rng);
            let w = dms::node::digest::window_start(Bar::nth(i).time, 2 * DAY);
            if used.insert(w) {
                break i;
            }
        };
        mutate(&*backup, m, i, &mut rng).await;
    }
    let out = p.cli(&["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // Four passes, stripes 0 to 3, each reading about a quarter of the windows.
    let mut found = 0;
    let mut windows = Vec::new();
    for stripe in 0..4 {
        let run = ok_json(&p, &["reconcile", "--json", "--pass", "scrub"]);
        assert_eq!(run["report"]["stripe"]["index"], stripe, "{run:#}");
        assert_eq!(run["report"]["stripe"]["of"], 4, "{run:#}");
        assert_eq!(run["report"]["depth"], "exact", "{run:#}");
        let r = reconciled(&run, "backup1");
        found += r["differing"].as_u64().unwrap_or(0);
        assert_eq!(r["differing"], r["repaired"], "{r:#}");
        windows.push(r["windows"].as_u64().unwrap_or(0));
    }
    assert_eq!(found, ALL.len() as u64, "every change found once");
    assert_equal(&p, "backup1").await;
    let total: u64 = windows.iter().sum();
    // Two series of DAYS daily bars in two-day windows.
    assert!(
        (DAYS as u64..=DAYS as u64 + 4).contains(&total),
        "the stripes cover the windows once between them: {windows:?}"
    );
    for w in &windows {
        assert!(
            *w <= total / 4 + total / 8,
            "each stripe reads about a quarter: {windows:?}"
        );
    }
    // The next period starts again at stripe 0 and finds nothing.
    let run = ok_json(&p, &["reconcile", "--json", "--pass", "scrub"]);
    assert_eq!(run["report"]["stripe"]["index"], 0);
    assert_eq!(reconciled(&run, "backup1")["differing"], 0, "{run:#}");
    let runs = p.history().runs(Some("@reconcile"), 10).expect("runs");
    assert_eq!(runs.len(), 5, "each pass is a recorded run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_reconcile_reads_windows_holding_strings_and_booleans() {
    let p = project().await;
    let backup = p.node("backup1");
    let mut rng = Rng::seeded();
    mutate(&*backup, Mutation::Str, 10, &mut rng).await;
    mutate(&*backup, Mutation::Bool, 50, &mut rng).await;
    let out = p.cli(&["reconcile", "--json", "--dry-run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let run: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(reconciled(&run, "backup1")["differing"], 2, "{run:#}");
    ok_json(&p, &["reconcile", "--json"]);
    assert_equal(&p, "backup1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_follows_each_history_pass_with_a_scrub_stripe() {
    use crate::helper::daemon::{DaemonProcess, free_port};
    let port = free_port();
    // A history pass every 2 s; a scrub period of one day cut into stripes by that schedule.
    let p = Project::with_sync(
        &sync_yaml(
            100,
            2,
            &format!(
                "api:\n  listen: 127.0.0.1:{port}\nreconcile:\n  window: 2d\n  \
                 recent: {{schedule: \"0 0 1 1 *\"}}\n  history: {{schedule: \"*/2 * * * * *\"}}\n  \
                 scrub_period: 1d\n"
            ),
        )
        .replace("initial_days: 3650", &format!("initial_days: {}", DAYS + 5)),
    );
    for text in [true, false] {
        let points: Vec<Point> = (0..DAYS).map(|i| Bar::of(text, i).point()).collect();
        put(&*p.node("primary"), points).await;
    }
    ok_json(&p, &["sync", "--json"]);
    let d = DaemonProcess::start(p.root(), port).await;
    d.wait_for("two scrub stripes after history passes", 30, || async {
        let rows = d.get("/api/dms/reconcile?limit=50").await;
        let depths: Vec<String> = rows["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["backup"] == "backup1")
            .filter_map(|r| r["depth"].as_str().map(str::to_string))
            .collect();
        depths.iter().filter(|d| *d == "exact").count() >= 2
            && depths.iter().any(|d| d == "cheap+full" || d == "full")
    })
    .await;
    let runs = p.history().runs(Some("@reconcile"), 50).expect("runs");
    assert!(
        runs.iter()
            .all(|r| r.status == dms::history::Status::Success
                || r.status == dms::history::Status::Running),
        "{runs:#?}"
    );
}
