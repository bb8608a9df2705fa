#!/usr/bin/env python3
# A RESP proxy in front of Redis for bench/scripts/cluster.sh: forwards everything, but sends every other
# PUBLISH to a channel nobody reads (a lost publish: Redis answers as usual, the publisher does not notice).
#   losing_proxy.py LISTEN_PORT REDIS_PORT      (loopback only)
import socket, sys, threading
listen_port, upstream = int(sys.argv[1]), int(sys.argv[2])
count = [0]
def pump(src, dst):
    try:
        while (data := src.recv(65536)):
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try: s.shutdown(socket.SHUT_RDWR)
        except OSError: pass
def parse(buf):
    # One RESP array of bulk strings from the front of buf: (parts, used) or None.
    if not buf.startswith(b"*"): return None
    end = buf.find(b"\r\n")
    if end < 0: return None
    n, at, parts = int(buf[1:end]), end + 2, []
    for _ in range(n):
        end = buf.find(b"\r\n", at)
        if end < 0: return None
        size = int(buf[at + 1:end]); start = end + 2
        if len(buf) < start + size + 2: return None
        parts.append(buf[start:start + size]); at = start + size + 2
    return parts, at
def commands(client, server):
    buf = b""
    try:
        while (data := client.recv(65536)):
            buf += data; out = b""
            while (got := parse(buf)) is not None:
                parts, used = got; buf = buf[used:]
                if parts[0].upper() == b"PUBLISH" and len(parts) == 3:
                    count[0] += 1
                    if count[0] % 2 == 0:
                        parts[1] = b"herald-bench:lost"
                out += b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
            server.sendall(out)
    except OSError:
        pass
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", listen_port)); ls.listen(64)
while True:
    c, _ = ls.accept(); s = socket.create_connection(("127.0.0.1", upstream))
    threading.Thread(target=pump, args=(s, c), daemon=True).start()
    threading.Thread(target=commands, args=(c, s), daemon=True).start()
