#!/usr/bin/env bash
# Starts (or stops) three throwaway InfluxDB 1.x servers for this example, with their data under
# run/influxdb/<node>/ in the repository:
#
#   node     HTTP API (sync.yaml)   RPC bind-address (backup/restore service)
#   primary  127.0.0.1:8086         127.0.0.1:8186
#   backup1  127.0.0.1:8087         127.0.0.1:8187
#   backup2  127.0.0.1:8089         127.0.0.1:8189
#
# Needs `influxd` (Debian: apt-get install influxdb), `curl` and `ss` (iproute2).
#
#   config/examples/influxdb/servers.sh start
#   dms --config config/examples/influxdb task run daily_update_us
#   config/examples/influxdb/servers.sh stop
#
# `start` reports a server running only when the influxd it started (its pid file's process)
# holds the port and answers; a port some other process holds is an error naming that process.
set -euo pipefail
cd "$(dirname "$0")/../../.."
base="$PWD/run/influxdb"

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "$0: $1 not found: $2" >&2; exit 1; }
}

# The PIDs listening on TCP port $1 (any address), one per line.
listeners() {
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}

port_in_use() {
  [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}

is_influxd() {
  [ "$(cat "/proc/$1/comm" 2>/dev/null)" = influxd ]
}

# Whether pid $1 is an influxd that listens on port $2.
serves() {
  is_influxd "$1" && listeners "$2" | grep -qx "$1"
}

# "pid 123 (nginx)" for each process listening on port $1, or "a process dms cannot see".
holders() {
  local pids p out=""
  pids=$(listeners "$1")
  for p in $pids; do
    out="$out${out:+, }pid $p ($(cat "/proc/$p/comm" 2>/dev/null || echo '?'))"
  done
  echo "${out:-a process this user cannot see}"
}

start() {
  local name=$1 http=$2 rpc=$3 dir="$base/$1" pid port
  mkdir -p "$dir"
  if [ -f "$dir/influxd.pid" ]; then
    pid=$(cat "$dir/influxd.pid")
    if serves "$pid" "$http"; then
      echo "$name already running on 127.0.0.1:$http (pid $pid)"; return
    fi
    # A pid file left by a server that died (or whose pid now belongs to another program).
    rm -f "$dir/influxd.pid"
  fi
  for port in "$http" "$rpc"; do
    if port_in_use "$port"; then
      echo "cannot start $name: port $port is already in use by $(holders "$port"); stop it or" \
        "change the ports in $0 and config/examples/influxdb/sync.yaml" >&2
      exit 1
    fi
  done
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
  pid=$!
  echo "$pid" > "$dir/influxd.pid"
  for _ in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$dir/influxd.pid"
      echo "$name (influxd, pid $pid) exited while starting; the end of $dir/influxd.log:" >&2
      tail -n 5 "$dir/influxd.log" >&2
      exit 1
    fi
    if serves "$pid" "$http" && curl -sf -o /dev/null "http://127.0.0.1:$http/ping"; then
      echo "$name running on 127.0.0.1:$http (pid $pid, data in $dir)"; return
    fi
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  rm -f "$dir/influxd.pid"
  echo "$name (influxd, pid $pid) did not answer on 127.0.0.1:$http within 15 s; see $dir/influxd.log" >&2
  exit 1
}

stop() {
  local pidfile="$base/$1/influxd.pid" pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  # Only an influxd: a pid file outliving its server may name another program by now.
  if is_influxd "$pid"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  rm -f "$pidfile"
  echo "$1 stopped"
}

case "${1:-}" in
  start)
    need influxd "install InfluxDB 1.x (Debian: apt-get install influxdb)"
    need curl "install curl"
    need ss "install iproute2"
    start primary 8086 8186; start backup1 8087 8187; start backup2 8089 8189
    # dms never creates the primary's database (a typo in sync.yaml would fill a new one):
    # the store is set up here, as an operator sets up a real one. Idempotent.
    curl -sf -o /dev/null -XPOST "http://127.0.0.1:8086/query" --data-urlencode "q=CREATE DATABASE market"
    echo "primary: database market ready" ;;
  stop) stop primary; stop backup1; stop backup2 ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
