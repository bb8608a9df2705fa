#!/bin/bash
# Side-by-side A/B of two Herald builds on the figures a refactoring must not move: fan-out (1 room x 10,000
# subscribers, 200k deliveries/s offered), idle memory (10,000 subscribed connections held) and persist (SQLite,
# 200 senders over 100 rooms, receipted, as fast as the windows allow). The two builds alternate ROUNDS times
# (default 2), so the same binary is measured twice and the noise is visible next to the difference.
#   bench/scripts/ab.sh BEFORE_BIN AFTER_BIN      outputs in $OUT (default /tmp/bench/ab-<time>)
#   SCENARIOS="fanout idle persist" (default all three); FANOUT_FLAGS adds flags to the fan-out runs
#   (e.g. "--sub-ids shared" with a herald-bench that knows it)
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
B=${BENCH_BIN:-$here/target/release/herald-bench}
S=$here/bench/scripts
OUT=${OUT:-/tmp/bench/ab-$(date +%Y%m%d-%H%M%S)}
SCENARIOS=${SCENARIOS:-fanout idle persist}
URL=ws://127.0.0.1:18080/ws/chat
mkdir -p "$OUT"
ulimit -n 20000
trap '"$S/herald.sh" stop' EXIT
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/run.log"; }
fresh() { # fresh BIN: a new SQLite file and the given build started
  "$S/herald.sh" stop
  rm -f /tmp/bench/herald.db /tmp/bench/herald.db-wal /tmp/bench/herald.db-shm
  H=$(HERALD_BIN=$1 "$S/herald.sh" start)
}
log "before=$1 after=$2 bench=$B load: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "${ROUNDS:-2}"); do
  for side in before after; do
    if [ "$side" = before ]; then bin=$1; else bin=$2; fi
    for scenario in $SCENARIOS; do
      fresh "$bin"
      name="$scenario-$side-$round"
      case $scenario in
      fanout) cmd=("$B" fanout --url $URL --users 10 --server-pid "$H" --connections 10000 --publishers 4 \
                 --delivery-rate 200000 --duration 10 --ramp-timeout 90 --settle 2 --drain 5 --threads 2 --sources 4 ${FANOUT_FLAGS:-}) ;;
      idle)   cmd=("$B" idle --url $URL --users 10 --connections 10000 --rooms 100 --duration 10 --ramp-timeout 90 \
                 --sources 4 --heart-beat 10000,10000 --server-pid "$H") ;;
      persist) cmd=("$B" persist --url $URL --users 20 --connections 200 --rooms 100 --window 8 --rate 0 \
                 --duration 10 --server-pid "$H") ;;
      esac
      log "$name (pid $H, load $(cut -d' ' -f1 /proc/loadavg)) :: ${cmd[*]}"
      timeout 300 "${cmd[@]}" --json "$OUT/$name.json" > "$OUT/$name.txt" 2>&1
      grep -hE "deliveries_per_s|_latency|rss_per_connection|committed_per_s|server_cpu" \
        "$OUT/$name.txt" | sed 's/^/    /' | tee -a "$OUT/run.log"
    done
  done
done
