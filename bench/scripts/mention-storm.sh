#!/bin/bash
# Issue 4's mention storm: does storing and delivering 10,000 mention notifications/s slow the chat fan-out?
# Runs the same fan-out twice against one Herald (SQLite): alone, then while a persist load sends 10,000 SENDs/s
# that each mention @bob (so each stores and delivers a mention notification), with bob's SSE stream open.
#
#   bench/scripts/mention-storm.sh            outputs in $OUT (default /tmp/bench/storm-<time>)
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
export HERALD_BIN=${HERALD_BIN:-$here/target/release/herald}
B=${BENCH_BIN:-$here/target/release/herald-bench}
S=$here/bench/scripts
OUT=${OUT:-/tmp/bench/storm-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
ulimit -n 20000
HURL=ws://127.0.0.1:18080/ws/chat
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/run.log"; }
trap '"$S/herald.sh" stop; [ -n "${SSE:-}" ] && kill "$SSE" 2>/dev/null' EXIT
rm -f /tmp/bench/herald.db /tmp/bench/herald.db-wal /tmp/bench/herald.db-shm
H=$("$S/herald.sh" start); log "herald pid $H ($("$HERALD_BIN" --version))"
FAN=(fanout --url $HURL --users 10 --server-pid "$H" --connections 1000 --publishers 4 --rate 100 --duration 10
  --ramp-timeout 60 --settle 2 --drain 5 --threads 1 --sources 4)
log "fanout alone :: $B ${FAN[*]}"
timeout 120 "$B" "${FAN[@]}" --json "$OUT/fanout-alone.json" > "$OUT/fanout-alone.txt" 2>&1
sleep 2
TOKEN=$(curl -s -XPOST http://127.0.0.1:18080/auth/login -H 'Content-Type: application/json' \
  -d '{"username":"bob","password":"bobpass"}' | python3 -c 'import sys,json; print(json.load(sys.stdin)["data"]["accessToken"])')
timeout 60 curl -sN -H "Authorization: Bearer $TOKEN" http://127.0.0.1:18080/notifications/stream > "$OUT/bob-stream.txt" &
SSE=$!
STORM=(persist --url $HURL --users 10 --user-prefix storm_user_ --connections 100 --rooms 100 --room-prefix storm-
  --window 8 --rate 10000 --duration 16 --drain 5 --threads 1 --sources 4 --mention bob)
log "storm :: $B ${STORM[*]}"
timeout 120 "$B" "${STORM[@]}" --json "$OUT/storm.json" > "$OUT/storm.txt" 2>&1 &
STORM_PID=$!
sleep 3   # the storm's senders log in and reach their rate first
log "fanout during the storm :: $B ${FAN[*]}"
timeout 120 "$B" "${FAN[@]}" --json "$OUT/fanout-storm.json" > "$OUT/fanout-storm.txt" 2>&1
wait "$STORM_PID"
sleep 1
kill "$SSE" 2>/dev/null; SSE=
log "mention events on bob's stream: $(grep -c '^event: notification' "$OUT/bob-stream.txt")"
curl -s http://127.0.0.1:18080/metrics | grep -E '^herald_(notifications_created|notifications_delivered|chat_messages_committed)' | tee -a "$OUT/run.log"
log "done; outputs in $OUT"
