/**
 * FETCH answers header sections and structures of messages it has read once from the process's memo
 * (src/imap/message-memo.ts, issue 11): a repeated FETCH of ENVELOPE, BODY, BODYSTRUCTURE, BODY.PEEK[HEADER],
 * BODY.PEEK[HEADER.FIELDS …] and RFC822.HEADER reads no message file — counted through the store's readMessage, the
 * one way IMAP reads a message — and gives the very bytes the first one did, also to another session and after a
 * restart of the mailbox. Bodies still come from the files, and reading a header without PEEK still sets \Seen.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { append, onMessageRead, startImapFixture, type ImapFixture } from '../helpers/imap-fixture.ts';

let fx: ImapFixture;
let reads = 0;

/** Counts the message files the IMAP server reads, from now on, through the current mailbox object. */
const countReads = (): void => onMessageRead(fx.mailbox, () => reads++);

const john = { kind: 'user' as const, login: 'john.smith' };

const messages = [
  'From: Anna Bianchi <anna@example.com>\r\nTo: John <john@example.com>\r\nSubject: Plain one\r\nDate: Mon, 5 Jan 2026 10:00:00 +0100\r\nMessage-ID: <p1@example.com>\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nbody one\r\n',
  [
    'From: "Rossi, Mario" <mario@example.org>',
    'To: john@example.com',
    'Subject: With an attachment',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'see attached',
    '--b1',
    'Content-Type: application/octet-stream; name="a.bin"',
    'Content-Transfer-Encoding: base64',
    '',
    'AAECAw==',
    '--b1--',
    '',
  ].join('\r\n'),
];
const delivered = 'From: Laura Verdi <laura@example.net>\r\nTo: john@example.com\r\nSubject: Delivered\r\n\r\nbody three\r\n';

const ITEMS = '(UID ENVELOPE BODY BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (From Subject)] RFC822.HEADER BODY.PEEK[HEADER] RFC822.SIZE)';
const COUNT = messages.length + 1;

/** The untagged FETCH lines of a response, in order. */
const fetches = (r: string): string => r.split('\r\n').filter((l) => !/^[a-z]\d* OK/.test(l)).join('\r\n');

before(async () => {
  fx = await startImapFixture({ prefix: 'postern-fetch-memo-', tls: false });
  const c = await fx.login();
  try {
    for (const [i, m] of messages.entries()) await append(c, `a${i}`, 'INBOX', m);
  } finally {
    c.close();
  }
  await fx.store.deliver(john, Buffer.from(delivered));
  countReads();
});

after(() => fx.close());

test('a repeated FETCH of headers and structures reads no file and answers the same bytes, in any session', async () => {
  const c = await fx.login();
  const other = await fx.login();
  try {
    await c.ok('s1', 'SELECT INBOX');
    await other.ok('o1', 'EXAMINE INBOX');
    reads = 0;
    const first = fetches(await c.ok('f1', `FETCH 1:* ${ITEMS}`));
    assert.equal(reads, COUNT, 'the first FETCH reads every message once');
    // Spelled out, so that the comparison below is not between two equally wrong answers.
    assert.match(first, /^\* 1 FETCH \(UID 1 ENVELOPE \("Mon, 5 Jan 2026 10:00:00 \+0100" "Plain one" /m);
    assert.match(first, /^\* 1 FETCH .* BODY \("TEXT" "PLAIN" \("CHARSET" "us-ascii"\) NIL NIL "7BIT" 10 1\) /m);
    assert.match(first, /^\* 2 FETCH .* BODY \(\("TEXT" "PLAIN" \("CHARSET" "utf-8"\) NIL NIL "7BIT" 12 0\)\("APPLICATION" "OCTET-STREAM" \("NAME" "a\.bin"\) NIL NIL "BASE64" 8\) "MIXED"\) /m);
    assert.match(first, /BODY\[HEADER\.FIELDS \(FROM SUBJECT\)\] \{\d+\}\r\nFrom: Laura Verdi <laura@example\.net>\r\nSubject: Delivered\r\n\r\n/);

    reads = 0;
    assert.equal(fetches(await c.ok('f2', `FETCH 1:* ${ITEMS}`)), first);
    assert.equal(fetches(await other.ok('o2', `FETCH 1:* ${ITEMS}`)), first);
    assert.equal(reads, 0, 'answered from the memo');

    // A partial of the header and a smaller field list come from the same header bytes.
    const partial = await c.ok('f3', 'FETCH 1 (BODY.PEEK[HEADER]<0.5> BODY.PEEK[HEADER.FIELDS.NOT (To Date Message-ID Content-Type)])');
    assert.match(partial, /BODY\[HEADER\]<0> "From:"/);
    assert.match(partial, /BODY\[HEADER\.FIELDS\.NOT \(TO DATE MESSAGE-ID CONTENT-TYPE\)\] \{\d+\}\r\nFrom: Anna Bianchi <anna@example\.com>\r\nSubject: Plain one\r\n\r\n\)/);
    assert.equal(reads, 0);

    // Bodies are not kept: they are read from the file.
    const text = await c.ok('f4', 'FETCH 1:* (BODY.PEEK[TEXT])');
    assert.match(text, /^\* 3 FETCH \(BODY\[TEXT\] \{12\}\r\nbody three\r\n\)/m);
    assert.equal(reads, COUNT);
  } finally {
    c.close();
    other.close();
  }
});

test('a header read without PEEK from the memo still sets \\Seen and reports the new FLAGS', async () => {
  const c = await fx.login();
  try {
    await c.ok('s1', 'SELECT INBOX');
    reads = 0;
    const r = await c.ok('f1', 'FETCH 2 (BODY[HEADER.FIELDS (Subject)])');
    assert.match(r, /^\* 2 FETCH \(BODY\[HEADER\.FIELDS \(SUBJECT\)\] \{\d+\}\r\nSubject: With an attachment\r\n\r\n FLAGS \(\\Seen\)\)/m);
    assert.equal(reads, 0);
    assert.match(await c.ok('f2', 'FETCH 2 FLAGS'), /^\* 2 FETCH \(FLAGS \(\\Seen\)\)/m);
  } finally {
    c.close();
  }
});

test('after a restart of the mailbox the memo still answers (same UIDVALIDITY, same messages)', async () => {
  const c0 = await fx.login();
  let before: string;
  try {
    await c0.ok('s0', 'EXAMINE INBOX');
    before = fetches(await c0.ok('f0', `FETCH 1:* ${ITEMS}`));
  } finally {
    c0.close();
  }
  await fx.restart({ keepStore: true });
  countReads();
  const c = await fx.login();
  try {
    await c.ok('s1', 'EXAMINE INBOX');
    reads = 0;
    assert.equal(fetches(await c.ok('f1', `FETCH 1:* ${ITEMS}`)), before);
    assert.equal(reads, 0);
  } finally {
    c.close();
  }
});
