//! Real `influxd` processes for the tests.
