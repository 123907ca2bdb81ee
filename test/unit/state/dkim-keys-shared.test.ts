/**
 * DKIM signing keys seen by two nodes (issue 16): the same cases against the key files of one dataDir (two
 * FileDkimKeys on it, as the server and the CLI are on one node) and the PostgreSQL table (two pools on one
 * database of the run's PostgreSQL, as two nodes), each signing through a real DkimSigner whose signature mailauth
 * verifies against the record the other side printed. Then what only PostgreSQL has: a store that cannot answer
 * makes the signer reject with a TempFailure (the DATA hook's 451), never a message sent unsigned, and signing
 * resumes when PostgreSQL is back.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { dkimVerify } from 'mailauth';
import { DkimKeyError, DkimSigner, type DkimRecord } from '../../../src/delivery/dkim.ts';
import { FileDkimKeys, rotationSelector, type DkimKeyStore } from '../../../src/delivery/dkim-keys.ts';
import { TempFailure } from '../../../src/lib/errors.ts';
import { silentLogger } from '../../../src/lib/logger.ts';
import { PgDkimKeys } from '../../../src/state/postgres/dkim-keys.ts';
import { PgState } from '../../../src/state/postgres/pool.ts';
import { createTestDatabase, ownPostgres } from '../../helpers/pg-database.ts';
import { waitFor } from '../../helpers/wait.ts';

// 1024 bits: the cases are about where keys live, not their strength, and RSA generation is slow on a loaded machine.
const BITS = 1024;

function message(from: string): Buffer {
  return Buffer.from(
    [`From: <${from}>`, 'To: bob@remote.test', 'Subject: report', 'Date: Mon, 04 May 2026 10:00:00 +0000', `Message-ID: <${Math.random()}@x>`, '', 'Numbers.', ''].join('\r\n'),
  );
}

/** Verifies `signed` with only `records` published; the DKIM results' status and signing domains. */
async function verify(signed: Buffer, records: DkimRecord[]): Promise<{ status: string; domain: string; selector?: string }[]> {
  const txt = new Map(records.map((r) => [r.name, [r.strings]]));
  const res = await dkimVerify(signed, {
    resolver: async (name: string) => {
      const v = txt.get(name.replace(/\.$/, ''));
      if (!v) throw Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
      return v;
    },
  });
  return res.results.map((r) => ({ status: r.status.result, domain: r.signingDomain, selector: r.selector }));
}

interface Pair {
  a: DkimKeyStore;
  b: DkimKeyStore;
}

const pgConfig = (url: string) => ({ url, poolSize: 4, connectTimeoutMs: 3000, statementTimeoutMs: 15000 });

async function pgPair(t: { after(fn: () => unknown): void }, baseUrl?: string): Promise<Pair & { pools: PgState[] }> {
  const db = await createTestDatabase({ owner: t, prefix: 'dkim', ...(baseUrl ? { baseUrl } : {}) });
  const pa = new PgState(pgConfig(db.url), silentLogger, 'node a');
  const pb = new PgState(pgConfig(db.url), silentLogger, 'node b');
  t.after(async () => {
    await pa.close();
    await pb.close();
  });
  await pa.migrate();
  return { a: new PgDkimKeys(pa), b: new PgDkimKeys(pb), pools: [pa, pb] };
}

const backends: { name: string; open(t: { after(fn: () => unknown): void }): Promise<Pair> }[] = [
  {
    name: 'key files (one dataDir, two readers)',
    async open(t) {
      const dir = mkdtempSync(join(tmpdir(), 'postern-dkimkeys-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      return { a: new FileDkimKeys(dir), b: new FileDkimKeys(dir) };
    },
  },
  { name: 'postgres (two nodes, one database)', open: (t) => pgPair(t) },
];

const signer = (keys: DkimKeyStore) => new DkimSigner({ dataDir: '/nonexistent', log: silentLogger, keys });

for (const backend of backends) {
  describe(`DKIM keys on ${backend.name}`, () => {
    test('a key generated through A is listed and signs on B, and the signature verifies with A\'s record', async (t) => {
      const p = await backend.open(t);
      const made = await p.a.generate('Corp.Example', { bits: BITS, selector: 'k1' });
      assert.deepEqual([made.domain, made.selector, made.bits, made.replaced], ['corp.example', 'k1', BITS, []]);
      const listed = await p.b.list();
      assert.deepEqual(listed.map((k) => [k.domain, k.selector, k.bits]), [['corp.example', 'k1', BITS]]);
      assert.equal((await p.b.record('corp.example'))?.value, made.value);
      const signed = await signer(p.b).sign(message('alice@corp.example'));
      assert.deepEqual(await verify(signed, [made]), [{ status: 'pass', domain: 'corp.example', selector: 'k1' }]);
      // Relaxed alignment: the parent domain's key signs a subdomain's mail; an unrelated domain stays unsigned.
      const sub = await signer(p.b).sign(message('bob@sales.corp.example'));
      assert.deepEqual(await verify(sub, [made]), [{ status: 'pass', domain: 'corp.example', selector: 'k1' }]);
      const other = message('eve@other.example');
      assert.equal((await signer(p.b).sign(other)).equals(other), true);
    });

    test('a second key is refused without force on either side; a rotation replaces it everywhere', async (t) => {
      const p = await backend.open(t);
      const first = await p.a.generate('corp.example', { bits: BITS, selector: 'k1' });
      await assert.rejects(p.b.generate('corp.example', { bits: BITS, selector: 'k2' }), (e: unknown) => e instanceof DkimKeyError && e.reason === 'exists');
      await assert.rejects(p.a.generate('corp.example', { bits: BITS }), (e: unknown) => e instanceof DkimKeyError && e.reason === 'exists');
      const selector = rotationSelector([first.selector]);
      const second = await p.b.generate('corp.example', { bits: BITS, selector, force: true });
      assert.deepEqual(second.replaced, ['k1']);
      assert.deepEqual((await p.a.list()).map((k) => k.selector), [selector]);
      const signed = await signer(p.a).sign(message('alice@corp.example'));
      assert.deepEqual(await verify(signed, [first, second]), [{ status: 'pass', domain: 'corp.example', selector }]);
    });

    test('two first keys for one domain made at once through A and B: exactly one is kept', async (t) => {
      const p = await backend.open(t);
      const results = await Promise.allSettled([p.a.generate('race.example', { bits: BITS, selector: 'ka' }), p.b.generate('race.example', { bits: BITS, selector: 'ka' })]);
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results));
      const refused = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')!;
      assert.ok(refused.reason instanceof DkimKeyError && refused.reason.reason === 'exists', String(refused.reason));
      const kept = results.find((r): r is PromiseFulfilledResult<Awaited<ReturnType<DkimKeyStore['generate']>>> => r.status === 'fulfilled')!.value;
      const signed = await signer(p.b).sign(message('x@race.example'));
      assert.deepEqual(await verify(signed, [kept]), [{ status: 'pass', domain: 'race.example', selector: 'ka' }]);
    });

    test('a key deleted through B no longer signs on A; a bad size or selector is refused as invalid', async (t) => {
      const p = await backend.open(t);
      await p.a.generate('corp.example', { bits: BITS, selector: 'k1' });
      assert.deepEqual(await p.b.remove('corp.example'), ['k1']);
      assert.deepEqual(await p.b.remove('corp.example'), []);
      assert.equal(await p.a.record('corp.example'), null);
      const m = message('alice@corp.example');
      assert.equal((await signer(p.a).sign(m)).equals(m), true);
      await assert.rejects(p.a.generate('corp.example', { bits: 512 }), (e: unknown) => e instanceof DkimKeyError && e.reason === 'invalid');
      await assert.rejects(p.a.generate('corp.example', { selector: 'two.labels' }), (e: unknown) => e instanceof DkimKeyError && e.reason === 'invalid');
      assert.deepEqual(await p.b.list(), []);
    });
  });
}

describe('rotationSelector', () => {
  test('today\'s default, or a numbered one when a current key already has it', () => {
    const now = new Date('2026-12-02T10:00:00Z');
    assert.equal(rotationSelector(['k1'], now), 'postern-20261202');
    assert.equal(rotationSelector(['postern-20261202'], now), 'postern-20261202-2');
    assert.equal(rotationSelector(['postern-20261202', 'postern-20261202-2'], now), 'postern-20261202-3');
  });
});

describe('DKIM keys on postgres only: PostgreSQL stopped and started again', () => {
  const own = ownPostgres();

  test('signing rejects with a TempFailure while PostgreSQL is down (never unsigned) and signs again once it is back', async (t) => {
    const p = await pgPair(t, own.url);
    const made = await p.a.generate('corp.example', { bits: BITS, selector: 'k1' });
    const s = signer(p.b);
    assert.equal((await verify(await s.sign(message('alice@corp.example')), [made]))[0]?.status, 'pass');

    await own.stop();
    await assert.rejects(s.sign(message('alice@corp.example')), (e: unknown) => e instanceof TempFailure);
    // A domain without a key cannot be told from one with a key while the store is away: refused as well.
    await assert.rejects(s.sign(message('eve@other.example')), (e: unknown) => e instanceof TempFailure);
    await assert.rejects(p.a.generate('other.example', { bits: BITS }), (e: unknown) => e instanceof TempFailure);
    await assert.rejects(p.a.list(), (e: unknown) => e instanceof TempFailure);

    await own.start();
    const signed = await waitFor(
      'B to sign again',
      async () => {
        try {
          return await s.sign(message('alice@corp.example'));
        } catch (err) {
          if (err instanceof TempFailure) return undefined;
          throw err;
        }
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    assert.deepEqual(await verify(signed, [made]), [{ status: 'pass', domain: 'corp.example', selector: 'k1' }]);
  });
});
