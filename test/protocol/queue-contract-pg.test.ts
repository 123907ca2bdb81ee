/**
 * The queue's metadata contract (issue 16): the same cases against the file default (Spool: <id>.json next to
 * <id>.eml) and the PostgreSQL backend (PgSpool: the row in queue_messages), each with a real Scheduler on top;
 * then what only the shared backend promises: two nodes' claims are disjoint (FOR UPDATE SKIP LOCKED), a dead
 * node's claim is taken over after its lease and its late outcome is refused, two schedulers on one queue
 * directory deliver each message once, and a PostgreSQL that cannot be reached makes enqueue a TempFailure that
 * leaves no file behind.
 *
 * On the PostgreSQL test/run.ts starts (test/helpers/pg-database); the delivery agent is the queue tests' fake
 * (the real agents, SMTP and two `postern serve` are test/integration/cluster-queue.test.ts).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { TempFailure } from '../../src/lib/errors.ts';
import { createFilePooled } from '../../src/lib/durable-fs.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { Scheduler, type FinishedEvent } from '../../src/queue/scheduler.ts';
import { Spool } from '../../src/queue/spool.ts';
import { PgState } from '../../src/state/postgres/pool.ts';
import { PgSpool } from '../../src/state/postgres/queue.ts';
import { createTestDatabase } from '../helpers/pg-database.ts';
import { waitFor } from '../helpers/wait.ts';
import { envelope, fakeAgent, message, rcpt } from '../unit/queue/helpers.ts';

const FAST = { retryMinSeconds: 0.05, retryMaxSeconds: 0.2, concurrency: 4, scanIntervalSeconds: 0.1 };

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'postern-qc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function pgFor(t: TestContext, url: string, statementTimeoutMs = 30_000): Promise<PgState> {
  const pg = new PgState({ url, poolSize: 4, connectTimeoutMs: 3000, statementTimeoutMs }, silentLogger);
  t.after(() => pg.close());
  return pg;
}

/** A fresh spool of the backend under test, on a fresh directory (and database). */
type Make = (t: TestContext) => Promise<{ spool: Spool; dir: string }>;

const backends: [string, Make][] = [
  [
    'file default',
    async (t) => {
      const dir = tempDir(t);
      const spool = new Spool(dir);
      await spool.init();
      return { spool, dir };
    },
  ],
  [
    'PostgreSQL',
    async (t) => {
      const db = await createTestDatabase({ owner: t, prefix: 'qcontract' });
      const pg = await pgFor(t, db.url);
      await pg.migrate();
      const dir = tempDir(t);
      const spool = new PgSpool(dir, { pg, nodeId: 'node-a', leaseSeconds: 5 });
      await spool.init();
      return { spool, dir };
    },
  ],
];

function scheduler(t: TestContext, spool: Spool, agent: ConstructorParameters<typeof Scheduler>[0]['agent'], lifetimeMs?: () => number) {
  const s = new Scheduler({ spool, settings: { get: () => 96 }, config: FAST, hostname: 'mail.corp.example', log: silentLogger, agent, lifetimeMs });
  const finished: FinishedEvent[] = [];
  s.on('finished', (e) => finished.push(e));
  t.after(() => s.stop());
  return { s, finished };
}

for (const [name, make] of backends) {
  describe(`queue metadata contract: ${name}`, () => {
    test('enqueue commits the envelope and the message; read, has, list and readMessage see them', async (t) => {
      const { spool, dir } = await make(t);
      const id = await spool.enqueue(message('one'), envelope('alice@corp.example', 'bob@partner.example', 'carol@partner.example'));
      const e = await spool.read(id);
      assert.ok(e);
      assert.equal(e.id, id);
      assert.equal(e.from, 'alice@corp.example');
      assert.deepEqual(e.recipients.map((r) => r.address), ['bob@partner.example', 'carol@partner.example']);
      assert.equal(e.size, message('one').length);
      assert.equal(e.attempts, 0);
      assert.equal(await spool.has(id), true);
      assert.deepEqual((await spool.list()).map((x) => x.id), [id]);
      assert.deepEqual(await spool.readMessage(id), message('one'));
      assert.ok(existsSync(join(dir, 'queue', `${id}.eml`)));
      assert.deepEqual(readdirSync(join(dir, 'queue', 'tmp')), []);
    });

    test('update replaces the envelope; modify edits it; both say when the message is not queued', async (t) => {
      const { spool } = await make(t);
      const id = await spool.enqueue(message(), envelope('alice@corp.example', 'bob@partner.example'));
      const e = (await spool.read(id))!;
      e.attempts = 3;
      e.nextAttemptAt = new Date(Date.now() + 3_600_000).toISOString();
      e.recipients[0] = { ...e.recipients[0], lastResult: '451 4.7.1 try later', attempts: 3 };
      assert.equal(await spool.update(e), true);
      const back = (await spool.read(id))!;
      assert.equal(back.attempts, 3);
      assert.equal(back.nextAttemptAt, e.nextAttemptAt);
      assert.equal(back.recipients[0].lastResult, '451 4.7.1 try later');
      const now = new Date().toISOString();
      const m = await spool.modify(id, (x) => (x.nextAttemptAt = now));
      assert.equal(m?.nextAttemptAt, now);
      assert.equal((await spool.read(id))!.nextAttemptAt, now);
      assert.equal(await spool.modify('0000000000000000', () => undefined), null);
      assert.equal(await spool.update({ ...e, id: '0000000000000000' }), false);
    });

    test('remove takes the message out (its file too); a second remove finds nothing', async (t) => {
      const { spool, dir } = await make(t);
      const keep = await spool.enqueue(message('keep'), envelope('alice@corp.example', 'bob@partner.example'));
      const id = await spool.enqueue(message('gone'), envelope('alice@corp.example', 'bob@partner.example'));
      assert.equal(await spool.remove(id, 'admin'), true);
      assert.equal(await spool.has(id), false);
      assert.equal(await spool.read(id), null);
      assert.equal(existsSync(join(dir, 'queue', `${id}.eml`)), false);
      assert.equal(await spool.remove(id), false);
      assert.deepEqual((await spool.list()).map((x) => x.id), [keep]);
    });

    test('the scheduler delivers a queued message once and takes it out of the queue', async (t) => {
      const { spool } = await make(t);
      const agent = fakeAgent(() => ({ state: 'delivered' }));
      const { s, finished } = scheduler(t, spool, agent);
      await s.start();
      const id = await spool.enqueue(message(), envelope('alice@corp.example', 'bob@partner.example'));
      await waitFor('the message to finish', () => finished.some((f) => f.id === id && f.reason === 'done'), { timeoutMs: 30_000 });
      assert.equal(agent.calls.filter((c) => c.envelope.id === id).length, 1);
      assert.equal(await spool.has(id), false);
    });

    test('a temporary failure is retried; at the end of the lifetime the sender gets one DSN (4.4.7)', async (t) => {
      const { spool } = await make(t);
      const agent = fakeAgent((r) => (r.address === 'alice@corp.example' ? { state: 'delivered' } : { state: 'pending', result: '451 4.7.1 greylisted', status: '4.7.1' }));
      const { s, finished } = scheduler(t, spool, agent, () => 1500);
      await s.start();
      const id = await spool.enqueue(message(), envelope('alice@corp.example', 'bob@partner.example'));
      await waitFor('the message to expire', () => finished.some((f) => f.id === id && f.reason === 'done'), { timeoutMs: 60_000 });
      const done = finished.find((f) => f.id === id)!;
      assert.ok(agent.calls.filter((c) => c.envelope.id === id).length >= 2, 'retried');
      assert.equal(done.envelope?.recipients[0].status, '4.4.7');
      assert.ok(done.dsnId);
      await waitFor('the DSN to be delivered', () => finished.some((f) => f.id === done.dsnId && f.reason === 'done'), { timeoutMs: 30_000 });
      const dsnCalls = agent.calls.filter((c) => c.envelope.id === done.dsnId);
      assert.equal(dsnCalls.length, 1);
      assert.equal(dsnCalls[0].envelope.from, '');
      assert.deepEqual(await spool.list(), []);
    });

    test('flush makes a deferred message due now', async (t) => {
      const { spool } = await make(t);
      let calls = 0;
      const agent = fakeAgent(() => (++calls === 1 ? { state: 'pending', result: '451 4.3.0 later', status: '4.3.0' } : { state: 'delivered' }));
      const s = new Scheduler({ spool, settings: { get: () => 96 }, config: { ...FAST, retryMinSeconds: 3600, retryMaxSeconds: 3600 }, hostname: 'mail.corp.example', log: silentLogger, agent });
      const finished: FinishedEvent[] = [];
      s.on('finished', (e) => finished.push(e));
      t.after(() => s.stop());
      await s.start();
      const id = await spool.enqueue(message(), envelope('alice@corp.example', 'bob@partner.example'));
      await waitFor('the first attempt to be written', async () => ((await spool.read(id))?.attempts ?? 0) === 1, { timeoutMs: 30_000 });
      assert.ok(Date.parse((await spool.read(id))!.nextAttemptAt) > Date.now() + 3_000_000);
      assert.deepEqual((await s.flush([id])).flushed, [id]);
      await waitFor('the flushed message to be delivered', () => finished.some((f) => f.id === id && f.reason === 'done'), { timeoutMs: 30_000 });
    });

    test('an admin delete while the message waits for a retry: it is not tried again', async (t) => {
      const { spool } = await make(t);
      const agent = fakeAgent(() => ({ state: 'pending', result: '451 4.3.0 later', status: '4.3.0' }));
      const { s } = scheduler(t, spool, agent);
      await s.start();
      const id = await spool.enqueue(message(), envelope('alice@corp.example', rcpt('bob@partner.example')));
      await waitFor('an attempt', () => agent.calls.length >= 1, { timeoutMs: 30_000 });
      assert.equal(await spool.remove(id, 'admin'), true);
      const n = agent.calls.length;
      // Several retry periods (retryMaxSeconds 0.2 s) and scans pass: wait for the scheduler to forget it.
      await waitFor('the scheduler to drop the message', () => s.size.queued === 0 && s.size.active === 0, { timeoutMs: 30_000 });
      assert.ok(agent.calls.length <= n + 1, 'at most the attempt already under way');
      assert.equal(await spool.has(id), false);
    });
  });
}

test('PostgreSQL: a lazy removal (a delivered message) waits for its DELETE, not for an fsync of queue/', async (t) => {
  const db = await createTestDatabase({ owner: t, prefix: 'qlazy' });
  const pg = await pgFor(t, db.url);
  await pg.migrate();
  const dir = tempDir(t);
  // Directory fsyncs that hang once `held` is set, until the test lets them go.
  let held = false;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  t.after(() => release());
  let syncs = 0;
  const spool = new PgSpool(dir, { pg, nodeId: 'node-a', fs: { syncDir: async () => { syncs++; if (held) await gate; } } });
  await spool.init();
  const id = await spool.enqueue(message('delivered'), envelope('alice@corp.example', 'bob@partner.example'));
  held = true;
  // The row's DELETE is the removal: a file left by a crash now is one recover() takes for a leftover.
  const waited = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the lazy removal waited for the fsync')), 10_000).unref());
  assert.equal(await Promise.race([spool.remove(id, undefined, { lazy: true }), waited]), true);
  assert.equal(await spool.has(id), false);
  assert.equal(existsSync(join(dir, 'queue', `${id}.eml`)), false);
  // The fsync the removal asked for (soon) may be running now: let it and every later one through.
  held = false;
  release();
  const other = await spool.enqueue(message('admin'), envelope('alice@corp.example', 'bob@partner.example'));
  // An admin's delete still waits for its fsync.
  const before = syncs;
  assert.equal(await spool.remove(other, 'cli:root', { lazy: true }), true);
  assert.ok(syncs > before, 'the admin delete fsynced queue/');
});

describe('queue on PostgreSQL: what two nodes share', () => {
  async function twoNodes(t: TestContext, leaseSeconds = 1) {
    const db = await createTestDatabase({ owner: t, prefix: 'qnodes' });
    const pgA = await pgFor(t, db.url);
    const pgB = await pgFor(t, db.url);
    await pgA.migrate();
    const dir = tempDir(t);
    const a = new PgSpool(dir, { pg: pgA, nodeId: 'node-a', leaseSeconds });
    const b = new PgSpool(dir, { pg: pgB, nodeId: 'node-b', leaseSeconds });
    await a.init();
    t.after(() => Promise.all([a.stop(), b.stop()]));
    return { a, b, dir, db };
  }

  test('claims made at once by two nodes are disjoint, and together take every due message', async (t) => {
    const { a, b } = await twoNodes(t, 30);
    const ids = new Set<string>();
    for (let i = 0; i < 20; i++) ids.add(await (i % 2 ? a : b).enqueue(message(`m${i}`), envelope('alice@corp.example', 'bob@partner.example')));
    const [ca, cb] = await Promise.all([a.claimDue(12), b.claimDue(12)]);
    const ia = ca.map((e) => e.id);
    const ib = cb.map((e) => e.id);
    assert.equal(ia.filter((id) => ib.includes(id)).length, 0, 'no message claimed by both');
    assert.equal(ia.length + ib.length, 20);
    assert.deepEqual(new Set([...ia, ...ib]), ids);
    // Nothing is left to claim while the leases run.
    assert.deepEqual(await a.claimDue(10), []);
    assert.deepEqual(await b.claimDue(10), []);
  });

  test("a dead node's claim is taken over after its lease; its late outcome is then refused", async (t) => {
    const { a, b } = await twoNodes(t, 1);
    const id = await a.enqueue(message(), envelope('alice@corp.example', 'bob@partner.example'));
    const [claimed] = await a.claimDue(1);
    assert.equal(claimed.id, id);
    // A stops renewing (as a SIGKILLed node would): within the lease B gets nothing, after it B gets the message.
    await a.stop();
    assert.deepEqual(await b.claimDue(1), []);
    const taken = await waitFor('B to take the message over', async () => (await b.claimDue(1))[0], { timeoutMs: 30_000, intervalMs: 100 });
    assert.equal(taken.id, id);
    // A comes back from the dead with an outcome: refused, B's claim stands.
    assert.equal(await a.update({ ...claimed, attempts: 1 }), false);
    assert.equal(await b.update({ ...taken, attempts: 1, nextAttemptAt: new Date(Date.now() + 60_000).toISOString() }), true);
    assert.equal((await a.read(id))!.attempts, 1);
  });

  test('a lease is renewed while the delivery runs: a slow delivery is not taken over', async (t) => {
    const { a, b } = await twoNodes(t, 3);
    const id = await a.enqueue(message(), envelope('alice@corp.example', 'bob@partner.example'));
    const [claimed] = await a.claimDue(1);
    assert.equal(claimed.id, id);
    // More than two lease lengths (renewals every third of one, so a loaded machine has two seconds of slack).
    const until = Date.now() + 7000;
    while (Date.now() < until) {
      assert.deepEqual(await b.claimDue(1), [], 'B took a message whose node is alive and renewing');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(await a.update({ ...claimed, attempts: 1 }), true);
  });

  test('two schedulers on one queue directory deliver each of 30 messages exactly once', async (t) => {
    const { a, b } = await twoNodes(t, 10);
    const delivered = new Map<string, number>();
    const agent = (node: string) =>
      fakeAgent(async (_r, e) => {
        delivered.set(e.id, (delivered.get(e.id) ?? 0) + 1);
        void node;
        await new Promise((r) => setTimeout(r, 5));
        return { state: 'delivered' };
      });
    const sa = scheduler(t, a, agent('a'));
    const sb = scheduler(t, b, agent('b'));
    await Promise.all([sa.s.start(), sb.s.start()]);
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push(await (i % 2 ? a : b).enqueue(message(`m${i}`), envelope('alice@corp.example', 'bob@partner.example')));
    await waitFor('every message to finish', () => ids.every((id) => [...sa.finished, ...sb.finished].some((f) => f.id === id && f.reason === 'done')), { timeoutMs: 60_000 });
    for (const id of ids) assert.equal(delivered.get(id), 1, `${id} delivered ${delivered.get(id)} times`);
    assert.deepEqual(await a.list(), []);
  });

  test('a node whose scheduler runs claims what it accepts at insert; the claim is a lease, given back at stop', async (t) => {
    const { a, b, db } = await twoNodes(t, 30);
    const look = await pgFor(t, db.url);
    // Before any scheduler took A's messages an enqueue is unclaimed (B may take it).
    const first = await a.enqueue(message('before'), envelope('alice@corp.example', 'bob@partner.example'));
    assert.deepEqual((await b.claimDue(5)).map((e) => e.id), [first]);
    // A's scheduler asks (nothing due): from now on A's enqueues carry A's claim in their INSERT.
    assert.deepEqual(await a.claimDue(5), []);
    const id = await a.enqueue(message('after'), envelope('alice@corp.example', 'bob@partner.example'));
    const row = (await look.query<{ claimed_by: string | null; lease_until: Date | null }>('SELECT claimed_by, lease_until FROM queue_messages WHERE id = $1', [id])).rows[0]!;
    assert.equal(row.claimed_by, 'node-a');
    assert.ok(row.lease_until, 'a lease, as a claim by statement has');
    assert.deepEqual(await b.claimDue(5), [], 'B takes nothing A holds');
    const saved = a.claimsSaved;
    const [mine] = await a.claimDue(1);
    assert.equal(mine!.id, id);
    assert.equal(a.claimsSaved, saved + 1, 'handed out without a statement');
    // Another one claimed at insert and not started when A stops: given back, B delivers it.
    const left = await a.enqueue(message('left'), envelope('alice@corp.example', 'bob@partner.example'));
    await a.stop();
    // B's last claim query found nothing: it asks again within a second (CLAIM_QUERY_MS).
    const taken = await waitFor('B to claim what A gave back', async () => {
      const got = await b.claimDue(5);
      return got.length ? got : undefined;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    assert.deepEqual(taken.map((e) => e.id), [left]);
  });

  test('a node that does not see the shared queue directory leaves the message queued for one that does', async (t) => {
    const { a, db } = await twoNodes(t, 10);
    // B on a queue directory of its own (a mount missing on that node): it can claim A's row but not read its file.
    const pgB = await pgFor(t, db.url);
    const b = new PgSpool(tempDir(t), { pg: pgB, nodeId: 'node-b', leaseSeconds: 10 });
    await b.init();
    t.after(() => b.stop());
    const id = await a.enqueue(message('only on A'), envelope('alice@corp.example', 'bob@partner.example'));
    const [claimed] = await b.claimDue(1);
    assert.equal(claimed.id, id);
    await assert.rejects(b.readMessage(id, claimed.spoolPrefix), (err: unknown) => err instanceof TempFailure && /is dataDir\/queue the directory every node shares/.test(err.message));
    assert.ok(await a.read(id), 'the row is kept');
    // B's scheduler gives its claim back instead of dropping the message; A, which sees the file, delivers it.
    let deliveredOnB = 0;
    let refusedOnB = 0;
    const read = b.readMessage.bind(b);
    b.readMessage = (i, prefix) => read(i, prefix).catch((err: unknown) => ((refusedOnB += 1), Promise.reject(err)));
    await b.release(id, new Date().toISOString());
    const sb = scheduler(t, b, fakeAgent(async () => ((deliveredOnB += 1), { state: 'delivered' })));
    await sb.s.start();
    await waitFor('B to try the message and give its claim back', async () => refusedOnB >= 1 && (await sb.s.stop(), true), { timeoutMs: 30_000 });
    assert.ok(await a.read(id), 'still queued after B tried it');
    // B leaves it to the others for a lease's length, even once it is due again: each round B finds nothing, until A
    // claims it.
    const [mine] = await waitFor(
      'the message to be due again and claimed by A, never by B',
      async () => {
        assert.deepEqual(await b.claimDue(5), [], 'B claimed again a message whose file it cannot see');
        const got = await a.claimDue(5);
        return got.length ? got : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 20 },
    );
    assert.equal(mine.id, id);
    await a.release(id, new Date().toISOString());
    const sa = scheduler(t, a, fakeAgent(async () => ({ state: 'delivered' })));
    await sa.s.start();
    await waitFor('A to deliver the message', () => sa.finished.some((f) => f.id === id && f.reason === 'done'), { timeoutMs: 60_000 });
    assert.equal(deliveredOnB, 0, 'B never delivered a message it could not read');
    assert.deepEqual(await a.list(), []);
  });

  test('queue expiry with two schedulers: the one DSN is made once cluster-wide', async (t) => {
    const { a, b } = await twoNodes(t, 10);
    const calls: { node: string; id: string; from: string }[] = [];
    const agent = (node: string) =>
      fakeAgent((_r, e) => {
        calls.push({ node, id: e.id, from: e.from });
        return e.from === '' ? { state: 'delivered' } : { state: 'pending', result: '451 4.7.1 greylisted', status: '4.7.1' };
      });
    const sa = scheduler(t, a, agent('a'), () => 2000);
    const sb = scheduler(t, b, agent('b'), () => 2000);
    await Promise.all([sa.s.start(), sb.s.start()]);
    const id = await a.enqueue(message(), envelope('alice@corp.example', 'bob@partner.example'));
    const all = () => [...sa.finished, ...sb.finished];
    const done = await waitFor('the message to expire', () => all().find((f) => f.id === id && f.reason === 'done'), { timeoutMs: 60_000 });
    assert.ok(done.dsnId);
    await waitFor('the DSN to be delivered', () => all().some((f) => f.id === done.dsnId && f.reason === 'done'), { timeoutMs: 30_000 });
    await waitFor('the queue to be empty', async () => (await a.list()).length === 0, { timeoutMs: 30_000 });
    assert.equal(all().filter((f) => f.id === id).length, 1, 'expired once');
    assert.equal(calls.filter((c) => c.from === '').length, 1, 'one DSN');
  });

  test('PostgreSQL unreachable: enqueue is a TempFailure and leaves no file; the same spool works when it is back', async (t) => {
    const db = await createTestDatabase({ owner: t, prefix: 'qdown' });
    const good = await pgFor(t, db.url);
    await good.migrate();
    const dir = tempDir(t);
    // The same database through a port nothing listens on (1: refused at once).
    const u = new URL(db.url);
    u.port = '1';
    u.hostname = '127.0.0.1';
    const bad = await pgFor(t, u.toString());
    const down = new PgSpool(dir, { pg: bad, nodeId: 'node-a' });
    await down.init();
    await assert.rejects(down.enqueue(message(), envelope('alice@corp.example', 'bob@partner.example')), (err) => err instanceof TempFailure);
    assert.deepEqual(readdirSync(join(dir, 'queue')).filter((n) => n !== 'tmp'), []);
    assert.deepEqual(readdirSync(join(dir, 'queue', 'tmp')), []);
    const up = new PgSpool(dir, { pg: good, nodeId: 'node-a' });
    const id = await up.enqueue(message(), envelope('alice@corp.example', 'bob@partner.example'));
    assert.equal(await up.has(id), true);
  });
});

test('PostgreSQL: a disk that fails (ENOSPC, EIO) is a TempFailure and leaves neither a file nor a row', async (t) => {
  const db = await createTestDatabase({ owner: t, prefix: 'qdisk' });
  const pg = await pgFor(t, db.url);
  await pg.migrate();
  for (const failing of ['create', 'fsync', 'syncDir'] as const) {
    const dir = tempDir(t);
    const spool = new PgSpool(dir, {
      pg,
      nodeId: 'node-a',
      fs: {
        async create(path, data) {
          const file = await createFilePooled(path, data); // the partial file exists when the failure hits
          if (failing === 'create') {
            await file.close();
            throw Object.assign(new Error(`${path}: no space left on device`), { code: 'ENOSPC' });
          }
          return {
            async syncAndClose() {
              await file.close();
              if (failing === 'fsync') throw Object.assign(new Error('input/output error'), { code: 'EIO' });
            },
            close: () => file.close(),
          };
        },
        async syncDir() {
          if (failing === 'syncDir') throw Object.assign(new Error('input/output error'), { code: 'EIO' });
        },
      },
    });
    await spool.init();
    await assert.rejects(spool.enqueue(message(), envelope('alice@corp.example', 'bob@partner.example')), (err: unknown) => {
      assert.ok(err instanceof TempFailure, `${failing}: ${String(err)}`);
      if (failing === 'create') assert.match(err.message, /file system is full/);
      return true;
    });
    assert.deepEqual(readdirSync(join(dir, 'queue')).filter((n) => n !== 'tmp'), [], `${failing}: no file in queue/`);
    assert.deepEqual(readdirSync(join(dir, 'queue', 'tmp')), [], `${failing}: nothing in tmp/`);
    assert.deepEqual(await spool.list(), [], `${failing}: no row`);
  }
});

describe('queue on PostgreSQL: group commit of the rows', () => {
  test('50 concurrent enqueues share statements, and every one that resolved is committed with its file', async (t) => {
    const db = await createTestDatabase({ owner: t, prefix: 'qgroup' });
    const pg = await pgFor(t, db.url);
    await pg.migrate();
    const dir = tempDir(t);
    const spool = new PgSpool(dir, { pg, nodeId: 'node-a' });
    await spool.init();
    const ids = await Promise.all(Array.from({ length: 50 }, (_, i) => spool.enqueue(message(`m${i}`), envelope('alice@corp.example', `u${i}@partner.example`))));
    assert.equal(new Set(ids).size, 50);
    // Read through another pool: what a second node sees, so committed, not only visible to our connection.
    const other = await pgFor(t, db.url);
    const rows = (await other.query<{ id: string; envelope: { recipients: { address: string }[] } }>('SELECT id, envelope FROM queue_messages')).rows;
    assert.deepEqual(new Set(rows.map((r) => r.id)), new Set(ids));
    for (const [i, id] of ids.entries()) {
      assert.equal(rows.find((r) => r.id === id)!.envelope.recipients[0]!.address, `u${i}@partner.example`, 'each row carries its own envelope');
      assert.ok(existsSync(join(dir, 'queue', `${id}.eml`)));
    }
    const stats = spool.batchStats().inserts;
    assert.equal(stats.items, 50);
    assert.ok(stats.batches < 50, `50 enqueues at once took ${stats.batches} INSERTs: not grouped`);
    // Outcomes and removals of concurrent attempts are grouped too, each answered for its own row.
    const claimed = await spool.claimDue(50);
    assert.equal(claimed.length, 50);
    const later = new Date(Date.now() + 3_600_000).toISOString();
    const updated = await Promise.all(claimed.slice(0, 25).map((e) => spool.update({ ...e, attempts: 1, nextAttemptAt: later })));
    assert.deepEqual(updated, Array(25).fill(true));
    const removed = await Promise.all([...claimed.slice(25).map((e) => spool.remove(e.id)), spool.remove(claimed[25]!.id)]);
    assert.deepEqual(removed, [...Array(25).fill(true), false], 'a second removal of one message in the same burst finds it gone');
    assert.equal((await spool.read(claimed[0]!.id))!.attempts, 1);
    assert.equal((await spool.list()).length, 25);
    assert.ok(spool.batchStats().updates.batches < 25 && spool.batchStats().removals.batches < 26);
  });

  test('the connection killed mid-batch: every waiter gets the TempFailure, none is acknowledged, no file is left', async (t) => {
    const db = await createTestDatabase({ owner: t, prefix: 'qgkill' });
    const pg = await pgFor(t, db.url);
    await pg.migrate();
    const dir = tempDir(t);
    const spool = new PgSpool(dir, { pg, nodeId: 'node-a' });
    await spool.init();
    // Another session holds the table, so the batched INSERTs wait in PostgreSQL, their rows sent, uncommitted.
    const blocker = await pgFor(t, db.url);
    // Checked out by hand: given back before the test ends, or the pool's close (an after hook) waits for it for ever.
    const held = await blocker.pool.connect();
    held.on('error', () => {}); // the database's drop at the end ends this session too
    let released = false;
    const release = () => {
      if (!released) held.release(true);
      released = true;
    };
    t.after(release);
    await held.query('BEGIN');
    await held.query('LOCK TABLE queue_messages IN EXCLUSIVE MODE');
    const outcomes = Array.from({ length: 50 }, (_, i) =>
      spool.enqueue(message(`m${i}`), envelope('alice@corp.example', `u${i}@partner.example`)).then(
        (id) => ({ ok: true as const, id }),
        (err: unknown) => ({ ok: false as const, err }),
      ),
    );
    let settled = 0;
    for (const o of outcomes) void o.then(() => settled++);
    // Kill every backend that sits in a batched INSERT (the next batch then waits in its turn) until all settled.
    // From a session outside the lock's transaction: pg_stat_activity is a snapshot per transaction.
    await waitFor(
      'every waiter to be answered',
      async () => {
        await blocker.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'INSERT INTO queue_messages%' AND wait_event_type = 'Lock'`,
        );
        return settled === 50;
      },
      { timeoutMs: 60_000, intervalMs: 50 },
    );
    const results = await Promise.all(outcomes);
    for (const r of results) {
      assert.equal(r.ok, false, 'an enqueue was acknowledged while its INSERT was killed');
      if (!r.ok) assert.ok(r.err instanceof TempFailure, `not a TempFailure: ${String(r.err)}`);
    }
    assert.ok(spool.batchStats().inserts.batches < 50, 'the killed statements carried several enqueues each');
    await held.query('ROLLBACK');
    release();
    assert.equal((await blocker.query('SELECT count(*) AS n FROM queue_messages')).rows[0]!.n, 0);
    assert.deepEqual(readdirSync(join(dir, 'queue')).filter((n) => n !== 'tmp'), [], 'no file of an unacknowledged message');
    assert.deepEqual(readdirSync(join(dir, 'queue', 'tmp')), []);
    // The pool gets new connections by itself: the same spool queues again.
    const id = await spool.enqueue(message(), envelope('alice@corp.example', 'bob@partner.example'));
    assert.equal(await spool.has(id), true);
  });
});
