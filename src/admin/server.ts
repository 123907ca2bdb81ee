/**
 * The admin front end (issue 6): the admin HTTP API over TLS on the `admin` listener, and client autoconfiguration
 * on the public `http` and `https` listeners. Both are fastify apps built from AdminDeps; `routes` lists what each registered,
 * so a test can hold them against schema/openapi.json.
 *
 * Admin listener: /healthz and /readyz without credentials, and the web admin page (web/web-admin.ts: `/`, `/web/*`,
 * the login `POST /api/session`); every other route (the API under /api, /metrics) needs an admin (see auth.ts) or
 * a web session, else 401 with a WWW-Authenticate challenge.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { Activity } from './activity.js';
import { AdminAuth } from './auth.js';
import { errorBody, makeErrorHandler } from './errors.js';
import { addressesRoutes } from './routes/addresses.js';
import { autoconfigRoutes } from './routes/autoconfig.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { directoryRoutes } from './routes/directory.js';
import { domainsRoutes } from './routes/domains.js';
import { metricsRoutes, probeRoutes } from './routes/health.js';
import { queueRoutes } from './routes/queue.js';
import { traceRoutes } from './routes/trace.js';
import { settingsRoutes } from './routes/settings.js';
import { usersRoutes } from './routes/users.js';
import { outOfOfficeRoutes } from './routes/out-of-office.js';
import { limitsRoutes } from './routes/limits.js';
import { dkimRoutes } from './routes/dkim.js';
import { mailboxesRoutes } from './routes/mailboxes.js';
import type { AdminDeps, App } from './types.js';
import { webAdmin } from './web/web-admin.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling: `login` or `token:NAME` (for the log). */
    admin?: string;
  }
}

export interface RouteInfo {
  method: string;
  /** fastify form, `/api/domains/:name`. */
  url: string;
}

export interface AdminApp {
  app: App;
  routes: RouteInfo[];
}

const BODY_LIMIT = 1024 * 1024;

function collectRoutes(app: App): RouteInfo[] {
  const routes: RouteInfo[] = [];
  app.addHook('onRoute', (r) => {
    // fastify adds HEAD for every GET itself (exposeHeadRoutes): not part of the API description.
    for (const m of Array.isArray(r.method) ? r.method : [r.method]) if (m !== 'HEAD') routes.push({ method: m, url: r.url });
  });
  return routes;
}

function common(app: App, deps: AdminDeps): void {
  app.setErrorHandler(makeErrorHandler(deps.log));
  app.setNotFoundHandler((req, reply) => reply.code(404).send(errorBody(404, `no route ${req.method} ${req.url.split('?')[0]}`)));
}

/** The tokens file, relative to the config file that named it. */
function tokensPath(deps: AdminDeps): string | undefined {
  const f = deps.config.admin.tokensFile;
  if (!f || isAbsolute(f)) return f;
  return resolve(deps.config.source ? dirname(resolve(deps.config.source)) : process.cwd(), f);
}

/** The admin API app. `https` is given by startAdmin; tests may build it without TLS and use inject(). */
export function buildAdminApp(deps: AdminDeps, opts: { https?: { cert: Buffer; key: Buffer } } = {}): AdminApp {
  const log = deps.log.child({ component: 'admin' });
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT,
    // An unknown field is an error that names it, not silently dropped (fastify's default removes it).
    ajv: { customOptions: { removeAdditional: false, allErrors: false } },
    ...(opts.https ? { https: opts.https } : {}),
  }) as unknown as App;
  const routes = collectRoutes(app);
  common(app, { ...deps, log });
  const auth = new AdminAuth({ auth: deps.auth, directory: deps.directory, group: deps.config.admin.group, tokensFile: tokensPath(deps), log });
  const open = new Set(['/healthz', '/readyz']);
  // The web admin page (issue 14): its files and login are open; its session cookie authenticates the same API.
  const web = webAdmin(app, { ...deps, log }, { auth, secure: opts.https !== undefined });
  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0];
    if (open.has(path) || web.isOpen(req.method, path)) return;
    const w = web.authenticate(req);
    if (w.kind === 'ok') return;
    if (w.kind === 'refuse') return reply.code(w.status).headers(w.headers).send(errorBody(w.status, w.message));
    const r = await auth.check(req.headers.authorization, req.ip);
    if (r.status === 'ok') {
      req.admin = r.who.via === 'password' ? r.who.login : `token:${r.who.name}`;
      return;
    }
    if (r.status === 'tempfail') {
      return reply.code(503).header('retry-after', '30').send(errorBody(503, `cannot check credentials now: ${r.message}`));
    }
    return reply
      .code(401)
      .header('www-authenticate', web.challenge(req))
      .send(errorBody(401, `authentication required: an AD login in the ${deps.config.admin.group} group, or an API token`));
  });
  app.addHook('onResponse', async (req, reply) => {
    if (req.method !== 'GET' || reply.statusCode >= 400) log.debug({ method: req.method, url: req.url, status: reply.statusCode, by: req.admin, client: req.ip }, 'admin request');
  });
  const d = { ...deps, log };
  probeRoutes(app, d);
  metricsRoutes(app, d);
  settingsRoutes(app, d);
  domainsRoutes(app, d);
  addressesRoutes(app, d);
  usersRoutes(app, d);
  outOfOfficeRoutes(app, d);
  limitsRoutes(app, d);
  dkimRoutes(app, d);
  mailboxesRoutes(app, d);
  queueRoutes(app, d);
  traceRoutes(app, d);
  dashboardRoutes(app, d);
  directoryRoutes(app, d);
  return { app, routes };
}

/**
 * The public client-autoconfiguration app: autoconfig and Autodiscover only (Outlook spells the path in any case).
 * Plain HTTP (`http` listener) unless `https` is given (`https` listener, the server's certificate).
 */
export function buildHttpApp(deps: AdminDeps, opts: { https?: { cert: Buffer; key: Buffer } } = {}): AdminApp {
  const log = deps.log.child({ component: 'autoconfig' });
  const app = Fastify({
    logger: false,
    bodyLimit: 64 * 1024,
    routerOptions: { caseSensitive: false },
    ...(opts.https ? { https: opts.https } : {}),
  }) as unknown as App;
  const routes = collectRoutes(app);
  common(app, { ...deps, log });
  // Autodiscover requests are XML; any body is taken as text and only <EMailAddress> is read from it.
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  autoconfigRoutes(app, { ...deps, log }, { secure: opts.https !== undefined });
  return { app, routes };
}

export interface AdminService {
  /** Bound ports: `admin`, `http` and/or `https`, for the listeners configured. */
  ports: { admin?: number; http?: number; https?: number };
  admin?: AdminApp;
  http?: AdminApp;
  https?: AdminApp;
  close(): Promise<void>;
}

async function listen(app: FastifyInstance, l: { port: number; host?: string }): Promise<number> {
  // fastify's default host is localhost; the config's default is all addresses, like the mail listeners.
  try {
    await app.listen({ port: l.port, host: l.host ?? '::' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (l.host !== undefined || (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL')) throw err;
    await app.listen({ port: l.port, host: '0.0.0.0' }); // no IPv6 on this host
  }
  const addr = app.server.address();
  return typeof addr === 'object' && addr ? addr.port : l.port;
}

/** Starts the admin (TLS), http (plain) and https (autoconfig over TLS) listeners that the configuration has. */
export async function startAdmin(input: AdminDeps): Promise<AdminService> {
  const own = input.activity ? undefined : new Activity(input.scheduler);
  const deps: AdminDeps = { ...input, activity: input.activity ?? own };
  const started: AdminApp[] = [];
  const svc: AdminService = {
    ports: {},
    async close() {
      await Promise.all(started.map((a) => a.app.close()));
      own?.stop();
    },
  };
  try {
    const { admin, http, https } = deps.config.listeners;
    if (admin !== false) {
      svc.admin = buildAdminApp(deps, { https: { cert: deps.tls.cert, key: deps.tls.key } });
      started.push(svc.admin);
      svc.ports.admin = await listen(svc.admin.app, admin);
    }
    if (http !== false) {
      svc.http = buildHttpApp(deps);
      started.push(svc.http);
      svc.ports.http = await listen(svc.http.app, http);
    }
    if (https !== false) {
      svc.https = buildHttpApp(deps, { https: { cert: deps.tls.cert, key: deps.tls.key } });
      started.push(svc.https);
      svc.ports.https = await listen(svc.https.app, https);
    }
    deps.log.info({ component: 'admin', ...svc.ports }, 'admin listeners started');
    return svc;
  } catch (err) {
    await svc.close().catch(() => undefined);
    throw err;
  }
}
