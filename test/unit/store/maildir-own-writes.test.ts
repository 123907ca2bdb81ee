/**
 * The folder sync's "anything new?" check and this process's own writes (issue 11, IMAP logout=0): a STORE, an
 * EXPUNGE or a MOVE out of a folder marks cur/ (src/store/dir-signature.ts) so that the next command need not list
 * it, and a change by anyone else — another process, a program writing the Maildir by hand, in the same clock tick
 * as our own write or not — is still seen by the next access. The listings are counted on fs/promises' readdir.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execChild } from '../../harness/children.ts';
import { silentLogger } from '../../../src/lib/logger.ts';
import { dirsState, markDir, markersWork } from '../../../src/store/dir-signature.ts';
import { MaildirMailbox } from '../../../src/store/maildir-mailbox.ts';
import { MaildirStore } from '../../../src/store/maildir.ts';
import type { MailboxOwner } from '../../../src/store/types.ts';
import { MaildirPgIndex } from '../../../src/state/postgres/maildir-pg-index.ts';
import { PgState } from '../../../src/state/postgres/pool.ts';
import { createTestDatabase } from '../../helpers/pg-database.ts';

const alice: MailboxOwner = { kind: 'user', login: 'alice' };
const message = (s: string) => Buffer.from(`From: bob@example.org\r\nSubject: ${s}\r\n\r\nbody ${s}\r\n`);

// Every readdir of a cur/ directory, counted (the ESM binding maildir-mailbox.ts imported follows the CJS one).
const fsp = createRequire(import.meta.url)('node:fs/promises') as typeof import('node:fs/promises');
const realReaddir = fsp.readdir;
let curListings = 0;
(fsp as { readdir: unknown }).readdir = (path: unknown, ...rest: unknown[]) => {
  if (String(path).endsWith('/cur')) curListings++;
  return (realReaddir as (...a: unknown[]) => unknown)(path, ...rest);
};
syncBuiltinESMExports();

type Backend = 'sqlite' | 'postgres';

/**
 * Three messages in alice's INBOX, and `mailbox()` for another instance over the same store: another process on
 * the same host (sqlite), or on the same node (postgres: the shared index in PostgreSQL, the node's copy in one
 * cache directory, its own connection pool).
 */
async function fixture(t: { after(fn: () => Promise<void>): void }, backend: Backend = 'sqlite') {
  const dir = await mkdtemp(join(tmpdir(), 'postern-own-writes-'));
  const store = new MaildirStore({ root: join(dir, 'mail'), hostname: 'mail.corp.example' });
  const opened: MaildirMailbox[] = [];
  const pools: PgState[] = [];
  const db = backend === 'postgres' ? await createTestDatabase({ prefix: 'own_writes' }) : undefined;
  if (db) {
    const migrator = new PgState({ url: db.url, poolSize: 1, connectTimeoutMs: 5000, statementTimeoutMs: 30_000 }, silentLogger);
    await migrator.migrate();
    await migrator.close();
  }
  t.after(async () => {
    for (const m of opened) m.close();
    for (const p of pools) await p.close().catch(() => undefined);
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });
  const mailbox = () => {
    let pgIndex: MaildirPgIndex | undefined;
    if (db) {
      const pool = new PgState({ url: db.url, poolSize: 2, connectTimeoutMs: 5000, statementTimeoutMs: 30_000 }, silentLogger);
      pools.push(pool);
      pgIndex = new MaildirPgIndex({ db: pool, mailRoot: store.root, cacheDir: join(dir, 'index-cache') });
    }
    const m = new MaildirMailbox({ store, quotaBytes: () => 0, log: silentLogger, debounceMs: 10, ...(pgIndex ? { pgIndex } : {}) });
    opened.push(m);
    return m;
  };
  const mb = mailbox();
  for (const s of ['a', 'b', 'c']) await mb.append(alice, 'INBOX', message(s), []);
  const inbox = store.folderPath(alice);
  return { mb, mailbox, inbox };
}

/** Counts the cur/ listings `fn` makes. */
async function listings(fn: () => Promise<unknown>): Promise<number> {
  const before = curListings;
  await fn();
  return curListings - before;
}

test('the probe finds markers working here; a marker is kept and the next entry change replaces it', async (t) => {
  const { inbox } = await fixture(t);
  assert.equal(markersWork(inbox), true, 'this test machine (ext4/tmpfs) keeps explicit nanosecond mtimes');
  assert.equal(markDir(join(inbox, 'cur')), true);
  const marked = dirsState(inbox)!;
  assert.notEqual(marked.cur.mtimeNs, marked.cur.ctimeNs);
  await writeFile(join(inbox, 'cur', '1700000000.M1P1Q1.other,S=1:2,'), 'x');
  const changed = dirsState(inbox)!;
  assert.notEqual(changed.signature, marked.signature);
  assert.equal(changed.cur.mtimeNs, changed.cur.ctimeNs);
});

for (const backend of ['sqlite', 'postgres'] as const) {
  test(`${backend}: our own STORE, EXPUNGE and MOVE do not make the next access list cur/ again`, async (t) => {
    const { mb, mailbox, inbox } = await fixture(t, backend);
    if (!markersWork(inbox)) return t.skip('no markers on this file system');
    await mb.openFolder(alice, 'INBOX');
    await mb.openFolder(alice, 'INBOX'); // after the APPENDs: listed once more, then marked
    assert.equal(await listings(() => mb.openFolder(alice, 'INBOX')), 0);
    const [u1, u2, u3] = (await mb.openFolder(alice, 'INBOX')).messages.map((m) => m.uid);
    for (let i = 0; i < 5; i++) {
      assert.equal(await listings(() => mb.storeFlags(alice, 'INBOX', [u1!], i % 2 ? 'remove' : 'add', ['\\Seen'])), 0);
      assert.equal(await listings(() => mb.openFolder(alice, 'INBOX')), 0, `open after STORE ${i}`);
    }
    await mb.storeFlags(alice, 'INBOX', [u2!], 'add', ['\\Deleted']);
    assert.deepEqual(await mb.expunge(alice, 'INBOX'), [u2]);
    assert.equal(await listings(() => mb.openFolder(alice, 'INBOX')), 0, 'open after EXPUNGE');
    await mb.createFolder(alice, 'Archive');
    await mb.copy(alice, 'INBOX', [u3!], 'Archive', { move: true });
    const after = await mb.openFolder(alice, 'INBOX');
    assert.deepEqual(after.messages.map((m) => m.uid), [u1]);
    // Nothing was lost on the way: a new instance (no remembered state of ours) lists and finds the same.
    const fresh = await mailbox().openFolder(alice, 'INBOX');
    assert.deepEqual(fresh.messages.map((m) => [m.uid, m.flags]), after.messages.map((m) => [m.uid, m.flags]));
  });

  test(`${backend}: a change by another process right after our own STORE (the same clock tick) is seen by the next access`, async (t) => {
    const { mb, inbox } = await fixture(t, backend);
    await mb.openFolder(alice, 'INBOX');
    const msgs = (await mb.openFolder(alice, 'INBOX')).messages;
    const ours = msgs[0]!.uid;
    const theirs = msgs[1]!.uid;
    // The file of message "b" (the second UID), found by its content: names do not sort in delivery order (the
    // microseconds after M are not zero-padded, so M99999 sorts after M100000 of the same second).
    const names = await readdir(join(inbox, 'cur'));
    const theirName = names.find((n) => readFileSync(join(inbox, 'cur', n), 'utf8').includes('Subject: b\r\n'))!;
    const theirBase = theirName.replace(/:2,.*$/, '');
    for (let round = 0; round < 10; round++) {
      // Our rename in cur/, then at once one by another program: on a coarse clock both share cur/'s mtime tick.
      await mb.storeFlags(alice, 'INBOX', [ours], round % 2 ? 'remove' : 'add', ['\\Flagged']);
      const other = (await readdir(join(inbox, 'cur'))).find((n) => n.startsWith(theirBase))!;
      const seenByHand = round % 2 === 0;
      const target = `${theirBase}:2,${seenByHand ? 'S' : ''}`;
      if (round % 3 === 2) await execChild('mv', [join(inbox, 'cur', other), join(inbox, 'cur', target)]);
      else await fsp.rename(join(inbox, 'cur', other), join(inbox, 'cur', target));
      const seen = await mb.openFolder(alice, 'INBOX');
      assert.equal(seen.messages.find((x) => x.uid === theirs)!.flags.includes('\\Seen'), seenByHand, `round ${round}: the other program's flag change is seen`);
      assert.equal(seen.messages.find((x) => x.uid === ours)!.flags.includes('\\Flagged'), round % 2 === 0);
    }
  });

  test(`${backend}: a file another program drops into new/ or cur/ just after our own write is seen by the next access`, async (t) => {
    const { mb, inbox } = await fixture(t, backend);
    await mb.openFolder(alice, 'INBOX');
    let count = (await mb.openFolder(alice, 'INBOX')).messages.length;
    const uid = (await mb.openFolder(alice, 'INBOX')).messages[0]!.uid;
    for (let i = 0; i < 6; i++) {
      await mb.storeFlags(alice, 'INBOX', [uid], i % 2 ? 'remove' : 'add', ['\\Answered']);
      const where = i % 2 ? 'new' : 'cur';
      await writeFile(join(inbox, where, `17000000${10 + i}.M${i}P1Q1.other,S=2${where === 'cur' ? ':2,' : ''}`), 'hi');
      const seen = await mb.openFolder(alice, 'INBOX');
      count++;
      assert.equal(seen.messages.length, count, `file ${i} into ${where}/`);
    }
    // And a removal by hand right after our own EXPUNGE-free STORE.
    await mb.storeFlags(alice, 'INBOX', [uid], 'add', ['\\Seen']);
    const victim = (await readdir(join(inbox, 'cur'))).find((n) => n.includes('other'))!;
    await fsp.unlink(join(inbox, 'cur', victim));
    assert.equal((await mb.openFolder(alice, 'INBOX')).messages.length, count - 1);
  });

  test(`${backend}: after an outside change the folder is listed once, marked, and then trusted until the next change`, async (t) => {
    const { mb, mailbox, inbox } = await fixture(t, backend);
    await mb.openFolder(alice, 'INBOX');
    await mb.openFolder(alice, 'INBOX');
    await writeFile(join(inbox, 'cur', '1700000100.M1P1Q1.other,S=2:2,'), 'hi');
    assert.equal(await listings(() => mb.openFolder(alice, 'INBOX')), 1);
    if (!markersWork(inbox)) return;
    assert.equal(await listings(() => mb.openFolder(alice, 'INBOX')), 0);
    // Another instance (as another process would) lists once: cur/'s mtime is a marker, so that listing is final.
    const second = mailbox();
    assert.equal((await second.openFolder(alice, 'INBOX')).messages.length, 4);
    assert.equal(await listings(() => second.openFolder(alice, 'INBOX')), 0);
    // Its own STORE is an outside change for the first instance: seen at once.
    const uid = (await second.openFolder(alice, 'INBOX')).messages[3]!.uid;
    await second.storeFlags(alice, 'INBOX', [uid], 'add', ['\\Flagged']);
    const seen = await mb.openFolder(alice, 'INBOX');
    assert.ok(seen.messages.find((m) => m.uid === uid)!.flags.includes('\\Flagged'));
  });

  test(`${backend}: a settled folder is opened without listing it, by a new instance too (the signature is kept in the index)`, async (t) => {
    const { mb, mailbox, inbox } = await fixture(t, backend);
    await mb.openFolder(alice, 'INBOX');
    const at = new Date(Date.now() - 60_000);
    for (const d of ['new', 'cur']) await fsp.utimes(join(inbox, d), at, at);
    assert.equal(await listings(() => mb.openFolder(alice, 'INBOX')), 1);
    assert.equal(await listings(() => mailbox().openFolder(alice, 'INBOX')), 0);
    // Any change after it is seen by the next access of either instance.
    await writeFile(join(inbox, 'new', '1700000200.M1P1Q1.other,S=2'), 'hi');
    assert.equal((await mailbox().openFolder(alice, 'INBOX')).messages.length, 4);
    assert.equal((await mb.openFolder(alice, 'INBOX')).messages.length, 4);
  });
}
