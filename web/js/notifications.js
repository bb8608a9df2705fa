// Live notifications over Server-Sent Events (SPEC §5).
//
// EventSource cannot set headers, so the access token goes in `access_token`, and the resume point
// in `lastEventId`. The browser's own reconnect would reuse the URL's (possibly expired) token, so
// on any error the stream is closed and reopened here with a fresh token and the last id seen: the
// server replays every notification after it, then goes live, with no gap and no duplicate.

export class NotificationFeed {
  /**
   * @param {object} options
   * @param {string} options.base the page's base URL
   * @param {() => Promise<string>} options.getToken a usable access token
   * @param {(notification: object) => void} options.onNotification
   */
  constructor({ base, getToken, onNotification }) {
    this.base = base;
    this.getToken = getToken;
    this.onNotification = onNotification;
    this.lastId = 0;
    this.source = null;
    this.stopped = true;
    this.retryDelay = 1000;
    this.retryTimer = null;
  }

  /** Opens the stream, replaying every notification with an id above `lastId`. */
  start(lastId) {
    this.lastId = Math.max(this.lastId, lastId || 0);
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.source?.close();
    this.source = null;
  }

  async open() {
    if (this.stopped) return;
    let token;
    try {
      token = await this.getToken();
    } catch {
      this.retry();
      return;
    }
    if (this.stopped) return;
    const url = new URL('notifications/stream', this.base);
    url.searchParams.set('access_token', token);
    url.searchParams.set('lastEventId', String(this.lastId));
    const source = new EventSource(url);
    this.source = source;
    source.addEventListener('connected', () => {
      this.retryDelay = 1000;
    });
    source.addEventListener('notification', (event) => {
      let notification;
      try {
        notification = JSON.parse(event.data);
      } catch {
        return;
      }
      if (Number.isInteger(notification.id)) this.lastId = Math.max(this.lastId, notification.id);
      this.onNotification(notification);
    });
    source.onerror = () => {
      source.close();
      if (this.source !== source) return;
      this.source = null;
      this.retry();
    };
  }

  retry() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.open(), this.retryDelay);
    this.retryDelay = Math.min(this.retryDelay * 2, 15000);
  }
}
