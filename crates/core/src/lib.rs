//! `dms-core`: what every layer of dms shares and nothing more — the data model, how series map
//! onto a store, retries, times, the [`node::Node`] contract with its digests, and the
//! [`ledger::Ledger`] contract through which the engine records its progress.
//!
//! # Layout
//! - [`model`]: points, series keys, time ranges, batches.
//! - [`names`]: name filters checked against existing series, with "did you mean".
//! - [`schema`]: how (symbol, interval) maps onto measurements and tags.
//! - [`retry`]: the retry policy and loop every caller uses.
//! - [`de`]: serde helpers for option tables (one name or a list, a time in either form).
//! - [`input`]: times and ages as people type them (CLI flags, API parameters).
//! - [`text`]: untrusted text capped and escaped before it is stored, logged or shown.
//! - [`timefmt`]: times as people read them (CLI tables and messages, the status page).
//! - [`sample`]: deterministic OHLCV data (shipped sample, tests, benchmark).
//! - [`node`]: the node interface and the digests every kind computes alike.
//! - [`ledger`]: what the engine records (units, batches, checkpoints, events) and the trait
//!   a history implements to keep it.

pub mod de;
pub mod input;
pub mod ledger;
pub mod model;
pub mod names;
pub mod node;
pub mod retry;
pub mod sample;
pub mod schema;
pub mod text;
pub mod timefmt;
