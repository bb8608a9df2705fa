#!/bin/bash
# Issue 12's table: Herald against herald-reference (the floor: same bytes on the wire, same reactor structure, no
# application work) under the same load, one after the other, with `herald-bench compare`. Every run is bounded.
#
#   bench/scripts/compare.sh [PARTS]        PARTS: any of "table sweep" (default "table")
#     table   ROUNDS (default 2) rounds of the issue's scenarios; even rounds run the reference first, and the
#             spread between rounds is the noise of this machine (FIRST_ROUND=3 adds rounds to an earlier $OUT):
#               A  idle 10,000 held, then fan-out 1 room x 10,000 subscribers x 2 msg/s
#               B  fan-out 1 room x 1,000 subscribers x 100 msg/s
#               C  idle 19,000 held at an uncapped connect rate (RSS/conn at 19,000 and connects/s of the ramp)
#     sweep   the charts' data, Herald, the reference and RabbitMQ (restarted as BENCH-NOTES says): 20,000
#             deliveries/s offered to 1 room of 100, 1,000, 10,000 subscribers; and 1 room x 1,000 subscribers at
#             10k, 20k, 50k, 100k deliveries/s offered. Then `bench/charts.sh $OUT` draws them.
#
# Outputs (compare JSON and text, stderr, run.log with commands and load averages) in $OUT
# (default /tmp/bench/compare-<time>). Run from anywhere; needs target/release/{herald,herald-bench,herald-reference}.
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
B=${BENCH_BIN:-$here/target/release/herald-bench}
S=$here/bench/scripts
OUT=${OUT:-/tmp/bench/compare-$(date +%Y%m%d-%H%M%S)}
PARTS=${1:-table}
ROUNDS=${ROUNDS:-2}
FIRST_ROUND=${FIRST_ROUND:-1}   # to add rounds to an earlier sitting's $OUT
mkdir -p "$OUT"
ulimit -n 20000
# Ports and state of our own: other engineers' servers on this machine listen on 18080 (herald.sh and reference.sh
# refuse an address in use).
export BENCH_TMP=${BENCH_TMP:-/tmp/bench-compare} HERALD_TIMEOUT=900 REFERENCE_TIMEOUT=900
export HERALD_BENCH_BIND=${HERALD_BENCH_BIND:-127.0.0.1:28080} REFERENCE_BIND=${REFERENCE_BIND:-127.0.0.1:28081}
# A fresh SQLite file for every Herald start, so that no run inherits another's data.
HSTART="rm -f $BENCH_TMP/herald.db $BENCH_TMP/herald.db-wal $BENCH_TMP/herald.db-shm; $S/herald.sh start"
log() { echo "[$(date -u +%T)] $*" | tee -a "$OUT/run.log"; }
has() { [[ " $PARTS " == *" $1 "* ]]; }
# cmp NAME ARGS... : one bounded compare run; JSON to $OUT/NAME.json, table to NAME.txt, progress to NAME.err
cmp() {
  local name=$1; shift
  log "$name :: load $(cut -d' ' -f1-3 /proc/loadavg) :: herald-bench compare $*"
  timeout 600 "$B" compare --herald-start "$HSTART" --herald-url "ws://$HERALD_BENCH_BIND/ws/chat" \
    --reference-url "ws://$REFERENCE_BIND/ws/chat" "$@" --json "$OUT/$name.json" > "$OUT/$name.txt" 2> "$OUT/$name.err"
  log "$name :: exit $? :: load $(cut -d' ' -f1-3 /proc/loadavg)"
  cat "$OUT/$name.txt" | tee -a "$OUT/run.log"
}
trap '"$S/herald.sh" stop; "$S/reference.sh" stop' EXIT
log "commit $(git rev-parse --short HEAD) ($(git status --porcelain -- src | wc -l) files changed under src/); herald $(target/release/herald --version 2>/dev/null); parts: $PARTS"
COMMON=(--users 10 --threads 2 --sources 4 --settle 2 --drain 5 --connect-rate 10000 --max-pending 1024 --ramp-timeout 60)

if has table; then
  for round in $(seq "$FIRST_ROUND" $((FIRST_ROUND + ROUNDS - 1))); do
    if [ $((round % 2)) -eq 1 ]; then order=herald,reference; else order=reference,herald; fi
    cmp "A-round$round" --targets $order --phases idle,fanout "${COMMON[@]}" \
      --idle-connections 10000 --connections 10000 --rooms 1 --publishers 2 --rate 2 --duration 10
    cmp "B-round$round" --targets $order --phases fanout "${COMMON[@]}" \
      --connections 1000 --rooms 1 --publishers 4 --rate 100 --duration 10
    cmp "C-round$round" --targets $order --phases idle "${COMMON[@]}" --sources 8 --connect-rate 20000 \
      --max-connections 19900 --idle-connections 19000 --idle-hold 10
  done
fi

if has sweep; then
  P=$("$S/rabbitmq-restart.sh"); log "rabbitmq restarted, beam.smp pid $P"
  ALL=(--targets herald,reference,rabbitmq --rabbitmq-start "echo $P" --phases fanout "${COMMON[@]}" --rooms 1 --publishers 4 --duration 8)
  for subs in 100 1000 10000; do
    cmp "sweep-size-$subs" "${ALL[@]}" --connections $subs --delivery-rate 20000
  done
  for d in 10000 20000 50000 100000; do
    cmp "sweep-load-$d" "${ALL[@]}" --connections 1000 --delivery-rate $d
  done
  "$here/bench/charts.sh" "$OUT" "$OUT" | tee -a "$OUT/run.log"
fi
log "done; outputs in $OUT"
