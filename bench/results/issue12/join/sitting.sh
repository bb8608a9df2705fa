#!/bin/bash
# The pass-joining sitting (bench/RESULTS.md section 14, "Third stop"): one quiet sitting, in this order.
#   A as the issue states it (2 publishers sending together once a second): prev (d4c9748) against the reference
#     without pass joining, join2 (32d9ec8) against the reference with it; 6 rounds, alternating.
#   A staggered (--stagger: the publishers take turns, every delivery is its own write): the same pairs, 4 rounds.
#   B (1,000 subscribers x 100 msg/s): join2 against the reference, 3 rounds.
# Needs /tmp/bins/herald-{prev,join2}, herald-bench, herald-reference (built from 32d9ec8).
set -u
cd "$(dirname "$0")/../../../.."
D=bench/results/issue12/join
N=6 WHICH="prev join2" OUT=$D/a bench/results/issue12/joincmp.sh 2>&1 | tee $D/a.txt
N=4 WHICH="prev join2" EXTRA=--stagger OUT=$D/a-stagger bench/results/issue12/joincmp.sh 2>&1 | tee $D/a-stagger.txt
N=3 OUT=$D/b bench/results/issue12/bcmp.sh join2 2>&1 | tee $D/b.txt
# idle: 10,000 subscribed connections held 10 s, join2 against the reference, 1 round
export BENCH_TMP=/tmp/bench-joincmp HERALD_BENCH_BIND=127.0.0.1:28080 REFERENCE_BIND=127.0.0.1:28081 REFERENCE_BIN=/tmp/bins/herald-reference
HERALD_BIN=/tmp/bins/herald-join2 timeout 300 /tmp/bins/herald-bench compare --herald-start "rm -f $BENCH_TMP/herald.db*; bench/scripts/herald.sh start" \
  --herald-url "ws://$HERALD_BENCH_BIND/ws/chat" --reference-url "ws://$REFERENCE_BIND/ws/chat" \
  --targets herald,reference --phases idle --users 10 --threads 2 --sources 4 --connect-rate 10000 --max-pending 1024 \
  --ramp-timeout 60 --connections 10000 --rooms 1 --json $D/idle.json > $D/idle.txt 2> $D/idle.err
