/**
 * Message trace through a real server (issue 13 item 6): messages sent over SMTP with a real client, delivered
 * locally, relayed to an SMTP sink, bounced, refused by a filter and deleted from the queue; each has its full path,
 * found by `GET /api/trace` (HTTPS, as an admin) and by `postern trace`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { TracePath } from '../../src/trace/types.ts';
import { adminRequest } from '../helpers/admin-call.ts';
import { peExecutable } from '../helpers/attachments.ts';
import { ROOT, runCli } from '../helpers/cli.ts';
import type { TestServer } from '../helpers/server.ts';
import type { SmtpSink } from '../helpers/smtp-sink.ts';
import { waitFor } from '../helpers/wait.ts';
import { JOHN, queueIdOf, startWithRemote, transport, waitForEmptyQueue } from './smtp-env.ts';

let server: TestServer;
let sink: SmtpSink;
let close: () => Promise<void>;
let cliConfig: string;

before(async () => {
  ({ server, sink, close } = await startWithRemote({
    'remote.example': { MX: [{ exchange: 'mx.remote.example', priority: 10 }] },
    'mx.remote.example': { A: ['127.0.0.1'] },
  }));
  // The CLI reads the same dataDir the server writes (trace.db, the queue).
  cliConfig = join(server.dataDir, 'postern.yaml');
  writeFileSync(cliConfig, stringify({ dataDir: server.dataDir, directory: { type: 'ldif', file: join(ROOT, 'fixtures/ad/corp.ldif') } }));
});

after(() => close());

async function trace(query: string): Promise<TracePath[]> {
  const r = await adminRequest(server, 'GET', `/api/trace?${query}`);
  assert.equal(r.status, 200, r.text);
  return r.json.messages as TracePath[];
}

/** The path of `id` once it has an event of `type` (the scheduler records after the SMTP reply). */
async function pathWhen(id: string, type: string, rcpt?: string): Promise<TracePath> {
  return waitFor(`${type} in the trace of ${id}`, async () => {
    const [p] = await trace(`id=${id}`);
    return p?.events.some((e) => e.type === type && (rcpt === undefined || e.rcpt === rcpt)) ? p : undefined;
  }, { timeoutMs: 30_000 });
}

const types = (p: TracePath) => p.events.map((e) => e.type);
const event = (p: TracePath, type: string, rcpt?: string) => {
  const e = p.events.find((x) => x.type === type && (rcpt === undefined || x.rcpt === rcpt));
  assert.ok(e, `${type}${rcpt ? ` for ${rcpt}` : ''} in ${JSON.stringify(types(p))}`);
  return e;
};

test('a message delivered locally: received (listener, client, user, size, Message-ID), filters, queued, delivered to mailbox and folder, completed', async () => {
  const info = await transport(server, 'submission', JOHN).sendMail({
    from: 'john@example.com',
    to: 'anna@example.com',
    subject: 'trace local',
    text: 'Hello Anna.',
    messageId: '<trace-local.1@example.com>',
  });
  const id = queueIdOf(info.response);
  const p = await pathWhen(id, 'completed');
  assert.equal(p.from, 'john@example.com');
  assert.equal(p.messageId, 'trace-local.1@example.com');
  assert.deepEqual(p.recipients, ['anna@example.com']);
  const t = types(p);
  assert.equal(t[0], 'received');
  assert.ok(t.indexOf('filter') > 0 && t.indexOf('filter') < t.indexOf('queued'), `filters before queued: ${t}`);
  assert.ok(t.indexOf('queued') < t.indexOf('delivered') && t.indexOf('delivered') < t.indexOf('completed'), String(t));
  const received = event(p, 'received').detail;
  assert.equal(received.listener, 'submission');
  assert.equal(received.client, '127.0.0.1');
  assert.equal(received.user, 'john.smith');
  assert.equal(received.tls, true);
  assert.ok(typeof received.size === 'number' && received.size > 0);
  assert.deepEqual(event(p, 'filter').detail.action, 'accept');
  const delivered = event(p, 'delivered', 'anna@example.com').detail;
  assert.equal(delivered.mailbox, 'anna.bianchi');
  assert.equal(delivered.folder, 'INBOX');
  assert.match(String(delivered.reply), /^250 /);
  // The same path by Message-ID (with brackets), by sender and by recipient.
  assert.deepEqual((await trace(`messageId=${encodeURIComponent('<trace-local.1@example.com>')}`)).map((x) => x.queueId), [id]);
  assert.ok((await trace('from=john@example.com')).some((x) => x.queueId === id));
  assert.ok((await trace(`to=ANNA@example.com&since=1h`)).some((x) => x.queueId === id));
});

test('a message relayed to a remote host: the SMTP attempt (host, reply) and relayed (host, reply)', async () => {
  const info = await transport(server, 'submission', JOHN).sendMail({ from: 'john@example.com', to: 'partner@remote.example', subject: 'trace relay', text: 'Hi.' });
  const id = queueIdOf(info.response);
  const p = await pathWhen(id, 'completed');
  assert.ok(sink.messages.some((m) => m.to.includes('partner@remote.example')), 'the sink got it');
  const attempt = event(p, 'attempt').detail;
  assert.match(String(attempt.host), new RegExp(`^mx\\.remote\\.example\\[127\\.0\\.0\\.1\\]:${sink.port}$`));
  assert.equal(attempt.result, 'sent');
  const relayed = event(p, 'relayed', 'partner@remote.example').detail;
  assert.equal(relayed.host, 'mx.remote.example');
  assert.match(String(relayed.reply), /^250/);
  assert.deepEqual(types(p).slice(-3), ['attempt', 'relayed', 'completed']);
});

test('a message bounced by the remote host: failed with the reply, bounced with the DSN id, and the DSN has its own path', async () => {
  const info = await transport(server, 'submission', JOHN).sendMail({ from: 'john@example.com', to: 'perm.nobody@remote.example', subject: 'trace bounce', text: 'Hi.' });
  const id = queueIdOf(info.response);
  const p = await pathWhen(id, 'completed');
  assert.match(String(event(p, 'failed', 'perm.nobody@remote.example').detail.reply), /^550 5\.1\.1/);
  const bounced = event(p, 'bounced').detail;
  assert.equal(bounced.to, 'john@example.com');
  assert.deepEqual(bounced.failed, ['perm.nobody@remote.example']);
  const dsnId = String(bounced.dsnId);
  const dsn = await pathWhen(dsnId, 'delivered', 'john@example.com');
  assert.equal(dsn.from, '');
  assert.equal(event(dsn, 'queued').detail.listener, 'local');
  assert.equal(event(dsn, 'delivered').detail.mailbox, 'john.smith');
  await waitForEmptyQueue(server, 30_000);
});

test('a message refused by a filter: received, the filter verdict with its reply, rejected; nothing queued', async (t) => {
  server.core.settings.set('filter.attachments.executables', true);
  t.after(() => server.core.settings.set('filter.attachments.executables', false));
  const err = await transport(server, 'submission', JOHN)
    .sendMail({ from: 'john@example.com', to: 'anna@example.com', subject: 'trace exe', text: 'Run me.', attachments: [{ filename: 'setup.exe', content: peExecutable() }] })
    .then(() => undefined, (e: Error & { responseCode?: number }) => e);
  assert.equal(err?.responseCode, 554);
  const [p] = await waitFor('the refused message in the trace', async () => {
    const found = (await trace('from=john@example.com&limit=5')).filter((x) => x.events.some((e) => e.type === 'rejected'));
    return found.length ? found : undefined;
  });
  const verdict = p.events.find((e) => e.type === 'filter' && e.detail.stage === 'attachments');
  assert.ok(verdict, JSON.stringify(p.events));
  assert.equal(verdict.detail.action, 'reject');
  assert.match(String(verdict.detail.reply), /^554 /);
  assert.match(String(event(p, 'rejected').detail.reply), /^554 /);
  assert.ok(!types(p).includes('queued'));
});

test('deleted from the queue by an admin (API) and by the CLI: who deleted it is in the path; postern trace prints it', async () => {
  // temp* mailboxes at the sink answer 450: the message stays queued, deferred.
  const send = async () => queueIdOf((await transport(server, 'submission', JOHN).sendMail({ from: 'john@example.com', to: 'temp.busy@remote.example', subject: 'trace delete', text: 'Hi.' })).response);
  const viaApi = await send();
  const viaCli = await send();
  await pathWhen(viaApi, 'deferred');
  await pathWhen(viaCli, 'deferred');
  const del = await adminRequest(server, 'DELETE', `/api/queue?ids=${viaApi}`);
  assert.equal(del.status, 200, del.text);
  assert.equal(event(await pathWhen(viaApi, 'deleted'), 'deleted').detail.by, 'api:admin');
  assert.match(String(event(await pathWhen(viaApi, 'deferred'), 'deferred').detail.reply), /^450 /);

  const r = await runCli(['queue', 'delete', viaCli], { config: cliConfig });
  assert.equal(r.code, 0, r.err);
  assert.match(String(event(await pathWhen(viaCli, 'deleted'), 'deleted').detail.by), /^cli:\S+/);

  const out = await runCli(['trace', '--id', viaCli], { config: cliConfig });
  assert.equal(out.code, 0, out.err);
  assert.match(out.out, new RegExp(`^${viaCli}  from <john@example.com>`));
  assert.match(out.out, /\n {2}\S+Z +received +listener=submission client=127\.0\.0\.1 /);
  assert.match(out.out, /deferred +rcpt=temp\.busy@remote\.example reply="450 /);
  assert.match(out.out, /deleted +by=cli:/);
  const json = await runCli(['trace', '--to', 'temp.busy@remote.example', '--since', '1h', '--json'], { config: cliConfig });
  assert.equal(json.code, 0, json.err);
  assert.deepEqual((JSON.parse(json.out) as TracePath[]).map((x) => x.queueId).sort(), [viaApi, viaCli].sort());
  const none = await runCli(['trace', '--from', 'nobody@example.com'], { config: cliConfig });
  assert.equal(none.code, 1);
  assert.equal(none.out, 'no message matches');
});

test('GET /api/trace refuses a malformed queue id or time, and needs an admin', async () => {
  let r = await adminRequest(server, 'GET', '/api/trace?id=nope');
  assert.equal(r.status, 400);
  r = await adminRequest(server, 'GET', '/api/trace?since=yesterday');
  assert.equal(r.status, 400);
  assert.match(r.json.message, /since: not a time/);
  r = await adminRequest(server, 'GET', '/api/trace?bogus=1');
  assert.equal(r.status, 400);
  r = await adminRequest(server, 'GET', '/api/trace', { auth: null });
  assert.equal(r.status, 401);
});
