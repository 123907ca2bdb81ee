/**
 * Smarthost TLS is configurable (issue 12 item 9): a loopback smarthost with a self-signed certificate is refused
 * (mail deferred, nothing sent) until `smarthost.caFile` names its CA or `smarthost.verify` is turned off; a CA file
 * that does not exist or holds no certificate is refused when set, through the admin API (400 {field, message}).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminCall } from '../helpers/admin-call.ts';
import { waitFor } from '../helpers/wait.ts';
import type { TestServer } from '../helpers/server.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { JOHN, TLS_FILES, transport } from './smtp-env.ts';
import { startSmtpTestServer } from './smtp-env.ts';

let server: TestServer;
let sink: SmtpSink;

before(async () => {
  sink = await startSmtpSink({ starttls: true, auth: { user: 'relayuser', pass: 's3cret' } });
  server = await startSmtpTestServer();
  server.core.settings.setMany({
    'smarthost.enabled': true,
    'smarthost.host': '127.0.0.1',
    'smarthost.port': sink.port,
    'smarthost.tls': 'starttls',
    'smarthost.username': 'relayuser',
    'smarthost.password': 's3cret',
  });
});

after(async () => {
  await server?.close();
  await sink?.close();
});

async function send(subject: string): Promise<void> {
  await transport(server, 'submission', JOHN).sendMail({ from: 'john@example.com', to: 'bob@remote.example', subject, text: 'Hello.' });
}

const arrived = (subject: string) => sink.messages.find((m) => m.data.toString().includes(`Subject: ${subject}`));

test('an untrusted smarthost certificate defers the mail; smarthost.caFile set through the API lets it go', async () => {
  await send('ca file');
  const env = await waitFor('a failed attempt', async () => {
    const [e] = await server.spool.list();
    return e && e.recipients[0].attempts > 0 ? e : undefined;
  });
  assert.equal(env.recipients[0].state, 'pending');
  assert.match(env.recipients[0].lastResult ?? '', /TLS|certificate/i);
  assert.equal(sink.received.length, 0, 'nothing was sent to a smarthost we could not verify');

  const r = await adminCall(server, 'PUT', '/api/settings/smarthost.caFile', { value: TLS_FILES.cert });
  assert.equal(r.status, 200, r.text);
  await waitFor('the message at the smarthost', () => arrived('ca file'), { timeoutMs: 15_000 });
  assert.equal(arrived('ca file')!.secure, true);
  assert.equal(arrived('ca file')!.user, 'relayuser');
});

test('smarthost.verify off sends to a smarthost whose certificate cannot be verified, still over TLS', async (t) => {
  server.core.settings.unset('smarthost.caFile');
  const r = await adminCall(server, 'PUT', '/api/settings/smarthost.verify', { value: false });
  assert.equal(r.status, 200, r.text);
  t.after(() => server.core.settings.unset('smarthost.verify'));
  await send('no verify');
  await waitFor('the message at the smarthost', () => arrived('no verify'), { timeoutMs: 15_000 });
  assert.equal(arrived('no verify')!.secure, true);
});

test('a CA file that does not exist, is relative or holds no certificate is refused when set', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-ca-'));
  const junk = join(dir, 'junk.pem');
  writeFileSync(junk, 'not a certificate\n');
  for (const [value, pattern] of [
    [join(dir, 'missing.pem'), /cannot be read \(ENOENT\)/],
    ['ca.pem', /absolute path/],
    [junk, /not a PEM certificate file/],
  ] as const) {
    const r = await adminCall(server, 'PUT', '/api/settings/smarthost.caFile', { value });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.field, 'smarthost.caFile');
    assert.match(r.json.message, pattern);
  }
  assert.equal(server.core.settings.get('smarthost.caFile'), null);
});
