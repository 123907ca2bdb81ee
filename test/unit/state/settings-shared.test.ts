/**
 * Runtime settings seen by two nodes (issue 16): the same cases against the SQLite store (two connections on one
 * settings.db, as the server and the CLI are today) and the PostgreSQL store (two nodes, each with its own dataDir,
 * on one database of the run's PostgreSQL), then what only the PostgreSQL store has: the first node seeds an empty
 * store, a stopped PostgreSQL is a TempFailure that changes nothing, and everything resumes when it is back.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import { TempFailure } from '../../../src/lib/errors.ts';
import { silentLogger } from '../../../src/lib/logger.ts';
import { SettingsError } from '../../../src/settings/errors.ts';
import { openSettings, type Settings } from '../../../src/settings/store.ts';
import { SHARED_SETTINGS_TABLES } from '../../../src/state/postgres/settings-sync.ts';
import { openState, type StateStore } from '../../../src/state/index.ts';
import { createTestDatabase, ownPostgres } from '../../helpers/pg-database.ts';
import { waitFor } from '../../helpers/wait.ts';

interface Node {
  settings: Settings;
  state?: StateStore;
  close(): Promise<void>;
}

interface Pair {
  a: Node;
  b: Node;
  close(): Promise<void>;
}

const tmp = () => mkdtempSync(join(tmpdir(), 'postern-state-'));
const pgConfig = (url: string) => ({ type: 'postgres' as const, url, poolSize: 4, connectTimeoutMs: 3000, statementTimeoutMs: 15000 });

async function pgNode(url: string, dir = tmp(), nodeId = dir): Promise<Node> {
  const settings = openSettings(dir);
  const state = openState(pgConfig(url), silentLogger, { nodeId });
  try {
    await state.start(settings);
  } catch (err) {
    await state.close();
    settings.close();
    throw err;
  }
  return {
    settings,
    state,
    async close() {
      await state.close();
      settings.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const backends: { name: string; open(t: { after(fn: () => unknown): void }): Promise<Pair> }[] = [
  {
    name: 'sqlite (one settings.db, two connections)',
    async open() {
      const dir = tmp();
      const a = openSettings(dir);
      const b = openSettings(dir);
      const node = (s: Settings): Node => ({ settings: s, close: async () => s.close() });
      return {
        a: node(a),
        b: node(b),
        async close() {
          a.close();
          b.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'postgres (two nodes, two dataDirs, one database)',
    async open(t) {
      const db = await createTestDatabase({ owner: t, prefix: 'settings' });
      const a = await pgNode(db.url);
      const b = await pgNode(db.url);
      return {
        a,
        b,
        async close() {
          await a.close();
          await b.close();
        },
      };
    },
  },
  {
    // What a cluster whose dataDir is one shared mount has, and what the CLI and the IMAP worker processes of one
    // node have: several processes syncing one settings.db.
    name: 'postgres (two nodes, one shared dataDir, one database)',
    async open(t) {
      const db = await createTestDatabase({ owner: t, prefix: 'settings_shared' });
      const dir = tmp();
      const a = await pgNode(db.url, dir, 'node-a');
      const b = await pgNode(db.url, dir, 'node-b');
      return {
        a,
        b,
        async close() {
          await b.state!.close();
          b.settings.close();
          await a.close();
        },
      };
    },
  },
];

for (const backend of backends) {
  describe(`settings on ${backend.name}`, () => {
    test('a domain added through A is a local domain on B', async (t) => {
      const p = await backend.open(t);
      t.after(() => p.close());
      await p.a.settings.apply(() => p.a.settings.addDomain({ name: 'shared.example', type: 'local' }));
      await waitFor('B to know shared.example', () => p.b.settings.isLocalDomain('shared.example'));
    });

    test('a key set through A is the value on B, and unset through B is the default on A', async (t) => {
      const p = await backend.open(t);
      t.after(() => p.close());
      assert.equal(p.b.settings.get('queue.lifetimeHours'), 96);
      await p.a.settings.apply(() => p.a.settings.set('queue.lifetimeHours', 12));
      await waitFor('B to read 12', () => p.b.settings.get('queue.lifetimeHours') === 12);
      await p.b.settings.apply(() => p.b.settings.unset('queue.lifetimeHours'));
      await waitFor('A to read the default again', () => p.a.settings.get('queue.lifetimeHours') === 96);
    });

    test('a refused change rejects with the SettingsError and changes nothing on either node', async (t) => {
      const p = await backend.open(t);
      t.after(() => p.close());
      await p.a.settings.apply(() => p.a.settings.addDomain({ name: 'one.example', type: 'local' }));
      await waitFor('B to know one.example', () => p.b.settings.isLocalDomain('one.example'));
      await assert.rejects(
        p.b.settings.apply(() => {
          p.b.settings.addDomain({ name: 'two.example', type: 'local' });
          p.b.settings.addDomain({ name: 'one.example', type: 'local' }); // exists: the whole change is refused
        }),
        (err: unknown) => err instanceof SettingsError && err.code === 'exists',
      );
      // A change that does go through afterwards shows that two.example was never stored.
      await p.a.settings.apply(() => p.a.settings.set('queue.lifetimeHours', 13));
      await waitFor('B to read 13', () => p.b.settings.get('queue.lifetimeHours') === 13);
      assert.equal(p.a.settings.getDomain('two.example'), null);
      assert.equal(p.b.settings.getDomain('two.example'), null);
    });

    test('addresses added through A and B at the same time are both kept, and the same one twice is refused once', async (t) => {
      const p = await backend.open(t);
      t.after(() => p.close());
      await p.a.settings.apply(() => p.a.settings.addDomain({ name: 'both.example', type: 'local' }));
      await waitFor('B to know both.example', () => p.b.settings.isLocalDomain('both.example'));
      const add = (n: Node, localPart: string) =>
        n.settings.apply(() => n.settings.addPseudonym({ localPart, domains: ['both.example'], target: { kind: 'user', name: 'alice' } }));
      const results = await Promise.allSettled([add(p.a, 'sales'), add(p.b, 'support'), add(p.a, 'info'), add(p.b, 'info')]);
      assert.equal(results[0].status, 'fulfilled');
      assert.equal(results[1].status, 'fulfilled');
      const info = results.slice(2);
      assert.equal(info.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(info));
      const refused = info.find((r): r is PromiseRejectedResult => r.status === 'rejected')!;
      assert.ok(refused.reason instanceof SettingsError && refused.reason.code === 'exists', String(refused.reason));
      const addresses = (s: Settings) => s.listPseudonyms().map((x) => x.address).sort();
      const want = ['info@both.example', 'sales@both.example', 'support@both.example'];
      await waitFor('A to list all three', () => JSON.stringify(addresses(p.a.settings)) === JSON.stringify(want));
      await waitFor('B to list all three', () => JSON.stringify(addresses(p.b.settings)) === JSON.stringify(want));
    });
  });
}

describe('settings on postgres only', () => {
  test('the shared tables have the columns of settings.db', async (t) => {
    const db = await createTestDatabase({ owner: t, prefix: 'columns' });
    const node = await pgNode(db.url);
    // Closed here, before the database goes: t.after hooks run in the order they were added, so the owner's DROP
    // ... WITH (FORCE) would come first and kill a query the node still had in flight (57P01, seen once in CI).
    try {
      for (const table of Object.keys(SHARED_SETTINGS_TABLES)) {
        const sqlite = (node.settings.db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name).sort();
        const r = await node.state!.pg!.query<{ column_name: string }>(
          'SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1',
          [table],
        );
        assert.deepEqual(r.rows.map((c) => c.column_name).sort(), sqlite, table);
      }
    } finally {
      await node.close();
    }
  });

  test('two nodes on one settings.db: changes through A while B reloads again and again are all kept, everywhere', async (t) => {
    const db = await createTestDatabase({ owner: t, prefix: 'shared_reload' });
    const dir = tmp();
    const a = await pgNode(db.url, dir, 'node-a');
    const b = await pgNode(db.url, dir, 'node-b');
    t.after(async () => {
      await b.state!.close();
      b.settings.close();
      await a.close();
    });
    // B reloads whenever a notification says a version above its own: one every few milliseconds from outside, so
    // B's reloads overlap A's changes (before the fix, B's reload wrote a copy without A's uncommitted change into
    // the shared file, and the next sync of A pushed that copy: the domain was deleted cluster-wide).
    const c = new pg.Client({ connectionString: db.url });
    c.on('error', () => undefined); // the database is dropped when the test ends
    await c.connect();
    t.after(() => c.end());
    let poking = true;
    const poke = (async () => {
      while (poking) await c.query("SELECT pg_notify('postern_settings', '999999999 poke')");
    })();
    const names = Array.from({ length: 25 }, (_, i) => `d${i}.example`);
    try {
      for (const name of names) await a.settings.apply(() => a.settings.addDomain({ name, type: 'relay', nexthop: '127.0.0.1:2525' }));
    } finally {
      poking = false;
      await poke;
    }
    const inPg = async () => (await c.query<{ name: string }>('SELECT name FROM domains ORDER BY name')).rows.map((r) => r.name);
    // Quiet now: whatever sync was still under way has ended, so what holds now holds for good.
    await a.settings.apply(() => a.settings.set('queue.lifetimeHours', 49));
    await waitFor('B to have the last change', () => b.settings.get('queue.lifetimeHours') === 49);
    assert.deepEqual(await inPg(), [...names].sort());
    for (const [who, n] of [['A', a], ['B', b]] as const) {
      assert.deepEqual(
        names.filter((d) => !n.settings.getDomain(d)),
        [],
        `${who} is missing domains`,
      );
    }
  });

  test('the first node seeds an empty store with its settings.db; a later node takes the store\'s', async (t) => {
    const db = await createTestDatabase({ owner: t, prefix: 'seed' });
    const dirA = tmp();
    const local = openSettings(dirA);
    local.addDomain({ name: 'old-single-node.example', type: 'local' });
    local.set('queue.lifetimeHours', 48);
    local.close();
    const dirB = tmp();
    const localB = openSettings(dirB);
    localB.addDomain({ name: 'only-on-b.example', type: 'local' });
    localB.close();
    const a = await pgNode(db.url, dirA);
    t.after(() => a.close());
    const b = await pgNode(db.url, dirB);
    t.after(() => b.close());
    assert.equal(b.settings.isLocalDomain('old-single-node.example'), true);
    assert.equal(b.settings.get('queue.lifetimeHours'), 48);
    assert.equal(b.settings.getDomain('only-on-b.example'), null);
  });

  describe('PostgreSQL stopped and started again', () => {
    const own = ownPostgres();

    test('a change is a TempFailure that changes nothing; reads go on; after the restart both nodes follow again', async (t) => {
      const db = await createTestDatabase({ owner: t, prefix: 'down', baseUrl: own.url });
      const a = await pgNode(db.url);
      t.after(() => a.close());
      const b = await pgNode(db.url);
      t.after(() => b.close());
      await a.settings.apply(() => a.settings.addDomain({ name: 'before.example', type: 'local' }));
      await waitFor('B to know before.example', () => b.settings.isLocalDomain('before.example'));

      await own.stop();
      await assert.rejects(
        a.settings.apply(() => a.settings.addDomain({ name: 'during.example', type: 'local' })),
        (err: unknown) => err instanceof TempFailure,
      );
      // Nothing half-done: A's own copy does not have it either, and both still answer from their copies.
      assert.equal(a.settings.getDomain('during.example'), null);
      assert.equal(a.settings.isLocalDomain('before.example'), true);
      assert.equal(b.settings.isLocalDomain('before.example'), true);
      const health = await a.state!.health();
      assert.equal(health?.ok, false);
      assert.ok(health?.error, 'health says why');

      await own.start();
      await waitFor('A to reach PostgreSQL again', async () => (await a.state!.health())?.ok === true, { timeoutMs: 60_000 });
      // B's LISTEN connection was dropped by the restart: it must have come back for B to see this.
      await waitFor(
        'a change through A to go through',
        async () => {
          try {
            await a.settings.apply(() => a.settings.addDomain({ name: 'after.example', type: 'local' }));
            return true;
          } catch (err) {
            if (err instanceof SettingsError) return true; // a previous attempt got through before its answer was lost
            return false;
          }
        },
        { timeoutMs: 60_000, intervalMs: 200 },
      );
      await waitFor('B to know after.example', () => b.settings.isLocalDomain('after.example'), { timeoutMs: 60_000 });
      assert.equal(b.settings.getDomain('during.example'), null);
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      const r = await c.query("SELECT name FROM domains WHERE name = 'during.example'");
      await c.end();
      assert.equal(r.rowCount, 0);
    });
  });
});
