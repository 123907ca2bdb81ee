/**
 * Orphaned mailboxes on the admin API and the CLI (issue 13): a mailbox whose objectGUID the directory no longer
 * has is listed (API, dashboard, `postern mailbox orphans`), exported as a tar of its Maildir, and erased on request;
 * the mailbox of an account that exists is never erased from here.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { userOwner } from '../../src/store/types.ts';
import { adminCall } from '../helpers/admin-call.ts';
import { ROOT, runCli } from '../helpers/cli.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const GONE = '0badc0de-0000-4000-8000-00000000beef';
let server: TestServer;
let configFile: string;

function getBytes(path: string): Promise<{ status: number; type: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: server.ports.admin,
        path,
        headers: { authorization: `Basic ${Buffer.from('admin:Adm1n!Secret').toString('base64')}` },
        ca: server.tls.cert,
        checkServerIdentity: () => undefined,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

before(async () => {
  server = await startTestServer();
  configFile = join(server.dataDir, 'postern.yaml');
  writeFileSync(configFile, stringify({ dataDir: server.dataDir, directory: { type: 'ldif', file: join(ROOT, 'fixtures/ad/corp.ldif') } }));
  // An account the directory does not have (deleted from AD after it got mail), and one it has.
  const gone = { kind: 'user', login: 'gone.user', guid: GONE } as const;
  await server.store.deliver(gone, Buffer.from('Subject: left behind\r\n\r\nhello\r\n'));
  const john = await server.core.directory.findLogin('john.smith');
  await server.store.deliver(userOwner(john!), Buffer.from('Subject: hi\r\n\r\nhello\r\n'));
});

after(async () => {
  await server?.close();
});

test('reconcile orphans the mailbox whose objectGUID AD lacks; the API, the dashboard and the CLI list it', async () => {
  const r = await adminCall(server, 'POST', '/api/mailboxes/reconcile');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.orphaned, [GONE]);
  const list = await adminCall(server, 'GET', '/api/mailboxes/orphaned');
  assert.equal(list.json.retentionDays, 30);
  assert.deepEqual(
    list.json.mailboxes.map((m: { guid: string; login: string; dir: string }) => [m.guid, m.login, m.dir]),
    [[GONE, 'gone.user', `users/${GONE}`]],
  );
  const m = list.json.mailboxes[0];
  assert.equal(Date.parse(m.eraseAfter) - Date.parse(m.orphanedAt), 30 * 86_400_000);
  const dash = await adminCall(server, 'GET', '/api/dashboard');
  assert.deepEqual(dash.json.orphanedMailboxes.map((o: { guid: string }) => o.guid), [GONE]);
  const cli = await runCli(['mailbox', 'orphans'], { config: configFile });
  assert.equal(cli.code, 0, cli.err);
  assert.match(cli.out, new RegExp(`^${GONE}  gone\\.user  orphaned `, 'm'));
});

test('export is a tar of the Maildir (API and CLI); erase removes it; an active mailbox or a bad GUID is refused', async () => {
  const tar = await getBytes(`/api/mailboxes/orphaned/${GONE}/export`);
  assert.equal(tar.status, 200);
  assert.equal(tar.type, 'application/x-tar');
  const listing = spawnSync('tar', ['-tf', '-'], { input: tar.body, encoding: 'utf8' });
  assert.equal(listing.status, 0, listing.stderr);
  const names = listing.stdout.split('\n');
  assert.ok(names.includes('Maildir/new'), listing.stdout);
  assert.equal(names.filter((n) => n.startsWith('Maildir/new/') && n.length > 'Maildir/new/'.length).length, 1, 'the one message');

  const out = join(server.dataDir, 'export.tar');
  const cli = await runCli(['mailbox', 'export', GONE, '-o', out], { config: configFile });
  assert.equal(cli.code, 0, cli.err);
  assert.ok(spawnSync('tar', ['-tf', out], { encoding: 'utf8' }).stdout.includes('Maildir/new/'));

  const john = await server.core.directory.findLogin('john.smith');
  assert.equal((await adminCall(server, 'DELETE', `/api/mailboxes/orphaned/${john!.guid}`)).status, 404, 'not orphaned: never erased here');
  assert.equal((await adminCall(server, 'DELETE', '/api/mailboxes/orphaned/*')).status, 400);
  assert.equal((await runCli(['mailbox', 'erase', john!.guid!], { config: configFile })).code, 1);

  const del = await adminCall(server, 'DELETE', `/api/mailboxes/orphaned/${GONE}`);
  assert.equal(del.status, 200);
  assert.deepEqual(del.json, { erased: GONE, login: 'gone.user' });
  assert.equal(existsSync(join(server.dataDir, 'mail', 'users', GONE)), false);
  assert.ok(existsSync(server.store.maildirPath(userOwner(john!))), 'the active mailbox is untouched');
  assert.deepEqual((await adminCall(server, 'GET', '/api/mailboxes/orphaned')).json.mailboxes, []);
  assert.equal((await getBytes(`/api/mailboxes/orphaned/${GONE}/export`)).status, 404);
});
