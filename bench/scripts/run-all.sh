#!/bin/bash
# Runs the figures of bench/RESULTS.md in one sitting, Herald and RabbitMQ side by side, and writes every output to
# $OUT (default /tmp/bench/run-<time>). Every step is bounded by `timeout`; Herald is stopped at the end, RabbitMQ is
# left running as /work/shared/BENCH-NOTES.md starts it.
#
#   bench/scripts/run-all.sh [FIGURES]      FIGURES: any of "1 2 3 4 5 6" (default all)
#
# Needs: target/release/herald and herald-bench (or $HERALD_BIN / $BENCH_BIN), wrk, python3, a local MariaDB
# (root without password) for figure 5, RabbitMQ with rabbitmq_web_stomp. Loopback only.
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
export HERALD_BIN=${HERALD_BIN:-$here/target/release/herald}
B=${BENCH_BIN:-$here/target/release/herald-bench}
S=$here/bench/scripts
OUT=${OUT:-/tmp/bench/run-$(date +%Y%m%d-%H%M%S)}
FIGS=${1:-1 2 3 4 5 6}
mkdir -p "$OUT"
ulimit -n 20000
HURL=ws://127.0.0.1:18080/ws/chat
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/run.log"; }
has() { [[ " $FIGS " == *" $1 "* ]]; }
# run NAME CMD... : runs a bounded command, keeps stdout/stderr, logs the command line
run() {
  local name=$1; shift
  log "$name :: $*"
  echo "$*" > "$OUT/$name.cmd"
  timeout 400 "$@" > "$OUT/$name.txt" 2> "$OUT/$name.err"
  echo "exit $?" >> "$OUT/$name.cmd"
}
herald_start() { "$S/herald.sh" stop; H=$("$S/herald.sh" start "${1:-sqlite:///tmp/bench/herald.db}"); log "herald pid $H (${1:-sqlite})"; }
rabbit_restart() { P=$("$S/rabbitmq-restart.sh"); log "rabbitmq beam.smp pid $P"; }
trap '"$S/herald.sh" stop' EXIT
log "herald $("$HERALD_BIN" --version) bench $B; load: $(cut -d' ' -f1-3 /proc/loadavg)"

if has 1 || has 2; then
  rm -f /tmp/bench/herald.db /tmp/bench/herald.db-wal /tmp/bench/herald.db-shm
  herald_start
  # >= 50 messages in room-1 (rooms room-0 and room-1), committed through STOMP SEND with receipts
  run fig1-seed "$B" persist --url $HURL --users 2 --connections 2 --rooms 2 --room-prefix room- --rate 500 --duration 2
  TOKEN=$(curl -s -XPOST http://127.0.0.1:18080/auth/login -H 'Content-Type: application/json' \
    -d '{"username":"alice","password":"alicepass"}' | python3 -c 'import sys,json;print(json.load(sys.stdin)["data"]["accessToken"])')
  curl -s "http://127.0.0.1:18080/chat/history/room-1?limit=50" -H "Authorization: Bearer $TOKEN" \
    | python3 -c 'import sys,json;a=json.load(sys.stdin);print("history rows:",len(a),"bytes:",len(json.dumps(a)))' | tee -a "$OUT/run.log"
fi
if has 1; then
  run fig1-health wrk -t1 -c64 -d10s --latency http://127.0.0.1:18080/health
  run fig1-history wrk -t1 -c64 -d10s --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:18080/chat/history/room-1?limit=50"
  run fig1-health-pipelined16 wrk -t1 -c64 -d10s -s "$S/pipeline.lua" http://127.0.0.1:18080/health -- 16
fi
if has 2; then
  for c in 64 8; do
    run fig2-health-c$c-alone wrk -t1 -c$c -d5s --latency http://127.0.0.1:18080/health
    log "fig2-health-c$c-burst: wrk -t1 -c$c -d5s --latency /health with login_burst.py 200 at +0.3 s"
    timeout 30 wrk -t1 -c$c -d5s --latency http://127.0.0.1:18080/health > "$OUT/fig2-health-c$c-burst.txt" 2>&1 &
    sleep 0.3
    timeout 60 python3 "$S/login_burst.py" 127.0.0.1:18080 200 > "$OUT/fig2-burst-c$c.txt" 2>&1
    wait
    cat "$OUT/fig2-burst-c$c.txt" | tee -a "$OUT/run.log"
  done
fi
if has 3; then
  herald_start; rabbit_restart
  run fig3-idle-herald-17000 "$B" idle --url $HURL --users 10 --connections 17000 --rooms 100 --duration 20 \
    --ramp-timeout 120 --sources 4 --heart-beat 10000,10000 --server-pid $H --json "$OUT/fig3-idle-herald-17000.json"
  run fig3-idle-rabbitmq-17000 "$B" idle --target rabbitmq --connections 17000 --rooms 100 --duration 20 \
    --ramp-timeout 150 --sources 4 --heart-beat 10000,10000 --server-pid $P --json "$OUT/fig3-idle-rabbitmq-17000.json"
  herald_start
  run fig3-idle-herald-19800 "$B" idle --url $HURL --users 10 --connections 19800 --max-connections 19900 \
    --connect-rate 20000 --max-pending 1024 --rooms 100 --duration 10 --ramp-timeout 120 --sources 8 \
    --heart-beat 10000,10000 --server-pid $H --json "$OUT/fig3-idle-herald-19800.json"
fi
if has 4; then
  herald_start; rabbit_restart
  fan() { # fan TARGET SUBS DELIVERIES
    local extra
    if [ "$1" = herald ]; then extra="--url $HURL --users 10 --server-pid $H"; else extra="--target rabbitmq --server-pid $P"; fi
    run "fig4-fanout-$1-$2-$3" "$B" fanout $extra --connections "$2" --publishers 4 --delivery-rate "$3" --duration 10 \
      --ramp-timeout 90 --settle 2 --drain 5 --threads 2 --sources 4 --json "$OUT/fig4-fanout-$1-$2-$3.json"
    sleep 3
  }
  for d in 20000 50000; do fan herald 1000 $d; fan rabbitmq 1000 $d; done
  fan herald 1000 100000
  for d in 10000 20000; do fan herald 10000 $d; fan rabbitmq 10000 $d; done
  for d in 100000 200000 400000; do fan herald 10000 $d; done
fi
if has 5; then
  per() { # per NAME TARGET RATE
    local extra
    if [ "$2" = herald ]; then extra="--url $HURL --users 10 --server-pid $H"; else extra="--target rabbitmq --server-pid $P"; fi
    run "fig5-persist-$1-rate$3" "$B" persist $extra --connections 1000 --rooms 1000 --window 4 --rate "$3" --duration 10 \
      --drain 5 --threads 2 --sources 4 --json "$OUT/fig5-persist-$1-rate$3.json"
  }
  rm -f /tmp/bench/herald.db /tmp/bench/herald.db-wal /tmp/bench/herald.db-shm
  herald_start; per sqlite herald 0; per sqlite herald 20000
  DB=herald_bench_$(date +%s)
  mysql -uroot -h127.0.0.1 -e "CREATE DATABASE $DB" && log "mariadb database $DB created"
  herald_start "mysql://root@127.0.0.1:3306/$DB"; per mariadb herald 0; per mariadb herald 20000
  mysql -uroot -h127.0.0.1 -e "SELECT COUNT(*) AS committed_rows FROM $DB.chat_messages" >> "$OUT/run.log"
  "$S/herald.sh" stop
  mysql -uroot -h127.0.0.1 -e "DROP DATABASE $DB" && log "mariadb database $DB dropped"
  P=$(pgrep -x beam.smp | head -1); per rabbitmq rabbitmq 0; per rabbitmq rabbitmq 20000
fi
if has 6; then
  # Users bench_user_0..19003 live in /tmp/bench/sse/herald-sse.db and their tokens in /tmp/bench/sse/tokens.txt:
  # the first run signs them up and logs them in (38,008 argon2 hashes, ~15 min here); later runs reuse both. A fresh
  # database with an old token cache would make every POST /notifications a 404: delete both together.
  herald_start sqlite:///tmp/bench/sse/herald-sse.db
  for r in 200 1000; do
    run "fig6-sse-19000-rate$r" "$B" sse --url $HURL --connections 19000 --max-connections 19900 --publishers 4 --rate $r \
      --duration 10 --ramp-timeout 120 --threads 2 --sources 8 --login-timeout 2000 --token-cache /tmp/bench/sse/tokens.txt \
      --server-pid $H --json "$OUT/fig6-sse-19000-rate$r.json"
  done
fi
"$S/herald.sh" stop
log "done; outputs in $OUT"
