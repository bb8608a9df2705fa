#!/bin/bash
# Cluster figures of bench/RESULTS.md (SPEC §6): one node vs three nodes on one MariaDB database and one
# Redis, with the same total load, side by side, each configuration ROUNDS times (default 2: the noise);
# then the latencies of gap fills (publishes dropped) and of poll mode (Redis down).
#
#   bench/scripts/cluster.sh            outputs in $OUT (default /tmp/bench/cluster-<time>), summary.txt there
#
# Load (environment): SUBS subscribers (600) over ROOMS rooms (5: keep it coprime with the node count, or a
# room's subscribers all land on one node), PUBS publishers (12), DELIVERY_RATE
# deliveries/s offered (12000), DURATION seconds (10). Each run starts its own redis-server on a free port
# (--save '') and a fresh MariaDB database (root@127.0.0.1:3306, dropped afterwards); nodes listen on
# 127.0.0.1:1818x. Every process is bounded by `timeout`. CPU per delivery = (utime + stime of every node
# during the run) / deliveries received; Redis commands come from its INFO commandstats.
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
HERALD=${HERALD_BIN:-$here/target/release/herald}
B=${BENCH_BIN:-$here/target/release/herald-bench}
OUT=${OUT:-/tmp/bench/cluster-$(date +%Y%m%d-%H%M%S)}
SUBS=${SUBS:-600}; PUBS=${PUBS:-12}; ROOMS=${ROOMS:-5}; RATE=${DELIVERY_RATE:-12000}; DUR=${DURATION:-10}
mkdir -p "$OUT"
ulimit -n 20000
TICK=$(getconf CLK_TCK)
PIDS=(); REDIS_PID=""; DB=""; REDIS_PORT=""

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sql() { mariadb -h127.0.0.1 -uroot -N -e "$1"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# The process that `timeout` started (its only child).
child_of() { for _ in $(seq 50); do pgrep -P "$1" && return 0; sleep 0.1; done; echo "$1"; }
metric_sum() { # metric name: summed over the nodes
  local total=0 v
  for port in "${PORTS[@]}"; do
    v=$(curl -s "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m {print $2}')
    total=$(python3 -c "print(${total} + ${v:-0})")
  done
  echo "$total"
}
redis_cmd() { python3 - "$REDIS_PORT" "$@" <<'EOF'
import socket, sys
port, args = int(sys.argv[1]), sys.argv[2:]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args)).encode())
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk: break
    data += chunk
    if data.startswith(b"$"):
        head, _, rest = data.partition(b"\r\n")
        if len(rest) >= int(head[1:]) + 2: break
    elif data.endswith(b"\r\n"): break
print(data.decode(errors="replace"))
EOF
}
publish_calls() { redis_cmd INFO commandstats | tr -d '\r' | awk -F'[=,:]' '/^cmdstat_publish:/ {print $3}'; }

start_redis() {
  REDIS_PORT=$(free_port)
  timeout 3600 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$OUT/redis.log" 2>&1 &
  REDIS_PID=$(child_of $!)
  for _ in $(seq 50); do redis_cmd PING 2>/dev/null | grep -q PONG && return 0; sleep 0.1; done
  echo "redis-server did not start" >&2; exit 1
}
stop_redis() {
  [ -n "$REDIS_PID" ] && kill -KILL "$REDIS_PID" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.1; done
  REDIS_PID=""
}
start_losing_proxy() {
  PROXY_PORT=$(free_port)
  timeout 3600 python3 "$here/bench/scripts/losing_proxy.py" "$PROXY_PORT" "$REDIS_PORT" >"$OUT/proxy.log" 2>&1 &
  PROXY_PID=$(child_of $!)
  sleep 0.5
}

# start_nodes COUNT REACTORS_EACH [EXTRA_TOML] [LAST_NODE_REDIS_URL]: a fresh database, COUNT nodes with
# Redis (when COUNT > 1); the last node may reach Redis through another URL (the losing proxy).
start_nodes() {
  local count=$1 reactors=$2 extra=${3:-} last_redis=${4:-}
  DB="herald_bench_cluster_$$_$RANDOM"; sql "CREATE DATABASE $DB CHARACTER SET utf8mb4"
  PIDS=(); PORTS=(); NODES=""
  # [cluster] is the last table of herald-bench.toml: extra keys appended land in it.
  cp "$here/bench/herald-bench.toml" "$OUT/node.toml"; printf '%s\n' "$extra" >>"$OUT/node.toml"
  for i in $(seq "$count"); do
    local port=$((18180 + i)) redis=""
    [ "$count" -gt 1 ] && redis="redis://127.0.0.1:$REDIS_PORT"
    [ "$i" = "$count" ] && [ -n "$last_redis" ] && redis=$last_redis
    HERALD_BIND=127.0.0.1:$port HERALD_DATABASE_URL=mysql://root@127.0.0.1:3306/$DB HERALD_REDIS_URL=$redis \
      HERALD_REACTORS=$reactors RUST_LOG=warn timeout 3600 "$HERALD" --config "$OUT/node.toml" >"$OUT/node-$i.log" 2>&1 &
    PIDS+=($(child_of $!)); PORTS+=($port); NODES="$NODES${NODES:+,}ws://127.0.0.1:$port/ws/chat"
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
  done
}
stop_nodes() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; done
  [ -n "$DB" ] && sql "DROP DATABASE IF EXISTS $DB"; DB=""
}
PROXY_PID=""
trap 'stop_nodes; stop_redis; [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null' EXIT

# run LABEL: the fan-out over the running nodes, with CPU and Redis accounting; one summary line.
run() {
  local label=$1 before=() after=() calls0 calls1 batches
  calls0=$(publish_calls 2>/dev/null); calls0=${calls0:-0}
  for pid in "${PIDS[@]}"; do before+=($(cpu_ticks "$pid")); done
  timeout 300 "$B" cluster --nodes "$NODES" --http "http://127.0.0.1:${PORTS[0]}" --users 20 \
    --token-cache "$OUT/tokens" --connections "$SUBS" --rooms "$ROOMS" --publishers "$PUBS" \
    --delivery-rate "$RATE" --duration "$DUR" --settle 2 --drain 5 --json "$OUT/$label.json" >"$OUT/$label.txt" 2>&1
  for pid in "${PIDS[@]}"; do after+=($(cpu_ticks "$pid")); done
  calls1=$(publish_calls 2>/dev/null); calls1=${calls1:-0}
  batches=$(metric_sum herald_chat_batches_committed_total)
  local ticks=0
  for i in "${!PIDS[@]}"; do ticks=$((ticks + ${after[$i]} - ${before[$i]})); done
  python3 - "$OUT/$label.json" "$label" "$ticks" "$TICK" "$((calls1 - calls0))" "$batches" \
    "$(metric_sum herald_cluster_gap_fills_total)" "$(metric_sum herald_cluster_polls_total)" \
    "$(metric_sum herald_sequencer_held_total)" "$(metric_sum herald_sequencer_hold_seconds_total)" \
    "$(cat /proc/loadavg | cut -d' ' -f1-3)" <<'EOF' | tee -a "$OUT/summary.txt"
import json, sys
path, label, ticks, hz, calls, batches, fills, polls, held, held_s, load = sys.argv[1:]
r = json.load(open(path))
lat = r.get("send_to_message_latency", {})
def ms(k):
    v = lat.get(k)
    return "%.1f" % v if isinstance(v, (int, float)) else str(v)
recv = r.get("deliveries_received") or 0
cpu_s = int(ticks) / int(hz)
per = 1e6 * cpu_s / recv if recv else float("nan")
b = float(batches or 0)
print(f"{label:24} deliveries/s {r.get('deliveries_per_s', 0):>9.0f}  missing {r.get('deliveries_missing')} extra {r.get('deliveries_extra')} "
      f"order_regressions {r.get('order_id_regressions')}  p50 {ms('p50_ms')} ms  p99 {ms('p99_ms')} ms  "
      f"server CPU {cpu_s:.2f} s = {per:.1f} us/delivery  PUBLISH {calls} over {b:.0f} batches = "
      f"{(int(calls) / b if b else 0):.2f}/batch  gap fills {fills}  polls+audits {polls}  held {held} "
      f"(avg {(1000 * float(held_s) / float(held) if float(held) else 0):.0f} ms)  load {load}")
EOF
}

echo "== $(date +%T) load: SUBS=$SUBS ROOMS=$ROOMS PUBS=$PUBS DELIVERY_RATE=$RATE DURATION=$DUR; $(nproc) cores; loadavg $(cat /proc/loadavg)" | tee "$OUT/summary.txt"
start_redis
# Warm-up, not reported: signs the bench users up and fills the token cache, so that no run pays for argon2.
start_nodes 1 2; DUR=2 run "warm-up" >/dev/null; stop_nodes
for round in $(seq "${ROUNDS:-2}"); do
  start_nodes 1 2; run "one-node-r$round"; stop_nodes
  start_nodes 3 1; run "three-nodes-r$round"; stop_nodes
done
# Gap fills: node 3 reaches Redis through bench/scripts/losing_proxy.py, which loses every other PUBLISH; the
# other nodes find each gap from the next message of the room and read the missing ones from the store after
# gap_timeout_ms (250).
start_losing_proxy
start_nodes 3 1 "" "redis://127.0.0.1:$PROXY_PORT"; run "three-nodes-lossy"; stop_nodes
kill "$PROXY_PID" 2>/dev/null; PROXY_PID=""
# Poll mode: Redis down for the whole run; cross-node deliveries come from polls every poll_interval_ms (500).
start_nodes 3 1; stop_redis; sleep 1; run "three-nodes-poll-mode"; stop_nodes
echo "outputs in $OUT"
