#!/bin/bash
# Start/stop herald-reference (the bench's floor, issue 12) the way herald.sh runs Herald.
#   bench/scripts/reference.sh start     prints the PID
#   bench/scripts/reference.sh stop
# Runs target/release/herald-reference (or $REFERENCE_BIN) on 127.0.0.1:18081 ($REFERENCE_BIND) with one reactor
# per core, fd limit 20000, bounded by `timeout` (default 3600 s, $REFERENCE_TIMEOUT). Extra flags: $REFERENCE_FLAGS.
# PID in $BENCH_TMP/reference.pid, log in $BENCH_TMP/reference.log ($BENCH_TMP defaults to /tmp/bench).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=${REFERENCE_BIN:-$here/target/release/herald-reference}
bind=${REFERENCE_BIND:-127.0.0.1:18081}
tmp=${BENCH_TMP:-/tmp/bench}
mkdir -p "$tmp"
case "${1:-}" in
start)
  if (exec 3<>"/dev/tcp/${bind%:*}/${bind##*:}") 2>/dev/null; then
    echo "something already listens on $bind; set REFERENCE_BIND to a free address" >&2; exit 1
  fi
  ulimit -n 20000
  # shellcheck disable=SC2086
  setsid timeout "${REFERENCE_TIMEOUT:-3600}" "$bin" --bind "$bind" ${REFERENCE_FLAGS:-} >"$tmp/reference.log" 2>&1 &
  tpid=$!
  for _ in $(seq 50); do
    pid=$(pgrep -P "$tpid" | head -1 || true)
    if [ -n "$pid" ] && (exec 3<>"/dev/tcp/${bind%:*}/${bind##*:}") 2>/dev/null; then
      echo "$pid" >"$tmp/reference.pid"; echo "$pid"; exit 0
    fi
    sleep 0.2
  done
  echo "herald-reference did not come up; see $tmp/reference.log" >&2; exit 1 ;;
stop)
  if [ -f "$tmp/reference.pid" ]; then
    pid=$(cat "$tmp/reference.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$tmp/reference.pid"
  fi ;;
*) echo "usage: $0 start | stop" >&2; exit 64 ;;
esac
