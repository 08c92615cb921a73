//! `dms`, the data maintenance system: scheduled Lua tasks decide which market-data series to
//! maintain, and a native sync engine copies new data from the primary time-series store to
//! every backup — incremental by data-time checkpoints, batched, parallel, resumable, retried,
//! and recorded in an SQLite sync history.
//!
//! # Layout
//! - [`model`]: points, series keys, time ranges, batches.
//! - [`input`]: times and ages as people type them (CLI flags, API parameters).
//! - [`timefmt`]: times as people read them (CLI tables and messages, the status page).
//! - [`retry`]: the retry policy and loop every caller uses.
//! - [`sample`]: deterministic OHLCV data (shipped sample, tests, benchmark).
//! - [`schema`]: how (symbol, interval) maps onto measurements and tags.
//! - [`config`]: `sync.yaml` + `task.yaml`, raw serde mirror → validated [`config::Settings`].
//! - [`node`]: the node interface and its kinds (`sqlite`, `influxdb`).
//! - [`history`]: the sync history database (the only user of that file).
//! - [`sync`]: the engine: plan, fan-out units, checkpoints, retries.
//! - [`script`]: the Lua sandbox and the `dms` module (the only user of mlua).
//! - [`verify`]: window-by-window comparison of primary and backups.
//! - [`restore`]: a backup copied back into the primary or another node, compared exactly.
//! - [`scheduler`]: cron evaluation in a time zone (pure) and the scheduler state.
//! - [`daemon`]: `dms run`: scheduler, check loop, retention, API, metrics, alerts.
//! - [`http`]: the HTTP surface: the JSON API, the status page at `GET /`, the token rule.
//! - [`app`]: wires settings into nodes, history, engine and scripts; runs tasks.
//! - [`shutdown`]: the one shutdown handle: what stopped the process and what it left
//!   unfinished (reported in one line).
//! - [`cli`]: the command line (clap types and one function per subcommand).

pub mod app;
pub mod cli;
pub mod daemon;
pub mod http;
pub mod node;
pub mod scheduler;
pub mod script;
pub mod shutdown;

pub use dms_config as config;
pub use dms_core::{input, ledger, model, names, retry, sample, schema, timefmt};
pub use dms_engine::{import, restore, sync, verify};
pub use dms_history as history;
