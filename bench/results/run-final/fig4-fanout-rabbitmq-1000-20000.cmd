/tmp/bench/bin/herald-bench fanout --target rabbitmq --server-pid 9512 --connections 1000 --publishers 4 --delivery-rate 20000 --duration 10 --ramp-timeout 90 --settle 2 --drain 5 --threads 2 --sources 4 --json /tmp/bench/run-final/fig4-fanout-rabbitmq-1000-20000.json
exit 0
