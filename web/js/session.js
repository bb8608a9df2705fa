// The token pair, kept in localStorage so that a reload keeps the session.
//
// Expiry is tracked on the browser's clock from the login answer's `expiresIn` (the JWT's `exp`
// is on the server's clock, which may differ); the JWT is only decoded for the username and as a
// fallback when `expiresIn` is missing.

const KEY = 'herald.session';

/** Treat an access token as expired this long before it is, so a request never races its expiry. */
const EXPIRY_MARGIN_MS = 1000;

/** The claims of a JWT (unverified: only the server can verify it), or null. */
export function jwtClaims(token) {
  try {
    const part = token.split('.')[1];
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

/**
 * The stored session: `{ username, accessToken, refreshToken, accessExpiresAt }` (ms since the epoch,
 * browser clock). Shared by every tab of the origin.
 */
export class TokenStore {
  constructor(storage = localStorage) {
    this.storage = storage;
  }

  /** The session, or null when logged out or unreadable. */
  load() {
    try {
      const session = JSON.parse(this.storage.getItem(KEY));
      if (session && session.accessToken && session.refreshToken && session.username) return session;
    } catch {
      // Corrupt: treated as logged out.
    }
    return null;
  }

  /** Stores a token pair from a login or reissue answer's `data`; returns the session. */
  save(data) {
    const claims = jwtClaims(data.accessToken) || {};
    const accessExpiresAt = Number.isFinite(data.expiresIn)
      ? Date.now() + data.expiresIn * 1000
      : (claims.exp || 0) * 1000;
    const session = {
      username: claims.sub,
      accessToken: data.accessToken,
      refreshToken: data.refreshToken,
      accessExpiresAt,
    };
    this.storage.setItem(KEY, JSON.stringify(session));
    return session;
  }

  clear() {
    this.storage.removeItem(KEY);
  }

  /** Whether the session's access token can still be used. */
  accessValid(session) {
    return Boolean(session) && Date.now() < session.accessExpiresAt - EXPIRY_MARGIN_MS;
  }
}
