#!/bin/bash
# Start/stop the Herald under test for bench/RESULTS.md.
#   bench/scripts/herald.sh start [DATABASE_URL]   (default sqlite:///tmp/bench/herald.db); prints the PID
#   bench/scripts/herald.sh stop
# Runs target/release/herald (or $HERALD_BIN) with bench/herald-bench.toml (or $HERALD_CONFIG) on 127.0.0.1:18080, fd limit 20000,
# bounded by `timeout` (default 3600 s, $HERALD_TIMEOUT). PID in /tmp/bench/herald.pid, log in /tmp/bench/herald.log.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=${HERALD_BIN:-$here/target/release/herald}
mkdir -p /tmp/bench
case "${1:-}" in
start)
  url=${2:-sqlite:///tmp/bench/herald.db}
  ulimit -n 20000
  HERALD_BIND=127.0.0.1:18080 HERALD_DATABASE_URL=$url RUST_LOG=${RUST_LOG:-warn} \
    setsid timeout "${HERALD_TIMEOUT:-3600}" "$bin" --config "${HERALD_CONFIG:-$here/bench/herald-bench.toml}" >/tmp/bench/herald.log 2>&1 &
  tpid=$!
  for _ in $(seq 50); do
    pid=$(pgrep -P "$tpid" | head -1 || true)
    if [ -n "$pid" ] && curl -sf http://127.0.0.1:18080/health >/dev/null; then echo "$pid" >/tmp/bench/herald.pid; echo "$pid"; exit 0; fi
    sleep 0.2
  done
  echo "herald did not come up; see /tmp/bench/herald.log" >&2; exit 1 ;;
stop)
  if [ -f /tmp/bench/herald.pid ]; then
    pid=$(cat /tmp/bench/herald.pid)
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f /tmp/bench/herald.pid
  fi ;;
*) echo "usage: $0 start [DATABASE_URL] | stop" >&2; exit 64 ;;
esac
