"""Hostile-input smoke test of herald-reference: the server must survive each case and still serve a normal client.

    python3 bench/scripts/reference_hostile.py [PORT]      (default 18081; start it with bench/scripts/reference.sh)

Cases: junk instead of an HTTP request, an oversized request head, junk after the upgrade, an unmasked frame, a frame
declaring 2^63 bytes, malformed STOMP, a STOMP frame split at every byte, a fragmented message, a 64 KiB frame and one
over the limit, many frames in one write, a SEND with bad JSON, a DISCONNECT without a receipt, and a subscriber that never reads (slow consumer).
Bounded: every socket has a 5 s timeout; the whole run takes a few seconds.
"""

import base64
import os
import random
import socket
import struct
import sys
import time

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 18081


def conn(upgrade=True):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    if upgrade:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(
            f"GET /ws/chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            assert chunk, "closed during the upgrade"
            buf += chunk
        assert buf.startswith(b"HTTP/1.1 101"), buf[:40]
    return s


def frame(payload, opcode=1, fin=True, mask=True):
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    k = os.urandom(4)
    return head + k + bytes(x ^ k[i % 4] for i, x in enumerate(payload))


def read_until(s, needle, limit=1 << 20):
    buf = b""
    while needle not in buf and len(buf) < limit:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
    return buf


def closes(s):
    """True once the server closes the connection (after whatever it sends first)."""
    s.settimeout(5)
    try:
        while s.recv(65536):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


CONNECT = b"CONNECT\naccept-version:1.2\nhost:x\nAuthorization:Bearer t\n\n\0"


def healthy():
    a, b = conn(), conn()
    for s, sid in ((a, b"a"), (b, b"b")):
        s.sendall(frame(CONNECT) + frame(b"SUBSCRIBE\nid:" + sid + b"\ndestination:/topic/chat.hostile\n\n\0"))
        assert b"CONNECTED" in read_until(s, b"CONNECTED")
    a.sendall(frame(b'SEND\ndestination:/app/chat.send\nreceipt:1\n\n{"roomId":"hostile","message":"ok"}\0'))
    got_a = read_until(a, b"receipt-id:1")
    got_b = read_until(b, b'"message":"ok"')
    assert b"subscription:a" in got_a and b"RECEIPT" in got_a, got_a
    assert b"subscription:b" in got_b, got_b
    a.close()
    b.close()


def case(name, fn):
    fn()
    healthy()
    print(f"ok  {name}")


def junk_request():
    s = conn(False)
    s.sendall(os.urandom(3000) + b"\r\n\r\n")
    assert closes(s)


def huge_head():
    s = conn(False)
    try:
        s.sendall(b"GET /ws/chat HTTP/1.1\r\n" + b"X: " + b"a" * 20000)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert closes(s)


def junk_after_upgrade():
    s = conn()
    s.sendall(bytes(random.randrange(256) for _ in range(5000)))
    assert closes(s)


def unmasked():
    s = conn()
    s.sendall(frame(CONNECT, mask=False))
    assert closes(s)


def giant_length():
    s = conn()
    s.sendall(bytes([0x82, 0xFF]) + b"\x7f" + b"\xff" * 7 + os.urandom(4))
    assert closes(s)


def bad_stomp():
    for junk in (b"HELLO\n\n\0", b"CONNECT\nnocolon\n\n\0", b"SEND\ncontent-length:9\n\nab\0xxxxxxxxxx", b"\0\n\n\0"):
        s = conn()
        s.sendall(frame(junk))
        assert b"ERROR" in read_until(s, b"ERROR"), junk
        assert closes(s)


def split_every_byte():
    s = conn()
    data = frame(CONNECT)
    for i in range(len(data)):
        s.sendall(data[i : i + 1])
        time.sleep(0.001)
    assert b"CONNECTED" in read_until(s, b"CONNECTED")
    s.close()


def fragmented():
    s = conn()
    s.sendall(frame(CONNECT[:10], fin=False) + frame(b"ping", opcode=9) + frame(CONNECT[10:], opcode=0))
    got = read_until(s, b"CONNECTED")
    assert b"CONNECTED" in got and b"ping" in got, got
    s.sendall(frame(b"x", opcode=0))  # a continuation with nothing to continue
    assert closes(s)


def big_frames():
    s = conn()
    body = b'{"roomId":"hostile","message":"' + b"y" * 1900 + b'"}'
    pad = b"x" * (65536 - 200 - len(body))
    s.sendall(frame(CONNECT) + frame(b"SEND\ndestination:/app/chat.send\nreceipt:big\npad:" + pad + b"\n\n" + body + b"\0"))
    got = read_until(s, b"receipt-id:big")
    assert b"receipt-id:big" in got, got[-200:]
    s.sendall(frame(b"SEND\n\n" + b"z" * 70000 + b"\0", opcode=2))
    assert closes(s)


def many_frames():
    s = conn()
    burst = frame(CONNECT) + b"".join(frame(b"SEND\ndestination:/app/chat.send\nreceipt:%d\n\n{\"roomId\":\"r\",\"message\":\"m\"}\0" % i) for i in range(500))
    s.sendall(burst)
    got = read_until(s, b"receipt-id:499\n")
    assert got.count(b"RECEIPT") == 500, got.count(b"RECEIPT")
    s.close()


def bad_json():
    s = conn()
    s.sendall(frame(CONNECT) + frame(b"SUBSCRIBE\nid:e\ndestination:/user/queue/errors\n\n\0"))
    s.sendall(frame(b"SEND\ndestination:/app/chat.send\nreceipt:7\n\n{not json\0"))
    got = read_until(s, b"INVALID_REQUEST")
    assert b"INVALID_REQUEST" in got and b"RECEIPT" not in got, got
    s.close()


def disconnect():
    s = conn()
    s.sendall(frame(CONNECT) + frame(b"DISCONNECT\n\n\0"))
    assert b"CONNECTED" in read_until(s, b"CONNECTED")
    assert closes(s)


def slow_consumer():
    slow = conn()
    slow.sendall(frame(CONNECT) + frame(b"SUBSCRIBE\nid:s\ndestination:/topic/chat.slow\n\n\0"))
    assert b"CONNECTED" in read_until(slow, b"CONNECTED")
    pub = conn()
    pub.sendall(frame(CONNECT))
    read_until(pub, b"CONNECTED")
    msg = b'SEND\ndestination:/app/chat.send\n\n{"roomId":"slow","message":"' + b"q" * 1900 + b'"}\0'
    for _ in range(5000):  # ~10 MB to a client that reads nothing: over the kernel's buffers (~4 MB) + 1 MiB
        pub.sendall(frame(msg))
    time.sleep(1)
    assert b"slow consumer" in read_until(slow, b"slow consumer", limit=32 << 20)
    pub.close()


for name, fn in [
    ("junk instead of a request", junk_request),
    ("oversized request head", huge_head),
    ("junk after the upgrade", junk_after_upgrade),
    ("unmasked client frame", unmasked),
    ("frame declaring 2^63 bytes", giant_length),
    ("malformed STOMP", bad_stomp),
    ("CONNECT split at every byte", split_every_byte),
    ("fragmented message with a ping inside", fragmented),
    ("64 KiB frame, then one over the limit", big_frames),
    ("500 frames in one write", many_frames),
    ("SEND with bad JSON", bad_json),
    ("DISCONNECT without a receipt", disconnect),
    ("slow consumer", slow_consumer),
]:
    case(name, fn)
print("all cases passed; the server is still serving")
