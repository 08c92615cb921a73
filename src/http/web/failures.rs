//! "Latest failures" on the status page: failed syncs grouped by backup and cause, so a backup
//! that stayed unreachable for an hour is one entry ("backup2 unreachable — 40 failed syncs,
//! 23:36–00:35") rather than a page of the same error.
//!
//! The cause is read from the error text: a node's error (`node backup2: unreachable: …`)
//! gives its kind (`unreachable`, `timed out`, `authentication failed`, …); any other error its
//! first clause (`interrupted`, `primary unavailable`, …). Digits are masked when comparing
//! causes, so "writing 31 points" and "writing 12 points" are the same cause.

use crate::history::HistoryRow;
use crate::model::SeriesKey;
use chrono::{DateTime, Utc};

/// Longest cause shown; a longer first clause is cut (the full error is shown below it).
const MAX_CAUSE: usize = 80;

/// Failed syncs of one backup with one cause.
#[derive(Debug, Clone)]
pub(super) struct FailureGroup {
    /// Backup node.
    pub backup: String,
    /// What went wrong, in a few words.
    pub cause: String,
    /// Failed syncs in the group.
    pub count: usize,
    /// When the oldest of them started.
    pub first: DateTime<Utc>,
    /// The newest of them (its error text is shown in full).
    pub latest: HistoryRow,
    /// The series that failed, newest first, with how often.
    pub series: Vec<(SeriesKey, usize)>,
}

/// The cause of a failed sync of `backup`, from its error text.
pub(super) fn cause(backup: &str, error: Option<&str>) -> String {
    let Some(error) = error.map(str::trim).filter(|e| !e.is_empty()) else {
        return "no error text".into();
    };
    // A node the circuit breaker found down: "node b down since … (node b: unreachable: …);
    // not tried" has the cause of the failure that took it down.
    let down = format!("node {backup} down since ");
    if let Some((_, inner)) = error
        .strip_prefix(down.as_str())
        .and_then(|r| r.split_once(" ("))
    {
        return cause(backup, Some(inner));
    }
    let rest = error
        .strip_prefix("node ")
        .and_then(|r| r.strip_prefix(backup))
        .and_then(|r| r.strip_prefix(": "));
    let text = rest.unwrap_or(error);
    let first = text.split(": ").next().unwrap_or(text).trim();
    match first.char_indices().nth(MAX_CAUSE) {
        Some((i, _)) => format!("{}…", &first[..i]),
        None => first.to_string(),
    }
}

/// The cause as compared: digit runs masked.
fn cause_key(cause: &str) -> String {
    let mut out = String::with_capacity(cause.len());
    let mut in_digits = false;
    for c in cause.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// Groups failed syncs (newest first) by backup and cause; groups come newest first, each
/// listing its series newest first.
pub(super) fn group(rows: Vec<HistoryRow>) -> Vec<FailureGroup> {
    let mut groups: Vec<(String, FailureGroup)> = Vec::new();
    for row in rows {
        let cause = cause(&row.key.backup, row.error.as_deref());
        let key = cause_key(&cause);
        let at = groups
            .iter()
            .position(|(k, g)| *k == key && g.backup == row.key.backup);
        match at {
            Some(i) => {
                let g = &mut groups[i].1;
                g.count += 1;
                g.first = g.first.min(row.started_at);
                match g.series.iter_mut().find(|(s, _)| *s == row.key.series) {
                    Some((_, n)) => *n += 1,
                    None => g.series.push((row.key.series.clone(), 1)),
                }
            }
            None => groups.push((
                key,
                FailureGroup {
                    backup: row.key.backup.clone(),
                    cause,
                    count: 1,
                    first: row.started_at,
                    series: vec![(row.key.series.clone(), 1)],
                    latest: row,
                },
            )),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Status;
    use crate::model::BackupSeries;

    fn row(id: i64, backup: &str, symbol: &str, minute: u32, error: &str) -> HistoryRow {
        HistoryRow {
            id,
            run_id: Some(id),
            key: BackupSeries::new(backup, SeriesKey::new(symbol, "1m")),
            mode: "incremental".into(),
            started_at: DateTime::parse_from_rfc3339(&format!("2026-01-05T10:{minute:02}:00Z"))
                .unwrap()
                .with_timezone(&Utc),
            finished_at: None,
            status: Status::Failed,
            records: 0,
            error: Some(error.into()),
            window_start: None,
            window_end: None,
        }
    }

    #[test]
    fn causes_are_the_node_error_kind_or_the_first_clause() {
        let c = |b, e: &str| cause(b, Some(e));
        assert_eq!(
            c(
                "backup2",
                "node backup2: unreachable: writing 31 points: cannot connect"
            ),
            "unreachable"
        );
        assert_eq!(
            c("b", "node b: authentication failed: 401 Unauthorized"),
            "authentication failed"
        );
        assert_eq!(
            c("b", "interrupted: dms stopped before this sync finished"),
            "interrupted"
        );
        assert_eq!(
            c("b", "primary unavailable: node primary: timed out: …"),
            "primary unavailable"
        );
        assert_eq!(
            c(
                "b",
                "node b down since 2026-01-05 10:00:00 UTC (node b: unreachable: refused \
                 (gave up after 3 attempts)); not tried"
            ),
            "unreachable"
        );
        assert_eq!(c("b", "  "), "no error text");
        assert_eq!(cause("b", None), "no error text");
        let long = "x".repeat(200);
        assert_eq!(c("b", &long).chars().count(), MAX_CAUSE + 1);
    }

    #[test]
    fn repeated_failures_with_one_cause_are_one_group() {
        let down = |n: u64| format!("node backup2: unreachable: writing {n} points: refused");
        let rows = vec![
            row(9, "backup2", "US.AAPL", 50, &down(31)),
            row(
                8,
                "backup1",
                "US.AAPL",
                49,
                "node backup1: timed out: after 2 s",
            ),
            row(7, "backup2", "US.MSFT", 48, &down(12)),
            row(6, "backup2", "US.AAPL", 47, &down(30)),
            row(
                5,
                "backup2",
                "US.AAPL",
                36,
                "node backup2: request rejected: field type",
            ),
            row(4, "backup2", "US.AAPL", 36, &down(1)),
        ];
        let g = group(rows);
        let summary: Vec<(&str, &str, usize, u32)> = g
            .iter()
            .map(|g| {
                use chrono::Timelike;
                (
                    g.backup.as_str(),
                    g.cause.as_str(),
                    g.count,
                    g.first.minute(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("backup2", "unreachable", 4, 36),
                ("backup1", "timed out", 1, 49),
                ("backup2", "request rejected", 1, 36),
            ]
        );
        assert_eq!(g[0].latest.id, 9);
        let series: Vec<(&str, usize)> = g[0]
            .series
            .iter()
            .map(|(s, n)| (s.symbol.as_str(), *n))
            .collect();
        assert_eq!(series, [("US.AAPL", 3), ("US.MSFT", 1)]);
    }
}
