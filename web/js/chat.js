// Live chat over STOMP 1.2 (SPEC §4) with @stomp/stompjs, loaded by index.html as the vendored
// UMD bundle (global `StompJs`).
//
// - The access token goes in CONNECT's `Authorization: Bearer` header; it is fetched (and reissued
//   when expired) before every connect attempt, so a session ended by token expiry reconnects.
// - stompjs reconnects by itself but forgets subscriptions: every joined room is subscribed again
//   on each CONNECTED, and its `onResync` runs so the caller can fetch the gap (`after=`).
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
    /** roomId -> { onMessage, onResync, subscription } */
    this.rooms = new Map();
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
    for (const [roomId, room] of this.rooms) {
      this.subscribe(roomId, room);
      room.onResync();
    }
    this.setState(CONNECTED);
    const waiting = this.outbox.splice(0);
    for (const send of waiting) this.transmit(send);
  }

  lost() {
    for (const room of this.rooms.values()) room.subscription = null;
    for (const [receiptId, pending] of this.inflight) {
      this.inflight.delete(receiptId);
      pending.reject({ code: CONNECTION_LOST });
    }
    this.setState(RECONNECTING);
  }

  subscribe(roomId, room) {
    room.subscription = this.client.subscribe(`/topic/chat.${roomId}`, (frame) => {
      let message;
      try {
        message = JSON.parse(frame.body);
      } catch {
        return;
      }
      room.onMessage(message);
    });
  }

  /**
   * Follows a room: `onMessage(message)` for each live message, `onResync()` after every reconnect.
   * Returns a function that stops following it.
   */
  join(roomId, { onMessage, onResync }) {
    this.leave(roomId);
    const room = { onMessage, onResync, subscription: null };
    this.rooms.set(roomId, room);
    if (this.isConnected) this.subscribe(roomId, room);
    return () => this.leave(roomId);
  }

  leave(roomId) {
    const room = this.rooms.get(roomId);
    if (!room) return;
    this.rooms.delete(roomId);
    if (room.subscription && this.isConnected) room.subscription.unsubscribe();
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
