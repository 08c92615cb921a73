//! Test fixtures.

#![allow(dead_code)]

pub mod influxd;
