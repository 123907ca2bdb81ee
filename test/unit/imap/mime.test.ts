/**
 * The message-structure side of FETCH: section numbers through nested message/rfc822 parts (RFC 3501 §6.4.5),
 * ENVELOPE address lists with groups and source routes (§7.4.2), and BODYSTRUCTURE as the §9 grammar spells it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sectionData } from '../../../src/imap/commands/fetch.ts';
import { bodystructure, envelope, parseAddressList, parseMime, parseParameterized } from '../../../src/imap/mime.ts';
import { parseFetchAtt } from '../../../src/imap/parser.ts';
import { encode } from '../../../src/imap/response.ts';

const crlf = (lines: string[]) => lines.join('\r\n');

const section = (raw: string, att: string): string => {
  const a = parseFetchAtt(att);
  assert.equal(a.kind, 'section');
  return a.kind === 'section' ? sectionData(Buffer.from(raw), parseMime(Buffer.from(raw)), a.section).toString() : '';
};

const structure = (raw: string, ext = true) => encode(bodystructure(parseMime(Buffer.from(raw)), ext)).toString();
const env = (raw: string) => encode(envelope(parseMime(Buffer.from(raw)))).toString();

/** A message whose whole body is a forwarded message (Content-Type: message/rfc822), as "forward as attachment" makes. */
const FORWARDED = crlf([
  'From: user@domain.org',
  'Mime-Version: 1.0',
  'Content-Type: message/rfc822',
  '',
  'From: sub@domain.org',
  'Subject: submsg',
  '',
  'Hello world',
  '',
]);
const INNER = crlf(['From: sub@domain.org', 'Subject: submsg', '', 'Hello world', '']);

/** message/rfc822 holding a message/rfc822 holding a text message. */
const TWICE = crlf([
  'From: user@domain.org',
  'Content-Type: message/rfc822',
  '',
  'From: user2@domain.org',
  'Content-Type: message/rfc822',
  '',
  'From: sub@domain.org',
  'Subject: submsg',
  '',
  'Hello world',
  '',
]);

/** message/rfc822 holding a multipart/digest, whose parts default to message/rfc822 (RFC 2046 §5.1.5). */
const DIGEST = crlf([
  'From: user@domain.org',
  'Content-Type: message/rfc822',
  '',
  'From: sub@domain.org',
  'Subject: submsg',
  'Content-Type: multipart/digest; boundary="foo"',
  '',
  'prologue',
  '',
  '--foo ',
  '',
  'From: m1@example.com',
  'Subject: m1',
  '',
  'm1 body',
  '',
  '--foo ',
  'X-Mime: m2 header',
  '',
  'From: m2@example.com',
  'Subject: m2',
  '',
  'm2 body',
  '',
  '--foo--',
  '',
  'epilogue',
  '',
]);

describe('section numbers inside message/rfc822 (RFC 3501 §6.4.5)', () => {
  test('BODY[1] of a message whose body is message/rfc822 is the whole encapsulated message', () => {
    assert.equal(section(FORWARDED, 'BODY[1]'), INNER);
    assert.equal(section(FORWARDED, 'BODY[TEXT]'), INNER);
    assert.equal(section(FORWARDED, 'BODY[1.HEADER]'), 'From: sub@domain.org\r\nSubject: submsg\r\n\r\n');
    assert.equal(section(FORWARDED, 'BODY[1.TEXT]'), 'Hello world\r\n');
    assert.equal(section(FORWARDED, 'BODY[1.1]'), 'Hello world\r\n');
    assert.equal(section(FORWARDED, 'BODY[1.HEADER.FIELDS (SUBJECT X-FOO)]'), 'Subject: submsg\r\n\r\n');
    assert.equal(section(FORWARDED, 'BODY[1.HEADER.FIELDS.NOT (SUBJECT)]'), 'From: sub@domain.org\r\n\r\n');
    assert.equal(section(FORWARDED, 'BODY[2]'), '');
  });

  test('two levels of message/rfc822: each level adds one section number', () => {
    assert.equal(section(TWICE, 'BODY[1]'), TWICE.slice(TWICE.indexOf('From: user2')));
    assert.equal(section(TWICE, 'BODY[1.HEADER]'), 'From: user2@domain.org\r\nContent-Type: message/rfc822\r\n\r\n');
    assert.equal(section(TWICE, 'BODY[1.1]'), INNER);
    assert.equal(section(TWICE, 'BODY[1.1.HEADER]'), 'From: sub@domain.org\r\nSubject: submsg\r\n\r\n');
    assert.equal(section(TWICE, 'BODY[1.1.TEXT]'), 'Hello world\r\n');
    assert.equal(section(TWICE, 'BODY[1.1.1]'), 'Hello world\r\n');
  });

  test('the parts of an encapsulated multipart are [1.n], with their MIME headers and their own messages', () => {
    assert.equal(section(DIGEST, 'BODY[1.1]'), 'From: m1@example.com\r\nSubject: m1\r\n\r\nm1 body\r\n');
    assert.equal(section(DIGEST, 'BODY[1.1.MIME]'), '\r\n');
    assert.equal(section(DIGEST, 'BODY[1.1.HEADER]'), 'From: m1@example.com\r\nSubject: m1\r\n\r\n');
    assert.equal(section(DIGEST, 'BODY[1.1.TEXT]'), 'm1 body\r\n');
    assert.equal(section(DIGEST, 'BODY[1.2.MIME]'), 'X-Mime: m2 header\r\n\r\n');
    assert.equal(section(DIGEST, 'BODY[1.2.TEXT]'), 'm2 body\r\n');
    assert.match(section(DIGEST, 'BODY[1.TEXT]'), /^prologue\r\n\r\n--foo \r\n/);
  });

  test('a message/rfc822 part of a multipart: [n] is the message, [n.MIME] the part header, [n.m] its parts', () => {
    const m = crlf([
      'Content-Type: multipart/mixed; boundary="foo',
      ' bar"',
      '',
      '--foo bar',
      'Content-Type: text/x-myown; charset=us-ascii',
      '',
      'hello',
      '',
      '--foo bar',
      'Content-Type: message/rfc822',
      '',
      'Subject: submsg',
      'Content-Type: multipart/alternative; boundary="sub1"',
      '',
      '--sub1',
      'Content-Type: text/html',
      '',
      '<p>Hello world</p>',
      '',
      '--sub1',
      'Content-Type: text/plain',
      '',
      'Hello another world',
      '',
      '--sub1--',
      '',
      '--foo bar--',
      '',
    ]);
    assert.equal(section(m, 'BODY[1]'), 'hello\r\n');
    assert.equal(section(m, 'BODY[2.MIME]'), 'Content-Type: message/rfc822\r\n\r\n');
    assert.match(section(m, 'BODY[2]'), /^Subject: submsg\r\n/);
    assert.equal(section(m, 'BODY[2.HEADER.FIELDS (SUBJECT)]'), 'Subject: submsg\r\n\r\n');
    assert.equal(section(m, 'BODY[2.1.MIME]'), 'Content-Type: text/html\r\n\r\n');
    assert.equal(section(m, 'BODY[2.1]'), '<p>Hello world</p>\r\n');
    assert.equal(section(m, 'BODY[2.2]'), 'Hello another world\r\n');
    // A text part has no HEADER/TEXT of its own and no sub-parts.
    assert.equal(section(m, 'BODY[1.HEADER]'), '');
    assert.equal(section(m, 'BODY[1.1]'), '');
  });
});

describe('ENVELOPE address lists (RFC 3501 §7.4.2, RFC 5322 §3.4)', () => {
  test('groups are a start marker, their members and an end marker; a comment alone is no member', () => {
    const m = crlf([
      'From: user@domain (Real Name)',
      'To: group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;',
      'Cc: group:;, group2: (foo) ;',
      '',
      'body',
    ]);
    assert.equal(
      env(m),
      '(NIL NIL (("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) ' +
        '((NIL NIL "group" NIL)(NIL NIL "g1" "d1.org")(NIL NIL "g2" "d2.org")(NIL NIL NIL NIL)(NIL NIL "group2" NIL)(NIL NIL "g3" "d3.org")(NIL NIL NIL NIL)) ' +
        '((NIL NIL "group" NIL)(NIL NIL NIL NIL)(NIL NIL "group2" NIL)(NIL NIL NIL NIL)) NIL NIL NIL)',
    );
  });

  test('a source route is the adl; several routes are joined by commas', () => {
    assert.deepEqual(parseAddressList('<@route:user@domain>'), [{ name: null, route: '@route', local: 'user', domain: 'domain' }]);
    assert.deepEqual(parseAddressList('Joe <@a.example,@b.example:joe@c.example>'), [{ name: 'Joe', route: '@a.example,@b.example', local: 'joe', domain: 'c.example' }]);
    assert.match(env('From: <@route:user@domain>\r\n\r\n'), /^\(NIL NIL \(\(NIL "@route" "user" "domain"\)\)/);
  });

  test('display names: quoted with specials, several words, encoded words kept as sent; empty elements are skipped', () => {
    assert.deepEqual(parseAddressList('"Rossi, Mario" <mario@example.com>, , John  Q. Public <jqp@x.org>'), [
      { name: 'Rossi, Mario', route: null, local: 'mario', domain: 'example.com' },
      { name: 'John Q. Public', route: null, local: 'jqp', domain: 'x.org' },
    ]);
    assert.deepEqual(parseAddressList('=?UTF-8?Q?Caff=C3=A8?= <c@x.org>')[0].name, '=?UTF-8?Q?Caff=C3=A8?=');
    assert.deepEqual(parseAddressList('"a \\"quoted\\" name" <q@x.org>')[0].name, 'a "quoted" name');
    assert.deepEqual(parseAddressList('undisclosed-recipients:;'), [{ name: 'undisclosed-recipients', route: null, local: '', domain: '', group: [] }]);
  });

  test('an empty Sender or Reply-To falls back to From; missing fields are NIL', () => {
    assert.equal(
      env(crlf(['Date: Thu, 15 Feb 2007 01:02:03 +0200', 'From: user@domain (Real Name)', 'Sender: ', 'Reply-To: ', '', 'body'])),
      '("Thu, 15 Feb 2007 01:02:03 +0200" NIL (("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) NIL NIL NIL NIL NIL)',
    );
  });
});

describe('BODYSTRUCTURE (RFC 3501 §7.4.2 and §9)', () => {
  test('the parts of a multipart follow each other without a space, then SP subtype and the extension data', () => {
    const m = crlf([
      'Content-Type: multipart/mixed; boundary="foo',
      ' bar"',
      '',
      '--foo bar',
      'Content-Type: text/x-myown; charset=us-ascii',
      '',
      'hello',
      '',
      '--foo bar',
      'Content-Type: application/octet-stream',
      'Content-Transfer-Encoding: base64 (binary data)',
      'Content-ID: <id1@x>',
      'Content-Description: some bytes',
      'Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==',
      'Content-Disposition: attachment; filename="a.bin"; size=3',
      'Content-Language: en, it',
      'Content-Location: http://example.com/a.bin',
      '',
      'AAEC',
      '--foo bar--',
      '',
    ]);
    assert.equal(
      structure(m, false),
      '(("TEXT" "X-MYOWN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 7 1)("APPLICATION" "OCTET-STREAM" NIL "<id1@x>" "some bytes" "BASE64" 4) "MIXED")',
    );
    assert.equal(
      structure(m),
      '(("TEXT" "X-MYOWN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 7 1 NIL NIL NIL NIL)' +
        '("APPLICATION" "OCTET-STREAM" NIL "<id1@x>" "some bytes" "BASE64" 4 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("ATTACHMENT" ("FILENAME" "a.bin" "SIZE" "3")) ("en" "it") "http://example.com/a.bin")' +
        ' "MIXED" ("BOUNDARY" "foo bar") NIL NIL NIL)',
    );
  });

  test('message/rfc822 has the envelope, the body structure and the line count of the encapsulated message', () => {
    assert.equal(
      structure(FORWARDED),
      '("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 54 (NIL "submsg" ((NIL NIL "sub" "domain.org")) ((NIL NIL "sub" "domain.org")) ((NIL NIL "sub" "domain.org")) NIL NIL NIL NIL NIL) ' +
        '("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 13 1 NIL NIL NIL NIL) 4 NIL NIL NIL NIL)',
    );
  });

  test('no Content-Type is text/plain; charset=us-ascii (RFC 2045 §5.2); a text part without charset is us-ascii', () => {
    assert.equal(structure('Subject: x\r\n\r\nhello\r\nworld\r\n', false), '("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 14 2)');
    assert.equal(structure('Content-Type: text/html\r\n\r\n<p>x</p>', false), '("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "7BIT" 8 0)');
    assert.equal(structure('Content-Type: image/png; name=a.png\r\nContent-Transfer-Encoding: BASE64\r\n\r\niVBO\r\n', false), '("IMAGE" "PNG" ("NAME" "a.png") NIL NIL "BASE64" 6)');
  });

  test('a multipart nested in a multipart is one body of the outer list', () => {
    const m = crlf([
      'Content-Type: multipart/mixed; boundary=o',
      '',
      '--o',
      'Content-Type: multipart/alternative; boundary=i',
      '',
      '--i',
      '',
      'plain',
      '--i',
      'Content-Type: text/html; charset=utf-8',
      '',
      '<b>x</b>',
      '--i--',
      '--o',
      'Content-Type: text/plain',
      '',
      'tail',
      '--o--',
      '',
    ]);
    assert.equal(
      structure(m, false),
      '((("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 5 0)("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 8 0) "ALTERNATIVE")' +
        '("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 4 0) "MIXED")',
    );
  });

  test('parameters: comments and case do not matter, RFC 2231 continuations are joined, extended values stay encoded', () => {
    assert.deepEqual(parseParameterized('TEXT/Plain (comment); CHARSET=ISO-8859-1 (c2); Format="flowed"'), {
      value: 'text/plain',
      params: { charset: 'ISO-8859-1', format: 'flowed' },
    });
    assert.deepEqual(parseParameterized(`attachment; filename*0="long"; filename*1="name.bin"; name*=utf-8''na%C3%AFve.bin`), {
      value: 'attachment',
      params: { filename: 'longname.bin', 'name*': "utf-8''na%C3%AFve.bin" },
    });
    assert.deepEqual(parseParameterized(`x; t*0*=utf-8''%C3%A8; t*1=" a;b"`).params, { 't*': "utf-8''%C3%A8%20a%3Bb" });
    assert.equal(
      structure(crlf(['Content-Type: application/octet-stream; name*=utf-8\'\'na%C3%AFve.bin', 'Content-Disposition: attachment; filename*0="a"; filename*1="b.bin"', '', 'x']), true),
      '("APPLICATION" "OCTET-STREAM" ("NAME*" "utf-8\'\'na%C3%AFve.bin") NIL NIL "7BIT" 1 NIL ("ATTACHMENT" ("FILENAME" "ab.bin")) NIL NIL)',
    );
  });

  test('a multipart without a boundary or without parts has one empty text part, as in Dovecot', () => {
    for (const ct of ['multipart/mixed', 'multipart/mixed; boundary=zz']) {
      const m = `Content-Type: ${ct}\r\n\r\njust text\r\n`;
      assert.match(structure(m, false), /^\(\("TEXT" "PLAIN" \("CHARSET" "us-ascii"\) NIL NIL "7BIT" 0 0\) "MIXED"\)$/);
      assert.equal(section(m, 'BODY[1]'), '');
      assert.equal(section(m, 'BODY[TEXT]'), 'just text\r\n');
    }
  });

  test('line counts are line ends: a last line without CRLF (before a boundary, or at the end) is not counted', () => {
    assert.match(structure('Subject: x\r\n\r\none\r\ntwo', false), / 8 1\)$/);
    assert.match(structure('Subject: x\r\n\r\none\r\ntwo\r\n', false), / 10 2\)$/);
  });

  test('an empty display name is NIL', () => {
    assert.deepEqual(parseAddressList('"" <empty@x>'), [{ name: null, route: null, local: 'empty', domain: 'x' }]);
  });
});
