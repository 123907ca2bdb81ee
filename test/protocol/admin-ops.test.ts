/**
 * Operations on the admin listener (issue 6 §5): /healthz and /readyz without credentials, Prometheus /metrics
 * for admins only.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { request } from 'node:https';
import { RawSmtp } from '../helpers/raw-smtp.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

let server: TestServer;
let closedPort: number;

function get(path: string, auth?: string): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: server.ports.admin,
        path,
        headers: auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {},
        ca: server.tls.cert,
        checkServerIdentity: () => undefined,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), text }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A port nothing listens on: bound, then closed. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

before(async () => {
  closedPort = await freePort();
  server = await startTestServer({
    admin: { group: 'ITStaff' }, // a group of the LDIF (admin is a member) instead of the built-in Domain Admins
    clamav: { host: '127.0.0.1', port: closedPort, timeoutMs: 500 },
    spamassassin: { host: '127.0.0.1', port: closedPort, timeoutMs: 500 },
  });
});
after(async () => {
  await server?.close();
});

test('/healthz answers without credentials', async () => {
  const r = await get('/healthz');
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.text), { status: 'ok' });
});

test('/readyz: directory and disk; clamd and spamd only when their filter is on', async (t) => {
  const ok = await get('/readyz');
  assert.equal(ok.status, 200, ok.text);
  const body = JSON.parse(ok.text);
  assert.equal(body.status, 'ready');
  assert.deepEqual(Object.keys(body.checks).sort(), ['directory', 'disk']);
  server.core.settings.set('filter.antivirus', true);
  server.core.settings.set('filter.spam', true);
  t.after(() => {
    server.core.settings.set('filter.antivirus', false);
    server.core.settings.set('filter.spam', false);
  });
  const down = await get('/readyz');
  assert.equal(down.status, 503);
  const checks = JSON.parse(down.text).checks;
  assert.equal(checks.clamd.ok, false);
  assert.equal(checks.spamd.ok, false);
  assert.equal(checks.directory.ok, true);
});

test('/metrics needs an admin', async () => {
  assert.equal((await get('/metrics')).status, 401);
  assert.equal((await get('/metrics', 'laura.verdi:Corp!Passw0rd')).status, 401);
  assert.equal((await get('/metrics', 'admin:Adm1n!Secret')).status, 200);
});

test('/metrics: Prometheus text with queue depth, directory cache and SMTP sessions', async () => {
  await server.core.directory.findLogin('laura.verdi');
  await server.core.directory.findLogin('laura.verdi');
  const c = await RawSmtp.connect(server.ports.smtp);
  try {
    await c.ehlo();
    const r = await get('/metrics', 'admin:Adm1n!Secret');
    assert.match(r.type, /^text\/plain; version=0\.0\.4/);
    const value = (name: string) => {
      const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(r.text);
      assert.ok(m, `${name} in\n${r.text}`);
      return Number(m[1]);
    };
    assert.match(r.text, /^# TYPE postern_queue_messages gauge$/m);
    assert.equal(value('postern_queue_messages'), 0);
    assert.ok(value('postern_directory_cache_hits_total') >= 1);
    assert.ok(value('postern_directory_cache_misses_total') >= 1);
    assert.equal(value('postern_smtp_sessions'), 1);
    assert.equal(value('postern_directory_server_up'), 1);
    assert.equal(value('postern_up'), 1);
    assert.match(r.text, /^postern_delivery_recipients_total\{state="delivered"\} 0$/m);
    assert.match(r.text, /^postern_queue_finished_total\{outcome="deleted"\} 0$/m);
  } finally {
    c.close();
  }
});

test('/metrics and the dashboard count SMTP messages in and refusals by step and code; IMAP/POP3 sessions', async () => {
  const c = await RawSmtp.connect(server.ports.smtp);
  try {
    await c.ehlo();
    assert.equal((await c.command('MAIL FROM:<sender@outside.example>')).code, 250);
    assert.equal((await c.command('RCPT TO:<nobody-here@example.com>')).code, 550);
  } finally {
    c.close();
  }
  const r = await get('/metrics', 'admin:Adm1n!Secret');
  const m = /^postern_smtp_rejected_total\{stage="rcpt",code="550",enhanced="5\.1\.1"\} (\d+)$/m.exec(r.text);
  assert.ok(m && Number(m[1]) >= 1, r.text);
  assert.match(r.text, /^postern_imap_sessions 0$/m);
  assert.match(r.text, /^postern_pop3_sessions 0$/m);
  const dash = await get('/api/dashboard', 'admin:Adm1n!Secret');
  const rejections = JSON.parse(dash.text).recentRejections as { stage: string; to: string; reply: string }[];
  assert.ok(rejections.some((x) => x.stage === 'rcpt' && x.to === 'nobody-here@example.com' && /^550 5\.1\.1/.test(x.reply)), JSON.stringify(rejections));
});
