//! Bulk import of CSV rows into one node (`dms import`, `dms.primary.import_csv`), streamed:
//! a reader thread parses rows into batches of `batch_size` points while the node writes the
//! batch before, through the node's normal write path and the retry loop. At most a few
//! batches are held at once, whatever the file's size.
//!
//! A file's header names its columns: one holds the time (`time` unless told), the others are
//! fields, or tags when asked for. A column's type comes from the file: integers stay integers,
//! decimals are floats, `true`/`false` booleans, anything else strings — decided from the
//! first batch of rows (or forced with `floats`/`ints`), so one column keeps one type.
//!
//! A bad row stops the import at that row: the batches before it are written, the rows of the
//! batch it was in are not (so nothing past the last complete batch is written), and the
//! error names the file and line. With `skip_bad` such rows are counted and skipped instead.

use dms_core::model::{Batch, FieldValue, Name, Nanos, Point, SeriesKey, Tags, check_name};
use dms_core::node::Node;
use dms_core::retry::{RetryPolicy, with_retry};
use dms_core::schema::Schema;
use std::io::Read;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Bad rows kept as examples in a report.
const BAD_SAMPLES: usize = 10;

/// Batches parsed ahead of the one being written.
const AHEAD: usize = 2;

/// The unit of epoch times in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TimeUnit {
    /// Seconds.
    #[serde(rename = "s")]
    Seconds,
    /// Milliseconds.
    #[serde(rename = "ms")]
    Millis,
    /// Microseconds.
    #[serde(rename = "us", alias = "µs")]
    Micros,
    /// Nanoseconds.
    #[serde(rename = "ns")]
    Nanos,
}

impl TimeUnit {
    /// Nanoseconds in one unit.
    fn nanos(self) -> i64 {
        match self {
            TimeUnit::Seconds => 1_000_000_000,
            TimeUnit::Millis => 1_000_000,
            TimeUnit::Micros => 1_000,
            TimeUnit::Nanos => 1,
        }
    }

    /// The name as flags and reports spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeUnit::Seconds => "s",
            TimeUnit::Millis => "ms",
            TimeUnit::Micros => "us",
            TimeUnit::Nanos => "ns",
        }
    }

    /// The unit an epoch number of this size is in: seconds up to 10^11 (the year 5138),
    /// milliseconds up to 10^14, microseconds up to 10^17, else nanoseconds.
    fn detect(v: i64) -> TimeUnit {
        match v.unsigned_abs() {
            0..100_000_000_000 => TimeUnit::Seconds,
            100_000_000_000..100_000_000_000_000 => TimeUnit::Millis,
            100_000_000_000_000..100_000_000_000_000_000 => TimeUnit::Micros,
            _ => TimeUnit::Nanos,
        }
    }
}

impl std::str::FromStr for TimeUnit {
    type Err = String;

    fn from_str(s: &str) -> Result<TimeUnit, String> {
        match s {
            "s" => Ok(TimeUnit::Seconds),
            "ms" => Ok(TimeUnit::Millis),
            "us" | "µs" => Ok(TimeUnit::Micros),
            "ns" => Ok(TimeUnit::Nanos),
            other => Err(format!("unknown time unit {other:?}: use s, ms, us or ns")),
        }
    }
}

/// How the rows of a file become points; the same for `dms import` and
/// `dms.primary.import_csv`.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The column holding the time (default `time`).
    pub time_column: Option<String>,
    /// The unit of epoch numbers in the time column; detected from the first row when unset.
    pub time_unit: Option<TimeUnit>,
    /// Columns read as floats whatever they look like.
    pub floats: Vec<String>,
    /// Columns read as integers (a value that is not one is a bad row).
    pub ints: Vec<String>,
    /// Columns that are tags rather than fields.
    pub tags: Vec<String>,
    /// Rows before this time are passed over (not bad, not written).
    pub since: Option<Nanos>,
    /// Count and skip bad rows instead of stopping at the first.
    pub skip_bad: bool,
}

impl ImportOptions {
    fn time_column(&self) -> &str {
        self.time_column.as_deref().unwrap_or("time")
    }
}

/// One bad row: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BadRow {
    /// Line in the file (the header is line 1).
    pub line: u64,
    /// What is wrong with it.
    pub error: String,
}

/// What importing one file did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileReport {
    /// The file, as given.
    pub file: String,
    /// Data rows read (the header not counted).
    pub rows: u64,
    /// Points written.
    pub written: u64,
    /// Bad rows skipped (`skip_bad`).
    pub skipped_bad: u64,
    /// Rows before `since`, passed over.
    pub skipped_before_since: u64,
    /// The first bad rows skipped, as examples.
    pub bad_rows: Vec<BadRow>,
    /// How the time column was read: `s`, `ms`, `us`, `ns` (epoch numbers) or `text`.
    pub time_unit: Option<String>,
    /// Oldest time written (ns).
    pub first: Option<Nanos>,
    /// Newest time written (ns).
    pub last: Option<Nanos>,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file cannot be opened or read, or is not CSV.
    #[error("{file}: {cause}")]
    Read {
        /// The file.
        file: String,
        /// What failed.
        cause: String,
    },
    /// No column holds the time.
    #[error(
        "{file}: no column {column:?} holds the time (the header has: {found}); name the time column (--time-column, time_column=)"
    )]
    NoTimeColumn {
        /// The file.
        file: String,
        /// The column looked for.
        column: String,
        /// The header's columns.
        found: String,
    },
    /// A column named in the options or the header cannot be used as asked.
    #[error("{file}: column {column:?}: {why}")]
    Column {
        /// The file.
        file: String,
        /// The column.
        column: String,
        /// Why.
        why: String,
    },
    /// A row that cannot be read, without `skip_bad`.
    #[error(
        "{file}:{line}: {error}; the {written} rows before it were written in whole batches, nothing from its batch on: fix the row or skip bad rows (--skip-bad, skip_bad=true), and import again (rows already written are rewritten unchanged)"
    )]
    BadRow {
        /// The file.
        file: String,
        /// Its line.
        line: u64,
        /// What is wrong.
        error: String,
        /// Points written before it.
        written: u64,
    },
    /// The node refused a batch, after retries.
    #[error(
        "{file}: writing the rows of lines {first_line}–{last_line} to {node} failed: {cause}; the {written} rows before them were written"
    )]
    Write {
        /// The file.
        file: String,
        /// The node.
        node: String,
        /// First line of the batch.
        first_line: u64,
        /// Last line of the batch.
        last_line: u64,
        /// Points written before it.
        written: u64,
        /// The node's error.
        cause: String,
    },
    /// Shutdown stopped it between batches.
    #[error("{file}: interrupted: the {written} rows written before the stop stay")]
    Interrupted {
        /// The file.
        file: String,
        /// Points written.
        written: u64,
    },
}

impl ImportError {
    /// True for what must be fixed in the file or the options (not a node's failure).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ImportError::Read { .. }
                | ImportError::NoTimeColumn { .. }
                | ImportError::Column { .. }
                | ImportError::BadRow { .. }
        )
    }

    /// Points written before the import stopped.
    pub fn written(&self) -> u64 {
        match self {
            ImportError::BadRow { written, .. }
            | ImportError::Write { written, .. }
            | ImportError::Interrupted { written, .. } => *written,
            _ => 0,
        }
    }
}

/// Hears of an import's progress (the CLI's bar).
pub trait ImportProgress: Send + Sync {
    /// A batch of `rows` points was written; the file has been read up to byte `offset`.
    fn written(&self, rows: u64, offset: u64);
}

/// Imports files into one node, one series.
pub struct Importer {
    /// The node written to.
    pub node: Arc<dyn Node>,
    /// How the series maps onto measurement and tags.
    pub schema: Schema,
    /// The series the rows belong to.
    pub series: SeriesKey,
    /// How rows become points.
    pub options: ImportOptions,
    /// Points per write.
    pub batch_size: usize,
    /// Retries of a failed write.
    pub retry: RetryPolicy,
    /// Stops the import between batches.
    pub cancel: CancellationToken,
    /// Progress sink.
    pub progress: Option<Arc<dyn ImportProgress>>,
}

/// A batch parsed and ready to write.
struct Chunk {
    points: Vec<Point>,
    first_line: u64,
    last_line: u64,
    offset: u64,
}

/// Why the reader thread stopped early.
enum Stop {
    /// A bad row (without `skip_bad`).
    Bad(BadRow),
    /// Any error that is not about one row.
    Fatal(ImportError),
    /// The writer went away (it failed or was interrupted): nothing to report from here.
    Closed,
}

/// What the reader thread counted.
#[derive(Default)]
struct Parsed {
    rows: u64,
    skipped_bad: u64,
    skipped_before_since: u64,
    bad_rows: Vec<BadRow>,
    time_unit: Option<String>,
}

impl Importer {
    /// Imports one file, read from `reader` and named `file` in reports and errors.
    ///
    /// # Errors
    /// [`ImportError`]: the file or a row cannot be read, the node refused a batch after
    /// retries, or shutdown stopped it; [`ImportError::written`] says how far it got.
    pub async fn file(
        &self,
        file: &str,
        reader: Box<dyn Read + Send>,
    ) -> Result<FileReport, ImportError> {
        check_names(file, &self.series)?;
        let (measurement, base_tags) = self.schema.identity(&self.series);
        let parser = Parser {
            file: file.to_string(),
            measurement,
            base_tags,
            schema_tags: self
                .schema
                .identity(&self.series)
                .1
                .iter()
                .map(|(k, _)| k.to_string())
                .collect(),
            options: self.options.clone(),
            batch_size: self.batch_size.max(1),
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(AHEAD);
        let reading = tokio::task::spawn_blocking(move || parser.run(reader, tx));

        let mut report = FileReport {
            file: file.to_string(),
            ..FileReport::default()
        };
        let mut stopped: Option<ImportError> = None;
        let what = format!("importing {file} into {}", self.node.name());
        while let Some(chunk) = rx.recv().await {
            if self.cancel.is_cancelled() {
                stopped = Some(ImportError::Interrupted {
                    file: file.to_string(),
                    written: report.written,
                });
                break;
            }
            let n = chunk.points.len() as u64;
            let (lo, hi) = (
                chunk.points.first().map(|p| p.time),
                chunk.points.last().map(|p| p.time),
            );
            let batch = Arc::new(Batch::new(chunk.points));
            let node = &self.node;
            let result = with_retry(&self.retry, &self.cancel, &what, || {
                node.write(batch.clone())
            })
            .await;
            if let Err(gave_up) = result {
                stopped = Some(if gave_up.cancelled {
                    ImportError::Interrupted {
                        file: file.to_string(),
                        written: report.written,
                    }
                } else {
                    ImportError::Write {
                        file: file.to_string(),
                        node: self.node.name().to_string(),
                        first_line: chunk.first_line,
                        last_line: chunk.last_line,
                        written: report.written,
                        cause: gave_up.to_string(),
                    }
                });
                break;
            }
            report.written += n;
            report.first = min_opt(report.first, lo);
            report.last = report.last.max(hi);
            if let Some(p) = &self.progress {
                p.written(n, chunk.offset);
            }
        }
        // The reader stops at its next batch once nobody receives.
        drop(rx);
        let parsed = reading.await.map_err(|e| ImportError::Read {
            file: file.to_string(),
            cause: format!("the reader thread failed: {e}"),
        })?;
        if let Some(e) = stopped {
            return Err(e);
        }
        let parsed = match parsed {
            Ok(p) => p,
            Err(Stop::Bad(bad)) => {
                return Err(ImportError::BadRow {
                    file: file.to_string(),
                    line: bad.line,
                    error: bad.error,
                    written: report.written,
                });
            }
            Err(Stop::Fatal(e)) => return Err(e),
            Err(Stop::Closed) => {
                return Err(ImportError::Interrupted {
                    file: file.to_string(),
                    written: report.written,
                });
            }
        };
        report.rows = parsed.rows;
        report.skipped_bad = parsed.skipped_bad;
        report.skipped_before_since = parsed.skipped_before_since;
        report.bad_rows = parsed.bad_rows;
        report.time_unit = parsed.time_unit;
        Ok(report)
    }
}

fn min_opt(a: Option<Nanos>, b: Option<Nanos>) -> Option<Nanos> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn check_names(file: &str, series: &SeriesKey) -> Result<(), ImportError> {
    for (what, name) in [("symbol", &series.symbol), ("interval", &series.interval)] {
        check_name(what, name).map_err(|e| ImportError::Column {
            file: file.to_string(),
            column: what.to_string(),
            why: e.to_string(),
        })?;
    }
    Ok(())
}

/// The type of a field column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Not known yet: no value seen.
    Unknown,
    Int,
    Float,
    Bool,
    Str,
}

impl Kind {
    /// The narrowest kind that holds `v` (non-empty).
    fn of(v: &str) -> Kind {
        if v.parse::<i64>().is_ok() {
            Kind::Int
        } else if v.parse::<f64>().is_ok_and(f64::is_finite) {
            Kind::Float
        } else if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") {
            Kind::Bool
        } else {
            Kind::Str
        }
    }

    /// The kind that holds the values of both.
    fn join(self, other: Kind) -> Kind {
        match (self, other) {
            (Kind::Unknown, k) | (k, Kind::Unknown) => k,
            (a, b) if a == b => a,
            (Kind::Int, Kind::Float) | (Kind::Float, Kind::Int) => Kind::Float,
            _ => Kind::Str,
        }
    }
}

/// A field column.
struct FieldCol {
    index: usize,
    name: Name,
    kind: Kind,
    /// Forced by the options: never changed by what the rows hold.
    forced: bool,
}

/// The reader thread's side: rows to batches.
struct Parser {
    file: String,
    measurement: Name,
    base_tags: Tags,
    schema_tags: Vec<String>,
    options: ImportOptions,
    batch_size: usize,
}

/// Columns of a file, from its header and the options.
struct Layout {
    time: usize,
    tags: Vec<(usize, Name)>,
    fields: Vec<FieldCol>,
    width: usize,
}

impl Parser {
    fn column_error(&self, column: &str, why: impl Into<String>) -> Stop {
        Stop::Fatal(ImportError::Column {
            file: self.file.clone(),
            column: column.to_string(),
            why: why.into(),
        })
    }

    fn layout(&self, header: &[String]) -> Result<Layout, Stop> {
        let found = header.join(", ");
        let index = |name: &str| header.iter().position(|h| h == name);
        for (i, h) in header.iter().enumerate() {
            if header[..i].contains(h) {
                return Err(self.column_error(h, "appears twice in the header"));
            }
            check_name("column name", h).map_err(|e| self.column_error(h, e.to_string()))?;
        }
        let time_name = self.options.time_column();
        let time = index(time_name).ok_or_else(|| {
            Stop::Fatal(ImportError::NoTimeColumn {
                file: self.file.clone(),
                column: time_name.to_string(),
                found: found.clone(),
            })
        })?;
        let named = |flag: &str, cols: &[String]| -> Result<Vec<usize>, Stop> {
            cols.iter()
                .map(|c| {
                    if c == time_name {
                        return Err(self.column_error(
                            c,
                            format!("is the time column; {flag} cannot name it"),
                        ));
                    }
                    index(c).ok_or_else(|| {
                        self.column_error(
                            c,
                            format!("named by {flag}, but the header has only: {found}"),
                        )
                    })
                })
                .collect()
        };
        for c in &self.options.tags {
            if self.schema_tags.contains(c) {
                return Err(self.column_error(
                    c,
                    "is a tag the schema sets from --symbol/--interval; it cannot come from the file",
                ));
            }
            if self.options.floats.contains(c) || self.options.ints.contains(c) {
                return Err(self.column_error(c, "cannot be both a tag and a field"));
            }
        }
        if let Some(c) = self
            .options
            .floats
            .iter()
            .find(|c| self.options.ints.contains(c))
        {
            return Err(self.column_error(c, "cannot be both --float and --int"));
        }
        let tag_cols = named("--tag", &self.options.tags)?;
        let floats = named("--float", &self.options.floats)?;
        let ints = named("--int", &self.options.ints)?;
        let mut tags: Vec<(usize, Name)> = tag_cols
            .iter()
            .map(|&i| (i, Name::from(header[i].as_str())))
            .collect();
        tags.sort_by(|a, b| a.1.cmp(&b.1));
        tags.dedup_by(|a, b| a.0 == b.0);
        let mut fields: Vec<FieldCol> = header
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != time && !tag_cols.contains(i))
            .map(|(i, h)| {
                let (kind, forced) = if floats.contains(&i) {
                    (Kind::Float, true)
                } else if ints.contains(&i) {
                    (Kind::Int, true)
                } else {
                    (Kind::Unknown, false)
                };
                FieldCol {
                    index: i,
                    name: Name::from(h.as_str()),
                    kind,
                    forced,
                }
            })
            .collect();
        if fields.is_empty() {
            return Err(self.column_error(
                time_name,
                format!("is the only column that is not a tag: the file has no field to import (header: {found})"),
            ));
        }
        fields.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Layout {
            time,
            tags,
            fields,
            width: header.len(),
        })
    }

    /// Reads every row, sending full batches to `tx`.
    fn run(
        self,
        reader: Box<dyn Read + Send>,
        tx: tokio::sync::mpsc::Sender<Chunk>,
    ) -> Result<Parsed, Stop> {
        let read_error = |e: &dyn std::fmt::Display| {
            Stop::Fatal(ImportError::Read {
                file: self.file.clone(),
                cause: e.to_string(),
            })
        };
        let mut rdr = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(true)
            .buffer_capacity(256 * 1024)
            .from_reader(reader);
        let header: Vec<String> = match rdr.headers() {
            Ok(h) if h.is_empty() => return Err(read_error(&"the file is empty: no header")),
            Ok(h) => h
                .iter()
                .map(|s| s.trim_start_matches('\u{feff}').to_string())
                .collect(),
            Err(e) => return Err(read_error(&e)),
        };
        let mut layout = self.layout(&header)?;
        let mut rows = Rows {
            parser: &self,
            time_unit: self.options.time_unit,
            text_times: false,
            last_tags: None,
            parsed: Parsed::default(),
        };
        let mut record = csv::ByteRecord::new();
        // The first batch's rows decide the types of the columns they fill.
        let mut first: Vec<(csv::ByteRecord, u64)> = Vec::new();
        let mut deciding = true;
        let mut batch = Vec::with_capacity(self.batch_size);
        let mut first_line = 0u64;
        let mut last_line = 0u64;
        loop {
            let more = match rdr.read_byte_record(&mut record) {
                Ok(more) => more,
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    match e.kind() {
                        csv::ErrorKind::Io(_) => return Err(read_error(&e)),
                        _ => {
                            rows.parsed.rows += 1;
                            rows.bad(line, e.to_string())?;
                            continue;
                        }
                    }
                }
            };
            if deciding && (!more || first.len() >= self.batch_size) {
                deciding = false;
                decide_kinds(&mut layout, &first);
                for (rec, line) in std::mem::take(&mut first) {
                    if let Some(p) = rows.point(&mut layout, &rec, line)? {
                        if batch.is_empty() {
                            first_line = line;
                        }
                        last_line = line;
                        batch.push(p);
                    }
                }
                if batch.len() >= self.batch_size {
                    let offset = if more {
                        record.position().map_or(0, |p| p.byte())
                    } else {
                        rdr.position().byte()
                    };
                    send(
                        &tx,
                        &mut batch,
                        first_line,
                        last_line,
                        offset,
                        self.batch_size,
                    )?;
                }
            }
            if !more {
                break;
            }
            let line = record.position().map_or(0, |p| p.line());
            if deciding {
                first.push((record.clone(), line));
                continue;
            }
            if let Some(p) = rows.point(&mut layout, &record, line)? {
                if batch.is_empty() {
                    first_line = line;
                }
                last_line = line;
                batch.push(p);
            }
            if batch.len() >= self.batch_size {
                let offset = record.position().map_or(0, |p| p.byte());
                send(
                    &tx,
                    &mut batch,
                    first_line,
                    last_line,
                    offset,
                    self.batch_size,
                )?;
            }
        }
        if !batch.is_empty() {
            let offset = rdr.position().byte();
            send(&tx, &mut batch, first_line, last_line, offset, 0)?;
        }
        let mut parsed = rows.parsed;
        parsed.time_unit = rows
            .time_unit
            .map(|u| u.as_str().to_string())
            .or(rows.text_times.then(|| "text".to_string()));
        Ok(parsed)
    }
}

/// Sends a batch (sorted by time, as a [`Batch`] is) to the writer.
fn send(
    tx: &tokio::sync::mpsc::Sender<Chunk>,
    batch: &mut Vec<Point>,
    first_line: u64,
    last_line: u64,
    offset: u64,
    capacity: usize,
) -> Result<(), Stop> {
    let mut points = std::mem::replace(batch, Vec::with_capacity(capacity));
    // Stable: rows at one timestamp keep the file's order, so the later row wins.
    points.sort_by_key(|p| p.time);
    tx.blocking_send(Chunk {
        points,
        first_line,
        last_line,
        offset,
    })
    .map_err(|_| Stop::Closed)
}

/// The kinds of the columns not forced, from the values of the first rows.
fn decide_kinds(layout: &mut Layout, rows: &[(csv::ByteRecord, u64)]) {
    for col in layout.fields.iter_mut().filter(|c| !c.forced) {
        let mut kind = Kind::Unknown;
        for (rec, _) in rows {
            if let Some(v) = rec.get(col.index).and_then(|b| std::str::from_utf8(b).ok())
                && !v.is_empty()
            {
                kind = kind.join(Kind::of(v));
                if kind == Kind::Str {
                    break;
                }
            }
        }
        col.kind = kind;
    }
}

/// Row-by-row state of one file.
struct Rows<'a> {
    parser: &'a Parser,
    time_unit: Option<TimeUnit>,
    text_times: bool,
    last_tags: Option<(Vec<Name>, Tags)>,
    parsed: Parsed,
}

impl Rows<'_> {
    /// Counts a bad row, or stops there without `skip_bad`.
    fn bad(&mut self, line: u64, error: String) -> Result<(), Stop> {
        let bad = BadRow { line, error };
        if !self.parser.options.skip_bad {
            return Err(Stop::Bad(bad));
        }
        self.parsed.skipped_bad += 1;
        if self.parsed.bad_rows.len() < BAD_SAMPLES {
            self.parsed.bad_rows.push(bad);
        }
        Ok(())
    }

    /// The point of one row; `None` for a row passed over (before `since`, or bad and
    /// skipped).
    fn point(
        &mut self,
        layout: &mut Layout,
        rec: &csv::ByteRecord,
        line: u64,
    ) -> Result<Option<Point>, Stop> {
        self.parsed.rows += 1;
        match self.try_point(layout, rec) {
            Ok(p) => Ok(p),
            Err(why) => {
                self.bad(line, why)?;
                Ok(None)
            }
        }
    }

    fn try_point(
        &mut self,
        layout: &mut Layout,
        rec: &csv::ByteRecord,
    ) -> Result<Option<Point>, String> {
        if rec.len() != layout.width {
            return Err(format!(
                "{} values where the header has {} columns",
                rec.len(),
                layout.width
            ));
        }
        let text = |i: usize| -> Result<&str, String> {
            std::str::from_utf8(rec.get(i).unwrap_or_default())
                .map_err(|_| "a value is not UTF-8 text".to_string())
        };
        let time = self.time(text(layout.time)?)?;
        if self.parser.options.since.is_some_and(|s| time < s) {
            self.parsed.skipped_before_since += 1;
            return Ok(None);
        }
        let tags = if layout.tags.is_empty() {
            self.parser.base_tags.clone()
        } else {
            let mut values = Vec::with_capacity(layout.tags.len());
            for (i, name) in &layout.tags {
                let v = text(*i)?;
                if !v.is_empty() {
                    check_name("tag value", v).map_err(|e| format!("column {name:?}: {e}"))?;
                }
                values.push(Name::from(v));
            }
            self.tags(&layout.tags, values)
        };
        let mut fields = Vec::with_capacity(layout.fields.len());
        for col in &mut layout.fields {
            let v = text(col.index)?;
            if v.is_empty() {
                continue;
            }
            if col.kind == Kind::Unknown {
                col.kind = Kind::of(v);
            }
            let value = field(col, v)?;
            fields.push((col.name.clone(), value));
        }
        if fields.is_empty() {
            return Err("no field has a value".to_string());
        }
        Ok(Some(Point {
            measurement: self.parser.measurement.clone(),
            tags,
            fields,
            time,
        }))
    }

    /// The schema's tags plus the tag columns' values (empty ones left out), shared with the
    /// row before when they are the same.
    fn tags(&mut self, cols: &[(usize, Name)], values: Vec<Name>) -> Tags {
        if let Some((last, tags)) = &self.last_tags
            && *last == values
        {
            return tags.clone();
        }
        let mut all: Vec<(Name, Name)> = self.parser.base_tags.to_vec();
        for ((_, k), v) in cols.iter().zip(&values) {
            if !v.is_empty() {
                all.push((k.clone(), v.clone()));
            }
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let tags: Tags = all.into();
        self.last_tags = Some((values, tags.clone()));
        tags
    }

    /// The time of a row: an epoch number (unit given, or detected from the first row), RFC
    /// 3339, a date and time without zone (UTC), a date, or `YYYYMMDD`.
    fn time(&mut self, v: &str) -> Result<Nanos, String> {
        if v.is_empty() {
            return Err("the time is empty".to_string());
        }
        let numeric = v
            .strip_prefix('-')
            .unwrap_or(v)
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.');
        if numeric {
            if self.time_unit.is_none()
                && !self.text_times
                && v.len() == 8
                && !v.contains('.')
                && let Some(t) = compact_date(v)
            {
                self.text_times = true;
                return Ok(t);
            }
            if self.text_times && self.time_unit.is_none() {
                return compact_date(v).ok_or_else(|| format!("cannot read the time {v:?}"));
            }
            let int: i64 = v.split('.').next().unwrap_or_default().parse().unwrap_or(0);
            let unit = *self.time_unit.get_or_insert_with(|| TimeUnit::detect(int));
            return epoch(v, unit).ok_or_else(|| {
                format!(
                    "cannot read the time {v:?} as epoch {} (or it is out of range)",
                    unit.as_str()
                )
            });
        }
        self.text_times = true;
        text_time(v).ok_or_else(|| {
            format!(
                "cannot read the time {v:?}: use RFC 3339 (2024-01-31T14:30:00Z), a date and time in UTC (2024-01-31 14:30:00), a date (2024-01-31) or an epoch number (--time-unit s|ms|us|ns)"
            )
        })
    }
}

/// The value of a field column.
fn field(col: &FieldCol, v: &str) -> Result<FieldValue, String> {
    let name = &col.name;
    match col.kind {
        Kind::Int => v.parse::<i64>().map(FieldValue::Integer).map_err(|_| {
            if col.forced {
                format!("column {name:?} holds {v:?}, not an integer (--int)")
            } else {
                format!(
                    "column {name:?} holds {v:?}, but its first rows made it an integer column; read it as floats with --float {name} (float=)"
                )
            }
        }),
        Kind::Float => match v.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(FieldValue::Float(f)),
            _ => Err(format!("column {name:?} holds {v:?}, not a finite number")),
        },
        Kind::Bool => {
            if v.eq_ignore_ascii_case("true") {
                Ok(FieldValue::Boolean(true))
            } else if v.eq_ignore_ascii_case("false") {
                Ok(FieldValue::Boolean(false))
            } else {
                Err(format!(
                    "column {name:?} holds {v:?}, but its first rows made it a true/false column"
                ))
            }
        }
        Kind::Str | Kind::Unknown => Ok(FieldValue::String(v.to_string())),
    }
}

/// `v` (digits, an optional sign and one optional decimal point) in `unit` as nanoseconds.
fn epoch(v: &str, unit: TimeUnit) -> Option<Nanos> {
    let (neg, digits) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, f),
        None => (digits, ""),
    };
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return None;
    }
    let scale = unit.nanos();
    let whole: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut n = whole.checked_mul(scale)?;
    // The fraction's digits below one nanosecond are dropped.
    let mut place = scale / 10;
    for b in frac.bytes() {
        if place == 0 {
            break;
        }
        n = n.checked_add(i64::from(b - b'0') * place)?;
        place /= 10;
    }
    Some(if neg { -n } else { n })
}

/// `YYYYMMDD` as midnight UTC, for years 1900–2200.
fn compact_date(v: &str) -> Option<Nanos> {
    let d = chrono::NaiveDate::parse_from_str(v, "%Y%m%d").ok()?;
    if !(1900..=2200).contains(&chrono::Datelike::year(&d)) {
        return None;
    }
    d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_nanos_opt()
}

/// RFC 3339 (`T` or a space between date and time), a date and time without zone (UTC), or
/// a date (midnight UTC).
fn text_time(v: &str) -> Option<Nanos> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return t.timestamp_nanos_opt();
    }
    if v.len() > 10 && v.as_bytes()[10] == b' ' {
        let t = format!("{}T{}", &v[..10], &v[11..]);
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&t) {
            return t.timestamp_nanos_opt();
        }
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(v, f) {
            return t.and_utc().timestamp_nanos_opt();
        }
    }
    for f in ["%Y-%m-%d", "%Y/%m/%d"] {
        if let Ok(d) = chrono::NaiveDate::parse_from_str(v, f) {
            return d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_nanos_opt();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_numbers_are_read_in_their_unit_with_fractions() {
        assert_eq!(
            epoch("1700000000", TimeUnit::Seconds),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            epoch("1700000000.25", TimeUnit::Seconds),
            Some(1_700_000_000_250_000_000)
        );
        assert_eq!(
            epoch("1700000000123", TimeUnit::Millis),
            Some(1_700_000_000_123_000_000)
        );
        assert_eq!(epoch("-1.5", TimeUnit::Seconds), Some(-1_500_000_000));
        assert_eq!(epoch("99999999999999999999", TimeUnit::Seconds), None);
        assert_eq!(epoch("1.2.3", TimeUnit::Seconds), None);
        assert_eq!(TimeUnit::detect(1_700_000_000), TimeUnit::Seconds);
        assert_eq!(TimeUnit::detect(1_700_000_000_000), TimeUnit::Millis);
        assert_eq!(TimeUnit::detect(1_700_000_000_000_000), TimeUnit::Micros);
        assert_eq!(TimeUnit::detect(1_700_000_000_000_000_000), TimeUnit::Nanos);
    }

    #[test]
    fn text_times_take_rfc3339_naive_utc_and_dates() {
        let t = 1_706_711_400_000_000_000; // 2024-01-31T14:30:00Z
        assert_eq!(text_time("2024-01-31T14:30:00Z"), Some(t));
        assert_eq!(text_time("2024-01-31 14:30:00Z"), Some(t));
        assert_eq!(text_time("2024-01-31T09:30:00-05:00"), Some(t));
        assert_eq!(text_time("2024-01-31 14:30:00"), Some(t));
        assert_eq!(text_time("2024-01-31 14:30"), Some(t));
        assert_eq!(text_time("2024-01-31T14:30:00.5"), Some(t + 500_000_000));
        assert_eq!(text_time("2024-01-31"), Some(1_706_659_200_000_000_000));
        assert_eq!(compact_date("20240131"), Some(1_706_659_200_000_000_000));
        assert_eq!(text_time("31/01/2024"), None);
    }

    #[test]
    fn column_kinds_widen_to_hold_every_value() {
        assert_eq!(Kind::of("42"), Kind::Int);
        assert_eq!(Kind::of("42.5"), Kind::Float);
        assert_eq!(Kind::of("1e3"), Kind::Float);
        assert_eq!(Kind::of("NaN"), Kind::Str);
        assert_eq!(Kind::of("TRUE"), Kind::Bool);
        assert_eq!(Kind::Int.join(Kind::Float), Kind::Float);
        assert_eq!(Kind::Int.join(Kind::Bool), Kind::Str);
        assert_eq!(Kind::Unknown.join(Kind::Int), Kind::Int);
    }
}
