import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildDsn, failedRecipients, rfc5322Date } from '../../../src/queue/dsn.ts';
import type { QueueEnvelope } from '../../../src/queue/types.ts';
import { message, parseDeliveryStatus, parseEntity, parseMultipart, rcpt } from './helpers.ts';

function queued(): QueueEnvelope {
  return {
    id: '1Q3DCBD0064W7AS0',
    from: 'alice@corp.example',
    receivedAt: '2025-07-01T10:00:00.000Z',
    lastAttemptAt: '2025-07-01T10:05:00.000Z',
    nextAttemptAt: '2025-07-01T10:05:00.000Z',
    attempts: 2,
    size: 200,
    client: { address: '192.0.2.10', listener: 'submission', user: 'alice' },
    recipients: [
      rcpt('bob@partner.example', { state: 'failed', status: '5.1.1', lastResult: '550 5.1.1 <bob@partner.example>: Recipient address rejected', remoteMta: 'mx.partner.example' }),
      rcpt('carol@corp.example', { state: 'delivered' }),
      rcpt('archive@corp.example', { state: 'failed', origin: 'bcc', hidden: true, status: '5.2.2', lastResult: '552 5.2.2 mailbox full' }),
      rcpt('dave@slow.example', { state: 'failed', status: '4.4.7', lastResult: '451 4.4.1 connection timed out' }),
      rcpt('erin@corp.example', { state: 'failed', parent: 'team@corp.example', origin: 'list', lastResult: 'mailbox is disabled' }),
    ],
  };
}

test('a DSN is an RFC 3464 multipart/report with the three parts, CRLF only', () => {
  const env = queued();
  const original = Buffer.concat([message('Quarterly report'), Buffer.from('more body\r\n')]);
  const now = new Date('2025-07-01T10:06:00Z');
  const raw = buildDsn({ hostname: 'mail.corp.example', envelope: env, recipients: failedRecipients(env), message: original, now });
  const text = raw.toString('utf8');
  assert.doesNotMatch(text, /\r(?!\n)|(?<!\r)\n/, 'no bare CR or LF');
  for (const line of text.split('\r\n')) assert.ok(line.length <= 998, 'RFC 5322 §2.1.1 line length');

  const dsn = parseEntity(text);
  const h = dsn.headers;
  assert.equal(h.get('from'), 'Mail Delivery System <MAILER-DAEMON@mail.corp.example>');
  assert.equal(h.get('to'), '<alice@corp.example>');
  assert.equal(h.get('auto-submitted'), 'auto-replied');
  assert.equal(h.get('date'), 'Tue, 01 Jul 2025 10:06:00 +0000');
  assert.match(h.get('message-id')!, /^<[^<>@\s]+@mail\.corp\.example>$/);
  assert.equal(h.get('mime-version'), '1.0');
  assert.match(h.get('content-type')!, /^multipart\/report; report-type=delivery-status; boundary="[^"]+"$/);

  const parts = parseMultipart(dsn);
  assert.equal(parts.length, 3);
  const [human, status, headers] = parts;
  assert.match(human.headers.get('content-type')!, /^text\/plain/);
  assert.match(human.body, /could not be delivered to the 3 recipients below/);
  assert.match(human.body, /<bob@partner\.example>: host mx\.partner\.example said: 550 5\.1\.1/);
  assert.match(human.body, /<dave@slow\.example>: could not be delivered for 6 minutes; the server gave up \(last error: 451 4\.4\.1/);
  assert.match(human.body, /Subject: Quarterly report/);
  assert.doesNotMatch(human.body, /archive@/, 'a Bcc recipient is never named');

  assert.equal(status.headers.get('content-type'), 'message/delivery-status');
  const [perMessage, ...perRecipient] = parseDeliveryStatus(status.body);
  assert.equal(perMessage.get('reporting-mta'), 'dns; mail.corp.example');
  assert.equal(perMessage.get('arrival-date'), 'Tue, 01 Jul 2025 10:00:00 +0000');
  assert.equal(perMessage.get('x-postern-queue-id'), env.id);
  assert.deepEqual(
    perRecipient.map((r) => Object.fromEntries(r)),
    [
      {
        'final-recipient': 'rfc822; bob@partner.example',
        action: 'failed',
        status: '5.1.1',
        'remote-mta': 'dns; mx.partner.example',
        'diagnostic-code': 'smtp; 550 5.1.1 <bob@partner.example>: Recipient address rejected',
        'last-attempt-date': 'Tue, 01 Jul 2025 10:05:00 +0000',
      },
      {
        'final-recipient': 'rfc822; dave@slow.example',
        action: 'failed',
        status: '4.4.7',
        'diagnostic-code': 'smtp; 451 4.4.1 connection timed out',
        'last-attempt-date': 'Tue, 01 Jul 2025 10:05:00 +0000',
      },
      {
        'final-recipient': 'rfc822; erin@corp.example',
        'original-recipient': 'rfc822; team@corp.example',
        action: 'failed',
        status: '5.0.0',
        'diagnostic-code': 'X-Postern; mailbox is disabled',
        'last-attempt-date': 'Tue, 01 Jul 2025 10:05:00 +0000',
      },
    ],
  );

  assert.equal(headers.headers.get('content-type'), 'text/rfc822-headers');
  const originalHeaders = original.toString().split('\r\n\r\n')[0] + '\r\n';
  assert.equal(headers.body, originalHeaders, 'the original headers, and not the body');
  assert.doesNotMatch(headers.body, /Hi there|more body/);
});

test('DSN fields cannot be used to inject headers, and bare LF in the original headers becomes CRLF', () => {
  const env = queued();
  env.recipients = [rcpt('bob@partner.example', { state: 'failed', lastResult: '550 5.7.1 no\r\nBcc: victim@example.org', status: '5.7.1' })];
  const original = Buffer.from('Subject: x\nX-Bare: lf\r\n\r\nbody\n');
  const text = buildDsn({ hostname: 'mail.corp.example', envelope: env, recipients: env.recipients, message: original }).toString();
  assert.doesNotMatch(text, /\r\nBcc:/);
  assert.doesNotMatch(text, /\r(?!\n)|(?<!\r)\n/);
  assert.match(text, /\r\nSubject: x\r\nX-Bare: lf\r\n/);
  assert.match(text, /Diagnostic-Code: smtp; 550 5\.7\.1 no Bcc: victim@example\.org/);
});

test('rfc5322Date uses a numeric zone', () => {
  assert.equal(rfc5322Date(new Date('2025-12-24T23:59:59Z')), 'Wed, 24 Dec 2025 23:59:59 +0000');
});
