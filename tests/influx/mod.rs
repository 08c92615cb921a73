//! Tests against real InfluxDB servers: `influxd` processes started per test on loopback
//! (see `helper::influxd`), with syncs driven through the library as `dms sync` drives them.
//!
//! - [`checks`]: a misspelled database, a port that is not InfluxDB, a missing retention
//!   policy, points outside the schema, `config check --connect`;
//! - [`sync`]: initial and incremental syncs, template schemas, points sharing a timestamp;
//! - [`faults`]: a backup killed mid-sync, an unreachable primary, wrong credentials, a field
//!   type conflict;
//! - [`equal`]: backups that provably equal the primary — future-dated bars, dropped databases
//!   and restored data folders, revisions, deletes, unreachable backups, full-field digests;
//! - [`escaping`]: symbols with quotes, spaces, commas, `=`, unicode and injection attempts;
//! - [`import`]: `dms import` into an InfluxDB primary: whole batches, skipped rows, types;
//! - [`restore`]: `dms restore` of a dropped symbol, a dropped database, into a database that
//!   does not exist yet, kept and overwritten values, killed at random moments;
//! - [`support`]: a project folder with config for the servers, seeding and comparing.

mod checks;
mod equal;
mod escaping;
mod faults;
mod import;
mod restore;
pub(crate) mod support;
mod sync;
