/**
 * CONDSTORE and QRESYNC (RFC 7162) end to end: the real IMAP listener on port 0 over the Maildir store in a
 * temporary directory, driven by raw command scripts (every response checked as sent) and by imapflow, which
 * uses both extensions when they are offered.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import { INDEX_FILE } from '../../src/store/folder-index.ts';
import type { FolderState } from '../../src/store/mailbox.ts';
import type { MailboxOwner } from '../../src/store/types.ts';
import { PASSWORD, append, msg, startImapFixture, type ImapFixture } from '../helpers/imap-fixture.ts';
import { MemoryMailbox } from '../helpers/memory-mailbox.ts';
import { RawImap } from '../helpers/raw-imap.ts';
import { waitFor } from '../helpers/wait.ts';

const JOHN = { kind: 'user' as const, login: 'john.smith' };

let fx: ImapFixture;

before(async () => {
  fx = await startImapFixture({ prefix: 'postern-condstore-' });
});

after(() => fx.close());

const login = () => fx.login();

/** A folder with `n` messages; returns a session that has it selected (not yet CONDSTORE-enabled). */
async function folderWith(name: string, n: number): Promise<RawImap> {
  const c = await login();
  await c.ok('c0', `CREATE ${name}`);
  for (let i = 1; i <= n; i++) await append(c, `c${i}`, name, msg(`${name} ${i}`));
  return c;
}

function num(re: RegExp, text: string): number {
  const m = re.exec(text);
  assert.ok(m, `${re} in ${JSON.stringify(text)}`);
  return Number(m[1]);
}

const highest = (text: string) => num(/^\* OK \[HIGHESTMODSEQ (\d+)\]/m, text);
const modseqOf = (seq: number, text: string) => num(new RegExp(`^\\* ${seq} FETCH \\(.*MODSEQ \\((\\d+)\\)`, 'm'), text);

describe('CONDSTORE (RFC 7162 §3.1)', () => {
  test('CAPABILITY offers CONDSTORE and QRESYNC; ENABLE answers with what it turned on', async () => {
    const c = await login();
    const caps = await c.ok('a1', 'CAPABILITY');
    assert.match(caps, /^\* CAPABILITY .* CONDSTORE QRESYNC/m);
    assert.match(await c.ok('a2', 'ENABLE CONDSTORE'), /^\* ENABLED CONDSTORE\r$/m);
    // §3.2.3: QRESYNC implies CONDSTORE, which is already on and so is not listed again.
    assert.match(await c.ok('a3', 'ENABLE QRESYNC CONDSTORE'), /^\* ENABLED QRESYNC\r$/m);
    assert.match(await c.ok('a4', 'ENABLE X-UNKNOWN'), /^\* ENABLED\r$/m);
    c.close();
  });

  test('SELECT and EXAMINE give HIGHESTMODSEQ; every change raises it; STATUS reports the same', async () => {
    const c = await folderWith('Cs1', 2);
    const sel = await c.ok('s1', 'SELECT Cs1 (CONDSTORE)');
    const h0 = highest(sel);
    assert.match(await c.ok('s2', 'STATUS Cs1 (HIGHESTMODSEQ MESSAGES)'), new RegExp(`^\\* STATUS "?Cs1"? \\(HIGHESTMODSEQ ${h0} MESSAGES 2\\)`, 'm'));
    const st = await c.ok('s3', 'STORE 1 +FLAGS (\\Flagged)');
    const m1 = modseqOf(1, st);
    assert.ok(m1 > h0, 'a flag change gets a higher MODSEQ');
    assert.match(st, /^\* 1 FETCH \(FLAGS \(\\Recent \\Flagged\) MODSEQ \(\d+\)\)/m);
    await append(c, 's4', 'Cs1', msg('third'));
    const ex = await c.ok('s5', 'EXAMINE Cs1');
    assert.match(ex, /^\* OK \[CLOSED\]/m);
    const h1 = highest(ex);
    assert.ok(h1 > m1, 'an APPEND raises HIGHESTMODSEQ');
    await c.ok('s6', 'UNSELECT');
    const other = await login();
    await other.ok('o1', 'SELECT Cs1');
    await other.ok('o2', 'STORE 3 +FLAGS.SILENT (\\Deleted)');
    await other.ok('o3', 'EXPUNGE');
    other.close();
    const h2 = num(/HIGHESTMODSEQ (\d+)\)/, await c.ok('s7', 'STATUS Cs1 (HIGHESTMODSEQ)'));
    assert.ok(h2 > h1 + 1, 'an expunge raises HIGHESTMODSEQ too');
    c.close();
  });

  test('the first enabling command in the selected state sends HIGHESTMODSEQ before its answer; FETCH MODSEQ', async () => {
    const c = await folderWith('Cs2', 2);
    const sel = await c.ok('f1', 'SELECT Cs2');
    const h = highest(sel);
    const r = await c.ok('f2', 'FETCH 1:2 (MODSEQ)');
    assert.match(r, new RegExp(`^\\* OK \\[HIGHESTMODSEQ ${h}\\].*\\r\\n\\* 1 FETCH \\(MODSEQ \\(\\d+\\)\\)\\r\\n\\* 2 FETCH \\(MODSEQ \\(${h}\\)\\)`, 'm'));
    // Enabled now: a second one says nothing more.
    assert.doesNotMatch(await c.ok('f3', 'FETCH 1 (MODSEQ)'), /HIGHESTMODSEQ/);
    c.close();
  });

  test('FETCH (CHANGEDSINCE n) returns only what changed after n, with its MODSEQ', async () => {
    const c = await folderWith('Cs3', 3);
    const h = highest(await c.ok('g1', 'SELECT Cs3 (CONDSTORE)'));
    await c.ok('g2', 'STORE 2 +FLAGS.SILENT (\\Seen)');
    const r = await c.ok('g3', 'FETCH 1:* (FLAGS) (CHANGEDSINCE ' + h + ')');
    assert.match(r, /^\* 2 FETCH \(FLAGS \(\\Recent \\Seen\) MODSEQ \(\d+\)\)\r$/m);
    assert.doesNotMatch(r, /^\* [13] FETCH/m);
    const u = await c.ok('g4', `UID FETCH 1:* (FLAGS) (CHANGEDSINCE ${h})`);
    assert.match(u, /^\* 2 FETCH \(UID 2 FLAGS \(\\Recent \\Seen\) MODSEQ \(\d+\)\)\r$/m);
    // VANISHED needs QRESYNC enabled and UID FETCH (§3.2.6).
    assert.match(await c.command('g5', `UID FETCH 1:* (FLAGS) (CHANGEDSINCE ${h} VANISHED)`), /^g5 BAD/m);
    assert.match(await c.command('g6', 'FETCH 1:* (FLAGS) (CHANGEDSINCE x)'), /^g6 BAD/m);
    c.close();
  });

  test('STORE (UNCHANGEDSINCE n) stores only what did not change after n and lists the rest in [MODIFIED]', async () => {
    const c = await folderWith('Cs4', 3);
    await c.ok('u1', 'SELECT Cs4 (CONDSTORE)');
    const m2 = modseqOf(2, await c.ok('u2', 'FETCH 2 (MODSEQ)'));
    const m3 = modseqOf(3, await c.ok('u3', 'FETCH 3 (MODSEQ)'));
    // Another session changes message 3 after we looked.
    const other = await login();
    await other.ok('o1', 'SELECT Cs4');
    await other.ok('o2', 'STORE 3 +FLAGS (\\Answered)');
    other.close();
    const r = await c.command('u4', `STORE 2:3 (UNCHANGEDSINCE ${Math.max(m2, m3)}) +FLAGS (\\Flagged)`);
    assert.match(r, /^u4 OK \[MODIFIED 3\]/m);
    assert.match(r, /^\* 2 FETCH \(FLAGS \(\\Recent \\Flagged\) MODSEQ \(\d+\)\)/m);
    assert.doesNotMatch(await c.ok('u5', 'FETCH 3 (FLAGS)'), /\\Flagged/);
    // UID STORE names UIDs; .SILENT still reports the new MODSEQ (§3.1.3).
    const s = await c.command('u6', 'UID STORE 1,3 (UNCHANGEDSINCE 1) +FLAGS.SILENT (\\Seen)');
    assert.match(s, /^u6 OK \[MODIFIED 1,3\]/m);
    const silent = await c.ok('u7', 'STORE 1 +FLAGS.SILENT (\\Seen)');
    assert.match(silent, /^\* 1 FETCH \(MODSEQ \(\d+\)\)\r$/m);
    // UNCHANGEDSINCE 0 fails for every message (every MODSEQ is at least 1).
    assert.match(await c.command('u8', 'STORE 1 (UNCHANGEDSINCE 0) FLAGS ()'), /^u8 OK \[MODIFIED 1\]/m);
    c.close();
  });

  test('SEARCH MODSEQ (also with an entry name) and the MODSEQ in SEARCH and ESEARCH answers', async () => {
    const c = await folderWith('Cs5', 4);
    await c.ok('e1', 'SELECT Cs5 (CONDSTORE)');
    const ms: number[] = [];
    for (const n of [1, 3, 2, 4]) ms[n] = modseqOf(n, await c.ok(`e2${n}`, `STORE ${n} +FLAGS (\\Seen)`));
    assert.match(await c.ok('e3', `SEARCH MODSEQ ${ms[3]}`), new RegExp(`^\\* SEARCH 2 3 4 \\(MODSEQ ${ms[4]}\\)\\r$`, 'm'));
    assert.match(await c.ok('e4', `UID SEARCH MODSEQ "/flags/\\\\Seen" all ${ms[2]}`), new RegExp(`^\\* SEARCH 2 4 \\(MODSEQ ${ms[4]}\\)\\r$`, 'm'));
    // Nothing matched: no MODSEQ.
    assert.match(await c.ok('e5', `SEARCH MODSEQ ${ms[4] + 1}`), /^\* SEARCH\r$/m);
    assert.match(await c.ok('e6', 'SEARCH RETURN (MIN) 1:3 MODSEQ 1'), new RegExp(`^\\* ESEARCH \\(TAG "e6"\\) MIN 1 MODSEQ ${ms[1]}\\r$`, 'm'));
    assert.match(await c.ok('e7', 'SEARCH RETURN (MAX) 1:3 MODSEQ 1'), new RegExp(`^\\* ESEARCH \\(TAG "e7"\\) MAX 3 MODSEQ ${ms[3]}\\r$`, 'm'));
    assert.match(await c.ok('e8', 'SEARCH RETURN (ALL) 1:3 MODSEQ 1'), new RegExp(`^\\* ESEARCH \\(TAG "e8"\\) ALL 1:3 MODSEQ ${ms[2]}\\r$`, 'm'));
    assert.match(await c.command('e9', 'SEARCH MODSEQ "/flags/\\\\Seen" nonsense 1'), /^e9 BAD/m);
    c.close();
  });

  test("another session's flag change reaches a CONDSTORE session with its MODSEQ, a plain one without", async () => {
    await (await folderWith('Cs6', 1)).close();
    const plain = await login();
    await plain.ok('p1', 'SELECT Cs6');
    const cs = await login();
    await cs.ok('q1', 'SELECT Cs6 (CONDSTORE)');
    const other = await login();
    await other.ok('o1', 'SELECT Cs6 (CONDSTORE)');
    const m = modseqOf(1, await other.ok('o2', 'STORE 1 +FLAGS (\\Flagged)'));
    other.close();
    assert.match(await cs.ok('q2', 'NOOP'), new RegExp(`^\\* 1 FETCH \\(UID 1 FLAGS \\(\\\\Flagged\\) MODSEQ \\(${m}\\)\\)\\r$`, 'm'));
    // The plain session selected first: the message is \Recent for it.
    assert.match(await plain.ok('p2', 'NOOP'), /^\* 1 FETCH \(UID 1 FLAGS \(\\Recent \\Flagged\)\)\r$/m);
    plain.close();
    cs.close();
  });
});

/** A store that keeps no MODSEQs (RFC 7162 §3.1.2.2): the in-memory one with them taken out. */
class NoModseqMailbox extends MemoryMailbox {
  override async openFolder(owner: MailboxOwner, name: string): Promise<FolderState> {
    const state = await super.openFolder(owner, name);
    return { ...state, modseq: 0, messages: state.messages.map(({ modseq: _, ...m }) => m) };
  }
}

describe('a store without MODSEQs (RFC 7162 §3.1.2.2)', () => {
  test('SELECT says NOMODSEQ, STATUS HIGHESTMODSEQ is 0, MODSEQ requests are BAD and plain commands still work', async () => {
    const plain = await fx.listen({ mailbox: new NoModseqMailbox() });
    const c = await RawImap.login(plain.port, 'john.smith', PASSWORD);
    try {
      await append(c, 'n1', 'INBOX', msg('no modseq'));
      const sel = await c.ok('n2', 'SELECT INBOX (CONDSTORE)');
      assert.match(sel, /^\* OK \[NOMODSEQ\]/m);
      assert.doesNotMatch(sel, /HIGHESTMODSEQ/);
      assert.match(await c.ok('n3', 'STATUS INBOX (HIGHESTMODSEQ)'), /HIGHESTMODSEQ 0\)/);
      assert.match(await c.command('n4', 'FETCH 1 (MODSEQ)'), /^n4 BAD/m);
      assert.match(await c.command('n5', 'FETCH 1 (FLAGS) (CHANGEDSINCE 1)'), /^n5 BAD/m);
      assert.match(await c.command('n6', 'STORE 1 (UNCHANGEDSINCE 5) +FLAGS (\\Seen)'), /^n6 BAD/m);
      assert.match(await c.command('n7', 'SEARCH MODSEQ 1'), /^n7 BAD/m);
      assert.match(await c.ok('n8', 'STORE 1 +FLAGS (\\Flagged)'), /^\* 1 FETCH \(FLAGS \([^)]*\\Flagged\)\)\r$/m);
    } finally {
      c.close();
      await plain.close();
    }
  });
});

describe('QRESYNC (RFC 7162 §3.2)', () => {
  test('VANISHED instead of EXPUNGE, for our own expunge and for another session’s; HIGHESTMODSEQ in the tagged OK', async () => {
    const c = await folderWith('Qr1', 4);
    await c.ok('v1', 'ENABLE QRESYNC');
    await c.ok('v2', 'SELECT Qr1');
    await c.ok('v3', 'STORE 1:2 +FLAGS.SILENT (\\Deleted)');
    const ex = await c.ok('v4', 'EXPUNGE');
    assert.match(ex, /^\* VANISHED 1:2\r$/m);
    assert.doesNotMatch(ex, /EXPUNGE\r$/m);
    const h = num(/^v4 OK \[HIGHESTMODSEQ (\d+)\]/m, ex);
    assert.match(await c.ok('v5', 'STATUS Qr1 (HIGHESTMODSEQ)'), new RegExp(`HIGHESTMODSEQ ${h}\\)`));
    const other = await login();
    await other.ok('o1', 'SELECT Qr1');
    await other.ok('o2', 'STORE 1 +FLAGS.SILENT (\\Deleted)');
    await other.ok('o3', 'EXPUNGE');
    other.close();
    assert.match(await c.ok('v6', 'NOOP'), /^\* VANISHED 3\r$/m);
    c.close();
  });

  test('SELECT (QRESYNC ...) reports what vanished and what changed since the given MODSEQ, within the known UIDs', async () => {
    const c = await folderWith('Qr2', 5);
    await c.ok('q1', 'ENABLE QRESYNC');
    const sel = await c.ok('q2', 'SELECT Qr2');
    const validity = num(/UIDVALIDITY (\d+)/, sel);
    const h = highest(sel);
    await c.ok('q3', 'LOGOUT');
    // Changes while the client is away.
    const other = await login();
    await other.ok('o1', 'SELECT Qr2');
    await other.ok('o2', 'STORE 2 +FLAGS.SILENT (\\Deleted)');
    await other.ok('o3', 'STORE 4 +FLAGS.SILENT (\\Deleted)');
    await other.ok('o4', 'EXPUNGE');
    await other.ok('o5', 'STORE 3 +FLAGS (\\Seen)'); // UID 5 is now message 3
    other.close();

    const d = await login();
    // The parameter needs ENABLE QRESYNC first (§3.2.5).
    assert.match(await d.command('r0', `SELECT Qr2 (QRESYNC (${validity} ${h}))`), /^r0 BAD/m);
    await d.ok('r1', 'ENABLE QRESYNC');
    const r = await d.ok('r2', `SELECT Qr2 (QRESYNC (${validity} ${h}))`);
    assert.match(r, /^\* VANISHED \(EARLIER\) 2,4\r$/m);
    assert.match(r, /^\* 3 FETCH \(UID 5 FLAGS \(\\Seen\) MODSEQ \(\d+\)\)\r$/m);
    assert.doesNotMatch(r, /^\* [12] FETCH/m);
    // Known UIDs limit both.
    const k = await d.ok('r3', `EXAMINE Qr2 (QRESYNC (${validity} ${h} 1:3))`);
    assert.match(k, /^\* OK \[CLOSED\]/m);
    assert.match(k, /^\* VANISHED \(EARLIER\) 2\r$/m);
    assert.doesNotMatch(k, /FETCH/);
    // Another UIDVALIDITY: the client starts over, nothing is reported.
    const w = await d.ok('r4', `SELECT Qr2 (QRESYNC (${validity + 1} ${h}))`);
    assert.doesNotMatch(w, /VANISHED|FETCH/);
    // UID FETCH (CHANGEDSINCE n VANISHED).
    const f = await d.ok('r5', `UID FETCH 1:* (FLAGS) (CHANGEDSINCE ${h} VANISHED)`);
    assert.match(f, /^\* VANISHED \(EARLIER\) 2,4\r\n\* 3 FETCH \(UID 5 FLAGS \(\\Seen\) MODSEQ \(\d+\)\)\r$/m);
    d.close();
  });

  test('without the expunge history the answer falls back to every missing UID, narrowed by seq-match-data (§3.2.5.2)', async () => {
    const c = await folderWith('Qr3', 6);
    await c.ok('h1', 'ENABLE QRESYNC');
    const sel = await c.ok('h2', 'SELECT Qr3');
    const validity = num(/UIDVALIDITY (\d+)/, sel);
    const h = highest(sel);
    await c.ok('h3', 'STORE 2,5 +FLAGS.SILENT (\\Deleted)');
    await c.ok('h4', 'EXPUNGE');
    const after = highest(await c.ok('h5', 'SELECT Qr3'));
    await c.ok('h6', 'UNSELECT');
    // The history is lost (as after a rebuilt index or pruning): the floor is above the client's MODSEQ.
    const Database = createRequire(import.meta.url)('better-sqlite3') as new (f: string) => { prepare(s: string): { run(...a: unknown[]): unknown }; close(): void };
    const db = new Database(join(fx.store.folderPath(JOHN, 'Qr3'), INDEX_FILE));
    db.prepare('DELETE FROM expunged').run();
    db.prepare("UPDATE meta SET value = ? WHERE key = 'vanishedfloor'").run(after);
    db.close();
    const r = await c.ok('h7', `SELECT Qr3 (QRESYNC (${validity} ${h}))`);
    assert.match(r, /^\* VANISHED \(EARLIER\) 2,5\r$/m);
    // The client says message 2 was UID 3 and message 4 UID 6 when it last looked; now message 2 is UID 3 still
    // (nothing at or below UID 3 went away since) but UID 6 is message 4: both match, so nothing below 6 is reported.
    const m = await c.ok('h8', `SELECT Qr3 (QRESYNC (${validity} ${h} 1:6 (2,4 3,6)))`);
    assert.doesNotMatch(m, /VANISHED/);
    // Only the first pair still matches: UIDs above 3 that are gone (5) are reported, 2 is not.
    const p = await c.ok('h9', `SELECT Qr3 (QRESYNC (${validity} ${h} 1:6 (2,3 3,4)))`);
    assert.match(p, /^\* VANISHED \(EARLIER\) 5\r$/m);
    // With the history still complete from the current MODSEQ on, a new expunge is reported exactly.
    await c.ok('h10', 'STORE 1 +FLAGS.SILENT (\\Deleted)');
    await c.ok('h11', 'EXPUNGE');
    const q = await c.ok('h12', `SELECT Qr3 (QRESYNC (${validity} ${after}))`);
    assert.match(q, /^\* VANISHED \(EARLIER\) 1\r$/m);
    c.close();
  });

  test('MODSEQs, HIGHESTMODSEQ and the expunge history survive a restart', async () => {
    const c = await folderWith('Qr4', 3);
    await c.ok('t1', 'ENABLE QRESYNC');
    const sel = await c.ok('t2', 'SELECT Qr4');
    const validity = num(/UIDVALIDITY (\d+)/, sel);
    const h0 = highest(sel);
    const m1 = modseqOf(1, await c.ok('t3', 'STORE 1 +FLAGS (\\Flagged)'));
    await c.ok('t4', 'STORE 2 +FLAGS.SILENT (\\Deleted)');
    await c.ok('t5', 'EXPUNGE');
    const h1 = num(/HIGHESTMODSEQ (\d+)\)/, await c.ok('t6', 'STATUS Qr4 (HIGHESTMODSEQ)'));
    c.close();

    await fx.restart({ keepStore: true });

    const d = await login();
    await d.ok('r1', 'ENABLE QRESYNC');
    const r = await d.ok('r2', `SELECT Qr4 (QRESYNC (${validity} ${h0}))`);
    assert.equal(highest(r), h1);
    assert.match(r, /^\* VANISHED \(EARLIER\) 2\r$/m);
    assert.match(r, new RegExp(`^\\* 1 FETCH \\(UID 1 FLAGS \\(\\\\Flagged\\) MODSEQ \\(${m1}\\)\\)\\r$`, 'm'));
    // New changes continue above the old ones.
    assert.ok(modseqOf(2, await d.ok('r3', 'STORE 2 +FLAGS (\\Seen)')) > h1);
    d.close();
  });
});

describe('imapflow with CONDSTORE and QRESYNC', () => {
  const client = () =>
    new ImapFlow({ host: '127.0.0.1', port: fx.server.port, secure: false, doSTARTTLS: false, auth: { user: 'john.smith', pass: PASSWORD }, logger: false, qresync: true });

  test('resyncs flag changes and vanished messages on reopen, and hears them live with their MODSEQ', async () => {
    await (await folderWith('Flow1', 4)).close();
    const a = client();
    await a.connect();
    let uidValidity: bigint;
    let highestModseq: bigint;
    try {
      assert.ok(a.enabled.has('QRESYNC'), 'imapflow enabled QRESYNC');
      const box = await a.mailboxOpen('Flow1');
      uidValidity = box.uidValidity;
      assert.ok(box.highestModseq, 'HIGHESTMODSEQ known');
      highestModseq = box.highestModseq!;
    } finally {
      await a.logout();
    }

    // While the client is away: a flag change and an expunge by another session.
    const other = await login();
    await other.ok('o1', 'SELECT Flow1');
    await other.ok('o2', 'STORE 3 +FLAGS (\\Flagged)');
    await other.ok('o3', 'STORE 1 +FLAGS.SILENT (\\Deleted)');
    await other.ok('o4', 'EXPUNGE');

    const b = client();
    const flags: { uid?: number; flags: Set<string>; modseq?: bigint }[] = [];
    const expunged: { uid?: number; vanished: boolean; earlier?: boolean }[] = [];
    b.on('flags', (e: { uid?: number; flags: Set<string>; modseq?: bigint }) => flags.push(e));
    b.on('expunge', (e: { uid?: number; vanished: boolean; earlier?: boolean }) => expunged.push(e));
    await b.connect();
    try {
      await b.mailboxOpen('Flow1', { changedSince: highestModseq, uidValidity });
      assert.deepEqual(
        expunged.map((e) => [e.uid, e.vanished, e.earlier]),
        [[1, true, true]],
      );
      const f3 = flags.find((f) => f.uid === 3);
      assert.ok(f3?.flags.has('\\Flagged'), 'the flag change made while away is reported');
      assert.ok(f3?.modseq && f3.modseq > highestModseq);
      assert.equal(flags.length, 1, 'only what changed is reported');

      // Live: another session changes and expunges while imapflow has the folder open.
      flags.length = 0;
      expunged.length = 0;
      await other.ok('o5', 'STORE 2 +FLAGS (\\Seen)'); // UID 3 is message 2 now
      await other.ok('o6', 'STORE 1 +FLAGS.SILENT (\\Deleted)'); // UID 2
      await other.ok('o7', 'EXPUNGE');
      await b.noop();
      await waitFor('live flag change and VANISHED', () => flags.length >= 1 && expunged.length >= 1);
      assert.ok(flags.some((f) => f.uid === 3 && f.flags.has('\\Seen') && f.modseq !== undefined));
      assert.deepEqual(
        expunged.map((e) => [e.uid, e.vanished]),
        [[2, true]],
      );

      // A CHANGEDSINCE fetch brings only what changed.
      const changed = [];
      for await (const m of b.fetch('1:*', { flags: true }, { uid: true, changedSince: highestModseq })) changed.push(m.uid);
      assert.deepEqual(changed, [3]);
    } finally {
      other.close();
      await b.logout();
    }
  });
});
