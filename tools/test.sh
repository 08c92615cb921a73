#!/usr/bin/env bash
# The test command (README "Run the tests"). Installs what the tests need when it is missing
# (Debian's influxdb package for the real InfluxDB servers the tests start), then runs the
# whole suite. Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v influxd >/dev/null 2>&1; then
  echo "influxd not found: installing Debian's influxdb package" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends influxdb
fi

cargo test --locked "$@"
