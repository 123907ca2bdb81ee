/**
 * The Bayes training queue seen by two nodes (issue 16): the same cases against `training.db` (two connections on
 * one file, as an IMAP worker process and the main process are on one node) and PostgreSQL (two pools on one
 * database of the run's PostgreSQL, as two nodes). The trainers' `tell` here counts lessons instead of talking to
 * spamd (the spamd side is test/integration/cluster-training.test.ts): what is asserted is the queue — each lesson
 * told once although both nodes' trainers drain at once, kept when spamd fails, taken over after a lease.
 * Then, on PostgreSQL only: a stopped server is a TempFailure for add, and the trainer goes on once it is back.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { SpamTrainer, SqliteTrainingQueue, type TrainingLesson, type TrainingQueue } from '../../../src/filters/training-queue.ts';
import { TempFailure } from '../../../src/lib/errors.ts';
import { silentLogger } from '../../../src/lib/logger.ts';
import { PgState } from '../../../src/state/postgres/pool.ts';
import { PgTrainingQueue } from '../../../src/state/postgres/training-queue.ts';
import { createTestDatabase, ownPostgres } from '../../helpers/pg-database.ts';
import { waitFor } from '../../helpers/wait.ts';

type Owner = { after(fn: () => unknown): void };

const lesson = (i: number, kind: 'spam' | 'ham' = 'spam'): TrainingLesson => ({ login: `user${i % 3}`, kind, message: Buffer.from(`Subject: lesson ${i}\r\n\r\nbody ${i} \x00\xff\r\n`, 'latin1') });

const pgConfig = (url: string) => ({ url, poolSize: 4, connectTimeoutMs: 3000, statementTimeoutMs: 15000 });

async function pgPair(t: Owner, baseUrl?: string): Promise<[TrainingQueue, TrainingQueue]> {
  const db = await createTestDatabase({ owner: t, prefix: 'training', ...(baseUrl ? { baseUrl } : {}) });
  const pa = new PgState(pgConfig(db.url), silentLogger, 'node a');
  const pb = new PgState(pgConfig(db.url), silentLogger, 'node b');
  t.after(async () => {
    await pa.close();
    await pb.close();
  });
  await pa.migrate();
  return [new PgTrainingQueue(pa), new PgTrainingQueue(pb)];
}

const backends: { name: string; open(t: Owner): Promise<[TrainingQueue, TrainingQueue]> }[] = [
  {
    name: 'sqlite (one training.db, two connections)',
    async open(t) {
      const dir = mkdtempSync(join(tmpdir(), 'postern-training-'));
      const a = SqliteTrainingQueue.open(dir);
      const b = SqliteTrainingQueue.open(dir);
      t.after(async () => {
        await a.close();
        await b.close();
        rmSync(dir, { recursive: true, force: true });
      });
      return [a, b];
    },
  },
  { name: 'postgres (two nodes, one database)', open: (t) => pgPair(t) },
];

function trainer(t: Owner, queue: TrainingQueue, node: string, tell: (l: TrainingLesson) => Promise<boolean>): SpamTrainer {
  const tr = new SpamTrainer({ queue, node, log: silentLogger, intervalMs: 50, leaseMs: 60_000, tell });
  t.after(() => tr.stop());
  return tr;
}

for (const backend of backends) {
  describe(`training queue on ${backend.name}`, () => {
    test('lessons added through A and B are told once each, both trainers draining at once', async (t) => {
      const [a, b] = await backend.open(t);
      const told: string[] = [];
      const tell = (node: string) => async (l: TrainingLesson) => {
        told.push(`${l.kind} ${l.message.toString('latin1')}`);
        return node !== '';
      };
      const want: string[] = [];
      for (let i = 0; i < 20; i++) {
        const l = lesson(i, i % 2 ? 'ham' : 'spam');
        want.push(`${l.kind} ${l.message.toString('latin1')}`);
        await (i % 2 ? b : a).add([l]);
      }
      trainer(t, a, 'a', tell('a')).start();
      trainer(t, b, 'b', tell('b')).start();
      await waitFor('every lesson told', async () => told.length >= 20 && (await a.pending()) === 0, { timeoutMs: 30_000 });
      assert.deepEqual([...told].sort(), [...want].sort(), 'each lesson told exactly once, the message bytes intact');
      assert.equal(await b.pending(), 0);
    });

    test('a lesson spamd cannot take is kept with one attempt more and not due before its back-off', async (t) => {
      const [a, b] = await backend.open(t);
      await a.add([lesson(1)]);
      const tr = trainer(t, b, 'b', async () => {
        throw new Error('connect ECONNREFUSED');
      });
      tr.kick();
      await tr.idle();
      assert.equal(await a.pending(), 1);
      // Due in 10 s: neither node gets it now.
      assert.deepEqual(await a.take('a', 10, 60_000), []);
      assert.deepEqual(await b.take('b', 10, 60_000), []);
    });

    test('a lesson taken by a node that died is taken by the other once its lease has run out', async (t) => {
      const [a, b] = await backend.open(t);
      await a.add([lesson(7)]);
      const taken = await a.take('a', 10, 300);
      assert.equal(taken.length, 1);
      assert.deepEqual(await b.take('b', 10, 60_000), [], 'held by A while its lease lasts');
      const again = await waitFor('B to take it after the lease', async () => {
        const r = await b.take('b', 10, 60_000);
        return r.length ? r : undefined;
      }, { timeoutMs: 30_000, intervalMs: 100 });
      assert.equal(again[0].message.toString('latin1'), lesson(7).message.toString('latin1'));
      await b.done(again[0].id);
      assert.equal(await a.pending(), 0);
    });
  });
}

describe('training queue on postgres only: PostgreSQL stopped and started again', () => {
  const own = ownPostgres();

  test('adding is a TempFailure while it is down; the queued lessons are told once it is back', async (t) => {
    const [a, b] = await pgPair(t, own.url);
    await a.add([lesson(1), lesson(2)]);
    await own.stop();
    await assert.rejects(a.add([lesson(3)]), (e: unknown) => e instanceof TempFailure);
    const told: string[] = [];
    const tr = trainer(t, b, 'b', async (l) => {
      told.push(l.message.toString('latin1'));
      return true;
    });
    tr.start();
    tr.kick();
    await tr.idle(); // a pass that fails on the store: logged, nothing told, the trainer still runs
    assert.deepEqual(told, []);
    await own.start();
    await waitFor('both lessons told after the restart', () => told.length === 2, { timeoutMs: 60_000, intervalMs: 100 });
    assert.equal(await a.pending(), 0);
  });
});
