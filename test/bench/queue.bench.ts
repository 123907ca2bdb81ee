/**
 * `npm run bench -- queue`: the cost of the queue's metadata on PostgreSQL (state postgres, issue 16) against the
 * file default: enqueue (what an SMTP client waits for before its 250: file fsyncs, directory fsync, and for
 * PostgreSQL the INSERT's commit), one after the other and 16 at once; and a delivery cycle's bookkeeping (claim,
 * then update or remove) that the scheduler adds per message. 4 KiB messages, one recipient, a temp dir on
 * os.tmpdir()'s disk and a throw-away PostgreSQL on loopback (test/harness/postgres.ts). Nothing is asserted.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/lib/logger.ts';
import { Spool } from '../../src/queue/spool.ts';
import { PgState } from '../../src/state/postgres/pool.ts';
import { PgSpool } from '../../src/state/postgres/queue.ts';
import { startPostgres } from '../harness/postgres.ts';
import { envNumber, table, us } from './lib.ts';

const num = envNumber('QUEUE');
const body = Buffer.from(('x'.repeat(76) + '\r\n').repeat(Math.ceil(4096 / 78))).subarray(0, 4096);
const env = (i: number) => ({
  from: 'alice@corp.example',
  recipients: [{ address: `user${i}@corp.example`, state: 'pending' as const, attempts: 0, origin: 'rcpt' as const }],
  client: { address: '192.0.2.1', listener: 'smtp' as const },
});

/** Messages per second and mean latency of `total` enqueues, `concurrency` at once. */
async function enqueueRate(spool: Spool, total: number, concurrency: number): Promise<{ rate: number; mean: number }> {
  let next = 0;
  let sum = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        const s = performance.now();
        await spool.enqueue(body, env(i));
        sum += performance.now() - s;
      }
    }),
  );
  return { rate: total / ((performance.now() - t0) / 1000), mean: (sum / total) * 1000 };
}

export async function benchQueue(): Promise<string> {
  const total = num('MESSAGES', 400);
  const pgServer = await startPostgres();
  const dirs: string[] = [];
  const pools: PgState[] = [];
  try {
    const make = async (kind: 'file' | 'postgres'): Promise<Spool> => {
      const dir = mkdtempSync(join(tmpdir(), 'postern-qbench-'));
      dirs.push(dir);
      if (kind === 'file') {
        const s = new Spool(dir);
        await s.init();
        return s;
      }
      const pg = new PgState({ url: pgServer.url, poolSize: 16, connectTimeoutMs: 5000, statementTimeoutMs: 30_000 }, silentLogger);
      pools.push(pg);
      await pg.migrate();
      await pg.query('TRUNCATE queue_messages');
      const s = new PgSpool(dir, { pg, nodeId: 'bench' });
      await s.init();
      return s;
    };
    const rows = [['backend', 'enqueue ×1 msg/s', 'mean', 'enqueue ×16 msg/s', 'mean', 'claim+remove msg/s']];
    const results: Record<string, number[]> = {};
    for (const kind of ['file', 'postgres'] as const) {
      const one = await enqueueRate(await make(kind), total, 1);
      const spool = await make(kind);
      const many = await enqueueRate(spool, total, 16);
      // The scheduler's bookkeeping per delivered message: the default reads the envelope and removes both files;
      // PostgreSQL claims (batches of 16, as with concurrency 16) and removes row and file.
      const t0 = performance.now();
      let done = 0;
      if (spool instanceof PgSpool) {
        for (;;) {
          const batch = await spool.claimDue(16);
          if (!batch.length) break;
          await Promise.all(batch.map((e) => spool.remove(e.id)));
          done += batch.length;
        }
      } else {
        const list = await spool.list();
        for (let i = 0; i < list.length; i += 16) {
          await Promise.all(list.slice(i, i + 16).map(async (e) => {
            await spool.readForAttempt(e.id);
            await spool.remove(e.id);
          }));
        }
        done = list.length;
      }
      const cycle = done / ((performance.now() - t0) / 1000);
      results[kind] = [one.rate, many.rate, cycle];
      rows.push([kind, one.rate.toFixed(0), us(one.mean), many.rate.toFixed(0), us(many.mean), cycle.toFixed(0)]);
    }
    const r = (i: number) => (results.postgres[i] / results.file[i]).toFixed(2);
    rows.push(['postgres/file', r(0), '', r(1), '', r(2)]);
    return table(rows);
  } finally {
    for (const p of pools) await p.close();
    await pgServer.destroy();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}
