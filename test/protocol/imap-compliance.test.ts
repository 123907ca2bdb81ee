/**
 * IMAP behaviour RFC 3501 decides and Dovecot's imaptest checks (issue 10): \Recent, SEARCH by address and sent
 * date, atoms with '[', MOVE into the selected mailbox, LSUB parents, keyword announcements, CAPABILITY by state,
 * the special-use folders at login, and "deleted to Trash" without duplicates. The server runs on port 0 over the
 * Maildir store in a temporary directory, driven by raw command scripts (and imapflow where a client would do it).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import { silentLogger } from '../../src/lib/logger.ts';
import { MaildirMailbox } from '../../src/store/maildir-mailbox.ts';
import { PASSWORD, append, msg, startImapFixture, type ImapFixture } from '../helpers/imap-fixture.ts';
import { RawImap } from '../helpers/raw-imap.ts';

let fx: ImapFixture;
/** Quotas in bytes by login (none by default). */
const quotas = new Map<string, number>();

const login = (user?: string) => fx.login(user);

before(async () => {
  fx = await startImapFixture({ prefix: 'postern-imapc-', quotaBytes: (o) => quotas.get(o.kind === 'user' ? o.login : o.group) ?? 0 });
});

after(() => fx.close());

describe('\\Recent (RFC 3501 §2.3.2)', () => {
  test('one session sees new messages as recent: EXAMINE looks, SELECT claims, STATUS counts the unclaimed', async () => {
    const a = await login();
    await a.ok('r1', 'CREATE Recent1');
    await append(a, 'r2', 'Recent1', msg('one'));
    await append(a, 'r3', 'Recent1', msg('two'));
    assert.match(await a.ok('r4', 'STATUS Recent1 (MESSAGES RECENT)'), /^\* STATUS "?Recent1"? \(MESSAGES 2 RECENT 2\)/m);

    const ex = await a.ok('r5', 'EXAMINE Recent1');
    assert.match(ex, /^\* 2 RECENT\r$/m);
    assert.match(await a.ok('r6', 'FETCH 1:* FLAGS'), /^\* 1 FETCH \(FLAGS \(\\Recent\)\)\r\n\* 2 FETCH \(FLAGS \(\\Recent\)\)/m);
    assert.match(await a.ok('r7', 'SEARCH RECENT'), /^\* SEARCH 1 2\r$/m);
    await a.ok('r8', 'CLOSE');
    // EXAMINE claimed nothing.
    assert.match(await a.ok('r9', 'STATUS Recent1 (RECENT)'), /RECENT 2\)/);

    const b = await login();
    assert.match(await b.ok('s1', 'SELECT Recent1'), /^\* 2 RECENT\r$/m);
    await b.ok('s2', 'STORE 1 +FLAGS.SILENT (\\Seen)');
    assert.match(await b.ok('s3', 'SEARCH NEW'), /^\* SEARCH 2\r$/m);
    assert.match(await b.ok('s4', 'SEARCH OLD'), /^\* SEARCH\r$/m);
    assert.match(await b.ok('s5', 'FETCH 1 FLAGS'), /^\* 1 FETCH \(FLAGS \(\\Recent \\Seen\)\)/m);
    // \Recent cannot be stored or removed by a client.
    assert.match(await b.ok('s6', 'STORE 2 FLAGS (\\Flagged)'), /^\* 2 FETCH \(FLAGS \(\\Recent \\Flagged\)\)/m);
    // The claim holds for the other sessions: nothing recent is left for them.
    assert.match(await a.ok('r10', 'STATUS Recent1 (RECENT)'), /RECENT 0\)/);
    assert.match(await a.ok('r11', 'SELECT Recent1'), /^\* 0 RECENT\r$/m);
    assert.match(await a.ok('r12', 'SEARCH OLD'), /^\* SEARCH 1 2\r$/m);
    assert.match(await a.ok('r13', 'SEARCH RECENT'), /^\* SEARCH\r$/m);
    a.close();
    b.close();
  });

  test('an APPEND or COPY into a selected folder is recent for the session that has it selected', async () => {
    const a = await login();
    await a.ok('a1', 'CREATE Recent2');
    await a.ok('a2', 'CREATE Recent3');
    await a.ok('a3', 'SELECT Recent2');
    const r = await append(a, 'a4', 'Recent2', msg('appended'), '\\Seen');
    assert.match(r, /^\* 1 EXISTS\r\n\* 1 RECENT\r$/m);
    assert.match(await a.ok('a5', 'FETCH 1 FLAGS'), /FLAGS \(\\Recent \\Seen\)/);

    const b = await login();
    await b.ok('b1', 'SELECT Recent3');
    await a.ok('a6', 'COPY 1 Recent3');
    assert.match(await b.ok('b2', 'NOOP'), /^\* 1 EXISTS\r\n\* 1 RECENT\r$/m);
    assert.match(await b.ok('b3', 'FETCH 1 FLAGS'), /FLAGS \(\\Recent \\Seen\)/);
    a.close();
    b.close();
  });

  test('the claim survives a restart of the store (it is kept in the folder index)', async () => {
    const a = await login();
    await a.ok('p1', 'CREATE Recent4');
    await append(a, 'p2', 'Recent4', msg('kept'));
    await a.ok('p3', 'SELECT Recent4');
    a.close();
    const fresh = new MaildirMailbox({ store: fx.store, quotaBytes: () => 0, log: silentLogger });
    try {
      const owner = { kind: 'user' as const, login: 'john.smith' };
      const state = await fresh.openFolder(owner, 'Recent4');
      assert.equal(await fresh.firstRecentUid(owner, 'Recent4'), state.uidNext);
    } finally {
      fresh.close();
    }
  });
});

describe('SEARCH addresses and sent dates (RFC 3501 §6.4.4)', () => {
  test('FROM matches a parsed address; SENTON takes the day written in Date:', async () => {
    const a = await login();
    await a.ok('f1', 'CREATE Search1');
    await append(a, 'f2', 'Search1', 'From: <user-from (comment)@ (comment) domain.org>\r\nDate: Sun, 25 Mar 2007 00:00:00 +0200\r\n\r\nbody\r\n');
    await append(a, 'f3', 'Search1', 'From: user-from1@domain.org (RealFrom)\r\nDate: Sat, 24 Mar 2007 23:00:00 +0200\r\n\r\nbody\r\n');
    await a.ok('f4', 'SELECT Search1');
    assert.match(await a.ok('f5', 'SEARCH FROM user-from@domain.org'), /^\* SEARCH 1\r$/m);
    assert.match(await a.ok('f6', 'SEARCH FROM realfrom'), /^\* SEARCH 2\r$/m);
    assert.match(await a.ok('f7', 'SEARCH SENTON 25-Mar-2007'), /^\* SEARCH 1\r$/m);
    assert.match(await a.ok('f8', 'SEARCH SENTBEFORE 25-Mar-2007'), /^\* SEARCH 2\r$/m);
    a.close();
  });
});

describe('atoms, MOVE, LSUB, keywords', () => {
  test('"[" is an atom character outside FETCH sections: SELECT of such a name is NO and the session goes on', async () => {
    const a = await login();
    assert.match(await a.command('t1', "SELECT !#$&'+,-.0123456789:;<=>?@^_`|[}"), /^t1 NO/m);
    await a.ok('t2', "LIST \"\" !#$&'+,-.0123456789:;<=>?@^_`|[}%*");
    assert.match(await a.command('t3', 'SELECT a[b'), /^t3 NO/m);
    await a.ok('t4', 'NOOP');
    await a.ok('t5', 'SELECT INBOX');
    a.close();
  });

  test('MOVE into the selected mailbox gives the message a new UID: COPYUID, EXPUNGE, then EXISTS', async () => {
    const a = await login();
    await a.ok('m1', 'CREATE Move1');
    await append(a, 'm2', 'Move1', msg('a'));
    await append(a, 'm3', 'Move1', msg('b'));
    const sel = await a.ok('m4', 'SELECT Move1');
    const validity = /UIDVALIDITY (\d+)/.exec(sel)![1];
    const r = await a.ok('m5', 'MOVE 1 Move1');
    assert.match(r, new RegExp(`^\\* OK \\[COPYUID ${validity} 1 3\\][^\\r]*\\r\\n\\* 1 EXPUNGE\\r\\n\\* 2 EXISTS\\r$`, 'm'));
    assert.match(await a.ok('m6', 'FETCH 1:* UID'), /^\* 1 FETCH \(UID 2\)\r\n\* 2 FETCH \(UID 3\)/m);
    a.close();

    const c = new ImapFlow({ host: '127.0.0.1', port: fx.server.port, secure: false, doSTARTTLS: false, auth: { user: 'john.smith', pass: PASSWORD }, logger: false });
    await c.connect();
    try {
      const lock = await c.getMailboxLock('Move1');
      try {
        const res = await c.messageMove('1', 'Move1', { uid: false });
        assert.ok(res && res.uidMap instanceof Map);
        assert.equal(res.uidMap.get(2), 4);
        const uids = (await c.search({ all: true }, { uid: true })) || [];
        assert.deepEqual(uids, [3, 4]);
      } finally {
        lock.release();
      }
    } finally {
      await c.logout();
    }
  });

  test('LSUB lists an unsubscribed parent of a subscribed folder as \\Noselect where "%" stops (RFC 3501 §6.3.9)', async () => {
    const a = await login();
    await a.ok('l1', 'CREATE Subs/a');
    await a.ok('l2', 'CREATE Subs/b/c');
    await a.ok('l3', 'SUBSCRIBE Subs/a');
    await a.ok('l4', 'SUBSCRIBE Subs/b/c');
    const pct = await a.ok('l5', 'LSUB "" Subs/%');
    assert.match(pct, /^\* LSUB \(\) "\/" "?Subs\/a"?\r$/m);
    assert.match(pct, /^\* LSUB \(\\Noselect\) "\/" "?Subs\/b"?\r$/m);
    assert.doesNotMatch(pct, /Subs\/b\/c/);
    const star = await a.ok('l6', 'LSUB "" Subs/*');
    assert.match(star, /Subs\/b\/c/);
    assert.doesNotMatch(star, /"?Subs\/b"?\r/);
    // LIST shows the parent that does not exist (Maildir++ has ".Subs.b.c" without ".Subs.b") as \Noselect.
    assert.match(await a.ok('l7', 'LIST "" Subs/%'), /^\* LIST \(\\Noselect \\HasChildren\) "\/" "?Subs\/b"?\r$/m);
    a.close();
  });

  test('a new keyword is announced with FLAGS and PERMANENTFLAGS before a FETCH shows it, in every session', async () => {
    const a = await login();
    await a.ok('k1', 'CREATE Kw1');
    await append(a, 'k2', 'Kw1', msg('kw'));
    await a.ok('k3', 'SELECT Kw1');
    const b = await login();
    assert.doesNotMatch(await b.ok('j1', 'SELECT Kw1'), /\$Work/);
    const r = await a.ok('k4', 'STORE 1 +FLAGS ($Work)');
    assert.match(r, /^\* FLAGS \([^)]*\$Work\)\r\n\* OK \[PERMANENTFLAGS \([^)]*\$Work \\\*\)\][^\r]*\r\n\* 1 FETCH \(FLAGS \(\\Recent \$Work\)\)/m);
    // Already announced to this session: the next change does not repeat FLAGS.
    assert.doesNotMatch(await a.ok('k5', 'STORE 1 +FLAGS (\\Seen)'), /^\* FLAGS/m);
    const noop = await b.ok('j2', 'NOOP');
    assert.match(noop, /^\* FLAGS \([^)]*\$Work\)\r\n\* OK \[PERMANENTFLAGS [^\r]*\r\n\* 1 FETCH \(UID 1 FLAGS \([^)]*\$Work[^)]*\)\)/m);
    a.close();
    b.close();
  });
});

describe('CAPABILITY by state, folders at login, deleted to Trash', () => {
  test('STARTTLS is offered only before TLS and before login; AUTH= only before login', async () => {
    const a = await RawImap.connect(fx.server.port);
    assert.match(await a.ok('c1', 'CAPABILITY'), /^\* CAPABILITY [^\r]*STARTTLS/m);
    await a.starttls();
    assert.doesNotMatch(await a.ok('c2', 'CAPABILITY'), /STARTTLS/);
    a.close();
    const b = await RawImap.connect(fx.server.port);
    const logged = await b.ok('c3', `LOGIN john.smith "${PASSWORD}"`);
    assert.match(logged, /\[CAPABILITY IMAP4rev1 /);
    assert.doesNotMatch(logged, /STARTTLS|AUTH=/);
    assert.doesNotMatch(await b.ok('c4', 'CAPABILITY'), /STARTTLS|AUTH=|LOGINDISABLED/);
    b.close();
  });

  test("a user's special-use folders exist from the first login, before any LIST", async () => {
    const owner = { kind: 'user' as const, login: 'anna.bianchi' };
    assert.equal(existsSync(join(fx.store.folderPath(owner, 'Sent'), 'cur')), false);
    const a = await login('anna.bianchi');
    await append(a, 'u1', 'Sent', msg('sent'));
    assert.match(await a.ok('u2', 'SELECT Drafts'), /^\* 0 EXISTS/m);
    assert.match(await a.ok('u3', 'STATUS Junk (MESSAGES)'), /MESSAGES 0/);
    assert.match(await a.ok('u4', 'STATUS Trash (MESSAGES)'), /MESSAGES 0/);
    a.close();
  });

  test('with deletedToTrash a client-side move (COPY, \\Deleted, EXPUNGE) leaves one copy; a plain delete goes to Trash', async () => {
    fx.settings['mailbox.deletedToTrash'] = true;
    try {
      const owner = { kind: 'user' as const, login: 'laura.verdi' };
      const a = await login('laura.verdi');
      await a.ok('d1', 'CREATE Archive');
      await append(a, 'd2', 'INBOX', msg('moved by copy'));
      await append(a, 'd3', 'INBOX', msg('deleted'));
      await append(a, 'd4', 'INBOX', msg('copied to trash'));
      await a.ok('d5', 'SELECT INBOX');
      await a.ok('d6', 'COPY 1 Archive');
      await a.ok('d7', 'COPY 3 Trash');
      await a.ok('d8', 'STORE 1:3 +FLAGS.SILENT (\\Deleted)');
      const r = await a.ok('d9', 'EXPUNGE');
      assert.equal((r.match(/^\* \d+ EXPUNGE/gm) ?? []).length, 3);
      const subjects = async (folder: string) => {
        const state = await fx.mailbox.openFolder(owner, folder);
        const out: string[] = [];
        for (const m of state.messages) out.push(/^Subject: (.*)$/m.exec((await fx.mailbox.readMessage(owner, folder, m.uid)).toString())![1].trim());
        return out.sort();
      };
      assert.deepEqual(await subjects('INBOX'), []);
      assert.deepEqual(await subjects('Archive'), ['moved by copy']);
      // The one the client deleted went to Trash (undeleted); the one it copied there itself is not doubled.
      assert.deepEqual(await subjects('Trash'), ['copied to trash', 'deleted']);
      const trash = await fx.mailbox.openFolder(owner, 'Trash');
      assert.ok(trash.messages.every((m) => !m.flags.includes('\\Deleted')));
      a.close();
    } finally {
      fx.settings['mailbox.deletedToTrash'] = false;
    }
  });
});

describe('ESEARCH (RFC 4731), SEARCHRES (RFC 5182), WITHIN (RFC 5032)', () => {
  test('SEARCH RETURN gives MIN, MAX, ALL and COUNT in one ESEARCH, tagged and UID-marked', async () => {
    const a = await login();
    await a.ok('e1', 'CREATE Es1');
    for (let i = 1; i <= 5; i++) await append(a, `e2${i}`, 'Es1', msg(`m${i}`), i % 2 ? '\\Seen' : '');
    await a.ok('e3', 'SELECT Es1');
    assert.match(await a.ok('e4', 'CAPABILITY'), /ESEARCH SEARCHRES WITHIN/);
    assert.match(await a.ok('e5', 'SEARCH RETURN (MIN MAX COUNT ALL) SEEN'), /^\* ESEARCH \(TAG "e5"\) MIN 1 MAX 5 ALL 1,3,5 COUNT 3\r$/m);
    assert.match(await a.ok('e6', 'SEARCH RETURN () ALL'), /^\* ESEARCH \(TAG "e6"\) ALL 1:5\r$/m);
    assert.match(await a.ok('e7', 'UID SEARCH RETURN (COUNT) UNSEEN'), /^\* ESEARCH \(TAG "e7"\) UID COUNT 2\r$/m);
    // Nothing matched: only COUNT is given.
    assert.match(await a.ok('e8', 'SEARCH RETURN (MIN MAX COUNT) 1000'), /^\* ESEARCH \(TAG "e8"\) COUNT 0\r$/m);
    assert.match(await a.command('e9', 'SEARCH RETURN (FROB) ALL'), /^e9 BAD/m);
    // Without RETURN the answer stays a plain SEARCH.
    assert.match(await a.ok('e10', 'SEARCH SEEN'), /^\* SEARCH 1 3 5\r$/m);
    a.close();
  });

  test('RETURN (SAVE) keeps the result as "$" for FETCH, STORE, SEARCH and UID commands; expunged messages leave it', async () => {
    const a = await login();
    await a.ok('v1', 'CREATE Es2');
    for (let i = 1; i <= 4; i++) await append(a, `v2${i}`, 'Es2', msg(`s${i}`), i > 2 ? '\\Flagged' : '');
    await a.ok('v3', 'SELECT Es2');
    const saved = await a.ok('v4', 'SEARCH RETURN (SAVE) FLAGGED');
    assert.doesNotMatch(saved, /ESEARCH|\* SEARCH/, 'SAVE alone answers nothing untagged');
    assert.match(await a.ok('v5', 'FETCH $ (UID)'), /^\* 3 FETCH \(UID 3\)\r\n\* 4 FETCH \(UID 4\)\r$/m);
    assert.match(await a.ok('v6', 'UID SEARCH UID $ SEEN'), /^\* SEARCH\r$/m);
    await a.ok('v7', 'STORE $ +FLAGS.SILENT (\\Seen)');
    assert.match(await a.ok('v8', 'SEARCH $ SEEN'), /^\* SEARCH 3 4\r$/m);
    await a.ok('v9', 'STORE 3 +FLAGS.SILENT (\\Deleted)');
    await a.ok('v10', 'EXPUNGE');
    assert.match(await a.ok('v11', 'UID FETCH $ (FLAGS)'), /^\* 3 FETCH \(UID 4 FLAGS \([^)]*\)\)\r\nv11 OK/m);
    // With MIN alone only the first match is saved, and the ESEARCH is still sent.
    assert.match(await a.ok('v12', 'SEARCH RETURN (SAVE MIN) ALL'), /^\* ESEARCH \(TAG "v12"\) MIN 1\r$/m);
    assert.match(await a.ok('v13', 'SEARCH $'), /^\* SEARCH 1\r$/m);
    // A failed SEARCH ... SAVE empties it.
    assert.match(await a.command('v14', 'SEARCH RETURN (SAVE) FROB'), /^v14 BAD/m);
    assert.match(await a.ok('v15', 'SEARCH $'), /^\* SEARCH\r$/m);
    // A new SELECT starts with nothing saved.
    await a.ok('v16', 'SEARCH RETURN (SAVE) ALL');
    await a.ok('v17', 'SELECT Es2');
    assert.match(await a.ok('v18', 'FETCH $ UID'), /^v18 OK/m);
    assert.match(await a.ok('v19', 'SEARCH $'), /^\* SEARCH\r$/m);
    a.close();
  });

  test('OLDER and YOUNGER compare the internal date with now, in seconds', async () => {
    const a = await login();
    await a.ok('w1', 'CREATE Within1');
    const msgOld = msg('old');
    a.send(`w2 APPEND Within1 "01-Jan-2020 10:00:00 +0000" {${msgOld.length}+}\r\n${msgOld}\r\n`);
    await a.until(/^w2 OK/m);
    await append(a, 'w3', 'Within1', msg('new'));
    await a.ok('w4', 'SELECT Within1');
    assert.match(await a.ok('w5', 'SEARCH YOUNGER 3600'), /^\* SEARCH 2\r$/m);
    assert.match(await a.ok('w6', 'SEARCH OLDER 3600'), /^\* SEARCH 1\r$/m);
    assert.match(await a.ok('w7', 'SEARCH NOT OLDER 3600'), /^\* SEARCH 2\r$/m);
    assert.match(await a.command('w8', 'SEARCH OLDER 0'), /^w8 BAD/m);
    a.close();
  });
});

describe('LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), STATUS=SIZE (RFC 8438)', () => {
  test('selection and return options: SUBSCRIBED with \\NonExistent, RECURSIVEMATCH with CHILDINFO, several patterns', async () => {
    const a = await login();
    for (const f of ['Lx/one', 'Lx/two/one', 'Lx/three', 'Lx/gone']) await a.ok('x1', `CREATE ${f}`);
    for (const f of ['Lx/one', 'Lx/two/one', 'Lx/gone']) await a.ok('x2', `SUBSCRIBE ${f}`);
    await a.ok('x3', 'DELETE Lx/gone');
    assert.match(await a.ok('x4', 'CAPABILITY'), /LIST-EXTENDED LIST-STATUS STATUS=SIZE/);

    const subscribed = await a.ok('x5', 'LIST (SUBSCRIBED) "" Lx/*');
    assert.match(subscribed, /^\* LIST \([^)]*\\Subscribed[^)]*\) "\/" "?Lx\/one"?\r$/m);
    assert.match(subscribed, /^\* LIST \([^)]*\\Subscribed[^)]*\) "\/" "?Lx\/two\/one"?\r$/m);
    assert.match(subscribed, /^\* LIST \((?=[^)]*\\NonExistent)(?=[^)]*\\Subscribed)[^)]*\) "\/" "?Lx\/gone"?\r$/m);
    assert.doesNotMatch(subscribed, /Lx\/three/);

    const recursive = await a.ok('x6', 'LIST (SUBSCRIBED RECURSIVEMATCH) "" Lx/%');
    assert.match(recursive, /^\* LIST \([^)]*\) "\/" "?Lx\/two"? \("CHILDINFO" \("SUBSCRIBED"\)\)\r$/m);
    assert.doesNotMatch(recursive, /"?Lx\/two"? \([^)]*\\Subscribed/);

    const two = await a.ok('x7', 'LIST "" (Lx/three Lx/one) RETURN (SUBSCRIBED CHILDREN)');
    assert.match(two, /^\* LIST \(\\HasNoChildren \\Subscribed\) "\/" "?Lx\/one"?\r$/m);
    assert.match(two, /^\* LIST \(\\HasNoChildren\) "\/" "?Lx\/three"?\r$/m);
    assert.equal((two.match(/^\* LIST/gm) ?? []).length, 2);

    for (const [tag, bad] of [['x8', 'LIST (FROB) "" *'], ['x9', 'LIST (RECURSIVEMATCH) "" *'], ['x10', 'LIST (RECURSIVEMATCH REMOTE) "" *'], ['x11', 'LIST "" * RETURN (FROB)']]) {
      assert.match(await a.command(tag, bad), new RegExp(`^${tag} BAD`, 'm'), bad);
    }
    // With the extended syntax "" is an ordinary pattern, not the separator question.
    assert.doesNotMatch(await a.ok('x12', 'LIST () "" ""'), /^\* LIST/m);
    a.close();
  });

  test('RETURN (STATUS ...) follows each selectable mailbox with its STATUS; STATUS SIZE is the sum of the sizes', async () => {
    const a = await login();
    await a.ok('y1', 'CREATE Ls/a');
    await a.ok('y2', 'CREATE Ls/b/c');
    const m1 = msg('size one');
    const m2 = msg('size two, longer');
    await append(a, 'y3', 'Ls/a', m1, '\\Seen');
    await append(a, 'y4', 'Ls/a', m2);
    const r = await a.ok('y5', 'LIST "" Ls/* RETURN (STATUS (MESSAGES UNSEEN SIZE))');
    const size = Buffer.byteLength(m1) + Buffer.byteLength(m2);
    assert.match(r, new RegExp(`^\\* LIST \\([^)]*\\) "/" "?Ls/a"?\\r\\n\\* STATUS "?Ls/a"? \\(MESSAGES 2 UNSEEN 1 SIZE ${size}\\)\\r$`, 'm'));
    assert.match(r, /^\* STATUS "?Ls\/b\/c"? \(MESSAGES 0 UNSEEN 0 SIZE 0\)\r$/m);
    // "Ls/b" does not exist (Maildir++): listed as a parent, but it has no STATUS.
    assert.match(r, /^\* LIST \(\\Noselect \\HasChildren\) "\/" "?Ls\/b"?\r$/m);
    assert.doesNotMatch(r, /STATUS "?Ls\/b"? /);
    assert.match(await a.ok('y6', 'STATUS Ls/a (SIZE)'), new RegExp(`^\\* STATUS "?Ls/a"? \\(SIZE ${size}\\)`, 'm'));
    assert.match(await a.command('y7', 'LIST "" * RETURN (STATUS (FROB))'), /^y7 BAD/m);
    a.close();
  });

  test('imapflow lists with status through LIST-STATUS', async () => {
    const c = new ImapFlow({ host: '127.0.0.1', port: fx.server.port, secure: false, doSTARTTLS: false, auth: { user: 'john.smith', pass: PASSWORD }, logger: false });
    await c.connect();
    try {
      const list = await c.list({ statusQuery: { messages: true, unseen: true } });
      const a = list.find((f) => f.path === 'Ls/a');
      assert.ok(a?.status, 'status delivered with the list');
      assert.equal(a.status.messages, 2);
      assert.equal(a.status.unseen, 1);
    } finally {
      await c.logout();
    }
  });
});

describe('CREATE-SPECIAL-USE (RFC 6154 §3), MULTIAPPEND (RFC 3502)', () => {
  test('CREATE with USE is honoured when the name carries the use, refused with USEATTR (and nothing created) otherwise', async () => {
    const a = await login('giulia.gallo');
    assert.match(await a.ok('n0', 'CAPABILITY'), /CREATE-SPECIAL-USE/);
    await a.ok('n1', 'CREATE "Sent Items" (USE (\\Sent))');
    await a.ok('n2', 'CREATE Archive (USE (\\Archive))');
    assert.match(await a.command('n3', 'CREATE Receipts (USE (\\Sent))'), /^n3 NO \[USEATTR\]/m);
    assert.match(await a.command('n4', 'CREATE Archive2 (USE (\\Frob))'), /^n4 NO \[USEATTR\]/m);
    assert.match(await a.command('n5', 'CREATE Other (FROB (x))'), /^n5 BAD/m);
    const special = await a.ok('n6', 'LIST (SPECIAL-USE) "" *');
    assert.match(special, /^\* LIST \([^)]*\\Sent[^)]*\) "\/" "Sent Items"\r$/m);
    assert.match(special, /^\* LIST \([^)]*\\Archive[^)]*\) "\/" "?Archive"?\r$/m);
    assert.doesNotMatch(special, /INBOX|Receipts|Archive2/);
    const all = await a.ok('n7', 'LIST "" *');
    assert.doesNotMatch(all, /Receipts|Archive2|Other/);
    a.close();
  });

  test('APPEND of several messages stores them all with one APPENDUID, or none when one fails', async () => {
    const a = await login('giulia.gallo');
    await a.ok('q1', 'CREATE Multi');
    const m1 = msg('multi one');
    const m2 = msg('multi two');
    a.send(`q2 APPEND Multi (\\Seen) {${m1.length}+}\r\n${m1} (\\Flagged) "01-Jan-2020 10:00:00 +0000" {${m2.length}+}\r\n${m2}\r\n`);
    const r = await a.until(/^q2 (OK|NO|BAD).*\r\n/m);
    assert.match(r, /^q2 OK \[APPENDUID \d+ 1:2\]/m);
    await a.ok('q3', 'SELECT Multi');
    const f = await a.ok('q4', 'FETCH 1:2 (FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])');
    assert.match(f, /^\* 1 FETCH \(FLAGS \([^)]*\\Seen[^)]*\)/m);
    assert.match(f, /^\* 2 FETCH \(FLAGS \([^)]*\\Flagged[^)]*\) INTERNALDATE " 1-Jan-2020 10:00:00 \+0000"/m);
    assert.match(f, /multi two/);
    await a.ok('q5', 'UNSELECT');

    // A bad second item: nothing is stored.
    a.send(`q6 APPEND Multi {${m1.length}+}\r\n${m1} (\\Seen) (\\Seen) {${m2.length}+}\r\n${m2}\r\n`);
    assert.match(await a.until(/^q6 (OK|NO|BAD).*\r\n/m), /^q6 BAD/m);
    // Over quota at the second message: the first one is taken back.
    const owner = { kind: 'user' as const, login: 'giulia.gallo' };
    const used = (await fx.mailbox.quota(owner)).usedBytes;
    quotas.set('giulia.gallo', used + m1.length + 10);
    try {
      a.send(`q7 APPEND Multi {${m1.length}+}\r\n${m1} {${m2.length}+}\r\n${m2}\r\n`);
      assert.match(await a.until(/^q7 (OK|NO|BAD).*\r\n/m), /^q7 NO \[OVERQUOTA\]/m);
    } finally {
      quotas.delete('giulia.gallo');
    }
    assert.equal((await fx.mailbox.openFolder(owner, 'Multi')).messages.length, 2);
    a.close();
  });
});

describe('I18NLEVEL=1 (RFC 5255)', () => {
  test('SEARCH compares with i;unicode-casemap: case is ignored beyond ASCII, accents are not', async () => {
    const a = await login();
    assert.match(await a.ok('i0', 'CAPABILITY'), /I18NLEVEL=1/);
    await a.ok('i1', 'CREATE I18n');
    await append(a, 'i2', 'I18n', 'Subject: =?UTF-8?Q?Caff=C3=A8_=C3=80_Roma?=\r\n\r\nbody\r\n');
    await a.ok('i3', 'SELECT I18n');
    const search = async (tag: string, text: string) => {
      const bytes = Buffer.from(text, 'utf8');
      a.send(Buffer.concat([Buffer.from(`${tag} SEARCH CHARSET UTF-8 SUBJECT {${bytes.length}+}\r\n`), bytes, Buffer.from('\r\n')]));
      return a.until(new RegExp(`^${tag} OK.*\\r\\n`, 'm'));
    };
    assert.match(await search('i4', 'CAFFÈ à'), /^\* SEARCH 1\r$/m);
    assert.match(await search('i5', 'caffe à'), /^\* SEARCH\r$/m);
    a.close();
  });
});

describe('PREVIEW (RFC 8970)', () => {
  test('FETCH PREVIEW and PREVIEW (LAZY) give the text preview and leave \\Seen alone', async () => {
    const a = await login();
    assert.match(await a.ok('pv0', 'CAPABILITY'), / PREVIEW/);
    await a.ok('pv1', 'CREATE Preview1');
    await append(a, 'pv2', 'Preview1', 'Subject: p\r\nContent-Type: text/plain\r\n\r\nHello   there,\r\nsee you.\r\n');
    await a.ok('pv3', 'SELECT Preview1');
    assert.match(await a.ok('pv4', 'FETCH 1 (UID PREVIEW)'), /^\* 1 FETCH \(UID 1 PREVIEW "Hello there, see you\."\)\r$/m);
    assert.match(await a.ok('pv5', 'FETCH 1 PREVIEW (LAZY)'), /^\* 1 FETCH \(PREVIEW "Hello there, see you\."\)\r$/m);
    assert.match(await a.ok('pv6', 'FETCH 1 (PREVIEW (LAZY) FLAGS)'), /PREVIEW "Hello there, see you\." FLAGS \(\\Recent\)\)/);
    assert.match(await a.command('pv7', 'FETCH 1 PREVIEW (FROB)'), /^pv7 BAD/m);
    assert.match(await a.command('pv8', 'FETCH 1 FLAGS (LAZY)'), /^pv8 BAD/m);
    a.close();
  });
});

describe('CATENATE (RFC 4469)', () => {
  test('APPEND CATENATE joins TEXT literals and parts of stored messages named by IMAP URLs', async () => {
    const a = await login();
    await a.ok('ct1', 'CREATE Cat1');
    await append(a, 'ct2', 'Cat1', 'From: foo@example.com\r\nSubject: src\r\n\r\nHello world body\r\n');
    const sel = await a.ok('ct3', 'EXAMINE Cat1');
    const validity = /UIDVALIDITY (\d+)/.exec(sel)![1];
    assert.match(await a.ok('ct0', 'CAPABILITY'), /CATENATE/);
    const tail = 'suffix\r\n';
    a.send(`ct4 APPEND Cat1 (\\Seen) CATENATE (URL "/Cat1;UIDVALIDITY=${validity}/;UID=1/;SECTION=HEADER" TEXT {${tail.length}+}\r\n${tail} URL "/Cat1/;UID=1/;SECTION=TEXT")\r\n`);
    assert.match(await a.until(/^ct4 (OK|NO|BAD).*\r\n/m), /^ct4 OK \[APPENDUID \d+ 2\]/m);
    assert.match(
      await a.ok('ct5', 'FETCH 2 BODY.PEEK[]'),
      /BODY\[\] \{\d+\}\r\nFrom: foo@example.com\r\nSubject: src\r\n\r\nsuffix\r\nHello world body\r\n\)/,
    );
    // A URL that does not resolve (wrong UIDVALIDITY, missing UID): NO [BADURL], nothing stored.
    assert.match(await a.command('ct6', 'APPEND Cat1 CATENATE (URL "/Cat1;UIDVALIDITY=1/;UID=1/;SECTION=HEADER")'), /^ct6 NO \[BADURL \/Cat1;UIDVALIDITY=1\/;UID=1\/;SECTION=HEADER\]/m);
    assert.match(await a.command('ct7', 'APPEND Cat1 CATENATE (URL "/Cat1/;UID=99")'), /^ct7 NO \[BADURL/m);
    // The target is checked first: a missing one is TRYCREATE even with a bad URL.
    assert.match(await a.command('ct8', 'APPEND NoSuchCat CATENATE (URL "/Cat1;UIDVALIDITY=1/;UID=1")'), /^ct8 NO \[TRYCREATE\]/m);
    assert.match(await a.command('ct9', 'APPEND Cat1 CATENATE (FROB "x")'), /^ct9 BAD/m);
    assert.match(await a.ok('ct10', 'STATUS Cat1 (MESSAGES)'), /MESSAGES 2\)/);
    a.close();
  });
});
