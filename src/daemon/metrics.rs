//! Prometheus metrics of the running daemon: counters fed by the task runs it performs, gauges
//! (lag, behind, node reachability) refreshed when `/metrics` is scraped.

use crate::app::RunOutcome;
use crate::app::status::SeriesStatus;
use crate::history::Status;
use crate::model::BackupSeries;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackupStatus {
    backup: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackupLabel {
    backup: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskStatus {
    task: String,
    trigger: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabel {
    task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeriesLabel {
    backup: String,
    symbol: String,
    interval: String,
}

impl From<&BackupSeries> for SeriesLabel {
    fn from(k: &BackupSeries) -> Self {
        SeriesLabel {
            backup: k.backup.clone(),
            symbol: k.series.symbol.clone(),
            interval: k.series.interval.clone(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackupState {
    backup: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabel {
    node: String,
}

/// The daemon's metrics registry.
pub struct Metrics {
    registry: Mutex<Registry>,
    syncs: Family<BackupStatus, Counter>,
    records: Family<BackupLabel, Counter>,
    duration: Family<BackupLabel, Histogram>,
    runs: Family<TaskStatus, Counter>,
    last_run: Family<TaskLabel, Gauge<f64, AtomicU64>>,
    lag: Family<SeriesLabel, Gauge<f64, AtomicU64>>,
    behind: Family<SeriesLabel, Gauge>,
    max_lag: Family<BackupLabel, Gauge<f64, AtomicU64>>,
    behind_count: Family<BackupLabel, Gauge>,
    by_state: Family<BackupState, Gauge>,
    future: Family<SeriesLabel, Gauge>,
    node_up: Family<NodeLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every dms metric.
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("dms");
        let syncs = Family::<BackupStatus, Counter>::default();
        r.register(
            "syncs",
            "Backup·series syncs finished, by backup and status",
            syncs.clone(),
        );
        let records = Family::<BackupLabel, Counter>::default();
        r.register(
            "sync_records",
            "Points acknowledged by each backup",
            records.clone(),
        );
        let duration = Family::<BackupLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0])
        });
        r.register(
            "sync_duration_seconds",
            "Wall time of one backup·series sync",
            duration.clone(),
        );
        let runs = Family::<TaskStatus, Counter>::default();
        r.register(
            "task_runs",
            "Task runs finished, by task, trigger and status",
            runs.clone(),
        );
        let last_run = Family::<TaskLabel, Gauge<f64, AtomicU64>>::default();
        r.register(
            "task_last_run_timestamp_seconds",
            "When each task's last run finished (Unix time)",
            last_run.clone(),
        );
        let lag = Family::<SeriesLabel, Gauge<f64, AtomicU64>>::default();
        r.register(
            "sync_lag_seconds",
            "Primary newest minus the backup's own newest point, per backup and series",
            lag.clone(),
        );
        let behind = Family::<SeriesLabel, Gauge>::default();
        r.register(
            "sync_behind",
            "1 when a backup·series lags more than max_gap_hours or was never synced",
            behind.clone(),
        );
        let max_lag = Family::<BackupLabel, Gauge<f64, AtomicU64>>::default();
        r.register(
            "backup_max_lag_seconds",
            "Worst lag of each backup",
            max_lag.clone(),
        );
        let behind_count = Family::<BackupLabel, Gauge>::default();
        r.register(
            "backup_behind_series",
            "Series behind, per backup",
            behind_count.clone(),
        );
        let by_state = Family::<BackupState, Gauge>::default();
        r.register(
            "backup_series",
            "Backup·series per state: current, lagging, behind, unknown (the backup could not be asked)",
            by_state.clone(),
        );
        let future = Family::<SeriesLabel, Gauge>::default();
        r.register(
            "sync_future",
            "1 when the primary holds a point of the series stamped after now + future_tolerance",
            future.clone(),
        );
        let node_up = Family::<NodeLabel, Gauge>::default();
        r.register(
            "node_up",
            "1 when the node answered its last health check",
            node_up.clone(),
        );
        Metrics {
            registry: Mutex::new(r),
            syncs,
            records,
            duration,
            runs,
            last_run,
            lag,
            behind,
            max_lag,
            behind_count,
            by_state,
            future,
            node_up,
        }
    }

    /// Counts a finished task run and its syncs.
    pub fn observe_run(&self, trigger: &str, run: &RunOutcome) {
        self.runs
            .get_or_create(&TaskStatus {
                task: run.task.clone(),
                trigger: trigger.to_string(),
                status: run.status.as_str().to_string(),
            })
            .inc();
        self.last_run
            .get_or_create(&TaskLabel {
                task: run.task.clone(),
            })
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
        for u in &run.report.units {
            let status = if u.status == Status::Success {
                "success"
            } else {
                "failed"
            };
            self.syncs
                .get_or_create(&BackupStatus {
                    backup: u.key.backup.clone(),
                    status: status.into(),
                })
                .inc();
            let b = BackupLabel {
                backup: u.key.backup.clone(),
            };
            self.records.get_or_create(&b).inc_by(u.records);
            self.duration
                .get_or_create(&b)
                .observe(u.duration_ms as f64 / 1000.0);
        }
    }

    /// Replaces the lag gauges with a fresh status view.
    pub fn set_status(&self, rows: &[SeriesStatus]) {
        self.lag.clear();
        self.behind.clear();
        self.max_lag.clear();
        self.behind_count.clear();
        self.by_state.clear();
        self.future.clear();
        for r in rows {
            self.by_state
                .get_or_create(&BackupState {
                    backup: r.key.backup.clone(),
                    state: r.state.as_str().to_string(),
                })
                .inc();
            let l = SeriesLabel::from(&r.key);
            if let Some(lag) = r.lag_seconds {
                self.lag.get_or_create(&l).set(lag);
            }
            self.behind.get_or_create(&l).set(i64::from(r.behind));
            self.future
                .get_or_create(&l)
                .set(i64::from(r.future.is_some()));
            let b = BackupLabel {
                backup: r.key.backup.clone(),
            };
            let worst = self.max_lag.get_or_create(&b);
            if let Some(lag) = r.lag_seconds
                && lag > worst.get()
            {
                worst.set(lag);
            }
            self.behind_count
                .get_or_create(&b)
                .inc_by(i64::from(r.behind));
        }
    }

    /// Records whether a node answered.
    pub fn set_node_up(&self, node: &str, up: bool) {
        self.node_up
            .get_or_create(&NodeLabel {
                node: node.to_string(),
            })
            .set(i64::from(up));
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &r);
        out
    }
}
