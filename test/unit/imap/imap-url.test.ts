/**
 * IMAP URLs for URLAUTH (RFC 5092, RFC 4467 §2, RFC 5550): what parses, what the rump is (the signed bytes, kept as
 * received), and what is refused.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseImapUrl, UrlError } from '../../../src/imap/imap-url.ts';

test('a full URL: user, host, mailbox (%-decoded UTF-8), UIDVALIDITY, UID, SECTION, PARTIAL, EXPIRE, access, token', () => {
  const token = 'ab'.repeat(16);
  const rump = 'imap://john.smith;AUTH=*@Mail.Example.com:143/Entw%C3%BCrfe%2Fx;UIDVALIDITY=7/;UID=42/;SECTION=1.2.MIME/;PARTIAL=10.20;EXPIRE=2030-01-02T03:04:05Z;URLAUTH=user+anna.bianchi';
  const u = parseImapUrl(`${rump}:internal:${token.toUpperCase()}`, 'full');
  assert.equal(u.user, 'john.smith');
  assert.equal(u.host, 'mail.example.com');
  assert.equal(u.port, 143);
  assert.equal(u.mailbox, 'Entwürfe/x');
  assert.equal(u.uidValidity, 7);
  assert.equal(u.uid, 42);
  assert.equal(u.section, '1.2.MIME');
  assert.deepEqual(u.body.path, [1, 2]);
  assert.equal(u.body.specifier, 'MIME');
  assert.deepEqual(u.partial, { start: 10, length: 20 });
  assert.equal(u.expire?.toISOString(), '2030-01-02T03:04:05.000Z');
  assert.deepEqual(u.access, { kind: 'user', user: 'anna.bianchi' });
  assert.equal(u.mechanism, 'INTERNAL');
  assert.equal(u.token, token);
  assert.equal(u.rump, rump);
});

test('parameter names are case-insensitive; INBOX is normalised; the rump keeps the case it was sent in', () => {
  const u = parseImapUrl('imap://j@h/inbox/;uid=5;urlauth=authuser', 'rump');
  assert.equal(u.mailbox, 'INBOX');
  assert.equal(u.uid, 5);
  assert.deepEqual(u.access, { kind: 'authuser' });
  assert.equal(u.rump, 'imap://j@h/inbox/;uid=5;urlauth=authuser');
  assert.deepEqual(parseImapUrl('imap://j@h/a/;UID=1;URLAUTH=anonymous', 'rump').access, { kind: 'anonymous' });
  assert.deepEqual(parseImapUrl('imap://j@h/a/;UID=1;URLAUTH=submit+j', 'rump').access, { kind: 'submit', user: 'j' });
});

test('refused: no user, no UID, no URLAUTH, misplaced or repeated parameters, a token on a rump, none on a full URL', () => {
  const bad: [string, 'rump' | 'full'][] = [
    ['imap://h/a/;UID=1;URLAUTH=authuser', 'rump'],
    ['imap://j@h/a;URLAUTH=authuser', 'rump'],
    ['imap://j@h/a/;UID=1', 'rump'],
    ['imap://j@h/a;UID=1;URLAUTH=authuser', 'rump'],
    ['imap://j@h/a/;UID=1;SECTION=1;URLAUTH=authuser', 'rump'],
    ['imap://j@h/a/;UID=1/;UID=2;URLAUTH=authuser', 'rump'],
    ['imap://j@h/a/;UID=0;URLAUTH=authuser', 'rump'],
    ['imap://j@h/a/;UID=1;URLAUTH=somebody', 'rump'],
    ['imap://j@h/a/;UID=1;URLAUTH=authuser/;SECTION=1', 'rump'],
    ['imap://j@h/a/;UID=1/;SECTION=BOGUS;URLAUTH=authuser', 'rump'],
    ['imap://j@h/a/;UID=1/;PARTIAL=1.0;URLAUTH=authuser', 'rump'],
    ['imap://j@h/a/;UID=1;EXPIRE=tomorrow;URLAUTH=authuser', 'rump'],
    [`imap://j@h/a/;UID=1;URLAUTH=authuser:INTERNAL:${'0'.repeat(32)}`, 'rump'],
    ['imap://j@h/a/;UID=1;URLAUTH=authuser', 'full'],
    ['imap://j@h/a/;UID=1;URLAUTH=authuser:INTERNAL:abc', 'full'],
    ['http://j@h/a/;UID=1;URLAUTH=authuser', 'rump'],
  ];
  for (const [u, mode] of bad) assert.throws(() => parseImapUrl(u, mode), UrlError, u);
});
