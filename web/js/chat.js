// Live chat over STOMP 1.2 (SPEC §4) with @stomp/stompjs, loaded by index.html as the vendored
// UMD bundle (global `StompJs`).
//
// - The access token goes in CONNECT's `Authorization: Bearer` header; it is fetched (and reissued
//   when expired) before every connect attempt, so a session ended by token expiry reconnects.
// - stompjs reconnects by itself but forgets subscriptions: every joined room is subscribed again
//   on each CONNECTED. A room SUBSCRIBE carries a `receipt`: the server answers it once the room's
//   access check has passed and the subscription is live, and only then do its listeners'
//   `onResync` run, so a caller fetching the gap (`after=`) cannot miss a message committed
//   between its history read and the subscription.
// - Several listeners may follow one room (the open room and the room list's counters): one
//   SUBSCRIBE per room, whatever the number of listeners.
// - Private rooms (SPEC §8): the server ends a subscription by itself when the user loses access
//   (`{"code":"FORBIDDEN","roomId"}` on /user/queue/errors); a SUBSCRIBE it refuses is an `ERROR
//   message:forbidden` carrying the SUBSCRIBE's receipt, and the connection closes. Either way the
//   room is dropped here (never subscribed again by itself, which would only close the next
//   connection too) and its listeners' `onForbidden` runs.
// - A SEND carries a `receipt`; the server sends RECEIPT only after the message is committed. Until
//   then the send is pending. A send made while disconnected waits in an outbox (it was never sent,
//   so sending it later cannot duplicate it); one in flight when the connection drops is reported
//   as lost (it may or may not have been stored: the gap recovery shows it if it was).

/** Connection states shown by the page (`connection-state`'s `data-state`). */
export const CONNECTED = 'connected';
export const RECONNECTING = 'reconnecting';

/** The error a pending send gets when its connection drops before the RECEIPT. */
export const CONNECTION_LOST = 'CONNECTION_LOST';

let receiptCounter = 0;
let subscribeCounter = 0;

export class ChatClient {
  /**
   * @param {object} options
   * @param {string} options.url the absolute ws:// or wss:// URL of /ws/chat
   * @param {() => Promise<string>} options.getToken a usable access token
   * @param {(state: string) => void} options.onStateChange
   */
  constructor({ url, getToken, onStateChange }) {
    this.getToken = getToken;
    this.onStateChange = onStateChange;
    this.state = RECONNECTING;
    this.everConnected = false;
    /** roomId -> { listeners: Set<{ onMessage, onResync, onForbidden }>, subscription, live } */
    this.rooms = new Map();
    /** A room SUBSCRIBE's receipt id -> roomId, until its RECEIPT or ERROR. */
    this.subscribing = new Map();
    /** receiptId -> { resolve, reject } for SENDs on the wire */
    this.inflight = new Map();
    /** sends waiting for a connection: { roomId, text, receiptId, resolve, reject } */
    this.outbox = [];

    const { Client } = globalThis.StompJs;
    this.client = new Client({
      brokerURL: url,
      reconnectDelay: 1000,
      maxReconnectDelay: 8000,
      connectionTimeout: 8000,
      heartbeatIncoming: 10000,
      heartbeatOutgoing: 10000,
      debug: () => {},
      beforeConnect: async (client) => {
        // Never throw here: stompjs would stop reconnecting. Without a token the CONNECT is refused
        // (ERROR, close) and the next attempt tries again.
        try {
          client.connectHeaders = { Authorization: `Bearer ${await this.getToken()}` };
        } catch {
          client.connectHeaders = {};
        }
      },
      onConnect: () => this.connected(),
      onStompError: (frame) => this.stompError(frame),
      onWebSocketClose: () => this.lost(),
    });
  }

  start() {
    this.client.activate();
  }

  async stop() {
    this.rooms.clear();
    this.failAll(CONNECTION_LOST);
    await this.client.deactivate();
  }

  get isConnected() {
    return this.state === CONNECTED;
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.onStateChange(state);
  }

  connected() {
    this.everConnected = true;
    this.client.subscribe('/user/queue/errors', (frame) => this.applicationError(frame));
    for (const [roomId, room] of this.rooms) this.subscribe(roomId, room);
    this.setState(CONNECTED);
    const waiting = this.outbox.splice(0);
    for (const send of waiting) this.transmit(send);
  }

  lost() {
    for (const room of this.rooms.values()) {
      room.subscription = null;
      room.live = false;
    }
    this.subscribing.clear();
    for (const [receiptId, pending] of this.inflight) {
      this.inflight.delete(receiptId);
      pending.reject({ code: CONNECTION_LOST });
    }
    this.setState(RECONNECTING);
  }

  subscribe(roomId, room) {
    subscribeCounter += 1;
    const receipt = `sub-${subscribeCounter}`;
    room.live = false;
    this.subscribing.set(receipt, roomId);
    const subscription = this.client.subscribe(
      `/topic/chat.${roomId}`,
      (frame) => {
        let message;
        try {
          message = JSON.parse(frame.body);
        } catch {
          return;
        }
        for (const listener of [...room.listeners]) listener.onMessage?.(message);
      },
      { receipt },
    );
    room.subscription = subscription;
    this.client.watchForReceipt(receipt, () => {
      this.subscribing.delete(receipt);
      if (this.rooms.get(roomId) !== room || room.subscription !== subscription) return;
      room.live = true;
      for (const listener of [...room.listeners]) listener.onResync?.();
    });
  }

  /**
   * Follows a room: `onMessage(message)` for each live message; `onResync()` each time the
   * subscription is live (the first time, and after every reconnect: fetch the gap then);
   * `onForbidden()` when the server refused or ended it (the user may not enter the room).
   * Returns a function that stops following it.
   */
  join(roomId, listener) {
    let room = this.rooms.get(roomId);
    if (!room) {
      room = { listeners: new Set(), subscription: null, live: false };
      this.rooms.set(roomId, room);
      room.listeners.add(listener);
      if (this.isConnected) this.subscribe(roomId, room);
    } else {
      room.listeners.add(listener);
      // Already live: this listener's gap starts now.
      if (room.live) queueMicrotask(() => room.listeners.has(listener) && listener.onResync?.());
    }
    return () => this.leave(roomId, listener);
  }

  leave(roomId, listener) {
    const room = this.rooms.get(roomId);
    if (!room) return;
    room.listeners.delete(listener);
    if (room.listeners.size) return;
    this.rooms.delete(roomId);
    if (room.subscription && this.isConnected) room.subscription.unsubscribe();
  }

  /** Whether `roomId` has a subscription the server has confirmed. */
  isLive(roomId) {
    return Boolean(this.rooms.get(roomId)?.live);
  }

  /** The user may not enter `roomId`: forget it (no UNSUBSCRIBE: the server ended it) and tell its listeners. */
  forbidden(roomId) {
    const room = this.rooms.get(roomId);
    if (!room) return;
    this.rooms.delete(roomId);
    for (const [receipt, id] of this.subscribing) if (id === roomId) this.subscribing.delete(receipt);
    for (const listener of [...room.listeners]) listener.onForbidden?.(roomId);
  }

  /** An ERROR frame (the connection closes after it): a refused room SUBSCRIBE names its room by receipt. */
  stompError(frame) {
    const receipt = frame.headers['receipt-id'];
    const roomId = receipt ? this.subscribing.get(receipt) : undefined;
    if (roomId !== undefined && frame.headers.message === 'forbidden') {
      this.forbidden(roomId);
    } else {
      console.warn('herald: STOMP error', frame.headers.message);
    }
  }

  /**
   * Sends `text` to `roomId`. Returns `{ receiptId, done }`: `done` resolves once the server has
   * committed the message, and rejects with `{ code, message }` when it refused it or the
   * connection dropped first (`CONNECTION_LOST`).
   */
  send(roomId, text) {
    receiptCounter += 1;
    const receiptId = `web-${Date.now().toString(36)}-${receiptCounter}`;
    const done = new Promise((resolve, reject) => {
      const send = { roomId, text, receiptId, resolve, reject };
      if (this.isConnected) this.transmit(send);
      else this.outbox.push(send);
    });
    return { receiptId, done };
  }

  transmit({ roomId, text, receiptId, resolve, reject }) {
    this.inflight.set(receiptId, { resolve, reject });
    this.client.watchForReceipt(receiptId, () => {
      const pending = this.inflight.get(receiptId);
      this.inflight.delete(receiptId);
      pending?.resolve();
    });
    try {
      this.client.publish({
        destination: '/app/chat.send',
        headers: { receipt: receiptId, 'content-type': 'application/json' },
        body: JSON.stringify({ roomId, message: text }),
      });
    } catch {
      // The socket closed between the state check and the write: wait for the next connection.
      this.inflight.delete(receiptId);
      this.outbox.push({ roomId, text, receiptId, resolve, reject });
    }
  }

  /** A JSON error on /user/queue/errors: fails the matching send, if any. */
  applicationError(frame) {
    let error;
    try {
      error = JSON.parse(frame.body);
    } catch {
      return;
    }
    const receiptId = error['receipt-id'];
    const pending = receiptId ? this.inflight.get(receiptId) : null;
    if (pending) {
      this.inflight.delete(receiptId);
      pending.reject({ code: error.code, message: error.message });
    } else if (error.code === 'FORBIDDEN' && typeof error.roomId === 'string') {
      // Removed from the room (or it became private): the server ended the subscription.
      this.forbidden(error.roomId);
    } else {
      console.warn('herald: chat error', error);
    }
  }

  failAll(code) {
    for (const pending of this.inflight.values()) pending.reject({ code });
    this.inflight.clear();
    for (const send of this.outbox.splice(0)) send.reject({ code });
  }
}
