/** FETCH PREVIEW's text (RFC 8970, src/imap/preview.ts). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseMime } from '../../../src/imap/mime.ts';
import { htmlToText, previewText } from '../../../src/imap/preview.ts';

const mime = (s: string) => parseMime(Buffer.from(s.replace(/\n/g, '\r\n')));

describe('PREVIEW text', () => {
  test('the first text/plain part, decoded, white space collapsed', () => {
    const tree = mime('Subject: x\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nCiao,\n\n  ci vediamo al caff=C3=A8\t domani.\n');
    assert.equal(previewText(tree), 'Ciao, ci vediamo al caffè domani.');
  });

  test('text/plain is preferred in an alternative; HTML alone loses its markup; attachments do not count', () => {
    const alt = mime('Content-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/html\n\n<p>html</p>\n--b\nContent-Type: text/plain\n\nplain text\n--b--\n');
    assert.equal(previewText(alt), 'plain text');
    const html = mime('Content-Type: text/html\n\n<html><head><title>T</title><style>p{}</style></head><body><p>Tom &amp; Jerry&#33;&nbsp;<b>now</b></p></body></html>\n');
    assert.equal(previewText(html), 'Tom & Jerry! now');
    const att = mime('Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\nContent-Disposition: attachment; filename=a.txt\n\nattached\n--b--\n');
    assert.equal(previewText(att), '');
  });

  test('at most 256 characters (not bytes)', () => {
    const tree = mime(`Content-Type: text/plain; charset=utf-8\n\n${'è'.repeat(300)}\n`);
    const p = previewText(tree);
    assert.equal([...p].length, 256);
    assert.equal(htmlToText('a<br/>b'), 'a b');
  });
});
