/work/main/target/release/herald-bench idle --url ws://127.0.0.1:18080/ws/chat --users 10 --connections 19800 --max-connections 19900 --connect-rate 20000 --max-pending 1024 --rooms 100 --duration 10 --ramp-timeout 120 --sources 8 --heart-beat 10000,10000 --server-pid 25717 --json /tmp/bench/run-head/fig3-idle-herald-19800.json
exit 0
