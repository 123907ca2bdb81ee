/**
 * Routes are decided when delivering, not when queueing (issue 12 §1, DESIGN.md §6): a relay next hop, a domain
 * that became local and a forward that changed apply to mail already in the queue, at the attempt after
 * `postern queue flush` — the way Postfix's qmgr asks its transport table on every attempt.
 *
 * Retries are an hour apart here, so only the flush (run through the CLI, as an admin does) starts the next attempt.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ROOT, runCli } from '../helpers/cli.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import type { TestServer } from '../helpers/server.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { waitFor } from '../helpers/wait.ts';
import { message, queued, startSmtpTestServer, transport, waitForEmptyQueue } from './smtp-env.ts';

let server: TestServer;
let sink: SmtpSink;
let dns: TestDnsServer;
let config: string;
/**
 * A next hop that refuses at once. Not a port bound once and released: the ephemeral range is shared with the
 * Samba DCs' dynamic RPC ports, and a port taken meanwhile by a listener that never greets made the first attempt
 * wait past the test's limit instead of deferring. Port 1 on loopback has no listener, and binding it needs root
 * that no test uses for it.
 */
const closedPort = 1;

before(async () => {
  sink = await startSmtpSink();
  dns = await startDnsServer({
    'remote.example': { MX: [{ exchange: 'mx.remote.example', priority: 10 }] },
    'mx.remote.example': { A: ['127.0.0.1'] },
  });
  server = await startSmtpTestServer({
    delivery: { remotePort: sink.port },
    dns: { servers: [dns.address], timeoutMs: 500 },
    queue: { retryMinSeconds: 3600, retryMaxSeconds: 3600, scanIntervalSeconds: 0.2 },
  });
  // The CLI an admin runs next to the server: same dataDir, so the same settings database and spool.
  config = join(server.dataDir, 'cli.yaml');
  writeFileSync(config, stringify({ hostname: 'mx.example.com', dataDir: server.dataDir, directory: { type: 'ldif', file: join(ROOT, 'fixtures/ad/corp.ldif') } }));
});

after(async () => {
  await server.close();
  await sink.close();
  await dns.close();
});

async function cli(...args: string[]): Promise<void> {
  const r = await runCli(args, { config });
  assert.equal(r.code, 0, `postern ${args.join(' ')}: ${r.err}`);
}

/** Sends from outside on port 25, then waits until the first attempt has deferred the message. */
async function sendAndDefer(to: string, subject: string, rcpts = [to]): Promise<void> {
  await transport(server, 'smtp').sendMail({ envelope: { from: 'sender@outside.example', to: rcpts }, raw: message(subject) });
  await waitFor(
    `a deferred attempt for ${to}`,
    async () => (await queued(server)).some((e) => e.attempts >= 1 && e.recipients.some((r) => r.address === to && r.state === 'pending' && /^4/.test(r.lastResult ?? ''))),
    { timeoutMs: 10_000 },
  );
}

const delivered = (subject: string) => sink.messages.filter((m) => m.data.toString('latin1').includes(`\r\nSubject: ${subject}\r\n`));

describe('routes at delivery time', () => {
  test('a relay domain whose next hop changed is relayed to the new host after a flush', async () => {
    server.core.settings.addDomain({ name: 'dead.example', type: 'relay', nexthop: `127.0.0.1:${closedPort}` });
    await sendAndDefer('bob@dead.example', 'relay moved');
    assert.equal(delivered('relay moved').length, 0);
    await cli('domain', 'set', 'dead.example', '--relay', `127.0.0.1:${sink.port}`);
    await cli('queue', 'flush');
    await waitForEmptyQueue(server, 10_000);
    const [m] = delivered('relay moved');
    assert.ok(m, 'the new next hop got the message');
    assert.deepEqual(m.to, ['bob@dead.example']);
  });

  test('a relay domain that became local is delivered to the mailbox after a flush', async () => {
    server.core.settings.updateDomain('example.org', { type: 'relay', nexthop: `127.0.0.1:${closedPort}` });
    await sendAndDefer('a.bianchi@example.org', 'now local');
    await cli('domain', 'set', 'example.org', '--local');
    await cli('queue', 'flush');
    await waitForEmptyQueue(server, 10_000);
    assert.equal(server.inbox('anna.bianchi').filter((m) => m.includes('Subject: now local')).length, 1);
    assert.equal(delivered('now local').length, 0);
  });

  test('a mailbox reached twice (list and direct) whose delivery was deferred still gets its one copy', async (t) => {
    const { store } = server;
    const deliver = store.deliver.bind(store);
    store.deliver = async (...args: Parameters<typeof store.deliver>) => {
      const [owner] = args;
      if (owner.kind === 'user' && owner.login === 'john.smith') throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
      return deliver(...args);
    };
    t.after(() => {
      store.deliver = deliver;
    });
    // sales@ expands to john.smith, laura.verdi and mario.rossi; john is also named directly.
    await sendAndDefer('john@example.com', 'twice, deferred', ['sales@example.com', 'john@example.com']);
    store.deliver = deliver;
    await cli('queue', 'flush');
    await waitForEmptyQueue(server, 10_000);
    for (const login of ['john.smith', 'laura.verdi', 'mario.rossi']) {
      assert.equal(server.inbox(login).filter((m) => m.includes('Subject: twice, deferred')).length, 1, login);
    }
  });

  test('a user whose forward was set while the local delivery was deferred gets the forward', async (t) => {
    const { store } = server;
    const deliver = store.deliver.bind(store);
    // The mailbox cannot take mail for now (a disk error): the first attempt defers.
    store.deliver = async () => {
      throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
    };
    t.after(() => {
      store.deliver = deliver;
    });
    await sendAndDefer('laura.verdi@example.com', 'forward set later');
    store.deliver = deliver;
    await cli('user', 'set', 'laura.verdi', '--forward', 'laura@remote.example');
    t.after(() => server.core.settings.setUser('laura.verdi', { forward: null }));
    await cli('queue', 'flush');
    await waitForEmptyQueue(server, 10_000);
    const [m] = delivered('forward set later');
    assert.ok(m, 'the forward address got the message');
    assert.deepEqual(m.to, ['laura@remote.example']);
    assert.equal(server.inbox('laura.verdi').filter((x) => x.includes('Subject: forward set later')).length, 0, 'no local copy');
  });
});
