// Herald chat flow, as a STOMP client would see it (SPEC §3 login/history, §4 STOMP).
// Run: HERALD_URL=http://127.0.0.1:8080 node --test chat_flow.test.mjs
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@stomp/stompjs';
import { WebSocket } from 'ws';
import {
  BASE_URL,
  WS_URL,
  TEST_TIMEOUT,
  USERS,
  api,
  login,
  connectStomp,
  collect,
  ready,
  closeAll,
  uniqueRoom,
  rand,
  sleep,
  poll,
  withTimeout,
  assertChatShape,
  assertNotificationShape,
  assertErrorEnvelope,
  ERROR_CODES_401,
} from './lib/herald.mjs';

const T = { timeout: TEST_TIMEOUT };
const tokens = {};

async function history(room, token, query = '') {
  const res = await api('GET', `/chat/history/${room}${query}`, { token });
  assert.equal(res.status, 200, `history ${room}${query}: ${res.text}`);
  assert.ok(Array.isArray(res.json), `history is a bare JSON array: ${res.text}`);
  return res.json;
}

function assertMessageFrame(frame, { subscription, room }) {
  const h = frame.headers;
  assert.equal(h.destination, `/topic/chat.${room}`, 'destination header');
  assert.equal(h.subscription, subscription, 'subscription header is the subscriber id');
  assert.ok(h['message-id'] && h['message-id'].length > 0, 'message-id header');
  assert.match(h['content-type'] || '', /^application\/json(\s*;.*)?$/i, 'content-type header');
  if (h['content-length'] !== undefined) {
    assert.equal(Number(h['content-length']), Buffer.byteLength(frame.body, 'utf8'), 'content-length header');
  }
  assert.ok(frame.json, `body is JSON: ${frame.body}`);
  assertChatShape(frame.json);
  assert.equal(frame.json.roomId, room);
}

describe('chat flow (STOMP /ws/chat + /chat/history)', () => {
  before(async () => {
    for (const [u, p] of Object.entries(USERS)) {
      tokens[u] = (await login(u, p)).accessToken;
    }
  });

  it('login returns the seed envelope for every seeded user', T, async () => {
    for (const [u, p] of Object.entries(USERS)) {
      const { body } = await login(u, p);
      assert.equal(body.success, true);
      assert.equal(body.message, '로그인 성공');
    }
  });

  it('two users in two rooms: live broadcast, sender from the token, history', T, async () => {
    const roomA = uniqueRoom('roomA');
    const roomB = uniqueRoom('roomB');
    let alice, bob;
    try {
      alice = await connectStomp(tokens.alice);
      bob = await connectStomp(tokens.bob);

      // CONNECTED frame (SPEC §4)
      for (const [conn, user] of [[alice, 'alice'], [bob, 'bob']]) {
        const h = conn.connected.headers;
        assert.equal(h.version, '1.2', 'CONNECTED version');
        assert.match(h['heart-beat'] || '', /^\d+,\d+$/, 'CONNECTED heart-beat');
        assert.match(h.server || '', /^herald\/\S+/, 'CONNECTED server');
        assert.equal(h['user-name'], user, 'CONNECTED user-name');
      }

      const aliceA = collect(alice.client, `/topic/chat.${roomA}`, 'alice-A');
      const aliceB = collect(alice.client, `/topic/chat.${roomB}`, 'alice-B');
      const bobA = collect(bob.client, `/topic/chat.${roomA}`, 'bob-A');
      const bobB = collect(bob.client, `/topic/chat.${roomB}`, 'bob-B');

      // Every SUBSCRIBE carries a receipt: publish only once all are registered.
      await ready(aliceA, aliceB, bobA, bobB);

      // Forged sender must be ignored.
      alice.client.publish({
        destination: '/app/chat.send',
        body: JSON.stringify({ roomId: roomA, message: 'hi', sender: 'mallory' }),
        headers: { 'content-type': 'application/json' },
      });
      await aliceA.count(1);
      bob.client.publish({
        destination: '/app/chat.send',
        body: JSON.stringify({ roomId: roomB, message: 'hello from bob', sender: 'alice' }),
        headers: { 'content-type': 'application/json' },
      });
      await bobB.count(1);
      alice.client.publish({
        destination: '/app/chat.send',
        body: JSON.stringify({ roomId: roomB, message: 'hi bob' }),
        headers: { 'content-type': 'application/json' },
      });

      await Promise.all([aliceA.count(1), bobA.count(1), aliceB.count(2), bobB.count(2)]);
      await sleep(200); // anything extra (duplicates, cross-room leaks) would show up now

      assert.equal(aliceA.items.length, 1, 'roomA: exactly one message for alice');
      assert.equal(bobA.items.length, 1, 'roomA: exactly one message for bob');
      assert.equal(aliceB.items.length, 2, 'roomB: exactly two messages for alice');
      assert.equal(bobB.items.length, 2, 'roomB: exactly two messages for bob');

      for (const f of aliceA.items) assertMessageFrame(f, { subscription: 'alice-A', room: roomA });
      for (const f of bobA.items) assertMessageFrame(f, { subscription: 'bob-A', room: roomA });
      for (const f of aliceB.items) assertMessageFrame(f, { subscription: 'alice-B', room: roomB });
      for (const f of bobB.items) assertMessageFrame(f, { subscription: 'bob-B', room: roomB });

      const [a1] = aliceA.items.map((f) => f.json);
      assert.equal(a1.sender, 'alice', 'forged sender ignored');
      assert.equal(a1.message, 'hi');
      assert.deepEqual(bobA.items[0].json, a1, 'both subscribers see the same message');

      const b = aliceB.items.map((f) => f.json);
      assert.equal(b[0].sender, 'bob', 'forged sender ignored (bob claiming alice)');
      assert.equal(b[0].message, 'hello from bob');
      assert.equal(b[1].sender, 'alice');
      assert.ok(b[0].id < b[1].id, 'ids ascend within a room');
      assert.deepEqual(bobB.items.map((f) => f.json), b);

      // History: bare array, ascending by id, same objects as broadcast.
      assert.deepEqual(await history(roomA, tokens.testuser), [a1]);
      assert.deepEqual(await history(roomB, tokens.bob), b);
    } finally {
      await closeAll(alice?.client, bob?.client);
    }
  });

  it('history paging: limit (latest), after, before', T, async () => {
    const room = uniqueRoom();
    let alice;
    try {
      alice = await connectStomp(tokens.alice);
      const inbox = collect(alice.client, `/topic/chat.${room}`, 's1');
      await ready(inbox);
      for (const m of ['one', 'two', 'three']) {
        alice.client.publish({ destination: '/app/chat.send', body: JSON.stringify({ roomId: room, message: m }) });
      }
      await inbox.count(3);
      const all = inbox.items.map((f) => f.json);
      assert.deepEqual(all.map((m) => m.message), ['one', 'two', 'three']);
      assert.deepEqual(await history(room, tokens.alice), all);
      assert.deepEqual(await history(room, tokens.alice, '?limit=1'), [all[2]], 'limit returns the latest');
      assert.deepEqual(await history(room, tokens.alice, '?limit=2'), all.slice(1), 'limit=2 latest two, ascending');
      assert.deepEqual(await history(room, tokens.alice, `?after=${all[0].id}`), all.slice(1), 'after');
      assert.deepEqual(await history(room, tokens.alice, `?before=${all[2].id}`), all.slice(0, 2), 'before');
      assert.deepEqual(await history(uniqueRoom('empty'), tokens.alice), [], 'unknown room is an empty array');
    } finally {
      await closeAll(alice?.client);
    }
  });

  it('history requires a Bearer token', T, async () => {
    const res = await api('GET', `/chat/history/${uniqueRoom()}`);
    assertErrorEnvelope(res, 401, ERROR_CODES_401, 'history without token');
    const bad = await api('GET', `/chat/history/${uniqueRoom()}`, { token: 'not.a.jwt' });
    assertErrorEnvelope(bad, 401, ERROR_CODES_401, 'history with bad token');
  });

  it('SEND with receipt: RECEIPT arrives and the message is already in history', T, async () => {
    const room = uniqueRoom();
    let alice;
    try {
      alice = await connectStomp(tokens.alice);
      const receiptId = `r-${rand(8)}`;
      const got = new Promise((resolve) => alice.client.watchForReceipt(receiptId, resolve));
      const text = `durable ${rand(6)}`;
      alice.client.publish({
        destination: '/app/chat.send',
        body: JSON.stringify({ roomId: room, message: text }),
        headers: { receipt: receiptId },
      });
      const frame = await withTimeout(got, 8000, 'RECEIPT');
      assert.equal(frame.command, 'RECEIPT');
      assert.equal(frame.headers['receipt-id'], receiptId);
      // Durable on receipt: no polling allowed here.
      const h = await history(room, tokens.bob);
      assert.equal(h.length, 1);
      assertChatShape(h[0]);
      assert.equal(h[0].message, text);
      assert.equal(h[0].sender, 'alice');
      assert.equal(h[0].roomId, room);
    } finally {
      await closeAll(alice?.client);
    }
  });

  it('CONNECT without a token gets an ERROR frame and the socket closes', T, async () => {
    await expectConnectRejected({});
  });

  it('CONNECT with an invalid token gets an ERROR frame and the socket closes', T, async () => {
    await expectConnectRejected({ Authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.invalid' });
  });

  it('invalid JSON body yields a JSON error on /user/queue/errors; connection stays usable', T, async () => {
    const room = uniqueRoom();
    let alice;
    try {
      alice = await connectStomp(tokens.alice);
      const errs = collect(alice.client, '/user/queue/errors', 'errq');
      const msgs = collect(alice.client, `/topic/chat.${room}`, 'room');
      await ready(errs, msgs);

      const receipts = [];
      alice.client.onUnhandledReceipt = (f) => receipts.push(f.headers['receipt-id']);
      const badReceipt = `bad-${rand(6)}`;
      alice.client.watchForReceipt(badReceipt, (f) => receipts.push(f.headers['receipt-id']));
      alice.client.publish({
        destination: '/app/chat.send',
        body: '{"roomId":"' + room + '","message":',
        headers: { receipt: badReceipt, 'content-type': 'application/json' },
      });
      await errs.count(1);
      const e = errs.items[0];
      assert.equal(e.headers.destination, '/user/queue/errors');
      assert.equal(e.headers.subscription, 'errq');
      assert.ok(e.json, `error body is JSON: ${e.body}`);
      assert.equal(typeof e.json.code, 'string');
      assert.equal(e.json.code, 'INVALID_REQUEST');
      assert.equal(typeof e.json.message, 'string');
      assert.equal(e.json['receipt-id'], badReceipt, 'error names the receipt of the failed SEND');

      // Validation failure (empty message) also goes to the error queue.
      alice.client.publish({ destination: '/app/chat.send', body: JSON.stringify({ roomId: room, message: '' }) });
      await errs.count(2);
      assert.equal(errs.items[1].json.code, 'INVALID_REQUEST');

      // Still connected and usable.
      const okReceipt = `ok-${rand(6)}`;
      const ok = new Promise((resolve) => alice.client.watchForReceipt(okReceipt, resolve));
      alice.client.publish({
        destination: '/app/chat.send',
        body: JSON.stringify({ roomId: room, message: 'still here' }),
        headers: { receipt: okReceipt },
      });
      await withTimeout(ok, 8000, 'RECEIPT after error');
      await msgs.count(1);
      assert.equal(msgs.items[0].json.message, 'still here');
      assert.equal(alice.client.connected, true);
      assert.ok(!receipts.includes(badReceipt), 'no RECEIPT for the failed SEND');
      assert.equal(msgs.items.length, 1, 'nothing broadcast for the failed SENDs');
      assert.deepEqual((await history(room, tokens.alice)).map((m) => m.message), ['still here']);
    } finally {
      await closeAll(alice?.client);
    }
  });

  it('SUBSCRIBE to an unknown destination gets ERROR and close', T, async () => {
    const alice = await connectStomp(tokens.alice);
    try {
      alice.client.subscribe('/topic/not-a-chat-room', () => {}, { id: 'x' });
      const err = await alice.errors.count(1);
      assert.ok(err[0].headers.message, 'ERROR has a message header');
      await withTimeout(alice.closed, 5000, 'socket close after ERROR');
    } finally {
      await closeAll(alice.client);
    }
  });

  it('two subscribers of one room see the same ids in the same ascending order', T, async () => {
    const room = uniqueRoom('order');
    const N = 20;
    let alice, bob;
    try {
      alice = await connectStomp(tokens.alice);
      bob = await connectStomp(tokens.bob);
      const ia = collect(alice.client, `/topic/chat.${room}`, 'a');
      const ib = collect(bob.client, `/topic/chat.${room}`, 'b');
      await ready(ia, ib);
      for (let i = 0; i < N; i++) {
        alice.client.publish({ destination: '/app/chat.send', body: JSON.stringify({ roomId: room, message: `a${i}` }) });
        bob.client.publish({ destination: '/app/chat.send', body: JSON.stringify({ roomId: room, message: `b${i}` }) });
      }
      await Promise.all([ia.count(2 * N), ib.count(2 * N)]);
      await sleep(200);
      const idsA = ia.items.map((f) => f.json.id);
      const idsB = ib.items.map((f) => f.json.id);
      assert.equal(idsA.length, 2 * N, 'alice got every message exactly once');
      assert.deepEqual(idsA, idsB, 'same ids in the same order');
      for (let i = 1; i < idsA.length; i++) assert.ok(idsA[i - 1] < idsA[i], `ascending at ${i}`);
      assert.equal(new Set(idsA).size, idsA.length, 'no duplicates');
      // Per-sender order is preserved.
      const aMsgs = ia.items.map((f) => f.json).filter((m) => m.sender === 'alice').map((m) => m.message);
      assert.deepEqual(aMsgs, Array.from({ length: N }, (_, i) => `a${i}`));
      const hist = await history(room, tokens.alice, '?limit=500');
      assert.deepEqual(hist.map((m) => m.id), idsA, 'history matches the live order');
    } finally {
      await closeAll(alice?.client, bob?.client);
    }
  });

  it('@bob mention by alice creates a mention notification for bob', T, async () => {
    const room = uniqueRoom('mention');
    let alice, bob;
    try {
      alice = await connectStomp(tokens.alice);
      bob = await connectStomp(tokens.bob);
      const live = collect(bob.client, '/user/queue/notifications', 'bob-notif');
      await ready(live);
      // Self-mention first: must not create anything for alice.
      alice.client.publish({ destination: '/app/chat.send', body: JSON.stringify({ roomId: room, message: 'note to self @alice' }) });
      const text = `hey @bob look ${rand(6)}`;
      const rid = `m-${rand(6)}`;
      const receipt = new Promise((resolve) => alice.client.watchForReceipt(rid, resolve));
      alice.client.publish({
        destination: '/app/chat.send',
        body: JSON.stringify({ roomId: room, message: text }),
        headers: { receipt: rid },
      });
      await withTimeout(receipt, 8000, 'RECEIPT for mention');

      const found = await poll(
        async () => {
          const res = await api('GET', '/notifications', { token: tokens.bob });
          assert.equal(res.status, 200, res.text);
          assert.equal(res.json.success, true);
          assert.ok(Array.isArray(res.json.data), 'data is a list');
          return res.json.data.find((n) => n.roomId === room && n.type === 'mention');
        },
        { timeout: 8000, what: 'bob mention notification' },
      );
      assertNotificationShape(found);
      assert.equal(found.recipient, 'bob');
      assert.equal(found.sender, 'alice');
      assert.equal(found.read, false);

      // Also delivered live on /user/queue/notifications.
      const items = await live.until((xs) => xs.some((f) => f.json?.id === found.id), 5000, 'live mention');
      const frame = items.find((f) => f.json?.id === found.id);
      assert.equal(frame.headers.destination, '/user/queue/notifications');
      assert.match(frame.headers['content-type'] || '', /^application\/json/i);
      assert.deepEqual(frame.json, found);

      const mine = await api('GET', '/notifications', { token: tokens.alice });
      assert.equal(mine.status, 200);
      assert.ok(!mine.json.data.some((n) => n.roomId === room), 'no notification for a self-mention');
    } finally {
      await closeAll(alice?.client, bob?.client);
    }
  });

  it('raw STOMP: subprotocol negotiation, lowercase authorization header, CONNECTED headers', T, async () => {
    const ws = new WebSocket(WS_URL, ['v12.stomp']);
    try {
      await withTimeout(new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); }), 5000, 'ws open');
      assert.equal(ws.protocol, 'v12.stomp', 'negotiated subprotocol');
      const first = new Promise((res) => ws.once('message', (d) => res(d.toString('utf8'))));
      const host = new URL(BASE_URL).host;
      ws.send(`CONNECT\naccept-version:1.2\nhost:${host}\nheart-beat:0,0\nauthorization:Bearer ${tokens.testuser}\n\n\0`);
      const frame = await withTimeout(first, 5000, 'CONNECTED');
      const [head] = frame.split('\n\n');
      const lines = head.replace(/\r/g, '').split('\n');
      assert.equal(lines[0], 'CONNECTED');
      const h = Object.fromEntries(lines.slice(1).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]));
      assert.equal(h.version, '1.2');
      assert.equal(h['user-name'], 'testuser');
      assert.match(h.server, /^herald\//);
    } finally {
      ws.terminate();
    }
  });
});

async function expectConnectRejected(connectHeaders) {
  let errorFrame;
  let resolveClosed;
  const closed = new Promise((r) => (resolveClosed = r));
  let connected = false;
  const client = new Client({
    webSocketFactory: () => new WebSocket(WS_URL, ['v12.stomp', 'v11.stomp', 'v10.stomp']),
    connectHeaders,
    reconnectDelay: 0,
    debug: () => {},
  });
  const gotError = new Promise((resolve) => {
    client.onStompError = (f) => {
      errorFrame = f;
      resolve(f);
    };
  });
  client.onConnect = () => (connected = true);
  client.onWebSocketClose = (e) => resolveClosed(e);
  client.onWebSocketError = () => {};
  client.activate();
  try {
    await withTimeout(gotError, 8000, 'ERROR frame');
    assert.equal(errorFrame.command, 'ERROR');
    assert.ok(errorFrame.headers.message && errorFrame.headers.message.length > 0, 'ERROR has message header');
    await withTimeout(closed, 5000, 'server closes the socket');
    assert.equal(connected, false, 'never CONNECTED');
  } finally {
    await client.deactivate({ force: true }).catch(() => {});
  }
}
