wrk -t1 -c64 -d10s --latency -H Authorization: Bearer <token> http://127.0.0.1:18080/chat/history/room-1?limit=50
exit 0
