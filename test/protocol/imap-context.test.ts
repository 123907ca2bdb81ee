/**
 * CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4): PARTIAL results, updating searches (ADDTO / REMOVEFROM as other
 * sessions and this one change the folder), CANCELUPDATE and the NOUPDATE limit. Two raw sessions of one user on a
 * real listener (port 0) over the Maildir store: one changes the folder, the other hears the updates at its next
 * command or during IDLE.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { append, msg, startImapFixture, type ImapFixture } from '../helpers/imap-fixture.ts';
import type { RawImap } from '../helpers/raw-imap.ts';

let fx: ImapFixture;
const login = () => fx.login();

/** A fresh folder with one message per subject (flags per message optional), selected in a new session. */
async function folderWith(name: string, subjects: string[], flags: string[] = []): Promise<{ a: RawImap; b: RawImap }> {
  const a = await login();
  const b = await login();
  await a.ok('c1', `CREATE ${name}`);
  for (const [i, s] of subjects.entries()) await append(b, `ap${i}`, name, msg(s), flags[i] ?? '');
  await a.ok('s1', `SELECT ${name}`);
  await b.ok('s1', `SELECT ${name}`);
  return { a, b };
}

/**
 * Sends NOOP until what came back (all of it, collected) matches `re`: the other session's change reaches this one
 * through the store's watch, shortly after the command that made it.
 */
async function noopUntil(c: RawImap, re: RegExp, timeoutMs = 5000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let seen = '';
  for (let n = 0; ; n++) {
    seen += await c.ok(`n${n}`, 'NOOP');
    if (re.test(seen)) return seen;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}; got ${JSON.stringify(seen)}`);
    await new Promise((r) => setTimeout(r, 30));
  }
}

before(async () => {
  fx = await startImapFixture({ prefix: 'postern-imapctx-' });
});

after(() => fx.close());

describe('CONTEXT=SEARCH / CONTEXT=SORT (RFC 5267)', () => {
  test('both are announced after login', async () => {
    const c = await login();
    try {
      const r = await c.ok('c', 'CAPABILITY');
      assert.match(r, /^\* CAPABILITY .* CONTEXT=SEARCH CONTEXT=SORT/m);
    } finally {
      c.close();
    }
  });

  test('PARTIAL returns the given positions of the result, for SEARCH and SORT, by sequence number and UID', async () => {
    const { a, b } = await folderWith('Partial', ['e', 'd', 'c', 'b', 'a']);
    try {
      assert.match(await a.ok('p1', 'SEARCH RETURN (PARTIAL 2:3) ALL'), /^\* ESEARCH \(TAG "p1"\) PARTIAL \(2:3 2:3\)\r\n/m);
      // Given high to low it is the same range; past the end it is NIL.
      assert.match(await a.ok('p2', 'SEARCH RETURN (PARTIAL 4:2 COUNT) 1,3:5'), /^\* ESEARCH \(TAG "p2"\) PARTIAL \(2:4 3:5\) COUNT 4\r\n/m);
      assert.match(await a.ok('p3', 'SEARCH RETURN (PARTIAL 6:9) ALL'), /^\* ESEARCH \(TAG "p3"\) PARTIAL \(6:9 NIL\)\r\n/m);
      // SORT keeps the sort order within the part: by subject, a..e are messages 5..1.
      assert.match(await a.ok('p4', 'SORT RETURN (PARTIAL 1:3) (SUBJECT) UTF-8 ALL'), /^\* ESEARCH \(TAG "p4"\) PARTIAL \(1:3 5,4,3\)\r\n/m);
      const uids = [...(await a.ok('f', 'FETCH 1:5 UID')).matchAll(/UID (\d+)/g)].map((m) => Number(m[1]));
      assert.match(await a.ok('p5', 'UID SEARCH RETURN (PARTIAL 5:5) ALL'), new RegExp(`^\\* ESEARCH \\(TAG "p5"\\) UID PARTIAL \\(5:5 ${uids[4]}\\)\\r\\n`, 'm'));
      for (const [i, bad] of ['(PARTIAL 1)', '(PARTIAL 1:*)', '(PARTIAL 0:2)', '(PARTIAL 1:2 ALL)'].entries()) {
        assert.match(await a.command(`x${i}`, `SEARCH RETURN ${bad} ALL`), new RegExp(`^x${i} BAD`, 'm'), bad);
      }
    } finally {
      a.close();
      b.close();
    }
  });

  test('SEARCH RETURN (UPDATE) reports ADDTO and REMOVEFROM as another session changes flags, expunges and appends', async () => {
    const { a, b } = await folderWith('Upd', ['one', 'two', 'three', 'four'], ['\\Seen', '', '', '']);
    try {
      // UPDATE with ALL: the result now, then its changes.
      assert.match(await a.ok('u1', 'SEARCH RETURN (UPDATE ALL) SEEN'), /^\* ESEARCH \(TAG "u1"\) ALL 1\r\n/m);
      await b.ok('b1', 'STORE 2:3 +FLAGS (\\Seen)');
      assert.match(await noopUntil(a, /ESEARCH \(TAG "u1"\) ADDTO/), /^\* ESEARCH \(TAG "u1"\) ADDTO \(0 2:3\)\r\n/m);
      await b.ok('b2', 'STORE 1 -FLAGS (\\Seen)');
      assert.match(await noopUntil(a, /ESEARCH \(TAG "u1"\) REMOVEFROM/), /^\* ESEARCH \(TAG "u1"\) REMOVEFROM \(0 1\)\r\n/m);
      // An expunged member leaves the result before its EXPUNGE, by the number it had.
      await b.ok('b3', 'STORE 3 +FLAGS (\\Deleted)');
      await b.ok('b4', 'EXPUNGE');
      const gone = await noopUntil(a, /EXPUNGE/);
      assert.match(gone, /^\* ESEARCH \(TAG "u1"\) REMOVEFROM \(0 3\)\r\n\* 3 EXPUNGE\r\n/m);
      // A message that arrives matching is added after the EXISTS that numbers it.
      await append(b, 'b5', 'Upd', msg('five'), '\\Seen');
      assert.match(await noopUntil(a, /ADDTO/), /^\* 4 EXISTS\r\n(?:\* \d+ RECENT\r\n)?\* ESEARCH \(TAG "u1"\) ADDTO \(0 4\)\r\n/m);
      // After CANCELUPDATE nothing more is said about u1.
      await a.ok('cu', 'CANCELUPDATE "u1"');
      await b.ok('b6', 'STORE 1 +FLAGS (\\Seen)');
      const after = await noopUntil(a, /^\* 1 FETCH/m);
      assert.doesNotMatch(after, /ESEARCH/);
      assert.match(await a.command('cu2', 'CANCELUPDATE "u1"'), /^cu2 NO/m);
    } finally {
      a.close();
      b.close();
    }
  });

  test('UID SEARCH RETURN (UPDATE) alone answers without data and then reports by UID, also during IDLE', async () => {
    const { a, b } = await folderWith('UpdIdle', ['one', 'two']);
    try {
      const uids = [...(await a.ok('f', 'UID FETCH 1:* FLAGS')).matchAll(/UID (\d+)/g)].map((m) => Number(m[1]));
      assert.match(await a.ok('u2', 'UID SEARCH RETURN (UPDATE) FLAGGED'), /^\* ESEARCH \(TAG "u2"\) UID\r\n/m);
      a.send('i IDLE\r\n');
      await a.until(/^\+ .*\r\n/m);
      await b.ok('b1', 'STORE 2 +FLAGS (\\Flagged)');
      await a.until(new RegExp(`^\\* ESEARCH \\(TAG "u2"\\) UID ADDTO \\(0 ${uids[1]}\\)\\r\\n`, 'm'));
      await b.ok('b2', 'STORE 2 -FLAGS (\\Flagged)');
      await a.until(new RegExp(`^\\* ESEARCH \\(TAG "u2"\\) UID REMOVEFROM \\(0 ${uids[1]}\\)\\r\\n`, 'm'));
      a.send('DONE\r\n');
      await a.until(/^i OK/m);
    } finally {
      a.close();
      b.close();
    }
  });

  test("the session's own STORE, FETCH of the body (\\Seen) and APPEND update its searches too", async () => {
    const { a, b } = await folderWith('Own', ['one', 'two']);
    try {
      await a.ok('u3', 'SEARCH RETURN (UPDATE) SEEN');
      assert.match(await a.ok('st', 'STORE 1 +FLAGS (\\Seen)'), /^\* 1 FETCH .*\r\n\* ESEARCH \(TAG "u3"\) ADDTO \(0 1\)\r\n/m);
      assert.match(await a.ok('fe', 'FETCH 2 BODY[TEXT]'), /^\* ESEARCH \(TAG "u3"\) ADDTO \(0 2\)\r\n/m);
      const r = await append(a, 'ap', 'Own', msg('three'), '\\Seen');
      assert.match(r, /^\* 3 EXISTS\r\n(?:\* \d+ RECENT\r\n)?\* ESEARCH \(TAG "u3"\) ADDTO \(0 3\)\r\n/m);
      // A new SELECT ends every updating search of the old one.
      await a.ok('s2', 'SELECT Own');
      assert.match(await a.command('cu', 'CANCELUPDATE "u3"'), /^cu NO/m);
    } finally {
      a.close();
      b.close();
    }
  });

  test('SORT RETURN (UPDATE) gives the positions in the sorted result where messages arrive and leave', async () => {
    // Subjects b, d, a: FLAGGED sorted by subject is [b(1), d(2)].
    const { a, b } = await folderWith('SortUpd', ['b', 'd', 'a'], ['\\Flagged', '\\Flagged', '']);
    try {
      assert.match(await a.ok('o1', 'SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 FLAGGED'), /^\* ESEARCH \(TAG "o1"\) ALL 1:2\r\n/m);
      // "a" sorts first: [a(3), b(1), d(2)].
      await b.ok('b1', 'STORE 3 +FLAGS (\\Flagged)');
      assert.match(await noopUntil(a, /ADDTO/), /^\* ESEARCH \(TAG "o1"\) ADDTO \(1 3\)\r\n/m);
      // "c" arrives third: [a(3), b(1), c(4), d(2)].
      await append(b, 'b2', 'SortUpd', msg('c'), '\\Flagged');
      assert.match(await noopUntil(a, /ADDTO/), /^\* ESEARCH \(TAG "o1"\) ADDTO \(3 4\)\r\n/m);
      // "b" and "d" leave from positions 2 and 4, the later one first: [a(3), c(4)].
      await b.ok('b3', 'STORE 1:2 -FLAGS (\\Flagged)');
      assert.match(await noopUntil(a, /REMOVEFROM/), /^\* ESEARCH \(TAG "o1"\) REMOVEFROM \(4 2 2 1\)\r\n/m);
      // An expunged member: "c" at position 2, reported before the EXPUNGE by its sequence number 4.
      await b.ok('b4', 'STORE 4 +FLAGS (\\Deleted)');
      await b.ok('b5', 'EXPUNGE');
      assert.match(await noopUntil(a, /EXPUNGE/), /^\* ESEARCH \(TAG "o1"\) REMOVEFROM \(2 4\)\r\n\* 4 EXPUNGE\r\n/m);
      assert.match(await a.ok('o2', 'SORT RETURN (ALL) (SUBJECT) UTF-8 FLAGGED'), /^\* ESEARCH \(TAG "o2"\) ALL 3\r\n/m);
    } finally {
      a.close();
      b.close();
    }
  });

  test('a session keeps at most 16 updating searches; the next one gets its result and NOUPDATE', async () => {
    const { a, b } = await folderWith('Limit', ['one']);
    try {
      for (let i = 1; i <= 16; i++) assert.doesNotMatch(await a.ok(`t${i}`, 'SEARCH RETURN (UPDATE COUNT) ALL'), /NOUPDATE/);
      const r = await a.ok('t17', 'SEARCH RETURN (UPDATE COUNT) ALL');
      assert.match(r, /^\* ESEARCH \(TAG "t17"\) COUNT 1\r\n\* NO \[NOUPDATE "t17"\]/m);
      // Cancelling one makes room again.
      await a.ok('cu', 'CANCELUPDATE "t1" "t2"');
      assert.doesNotMatch(await a.ok('t18', 'SEARCH RETURN (UPDATE COUNT) ALL'), /NOUPDATE/);
      await b.ok('b1', 'STORE 1 +FLAGS (\\Seen)');
      const heard = await noopUntil(a, /^\* 1 FETCH/m);
      // ALL still matches: flag changes move nothing in or out.
      assert.doesNotMatch(heard, /ESEARCH/);
    } finally {
      a.close();
      b.close();
    }
  });
});
