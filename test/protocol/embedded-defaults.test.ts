/**
 * Issue 9 §4: the embedded defaults are safe to try, and a start that cannot work says why in one line.
 *  - the `admin` user of fixtures/ad/corp.ldif uses the admin API with the fixture as it is (its Domain Admins
 *    membership is only a memberOf value: the group is built into AD and not in the file);
 *  - a listener whose port is taken names the listener and the config key;
 *  - a hostname that is not an FQDN gets a start-up warning.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test, type TestContext } from 'node:test';
import { isFqdn } from '../../src/cli/serve.ts';
import { parseConfig } from '../../src/config/load.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { ListenerError, startServer } from '../../src/server.ts';
import { spawnChild } from '../harness/children.ts';
import { adminCall } from '../helpers/admin-call.ts';
import { ROOT } from '../helpers/cli.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const servers: { close(): Promise<void> | void }[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

test('the admin of corp.ldif uses the admin API on the fixture as shipped (memberOf counts beside member)', async () => {
  // The embedded defaults' directory and admin group (Domain Admins), nothing added to the fixture.
  const srv: TestServer = await startTestServer();
  servers.push(srv);
  const ok = await adminCall(srv, 'GET', '/api/dashboard', undefined, { user: 'admin', password: 'Adm1n!Secret' });
  assert.equal(ok.status, 200, ok.text);
  // john.smith is in no admin group: refused.
  const refused = await adminCall(srv, 'GET', '/api/dashboard', undefined, { user: 'john.smith', password: 'Corp!Passw0rd' });
  assert.equal(refused.status, 401);
});

async function occupy(): Promise<{ port: number; server: NetServer }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  assert.ok(addr && typeof addr === 'object');
  servers.push({ close: () => new Promise<void>((r) => server.close(() => r())) });
  return { port: addr.port, server };
}

test('a listener whose port is taken names the listener and its config key', async () => {
  const { port } = await occupy();
  const dataDir = mkdtempSync(join(tmpdir(), 'postern-taken-'));
  const config = parseConfig(
    {
      hostname: 'mx.example.com',
      dataDir,
      directory: { type: 'ldif', file: join(ROOT, 'fixtures/ad/corp.ldif') },
      listeners: {
        smtp: { port: 0, host: '127.0.0.1' },
        submission: false,
        smtps: false,
        imap: { port, host: '127.0.0.1' },
        imaps: false,
        pop3: false,
        pop3s: false,
        admin: false,
        http: false,
        https: false,
        managesieve: false,
      },
    },
    '(test)',
    ROOT,
  );
  await assert.rejects(startServer(config, silentLogger), (err: Error) => {
    assert.ok(err instanceof ListenerError, String(err));
    assert.equal(err.listener, 'imap');
    assert.match(err.message, new RegExp(`listener imap cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use`));
    assert.match(err.message, /listeners\.imap\.port/);
    return true;
  });
});

/** A config file for `postern serve` with only an SMTP listener, on `port` (0: any). */
function smtpOnlyConfig(prefix: string, hostname: string, port: number): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const file = join(dir, 'postern.yaml');
  const off = ['submission', 'smtps', 'imap', 'imaps', 'pop3', 'pop3s', 'admin', 'http', 'https', 'managesieve'].map((l) => `  ${l}: false`);
  writeFileSync(
    file,
    [
      `hostname: ${hostname}`,
      `dataDir: ${join(dir, 'var')}`,
      `directory: { type: ldif, file: ${join(ROOT, 'fixtures/ad/corp.ldif')} }`,
      'listeners:',
      `  smtp: { port: ${port}, host: 127.0.0.1 }`,
      ...off,
      '',
    ].join('\n'),
  );
  return file;
}

/** `postern serve --config FILE` as an admin runs it, in its own process group, killed when the test ends. */
function serve(t: TestContext, file: string) {
  return spawnChild(process.execPath, [join(ROOT, 'bin/postern.js'), '--config', file, 'serve'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, POSTERN_LOG_LEVEL: 'silent' },
    name: 'postern serve',
    owner: t,
  });
}

test('`postern serve` on a taken port exits 1 with that one line, no stack trace', { timeout: 60_000 }, async (t) => {
  const { port } = await occupy();
  const child = serve(t, smtpOnlyConfig('postern-taken-cli-', 'mx.example.com', port));
  let err = '';
  child.process.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.process.stdout!.resume();
  const { code } = await child.exited;
  assert.equal(code, 1, err);
  assert.match(err, new RegExp(`listener smtp cannot listen on 127\\.0\\.0\\.1:${port}.*listeners\\.smtp\\.port`));
  assert.doesNotMatch(err, /\n\s+at /, 'no stack trace');
});

test('an FQDN is recognised; a bare host name, an address or an empty label is not', () => {
  assert.ok(isFqdn('mail.corp.example'));
  assert.ok(isFqdn('mx.example.com.'));
  assert.ok(!isFqdn('localhost'));
  assert.ok(!isFqdn('3f1c2a9b7e'));
  assert.ok(!isFqdn('127.0.0.1'));
  assert.ok(!isFqdn('mail..example.com'));
  assert.ok(!isFqdn('-bad.example.com'));
});

test('`postern serve` warns at start-up when the hostname is not an FQDN', { timeout: 60_000 }, async (t) => {
  const child = serve(t, smtpOnlyConfig('postern-fqdn-', 'mailhost', 0));
  child.process.stderr!.resume();
  let out = '';
  const warning = /warning: hostname "mailhost" is not a fully qualified domain name/;
  // The banner is printed at once; the warning comes right after its "mail domains" line. Waits for it (or the end).
  await new Promise<void>((resolve) => {
    child.process.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (warning.test(out)) resolve();
    });
    void child.exited.then(() => resolve());
  });
  await child.kill();
  assert.match(out, warning);
  assert.match(out, /set hostname in the config/);
});
