//! Test fixtures.

#![allow(dead_code)]

pub mod browser;
pub mod daemon;
pub mod faulty;
pub mod influxd;
pub mod project;
pub mod proxy;
pub mod tmpfs;
