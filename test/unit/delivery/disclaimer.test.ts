import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simpleParser } from 'mailparser';
import { attachDisclaimer, hasDisclaimer, quotedPrintable, renderDisclaimerHtml } from '../../../src/delivery/disclaimer.ts';

const DISCLAIMER = [
  'This email and any files transmitted with it are **confidential** and',
  'intended solely for the use of the individual or entity to whom they',
  'are addressed. See [our policy](https://corp.example/policy).',
  '',
  '- Società Ünïcode S.p.A.',
].join('\n');

const PLAIN = Buffer.from(
  [
    'Return-Path: <alice@corp.example>',
    'Received: from client (client [192.0.2.1])',
    '\tby mail.corp.example with ESMTPSA id Q1;',
    '\tMon, 1 Jan 2024 10:00:00 +0000',
    'From: Alice <alice@corp.example>',
    'To: bob@remote.test',
    'Subject: Quarterly figures',
    'MIME-Version: 1.0',
    'Content-Type: text/plain;',
    ' charset="us-ascii"',
    'Content-Transfer-Encoding: 7bit',
    'Date: Mon, 1 Jan 2024 10:00:00 +0000',
    'Message-ID: <m1@corp.example>',
    '',
    'Hello Bob,',
    '',
    'the figures are attached.',
    '.',
    '-- ',
    'Alice',
    '',
  ].join('\r\n'),
);

const SIGNED_BODY = [
  'This is an S/MIME signed message',
  '',
  '------B1',
  'Content-Type: text/plain; charset=utf-8',
  'Content-Transfer-Encoding: quoted-printable',
  '',
  'Signed text, do not touch: caf=C3=A9   ',
  '',
  '------B1',
  'Content-Type: application/pkcs7-signature; name="smime.p7s"',
  'Content-Transfer-Encoding: base64',
  'Content-Disposition: attachment; filename="smime.p7s"',
  '',
  'MIAGCSqGSIb3DQEHAqCAMIACAQExDzANBglghkgBZQMEAgEFADCABgkqhkiG9w0BBwEAAKCAMIIF',
  '',
  '------B1--',
  '',
].join('\r\n');

const SIGNED = Buffer.from(
  [
    'From: alice@corp.example',
    'To: bob@remote.test',
    'Subject: signed',
    'MIME-Version: 1.0',
    'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256;',
    '\tboundary="----B1"',
    '',
    SIGNED_BODY,
  ].join('\r\n'),
);

const B64_TEXT = 'Grüße aus München — ünïcödé text in base64.\r\n';
const B64_BODY = Buffer.from(B64_TEXT, 'utf8').toString('base64').replace(/.{1,76}/g, '$&\r\n');
const BASE64 = Buffer.from(
  [
    'From: alice@corp.example',
    'To: bob@remote.test',
    'Subject: base64',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: base64',
    'Content-Language: de',
    '',
    B64_BODY,
  ].join('\r\n'),
);

function bodyOf(message: Buffer): Buffer {
  return message.subarray(message.indexOf('\r\n\r\n') + 4);
}

function assertWellFormed(out: Buffer) {
  const s = out.toString('latin1');
  assert.doesNotMatch(s, /[^\r]\n|\r[^\n]|^\n/, 'bare LF or CR');
  for (const line of s.split('\r\n')) assert.ok(Buffer.byteLength(line, 'latin1') <= 998, `line of ${line.length} octets`);
}

/** The first part of the top-level multipart/mixed, raw: its header and content. */
function firstPart(out: Buffer): { header: string; content: Buffer } {
  const s = out.toString('latin1');
  const boundary = /boundary="([^"]+)"/.exec(s.slice(0, s.indexOf('\r\n\r\n')))![1];
  const start = out.indexOf(`--${boundary}\r\n`) + boundary.length + 4;
  const end = out.indexOf(`\r\n--${boundary}`, start);
  const part = out.subarray(start, end);
  const sep = part.indexOf('\r\n\r\n');
  return { header: part.subarray(0, sep + 2).toString('latin1'), content: part.subarray(sep + 4) };
}

test('the original body is the first part, byte for byte, with the original Content-* fields', () => {
  const out = attachDisclaimer(PLAIN, DISCLAIMER);
  assertWellFormed(out);
  const { header, content } = firstPart(out);
  assert.deepEqual(content, bodyOf(PLAIN));
  assert.equal(header, 'Content-Type: text/plain;\r\n charset="us-ascii"\r\nContent-Transfer-Encoding: 7bit\r\n');

  // The top-level header: every other field in order, unchanged, then ours.
  const top = out.subarray(0, out.indexOf('\r\n\r\n') + 2).toString('latin1');
  assert.ok(
    top.startsWith(
      'Return-Path: <alice@corp.example>\r\nReceived: from client (client [192.0.2.1])\r\n\tby mail.corp.example with ESMTPSA id Q1;\r\n' +
        '\tMon, 1 Jan 2024 10:00:00 +0000\r\nFrom: Alice <alice@corp.example>\r\nTo: bob@remote.test\r\nSubject: Quarterly figures\r\n' +
        'Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <m1@corp.example>\r\n',
    ),
    top,
  );
  assert.match(top, /^X-Postern-Disclaimer: yes\r\nMIME-Version: 1\.0\r\nContent-Type: multipart\/mixed; boundary="[^"]+"\r\n$/m);
  assert.equal(top.match(/^MIME-Version:/gim)?.length, 1);
  assert.equal(top.match(/^Content-/gim)?.length, 1);
});

test('a multipart/signed original stays intact inside the first part', async () => {
  const out = attachDisclaimer(SIGNED, DISCLAIMER);
  assertWellFormed(out);
  const { header, content } = firstPart(out);
  assert.equal(
    header,
    'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256;\r\n\tboundary="----B1"\r\n',
  );
  assert.deepEqual(content, Buffer.from(SIGNED_BODY));
  assert.ok(out.includes(SIGNED_BODY));
  const parsed = await simpleParser(out);
  assert.match(parsed.text ?? '', /Signed text, do not touch: café/);
  assert.match(parsed.text ?? '', /intended solely for the use/);
  assert.ok(parsed.attachments.some((a) => a.filename === 'smime.p7s'));
});

test('a base64 original keeps its encoding and bytes; mailparser decodes it', async () => {
  const out = attachDisclaimer(BASE64, DISCLAIMER);
  assertWellFormed(out);
  const { header, content } = firstPart(out);
  assert.equal(header, 'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\nContent-Language: de\r\n');
  assert.deepEqual(content, bodyOf(BASE64));
  const parsed = await simpleParser(out);
  assert.ok((parsed.text ?? '').includes('Grüße aus München'), parsed.text);
});

test('mailparser finds the original text and the disclaimer, in text and in HTML', async () => {
  const out = attachDisclaimer(PLAIN, DISCLAIMER);
  const parsed = await simpleParser(out);
  assert.equal(parsed.subject, 'Quarterly figures');
  assert.equal(parsed.messageId, '<m1@corp.example>');
  assert.match(parsed.text ?? '', /Hello Bob,\s+the figures are attached\./);
  assert.match(parsed.text ?? '', /\*\*confidential\*\*/);
  assert.match(parsed.text ?? '', /Società Ünïcode S\.p\.A\./);
  assert.match(parsed.html || '', /<strong>confidential<\/strong>/);
  assert.match(parsed.html || '', /<a href="https:\/\/corp\.example\/policy">our policy<\/a>/);
  assert.match(parsed.html || '', /<li>Società Ünïcode S\.p\.A\.<\/li>/);
  assert.equal(parsed.attachments.length, 0);
});

test('a message without MIME fields gets text/plain us-ascii as its first part', async () => {
  const bare = Buffer.from('From: a@corp.example\r\nTo: b@remote.test\r\nSubject: old style\r\n\r\nplain text\r\n');
  const out = attachDisclaimer(bare, 'Legal text.');
  assertWellFormed(out);
  assert.deepEqual(firstPart(out), { header: 'Content-Type: text/plain; charset=us-ascii\r\n', content: Buffer.from('plain text\r\n') });
  const parsed = await simpleParser(out);
  assert.match(parsed.text ?? '', /plain text[\s\S]*Legal text\./);
});

test('an 8-bit body makes the outer entity 8bit; the boundary never occurs in the original', () => {
  const eight = Buffer.from('Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncafé --=_postern_\r\n', 'utf8');
  const out = attachDisclaimer(eight, 'd');
  const top = out.subarray(0, out.indexOf('\r\n\r\n')).toString('latin1');
  assert.match(top, /^Content-Transfer-Encoding: 8bit$/m);
  const boundary = /boundary="([^"]+)"/.exec(top)![1];
  assert.ok(!eight.includes(boundary));
  assert.deepEqual(firstPart(out).content, bodyOf(eight));
});

test('no bare LF and no line over 998 octets, even from a long one-line disclaimer', () => {
  const long = 'word '.repeat(600) + 'ünï '.repeat(100);
  const out = attachDisclaimer(PLAIN, long);
  assertWellFormed(out);
  for (const line of out.toString('latin1').split('\r\n')) assert.ok(line.length <= 998);
  // Our own lines are QP, at most 76 characters.
  const tail = out.subarray(out.indexOf('Content-Description: disclaimer')).toString('latin1');
  for (const line of tail.split('\r\n')) assert.ok(line.length <= 76, line);
});

test('a message is never wrapped twice', () => {
  const once = attachDisclaimer(PLAIN, DISCLAIMER);
  assert.equal(hasDisclaimer(PLAIN), false);
  assert.equal(hasDisclaimer(once), true);
  const twice = attachDisclaimer(once, DISCLAIMER);
  assert.equal(twice, once);
  assert.equal(attachDisclaimer(PLAIN, '  \n'), PLAIN, 'an empty disclaimer changes nothing');
});

test('quotedPrintable: CRLF lines, soft breaks, encoded =, trailing space, leading dot', () => {
  assert.equal(quotedPrintable('a=b \nc\n.d'), 'a=3Db=20\r\nc\r\n=2Ed\r\n');
  const wrapped = quotedPrintable('é'.repeat(40));
  for (const line of wrapped.split('\r\n')) assert.ok(line.length <= 76);
  assert.equal(Buffer.from(wrapped.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8'), 'é'.repeat(40) + '\r\n');
  assert.match(renderDisclaimerHtml('**x**'), /<p><strong>x<\/strong><\/p>/);
});
