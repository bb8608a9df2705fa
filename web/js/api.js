// The REST API (SPEC §3) over fetch, relative to the page. Keeps the access token fresh: an expired
// one is exchanged with POST /auth/reissue before the request, and a 401 is retried once after a
// reissue. Only one reissue runs at a time (a refresh token is single use: spending it twice would
// revoke the whole family), across the tabs of the origin too where the Web Locks API exists.

/** An error answer: `status` (0 for a network failure), the stable `code` and the human message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

export class Api {
  /**
   * @param {object} options
   * @param {string} options.base the page's base URL; every path is resolved against it
   * @param {import('./session.js').TokenStore} options.tokens
   * @param {() => void} options.onSessionEnded called when the refresh token is refused
   */
  constructor({ base, tokens, onSessionEnded }) {
    this.base = base;
    this.tokens = tokens;
    this.onSessionEnded = onSessionEnded;
    this.reissuing = null;
  }

  /** `path` (relative, no leading slash) resolved against the page. */
  url(path) {
    return new URL(path, this.base);
  }

  async fetchJson(method, path, { body, token } = {}) {
    const headers = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(this.url(path), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, 'NETWORK', e.message);
    }
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // Not JSON (a proxy's error page): reported by status below.
    }
    if (response.ok) return json;
    throw new ApiError(response.status, json?.code ?? `HTTP_${response.status}`, json?.message ?? response.statusText);
  }

  /** An authenticated request; a 401 is retried once with a reissued token. */
  async call(method, path, body) {
    const token = await this.accessToken();
    try {
      return await this.fetchJson(method, path, { body, token });
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401) throw e;
      const fresh = await this.reissue(token);
      return this.fetchJson(method, path, { body, token: fresh.accessToken });
    }
  }

  /** A usable access token: the stored one while valid, else a reissued one. */
  async accessToken() {
    const session = this.tokens.load();
    if (!session) throw new ApiError(401, 'UNAUTHORIZED', 'not logged in');
    if (this.tokens.accessValid(session)) return session.accessToken;
    return (await this.reissue(session.accessToken)).accessToken;
  }

  /**
   * Exchanges the refresh token for a new pair, once at a time. `staleAccessToken` is the token the
   * caller found wanting: when the stored one already differs (another tab or call refreshed it)
   * and is valid, that one is used and the refresh token is not spent again.
   */
  reissue(staleAccessToken) {
    if (!this.reissuing) {
      const run = () => this.reissueOnce(staleAccessToken);
      const locked = navigator.locks ? navigator.locks.request('herald-reissue', run) : run();
      this.reissuing = locked.finally(() => {
        this.reissuing = null;
      });
    }
    return this.reissuing;
  }

  async reissueOnce(staleAccessToken) {
    const session = this.tokens.load();
    if (!session) throw new ApiError(401, 'UNAUTHORIZED', 'not logged in');
    if (session.accessToken !== staleAccessToken && this.tokens.accessValid(session)) return session;
    try {
      const answer = await this.fetchJson('POST', 'auth/reissue', { body: { refreshToken: session.refreshToken } });
      return this.tokens.save(answer.data);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        this.tokens.clear();
        this.onSessionEnded();
      }
      throw e;
    }
  }

  async login(username, password) {
    const answer = await this.fetchJson('POST', 'auth/login', { body: { username, password } });
    return this.tokens.save(answer.data);
  }

  async signup(username, password) {
    return (await this.fetchJson('POST', 'auth/signup', { body: { username, password } })).data;
  }

  /** Revokes the refresh token's family on the server (best effort) and forgets the session. */
  async logout() {
    const session = this.tokens.load();
    this.tokens.clear();
    if (!session) return;
    try {
      await this.fetchJson('POST', 'auth/logout', {
        body: { refreshToken: session.refreshToken },
        token: session.accessToken,
      });
    } catch {
      // An expired access token or an unreachable server: the local session is gone either way.
    }
  }

  /** `GET /chat/history/{roomId}` with `before`, `after`, `limit`: a bare array, ascending by id. */
  history(roomId, params = {}) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) if (value !== undefined && value !== null) query.set(name, value);
    const suffix = query.toString() ? `?${query}` : '';
    return this.call('GET', `chat/history/${encodeURIComponent(roomId)}${suffix}`);
  }

  // --- rooms (SPEC §8) ---------------------------------------------------------------------------

  /** One page of `GET /rooms`: the public rooms and the user's private ones, by roomId descending. */
  async rooms({ limit, before } = {}) {
    const query = new URLSearchParams();
    if (limit) query.set('limit', limit);
    if (before) query.set('before', before);
    const suffix = query.toString() ? `?${query}` : '';
    return (await this.call('GET', `rooms${suffix}`)).data;
  }

  /** `GET /rooms/{roomId}`: the room with its `members`; 404 for an open room or a private one the user is not in. */
  async room(roomId) {
    return (await this.call('GET', `rooms/${encodeURIComponent(roomId)}`)).data;
  }

  async createRoom({ roomId, name, private: isPrivate }) {
    return (await this.call('POST', 'rooms', { roomId, name, private: isPrivate })).data;
  }

  /** Invites `username` (the owner only); answers the room with its members. */
  async invite(roomId, username) {
    return (await this.call('POST', `rooms/${encodeURIComponent(roomId)}/members`, { username })).data;
  }

  /** Removes a member (the owner), or leaves (`username` is the user). */
  async removeMember(roomId, username) {
    return (await this.call('DELETE', `rooms/${encodeURIComponent(roomId)}/members/${encodeURIComponent(username)}`)).data;
  }

  /** Raises the user's read mark in a created room; answers `{ roomId, lastReadId, unread }`. */
  async markRoomRead(roomId, lastReadId) {
    return (await this.call('POST', `rooms/${encodeURIComponent(roomId)}/read`, { lastReadId })).data;
  }

  /** The direct-message room with `username` (created the first time); answers it with its members. */
  async openDm(username) {
    return (await this.call('POST', `dm/${encodeURIComponent(username)}`)).data;
  }

  /** The user's notifications, newest first. */
  async notifications(limit = 50) {
    return (await this.call('GET', `notifications?limit=${limit}`)).data;
  }

  async markRead(id) {
    return (await this.call('POST', `notifications/${encodeURIComponent(id)}/read`)).data;
  }
}
