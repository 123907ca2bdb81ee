/**
 * Sessions of one process selecting the same folder share the store's message objects (MaildirMailbox reuses them
 * while the folder is unchanged, and a SELECT no longer copies every one: issue 11, SELECT of a 100,000-message
 * folder). A session's own change (STORE, FETCH BODY[] setting \Seen, a change told by another session) goes into a
 * copy of its own (ImapSession.own). These tests would fail if it went into the shared object: the other session
 * would already hold the new flags, find the change it is told about to be no change, and never tell its client
 * (RFC 3501 §7.4.2: the server sends an unsolicited FETCH when flags change).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { append, msg, startImapFixture, type ImapFixture } from '../helpers/imap-fixture.ts';
import type { RawImap } from '../helpers/raw-imap.ts';

let fx: ImapFixture;

before(async () => {
  fx = await startImapFixture({ prefix: 'postern-shared-view-', tls: false });
  const c = await fx.login();
  try {
    for (let i = 1; i <= 3; i++) await append(c, `a${i}`, 'INBOX', msg(`shared ${i}`));
  } finally {
    c.close();
  }
});

after(() => fx.close());

async function selected(): Promise<RawImap> {
  const c = await fx.login();
  const r = await c.ok('s', 'SELECT INBOX');
  assert.match(r, /^\* 3 EXISTS/m);
  return c;
}

/** The FLAGS of message `seq` in an untagged FETCH of `r`, sorted. */
function flagsIn(r: string, seq: number): string[] | undefined {
  const m = new RegExp(`^\\* ${seq} FETCH \\(.*?FLAGS \\(([^)]*)\\)`, 'm').exec(r);
  return m ? m[1]!.split(' ').filter((f) => f && f !== '\\Recent').sort() : undefined;
}

test("a session's STORE reaches another session of the same folder as an unsolicited FETCH", async () => {
  const a = await selected();
  const b = await selected();
  try {
    const stored = await a.ok('t1', 'STORE 2 +FLAGS (\\Flagged)');
    assert.deepEqual(flagsIn(stored, 2), ['\\Flagged']);
    // B's view still has the old flags, so the change it is told about is news: NOOP shows it.
    const told = await b.ok('n1', 'NOOP');
    assert.deepEqual(flagsIn(told, 2), ['\\Flagged'], told);
    // And B's view now has them: a FETCH gives the same, with no second unsolicited change.
    const fetched = await b.ok('f1', 'FETCH 2 FLAGS');
    assert.deepEqual(flagsIn(fetched, 2), ['\\Flagged']);
    // A's other messages, never changed, are still what both sessions saw at SELECT.
    assert.deepEqual(flagsIn(await a.ok('f2', 'FETCH 1 FLAGS'), 1), []);
  } finally {
    a.close();
    b.close();
  }
});

test('\\Seen set by one session reading a message reaches the other one, and a new SELECT sees it', async () => {
  const a = await selected();
  const b = await selected();
  try {
    // FLAGS first, on the FETCH line itself: \Seen is set before the items are rendered (RFC 3501 §6.4.5).
    const read = await a.ok('r1', 'FETCH 3 (FLAGS BODY[])');
    assert.match(read, /body of shared 3/);
    assert.deepEqual(flagsIn(read, 3), ['\\Seen'], read);
    const told = await b.ok('n2', 'NOOP');
    assert.deepEqual(flagsIn(told, 3), ['\\Seen'], told);
    const c = await selected();
    try {
      assert.deepEqual(flagsIn(await c.ok('f3', 'FETCH 3 FLAGS'), 3), ['\\Seen']);
    } finally {
      c.close();
    }
  } finally {
    a.close();
    b.close();
  }
});

test('a change told to a session goes into its own view only: the session that made it is not told twice', async () => {
  const a = await selected();
  const b = await selected();
  try {
    await b.ok('t3', 'STORE 1 +FLAGS.SILENT (\\Answered)');
    const told = await a.ok('n3', 'NOOP');
    assert.deepEqual(flagsIn(told, 1), ['\\Answered'], told);
    // B made the change and already holds it in its own copy: its NOOP tells nothing about message 1.
    const again = await b.ok('n4', 'NOOP');
    assert.equal(flagsIn(again, 1), undefined, again);
  } finally {
    a.close();
    b.close();
  }
});
