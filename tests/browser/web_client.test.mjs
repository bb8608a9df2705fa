// Herald's web client (SPEC §9) in a real Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser is ever downloaded) against a real server.
//
//   HERALD_URL            a dev-mode server (alice/alicepass, bob/bobpass seeded)
//   HERALD_SHORT_TTL_URL  a dev-mode server with a short jwt.access_ttl_secs (the reload test)
//   HERALD_SHORT_TTL_SECS that TTL (default 5)
//   CHROMIUM_PATH         default /usr/bin/chromium
//   HERALD_SCREENSHOTS    where screenshots go (default <repo>/target/browser)
//
// run.sh sets all of these (and starts the servers when HERALD_URL is not given).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const HERALD_URL = (process.env.HERALD_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const SHORT_TTL_URL = process.env.HERALD_SHORT_TTL_URL?.replace(/\/$/, '');
const SHORT_TTL_SECS = Number(process.env.HERALD_SHORT_TTL_SECS || 5);
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SHOTS = process.env.HERALD_SCREENSHOTS || path.resolve(HERE, '../../target/browser');
/** The longest any single step may take. */
const STEP_MS = 15_000;
/** The longest a whole test may take (a hang fails the test instead of stalling the suite). */
const TEST_MS = 120_000;

const USERS = { alice: 'alicepass', bob: 'bobpass', testuser: 'testpass' };

let browser;

before(async () => {
  await fs.mkdir(SHOTS, { recursive: true });
  // launch() gives Chromium a fresh profile directory under $TMPDIR (run.sh points it at a
  // directory of its own and removes it afterwards).
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  step(`Chromium ${browser.version()} launched`);
});

after(async () => {
  await browser?.close();
  step('Chromium closed');
});

// --- helpers ------------------------------------------------------------------------------------

/** A new browser context and page on `base`, recording requests and uncaught page errors. */
async function openPage(name, base) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 }, locale: 'ko-KR' });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  const requests = [];
  const pageErrors = [];
  /** Every STOMP frame the page sent, as text. */
  const stompSent = [];
  page.on('request', (r) => requests.push({ url: r.url(), method: r.method(), body: r.postData() }));
  page.on('pageerror', (e) => pageErrors.push(e));
  page.on('websocket', (ws) => ws.on('framesent', (f) => stompSent.push(String(f.payload))));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') console.log(`  [${name} console.${m.type()}] ${m.text()}`);
  });
  await page.goto(`${base}/`);
  return { name, base, context, page, requests, pageErrors, stompSent };
}

const byId = (page, id) => page.locator(`[data-testid="${id}"]`);

async function screenshot(client, step) {
  try {
    await client.page.screenshot({ path: path.join(SHOTS, `${step}-${client.name}.png`), fullPage: true });
  } catch (e) {
    console.log(`  (screenshot ${step}-${client.name} failed: ${e.message})`);
  }
}

/**
 * Runs one scenario. `body({ open, defer })` opens pages with `open(name, base)` and registers
 * cleanups with `defer(fn)`. When it throws, every page is screenshotted first; pages and deferred
 * resources are always closed, so a failure never leaves a handle that keeps the run alive.
 */
async function scenario(testName, body) {
  const clients = [];
  const cleanups = [];
  const open = async (name, base) => {
    const client = await openPage(name, base);
    clients.push(client);
    return client;
  };
  try {
    await body({ open, defer: (fn) => cleanups.push(fn) });
  } catch (e) {
    for (const c of clients) await screenshot(c, `FAILED-${testName}`);
    throw e;
  } finally {
    for (const c of clients) await c.context.close().catch(() => {});
    for (const fn of cleanups.reverse()) await Promise.resolve().then(fn).catch(() => {});
  }
}

async function waitForState(page, state) {
  await page.waitForSelector(`[data-testid="connection-state"][data-state="${state}"]`, { timeout: STEP_MS });
}

async function logIn(client, username) {
  const { page } = client;
  await byId(page, 'login-username').fill(username);
  await byId(page, 'login-password').fill(USERS[username]);
  await byId(page, 'login-submit').click();
  await byId(page, 'chat-view').waitFor({ state: 'visible' });
  assert.equal(await byId(page, 'current-user').textContent(), username);
  await waitForState(page, 'connected');
}

async function openRoom(page, roomId) {
  await byId(page, 'room-open-input').fill(roomId);
  await byId(page, 'room-open-input').press('Enter');
  await byId(page, `room-${roomId}`).waitFor();
  await waitForRoomLoaded(page, roomId);
}

/** The room's latest page has been loaded into `message-list`. */
async function waitForRoomLoaded(page, roomId) {
  await page.waitForSelector(`[data-testid="message-list"][data-room="${roomId}"][data-loaded="true"]`, { state: 'attached' });
}

/** The messages shown in `message-list`: `[{ id, testid, text }]` in DOM order. */
function shownMessages(page) {
  return page.$$eval('[data-testid="message-list"] > *', (nodes) =>
    nodes.map((n) => ({ testid: n.dataset.testid, id: Number(n.dataset.id), text: n.querySelector('.text')?.textContent })),
  );
}

/** Sends `text` from the composer and waits for its RECEIPT (the pending entry disappears). */
async function send(page, text) {
  await byId(page, 'message-input').fill(text);
  await byId(page, 'message-send').click();
  await page.waitForFunction(
    (t) => [...document.querySelectorAll('[data-testid="message-list"] .text')].some((n) => n.textContent === t) &&
      document.querySelector('[data-testid="pending-list"]').children.length === 0,
    text,
  );
  const shown = await shownMessages(page);
  return shown.filter((m) => m.text === text).at(-1);
}

async function waitForTexts(page, texts) {
  await page.waitForFunction(
    (wanted) => {
      const have = [...document.querySelectorAll('[data-testid="message-list"] .text')].map((n) => n.textContent);
      return wanted.every((w) => have.includes(w));
    },
    texts,
  );
}

function storedSession(page) {
  return page.evaluate(() => JSON.parse(localStorage.getItem('herald.session')));
}

const started = Date.now();
/** Logs a step with the suite's elapsed time, so a slow or stuck step is visible in CI output. */
function step(what) {
  console.log(`  · ${((Date.now() - started) / 1000).toFixed(1)}s ${what}`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns a truthy value (returned), failing after STEP_MS with `what`. */
async function eventually(what, probe) {
  const deadline = Date.now() + STEP_MS;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * A TCP proxy in front of the server, so a test can cut one browser's network: `cut()` resets every
 * open connection (WebSocket, event stream, keep-alive) and refuses new ones until `restore()`.
 */
async function startProxy(target) {
  const { hostname, port } = new URL(target);
  const sockets = new Set();
  let blocked = false;
  const drop = (s) => (typeof s.resetAndDestroy === 'function' ? s.resetAndDestroy() : s.destroy());
  const server = net.createServer((client) => {
    if (blocked) return drop(client);
    const upstream = net.connect(Number(port), hostname);
    sockets.add(client);
    sockets.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
    return undefined;
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() {
      blocked = true;
      for (const s of sockets) drop(s);
      sockets.clear();
    },
    restore() {
      blocked = false;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

async function restJson(base, method, urlPath, token, body) {
  const response = await fetch(`${base}${urlPath}`, {
    method,
    headers: {
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(body ? { 'Content-Type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, json: await response.json().catch(() => null) };
}

// --- the scenarios ------------------------------------------------------------------------------

test('the page is served with its hooks, in Korean by default and in English on request', { timeout: TEST_MS }, async () => {
  // (Every body is read: an unread one keeps its keep-alive socket, and the run, alive.)
  const index = await fetch(`${HERALD_URL}/`);
  assert.equal(index.status, 200);
  assert.match(index.headers.get('content-type'), /^text\/html/);
  assert.match(await index.text(), /data-testid="message-list"/);
  const stomp = await fetch(`${HERALD_URL}/web/vendor/stompjs/stomp.umd.min.js`);
  assert.equal(stomp.status, 200);
  assert.match(stomp.headers.get('content-type'), /^text\/javascript/);
  assert.match(await stomp.text(), /StompJs/);
  const missing = await fetch(`${HERALD_URL}/web/no-such-file.js`);
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).code, 'NOT_FOUND');

  await scenario('page', async ({ open }) => {
    const client = await open('visitor', HERALD_URL);
    const { page } = client;
    await byId(page, 'auth-view').waitFor({ state: 'visible' });
    assert.equal(await page.getAttribute('html', 'lang'), 'ko');
    assert.equal(await byId(page, 'login-submit').textContent(), '로그인');
    for (const id of ['login-username', 'login-password', 'login-submit', 'room-list', 'room-create', 'room-open-input',
      'message-input', 'message-send', 'message-list', 'connection-state', 'notification-list',
      // The room controls (web/README.md).
      'room-create-form', 'room-create-name', 'room-create-id', 'room-create-private', 'room-create-submit',
      'room-create-error', 'dm-open-input', 'dm-open-submit', 'dm-open-error', 'room-members', 'room-invite-input',
      'room-invite-submit', 'room-action-error', 'room-leave', 'room-notice']) {
      assert.equal(await byId(page, id).count(), 1, `data-testid="${id}" exists once`);
    }
    await byId(page, 'lang-toggle').click();
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    assert.equal(await byId(page, 'login-submit').textContent(), 'Log in');
    await page.reload();
    assert.equal(await byId(page, 'login-submit').textContent(), 'Log in', 'the choice is remembered');
    await byId(page, 'lang-toggle').click();
    assert.equal(await byId(page, 'login-submit').textContent(), '로그인');
    // A wrong password is reported on the form.
    await byId(page, 'login-username').fill('alice');
    await byId(page, 'login-password').fill('wrong-password');
    await byId(page, 'login-submit').click();
    await byId(page, 'login-error').waitFor({ state: 'visible' });
    assert.equal(await byId(page, 'chat-view').isVisible(), false);
    await screenshot(client, 'login');
    assert.deepEqual(client.pageErrors, []);
  });
});

test('alice and bob chat; bob gets the mention, loses his network and recovers every message once, in order', { timeout: TEST_MS }, async () => {
  const roomId = `web-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6)}`;
  await scenario('chat', async ({ open, defer }) => {
    const proxy = await startProxy(HERALD_URL);
    defer(() => proxy.close());
    const alice = await open('alice', HERALD_URL);
    const bob = await open('bob', proxy.url);
    await logIn(alice, 'alice');
    await logIn(bob, 'bob');
    await openRoom(alice.page, roomId);
    await openRoom(bob.page, roomId);
    step(`alice and bob logged in, room ${roomId} open`);
    // Every SPEC §9 hook, on a signed-in page with a room open.
    assert.equal(await byId(bob.page, `room-${roomId}`).count(), 1);

    // --- a mention, live -----------------------------------------------------------------------
    const first = await send(alice.page, 'hi @bob');
    assert.ok(Number.isInteger(first.id) && first.id > 0, `alice's message has an id: ${JSON.stringify(first)}`);
    const bobMessage = byId(bob.page, `message-${first.id}`);
    await bobMessage.waitFor();
    assert.equal(await bobMessage.locator('.text').textContent(), 'hi @bob');
    assert.equal(await bobMessage.locator('.mention-me').textContent(), '@bob', 'the mention is highlighted');
    assert.match(await bobMessage.getAttribute('class'), /mentions-me/);

    // Notifications of this room only (a reused server holds earlier runs' mentions).
    const notificationsHere = `[data-testid="notification-list"] > [data-testid^="notification-"][data-room="${roomId}"]`;
    const mention = bob.page.locator(notificationsHere, { hasText: 'hi @bob' });
    await mention.waitFor();
    assert.equal(await mention.count(), 1);
    const mentionTestId = await mention.getAttribute('data-testid');
    const mentionId = Number(mentionTestId.replace('notification-', ''));
    assert.equal(await mention.getAttribute('data-read'), 'false');
    await screenshot(bob, 'mention');
    step(`message ${first.id} and notification ${mentionId} reached bob`);
    await mention.locator('button').click();
    await bob.page.waitForSelector(`[data-testid="${mentionTestId}"][data-read="true"]`);
    // The server agrees: it is marked read for bob.
    const bobToken = (await storedSession(bob.page)).accessToken;
    const listed = await restJson(HERALD_URL, 'GET', '/notifications?limit=20', bobToken);
    assert.equal(listed.status, 200);
    assert.equal(listed.json.data.find((n) => n.id === mentionId)?.read, true, 'marked read on the server');

    // --- bob's network is cut ------------------------------------------------------------------
    const requestsBeforeCut = bob.requests.length;
    proxy.cut();
    await waitForState(bob.page, 'reconnecting');
    step('bob cut off: reconnecting');
    assert.notEqual(await byId(bob.page, 'connection-state').textContent(), '');
    await screenshot(bob, 'reconnecting');

    const missed = ['after the cut 1', 'after the cut 2 @bob', 'after the cut 3'];
    const sent = [first];
    for (const text of missed) sent.push(await send(alice.page, text));
    // Bob, offline, writes too: it waits as pending (no RECEIPT can come) until he is back.
    await byId(bob.page, 'message-input').fill('bob was offline');
    await byId(bob.page, 'message-send').click();
    await bob.page.waitForSelector('[data-testid="pending-list"] > [data-state="pending"]');
    assert.deepEqual(
      (await shownMessages(bob.page)).map((m) => m.id),
      [first.id],
      'nothing reaches bob while he is cut off',
    );
    await screenshot(bob, 'offline');

    // --- bob comes back --------------------------------------------------------------------------
    proxy.restore();
    step('bob let back in');
    await waitForState(bob.page, 'connected');
    step('bob connected again');
    await waitForTexts(bob.page, [...missed, 'bob was offline']);
    await bob.page.waitForFunction(() => document.querySelector('[data-testid="pending-list"]').children.length === 0);
    await waitForTexts(alice.page, ['bob was offline']);
    // Let any late duplicate (a live copy racing the gap page) arrive before counting.
    await sleep(1000);

    const expected = [...sent.map((m) => m.text), 'bob was offline'];
    const bobShown = await shownMessages(bob.page);
    const aliceShown = await shownMessages(alice.page);
    assert.deepEqual(bobShown.map((m) => m.text), expected, 'bob sees every message once, in order');
    assert.deepEqual(bobShown, aliceShown, 'both pages show the same list');
    const ids = bobShown.map((m) => m.id);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'ascending ids');
    assert.equal(new Set(ids).size, ids.length, 'no id twice');
    assert.deepEqual(ids.slice(0, 4), sent.map((m) => m.id));
    assert.ok(bobShown.every((m) => m.testid === `message-${m.id}`));

    // The gap was read from the history with after=<last id seen before the cut>.
    const gapRequest = bob.requests
      .slice(requestsBeforeCut)
      .find((r) => r.url.includes(`/chat/history/${roomId}`) && new URL(r.url).searchParams.get('after') === String(first.id));
    assert.ok(gapRequest, `bob's page asked for after=${first.id}: ${bob.requests.slice(requestsBeforeCut).map((r) => r.url).join(' ')}`);

    // The mention made while he was away came with the stream's resume (lastEventId), once.
    const secondMention = bob.page.locator(notificationsHere, { hasText: 'after the cut 2 @bob' });
    await secondMention.waitFor();
    assert.equal(await secondMention.count(), 1);
    assert.equal(await bob.page.locator(`[data-testid="${mentionTestId}"]`).count(), 1, 'the first mention is not repeated');
    const resume = bob.requests
      .slice(requestsBeforeCut)
      .find((r) => r.url.includes('/notifications/stream') && Number(new URL(r.url).searchParams.get('lastEventId')) >= mentionId);
    assert.ok(resume, 'the stream was reopened with lastEventId');

    // --- older pages on scroll (before=) ---------------------------------------------------------
    // A reload of bob's page reopens the room; its first page holds the latest messages.
    await bob.page.reload();
    await waitForState(bob.page, 'connected');
    await waitForTexts(bob.page, expected);
    assert.deepEqual((await shownMessages(bob.page)).map((m) => m.text), expected);

    await screenshot(alice, 'final');
    await screenshot(bob, 'final');
    assert.deepEqual(alice.pageErrors, [], 'no uncaught error on alice\'s page');
    assert.deepEqual(bob.pageErrors, [], 'no uncaught error on bob\'s page');
  });
});

test('history pages: the latest first, older ones on scroll with before=', { timeout: TEST_MS }, async () => {
  const roomId = `web-pages-${Date.now().toString(36)}`;
  // 60 messages straight over REST would need STOMP; the page itself sends them quickly instead.
  await scenario('pages', async ({ open }) => {
    const alice = await open('alice-pages', HERALD_URL);
    await logIn(alice, 'alice');
    await openRoom(alice.page, roomId);
    const { page } = alice;
    const texts = Array.from({ length: 60 }, (_, i) => `page message ${String(i).padStart(2, '0')}`);
    // Send them back to back through the page's own composer, then wait for every RECEIPT.
    for (const text of texts) {
      await byId(page, 'message-input').fill(text);
      await byId(page, 'message-input').press('Enter');
    }
    await waitForTexts(page, texts);
    await page.waitForFunction(() => document.querySelector('[data-testid="pending-list"]').children.length === 0);

    step('60 messages sent');
    // Reopen: only the latest 50 come first.
    await page.reload();
    await waitForState(page, 'connected');
    await waitForTexts(page, texts.slice(10));
    let shown = await shownMessages(page);
    assert.deepEqual(shown.map((m) => m.text), texts.slice(10), 'the latest page, ascending');
    const before = page.waitForRequest((r) => r.url().includes(`/chat/history/${roomId}`) && new URL(r.url()).searchParams.get('before') === String(shown[0].id));
    await page.locator('[data-testid="message-scroller"]').evaluate((n) => { n.scrollTop = 0; });
    await before;
    await waitForTexts(page, texts);
    shown = await shownMessages(page);
    assert.deepEqual(shown.map((m) => m.text), texts, 'older page prepended, still ascending, no duplicate');
    assert.deepEqual(alice.pageErrors, []);
  });
});

/** `dm-` and 24 hex digits of SHA-256 over the two names, sorted, joined by a newline (SPEC §8). */
function dmRoomId(a, b) {
  return `dm-${createHash('sha256').update([a, b].sort().join('\n')).digest('hex').slice(0, 24)}`;
}

/** The SUBSCRIBE frames a page sent to a room. */
function subscribesTo(client, roomId) {
  return client.stompSent.filter((f) => f.startsWith('SUBSCRIBE') && f.includes(`destination:/topic/chat.${roomId}\n`)).length;
}

/** `user`'s entry for `roomId` in `GET /rooms`, or undefined. */
async function listedRoom(client, roomId) {
  const token = (await storedSession(client.page)).accessToken;
  const answer = await restJson(client.base, 'GET', '/rooms?limit=500', token);
  assert.equal(answer.status, 200);
  return answer.json.data.find((r) => r.roomId === roomId);
}

test('rooms: a private room with unread counts and read marks, a DM, a removal, an outsider', { timeout: TEST_MS }, async () => {
  const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
  const roomId = `team-${suffix}`;
  const roomName = `팀 채널 ${suffix}`;
  await scenario('rooms', async ({ open }) => {
    const alice = await open('alice-rooms', HERALD_URL);
    const bob = await open('bob-rooms', HERALD_URL);
    await logIn(alice, 'alice');
    await logIn(bob, 'bob');

    // --- alice creates a private room ------------------------------------------------------------
    await byId(alice.page, 'room-create').click();
    await byId(alice.page, 'room-create-name').fill(roomName);
    await byId(alice.page, 'room-create-id').fill('not a valid id!');
    await byId(alice.page, 'room-create-submit').click();
    await byId(alice.page, 'room-create-error').waitFor({ state: 'visible' });
    assert.match(await byId(alice.page, 'room-create-error').textContent(), /방 ID는/, 'a bad id is explained');
    await byId(alice.page, 'room-create-id').fill(roomId);
    assert.equal(await byId(alice.page, 'room-create-private').isChecked(), true, 'private by default');
    await byId(alice.page, 'room-create-submit').click();
    await waitForRoomLoaded(alice.page, roomId);
    await alice.page.waitForSelector(`[data-testid="room-${roomId}"][data-kind="private"]`);
    assert.equal(await byId(alice.page, 'room-title').textContent(), roomName);
    await byId(alice.page, 'room-member-alice').waitFor();
    assert.equal(await byId(alice.page, 'room-create-form').isVisible(), false, 'the form closes');
    // The same id again: 409, shown on the form.
    await byId(alice.page, 'room-create').click();
    await byId(alice.page, 'room-create-name').fill('again');
    await byId(alice.page, 'room-create-id').fill(roomId);
    await byId(alice.page, 'room-create-submit').click();
    await alice.page.waitForSelector('[data-testid="room-create-error"]:has-text("이미 쓰이는 방 ID")');
    await byId(alice.page, 'room-create-cancel').click();
    step(`alice created the private room ${roomId}`);

    // --- she invites bob (and someone who does not exist) ----------------------------------------
    await byId(alice.page, 'room-invite-input').fill(`nobody-${suffix}`);
    await byId(alice.page, 'room-invite-submit').click();
    await byId(alice.page, 'room-action-error').waitFor({ state: 'visible' });
    await byId(alice.page, 'room-invite-input').fill('bob');
    await byId(alice.page, 'room-invite-submit').click();
    await byId(alice.page, 'room-member-bob').waitFor();
    assert.equal(await byId(alice.page, 'room-action-error').isVisible(), false);
    await screenshot(alice, 'rooms-created');

    // --- alice writes; bob's list shows the room with its unread count ---------------------------
    // (The mention's notification is what tells bob's page that a new room is there.)
    const texts = ['@bob 팀 방에 초대했어요', '두 번째', '세 번째'];
    const sent = [];
    for (const text of texts) sent.push(await send(alice.page, text));
    const bobEntry = byId(bob.page, `room-${roomId}`);
    await bob.page.waitForSelector(`[data-testid="room-unread-${roomId}"]:text-is("3")`);
    assert.equal(await bobEntry.getAttribute('data-kind'), 'private');
    assert.match(await bobEntry.textContent(), new RegExp(roomName));
    assert.match(await bobEntry.locator('.preview').textContent(), /alice: 세 번째/);
    assert.equal((await listedRoom(bob, roomId)).unread, 3, 'the server counts 3 for bob');
    await screenshot(bob, 'rooms-unread');
    step('bob sees the room with 3 unread');

    // --- bob opens it: the messages in id order, the count goes to 0 ------------------------------
    await bobEntry.locator('button').click();
    await waitForRoomLoaded(bob.page, roomId);
    await waitForTexts(bob.page, texts);
    const shown = await shownMessages(bob.page);
    assert.deepEqual(shown.map((m) => m.text), texts);
    assert.deepEqual(shown.map((m) => m.id), sent.map((m) => m.id), 'in id order');
    await bob.page.waitForSelector(`[data-testid="room-${roomId}"][data-unread="0"]`);
    assert.equal(await byId(bob.page, `room-unread-${roomId}`).count(), 0, 'no badge');
    await eventually('the server to count 0 unread for bob', async () => (await listedRoom(bob, roomId)).unread === 0);
    const readMark = bob.requests.find((r) => r.method === 'POST' && r.url.endsWith(`/rooms/${roomId}/read`));
    assert.equal(JSON.parse(readMark.body).lastReadId, sent[2].id, 'the read mark is the last id shown');
    assert.equal(await byId(bob.page, 'room-title').textContent(), roomName);
    assert.equal(await byId(bob.page, 'room-invite-form').isVisible(), false, 'only the owner invites');

    // Reading while it is open: a new message moves the mark along, the count stays 0.
    const fourth = await send(alice.page, '네 번째');
    await byId(bob.page, `message-${fourth.id}`).waitFor();
    await eventually('bob\'s read mark to follow', async () => {
      const marks = bob.requests.filter((r) => r.method === 'POST' && r.url.endsWith(`/rooms/${roomId}/read`));
      return marks.some((r) => JSON.parse(r.body).lastReadId === fourth.id);
    });
    const listed = await listedRoom(bob, roomId);
    assert.equal(listed.unread, 0);
    assert.equal(listed.lastMessage.id, fourth.id);
    assert.equal(await byId(bob.page, `room-unread-${roomId}`).count(), 0);
    await screenshot(bob, 'rooms-read');
    step('bob read the room: 0 unread, on the page and on the server');

    // --- alice opens a DM with bob ----------------------------------------------------------------
    const dmId = dmRoomId('alice', 'bob');
    await byId(alice.page, 'dm-open-input').fill('alice');
    await byId(alice.page, 'dm-open-submit').click();
    await byId(alice.page, 'dm-open-error').waitFor({ state: 'visible' });
    await byId(alice.page, 'dm-open-input').fill('bob');
    await byId(alice.page, 'dm-open-submit').click();
    await waitForRoomLoaded(alice.page, dmId);
    assert.equal(await byId(alice.page, 'room-title').textContent(), '@bob');
    await alice.page.waitForSelector(`[data-testid="room-${dmId}"][data-kind="dm"]`);
    // Bob comes back to his tab: the list is read again and shows the DM, named after alice.
    await bob.page.evaluate(() => window.dispatchEvent(new Event('focus')));
    const bobDm = byId(bob.page, `room-${dmId}`);
    await bobDm.waitFor();
    await bob.page.waitForSelector(`[data-testid="room-${dmId}"] .name:text-is("@alice")`);
    // A message in it counts live on bob's list (he is still in the team room).
    const hello = await send(alice.page, '안녕, 1:1 방이야');
    await bob.page.waitForSelector(`[data-testid="room-unread-${dmId}"]:text-is("1")`);
    assert.match(await bobDm.locator('.preview').textContent(), /안녕, 1:1 방이야/);
    await screenshot(bob, 'rooms-dm');
    await bobDm.locator('button').click();
    await byId(bob.page, `message-${hello.id}`).waitFor();
    assert.equal(await byId(bob.page, 'room-title').textContent(), '@alice');
    step(`the DM ${dmId} reached bob`);
    // Bob leaves it: the page says so and the DM leaves his list (alice's side is unchanged).
    await byId(bob.page, 'room-leave').click();
    await bob.page.waitForSelector('[data-testid="room-notice"][data-reason="left"]');
    await bobDm.waitFor({ state: 'detached' });
    assert.equal(await byId(bob.page, 'message-input').isDisabled(), true);
    assert.equal(await listedRoom(bob, dmId), undefined);
    assert.ok(await listedRoom(alice, dmId), 'still alice\'s');

    // --- alice removes bob while he is in the room -------------------------------------------------
    await byId(bob.page, `room-${roomId}`).locator('button').click();
    await waitForRoomLoaded(bob.page, roomId);
    await waitForTexts(bob.page, [...texts, '네 번째']);
    await alice.page.locator(`[data-testid="room-${roomId}"] button`).click();
    await waitForRoomLoaded(alice.page, roomId);
    const subscribesBefore = subscribesTo(bob, roomId);
    assert.ok(subscribesBefore >= 1);
    await byId(alice.page, 'room-member-remove-bob').click();
    await byId(alice.page, 'room-member-bob').waitFor({ state: 'detached' });
    await bob.page.waitForSelector('[data-testid="room-notice"][data-reason="forbidden"]');
    assert.match(await byId(bob.page, 'room-notice').textContent(), /권한이 없어졌습니다/);
    await byId(bob.page, `room-${roomId}`).waitFor({ state: 'detached' });
    assert.equal(await byId(bob.page, 'message-input').isDisabled(), true, 'bob cannot write there any more');
    assert.equal(await byId(bob.page, 'room-leave').isVisible(), false);
    assert.equal(await byId(bob.page, 'connection-state').getAttribute('data-state'), 'connected');
    // His list is read again (he comes back to the tab) and the room stays away, never subscribed again.
    // (`room-list`'s data-reads counts the list reads applied.)
    const reads = Number(await byId(bob.page, 'room-list').getAttribute('data-reads'));
    await bob.page.evaluate(() => window.dispatchEvent(new Event('focus')));
    await bob.page.waitForFunction((n) => Number(document.querySelector('[data-testid="room-list"]').dataset.reads) > n, reads);
    assert.equal(await byId(bob.page, `room-${roomId}`).count(), 0);
    assert.equal(await listedRoom(bob, roomId), undefined, 'the server does not list it for bob either');
    assert.equal(subscribesTo(bob, roomId), subscribesBefore, 'bob\'s page did not subscribe to it again');
    assert.equal(await byId(bob.page, 'connection-state').getAttribute('data-state'), 'connected');
    await screenshot(bob, 'rooms-removed');
    step('bob was removed: his page says so, the room left his list');

    // --- a public room: a removal ends the subscription too, but anyone may read it -----------------
    const publicId = `hall-${suffix}`;
    const aliceToken = (await storedSession(alice.page)).accessToken;
    const made = await restJson(HERALD_URL, 'POST', '/rooms', aliceToken, { roomId: publicId, name: '광장', private: false });
    assert.equal(made.status, 201);
    assert.equal((await restJson(HERALD_URL, 'POST', `/rooms/${publicId}/members`, aliceToken, { username: 'bob' })).status, 201);
    await openRoom(bob.page, publicId);
    await byId(bob.page, 'room-member-bob').waitFor();
    await eventually('bob\'s subscription to the public room', () => subscribesTo(bob, publicId) === 1);
    assert.equal((await restJson(HERALD_URL, 'DELETE', `/rooms/${publicId}/members/bob`, aliceToken)).status, 200);
    // The server ends his subscription (FORBIDDEN); the page subscribes again and stays usable.
    await eventually('bob\'s page to subscribe to the public room again', () => subscribesTo(bob, publicId) === 2);
    await openRoom(alice.page, publicId);
    const inHall = await send(alice.page, '공개 방은 누구나 읽어요');
    await byId(bob.page, `message-${inHall.id}`).waitFor();
    assert.equal(await byId(bob.page, 'room-notice').isVisible(), false);
    assert.equal(await byId(bob.page, 'message-input').isDisabled(), false);
    assert.equal(await byId(bob.page, `room-${publicId}`).getAttribute('data-kind'), 'public');
    step('a public room: bob removed, still reading it');

    // --- carol (testuser) cannot open the private room ---------------------------------------------
    const carol = await open('carol-rooms', HERALD_URL);
    await logIn(carol, 'testuser');
    await byId(carol.page, 'room-open-input').fill(roomId);
    await byId(carol.page, 'room-open-input').press('Enter');
    await carol.page.waitForSelector('[data-testid="room-notice"][data-reason="denied"]');
    assert.match(await byId(carol.page, 'room-notice').textContent(), /비공개 방/);
    assert.equal(await byId(carol.page, `room-${roomId}`).count(), 0, 'not on her list');
    assert.equal(await carol.page.locator('[data-testid="message-list"] > *').count(), 0, 'no message shown');
    assert.equal(await byId(carol.page, 'message-input').isDisabled(), true);
    assert.equal(subscribesTo(carol, roomId), 0, 'her page never subscribed to it (that would end her connection)');
    assert.equal(await byId(carol.page, 'connection-state').getAttribute('data-state'), 'connected');
    await screenshot(carol, 'rooms-outsider');
    step('carol was refused the private room');

    for (const client of [alice, bob, carol]) assert.deepEqual(client.pageErrors, [], `no uncaught error on ${client.name}'s page`);
  });
});

test('a reload keeps the session while the access token is valid, then uses the refresh token', { timeout: TEST_MS, skip: !SHORT_TTL_URL && 'HERALD_SHORT_TTL_URL not set' }, async () => {
  await scenario('reload', async ({ open }) => {
    const client = await open('alice-ttl', SHORT_TTL_URL);
    const { page, requests } = client;
    const reissues = () => requests.filter((r) => r.url.endsWith('/auth/reissue'));
    await logIn(client, 'alice');
    const first = await storedSession(page);
    assert.ok(first.accessToken && first.refreshToken);

    // Within the token's lifetime a reload needs no network round trip for the session.
    const beforeReload = reissues().length;
    await page.reload();
    await byId(page, 'chat-view').waitFor({ state: 'visible' });
    await waitForState(page, 'connected');
    assert.equal(await byId(page, 'current-user').textContent(), 'alice');
    assert.equal(reissues().length, beforeReload, 'no reissue while the access token is valid');
    assert.equal((await storedSession(page)).refreshToken, first.refreshToken);

    step('reload within the token lifetime kept the session');
    // Leave the page until the access token has expired, then come back.
    await page.goto('about:blank');
    const parked = await (await fetch(`${SHORT_TTL_URL}/health`)).json();
    assert.equal(parked.status, 'UP');
    await sleep(SHORT_TTL_SECS * 1000 + 1500);
    const reissueAnswer = page.waitForResponse((r) => r.url().endsWith('/auth/reissue'));
    await page.goto(`${SHORT_TTL_URL}/`);
    assert.equal((await reissueAnswer).status(), 200, 'the refresh token was used');
    await byId(page, 'chat-view').waitFor({ state: 'visible' });
    await waitForState(page, 'connected');
    step('after expiry the refresh token was used');
    const second = await storedSession(page);
    assert.notEqual(second.refreshToken, first.refreshToken, 'a new pair is stored');
    assert.notEqual(second.accessToken, first.accessToken);

    // The page keeps working across several expiries (STOMP and SSE end at expiry and come back
    // with reissued tokens, one reissue at a time), so a message still goes through.
    await openRoom(page, `web-ttl-${Date.now().toString(36)}`);
    await sleep(SHORT_TTL_SECS * 1000 + 1000);
    await waitForState(page, 'connected');
    await send(page, 'still here');
    step('chatting across expiries');
    assert.equal(await byId(page, 'auth-view').isVisible(), false, 'never sent back to the login form');

    // Once the refresh token family is revoked (a spent token replayed), the next reissue fails
    // and the page asks to log in again.
    const replay = await restJson(SHORT_TTL_URL, 'POST', '/auth/reissue', null, { refreshToken: first.refreshToken });
    assert.equal(replay.status, 401);
    await byId(page, 'auth-view').waitFor({ state: 'visible', timeout: (SHORT_TTL_SECS + 10) * 1000 });
    assert.notEqual(await byId(page, 'login-error').textContent(), '');
    assert.equal(await storedSession(page), null, 'the session is forgotten');
    await screenshot(client, 'session-ended');
    assert.deepEqual(client.pageErrors, []);
  });
});
