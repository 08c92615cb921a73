//! A progress bar for long syncs and imports, drawn on stderr only when it is a terminal, and the log
//! writer that prints log lines above it instead of across it.

use crate::model::SeriesKey;
use crate::sync::{Progress, UnitReport};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::MakeWriter;

/// The bar on screen, if any, that log lines must be written above.
pub struct Bars(Mutex<Option<ProgressBar>>);

/// The process's bar slot: [`Bar`] registers here, the log writer ([`AboveBar`]) looks here.
pub static BARS: Bars = Bars::new();

impl Bars {
    /// No bar.
    pub const fn new() -> Bars {
        Bars(Mutex::new(None))
    }

    fn set(&self, bar: Option<ProgressBar>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = bar;
    }

    fn current(&self) -> Option<ProgressBar> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Shows `message` after the bar on screen, if there is one (a note for the person
    /// watching, not a log line).
    pub fn note(&self, message: &str) {
        if let Some(bar) = self.current() {
            bar.set_message(format!("· {message}"));
        }
    }
}

impl Default for Bars {
    fn default() -> Bars {
        Bars::new()
    }
}

/// A `MakeWriter` for log lines: while a bar is drawn, each line is written with the bar
/// cleared and the bar drawn again below it.
#[derive(Clone, Copy)]
pub struct AboveBar<M> {
    bars: &'static Bars,
    inner: M,
}

impl<M> AboveBar<M> {
    /// Writes through `inner`, above the bar registered in `bars`.
    pub fn new(bars: &'static Bars, inner: M) -> AboveBar<M> {
        AboveBar { bars, inner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for AboveBar<M> {
    type Writer = AboveBarWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        AboveBarWriter {
            bar: self.bars.current(),
            inner: self.inner.make_writer(),
        }
    }
}

/// One log event's writer (see [`AboveBar`]).
pub struct AboveBarWriter<W> {
    bar: Option<ProgressBar>,
    inner: W,
}

impl<W: Write> Write for AboveBarWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.bar {
            Some(bar) => bar.suspend(|| self.inner.write(buf)),
            None => self.inner.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match &self.bar {
            Some(bar) => bar.suspend(|| self.inner.write_all(buf)),
            None => self.inner.write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Draws (backup, series) units done of planned, points copied, points per second and the
/// time left.
pub struct Bar {
    bar: ProgressBar,
    points: Arc<AtomicU64>,
    bars: &'static Bars,
}

impl Bar {
    /// A bar when stderr is a terminal, else `None`.
    pub fn new() -> Option<Arc<Bar>> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        Some(Arc::new(Bar::with_target(
            ProgressDrawTarget::stderr(),
            &BARS,
        )))
    }

    /// A bar drawn on `target`, registered in `bars` so logs go above it.
    pub fn with_target(target: ProgressDrawTarget, bars: &'static Bars) -> Bar {
        let points = Arc::new(AtomicU64::new(0));
        let bar = ProgressBar::with_draw_target(Some(0), target);
        bar.set_style(style(points.clone()));
        bars.set(Some(bar.clone()));
        Bar { bar, points, bars }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bars.set(None);
        self.bar.finish_and_clear();
    }
}

/// `⠁ [00:00:12] ████░░░░ 4/16 backup·series · 12840 points · 1070 points/s · ETA 36s`.
fn style(points: Arc<AtomicU64>) -> ProgressStyle {
    let total = points.clone();
    let template = "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} backup·series · {points} points · {points_rate} points/s · ETA {eta} {msg}";
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "points",
            move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}", total.load(Ordering::Relaxed));
            },
        )
        .with_key(
            "points_rate",
            move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let secs = s.elapsed().as_secs_f64();
                let n = points.load(Ordering::Relaxed) as f64;
                let rate = if secs > 0.0 { n / secs } else { 0.0 };
                let _ = write!(w, "{rate:.0}");
            },
        )
}

impl Progress for Bar {
    fn planned(&self, units: usize) {
        self.bar.inc_length(units as u64);
    }

    fn batch_written(&self, _backup: &str, _series: &SeriesKey, records: u64) {
        self.points.fetch_add(records, Ordering::Relaxed);
    }

    fn unit_finished(&self, _report: &UnitReport) {
        self.bar.inc(1);
    }

    fn reconciled(&self, n: usize) {
        self.bar.inc(n as u64);
    }
}

/// The bar of `dms import`: bytes of the files read, rows written, rows per second and the
/// time left.
pub struct ImportBar {
    bar: ProgressBar,
    rows: Arc<AtomicU64>,
    /// Bytes of the files before the current one.
    base: AtomicU64,
    /// Size of the current file.
    current: AtomicU64,
    bars: &'static Bars,
}

impl ImportBar {
    /// A bar when stderr is a terminal, else `None`.
    pub fn new() -> Option<Arc<ImportBar>> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        Some(Arc::new(ImportBar::with_target(
            ProgressDrawTarget::stderr(),
            &BARS,
        )))
    }

    /// A bar drawn on `target`, registered in `bars` so logs go above it.
    pub fn with_target(target: ProgressDrawTarget, bars: &'static Bars) -> ImportBar {
        let rows = Arc::new(AtomicU64::new(0));
        let bar = ProgressBar::with_draw_target(Some(0), target);
        let (total, rate) = (rows.clone(), rows.clone());
        let template = "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} · {rows} rows · {rows_rate} rows/s · ETA {eta} {msg}";
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key(
                "rows",
                move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{}", total.load(Ordering::Relaxed));
                },
            )
            .with_key(
                "rows_rate",
                move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let secs = s.elapsed().as_secs_f64();
                    let n = rate.load(Ordering::Relaxed) as f64;
                    let r = if secs > 0.0 { n / secs } else { 0.0 };
                    let _ = write!(w, "{r:.0}");
                },
            );
        bar.set_style(style);
        bars.set(Some(bar.clone()));
        ImportBar {
            bar,
            rows,
            base: AtomicU64::new(0),
            current: AtomicU64::new(0),
            bars,
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bars.set(None);
        self.bar.finish_and_clear();
    }
}

impl crate::import::ImportProgress for ImportBar {
    fn written(&self, rows: u64, offset: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.bar
            .set_position(self.base.load(Ordering::Relaxed).saturating_add(offset));
    }
}

impl crate::app::import::FileProgress for ImportBar {
    fn file_started(&self, _file: &str, size: u64) {
        let before = self.current.swap(size, Ordering::Relaxed);
        let base = self.base.fetch_add(before, Ordering::Relaxed) + before;
        self.bar.inc_length(size);
        self.bar.set_position(base);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::{InMemoryTerm, TermLike};

    /// Writes log text into the in-memory terminal, line by line.
    #[derive(Clone)]
    struct TermWriter(InMemoryTerm);

    impl Write for TermWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let text = String::from_utf8_lossy(buf);
            for line in text.lines() {
                self.0.write_line(line)?;
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_log_line_goes_above_the_bar_and_the_bar_shows_rate_and_eta() {
        static TEST_BARS: Bars = Bars::new();
        let term = InMemoryTerm::new(10, 160);
        let bar = Bar::with_target(
            ProgressDrawTarget::term_like(Box::new(term.clone())),
            &TEST_BARS,
        );
        bar.planned(16);
        bar.batch_written("backup1", &SeriesKey::new("US.AAPL", "1m"), 5000);
        std::thread::sleep(std::time::Duration::from_millis(20));
        bar.reconciled(4);

        let writer = AboveBar::new(&TEST_BARS, {
            let t = TermWriter(term.clone());
            move || t.clone()
        });
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(backup = "backup1", "retrying a batch");
        });

        let screen = term.contents();
        let lines: Vec<&str> = screen.lines().collect();
        assert_eq!(lines.len(), 2, "{screen}");
        assert!(
            lines[0].contains("WARN") && lines[0].contains("retrying a batch"),
            "the log line is on its own line: {screen}"
        );
        assert!(!lines[0].contains("backup·series"), "{screen}");
        let bar_line = lines[1];
        assert!(bar_line.contains("4/16 backup·series"), "{screen}");
        assert!(bar_line.contains("5000 points · "), "{screen}");
        assert!(bar_line.contains(" points/s · ETA "), "{screen}");
        let rate: f64 = bar_line
            .split(" points · ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|r| r.parse().ok())
            .unwrap_or(0.0);
        assert!(rate > 0.0, "a rate: {screen}");

        bar.finish();
        assert!(TEST_BARS.current().is_none());
        assert_eq!(term.contents().trim(), lines[0].trim(), "the bar is gone");
    }
}
