#!/usr/bin/env bash
# Starts (or stops) three throwaway InfluxDB 1.x servers for this example: the primary on
# 127.0.0.1:8086, backup1 on :8087 and backup2 on :8089, with their data under
# run/influxdb/<node>/ in the repository. Needs `influxd` (Debian: apt-get install influxdb).
#
#   config/examples/influxdb/servers.sh start
#   dms --config config/examples/influxdb task run daily_update_us
#   config/examples/influxdb/servers.sh stop
set -euo pipefail
cd "$(dirname "$0")/../../.."
base="$PWD/run/influxdb"

start() {
  local name=$1 http=$2 rpc=$3 dir="$base/$1"
  mkdir -p "$dir"
  if [ -f "$dir/influxd.pid" ] && kill -0 "$(cat "$dir/influxd.pid")" 2>/dev/null; then
    echo "$name already running on 127.0.0.1:$http"; return
  fi
  cat > "$dir/influxdb.conf" <<CONF
reporting-enabled = false
bind-address = "127.0.0.1:$rpc"
[meta]
  dir = "$dir/meta"
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:$http"
  log-enabled = false
[logging]
  level = "warn"
  suppress-logo = true
CONF
  influxd run -config "$dir/influxdb.conf" >>"$dir/influxd.log" 2>&1 &
  echo $! > "$dir/influxd.pid"
  for _ in $(seq 1 100); do
    if curl -sf -o /dev/null "http://127.0.0.1:$http/ping"; then
      echo "$name running on 127.0.0.1:$http (data in $dir)"; return
    fi
    sleep 0.1
  done
  echo "$name did not start; see $dir/influxd.log" >&2; exit 1
}

stop() {
  local pidfile="$base/$1/influxd.pid"
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
    echo "$1 stopped"
  fi
}

case "${1:-}" in
  start) start primary 8086 8186; start backup1 8087 8187; start backup2 8089 8189 ;;
  stop) stop primary; stop backup1; stop backup2 ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
