#!/bin/bash
# Side-by-side fan-out A/B of two Herald builds: 1 room x 10,000 subscribers at a 200k deliveries/s offer, the builds
# alternated ROUNDS times (default 2) on the same machine, same config and load generator.
#   bench/scripts/fanout-ab.sh BEFORE_BIN AFTER_BIN     outputs in $OUT (default /tmp/bench/fanout-ab-<time>)
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
B=${BENCH_BIN:-$here/target/release/herald-bench}
S=$here/bench/scripts
OUT=${OUT:-/tmp/bench/fanout-ab-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
ulimit -n 20000
trap '"$S/herald.sh" stop' EXIT
for round in $(seq "${ROUNDS:-2}"); do
  for side in before after; do
    if [ "$side" = before ]; then bin=$1; else bin=$2; fi
    rm -f /tmp/bench/herald.db /tmp/bench/herald.db-wal /tmp/bench/herald.db-shm
    "$S/herald.sh" stop; H=$(HERALD_BIN=$bin "$S/herald.sh" start)
    echo "[$(date +%T)] $side round $round: herald pid $H ($bin)" | tee -a "$OUT/run.log"
    timeout 200 "$B" fanout --url ws://127.0.0.1:18080/ws/chat --users 10 --server-pid "$H" --connections 10000 \
      --publishers 4 --delivery-rate 200000 --duration 10 --ramp-timeout 90 --settle 2 --drain 5 --threads 2 --sources 4 \
      > "$OUT/$side-$round.txt" 2>&1
    grep -h "deliveries_per_s\|deliveries_missing\|send_to_message" "$OUT/$side-$round.txt" | tee -a "$OUT/run.log"
  done
done
