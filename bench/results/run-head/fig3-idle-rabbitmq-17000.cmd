/work/main/target/release/herald-bench idle --target rabbitmq --connections 17000 --rooms 100 --duration 20 --ramp-timeout 150 --sources 4 --heart-beat 10000,10000 --server-pid 25006 --json /tmp/bench/run-head/fig3-idle-rabbitmq-17000.json
exit 0
