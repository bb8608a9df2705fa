#!/bin/bash
# Start/stop the Herald under test for bench/RESULTS.md.
#   bench/scripts/herald.sh start [DATABASE_URL]   (default sqlite://$BENCH_TMP/herald.db); prints the PID
#   bench/scripts/herald.sh stop
# Runs target/release/herald (or $HERALD_BIN) with bench/herald-bench.toml (or $HERALD_CONFIG) on $HERALD_BENCH_BIND
# (default 127.0.0.1:18080), fd limit 20000, bounded by `timeout` (default 3600 s, $HERALD_TIMEOUT). PID in
# $BENCH_TMP/herald.pid, log in $BENCH_TMP/herald.log ($BENCH_TMP defaults to /tmp/bench).
# Refuses to start when something already listens on that address: other engineers' servers on this machine use
# 18080 too, and a health check answered by theirs would silently mix two servers.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=${HERALD_BIN:-$here/target/release/herald}
bind=${HERALD_BENCH_BIND:-127.0.0.1:18080}
tmp=${BENCH_TMP:-/tmp/bench}
mkdir -p "$tmp"
case "${1:-}" in
start)
  url=${2:-sqlite://$tmp/herald.db}
  if (exec 3<>"/dev/tcp/${bind%:*}/${bind##*:}") 2>/dev/null; then
    echo "something already listens on $bind; set HERALD_BENCH_BIND to a free address" >&2; exit 1
  fi
  ulimit -n 20000
  HERALD_BIND=$bind HERALD_DATABASE_URL=$url RUST_LOG=${RUST_LOG:-warn} \
    setsid timeout "${HERALD_TIMEOUT:-3600}" "$bin" --config "${HERALD_CONFIG:-$here/bench/herald-bench.toml}" >"$tmp/herald.log" 2>&1 &
  tpid=$!
  for _ in $(seq 50); do
    pid=$(pgrep -P "$tpid" | head -1 || true)
    if [ -n "$pid" ] && curl -sf "http://$bind/health" >/dev/null; then echo "$pid" >"$tmp/herald.pid"; echo "$pid"; exit 0; fi
    sleep 0.2
  done
  echo "herald did not come up; see $tmp/herald.log" >&2; exit 1 ;;
stop)
  if [ -f "$tmp/herald.pid" ]; then
    pid=$(cat "$tmp/herald.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$tmp/herald.pid"
  fi ;;
*) echo "usage: $0 start [DATABASE_URL] | stop" >&2; exit 64 ;;
esac
