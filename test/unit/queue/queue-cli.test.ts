import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, useCliConfig } from '../../helpers/cli-main.ts';
import { silentLogger } from '../../../src/lib/logger.ts';
import { newQueueId } from '../../../src/queue/id.ts';
import { Scheduler, type FinishedEvent } from '../../../src/queue/scheduler.ts';
import { Spool } from '../../../src/queue/spool.ts';
import { envelope, fakeAgent, message, queueFiles, rcpt, until } from './helpers.ts';

const cli = useCliConfig('postern-queue-cli-', `queue:\n  scanIntervalSeconds: 0.05\n`);

function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  return runCli(argv);
}

/** The server side: its own Spool instance on the same directory, as in another process. */
async function server(t: { after(fn: () => unknown): void }, decide: Parameters<typeof fakeAgent>[0]) {
  const spool = new Spool(cli.dataDir);
  const agent = fakeAgent(decide);
  const scheduler = new Scheduler({
    spool,
    settings: { get: () => 96 },
    // Retries an hour apart: only a flush makes a deferred message go again within the test.
    config: { retryMinSeconds: 3600, retryMaxSeconds: 3600, concurrency: 4, scanIntervalSeconds: 0.05 },
    hostname: 'mail.corp.example',
    log: silentLogger,
    agent,
  });
  const seen = new Map<string, number>();
  attemptsOf.set(scheduler, seen);
  scheduler.on('attempted', (e) => seen.set(e.id, (seen.get(e.id) ?? 0) + 1));
  await scheduler.start();
  t.after(async () => {
    await scheduler.stop();
    await run('queue', 'delete', '--all');
  });
  return { spool, agent, scheduler };
}

function finished(s: Scheduler, id: string): Promise<FinishedEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${id} did not finish`)), 5000);
    s.on('finished', (e) => {
      if (e.id !== id) return;
      clearTimeout(timer);
      resolve(e);
    });
  });
}

/** Resolves once `id` has been attempted and deferred `times` times in all (counted from the server's start). */
function deferred(s: Scheduler, id: string, times = 1): Promise<void> {
  const seen = attemptsOf.get(s)!;
  return until(() => (seen.get(id) ?? 0) >= times, 5000, `attempt ${times} of ${id}`);
}

const attemptsOf = new WeakMap<Scheduler, Map<string, number>>();

test('queue list on an empty or absent queue', async () => {
  let r = await run('queue', 'list');
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'the mail queue is empty');
  r = await run('queue', 'list', '--json');
  assert.equal(r.code, 0);
  assert.deepEqual(JSON.parse(r.out), []);
});

test('queue list shows each message with its pending and failed recipients and the last result', async () => {
  const spool = new Spool(cli.dataDir);
  await spool.init();
  const id = await spool.enqueue(
    message(),
    envelope(
      'alice@corp.example',
      rcpt('bob@partner.example', { attempts: 2, lastResult: '451 4.2.0 mailbox busy' }),
      rcpt('carol@partner.example', { state: 'failed', status: '5.1.1', lastResult: '550 5.1.1 user unknown' }),
      rcpt('dave@corp.example', { state: 'delivered' }),
      rcpt('audit@corp.example', { hidden: true, origin: 'bcc' }),
    ),
  );
  const bounce = await spool.enqueue(message(), envelope('', 'alice@corp.example'));
  try {
    let r = await run('queue', 'list');
    assert.equal(r.code, 0, r.err);
    const lines = r.out.split('\n');
    assert.match(lines[0], /^ID\s+ARRIVAL\s+SIZE\s+SENDER\s+ATTEMPTS\s+NEXT ATTEMPT$/);
    assert.match(lines[1], new RegExp(`^${id}\\s+\\d{4}-\\d\\d-\\d\\dT[\\d:]+Z\\s+\\d+ B\\s+<alice@corp\\.example>\\s+0\\s+`));
    assert.match(r.out, /^ {2}pending\s+bob@partner\.example\s+451 4\.2\.0 mailbox busy$/m);
    assert.match(r.out, /^ {2}failed\s+carol@partner\.example\s+550 5\.1\.1 user unknown$/m);
    assert.match(r.out, /^ {2}pending\s+audit@corp\.example \(bcc\)\s+\(not tried yet\)$/m);
    assert.match(r.out, /1 recipient already delivered/);
    assert.match(r.out, new RegExp(`^${bounce}\\s.*<>`, 'm'));
    assert.match(r.out, /^-- 2 messages, .*, 3 recipients pending$/m);

    r = await run('queue', 'list', '--json');
    const list = JSON.parse(r.out);
    assert.equal(list.length, 2);
    assert.equal(list[0].id, id);
    assert.equal(list[0].from, 'alice@corp.example');
    assert.deepEqual(list[0].pending.map((p: { address: string }) => p.address), ['bob@partner.example', 'audit@corp.example']);
    assert.deepEqual(list[0].failed.map((p: { address: string }) => p.address), ['carol@partner.example']);
    assert.equal(list[0].delivered, 1);
    assert.equal(list[0].lastResult, '451 4.2.0 mailbox busy');
    assert.equal(list[0].size, message().length);
    assert.equal(list[1].from, '');
  } finally {
    await run('queue', 'delete', '--all');
  }
});

test('queue flush makes a waiting message go now, picked up by the running server at its next scan', async (t) => {
  const { spool, agent, scheduler } = await server(t, (_r, _e, call) =>
    call === 1 ? { state: 'pending', result: '451 4.2.0 try later', status: '4.2.0' } : { state: 'delivered' },
  );
  const id = await spool.enqueue(message(), envelope('alice@corp.example', 'bob@partner.example'));
  await deferred(scheduler, id);
  const waiting = (await spool.read(id))!;
  assert.ok(Date.parse(waiting.nextAttemptAt) > Date.now() + 3000_000, 'the next attempt is an hour away');

  const done = finished(scheduler, id);
  const started = Date.now();
  const r = await run('queue', 'flush', id.toLowerCase());
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^flushed 1 message; a running server tries it within 0\.05 s$/);
  const e = await done;
  assert.equal(e.reason, 'done');
  assert.ok(Date.now() - started < 2000);
  assert.equal(agent.calls.length, 2);
});

test('queue flush without ids flushes everything; unknown ids exit 1, malformed ids 64', async (t) => {
  const { spool, scheduler } = await server(t, (_r, _e, call) =>
    call === 1 ? { state: 'pending', result: '451 4.2.0 try later', status: '4.2.0' } : { state: 'delivered' },
  );
  const ids = [
    await spool.enqueue(message('one'), envelope('a@corp.example', 'x@partner.example')),
    await spool.enqueue(message('two'), envelope('a@corp.example', 'y@partner.example')),
  ];
  await Promise.all(ids.map((id) => deferred(scheduler, id)));
  const done = Promise.all(ids.map((id) => finished(scheduler, id)));

  let r = await run('queue', 'flush', 'not-an-id');
  assert.equal(r.code, 64);
  assert.match(r.err, /not a queue id/);
  const unknown = newQueueId();
  r = await run('queue', 'flush', unknown);
  assert.equal(r.code, 1);
  assert.match(r.err, new RegExp(`no message ${unknown} in the queue`));

  r = await run('queue', 'flush');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^flushed 2 messages/);
  assert.deepEqual((await done).map((e) => e.reason), ['done', 'done']);
  r = await run('queue', 'flush');
  assert.equal(r.out, 'the mail queue is empty');
});

test('queue delete removes a waiting message and the running server copes', async (t) => {
  const { spool, agent, scheduler } = await server(t, () => ({ state: 'pending', result: '451 4.2.0 try later', status: '4.2.0' }));
  const id = await spool.enqueue(message(), envelope('alice@corp.example', 'bob@partner.example'));
  const keep = await spool.enqueue(message(), envelope('alice@corp.example', 'carol@partner.example'));
  await Promise.all([deferred(scheduler, id), deferred(scheduler, keep)]);
  const gone = finished(scheduler, id);
  const r = await run('queue', 'delete', id);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'deleted 1 message');
  assert.equal((await gone).reason, 'vanished');
  assert.equal(existsSync(join(spool.dir, `${id}.eml`)), false);
  assert.equal(existsSync(join(spool.dir, `${id}.json`)), false);
  assert.deepEqual((await spool.list()).map((e) => e.id), [keep]);
  // A flush of everything afterwards only touches what is left.
  const calls = agent.calls.length;
  await run('queue', 'flush');
  await deferred(scheduler, keep, 2);
  assert.deepEqual(agent.calls.slice(calls).map((c) => c.envelope.id), [keep]);
  assert.equal(scheduler.size.queued, 1);
});

test('queue delete: unknown id exits 1, no id or ids with --all exit 64, --all empties the queue', async () => {
  const spool = new Spool(cli.dataDir);
  await spool.init();
  const a = await spool.enqueue(message(), envelope('a@corp.example', 'b@corp.example'));
  await spool.enqueue(message(), envelope('a@corp.example', 'c@corp.example'));
  let r = await run('queue', 'delete');
  assert.equal(r.code, 64);
  assert.match(r.err, /give the queue ids to delete, or --all/);
  r = await run('queue', 'delete', a, '--all');
  assert.equal(r.code, 64);
  r = await run('queue', 'delete', '../../settings.db');
  assert.equal(r.code, 64);
  const unknown = newQueueId();
  r = await run('queue', 'delete', a, unknown);
  assert.equal(r.code, 1);
  assert.equal(r.out, 'deleted 1 message');
  assert.match(r.err, new RegExp(`no message ${unknown}`));
  r = await run('queue', 'delete', '--all');
  assert.equal(r.code, 0);
  assert.equal(r.out, 'deleted 1 message');
  assert.deepEqual(queueFiles(spool.dir), []);
});
