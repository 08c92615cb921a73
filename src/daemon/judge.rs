//! The daemon's judgement after a check pass, as pure functions: which (backup, series) are
//! `behind` (over `max_gap_hours` and not fixed by the pass), which of them turned behind
//! since the last pass, and one alert per backup for those — so it is tested without a
//! daemon, nodes or a clock.

use crate::app::status::is_behind;
use crate::history::Status;
use crate::model::{BackupSeries, NANOS_PER_SEC};
use crate::sync::{Lag, SyncReport};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

/// Series named in one `behind` alert (the count says how many in all).
pub(super) const ALERT_SERIES: usize = 20;

/// The (backup, series) a condition (behind, future-dated) holds for, so each is alerted
/// once when it starts, not at every check.
#[derive(Default)]
pub(super) struct Flagged(Mutex<HashSet<BackupSeries>>);

impl Flagged {
    /// Replaces the set with `now`; returns the keys that joined and those that left.
    pub(super) fn update<'a>(
        &self,
        now: impl Iterator<Item = &'a BackupSeries>,
    ) -> (HashSet<BackupSeries>, Vec<BackupSeries>) {
        let now: HashSet<BackupSeries> = now.cloned().collect();
        let mut known = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let joined = now.difference(&known).cloned().collect();
        let left = known.difference(&now).cloned().collect();
        *known = now;
        (joined, left)
    }
}

/// The (backup, series) of `lags` that are behind after the pass that made `report`, each with
/// why dms could not catch it up: lag over `max_gap` and either its backup could not be asked
/// or its catch-up in this pass failed. A lag the pass fixed, or that is merely waiting for the
/// next bar, is not behind.
pub(super) fn behind<'a>(
    lags: &'a [Lag],
    report: Option<&SyncReport>,
    max_gap: Duration,
) -> Vec<(&'a Lag, String)> {
    let failed: HashMap<&BackupSeries, &str> = report
        .map(|r| {
            r.units
                .iter()
                // An interrupted catch-up did not fail: the next pass resumes it.
                .filter(|u| u.status == Status::Failed)
                .map(|u| (&u.key, u.error.as_deref().unwrap_or("failed")))
                .collect()
        })
        .unwrap_or_default();
    lags.iter()
        .filter(|l| is_behind(l.primary.newest_time(), l.held(), max_gap))
        .filter_map(|l| match (&l.backup, failed.get(&l.key)) {
            (Err(e), _) => Some((l, e.clone())),
            (Ok(_), Some(e)) => Some((l, (*e).to_string())),
            (Ok(_), None) => None,
        })
        .collect()
}

/// One `behind` alert: the series of one backup that turned behind in one pass.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct BehindAlert {
    /// Backup.
    pub backup: String,
    /// How many series turned behind.
    pub count: usize,
    /// The first [`ALERT_SERIES`] of them.
    pub series: Vec<String>,
    /// The largest lag among them, in seconds (absent when none was ever synced).
    pub max_lag_seconds: Option<f64>,
    /// The cause given for the first of them.
    pub cause: String,
}

/// Groups the `behind` entries whose key is in `turned` by backup, in order of first
/// appearance: one alert each.
pub(super) fn newly_behind(
    behind: &[(&Lag, String)],
    turned: &HashSet<BackupSeries>,
) -> Vec<BehindAlert> {
    let mut by_backup: Vec<(&str, Vec<&Lag>, &str)> = Vec::new();
    for (l, cause) in behind.iter().filter(|(l, _)| turned.contains(&l.key)) {
        match by_backup.iter_mut().find(|(b, _, _)| *b == l.key.backup) {
            Some((_, v, _)) => v.push(l),
            None => by_backup.push((&l.key.backup, vec![l], cause)),
        }
    }
    by_backup
        .into_iter()
        .map(|(backup, lags, cause)| BehindAlert {
            backup: backup.to_string(),
            count: lags.len(),
            series: lags
                .iter()
                .take(ALERT_SERIES)
                .map(|l| l.key.series.to_string())
                .collect(),
            max_lag_seconds: lags
                .iter()
                .filter_map(|l| l.lag())
                .max()
                .map(|n| n as f64 / NANOS_PER_SEC as f64),
            cause: cause.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SeriesKey;
    use crate::node::Tip;
    use crate::sync::UnitReport;

    const HOUR: i64 = 3_600 * NANOS_PER_SEC;

    fn tip(t: i64) -> Tip {
        Tip {
            newest: Some((t, 1)),
            future: None,
        }
    }

    fn lag(backup: &str, symbol: &str, primary: i64, held: Result<Option<i64>, &str>) -> Lag {
        Lag {
            key: BackupSeries::new(backup, SeriesKey::new(symbol, "1m")),
            checkpoint: Some(primary - 10 * HOUR),
            primary: tip(primary),
            backup: held.map(|h| h.map(tip)).map_err(str::to_string),
        }
    }

    fn failed(key: &BackupSeries, error: &str) -> UnitReport {
        UnitReport {
            key: key.clone(),
            status: Status::Failed,
            records: 0,
            error: Some(error.into()),
            window_start: 0,
            window_end: 0,
            synced_to: None,
            history_id: 0,
            duration_ms: 0,
        }
    }

    #[test]
    fn behind_needs_a_lag_over_the_gap_and_a_pass_that_could_not_fix_it() {
        let gap = Duration::from_secs(3_600);
        let t = 100 * HOUR;
        let lags = vec![
            // Over the gap, the backup did not answer: behind (checkpoint stands in).
            lag("b1", "DOWN", t, Err("connection refused")),
            // Over the gap, its catch-up failed in this pass: behind.
            lag("b1", "FAILED", t, Ok(Some(t - 5 * HOUR))),
            // Over the gap but nothing failed: the pass is fixing it, not behind.
            lag("b1", "FIXED", t, Ok(Some(t - 5 * HOUR))),
            // Within the gap and failing: not behind.
            lag("b2", "CLOSE", t, Ok(Some(t - HOUR / 2))),
        ];
        let report = SyncReport {
            units: vec![
                failed(&lags[1].key, "write refused"),
                failed(&lags[3].key, "write refused"),
            ],
            ..SyncReport::default()
        };
        let found: Vec<(String, String)> = behind(&lags, Some(&report), gap)
            .into_iter()
            .map(|(l, why)| (l.key.series.symbol.clone(), why))
            .collect();
        assert_eq!(
            found,
            vec![
                ("DOWN".to_string(), "connection refused".to_string()),
                ("FAILED".to_string(), "write refused".to_string()),
            ]
        );
        // Without a pass (nothing synced), only the unreachable one is behind.
        assert_eq!(behind(&lags, None, gap).len(), 1);
    }

    #[test]
    fn one_alert_per_backup_only_for_what_turned_behind_and_once() {
        let t = 100 * HOUR;
        let lags = [
            lag("b1", "A", t, Err("down")),
            lag("b1", "B", t, Err("down")),
            lag("b2", "C", t, Err("timed out")),
        ];
        let behind: Vec<(&Lag, String)> = lags.iter().map(|l| (l, "down".to_string())).collect();
        let flagged = Flagged::default();
        let (turned, left) = flagged.update(behind.iter().map(|(l, _)| &l.key));
        assert!(left.is_empty());
        let alerts = newly_behind(&behind, &turned);
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        assert_eq!(alerts[0].backup, "b1");
        assert_eq!(alerts[0].count, 2);
        assert_eq!(alerts[0].series, vec!["A@1m", "B@1m"]);
        assert_eq!(alerts[0].max_lag_seconds, Some(10.0 * 3_600.0));
        // The next pass with the same state: nothing turned, nothing alerted.
        let (turned, left) = flagged.update(behind.iter().map(|(l, _)| &l.key));
        assert!(turned.is_empty() && left.is_empty());
        assert!(newly_behind(&behind, &turned).is_empty());
        // One caught up: it leaves the set, and coming back alerts again.
        let (_, left) = flagged.update(behind[..2].iter().map(|(l, _)| &l.key));
        assert_eq!(left, vec![lags[2].key.clone()]);
        let (turned, _) = flagged.update(behind.iter().map(|(l, _)| &l.key));
        let again = newly_behind(&behind, &turned);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].backup, "b2");
    }

    #[test]
    fn an_alert_names_at_most_twenty_series_and_counts_them_all() {
        let t = 100 * HOUR;
        let lags: Vec<Lag> = (0..30)
            .map(|i| lag("b1", &format!("S{i:02}"), t, Err("down")))
            .collect();
        let behind: Vec<(&Lag, String)> = lags.iter().map(|l| (l, "down".to_string())).collect();
        let turned: HashSet<BackupSeries> = lags.iter().map(|l| l.key.clone()).collect();
        let alerts = newly_behind(&behind, &turned);
        assert_eq!(alerts[0].count, 30);
        assert_eq!(alerts[0].series.len(), ALERT_SERIES);
    }
}
