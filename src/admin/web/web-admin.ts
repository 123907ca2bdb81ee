/**
 * The web admin page (issue 14) on the admin listener: `GET /` and its files under `/web/`, and the login session
 * (`/api/session`). The page is a client of the public admin API only: it calls the same /api/* routes as the CLI,
 * authenticated by the session cookie instead of an Authorization header (see sessions.ts for the CSRF rule).
 *
 * Everything the page needs is served from here (its own files and the libraries from node_modules), read once at
 * start and kept in memory, so it works with no Internet access and the first page costs no disk read.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AdminAuth } from '../auth.js';
import { errorBody } from '../errors.js';
import type { AdminDeps, App } from '../types.js';
import { cookieValue, SESSION_MAX_MS, WebSessions, type WebSession } from './sessions.js';

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/**
 * The pages run only our own scripts (no inline script, no eval: htm builds templates without it); styles set from
 * script (preact's style props, uPlot's sizes) are CSSOM writes, which style-src does not govern. No framing
 * (clickjacking of the Delete all button), no referrer leaving the admin listener.
 */
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

export const CSRF_HEADER = 'x-csrf-token';
/** Sent by the page on every call: a 401 then carries no Basic challenge, so the browser shows no password dialog. */
export const WEB_HEADER = 'x-postern-web';

function asset(body: Buffer, name: string): Asset {
  return { body, type: TYPES[extname(name)] ?? 'application/octet-stream', etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}

/** Our files (src/admin/web/public) and the UI libraries, by the flat name the page imports them as. */
export function loadAssets(): Map<string, Asset> {
  const here = dirname(fileURLToPath(import.meta.url));
  const pub = join(here, 'public');
  const out = new Map<string, Asset>();
  for (const f of readdirSync(pub)) out.set(f, asset(readFileSync(join(pub, f)), f));
  const file = (spec: string) => fileURLToPath(import.meta.resolve(spec));
  const vendor: [string, string | Buffer][] = [
    ['preact.mjs', file('preact')],
    // The hooks module imports the bare name "preact"; a browser without an import map (which would need an inline
    // script, refused by the CSP) resolves only URLs, so it is pointed at our copy.
    ['hooks.mjs', Buffer.from(readFileSync(file('preact/hooks'), 'utf8').replace(/from\s*["']preact["']/g, 'from"./preact.mjs"'))],
    ['htm.mjs', file('htm')],
    ['uplot.mjs', join(dirname(file('uplot')), 'uPlot.esm.js')],
    ['uplot.css', join(dirname(file('uplot')), 'uPlot.min.css')],
  ];
  for (const [name, src] of vendor) out.set(name, asset(typeof src === 'string' ? readFileSync(src) : src, name));
  return out;
}

export type SessionCheck =
  | { kind: 'none' }
  | { kind: 'ok' }
  | { kind: 'refuse'; status: 401 | 403; message: string; headers: Record<string, string> };

export interface WebAdmin {
  /** Requests that need no credentials: the page and its files, and the login. */
  isOpen(method: string, path: string): boolean;
  /**
   * For the admin hook: `none` when the request carries no session cookie (the Authorization header decides),
   * `ok` when a live session authenticated it (req.admin is set), `refuse` with the answer to send.
   */
  authenticate(req: FastifyRequest): SessionCheck;
  /** The challenge of a 401: none a browser would answer with its own password dialog when the page asked. */
  challenge(req: FastifyRequest): string;
  sessions: WebSessions;
}

function originHost(origin: string): string | undefined {
  try {
    return new URL(origin).host;
  } catch {
    return undefined; // "null" (a sandboxed or file: page) or garbage: not ours
  }
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

export function webAdmin(app: App, deps: AdminDeps, opts: { auth: AdminAuth; secure: boolean }): WebAdmin {
  const assets = loadAssets();
  const sessions = new WebSessions({ idleMs: deps.config.admin.webSessionMinutes * 60_000, maxMs: SESSION_MAX_MS });
  // RFC 6265bis §4.1.3.2: a __Host- cookie is only accepted Secure, host-only, Path=/ — no subdomain can set it.
  const cookieName = opts.secure ? '__Host-postern-session' : 'postern-session';
  const cookie = (value: string, maxAgeS: number) =>
    `${cookieName}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${opts.secure ? '; Secure' : ''}`;
  const sessionOf = (req: FastifyRequest): WebSession | undefined => sessions.use(cookieValue(req.headers.cookie, cookieName));

  const send = (req: FastifyRequest, reply: FastifyReply, a: Asset) => {
    reply.headers(PAGE_HEADERS).header('cache-control', 'no-cache').header('etag', a.etag).type(a.type);
    if (req.headers['if-none-match'] === a.etag) return reply.code(304).send();
    return reply.send(a.body);
  };
  app.get('/', async (req, reply) => send(req, reply, assets.get('index.html')!));
  app.get('/web/:file', async (req, reply) => {
    const a = assets.get((req.params as { file: string }).file);
    if (!a) return reply.code(404).send(errorBody(404, 'no such file'));
    return send(req, reply, a);
  });

  const view = (s: WebSession) => ({ who: s.who, csrfToken: s.csrf, expiresAt: new Date(s.expiresAt).toISOString(), idleMinutes: deps.config.admin.webSessionMinutes });

  app.post(
    '/api/session',
    {
      schema: {
        body: {
          type: 'object',
          properties: { login: { type: 'string', minLength: 1, maxLength: 256 }, password: { type: 'string', maxLength: 1024 }, token: { type: 'string', minLength: 1, maxLength: 1024 } },
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      const b = req.body as { login?: string; password?: string; token?: string };
      // A login form on another site cannot post JSON here without a CORS preflight we never answer; an Origin
      // that is not ours is refused anyway (login CSRF: being logged in as the attacker's account).
      const origin = req.headers.origin;
      if (origin && originHost(origin) !== req.headers.host) return reply.code(403).send(errorBody(403, 'cross-origin login refused'));
      let header: string;
      if (b.token !== undefined && b.login === undefined && b.password === undefined) header = `Bearer ${b.token}`;
      else if (b.login !== undefined && b.password !== undefined && b.token === undefined) header = `Basic ${Buffer.from(`${b.login}:${b.password}`, 'utf8').toString('base64')}`;
      else return reply.code(400).send(errorBody(400, 'give login and password, or token', 'body'));
      // The same check (and failure delay) as every API request: the AD admin group, or a listed token.
      const r = await opts.auth.check(header, req.ip);
      if (r.status === 'tempfail') return reply.code(503).header('retry-after', '30').send(errorBody(503, `cannot check credentials now: ${r.message}`));
      if (r.status !== 'ok') {
        // One answer for a wrong password, an unknown login and a non-admin: the page tells nobody who exists.
        return reply.code(401).send(errorBody(401, `login refused: an AD login in the ${deps.config.admin.group} group with its password, or an API token`));
      }
      const s = sessions.create(r.who.via === 'password' ? r.who.login : `token:${r.who.name}`);
      deps.log.info({ by: s.who, client: req.ip }, 'admin: web login');
      return reply.header('set-cookie', cookie(s.id, Math.floor(SESSION_MAX_MS / 1000))).header('cache-control', 'no-store').send(view(s));
    },
  );

  app.get('/api/session', async (req, reply) => {
    const s = sessionOf(req);
    if (!s) return reply.code(404).send(errorBody(404, 'this request is not authenticated by a web session'));
    return reply.header('cache-control', 'no-store').send(view(s));
  });

  app.delete('/api/session', async (req, reply) => {
    const id = cookieValue(req.headers.cookie, cookieName);
    const dropped = id ? sessions.drop(id) : false;
    if (dropped) deps.log.info({ by: req.admin, client: req.ip }, 'admin: web logout');
    return reply.header('set-cookie', cookie('', 0)).send({ loggedOut: dropped });
  });

  return {
    sessions,
    isOpen(method, path) {
      return (method === 'GET' || method === 'HEAD') && (path === '/' || path.startsWith('/web/')) ? true : method === 'POST' && path === '/api/session';
    },
    challenge(req) {
      return req.headers[WEB_HEADER] ? 'Bearer realm="postern admin"' : 'Basic realm="postern admin", charset="UTF-8", Bearer realm="postern admin"';
    },
    authenticate(req): SessionCheck {
      // An Authorization header is the API's way; a browser does not add one to a page's fetch by itself.
      if (req.headers.authorization) return { kind: 'none' };
      const id = cookieValue(req.headers.cookie, cookieName);
      if (!id) return { kind: 'none' };
      const s = sessions.use(id);
      if (!s) {
        return { kind: 'refuse', status: 401, message: 'the session has ended: log in again', headers: { 'www-authenticate': this.challenge(req), 'set-cookie': cookie('', 0) } };
      }
      if (!SAFE.has(req.method) && !sessions.checkCsrf(s, req.headers[CSRF_HEADER])) {
        return { kind: 'refuse', status: 403, message: `a request authenticated by the session cookie must carry the session's ${CSRF_HEADER} header`, headers: {} };
      }
      req.admin = s.who;
      return { kind: 'ok' };
    },
  };
}
