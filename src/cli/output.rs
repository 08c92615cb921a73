//! What commands print on stdout: tables that keep every row on one line of the terminal,
//! `--json` arrays, and lines — all through [`line`], which treats a closed pipe
//! (`dms history | head`) as the reader having had enough, not as an error.

use comfy_table::{ContentArrangement, Table as Comfy, presets::UTF8_FULL_CONDENSED};
use std::fmt::Display;
use std::io::{ErrorKind, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use unicode_width::UnicodeWidthStr;

/// Narrower terminals than this are drawn as if they were this wide.
const MIN_WIDTH: usize = 40;

/// Set once stdout's reader has gone: later output is dropped.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Prints `text` and a newline on stdout. A closed pipe ends the output quietly (the command
/// goes on to its own exit code); any other write error is returned.
///
/// # Errors
/// Stdout cannot be written for another reason than its reader leaving (a full disk).
pub fn line(text: impl Display) -> anyhow::Result<()> {
    write_line(&mut std::io::stdout().lock(), &STDOUT_CLOSED, text)
}

/// Writes `data` as it is on stdout (a generated script or page), with the same rule for a
/// closed pipe as [`line`].
///
/// # Errors
/// Stdout cannot be written for another reason than its reader leaving.
pub fn bytes(data: &[u8]) -> anyhow::Result<()> {
    write_all(&mut std::io::stdout().lock(), &STDOUT_CLOSED, data)
}

fn write_line(out: &mut impl Write, closed: &AtomicBool, text: impl Display) -> anyhow::Result<()> {
    write_all(out, closed, format!("{text}\n").as_bytes())
}

/// Writes and flushes `data` unless `closed`; a broken pipe sets `closed` and is no error.
fn write_all(out: &mut impl Write, closed: &AtomicBool, data: &[u8]) -> anyhow::Result<()> {
    if closed.load(Ordering::Relaxed) {
        return Ok(());
    }
    match out.write_all(data).and_then(|()| out.flush()) {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => {
            closed.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to stdout")),
        Ok(()) => Ok(()),
    }
}

/// The width tables must fit: `COLUMNS` when set, else the terminal's when stdout is one;
/// `None` (rows as long as they are) otherwise. 0 means unknown; below [`MIN_WIDTH`] counts
/// as [`MIN_WIDTH`].
pub fn width() -> Option<usize> {
    let columns = std::env::var("COLUMNS").ok();
    let terminal = || {
        let out = std::io::stdout();
        out.is_terminal()
            .then(|| console::Term::stdout().size_checked())
            .flatten()
            .map(|(_rows, cols)| usize::from(cols))
    };
    usable_width(columns.as_deref(), terminal)
}

fn usable_width(columns: Option<&str>, terminal: impl FnOnce() -> Option<usize>) -> Option<usize> {
    let w = match columns.map(|c| c.trim().parse::<usize>()) {
        Some(Ok(w)) => Some(w),
        _ => terminal(),
    }?;
    (w > 0).then_some(w.max(MIN_WIDTH))
}

/// One column of a [`Table`]: its header, and what may happen to it when the table is wider
/// than the terminal.
#[derive(Debug, Clone)]
pub struct Column {
    header: &'static str,
    /// Dropped in this order (lowest first) when the table does not fit; `None`: kept.
    drop: Option<u8>,
    /// May be cut (with `…`) down to this width before anything is dropped.
    cut: Option<usize>,
}

/// A column that is kept and never cut (unless nothing else is left to give).
pub fn col(header: &'static str) -> Column {
    Column {
        header,
        drop: None,
        cut: None,
    }
}

impl Column {
    /// Dropped, in `order` (lowest first), when the table does not fit.
    pub fn drop(mut self, order: u8) -> Column {
        self.drop = Some(order);
        self
    }

    /// Cut with `…` down to `min` characters (or its header's width) before columns drop.
    pub fn cut(mut self, min: usize) -> Column {
        self.cut = Some(min);
        self
    }
}

/// A table in the house style whose rows stay on one line each: given a width, it cuts the
/// columns that may be cut, then drops the least needed ones, until it fits.
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns.
    pub fn new(columns: Vec<Column>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    /// Adds a row (one cell per column; each cell is put on one line).
    pub fn add_row(&mut self, cells: Vec<String>) {
        self.rows
            .push(cells.into_iter().map(|c| one_line(&c)).collect());
    }

    /// The table as text, fitted to `width` when it is known.
    pub fn render(&self, width: Option<usize>) -> String {
        let natural: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| c.width())
                    .chain([self.columns[i].header.width()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let empty: Vec<bool> = (0..self.columns.len())
            .map(|i| {
                self.rows
                    .iter()
                    .all(|r| r.get(i).is_none_or(|c| c.is_empty()))
            })
            .collect();
        let widths = match width {
            Some(w) => fit(&self.columns, &natural, &empty, w),
            None => natural.into_iter().map(Some).collect(),
        };
        let kept: Vec<(usize, usize)> = widths
            .iter()
            .enumerate()
            .filter_map(|(i, w)| w.map(|w| (i, w)))
            .collect();
        let mut t = Comfy::new();
        t.load_style(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(kept.iter().map(|&(i, w)| cut(self.columns[i].header, w)));
        for r in &self.rows {
            t.add_row(
                kept.iter()
                    .map(|&(i, w)| cut(r.get(i).map_or("", String::as_str), w)),
            );
        }
        t.to_string()
    }

    /// Prints the table on stdout, fitted to [`width`].
    ///
    /// # Errors
    /// As [`line`].
    pub fn print(&self) -> anyhow::Result<()> {
        line(self.render(width()))
    }
}

/// Characters a table adds around `n` columns of content: `│ a │ b │`.
fn frame(n: usize) -> usize {
    3 * n + 1
}

/// The width of each column (`None`: dropped) so the table fits `width`: columns with no
/// content go first; then cuttable columns are cut to their minimum; then columns are dropped
/// in their order until it fits, after which dropped columns that fit again come back (most
/// needed first) and the space left goes to the cut columns. What still does not fit (a
/// terminal narrower than the kept columns) has its widest columns cut.
fn fit(columns: &[Column], natural: &[usize], empty: &[bool], width: usize) -> Vec<Option<usize>> {
    let total = |w: &[Option<usize>]| -> usize {
        let kept: Vec<usize> = w.iter().flatten().copied().collect();
        kept.iter().sum::<usize>() + frame(kept.len())
    };
    let mut w: Vec<Option<usize>> = natural.iter().copied().map(Some).collect();
    if total(&w) <= width {
        return w;
    }
    for (i, c) in columns.iter().enumerate() {
        if empty[i] && c.drop.is_some() {
            w[i] = None;
        }
    }
    let floor = |i: usize| -> usize {
        columns[i].cut.map_or(natural[i], |m| {
            m.max(columns[i].header.width()).min(natural[i])
        })
    };
    for (i, x) in w.iter_mut().enumerate() {
        if x.is_some() {
            *x = Some(floor(i));
        }
    }
    let mut order: Vec<usize> = (0..columns.len())
        .filter(|&i| w[i].is_some() && columns[i].drop.is_some())
        .collect();
    order.sort_by_key(|&i| columns[i].drop);
    let mut dropped = Vec::new();
    for &i in &order {
        if total(&w) <= width {
            break;
        }
        w[i] = None;
        dropped.push(i);
    }
    for &i in dropped.iter().rev() {
        w[i] = Some(floor(i));
        if total(&w) > width {
            w[i] = None;
        }
    }
    // Give the space left to the cut columns, in order.
    for i in 0..columns.len() {
        if let Some(cur) = w[i]
            && columns[i].cut.is_some()
        {
            let spare = width.saturating_sub(total(&w));
            w[i] = Some(natural[i].min(cur + spare));
        }
    }
    // Still too wide: cut the widest column, one character at a time.
    while total(&w) > width {
        let Some((i, cur)) = w
            .iter()
            .enumerate()
            .filter_map(|(i, x)| x.map(|x| (i, x)))
            .max_by_key(|&(_, x)| x)
        else {
            break;
        };
        if cur <= 1 {
            break;
        }
        w[i] = Some(cur - 1);
    }
    w
}

/// `s` cut to `max` columns of display width, ending in `…` when cut.
fn cut(s: &str, max: usize) -> String {
    if s.width() <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let cw = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + cw + 1 > max {
            break;
        }
        used += cw;
        out.push(c);
    }
    out.push('…');
    out
}

/// A cell's text on one line: line breaks become ` ⏎ `, other control characters are escaped.
fn one_line(s: &str) -> String {
    let joined = s
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ⏎ ");
    crate::model::escape_controls(&joined).into_owned()
}

/// Prints rows as a JSON array (one object per row).
///
/// # Errors
/// Serialization, or as [`line`].
pub fn json<T: serde::Serialize>(rows: &T) -> anyhow::Result<()> {
    line(serde_json::to_string_pretty(rows)?)
}

/// `None` as an em dash.
pub fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "—".into())
}

/// Seconds as a short human duration, in the one wording of [`crate::timefmt::duration`].
pub fn duration(secs: f64) -> String {
    crate::timefmt::duration(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history_like() -> Table {
        let mut t = Table::new(vec![
            col("id").drop(2),
            col("run").drop(3),
            col("backup"),
            col("symbol"),
            col("mode").drop(1),
            col("started"),
            col("status"),
            col("error").cut(8).drop(4),
        ]);
        for i in 0..3 {
            t.add_row(vec![
                format!("{i}"),
                "12".into(),
                "backup1".into(),
                "US.AAPL".into(),
                "incremental".into(),
                "2026-12-02 10:32:53 UTC".into(),
                "failed".into(),
                "connection refused by backup1 at http://10.0.0.7:8086\nretried 3 times".into(),
            ]);
        }
        t
    }

    #[test]
    fn a_table_narrower_than_the_terminal_is_left_whole() {
        let text = history_like().render(None);
        assert!(
            text.contains(
                "connection refused by backup1 at http://10.0.0.7:8086 ⏎ retried 3 times"
            )
        );
        assert_eq!(text.lines().count(), 3 + 4, "one line per row");
        let wide = history_like().render(Some(500));
        assert_eq!(text, wide);
    }

    #[test]
    fn a_wide_table_cuts_then_drops_and_every_line_fits() {
        for width in [40, 60, 80, 100, 120] {
            let text = history_like().render(Some(width));
            assert_eq!(text.lines().count(), 3 + 4, "{width}:\n{text}");
            for l in text.lines() {
                assert!(l.chars().count() <= width, "{width}: {l:?}\n{text}");
            }
            let header = text.lines().nth(1).unwrap();
            let names: Vec<&str> = header
                .split(['│', '┆'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            for n in &names {
                assert!(
                    [
                        "id", "run", "backup", "symbol", "mode", "started", "status", "error"
                    ]
                    .contains(n),
                    "{width}: header {n:?} cut\n{text}"
                );
            }
            if width >= 60 {
                assert!(text.contains("2026-12-02 10:32:53 UTC"), "{width}:\n{text}");
            }
        }
        let at80 = history_like().render(Some(80));
        assert!(
            at80.contains("┆ connectio…"),
            "the error is cut, not dropped: {at80}"
        );
        assert!(at80.contains('…'), "{at80}");
        assert!(!at80.contains("incremental"), "mode goes first: {at80}");
    }

    #[test]
    fn a_dropped_column_comes_back_when_cutting_later_ones_made_room() {
        let cols = vec![col("a").drop(1), col("bbbbbbbbbb").drop(2), col("c")];
        // Dropping `a` (3 + 3) is not enough; dropping b is; then a fits again.
        let w = fit(&cols, &[3, 10, 5], &[false; 3], 17);
        assert_eq!(w, vec![Some(3), None, Some(5)]);
    }

    #[test]
    fn width_comes_from_columns_then_the_terminal_and_zero_is_unknown() {
        assert_eq!(usable_width(Some("80"), || Some(200)), Some(80));
        assert_eq!(usable_width(None, || Some(200)), Some(200));
        assert_eq!(usable_width(Some("wide"), || None), None);
        assert_eq!(usable_width(Some("0"), || Some(200)), None);
        assert_eq!(usable_width(None, || Some(0)), None);
        assert_eq!(usable_width(Some("3"), || None), Some(MIN_WIDTH));
        assert_eq!(usable_width(None, || None), None);
    }

    #[test]
    fn a_closed_pipe_stops_output_quietly_and_other_errors_are_reported() {
        struct Fails(ErrorKind, usize);
        impl Write for Fails {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                self.1 += 1;
                Err(self.0.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let closed = AtomicBool::new(false);
        let mut pipe = Fails(ErrorKind::BrokenPipe, 0);
        write_line(&mut pipe, &closed, "one").unwrap();
        write_line(&mut pipe, &closed, "two").unwrap();
        assert_eq!(pipe.1, 1, "nothing is written after the reader left");
        let closed = AtomicBool::new(false);
        let err = write_line(&mut Fails(ErrorKind::StorageFull, 0), &closed, "x").unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot write to stdout"),
            "{err:#}"
        );
    }

    #[test]
    fn cut_keeps_to_the_width_and_marks_it() {
        assert_eq!(cut("success", 7), "success");
        assert_eq!(cut("success", 5), "succ…");
        assert_eq!(cut("→→→", 2), "→…");
    }
}
