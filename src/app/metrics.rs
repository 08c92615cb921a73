//! The seed's monitoring figures per backup and overall — success rate, average sync duration,
//! current lag, failure count — over a window the caller chooses. Shared by `dms metrics` and
//! `GET /api/dms/sync/metrics`.

use super::status::SeriesStatus;
use crate::config::Settings;
use crate::history::BackupMetrics;

/// Figures per backup and overall.
#[derive(Debug, serde::Serialize)]
pub struct MetricsReport {
    /// The window as given (`24h`, `7d`).
    pub window: String,
    /// Start of the window.
    #[serde(with = "crate::history::wallclock")]
    pub since: chrono::DateTime<chrono::Utc>,
    /// All backups together.
    pub overall: Overall,
    /// One entry per enabled backup.
    pub backups: Vec<BackupFigures>,
}

/// All backups together.
#[derive(Debug, serde::Serialize)]
pub struct Overall {
    /// Syncs that ended by themselves (succeeded or failed).
    pub syncs: i64,
    /// Of which succeeded.
    pub successes: i64,
    /// Failed syncs.
    pub failures: i64,
    /// Syncs shutdown interrupted: outside `syncs` and the rate (neither succeeded nor
    /// failed; the next run resumes them).
    pub interrupted: i64,
    /// Successes / syncs.
    pub success_rate: f64,
    /// Mean sync wall time, seconds.
    pub avg_duration_seconds: Option<f64>,
    /// Points copied.
    pub records: i64,
    /// Worst current lag, seconds.
    pub max_lag_seconds: Option<f64>,
    /// Backup·series behind now.
    pub behind: usize,
}

/// One backup.
#[derive(Debug, serde::Serialize)]
pub struct BackupFigures {
    /// History figures in the window.
    #[serde(flatten)]
    pub figures: BackupMetrics,
    /// Worst current lag, seconds.
    pub max_lag_seconds: Option<f64>,
    /// Series behind now.
    pub behind: usize,
}

/// Combines history figures over the window with the current status.
pub fn report(
    settings: &Settings,
    window: String,
    since: chrono::DateTime<chrono::Utc>,
    figures: Vec<BackupMetrics>,
    status: &[SeriesStatus],
) -> MetricsReport {
    let lag_of = |backup: Option<&str>| {
        status
            .iter()
            .filter(|r| backup.is_none_or(|b| r.key.backup == b))
            .filter_map(|r| r.lag_seconds)
            .fold(None, |m: Option<f64>, l| Some(m.map_or(l, |m| m.max(l))))
    };
    let behind_of = |backup: Option<&str>| {
        status
            .iter()
            .filter(|r| r.behind && backup.is_none_or(|b| r.key.backup == b))
            .count()
    };
    let backups: Vec<BackupFigures> = settings
        .enabled_backups()
        .map(|b| BackupFigures {
            figures: figures
                .iter()
                .find(|f| f.backup == b.name)
                .cloned()
                .unwrap_or(BackupMetrics {
                    backup: b.name.clone(),
                    syncs: 0,
                    successes: 0,
                    failures: 0,
                    interrupted: 0,
                    success_rate: 1.0,
                    avg_duration_seconds: None,
                    records: 0,
                }),
            max_lag_seconds: lag_of(Some(&b.name)),
            behind: behind_of(Some(&b.name)),
        })
        .collect();
    let syncs: i64 = backups.iter().map(|b| b.figures.syncs).sum();
    let successes: i64 = backups.iter().map(|b| b.figures.successes).sum();
    let weighted: f64 = backups
        .iter()
        .filter_map(|b| {
            b.figures
                .avg_duration_seconds
                .map(|a| a * b.figures.syncs as f64)
        })
        .sum();
    MetricsReport {
        window,
        since,
        overall: Overall {
            syncs,
            successes,
            failures: backups.iter().map(|b| b.figures.failures).sum(),
            interrupted: backups.iter().map(|b| b.figures.interrupted).sum(),
            success_rate: if syncs == 0 {
                1.0
            } else {
                successes as f64 / syncs as f64
            },
            avg_duration_seconds: (syncs > 0).then(|| weighted / syncs as f64),
            records: backups.iter().map(|b| b.figures.records).sum(),
            max_lag_seconds: lag_of(None),
            behind: behind_of(None),
        },
        backups,
    }
}
