/**
 * A database of its own for a test (or a test file) on the PostgreSQL test/run.ts starts (POSTERN_TEST_PG_URL):
 * test files run concurrently on one server, so none may share tables with another.
 *
 *   const db = await createTestDatabase({ owner: t });   // CREATE DATABASE, dropped when t ends
 *   db.url                                                // postgres://…/<name>, for the config under test
 *
 * Without POSTERN_TEST_PG_URL this throws (it does not skip): a run that should test the postgres backend and
 * cannot says so.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { after, before } from 'node:test';
import { type ChildOwner } from '../harness/children.ts';
import { startPostgres, type Postgres } from '../harness/postgres.ts';

export interface TestDatabase {
  name: string;
  url: string;
  /** DROP DATABASE … WITH (FORCE): ends the sessions still connected (a killed node's pool) first. */
  drop(): Promise<void>;
}

/** The maintenance URL of the shared test server. */
export function testPgUrl(): string {
  const url = process.env.POSTERN_TEST_PG_URL;
  if (!url) {
    throw new Error(
      'POSTERN_TEST_PG_URL is not set: run the test through test/run.ts, which starts a PostgreSQL when a selected ' +
        'test file mentions POSTERN_TEST_PG or test/helpers/pg-database',
    );
  }
  return url;
}

/** Runs one statement on the maintenance database of `baseUrl` (CREATE/DROP DATABASE cannot run in a pool's transaction). */
async function admin(baseUrl: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: baseUrl, connectionTimeoutMillis: 30_000 });
  c.on('error', () => {});
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end().catch(() => {});
  }
}

export async function createTestDatabase(opts: { owner?: ChildOwner; prefix?: string; baseUrl?: string } = {}): Promise<TestDatabase> {
  const baseUrl = opts.baseUrl ?? testPgUrl();
  // Lower case letters, digits and _ only: the name goes into SQL as an identifier without quoting rules to get wrong.
  const name = `${(opts.prefix ?? 't').toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 30)}_${randomBytes(6).toString('hex')}`;
  await admin(baseUrl, `CREATE DATABASE ${name}`);
  const u = new URL(baseUrl);
  u.pathname = `/${name}`;
  let dropped = false;
  const db: TestDatabase = {
    name,
    url: u.toString(),
    async drop() {
      if (dropped) return;
      dropped = true;
      await admin(baseUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
  opts.owner?.after(() => db.drop().catch(() => {}));
  return db;
}

/**
 * A PostgreSQL of the calling describe block's own, started in its before() and destroyed in its after(): for the
 * tests that stop, crash or restart the server, which on the run's shared one would break every other file meanwhile.
 *
 *   const own = ownPostgres();          // at describe level
 *   … await own.stop(); await own.start(); createTestDatabase({ baseUrl: own.url }) …
 *
 * The returned object forwards to the instance started by the hook, so it may be captured before the hook ran.
 */
export function ownPostgres(): Postgres {
  let server: Postgres | undefined;
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.destroy();
  });
  const started = (): Postgres => {
    if (!server) throw new Error('ownPostgres(): used outside the tests of the describe block that called it');
    return server;
  };
  return new Proxy({} as Postgres, {
    get(_target, key) {
      const s = started();
      const value: unknown = Reflect.get(s, key);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(s) : value;
    },
  });
}
