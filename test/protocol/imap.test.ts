/**
 * The IMAP server on port 0 with the in-memory mailbox and the LDIF directory: driven by imapflow the way a mail
 * client does, and by raw command scripts for what clients refuse to send (bad syntax, LOGIN before STARTTLS,
 * huge literals, commands pipelined behind STARTTLS).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { execChild } from '../harness/children.ts';
import { waitFor } from '../helpers/wait.ts';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { ImapFlow } from 'imapflow';
import type { Authenticator } from '../../src/auth/authenticator.ts';
import { startImap, type ImapServer } from '../../src/imap/server.ts';
import { createLogger, silentLogger } from '../../src/lib/logger.ts';
import { ROOT } from '../helpers/cli.ts';
import { PASSWORD, TLS, ldifAuth } from '../helpers/imap-fixture.ts';
import { MemoryMailbox } from '../helpers/memory-mailbox.ts';
import { RawImap } from '../helpers/raw-imap.ts';

const JOHN = { kind: 'user' as const, login: 'john.smith' };

const SIMPLE = [
  'Return-Path: <mario@example.com>',
  'From: "Mario Rossi" <mario@example.com>',
  'To: John Smith <john@example.com>, anna@example.com',
  'Cc: team: laura@example.com, paolo@example.com;',
  'Subject: =?UTF-8?Q?Caff=C3=A8?= tomorrow',
  'Date: Tue, 10 Nov 2026 09:00:00 +0000',
  'Message-ID: <simple-1@example.com>',
  'Content-Type: text/plain; charset=utf-8',
  '',
  'See you at the usual bar.',
  'Ciao',
  '',
].join('\r\n');

const MULTIPART = [
  'From: anna@example.com',
  'To: john@example.com',
  'Subject: Report attached',
  'Date: Wed, 11 Nov 2026 10:00:00 +0100',
  'Message-ID: <multi-1@example.com>',
  'MIME-Version: 1.0',
  'Content-Type: multipart/mixed; boundary="b1"',
  '',
  'preamble',
  '--b1',
  'Content-Type: text/plain; charset=us-ascii',
  '',
  'The quarterly numbers are attached.',
  '--b1',
  'Content-Type: application/pdf; name="q3.pdf"',
  'Content-Disposition: attachment; filename="q3.pdf"',
  'Content-Transfer-Encoding: base64',
  '',
  'JVBERi0xLjQK',
  '--b1--',
  '',
].join('\r\n');

let server: ImapServer;
let mailbox: MemoryMailbox;
const settings = { allowUnencrypted: false, imap: true, deletedToTrash: false, masterUser: false };
const logLines: Record<string, unknown>[] = [];
const learned: { user: string; kind: string; subject: string }[] = [];

function client(user = 'john.smith', pass = PASSWORD): ImapFlow {
  return new ImapFlow({
    host: '127.0.0.1',
    port: server.port,
    secure: false,
    doSTARTTLS: true,
    tls: { rejectUnauthorized: false },
    auth: { user, pass },
    logger: false,
  });
}

let auth: Authenticator;

before(async () => {
  const log = createLogger(
    'info',
    new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) logLines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    }),
  );
  auth = ldifAuth({ masterUserEnabled: () => settings.masterUser, log });
  // it.tech has a tiny quota for the OVERQUOTA tests; everyone else 10 MiB.
  mailbox = new MemoryMailbox({ quotaBytes: (o) => (o.kind === 'user' && o.login === 'it.tech' ? 200 : 10 * 1024 * 1024) });
  server = await startImap({
    port: 0,
    host: '127.0.0.1',
    secure: false,
    tls: TLS,
    auth,
    mailbox,
    settings: {
      get: (key) =>
        key === 'mailbox.allowUnencrypted' ? settings.allowUnencrypted : key === 'mailbox.imap' ? settings.imap : settings.deletedToTrash,
    },
    hostname: 'mail.example.com',
    log,
    appendLimit: 1024 * 1024,
    // fixtures/ad: paolo.neri and giulia.gallo are the members of "support".
    learn: async (user, kind, message) => {
      learned.push({ user: user.login, kind, subject: /^Subject: (.*)$/m.exec(message.toString())?.[1]?.trim() ?? '' });
    },
    sharedGroups: async (user) => (['paolo.neri', 'giulia.gallo'].includes(user.login) ? ['support'] : []),
  });
  await mailbox.deliver(JOHN, SIMPLE);
  await mailbox.deliver(JOHN, MULTIPART);
});

after(async () => {
  await server.close();
});

describe('IMAP with imapflow over STARTTLS', () => {
  test('logs in over STARTTLS and lists the folders with special-use flags', async () => {
    const c = client();
    await c.connect();
    const list = await c.list();
    const byPath = new Map(list.map((f) => [f.path, f]));
    assert.ok(byPath.has('INBOX'));
    assert.equal(byPath.get('Junk')?.specialUse, '\\Junk');
    assert.equal(byPath.get('Trash')?.specialUse, '\\Trash');
    assert.equal(byPath.get('Sent')?.specialUse, '\\Sent');
    assert.equal(byPath.get('Drafts')?.specialUse, '\\Drafts');
    assert.ok(byPath.get('Sent')?.flags.has('\\HasNoChildren'));
    await c.logout();
  });

  test('selects INBOX and fetches envelope, bodystructure and body parts', async () => {
    const c = client();
    await c.connect();
    const lock = await c.getMailboxLock('INBOX');
    try {
      const mb = c.mailbox;
      assert.ok(mb && typeof mb === 'object');
      assert.equal(mb.exists, 2);
      const msg = await c.fetchOne('1', { envelope: true, bodyStructure: true, flags: true, size: true, internalDate: true });
      assert.ok(msg);
      assert.equal(msg.envelope?.subject, 'Caffè tomorrow');
      assert.equal(msg.envelope?.from?.[0].address, 'mario@example.com');
      assert.equal(msg.envelope?.from?.[0].name, 'Mario Rossi');
      assert.deepEqual(
        msg.envelope?.to?.map((a) => a.address),
        ['john@example.com', 'anna@example.com'],
      );
      assert.equal(msg.envelope?.messageId, '<simple-1@example.com>');
      assert.equal(msg.bodyStructure?.type, 'text/plain');
      assert.equal(msg.size, Buffer.byteLength(SIMPLE));

      const multi = await c.fetchOne('2', { bodyStructure: true, bodyParts: ['1', '2.mime'], headers: ['subject'] });
      assert.ok(multi);
      assert.equal(multi.bodyStructure?.type, 'multipart/mixed');
      assert.equal(multi.bodyStructure?.childNodes?.[1].type, 'application/pdf');
      assert.equal(multi.bodyStructure?.childNodes?.[1].disposition, 'attachment');
      assert.equal(multi.bodyStructure?.childNodes?.[1].dispositionParameters?.filename, 'q3.pdf');
      assert.equal(multi.bodyParts?.get('1')?.toString(), 'The quarterly numbers are attached.');
      assert.match(multi.headers?.toString() ?? '', /^Subject: Report attached\r\n\r\n$/);

      // BODY.PEEK left \Seen alone; BODY[] sets it.
      const before = await c.fetchOne('2', { flags: true });
      assert.ok(before && !before.flags?.has('\\Seen'));
      const { content } = await c.download('2', undefined, { uid: false });
      assert.ok(content);
      const chunks: Buffer[] = [];
      for await (const chunk of content) chunks.push(chunk as Buffer);
      assert.equal(Buffer.concat(chunks).toString(), MULTIPART);
      const partial = await c.fetchOne('1', { source: { start: 0, maxLength: 11 } });
      assert.equal(partial && partial.source?.toString(), 'Return-Path');
    } finally {
      lock.release();
    }
    await c.logout();
  });

  test('ENVELOPE and BODYSTRUCTURE come from the store\'s cache after the first FETCH', async () => {
    const owner = { kind: 'user' as const, login: 'giulia.gallo' };
    await mailbox.deliver(owner, SIMPLE);
    await mailbox.deliver(owner, MULTIPART);
    const c = await RawImap.connect(server.port);
    await c.starttls();
    await c.command('e1', `LOGIN giulia.gallo "${PASSWORD}"`);
    await c.command('e2', 'SELECT INBOX');
    const first = await c.command('e3', 'FETCH 1:2 (UID ENVELOPE BODYSTRUCTURE)');
    const readsAfterFirst = mailbox.reads;
    const second = await c.command('e4', 'FETCH 1:2 (UID ENVELOPE BODYSTRUCTURE)');
    assert.equal(mailbox.reads, readsAfterFirst, 'no message read the second time');
    assert.equal(second.replace(/^e4/m, 'e3'), first);
    assert.match(first, /^\* 2 FETCH \(UID 2 ENVELOPE \("Wed, 11 Nov 2026 10:00:00 \+0100" "Report attached"/m);
    c.close();
  });

  test('searches by header, body, flags, size and date, with UID and sequence results', async () => {
    const c = client();
    await c.connect();
    const lock = await c.getMailboxLock('INBOX');
    try {
      assert.deepEqual(await c.search({ subject: 'caffè' }), [1]);
      assert.deepEqual(await c.search({ from: 'anna@example.com' }), [2]);
      assert.deepEqual(await c.search({ body: 'quarterly' }), [2]);
      assert.deepEqual(await c.search({ header: { 'message-id': 'simple-1' } }), [1]);
      assert.deepEqual(await c.search({ larger: 10_000 }), []);
      assert.deepEqual(await c.search({ sentBefore: new Date('2026-11-11T00:00:00Z') }), [1]);
      assert.deepEqual(await c.search({ or: [{ subject: 'report' }, { subject: 'tomorrow' }] }), [1, 2]);
      assert.deepEqual(await c.search({ not: { subject: 'report' } } as never), [1]);
      const uids = await c.search({ all: true }, { uid: true });
      assert.equal(Array.isArray(uids) && uids.length, 2);
    } finally {
      lock.release();
    }
    await c.logout();
  });

  test('stores flags, copies with COPYUID, moves with COPYUID and appends with APPENDUID', async () => {
    const c = client();
    await c.connect();
    await c.mailboxCreate('Projects');
    const lock = await c.getMailboxLock('INBOX');
    try {
      await c.messageFlagsAdd('1', ['\\Flagged', '$Important']);
      const f = await c.fetchOne('1', { flags: true });
      assert.ok(f && f.flags?.has('\\Flagged') && f.flags.has('$Important'));
      await c.messageFlagsRemove('1', ['$Important']);
      assert.deepEqual(await c.search({ flagged: true }), [1]);

      const copied = await c.messageCopy('1:2', 'Projects');
      assert.ok(copied && copied.uidMap && copied.uidMap.size === 2);
      const moved = await c.messageMove('2', 'Trash');
      assert.ok(moved && moved.uidMap?.size === 1);
      assert.equal(c.mailbox && typeof c.mailbox === 'object' ? c.mailbox.exists : -1, 1);
    } finally {
      lock.release();
    }
    const appended = await c.append('Drafts', 'From: john@example.com\nSubject: draft\n\nhello\n', ['\\Draft', '\\Seen'], new Date('2026-01-02T03:04:05Z'));
    assert.ok(appended && appended.uid === 1 && appended.uidValidity);
    const status = await c.status('Projects', { messages: true, uidNext: true, unseen: true });
    assert.ok(status);
    assert.equal(status.messages, 2);
    assert.equal(status.uidNext, 3);
    // The appended message is stored with CRLF line ends.
    const raw = await mailbox.readMessage(JOHN, 'Drafts', 1);
    assert.equal(raw.toString(), 'From: john@example.com\r\nSubject: draft\r\n\r\nhello\r\n');
    // Put things back for the other tests: the moved message returns to INBOX.
    await mailbox.copy(JOHN, 'Trash', [1], 'INBOX', { move: true });
    await c.logout();
  });

  test('IDLE wakes up when a second client appends to the folder', async () => {
    const watcher = client();
    await watcher.connect();
    const lock = await watcher.getMailboxLock('INBOX');
    try {
      const before = watcher.mailbox && typeof watcher.mailbox === 'object' ? watcher.mailbox.exists : 0;
      const seen = new Promise<number>((resolve) => watcher.on('exists', (data: { count: number }) => resolve(data.count)));
      // idle() resolves only when IDLE ends (the next command breaks it): start it, wait for "+ idling".
      const idling = watcher.idle().catch(() => undefined);
      await waitFor('the watcher to be idling', () => watcher.idling);
      const other = client();
      await other.connect();
      await other.append('INBOX', 'From: anna@example.com\r\nSubject: ping\r\n\r\nping\r\n');
      await other.logout();
      const count = await Promise.race([seen, new Promise<number>((_, reject) => setTimeout(() => reject(new Error('no EXISTS during IDLE')), 15_000).unref())]);
      assert.equal(count, before + 1);
      void idling;
    } finally {
      lock.release();
    }
    await watcher.logout();
  });

  test('reports the quota with GETQUOTAROOT', async () => {
    const c = client();
    await c.connect();
    const q = await c.getQuota('INBOX');
    assert.ok(q && q.storage);
    assert.equal(q.storage.limit, 10 * 1024 * 1024);
    assert.ok((q.storage.usage ?? 0) > 0);
    await c.logout();
  });

  test('refuses a wrong password', async () => {
    const c = client('john.smith', 'wrong');
    await assert.rejects(c.connect());
  });
});

describe('IMAP raw command scripts', () => {
  test('refuses LOGIN before STARTTLS and advertises LOGINDISABLED', async () => {
    const c = await RawImap.connect(server.port);
    const caps = await c.command('a1', 'CAPABILITY');
    assert.match(caps, /LOGINDISABLED/);
    assert.match(caps, /STARTTLS/);
    assert.doesNotMatch(caps, /AUTH=PLAIN/);
    assert.match(await c.command('a2', `LOGIN john.smith "${PASSWORD}"`), /^a2 NO \[PRIVACYREQUIRED\]/m);
    assert.match(await c.command('a3', 'AUTHENTICATE PLAIN'), /^a3 NO/m);
    await c.starttls();
    const after = await c.command('a4', 'CAPABILITY');
    assert.doesNotMatch(after, /LOGINDISABLED|STARTTLS/);
    assert.match(after, /AUTH=PLAIN/);
    assert.match(await c.command('a5', `LOGIN john.smith "${PASSWORD}"`), /^a5 OK/m);
    c.close();
  });

  test('discards a command pipelined before the STARTTLS handshake', async () => {
    const c = await RawImap.connect(server.port);
    c.send(`p1 STARTTLS\r\np2 LOGIN john.smith "${PASSWORD}"\r\n`);
    await c.until(/^p1 OK.*\r\n/m);
    c.socket.removeAllListeners('data');
    const t = tlsConnect({ socket: c.socket as Socket, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => t.once('secureConnect', resolve).once('error', reject));
    const tc = new RawImap(t);
    // Had p2 survived, this session would be authenticated and SELECT would work.
    assert.match(await tc.command('p3', 'SELECT INBOX'), /^p3 BAD/m);
    assert.match(await tc.command('p4', 'NOOP'), /^p4 OK/m);
    tc.close();
  });

  test('answers BAD to bad syntax and unknown commands, NO to a missing mailbox', async () => {
    const c = await RawImap.connect(server.port);
    await c.starttls();
    assert.match(await c.command('b1', 'FROBNICATE'), /^b1 BAD/m);
    assert.match(await c.command('b2', 'LOGIN "unterminated'), /^b2 BAD/m);
    assert.match(await c.command('b3', `LOGIN john.smith "${PASSWORD}"`), /^b3 OK/m);
    assert.match(await c.command('b4', 'SELECT Nowhere'), /^b4 NO \[NONEXISTENT\]/m);
    assert.match(await c.command('b5', 'FETCH 1 FLAGS'), /^b5 BAD/m);
    assert.match(await c.command('b6', 'SELECT INBOX'), /^b6 OK \[READ-WRITE\]/m);
    assert.match(await c.command('b7', 'FETCH 1 (BODY[1.X])'), /^b7 BAD/m);
    assert.match(await c.command('b8', 'FETCH x FLAGS'), /^b8 BAD/m);
    assert.match(await c.command('b9', 'SEARCH FROB'), /^b9 BAD/m);
    assert.match(await c.command('b10', 'SEARCH CHARSET KOI8-R ALL'), /^b10 NO \[BADCHARSET/m);
    assert.match(await c.command('b11', 'COPY 1 Nowhere'), /^b11 NO \[TRYCREATE\]/m);
    assert.match(await c.command('b12', 'DELETE INBOX'), /^b12 NO/m);
    assert.match(await c.command('b13', 'CREATE INBOX'), /^b13 NO \[ALREADYEXISTS\]/m);
    const logout = await c.command('b14', 'LOGOUT');
    assert.match(logout, /^\* BYE/m);
    c.close();
  });

  test('refuses a literal over APPENDLIMIT before the continuation', async () => {
    const c = await RawImap.connect(server.port);
    await c.starttls();
    await c.command('l1', `LOGIN john.smith "${PASSWORD}"`);
    c.send('l2 APPEND INBOX {2000000}\r\n');
    const r = await c.until(/^l2 .*\r\n/m);
    assert.doesNotMatch(r, /^\+/m);
    assert.match(r, /^l2 NO \[TOOBIG\]/m);
    // A non-APPEND command may not carry a literal over 64 KiB either.
    c.send('l3 SELECT {100000}\r\n');
    const r3 = await c.until(/^l3 .*\r\n/m);
    assert.doesNotMatch(r3, /^\+/m);
    assert.match(r3, /^l3 BAD/m);
    // The connection is still usable, and an accepted literal gets "+" then works.
    c.send('l4 SELECT {5}\r\n');
    await c.until(/^\+ .*\r\n/m);
    c.send('INBOX\r\n');
    assert.match(await c.until(/^l4 .*\r\n/m), /^l4 OK/m);
    c.close();
  });

  test('before login even APPEND may not send a large literal; an over-long line is BAD and the session goes on', async () => {
    const c = await RawImap.connect(server.port);
    c.send('z1 APPEND INBOX {100000}\r\n');
    const r = await c.until(/^z1 .*\r\n/m);
    assert.doesNotMatch(r, /^\+/m);
    assert.match(r, /^z1 BAD \[TOOBIG\]/m);
    c.send(`z2 NOOP ${'x'.repeat(70 * 1024)}\r\n`);
    assert.match(await c.until(/^z2 .*\r\n/m), /^z2 BAD Line too long/m);
    assert.match(await c.command('z3', 'NOOP'), /^z3 OK/m);
    c.close();
  });

  test('accepts LITERAL+ and AUTHENTICATE PLAIN with an initial response', async () => {
    const c = await RawImap.connect(server.port);
    await c.starttls();
    const plain = Buffer.from(`\0john.smith\0${PASSWORD}`).toString('base64');
    assert.match(await c.command('s1', `AUTHENTICATE PLAIN ${plain}`), /^s1 OK/m);
    const msg = 'Subject: lit+\r\n\r\nbody\r\n';
    c.send(`s2 APPEND Drafts (\\Seen) {${msg.length}+}\r\n${msg}\r\n`);
    const r = await c.until(/^s2 .*\r\n/m);
    assert.doesNotMatch(r, /^\+/m);
    assert.match(r, /^s2 OK \[APPENDUID \d+ \d+\]/m);
    c.close();
  });

  test('AUTHENTICATE LOGIN with continuations, ID, NAMESPACE, ENABLE, UNSELECT and UID EXPUNGE', async () => {
    const c = await RawImap.connect(server.port);
    await c.starttls();
    c.send('t1 AUTHENTICATE LOGIN\r\n');
    await c.until(/^\+ VXNlcm5hbWU6\r\n/m);
    c.send(Buffer.from('john.smith').toString('base64') + '\r\n');
    await c.until(/^\+ UGFzc3dvcmQ6\r\n/m);
    c.send(Buffer.from(PASSWORD).toString('base64') + '\r\n');
    assert.match(await c.until(/^t1 .*\r\n/m), /^t1 OK/m);
    assert.match(await c.command('t2', 'ID ("name" "test")'), /^\* ID \("name" "postern"\)/m);
    assert.match(await c.command('t3', 'NAMESPACE'), /^\* NAMESPACE \(\("" "\/"\)\) NIL NIL/m);
    assert.match(await c.command('t4', 'ENABLE CONDSTORE'), /^\* ENABLED/m);
    await mailbox.deliver(JOHN, 'Subject: a\r\n\r\na\r\n', 'Junk');
    await mailbox.deliver(JOHN, 'Subject: b\r\n\r\nb\r\n', 'Junk');
    assert.match(await c.command('t5', 'SELECT Junk'), /^t5 OK/m);
    await c.command('t6', 'STORE 1:2 +FLAGS.SILENT (\\Deleted)');
    const ex = await c.command('t7', 'UID EXPUNGE 2');
    assert.match(ex, /^\* 2 EXPUNGE/m);
    assert.doesNotMatch(ex, /^\* 1 EXPUNGE/m);
    assert.match(await c.command('t8', 'UNSELECT'), /^t8 OK/m);
    const st = await c.command('t9', 'STATUS Junk (MESSAGES)');
    assert.match(st, /MESSAGES 1/);
    assert.match(await c.command('t10', 'LSUB "" "*"'), /^\* LSUB \(.*\) "\/" "?INBOX"?/m);
    c.close();
  });

  test('a change by delivery reaches a selected session at the next command', async () => {
    const c = await RawImap.connect(server.port);
    await c.starttls();
    await c.command('d1', `LOGIN john.smith "${PASSWORD}"`);
    await mailbox.createFolder(JOHN, 'Watched');
    await c.command('d2', 'SELECT Watched');
    await mailbox.deliver(JOHN, 'Subject: new\r\n\r\nnew\r\n', 'Watched');
    assert.match(await c.command('d3', 'NOOP'), /^\* 1 EXISTS/m);
    await mailbox.storeFlags(JOHN, 'Watched', [1], 'add', ['\\Flagged']);
    // Delivered while this session had the folder selected: it is this session's \Recent (RFC 3501 §2.3.2).
    assert.match(await c.command('d4', 'NOOP'), /^\* 1 FETCH \(UID 1 FLAGS \(\\Recent \\Flagged\)\)/m);
    await mailbox.storeFlags(JOHN, 'Watched', [1], 'add', ['\\Deleted']);
    await mailbox.expunge(JOHN, 'Watched');
    // Held back during FETCH (RFC 3501 §7.4.1), sent at the next NOOP.
    const f = await c.command('d5', 'FETCH 1 FLAGS');
    assert.doesNotMatch(f, /EXPUNGE/);
    assert.match(await c.command('d6', 'NOOP'), /^\* 1 EXPUNGE/m);
    c.close();
  });
});

describe('IMAP policy', () => {
  test('logs every login and logout with user, client address, protocol and result', async () => {
    const c = await RawImap.connect(server.port);
    await c.starttls();
    await c.command('g1', 'LOGIN john.smith wrong');
    await c.command('g2', `LOGIN john.smith "${PASSWORD}"`);
    await c.command('g3', 'LOGOUT');
    // The logout line is written as the session ends, which the server learns of asynchronously.
    await waitFor('the logout in the log', () => logLines.some((l) => l.component === 'imap' && l.msg === 'logout' && l.user === 'john.smith'));
    const imap = logLines.filter((l) => l.component === 'imap' && l.protocol === 'imap');
    const failed = imap.find((l) => l.msg === 'login failed' && l.user === 'john.smith');
    assert.ok(failed, 'failed login logged');
    assert.equal(failed.client, '127.0.0.1');
    assert.equal(failed.result, 'invalid');
    assert.ok(imap.some((l) => l.msg === 'login' && l.user === 'john.smith' && l.result === 'ok' && l.client === '127.0.0.1'));
    assert.ok(imap.some((l) => l.msg === 'logout' && l.user === 'john.smith' && l.client === '127.0.0.1'));
    c.close();
  });

  test('refuses logins when IMAP is switched off (mailbox.imap)', async () => {
    settings.imap = false;
    try {
      const c = await RawImap.connect(server.port);
      await c.starttls();
      assert.match(await c.command('o1', `LOGIN john.smith "${PASSWORD}"`), /^o1 NO/m);
      c.close();
    } finally {
      settings.imap = true;
    }
  });

  test('allows LOGIN in clear when mailbox.allowUnencrypted is on', async () => {
    settings.allowUnencrypted = true;
    try {
      const c = await RawImap.connect(server.port);
      assert.doesNotMatch(await c.command('u1', 'CAPABILITY'), /LOGINDISABLED/);
      assert.match(await c.command('u2', `LOGIN john.smith "${PASSWORD}"`), /^u2 OK/m);
      c.close();
    } finally {
      settings.allowUnencrypted = false;
    }
  });

  test('the master user opens another mailbox with "john.smith*admin"', async () => {
    settings.masterUser = true;
    try {
      const c = await RawImap.connect(server.port);
      await c.starttls();
      assert.match(await c.command('m1', 'LOGIN john.smith*admin "Adm1n!Secret"'), /^m1 OK/m);
      assert.match(await c.command('m2', 'SELECT INBOX'), /^\* \d+ EXISTS/m);
      c.close();
    } finally {
      settings.masterUser = false;
    }
  });

  test('with "deleted to Trash" an expunged message goes to Trash', async () => {
    settings.deletedToTrash = true;
    try {
      const owner = { kind: 'user' as const, login: 'laura.verdi' };
      await mailbox.deliver(owner, 'Subject: to trash\r\n\r\nx\r\n');
      const c = await RawImap.connect(server.port);
      await c.starttls();
      await c.command('t1', `LOGIN laura.verdi "${PASSWORD}"`);
      await c.command('t2', 'SELECT INBOX');
      await c.command('t3', 'STORE 1 +FLAGS (\\Deleted)');
      assert.match(await c.command('t4', 'EXPUNGE'), /^\* 1 EXPUNGE/m);
      const trash = await mailbox.openFolder(owner, 'Trash');
      assert.equal(trash.messages.length, 1);
      assert.deepEqual(trash.messages[0].flags, []);
      c.close();
    } finally {
      settings.deletedToTrash = false;
    }
  });
});

describe('IMAP shared folders', () => {
  test('a group member sees the group under Shared/, reads and writes it; others do not', async () => {
    const support = { kind: 'shared' as const, group: 'support' };
    await mailbox.deliver(support, 'Subject: ticket 1\r\n\r\nhelp\r\n');
    const paolo = client('paolo.neri');
    await paolo.connect();
    const list = await paolo.list();
    assert.ok(list.some((f) => f.path === 'Shared/support'), JSON.stringify(list.map((f) => f.path)));
    assert.ok(list.some((f) => f.path === 'Shared/support/Trash'));
    const lock = await paolo.getMailboxLock('Shared/support');
    try {
      const msg = await paolo.fetchOne('1', { envelope: true });
      assert.equal(msg && msg.envelope?.subject, 'ticket 1');
      await paolo.messageFlagsAdd('1', ['\\Seen']);
    } finally {
      lock.release();
    }
    await paolo.append('INBOX', 'Subject: mine\r\n\r\nx\r\n');
    const mine = await paolo.getMailboxLock('INBOX');
    try {
      const copied = await paolo.messageCopy('1', 'Shared/support');
      assert.ok(copied && copied.uidMap?.size === 1);
    } finally {
      mine.release();
    }
    await paolo.logout();
    assert.equal((await mailbox.openFolder(support, 'INBOX')).messages.length, 2);

    const raw = await RawImap.connect(server.port);
    await raw.starttls();
    await raw.command('h1', `LOGIN giulia.gallo "${PASSWORD}"`);
    assert.match(await raw.command('h2', 'NAMESPACE'), /^\* NAMESPACE \(\(\"\" "\/"\)\) NIL \(\("Shared\/" "\/"\)\)/m);
    // Group names of any case.
    const sel = await raw.command('h3', 'SELECT shared/SUPPORT');
    assert.match(sel, /^\* 2 EXISTS/m);
    assert.match(await raw.command('h4', 'GETQUOTAROOT Shared/support'), /^\* QUOTAROOT "Shared\/support" "Shared\/support"/m);
    // ACL (RFC 4314): rights follow AD membership; they are reported, not set over IMAP.
    assert.match(await raw.command('h5', 'MYRIGHTS Shared/support'), /^\* MYRIGHTS "Shared\/support" lrswipkxte\r$/m);
    assert.match(await raw.command('h6', 'MYRIGHTS INBOX'), /^\* MYRIGHTS "?INBOX"? lrswipkxtea\r$/m);
    assert.match(await raw.command('h7', 'GETACL Shared/support'), /^\* ACL "Shared\/support" "\$support" lrswipkxte\r$/m);
    assert.match(await raw.command('h8', 'LISTRIGHTS INBOX anyone'), /^\* LISTRIGHTS "?INBOX"? "?anyone"? "" l r s w i p k x t e a\r$/m);
    assert.match(await raw.command('h9', 'SETACL Shared/support john.smith lr'), /^h9 NO \[NOPERM\]/m);
    assert.match(await raw.command('h10', 'DELETEACL INBOX anyone'), /^h10 NO \[NOPERM\]/m);
    assert.match(await raw.command('h11', 'MYRIGHTS Nowhere'), /^h11 NO \[NONEXISTENT\]/m);
    assert.match(await raw.command('h12', 'CREATE Shared'), /^h12 NO \[CANNOT\]/m);
    assert.match(await raw.command('h13', 'CREATE Shared/support/Cases'), /^h13 OK/m);
    assert.match(await raw.command('h14', 'LIST "" "Shared/%/%"'), /^\* LIST \(\\HasNoChildren\) "\/" "Shared\/support\/Cases"/m);
    raw.close();

    const john = await RawImap.connect(server.port);
    await john.starttls();
    await john.command('j1', `LOGIN john.smith "${PASSWORD}"`);
    assert.match(await john.command('j2', 'SELECT Shared/support'), /^j2 NO \[NONEXISTENT\]/m);
    assert.doesNotMatch(await john.command('j3', 'LIST "" "*"'), /Shared/);
    john.close();
  });
});

describe('IMAP spam training', () => {
  test('moving into Junk teaches spam, out of Junk teaches ham, Junk to Trash teaches nothing', async () => {
    const owner = { kind: 'user' as const, login: 'mario.rossi' };
    await mailbox.deliver(owner, 'Subject: buy now\r\n\r\nx\r\n');
    await mailbox.deliver(owner, 'Subject: real mail\r\n\r\nx\r\n', 'Junk');
    await mailbox.deliver(owner, 'Subject: junk to delete\r\n\r\nx\r\n', 'Junk');
    const c = await RawImap.connect(server.port);
    await c.starttls();
    await c.command('k1', `LOGIN mario.rossi "${PASSWORD}"`);
    await c.command('k2', 'SELECT INBOX');
    assert.match(await c.command('k3', 'MOVE 1 Junk'), /^k3 OK/m);
    await c.command('k4', 'SELECT Junk');
    assert.match(await c.command('k5', 'UID MOVE 1 INBOX'), /^k5 OK/m);
    assert.match(await c.command('k6', 'UID MOVE 2 Trash'), /^k6 OK/m);
    c.close();
    const deadline = Date.now() + 10_000;
    while (learned.filter((l) => l.user === 'mario.rossi').length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(
      learned.filter((l) => l.user === 'mario.rossi').map((l) => `${l.kind}:${l.subject}`),
      ['spam:buy now', 'ham:real mail'],
    );
  });
});

describe('IMAP with real clients', () => {
  const run = execChild;

  test('curl fetches a message by UID, lists and searches over STARTTLS', async () => {
    const owner = { kind: 'user' as const, login: 'carla.fermi' };
    await mailbox.deliver(owner, 'From: a@example.com\r\nSubject: for curl\r\n\r\ncurl body\r\n');
    const base = ['-s', '--ssl-reqd', '-k', '-u', `Carla.Fermi:${PASSWORD}`];
    const { stdout: msg } = await run('curl', [...base, `imap://127.0.0.1:${server.port}/INBOX;UID=1`]);
    assert.match(msg, /^Subject: for curl\r\n\r\ncurl body/m);
    const { stdout: list } = await run('curl', [...base, `imap://127.0.0.1:${server.port}/`]);
    assert.match(list, /^\* LIST \(\\HasNoChildren \\Junk\) "\/" "?Junk"?/m);
    const { stdout: search } = await run('curl', [...base, `imap://127.0.0.1:${server.port}/INBOX?SUBJECT%20curl`]);
    assert.match(search, /^\* SEARCH 1\r?$/m);
  });

  test('mbsync pulls the folders into a Maildir and pushes a new message back', async () => {
    const owner = { kind: 'user' as const, login: 'laura.verdi' };
    await mailbox.deliver(owner, 'From: a@example.com\r\nSubject: for mbsync\r\n\r\nx\r\n');
    const dir = mkdtempSync(join(tmpdir(), 'postern-mbsync-'));
    try {
      const rc = join(dir, 'mbsyncrc');
      mkdirSync(join(dir, 'mail'));
      writeFileSync(
        rc,
        [
          'IMAPAccount test',
          'Host localhost',
          `Port ${server.port}`,
          'User laura.verdi',
          `Pass ${PASSWORD}`,
          'SSLType STARTTLS',
          `CertificateFile ${join(ROOT, 'test/fixtures/tls/localhost.crt')}`,
          'SystemCertificates no',
          '',
          'IMAPStore remote',
          'Account test',
          '',
          'MaildirStore local',
          `Path ${dir}/mail/`,
          `Inbox ${dir}/mail/INBOX`,
          'SubFolders Verbatim',
          '',
          'Channel ch',
          'Far :remote:',
          'Near :local:',
          'Patterns *',
          'Create Both',
          'Sync All',
          'SyncState *',
          '',
        ].join('\n'),
      );
      await run('mbsync', ['-q', '-c', rc, 'ch'], { cwd: dir });
      const inbox = [...readdirSync(join(dir, 'mail/INBOX/new')), ...readdirSync(join(dir, 'mail/INBOX/cur'))];
      assert.ok(inbox.length >= 1, 'INBOX pulled');
      assert.ok(readdirSync(join(dir, 'mail')).includes('Junk'));
      mkdirSync(join(dir, 'mail/Drafts/cur'), { recursive: true });
      writeFileSync(join(dir, 'mail/Drafts/cur/1.local:2,D'), 'From: laura@example.com\nSubject: pushed\n\nhi\n');
      await run('mbsync', ['-q', '-c', rc, 'ch'], { cwd: dir });
      const drafts = await mailbox.openFolder(owner, 'Drafts');
      assert.equal(drafts.messages.length, 1);
      assert.ok(drafts.messages[0].flags.includes('\\Draft'));
      assert.match((await mailbox.readMessage(owner, 'Drafts', drafts.messages[0].uid)).toString(), /^Subject: pushed\r\n/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('IMAP quota enforcement', () => {
  test('APPEND and COPY over quota answer NO [OVERQUOTA]', async () => {
    const owner = { kind: 'user' as const, login: 'it.tech' };
    await mailbox.deliver(owner, 'Subject: big\r\n\r\n' + 'x'.repeat(120) + '\r\n');
    const c = await RawImap.connect(server.port);
    await c.starttls();
    await c.command('q1', `LOGIN it.tech "${PASSWORD}"`);
    const msg = 'Subject: more\r\n\r\n' + 'y'.repeat(100) + '\r\n';
    c.send(`q2 APPEND INBOX {${msg.length}}\r\n`);
    await c.until(/^\+ .*\r\n/m);
    c.send(msg + '\r\n');
    assert.match(await c.until(/^q2 .*\r\n/m), /^q2 NO \[OVERQUOTA\]/m);
    await c.command('q3', 'SELECT INBOX');
    assert.match(await c.command('q4', 'COPY 1 Trash'), /^q4 NO \[OVERQUOTA\]/m);
    assert.match(await c.command('q5', 'GETQUOTAROOT INBOX'), /^\* QUOTA "" \(STORAGE 1 0\)/m);
    c.close();
  });
});

describe('IMAP on implicit TLS with limits', () => {
  let tlsServer: ImapServer;
  before(async () => {
    tlsServer = await startImap({
      port: 0,
      host: '127.0.0.1',
      secure: true,
      tls: TLS,
      auth,
      mailbox,
      settings: { get: (key) => key === 'mailbox.imap' },
      hostname: 'mail.example.com',
      log: silentLogger,
      idleTimeoutMs: 300,
      maxPerUser: 1,
    });
  });
  after(() => tlsServer.close());

  test('logs in with imapflow on implicit TLS and offers no STARTTLS', async () => {
    const c = new ImapFlow({ host: '127.0.0.1', port: tlsServer.port, secure: true, tls: { rejectUnauthorized: false }, auth: { user: 'anna.bianchi', pass: PASSWORD }, logger: false });
    await c.connect();
    assert.ok(!c.capabilities.has('STARTTLS'));
    assert.ok(c.capabilities.has('IDLE') && c.capabilities.has('MOVE') && c.capabilities.has('UIDPLUS'));
    await c.logout();
  });

  test('refuses a second session of the same user over the limit', async () => {
    const open = async () => {
      const s = tlsConnect({ port: tlsServer.port, host: '127.0.0.1', rejectUnauthorized: false });
      await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
      const c = new RawImap(s);
      await c.until(/^\* OK .*\r\n/m);
      return c;
    };
    const a = await open();
    const b = await open();
    assert.match(await a.command('x1', `LOGIN paolo.neri "${PASSWORD}"`), /^x1 OK/m);
    assert.match(await b.command('x2', `LOGIN paolo.neri "${PASSWORD}"`), /^x2 NO \[LIMIT\]/m);
    a.close();
    b.close();
  });

  test('logs out a client idle for longer than the timeout', async () => {
    const s = tlsConnect({ port: tlsServer.port, host: '127.0.0.1', rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
    const c = new RawImap(s);
    await c.until(/^\* OK .*\r\n/m);
    assert.match(await c.until(/^\* BYE .*\r\n/m, 2000), /Autologout/);
    c.close();
  });
});
