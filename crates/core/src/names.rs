//! Name filters (`--symbol`, `--interval`) checked against the series that exist, with the
//! nearest existing name offered when one matches nothing (`AAPL` → "did you mean US.AAPL?").
//! One wording for `sync`, `verify`, `reconcile`, `status` and `history`.

use crate::model::SeriesKey;
use std::collections::BTreeSet;

/// The existing name nearest to `wanted`, if one is near enough to be a likely intent: the
/// same name in another case, a name whose part after the last `.` is `wanted` (`AAPL` →
/// `US.AAPL`), `wanted` with a market prefix dropped, or one or two typing slips away.
pub fn nearest<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = wanted.to_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for name in known {
        let n = name.to_lowercase();
        let score = if n == lower {
            0
        } else if n.rsplit('.').next() == Some(lower.as_str())
            || lower.rsplit('.').next() == Some(n.as_str())
        {
            1
        } else {
            let d = strsim::damerau_levenshtein(&lower, &n);
            // Short names tolerate one slip, longer ones two.
            let allowed = if lower.chars().count() <= 4 { 1 } else { 2 };
            if d > allowed {
                continue;
            }
            1 + d
        };
        // Ties go to the smaller name, so the hint does not depend on the listing's order.
        if best.is_none_or(|(s, b)| (score, name) < (s, b)) {
            best = Some((score, name));
        }
    }
    best.map(|(_, n)| n)
}

/// The name filters that match no series of `known`, each worded with its nearest existing
/// name: `symbol AAPL (did you mean US.AAPL?)`. Empty when every filter matches something.
pub fn unmatched(symbols: &[String], intervals: &[String], known: &[SeriesKey]) -> Vec<String> {
    let syms: BTreeSet<&str> = known.iter().map(|k| k.symbol.as_str()).collect();
    let ivs: BTreeSet<&str> = known.iter().map(|k| k.interval.as_str()).collect();
    let mut out = Vec::new();
    for (what, wanted, names) in symbols
        .iter()
        .map(|s| ("symbol", s, &syms))
        .chain(intervals.iter().map(|i| ("interval", i, &ivs)))
    {
        if !names.contains(wanted.as_str()) {
            out.push(with_hint(
                what,
                wanted,
                nearest(wanted, names.iter().copied()),
            ));
        }
    }
    out
}

/// `symbol AAPL`, or `symbol AAPL (did you mean US.AAPL?)`.
pub fn with_hint(what: &str, wanted: &str, near: Option<&str>) -> String {
    match near {
        Some(n) => format!("{what} {wanted} (did you mean {n}?)"),
        None => format!("{what} {wanted}"),
    }
}

/// Name filters that matched nothing, as an error: `no series on the primary matches symbol
/// AAPL (did you mean US.AAPL?)`. A filter that names nothing is a failed request (exit 1),
/// never an empty success.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no series {place} matches {}", .filters.join(", "))]
pub struct NoMatch {
    /// Where the series were looked for (`on the primary or a backup`, `in the history`).
    pub place: String,
    /// The filters, each with its hint.
    pub filters: Vec<String>,
}

impl NoMatch {
    /// `Err(NoMatch)` when a filter of `symbols`/`intervals` matches no series of `known`.
    ///
    /// # Errors
    /// [`NoMatch`] naming every such filter.
    pub fn check(
        place: &str,
        symbols: &[String],
        intervals: &[String],
        known: &[SeriesKey],
    ) -> Result<(), NoMatch> {
        let filters = unmatched(symbols, intervals, known);
        if filters.is_empty() {
            Ok(())
        } else {
            Err(NoMatch {
                place: place.to_string(),
                filters,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &[(&str, &str)]) -> Vec<SeriesKey> {
        v.iter().map(|(s, i)| SeriesKey::new(*s, *i)).collect()
    }

    #[test]
    fn a_bare_ticker_finds_its_market_prefixed_symbol() {
        let k = keys(&[("US.AAPL", "1d"), ("US.MSFT", "1d"), ("HK.00700", "1m")]);
        assert_eq!(
            unmatched(&["AAPL".into()], &[], &k),
            ["symbol AAPL (did you mean US.AAPL?)"]
        );
        assert_eq!(
            unmatched(&["us.aapl".into()], &[], &k),
            ["symbol us.aapl (did you mean US.AAPL?)"]
        );
        assert_eq!(
            unmatched(&["US.APPL".into()], &[], &k),
            ["symbol US.APPL (did you mean US.AAPL?)"]
        );
        assert_eq!(
            unmatched(&[], &["1h".into(), "1D".into()], &k),
            [
                "interval 1h (did you mean 1d?)",
                "interval 1D (did you mean 1d?)"
            ]
        );
    }

    #[test]
    fn nothing_near_gets_no_hint_and_matches_pass() {
        let k = keys(&[("US.AAPL", "1d")]);
        assert_eq!(
            unmatched(&["ZZZZZZZZ".into()], &["15m".into()], &k),
            ["symbol ZZZZZZZZ", "interval 15m"]
        );
        assert!(unmatched(&["US.AAPL".into()], &["1d".into()], &k).is_empty());
        let e = NoMatch::check("on the primary", &["AAPL".into()], &[], &k).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no series on the primary matches symbol AAPL (did you mean US.AAPL?)"
        );
    }
}
