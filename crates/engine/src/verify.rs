//! `dms verify`: compares the primary with each backup, series by series and window by window
//! (point count and an order-independent content checksum per window), over the synced range —
//! from `since` (default `now − initial_days`) to `until` (default the backup's checkpoint).
//! Memory grows with the number of windows, never with the number of points.

use dms_core::model::{
    BackupSeries, FieldValue, NANOS_PER_DAY, Nanos, Point, SeriesKey, TimeRange, format_nanos,
    now_nanos,
};
use dms_core::node::{Node, NodeError};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// What to compare.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    /// Only these series (all the primary holds when empty).
    pub series: Vec<SeriesKey>,
    /// Start of the range; default `now − initial_days`.
    pub since: Option<Nanos>,
    /// End of the range; default each backup's checkpoint.
    pub until: Option<Nanos>,
    /// Window length in nanoseconds (windows are aligned to the epoch).
    pub window: Nanos,
    /// Days before now when `since` is unset.
    pub initial_days: u32,
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
    /// `missing`, `extra`, `different` or `never synced`.
    pub kind: &'static str,
    /// Window start (ns), for repairs.
    #[serde(skip)]
    pub range: TimeRange,
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
        primary.list_series().await?
    } else {
        req.series.clone()
    };
    series.sort();
    series.dedup();
    let newest = primary.newest(&series).await?;
    let since = req.since.unwrap_or_else(|| {
        now_nanos().saturating_sub(i64::from(req.initial_days).saturating_mul(NANOS_PER_DAY))
    });
    let window = req.window.max(1);
    let mut report = VerifyReport::default();
    for s in &series {
        for b in backups {
            let key = BackupSeries::new(b.name(), s.clone());
            let cp = checkpoints.get(&key).copied();
            let until = match (req.until, cp) {
                (Some(u), _) => u,
                (None, Some(c)) => c,
                (None, None) => {
                    // Never synced: a mismatch if the primary has data in range.
                    if let Some(&n) = newest.get(s)
                        && n >= since
                    {
                        report.compared += 1;
                        report.mismatches.push(Mismatch {
                            key,
                            window_start: format_nanos(since),
                            window_end: format_nanos(n),
                            primary_points: 0,
                            backup_points: 0,
                            kind: "never synced",
                            range: TimeRange::new(since, n),
                        });
                    }
                    continue;
                }
            };
            let range = TimeRange::new(since, until);
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
                let kind = if bb.count < pb.count {
                    "missing"
                } else if bb.count > pb.count {
                    "extra"
                } else {
                    "different"
                };
                let w = TimeRange::new(k.max(range.start), (k + window - 1).min(range.end));
                report.mismatches.push(Mismatch {
                    key: key.clone(),
                    window_start: format_nanos(w.start),
                    window_end: format_nanos(w.end),
                    primary_points: pb.count,
                    backup_points: bb.count,
                    kind,
                    range: w,
                });
            }
        }
    }
    Ok(report)
}
