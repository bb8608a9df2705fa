/work/main/target/release/herald-bench idle --url ws://127.0.0.1:18080/ws/chat --users 10 --connections 17000 --rooms 100 --duration 20 --ramp-timeout 120 --sources 4 --heart-beat 10000,10000 --server-pid 24934 --json /tmp/bench/run-head/fig3-idle-herald-17000.json
exit 0
