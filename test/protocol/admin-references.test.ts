/**
 * Settings that cannot work are refused when set (issue 12 item 7), through the admin API with 400 {field, message}:
 * an attachment type detection by content can never recognise, a Bcc target, a pseudonym's user or group and a
 * user login the directory does not know — unless `?force=true` (an AD account about to be created), which answers
 * with a Warning header. A Bcc copy that bounces shows on the dashboard and in /metrics.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { adminCall } from '../helpers/admin-call.ts';
import { waitFor } from '../helpers/wait.ts';
import type { TestServer } from '../helpers/server.ts';
import { message, startSmtpTestServer, transport, waitForEmptyQueue } from './smtp-env.ts';

let server: TestServer;

before(async () => {
  server = await startSmtpTestServer();
});
after(async () => {
  await server?.close();
});

function warningOf(method: string, path: string, body: unknown): Promise<{ status: number; warning?: string }> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = request(
      {
        host: '127.0.0.1',
        port: server.ports.admin,
        method,
        path,
        ca: server.tls.cert,
        checkServerIdentity: () => undefined,
        headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from('admin:Adm1n!Secret').toString('base64')}` },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, warning: res.headers.warning as string | undefined }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

describe('filter.attachments.custom', () => {
  for (const t of ['bat', 'js', 'vbs']) {
    test(`refuses ${t}: plain text, never found by content; the message lists the types that are`, async () => {
      const r = await adminCall(server, 'PUT', '/api/settings/filter.attachments.custom', { value: ['pdf', t] });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.field, 'filter.attachments.custom');
      assert.match(r.json.message, new RegExp(`${t} files are plain text with no magic number, so they can never be recognised by content`));
      assert.match(r.json.message, /the types recognised by content are: .*\b7z\b.*\bpdf\b.*\brtf\b/);
      assert.deepEqual(server.core.settings.get('filter.attachments.custom'), []);
    });
  }
  test('accepts types detection by content recognises', async (t) => {
    t.after(() => server.core.settings.unset('filter.attachments.custom'));
    const r = await adminCall(server, 'PUT', '/api/settings/filter.attachments.custom', { value: ['PDF', '.rtf', 'msi'] });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.value, ['pdf', 'rtf', 'msi']);
  });
});

describe('names the directory does not know', () => {
  test('queue.alwaysBcc: an unknown or disabled local address is refused (PUT and PATCH); a remote one is not checked', async (t) => {
    t.after(() => server.core.settings.unset('queue.alwaysBcc'));
    for (const [value, pattern] of [
      ['ghost@example.com', /queue\.alwaysBcc: no user, group or pseudonym has the address ghost@example\.com .*every copy would bounce.*\?force=true/],
      ['old@example.com', /account is disabled or expired/],
    ] as const) {
      const r = await adminCall(server, 'PUT', '/api/settings/queue.alwaysBcc', { value });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.field, 'queue.alwaysBcc');
      assert.match(r.json.message, pattern);
    }
    const patch = await adminCall(server, 'PATCH', '/api/settings', { 'queue.alwaysBcc': 'ghost@example.com' });
    assert.equal(patch.status, 400, patch.text);
    assert.equal(server.core.settings.get('queue.alwaysBcc'), null);
    assert.equal((await adminCall(server, 'PUT', '/api/settings/queue.alwaysBcc', { value: 'it.tech@example.com' })).status, 200);
    assert.equal((await adminCall(server, 'PUT', '/api/settings/queue.alwaysBcc', { value: 'archive@elsewhere.example' })).status, 200);
  });

  test('a domain Bcc: refused on POST (also for the domain being added) and PATCH', async () => {
    let r = await adminCall(server, 'POST', '/api/domains', { name: 'new.example', bcc: 'archive@new.example' });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.field, 'bcc');
    assert.equal(server.core.settings.getDomain('new.example'), null);
    r = await adminCall(server, 'PATCH', '/api/domains/example.org', { bcc: 'ghost@example.com' });
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.message, /ghost@example\.com/);
    assert.equal(server.core.settings.getDomain('example.org')?.bcc, null);
  });

  test('a pseudonym of an unknown user or group is refused; with ?force=true it is added with a warning', async () => {
    let r = await adminCall(server, 'POST', '/api/addresses', { localPart: 'sales', target: { kind: 'group', name: 'Salez' } });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.field, 'target.name');
    assert.match(r.json.message, /no group "Salez"/);
    r = await adminCall(server, 'POST', '/api/addresses', { localPart: 'boss', target: { kind: 'user', name: 'next.hire' } });
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.message, /no user "next\.hire"/);
    assert.equal(server.core.settings.findPseudonym('boss@example.com'), null);
    const forced = await warningOf('POST', '/api/addresses?force=true', { localPart: 'boss', target: { kind: 'user', name: 'next.hire' } });
    assert.equal(forced.status, 201);
    assert.match(forced.warning ?? '', /^299 postern ".*no user \\"next\.hire\\"/);
    assert.equal(server.core.settings.findPseudonym('boss@example.com')?.target.name, 'next.hire');
    assert.equal((await adminCall(server, 'POST', '/api/addresses', { localPart: 'team', target: { kind: 'group', name: 'sales' } })).status, 201);
  });

  test('user settings for a login the directory does not know are refused; ?force=true accepts them', async () => {
    const r = await adminCall(server, 'PATCH', '/api/users/jhon.smith', { quotaMB: 10 });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.field, 'login');
    assert.match(r.json.message, /no user "jhon\.smith"/);
    assert.equal(server.core.settings.getUser('jhon.smith'), null);
    assert.equal((await warningOf('PATCH', '/api/users/next.hire?force=true', { quotaMB: 10 })).status, 200);
    assert.equal(server.core.settings.getUser('next.hire')?.quotaMB, 10);
    assert.equal((await adminCall(server, 'PATCH', '/api/users/JOHN.SMITH', { quotaMB: 20 })).status, 200);
  });
});

test('a Bcc copy that bounces is on the dashboard and in /metrics', async (t) => {
  const forced = await warningOf('PUT', '/api/settings/queue.alwaysBcc?force=true', { value: 'ghost@example.com' });
  assert.equal(forced.status, 200);
  assert.match(forced.warning ?? '', /ghost@example\.com/);
  t.after(() => server.core.settings.unset('queue.alwaysBcc'));
  await transport(server, 'smtp').sendMail({ envelope: { from: 'sender@outside.example', to: ['laura.verdi@example.com'] }, raw: message('bcc bounce') });
  await waitForEmptyQueue(server, 15_000);
  const dash = await waitFor('the Bcc failure on the dashboard', async () => {
    const r = await adminCall(server, 'GET', '/api/dashboard');
    return r.json?.bccFailures?.total >= 1 ? r.json : undefined;
  });
  const f = dash.bccFailures.recent[0];
  assert.equal(f.address, 'ghost@example.com');
  assert.equal(f.copyOf, 'laura.verdi@example.com');
  assert.match(f.lastResult ?? '', /5\.1\.1|unknown|no such/i);
  const metrics = await adminCall(server, 'GET', '/metrics');
  assert.match(metrics.text, /^postern_bcc_failed_total 1$/m);
});
