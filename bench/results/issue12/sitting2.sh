#!/bin/bash
cd /work/main
export BENCH_BIN=/tmp/bins/herald-bench REFERENCE_BIN=/tmp/bins/herald-reference
for round in 1 2; do
  HERALD_BIN=/tmp/bins/herald-after FIRST_ROUND=$round ROUNDS=1 OUT=/tmp/bench/i12/after bench/scripts/compare.sh table
done
HERALD_BIN=/tmp/bins/herald-after OUT=/tmp/bench/i12/sweep bench/scripts/compare.sh sweep
echo SITTING DONE
