"""Herald against Python's stomp.py over WebSocket (WSConnection): transactions, ack modes, DISCONNECT.

Run by run.sh against a live dev-mode server: HERALD_URL=http://127.0.0.1:8080 python test_stomp_py.py
Each test uses fresh room ids, so the suite can run again and again against one database.
"""

import json
import os
import sys
import threading
import time
import unittest
import urllib.parse
import urllib.request
import uuid

import stomp

HERALD_URL = os.environ.get("HERALD_URL", "http://127.0.0.1:8080").rstrip("/")
TIMEOUT = float(os.environ.get("HERALD_TEST_TIMEOUT_S", "10"))
PASSWORDS = {"alice": "alicepass", "bob": "bobpass", "testuser": "testpass"}


def http(method, path, token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(HERALD_URL + path, data=data, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
        return json.loads(resp.read().decode())


TOKENS = {}


def login(user):
    # One login per user and run: the suite runs right after the Node suites and newman against the
    # same server, and a login rate limit per username (10 a minute by default) is not what it tests.
    # An access token lives 15 minutes, far longer than the suite.
    if user not in TOKENS:
        body = {"username": user, "password": PASSWORDS[user]}
        TOKENS[user] = http("POST", "/auth/login", body=body)["data"]["accessToken"]
    return TOKENS[user]


def history(token, room):
    return http("GET", "/chat/history/%s?limit=500" % room, token=token)


def room(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


class Recorder(stomp.ConnectionListener):
    """Keeps every frame the server sent, and lets a test wait for one."""

    def __init__(self):
        self.frames = []
        self.cond = threading.Condition()

    def _add(self, kind, frame):
        with self.cond:
            self.frames.append((kind, frame))
            self.cond.notify_all()

    def on_message(self, frame):
        self._add("MESSAGE", frame)

    def on_receipt(self, frame):
        self._add("RECEIPT", frame)

    def on_error(self, frame):
        self._add("ERROR", frame)

    def on_disconnected(self):
        self._add("DISCONNECTED", None)

    def wait_for(self, predicate, what, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for kind, frame in self.frames:
                    if predicate(kind, frame):
                        return frame
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for %s; got %s" % (what, self.describe()))
                self.cond.wait(left)

    def receipt(self, receipt_id):
        return self.wait_for(
            lambda k, f: k == "RECEIPT" and f.headers.get("receipt-id") == receipt_id, "RECEIPT " + receipt_id
        )

    def messages(self, destination=None):
        with self.cond:
            return [
                f for k, f in self.frames
                if k == "MESSAGE" and (destination is None or f.headers.get("destination") == destination)
            ]

    def wait_messages(self, destination, count):
        self.wait_for(lambda k, f: len(self.messages(destination)) >= count, "%d MESSAGEs on %s" % (count, destination))
        return self.messages(destination)

    def kinds(self):
        with self.cond:
            return [k for k, _ in self.frames]

    def describe(self):
        with self.cond:
            return [(k, f.headers if f else None) for k, f in self.frames]


def connect(user):
    """A CONNECTed stomp.py WSConnection for `user`, with its Recorder."""
    parsed = urllib.parse.urlparse(HERALD_URL)
    conn = stomp.WSConnection([(parsed.hostname, parsed.port or 80)], ws_path="/ws/chat", reconnect_attempts_max=1)
    recorder = Recorder()
    conn.set_listener("recorder", recorder)
    conn.connect(headers={"Authorization": "Bearer " + login(user)}, wait=True)
    return conn, recorder


def chat(room_id, text):
    return json.dumps({"roomId": room_id, "message": text})


class StompPyAgainstHerald(unittest.TestCase):
    def setUp(self):
        self.conns = []

    def tearDown(self):
        for conn in self.conns:
            if conn.is_connected():
                try:
                    conn.disconnect()
                except (OSError, stomp.exception.StompException):
                    # The server may have just closed it (after an ERROR): nothing left to say.
                    pass

    def open(self, user):
        conn, recorder = connect(user)
        self.conns.append(conn)
        return conn, recorder

    def test_transaction_commit_is_broadcast_once_committed_in_order(self):
        room_id = room("py-commit")
        topic = "/topic/chat." + room_id
        bob, bob_frames = self.open("bob")
        bob.subscribe(topic, id="w", headers={"receipt": "sub"})
        bob_frames.receipt("sub")
        alice, alice_frames = self.open("alice")
        tx = alice.begin()
        for i in range(3):
            alice.send("/app/chat.send", chat(room_id, "py %d" % i), content_type="application/json",
                       headers={"transaction": tx})
        time.sleep(0.5)
        self.assertEqual(bob_frames.messages(topic), [], "held until COMMIT")
        self.assertEqual(history(login("bob"), room_id), [], "nothing stored before COMMIT")
        alice.commit(tx, headers={"receipt": "commit"})
        alice_frames.receipt("commit")
        got = bob_frames.wait_messages(topic, 3)
        self.assertEqual([json.loads(f.body)["message"] for f in got], ["py 0", "py 1", "py 2"])
        self.assertEqual([m["message"] for m in history(login("bob"), room_id)], ["py 0", "py 1", "py 2"])

    def test_transaction_abort_stores_nothing(self):
        room_id = room("py-abort")
        alice, frames = self.open("alice")
        tx = alice.begin()
        alice.send("/app/chat.send", chat(room_id, "never"), content_type="application/json",
                   headers={"transaction": tx})
        alice.abort(tx, headers={"receipt": "abort"})
        frames.receipt("abort")
        alice.send("/app/chat.send", chat(room_id, "after"), content_type="application/json",
                   headers={"receipt": "after"})
        frames.receipt("after")
        self.assertEqual([m["message"] for m in history(login("alice"), room_id)], ["after"])
        self.assertNotIn("ERROR", frames.kinds())

    def test_client_individual_acks(self):
        room_id = room("py-ack")
        topic = "/topic/chat." + room_id
        bob, frames = self.open("bob")
        bob.subscribe(topic, id="ci", ack="client-individual", headers={"receipt": "sub"})
        frames.receipt("sub")
        alice, _ = self.open("alice")
        for i in range(2):
            alice.send("/app/chat.send", chat(room_id, "ack me %d" % i), content_type="application/json")
        got = frames.wait_messages(topic, 2)
        for f in got:
            self.assertEqual(f.headers.get("ack"), "ci/" + f.headers["message-id"], f.headers)
        bob.ack(got[0].headers["ack"], receipt="ack-0")
        frames.receipt("ack-0")
        bob.nack(got[1].headers["ack"], receipt="nack-1")
        frames.receipt("nack-1")
        time.sleep(0.3)
        self.assertEqual(len(frames.messages(topic)), 2, "topics do not redeliver")
        self.assertNotIn("ERROR", frames.kinds())

    def test_ack_of_an_id_never_sent_is_an_error(self):
        bob, frames = self.open("bob")
        bob.subscribe("/topic/chat." + room("py-never"), id="ci", ack="client-individual", headers={"receipt": "s"})
        frames.receipt("s")
        bob.ack("ci/999999999", receipt="never")
        error = frames.wait_for(lambda k, f: k == "ERROR", "ERROR")
        self.assertEqual(error.headers.get("message"), "unknown ack id")

    def test_disconnect_receipt_comes_after_the_sends_before_it(self):
        room_id = room("py-bye")
        alice, frames = self.open("alice")
        for i in range(50):
            alice.send("/app/chat.send", chat(room_id, "bye %d" % i), content_type="application/json")
        alice.disconnect(receipt="bye")
        frames.receipt("bye")
        frames.wait_for(lambda k, f: k == "DISCONNECTED", "the close")
        self.assertEqual(len(history(login("alice"), room_id)), 50, "every SEND settled before the RECEIPT")


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    sys.stderr.flush()
    print("stomp.py suite: %d passed, %d failed" % (result.testsRun - failed, failed), flush=True)
    sys.exit(1 if failed or result.testsRun == 0 else 0)
