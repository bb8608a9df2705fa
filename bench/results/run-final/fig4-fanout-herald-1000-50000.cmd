/tmp/bench/bin/herald-bench fanout --url ws://127.0.0.1:18080/ws/chat --users 10 --server-pid 9439 --connections 1000 --publishers 4 --delivery-rate 50000 --duration 10 --ramp-timeout 90 --settle 2 --drain 5 --threads 2 --sources 4 --json /tmp/bench/run-final/fig4-fanout-herald-1000-50000.json
exit 0
