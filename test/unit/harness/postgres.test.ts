/**
 * The PostgreSQL harness (test/harness/postgres.ts) and the per-test database helper: what the postgres backend's
 * tests rely on. The shared server of the run (POSTERN_TEST_PG_URL) for the database helper, and an instance of
 * this file's own for stop/crash/start, which would break every other file's tests on the shared one.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import pg from 'pg';
import { serviceStatus } from '../../harness/control.ts';
import { createTestDatabase, ownPostgres, testPgUrl } from '../../helpers/pg-database.ts';
import { waitFor } from '../../helpers/wait.ts';

async function query<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  c.on('error', () => {});
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end().catch(() => {});
  }
}

describe('the run PostgreSQL and createTestDatabase', () => {
  test('each call makes a database of its own, 15 or newer, that the next call does not see', async (t) => {
    const a = await createTestDatabase({ owner: t, prefix: 'harness' });
    const b = await createTestDatabase({ owner: t, prefix: 'harness' });
    assert.notEqual(a.name, b.name);
    const [v] = await query<{ server_version_num: string }>(a.url, 'SHOW server_version_num');
    assert.ok(Number(v.server_version_num) >= 150000, `server version ${v.server_version_num}`);
    await query(a.url, 'CREATE TABLE only_in_a (x int)');
    const inB = await query<{ n: string }>(b.url, "SELECT count(*) AS n FROM pg_tables WHERE tablename = 'only_in_a'");
    assert.equal(inB[0].n, '0');
    await a.drop();
    const left = await query<{ n: string }>(testPgUrl(), 'SELECT count(*) AS n FROM pg_database WHERE datname = $1', [a.name]);
    assert.equal(left[0].n, '0');
  });

  test('the control endpoint knows it as "postgres" and reports it running', async () => {
    assert.deepEqual(await serviceStatus('postgres'), { running: true });
  });

  test('TCP needs the password: a wrong one is refused', async () => {
    const u = new URL(testPgUrl());
    u.password = 'not-the-password';
    await assert.rejects(query(u.toString(), 'SELECT 1'), /password authentication failed/);
  });
});

describe('an instance of its own: stop, crash and start', () => {
  const own = ownPostgres();

  test('stop ends every session; start brings back what was committed', async () => {
    const c = new pg.Client({ connectionString: own.url });
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));
    await c.connect();
    await c.query('CREATE TABLE kept (x int)');
    await c.query('INSERT INTO kept VALUES (1)');
    await own.stop();
    assert.equal(own.running, false);
    // A fast shutdown terminates the session (57P01 admin_shutdown) rather than waiting for the client to leave.
    await waitFor('the client to see its session end', () => errors.length > 0, { timeoutMs: 30_000 });
    await assert.rejects(query(own.url, 'SELECT 1'));
    await own.start();
    const rows = await query<{ x: number }>(own.url, 'SELECT x FROM kept');
    assert.deepEqual(rows, [{ x: 1 }]);
    await c.end().catch(() => {});
  });

  test('after a SIGKILL of the server, start recovers the committed rows from the WAL', async () => {
    await query(own.url, 'CREATE TABLE crashed (x int)');
    await query(own.url, 'INSERT INTO crashed SELECT generate_series(1, 100)');
    await own.crash();
    assert.equal(own.running, false);
    await own.start();
    const [n] = await query<{ n: string }>(own.url, 'SELECT count(*) AS n FROM crashed');
    assert.equal(n.n, '100');
  });
});
