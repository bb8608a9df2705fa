// Shared helpers for the Herald client-side contract suites (SPEC.md §3–§5).
// Not a test file itself: node --test only picks up *.test.mjs here.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Client } from '@stomp/stompjs';
import { WebSocket } from 'ws';

// Node 20 has no global WebSocket; stompjs falls back to it when no factory is given.
if (typeof globalThis.WebSocket === 'undefined') {
  Object.assign(globalThis, { WebSocket });
}

export const BASE_URL = (process.env.HERALD_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const WS_URL = BASE_URL.replace(/^http/i, 'ws') + '/ws/chat';

/** Per-test timeout (ms) used by every test of the suites. */
export const TEST_TIMEOUT = Number(process.env.HERALD_TEST_TIMEOUT_MS || 15000);

/** Dev-mode seeded users (SPEC §3). */
export const USERS = {
  testuser: 'testpass',
  alice: 'alicepass',
  bob: 'bobpass',
};

/** ISO-8601 UTC with milliseconds and a trailing Z, e.g. 2025-08-14T14:55:00.000Z */
export const ISO_MS_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

export const ERROR_CODES_401 = ['UNAUTHORIZED', 'TOKEN_EXPIRED', 'INVALID_TOKEN'];

/** Random token restricted to [A-Za-z0-9], safe for room ids and usernames. */
export function rand(n = 10) {
  return randomBytes(n * 2).toString('base64').replace(/[^A-Za-z0-9]/g, '').slice(0, n);
}

/** Unique room id matching [A-Za-z0-9_-]{1,64}. */
export function uniqueRoom(tag = 'room') {
  return `${tag}-${Date.now().toString(36)}-${rand(8)}`.slice(0, 64);
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Reject after `ms` with a message naming what was awaited. */
export function withTimeout(promise, ms, what) {
  let t;
  const timer = new Promise((_, rej) => {
    t = setTimeout(() => rej(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timer]).finally(() => clearTimeout(t));
}

/**
 * Minimal HTTP helper. Returns { status, headers, text, json }.
 * `body` objects are JSON-encoded; strings are sent raw (for malformed-JSON tests).
 */
export async function api(method, path, { token, body, headers = {}, signal } = {}) {
  const h = { Accept: 'application/json', ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) {
      h['Content-Type'] = 'application/json';
    }
  }
  const res = await fetch(BASE_URL + path, { method, headers: h, body: payload, signal });
  const text = await res.text();
  let json;
  try {
    json = text.length ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Assert the SPEC's error envelope {"success":false,"message":"…","code":"…"} and status. */
export function assertErrorEnvelope(res, status, codes, label = '') {
  const want = Array.isArray(codes) ? codes : [codes];
  assert.equal(res.status, status, `${label} status (body: ${res.text})`);
  assert.ok(res.json && typeof res.json === 'object', `${label} body is JSON: ${res.text}`);
  assert.equal(res.json.success, false, `${label} success=false`);
  assert.equal(typeof res.json.message, 'string', `${label} message is a string`);
  assert.ok(res.json.message.length > 0, `${label} message is not empty`);
  assert.ok(want.includes(res.json.code), `${label} code ${res.json.code} not in ${want.join('|')}`);
  const ct = res.headers.get('content-type') || '';
  assert.match(ct, /^application\/json/i, `${label} content-type`);
}

/** Decode a JWT without verifying it (shape checks only). */
export function decodeJwt(token) {
  const parts = token.split('.');
  assert.equal(parts.length, 3, 'JWT has three segments');
  const dec = (s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  return { header: dec(parts[0]), payload: dec(parts[1]) };
}

/** POST /auth/login and assert the seed's exact envelope. Returns { accessToken, refreshToken, body }. */
export async function login(username, password = USERS[username]) {
  const res = await api('POST', '/auth/login', { body: { username, password } });
  assert.equal(res.status, 200, `login ${username}: ${res.text}`);
  assertLoginEnvelope(res.json, username);
  return { accessToken: res.json.data.accessToken, refreshToken: res.json.data.refreshToken, body: res.json };
}

export function assertLoginEnvelope(body, username) {
  assert.deepEqual(Object.keys(body).sort(), ['data', 'message', 'success'], 'top-level keys');
  assert.equal(body.success, true);
  assert.equal(body.message, '로그인 성공');
  assert.equal(typeof body.data, 'object');
  assert.equal(typeof body.data.accessToken, 'string');
  assert.equal(typeof body.data.refreshToken, 'string');
  assert.notEqual(body.data.accessToken, body.data.refreshToken);
  const access = decodeJwt(body.data.accessToken);
  const refresh = decodeJwt(body.data.refreshToken);
  assert.equal(access.header.alg, 'HS256');
  for (const [tok, typ] of [[access, 'access'], [refresh, 'refresh']]) {
    if (username) assert.equal(tok.payload.sub, username, `${typ} sub`);
    assert.equal(tok.payload.typ, typ, 'typ claim');
    for (const c of ['uid', 'iat', 'exp', 'jti']) assert.ok(c in tok.payload, `${typ} claim ${c}`);
    assert.ok(tok.payload.exp > tok.payload.iat, `${typ} exp > iat`);
  }
}

/** Sign up a fresh random user and log in; returns { username, password, accessToken, refreshToken }. */
export async function freshUser(prefix = 'u') {
  const username = `${prefix}_${rand(12)}`.slice(0, 32);
  const password = `pw-${rand(16)}`;
  const res = await api('POST', '/auth/signup', { body: { username, password } });
  assert.equal(res.status, 201, `signup ${username}: ${res.text}`);
  const tokens = await login(username, password);
  return { username, password, ...tokens };
}

/** A queue of received items with predicate-based waiting. */
export class Inbox {
  constructor(name = 'inbox') {
    this.name = name;
    this.items = [];
    this.waiters = [];
  }
  push(item) {
    this.items.push(item);
    for (const w of [...this.waiters]) {
      if (w.pred(this.items)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(this.items);
      }
    }
  }
  /** Resolve once pred(items) is true. */
  until(pred, ms = 10000, what = 'items') {
    if (pred(this.items)) return Promise.resolve(this.items);
    const p = new Promise((resolve) => this.waiters.push({ pred, resolve }));
    return withTimeout(p, ms, `${this.name}: ${what} (have ${this.items.length})`);
  }
  count(n, ms = 10000) {
    return this.until((xs) => xs.length >= n, ms, `${n} item(s)`);
  }
}

/**
 * Open a STOMP client to /ws/chat. Resolves with { client, connected, closed, errors }
 * once CONNECTED arrives; rejects on ERROR frame or socket close before that.
 * `closed` is a promise resolved with the close event; `errors` collects ERROR frames.
 */
export function connectStomp(token, { headers, timeout = 8000 } = {}) {
  const errors = new Inbox('stomp errors');
  let resolveClosed;
  const closed = new Promise((r) => (resolveClosed = r));
  const connectHeaders = headers ?? (token ? { Authorization: `Bearer ${token}` } : {});
  const client = new Client({
    webSocketFactory: () => new WebSocket(WS_URL, ['v12.stomp', 'v11.stomp', 'v10.stomp']),
    connectHeaders,
    reconnectDelay: 0,
    heartbeatIncoming: 10000,
    heartbeatOutgoing: 10000,
    connectionTimeout: timeout,
    debug: () => {},
  });
  const ready = new Promise((resolve, reject) => {
    client.onConnect = (frame) => resolve({ client, connected: frame, closed, errors });
    client.onStompError = (frame) => {
      errors.push(frame);
      reject(Object.assign(new Error(`STOMP ERROR: ${frame.headers.message}`), { frame }));
    };
    client.onWebSocketClose = (evt) => {
      resolveClosed(evt);
      reject(new Error(`WebSocket closed before CONNECTED (code ${evt?.code})`));
    };
    client.onWebSocketError = () => {};
  });
  client.activate();
  return withTimeout(ready, timeout + 1000, 'STOMP CONNECTED').catch(async (e) => {
    await client.deactivate({ force: true }).catch(() => {});
    throw e;
  });
}

/**
 * Subscribe and collect MESSAGE frames into an Inbox ({headers, body, json}).
 * The SUBSCRIBE carries a `receipt`; `inbox.ready` resolves when its RECEIPT arrives,
 * i.e. once the server has registered the subscription.
 */
export function collect(client, destination, id, name = destination) {
  const inbox = new Inbox(name);
  const receipt = `sub-${id}-${rand(6)}`;
  inbox.ready = withTimeout(
    new Promise((resolve) => client.watchForReceipt(receipt, resolve)),
    5000,
    `RECEIPT for SUBSCRIBE ${destination}`,
  );
  inbox.ready.catch(() => {}); // avoid unhandled rejection when a test never awaits it
  const sub = client.subscribe(
    destination,
    (m) => {
      let json;
      try {
        json = JSON.parse(m.body);
      } catch {
        json = undefined;
      }
      inbox.push({ headers: m.headers, body: m.body, json });
    },
    { id, receipt },
  );
  inbox.subscription = sub;
  return inbox;
}

/** Wait until every given inbox's SUBSCRIBE was acknowledged by a RECEIPT. */
export function ready(...inboxes) {
  return Promise.all(inboxes.map((i) => i.ready));
}

/** Deactivate every client given, ignoring failures. */
export async function closeAll(...clients) {
  await Promise.all(
    clients.filter(Boolean).map((c) => withTimeout(c.deactivate(), 3000, 'deactivate').catch(() => c.forceDisconnect?.())),
  );
}

/** Poll fn() until it returns a truthy value (or time runs out). */
export async function poll(fn, { timeout = 8000, interval = 150, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms polling for ${what}`);
    await sleep(interval);
  }
}

export const NOTIFICATION_KEYS = ['createdAt', 'id', 'message', 'read', 'recipient', 'roomId', 'sender', 'type'];
export const CHAT_KEYS = ['id', 'message', 'roomId', 'sender', 'sentAt'];

export function assertNotificationShape(n, label = 'notification') {
  assert.deepEqual(Object.keys(n).sort(), NOTIFICATION_KEYS, `${label} keys`);
  assert.equal(typeof n.id, 'number', `${label} id`);
  assert.ok(Number.isInteger(n.id) && n.id > 0, `${label} id positive integer`);
  assert.ok(['mention', 'direct'].includes(n.type), `${label} type ${n.type}`);
  assert.equal(typeof n.recipient, 'string');
  assert.equal(typeof n.sender, 'string');
  assert.ok(n.roomId === null || typeof n.roomId === 'string', `${label} roomId string|null`);
  assert.equal(typeof n.message, 'string');
  assert.match(n.createdAt, ISO_MS_UTC, `${label} createdAt`);
  assert.equal(typeof n.read, 'boolean');
}

export function assertChatShape(m, label = 'chat message') {
  assert.deepEqual(Object.keys(m).sort(), CHAT_KEYS, `${label} keys: ${JSON.stringify(m)}`);
  assert.equal(typeof m.id, 'number', `${label} id is a number`);
  assert.ok(Number.isInteger(m.id) && m.id > 0, `${label} id positive integer`);
  assert.equal(typeof m.roomId, 'string');
  assert.equal(typeof m.sender, 'string');
  assert.equal(typeof m.message, 'string');
  assert.match(m.sentAt, ISO_MS_UTC, `${label} sentAt`);
}
