//! Test fixtures.

pub mod browser;
pub mod daemon;
pub mod faulty;
pub mod fixture;
pub mod influxd;
pub mod project;
pub mod prometheus;
pub mod proxy;
pub mod tmpfs;
