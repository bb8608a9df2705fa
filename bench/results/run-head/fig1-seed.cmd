/work/main/target/release/herald-bench persist --url ws://127.0.0.1:18080/ws/chat --users 2 --connections 2 --rooms 2 --room-prefix room- --rate 500 --duration 2
exit 0
