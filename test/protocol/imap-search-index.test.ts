/**
 * SEARCH on header and envelope criteria answered from the folder index (folder-index.ts `headers`, issue 11): the
 * results are the ones reading the files gives, and no message file is read — counted through the store's
 * readMessage, the one way IMAP reads a message. APPENDed messages are cached at APPEND; delivered ones (SMTP writes
 * the Maildir directly) are read once by the first SEARCH that needs them, then answered from the index, also after
 * a restart. BODY/TEXT and HEADER on a field the index does not keep still read the files.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { append, onMessageRead, startImapFixture, type ImapFixture } from '../helpers/imap-fixture.ts';
import type { RawImap } from '../helpers/raw-imap.ts';

let fx: ImapFixture;
let reads = 0;

/** Counts the message files the IMAP server reads, from now on, through the current mailbox object. */
const countReads = (): void => onMessageRead(fx.mailbox, () => reads++);

const john = { kind: 'user' as const, login: 'john.smith' };

const messages = [
  'From: Anna Bianchi <anna@example.com>\r\nTo: John <john@example.com>, team@example.com\r\nCc: mario@example.org\r\nSubject: Quarterly report\r\nDate: Mon, 5 Jan 2026 10:00:00 +0100\r\nMessage-ID: <q1@example.com>\r\n\r\nbody one\r\n',
  'From: "Rossi, Mario" <mario@example.org>\r\nTo: john@example.com\r\nBcc: boss@example.com\r\nSubject: =?utf-8?q?Caf=C3=A9_meeting?=\r\nDate: Tue, 20 Jan 2026 23:30:00 -0500\r\nMessage-ID: <m2@example.org>\r\nIn-Reply-To: <q1@example.com>\r\nX-Priority: 1\r\n\r\nbody two\r\n',
  'From: mario@example.org (Mario R)\r\nTo: undisclosed-recipients:;\r\nSubject: Re: Quarterly\r\n report follow-up\r\nDate: 1 Feb 2026 08:00 GMT\r\n\r\nbody three\r\n',
];
const delivered = [
  'From: Laura Verdi <laura@example.net>\r\nTo: john@example.com\r\nCc: Anna <anna@example.com>\r\nSubject: Lunch?\r\nDate: Sun, 1 Feb 2026 12:00:00 +0000\r\nMessage-ID: <l4@example.net>\r\n\r\nbody four\r\n',
  'From: noreply@example.com\r\nTo: john@example.com\r\nSubject: report ready\r\nList-Id: Reports <reports.example.com>\r\n\r\nbody five\r\n',
];

const CRITERIA = [
  'FROM "anna"',
  'FROM "Rossi, Mario"',
  'FROM "mario r"',
  'TO "team@"',
  'TO "john"',
  'CC "anna"',
  'BCC "boss"',
  'SUBJECT "report"',
  'SUBJECT "café"',
  'SUBJECT "quarterly report follow"',
  'HEADER Message-ID "<q1@"',
  'HEADER In-Reply-To "q1"',
  'HEADER List-Id "reports"',
  'HEADER Subject ""',
  'SENTSINCE 1-Feb-2026',
  'SENTBEFORE 6-Jan-2026',
  'SENTON 20-Jan-2026',
  'OR FROM "laura" NOT SUBJECT "report"',
  'NOT TO "john"',
  'SEEN FROM "mario"',
];

before(async () => {
  fx = await startImapFixture({ prefix: 'postern-search-index-', tls: false });
  const c = await fx.login();
  try {
    for (const [i, m] of messages.entries()) await append(c, `a${i}`, 'INBOX', m, i === 1 ? '\\Seen' : '');
  } finally {
    c.close();
  }
  for (const m of delivered) await fx.store.deliver(john, Buffer.from(m));
  countReads();
});

after(() => fx.close());

const uids = (r: string): number[] => (/^\* SEARCH([\d ]*)\r$/m.exec(r)?.[1] ?? '').trim().split(' ').filter(Boolean).map(Number);

/** The same criterion answered by reading every file (BODY makes SEARCH parse whole messages). */
async function fromFiles(c: RawImap, tag: string, criterion: string): Promise<number[]> {
  return uids(await c.ok(tag, `UID SEARCH CHARSET UTF-8 OR (${criterion}) BODY "no such text anywhere"`));
}

test('header SEARCH reads each delivered message once, APPENDed ones never, then nothing; results as from the files', async () => {
  const c = await fx.login();
  try {
    await c.ok('s1', 'SELECT INBOX');
    reads = 0;
    const first = uids(await c.ok('s2', 'UID SEARCH CHARSET UTF-8 FROM "anna"'));
    assert.deepEqual(first, [1]);
    // Only the two messages SMTP delivered (no cached fields yet) were read.
    assert.equal(reads, delivered.length);

    const got = new Map<string, number[]>();
    reads = 0;
    for (const [i, crit] of CRITERIA.entries()) got.set(crit, uids(await c.ok(`h${i}`, `UID SEARCH CHARSET UTF-8 ${crit}`)));
    assert.equal(reads, 0, 'header criteria are answered from the index');

    for (const [i, crit] of CRITERIA.entries()) assert.deepEqual(got.get(crit), await fromFiles(c, `f${i}`, crit), crit);
    // A few answers spelled out, so that the comparison is not between two equally wrong paths.
    assert.deepEqual(got.get('SUBJECT "report"'), [1, 3, 5]);
    assert.deepEqual(got.get('SUBJECT "café"'), [2]);
    assert.deepEqual(got.get('FROM "mario r"'), [3]);
    assert.deepEqual(got.get('SENTON 20-Jan-2026'), [2]);
    assert.deepEqual(got.get('HEADER List-Id "reports"'), [5]);
    assert.deepEqual(got.get('NOT TO "john"'), [3]);
    assert.deepEqual(got.get('SEEN FROM "mario"'), [2]);
  } finally {
    c.close();
  }
});

test('after a restart header SEARCH still reads no file; BODY and an uncached HEADER field do', async () => {
  await fx.restart();
  countReads();
  const c = await fx.login();
  try {
    await c.ok('r1', 'SELECT INBOX');
    reads = 0;
    assert.deepEqual(uids(await c.ok('r2', 'UID SEARCH OR SUBJECT "lunch" HEADER Message-ID "m2@"')), [2, 4]);
    assert.deepEqual(uids(await c.ok('r3', 'UID SEARCH SENTSINCE 1-Feb-2026 TO "john"')), [4]);
    assert.equal(reads, 0);
    assert.deepEqual(uids(await c.ok('r4', 'UID SEARCH HEADER X-Priority "1"')), [2]);
    assert.ok(reads > 0, 'HEADER on a field the index does not keep reads the files');
    reads = 0;
    assert.deepEqual(uids(await c.ok('r5', 'UID SEARCH BODY "body four"')), [4]);
    assert.equal(reads, messages.length + delivered.length);
  } finally {
    c.close();
  }
});

test('an updating search (RFC 5267 CONTEXT=SEARCH) matches an arriving message from its cached fields', async () => {
  const c = await fx.login();
  const other = await fx.login();
  try {
    await c.ok('u1', 'SELECT INBOX');
    const r = await c.ok('u2', 'UID SEARCH RETURN (UPDATE) SUBJECT "agenda"');
    assert.match(r, /^\* ESEARCH \(TAG "u2"\) UID\r$/m);
    reads = 0;
    await append(other, 'u3', 'INBOX', 'From: anna@example.com\r\nSubject: Agenda\r\n\r\nx\r\n');
    const update = await c.ok('u4', 'NOOP');
    assert.match(update, /^\* ESEARCH \(TAG "u2"\) UID ADDTO \(0 6\)\r$/m);
    assert.equal(reads, 0);
  } finally {
    c.close();
    other.close();
  }
});
