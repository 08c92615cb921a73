//! `dms verify`: compares the primary with each backup, series by series and window by window
//! (point count and an order-independent content checksum per window), from `since` (default
//! `now − initial_days`) to `until` (default the newest point either side holds, future-dated
//! ones included: no checkpoint can hide a difference). A window whose checksums differ is
//! read again point by point and labelled from its content: how many points are missing on
//! the backup, extra there, or different. Memory grows with the number of windows (and the
//! points of one differing window), never with the number of points.

use dms_core::model::{
    BackupSeries, FieldValue, NANOS_PER_DAY, Nanos, Point, SeriesKey, TimeRange, format_nanos,
    now_nanos,
};
use dms_core::node::{Node, NodeError, Tip};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// What to compare.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    /// Only these series (every series the primary or a backup holds when empty).
    pub series: Vec<SeriesKey>,
    /// Start of the range; default `now − initial_days`.
    pub since: Option<Nanos>,
    /// End of the range; default the newest point the primary or the backup holds.
    pub until: Option<Nanos>,
    /// Window length in nanoseconds (windows are aligned to the epoch).
    pub window: Nanos,
    /// Days before now when `since` is unset.
    pub initial_days: u32,
    /// Where each (backup, series) a task maintains starts when `since` is unset: now − that
    /// task's `initial_days`.
    pub starts: HashMap<BackupSeries, Nanos>,
    /// Points per read.
    pub batch_size: usize,
}

/// One window that differs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Mismatch {
    /// Backup and series.
    #[serde(flatten)]
    pub key: BackupSeries,
    /// Window start (RFC 3339).
    pub window_start: String,
    /// Window end, inclusive (RFC 3339).
    pub window_end: String,
    /// Points on the primary.
    pub primary_points: u64,
    /// Points on the backup.
    pub backup_points: u64,
    /// What the window holds, from its content (the worst of what it found).
    pub kind: MismatchKind,
    /// Points of the primary the backup lacks (same time, measurement and tags).
    pub missing: u64,
    /// Points of the backup the primary lacks.
    pub extra: u64,
    /// Points both hold with other fields or values.
    pub different: u64,
    /// Window start (ns), for repairs.
    #[serde(skip)]
    pub range: TimeRange,
}

/// What a differing window holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum MismatchKind {
    /// A point both hold differs (or was moved to another time or tag set within the window,
    /// which shows as missing and extra too).
    #[serde(rename = "different")]
    Different,
    /// The backup lacks points of the primary and holds nothing it should not.
    #[serde(rename = "missing")]
    Missing,
    /// Only points the primary no longer has, on the backup.
    #[serde(rename = "extra")]
    Extra,
    /// The backup holds nothing of a series the primary has, and has no checkpoint.
    #[serde(rename = "never synced")]
    NeverSynced,
}

impl MismatchKind {
    /// The label, as in `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            MismatchKind::Different => "different",
            MismatchKind::Missing => "missing",
            MismatchKind::Extra => "extra",
            MismatchKind::NeverSynced => "never synced",
        }
    }

    /// Whether the backup lacks or misstates something of the primary's (everything but
    /// points it merely keeps after the primary deleted them).
    pub fn loses_data(self) -> bool {
        self != MismatchKind::Extra
    }
}

impl std::fmt::Display for MismatchKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifyReport {
    /// (backup, series) compared.
    pub compared: usize,
    /// Windows compared.
    pub windows: usize,
    /// Points read from the primary.
    pub primary_points: u64,
    /// Windows that differ.
    pub mismatches: Vec<Mismatch>,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    count: u64,
    sum: u64,
}

fn point_hash(p: &Point) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    p.time.hash(&mut h);
    p.measurement.hash(&mut h);
    let mut tags: Vec<_> = p.tags.iter().collect();
    tags.sort();
    tags.hash(&mut h);
    let mut fields: Vec<_> = p.fields.iter().collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in fields {
        k.hash(&mut h);
        match v {
            FieldValue::Float(f) => (0u8, f.to_bits()).hash(&mut h),
            FieldValue::Integer(i) => (1u8, i).hash(&mut h),
            FieldValue::String(s) => (2u8, s).hash(&mut h),
            FieldValue::Boolean(b) => (3u8, b).hash(&mut h),
        }
    }
    h.finish()
}

async fn buckets(
    node: &dyn Node,
    series: &SeriesKey,
    range: TimeRange,
    window: Nanos,
    batch_size: usize,
) -> Result<(BTreeMap<Nanos, Bucket>, u64), NodeError> {
    let mut out: BTreeMap<Nanos, Bucket> = BTreeMap::new();
    let mut total = 0;
    let mut stream = node.read(series, range, batch_size);
    while let Some(batch) = stream.next().await {
        for p in batch?.points {
            let b = out.entry(p.time.div_euclid(window) * window).or_default();
            b.count += 1;
            b.sum = b.sum.wrapping_add(point_hash(&p));
            total += 1;
        }
    }
    Ok((out, total))
}

/// Every point of one window of one node, by (time, measurement, tags), with its content hash.
async fn window_points(
    node: &dyn Node,
    series: &SeriesKey,
    range: TimeRange,
    batch_size: usize,
) -> Result<HashMap<(Nanos, String), u64>, NodeError> {
    let mut out = HashMap::new();
    let mut stream = node.read(series, range, batch_size);
    while let Some(batch) = stream.next().await {
        for p in batch?.points {
            let mut tags: Vec<_> = p.tags.iter().collect();
            tags.sort();
            let id = format!("{}{tags:?}", p.measurement);
            out.insert((p.time, id), point_hash(&p));
        }
    }
    Ok(out)
}

/// Labels a window whose checksums differ by reading it on both sides.
async fn label(
    primary: &dyn Node,
    backup: &dyn Node,
    series: &SeriesKey,
    range: TimeRange,
    batch_size: usize,
) -> Result<(MismatchKind, u64, u64, u64), NodeError> {
    let (p, b) = tokio::join!(
        window_points(primary, series, range, batch_size),
        window_points(backup, series, range, batch_size)
    );
    let (p, b) = (p?, b?);
    let missing = p.keys().filter(|k| !b.contains_key(*k)).count() as u64;
    let extra = b.keys().filter(|k| !p.contains_key(*k)).count() as u64;
    let different = p
        .iter()
        .filter(|(k, h)| b.get(*k).is_some_and(|o| o != *h))
        .count() as u64;
    let kind = if different > 0 || (missing > 0 && extra > 0) {
        MismatchKind::Different
    } else if missing > 0 {
        MismatchKind::Missing
    } else {
        MismatchKind::Extra
    };
    Ok((kind, missing, extra, different))
}

/// Every series the primary or any of `backups` holds, sorted.
async fn all_series(
    primary: &Arc<dyn Node>,
    backups: &[Arc<dyn Node>],
) -> Result<Vec<SeriesKey>, NodeError> {
    let mut series = primary.list_series().await?;
    for b in backups {
        series.extend(b.list_series().await?);
    }
    series.sort();
    series.dedup();
    Ok(series)
}

/// Compares `primary` with each of `backups` for the requested series.
///
/// # Errors
/// The first node error (reading either side).
pub async fn verify(
    primary: &Arc<dyn Node>,
    backups: &[Arc<dyn Node>],
    checkpoints: &HashMap<BackupSeries, Nanos>,
    req: &VerifyRequest,
) -> Result<VerifyReport, NodeError> {
    let mut series = if req.series.is_empty() {
        all_series(primary, backups).await?
    } else {
        req.series.clone()
    };
    series.sort();
    series.dedup();
    let now = now_nanos();
    let latest = |tips: &HashMap<SeriesKey, Tip>, s: &SeriesKey| tips.get(s).and_then(Tip::latest);
    let primary_tips = primary.tips(&series, now).await?;
    let since = req.since.unwrap_or_else(|| {
        now.saturating_sub(i64::from(req.initial_days).saturating_mul(NANOS_PER_DAY))
    });
    let window = req.window.max(1);
    let mut report = VerifyReport::default();
    for b in backups {
        let backup_tips = b.tips(&series, now).await?;
        for s in &series {
            let key = BackupSeries::new(b.name(), s.clone());
            let newest = latest(&primary_tips, s).max(latest(&backup_tips, s));
            let until = match (req.until, newest) {
                (Some(u), _) => u,
                (None, Some(n)) => n,
                (None, None) => continue,
            };
            if latest(&backup_tips, s).is_none()
                && !checkpoints.contains_key(&key)
                && latest(&primary_tips, s).is_some_and(|n| n >= since)
            {
                // Never synced: one line, not one per window.
                report.compared += 1;
                report.mismatches.push(Mismatch {
                    key,
                    window_start: format_nanos(since),
                    window_end: format_nanos(until),
                    primary_points: 0,
                    backup_points: 0,
                    kind: MismatchKind::NeverSynced,
                    missing: 0,
                    extra: 0,
                    different: 0,
                    range: TimeRange::new(since, until),
                });
                continue;
            }
            let from = match req.since {
                Some(s) => s,
                None => req.starts.get(&key).copied().unwrap_or(since),
            };
            let range = TimeRange::new(from, until);
            if range.is_empty() {
                continue;
            }
            report.compared += 1;
            let (p, b_side) = tokio::join!(
                buckets(primary.as_ref(), s, range, window, req.batch_size),
                buckets(b.as_ref(), s, range, window, req.batch_size)
            );
            let (p, p_total) = p?;
            let (bk, _) = b_side?;
            report.primary_points += p_total;
            let mut keys: Vec<Nanos> = p.keys().chain(bk.keys()).copied().collect();
            keys.sort_unstable();
            keys.dedup();
            report.windows += keys.len();
            for k in keys {
                let pb = p.get(&k).copied().unwrap_or_default();
                let bb = bk.get(&k).copied().unwrap_or_default();
                if pb == bb {
                    continue;
                }
                let w = TimeRange::new(k.max(range.start), (k + window - 1).min(range.end));
                let (kind, missing, extra, different) =
                    label(primary.as_ref(), b.as_ref(), s, w, req.batch_size).await?;
                report.mismatches.push(Mismatch {
                    key: key.clone(),
                    window_start: format_nanos(w.start),
                    window_end: format_nanos(w.end),
                    primary_points: pb.count,
                    backup_points: bb.count,
                    kind,
                    missing,
                    extra,
                    different,
                    range: w,
                });
            }
        }
    }
    report
        .mismatches
        .sort_by(|a, b| (&a.key.series, &a.key.backup).cmp(&(&b.key.series, &b.key.backup)));
    Ok(report)
}
