//! `dms-engine`: the sync engine and the comparisons built on it. It depends on the contracts
//! of `dms-core` (the [`dms_core::node::Node`] trait, the [`dms_core::ledger::Ledger`] trait),
//! never on a node kind or on the history database, and knows nothing of Lua, cron or HTTP.
//!
//! # Layout
//! - [`sync`]: plan, fan-out units, checkpoints, retries, the circuit breaker, reconciliation.
//! - [`verify`]: window-by-window comparison of primary and backups.
//! - [`import`]: CSV files streamed into one node in batches.
//! - [`restore`]: a backup copied back into the primary or another node, compared exactly.

pub mod import;
pub mod restore;
pub mod sync;
pub mod verify;
