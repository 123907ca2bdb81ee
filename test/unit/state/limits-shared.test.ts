/**
 * Send-limit counters with sessions on two nodes (issue 16): the same cases against the embedded counters (one
 * node, limits.db: both "nodes" are the one SendLimits, as every session of a single server is) and the PostgreSQL
 * counters (two SendLimits, each with its own pool, on one database), then what only PostgreSQL has: sessions of
 * one user racing on two nodes at once get exactly the limit, and a check PostgreSQL cannot answer is 451 4.3.0.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { SmtpError } from '../../../src/lib/errors.ts';
import { createLogger, type Logger } from '../../../src/lib/logger.ts';
import { PgSendCounters } from '../../../src/limits/pg-counters.ts';
import { SendLimits } from '../../../src/limits/send-limits.ts';
import { SqliteCounterStore } from '../../../src/limits/store.ts';
import { openSettings, type Settings } from '../../../src/settings/store.ts';
import { PgState } from '../../../src/state/postgres/pool.ts';
import { createTestDatabase, ownPostgres } from '../../helpers/pg-database.ts';
import { waitFor } from '../../helpers/wait.ts';

interface Pair {
  a: SendLimits;
  b: SendLimits;
  settings: Settings;
  close(): Promise<void>;
}

function logLines() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: createLogger('debug', stream), lines };
}

function settingsWith(values: Record<string, unknown>): { settings: Settings; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'postern-limits-'));
  const settings = openSettings(dir);
  for (const [k, v] of Object.entries(values)) settings.set(k as never, v as never);
  return { settings, dir };
}

async function pgNode(url: string, settings: Settings, log: Logger, id: string): Promise<{ limits: SendLimits; pool: PgState }> {
  const pool = new PgState({ url, poolSize: 6, connectTimeoutMs: 2000, statementTimeoutMs: 15000 }, log, `limits ${id}`);
  await pool.migrate();
  return { pool, limits: new SendLimits({ settings, log, shared: new PgSendCounters(pool), nodeId: id }) };
}

type Open = (t: { after(fn: () => unknown): void }, values: Record<string, unknown>, baseUrl?: string) => Promise<Pair>;

const openSqlite: Open = async (_t, values) => {
  const { settings, dir } = settingsWith(values);
  const { log } = logLines();
  const one = new SendLimits({ settings, log, store: SqliteCounterStore.open(dir) });
  return {
    a: one,
    b: one,
    settings,
    async close() {
      one.close();
      settings.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
};

const openPg: Open = async (t, values, baseUrl) => {
  const db = await createTestDatabase({ owner: t, prefix: 'limits', ...(baseUrl ? { baseUrl } : {}) });
  // Both nodes read the same settings (the shared settings are tested in settings-shared.test.ts).
  const { settings, dir } = settingsWith(values);
  const { log } = logLines();
  const a = await pgNode(db.url, settings, log, 'node-a');
  const b = await pgNode(db.url, settings, log, 'node-b');
  return {
    a: a.limits,
    b: b.limits,
    settings,
    async close() {
      for (const n of [a, b]) {
        n.limits.close();
        await n.limits.settled();
        await n.pool.close();
      }
      settings.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
};

const backends: { name: string; open: Open }[] = [
  { name: 'sqlite (one node: limits.db)', open: openSqlite },
  { name: 'postgres (two nodes, one database)', open: openPg },
];

let sessions = 0;
/** The sessions' logger: the alert line goes there (the session's client and id are on it in the server). */
const sessionLog = logLines();
const subject = (login: string, ip = '198.51.100.9') => ({ id: `s${++sessions}`, login, ip, log: sessionLog.log });

/** One whole message of `n` recipients through `l`; the first refusal, or null when DATA was answered 250. */
async function send(l: SendLimits, login: string, n = 1, ip?: string, node?: string): Promise<SmtpError | null> {
  const s = subject(login, ip);
  if (node) s.log = s.log.child({ node });
  const mail = await l.checkMail(s);
  if (mail) return mail;
  for (let i = 0; i < n; i++) {
    const rcpt = await l.checkRcpt(s);
    if (rcpt) {
      l.release(s.id);
      return rcpt;
    }
  }
  l.accepted(s.id);
  // The commit of the shared counters runs behind the 250; the next check must see it, as a later session would.
  await l.settled();
  return null;
}

for (const backend of backends) {
  describe(`send limits on ${backend.name}`, () => {
    test('a limit of 4 messages an hour holds over sessions on A and B: 4 accepted, the fifth 451 4.7.1', async (t) => {
      const p = await backend.open(t, { 'smtp.sendLimit.messagesPerHour': 4 });
      t.after(() => p.close());
      assert.equal(await send(p.a, 'john.smith'), null);
      assert.equal(await send(p.b, 'john.smith'), null);
      assert.equal(await send(p.a, 'John.Smith'), null);
      assert.equal(await send(p.b, 'john.smith'), null);
      const fifth = await send(p.a, 'john.smith');
      assert.equal(fifth?.code, 451);
      assert.match(fifth!.message, /^4\.7\.1 Sending limit reached \(4 messages per hour\)/);
      assert.equal((await send(p.b, 'john.smith'))?.code, 451, 'refused on the other node too');
      assert.equal(await send(p.b, 'jane.doe', 1, '203.0.113.7'), null, 'another user (from elsewhere) is not affected');
    });

    test('an open transaction on A counts on B until it is released', async (t) => {
      const p = await backend.open(t, { 'smtp.sendLimit.messagesPerHour': 2 });
      t.after(() => p.close());
      const s1 = subject('mary');
      const s2 = subject('mary');
      assert.equal(await p.a.checkMail(s1), null);
      assert.equal(await p.a.checkMail(s2), null);
      const s3 = subject('mary');
      assert.equal((await p.b.checkMail(s3))?.code, 451, 'two messages are under way on A');
      p.a.release(s1.id);
      await p.a.settled();
      assert.equal(await p.b.checkMail(s3), null, 'the released share is free again');
    });

    test('recipients count: a limit of 5 recipients refuses the sixth RCPT TO, on either node', async (t) => {
      const p = await backend.open(t, { 'smtp.sendLimit.recipientsPerHour': 5 });
      t.after(() => p.close());
      assert.equal(await send(p.a, 'bob', 3), null);
      const s = subject('bob');
      assert.equal(await p.b.checkMail(s), null, 'messages are not at their limit');
      assert.equal(await p.b.checkRcpt(s), null);
      assert.equal(await p.b.checkRcpt(s), null);
      const sixth = await p.b.checkRcpt(s);
      assert.equal(sixth?.code, 451);
      assert.match(sixth!.message, /5 recipients per hour/);
    });

    test('status on either node shows the usage of both; a reset through B lets the user send through A again', async (t) => {
      const p = await backend.open(t, { 'smtp.sendLimit.messagesPerHour': 2 });
      t.after(() => p.close());
      assert.equal(await send(p.a, 'carl'), null);
      assert.equal(await send(p.b, 'carl'), null);
      assert.equal((await send(p.a, 'carl'))?.code, 451);
      for (const l of [p.a, p.b]) {
        await l.fresh();
        const u = l.status().users.find((x) => x.name === 'carl');
        assert.deepEqual([u?.messages, u?.overLimit], [2, true]);
      }
      assert.equal(await p.b.reset('user', 'Carl'), true);
      assert.equal(await send(p.a, 'carl'), null);
    });

    test('the alert of a user at the limit is logged once, however many refusals on however many nodes', async (t) => {
      const p = await backend.open(t, { 'smtp.sendLimit.messagesPerHour': 1 });
      t.after(() => p.close());
      assert.equal(await send(p.a, 'dora', 1, undefined, backend.name), null);
      for (const l of [p.a, p.b, p.a, p.b]) assert.equal((await send(l, 'dora', 1, undefined, backend.name))?.code, 451);
      await p.a.settled();
      await p.b.settled();
      const alerts = sessionLog.lines.filter((l) => l.alert === true && l.user === 'dora' && l.node === backend.name);
      assert.equal(alerts.length, 1, JSON.stringify(alerts));
      await p.b.fresh();
      assert.deepEqual(
        p.b.status().alerts.filter((x) => x.name === 'dora').map((x) => x.reason),
        ['user_messages'],
      );
    });
  });
}

describe('send limits on postgres only', () => {
  test('ten sessions of one user at the same moment, five on each node, limit 4: exactly 4 accepted', async (t) => {
    const p = await openPg(t, { 'smtp.sendLimit.messagesPerHour': 4 });
    t.after(() => p.close());
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => send(i % 2 ? p.b : p.a, 'eve', 1, `192.0.2.${i + 1}`)));
    assert.equal(results.filter((r) => r === null).length, 4, results.map((r) => r?.message ?? 'ok').join(' | '));
    assert.ok(results.every((r) => r === null || r.code === 451));
    await p.a.fresh();
    assert.equal(p.a.status({ all: true }).users.find((u) => u.name === 'eve')?.messages, 4);
  });

  describe('PostgreSQL stopped and started again', () => {
    const own = ownPostgres();

    test('a check that cannot be answered is 451 4.3.0 (never a pass), and checks work again when it is back', async (t) => {
      const p = await openPg(t, { 'smtp.sendLimit.messagesPerHour': 3 }, own.url);
      t.after(() => p.close());
      assert.equal(await send(p.a, 'frank'), null);
      await own.stop();
      const down = await p.b.checkMail(subject('frank'));
      assert.equal(down?.code, 451);
      assert.match(down!.message, /^4\.3\.0 /);
      const rcptLess = subject('frank');
      assert.equal((await p.a.checkMail(rcptLess))?.code, 451);
      assert.equal(await p.a.checkRcpt(rcptLess), null, 'no transaction was opened: nothing to count');
      await own.start();
      await waitFor(
        'checks to be answered again',
        async () => (await send(p.b, 'frank')) === null,
        { timeoutMs: 60_000, intervalMs: 200 },
      );
      assert.equal(await send(p.a, 'frank'), null);
      assert.equal((await send(p.a, 'frank'))?.code, 451, 'the counts from before the outage still count');
    });
  });
});
