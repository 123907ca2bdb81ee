/**
 * Issue 9 §4: the embedded defaults are safe to try, and a start that cannot work says why in one line.
 *  - the `admin` user of fixtures/ad/corp.ldif uses the admin API with the fixture as it is (its Domain Admins
 *    membership is only a memberOf value: the group is built into AD and not in the file);
 *  - a listener whose port is taken names the listener and the config key;
 *  - a hostname that is not an FQDN gets a start-up warning.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isFqdn } from '../../src/cli/serve.ts';
import { parseConfig } from '../../src/config/load.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { ListenerError, startServer } from '../../src/server.ts';
import { ROOT } from '../helpers/cli.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const servers: { close(): Promise<void> | void }[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

function getJson(port: number, path: string, user: string, password: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, rejectUnauthorized: false, auth: `${user}:${password}`, timeout: 10_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

test('the admin of corp.ldif uses the admin API on the fixture as shipped (memberOf counts beside member)', async () => {
  // The embedded defaults' directory and admin group (Domain Admins), nothing added to the fixture.
  const srv: TestServer = await startTestServer();
  servers.push(srv);
  const port = srv.ports.admin;
  const ok = await getJson(port, '/api/dashboard', 'admin', 'Adm1n!Secret');
  assert.equal(ok.status, 200, ok.body);
  // john.smith is in no admin group: refused.
  const refused = await getJson(port, '/api/dashboard', 'john.smith', 'Corp!Passw0rd');
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

test('`postern serve` on a taken port exits 1 with that one line, no stack trace', { timeout: 60_000 }, async () => {
  const { port } = await occupy();
  const dir = mkdtempSync(join(tmpdir(), 'postern-taken-cli-'));
  const file = join(dir, 'postern.yaml');
  writeFileSync(
    file,
    [
      'hostname: mx.example.com',
      `dataDir: ${join(dir, 'var')}`,
      `directory: { type: ldif, file: ${join(ROOT, 'fixtures/ad/corp.ldif')} }`,
      'listeners:',
      `  smtp: { port: ${port}, host: 127.0.0.1 }`,
      '  submission: false',
      '  smtps: false',
      '  imap: false',
      '  imaps: false',
      '  pop3: false',
      '  pop3s: false',
      '  admin: false',
      '  http: false',
      '  https: false',
      '',
    ].join('\n'),
  );
  const child = spawn(process.execPath, [join(ROOT, 'bin/postern.js'), '--config', file, 'serve'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, POSTERN_LOG_LEVEL: 'silent' },
    detached: true,
  });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stdout!.resume();
  const killer = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  }, 50_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(killer);
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

test('`postern serve` warns at start-up when the hostname is not an FQDN', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-fqdn-'));
  const file = join(dir, 'postern.yaml');
  writeFileSync(
    file,
    [
      'hostname: mailhost',
      `dataDir: ${join(dir, 'var')}`,
      `directory: { type: ldif, file: ${join(ROOT, 'fixtures/ad/corp.ldif')} }`,
      'listeners:',
      '  smtp: { port: 0, host: 127.0.0.1 }',
      '  submission: false',
      '  smtps: false',
      '  imap: false',
      '  imaps: false',
      '  pop3: false',
      '  pop3s: false',
      '  admin: false',
      '  http: false',
      '  https: false',
      '',
    ].join('\n'),
  );
  const child = spawn(process.execPath, [join(ROOT, 'bin/postern.js'), '--config', file, 'serve'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, POSTERN_LOG_LEVEL: 'silent' },
    detached: true,
  });
  const kill = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  };
  servers.push({ close: kill });
  let out = '';
  child.stderr!.resume();
  const seen = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 50_000);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (/mail domains: /.test(out) && /\n/.test(out.slice(out.indexOf('mail domains: ')))) {
        // the warning follows the mail domains line; give the rest of the banner its line
        if (/warning: hostname "mailhost" is not a fully qualified domain name/.test(out)) {
          clearTimeout(timer);
          resolve(true);
        }
      }
    });
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(/warning: hostname "mailhost"/.test(out));
    });
  });
  kill();
  assert.ok(seen, out);
  assert.match(out, /set hostname in the config/);
});
