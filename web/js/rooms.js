// Where the room list comes from.
//
// The server has no room directory yet (SPEC §8 is to come), so the list is the rooms this user
// opened in this browser, most recent first. Once `GET /rooms` exists, a directory that reads it
// (with `unread` and `lastMessage`) replaces this one behind the same interface: `list()` resolving
// to `[{ roomId, name, unread }]`, `touch(roomId)`, and `canCreate` for the "new room" button.

/** SPEC §3: a room id is 1–64 of `[A-Za-z0-9_-]`. */
export const ROOM_ID = /^[A-Za-z0-9_-]{1,64}$/;

const MAX_RECENT = 20;

export class RecentRooms {
  constructor(username, storage = localStorage) {
    this.key = `herald.rooms.${username}`;
    this.storage = storage;
    /** No server-side rooms yet: "new room" opens a fresh open room by id. */
    this.canCreate = false;
  }

  ids() {
    try {
      const ids = JSON.parse(this.storage.getItem(this.key));
      return Array.isArray(ids) ? ids.filter((id) => typeof id === 'string' && ROOM_ID.test(id)) : [];
    } catch {
      return [];
    }
  }

  /** The rooms to list, most recently opened first; `unread` is null: unknown until the server counts. */
  async list() {
    return this.ids().map((roomId) => ({ roomId, name: roomId, unread: null }));
  }

  /** Moves `roomId` to the top of the list. */
  touch(roomId) {
    const ids = [roomId, ...this.ids().filter((id) => id !== roomId)].slice(0, MAX_RECENT);
    this.storage.setItem(this.key, JSON.stringify(ids));
  }

  /** The room opened last, to reopen after a reload. */
  last() {
    return this.ids()[0] ?? null;
  }
}
