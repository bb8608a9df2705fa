// Herald notifications over Server-Sent Events (SPEC §3 notifications, §5 SSE) with a real EventSource client.
// Run: HERALD_URL=http://127.0.0.1:8080 node --test sse_replay.test.mjs
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import {
  BASE_URL,
  TEST_TIMEOUT,
  USERS,
  api,
  login,
  freshUser,
  rand,
  sleep,
  withTimeout,
  Inbox,
  assertNotificationShape,
  assertErrorEnvelope,
  ERROR_CODES_401,
} from './lib/herald.mjs';

const T = { timeout: TEST_TIMEOUT };
const tokens = {};

/**
 * Open an EventSource and collect `connected` and `notification` events.
 * The library would reconnect by itself after an error; we close on the first error instead
 * so that every test controls its own reconnects.
 */
function openStream(query) {
  const url = `${BASE_URL}/notifications/stream?${new URLSearchParams(query)}`;
  const es = new EventSource(url);
  const events = new Inbox('sse events');
  const errors = new Inbox('sse errors');
  es.addEventListener('connected', (e) => events.push({ type: 'connected', id: e.lastEventId, data: e.data }));
  es.addEventListener('notification', (e) => {
    events.push({ type: 'notification', id: e.lastEventId, data: e.data, json: JSON.parse(e.data) });
  });
  es.addEventListener('message', (e) => events.push({ type: 'message', id: e.lastEventId, data: e.data }));
  es.addEventListener('error', (e) => {
    errors.push({ code: e.code, message: e.message, readyState: es.readyState });
    es.close();
  });
  const notifications = () => events.items.filter((e) => e.type === 'notification');
  return { es, events, errors, notifications };
}

async function notify(token, recipient, message) {
  const res = await api('POST', '/notifications', { token, body: { recipient, message } });
  assert.equal(res.status, 201, `POST /notifications: ${res.text}`);
  assert.equal(res.json.success, true);
  const n = res.json.data;
  assertNotificationShape(n);
  assert.equal(n.type, 'direct');
  assert.equal(n.recipient, recipient);
  assert.equal(n.message, message);
  assert.equal(n.read, false);
  return n;
}

/** Minimal text/event-stream parser over a fetch() body. Yields {id, event, data} per dispatched event. */
async function* sseFrames(body) {
  const decoder = new TextDecoder();
  let buf = '';
  let ev = { id: undefined, event: undefined, data: [] };
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    let nl;
    while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') {
        if (ev.data.length || ev.event) yield { id: ev.id, event: ev.event || 'message', data: ev.data.join('\n') };
        ev = { id: undefined, event: undefined, data: [] };
        continue;
      }
      if (line.startsWith(':')) continue; // comment / ping
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      let value = c < 0 ? '' : line.slice(c + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') ev.data.push(value);
      else if (field === 'event') ev.event = value;
      else if (field === 'id') ev.id = value;
    }
  }
}

describe('notifications over SSE (/notifications/stream)', () => {
  before(async () => {
    for (const u of ['alice', 'bob']) tokens[u] = (await login(u, USERS[u])).accessToken;
  });

  it('EventSource receives connected, then a live direct notification (seeded bob)', T, async () => {
    const s = openStream({ access_token: tokens.bob });
    try {
      await s.events.until((xs) => xs.some((e) => e.type === 'connected'), 5000, 'connected event');
      assert.equal(s.events.items[0].type, 'connected', 'connected is the first event');
      const text = `ping bob ${rand(8)}`;
      const n = await notify(tokens.alice, 'bob', text);
      assert.equal(n.sender, 'alice');
      await s.events.until((xs) => xs.some((e) => e.json?.message === text), 5000, 'notification event');
      const ev = s.notifications().find((e) => e.json.message === text);
      assert.equal(ev.id, String(n.id), 'lastEventId is the notification id');
      assertNotificationShape(ev.json, 'SSE data');
      assert.deepEqual(ev.json, n, 'SSE data equals the created notification');
      assert.equal(s.errors.items.length, 0);
    } finally {
      s.es.close();
    }
  });

  it('replay with ?lastEventId: exactly the missed ones, ascending, then live, no duplicates', T, async () => {
    const rcpt = await freshUser('sse');
    const first = openStream({ access_token: rcpt.accessToken });
    let n1;
    try {
      await first.events.until((xs) => xs.some((e) => e.type === 'connected'), 5000, 'connected');
      n1 = await notify(tokens.alice, rcpt.username, 'first');
      await first.events.until((xs) => xs.some((e) => e.id === String(n1.id)), 5000, 'n1 live');
      assert.equal(first.notifications().length, 1);
    } finally {
      first.es.close();
    }
    const n2 = await notify(tokens.alice, rcpt.username, 'second (missed)');
    const n3 = await notify(tokens.bob, rcpt.username, 'third (missed)');
    assert.ok(n1.id < n2.id && n2.id < n3.id, 'ids ascend');

    const again = openStream({ access_token: rcpt.accessToken, lastEventId: String(n1.id) });
    try {
      await again.events.until((xs) => xs.filter((e) => e.type === 'notification').length >= 2, 5000, 'replay');
      assert.equal(again.events.items[0].type, 'connected', 'connected comes first');
      const n4 = await notify(tokens.alice, rcpt.username, 'fourth (live)');
      await again.events.until((xs) => xs.some((e) => e.id === String(n4.id)), 5000, 'n4 live');
      await sleep(300); // a duplicate would arrive now
      const got = again.notifications();
      assert.deepEqual(got.map((e) => e.id), [n2, n3, n4].map((n) => String(n.id)), 'replayed then live, no dup');
      assert.deepEqual(got.map((e) => e.json), [n2, n3, n4]);
    } finally {
      again.es.close();
    }
  });

  it('replay with the Last-Event-ID header (raw fetch stream)', T, async () => {
    const rcpt = await freshUser('sseh');
    const n1 = await notify(tokens.alice, rcpt.username, 'h1');
    const n2 = await notify(tokens.alice, rcpt.username, 'h2');
    const n3 = await notify(tokens.bob, rcpt.username, 'h3');
    const ac = new AbortController();
    try {
      const res = await fetch(`${BASE_URL}/notifications/stream`, {
        headers: { Authorization: `Bearer ${rcpt.accessToken}`, Accept: 'text/event-stream', 'Last-Event-ID': String(n1.id) },
        signal: ac.signal,
      });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') || '', /^text\/event-stream/i);
      assert.match(res.headers.get('cache-control') || '', /no-cache/i);
      assert.equal((res.headers.get('x-accel-buffering') || '').toLowerCase(), 'no');

      const seen = [];
      let n4;
      const reader = (async () => {
        for await (const ev of sseFrames(res.body)) {
          seen.push(ev);
          const notes = seen.filter((e) => e.event === 'notification');
          if (notes.length === 2 && !n4) n4 = await notify(tokens.alice, rcpt.username, 'h4');
          if (n4 && notes.some((e) => e.id === String(n4.id))) return;
        }
      })();
      await withTimeout(reader, 8000, 'replayed + live events over fetch');
      assert.equal(seen[0].event, 'connected', 'connected comes first');
      const notes = seen.filter((e) => e.event === 'notification');
      assert.deepEqual(notes.map((e) => e.id), [n2, n3, n4].map((n) => String(n.id)));
      assert.deepEqual(notes.map((e) => JSON.parse(e.data)), [n2, n3, n4]);
    } finally {
      ac.abort();
    }
  });

  it('listing, newest first; mark read; unread filter', T, async () => {
    const rcpt = await freshUser('ssel');
    const a = await notify(tokens.alice, rcpt.username, 'l1');
    const b = await notify(tokens.bob, rcpt.username, 'l2');
    const list = await api('GET', '/notifications', { token: rcpt.accessToken });
    assert.equal(list.status, 200);
    assert.equal(list.json.success, true);
    assert.deepEqual(list.json.data, [b, a], 'newest first');

    const other = await api('POST', `/notifications/${a.id}/read`, { token: tokens.bob });
    assertErrorEnvelope(other, 404, 'NOT_FOUND', "marking someone else's notification");

    const mine = await api('POST', `/notifications/${a.id}/read`, { token: rcpt.accessToken });
    assert.equal(mine.status, 200, mine.text);
    assert.equal(mine.json.success, true);

    const unread = await api('GET', '/notifications?unread=true', { token: rcpt.accessToken });
    assert.equal(unread.status, 200);
    assert.deepEqual(unread.json.data.map((n) => n.id), [b.id]);
    const all = await api('GET', '/notifications', { token: rcpt.accessToken });
    assert.deepEqual(all.json.data.map((n) => [n.id, n.read]), [[b.id, false], [a.id, true]]);
    const limited = await api('GET', '/notifications?limit=1', { token: rcpt.accessToken });
    assert.deepEqual(limited.json.data.map((n) => n.id), [b.id]);
  });

  describe('bad input', () => {
    it('stream without a token → 401 UNAUTHORIZED (and EventSource gets an error with code 401)', T, async () => {
      const res = await api('GET', '/notifications/stream', { headers: { Accept: 'text/event-stream' } });
      assertErrorEnvelope(res, 401, 'UNAUTHORIZED', 'no token');
      const s = openStream({});
      try {
        const [err] = await s.errors.count(1, 5000);
        assert.equal(err.code, 401);
        assert.equal(s.events.items.length, 0);
      } finally {
        s.es.close();
      }
    });

    it('stream with a bad token → 401', T, async () => {
      const q = await api('GET', '/notifications/stream?access_token=not.a.token', { headers: { Accept: 'text/event-stream' } });
      assertErrorEnvelope(q, 401, ERROR_CODES_401, 'bad ?access_token');
      const h = await api('GET', '/notifications/stream', { token: 'not.a.token', headers: { Accept: 'text/event-stream' } });
      assertErrorEnvelope(h, 401, ERROR_CODES_401, 'bad Bearer');
      // A refresh token is not an access token.
      const { refreshToken } = await login('bob', USERS.bob);
      const r = await api('GET', `/notifications/stream?access_token=${refreshToken}`, { headers: { Accept: 'text/event-stream' } });
      assertErrorEnvelope(r, 401, ERROR_CODES_401, 'refresh token used as access token');
    });

    it('non-numeric Last-Event-ID → 400 INVALID_REQUEST (header and query)', T, async () => {
      const h = await api('GET', '/notifications/stream', {
        token: tokens.bob,
        headers: { Accept: 'text/event-stream', 'Last-Event-ID': 'abc' },
      });
      assertErrorEnvelope(h, 400, 'INVALID_REQUEST', 'Last-Event-ID header');
      const q = await api('GET', `/notifications/stream?access_token=${tokens.bob}&lastEventId=abc`, {
        headers: { Accept: 'text/event-stream' },
      });
      assertErrorEnvelope(q, 400, 'INVALID_REQUEST', 'lastEventId query');
    });

    it('POST /notifications to a recipient that does not exist → 404 NOT_FOUND', T, async () => {
      const res = await api('POST', '/notifications', {
        token: tokens.alice,
        body: { recipient: `nobody_${rand(12)}`, message: 'hello?' },
      });
      assertErrorEnvelope(res, 404, 'NOT_FOUND', 'unknown recipient');
    });

    it('POST /notifications with an empty or missing message → 400 INVALID_REQUEST', T, async () => {
      const empty = await api('POST', '/notifications', { token: tokens.alice, body: { recipient: 'bob', message: '' } });
      assertErrorEnvelope(empty, 400, 'INVALID_REQUEST', 'empty message');
      const missing = await api('POST', '/notifications', { token: tokens.alice, body: { recipient: 'bob' } });
      assertErrorEnvelope(missing, 400, 'INVALID_REQUEST', 'missing message');
      const malformed = await api('POST', '/notifications', { token: tokens.alice, body: '{"recipient":' });
      assertErrorEnvelope(malformed, 400, 'INVALID_REQUEST', 'malformed JSON');
    });

    it('POST /notifications without a token → 401', T, async () => {
      const res = await api('POST', '/notifications', { body: { recipient: 'bob', message: 'x' } });
      assertErrorEnvelope(res, 401, ERROR_CODES_401, 'no token');
    });

    it("marking someone else's (or a missing) notification read → 404", T, async () => {
      const n = await notify(tokens.alice, 'bob', `not yours ${rand(6)}`);
      const res = await api('POST', `/notifications/${n.id}/read`, { token: tokens.alice });
      assertErrorEnvelope(res, 404, 'NOT_FOUND', 'sender marking recipient notification');
      const missing = await api('POST', '/notifications/999999999999/read', { token: tokens.bob });
      assertErrorEnvelope(missing, 404, 'NOT_FOUND', 'missing notification');
    });
  });
});
