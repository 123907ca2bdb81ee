/**
 * The folder index contract (store/folder-index-backend.ts), the same cases against both backends: the SQLite file
 * per folder (the default) and PostgreSQL (state/postgres/mail-index.ts, on the server test/run.ts starts, a
 * database of its own: test/helpers/pg-database.ts). Then what only a shared index can promise: two "nodes" (two
 * connection pools) appending to one folder at the same time get distinct, increasing UIDs and MODSEQs.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TempFailure } from '../../../src/lib/errors.ts';
import { silentLogger } from '../../../src/lib/logger.ts';
import { PgState } from '../../../src/state/postgres/pool.ts';
import { PgFolderIndex } from '../../../src/state/postgres/mail-index.ts';
import { SqliteFolderIndexBackend, type FolderIndexBackend, type NewRow } from '../../../src/store/folder-index-backend.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/pg-database.ts';

interface Backend {
  name: string;
  /** A fresh folder's index; `again` opens the same folder once more (another handle, as another node would). */
  fresh(opts?: { historyLimit?: number }): Promise<{ index: FolderIndexBackend; again(): Promise<FolderIndexBackend> }>;
}

let dir: string;
let db: TestDatabase;
let pool: PgState;
const connect = (url: string) => new PgState({ url, poolSize: 4, connectTimeoutMs: 5000, statementTimeoutMs: 30_000 }, silentLogger);
let n = 0;

const backends: Backend[] = [
  {
    name: 'sqlite',
    async fresh(opts) {
      const d = join(dir, `f${++n}`);
      await import('node:fs/promises').then((fs) => fs.mkdir(d, { recursive: true }));
      return { index: SqliteFolderIndexBackend.open(d, opts), again: async () => SqliteFolderIndexBackend.open(d, opts) };
    },
  },
  {
    name: 'postgres',
    async fresh(opts) {
      const key = `john.smith/.F${++n}`;
      return { index: await PgFolderIndex.open(pool, key, opts), again: () => PgFolderIndex.open(pool, key, opts) };
    },
  },
];

const row = (base: string, extra: Partial<NewRow> = {}): NewRow => ({ base, name: `${base},S=100:2,`, size: 100, internalDate: 1_700_000_000_000, keywords: '', ...extra });

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-index-contract-'));
  db = await createTestDatabase({ prefix: 'mail_index' });
  pool = connect(db.url);
  await pool.migrate();
});

after(async () => {
  await pool?.close();
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

for (const b of backends) {
  describe(`folder index contract: ${b.name}`, { timeout: 120_000 }, () => {
    it('a new folder has a UIDVALIDITY, UIDNEXT 1 and no rows; reopening keeps them', async () => {
      const { index, again } = await b.fresh();
      const m = await index.meta();
      assert.ok(m.uidValidity > 0);
      assert.equal(m.uidNext, 1);
      assert.ok(m.modseq > 0);
      assert.deepEqual(await index.rows(), []);
      const other = await again();
      assert.equal((await other.meta()).uidValidity, m.uidValidity);
    });

    it('adds get the next UIDs in the order given; fields round-trip; UIDNEXT and MODSEQ move', async () => {
      const { index } = await b.fresh();
      const m0 = await index.meta();
      const uids = await index.apply({ add: [row('b1', { keywords: 'NonJunk', saveDate: 1_700_000_001_000 }), row('b2', { size: 7, internalDate: 5 })] });
      assert.deepEqual(uids, [1, 2]);
      const m1 = await index.meta();
      assert.equal(m1.uidNext, 3);
      assert.equal(m1.modseq, m0.modseq + 1);
      const rows = await index.rows();
      assert.deepEqual(rows, [
        { uid: 1, base: 'b1', name: 'b1,S=100:2,', size: 100, internalDate: 1_700_000_000_000, keywords: 'NonJunk', modseq: m1.modseq, saveDate: 1_700_000_001_000 },
        { uid: 2, base: 'b2', name: 'b2,S=100:2,', size: 7, internalDate: 5, keywords: '', modseq: m1.modseq, saveDate: rows[1]!.saveDate },
      ]);
      assert.ok(rows[1]!.saveDate! > 1_700_000_000_000, 'a save date absent means now');
      assert.equal(await index.uidOfBase('b2'), 2);
      assert.equal(await index.uidOfBase('nope'), undefined);
      assert.equal((await index.row(1))?.base, 'b1');
      assert.equal(await index.row(9), undefined);
    });

    it('a given UID is kept and UIDNEXT rises past it; uidNext raises it further', async () => {
      const { index } = await b.fresh();
      assert.deepEqual(await index.apply({ add: [row('x', { uid: 10 })] }), [10]);
      assert.equal((await index.meta()).uidNext, 11);
      await index.apply({ uidNext: 20, uidlistSignature: 'sig-1' });
      const m = await index.meta();
      assert.equal(m.uidNext, 20);
      assert.equal(m.uidlistSignature, 'sig-1');
      assert.deepEqual(await index.apply({ add: [row('y')] }), [20]);
    });

    it('an update changes name and keywords and gives only that row the new MODSEQ; no change, no new MODSEQ', async () => {
      const { index } = await b.fresh();
      await index.apply({ add: [row('a'), row('b')] });
      const before = await index.meta();
      await index.apply({ update: [{ uid: 2, name: 'b,S=100:2,FS', keywords: '$Label1' }] });
      const after = await index.meta();
      assert.equal(after.modseq, before.modseq + 1);
      const [r1, r2] = await index.rows();
      assert.equal(r1!.modseq, before.modseq);
      assert.deepEqual([r2!.name, r2!.keywords, r2!.modseq], ['b,S=100:2,FS', '$Label1', after.modseq]);
      await index.apply({ update: [{ uid: 99, name: 'z', keywords: '' }] });
      assert.equal((await index.meta()).modseq, after.modseq);
    });

    it('expunges are remembered for VANISHED (EARLIER) (RFC 7162 §3.2.5.1); a UID is never handed out again', async () => {
      const { index } = await b.fresh();
      await index.apply({ add: [row('a'), row('b'), row('c')] });
      const m = await index.meta();
      await index.apply({ remove: [3, 1] });
      assert.deepEqual(await index.vanishedSince(m.modseq), [1, 3]);
      assert.deepEqual(await index.vanishedSince(m.modseq + 1), []);
      assert.equal(await index.vanishedSince(m.vanishedFloor - 1), undefined, 'below the floor: the §3.2.5.2 fallback');
      assert.deepEqual((await index.rows()).map((r) => r.uid), [2]);
      assert.deepEqual(await index.apply({ add: [row('d')] }), [4]);
    });

    it('a bounded history raises the floor when it forgets', async () => {
      const { index } = await b.fresh({ historyLimit: 10 });
      await index.apply({ add: Array.from({ length: 30 }, (_, i) => row(`m${i}`)) });
      const m0 = await index.meta();
      for (let uid = 1; uid <= 20; uid++) await index.apply({ remove: [uid] });
      const m = await index.meta();
      assert.ok(m.vanishedFloor > m0.modseq, 'the floor rose');
      assert.equal(await index.vanishedSince(m0.modseq), undefined);
      const recent = await index.vanishedSince(m.vanishedFloor);
      assert.ok(recent && recent.length > 0 && recent.length <= 10, `kept ${String(recent?.length)}`);
      assert.deepEqual(recent, Array.from({ length: recent.length }, (_, i) => 21 - recent.length + i));
    });

    it('a reset (another UIDVALIDITY) empties the rows and the expunge history', async () => {
      const { index } = await b.fresh();
      await index.apply({ add: [row('a'), row('b')] });
      await index.apply({ remove: [1] });
      const m = await index.meta();
      await index.apply({ reset: { uidValidity: m.uidValidity + 5 }, add: [row('c')] });
      const r = await index.meta();
      assert.equal(r.uidValidity, m.uidValidity + 5);
      assert.deepEqual((await index.rows()).map((x) => [x.uid, x.base]), [[1, 'c']]);
      assert.equal(r.uidNext, 2);
      assert.deepEqual(await index.vanishedSince(r.vanishedFloor), []);
      assert.ok(r.modseq > m.modseq, 'MODSEQs never go down (RFC 7162 §3.1.1)');
    });

    it('SEARCH header fields: given with the add, set later, gone with the message', async () => {
      const { index } = await b.fresh();
      await index.apply({ add: [row('a', { headers: [['subject', 'Hello'], ['from', 'anna@example.com']] }), row('b')] });
      assert.deepEqual(await index.searchHeaders(1), [['subject', 'Hello'], ['from', 'anna@example.com']]);
      assert.equal(await index.searchHeaders(2), undefined);
      await index.setSearchHeaders([[2, [['subject', 'Später']]], [99, [['subject', 'none']]]]);
      assert.deepEqual([...(await index.allSearchHeaders()).entries()].sort((x, y) => x[0] - y[0]), [
        [1, [['subject', 'Hello'], ['from', 'anna@example.com']]],
        [2, [['subject', 'Später']]],
      ]);
      await index.apply({ remove: [1] });
      assert.equal(await index.searchHeaders(1), undefined);
    });

    it('cached ENVELOPE / BODYSTRUCTURE: set one, keep the other', async () => {
      const { index } = await b.fresh();
      await index.apply({ add: [row('a')] });
      assert.deepEqual(await index.cached(1), {});
      await index.setCached(1, { envelope: ['x', null] });
      await index.setCached(1, { bodystructure: { type: 'text' } });
      assert.deepEqual(await index.cached(1), { envelope: ['x', null], bodystructure: { type: 'text' } });
      assert.deepEqual(await index.cached(42), {});
    });

    it('\\Recent is claimed once (RFC 3501 §2.3.2); the directory signature is kept', async () => {
      const { index, again } = await b.fresh();
      assert.equal(await index.firstRecentUid(), 1);
      assert.equal(await index.firstRecentUid(5), 1);
      const other = await again();
      assert.equal(await other.firstRecentUid(7), 5);
      // The caller's range is [returned, claimUpTo): empty when all below 3 was claimed (a backend may answer with
      // any value at or above 3 then, e.g. one it knows firstrecent reached without asking again).
      assert.ok((await index.firstRecentUid(3)) >= 3, 'nothing below 3 is recent any more');
      assert.equal(await index.firstRecentUid(), 7, 'a claim never moves it down');
      assert.equal(await index.firstRecentUid(6), 7);
      assert.equal(await other.firstRecentUid(9), 7);
      assert.ok((await index.firstRecentUid(8)) >= 8, 'claimed by the other handle');
      await index.setDirsSignature('1.2:3.4');
      assert.equal((await other.meta()).dirsSignature, '1.2:3.4');
    });

    it('two handles on one folder (two processes or nodes) see each other\'s changes', async () => {
      const { index, again } = await b.fresh();
      const other = await again();
      await index.apply({ add: [row('a')] });
      assert.deepEqual(await other.apply({ add: [row('b')] }), [2]);
      assert.deepEqual((await index.rows()).map((r) => r.uid), [1, 2]);
    });
  });
}

describe('folder index on PostgreSQL across nodes', { timeout: 180_000 }, () => {
  it('concurrent APPENDs through two nodes get distinct, increasing UIDs and MODSEQs', async () => {
    // Two pools: two nodes, each with its own connections, taking turns only through PostgreSQL's row lock.
    const poolB = connect(db.url);
    try {
      const a = await PgFolderIndex.open(pool, 'anna.bianchi/.Concurrent');
      const b = await PgFolderIndex.open(poolB, 'anna.bianchi/.Concurrent');
      assert.equal(a.created !== b.created, true, 'one of them created it');
      const per = 40;
      const t0 = Date.now();
      const results = await Promise.all(
        [a, b].flatMap((idx, node) =>
          Array.from({ length: per }, async (_, i) => {
            const [uid] = await idx.apply({ add: [row(`n${node}-${i}`)] });
            return { node, i, uid: uid! };
          }),
        ),
      );
      const ms = Date.now() - t0;
      const uids = results.map((r) => r.uid).sort((x, y) => x - y);
      assert.deepEqual(uids, Array.from({ length: 2 * per }, (_, i) => i + 1), 'every UID once, none skipped');
      const rows = await a.rows();
      assert.equal(rows.length, 2 * per);
      const modseqs = rows.map((r) => r.modseq);
      assert.equal(new Set(modseqs).size, modseqs.length, 'one MODSEQ per transaction');
      // UIDs are handed out in commit order: a higher UID never has a lower MODSEQ.
      for (let i = 1; i < rows.length; i++) assert.ok(rows[i]!.modseq > rows[i - 1]!.modseq);
      assert.equal((await b.meta()).uidNext, 2 * per + 1);
      console.log(`# ${2 * per} concurrent single-message APPENDs through two pools: ${ms} ms`);
    } finally {
      await poolB.close();
    }
  });

  it('PostgreSQL unreachable: every call is a TempFailure, nothing crashes', async () => {
    const dead = connect('postgres://postern:x@127.0.0.1:1/none');
    try {
      await assert.rejects(PgFolderIndex.open(dead, 'x/.y'), TempFailure);
    } finally {
      await dead.close();
    }
  });
});
