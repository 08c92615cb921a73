//! Turning the names a request gives (symbols, intervals) into series, in time and memory
//! proportional to what the request sent and what the nodes hold — never to the product of
//! the two lists.
//!
//! - Symbols × intervals is named series only up to [`MAX_NAMED_SERIES`]; a larger product is
//!   a filter matched against the series the node lists (what exists), so 30,000 symbols and
//!   30,000 intervals cost two sets, not 900 million keys.
//! - Filters are hash sets: matching N series against M names is O(N + M).
//! - Names that matched nothing are kept up to [`MAX_UNMATCHED`]; the rest are counted.

use dms_core::model::SeriesKey;
use std::collections::HashSet;

/// The largest symbols × intervals product looked up as named series; beyond it the two lists
/// filter the series the node holds.
pub const MAX_NAMED_SERIES: usize = 10_000;

/// Filters that matched nothing kept in a report (and its warning); the rest are only counted.
pub const MAX_UNMATCHED: usize = 100;

/// Names of a warning listed in full before "… and N more".
pub const LISTED_IN_WARNING: usize = 10;

/// The names of `list` in their first order, each once.
pub(crate) fn distinct(list: &[String]) -> Vec<String> {
    let mut seen = HashSet::with_capacity(list.len());
    list.iter()
        .filter(|s| seen.insert(s.as_str()))
        .cloned()
        .collect()
}

/// Symbols × intervals as named series when the product stays within [`MAX_NAMED_SERIES`];
/// `None` when it does not (the caller filters what the node lists instead).
pub(crate) fn named_series(symbols: &[String], intervals: &[String]) -> Option<Vec<SeriesKey>> {
    let (symbols, intervals) = (distinct(symbols), distinct(intervals));
    if symbols.len().saturating_mul(intervals.len()) > MAX_NAMED_SERIES {
        return None;
    }
    let mut v = Vec::with_capacity(symbols.len() * intervals.len());
    for s in &symbols {
        for i in &intervals {
            v.push(SeriesKey::new(s.clone(), i.clone()));
        }
    }
    Some(v)
}

/// A filter on symbols and intervals (`None`: any).
pub(crate) struct Filter<'a> {
    symbols: Option<HashSet<&'a str>>,
    intervals: Option<HashSet<&'a str>>,
}

impl<'a> Filter<'a> {
    pub(crate) fn new(symbols: Option<&'a [String]>, intervals: Option<&'a [String]>) -> Self {
        let set = |l: &'a [String]| l.iter().map(String::as_str).collect::<HashSet<_>>();
        Filter {
            symbols: symbols.map(set),
            intervals: intervals.map(set),
        }
    }

    /// Whether `key` passes both filters.
    pub(crate) fn matches(&self, key: &SeriesKey) -> bool {
        self.symbols
            .as_ref()
            .is_none_or(|s| s.contains(key.symbol.as_str()))
            && self
                .intervals
                .as_ref()
                .is_none_or(|i| i.contains(key.interval.as_str()))
    }
}

/// What a filter matched nothing of: `symbol X` and `interval Y` for names no series in `held`
/// has, or (when each name matched something, but no series matched both) the names joined
/// with "with". At most [`MAX_UNMATCHED`] entries; the second value counts those left out.
pub(crate) fn unmatched<'k>(
    symbols: Option<&[String]>,
    intervals: Option<&[String]>,
    held: impl Iterator<Item = &'k SeriesKey> + Clone,
    matched_any: bool,
) -> (Vec<String>, usize) {
    let held_symbols: HashSet<&str> = held.clone().map(|k| k.symbol.as_str()).collect();
    let held_intervals: HashSet<&str> = held.map(|k| k.interval.as_str()).collect();
    let mut out = Capped::default();
    // Each listed name gets its nearest held name as a hint ("did you mean US.AAPL?"); past
    // the cap they are only counted.
    let hinted = |what: &str, wanted: &str, held: &HashSet<&str>, out: &Capped| {
        if out.is_full() {
            String::new()
        } else {
            dms_core::names::with_hint(
                what,
                wanted,
                dms_core::names::nearest(wanted, held.iter().copied()),
            )
        }
    };
    for s in distinct(symbols.unwrap_or_default()) {
        if !held_symbols.contains(s.as_str()) {
            let text = hinted("symbol", s.as_str(), &held_symbols, &out);
            out.push(text);
        }
    }
    for i in distinct(intervals.unwrap_or_default()) {
        if !held_intervals.contains(i.as_str()) {
            let text = hinted("interval", i.as_str(), &held_intervals, &out);
            out.push(text);
        }
    }
    if !matched_any && out.items.is_empty() && out.more == 0 {
        // Each filter matched something, but not together.
        let names: Vec<String> = symbols
            .iter()
            .copied()
            .flatten()
            .map(|s| format!("symbol {s}"))
            .chain(
                intervals
                    .iter()
                    .copied()
                    .flatten()
                    .map(|i| format!("interval {i}")),
            )
            .collect();
        if !names.is_empty() {
            out.push(shorten(&names, " with ", LISTED_IN_WARNING));
        }
    }
    (out.items, out.more)
}

/// A list that keeps at most [`MAX_UNMATCHED`] entries and counts the rest.
#[derive(Default)]
struct Capped {
    items: Vec<String>,
    more: usize,
}

impl Capped {
    fn is_full(&self) -> bool {
        self.items.len() >= MAX_UNMATCHED
    }

    fn push(&mut self, s: String) {
        if self.items.len() < MAX_UNMATCHED {
            self.items.push(s);
        } else {
            self.more += 1;
        }
    }
}

/// Moves `more` into `into` up to [`MAX_UNMATCHED`] entries; returns how many it left out.
pub(crate) fn extend_capped(into: &mut Vec<String>, more: Vec<String>) -> usize {
    let room = MAX_UNMATCHED.saturating_sub(into.len());
    let left_out = more.len().saturating_sub(room);
    into.extend(more.into_iter().take(room));
    left_out
}

/// `names` joined by `sep`, the first `keep` of them, then "… and N more".
pub fn shorten(names: &[String], sep: &str, keep: usize) -> String {
    shorten_counted(names, 0, sep, keep)
}

/// Like [`shorten`], with `also` more names that were not kept in `names` at all.
pub fn shorten_counted(names: &[String], also: usize, sep: &str, keep: usize) -> String {
    let mut text = names
        .iter()
        .take(keep)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(sep);
    let more = names.len().saturating_sub(keep) + also;
    if more > 0 {
        text.push_str(&format!(" … and {more} more"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn a_large_product_is_a_filter_not_a_list() {
        assert_eq!(
            named_series(&names("S", 100), &names("I", 100))
                .unwrap_or_default()
                .len(),
            10_000
        );
        assert!(named_series(&names("S", 30_000), &names("I", 30_000)).is_none());
        // Duplicates do not count against the cap.
        let same = vec!["US.AAPL".to_string(); 30_000];
        assert_eq!(
            named_series(&same, &["1d".into(), "1m".into()]).map(|v| v.len()),
            Some(2)
        );
    }

    #[test]
    fn unmatched_names_are_found_linearly_and_capped() {
        let held = [SeriesKey::new("S1", "I1"), SeriesKey::new("S2", "I2")];
        let s = names("S", 50_000);
        let i = names("I", 50_000);
        let started = std::time::Instant::now();
        let (list, more) = unmatched(Some(&s), Some(&i), held.iter(), true);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert_eq!(list.len(), MAX_UNMATCHED);
        assert_eq!(list.len() + more, 2 * 50_000 - 4);
        assert_eq!(list[0], "symbol S0 (did you mean S1?)");
        let f = Filter::new(Some(&s), Some(&i));
        assert!(f.matches(&held[0]));
        assert!(!f.matches(&SeriesKey::new("S1", "X")));
    }

    #[test]
    fn names_that_match_only_apart_are_joined_shortly() {
        let held = [SeriesKey::new("A", "1d"), SeriesKey::new("B", "1m")];
        let (list, more) = unmatched(
            Some(&["A".into()]),
            Some(&["1m".into()]),
            held.iter(),
            false,
        );
        assert_eq!((list, more), (vec!["symbol A with interval 1m".into()], 0));
        assert_eq!(shorten(&names("x", 12), ", ", 2), "x0, x1 … and 10 more");
    }
}
