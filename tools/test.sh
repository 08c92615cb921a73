#!/usr/bin/env bash
# The test command (README "Two commands"). Installs what the tests need when it is missing —
# Debian's influxdb package for the real InfluxDB servers the tests start, chromium with
# chromium-driver for the status page's browser tests, and prometheus (promtool and the server)
# for the /metrics and dashboard tests, and iproute2's ss for the example servers script — then
# runs the whole suite (every crate of the workspace). A test whose server or tool is missing
# is listed by name as skipped at the end (under CI=true it fails instead). Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
updated=""
apt_install() {
  if [ -z "$updated" ]; then
    $SUDO apt-get update -q
    updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "$@"
}

if ! command -v influxd >/dev/null 2>&1; then
  echo "influxd not found: installing Debian's influxdb package" >&2
  apt_install --no-install-recommends influxdb
fi

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "chromium or chromedriver not found: installing Debian's chromium and chromium-driver" >&2
  apt_install chromium chromium-driver
fi

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  echo "promtool or prometheus not found: installing Debian's prometheus package" >&2
  apt_install --no-install-recommends prometheus
fi

if ! command -v ss >/dev/null 2>&1; then
  echo "ss not found (config/examples/influxdb/servers.sh and its test use it): installing iproute2" >&2
  apt_install --no-install-recommends iproute2
fi

for pair in groff:groff man:man-db systemd-analyze:systemd; do
  if ! command -v "${pair%%:*}" >/dev/null 2>&1; then
    echo "${pair%%:*} not found (the man page and service unit tests use it): installing ${pair##*:}" >&2
    apt_install --no-install-recommends "${pair##*:}"
  fi
done

# A test that cannot run (its server or tool is missing) writes one line here and says
# SKIPPED in the output; under CI=true it fails instead. The list is repeated at the end.
skips=target/test-skips.txt
rm -f "$skips"
status=0
cargo test --workspace --locked "$@" || status=$?
if [ -s "$skips" ]; then
  echo >&2
  echo "$(wc -l <"$skips") test(s) did not run:" >&2
  cat "$skips" >&2
fi
exit "$status"
