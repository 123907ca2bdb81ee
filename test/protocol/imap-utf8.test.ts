/**
 * UTF8=ACCEPT (RFC 6855) and IMAP4rev2 (RFC 9051) beside IMAP4rev1: what a session sees after ENABLE, and that a
 * session that enables nothing sees exactly RFC 3501. The server runs on port 0 over the Maildir store in a
 * temporary directory, driven by raw command scripts; the folder directories are checked on disk, where names stay
 * modified UTF-7 as Dovecot keeps them.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import { PASSWORD, append, msg, startImapFixture, type ImapFixture } from '../helpers/imap-fixture.ts';
import type { RawImap } from '../helpers/raw-imap.ts';

let fx: ImapFixture;

/** RawImap keeps what it received as latin1 (one char per byte): this reads it back as UTF-8. */
const utf8 = (latin1: string) => Buffer.from(latin1, 'latin1').toString('utf8');
const maildir = (login: string) => join(fx.dir, 'mail', 'users', login, 'Maildir');

const login = (user?: string) => fx.login(user);

/** `APPEND <mailbox> [flags] UTF8 (~{n+}<message>)` (RFC 6855 §4). */
async function appendUtf8(c: RawImap, tag: string, head: string, message: string): Promise<string> {
  c.send(Buffer.concat([Buffer.from(`${tag} APPEND ${head} UTF8 (~{${Buffer.byteLength(message)}+}\r\n`), Buffer.from(message), Buffer.from(')\r\n')]));
  return c.until(new RegExp(`^${tag} (OK|NO|BAD).*\\r\\n`, 'm'));
}

before(async () => {
  fx = await startImapFixture({ prefix: 'postern-imaputf8-' });
});

after(() => fx.close());

describe('UTF8=ACCEPT (RFC 6855)', () => {
  test('is announced, and ENABLE answers ENABLED UTF8=ACCEPT once (nothing for what is unknown or already on)', async () => {
    const c = await login();
    assert.match(await c.ok('a1', 'CAPABILITY'), /^\* CAPABILITY .* UTF8=ACCEPT[ \r]/m);
    const r = await c.ok('a2', 'ENABLE utf8=accept X-UNKNOWN');
    assert.match(r, /^\* ENABLED UTF8=ACCEPT\r\n/m);
    assert.match(await c.ok('a3', 'ENABLE UTF8=ACCEPT'), /^\* ENABLED\r\n/m);
    c.close();
  });

  test('a UTF-8 name is created as modified UTF-7 on disk; the rev1 session sees modified UTF-7, the UTF-8 one UTF-8', async () => {
    const u = await login();
    await u.ok('b1', 'ENABLE UTF8=ACCEPT');
    await u.ok('b2', 'CREATE "Café"');
    await u.ok('b2b', 'CREATE "Café/Entwürfe"');
    assert.ok(existsSync(join(maildir('john.smith'), '.Caf&AOk-.Entw&APw-rfe')), 'directory as Dovecot names it');
    const list = utf8(await u.ok('b3', 'LIST "" "Caf*"'));
    // RFC 6855 §3: UTF-8 goes in quoted strings once enabled.
    assert.match(list, /^\* LIST \(\\HasChildren\) "\/" "Café"\r\n/m);
    assert.match(list, /^\* LIST \(\\HasNoChildren\) "\/" "Café\/Entwürfe"\r\n/m);
    assert.match(utf8(await u.ok('b4', 'STATUS "Café/Entwürfe" (MESSAGES)')), /^\* STATUS "Café\/Entwürfe" \(MESSAGES 0\)/m);

    const r1 = await login();
    const old = await r1.ok('b5', 'LIST "" "Caf*"');
    assert.match(old, /^\* LIST \(\\HasChildren\) "\/" "Caf&AOk-"\r\n/m);
    assert.match(old, /^\* LIST \(\\HasNoChildren\) "\/" "Caf&AOk-\/Entw&APw-rfe"\r\n/m);
    assert.match(await r1.ok('b6', 'SELECT Caf&AOk-/Entw&APw-rfe'), /^b6 OK \[READ-WRITE\]/m);
    u.close();
    r1.close();
  });

  test('"&" is an ordinary character in a UTF-8 name, and modified UTF-7 is not decoded any more', async () => {
    const u = await login();
    await u.ok('c1', 'ENABLE UTF8=ACCEPT');
    await u.ok('c2', 'CREATE "R&D"');
    assert.ok(existsSync(join(maildir('john.smith'), '.R&-D')));
    // "Caf&AOk-" is now a name of its own, not "Café".
    assert.match(await u.command('c3', 'SELECT "Caf&AOk-"'), /^c3 NO \[NONEXISTENT\]/m);
    const r1 = await login();
    assert.match(await r1.ok('c4', 'LIST "" "R*"'), /^\* LIST \(\\HasNoChildren\) "\/" "R&-D"\r\n/m);
    u.close();
    r1.close();
  });

  test('a denormalized (NFD) name opens the NFC mailbox; a name that is not UTF-8 is BAD and the session goes on', async () => {
    const u = await login();
    await u.ok('d1', 'ENABLE UTF8=ACCEPT');
    await u.ok('d2', 'CREATE "Noël"');
    assert.match(await u.ok('d3', `SELECT "${'Noël'.normalize('NFD')}"`), /^d3 OK \[READ-WRITE\]/m);
    assert.match(await u.command('d4', 'CREATE "Noël"'), /^d4 NO \[ALREADYEXISTS\]/m);
    u.send(Buffer.concat([Buffer.from('d5 CREATE "bad'), Buffer.from([0xff, 0xfe]), Buffer.from('"\r\n')]));
    assert.match(await u.until(/^d5 (OK|NO|BAD).*\r\n/m), /^d5 BAD/m);
    await u.ok('d6', 'NOOP');
    u.close();
  });

  test('ENABLE UTF8=ACCEPT is refused while a mailbox is selected (names would change encoding mid-view)', async () => {
    const u = await login();
    await u.ok('e1', 'SELECT INBOX');
    assert.match(await u.ok('e2', 'ENABLE UTF8=ACCEPT'), /^\* ENABLED\r\n/m);
    await u.ok('e3', 'UNSELECT');
    assert.match(await u.ok('e4', 'ENABLE UTF8=ACCEPT'), /^\* ENABLED UTF8=ACCEPT\r\n/m);
    u.close();
  });

  test('APPEND UTF8 (~{n+}) stores a message with UTF-8 headers; FETCH and SEARCH give them back as they are', async () => {
    const message = 'From: Jörg <jörg@example.com>\r\nTo: john@example.com\r\nSubject: Grüße aus Köln\r\n\r\nHallo\r\n';
    const before = await login();
    // Without ENABLE the UTF8 data item does not exist for the session.
    assert.match(await appendUtf8(before, 'f0', 'INBOX', message), /^f0 BAD/m);
    await before.ok('f0b', 'NOOP');
    before.close();

    const u = await login();
    await u.ok('f1', 'ENABLE UTF8=ACCEPT');
    const r = await appendUtf8(u, 'f2', '"Café" (\\Seen)', message);
    assert.match(r, /^f2 OK \[APPENDUID \d+ 1\]/m, r);
    await u.ok('f3', 'SELECT "Café"');
    const env = utf8(await u.ok('f4', 'FETCH 1 (ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)])'));
    assert.ok(env.includes('Grüße aus Köln'), env);
    assert.ok(env.includes('Jörg'), env);
    assert.match(utf8(await u.ok('f5', 'SEARCH SUBJECT "grüße"')), /^\* SEARCH 1\r\n/m);
    // RFC 6855 §3: a CHARSET would contradict the session's UTF-8.
    assert.match(await u.command('f6', 'SEARCH CHARSET UTF-8 SUBJECT "x"'), /^f6 BAD/m);
    // CATENATE's part may be UTF8 (literal8) too.
    u.send(Buffer.concat([Buffer.from(`f7 APPEND "Café" CATENATE (UTF8 (~{${Buffer.byteLength(message)}+}\r\n`), Buffer.from(message), Buffer.from('))\r\n')]));
    assert.match(await u.until(/^f7 (OK|NO|BAD).*\r\n/m), /^f7 OK \[APPENDUID \d+ 2\]/m);
    u.close();
  });

  test('a session that enables nothing still gets SEARCH CHARSET and modified UTF-7 (RFC 3501 unchanged)', async () => {
    const c = await login();
    await c.ok('g1', 'SELECT Caf&AOk-');
    assert.match(await c.ok('g2', 'SEARCH CHARSET UTF-8 ALL'), /^\* SEARCH 1 2\r\n/m);
    assert.match(await c.ok('g3', 'STATUS Caf&AOk- (MESSAGES)'), /^\* STATUS "Caf&AOk-" \(MESSAGES 2\)/m);
    c.close();
  });
});

describe('IMAP4rev2 (RFC 9051) beside IMAP4rev1', () => {
  const rev2 = async (user = 'john.smith') => {
    const c = await login(user);
    assert.match(await c.ok('r0', 'ENABLE IMAP4rev2'), /^\* ENABLED IMAP4rev2\r\n/m);
    return c;
  };

  test('both are announced; ENABLE IMAP4rev2 answers once, and not while a mailbox is selected', async () => {
    const c = await login('anna.bianchi');
    assert.match(await c.ok('a1', 'CAPABILITY'), /^\* CAPABILITY IMAP4rev1 IMAP4rev2 /m);
    await c.ok('a2', 'SELECT INBOX');
    assert.match(await c.ok('a3', 'ENABLE IMAP4rev2'), /^\* ENABLED\r\n/m);
    await c.ok('a4', 'UNSELECT');
    assert.match(await c.ok('a5', 'ENABLE IMAP4rev2'), /^\* ENABLED IMAP4rev2\r\n/m);
    assert.match(await c.ok('a6', 'ENABLE IMAP4rev2'), /^\* ENABLED\r\n/m);
    c.close();
  });

  test('SELECT: rev1 gets RECENT, UNSEEN and \\Recent; rev2 gets none of them and a LIST of the mailbox; both get OK [CLOSED]', async () => {
    const setup = await login('anna.bianchi');
    await setup.ok('b0', 'CREATE Rev');
    await append(setup, 'b1', 'Rev', msg('one'), '\\Seen');
    await append(setup, 'b2', 'Rev', msg('two'));
    setup.close();

    const v2 = await rev2('anna.bianchi');
    await v2.ok('b3', 'EXAMINE INBOX');
    const sel = await v2.ok('b4', 'SELECT Rev');
    assert.match(sel, /^\* OK \[CLOSED\]/m);
    // CLOSED comes before anything about the new mailbox (RFC 9051 §7.1).
    assert.ok(sel.indexOf('[CLOSED]') < sel.indexOf('EXISTS'), sel);
    assert.match(sel, /^\* 2 EXISTS\r\n/m);
    assert.doesNotMatch(sel, /RECENT|\[UNSEEN/);
    assert.match(sel, /^\* OK \[UIDVALIDITY \d+\]/m);
    assert.match(sel, /^\* OK \[UIDNEXT 3\]/m);
    assert.match(sel, /^\* LIST \(\\HasNoChildren\) "\/" "Rev"\r\n/m);
    assert.match(sel, /^b4 OK \[READ-WRITE\]/m);
    // The messages were recent (nobody had selected Rev): rev2 shows no \Recent, but it claimed them.
    assert.doesNotMatch(await v2.ok('b5', 'FETCH 1:* FLAGS'), /\\Recent/);
    assert.match(await v2.command('b6', 'SEARCH RECENT'), /^b6 BAD/m);

    const v1 = await login('anna.bianchi');
    await append(v1, 'b7', 'Rev', msg('three'));
    const sel1 = await v1.ok('b8', 'SELECT Rev');
    assert.match(sel1, /^\* 1 RECENT\r\n/m);
    assert.match(sel1, /^\* OK \[UNSEEN 2\]/m);
    assert.doesNotMatch(sel1, /CLOSED|\* LIST/);
    assert.match(await v1.ok('b9', 'FETCH 3 FLAGS'), /^\* 3 FETCH \(FLAGS \(\\Recent\)\)/m);
    assert.match(await v1.ok('b10', 'SEARCH RECENT'), /^\* SEARCH 3\r\n/m);
    // A server announcing QRESYNC says CLOSED to every session whose SELECT replaces a mailbox (RFC 7162 §3.2.11).
    assert.match(await v1.ok('b11', 'EXAMINE INBOX'), /^\* OK \[CLOSED\]/m);

    // A message arriving while selected: EXISTS alone in rev2, EXISTS and RECENT in rev1.
    await append(v1, 'b12', 'Rev', msg('four'));
    const noop = await v2.ok('b13', 'NOOP');
    assert.match(noop, /^\* 4 EXISTS\r\n/m);
    assert.doesNotMatch(noop, /RECENT/);
    v1.close();
    v2.close();
  });

  test('SEARCH is answered with ESEARCH in rev2 (RETURN (ALL) by default), with SEARCH in rev1', async () => {
    const v2 = await rev2('anna.bianchi');
    await v2.ok('c1', 'SELECT Rev');
    assert.match(await v2.ok('c2', 'SEARCH ALL'), /^\* ESEARCH \(TAG "c2"\) ALL 1:4\r\n/m);
    assert.match(await v2.ok('c3', 'UID SEARCH UNSEEN'), /^\* ESEARCH \(TAG "c3"\) UID ALL 2:4\r\n/m);
    const none = await v2.ok('c4', 'UID SEARCH SUBJECT nothing-like-this');
    assert.match(none, /^\* ESEARCH \(TAG "c4"\) UID\r\n/m);
    assert.doesNotMatch(none, /^\* SEARCH/m);
    assert.match(await v2.ok('c5', 'SEARCH RETURN (COUNT) ALL'), /^\* ESEARCH \(TAG "c5"\) COUNT 4\r\n/m);
    // CHARSET stays (RFC 9051 §6.4.4: US-ASCII and UTF-8).
    assert.match(await v2.ok('c6', 'SEARCH CHARSET UTF-8 SUBJECT two'), /^\* ESEARCH \(TAG "c6"\) ALL 2\r\n/m);
    v2.close();
    const v1 = await login('anna.bianchi');
    await v1.ok('c7', 'SELECT Rev');
    const r1 = await v1.ok('c8', 'SEARCH ALL');
    assert.match(r1, /^\* SEARCH 1 2 3 4\r\n/m);
    assert.doesNotMatch(r1, /ESEARCH/);
    v1.close();
  });

  test('STATUS: DELETED and SIZE in rev2, RECENT gone; rev1 keeps RECENT and knows no DELETED', async () => {
    const v2 = await rev2('anna.bianchi');
    await v2.ok('d1', 'SELECT Rev');
    await v2.ok('d2', 'STORE 1 +FLAGS.SILENT (\\Deleted)');
    await v2.ok('d3', 'UNSELECT');
    assert.match(await v2.ok('d4', 'STATUS Rev (MESSAGES DELETED SIZE UNSEEN)'), /^\* STATUS "Rev" \(MESSAGES 4 DELETED 1 SIZE \d+ UNSEEN 3\)\r\n/m);
    assert.match(await v2.command('d5', 'STATUS Rev (RECENT)'), /^d5 BAD/m);
    assert.match(await v2.ok('d6', 'LIST "" Rev RETURN (STATUS (DELETED))'), /^\* STATUS "Rev" \(DELETED 1\)\r\n/m);
    v2.close();
    const v1 = await login('anna.bianchi');
    assert.match(await v1.command('d7', 'STATUS Rev (DELETED)'), /^d7 BAD/m);
    assert.match(await v1.ok('d8', 'STATUS Rev (MESSAGES RECENT)'), /^\* STATUS "Rev" \(MESSAGES 4 RECENT 0\)\r\n/m);
    v1.close();
  });

  test('names are UTF-8 without UTF8=ACCEPT; a denormalized name is answered with LIST … OLDNAME', async () => {
    const v2 = await rev2('anna.bianchi');
    const nfd = 'Entwürfe'.normalize('NFD');
    const created = utf8(await v2.ok('e1', `CREATE "${nfd}"`));
    assert.ok(created.includes(`* LIST (\\HasNoChildren) "/" "Entwürfe" ("OLDNAME" ("${nfd}"))\r\n`), created);
    assert.ok(existsSync(join(maildir('anna.bianchi'), '.Entw&APw-rfe')));
    assert.match(utf8(await v2.ok('e2', 'LIST "" "Entw*"')), /^\* LIST \(\\HasNoChildren\) "\/" "Entwürfe"\r\n/m);
    const sel = utf8(await v2.ok('e3', `SELECT "${nfd}"`));
    assert.ok(sel.includes(`* LIST (\\HasNoChildren) "/" "Entwürfe" ("OLDNAME" ("${nfd}"))\r\n`), sel);
    // A name already in NFC gets no OLDNAME.
    assert.doesNotMatch(await v2.ok('e4', 'CREATE "Drafts/Plain"'), /^\* LIST/m);
    const renamed = utf8(await v2.ok('e5', `RENAME "Drafts/Plain" "${'Drafts/Café'.normalize('NFD')}"`));
    assert.ok(renamed.includes(`* LIST (\\HasNoChildren) "/" "Drafts/Café" ("OLDNAME" ("${'Drafts/Café'.normalize('NFD')}"))`), renamed);
    // UTF8 (literal8) APPEND belongs to UTF8=ACCEPT, not to IMAP4rev2.
    assert.match(await appendUtf8(v2, 'e6', 'INBOX', msg('x')), /^e6 BAD/m);
    v2.close();
    const v1 = await login('anna.bianchi');
    assert.match(await v1.ok('e7', 'LIST "" "Entw*"'), /^\* LIST \(\\HasNoChildren\) "\/" "Entw&APw-rfe"\r\n/m);
    v1.close();
  });
});

describe('imapflow, which enables IMAP4rev2 and UTF8=ACCEPT when offered', () => {
  test('works in a rev2 + UTF-8 session: UTF-8 folder names, ESEARCH, STATUS DELETED, no \\Recent', async () => {
    const c = new ImapFlow({ host: '127.0.0.1', port: fx.server.port, secure: false, doSTARTTLS: false, auth: { user: 'mario.rossi', pass: PASSWORD }, logger: false });
    await c.connect();
    try {
      assert.ok(c.enabled.has('IMAP4REV2'), [...c.enabled].join(' '));
      assert.ok(c.enabled.has('UTF8=ACCEPT'), [...c.enabled].join(' '));
      await c.mailboxCreate('Ελληνικά');
      assert.ok(existsSync(join(maildir('mario.rossi'), '.&A5UDuwO7A7cDvQO5A7oDrA-')), 'stored as Dovecot names it');
      const list = await c.list();
      assert.ok(list.some((f) => f.path === 'Ελληνικά'), list.map((f) => f.path).join(', '));
      await c.append('Ελληνικά', 'From: a@example.com\r\nSubject: Καλημέρα\r\n\r\nhi\r\n');
      await c.append('Ελληνικά', 'From: a@example.com\r\nSubject: other\r\n\r\nhi\r\n', ['\\Deleted']);
      const status = await c.status('Ελληνικά', { messages: true, deleted: true } as Parameters<ImapFlow['status']>[1]);
      assert.ok(status);
      assert.equal(status.messages, 2);
      assert.equal((status as { deleted?: number }).deleted, 1);
      const lock = await c.getMailboxLock('Ελληνικά');
      try {
        assert.deepEqual(await c.search({ subject: 'Καλημέρα' }, { uid: true }), [1]);
        const flags = [];
        for await (const m of c.fetch('1:*', { flags: true })) flags.push(...(m.flags ?? []));
        assert.ok(!flags.includes('\\Recent'), flags.join(' '));
      } finally {
        lock.release();
      }
    } finally {
      await c.logout();
    }
  });
});
