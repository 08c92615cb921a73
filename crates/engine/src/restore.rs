//! Restore: copies a backup back into the primary — or into any other enabled node — after the
//! primary lost data (a symbol dropped, a database wiped), and proves the copy exact.
//!
//! A [`RestoreArgs`] names the source (an enabled backup), the target (the primary by default),
//! the series (named symbols and intervals, or every series the source holds) and a range
//! (default: everything the source holds). Per series, at most `max_workers` at a time:
//!
//! 1. **Write pass.** The source is read in batches over the range; for each batch the target's
//!    points over the batch's time span are read, and only the source's points the target does
//!    not hold (same measurement, tags and time) are written. A point the target holds with
//!    other values is *kept* — the target may hold a newer revision — unless `overwrite`, which
//!    writes the source's point over it (and, where a merge leaves a field only the target had,
//!    replaces the point, never touching another tag set). Nothing is ever deleted.
//! 2. **Exact comparison.** Both sides are read again over the restored range (the source's
//!    oldest to newest point in it) and compared point by point, bit for bit, streaming in time
//!    order: points the target still lacks (`missing`), holds with other values (`different`:
//!    kept, or a failure with `overwrite`) and holds alone (`extra`: kept).
//!
//! Every node call goes through the retry loop. Writes merge field by field on every node kind
//! and the write pass skips what the target already holds, so a restore killed at any moment
//! and run again continues where it was and converges. A restore records one row through the
//! [`dms_core::ledger::Ledger`] and never touches a checkpoint: it is not a sync. A dry run
//! only compares and reports what it would write.

use crate::sync::{Engine, SyncControl};
use dms_core::ledger::{LedgerError, RestoreCounts, RestoreStart, Status};
use dms_core::model::{
    Batch, FieldValue, Nanos, Point, SeriesKey, TimeRange, format_nanos, now_nanos,
};
use dms_core::node::{BatchStream, ErrorKind, Node, NodeError, Role};
use dms_core::retry::{GaveUp, Retrier, with_retry};
use futures::StreamExt;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tracing::Instrument;

/// Options of one restore as people give them (the API's JSON body, Lua's option table, the
/// command line's flags): unknown keys are refused, lists also take one name, times take
/// nanoseconds, RFC 3339, a date or an age before now.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreArgs {
    /// The enabled backup copied from.
    #[serde(default)]
    pub from: String,
    /// The node copied into: the primary (default) or an enabled backup.
    #[serde(default)]
    pub to: Option<String>,
    /// Only these symbols (every symbol the source holds when unset).
    #[serde(default, deserialize_with = "dms_core::de::one_or_many")]
    pub symbols: Option<Vec<String>>,
    /// Only these intervals (every interval the source holds when unset).
    #[serde(default, deserialize_with = "dms_core::de::one_or_many")]
    pub intervals: Option<Vec<String>>,
    /// Start of the range; default: the source's oldest point.
    #[serde(default, deserialize_with = "dms_core::de::point_in_time")]
    pub since: Option<Nanos>,
    /// End of the range; default: the source's newest point (future-dated ones included).
    #[serde(default, deserialize_with = "dms_core::de::point_in_time")]
    pub until: Option<Nanos>,
    /// Write the source's points over different ones the target holds (default: keep them).
    #[serde(default)]
    pub overwrite: bool,
    /// Compare and report what would be written; write nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The nodes of a restore.
pub struct RestoreNodes {
    /// The backup copied from.
    pub source: Arc<dyn Node>,
    /// The node copied into.
    pub target: Arc<dyn Node>,
}

/// Why a restore could not run at all (a series that fails is in the report instead).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// No source was named.
    #[error("name the backup to restore from (--from, or `from` in the API and Lua)")]
    NoSource,
    /// The source named is the primary.
    #[error(
        "{0:?} is the primary: a restore copies from a backup (to copy the primary to a backup, use `dms sync --full --backup NAME`)"
    )]
    SourceIsPrimary(String),
    /// The source named is no enabled backup.
    #[error("no enabled backup is called {name:?}; the enabled backups are: {}", list(.known))]
    UnknownSource {
        /// The name given.
        name: String,
        /// The enabled backups.
        known: Vec<String>,
    },
    /// The target named is neither the primary nor an enabled backup.
    #[error(
        "no node is called {name:?}; a restore writes to the primary ({primary}) or an enabled backup ({})",
        list(.backups)
    )]
    UnknownTarget {
        /// The name given.
        name: String,
        /// The primary's name.
        primary: String,
        /// The enabled backups.
        backups: Vec<String>,
    },
    /// A node named is a configured backup that is disabled.
    #[error(
        "backup {0:?} is disabled (enabled: false in sync.yaml); enable it to restore from or to it"
    )]
    Disabled(String),
    /// Source and target are the same node.
    #[error("{0:?} is both the source and the target of the restore; name another node with --to")]
    SameNode(String),
    /// `since` is after `until`.
    #[error("the range is empty: since {since} is after until {until}")]
    EmptyRange {
        /// `since`, RFC 3339.
        since: String,
        /// `until`, RFC 3339.
        until: String,
    },
    /// The source could not list its series (or its database does not exist).
    #[error("source: {0}")]
    Source(GaveUp<NodeError>),
    /// The target does not answer.
    #[error("target: {0}")]
    Target(GaveUp<NodeError>),
    /// The ledger (the history) could not be written.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Shutdown was requested before the restore started.
    #[error("interrupted by shutdown")]
    Cancelled,
}

impl RestoreError {
    /// Whether the request itself is wrong (a node name, a range): fix it, not the nodes.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            RestoreError::NoSource
                | RestoreError::SourceIsPrimary(_)
                | RestoreError::UnknownSource { .. }
                | RestoreError::UnknownTarget { .. }
                | RestoreError::Disabled(_)
                | RestoreError::SameNode(_)
                | RestoreError::EmptyRange { .. }
        )
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// The names of the nodes a restore may use: the configured ones, to check a request before
/// any node is opened (the command line does, from the settings) or by the engine.
#[derive(Debug, Clone)]
pub struct NodeNames {
    /// The primary.
    pub primary: String,
    /// The enabled backups.
    pub enabled: Vec<String>,
    /// The backups configured but disabled.
    pub disabled: Vec<String>,
}

/// Checks a restore request against the node names: the source is an enabled backup, the
/// target the primary (when unnamed) or an enabled backup, the two differ, and `since` is not
/// after `until`. Returns the names of the source and the target.
///
/// # Errors
/// [`RestoreError`] naming what is wrong (all of them [`RestoreError::is_bad_input`]).
pub fn check_args(args: &RestoreArgs, names: &NodeNames) -> Result<(String, String), RestoreError> {
    let has = |list: &[String], n: &str| list.iter().any(|b| b == n);
    let from = args.from.trim();
    if from.is_empty() {
        return Err(RestoreError::NoSource);
    }
    if from == names.primary {
        return Err(RestoreError::SourceIsPrimary(from.to_string()));
    }
    if !has(&names.enabled, from) {
        return Err(if has(&names.disabled, from) {
            RestoreError::Disabled(from.to_string())
        } else {
            RestoreError::UnknownSource {
                name: from.to_string(),
                known: names.enabled.clone(),
            }
        });
    }
    let to = match args.to.as_deref().map(str::trim) {
        None => names.primary.as_str(),
        Some(n) if n == names.primary || has(&names.enabled, n) => n,
        Some(n) if has(&names.disabled, n) => return Err(RestoreError::Disabled(n.to_string())),
        Some(n) => {
            return Err(RestoreError::UnknownTarget {
                name: n.to_string(),
                primary: names.primary.clone(),
                backups: names.enabled.clone(),
            });
        }
    };
    if from == to {
        return Err(RestoreError::SameNode(from.to_string()));
    }
    if let (Some(since), Some(until)) = (args.since, args.until)
        && since > until
    {
        return Err(RestoreError::EmptyRange {
            since: format_nanos(since),
            until: format_nanos(until),
        });
    }
    Ok((from.to_string(), to.to_string()))
}

/// What the final comparison says of one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeriesOutcome {
    /// The target holds every point of the source in the range, bit for bit (it may hold
    /// more: `extra`).
    Equal,
    /// As `equal`, but for points the target holds with other values and kept (no
    /// `overwrite`): not a failure.
    Kept,
    /// The target still lacks points of the source, or (with `overwrite`) holds them with
    /// other values. In a dry run: what a restore would write.
    Differs,
    /// Reading or writing failed (`error` says why).
    Failed,
    /// Shutdown stopped it.
    Interrupted,
}

impl SeriesOutcome {
    /// The label, as in `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            SeriesOutcome::Equal => "equal",
            SeriesOutcome::Kept => "kept",
            SeriesOutcome::Differs => "differs",
            SeriesOutcome::Failed => "failed",
            SeriesOutcome::Interrupted => "interrupted",
        }
    }
}

/// What the restore of one series did and what its final comparison found.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SeriesRestore {
    /// The series.
    #[serde(flatten)]
    pub series: SeriesKey,
    /// The final comparison's verdict.
    pub result: SeriesOutcome,
    /// The restored range: the source's oldest point in the range asked for (RFC 3339).
    pub range_start: Option<String>,
    /// … to its newest (RFC 3339).
    pub range_end: Option<String>,
    /// Points of the source in the range.
    pub source_points: u64,
    /// Points written to the target (in a dry run: that would be written).
    pub written: u64,
    /// Points the target already held exactly (nothing to write).
    pub unchanged: u64,
    /// Points the target held with other values and kept (without `overwrite`).
    pub kept: u64,
    /// After: points of the source the target lacks.
    pub missing: u64,
    /// After: points both hold with other values.
    pub different: u64,
    /// After: points only the target holds in the range (never deleted).
    pub extra: u64,
    /// Why it failed.
    pub error: Option<String>,
}

impl SeriesRestore {
    fn new(series: SeriesKey) -> Self {
        SeriesRestore {
            series,
            result: SeriesOutcome::Equal,
            range_start: None,
            range_end: None,
            source_points: 0,
            written: 0,
            unchanged: 0,
            kept: 0,
            missing: 0,
            different: 0,
            extra: 0,
            error: None,
        }
    }
}

/// The outcome of a restore.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RestoreReport {
    /// The backup copied from.
    pub source: String,
    /// The node copied into.
    pub target: String,
    /// Start of the range asked for (RFC 3339; `null`: the source's oldest point).
    pub since: Option<String>,
    /// End of the range asked for (RFC 3339; `null`: the source's newest point).
    pub until: Option<String>,
    /// Whether the source's points replaced different ones on the target.
    pub overwrite: bool,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Totals, status and error, as recorded.
    #[serde(flatten)]
    pub counts: RestoreCounts,
    /// One entry per series, in order.
    pub results: Vec<SeriesRestore>,
    /// Series the source holds nothing of in the range (named ones it lacks altogether too).
    pub empty_on_source: Vec<SeriesKey>,
    /// Filters that matched no series on the source (`symbol US.FAKE`, `interval 5m`); at
    /// most [`crate::sync::select::MAX_UNMATCHED`] of them.
    pub unmatched: Vec<String>,
    /// Filters that matched nothing beyond those kept in `unmatched`.
    #[serde(default)]
    pub unmatched_more: usize,
}

impl RestoreReport {
    /// What makes the restore a failure, for people: failed series, series that still differ
    /// after it (not in a dry run, which only reports them), filters that matched nothing;
    /// `None` when it did what was asked (kept values are no failure).
    pub fn problem(&self) -> Option<String> {
        let mut parts = Vec::new();
        let named = |pick: SeriesOutcome| -> Vec<String> {
            self.results
                .iter()
                .filter(|r| r.result == pick)
                .map(|r| r.series.to_string())
                .collect()
        };
        let failed = named(SeriesOutcome::Failed);
        if let Some(first) = self
            .results
            .iter()
            .find(|r| r.result == SeriesOutcome::Failed)
        {
            parts.push(format!(
                "{} series failed — the first {}: {}",
                failed.len(),
                first.series,
                first.error.as_deref().unwrap_or("failed")
            ));
        }
        let differs = named(SeriesOutcome::Differs);
        // A dry run that finds differences did what it was asked: it reports them.
        if !differs.is_empty() && !self.dry_run {
            parts.push(format!(
                "{} series still differ after the restore: {}",
                differs.len(),
                shortened(&differs)
            ));
        }
        if !self.unmatched.is_empty() {
            parts.push(format!(
                "no series on {} matches {}",
                self.source,
                crate::sync::select::shorten_counted(
                    &self.unmatched,
                    self.unmatched_more,
                    ", ",
                    crate::sync::select::LISTED_IN_WARNING
                )
            ));
        } else if self.results.is_empty() {
            // A restore that found nothing to restore did not do what was asked.
            parts.push(format!(
                "nothing to restore: {} holds no points of the series asked for in the range",
                self.source
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// Named series the source holds nothing of, for people; `None` when there are none.
    pub fn warning(&self) -> Option<String> {
        if self.empty_on_source.is_empty() {
            return None;
        }
        let names: Vec<String> = self
            .empty_on_source
            .iter()
            .map(ToString::to_string)
            .collect();
        Some(format!(
            "{} requested series {} no data on {} in the range: {}",
            names.len(),
            if names.len() == 1 { "has" } else { "have" },
            self.source,
            shortened(&names)
        ))
    }

    fn total(&mut self) {
        let mut c = RestoreCounts {
            status: self.counts.status,
            error: self.counts.error.take(),
            ..RestoreCounts::default()
        };
        for r in &self.results {
            c.series += 1;
            match r.result {
                SeriesOutcome::Equal => c.equal += 1,
                SeriesOutcome::Differs => c.differing += 1,
                SeriesOutcome::Failed => c.failed += 1,
                SeriesOutcome::Kept | SeriesOutcome::Interrupted => {}
            }
            c.written += r.written;
            c.kept += r.kept;
            c.extra += r.extra;
        }
        self.counts = c;
    }
}

/// The first ten names, then `…`.
fn shortened(names: &[String]) -> String {
    let mut v: Vec<&str> = names.iter().take(10).map(String::as_str).collect();
    if names.len() > v.len() {
        v.push("…");
    }
    v.join(", ")
}

/// Why one series stopped.
enum Stop {
    Cancelled,
    Node(GaveUp<NodeError>),
}

impl From<GaveUp<NodeError>> for Stop {
    fn from(g: GaveUp<NodeError>) -> Self {
        if g.cancelled {
            Stop::Cancelled
        } else {
            Stop::Node(g)
        }
    }
}

/// What every series of one restore shares.
struct Job<'a> {
    engine: &'a Engine,
    source: &'a Arc<dyn Node>,
    target: &'a Arc<dyn Node>,
    args: &'a RestoreArgs,
    ctl: &'a SyncControl,
    /// Set when a series gave up on a node that is unreachable or timed out: the series after
    /// it fail at once instead of each retrying a dead node.
    down: std::sync::Mutex<Option<String>>,
}

impl Engine {
    /// Restores `args.from` into `args.to` (the primary by default), recording one restore
    /// row under `run_id`.
    ///
    /// # Errors
    /// [`RestoreError`] when the request names nodes it cannot use, its range is empty, or
    /// the source or the ledger cannot be asked; failures of single series are in the report.
    pub async fn restore(
        &self,
        args: &RestoreArgs,
        run_id: Option<i64>,
        ctl: &SyncControl,
    ) -> Result<RestoreReport, RestoreError> {
        if ctl.cancel.is_cancelled() {
            return Err(RestoreError::Cancelled);
        }
        let RestoreNodes { source, target } = self.check_restore(args)?;
        let since = args.since.unwrap_or(Nanos::MIN);
        let mut report = RestoreReport {
            source: source.name().to_string(),
            target: target.name().to_string(),
            since: args.since.map(format_nanos),
            until: args.until.map(format_nanos),
            overwrite: args.overwrite,
            dry_run: args.dry_run,
            ..RestoreReport::default()
        };
        let series = self.restore_series(&source, args, ctl, &mut report).await?;
        // A target that does not answer fails the restore once, not every series after its
        // retries.
        with_retry(
            &self.settings().retry,
            &ctl.cancel,
            "reaching the target",
            || target.ping(),
        )
        .await
        .map_err(RestoreError::Target)?;
        let start = RestoreStart {
            run_id,
            source: report.source.clone(),
            target: report.target.clone(),
            since: args.since,
            until: args.until,
            overwrite: args.overwrite,
            dry_run: args.dry_run,
        };
        let row_id = self.ledger().begin_restore(start).await?;
        tracing::info!(
            source = %report.source,
            target = %report.target,
            series = series.len(),
            overwrite = args.overwrite,
            dry_run = args.dry_run,
            "restore started"
        );
        if let Some(p) = &ctl.progress {
            p.planned(series.len());
        }
        let job = Job {
            engine: self,
            source: &source,
            target: &target,
            args,
            ctl,
            down: std::sync::Mutex::new(None),
        };
        let done: Vec<(SeriesKey, Option<SeriesRestore>)> = futures::stream::iter(series)
            .map(|(s, end)| {
                let span = tracing::info_span!("restore", series = %s);
                job.one(s, TimeRange::new(since, end)).instrument(span)
            })
            .buffer_unordered(self.settings().max_workers.max(1))
            .inspect(|_| {
                if let Some(p) = &ctl.progress {
                    p.reconciled(1);
                }
            })
            .collect()
            .await;
        let mut results = Vec::with_capacity(done.len());
        for (s, r) in done {
            match r {
                Some(r) => results.push(r),
                None => report.empty_on_source.push(s),
            }
        }
        results.sort_by(|a, b| a.series.cmp(&b.series));
        report.empty_on_source.sort();
        report.results = results;
        report.counts.status = if ctl.cancel.is_cancelled() {
            report.counts.error = Some("interrupted by shutdown".into());
            Status::Interrupted
        } else if let Some(p) = report.problem() {
            report.counts.error = Some(p);
            Status::Failed
        } else {
            Status::Success
        };
        report.total();
        self.ledger()
            .finish_restore(row_id, report.counts.clone())
            .await?;
        Ok(report)
    }

    /// Checks a restore request without asking any node ([`check_args`] over this engine's
    /// nodes).
    ///
    /// # Errors
    /// [`RestoreError`] naming what is wrong (all of them [`RestoreError::is_bad_input`]).
    pub fn check_restore(&self, args: &RestoreArgs) -> Result<RestoreNodes, RestoreError> {
        let names = NodeNames {
            primary: self.primary().name().to_string(),
            enabled: self
                .backups()
                .iter()
                .map(|b| b.name().to_string())
                .collect(),
            disabled: self.disabled_backups().to_vec(),
        };
        let (source, target) = check_args(args, &names)?;
        let node = |name: &str| {
            std::iter::once(self.primary())
                .chain(self.backups())
                .find(|n| n.name() == name)
                .cloned()
        };
        match (node(&source), node(&target)) {
            (Some(source), Some(target)) => Ok(RestoreNodes { source, target }),
            // check_args only names nodes of this engine.
            _ => Err(RestoreError::UnknownSource {
                name: source,
                known: names.enabled,
            }),
        }
    }

    /// The series a restore covers, each with the end of its range (the source's newest
    /// point, at most `until`), in one look-up of the source; fills in what it did not find.
    async fn restore_series(
        &self,
        source: &Arc<dyn Node>,
        args: &RestoreArgs,
        ctl: &SyncControl,
        report: &mut RestoreReport,
    ) -> Result<Vec<(SeriesKey, Nanos)>, RestoreError> {
        let policy = self.settings().retry;
        let now = now_nanos();
        let until = args.until.unwrap_or(Nanos::MAX);
        // Symbols × intervals are named series up to a cap; beyond it they filter what the
        // source lists, like one list alone.
        let named = match (&args.symbols, &args.intervals) {
            (Some(s), Some(i)) => crate::sync::select::named_series(s, i),
            _ => None,
        };
        let tips = match named {
            Some(mut named) => {
                named.sort();
                named.dedup();
                let tips = with_retry(
                    &policy,
                    &ctl.cancel,
                    "reading the source's newest points",
                    || source.tips(&named, now),
                )
                .await
                .map_err(RestoreError::Source)?;
                for s in &named {
                    if !tips.contains_key(s) {
                        report.empty_on_source.push(s.clone());
                    }
                }
                tips
            }
            None => {
                let (symbols, intervals) = (args.symbols.as_deref(), args.intervals.as_deref());
                let mut all =
                    with_retry(&policy, &ctl.cancel, "listing the source's series", || {
                        source.tips_all(now)
                    })
                    .await
                    .map_err(RestoreError::Source)?;
                if all.is_empty() && symbols.is_none() && intervals.is_none() {
                    report
                        .unmatched
                        .push("any series (it holds none of the schema's)".into());
                }
                let filter = crate::sync::select::Filter::new(symbols, intervals);
                // Names each found apart but never together are no failure of a restore: it
                // finds nothing to restore and says so.
                let (unmatched, more) =
                    crate::sync::select::unmatched(symbols, intervals, all.keys(), true);
                report.unmatched.extend(unmatched);
                report.unmatched_more = more;
                all.retain(|k, _| filter.matches(k));
                all
            }
        };
        if tips.is_empty() {
            // Nothing found in a database that does not exist is an error, never "nothing to
            // restore".
            source.probe(Role::Primary).await.map_err(|error| {
                RestoreError::Source(GaveUp {
                    error,
                    attempts: 1,
                    cancelled: false,
                })
            })?;
        }
        let mut out: Vec<(SeriesKey, Nanos)> = tips
            .into_iter()
            .filter_map(|(s, tip)| tip.latest().map(|t| (s, t.min(until))))
            .collect();
        out.sort();
        Ok(out)
    }
}

impl Job<'_> {
    /// Restores one series over `range` (its end already at most the source's newest point);
    /// `None` when the source holds nothing of it there.
    async fn one(&self, series: SeriesKey, range: TimeRange) -> (SeriesKey, Option<SeriesRestore>) {
        let mut out = SeriesRestore::new(series.clone());
        let down = self.down.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let outcome = match down {
            _ if self.ctl.cancel.is_cancelled() => Err(Stop::Cancelled),
            Some(cause) => {
                out.result = SeriesOutcome::Failed;
                out.error = Some(format!("not tried: {cause}"));
                return (series, Some(out));
            }
            None => self.run(&series, range, &mut out).await,
        };
        match outcome {
            Ok(true) => {}
            Ok(false) => return (series, None),
            Err(Stop::Cancelled) => {
                out.result = SeriesOutcome::Interrupted;
                out.error = Some("interrupted by shutdown".into());
            }
            Err(Stop::Node(e)) => {
                tracing::error!(cause = %e, "restore failed");
                if matches!(e.error.kind, ErrorKind::Unavailable | ErrorKind::Timeout) {
                    // Poisoned only by a panic elsewhere while setting it: still an Option.
                    let mut d = self.down.lock().unwrap_or_else(|p| p.into_inner());
                    d.get_or_insert_with(|| format!("an earlier series gave up: {e}"));
                }
                out.result = SeriesOutcome::Failed;
                out.error = Some(e.to_string());
            }
        }
        (series, Some(out))
    }

    /// The write pass (unless a dry run), then the exact comparison; `false` when the source
    /// holds nothing of the series in the range.
    async fn run(
        &self,
        series: &SeriesKey,
        range: TimeRange,
        out: &mut SeriesRestore,
    ) -> Result<bool, Stop> {
        let Some(first) = self.first_time(series, range).await? else {
            return Ok(false);
        };
        let range = TimeRange::new(first, range.end);
        out.range_start = Some(format_nanos(range.start));
        out.range_end = Some(format_nanos(range.end));
        if !self.args.dry_run {
            let mut reading = Reading::new(self, self.source, series, range);
            while let Some(batch) = reading.next().await? {
                self.restore_batch(series, batch, out).await?;
            }
        }
        let after = self.compare(series, range).await?;
        out.source_points = after.source;
        out.missing = after.missing;
        out.different = after.different;
        out.extra = after.extra;
        if self.args.dry_run {
            out.unchanged = after.equal;
            if self.args.overwrite {
                out.written = after.missing + after.different;
            } else {
                out.written = after.missing;
                out.kept = after.different;
            }
        }
        out.result = if after.missing > 0 || (self.args.overwrite && after.different > 0) {
            SeriesOutcome::Differs
        } else if after.different > 0 {
            SeriesOutcome::Kept
        } else {
            SeriesOutcome::Equal
        };
        tracing::debug!(
            written = out.written,
            kept = out.kept,
            result = out.result.as_str(),
            "restore: series done"
        );
        Ok(true)
    }

    /// The time of the source's oldest point of `series` in `range`, if any (reads one batch).
    async fn first_time(
        &self,
        series: &SeriesKey,
        range: TimeRange,
    ) -> Result<Option<Nanos>, Stop> {
        if range.is_empty() {
            return Ok(None);
        }
        let source = self.source;
        Ok(with_retry(
            &self.engine.settings().retry,
            &self.ctl.cancel,
            "reading the source",
            || async move {
                let mut stream = source.read(series, range, 1);
                match stream.next().await {
                    None => Ok(None),
                    Some(batch) => Ok(batch?.first_time()),
                }
            },
        )
        .await?)
    }

    /// Writes the points of one source batch that the target lacks (and, with `overwrite`,
    /// those it holds with other values).
    async fn restore_batch(
        &self,
        series: &SeriesKey,
        batch: Batch,
        out: &mut SeriesRestore,
    ) -> Result<(), Stop> {
        let (Some(first), Some(last)) = (batch.first_time(), batch.last_time()) else {
            return Ok(());
        };
        let held = by_time(
            self.points(self.target, series, TimeRange::new(first, last))
                .await?,
        );
        let none = Vec::new();
        let mut write = Vec::new();
        // Times where the target held a point of the source's with other values, overwritten.
        let mut overwritten: Vec<Nanos> = Vec::new();
        for p in &batch.points {
            let there = held.get(&p.time).unwrap_or(&none);
            match there.iter().find(|q| same_identity(q, p)) {
                None => write.push(p.clone()),
                Some(q) if same_point(q, p) => out.unchanged += 1,
                Some(_) if self.args.overwrite => {
                    if overwritten.last() != Some(&p.time) {
                        overwritten.push(p.time);
                    }
                    write.push(p.clone());
                }
                Some(_) => out.kept += 1,
            }
        }
        if write.is_empty() {
            return Ok(());
        }
        let n = write.len() as u64;
        let written = Arc::new(Batch::new(write));
        let target = self.target;
        with_retry(
            &self.engine.settings().retry,
            &self.ctl.cancel,
            "writing to the target",
            || target.write(written.clone()),
        )
        .await?;
        out.written += n;
        if let Some(p) = &self.ctl.progress {
            p.batch_written(target.name(), series, n);
        }
        if !overwritten.is_empty() {
            self.replace_merged(series, batch, &overwritten).await?;
        }
        Ok(())
    }

    /// After an overwrite: a write merges fields, so a point whose field only the target held
    /// still differs. Replaces the points at those times with the source's — only where the
    /// target holds no tag set there that the source lacks, so nothing of the target's own is
    /// ever deleted.
    async fn replace_merged(
        &self,
        series: &SeriesKey,
        source: Batch,
        times: &[Nanos],
    ) -> Result<(), Stop> {
        let (Some(first), Some(last)) = (times.first().copied(), times.last().copied()) else {
            return Ok(());
        };
        let now = by_time(
            self.points(self.target, series, TimeRange::new(first, last))
                .await?,
        );
        let mine = by_time(source.points);
        let none = Vec::new();
        let mut replace = Vec::new();
        let mut points = Vec::new();
        for t in times {
            let (src, tgt) = (mine.get(t).unwrap_or(&none), now.get(t).unwrap_or(&none));
            let differs = src.iter().any(|p| !tgt.iter().any(|q| same_point(q, p)));
            let only_ours = tgt.iter().all(|q| src.iter().any(|p| same_identity(p, q)));
            if differs && only_ours {
                replace.push(*t);
                points.extend(src.iter().cloned());
            }
        }
        if replace.is_empty() {
            return Ok(());
        }
        let points = Arc::new(Batch::new(points));
        let target = self.target;
        with_retry(
            &self.engine.settings().retry,
            &self.ctl.cancel,
            "replacing points on the target",
            || target.replace(series, &replace, points.clone()),
        )
        .await?;
        Ok(())
    }

    /// Every point of `series` on `node` in `range`.
    async fn points(
        &self,
        node: &Arc<dyn Node>,
        series: &SeriesKey,
        range: TimeRange,
    ) -> Result<Vec<Point>, Stop> {
        let batch_size = self.engine.settings().batch_size;
        Ok(with_retry(
            &self.engine.settings().retry,
            &self.ctl.cancel,
            "reading the target",
            || async move {
                let mut v = Vec::new();
                let mut stream = node.read(series, range, batch_size);
                while let Some(batch) = stream.next().await {
                    v.extend(batch?.points);
                }
                Ok(v)
            },
        )
        .await?)
    }

    /// Reads both sides over `range` in time order and compares them point by point.
    async fn compare(&self, series: &SeriesKey, range: TimeRange) -> Result<Compared, Stop> {
        let mut src = Side::new(Reading::new(self, self.source, series, range));
        let mut tgt = Side::new(Reading::new(self, self.target, series, range));
        let mut c = Compared::default();
        loop {
            let (a, b) = (src.front_time().await?, tgt.front_time().await?);
            let t = match (a, b) {
                (None, None) => return Ok(c),
                (Some(t), None) | (None, Some(t)) => t,
                (Some(t), Some(u)) => t.min(u),
            };
            let s = if a == Some(t) {
                src.take(t)
            } else {
                Vec::new()
            };
            let g = if b == Some(t) {
                tgt.take(t)
            } else {
                Vec::new()
            };
            c.source += s.len() as u64;
            for p in &s {
                match g.iter().find(|q| same_identity(q, p)) {
                    None => c.missing += 1,
                    Some(q) if same_point(q, p) => c.equal += 1,
                    Some(_) => c.different += 1,
                }
            }
            c.extra += g
                .iter()
                .filter(|q| !s.iter().any(|p| same_identity(p, q)))
                .count() as u64;
        }
    }
}

/// Point counts of one comparison.
#[derive(Default)]
struct Compared {
    source: u64,
    equal: u64,
    missing: u64,
    different: u64,
    extra: u64,
}

/// Points grouped by time.
fn by_time(points: Vec<Point>) -> HashMap<Nanos, Vec<Point>> {
    let mut m: HashMap<Nanos, Vec<Point>> = HashMap::new();
    for p in points {
        m.entry(p.time).or_default().push(p);
    }
    m
}

/// Whether two points are the same point of the store: measurement, tags and time.
fn same_identity(a: &Point, b: &Point) -> bool {
    a.time == b.time && a.measurement == b.measurement && a.tags == b.tags
}

/// Whether two points are equal bit for bit: identity, the same fields with the same types and
/// values (floats by their bits).
fn same_point(a: &Point, b: &Point) -> bool {
    same_identity(a, b)
        && a.fields.len() == b.fields.len()
        && a.fields
            .iter()
            .all(|(k, v)| b.field(k).is_some_and(|w| same_value(v, w)))
}

fn same_value(a: &FieldValue, b: &FieldValue) -> bool {
    match (a, b) {
        (FieldValue::Float(x), FieldValue::Float(y)) => x.to_bits() == y.to_bits(),
        (FieldValue::Integer(x), FieldValue::Integer(y)) => x == y,
        (FieldValue::String(x), FieldValue::String(y)) => x == y,
        (FieldValue::Boolean(x), FieldValue::Boolean(y)) => x == y,
        _ => false,
    }
}

/// A read of one series over a range that survives failures: after an error it reopens just
/// after the last batch it delivered (batches never split a timestamp, so nothing is lost),
/// retrying with the configured backoff; shutdown stops it between batches.
struct Reading<'a> {
    node: &'a Arc<dyn Node>,
    series: &'a SeriesKey,
    end: Nanos,
    cursor: Option<Nanos>,
    batch_size: usize,
    stream: Option<BatchStream>,
    retrier: Retrier<'a>,
    ctl: &'a SyncControl,
}

impl<'a> Reading<'a> {
    fn new(
        job: &'a Job<'a>,
        node: &'a Arc<dyn Node>,
        series: &'a SeriesKey,
        range: TimeRange,
    ) -> Self {
        let settings = job.engine.settings();
        Reading {
            node,
            series,
            end: range.end,
            cursor: (!range.is_empty()).then_some(range.start),
            batch_size: settings.batch_size,
            stream: None,
            retrier: Retrier::new(&settings.retry, &job.ctl.cancel, "reading for a restore"),
            ctl: job.ctl,
        }
    }

    async fn next(&mut self) -> Result<Option<Batch>, Stop> {
        loop {
            let Some(cursor) = self.cursor else {
                return Ok(None);
            };
            if self.ctl.cancel.is_cancelled() {
                return Err(Stop::Cancelled);
            }
            let (node, series, end, size) = (self.node, self.series, self.end, self.batch_size);
            let stream = self
                .stream
                .get_or_insert_with(|| node.read(series, TimeRange::new(cursor, end), size));
            let item = tokio::select! {
                item = stream.next() => item,
                _ = self.ctl.cancel.cancelled() => return Err(Stop::Cancelled),
            };
            match item {
                None => {
                    self.cursor = None;
                    return Ok(None);
                }
                Some(Ok(batch)) => {
                    self.retrier.succeeded();
                    if let Some(last) = batch.last_time() {
                        self.cursor = last.checked_add(1).filter(|c| *c <= self.end);
                    }
                    if !batch.is_empty() {
                        return Ok(Some(batch));
                    }
                }
                Some(Err(error)) => {
                    self.stream = None;
                    self.retrier.failed(error).await?;
                }
            }
        }
    }
}

/// One side of a comparison: its read, and the points of the batch being compared. A batch
/// holds every point of each timestamp it holds, so the points at the front's time are all
/// here.
struct Side<'a> {
    reading: Reading<'a>,
    buf: VecDeque<Point>,
}

impl<'a> Side<'a> {
    fn new(reading: Reading<'a>) -> Self {
        Side {
            reading,
            buf: VecDeque::new(),
        }
    }

    async fn front_time(&mut self) -> Result<Option<Nanos>, Stop> {
        while self.buf.is_empty() {
            match self.reading.next().await? {
                Some(b) => self.buf.extend(b.points),
                None => return Ok(None),
            }
        }
        Ok(self.buf.front().map(|p| p.time))
    }

    fn take(&mut self, t: Nanos) -> Vec<Point> {
        let mut v = Vec::new();
        while self.buf.front().is_some_and(|p| p.time == t) {
            if let Some(p) = self.buf.pop_front() {
                v.push(p);
            }
        }
        v
    }
}
