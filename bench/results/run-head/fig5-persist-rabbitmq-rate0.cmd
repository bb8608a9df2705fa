/work/main/target/release/herald-bench persist --target rabbitmq --server-pid 25006 --connections 1000 --rooms 1000 --window 4 --rate 0 --duration 10 --drain 5 --threads 2 --sources 4 --json /tmp/bench/run-head/fig5-persist-rabbitmq-rate0.json
exit 0
