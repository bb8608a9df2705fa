wrk -t1 -c64 -d10s -s /work/main/bench/scripts/pipeline.lua http://127.0.0.1:18080/health -- 16
exit 0
