#!/bin/bash
cd /work/wt-bench
FIRST_ROUND=3 ROUNDS=1 OUT=/tmp/bench/compare-table bench/scripts/compare.sh table
# scenario A with every subscriber on sub-0 (what the bench did before issue 12), same sitting
export BENCH_TMP=/tmp/bench-compare HERALD_BENCH_BIND=127.0.0.1:28080 REFERENCE_BIND=127.0.0.1:28081
ulimit -n 20000
echo "[$(date -u +%T)] A-shared-ids :: load $(cut -d' ' -f1-3 /proc/loadavg)" >> /tmp/bench/compare-table/run.log
timeout 600 target/release/herald-bench compare --herald-start "rm -f /tmp/bench-compare/herald.db*; bench/scripts/herald.sh start" \
  --herald-url ws://127.0.0.1:28080/ws/chat --reference-url ws://127.0.0.1:28081/ws/chat --targets herald,reference \
  --phases fanout --users 10 --threads 2 --sources 4 --settle 2 --drain 5 --connect-rate 10000 --max-pending 1024 \
  --ramp-timeout 60 --connections 10000 --rooms 1 --publishers 2 --rate 2 --duration 10 --sub-ids shared \
  --json /tmp/bench/compare-table/A-shared-ids.json > /tmp/bench/compare-table/A-shared-ids.txt 2> /tmp/bench/compare-table/A-shared-ids.err
echo "[$(date -u +%T)] A-shared-ids :: exit $? :: load $(cut -d' ' -f1-3 /proc/loadavg)" >> /tmp/bench/compare-table/run.log
cat /tmp/bench/compare-table/A-shared-ids.txt >> /tmp/bench/compare-table/run.log
