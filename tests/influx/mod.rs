//! Tests against real InfluxDB servers.
