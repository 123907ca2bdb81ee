/**
 * BINARY (RFC 3516): the fetch attribute syntax, base64 and quoted-printable decoding (RFC 2045 §6.7, §6.8),
 * UNKNOWN-CTE, and how APPENDed binary parts are kept intact in a CRLF-only store.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { binaryData, decodeBase64, decodeQuotedPrintable, encodeBinaryParts, parseBinaryAtt } from '../../../src/imap/binary.ts';
import { ImapError } from '../../../src/imap/command.ts';
import { parseMime } from '../../../src/imap/mime.ts';
import { parseFetchAtt } from '../../../src/imap/parser.ts';

const crlf = (lines: string[]) => lines.join('\r\n');

describe('BINARY fetch attributes (RFC 3516 §6)', () => {
  test('BINARY, BINARY.PEEK with partials and BINARY.SIZE take part numbers only', () => {
    assert.deepEqual(parseFetchAtt('BINARY[1.2]'), { kind: 'binary', section: { path: [1, 2], partial: undefined, peek: false }, responseName: 'BINARY[1.2]' });
    assert.deepEqual(parseFetchAtt('binary.peek[]<5.10>'), { kind: 'binary', section: { path: [], partial: { start: 5, length: 10 }, peek: true }, responseName: 'BINARY[]<5>' });
    assert.deepEqual(parseFetchAtt('BINARY.SIZE[3]'), { kind: 'binary-size', path: [3], responseName: 'BINARY.SIZE[3]' });
    for (const bad of ['BINARY[TEXT]', 'BINARY[1.MIME]', 'BINARY[0]', 'BINARY.SIZE[1]<0.5>', 'BINARY[1]<5>', 'BINARY[1]<0.0>', 'BINARY']) {
      assert.throws(() => parseBinaryAtt(bad), Error, bad);
    }
  });
});

describe('content transfer decoding', () => {
  test('base64 ignores blanks and line breaks anywhere', () => {
    assert.equal(decodeBase64(Buffer.from('  aGVs    \r\n bG8g  \r\n   d29y  \t \r\n    bGQ= \r\n\r\n')).toString(), 'hello world');
  });

  test('quoted-printable: soft breaks, padding after "=", trailing blanks deleted, =XX octets', () => {
    const body = crlf(['hello  ', 'bar=', '', 'foo\t=', 'bar', 'foo\t \t= ', '=62', 'foo = \t', 'bar', 'foo  ', 'caf=C3=A9 =3D x=', '']);
    assert.equal(decodeQuotedPrintable(Buffer.from(body)).toString(), 'hello\r\nbar\r\nfoo\tbar\r\nfoo\t \tb\r\nfoo bar\r\nfoo\r\ncafé = x');
  });

  test('BINARY[n] decodes the part; multiparts and encapsulated messages come as they are; unknown encodings are NO [UNKNOWN-CTE]', () => {
    const m = crlf([
      'Content-Type: multipart/mixed; boundary=b',
      '',
      '--b',
      'Content-Transfer-Encoding: base64',
      '',
      'AAECAw==',
      '--b',
      'Content-Type: message/rfc822',
      '',
      'Subject: inner',
      '',
      'text',
      '--b',
      'Content-Transfer-Encoding: x-uuencode',
      '',
      'begin 644 a',
      '--b--',
      '',
    ]);
    const raw = Buffer.from(m);
    const tree = parseMime(raw);
    assert.deepEqual([...binaryData(raw, tree, [1])], [0, 1, 2, 3]);
    assert.equal(binaryData(raw, tree, [2]).toString(), 'Subject: inner\r\n\r\ntext');
    assert.equal(binaryData(raw, tree, []).toString(), m);
    assert.throws(() => binaryData(raw, tree, [3]), (e: unknown) => e instanceof ImapError && e.status === 'NO' && e.code === 'UNKNOWN-CTE');
  });
});

describe('APPEND of binary content (RFC 3516 §4.4)', () => {
  test('a binary part with NUL and bare line ends is stored as base64 that decodes to the same octets', () => {
    const content = Buffer.from([0x00, 0x2d, 0xe4, 0x0a, 0x0d, 0x0a, 0x0a]);
    const head = 'From: user@domain.org\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n';
    const stored = encodeBinaryParts(Buffer.concat([Buffer.from(head), content]));
    assert.ok(!stored.includes(0), 'no NUL stored');
    assert.match(stored.toString('latin1'), /^From: user@domain.org\r\nContent-Type: application\/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n[A-Za-z0-9+/=]+\r\n$/);
    assert.deepEqual([...binaryData(stored, parseMime(stored), [1])], [...content]);
  });

  test('inside a multipart only the binary part changes; text stays as sent', () => {
    const m = Buffer.concat([
      Buffer.from('Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Transfer-Encoding: BINARY\r\n\r\n'),
      Buffer.from([1, 0, 10, 2]),
      Buffer.from('\r\n--b--\r\n'),
    ]);
    const stored = encodeBinaryParts(m);
    const tree = parseMime(stored);
    assert.equal(tree.children[0].body.toString(), 'hi');
    assert.deepEqual([...binaryData(stored, tree, [2])], [1, 0, 10, 2]);
    // A message without NUL or bare line ends is not touched at all.
    const plain = Buffer.from('Content-Transfer-Encoding: binary\r\n\r\n\xe4\r\n', 'latin1');
    assert.equal(encodeBinaryParts(plain), plain);
  });
});

describe('BINARY of a multipart or message/rfc822 part (as Dovecot gives it to URLFETCH BINARY)', () => {
  test('the encoded parts inside are decoded in place, each labelled binary; other parts and boundaries stay', () => {
    const inner = crlf(['Subject: inner', 'Content-Type: multipart/alternative; boundary="s"', '', '--s', 'Content-Type: text/plain', 'Content-Transfer-Encoding: base64', '', 'aGVs', 'bG8=', '--s', 'Content-Type: text/plain', '', 'as is', '--s--', '']);
    const raw = Buffer.from(crlf(['Content-Type: multipart/mixed; boundary="o"', '', '--o', 'Content-Type: message/rfc822', '', inner, '--o--', '']));
    const tree = parseMime(raw);
    const out = binaryData(raw, tree, [1]).toString();
    assert.equal(out, crlf(['Subject: inner', 'Content-Type: multipart/alternative; boundary="s"', '', '--s', 'Content-Type: text/plain', 'Content-Transfer-Encoding: binary', '', 'hello', '--s', 'Content-Type: text/plain', '', 'as is', '--s--', '']));
    // BINARY[] stays the message as stored.
    assert.equal(binaryData(raw, tree, []).toString(), raw.toString());
  });
});
