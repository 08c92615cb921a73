//! A progress bar for long syncs, drawn on stderr only when it is a terminal.

use crate::model::SeriesKey;
use crate::sync::{Progress, UnitReport};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Draws (backup, series) units done and points copied.
pub struct Bar {
    bar: ProgressBar,
    points: AtomicU64,
}

impl Bar {
    /// A bar when stderr is a terminal, else `None`.
    pub fn new() -> Option<Arc<Bar>> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} series·backup  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Some(Arc::new(Bar {
            bar,
            points: AtomicU64::new(0),
        }))
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bar {
    fn planned(&self, units: usize) {
        self.bar.inc_length(units as u64);
    }

    fn batch_written(&self, _backup: &str, _series: &SeriesKey, records: u64) {
        let total = self.points.fetch_add(records, Ordering::Relaxed) + records;
        self.bar.set_message(format!("{total} points"));
    }

    fn unit_finished(&self, _report: &UnitReport) {
        self.bar.inc(1);
    }

    fn reconciled(&self, n: usize) {
        self.bar.inc(n as u64);
    }
}
