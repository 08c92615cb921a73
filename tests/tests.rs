//! Integration tests: one binary, one module per area. `helper/` holds fixtures that start real
//! things (a project folder with config, real SQLite stores, real `influxd` processes) and clean
//! up on drop.

mod api;
mod behind;
mod cli;
mod config_errors;
mod daemon;
mod deletes;
mod digests;
mod equal;
mod feed;
mod fuzz;
mod grafana;
mod helper;
mod history_faults;
mod hostile;
mod import;
mod influx;
mod interrupted;
mod load;
mod lua;
mod metrics;
mod ops;
mod reliability;
mod restore;
mod scope;
mod scrub;
mod shapes;
mod sqlite_node;
mod sync_sqlite;
mod terminal;
mod upgrade;
mod web;
