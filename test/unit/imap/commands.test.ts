/**
 * The pure parts of the IMAP commands: ENVELOPE / BODYSTRUCTURE / BODY[section] from the MIME tree, SEARCH
 * criteria, LIST patterns, the date formats and the response encoding.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sectionData } from '../../../src/imap/commands/fetch.ts';
import { matchesPattern, patternToRegExp } from '../../../src/imap/commands/list.ts';
import { matches, parseCriteria } from '../../../src/imap/commands/search.ts';
import { toCrlf } from '../../../src/imap/commands/append.ts';
import { bodystructure, envelope, parseAddressList, parseMime } from '../../../src/imap/mime.ts';
import { parseCommand, parseFetchAtt } from '../../../src/imap/parser.ts';
import { encode, encodeString, formatInternalDate, parseImapDate } from '../../../src/imap/response.ts';
import { ImapError } from '../../../src/imap/command.ts';
import { COMMANDS } from '../../../src/imap/commands/index.ts';
import { NESTED } from './fixtures.ts';


const section = (raw: string, att: string) => {
  const a = parseFetchAtt(att);
  assert.equal(a.kind, 'section');
  return a.kind === 'section' ? sectionData(Buffer.from(raw), parseMime(Buffer.from(raw)), a.section).toString() : '';
};

describe('BODYSTRUCTURE and ENVELOPE', () => {
  test('describes a multipart with a message/rfc822 part (RFC 3501 §7.4.2)', () => {
    assert.equal(
      encode(bodystructure(parseMime(Buffer.from(NESTED)), true)).toString(),
      '(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 5 0 NIL NIL NIL NIL)' +
        '("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 28 (NIL "inner" NIL NIL NIL NIL NIL NIL NIL NIL) ' +
        '("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 0 NIL NIL NIL NIL) 2 NIL NIL NIL NIL) ' +
        '"MIXED" ("BOUNDARY" "b1") NIL NIL NIL)',
    );
  });

  test('a boundary that is the prefix of a nested boundary does not split the nested part', () => {
    const m = [
      'Content-Type: multipart/mixed; boundary="b1"',
      '',
      '--b1',
      'Content-Type: multipart/alternative; boundary="b10"',
      '',
      '--b10',
      'Content-Type: text/plain',
      '',
      'plain',
      '--b10',
      'Content-Type: text/html',
      '',
      '<p>html</p>',
      '--b10--',
      '--b1--',
      '',
    ].join('\r\n');
    const tree = parseMime(Buffer.from(m));
    assert.equal(tree.children.length, 1);
    assert.equal(tree.children[0].children.length, 2);
    assert.equal(section(m, 'BODY[1.2]'), '<p>html</p>');
  });

  test('BODY is BODYSTRUCTURE without extension data; no Content-Type means text/plain us-ascii', () => {
    assert.equal(encode(bodystructure(parseMime(Buffer.from('Subject: x\r\n\r\nhello\r\n')), false)).toString(), '("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 7 1)');
  });

  test('ENVELOPE has groups, quoted names with commas, comment names, and From as Sender/Reply-To', () => {
    assert.equal(
      encode(envelope(parseMime(Buffer.from(NESTED)))).toString(),
      '(NIL "hi" ((NIL NIL "anna" "example.com")) ((NIL NIL "anna" "example.com")) ((NIL NIL "anna" "example.com")) ' +
        '((NIL NIL "team" NIL)(NIL NIL "a" "x.com")("B, b" NIL "b" "x.com")(NIL NIL NIL NIL)("Cee" NIL "c" "y.org")) NIL NIL NIL NIL)',
    );
    assert.deepEqual(parseAddressList('"Rossi, Mario" <mario@example.com>'), [{ name: 'Rossi, Mario', route: null, local: 'mario', domain: 'example.com' }]);
  });
});

describe('BODY[section]', () => {
  test('returns the exact bytes of parts, headers, MIME headers and encapsulated messages', () => {
    assert.equal(section(NESTED, 'BODY[1]'), 'Hello');
    assert.equal(section(NESTED, 'BODY[1.MIME]'), 'Content-Type: text/plain; charset=us-ascii\r\n\r\n');
    assert.equal(section(NESTED, 'BODY[2]'), 'Subject: inner\r\n\r\ninner body');
    assert.equal(section(NESTED, 'BODY[2.HEADER]'), 'Subject: inner\r\n\r\n');
    assert.equal(section(NESTED, 'BODY[2.TEXT]'), 'inner body');
    assert.equal(section(NESTED, 'BODY[2.1]'), 'inner body');
    assert.equal(section(NESTED, 'BODY[HEADER.FIELDS (SUBJECT FROM)]'), 'From: anna@example.com\r\nSubject: hi\r\n\r\n');
    assert.match(section(NESTED, 'BODY[HEADER.FIELDS.NOT (TO CONTENT-TYPE)]'), /^From: anna@example.com\r\nSubject: hi\r\n\r\n$/);
    assert.equal(section(NESTED, 'BODY[]'), NESTED);
    assert.equal(section(NESTED, 'BODY[9]'), '');
  });

  test('a single-part message is its own part 1; partials cut by bytes', () => {
    const m = 'Subject: x\r\n\r\nhello world\r\n';
    assert.equal(section(m, 'BODY[1]'), 'hello world\r\n');
    assert.equal(section(m, 'BODY[TEXT]<6.5>'), 'world');
    assert.equal(section(m, 'BODY[TEXT]<100>'), '');
  });
});

describe('SEARCH criteria', () => {
  const meta = { uid: 10, size: 500, flags: ['\\Seen', '$Work'], internalDate: new Date('2026-11-10T12:00:00Z') };
  const crit = (s: string) => parseCriteria(parseCommand(Buffer.from(`s SEARCH ${s}\r\n`)).args);
  const on = (s: string, tree = parseMime(Buffer.from(NESTED))) => matches(crit(s), { seq: 3, meta, count: 5, maxUid: 12, tree });

  test('flags, keywords, sizes, sets and UIDs', () => {
    assert.equal(on('SEEN'), true);
    assert.equal(on('UNSEEN'), false);
    assert.equal(on('KEYWORD $Work'), true);
    assert.equal(on('UNKEYWORD $Work'), false);
    assert.equal(on('LARGER 499 SMALLER 501'), true);
    assert.equal(on('2:4'), true);
    assert.equal(on('4:*'), false);
    assert.equal(on('UID 10'), true);
    assert.equal(on('UID 11:*'), false);
    assert.equal(on('NOT UID 10'), false);
    assert.equal(on('OR DELETED (SEEN LARGER 1)'), true);
    assert.equal(on('NEW'), false);
  });

  test('dates compare by day (internal date for BEFORE/ON/SINCE)', () => {
    assert.equal(on('ON 10-Nov-2026'), true);
    assert.equal(on('SINCE 11-Nov-2026'), false);
    assert.equal(on('BEFORE 11-Nov-2026'), true);
  });

  test('text criteria match decoded headers and text parts, case-insensitively', () => {
    assert.equal(on('SUBJECT HI'), true);
    assert.equal(on('TO "b, B"'), true);
    assert.equal(on('BODY hello'), true);
    assert.equal(on('BODY subject'), false);
    assert.equal(on('TEXT anna@'), true);
    assert.equal(on('HEADER Content-Type multipart'), true);
    const encoded = parseMime(Buffer.from('Subject: =?UTF-8?B?Q2FmZsOo?=\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nperch=C3=A9 no\r\n'));
    assert.equal(on('SUBJECT "caffè"', encoded), true);
    assert.equal(on('BODY "perché"', encoded), true);
  });

  test('bad criteria are BAD', () => {
    for (const s of ['FROB', 'FROM', 'BEFORE 2026-11-10', 'LARGER x', 'UID', '()', 'OR SEEN']) {
      assert.throws(() => crit(s), (e: unknown) => e instanceof ImapError && e.status === 'BAD', s);
    }
  });
});

describe('LIST patterns', () => {
  test('"*" crosses the separator, "%" does not, INBOX is case-insensitive', () => {
    assert.equal(matchesPattern('Projects/2026', patternToRegExp('*')), true);
    assert.equal(matchesPattern('Projects/2026', patternToRegExp('%')), false);
    assert.equal(matchesPattern('Projects/2026', patternToRegExp('Projects/%')), true);
    assert.equal(matchesPattern('INBOX', patternToRegExp('inbox')), true);
    assert.equal(matchesPattern('a.b', patternToRegExp('a?b')), false);
  });
});

describe('encoding and dates', () => {
  test('strings are quoted when safe, literals otherwise', () => {
    assert.equal(encodeString('a "b" \\c').toString(), '"a \\"b\\" \\\\c"');
    assert.equal(encodeString('line\r\nbreak').toString(), '{11}\r\nline\r\nbreak');
    assert.equal(encodeString('caffè').toString('latin1'), '{6}\r\ncaff\xc3\xa8');
  });

  test('INTERNALDATE round-trips and APPEND dates honour their zone', () => {
    const d = new Date('2026-01-02T03:04:05Z');
    assert.equal(formatInternalDate(d), ' 2-Jan-2026 03:04:05 +0000');
    assert.equal(parseImapDate(formatInternalDate(d), true)?.toISOString(), d.toISOString());
    assert.equal(parseImapDate('02-Jan-2026 05:04:05 +0200', true)?.toISOString(), d.toISOString());
    assert.equal(parseImapDate('31-Foo-2026', false), undefined);
  });

  test('APPENDed messages get CRLF line ends only (DESIGN.md §6)', () => {
    assert.equal(toCrlf(Buffer.from('a\nb\rc\r\nd')).toString(), 'a\r\nb\r\nc\r\nd');
  });
});

describe('command table', () => {
  test('every command module declares its states and is reachable by each of its names', () => {
    for (const name of ['CAPABILITY', 'NOOP', 'LOGOUT', 'STARTTLS', 'LOGIN', 'AUTHENTICATE', 'ID', 'ENABLE', 'NAMESPACE', 'SELECT', 'EXAMINE', 'CREATE', 'DELETE', 'RENAME', 'SUBSCRIBE', 'UNSUBSCRIBE', 'LIST', 'LSUB', 'STATUS', 'APPEND', 'CHECK', 'CLOSE', 'UNSELECT', 'EXPUNGE', 'SEARCH', 'FETCH', 'STORE', 'COPY', 'MOVE', 'IDLE', 'GETQUOTAROOT', 'GETQUOTA', 'MYRIGHTS', 'GETACL', 'LISTRIGHTS', 'SETACL', 'DELETEACL']) {
      const mod = COMMANDS.get(name);
      assert.ok(mod, name);
      assert.ok(mod.states.length > 0, name);
    }
    for (const name of ['FETCH', 'SEARCH', 'STORE', 'COPY', 'MOVE', 'EXPUNGE']) assert.equal(COMMANDS.get(name)?.uid, true, name);
    assert.equal(COMMANDS.get('SELECT')?.uid, undefined);
    assert.deepEqual(COMMANDS.get('FETCH')?.states, ['selected']);
    assert.ok(!COMMANDS.get('SELECT')?.states.includes('not-authenticated'));
  });
});
