/work/main/target/release/herald-bench persist --url ws://127.0.0.1:18080/ws/chat --users 10 --server-pid 25845 --connections 1000 --rooms 1000 --window 4 --rate 0 --duration 10 --drain 5 --threads 2 --sources 4 --json /tmp/bench/run-head/fig5-persist-mariadb-rate0.json
exit 0
