#!/bin/bash
# Start/stop herald-reference (the bench's floor, issue 12) the way herald.sh runs Herald.
#   bench/scripts/reference.sh start     prints the PID
#   bench/scripts/reference.sh stop
# Runs target/release/herald-reference (or $REFERENCE_BIN) on 127.0.0.1:18081 ($REFERENCE_BIND) with one reactor
# per core, fd limit 20000, bounded by `timeout` (default 3600 s, $REFERENCE_TIMEOUT). Extra flags: $REFERENCE_FLAGS.
# PID in /tmp/bench/reference.pid, log in /tmp/bench/reference.log.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=${REFERENCE_BIN:-$here/target/release/herald-reference}
bind=${REFERENCE_BIND:-127.0.0.1:18081}
mkdir -p /tmp/bench
case "${1:-}" in
start)
  ulimit -n 20000
  # shellcheck disable=SC2086
  setsid timeout "${REFERENCE_TIMEOUT:-3600}" "$bin" --bind "$bind" ${REFERENCE_FLAGS:-} >/tmp/bench/reference.log 2>&1 &
  tpid=$!
  for _ in $(seq 50); do
    pid=$(pgrep -P "$tpid" | head -1 || true)
    if [ -n "$pid" ] && (exec 3<>"/dev/tcp/${bind%:*}/${bind##*:}") 2>/dev/null; then
      echo "$pid" >/tmp/bench/reference.pid; echo "$pid"; exit 0
    fi
    sleep 0.2
  done
  echo "herald-reference did not come up; see /tmp/bench/reference.log" >&2; exit 1 ;;
stop)
  if [ -f /tmp/bench/reference.pid ]; then
    pid=$(cat /tmp/bench/reference.pid)
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f /tmp/bench/reference.pid
  fi ;;
*) echo "usage: $0 start | stop" >&2; exit 64 ;;
esac
