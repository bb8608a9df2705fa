#!/bin/bash
# Pass joining (issue 12, third stop): scenario A (1 room x 10,000 subscribers x 2 msg/s, fan-out phase only) with
#   prev = Herald d4c9748 against herald-reference --flush-inbox-stride 0 (neither joins a pass in progress)
#   join = Herald with pass joining against herald-reference --flush-inbox-stride 64 (both join)
# EXTRA=--stagger: the publishers take turns instead of sending together (every delivery its own write).
# N rounds (3), alternating. Needs /tmp/bins/herald-{prev,join}, herald-bench, herald-reference.
# Prints each run's p99 and CPU per delivery; JSON and text under $OUT.
cd "$(dirname "$0")/../../.."
export BENCH_TMP=/tmp/bench-joincmp HERALD_TIMEOUT=900 REFERENCE_TIMEOUT=900 HERALD_BENCH_BIND=127.0.0.1:28080 REFERENCE_BIND=127.0.0.1:28081 REFERENCE_BIN=/tmp/bins/herald-reference
ulimit -n 20000
OUT=${OUT:-/tmp/bench/i12/joincmp}; mkdir -p "$OUT"
HSTART="rm -f $BENCH_TMP/herald.db*; bench/scripts/herald.sh start"
for i in $(seq 1 "${N:-3}"); do
  for which in ${WHICH:-prev join}; do
    case $which in prev) stride=0 ;; *) stride=64 ;; esac
    REFERENCE_FLAGS="--flush-inbox-stride $stride" HERALD_BIN=/tmp/bins/herald-$which timeout 300 /tmp/bins/herald-bench compare --herald-start "$HSTART" \
      --herald-url "ws://$HERALD_BENCH_BIND/ws/chat" --reference-url "ws://$REFERENCE_BIND/ws/chat" \
      --targets herald,reference --phases fanout --users 10 --threads 2 --sources 4 --settle 2 --drain 5 --connect-rate 10000 \
      --max-pending 1024 --ramp-timeout 60 --connections 10000 --rooms 1 --publishers 2 --rate 2 --duration 10 ${EXTRA:-} \
      --json "$OUT/$which-$i.json" > "$OUT/$which-$i.txt" 2> "$OUT/$which-$i.err"
    python3 -c "
import json; d=json.load(open('$OUT/$which-$i.json')); t=d['targets']
h=t['herald']; r=t['reference']
hl=h['fanout']['send_to_message_latency']; rl=r['fanout']['send_to_message_latency']
hc=h['figures']['cpu_per_delivery_us']; rc=r['figures']['cpu_per_delivery_us']
print('$which $i', 'herald p99 %.1f cpu %.2f | ref p99 %.1f cpu %.2f | cpu %.2fx p99 %.2fx' % (hl['p99_ms'], hc, rl['p99_ms'], rc, hc/rc, hl['p99_ms']/rl['p99_ms']))"
  done
done
