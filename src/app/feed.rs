//! The feed watch at the end of a task run: the primary's newest bar of each series the run
//! covered is folded into the history, which says which series' feeds just stopped (see
//! `dms_history::StaleFeed`).

use super::App;
use crate::config::TaskSettings;
use crate::model::SeriesKey;
use crate::sync::SyncReport;

impl App {
    /// After a successful run of `task`: looks up the primary's newest bar of every series the
    /// run covered (one batched request) and records it; returns the series whose feed became
    /// stale with this run. A look-up or history failure is logged, never fails the run.
    pub(crate) async fn watch_feed(
        &self,
        task: &TaskSettings,
        report: &SyncReport,
    ) -> Vec<SeriesKey> {
        let mut series: Vec<SeriesKey> = report.covered.iter().map(|k| k.series.clone()).collect();
        series.sort();
        series.dedup();
        if series.is_empty() {
            return Vec::new();
        }
        let newest = match self.engine.primary_newest(&series).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(task = %task.name, cause = %e, "feed watch: cannot read the primary's newest bars");
                return Vec::new();
            }
        };
        let rows: Vec<(SeriesKey, Option<crate::model::Nanos>)> = series
            .into_iter()
            .map(|s| {
                let n = newest.get(&s).copied();
                (s, n)
            })
            .collect();
        let (name, after) = (task.name.clone(), task.stale_after);
        let now = crate::model::now_nanos();
        match self
            .history
            .write(move |db| db.record_feed(&name, &rows, now, after))
            .await
        {
            Ok(became) => {
                for s in &became {
                    tracing::warn!(task = %task.name, series = %s, runs = after, "the primary's newest bar has not advanced: feed stale");
                }
                became
            }
            Err(e) => {
                tracing::warn!(task = %task.name, cause = %e, "feed watch: cannot record");
                Vec::new()
            }
        }
    }
}
