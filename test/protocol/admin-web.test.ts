/**
 * The web admin page's server side (issue 14 §1) on the real admin listener over TLS: the page and its files are
 * served by postern itself (nothing from another origin), a login with an AD admin's password or a token ends in
 * a server-side session whose cookie is HttpOnly, Secure, SameSite=Strict and __Host-; the session authenticates the
 * same /api routes as the CLI, a state-changing call without the session's CSRF token is refused, logout ends the
 * session, and a non-admin, a wrong password and a cross-origin login are refused alike.
 * The browser end to end (pages, sliders, AD) is test/integration/web-admin-ad.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { adminRequest, type AdminResponse } from '../helpers/admin-call.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const TOKEN = 'web-test-token-0123456789';
let server: TestServer;

type Res = AdminResponse;

/** A request with no Authorization header: the session cookie (in `headers`) or nothing authenticates it. */
function call(method: string, path: string, opts: { headers?: Record<string, string>; body?: unknown } = {}): Promise<Res> {
  return adminRequest(server, method, path, { auth: null, ...opts });
}

async function login(body: Record<string, string>): Promise<{ cookie: string; csrf: string; res: Res }> {
  const res = await call('POST', '/api/session', { body });
  assert.equal(res.status, 200, res.text);
  const setCookie = String(res.headers['set-cookie']);
  return { cookie: setCookie.split(';')[0], csrf: res.json.csrfToken, res };
}

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-web-'));
  const tokensFile = join(dir, 'tokens');
  writeFileSync(tokensFile, `ci ${createHash('sha256').update(TOKEN).digest('hex')}\n`);
  server = await startTestServer({ admin: { tokensFile, webSessionMinutes: 5 } });
});
after(async () => {
  await server?.close();
});

describe('the page and its files', () => {
  it('GET / is the page, with a CSP that allows only its own scripts and forbids framing; no credentials needed', async () => {
    const r = await call('GET', '/');
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/html/);
    assert.match(r.text, /<script type="module" src="\/web\/app-[A-Z0-9]+\.mjs"><\/script>/);
    const csp = String(r.headers['content-security-policy']);
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    // The page's one inline style is allowed by its hash, and only it: no other inline style or stylesheet runs.
    const styles = [...r.text.matchAll(/<style>([^]*?)<\/style>/g)].map((m) => m[1]);
    assert.equal(styles.length, 1);
    assert.match(styles[0], /\.login\b/, 'app.css is inline');
    const styleSrc = /style-src ([^;]+)/.exec(csp)![1];
    assert.equal(styleSrc, `'sha256-${createHash('sha256').update(styles[0]).digest('base64')}'`);
    assert.doesNotMatch(r.text, /<script(?![^>]*\bsrc=)/, 'no inline script');
    assert.equal(r.headers['x-frame-options'], 'DENY');
    assert.equal(r.headers['cache-control'], 'no-cache', 'the page is asked for again each visit: a new build is seen at once');
    const again = await call('GET', '/', { headers: { 'if-none-match': String(r.headers.etag) } });
    assert.equal(again.status, 304);
  });

  it('everything the page loads comes from the admin listener itself: every import resolves here, nothing names another origin', async () => {
    const page = (await call('GET', '/')).text;
    const seen = new Set<string>();
    const queue = [...page.matchAll(/(?:src|href)="(\/web\/[^"]+)"/g)].map((m) => m[1]);
    assert.ok(queue.some((u) => /^\/web\/app-[A-Z0-9]+\.mjs$/.test(u)), 'the entry module');
    assert.doesNotMatch(page, /(?:src|href)="(?:https?:)?\/\//, 'no script or style from another origin');
    while (queue.length) {
      const url = queue.shift()!;
      if (seen.has(url)) continue;
      seen.add(url);
      const r = await call('GET', url);
      assert.equal(r.status, 200, url);
      if (!url.endsWith('.mjs')) continue;
      assert.match(String(r.headers['content-type']), /^text\/javascript/, url);
      // Named by their content's hash, so kept for good: a new build has new names.
      assert.equal(r.headers['cache-control'], 'public, max-age=31536000, immutable', url);
      // Static and dynamic imports (minified: `}from"./x.mjs"`, `import"./x.mjs"`, `import("./x.mjs")`): relative
      // URLs only (a bare name or an http URL would not load offline).
      for (const m of r.text.matchAll(/(?:[}\s]from\s*|\bimport\s*\(\s*|(?:^|;)import\s*)["']([^"']+)["']/gm)) {
        assert.match(m[1], /^\.\//, `${url} imports ${m[1]}`);
        queue.push(`/web/${m[1].slice(2)}`);
      }
    }
    // The pages (and uPlot, for the charts) are chunks reached only by dynamic imports: loaded after login.
    for (const f of ['pages-email', 'pages-extra', 'pages-ooo', 'uPlot.esm']) assert.ok([...seen].some((u) => u.startsWith(`/web/${f}-`)), f);
    const preloaded = [...page.matchAll(/<link rel="modulepreload" href="([^"]+)">/g)].map((m) => m[1]);
    assert.ok(preloaded.length >= 1 && preloaded.every((u) => seen.has(u)), 'the entry\'s static imports are preloaded');
    assert.ok(!preloaded.some((u) => /pages-|uPlot/.test(u)), 'no page\'s code before login');
  });

  it('an unknown file is 404 and no path outside the page can be named', async () => {
    assert.equal((await call('GET', '/web/nope.mjs')).status, 404);
    assert.equal((await call('GET', '/web/..%2F..%2Fsessions.ts')).status, 404);
    assert.equal((await call('GET', '/web/..%2Fweb-admin.ts')).status, 404);
  });
});

describe('login, session, CSRF, logout', () => {
  it('an AD admin logs in: an HttpOnly, Secure, SameSite=Strict __Host- cookie; the session authenticates the API', async () => {
    const { cookie, csrf, res } = await login({ login: 'admin', password: 'Adm1n!Secret' });
    const set = String(res.headers['set-cookie']);
    assert.match(set, /^__Host-postern-session=[A-Za-z0-9_-]{43};/);
    for (const attr of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/', 'Max-Age=']) assert.ok(set.includes(attr), `${attr} in ${set}`);
    assert.doesNotMatch(set, /Domain=/i);
    assert.equal(res.json.who, 'admin');
    assert.equal(res.json.idleMinutes, 5);
    assert.ok(Date.parse(res.json.expiresAt) > Date.now());
    const s = await call('GET', '/api/session', { headers: { cookie } });
    assert.equal(s.status, 200);
    assert.equal(s.json.csrfToken, csrf);
    const d = await call('GET', '/api/domains', { headers: { cookie } });
    assert.equal(d.status, 200);
    assert.ok(d.json.domains.some((x: { name: string }) => x.name === 'example.com'));
    assert.equal((await call('GET', '/metrics', { headers: { cookie } })).status, 200);
  });

  it('a state-changing call authenticated by the cookie needs the session\'s CSRF token: without it, or with another, 403 and nothing changes', async () => {
    const a = await login({ login: 'admin', password: 'Adm1n!Secret' });
    const b = await login({ token: TOKEN });
    const none = await call('POST', '/api/domains', { headers: { cookie: a.cookie }, body: { name: 'csrf-none.example' } });
    assert.equal(none.status, 403);
    assert.match(none.json.message, /x-csrf-token/);
    const other = await call('POST', '/api/domains', { headers: { cookie: a.cookie, 'x-csrf-token': b.csrf }, body: { name: 'csrf-other.example' } });
    assert.equal(other.status, 403);
    const del = await call('DELETE', '/api/queue?all=true', { headers: { cookie: a.cookie } });
    assert.equal(del.status, 403);
    assert.equal(server.core.settings.getDomain('csrf-none.example'), null);
    assert.equal(server.core.settings.getDomain('csrf-other.example'), null);
    const ok = await call('POST', '/api/domains', { headers: { cookie: a.cookie, 'x-csrf-token': a.csrf }, body: { name: 'csrf-ok.example' } });
    assert.equal(ok.status, 201, ok.text);
    assert.ok(server.core.settings.getDomain('csrf-ok.example'));
  });

  it('a token logs in too, and its session is named after the token', async () => {
    const { res } = await login({ token: TOKEN });
    assert.equal(res.json.who, 'token:ci');
  });

  it('a wrong password, a non-admin with the right password and an unknown token are refused alike, with no cookie', async () => {
    const answers = await Promise.all([
      call('POST', '/api/session', { body: { login: 'admin', password: 'wrong' } }),
      call('POST', '/api/session', { body: { login: 'john.smith', password: 'Corp!Passw0rd' } }),
      call('POST', '/api/session', { body: { login: 'nobody.here', password: 'Corp!Passw0rd' } }),
      call('POST', '/api/session', { body: { token: 'not-a-token' } }),
    ]);
    for (const r of answers) {
      assert.equal(r.status, 401, r.text);
      assert.equal(r.headers['set-cookie'], undefined);
      assert.equal(r.json.message, answers[0].json.message, 'the same words whoever it was');
    }
    assert.equal((await call('POST', '/api/session', { body: { login: 'admin' } })).status, 400);
    assert.equal((await call('POST', '/api/session', { body: { login: 'admin', password: 'x', token: 'y' } })).status, 400);
  });

  it('a login from a page of another origin is refused (login CSRF)', async () => {
    const r = await call('POST', '/api/session', { headers: { origin: 'https://evil.example' }, body: { login: 'admin', password: 'Adm1n!Secret' } });
    assert.equal(r.status, 403);
    assert.equal(r.headers['set-cookie'], undefined);
  });

  it('logout drops the session server-side: the old cookie no longer authenticates anything', async () => {
    const { cookie, csrf } = await login({ login: 'admin', password: 'Adm1n!Secret' });
    const before = server.admin.admin!.routes.length;
    assert.ok(before > 0);
    const out = await call('DELETE', '/api/session', { headers: { cookie, 'x-csrf-token': csrf } });
    assert.equal(out.status, 200);
    assert.equal(out.json.loggedOut, true);
    assert.match(String(out.headers['set-cookie']), /Max-Age=0/);
    const after = await call('GET', '/api/domains', { headers: { cookie } });
    assert.equal(after.status, 401);
    assert.match(after.json.message, /session has ended/);
  });

  it('the page\'s own 401 carries no Basic challenge (no browser password dialog); the API\'s does', async () => {
    const web = await call('GET', '/api/domains', { headers: { 'x-postern-web': '1' } });
    assert.equal(web.status, 401);
    assert.doesNotMatch(String(web.headers['www-authenticate']), /Basic/);
    const cli = await call('GET', '/api/domains');
    assert.match(String(cli.headers['www-authenticate']), /^Basic /);
  });

  it('a made-up session cookie is 401, and Basic credentials still work beside the page', async () => {
    const r = await call('GET', '/api/domains', { headers: { cookie: '__Host-postern-session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' } });
    assert.equal(r.status, 401);
    const basic = `Basic ${Buffer.from('admin:Adm1n!Secret').toString('base64')}`;
    assert.equal((await call('GET', '/api/domains', { headers: { authorization: basic } })).status, 200);
    // With an Authorization header the API's rules apply: there is no session, and no CSRF token is asked for.
    assert.equal((await call('GET', '/api/session', { headers: { authorization: basic } })).status, 404);
  });
});
