/tmp/bench/bin/herald-bench sse --url ws://127.0.0.1:18080/ws/chat --connections 19000 --max-connections 19900 --publishers 4 --rate 1000 --duration 10 --ramp-timeout 120 --threads 2 --sources 8 --login-timeout 2000 --token-cache /tmp/bench/sse/tokens.txt --server-pid 10741 --json /tmp/bench/run-final/fig6-sse-19000-rate1000.json
exit 0
