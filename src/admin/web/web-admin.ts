/**
 * The web admin page (issue 14) on the admin listener: `GET /` and its files under `/web/`, and the login session
 * (`/api/session`). The page is a client of the public admin API only: it calls the same /api/* routes as the CLI,
 * authenticated by the session cookie instead of an Authorization header (see sessions.ts for the CSRF rule).
 *
 * Everything the page needs is served from here (its own files and the libraries from node_modules), built once at
 * start and kept in memory, so it works with no Internet access and the first page costs no disk read.
 *
 * The build (esbuild, which tsx already brings for running this TypeScript: nothing to build at `npm ci`, nothing to
 * go stale) is what makes the first page fast: measured in test/bench/web.bench.ts, the eleven files the page was
 * (ten ES modules and two stylesheets) cost a browser four to six new TLS connections and a wave of requests before
 * it could run anything. Now the page is index.html with its styles inline, the login's module and one shared
 * chunk; each page's code is a chunk of its own, loaded after login (app.mjs imports them dynamically). File names
 * carry their content's hash, so they are cached for good and a new build is never mixed with an old one.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, transform } from 'esbuild';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AdminAuth } from '../auth.js';
import { errorBody } from '../errors.js';
import type { AdminDeps, App } from '../types.js';
import { cookieValue, SESSION_MAX_MS, WebSessions, type WebSession } from './sessions.js';

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
  /** The name carries the content's hash: a browser may keep it without asking again. */
  immutable: boolean;
}

export interface WebAssets {
  /** By the name under /web/ (and `index.html` for `/`). */
  files: Map<string, Asset>;
  /** The page's Content-Security-Policy: its inline style allowed by hash, nothing else inline. */
  csp: string;
  /** What a first visit loads before the login form: `/` and the /web/ files of the entry and its static imports. */
  initial: string[];
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
 * script (preact's style props, uPlot's sizes) are CSSOM writes, which style-src does not govern; the one
 * stylesheet is index.html's inline <style>, allowed by its hash alone (CSP3 §8.4: a hash source matches an inline
 * block whose text hashes to it, so no other inline style runs). No framing (clickjacking of the Delete all
 * button), no referrer leaving the admin listener.
 */
const PAGE_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};
const cspFor = (styleHash: string) =>
  `default-src 'none'; script-src 'self'; style-src '${styleHash}'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`;

export const CSRF_HEADER = 'x-csrf-token';
/** Sent by the page on every call: a 401 then carries no Basic challenge, so the browser shows no password dialog. */
export const WEB_HEADER = 'x-postern-web';

function asset(body: Buffer, name: string, immutable: boolean): Asset {
  return { body, type: TYPES[extname(name)] ?? 'application/octet-stream', etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`, immutable };
}

let built: Promise<WebAssets> | undefined;

/**
 * The page as served: app.mjs bundled with what it imports (preact, htm, uPlot from node_modules by their package
 * names), split where it imports dynamically, minified; index.html with the stylesheets inline. Built once per
 * process and shared by every admin listener in it: about 80 ms of CPU in esbuild's own process (its async API, so
 * this process's event loop goes on meanwhile).
 */
export function loadAssets(): Promise<WebAssets> {
  built ??= buildAssets();
  return built;
}

async function buildAssets(): Promise<WebAssets> {
  const here = dirname(fileURLToPath(import.meta.url));
  const pub = join(here, 'public');
  const out = join(here, 'bundle'); // never written (write: false): only the names of the outputs hang on it
  const r = await build({
    entryPoints: [join(pub, 'app.mjs')],
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022', // top-level await in app.mjs; every browser the page supports has it
    minify: true,
    write: false,
    metafile: true,
    outdir: out,
    absWorkingDir: here,
    entryNames: '[name]-[hash]',
    chunkNames: '[name]-[hash]',
    outExtension: { '.js': '.mjs' },
    logLevel: 'silent',
  });
  const files = new Map<string, Asset>();
  for (const f of r.outputFiles) files.set(basename(f.path), asset(Buffer.from(f.contents), basename(f.path), true));
  const outputs = Object.entries(r.metafile.outputs).map(([path, o]) => ({ name: basename(path), o }));
  const entry = outputs.find((x) => x.o.entryPoint !== undefined && basename(x.o.entryPoint) === 'app.mjs')!;
  // Everything the entry imports statically, transitively: fetched in parallel with it, not one after the other.
  const preload: string[] = [];
  const visit = (name: string) => {
    for (const i of outputs.find((x) => x.name === name)!.o.imports) {
      if (i.kind !== 'import-statement' || i.external || preload.includes(basename(i.path))) continue;
      preload.push(basename(i.path));
      visit(basename(i.path));
    }
  };
  visit(entry.name);
  const css = (
    await transform(
    `${readFileSync(join(dirname(fileURLToPath(import.meta.resolve('uplot'))), 'uPlot.min.css'), 'utf8')}\n${readFileSync(join(pub, 'app.css'), 'utf8')}`,
      { loader: 'css', minify: true },
    )
  ).code.trim();
  if (/<\/style/i.test(css)) throw new Error('web admin: a stylesheet contains </style');
  const scripts = [...preload.map((f) => `<link rel="modulepreload" href="/web/${f}">`), `<script type="module" src="/web/${entry.name}"></script>`].join('\n');
  const html = readFileSync(join(pub, 'index.html'), 'utf8').replace('{{style}}', () => css).replace('{{scripts}}', () => scripts);
  files.set('index.html', asset(Buffer.from(html), 'index.html', false));
  const styleHash = `sha256-${createHash('sha256').update(css).digest('base64')}`;
  return { files, csp: cspFor(styleHash), initial: ['/', ...preload.map((f) => `/web/${f}`), `/web/${entry.name}`] };
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
  // The listener starts once the page is built (fastify runs onReady hooks before it listens): a build that fails
  // fails the start, not a visitor's first request.
  let assets = new Map<string, Asset>();
  let csp = '';
  app.addHook('onReady', async () => {
    ({ files: assets, csp } = await loadAssets());
  });
  const sessions = new WebSessions({ idleMs: deps.config.admin.webSessionMinutes * 60_000, maxMs: SESSION_MAX_MS });
  // RFC 6265bis §4.1.3.2: a __Host- cookie is only accepted Secure, host-only, Path=/ — no subdomain can set it.
  const cookieName = opts.secure ? '__Host-postern-session' : 'postern-session';
  const cookie = (value: string, maxAgeS: number) =>
    `${cookieName}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${opts.secure ? '; Secure' : ''}`;
  const sessionOf = (req: FastifyRequest): WebSession | undefined => sessions.use(cookieValue(req.headers.cookie, cookieName));

  const send = (req: FastifyRequest, reply: FastifyReply, a: Asset) => {
    // index.html is asked for again each time (no-cache: a new build is seen at once); the hashed files never.
    reply.headers(PAGE_HEADERS).header('content-security-policy', csp).header('cache-control', a.immutable ? 'public, max-age=31536000, immutable' : 'no-cache').header('etag', a.etag).type(a.type);
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
