//! The feed watch: whether the primary's newest bar of each series a task maintains still
//! advances. At the end of each successful run the task's series are folded in: a run that
//! finds a series' newest bar unchanged and overdue (older than two bars of its interval)
//! counts towards `stale`; one that finds it advanced clears it. Runs follow the task's own
//! schedule, so nights, weekends and holidays without runs count nothing.

use super::{HistoryReader, HistoryWriter, Result, now_text, sql_err};
use dms_core::model::{Nanos, SeriesKey, interval_nanos};
use rusqlite::params;

/// One series of one task whose feed stopped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StaleFeed {
    /// Task that maintains it.
    pub task: String,
    /// Series.
    #[serde(flatten)]
    pub series: SeriesKey,
    /// The primary's newest point (ns), unchanged since.
    pub newest: Option<Nanos>,
    /// Successful runs in a row that found it unchanged.
    pub runs: u32,
    /// When it was first found unchanged (RFC 3339 wall clock).
    pub since: Option<String>,
}

impl HistoryWriter {
    /// Folds one successful run of `task` in: `newest` is the primary's newest point of each
    /// series the run covered (`None`: it holds none) at `now`. Returns the series that became
    /// stale with this run (`stale_after` runs in a row; 0 never marks any).
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn record_feed(
        &mut self,
        task: &str,
        newest: &[(SeriesKey, Option<Nanos>)],
        now: Nanos,
        stale_after: u32,
    ) -> Result<Vec<SeriesKey>> {
        let at = now_text();
        let path = self.db.path.clone();
        let err = sql_err(&path, "record the feed watch");
        let tx = self.db.conn.transaction().map_err(&err)?;
        let mut became = Vec::new();
        for (s, n) in newest {
            let before: Option<(Option<Nanos>, u32, bool, Option<String>)> = tx
                .query_row(
                    "SELECT newest, unchanged, stale, since FROM feed_state \
                     WHERE task = ?1 AND symbol = ?2 AND interval = ?3",
                    params![task, s.symbol, s.interval],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0, r.get(3)?)),
                )
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })
                .map_err(&err)?;
            let bar = interval_nanos(&s.interval).unwrap_or(0);
            // Overdue: older than two bars (a daily bar is stamped at the start of its day
            // and arrives after its close).
            let overdue = n.is_none_or(|t| now.saturating_sub(t) > bar.saturating_mul(2));
            let (unchanged, since) = match &before {
                Some((old, count, _, since)) if *old == *n && overdue => {
                    (count.saturating_add(1), since.clone().or(Some(at.clone())))
                }
                _ => (0, None),
            };
            let stale = stale_after > 0 && unchanged >= stale_after;
            let was = before.as_ref().is_some_and(|b| b.2);
            if stale && !was {
                became.push(s.clone());
            }
            tx.execute(
                "INSERT INTO feed_state (task, symbol, interval, newest, unchanged, stale, since, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (task, symbol, interval) DO UPDATE SET \
                 newest = ?4, unchanged = ?5, stale = ?6, since = ?7, updated_at = ?8",
                params![task, s.symbol, s.interval, n, unchanged, i64::from(stale), since, at],
            )
            .map_err(&err)?;
        }
        tx.commit().map_err(&err)?;
        Ok(became)
    }
}

impl HistoryReader {
    /// Every series whose feed is stale now, by task.
    ///
    /// # Errors
    /// [`super::HistoryError::Sql`].
    pub fn stale_feeds(&self) -> Result<Vec<StaleFeed>> {
        if self.version < 4 {
            return Ok(Vec::new());
        }
        let err = sql_err(&self.path, "read the feed watch");
        let mut stmt = self
            .conn
            .prepare(
                "SELECT task, symbol, interval, newest, unchanged, since FROM feed_state \
                 WHERE stale != 0 ORDER BY task, symbol, interval",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(StaleFeed {
                    task: r.get(0)?,
                    series: SeriesKey::new(r.get::<_, String>(1)?, r.get::<_, String>(2)?),
                    newest: r.get(3)?,
                    runs: r.get(4)?,
                    since: r.get(5)?,
                })
            })
            .map_err(&err)?;
        rows.collect::<std::result::Result<_, _>>().map_err(err)
    }
}
