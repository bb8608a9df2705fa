// One open room: its history (latest page first, older pages on scroll with `before=`), its live
// messages, the gap after a reconnect (`after=`), and the user's pending sends.
//
// The history is read *before* the room is subscribed to: for a private room the user is not in,
// the history answers 404 and nothing is subscribed (a SUBSCRIBE to it would end the whole STOMP
// connection). The gap between that read and the subscription is closed when the subscription is
// confirmed (its RECEIPT), with `after=<last id>`, exactly as after a reconnect.
//
// Every message goes through `add`, which keeps `message-list` in ascending id order and drops an
// id it already shows, so history pages, live MESSAGEs and gap pages may overlap in any order and
// the list still shows each message once.

import { el, mentions, shortTime, withMentions } from './dom.js';
import { t } from './i18n.js';
import { CONNECTION_LOST } from './chat.js';

/** History page size for the first and older pages. */
const PAGE = 50;
/** Page size when recovering a gap (the server's maximum). */
const GAP_PAGE = 500;
/** Within this many pixels of an edge counts as "at" it. */
const EDGE_PX = 48;

export class Room {
  /**
   * @param {object} options
   * @param {string} options.roomId
   * @param {string} options.me the user's name (own messages, mentions)
   * @param {import('./api.js').Api} options.api
   * @param {import('./chat.js').ChatClient} options.chat
   * @param {object} options.nodes the room view's elements: list, pending, scroller, older, status
   * @param {(lastId: number) => void} [options.onSeen] messages up to `lastId` are on screen
   * @param {() => void} [options.onDenied] the history answered 404: a private room the user is not in, or no room
   * @param {() => void} [options.onForbidden] the server ended the subscription (access withdrawn)
   */
  constructor({ roomId, me, api, chat, nodes, onSeen, onDenied, onForbidden }) {
    this.roomId = roomId;
    this.onSeen = onSeen ?? (() => {});
    this.onDenied = onDenied ?? (() => {});
    this.onForbidden = onForbidden ?? (() => {});
    this.me = me;
    this.api = api;
    this.chat = chat;
    this.nodes = nodes;
    /** Ids shown, ascending. */
    this.ids = [];
    this.items = new Map();
    this.hasOlder = false;
    this.loadingOlder = false;
    this.closed = false;
    /** The latest page was read (the room may be entered). */
    this.latestLoaded = false;
    /** The room's detail (`GET /rooms/{roomId}`: name, owner, members), null for an open room. Set by the page. */
    this.detail = null;
    /** The user may no longer use the room here (denied, removed, left). Set by the page. */
    this.ended = false;
    this.onScroll = () => {
      if (this.nodes.scroller.scrollTop < EDGE_PX) this.loadOlder();
    };
    this.onOlderClick = () => this.loadOlder();
  }

  /** Shows the room: loads its latest page, then follows it live. Resolves to `ok`, `denied` or `failed`. */
  async open() {
    const { list, pending, scroller, older } = this.nodes;
    list.replaceChildren();
    list.dataset.room = this.roomId;
    list.dataset.loaded = 'false';
    pending.replaceChildren();
    older.hidden = true;
    scroller.addEventListener('scroll', this.onScroll);
    older.addEventListener('click', this.onOlderClick);
    this.loaded = this.loadLatest();
    const result = await this.loaded;
    if (this.closed) return result;
    if (result === 'denied') this.onDenied();
    // After a failure other than 404 (offline, store down) follow anyway: the resync reads it again.
    else this.follow();
    return result;
  }

  /** Subscribes to the room; every confirmed subscription (the first, and after a reconnect) reads the gap. */
  follow() {
    this.stopFollowing?.();
    const stop = this.chat.join(this.roomId, {
      onMessage: (message) => this.add([message]),
      onResync: () => this.recoverGap(),
      onForbidden: () => {
        if (this.stopFollowing !== stop) return;
        this.stopFollowing = null;
        if (!this.closed) this.onForbidden();
      },
    });
    this.stopFollowing = stop;
  }

  /** Stops following without leaving the view (access was withdrawn: what was shown stays). */
  stop() {
    this.stopFollowing?.();
    this.stopFollowing = null;
  }

  close() {
    this.closed = true;
    this.stopFollowing?.();
    this.nodes.scroller.removeEventListener('scroll', this.onScroll);
    this.nodes.older.removeEventListener('click', this.onOlderClick);
  }

  get lastId() {
    return this.ids.length ? this.ids[this.ids.length - 1] : 0;
  }

  get firstId() {
    return this.ids.length ? this.ids[0] : null;
  }

  status(text) {
    this.nodes.status.textContent = text || '';
    this.nodes.status.hidden = !text;
  }

  async loadLatest() {
    this.status(t('room.loading'));
    let result = 'ok';
    try {
      const page = await this.api.history(this.roomId, { limit: PAGE });
      if (this.closed) return 'closed';
      this.hasOlder = page.length === PAGE;
      this.add(page);
      this.latestLoaded = true;
      this.status(this.ids.length ? '' : t('room.empty'));
    } catch (e) {
      if (this.closed) return 'closed';
      if (e.status === 404) {
        result = 'denied';
        this.status('');
      } else {
        result = 'failed';
        this.status(`${t('room.loadFailed')} (${e.code})`);
      }
    }
    this.nodes.older.hidden = !this.hasOlder;
    this.scrollToBottom();
    this.nodes.list.dataset.loaded = 'true';
    if (this.lastId) this.onSeen(this.lastId);
    return result;
  }

  /** The page before the oldest message shown. */
  async loadOlder() {
    if (!this.hasOlder || this.loadingOlder || this.closed || this.firstId === null) return;
    this.loadingOlder = true;
    try {
      const page = await this.api.history(this.roomId, { before: this.firstId, limit: PAGE });
      if (this.closed) return;
      this.hasOlder = page.length === PAGE;
      this.add(page);
      if (!this.hasOlder) this.status(t('room.start'));
    } catch (e) {
      if (!this.closed) this.status(`${t('room.loadFailed')} (${e.code})`);
    } finally {
      this.loadingOlder = false;
      this.nodes.older.hidden = !this.hasOlder;
    }
  }

  /** After a reconnect: every message above the last one shown, page by page. */
  async recoverGap() {
    await this.loaded;
    if (this.closed) return;
    if (!this.latestLoaded) {
      // The first read failed: read the latest page now, not the room's oldest messages.
      this.loaded = this.loadLatest();
      await this.loaded;
      return;
    }
    let after = this.lastId;
    for (;;) {
      if (this.closed) return;
      let page;
      try {
        page = await this.api.history(this.roomId, { after, limit: GAP_PAGE });
      } catch (e) {
        // The next reconnect tries again; live messages keep arriving meanwhile.
        console.warn('herald: gap recovery failed', e);
        return;
      }
      if (this.closed) return;
      this.add(page);
      this.settleLostSends(page);
      if (page.length < GAP_PAGE) return;
      after = page[page.length - 1].id;
    }
  }

  /** Inserts messages in id order, skipping ids already shown; returns how many were new. */
  add(messages) {
    const { scroller, list } = this.nodes;
    const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < EDGE_PX;
    const heightBefore = scroller.scrollHeight;
    const topBefore = scroller.scrollTop;
    let added = 0;
    let insertedAboveView = false;
    for (const message of messages) {
      if (!message || message.roomId !== this.roomId || !Number.isInteger(message.id) || this.items.has(message.id)) continue;
      const at = this.insertionIndex(message.id);
      const node = this.render(message);
      list.insertBefore(node, at < this.ids.length ? this.items.get(this.ids[at]) : null);
      this.ids.splice(at, 0, message.id);
      this.items.set(message.id, node);
      if (at === 0 && this.ids.length > 1) insertedAboveView = true;
      added += 1;
    }
    if (added) {
      if (this.nodes.status.textContent === t('room.empty')) this.status('');
      if (atBottom && !insertedAboveView) this.scrollToBottom();
      else if (insertedAboveView) scroller.scrollTop = topBefore + (scroller.scrollHeight - heightBefore);
      if (this.latestLoaded && !this.closed) this.onSeen(this.lastId);
    }
    return added;
  }

  insertionIndex(id) {
    let low = 0;
    let high = this.ids.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.ids[mid] < id) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  render(message) {
    const mine = message.sender === this.me;
    const classes = ['message'];
    if (mine) classes.push('mine');
    if (!mine && mentions(message.message, this.me)) classes.push('mentions-me');
    return el(
      'li',
      { class: classes.join(' '), 'data-testid': `message-${message.id}`, dataset: { id: message.id, sender: message.sender } },
      el('div', { class: 'meta' }, el('span', { class: 'sender' }, message.sender), ' ', el('time', { datetime: message.sentAt }, shortTime(message.sentAt))),
      el('p', { class: 'text' }, withMentions(message.message, this.me)),
    );
  }

  scrollToBottom() {
    const { scroller } = this.nodes;
    scroller.scrollTop = scroller.scrollHeight;
  }

  /** Sends `text`; it shows as pending until its RECEIPT, then the live copy stands alone. */
  send(text) {
    const node = el(
      'li',
      { class: 'message mine pending', dataset: { state: 'pending' } },
      el('div', { class: 'meta' }, el('span', { class: 'sender' }, this.me), ' ', el('span', { class: 'state' }, t('room.pending'))),
      el('p', { class: 'text' }, withMentions(text, this.me)),
    );
    this.nodes.pending.append(node);
    this.scrollToBottom();
    this.transmit(text, node);
  }

  transmit(text, node) {
    const { receiptId, done } = this.chat.send(this.roomId, text);
    node.dataset.testid = `pending-${receiptId}`;
    node.dataset.state = 'pending';
    node.dataset.text = text;
    node.dataset.sentAfter = String(this.lastId);
    node.classList.remove('failed');
    node.querySelector('.state').textContent = t('room.pending');
    node.querySelector('.actions')?.remove();
    done.then(
      () => node.remove(),
      (error) => this.failed(text, node, error),
    );
  }

  failed(text, node, error) {
    if (this.closed || !node.isConnected) return;
    node.dataset.state = 'failed';
    node.dataset.code = error?.code ?? '';
    node.classList.add('failed');
    const reason = error?.code === CONNECTION_LOST ? '' : ` (${error?.message || error?.code || ''})`;
    node.querySelector('.state').textContent = `${t('room.failed')}${reason}`;
    node.append(
      el(
        'div',
        { class: 'actions' },
        el('button', { type: 'button', class: 'link', 'data-testid': 'pending-retry', onclick: () => this.transmit(text, node) }, t('room.retry')),
        el('button', { type: 'button', class: 'link', 'data-testid': 'pending-discard', onclick: () => node.remove() }, t('room.discard')),
      ),
    );
  }

  /**
   * A send whose connection dropped before its RECEIPT may still have been stored. When the gap
   * holds a message of ours with the same text, newer than what was shown when it was sent, it was:
   * drop the failed copy instead of offering to send it twice.
   */
  settleLostSends(page) {
    for (const node of [...this.nodes.pending.children]) {
      if (node.dataset.state !== 'failed' || node.dataset.code !== CONNECTION_LOST) continue;
      const after = Number(node.dataset.sentAfter);
      if (page.some((m) => m.sender === this.me && m.message === node.dataset.text && m.id > after)) node.remove();
    }
  }
}
