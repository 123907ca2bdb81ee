/**
 * Forged Authentication-Results (issue 12 item 3, RFC 8601 §5): fields carrying our authserv-id (the hostname,
 * mx.example.com in tests) that arrive with a message are removed on every listener before delivery; fields of
 * other hosts stay.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestServer } from '../helpers/server.ts';
import { JOHN, message, startSmtpTestServer, transport, waitForEmptyQueue } from './smtp-env.ts';

let server: TestServer;

before(async () => {
  server = await startSmtpTestServer();
});

after(async () => {
  await server.close();
});

const FORGED =
  'Authentication-Results: mx.example.com; dkim=pass header.d=example.com\r\n' +
  'Authentication-Results: (we checked) MX.Example.COM.;\r\n\tspf=pass smtp.mailfrom=ceo@example.com\r\n' +
  'Authentication-Results: "mx.example.com" 1; dmarc=pass header.from=example.com\r\n' +
  'Authentication-Results: relay.other.example; dkim=pass header.d=other.example\r\n';

function forged(subject: string): string {
  return FORGED + message(subject);
}

function check(mail: string): void {
  const header = mail.slice(0, mail.indexOf('\r\n\r\n'));
  const ar = header.split(/\r\n(?![ \t])/).filter((l) => /^Authentication-Results:/i.test(l));
  assert.ok(!ar.some((l) => /mx\.example\.com/i.test(l)), `a field with our authserv-id survived:\n${header}`);
  assert.ok(!/spf=pass smtp\.mailfrom=ceo/.test(header), 'the folded forged field left its continuation behind');
  assert.ok(ar.some((l) => l.includes('relay.other.example; dkim=pass')), 'another host\'s field is kept');
}

test('removes a forged dkim=pass with our authserv-id from mail arriving on port 25', async () => {
  await transport(server, 'smtp').sendMail({ envelope: { from: 'sender@outside.example', to: ['john@example.com'] }, raw: forged('forged on 25') });
  await waitForEmptyQueue(server);
  const mail = (await server.waitForMail('john.smith')).find((m) => m.includes('Subject: forged on 25'));
  assert.ok(mail, 'delivered');
  check(mail);
});

test('removes them from mail a local user submits too (the mail-auth stage does not check submission)', async () => {
  await transport(server, 'submission', JOHN).sendMail({ envelope: { from: 'john@example.com', to: ['anna@example.com'] }, raw: forged('forged on 587') });
  await waitForEmptyQueue(server);
  const mail = (await server.waitForMail('anna.bianchi')).find((m) => m.includes('Subject: forged on 587'));
  assert.ok(mail, 'delivered');
  check(mail);
});
