//! The pipe between dms and a task's script process: one JSON message per line, the parent
//! writing to the child's stdin and reading its stdout.

use super::RunInfo;
use super::host::{HttpCall, ImportCsvArgs, LogLevel, SyncArgs};
use crate::model::{Point, SeriesKey};
use crate::restore::RestoreArgs;
use crate::sync::ReconcileArgs;
use serde::{Deserialize, Serialize};

/// What the parent says.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToScript {
    /// Load the script (run its top level) for a run of this task.
    Start {
        /// `ctx` for every hook.
        info: RunInfo,
        /// Milliseconds the top level may take.
        budget_ms: u64,
    },
    /// Call a hook; `arg` is the second argument (`on_success`'s report, `on_failure`'s
    /// error).
    Call {
        /// Hook name.
        hook: String,
        /// Second argument, if any.
        arg: Option<serde_json::Value>,
        /// Milliseconds the hook may take.
        budget_ms: u64,
    },
    /// The answer to a request.
    Reply {
        /// The request's id.
        id: u64,
        /// Its result.
        result: Result<serde_json::Value, String>,
    },
}

/// What the script's process says.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromScript {
    /// The script loaded; these hooks are defined.
    Loaded {
        /// Hook names.
        hooks: Vec<String>,
    },
    /// The script did not load (syntax, top-level error, bad hook).
    LoadFailed {
        /// Lua's message.
        message: String,
    },
    /// A `dms` call that needs the parent.
    Request {
        /// Answered by a reply with the same id.
        id: u64,
        /// What to do.
        op: Op,
    },
    /// A log line.
    Log {
        /// Level.
        level: LogLevel,
        /// Script name.
        script: String,
        /// Text (control characters already escaped).
        msg: String,
    },
    /// The hook returned.
    Done {
        /// Its first return value.
        value: serde_json::Value,
    },
    /// The hook failed.
    Failed {
        /// Lua's message with line and traceback.
        message: String,
    },
}

/// A `dms` call served by the parent.
#[derive(Debug, Serialize, Deserialize)]
pub enum Op {
    /// `dms.sync{...}`.
    Sync(SyncArgs),
    /// `dms.reconcile{...}`.
    Reconcile(ReconcileArgs),
    /// `dms.restore{...}`.
    Restore(RestoreArgs),
    /// `dms.primary.series()`.
    PrimarySeries,
    /// `dms.primary.newest(...)`.
    PrimaryNewest(SeriesKey),
    /// `dms.primary.write(...)`.
    PrimaryWrite(Vec<Point>),
    /// `dms.primary.import_csv{...}`.
    ImportCsv(ImportCsvArgs),
    /// `dms.http.*`.
    Http(HttpCall),
}

/// Encodes a message as one line (JSON never contains a raw newline).
///
/// # Errors
/// serde's, when a value cannot be encoded (a float that is not finite).
pub fn line<T: Serialize>(msg: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut v = serde_json::to_vec(msg)?;
    v.push(b'\n');
    Ok(v)
}
