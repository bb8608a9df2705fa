#!/bin/bash
# Issue 10's fairness figures: one flooding client next to one calm client (a receipted SEND every 50 ms), on SQLite
# and on MariaDB, each run twice (the spread is the noise): the calm client alone, with the flooder and the default
# chat.max_inflight_sends (256), and with the bound lifted (1,000,000: the behaviour before the bound existed).
# Each run gets a fresh database and its own Herald (bench/herald-bench.toml) on a free loopback port.
#
#   bench/scripts/flood.sh                 outputs in $OUT (default /tmp/bench/flood-<time>)
#   BACKENDS=sqlite DURATION=5 bench/scripts/flood.sh
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
HERALD_BIN=${HERALD_BIN:-$here/target/release/herald}
B=${BENCH_BIN:-$here/target/release/herald-bench}
OUT=${OUT:-/tmp/bench/flood-$(date +%Y%m%d-%H%M%S)}
DURATION=${DURATION:-10}
BACKENDS=${BACKENDS:-sqlite mariadb}
mkdir -p "$OUT"
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/run.log"; }
mysql_admin() { mariadb -h127.0.0.1 -uroot -e "$1" 2>/dev/null || mysql -h127.0.0.1 -uroot -e "$1"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SERVER=
stop_server() {
  [ -n "$SERVER" ] || return 0
  kill -TERM "$SERVER" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; SERVER=
}
trap stop_server EXIT
unbounded="$OUT/herald-unbounded.toml"
sed 's/^\[chat\]$/[chat]\nmax_inflight_sends = 1000000/' "$here/bench/herald-bench.toml" > "$unbounded"
log "herald: $("$HERALD_BIN" --version); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"

one() { # backend label config flooders round
  local backend=$1 label=$2 config=$3 flooders=$4 round=$5 url name="$1-$2-$5"
  case $backend in
    sqlite) rm -f "$OUT/herald.db"*; url="sqlite://$OUT/herald.db" ;;
    mariadb) mysql_admin "DROP DATABASE IF EXISTS bench_flood_$$; CREATE DATABASE bench_flood_$$"
             url="mysql://root@127.0.0.1:3306/bench_flood_$$" ;;
  esac
  local port; port=$(free_port)
  HERALD_BIND=127.0.0.1:$port HERALD_DATABASE_URL=$url RUST_LOG=warn \
    "$HERALD_BIN" --config "$config" > "$OUT/$name.server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  local args=(flood --url "ws://127.0.0.1:$port/ws/chat" --connections 1 --flooders "$flooders" --interval-ms 50
    --duration "$DURATION" --settle 1 --drain 60 --server-pid "$SERVER")
  log "$name :: $B ${args[*]}  (config $(basename "$config"), $backend)"
  echo "$B ${args[*]}  # config $(basename "$config"), $backend" > "$OUT/$name.cmd"
  timeout 300 "$B" "${args[@]}" --json "$OUT/$name.json" > "$OUT/$name.txt" 2> "$OUT/$name.err"
  curl -s "http://127.0.0.1:$port/metrics" \
    | grep -E '^herald_(stomp_read_pauses_total|chat_messages_committed_total|chat_batches_committed_total) ' >> "$OUT/$name.txt"
  stop_server
  [ "$backend" = mariadb ] && mysql_admin "DROP DATABASE IF EXISTS bench_flood_$$"
  grep -E '^(calm_p50_ms|calm_p95_ms|calm_p99_ms|calm_max_ms|calm_refused|flood_sent|flood_committed |flood_refused|flood_unanswered|flood_committed_per_s|stomp_error_frames|herald_stomp_read_pauses_total)' "$OUT/$name.txt" \
    | tr -s ' ' | paste -sd ' ' | sed "s/^/  $name: /" | tee -a "$OUT/run.log"
}

for backend in $BACKENDS; do
  for round in 1 2; do
    one "$backend" alone "$here/bench/herald-bench.toml" 0 "$round"
    one "$backend" bound256 "$here/bench/herald-bench.toml" 1 "$round"
    one "$backend" unbounded "$unbounded" 1 "$round"
  done
done
log "done; outputs in $OUT; load $(cut -d' ' -f1-3 /proc/loadavg)"
