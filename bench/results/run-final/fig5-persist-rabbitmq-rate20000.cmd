/tmp/bench/bin/herald-bench persist --target rabbitmq --server-pid 9512 --connections 1000 --rooms 1000 --window 4 --rate 20000 --duration 10 --drain 5 --threads 2 --sources 4 --json /tmp/bench/run-final/fig5-persist-rabbitmq-rate20000.json
exit 0
