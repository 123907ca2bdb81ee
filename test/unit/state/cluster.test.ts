/**
 * Nodes that know each other and work that runs once cluster-wide (issue 16, src/cluster), on a database of the
 * run's PostgreSQL: two registries see each other and a stopped node leaves; of two nodes claiming a job at once
 * exactly one gets it, nobody runs it again within the interval, and a node that died holding it loses it to
 * another once its lease is over; two PeriodicJobs behind the gate run their job once between them.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NodeRegistry } from '../../../src/cluster/registry.ts';
import { RunOnce } from '../../../src/cluster/run-once.ts';
import { PeriodicJob } from '../../../src/lib/periodic.ts';
import { silentLogger } from '../../../src/lib/logger.ts';
import { PgState } from '../../../src/state/postgres/pool.ts';
import { createTestDatabase } from '../../helpers/pg-database.ts';
import { waitFor } from '../../helpers/wait.ts';

async function pgFor(t: { after(fn: () => unknown): void }, prefix: string): Promise<PgState> {
  const db = await createTestDatabase({ owner: t, prefix });
  const pg = new PgState({ url: db.url, poolSize: 4, connectTimeoutMs: 5000, statementTimeoutMs: 15000 }, silentLogger);
  t.after(() => pg.close());
  await pg.migrate();
  return pg;
}

describe('node registry', () => {
  test('two nodes list each other, each itself first; a node that stops is no longer listed', async (t) => {
    const pg = await pgFor(t, 'nodes');
    const a = new NodeRegistry({ pg, log: silentLogger, id: 'node-a', address: 'a.corp.example', version: '1.2.3' });
    const b = new NodeRegistry({ pg, log: silentLogger, id: 'node-b', address: 'b.corp.example', version: '1.2.3' });
    await a.start();
    await b.start();
    t.after(() => a.stop());
    t.after(() => b.stop());
    const fromB = await b.list();
    assert.deepEqual(
      fromB.map((n) => [n.id, n.address, n.version, n.alive]),
      [
        ['node-b', 'b.corp.example', '1.2.3', true],
        ['node-a', 'a.corp.example', '1.2.3', true],
      ],
    );
    await a.stop();
    assert.deepEqual((await b.list()).map((n) => n.id), ['node-b']);
  });

  test('a node whose heartbeat stopped (killed) is listed as gone', async (t) => {
    const pg = await pgFor(t, 'nodes_gone');
    const a = new NodeRegistry({ pg, log: silentLogger, id: 'node-a', address: 'a', version: '1', heartbeatMs: 1000 });
    await a.beat(); // registered, then never beats again: what a SIGKILL leaves
    await pg.query("UPDATE cluster_nodes SET heartbeat_at = now() - interval '1 minute'");
    const b = new NodeRegistry({ pg, log: silentLogger, id: 'node-b', address: 'b', version: '1', heartbeatMs: 1000 });
    await b.start();
    t.after(() => b.stop());
    const listed = await b.list();
    assert.deepEqual(listed.map((n) => [n.id, n.alive]), [['node-b', true], ['node-a', false]]);
  });
});

describe('run once cluster-wide', () => {
  test('of two nodes claiming at once exactly one gets the job, and nobody gets it again within the interval', async (t) => {
    const pg = await pgFor(t, 'runonce');
    const a = new RunOnce(pg, 'node-a');
    const b = new RunOnce(pg, 'node-b');
    const claims = await Promise.all([a.claim('sweep', 3_600_000), b.claim('sweep', 3_600_000), a.claim('other', 3_600_000)]);
    assert.equal(claims.slice(0, 2).filter(Boolean).length, 1, JSON.stringify(claims));
    assert.equal(claims[2], true, 'another job is claimed on its own');
    const winner = claims[0] ? a : b;
    await winner.done('sweep');
    // Done, but it ran within the hour: the other node's tick a little later must not run it again.
    assert.equal(await a.claim('sweep', 3_600_000), false);
    assert.equal(await b.claim('sweep', 3_600_000), false);
  });

  test('a node that died holding the job loses it to another once the lease is over', async (t) => {
    const pg = await pgFor(t, 'runonce_lease');
    const dead = new RunOnce(pg, 'node-dead', 60_000);
    const alive = new RunOnce(pg, 'node-alive', 60_000);
    assert.equal(await dead.claim('sweep', 1000), true);
    // Past the interval but within the lease: still held.
    await pg.query("UPDATE cluster_jobs SET last_run_at = now() - interval '10 seconds'");
    assert.equal(await alive.claim('sweep', 1000), false);
    // The lease is over (it never called done()).
    await pg.query("UPDATE cluster_jobs SET lease_until = now() - interval '1 second'");
    assert.equal(await alive.claim('sweep', 1000), true);
    const [row] = (await pg.query<{ holder: string }>("SELECT holder FROM cluster_jobs WHERE name = 'sweep'")).rows;
    assert.equal(row.holder, 'node-alive');
  });

  test('two PeriodicJobs behind the gate run their job once between them', async (t) => {
    const pg = await pgFor(t, 'runonce_job');
    let runs = 0;
    let claimed = 0;
    const job = (id: string) =>
      new PeriodicJob(
        async () => {
          runs++;
          return id;
        },
        () => 'failed',
        3_600_000,
        {
          name: 'trace-retention',
          claim: (n, i) => new RunOnce(pg, id).claim(n, i).finally(() => claimed++),
          done: (n) => new RunOnce(pg, id).done(n),
        },
      );
    const a = job('node-a');
    const b = job('node-b');
    a.start();
    b.start();
    t.after(() => a.stop());
    t.after(() => b.stop());
    await waitFor('the job to have run and been released', async () => {
      const r = await pg.query<{ holder: string | null }>("SELECT holder FROM cluster_jobs WHERE name = 'trace-retention'");
      // Both nodes have asked (one got it), and the one that got it has run it and let go.
      return claimed === 2 && r.rows.length === 1 && r.rows[0].holder === null;
    });
    assert.equal(runs, 1);
  });
});
