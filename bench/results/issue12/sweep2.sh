#!/bin/bash
# A second run of every sweep point (same commands as compare.sh sweep), files suffixed -r2.
cd /work/main
S=bench/scripts; OUT=/tmp/bench/i12/sweep
export BENCH_TMP=/tmp/bench-compare HERALD_TIMEOUT=900 REFERENCE_TIMEOUT=900 HERALD_BENCH_BIND=127.0.0.1:28080 REFERENCE_BIND=127.0.0.1:28081
export HERALD_BIN=/tmp/bins/herald-after REFERENCE_BIN=/tmp/bins/herald-reference
ulimit -n 20000
HSTART="rm -f $BENCH_TMP/herald.db $BENCH_TMP/herald.db-wal $BENCH_TMP/herald.db-shm; $S/herald.sh start"
COMMON=(--users 10 --threads 2 --sources 4 --settle 2 --drain 5 --connect-rate 10000 --max-pending 1024 --ramp-timeout 60)
P=$(pgrep -x beam.smp | head -1)
ALL=(--targets herald,reference,rabbitmq --rabbitmq-start "echo $P" --phases fanout "${COMMON[@]}" --rooms 1 --publishers 4 --duration 8)
run() { local name=$1; shift; echo "[$(date -u +%T)] $name :: load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $OUT/run.log
  timeout 600 /tmp/bins/herald-bench compare --herald-start "$HSTART" --herald-url "ws://$HERALD_BENCH_BIND/ws/chat" \
    --reference-url "ws://$REFERENCE_BIND/ws/chat" "$@" --json "$OUT/$name.json" > "$OUT/$name.txt" 2> "$OUT/$name.err"; }
for subs in 100 1000 10000; do run "sweep-size-$subs-r2" "${ALL[@]}" --connections $subs --delivery-rate 20000; done
for d in 10000 20000 50000 100000; do run "sweep-load-$d-r2" "${ALL[@]}" --connections 1000 --delivery-rate $d; done
bench/charts.sh $OUT $OUT | tee -a $OUT/run.log
echo SWEEP2 DONE
