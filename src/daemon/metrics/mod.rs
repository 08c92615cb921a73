//! The daemon's Prometheus metrics, built afresh at every scrape of `/metrics`:
//!
//! - **counters** (syncs, points, sync durations, task runs) are the history's running totals
//!   ([`crate::history::Totals`]): every sync and run recorded in the file, kept by triggers
//!   and never pruned, so they continue across daemon restarts and retention;
//! - **gauges** come from the status view (lag, behind, future, states per backup), the node
//!   pings and the totals (time of each task's last run);
//! - every configured backup, task and node has its series from the first scrape, at zero
//!   (a task's runs for each trigger the daemon itself can start), so `rate()`, `increase()`
//!   and alerts see the first failure.
//!
//! The last totals and status read are kept: a scrape during a history or primary outage
//! repeats them rather than dropping or zeroing the series. `exposition.rs` writes the
//! families in either text format.

pub mod exposition;

use crate::app::health::NodeHealth;
use crate::app::status::{SeriesStatus, State};
use crate::config::settings::Settings;
use crate::history::{DURATION_BOUNDS, Status, Totals, Trigger};
use exposition::{Family, Format, Kind, Value};
use std::sync::Mutex;

/// Every state a backup·series can be in, each exported per backup.
const STATES: [State; 5] = [
    State::Current,
    State::Lagging,
    State::Behind,
    State::Ahead,
    State::Unknown,
];
/// How a sync ends (`interrupted`: stopped by shutdown — neither a success nor a failure, so
/// success rates are taken over the other two).
const SYNC_STATUSES: [Status; 3] = [Status::Success, Status::Failed, Status::Interrupted];
/// How a run the daemon started can end (`skipped`: only scheduled runs).
const RUN_STATUSES: [Status; 3] = [Status::Success, Status::Failed, Status::Interrupted];

/// What one scrape found.
pub struct Scrape<'a> {
    /// The daemon's settings (which backups, tasks and loops there are).
    pub settings: &'a Settings,
    /// The history's running totals (`Ok(None)`: the file predates them).
    pub totals: Result<Option<Totals>, String>,
    /// The status view, when it could be built.
    pub status: Option<Vec<SeriesStatus>>,
    /// Every node's ping.
    pub nodes: &'a [NodeHealth],
    /// The last finished reconcile of each backup by kind (digests, exact), newest first,
    /// when the history could be read.
    pub reconciles: Option<Vec<crate::history::ReconcileRow>>,
}

/// The daemon's metrics: what the last scrape could read, for the next one that cannot.
#[derive(Default)]
pub struct Metrics {
    last_totals: Mutex<Option<Totals>>,
    last_status: Mutex<Option<Vec<SeriesStatus>>>,
}

impl Metrics {
    /// An empty cache.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// The exposition of a scrape in `format`.
    pub fn render(&self, scrape: Scrape<'_>, format: Format) -> String {
        exposition::encode(&self.families(scrape), format)
    }

    /// Every metric family of a scrape.
    pub fn families(&self, scrape: Scrape<'_>) -> Vec<Family> {
        let totals = match scrape.totals {
            Ok(Some(t)) => {
                *lock(&self.last_totals) = Some(t.clone());
                Some(t)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(cause = %e, "metrics: cannot read the history's totals; repeating the last ones");
                lock(&self.last_totals).clone()
            }
        };
        let status = match scrape.status {
            Some(s) => {
                *lock(&self.last_status) = Some(s.clone());
                Some(s)
            }
            None => lock(&self.last_status).clone(),
        };
        let mut out = counters(scrape.settings, totals.as_ref());
        out.extend(status_gauges(scrape.settings, status.as_deref()));
        out.push(node_up(scrape.nodes));
        out.push(deletes_refused(
            scrape.settings,
            scrape.reconciles.as_deref(),
        ));
        out.extend(last_reconciles(
            scrape.settings,
            scrape.reconciles.as_deref(),
        ));
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Backups whose counters are exported: the configured ones (disabled too, once they have
/// history); removed backups' totals stay in the file, unexported.
fn configured_backup(settings: &Settings, name: &str) -> bool {
    settings.backups.iter().any(|b| b.name == name)
}

/// The tasks whose runs are exported, each with the (trigger, status) pairs the daemon
/// itself can produce: those start at zero.
fn expected_runs(settings: &Settings) -> Vec<(String, Vec<(Trigger, Status)>)> {
    let with = |triggers: &[Trigger], skipped: bool| {
        let mut pairs: Vec<(Trigger, Status)> = triggers
            .iter()
            .flat_map(|t| RUN_STATUSES.iter().map(move |s| (*t, *s)))
            .collect();
        if skipped {
            pairs.push((Trigger::Cron, Status::Skipped));
        }
        pairs
    };
    let mut out: Vec<(String, Vec<(Trigger, Status)>)> = settings
        .tasks
        .iter()
        .map(|t| {
            let scheduled = t.enabled && t.schedule.is_some();
            let pairs = match (scheduled, t.catch_up) {
                (false, _) => with(&[Trigger::Api], false),
                (true, false) => with(&[Trigger::Api, Trigger::Cron], true),
                (true, true) => with(&[Trigger::Api, Trigger::Cron, Trigger::CatchUp], true),
            };
            (t.name.clone(), pairs)
        })
        .collect();
    if settings.sync.check_enabled {
        out.push((super::CHECK_TASK.into(), with(&[Trigger::Check], false)));
    }
    let reconcile = crate::app::reconcile::RECONCILE_TASK.to_string();
    if settings.reconcile.enabled {
        out.push((reconcile, with(&[Trigger::Api, Trigger::Cron], false)));
    } else {
        out.push((reconcile, with(&[Trigger::Api], false)));
    }
    out
}

/// The counter families and the last-run gauge, from the totals. Without totals (the
/// history never answered) only their descriptions: zeros followed by the real totals would
/// look like a burst of syncs.
fn counters(settings: &Settings, totals: Option<&Totals>) -> Vec<Family> {
    let mut syncs = Family::new(
        "dms_syncs",
        "Backup·series syncs finished, by backup and status (running totals of the sync history)",
        Kind::Counter,
        &["backup", "status"],
    );
    let mut records = Family::new(
        "dms_sync_records",
        "Points acknowledged by each backup",
        Kind::Counter,
        &["backup"],
    );
    let mut duration = Family::new(
        "dms_sync_duration_seconds",
        "Wall time of one backup·series sync that ended by itself",
        Kind::Histogram,
        &["backup"],
    );
    let mut runs = Family::new(
        "dms_task_runs",
        "Task runs finished, by task, trigger and status (@check: the check loop, @reconcile: reconcile passes)",
        Kind::Counter,
        &["task", "trigger", "status"],
    );
    let mut last_run = Family::new(
        "dms_task_last_run_timestamp_seconds",
        "When each task's last run finished (Unix time; 0: never)",
        Kind::Gauge,
        &["task"],
    );

    let Some(totals) = totals else {
        return vec![syncs, records, duration, runs, last_run];
    };
    // Zeros for everything configured.
    let bounds: Vec<f64> = DURATION_BOUNDS
        .iter()
        .filter_map(|b| b.parse().ok())
        .chain([f64::INFINITY])
        .collect();
    let mut per_bucket: std::collections::BTreeMap<String, (Vec<u64>, f64)> = Default::default();
    for b in settings.enabled_backups() {
        for s in SYNC_STATUSES {
            syncs.set(&[&b.name, s.as_str()], Value::Count(0));
        }
        records.set(&[&b.name], Value::Count(0));
        per_bucket.insert(b.name.clone(), (vec![0; bounds.len()], 0.0));
    }
    let expected = expected_runs(settings);
    for (task, pairs) in &expected {
        for (t, s) in pairs {
            runs.set(&[task, t.as_str(), s.as_str()], Value::Count(0));
        }
        last_run.set(&[task], Value::Gauge(0.0));
    }

    for s in totals
        .syncs
        .iter()
        .filter(|s| configured_backup(settings, &s.backup))
    {
        syncs.set(&[&s.backup, s.status.as_str()], Value::Count(s.syncs));
    }
    for (backup, n) in totals
        .records
        .iter()
        .filter(|(b, _)| configured_backup(settings, b))
    {
        records.set(&[backup], Value::Count(*n));
    }
    for d in totals
        .durations
        .iter()
        .filter(|d| configured_backup(settings, &d.backup))
    {
        let le = if d.le == "+Inf" {
            Some(f64::INFINITY)
        } else {
            d.le.parse::<f64>().ok()
        };
        let Some(i) = le.and_then(|le| bounds.iter().position(|b| *b == le)) else {
            continue;
        };
        let entry = per_bucket
            .entry(d.backup.clone())
            .or_insert_with(|| (vec![0; bounds.len()], 0.0));
        entry.0[i] += d.syncs;
        entry.1 += d.seconds;
    }
    let known = |task: &str| expected.iter().any(|(t, _)| t == task);
    for r in totals.runs.iter().filter(|r| known(&r.task)) {
        runs.set(
            &[&r.task, &r.trigger, r.status.as_str()],
            Value::Count(r.runs),
        );
        if r.status != Status::Skipped
            && let Some(at) = r.last_finished_at
        {
            let secs = at.timestamp_millis() as f64 / 1000.0;
            if let Value::Gauge(v) = last_run.entry(&[&r.task], Value::Gauge(0.0))
                && secs > *v
            {
                *v = secs;
            }
        }
    }
    for (backup, (counts, sum)) in per_bucket {
        let mut cumulative = 0;
        let buckets = bounds
            .iter()
            .zip(counts)
            .map(|(le, n)| {
                cumulative += n;
                (*le, cumulative)
            })
            .collect();
        duration.set(&[&backup], Value::Histogram { buckets, sum });
    }
    vec![syncs, records, duration, runs, last_run]
}

/// The gauges of the status view; per-backup ones at zero for backups without series. No
/// status at all (never built): only the families' descriptions.
fn status_gauges(settings: &Settings, status: Option<&[SeriesStatus]>) -> Vec<Family> {
    let mut lag = Family::new(
        "dms_sync_lag_seconds",
        "Primary newest minus the backup's own newest point, per backup and series",
        Kind::Gauge,
        &["backup", "symbol", "interval"],
    );
    let mut behind = Family::new(
        "dms_sync_behind",
        "1 when a backup·series is behind (dms status): lag over max_gap_hours, or never synced, that dms could not fix (its catch-up failed or the backup is down)",
        Kind::Gauge,
        &["backup", "symbol", "interval"],
    );
    let mut future = Family::new(
        "dms_sync_future",
        "1 when the primary holds a point of the series stamped after now + future_tolerance",
        Kind::Gauge,
        &["backup", "symbol", "interval"],
    );
    let mut by_state = Family::new(
        "dms_backup_series",
        "Backup·series per state: current, lagging, behind, ahead (the backup holds newer points than the primary: the primary lost data), unknown (the backup could not be asked and is not known to be behind); state behind counts the same series as dms_backup_behind_series and dms_sync_behind",
        Kind::Gauge,
        &["backup", "state"],
    );
    let mut max_lag = Family::new(
        "dms_backup_max_lag_seconds",
        "Worst lag of each backup",
        Kind::Gauge,
        &["backup"],
    );
    let mut behind_count = Family::new(
        "dms_backup_behind_series",
        "Series behind, per backup: the sum of dms_sync_behind",
        Kind::Gauge,
        &["backup"],
    );
    let mut newest = Family::new(
        "dms_primary_newest_timestamp_seconds",
        "The primary's newest point at or before now, per series (a feed that stops shows here first)",
        Kind::Gauge,
        &["symbol", "interval"],
    );
    let mut last_success = Family::new(
        "dms_backup_last_success_timestamp_seconds",
        "When a sync to the backup last succeeded, for any of its series (Unix time; 0: never)",
        Kind::Gauge,
        &["backup"],
    );
    let mut stale = Family::new(
        "dms_series_stale",
        "1 when a task that maintains the series found the primary's newest bar unchanged and overdue for its stale_after runs",
        Kind::Gauge,
        &["symbol", "interval"],
    );
    // Per-series lines only where they say something (unless `api.metrics_series: all`): at
    // 10,000 series a line per current series is megabytes of zeros.
    let listed = |r: &SeriesStatus| {
        settings.api.metrics_all_series
            || r.state != State::Current
            || r.behind
            || r.future.is_some()
            || r.stale.is_some()
    };
    if let Some(rows) = status {
        for r in rows.iter().filter(|r| listed(r)) {
            let (sym, int) = (r.key.series.symbol.as_str(), r.key.series.interval.as_str());
            if let Some(n) = r.primary_newest_ns {
                newest.set(&[sym, int], Value::Gauge(n as f64 / 1e9));
            }
            stale.set(
                &[sym, int],
                Value::Gauge(f64::from(u8::from(r.stale.is_some()))),
            );
        }
    }
    if let Some(rows) = status {
        for b in settings.enabled_backups() {
            for s in STATES {
                by_state.set(&[&b.name, s.as_str()], Value::Gauge(0.0));
            }
            max_lag.set(&[&b.name], Value::Gauge(0.0));
            behind_count.set(&[&b.name], Value::Gauge(0.0));
            last_success.set(&[&b.name], Value::Gauge(0.0));
        }
        for r in rows {
            let (b, sym, int) = (
                r.key.backup.as_str(),
                r.key.series.symbol.as_str(),
                r.key.series.interval.as_str(),
            );
            // A series judged behind from its checkpoint while its backup cannot be asked
            // counts as behind here too: the per-state counts, the behind count and the
            // per-series flag always agree.
            let state = if r.behind { State::Behind } else { r.state };
            add(&mut by_state, &[b, state.as_str()], 1.0);
            if r.last_status == Some(Status::Success)
                && let Some(at) = r.updated_at
            {
                let secs = at.timestamp_millis() as f64 / 1000.0;
                if let Value::Gauge(v) = last_success.entry(&[b], Value::Gauge(0.0))
                    && secs > *v
                {
                    *v = secs;
                }
            }
            if let Some(l) = r.lag_seconds
                && let Value::Gauge(worst) = max_lag.entry(&[b], Value::Gauge(0.0))
                && l > *worst
            {
                *worst = l;
            }
            add(&mut behind_count, &[b], f64::from(u8::from(r.behind)));
            if !listed(r) {
                continue;
            }
            if let Some(l) = r.lag_seconds {
                lag.set(&[b, sym, int], Value::Gauge(l));
            }
            behind.set(&[b, sym, int], Value::Gauge(f64::from(u8::from(r.behind))));
            future.set(
                &[b, sym, int],
                Value::Gauge(f64::from(u8::from(r.future.is_some()))),
            );
        }
    }
    vec![
        lag,
        behind,
        max_lag,
        behind_count,
        by_state,
        last_success,
        future,
        newest,
        stale,
    ]
}

/// The last finished reconcile of each backup, per kind (`digest`: compared by digests;
/// `exact`: read point by point, the scrub): when it finished, the windows that differed,
/// the points it wrote or deleted. At zero for every enabled backup and kind never run.
fn last_reconciles(
    settings: &Settings,
    rows: Option<&[crate::history::ReconcileRow]>,
) -> [Family; 3] {
    const LABELS: [&str; 2] = ["backup", "kind"];
    let labels = &LABELS;
    let mut at = Family::new(
        "dms_reconcile_last_timestamp_seconds",
        "When the last reconcile of each backup finished, by kind (digest, exact: the scrub) (Unix time; 0: never)",
        Kind::Gauge,
        labels,
    );
    let mut differing = Family::new(
        "dms_reconcile_last_windows_differing",
        "Windows the last reconcile of each backup found different from the primary, by kind",
        Kind::Gauge,
        labels,
    );
    let mut repaired = Family::new(
        "dms_reconcile_last_points_repaired",
        "Points the last reconcile of each backup rewrote or deleted to make it equal the primary, by kind",
        Kind::Gauge,
        labels,
    );
    if let Some(rows) = rows {
        for b in settings.enabled_backups() {
            for kind in ["digest", "exact"] {
                let row = rows
                    .iter()
                    .find(|r| r.backup == b.name && (r.depth == "exact") == (kind == "exact"));
                let finished = row
                    .and_then(|r| r.finished_at)
                    .map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0);
                at.set(&[&b.name, kind], Value::Gauge(finished));
                differing.set(
                    &[&b.name, kind],
                    Value::Gauge(row.map_or(0.0, |r| r.counts.differing as f64)),
                );
                repaired.set(
                    &[&b.name, kind],
                    Value::Gauge(row.map_or(0.0, |r| {
                        r.counts.rewritten.saturating_add(r.counts.deleted) as f64
                    })),
                );
            }
        }
    }
    [at, differing, repaired]
}

fn add(f: &mut Family, labels: &[&str], by: f64) {
    if let Value::Gauge(v) = f.entry(labels, Value::Gauge(0.0)) {
        *v += by;
    }
}

/// Deletes the last reconcile of each backup held back (0 where it held none back).
fn deletes_refused(settings: &Settings, rows: Option<&[crate::history::ReconcileRow]>) -> Family {
    let mut f = Family::new(
        "dms_reconcile_deletes_refused",
        "Points the last reconcile of each backup would have deleted but refused to (more than reconcile.max_deletes, or a primary that lost its newest points): nothing was deleted",
        Kind::Gauge,
        &["backup"],
    );
    if let Some(rows) = rows {
        for b in settings.enabled_backups() {
            let n = rows
                .iter()
                .find(|r| r.backup == b.name)
                .map_or(0, |r| r.counts.refused);
            f.set(&[&b.name], Value::Gauge(n as f64));
        }
    }
    f
}

fn node_up(nodes: &[NodeHealth]) -> Family {
    let mut up = Family::new(
        "dms_node_up",
        "1 when the node answered its health check at this scrape",
        Kind::Gauge,
        &["node"],
    );
    for n in nodes {
        up.set(&[&n.name], Value::Gauge(f64::from(u8::from(n.reachable))));
    }
    up
}
