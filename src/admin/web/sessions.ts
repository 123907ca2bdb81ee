/**
 * Login sessions of the web admin page (issue 14 §1). A browser cannot keep an Authorization header between page
 * loads without showing the password to every script, so a login (the same AD-group or token check as the API,
 * src/admin/auth.ts) ends in a session: a random id in an HttpOnly cookie, kept here, server-side, so that logout
 * or expiry really ends it (a signed self-contained cookie would stay valid until its own expiry).
 *
 * CSRF: the cookie is SameSite=Strict, and every state-changing request authenticated by it must also carry the
 * session's own random token in the X-CSRF-Token header, which a page of another origin cannot read or guess
 * (the "synchronizer token" pattern of the OWASP CSRF cheat sheet). Sessions live in memory: a restart logs
 * everybody out, which is the safe direction.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';

export interface WebSession {
  id: string;
  /** Who logged in: an AD login, or `token:NAME`. */
  who: string;
  csrf: string;
  createdAt: number;
  lastUsedAt: number;
  /** When it ends if unused (idle limit, capped by the absolute limit). */
  expiresAt: number;
}

export interface WebSessionOptions {
  /** Idle limit: a session unused this long ends. */
  idleMs: number;
  /** Absolute limit from the login, however busy the session is: a removed admin loses access within it. */
  maxMs: number;
  now?: () => number;
}

export const SESSION_MAX_MS = 8 * 60 * 60 * 1000;

const token = () => randomBytes(32).toString('base64url');

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class WebSessions {
  private readonly byId = new Map<string, WebSession>();
  private readonly now: () => number;

  constructor(private readonly opts: WebSessionOptions) {
    this.now = opts.now ?? Date.now;
  }

  private expiry(s: Pick<WebSession, 'createdAt' | 'lastUsedAt'>): number {
    return Math.min(s.lastUsedAt + this.opts.idleMs, s.createdAt + this.opts.maxMs);
  }

  private sweep(now: number): void {
    for (const [id, s] of this.byId) if (s.expiresAt <= now) this.byId.delete(id);
  }

  create(who: string): WebSession {
    const now = this.now();
    this.sweep(now);
    const s: WebSession = { id: token(), who, csrf: token(), createdAt: now, lastUsedAt: now, expiresAt: 0 };
    s.expiresAt = this.expiry(s);
    this.byId.set(s.id, s);
    return s;
  }

  /** The live session with this id, its idle clock restarted; undefined when unknown or expired. */
  use(id: string | undefined): WebSession | undefined {
    if (!id) return undefined;
    const now = this.now();
    // A Map lookup by a 256-bit random id: hash-table timing tells an attacker nothing about a valid id's prefix.
    const s = this.byId.get(id);
    if (!s) return undefined;
    if (s.expiresAt <= now) {
      this.byId.delete(id);
      return undefined;
    }
    s.lastUsedAt = now;
    s.expiresAt = this.expiry(s);
    return s;
  }

  checkCsrf(s: WebSession, presented: string | string[] | undefined): boolean {
    return typeof presented === 'string' && presented.length > 0 && sameSecret(presented, s.csrf);
  }

  drop(id: string): boolean {
    return this.byId.delete(id);
  }

  get size(): number {
    this.sweep(this.now());
    return this.byId.size;
  }
}

/** The value of cookie `name` in a Cookie header (RFC 6265 §5.4: `name=value` pairs separated by `; `). */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
  }
  return undefined;
}
