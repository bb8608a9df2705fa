// The Herald web client: wires the login form, the room list, the open room, the connection state
// and the notifications together. Everything talks to the server the page was loaded from.

import { Api } from './api.js';
import { ChatClient, CONNECTED } from './chat.js';
import { byTestId, el, notice } from './dom.js';
import { applyStatic, onLangChange, otherLang, setLang, t } from './i18n.js';
import { NotificationList } from './notification-list.js';
import { NotificationFeed } from './notifications.js';
import { Room } from './room.js';
import { DM_PREFIX, ROOM_ID, RoomDirectory, roomKind } from './rooms.js';
import { TokenStore } from './session.js';

const BASE = document.baseURI;
const USERNAME = /^[A-Za-z0-9_.-]{3,32}$/;

/** `ws/chat` next to the page, as ws:// or wss://. */
function chatUrl() {
  const url = new URL('ws/chat', BASE);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

class App {
  constructor() {
    this.tokens = new TokenStore();
    this.api = new Api({ base: BASE, tokens: this.tokens, onSessionEnded: () => this.sessionEnded() });
    this.ui = Object.fromEntries(
      [
        'auth-view', 'login-form', 'login-username', 'login-password', 'login-error', 'login-submit', 'signup-submit',
        'chat-view', 'connection-state', 'current-user', 'lang-toggle', 'logout',
        'room-open-form', 'room-open-input', 'room-open-error', 'room-create', 'room-list',
        'room-create-form', 'room-create-name', 'room-create-id', 'room-create-private', 'room-create-error',
        'room-create-submit', 'room-create-cancel',
        'dm-open-form', 'dm-open-input', 'dm-open-submit', 'dm-open-error',
        'notification-list', 'notification-unread-count',
        'room-title', 'room-kind', 'room-leave', 'room-info', 'room-member-count', 'room-members',
        'room-invite-form', 'room-invite-input', 'room-invite-submit', 'room-action-error', 'room-notice',
        'message-scroller', 'load-older', 'history-status', 'message-list', 'pending-list',
        'composer', 'message-input', 'message-send',
      ].map((id) => [id, byTestId(id)]),
    );
    this.me = null;
    this.chat = null;
    this.feed = null;
    this.room = null;
    this.directory = null;
    this.notifications = null;
    /** Rooms this page is leaving (their FORBIDDEN is expected). */
    this.leaving = new Set();
    /** The open room's last message not yet marked read because the page was hidden. */
    this.unseen = null;
    this.roomNotice = null;
  }

  async boot() {
    applyStatic();
    this.bindEvents();
    this.renderLangToggle();
    onLangChange(() => this.languageChanged());
    const session = this.tokens.load();
    if (!session) return this.showLogin();
    if (!this.tokens.accessValid(session)) {
      try {
        await this.api.reissue(session.accessToken);
      } catch (e) {
        // 401: the refresh token is spent or expired (sessionEnded already showed the form).
        // Anything else (server unreachable): keep the session; the connections retry.
        if (e.status === 401) return undefined;
      }
    }
    return this.enter();
  }

  bindEvents() {
    const { ui } = this;
    ui['login-form'].addEventListener('submit', (e) => {
      e.preventDefault();
      this.login(false);
    });
    ui['signup-submit'].addEventListener('click', () => this.login(true));
    ui.logout.addEventListener('click', () => this.logout());
    ui['lang-toggle'].addEventListener('click', () => setLang(otherLang()));
    ui['room-open-form'].addEventListener('submit', (e) => {
      e.preventDefault();
      const roomId = ui['room-open-input'].value.trim();
      if (!ROOM_ID.test(roomId)) {
        notice(ui['room-open-error'], t('rooms.invalid'));
        return;
      }
      ui['room-open-input'].value = '';
      this.openRoom(roomId);
    });
    ui['room-create'].addEventListener('click', () => this.toggleCreate());
    ui['room-create-cancel'].addEventListener('click', () => this.toggleCreate(false));
    ui['room-create-form'].addEventListener('submit', (e) => {
      e.preventDefault();
      this.createRoom();
    });
    ui['dm-open-form'].addEventListener('submit', (e) => {
      e.preventDefault();
      this.openDm();
    });
    ui['room-invite-form'].addEventListener('submit', (e) => {
      e.preventDefault();
      this.invite();
    });
    ui['room-leave'].addEventListener('click', () => this.leaveRoom());
    document.addEventListener('visibilitychange', () => this.pageVisible());
    ui.composer.addEventListener('submit', (e) => {
      e.preventDefault();
      const text = ui['message-input'].value;
      if (!this.room || !text.trim()) return;
      ui['message-input'].value = '';
      this.room.send(text);
    });
  }

  // --- session --------------------------------------------------------------------------------

  showLogin(message = '') {
    const { ui } = this;
    ui['chat-view'].hidden = true;
    ui['connection-state'].hidden = true;
    ui['current-user'].hidden = true;
    ui.logout.hidden = true;
    ui['auth-view'].hidden = false;
    notice(ui['login-error'], message);
    ui['login-username'].focus();
  }

  async login(signup) {
    const { ui } = this;
    const username = ui['login-username'].value.trim();
    const password = ui['login-password'].value;
    if (!username || !password) return notice(ui['login-error'], t('auth.required'));
    if (signup && (!USERNAME.test(username) || password.length < 8 || password.length > 128)) {
      return notice(ui['login-error'], t('auth.signupRules'));
    }
    ui['login-submit'].disabled = true;
    ui['signup-submit'].disabled = true;
    try {
      if (signup) await this.api.signup(username, password);
      await this.api.login(username, password);
    } catch (e) {
      return notice(ui['login-error'], e.status === 0 ? t('error.network') : e.message);
    } finally {
      ui['login-submit'].disabled = false;
      ui['signup-submit'].disabled = false;
    }
    ui['login-password'].value = '';
    notice(ui['login-error'], '');
    return this.enter();
  }

  async logout() {
    this.teardown();
    await this.api.logout();
    this.showLogin();
  }

  sessionEnded() {
    this.teardown();
    this.showLogin(t('auth.expired'));
  }

  teardown() {
    this.room?.close();
    this.room = null;
    this.directory?.stop();
    this.directory = null;
    this.leaving.clear();
    this.unseen = null;
    this.showRoomNotice(null);
    this.renderRoomHead();
    this.toggleCreate(false);
    this.feed?.stop();
    this.feed = null;
    this.chat?.stop();
    this.chat = null;
    this.notifications?.clear();
    this.ui['room-list'].replaceChildren();
    this.ui['message-list'].replaceChildren();
    this.ui['pending-list'].replaceChildren();
  }

  // --- the signed-in page ---------------------------------------------------------------------

  enter() {
    const { ui } = this;
    const session = this.tokens.load();
    if (!session) return this.showLogin();
    this.me = session.username;
    ui['auth-view'].hidden = true;
    ui['chat-view'].hidden = false;
    ui['current-user'].textContent = this.me;
    ui['current-user'].hidden = false;
    ui.logout.hidden = false;
    ui['connection-state'].hidden = false;
    this.setComposer(false);
    ui['room-title'].textContent = t('room.none');

    const getToken = () => this.api.accessToken();
    this.chat = new ChatClient({ url: chatUrl(), getToken, onStateChange: () => this.showConnection() });
    this.showConnection();
    this.chat.start();

    this.notifications = new NotificationList({
      list: ui['notification-list'],
      badge: ui['notification-unread-count'],
      api: this.api,
      openRoom: (roomId) => this.openRoom(roomId),
      roomName: (roomId) => {
        const room = this.directory?.get(roomId);
        return room ? this.directory.displayName(room) : roomId;
      },
    });
    this.feed = new NotificationFeed({
      base: BASE,
      getToken,
      onNotification: (n) => {
        this.notifications?.put(n);
        // A mention may come from a room the list does not show yet (the user was just invited).
        this.directory?.refreshSoon();
      },
    });
    this.loadNotifications();

    this.directory = new RoomDirectory({ me: this.me, api: this.api, chat: this.chat, onChange: () => this.renderRooms() });
    this.directory.start();
    const last = this.directory.lastOpened();
    if (last) this.openRoom(last);
    return undefined;
  }

  async loadNotifications() {
    const { feed, notifications } = this;
    try {
      for (const n of await this.api.notifications(50)) notifications.put(n);
    } catch (e) {
      console.warn('herald: notification list failed', e);
    }
    // Resume after the newest stored one: anything newer is replayed, then live.
    if (this.feed === feed) feed.start(notifications.lastId);
  }

  showConnection() {
    const node = this.ui['connection-state'];
    const chat = this.chat;
    if (!chat) return;
    node.dataset.state = chat.state;
    if (chat.state === CONNECTED) node.textContent = t('conn.connected');
    else node.textContent = chat.everConnected ? t('conn.reconnecting') : t('conn.connecting');
  }

  setComposer(enabled) {
    this.ui['message-input'].disabled = !enabled;
    this.ui['message-send'].disabled = !enabled;
  }

  // --- the room list -------------------------------------------------------------------------

  renderRooms() {
    if (!this.directory) return;
    const list = this.ui['room-list'];
    const focused = document.activeElement?.closest?.('[data-testid="room-list"] > li')?.dataset.testid;
    const current = this.room?.roomId;
    const items = this.directory.list().map((room) => {
      const active = room.roomId === current;
      const preview = room.lastMessage?.message
        ? el('span', { class: 'preview' }, `${room.lastMessage.sender}: ${room.lastMessage.message}`)
        : null;
      return el(
        'li',
        {
          'data-testid': `room-${room.roomId}`,
          class: active ? 'active' : undefined,
          dataset: { kind: room.kind, unread: String(room.unread) },
        },
        el(
          'button',
          { type: 'button', onclick: () => this.openRoom(room.roomId), 'aria-current': active ? 'true' : undefined, title: room.roomId },
          el(
            'span',
            { class: 'line' },
            el('span', { class: 'name' }, room.name),
            room.kind === 'public' ? null : el('span', { class: `kind kind-${room.kind}` }, t(`kind.${room.kind}`)),
            room.unread
              ? el(
                'span',
                { class: 'badge', 'data-testid': `room-unread-${room.roomId}`, 'aria-label': t('rooms.unread', { n: room.unread }) },
                room.unread >= 1000 ? '999+' : room.unread,
              )
              : null,
          ),
          preview,
        ),
      );
    });
    const empty = this.directory.loaded ? [el('li', { class: 'empty' }, t('rooms.empty'))] : [];
    list.replaceChildren(...(items.length ? items : empty));
    list.dataset.reads = String(this.directory.reads);
    // Mentions name their room as the list does, once the list knows it.
    if (this.renderedReads !== this.directory.reads) {
      this.renderedReads = this.directory.reads;
      this.notifications?.rerender();
    }
    if (focused) list.querySelector(`[data-testid="${focused}"] button`)?.focus();
  }

  // --- the open room --------------------------------------------------------------------------

  /** Opens `roomId` (`known`: its detail, when the caller has it). */
  openRoom(roomId, known = null) {
    if (!this.chat || !ROOM_ID.test(roomId)) return;
    notice(this.ui['room-open-error'], '');
    if (this.room?.roomId === roomId && !this.room.ended) return;
    this.room?.close();
    this.directory.setActive(roomId);
    this.directory.setLastOpened(roomId);
    this.setComposer(false);
    this.showRoomNotice(null);
    notice(this.ui['room-action-error'], '');
    const room = new Room({
      roomId,
      me: this.me,
      api: this.api,
      chat: this.chat,
      nodes: {
        list: this.ui['message-list'],
        pending: this.ui['pending-list'],
        scroller: this.ui['message-scroller'],
        older: this.ui['load-older'],
        status: this.ui['history-status'],
      },
      onSeen: (lastId) => this.seen(room, lastId),
      onForbidden: () => this.roomForbidden(room),
    });
    room.detail = known ?? this.directory.get(roomId);
    this.room = room;
    this.renderRoomHead();
    this.renderRooms();
    this.ui['message-input'].focus();

    // The history says whether the room may be entered (404: no); the room's own entry says
    // whether it is a created room (its members) or an open one (404 there, 200 for the history).
    const detail = this.api.room(roomId).then(
      (d) => ({ detail: d }),
      (e) => ({ detail: null, missing: e.status === 404 }),
    );
    room.open().then(async (result) => {
      if (this.room !== room) return;
      if (result === 'denied') {
        this.roomDenied(room);
        return;
      }
      this.setComposer(true);
      if (document.activeElement === document.body) this.ui['message-input'].focus();
      const answer = await detail;
      if (this.room !== room || room.ended) return;
      if (answer.detail) {
        room.detail = answer.detail;
        this.directory.upsert(answer.detail);
      } else if (answer.missing && result === 'ok') {
        room.detail = null;
        this.directory.rememberOpen(roomId);
      }
      this.renderRoomHead();
    });
  }

  /** The room's messages up to `lastId` are on screen: mark them read once the page is seen. */
  seen(room, lastId) {
    if (this.room !== room || room.ended) return;
    if (document.visibilityState === 'visible') this.directory?.read(room.roomId, lastId);
    else this.unseen = { room, lastId };
  }

  pageVisible() {
    if (document.visibilityState !== 'visible' || !this.unseen) return;
    const { room, lastId } = this.unseen;
    this.unseen = null;
    this.seen(room, lastId);
  }

  /** The history answered 404: a private room the user is not in (or a DM id never opened). */
  roomDenied(room) {
    room.ended = true;
    room.detail = null;
    this.directory.setActive(null);
    this.directory.remove(room.roomId);
    this.directory.setLastOpened(null);
    this.showRoomNotice('denied');
    this.renderRoomHead();
  }

  /** The server ended the open room's subscription: the user was removed (or left, or it became private). */
  roomForbidden(room) {
    if (this.room !== room || room.ended) return;
    if (roomKind(room.detail) === 'public') {
      // Anyone may read a public room: follow it again (the gap is read on its RECEIPT).
      room.follow();
      return;
    }
    this.endRoom(room, this.leaving.has(room.roomId) ? 'left' : 'forbidden');
  }

  /** The open room can no longer be used: what was shown stays, read-only, with the reason. */
  endRoom(room, reason) {
    room.stop();
    room.ended = true;
    this.directory.setActive(null);
    this.directory.remove(room.roomId);
    this.directory.setLastOpened(null);
    this.setComposer(false);
    this.showRoomNotice(reason);
    this.renderRoomHead();
    this.renderRooms();
  }

  /** `reason`: `denied`, `forbidden`, `left`, or null to hide the notice. */
  showRoomNotice(reason) {
    const node = this.ui['room-notice'];
    this.roomNotice = reason;
    node.dataset.reason = reason ?? '';
    notice(node, reason ? t(`room.${reason}`) : '');
  }

  renderRoomHead() {
    const { ui, room } = this;
    // A room the user can no longer use keeps its name; its members and controls go.
    const named = room?.detail ?? null;
    const detail = room?.ended ? null : named;
    const kind = named ? roomKind(named) : 'open';
    if (!room) ui['room-title'].textContent = t('room.none');
    else if (named && this.directory) ui['room-title'].textContent = this.directory.displayName(named);
    else ui['room-title'].textContent = `# ${room.roomId}`;
    const kindNode = ui['room-kind'];
    kindNode.hidden = !room || room.ended;
    kindNode.dataset.kind = kind;
    kindNode.textContent = named && kind !== 'dm' ? `${t(`kind.${kind}`)} · #${room.roomId}` : t(`kind.${kind}`);

    const members = Array.isArray(detail?.members) ? detail.members : null;
    ui['room-info'].hidden = !members;
    ui['room-leave'].hidden = !members?.includes(this.me);
    const owner = detail?.owner ?? null;
    const isOwner = owner !== null && owner === this.me;
    ui['room-invite-form'].hidden = !isOwner;
    if (!members) {
      ui['room-members'].replaceChildren();
      return;
    }
    ui['room-member-count'].textContent = t('room.members', { n: members.length });
    ui['room-members'].replaceChildren(
      ...members.map((name) =>
        el(
          'li',
          { 'data-testid': `room-member-${name}`, class: name === owner ? 'member owner' : 'member' },
          el('span', { class: 'name' }, name),
          name === owner ? el('span', { class: 'kind' }, t('room.owner')) : null,
          isOwner && name !== this.me
            ? el(
              'button',
              {
                type: 'button',
                class: 'link remove',
                'data-testid': `room-member-remove-${name}`,
                title: t('room.remove', { name }),
                'aria-label': t('room.remove', { name }),
                onclick: () => this.removeMember(name),
              },
              '×',
            )
            : null,
        ),
      ),
    );
  }

  // --- room actions ---------------------------------------------------------------------------

  toggleCreate(open = this.ui['room-create-form'].hidden) {
    const { ui } = this;
    ui['room-create-form'].hidden = !open;
    ui['room-create'].setAttribute('aria-expanded', String(open));
    notice(ui['room-create-error'], '');
    if (open) ui['room-create-name'].focus();
  }

  async createRoom() {
    const { ui } = this;
    const name = ui['room-create-name'].value.trim();
    const roomId = ui['room-create-id'].value.trim();
    const error = ui['room-create-error'];
    if (!name || [...name].length > 100) return notice(error, t('create.nameRule'));
    if (!ROOM_ID.test(roomId)) return notice(error, t('rooms.invalid'));
    if (roomId.startsWith(DM_PREFIX)) return notice(error, t('create.reserved'));
    notice(error, '');
    ui['room-create-submit'].disabled = true;
    try {
      const room = await this.api.createRoom({ roomId, name, private: ui['room-create-private'].checked });
      this.directory.upsert({ ...room, members: [this.me] });
      ui['room-create-name'].value = '';
      ui['room-create-id'].value = '';
      this.toggleCreate(false);
      this.openRoom(room.roomId, { ...room, members: [this.me] });
    } catch (e) {
      if (e.code === 'CONFLICT') notice(error, t('create.taken'));
      else notice(error, this.errorText(e));
    } finally {
      ui['room-create-submit'].disabled = false;
    }
    return undefined;
  }

  async openDm() {
    const { ui } = this;
    const username = ui['dm-open-input'].value.trim();
    const error = ui['dm-open-error'];
    if (!USERNAME.test(username)) return notice(error, t('dm.invalid'));
    if (username === this.me) return notice(error, t('dm.self'));
    notice(error, '');
    ui['dm-open-submit'].disabled = true;
    try {
      const room = await this.api.openDm(username);
      ui['dm-open-input'].value = '';
      this.directory.upsert(room);
      this.openRoom(room.roomId, room);
    } catch (e) {
      if (e.code === 'NOT_FOUND') notice(error, t('user.notFound', { name: username }));
      else if (e.code === 'INVALID_REQUEST') notice(error, t('dm.self'));
      else notice(error, this.errorText(e));
    } finally {
      ui['dm-open-submit'].disabled = false;
    }
    return undefined;
  }

  async invite() {
    const { ui, room } = this;
    if (!room || room.ended) return undefined;
    const username = ui['room-invite-input'].value.trim();
    const error = ui['room-action-error'];
    if (!USERNAME.test(username)) return notice(error, t('dm.invalid'));
    notice(error, '');
    ui['room-invite-submit'].disabled = true;
    try {
      const detail = await this.api.invite(room.roomId, username);
      ui['room-invite-input'].value = '';
      this.roomChanged(room, detail);
    } catch (e) {
      notice(error, this.roomErrorText(e, username));
    } finally {
      ui['room-invite-submit'].disabled = false;
    }
    return undefined;
  }

  async removeMember(username) {
    const { room } = this;
    if (!room || room.ended) return;
    notice(this.ui['room-action-error'], '');
    try {
      await this.api.removeMember(room.roomId, username);
      const detail = room.detail ? { ...room.detail, members: room.detail.members.filter((m) => m !== username) } : null;
      this.roomChanged(room, detail);
    } catch (e) {
      notice(this.ui['room-action-error'], e.code === 'FORBIDDEN' ? t('room.notOwner') : this.errorText(e));
    }
  }

  async leaveRoom() {
    const { room } = this;
    if (!room || room.ended) return;
    notice(this.ui['room-action-error'], '');
    // The server also ends this page's subscription (FORBIDDEN): that is this leaving, not a removal.
    this.leaving.add(room.roomId);
    try {
      await this.api.removeMember(room.roomId, this.me);
    } catch (e) {
      this.leaving.delete(room.roomId);
      notice(this.ui['room-action-error'], this.errorText(e));
      return;
    }
    if (this.room === room && !room.ended) this.endRoom(room, 'left');
    else this.directory.remove(room.roomId);
  }

  /** A new detail of the open room from the server's answer. */
  roomChanged(room, detail) {
    if (!detail) return;
    this.directory.upsert(detail);
    if (this.room !== room || room.ended) return;
    room.detail = detail;
    this.renderRoomHead();
  }

  roomErrorText(e, username) {
    if (e.code === 'FORBIDDEN') return t('room.notOwner');
    if (e.code === 'CONFLICT') return t('room.full');
    if (e.code === 'NOT_FOUND') return t('user.notFound', { name: username });
    return this.errorText(e);
  }

  errorText(e) {
    if (e.status === 0) return t('error.network');
    return e.message && e.message !== e.code ? e.message : t('error.generic', { code: e.code });
  }

  // --- language -------------------------------------------------------------------------------

  renderLangToggle() {
    this.ui['lang-toggle'].textContent = t('lang.other');
  }

  languageChanged() {
    this.renderLangToggle();
    this.showConnection();
    this.notifications?.rerender();
    this.renderRooms();
    this.renderRoomHead();
    this.showRoomNotice(this.roomNotice);
  }
}

new App().boot();
