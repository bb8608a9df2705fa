// The Herald web client: wires the login form, the room list, the open room, the connection state
// and the notifications together. Everything talks to the server the page was loaded from.

import { Api } from './api.js';
import { ChatClient, CONNECTED } from './chat.js';
import { byTestId, el, notice } from './dom.js';
import { applyStatic, onLangChange, otherLang, setLang, t } from './i18n.js';
import { NotificationList } from './notification-list.js';
import { NotificationFeed } from './notifications.js';
import { Room } from './room.js';
import { ROOM_ID, RecentRooms } from './rooms.js';
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
        'notification-list', 'notification-unread-count',
        'room-title', 'message-scroller', 'load-older', 'history-status', 'message-list', 'pending-list',
        'composer', 'message-input', 'message-send',
      ].map((id) => [id, byTestId(id)]),
    );
    this.me = null;
    this.chat = null;
    this.feed = null;
    this.room = null;
    this.rooms = null;
    this.notifications = null;
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
    ui['room-create'].addEventListener('click', () => this.createRoom());
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
    });
    this.feed = new NotificationFeed({ base: BASE, getToken, onNotification: (n) => this.notifications?.put(n) });
    this.loadNotifications();

    this.rooms = new RecentRooms(this.me);
    this.renderRooms();
    const last = this.rooms.last();
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

  // --- rooms ----------------------------------------------------------------------------------

  async renderRooms() {
    if (!this.rooms) return;
    const rooms = await this.rooms.list();
    const current = this.room?.roomId;
    const items = rooms.map((room) =>
      el(
        'li',
        { 'data-testid': `room-${room.roomId}`, class: room.roomId === current ? 'active' : undefined },
        el(
          'button',
          { type: 'button', onclick: () => this.openRoom(room.roomId), 'aria-current': room.roomId === current ? 'true' : undefined },
          el('span', { class: 'name' }, room.name),
          room.unread ? el('span', { class: 'badge', 'data-testid': `room-unread-${room.roomId}` }, room.unread) : null,
        ),
      ),
    );
    this.ui['room-list'].replaceChildren(...(items.length ? items : [el('li', { class: 'empty' }, t('rooms.empty'))]));
  }

  openRoom(roomId) {
    if (!this.chat || !ROOM_ID.test(roomId)) return;
    notice(this.ui['room-open-error'], '');
    if (this.room?.roomId === roomId) return;
    this.room?.close();
    this.rooms.touch(roomId);
    this.ui['room-title'].textContent = `# ${roomId}`;
    this.room = new Room({
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
    });
    this.room.open();
    this.setComposer(true);
    this.renderRooms();
    this.ui['message-input'].focus();
  }

  /** "New room": until the server has POST /rooms (SPEC §8), a new room is an open room opened by id. */
  createRoom() {
    if (!this.rooms) return;
    notice(this.ui['room-open-error'], t('rooms.createHint'));
    this.ui['room-open-input'].focus();
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
    if (this.room) this.ui['room-title'].textContent = `# ${this.room.roomId}`;
    else this.ui['room-title'].textContent = t('room.none');
  }
}

new App().boot();
