#!/bin/bash
# Restart the RabbitMQ Web-STOMP peer as /work/shared/BENCH-NOTES.md says (fd limit 20000, bench user); prints beam.smp's PID.
rabbitmqctl stop >/dev/null 2>&1
su rabbitmq -s /bin/sh -c "ulimit -n 20000; cd /var/lib/rabbitmq; /usr/lib/rabbitmq/bin/rabbitmq-server -detached"
for _ in $(seq 60); do rabbitmqctl await_startup >/dev/null 2>&1 && break; sleep 1; done
rabbitmq-plugins enable rabbitmq_web_stomp >/dev/null 2>&1
rabbitmqctl add_user bench benchpass >/dev/null 2>&1
rabbitmqctl set_permissions -p / bench ".*" ".*" ".*" >/dev/null 2>&1
for _ in $(seq 30); do (exec 3<>/dev/tcp/127.0.0.1/15674) 2>/dev/null && break; sleep 1; done
pgrep -x beam.smp | head -1
