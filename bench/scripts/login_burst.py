#!/usr/bin/env python3
"""Fire N POST /auth/login at once (one thread and one TCP connection each, released by a barrier).

usage: login_burst.py HOST:PORT N [USER:PASS ...]   (default users: testuser, alice, bob)
Prints the wall time of the burst and the login latency distribution; exits 1 if any login is not 200.
Loopback only.
"""
import http.client, json, sys, threading, time

def main():
    hostport, n = sys.argv[1], int(sys.argv[2])
    host, port = hostport.rsplit(":", 1)
    assert host.startswith("127."), "loopback only"
    creds = [c.split(":", 1) for c in sys.argv[3:]] or [["testuser", "testpass"], ["alice", "alicepass"], ["bob", "bobpass"]]
    barrier = threading.Barrier(n + 1)
    lat, status = [None] * n, [None] * n

    def one(i):
        u, p = creds[i % len(creds)]
        body = json.dumps({"username": u, "password": p})
        c = http.client.HTTPConnection(host, int(port), timeout=60)
        c.connect()
        barrier.wait()
        t = time.monotonic()
        c.request("POST", "/auth/login", body, {"Content-Type": "application/json"})
        r = c.getresponse(); r.read()
        lat[i], status[i] = time.monotonic() - t, r.status
        c.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads: t.start()
    barrier.wait()
    t0 = time.monotonic()
    for t in threads: t.join()
    wall = time.monotonic() - t0
    ok = sorted(l for l, s in zip(lat, status) if s == 200)
    codes = {}
    for s in status: codes[s] = codes.get(s, 0) + 1
    q = lambda p: ok[min(len(ok) - 1, int(p * len(ok)))] * 1000 if ok else float("nan")
    print(f"logins={n} status={codes} burst_wall_s={wall:.3f} logins_per_s={n / wall:.1f} "
          f"latency_ms p50={q(0.5):.1f} p99={q(0.99):.1f} max={(ok[-1] * 1000 if ok else float('nan')):.1f}")
    sys.exit(0 if codes.get(200, 0) == n else 1)

main()
