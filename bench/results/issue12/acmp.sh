#!/bin/bash
# compare A (fan-out phase only) (herald,reference) for the given binaries, N rounds each, alternating; prints Herald p99/max and CPU.
cd /work/main
export BENCH_TMP=/tmp/bench-bcmp HERALD_TIMEOUT=900 REFERENCE_TIMEOUT=900 HERALD_BENCH_BIND=127.0.0.1:28080 REFERENCE_BIND=127.0.0.1:28081 REFERENCE_BIN=/tmp/bins/herald-reference
ulimit -n 20000
OUT=${OUT:-/tmp/bench/i12/acmp}; mkdir -p $OUT
HSTART="rm -f $BENCH_TMP/herald.db*; bench/scripts/herald.sh start"
for i in $(seq 1 ${N:-3}); do
  for which in "$@"; do
    HERALD_BIN=/tmp/bins/herald-$which timeout 300 /tmp/bins/herald-bench compare --herald-start "$HSTART" \
      --herald-url "ws://$HERALD_BENCH_BIND/ws/chat" --reference-url "ws://$REFERENCE_BIND/ws/chat" \
      --targets herald,reference --phases fanout --users 10 --threads 2 --sources 4 --settle 2 --drain 5 --connect-rate 10000 \
      --max-pending 1024 --ramp-timeout 60 --connections 10000 --rooms 1 --publishers 2 --rate 2 --duration 10 \
      --json $OUT/$which-$i.json > $OUT/$which-$i.txt 2> $OUT/$which-$i.err
    python3 -c "
import json; d=json.load(open('$OUT/$which-$i.json')); t=d['targets']
h=t['herald']['fanout']['send_to_message_latency']; r=t['reference']['fanout']['send_to_message_latency']
print('$which $i', 'herald p99', h['p99_ms'], 'max', h['max_ms'], 'cpu', t['herald']['figures']['cpu_per_delivery_us'], '| ref p99', r['p99_ms'], 'cpu', t['reference']['figures']['cpu_per_delivery_us'])"
  done
done
