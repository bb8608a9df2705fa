#!/bin/bash
# Scenario A (or --connections/--rate as given) against one server with `perf stat -I 1000` on the server process:
# task clock, context switches and syscall counts per second (sendto = one write to a socket), plus per thread.
# usage: pstat.sh herald|reference OUTDIR [conns] [rate]     (HERALD_BIN, REFERENCE_BIN, BENCH, BENCH_EXTRA)
# Needs root (syscall tracepoints; mount tracefs on /sys/kernel/tracing first if it is not mounted).
# The sendto totals in bench/RESULTS.md sum the per-second rows after the connect ramp (recvfrom < 100 per second).
cd "$(dirname "$0")/../../../../.."
which=$1; out=$2; conns=${3:-10000}; rate=${4:-2}
mkdir -p $out
export BENCH_TMP=/tmp/bench-pstat HERALD_TIMEOUT=600 REFERENCE_TIMEOUT=600 HERALD_BENCH_BIND=127.0.0.1:28080 REFERENCE_BIND=127.0.0.1:28081
HERALD_BIN=${HERALD_BIN:-target/release/herald}; export HERALD_BIN
REFERENCE_BIN=${REFERENCE_BIN:-target/release/herald-reference}; export REFERENCE_BIN
ulimit -n 20000
if [ $which = herald ]; then rm -f $BENCH_TMP/herald.db*; pid=$(bench/scripts/herald.sh start); url=ws://$HERALD_BENCH_BIND/ws/chat; extra="--users 10"
else pid=$(bench/scripts/reference.sh start); url=ws://$REFERENCE_BIND/ws/chat; extra=""; fi
EV=task-clock,context-switches,raw_syscalls:sys_enter,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendto,syscalls:sys_enter_read,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex
perf stat -I 1000 -x, -e $EV -p $pid -o $out/$which.perf &
perf stat --per-thread -x, -e syscalls:sys_enter_sendto,task-clock -p $pid -o $out/$which.threads &
pp2=$!
ppid=$!
${BENCH:-target/release/herald-bench} fanout --target $which --url $url $extra --threads 2 --sources 4 --settle 2 --drain 5 --connect-rate 10000 \
  --max-pending 1024 --ramp-timeout 60 --connections $conns --rooms 1 --publishers 2 --rate $rate --duration 10 $BENCH_EXTRA --json $out/$which.json > $out/$which.txt 2>&1
kill -INT $ppid $pp2; wait $ppid $pp2
if [ $which = herald ]; then bench/scripts/herald.sh stop; else bench/scripts/reference.sh stop; fi
python3 - $out/$which.perf <<'PY'
import sys,collections
rows=collections.defaultdict(dict)
for l in open(sys.argv[1]):
    if l.startswith('#') or not l.strip(): continue
    f=l.strip().split(',')
    try: t=float(f[0]); v=float(f[1])
    except: continue
    rows[t][f[3]]=v
# the fan-out seconds: those with the most writes
ts=sorted(rows)
busy=[t for t in ts if rows[t].get('syscalls:sys_enter_write',0)+rows[t].get('syscalls:sys_enter_sendto',0)>3000]
tot=collections.Counter()
for t in busy:
    for k,v in rows[t].items(): tot[k]+=v
print('busy seconds',len(busy))
for k,v in sorted(tot.items()): print(f'{k:40s} {v:14.0f}')
PY
