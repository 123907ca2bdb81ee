/**
 * The message trace seen by two writers (issue 16): the same cases against the SQLite store (two TraceStores on one
 * trace.db, as the server and `postern queue delete` are today) and the PostgreSQL store (two nodes' PgTraceStores on
 * one database of the run's PostgreSQL), then what only PostgreSQL has: retention run once for the cluster through
 * the run-once gate, and PostgreSQL stopped: recording never throws, the events are held and written once it is
 * back, and a search meanwhile is a TempFailure.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { RunOnce } from '../../../src/cluster/run-once.ts';
import { TempFailure } from '../../../src/lib/errors.ts';
import { silentLogger } from '../../../src/lib/logger.ts';
import { PgState } from '../../../src/state/postgres/pool.ts';
import { PgTraceStore } from '../../../src/trace/pg-store.ts';
import { TraceRetention } from '../../../src/trace/retention.ts';
import { TraceStore } from '../../../src/trace/store.ts';
import type { TraceEvent, TracePath, TraceQuery } from '../../../src/trace/types.ts';
import { createTestDatabase, ownPostgres } from '../../helpers/pg-database.ts';
import { waitFor } from '../../helpers/wait.ts';

interface Writer {
  record(e: TraceEvent): void;
  query(q?: TraceQuery): TracePath[] | Promise<TracePath[]>;
  deleteBefore(before: number): Promise<{ messages: number; events: number }>;
}

interface Pair {
  a: Writer;
  b: Writer;
  close(): Promise<void>;
}

const pgConfig = (url: string) => ({ url, poolSize: 4, connectTimeoutMs: 2000, statementTimeoutMs: 15000 });

async function pgPool(url: string): Promise<PgState> {
  const pool = new PgState(pgConfig(url), silentLogger, 'trace test');
  await pool.migrate();
  return pool;
}

const backends: { name: string; open(t: { after(fn: () => unknown): void }): Promise<Pair> }[] = [
  {
    name: 'sqlite (one trace.db, two writers)',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'postern-trace-'));
      const a = new TraceStore(join(dir, 'trace.db'));
      const b = new TraceStore(join(dir, 'trace.db'));
      return {
        a,
        b,
        async close() {
          a.close();
          b.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'postgres (two nodes, one database)',
    async open(t) {
      const db = await createTestDatabase({ owner: t, prefix: 'trace' });
      const pa = await pgPool(db.url);
      const pb = await pgPool(db.url);
      const a = new PgTraceStore(pa);
      const b = new PgTraceStore(pb);
      return {
        a,
        b,
        async close() {
          await a.close();
          await b.close();
          await pa.close();
          await pb.close();
        },
      };
    },
  },
];

/** Each writer's pending batch written (a search flushes its own writer's first, as the 50 ms timer would). */
async function settle(p: Pair): Promise<void> {
  await p.a.query({ limit: 1 });
  await p.b.query({ limit: 1 });
}

const T0 = Date.UTC(2026, 0, 10, 12, 0, 0);

/** A message's usual path, received on one node (`at` from T0 + offset seconds). */
function received(w: Writer, queueId: string, from: string, to: string[], offset: number, messageId?: string): void {
  w.record({ queueId, type: 'received', at: T0 + offset * 1000, from, recipients: to, ...(messageId ? { messageId } : {}), detail: { listener: 'smtp', client: '192.0.2.1' } });
  w.record({ queueId, type: 'queued', at: T0 + offset * 1000 + 1, from, recipients: to, detail: { size: 1234 } });
}

for (const backend of backends) {
  describe(`trace on ${backend.name}`, () => {
    test('a message recorded through A and one through B are both found by a search on either', async (t) => {
      const p = await backend.open(t);
      t.after(() => p.close());
      received(p.a, 'AAAAAAAAAAAAAAA1', 'alice@example.com', ['bob@example.com'], 0, '<one@example.com>');
      received(p.b, 'BBBBBBBBBBBBBBB1', 'alice@example.com', ['carol@example.com'], 10, 'two@example.com');
      await settle(p);
      for (const w of [p.a, p.b]) {
        const found = await w.query({ from: 'ALICE@example.com' });
        assert.deepEqual(found.map((m) => m.queueId), ['BBBBBBBBBBBBBBB1', 'AAAAAAAAAAAAAAA1'], 'newest first');
        assert.deepEqual(found[1]!.events.map((e) => e.type), ['received', 'queued']);
        assert.deepEqual(found[1]!.events[0]!.detail, { listener: 'smtp', client: '192.0.2.1' });
        assert.equal(found[1]!.messageId, 'one@example.com');
        assert.deepEqual(found[0]!.recipients, ['carol@example.com']);
      }
      assert.deepEqual((await p.b.query({ messageId: '<one@example.com>' })).map((m) => m.queueId), ['AAAAAAAAAAAAAAA1']);
      assert.deepEqual((await p.a.query({ to: 'Carol@Example.com' })).map((m) => m.queueId), ['BBBBBBBBBBBBBBB1']);
      assert.deepEqual((await p.a.query({ queueId: 'bbbbbbbbbbbbbbb1' })).map((m) => m.queueId), ['BBBBBBBBBBBBBBB1']);
      assert.deepEqual((await p.a.query({ since: T0 + 5000 })).map((m) => m.queueId), ['BBBBBBBBBBBBBBB1']);
      assert.deepEqual((await p.a.query({ until: T0 + 5000 })).map((m) => m.queueId), ['AAAAAAAAAAAAAAA1']);
      assert.deepEqual((await p.a.query({ limit: 1 })).map((m) => m.queueId), ['BBBBBBBBBBBBBBB1']);
      assert.deepEqual(await p.a.query({ from: 'nobody@example.com' }), []);
    });

    test('events of one message written by both nodes make one path, with the sender and times of all', async (t) => {
      const p = await backend.open(t);
      t.after(() => p.close());
      received(p.a, 'CCCCCCCCCCCCCCC1', 'dave@example.com', ['erin@example.com'], 0);
      // A's batch first: the shared queue hands the message to B, which delivers it later.
      assert.equal((await p.a.query({ queueId: 'CCCCCCCCCCCCCCC1' })).length, 1);
      p.b.record({ queueId: 'CCCCCCCCCCCCCCC1', type: 'delivered', at: T0 + 60_000, rcpt: 'erin@example.com', detail: { folder: 'INBOX' } });
      p.b.record({ queueId: 'CCCCCCCCCCCCCCC1', type: 'completed', at: T0 + 60_001 });
      await settle(p);
      const [m] = await p.a.query({ to: 'erin@example.com' });
      assert.ok(m);
      assert.equal(m.from, 'dave@example.com');
      assert.deepEqual(m.events.map((e) => e.type), ['received', 'queued', 'delivered', 'completed']);
      assert.equal(m.firstAt, new Date(T0).toISOString());
      assert.equal(m.lastAt, new Date(T0 + 60_001).toISOString());
      assert.equal(m.events[2]!.rcpt, 'erin@example.com');
    });

    test('deleteBefore removes whole paths whose last event is older, and keeps the rest', async (t) => {
      const p = await backend.open(t);
      t.after(() => p.close());
      received(p.a, 'DDDDDDDDDDDDDDD1', 'old@example.com', ['x@example.com'], 0);
      received(p.b, 'DDDDDDDDDDDDDDD2', 'new@example.com', ['x@example.com'], 3600);
      // A path that began before the cut but ended after it stays whole.
      received(p.a, 'DDDDDDDDDDDDDDD3', 'long@example.com', ['x@example.com'], 0);
      p.b.record({ queueId: 'DDDDDDDDDDDDDDD3', type: 'completed', at: T0 + 7200_000 });
      await settle(p);
      const removed = await p.b.deleteBefore(T0 + 1800_000);
      assert.deepEqual(removed, { messages: 1, events: 2 });
      const left = await p.a.query({ to: 'x@example.com' });
      assert.deepEqual(left.map((m) => m.queueId).sort(), ['DDDDDDDDDDDDDDD2', 'DDDDDDDDDDDDDDD3']);
      assert.equal(left.find((m) => m.queueId === 'DDDDDDDDDDDDDDD3')!.events.length, 3);
    });
  });
}

describe('trace on postgres only', () => {
  test('the retention of two nodes ticking at once sweeps once, on one of them', async (t) => {
    const db = await createTestDatabase({ owner: t, prefix: 'traceret' });
    const pa = await pgPool(db.url);
    const pb = await pgPool(db.url);
    const a = new PgTraceStore(pa);
    const b = new PgTraceStore(pb);
    t.after(async () => {
      await a.close();
      await b.close();
      await pa.close();
      await pb.close();
    });
    received(a, 'EEEEEEEEEEEEEEE1', 'old@example.com', ['x@example.com'], 0);
    await a.flush();
    const runs: string[] = [];
    const retention = (name: string, store: PgTraceStore, pool: PgState) => {
      const gate = new RunOnce(pool, name);
      const counted = { deleteBefore: async (before: number, chunk?: number, stopped?: () => boolean) => (runs.push(name), store.deleteBefore(before, chunk, stopped)) };
      return new TraceRetention({
        store: counted,
        settings: { get: () => 1 },
        log: silentLogger,
        now: () => T0 + 3 * 86_400_000,
        intervalMs: 3_600_000,
        gate: { name: 'trace-retention', claim: (n, ms) => gate.claim(n, ms), done: (n) => gate.done(n) },
      });
    };
    const ra = retention('node-a', a, pa);
    const rb = retention('node-b', b, pb);
    ra.start();
    rb.start();
    t.after(async () => {
      await ra.stop();
      await rb.stop();
    });
    await waitFor('one node to sweep', async () => (await b.query({ queueId: 'EEEEEEEEEEEEEEE1' })).length === 0);
    // Both timers ticked at start; the claims are done once both are answered, the sweep soon after.
    await waitFor('both claims to be decided', async () => {
      const r = await pa.query<{ n: number }>("SELECT count(*) AS n FROM cluster_jobs WHERE name = 'trace-retention' AND holder IS NULL");
      return r.rows[0]!.n === 1;
    });
    assert.equal(runs.length, 1, `swept by ${runs.join(', ')}`);
  });

  describe('PostgreSQL stopped and started again', () => {
    const own = ownPostgres();

    test('events recorded while it is down are held and written when it is back; a search meanwhile is a TempFailure', async (t) => {
      const db = await createTestDatabase({ owner: t, prefix: 'tracedown', baseUrl: own.url });
      const pool = await pgPool(db.url);
      const store = new PgTraceStore(pool, { batchMs: 20 });
      t.after(async () => {
        await store.close();
        await pool.close();
      });
      received(store, 'FFFFFFFFFFFFFFF1', 'before@example.com', ['x@example.com'], 0);
      assert.equal((await store.query({ queueId: 'FFFFFFFFFFFFFFF1' })).length, 1);

      await own.stop();
      // record() is what the SMTP, queue and delivery code call: it must neither throw nor wait.
      received(store, 'FFFFFFFFFFFFFFF2', 'during@example.com', ['x@example.com'], 60);
      await store.flush();
      assert.equal(store.stats.written, 2, 'nothing more written while down');
      assert.equal(store.stats.dropped, 0, 'held, not dropped');
      await assert.rejects(store.query({ queueId: 'FFFFFFFFFFFFFFF2' }), (err: unknown) => err instanceof TempFailure);

      await own.start();
      await waitFor(
        'the held events to be written',
        async () => {
          try {
            return (await store.query({ queueId: 'FFFFFFFFFFFFFFF2' })).length === 1;
          } catch {
            return false;
          }
        },
        { timeoutMs: 60_000, intervalMs: 200 },
      );
      const [m] = await store.query({ queueId: 'FFFFFFFFFFFFFFF2' });
      assert.deepEqual(m!.events.map((e) => e.type), ['received', 'queued']);
      assert.equal(store.stats.dropped, 0);
    });

    test('past maxHeld the oldest held events are dropped and counted', async (t) => {
      const db = await createTestDatabase({ owner: t, prefix: 'tracecap', baseUrl: own.url });
      const pool = await pgPool(db.url);
      const store = new PgTraceStore(pool, { batchMs: 20, maxHeld: 3 });
      t.after(async () => {
        await store.close();
        await pool.close();
      });
      await own.stop();
      for (let i = 0; i < 5; i++) store.record({ queueId: `GGGGGGGGGGGGGGG${i}`, type: 'received', at: T0 + i });
      assert.equal(store.stats.dropped, 2);
      await own.start();
      await waitFor(
        'the three newest to be written',
        async () => {
          try {
            return (await store.query({ since: T0 })).length === 3;
          } catch {
            return false;
          }
        },
        { timeoutMs: 60_000, intervalMs: 200 },
      );
      assert.deepEqual((await store.query({ since: T0 })).map((m) => m.queueId), ['GGGGGGGGGGGGGGG4', 'GGGGGGGGGGGGGGG3', 'GGGGGGGGGGGGGGG2']);
    });
  });
});
