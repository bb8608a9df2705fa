"""Targeted requests for the documented statuses that generated requests cannot reach: bodies over
the size limit, rate limits, a full room, a store that is down, a peer that is not on loopback,
the WebSocket upgrade and the event stream. Each probe asserts the status it expects; every answer
is recorded as (method, path, status) for status_coverage.py.

    probes.py --main URL --strict URL --down URL --out probes.json

--main: a dev-mode server with rate limits raised (the schemathesis server); --strict: a dev-mode
server with the shipped rate limits, rooms.max_members = 2 and server.trusted_proxies = ["127.0.0.1"];
--down: a dev-mode server whose store cannot be reached. The three share the dev JWT secret, so a
token from one is valid on the others.
"""

import argparse
import json
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid

observed = []
failures = []


def call(base, method, path, body=None, token=None, headers=None, raw=None):
    """One request; returns (status, parsed JSON or None). Records the answer."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            status, text = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    except (urllib.error.URLError, ConnectionError, socket.timeout) as e:
        failures.append(f"{method} {path}: {e}")
        return 0, None
    observed.append((method, urllib.parse.urlparse(base + path).path, status))
    try:
        return status, json.loads(text)
    except ValueError:
        return status, None


def expect(what, got, want):
    if got != want:
        failures.append(f"{what}: expected {want}, got {got}")


def raw_status(base, request_bytes, method, path):
    """Sends raw HTTP bytes and returns the status of the first answer (for upgrade and stream)."""
    url = urllib.parse.urlparse(base)
    with socket.create_connection((url.hostname, url.port), timeout=10) as s:
        s.sendall(request_bytes)
        head = b""
        while b"\r\n" not in head:
            chunk = s.recv(1024)
            if not chunk:
                break
            head += chunk
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        failures.append(f"{method} {path}: no status line in {head[:80]!r}")
        return 0
    observed.append((method, path, status))
    return status


def login(base, user, password):
    status, body = call(base, "POST", "/auth/login", {"username": user, "password": password})
    if status != 200:
        failures.append(f"login {user} at {base}: {status}")
        return None, None
    return body["data"]["accessToken"], body["data"]["refreshToken"]


JSON_BODY_OPERATIONS = [
    ("POST", "/auth/signup"), ("POST", "/auth/login"), ("POST", "/auth/reissue"), ("POST", "/auth/refresh"),
    ("POST", "/auth/logout"), ("POST", "/notifications"), ("POST", "/rooms"),
    ("POST", "/rooms/{room}/members"), ("POST", "/rooms/{room}/read"),
]


def probe_main(base):
    alice, _ = login(base, "alice", "alicepass")
    bob, _ = login(base, "bob", "bobpass")
    room = "probe-" + uuid.uuid4().hex[:12]
    expect("create a room", call(base, "POST", "/rooms", {"roomId": room, "name": "probe", "private": True}, alice)[0], 201)
    big = b'{"x":"' + b"y" * (70 * 1024) + b'"}'
    for method, path in JSON_BODY_OPERATIONS:
        path = path.replace("{room}", room)
        expect(f"{method} {path} with a 70 KiB body", call(base, method, path, raw=big, token=alice)[0], 413)
    # A direct notification to bob, marked read by him.
    status, body = call(base, "POST", "/notifications", {"recipient": "bob", "message": "probe"}, alice)
    expect("direct notification", status, 201)
    if status == 201:
        nid = body["data"]["id"]
        expect("mark read", call(base, "POST", f"/notifications/{nid}/read", token=bob)[0], 200)
    expect("read mark of an unknown room", call(base, "POST", "/rooms/no-such-" + room + "/read", {"lastReadId": 1}, alice)[0], 404)
    # The event stream: 200 with a token, 401 without.
    host = urllib.parse.urlparse(base).netloc
    ok = raw_status(base, f"GET /notifications/stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {alice}\r\n\r\n".encode(), "GET", "/notifications/stream")
    expect("stream with a token", ok, 200)
    expect("stream without a token", raw_status(base, f"GET /notifications/stream HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(), "GET", "/notifications/stream"), 401)
    # The WebSocket upgrade: 101, and 400 when it is not one.
    upgrade = (f"GET /ws/chat HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    expect("websocket upgrade", raw_status(base, upgrade.encode(), "GET", "/ws/chat"), 101)
    expect("plain GET /ws/chat", raw_status(base, f"GET /ws/chat HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(), "GET", "/ws/chat"), 400)


def probe_strict(base):
    alice, _ = login(base, "alice", "alicepass")
    # Two members at most: the owner, one invitee, then 409.
    room = "full-" + uuid.uuid4().hex[:12]
    expect("create", call(base, "POST", "/rooms", {"roomId": room, "name": "full", "private": True}, alice)[0], 201)
    expect("invite bob", call(base, "POST", f"/rooms/{room}/members", {"username": "bob"}, alice)[0], 201)
    expect("invite testuser into a full room", call(base, "POST", f"/rooms/{room}/members", {"username": "testuser"}, alice)[0], 409)
    # The shipped per-username limit (10 a minute): the 11th attempt is refused.
    statuses = [call(base, "POST", "/auth/login", {"username": "testuser", "password": "wrong-password"})[0] for _ in range(11)]
    expect("login rate limit", statuses[-1], 429)
    statuses = [call(base, "POST", "/notifications", {"recipient": "bob", "message": "m"}, alice)[0] for _ in range(61)]
    expect("direct notification rate limit", statuses[-1], 429)
    # Behind a trusted proxy, a client that is not on loopback may not read /metrics.
    expect("metrics from a non-loopback client", call(base, "GET", "/metrics", headers={"X-Forwarded-For": "203.0.113.9"})[0], 403)


def probe_down(base, token, refresh):
    host = urllib.parse.urlparse(base).netloc
    expect("health with the store down", call(base, "GET", "/health")[0], 503)
    body_ops = [
        ("POST", "/auth/signup", {"username": "probe_user", "password": "probe-password"}),
        ("POST", "/auth/login", {"username": "alice", "password": "alicepass"}),
        ("POST", "/auth/reissue", {"refreshToken": refresh}),
        ("POST", "/auth/refresh", {"refreshToken": refresh}),
        ("POST", "/auth/logout", {"refreshToken": refresh}),
        ("POST", "/notifications", {"recipient": "bob", "message": "m"}),
        ("POST", "/notifications/1/read", None),
        ("POST", "/rooms", {"roomId": "down-room", "name": "n", "private": False}),
        ("POST", "/rooms/room-1/members", {"username": "bob"}),
        ("POST", "/rooms/room-1/read", {"lastReadId": 1}),
        ("POST", "/dm/bob", None),
        ("DELETE", "/rooms/room-1/members/bob", None),
        ("GET", "/users/me", None),
        ("GET", "/chat/history/room-1", None),
        ("GET", "/notifications", None),
        ("GET", "/rooms", None),
        ("GET", "/rooms/room-1", None),
    ]
    for method, path, body in body_ops:
        expect(f"{method} {path} with the store down", call(base, method, path, body, token)[0], 503)
    replay = f"GET /notifications/stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nLast-Event-ID: 0\r\n\r\n"
    expect("stream replay with the store down", raw_status(base, replay.encode(), "GET", "/notifications/stream"), 503)


def main():
    parser = argparse.ArgumentParser()
    for name in ("main", "strict", "down", "out"):
        parser.add_argument("--" + name, required=True)
    args = parser.parse_args()
    probe_main(args.main.rstrip("/"))
    probe_strict(args.strict.rstrip("/"))
    token, refresh = login(args.main.rstrip("/"), "testuser", "testpass")
    if token:
        probe_down(args.down.rstrip("/"), token, refresh)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump([{"method": m, "path": p, "status": s} for m, p, s in observed], f)
    for failure in failures:
        print("probe failed:", failure)
    print(f"probes: {len(observed)} answers recorded, {len(failures)} unexpected")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
