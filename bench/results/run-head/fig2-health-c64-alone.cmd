wrk -t1 -c64 -d5s --latency http://127.0.0.1:18080/health
exit 0
