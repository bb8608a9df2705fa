#!/bin/bash
# Side by side (issue 13): a member's SEND to a private room vs a SEND to an open room, in `persist` and `fanout`.
# For each store, ROUNDS rounds (default 2), open first in odd rounds and private first in even ones (so a trend in the
# machine's load does not favour one side); a fresh store and a fresh Herald per run.
#   bench/scripts/private-rooms.sh [sqlite] [mariadb]        outputs in $OUT (default /tmp/bench-rooms/out-<time>)
#   SCENARIOS="persist fanout" (default both), ROUNDS=2
# Uses its own port ($PORT, default 18480) and directory ($DIR, default /tmp/bench-rooms), so it does not disturb
# another bench on 18080. Herald: $HERALD_BIN (target/release/herald) with bench/herald-bench.toml.
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
B=${BENCH_BIN:-$here/target/release/herald-bench}
HB=${HERALD_BIN:-$here/target/release/herald}
PORT=${PORT:-18480}
DIR=${DIR:-/tmp/bench-rooms}
OUT=${OUT:-$DIR/out-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$DIR" "$OUT"
ulimit -n 20000 2>/dev/null || true
HPID=""
DB=""
stop() {
  if [ -n "$HPID" ]; then kill -TERM "$HPID" 2>/dev/null; wait "$HPID" 2>/dev/null; HPID=""; fi
  if [ -n "$DB" ]; then mariadb -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $DB"; DB=""; fi
}
trap stop EXIT
start() {
  local store=$1 url
  case "$store" in
    sqlite) rm -f "$DIR"/herald.db*; url="sqlite://$DIR/herald.db" ;;
    mariadb) DB="herald_rooms_bench_$$_$RANDOM"; mariadb -h127.0.0.1 -uroot -e "CREATE DATABASE $DB"
             url="mysql://root@127.0.0.1:3306/$DB" ;;
  esac
  HERALD_BIND=127.0.0.1:$PORT HERALD_DATABASE_URL=$url RUST_LOG=warn \
    timeout 900 "$HB" --config "$here/bench/herald-bench.toml" >"$DIR/herald.log" 2>&1 &
  HPID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && return 0; sleep 0.2; done
  echo "herald did not come up; see $DIR/herald.log" >&2; exit 1
}
run() {
  local name=$1; shift
  echo "$B $*" >"$OUT/$name.cmd"
  timeout 300 "$B" "$@" --url "ws://127.0.0.1:$PORT/ws/chat" --json "$OUT/$name.json" >"$OUT/$name.txt" 2>"$OUT/$name.err"
  grep -h "committed_per_s\|deliveries_per_s\|send_to_receipt\|send_to_message\|missing\|app_errors\|stomp_error" \
    "$OUT/$name.txt" | sed "s/^/  $name: /" | tee -a "$OUT/run.log"
}
stores=${*:-sqlite}
for store in $stores; do
  for round in $(seq "${ROUNDS:-2}"); do
    order="open private"; [ $((round % 2)) = 0 ] && order="private open"
    for mode in $order; do
      flag=""; [ "$mode" = private ] && flag="--private-rooms"
      echo "[$(date +%T)] $store round $round $mode" | tee -a "$OUT/run.log"
      for scenario in ${SCENARIOS:-persist fanout}; do
        start "$store"
        case "$scenario" in
          persist) run "persist-$store-$mode-$round" persist --users 10 --connections 200 --rooms 200 --window 4 \
                     --rate 0 --duration 5 --drain 5 --threads 1 --sources 2 $flag ;;
          fanout) run "fanout-$store-$mode-$round" fanout --users 10 --connections 1000 --publishers 4 \
                    --delivery-rate 50000 --duration 5 --settle 1 --drain 5 --threads 1 --sources 2 $flag ;;
        esac
        stop
      done
    done
  done
done
