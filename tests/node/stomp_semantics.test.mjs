// STOMP 1.2 transactions and ack modes with @stomp/stompjs (SPEC §4): begin/commit/abort, message.ack()/nack().
// Run: HERALD_URL=http://127.0.0.1:8080 node --test stomp_semantics.test.mjs
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { TEST_TIMEOUT, USERS, api, login, connectStomp, collect, ready, closeAll, uniqueRoom, sleep, withTimeout } from './lib/herald.mjs';

const T = { timeout: TEST_TIMEOUT };
const tokens = {};

async function history(room, token) {
  const res = await api('GET', `/chat/history/${room}`, { token });
  assert.equal(res.status, 200, `history ${room}: ${res.text}`);
  return res.json.map((m) => m.message);
}

function receipt(client, id) {
  return withTimeout(new Promise((resolve) => client.watchForReceipt(id, resolve)), 5000, `RECEIPT ${id}`);
}

function send(client, room, message, headers = {}) {
  client.publish({ destination: '/app/chat.send', headers, body: JSON.stringify({ roomId: room, message }) });
}

describe('STOMP transactions and ack modes (@stomp/stompjs)', () => {
  before(async () => {
    for (const [u, p] of Object.entries(USERS)) tokens[u] = (await login(u, p)).accessToken;
  });

  it('begin/commit: nothing is broadcast before commit, then all in order; abort drops', T, async () => {
    const room = uniqueRoom('js-tx');
    const bob = await connectStomp(tokens.bob);
    const alice = await connectStomp(tokens.alice);
    try {
      const watched = collect(bob.client, `/topic/chat.${room}`, 'w');
      await ready(watched);
      const tx = alice.client.begin();
      send(alice.client, room, 'one', { transaction: tx.id });
      send(alice.client, room, 'two', { transaction: tx.id });
      await sleep(400);
      assert.equal(watched.items.length, 0, 'held until COMMIT');
      tx.commit();
      await watched.count(2);
      assert.deepEqual(watched.items.map((m) => m.json.message), ['one', 'two']);

      const dropped = alice.client.begin();
      send(alice.client, room, 'never', { transaction: dropped.id });
      dropped.abort();
      const done = receipt(alice.client, 'after-abort');
      send(alice.client, room, 'three', { receipt: 'after-abort' });
      await done;
      await watched.count(3);
      assert.deepEqual(await history(room, tokens.bob), ['one', 'two', 'three']);
      assert.equal(alice.errors.items.length + bob.errors.items.length, 0, 'no ERROR frame');
    } finally {
      await closeAll(alice.client, bob.client);
    }
  });

  it('client-individual: ack header on every MESSAGE, ack() and nack() accepted, nothing redelivered', T, async () => {
    const room = uniqueRoom('js-ack');
    const bob = await connectStomp(tokens.bob);
    const alice = await connectStomp(tokens.alice);
    try {
      const frames = [];
      const subscribed = receipt(bob.client, 'sub-ci');
      bob.client.subscribe(`/topic/chat.${room}`, (m) => frames.push(m), { id: 'ci', ack: 'client-individual', receipt: 'sub-ci' });
      await subscribed;
      const sent = receipt(alice.client, 'sent');
      send(alice.client, room, 'a');
      send(alice.client, room, 'b', { receipt: 'sent' });
      await sent;
      await withTimeout((async () => { while (frames.length < 2) await sleep(20); })(), 5000, 'two MESSAGEs');
      for (const m of frames) assert.equal(m.headers.ack, `ci/${m.headers['message-id']}`);
      const acked = receipt(bob.client, 'acked');
      frames[0].ack({ receipt: 'acked' });
      await acked;
      const nacked = receipt(bob.client, 'nacked');
      frames[1].nack({ receipt: 'nacked' });
      await nacked;
      await sleep(300);
      assert.equal(frames.length, 2, 'topics do not redeliver');
      assert.equal(bob.errors.items.length, 0, 'no ERROR frame');
    } finally {
      await closeAll(alice.client, bob.client);
    }
  });
});
