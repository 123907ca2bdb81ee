/**
 * Prepared hot statements of the PostgreSQL state store (src/state/postgres/prepared.ts, PgState.query): a
 * registered text runs under its name, prepared once on the connection and reused; and a migration that changes a
 * table under a prepared statement (another node's, in a rolling upgrade) does not fail the query.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { silentLogger } from '../../../src/lib/logger.ts';
import { PgState, prepared } from '../../../src/state/postgres/pool.ts';
import { createTestDatabase } from '../../helpers/pg-database.ts';

async function onePool(t: { after(fn: () => unknown): void }, prefix: string): Promise<{ pg: PgState; url: string }> {
  const db = await createTestDatabase({ owner: t, prefix });
  // One connection: what the session has prepared is what the next query of the pool sees.
  const pg = new PgState({ url: db.url, poolSize: 1, connectTimeoutMs: 5000, statementTimeoutMs: 15000 }, silentLogger);
  t.after(() => pg.close());
  return { pg, url: db.url };
}

describe('prepared statements', () => {
  test('a registered statement is prepared once on its connection and reused; an unregistered one is not', async (t) => {
    const { pg } = await onePool(t, 'prep_reuse');
    await pg.query('CREATE TABLE t (id int PRIMARY KEY, v text)');
    const insert = prepared('INSERT INTO t (id, v) VALUES ($1, $2)');
    for (let i = 1; i <= 3; i++) await pg.query(insert, [i, `v${i}`]);
    await pg.query('SELECT count(*) FROM t WHERE id > $1', [0]);
    const r = await pg.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements');
    assert.deepEqual(r.rows.map((x) => x.statement), [insert], 'one server-side statement, for the registered text only');
    assert.equal((await pg.query<{ n: number }>('SELECT count(*) AS n FROM t')).rows[0]!.n, 3);
  });

  test('a table changed under a prepared statement: the query is answered, from the changed table', async (t) => {
    const { pg } = await onePool(t, 'prep_alter');
    await pg.query('CREATE TABLE t (id int PRIMARY KEY)');
    await pg.query('INSERT INTO t VALUES (1)');
    const all = prepared('SELECT * FROM t WHERE id = $1');
    assert.deepEqual((await pg.query(all, [1])).rows, [{ id: 1 }]);
    // What another node's migration does; the result type of the prepared SELECT * changes (SQLSTATE 0A000).
    await pg.query("ALTER TABLE t ADD COLUMN v text NOT NULL DEFAULT 'x'");
    assert.deepEqual((await pg.query(all, [1])).rows, [{ id: 1, v: 'x' }]);
    assert.deepEqual((await pg.query(all, [1])).rows, [{ id: 1, v: 'x' }]);
  });
});
