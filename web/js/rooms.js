// The room list (SPEC §8): the rooms the server lists for the user (`GET /rooms`: every public
// room and every private room the user is in, direct messages included, each with `unread` and
// `lastMessage`), plus the open rooms this user opened by id in this browser (the server does not
// list rooms that were never created).
//
// Unread counts stay current without polling the server per message: every listed room is followed
// over STOMP (up to WATCH_MAX rooms, the most recently active first), a live message in a room that
// is not being read adds one, and a message read in the open room sends the read mark
// (`POST /rooms/{roomId}/read`, debounced, never lower than one sent before). The list is read again
// from the server when it may have changed without a message: on start, after a reconnect, when a
// notification arrives (a mention in a room one was just invited to), when the page comes back into
// view, every REFRESH_MS while it is visible, and after the user's own room actions.
//
// Losing a room: when the server ends a subscription with FORBIDDEN (the user was removed, or the
// room became private), the room is taken off the list at once and never followed again until a
// list read *started after* the loss shows it again (a public room does; a private one does only
// after a new invitation). An older answer still in flight cannot bring it back.

/** SPEC §3: a room id is 1–64 of `[A-Za-z0-9_-]`. */
export const ROOM_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Room ids starting with this are direct-message rooms (SPEC §8). */
export const DM_PREFIX = 'dm-';

/** Open rooms remembered per user in this browser. */
const MAX_RECENT = 20;
/** Rooms followed live for their counts (the server allows 100 subscriptions per connection). */
const WATCH_MAX = 60;
/** `GET /rooms` page size, and how many pages at most (rooms beyond are not listed). */
const PAGE = 200;
const MAX_PAGES = 5;
/** The list is read again this often while the page is visible. */
const REFRESH_MS = 60_000;
/** Read marks are sent this long after the last message read (one request per burst). */
const READ_DEBOUNCE_MS = 300;

/** `open` (never created), `public`, `private` or `dm`. */
export function roomKind(room) {
  if (!room || room.kind === 'open') return 'open';
  if (room.roomId.startsWith(DM_PREFIX)) return 'dm';
  return room.private ? 'private' : 'public';
}

export class RoomDirectory {
  /**
   * @param {object} options
   * @param {string} options.me
   * @param {import('./api.js').Api} options.api
   * @param {import('./chat.js').ChatClient} options.chat
   * @param {() => void} options.onChange the list changed: render it again
   * @param {Storage} [options.storage]
   */
  constructor({ me, api, chat, onChange, storage = localStorage }) {
    this.me = me;
    this.api = api;
    this.chat = chat;
    this.onChange = onChange;
    this.storage = storage;
    this.recentKey = `herald.rooms.${me}`;
    this.lastKey = `herald.lastRoom.${me}`;
    this.peersKey = `herald.dmPeers.${me}`;
    /** roomId -> a `GET /rooms` entry (or a created room's detail), as last seen */
    this.server = new Map();
    /** roomId -> local unread count of an open room (since this page loaded) */
    this.openUnread = new Map();
    /** roomId -> lastMessage of an open room seen live */
    this.openLast = new Map();
    /** roomId -> the highest read mark sent (or answered) */
    this.readMarks = new Map();
    /** roomId -> { lastId, timer } of a read mark waiting to be sent */
    this.readQueue = new Map();
    /** roomId -> the refresh sequence number at the time access was lost */
    this.denied = new Map();
    /** roomId -> stop() of its live subscription for the counts */
    this.watches = new Map();
    /** DM roomId -> the other person's name */
    this.peers = this.loadPeers();
    this.peerLookups = new Set();
    this.active = null;
    this.loaded = false;
    /** List reads applied (shown as `room-list`'s data-reads, for tests and debugging). */
    this.reads = 0;
    this.refreshSeq = 0;
    this.refreshing = null;
    this.refreshAgain = false;
    this.refreshTimer = null;
    this.interval = null;
    this.stopped = false;
    this.onVisible = () => {
      if (document.visibilityState === 'visible') this.refreshSoon(0);
    };
  }

  start() {
    this.stopped = false;
    document.addEventListener('visibilitychange', this.onVisible);
    window.addEventListener('focus', this.onVisible);
    this.interval = setInterval(() => {
      if (document.visibilityState === 'visible') this.refreshSoon(0);
    }, REFRESH_MS);
    this.onChange();
    return this.refresh();
  }

  stop() {
    this.stopped = true;
    document.removeEventListener('visibilitychange', this.onVisible);
    window.removeEventListener('focus', this.onVisible);
    clearInterval(this.interval);
    clearTimeout(this.refreshTimer);
    for (const { timer } of this.readQueue.values()) clearTimeout(timer);
    this.readQueue.clear();
    for (const stop of this.watches.values()) stop();
    this.watches.clear();
  }

  // --- the list -------------------------------------------------------------------------------

  /** Every room to show: `{ roomId, name, kind, owner, memberCount, lastMessage, unread }`, most recently active first. */
  list() {
    const rooms = [];
    for (const room of this.server.values()) {
      if (this.denied.has(room.roomId)) continue;
      rooms.push({
        roomId: room.roomId,
        name: this.displayName(room),
        kind: roomKind(room),
        owner: room.owner ?? null,
        memberCount: room.memberCount ?? room.members?.length ?? null,
        lastMessage: room.lastMessage ?? null,
        unread: room.roomId === this.active ? 0 : room.unread ?? 0,
        activity: activity(room.lastMessage?.sentAt ?? room.createdAt),
      });
    }
    const recent = this.recent();
    recent.forEach(({ roomId, openedAt }) => {
      if (this.server.has(roomId) || this.denied.has(roomId)) return;
      const lastMessage = this.openLast.get(roomId) ?? null;
      rooms.push({
        roomId,
        name: roomId,
        kind: 'open',
        owner: null,
        memberCount: null,
        lastMessage,
        unread: roomId === this.active ? 0 : this.openUnread.get(roomId) ?? 0,
        activity: Math.max(openedAt || 0, activity(lastMessage?.sentAt)),
      });
    });
    return rooms.sort((a, b) => b.activity - a.activity || (a.roomId < b.roomId ? -1 : 1));
  }

  /** What the list knows of `roomId`: a created room's entry, or null. */
  get(roomId) {
    return this.server.get(roomId) ?? null;
  }

  displayName(room) {
    if (room.roomId.startsWith(DM_PREFIX)) {
      const peer = this.peers[room.roomId] ?? room.members?.find((m) => m !== this.me);
      return peer ? `@${peer}` : room.roomId;
    }
    return room.name || room.roomId;
  }

  /** Reads the list again after `delay` ms (calls within it are merged). */
  refreshSoon(delay = 200) {
    if (this.stopped) return;
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.refresh(), delay);
  }

  /** Reads the whole list from the server (one read at a time; a call during one runs once more after it). */
  async refresh() {
    if (this.stopped) return;
    if (this.refreshing) {
      this.refreshAgain = true;
      await this.refreshing;
      return;
    }
    this.refreshing = this.readAll().finally(() => {
      this.refreshing = null;
    });
    await this.refreshing;
    if (this.refreshAgain && !this.stopped) {
      this.refreshAgain = false;
      await this.refresh();
    }
  }

  async readAll() {
    this.refreshSeq += 1;
    const seq = this.refreshSeq;
    const rooms = [];
    try {
      let before;
      for (let page = 0; page < MAX_PAGES; page += 1) {
        const batch = await this.api.rooms({ limit: PAGE, before });
        rooms.push(...batch);
        if (batch.length < PAGE) break;
        before = batch[batch.length - 1].roomId;
      }
    } catch (e) {
      // Offline or the store is down: keep what is shown; a later read catches up.
      if (!this.stopped) console.warn('herald: room list failed', e);
      return;
    }
    if (this.stopped) return;
    const next = new Map();
    for (const room of rooms) {
      const deniedAt = this.denied.get(room.roomId);
      // Listed by a read that started after the loss: the user may enter it again.
      if (deniedAt !== undefined && seq > deniedAt) this.denied.delete(room.roomId);
      const mark = this.readMarks.get(room.roomId) ?? 0;
      // A read mark sent after this read began may not be in its count yet.
      const unread = room.lastMessage && room.lastMessage.id <= mark ? 0 : room.unread;
      next.set(room.roomId, { ...room, unread, members: this.server.get(room.roomId)?.members });
    }
    // A room that was on the list and is gone (left, removed, or its page fell off the end).
    this.server = next;
    this.loaded = true;
    this.reads += 1;
    this.lookUpPeers();
    this.syncWatches();
    this.onChange();
  }

  /** Adds or refreshes a created room from an answer of the server (create, invite, DM, detail). */
  upsert(detail) {
    if (!detail?.roomId) return;
    const known = this.server.get(detail.roomId);
    this.denied.delete(detail.roomId);
    if (detail.roomId.startsWith(DM_PREFIX) && Array.isArray(detail.members)) {
      const peer = detail.members.find((m) => m !== this.me);
      if (peer && this.peers[detail.roomId] !== peer) {
        this.peers[detail.roomId] = peer;
        this.savePeers();
      }
    }
    this.server.set(detail.roomId, {
      lastMessage: null,
      unread: 0,
      ...known,
      ...detail,
      memberCount: detail.members?.length ?? detail.memberCount ?? known?.memberCount ?? null,
    });
    this.forgetRecent(detail.roomId);
    this.syncWatches();
    this.onChange();
  }

  /**
   * The server ended the subscription to `roomId`. A public room may be entered by anyone: it is
   * simply followed again. Any other is off the list until a later read lists it again.
   */
  lost(roomId) {
    // (When the server ended it, the subscription is gone already and this stop() changes nothing.)
    const stop = this.watches.get(roomId);
    this.watches.delete(roomId);
    stop?.();
    if (roomKind(this.server.get(roomId)) === 'public') {
      this.syncWatches();
      return;
    }
    const queued = this.readQueue.get(roomId);
    if (queued) {
      clearTimeout(queued.timer);
      this.readQueue.delete(roomId);
    }
    this.denied.set(roomId, this.refreshSeq);
    this.server.delete(roomId);
    this.forgetRecent(roomId);
    this.onChange();
    this.refreshSoon();
  }

  /** The user left `roomId` (or it could not be opened): off the list now; a public room comes back with the next read. */
  remove(roomId) {
    this.lost(roomId);
  }

  // --- the open room --------------------------------------------------------------------------

  /** `roomId` is the room on screen (null: none): its count shows 0 while it is. */
  setActive(roomId) {
    this.active = roomId;
    this.onChange();
  }

  /** An open room (never created) was opened by id: remember it in this browser. */
  rememberOpen(roomId) {
    const ids = [{ roomId, openedAt: Date.now() }, ...this.recent().filter((r) => r.roomId !== roomId)].slice(0, MAX_RECENT);
    this.storage.setItem(this.recentKey, JSON.stringify(ids));
    this.syncWatches();
    this.onChange();
  }

  /** The user has read `roomId` up to message `lastId`: its count goes to 0, the mark goes to the server. */
  read(roomId, lastId) {
    if (!Number.isInteger(lastId) || lastId <= 0) return;
    const room = this.server.get(roomId);
    if (room) room.unread = 0;
    this.openUnread.delete(roomId);
    this.onChange();
    if (!room || lastId <= (this.readMarks.get(roomId) ?? 0)) return;
    const queued = this.readQueue.get(roomId);
    if (queued && queued.lastId >= lastId) return;
    if (queued) clearTimeout(queued.timer);
    const timer = setTimeout(() => this.sendRead(roomId, lastId), READ_DEBOUNCE_MS);
    this.readQueue.set(roomId, { lastId, timer });
  }

  async sendRead(roomId, lastId) {
    this.readQueue.delete(roomId);
    if (this.stopped || lastId <= (this.readMarks.get(roomId) ?? 0)) return;
    this.readMarks.set(roomId, lastId);
    try {
      const mark = await this.api.markRoomRead(roomId, lastId);
      if (mark && mark.lastReadId > (this.readMarks.get(roomId) ?? 0)) this.readMarks.set(roomId, mark.lastReadId);
    } catch (e) {
      // 404: removed meanwhile (the FORBIDDEN path takes it off the list). Otherwise the next read retries.
      if (e.status !== 404 && this.readMarks.get(roomId) === lastId) this.readMarks.delete(roomId);
      console.warn('herald: read mark failed', e);
    }
  }

  /** The room to reopen after a reload. */
  lastOpened() {
    const id = this.storage.getItem(this.lastKey);
    return id && ROOM_ID.test(id) ? id : null;
  }

  setLastOpened(roomId) {
    if (roomId) this.storage.setItem(this.lastKey, roomId);
    else this.storage.removeItem(this.lastKey);
  }

  // --- live counts ----------------------------------------------------------------------------

  /** Follows the most recently active rooms (up to WATCH_MAX) and stops following the others. */
  syncWatches() {
    if (this.stopped) return;
    const wanted = new Set(this.list().slice(0, WATCH_MAX).map((r) => r.roomId));
    for (const [roomId, stop] of this.watches) {
      if (!wanted.has(roomId)) {
        this.watches.delete(roomId);
        stop();
      }
    }
    for (const roomId of wanted) {
      if (this.watches.has(roomId)) continue;
      let resyncs = 0;
      this.watches.set(
        roomId,
        this.chat.join(roomId, {
          onMessage: (message) => this.live(roomId, message),
          // Live again after a reconnect: messages may have come meanwhile. (The first time,
          // too: the list was read before the subscription began.)
          onResync: () => {
            resyncs += 1;
            this.refreshSoon(resyncs === 1 ? 500 : 200);
          },
          onForbidden: () => this.lost(roomId),
        }),
      );
    }
  }

  /** A live message in a followed room. */
  live(roomId, message) {
    if (!message || message.roomId !== roomId || !Number.isInteger(message.id)) return;
    const reading = roomId === this.active && document.visibilityState === 'visible';
    const room = this.server.get(roomId);
    if (room) {
      if (room.lastMessage && room.lastMessage.id >= message.id) return;
      room.lastMessage = message;
      if (!reading && message.id > (this.readMarks.get(roomId) ?? 0)) room.unread = (room.unread ?? 0) + 1;
    } else {
      const last = this.openLast.get(roomId);
      if (last && last.id >= message.id) return;
      this.openLast.set(roomId, message);
      if (!reading) this.openUnread.set(roomId, (this.openUnread.get(roomId) ?? 0) + 1);
    }
    this.onChange();
  }

  // --- direct-message names -------------------------------------------------------------------

  /** Asks the server for the other person of each DM whose name is not known yet. */
  lookUpPeers() {
    for (const room of this.server.values()) {
      const { roomId } = room;
      if (!roomId.startsWith(DM_PREFIX) || this.peers[roomId] || this.peerLookups.has(roomId)) continue;
      this.peerLookups.add(roomId);
      this.api.room(roomId).then(
        (detail) => {
          if (!this.stopped) this.upsert(detail);
        },
        () => this.peerLookups.delete(roomId),
      );
    }
  }

  loadPeers() {
    try {
      const peers = JSON.parse(this.storage.getItem(this.peersKey));
      return peers && typeof peers === 'object' ? peers : {};
    } catch {
      return {};
    }
  }

  savePeers() {
    this.storage.setItem(this.peersKey, JSON.stringify(this.peers));
  }

  // --- recent open rooms (this browser) -------------------------------------------------------

  recent() {
    try {
      const entries = JSON.parse(this.storage.getItem(this.recentKey));
      if (!Array.isArray(entries)) return [];
      // (Entries were plain ids before rooms existed.)
      return entries
        .map((e) => (typeof e === 'string' ? { roomId: e, openedAt: 0 } : e))
        .filter((e) => e && typeof e.roomId === 'string' && ROOM_ID.test(e.roomId));
    } catch {
      return [];
    }
  }

  forgetRecent(roomId) {
    const entries = this.recent();
    const kept = entries.filter((e) => e.roomId !== roomId);
    if (kept.length !== entries.length) this.storage.setItem(this.recentKey, JSON.stringify(kept));
  }
}

function activity(iso) {
  const time = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(time) ? 0 : time;
}
