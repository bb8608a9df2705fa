#!/bin/bash
# Scenario B only, more rounds: before and after alternating (both against the reference).
cd /work/main
export BENCH_BIN=/tmp/bins/herald-bench REFERENCE_BIN=/tmp/bins/herald-reference
S=bench/scripts
export BENCH_TMP=/tmp/bench-compare HERALD_TIMEOUT=900 REFERENCE_TIMEOUT=900 HERALD_BENCH_BIND=127.0.0.1:28080 REFERENCE_BIND=127.0.0.1:28081
ulimit -n 20000
HSTART="rm -f $BENCH_TMP/herald.db $BENCH_TMP/herald.db-wal $BENCH_TMP/herald.db-shm; $S/herald.sh start"
COMMON=(--users 10 --threads 2 --sources 4 --settle 2 --drain 5 --connect-rate 10000 --max-pending 1024 --ramp-timeout 60)
for round in 3 4 5; do
  if [ $((round % 2)) -eq 1 ]; then order=herald,reference; else order=reference,herald; fi
  for which in before after; do
    OUT=/tmp/bench/i12/$which; mkdir -p $OUT
    echo "[$(date -u +%T)] $which B-round$round :: load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $OUT/run.log
    HERALD_BIN=/tmp/bins/herald-$which timeout 600 /tmp/bins/herald-bench compare --herald-start "$HSTART" \
      --herald-url "ws://$HERALD_BENCH_BIND/ws/chat" --reference-url "ws://$REFERENCE_BIND/ws/chat" \
      --targets $order --phases fanout "${COMMON[@]}" --connections 1000 --rooms 1 --publishers 4 --rate 100 --duration 10 \
      --json $OUT/B-round$round.json > $OUT/B-round$round.txt 2> $OUT/B-round$round.err
  done
done
echo SITTING3 B DONE
rm -rf /tmp/bench/i12/sweep
HERALD_BIN=/tmp/bins/herald-after OUT=/tmp/bench/i12/sweep bench/scripts/compare.sh sweep
echo SWEEP DONE
