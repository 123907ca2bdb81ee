/**
 * NOTIFY (RFC 5465): one session names mailboxes and events, another changes them, and the first hears untagged
 * STATUS / LIST / EXISTS / EXPUNGE / FETCH without sending a command. Raw sessions of one user on a real listener
 * (port 0) over the Maildir store. (The imaptest "notify" group also needs QRESYNC, built on another branch.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PASSWORD, append, ldifAuth, msg, startImapFixture, type ImapFixture } from '../helpers/imap-fixture.ts';
import { RawImap } from '../helpers/raw-imap.ts';

let fx: ImapFixture;
const login = () => fx.login();

before(async () => {
  fx = await startImapFixture({ prefix: 'postern-imapnotify-' });
});

after(() => fx.close());

/** What arrives on `c` within `ms` without a command: for asserting that nothing (of a kind) was said. */
async function quietFor(c: RawImap, ms: number): Promise<string> {
  c.send('q0 NOOP\r\n');
  await new Promise((r) => setTimeout(r, ms));
  return c.until(/^q0 OK.*\r\n/m);
}

async function created(c: RawImap, ...names: string[]) {
  for (const n of names) await c.ok('cr', `CREATE ${n}`);
}

describe('NOTIFY (RFC 5465)', () => {
  test('announced after login; NOTIFY SET STATUS reports the watched mailboxes at once, plain NOTIFY SET does not', async () => {
    const a = await login();
    try {
      assert.match(await a.ok('c', 'CAPABILITY'), /^\* CAPABILITY .* NOTIFY/m);
      await created(a, 'N1', 'N1/sub');
      await append(a, 'ap', 'N1', msg('one'));
      const r = await a.ok('n1', 'NOTIFY SET STATUS (subtree N1 (MessageNew MessageExpunge))');
      assert.match(r, /^\* STATUS "N1" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 1\)\r\n/m);
      assert.match(r, /^\* STATUS "N1\/sub" \(MESSAGES 0 UIDNEXT 1 UIDVALIDITY \d+ UNSEEN 0\)\r\n/m);
      assert.doesNotMatch(r, /STATUS "INBOX"/);
      assert.doesNotMatch(await a.ok('n2', 'NOTIFY SET (mailboxes N1 (MessageNew MessageExpunge FlagChange))'), /STATUS/);
    } finally {
      a.close();
    }
  });

  test('another session appends, flags and expunges in a mailbox that is not selected: STATUS arrives unasked', async () => {
    const a = await login();
    const b = await login();
    try {
      await created(a, 'N2');
      await a.ok('n', 'NOTIFY SET (mailboxes N2 (MessageNew MessageExpunge FlagChange))');
      await append(b, 'b1', 'N2', msg('one'));
      // No command from a: the STATUS comes by itself.
      assert.match(await a.until(/^\* STATUS .*\r\n/m), /^\* STATUS "N2" \(MESSAGES 1 UIDNEXT 2 UNSEEN 1 HIGHESTMODSEQ \d+\)\r\n/m);
      await b.ok('b2', 'SELECT N2');
      await b.ok('b3', 'STORE 1 +FLAGS (\\Seen)');
      assert.match(await a.until(/^\* STATUS .*\r\n/m), /^\* STATUS "N2" \(UNSEEN 0 HIGHESTMODSEQ \d+\)\r\n/m);
      await b.ok('b4', 'STORE 1 +FLAGS (\\Deleted)');
      // \Deleted changes no STATUS item but the HIGHESTMODSEQ (RFC 5465 §5.3 with CONDSTORE announced).
      assert.match(await a.until(/^\* STATUS .*\r\n/m), /^\* STATUS "N2" \(HIGHESTMODSEQ \d+\)\r\n/m);
      await b.ok('b5', 'EXPUNGE');
      assert.match(await a.until(/^\* STATUS .*\r\n/m), /^\* STATUS "N2" \(MESSAGES 0( HIGHESTMODSEQ \d+)?\)\r\n/m);
      // NOTIFY NONE: nothing more.
      await a.ok('nn', 'NOTIFY NONE');
      await append(b, 'b6', 'N2', msg('two'));
      assert.doesNotMatch(await quietFor(a, 300), /STATUS/);
    } finally {
      a.close();
      b.close();
    }
  });

  test('the most specific filter decides: personal minus a mailbox whose events are NONE; no STATUS for the selected one', async () => {
    const a = await login();
    const b = await login();
    try {
      await created(a, 'Loud', 'Quiet');
      await a.ok('s', 'SELECT INBOX');
      await a.ok('n', 'NOTIFY SET (personal (MessageNew MessageExpunge)) (mailboxes Quiet NONE)');
      await append(b, 'b1', 'Quiet', msg('shh'));
      await append(b, 'b2', 'INBOX', msg('selected'));
      await append(b, 'b3', 'Loud', msg('hello'));
      const heard = await a.until(/^\* STATUS "Loud".*\r\n/m);
      assert.doesNotMatch(heard, /STATUS "Quiet"|STATUS "INBOX"/);
      // The selected INBOX is told the RFC 3501 way, at the next command.
      assert.match(await a.ok('n2', 'NOOP'), /^\* \d+ EXISTS/m);
    } finally {
      a.close();
      b.close();
    }
  });

  test('MailboxName and SubscriptionChange: LIST for create, rename (OLDNAME), (un)subscribe and delete', async () => {
    const a = await login();
    const b = await login();
    try {
      await created(a, 'Tree');
      await a.ok('n', 'NOTIFY SET (subtree Tree (MailboxName SubscriptionChange))');
      await b.ok('b1', 'CREATE Tree/new');
      assert.match(await a.until(/^\* LIST .*\r\n/m), /^\* LIST \(\) "\/" "Tree\/new"\r\n/m);
      await b.ok('b2', 'RENAME Tree/new Tree/renamed');
      assert.match(await a.until(/^\* LIST .*\r\n/m), /^\* LIST \(\) "\/" "Tree\/renamed" \("OLDNAME" \("Tree\/new"\)\)\r\n/m);
      await b.ok('b3', 'SUBSCRIBE Tree/renamed');
      assert.match(await a.until(/^\* LIST .*\r\n/m), /^\* LIST \(\\Subscribed\) "\/" "Tree\/renamed"\r\n/m);
      await b.ok('b4', 'UNSUBSCRIBE Tree/renamed');
      assert.match(await a.until(/^\* LIST .*\r\n/m), /^\* LIST \(\) "\/" "Tree\/renamed"\r\n/m);
      await b.ok('b5', 'DELETE Tree/renamed');
      assert.match(await a.until(/^\* LIST .*\r\n/m), /^\* LIST \(\\NonExistent\) "\/" "Tree\/renamed"\r\n/m);
      // Outside the subtree nothing is said.
      await b.ok('b6', 'CREATE Elsewhere');
      assert.doesNotMatch(await quietFor(a, 300), /LIST/);
    } finally {
      a.close();
      b.close();
    }
  });

  test('a mailbox created after NOTIFY SET is watched too (personal)', async () => {
    const a = await login();
    const b = await login();
    try {
      await a.ok('n', 'NOTIFY SET (personal (MessageNew MessageExpunge MailboxName))');
      await b.ok('b1', 'CREATE Later');
      await a.until(/^\* LIST \(\) "\/" "Later"\r\n/m);
      await append(b, 'b2', 'Later', msg('late'));
      assert.match(await a.until(/^\* STATUS "Later".*\r\n/m), /MESSAGES 1/);
    } finally {
      a.close();
      b.close();
    }
  });

  test('a message put into a mailbox right as it is created, before this session watches it, is reported too', async () => {
    const a = await login();
    const b = await login();
    try {
      await a.ok('n', 'NOTIFY SET (personal (MessageNew MessageExpunge MailboxName))');
      // No wait between the two: the APPEND may land before A's session has begun to watch the new mailbox.
      await b.ok('b1', 'CREATE Sudden');
      await append(b, 'b2', 'Sudden', msg('sudden'));
      await a.until(/^\* LIST \(\) "\/" "Sudden"\r\n/m);
      assert.match(await a.until(/^\* STATUS "Sudden".*\r\n/m), /MESSAGES 1/);
    } finally {
      a.close();
      b.close();
    }
  });

  test('selected: EXISTS with the MessageNew fetch attributes, FETCH FLAGS and EXPUNGE arrive without a command', async () => {
    const a = await login();
    const b = await login();
    try {
      await created(a, 'Sel');
      await append(a, 'ap', 'Sel', msg('first'));
      await a.ok('s', 'SELECT Sel');
      await a.ok('n', 'NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange))');
      await append(b, 'b1', 'Sel', msg('second'));
      assert.match(await a.until(/^\* 2 FETCH .*\r\n/m), /^\* 2 EXISTS\r\n(?:\* \d+ RECENT\r\n)?\* 2 FETCH \(UID \d+ FLAGS \((?:\\Recent)?\)\)\r\n/m);
      await b.ok('b2', 'SELECT Sel');
      await b.ok('b3', 'STORE 1 +FLAGS (\\Flagged)');
      assert.match(await a.until(/^\* 1 FETCH .*\r\n/m), /^\* 1 FETCH \(UID \d+ FLAGS \((?:\\Recent )?\\Flagged\)\)\r\n/m);
      await b.ok('b4', 'STORE 1 +FLAGS (\\Deleted)');
      await b.ok('b5', 'EXPUNGE');
      await a.until(/^\* 1 EXPUNGE\r\n/m);
    } finally {
      a.close();
      b.close();
    }
  });

  test('selected-delayed: new messages at once, EXPUNGE only when a command allows it (RFC 3501 §7.4.1)', async () => {
    const a = await login();
    const b = await login();
    try {
      await created(a, 'Del');
      await append(a, 'ap', 'Del', msg('first'));
      await a.ok('s', 'SELECT Del');
      await a.ok('n', 'NOTIFY SET (selected-delayed (MessageNew MessageExpunge))');
      await b.ok('b0', 'SELECT Del');
      await b.ok('b1', 'STORE 1 +FLAGS (\\Deleted)');
      await b.ok('b2', 'EXPUNGE');
      await append(b, 'b3', 'Del', msg('second'));
      // The EXISTS counts the message not yet expunged in a's view.
      await a.until(/^\* 2 EXISTS\r\n/m);
      assert.match(await a.ok('no', 'NOOP'), /^\* 1 EXPUNGE\r\n/m);
    } finally {
      a.close();
      b.close();
    }
  });

  test('refusals: unsupported events are NO [BADEVENT], bad syntax BAD, and a refused NOTIFY keeps the one before', async () => {
    const a = await login();
    const b = await login();
    try {
      await created(a, 'Ref');
      await a.ok('n0', 'NOTIFY SET (mailboxes Ref (MessageNew MessageExpunge))');
      for (const [i, ev] of ['AnnotationChange', 'MailboxMetadataChange', 'ServerMetadataChange'].entries()) {
        const r = await a.command(`e${i}`, `NOTIFY SET (mailboxes Ref (MessageNew MessageExpunge ${ev}))`);
        assert.match(r, new RegExp(`^e${i} NO \\[BADEVENT \\(MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange\\)\\]`, 'm'), ev);
      }
      for (const [i, bad] of [
        'SET (mailboxes Ref (MessageNew (UID) MessageExpunge))',
        'SET (selected (MessageNew)) (selected-delayed (MessageNew))',
        'SET (nowhere (MessageNew))',
        'SET (personal (NoSuchEvent))',
        'SET (personal)',
        'NONE now',
        'MAYBE',
      ].entries()) {
        assert.match(await a.command(`x${i}`, `NOTIFY ${bad}`), new RegExp(`^x${i} BAD`, 'm'), bad);
      }
      await append(b, 'b1', 'Ref', msg('still'));
      await a.until(/^\* STATUS "Ref" \(MESSAGES 1 UIDNEXT 2 UNSEEN 1( HIGHESTMODSEQ \d+)?\)\r\n/m);
    } finally {
      a.close();
      b.close();
    }
  });
  test('a client that does not read what it asked for gets [NOTIFICATIONOVERFLOW] and NOTIFY is off (RFC 5465 §5.8)', async () => {
    // A listener of its own with a small limit: the default (4 MiB beyond the kernel's buffers) takes too long to fill.
    const small = await fx.listen({ auth: ldifAuth(), notifyBacklogBytes: 64 * 1024 });
    const a = await RawImap.login(small.port, 'john.smith', PASSWORD);
    const b = await login();
    try {
      await created(a, 'Flood');
      await a.ok('s', 'SELECT Flood');
      await a.ok('n', 'NOTIFY SET (selected (MessageNew (BODY.PEEK[]) MessageExpunge))');
      // a stops reading; every new message is a 1 MiB FETCH it does not take.
      a.socket.pause();
      const big = msg('big') + 'x'.repeat(1024 * 1024) + '\r\n';
      for (let i = 0; i < 16; i++) await append(b, `b${i}`, 'Flood', big);
      a.socket.resume();
      await a.until(/^\* OK \[NOTIFICATIONOVERFLOW\].*\r\n/m, 20_000);
      // The session goes on, with the base protocol's updates.
      assert.match(await a.command('no', 'NOOP'), /^no OK/m);
    } finally {
      a.close();
      b.close();
      await small.close();
    }
  });
});
