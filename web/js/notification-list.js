// The notification list: newest first, one entry per id (the stored list, the SSE replay and live
// events overlap), unread ones marked; a click marks one read (POST /notifications/{id}/read) and,
// for a mention, opens its room.

import { el, shortTime } from './dom.js';
import { t } from './i18n.js';

export class NotificationList {
  /**
   * @param {object} options
   * @param {HTMLElement} options.list `notification-list`
   * @param {HTMLElement} options.badge the unread count
   * @param {import('./api.js').Api} options.api
   * @param {(roomId: string) => void} options.openRoom
   * @param {(roomId: string) => string} [options.roomName] a room's name as the room list shows it
   */
  constructor({ list, badge, api, openRoom, roomName = (roomId) => roomId }) {
    this.roomName = roomName;
    this.list = list;
    this.badge = badge;
    this.api = api;
    this.openRoom = openRoom;
    /** id -> { notification, node } */
    this.items = new Map();
  }

  clear() {
    this.items.clear();
    this.list.replaceChildren();
    this.update();
  }

  /** The highest id shown (the SSE resume point). */
  get lastId() {
    let max = 0;
    for (const id of this.items.keys()) max = Math.max(max, id);
    return max;
  }

  /** Adds or refreshes a notification, keeping the list in descending id order. */
  put(notification) {
    if (!notification || !Number.isInteger(notification.id)) return;
    const existing = this.items.get(notification.id);
    const node = this.render(notification);
    if (existing) {
      existing.node.replaceWith(node);
    } else {
      const after = [...this.items.keys()].filter((id) => id < notification.id).sort((a, b) => b - a)[0];
      this.list.insertBefore(node, after === undefined ? null : this.items.get(after).node);
    }
    this.items.set(notification.id, { notification, node });
    this.update();
  }

  render(n) {
    const summary =
      n.type === 'mention'
        ? t('notifications.mention', { sender: n.sender, room: n.roomId ? this.roomName(n.roomId) : '' })
        : t('notifications.direct', { sender: n.sender });
    return el(
      'li',
      {
        class: n.read ? 'notification read' : 'notification unread',
        'data-testid': `notification-${n.id}`,
        dataset: { id: n.id, read: String(Boolean(n.read)), type: n.type, room: n.roomId ?? '' },
      },
      el(
        'button',
        { type: 'button', class: 'notification-open', onclick: () => this.activate(n.id) },
        el('span', { class: 'summary' }, summary),
        el('span', { class: 'body' }, n.message),
        el('time', { datetime: n.createdAt }, shortTime(n.createdAt)),
      ),
    );
  }

  async activate(id) {
    const item = this.items.get(id);
    if (!item) return;
    const { notification } = item;
    if (notification.type === 'mention' && notification.roomId) this.openRoom(notification.roomId);
    if (notification.read) return;
    try {
      this.put(await this.api.markRead(id));
    } catch (e) {
      console.warn('herald: mark read failed', e);
    }
  }

  update() {
    let unread = 0;
    for (const { notification } of this.items.values()) if (!notification.read) unread += 1;
    this.badge.textContent = String(unread);
    this.badge.hidden = unread === 0;
    this.list.dataset.empty = String(this.items.size === 0);
    this.list.setAttribute('aria-label', this.items.size ? t('notifications.title') : t('notifications.empty'));
  }

  /** Re-renders every entry (after a language change). */
  rerender() {
    for (const item of this.items.values()) this.put(item.notification);
  }
}
