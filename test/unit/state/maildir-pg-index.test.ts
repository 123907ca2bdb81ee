/**
 * The Maildir store on the PostgreSQL index (state/postgres/maildir-pg-index.ts), on the PostgreSQL test/run.ts
 * starts (a database of its own, test/helpers/pg-database.ts): two "nodes" — two MaildirMailbox objects, each with
 * its own connection pool, its own node-local copy directory and its own change hub, as two processes on two hosts
 * have — over one mail directory. What they must agree on comes from PostgreSQL, with the real message files:
 * concurrent APPENDs get distinct increasing UIDs and each UID reads the same file on both; a delivery into new/ on
 * one and APPENDs on the other at once all get UIDs; STORE and EXPUNGE on one are seen on the other with the same
 * MODSEQs; no dovecot-uidlist and no SQLite file is written into the shared directory; and while the database
 * refuses connections the store answers TempFailure (IMAP NO [UNAVAILABLE]) and leaves no file behind, then works
 * again by itself. The junk retention sweep of the shared directory, started on both nodes at once, runs on one.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { TempFailure } from '../../../src/lib/errors.ts';
import { silentLogger } from '../../../src/lib/logger.ts';
import { MaildirPgIndex } from '../../../src/state/postgres/maildir-pg-index.ts';
import { PgState } from '../../../src/state/postgres/pool.ts';
import { INDEX_FILE } from '../../../src/store/folder-index.ts';
import { MaildirMailbox } from '../../../src/store/maildir-mailbox.ts';
import { MaildirStore } from '../../../src/store/maildir.ts';
import type { MailboxOwner } from '../../../src/store/types.ts';
import { EventHub, FolderEvents } from '../../../src/store/watch.ts';
import { PgMailEvents } from '../../../src/state/postgres/mail-events.ts';
import type { FolderChange } from '../../../src/store/mailbox.ts';
import { JunkRetention } from '../../../src/store/retention.ts';
import { RunOnce } from '../../../src/cluster/run-once.ts';
import { waitFor } from '../../helpers/wait.ts';
import { createTestDatabase, testPgUrl, type TestDatabase } from '../../helpers/pg-database.ts';

const john: MailboxOwner = { kind: 'user', login: 'john.smith' };
const msg = (tag: string) => Buffer.from(`From: a@example.com\r\nTo: john@example.com\r\nSubject: ${tag}\r\nMessage-ID: <${tag}@test>\r\n\r\nbody of ${tag}\r\n`);
const tagOf = (b: Buffer) => /^Subject: (.*)\r$/m.exec(b.toString('latin1'))?.[1];

let dir: string;
let db: TestDatabase;
const pools: PgState[] = [];
const nodes: MaildirMailbox[] = [];
const indexes = new Map<MaildirMailbox, MaildirPgIndex>();
const feeds: PgMailEvents[] = [];
let store: MaildirStore;

function node(name: string): MaildirMailbox {
  const pool = new PgState({ url: db.url, poolSize: 4, connectTimeoutMs: 3000, statementTimeoutMs: 30_000 }, silentLogger);
  pools.push(pool);
  const pgIndex = new MaildirPgIndex({ db: pool, mailRoot: store.root, cacheDir: join(dir, `${name}-data`, 'index-cache') });
  // Each node its own hub: changes reach the other only through PostgreSQL (and the files), as across hosts.
  const m = new MaildirMailbox({ store, quotaBytes: () => 0, log: silentLogger, events: new FolderEvents(), debounceMs: 10, autocreate: false, pgIndex });
  nodes.push(m);
  indexes.set(m, pgIndex);
  return m;
}

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: testPgUrl(), connectionTimeoutMillis: 30_000 });
  c.on('error', () => {});
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end().catch(() => {});
  }
}

let A: MaildirMailbox;
let B: MaildirMailbox;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-maildir-pg-'));
  db = await createTestDatabase({ prefix: 'maildir_pg' });
  store = new MaildirStore({ root: join(dir, 'mail'), hostname: 'mx.example.com' });
  const migrator = new PgState({ url: db.url, poolSize: 1, connectTimeoutMs: 5000, statementTimeoutMs: 30_000 }, silentLogger);
  await migrator.migrate();
  await migrator.close();
  A = node('a');
  B = node('b');
});

after(async () => {
  for (const f of feeds) await f.close();
  for (const m of nodes) m.close();
  for (const p of pools) await p.close().catch(() => undefined);
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Every UID of INBOX reads, on both nodes, the file that was appended or delivered under it. */
async function sameOnBoth(expected: Map<number, string>): Promise<void> {
  const [a, b] = [await A.openFolder(john, 'INBOX'), await B.openFolder(john, 'INBOX')];
  assert.equal(a.uidValidity, b.uidValidity);
  assert.deepEqual(a.messages.map((m) => m.uid), b.messages.map((m) => m.uid));
  assert.deepEqual(a.messages.map((m) => m.modseq), b.messages.map((m) => m.modseq), 'the same MODSEQs on both nodes');
  for (const [uid, tag] of expected) {
    assert.equal(tagOf(await A.readMessage(john, 'INBOX', uid)), tag, `UID ${uid} on A`);
    assert.equal(tagOf(await B.readMessage(john, 'INBOX', uid)), tag, `UID ${uid} on B`);
  }
}

describe('the Maildir store on the PostgreSQL index, two nodes on one mail directory', { timeout: 240_000 }, () => {
  const expected = new Map<number, string>();

  it('concurrent APPENDs through both get distinct, increasing UIDs; each UID is the same file on both', async () => {
    const per = 25;
    const run = async (m: MaildirMailbox, name: string) => {
      const uids: number[] = [];
      for (let i = 0; i < per; i++) {
        const r = await m.append(john, 'INBOX', msg(`${name}${i}`), []);
        expected.set(r.uid, `${name}${i}`);
        uids.push(r.uid);
      }
      return uids;
    };
    const [ua, ub] = await Promise.all([run(A, 'A'), run(B, 'B')]);
    for (const u of [ua, ub]) for (let i = 1; i < u.length; i++) assert.ok(u[i]! > u[i - 1]!, `increasing per node: ${u.join(',')}`);
    const all = [...ua, ...ub];
    assert.equal(new Set(all).size, all.length, `distinct: ${all.join(',')}`);
    assert.equal(expected.size, 2 * per);
    await sameOnBoth(expected);
    // Nothing of the single-host index in the shared directory: the UIDs are PostgreSQL's.
    const inbox = store.folderPath(john, 'INBOX');
    assert.equal(existsSync(join(inbox, 'dovecot-uidlist')), false);
    assert.equal(existsSync(join(inbox, INDEX_FILE)), false);
    assert.equal((await readdir(join(inbox, 'cur'))).length, 2 * per);
  });

  it('a delivery into new/ on A while B APPENDs: every message gets one UID, the same on both', async () => {
    const before = (await A.openFolder(john, 'INBOX')).uidNext;
    const delivered: string[] = [];
    await Promise.all([
      (async () => {
        for (let i = 0; i < 15; i++) {
          // As the delivery agent does: the file into new/, then the node's sessions are told.
          await store.deliver(john, msg(`D${i}`));
          delivered.push(`D${i}`);
          A.notifyDelivered(john, 'INBOX');
          if (i % 3 === 0) await A.openFolder(john, 'INBOX');
        }
      })(),
      (async () => {
        for (let i = 0; i < 15; i++) expected.set((await B.append(john, 'INBOX', msg(`C${i}`), [])).uid, `C${i}`);
      })(),
    ]);
    const a = await A.openFolder(john, 'INBOX');
    const fresh = a.messages.filter((m) => m.uid >= before);
    assert.equal(fresh.length, 30, 'all 30 new messages listed');
    for (const m of fresh) {
      const tag = tagOf(await A.readMessage(john, 'INBOX', m.uid))!;
      if (tag.startsWith('D')) expected.set(m.uid, tag);
    }
    assert.deepEqual([...expected.values()].filter((t) => t.startsWith('D')).sort(), delivered.sort());
    await sameOnBoth(expected);
  });

  it('STORE on A (flags and keywords) and EXPUNGE on B are seen on the other with the same MODSEQ', async () => {
    const [u1, u2] = [...expected.keys()].sort((x, y) => x - y);
    const r = await A.storeFlags(john, 'INBOX', [u1!], 'add', ['\\Flagged', '$Label1']);
    const modseq = r.modseqs.get(u1!)!;
    const onB = (await B.openFolder(john, 'INBOX')).messages.find((m) => m.uid === u1)!;
    assert.deepEqual([...onB.flags].sort(), ['$Label1', '\\Flagged']);
    assert.equal(onB.modseq, modseq);
    // UNCHANGEDSINCE on B compares with A's MODSEQ (RFC 7162 §3.1.3).
    const refused = await B.storeFlags(john, 'INBOX', [u1!], 'add', ['\\Seen'], { unchangedSince: modseq - 1 });
    assert.deepEqual(refused.modified, [u1]);
    const before = (await A.openFolder(john, 'INBOX')).modseq;
    assert.deepEqual(await B.expunge(john, 'INBOX', [u2!]), [u2]);
    expected.delete(u2!);
    const a = await A.openFolder(john, 'INBOX');
    assert.equal(a.messages.some((m) => m.uid === u2), false);
    assert.deepEqual(await A.vanishedSince(john, 'INBOX', before), [u2]);
    await sameOnBoth(expected);
  });

  it('MOVE on B into another folder: A sees it gone from INBOX and there under the UID B reported', async () => {
    await A.createFolder(john, 'Archive');
    const uid = Math.max(...expected.keys());
    const moved = await B.copy(john, 'INBOX', [uid], 'Archive', { move: true });
    assert.equal(moved.mapping.length, 1);
    const tag = expected.get(uid)!;
    expected.delete(uid);
    const arch = await A.openFolder(john, 'Archive');
    assert.deepEqual(arch.messages.map((m) => m.uid), [moved.mapping[0]![1]]);
    assert.equal(arch.uidValidity, moved.uidValidity);
    assert.equal(tagOf(await A.readMessage(john, 'Archive', moved.mapping[0]![1])), tag);
    await sameOnBoth(expected);
  });

  it('a write that was all that happened updates the copy without the catch-up; interleaved writes of both leave both copies right', async () => {
    await A.createFolder(john, 'FF');
    const ff = indexes.get(A)!;
    const before = ff.fastForwards;
    const uids: number[] = [];
    for (let i = 0; i < 4; i++) uids.push((await A.append(john, 'FF', msg(`F${i}`), [])).uid);
    await A.storeFlags(john, 'FF', [uids[0]!], 'add', ['\\Seen', '$Work']);
    // Alone on the folder: each APPEND and the STORE found the copy at the state just before the write.
    assert.ok(ff.fastForwards - before >= 5, `fast-forwards: ${ff.fastForwards - before}`);
    // Both nodes at once: the copy of one is often behind the other's write and must pull instead.
    await Promise.all([
      (async () => {
        for (let i = 0; i < 8; i++) {
          uids.push((await A.append(john, 'FF', msg(`FA${i}`), [])).uid);
          await A.storeFlags(john, 'FF', [uids[i % 4]!], i % 2 ? 'remove' : 'add', ['\\Flagged']);
        }
      })(),
      (async () => {
        for (let i = 0; i < 8; i++) {
          uids.push((await B.append(john, 'FF', msg(`FB${i}`), ['$B'])).uid);
          await B.storeFlags(john, 'FF', [uids[(i + 1) % 4]!], 'add', [`$K${i}`]);
        }
      })(),
    ]);
    assert.equal(new Set(uids).size, uids.length, `distinct UIDs: ${uids.join(',')}`);
    // A node with an empty copy reads everything from PostgreSQL: the truth both copies must equal.
    const C = node('c');
    const view = async (m: MaildirMailbox) =>
      (await m.openFolder(john, 'FF')).messages.map((x) => ({ uid: x.uid, modseq: x.modseq, flags: [...x.flags].sort() }));
    const truth = await view(C);
    assert.equal(truth.length, 20);
    assert.deepEqual(await view(A), truth, 'A');
    assert.deepEqual(await view(B), truth, 'B');
    assert.equal((await A.openFolder(john, 'FF')).modseq, (await C.openFolder(john, 'FF')).modseq);
    assert.equal((await B.openFolder(john, 'FF')).uidNext, (await C.openFolder(john, 'FF')).uidNext);
  });

  it("with the LISTEN feed, reads of a folder nobody else changed skip PostgreSQL; the other node's change is seen all the same", async () => {
    // Two more nodes, each with its change hub fed by a real LISTEN connection (PgMailEvents), as server.ts wires them.
    const fed = async (name: string, hearsAll: boolean) => {
      const m = node(name);
      const hub = (m as unknown as { events: FolderEvents }).events;
      const events = new PgMailEvents({ url: db.url, db: pools.at(-1)!, node: name, mailRoot: store.root, log: silentLogger, onDelivered: () => undefined, hubs: { folder: hub, list: new EventHub() } });
      await events.start();
      feeds.push(events);
      const untrust = indexes.get(m)!.trustChanges({ generation: () => events.generation(), hub, hearsAll });
      return { m, idx: indexes.get(m)!, events, untrust };
    };
    // D as a process that hears only of the folders it watches (imap.workers), E as one that hears of all.
    const D = await fed('d', false);
    const E = await fed('e', true);
    await D.m.createFolder(john, 'Trust');
    const u1 = (await D.m.append(john, 'Trust', msg('T1'), [])).uid;
    await D.m.append(john, 'Trust', msg('T2'), []);
    const heard: FolderChange[] = [];
    const offs = [D.m.watch(john, 'Trust', () => undefined), E.m.watch(john, 'Trust', (c) => heard.push(c))];
    try {
      await E.m.openFolder(john, 'Trust');
      const trusted = E.idx.trustedPulls;
      for (let i = 0; i < 5; i++) assert.equal((await E.m.openFolder(john, 'Trust')).messages.length, 2);
      assert.ok(E.idx.trustedPulls - trusted >= 4, `reads answered from the copy: ${E.idx.trustedPulls - trusted}`);
      // A change on D: E hears of it, and its next read pulls it, with D's MODSEQ (not one of its own for a rename
      // it would otherwise find in cur/ and record as new).
      const r = await D.m.storeFlags(john, 'Trust', [u1], 'add', ['\\Flagged']);
      await waitFor("E hears of D's STORE", () => heard.some((c) => c.kind === 'flags'));
      const onE = (await E.m.openFolder(john, 'Trust')).messages.find((x) => x.uid === u1)!;
      assert.deepEqual([...onE.flags], ['\\Flagged']);
      assert.equal(onE.modseq, r.modseqs.get(u1));
      // D trusts its copy only while a session there watches the folder.
      await D.m.openFolder(john, 'Trust');
      const dTrusted = D.idx.trustedPulls;
      await D.m.openFolder(john, 'Trust');
      assert.equal(D.idx.trustedPulls, dTrusted + 1, 'watched on D: from the copy');
      offs[0]!();
      await D.m.openFolder(john, 'Trust');
      await D.m.openFolder(john, 'Trust');
      assert.equal(D.idx.trustedPulls, dTrusted + 1, 'no longer watched on D: from PostgreSQL');
      // The LISTEN connection gone: nothing is trusted, every read asks PostgreSQL.
      await E.events.close();
      const before = E.idx.trustedPulls;
      await E.m.openFolder(john, 'Trust');
      await E.m.openFolder(john, 'Trust');
      assert.equal(E.idx.trustedPulls, before);
    } finally {
      for (const off of offs) off();
      D.untrust();
      E.untrust();
    }
  });

  it('while PostgreSQL refuses connections: TempFailure, no file left behind; then it works by itself', async () => {
    const inbox = store.folderPath(john, 'INBOX');
    const files = (await readdir(join(inbox, 'cur'))).length;
    await admin(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS false`);
    await admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${db.name}'`);
    try {
      await assert.rejects(A.openFolder(john, 'INBOX'), TempFailure);
      await assert.rejects(B.append(john, 'INBOX', msg('lost?'), []), TempFailure);
      await assert.rejects(A.storeFlags(john, 'INBOX', [[...expected.keys()][0]!], 'add', ['\\Seen']), TempFailure);
      assert.equal((await readdir(join(inbox, 'cur'))).length, files, 'the refused APPEND left no file');
      // What is on disk still reads (FETCH of a known message needs no database).
      const [uid, tag] = [...expected.entries()][0]!;
      assert.equal(tagOf(await A.readMessage(john, 'INBOX', uid)), tag);
    } finally {
      await admin(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS true`);
    }
    const r = await B.append(john, 'INBOX', msg('after'), []);
    expected.set(r.uid, 'after');
    await sameOnBoth(expected);
  });

  it('the junk retention sweep started on both nodes at once runs on one of them (cluster_jobs)', async () => {
    await A.createFolder(john, 'Junk');
    for (let i = 0; i < 3; i++) await A.append(john, 'Junk', msg(`J${i}`), [], new Date(Date.now() - 60 * 86_400_000));
    const claims: [string, boolean][] = [];
    const expunged = new Map<string, number>();
    const sweepers = [
      ['A', A, pools[0]!],
      ['B', B, pools[1]!],
    ].map(([name, m, pool]) => {
      const n = name as string;
      const mb = m as MaildirMailbox;
      const once = new RunOnce(pool as PgState, `node-${n}`);
      return new JunkRetention({
        store,
        mailbox: {
          openFolder: (o, f) => mb.openFolder(o, f),
          expunge: async (o, f, u) => {
            const r = await mb.expunge(o, f, u);
            expunged.set(n, (expunged.get(n) ?? 0) + r.length);
            return r;
          },
        },
        settings: { get: (() => 30) as never, effectiveUser: (() => ({ spamRetentionDays: 30 })) as never },
        log: silentLogger,
        intervalMs: 3_600_000,
        gate: {
          claim: async (job, ms) => {
            const r = await once.claim(job, ms);
            claims.push([n, r]);
            return r;
          },
          done: (job) => once.done(job),
        },
      });
    });
    try {
      for (const s of sweepers) s.start();
      await waitFor('both nodes asked for the sweep', () => claims.length === 2 || undefined, { timeoutMs: 60_000 });
      assert.equal(claims.filter(([, mine]) => mine).length, 1, `one claim given: ${JSON.stringify(claims)}`);
      const winner = claims.find(([, mine]) => mine)![0];
      await waitFor('the sweep expunged the old Junk', async () => ((await B.openFolder(john, 'Junk')).messages.length === 0) || undefined, { timeoutMs: 60_000 });
      assert.deepEqual([...expunged.entries()], [[winner, 3]]);
    } finally {
      for (const s of sweepers) await s.stop();
    }
  });
});
