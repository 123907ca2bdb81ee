/**
 * SELECT from the folder index's summary (issue 11, SELECT of a 100,000-message folder): EXISTS, UNSEEN, the
 * keywords in FLAGS and RECENT come from counts and UIDs kept by the index (FolderIndex.summary), and the session
 * reads its messages on the first command that needs them (ImapSession.select, lazyView). These tests hold that the
 * answers are the ones the messages give, before and after a restart, and that what other sessions change between
 * the SELECT and that first read is still told (RFC 3501 §7.4.1 EXPUNGE, §7.4.2 FETCH, §7.3.1 EXISTS).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { append, msg, startImapFixture, type ImapFixture } from '../helpers/imap-fixture.ts';

let fx: ImapFixture;

before(async () => {
  fx = await startImapFixture({ prefix: 'postern-select-lazy-', tls: false });
});

after(() => fx.close());

/** The FLAGS of message `seq` in an untagged FETCH of `r`, sorted, without \Recent. */
function flagsIn(r: string, seq: number): string[] | undefined {
  const m = new RegExp(`^\\* ${seq} FETCH \\(.*?FLAGS \\(([^)]*)\\)`, 'm').exec(r);
  return m ? m[1]!.split(' ').filter((f) => f && f !== '\\Recent').sort() : undefined;
}

function selectAnswers(r: string): { exists: number; unseen?: number; flags: string[]; recent: number } {
  return {
    exists: Number(/^\* (\d+) EXISTS/m.exec(r)?.[1]),
    unseen: /\[UNSEEN (\d+)\]/.exec(r) ? Number(/\[UNSEEN (\d+)\]/.exec(r)![1]) : undefined,
    flags: /^\* FLAGS \(([^)]*)\)/m.exec(r)![1]!.split(' ').sort(),
    recent: Number(/^\* (\d+) RECENT/m.exec(r)?.[1]),
  };
}

test('SELECT tells EXISTS, UNSEEN and the keywords the messages carry, the same after a restart', async () => {
  const c = await fx.login();
  await c.ok('c1', 'CREATE Summary');
  await append(c, 'a1', 'Summary', msg('one'), '\\Seen');
  await append(c, 'a2', 'Summary', msg('two'), '\\Seen $Work');
  await append(c, 'a3', 'Summary', msg('three'));
  await append(c, 'a4', 'Summary', msg('four'), '$Later \\Seen');
  const expected = { exists: 4, unseen: 3, flags: ['$Later', '$Work', '\\Answered', '\\Deleted', '\\Draft', '\\Flagged', '\\Seen'], recent: 4 };
  assert.deepEqual(selectAnswers(await c.ok('s1', 'SELECT Summary')), expected);
  // The view read on first use numbers the messages as SELECT did.
  const fetched = await c.ok('f1', 'FETCH 1:* (UID FLAGS)');
  assert.deepEqual([1, 2, 3, 4].map((n) => flagsIn(fetched, n)), [['\\Seen'], ['$Work', '\\Seen'], [], ['$Later', '\\Seen']]);
  c.close();

  await fx.restart();
  const d = await fx.login();
  try {
    // The first SELECT claimed the messages as recent (RFC 3501 §2.3.2): none is recent now.
    assert.deepEqual(selectAnswers(await d.ok('s2', 'SELECT Summary')), { ...expected, recent: 0 });
    await d.ok('t1', 'STORE 3 +FLAGS (\\Seen)');
    await d.ok('t2', 'STORE 1 -FLAGS (\\Seen)');
    assert.deepEqual(selectAnswers(await d.ok('s3', 'SELECT Summary')), { ...expected, unseen: 1, recent: 0 });
    await d.ok('t3', 'STORE 1:* +FLAGS (\\Seen)');
    const all = selectAnswers(await d.ok('s4', 'SELECT Summary'));
    assert.equal(all.unseen, undefined);
    assert.equal(all.exists, 4);
  } finally {
    d.close();
  }
});

test('what another session changes between SELECT and the first read of the view is told', async () => {
  const a = await fx.login();
  const b = await fx.login();
  try {
    await a.ok('c1', 'CREATE Between');
    for (let i = 1; i <= 3; i++) await append(a, `a${i}`, 'Between', msg(`between ${i}`));
    const s = await a.ok('s1', 'SELECT Between');
    assert.match(s, /^\* 3 EXISTS/m);
    const uids = await b.ok('s2', 'SELECT Between');
    assert.match(uids, /^\* 3 EXISTS/m);
    await b.ok('t1', 'STORE 1 +FLAGS (\\Flagged)');
    await b.ok('t2', 'STORE 2 +FLAGS (\\Deleted)');
    await b.ok('e1', 'EXPUNGE');
    await append(b, 'a4', 'Between', msg('between 4'));
    // A has not read its view yet: it now holds message 1's new flags, and the change is told all the same.
    const told = await a.ok('n1', 'NOOP');
    assert.deepEqual(flagsIn(told, 1), ['\\Flagged'], told);
    assert.match(told, /^\* 2 EXPUNGE/m);
    assert.match(told, /^\* 3 EXISTS/m);
    const fetched = await a.ok('f1', 'FETCH 1:* (UID FLAGS)');
    // A's SELECT claimed messages 1-3 as \Recent (RFC 3501 §2.3.2); B, selected when 4 arrived, claimed that one.
    assert.match(fetched, /^\* 1 FETCH \(UID 1 FLAGS \(\\Recent \\Flagged\)\)/m);
    assert.match(fetched, /^\* 2 FETCH \(UID 3 FLAGS \(\\Recent\)\)/m);
    assert.match(fetched, /^\* 3 FETCH \(UID 4 FLAGS \(\)\)/m);
    assert.doesNotMatch(fetched, /^\* 4 FETCH/m);
  } finally {
    a.close();
    b.close();
  }
});
