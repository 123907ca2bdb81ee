/**
 * Every SMTP reply carries an enhanced status code (issue 12 §5; RFC 3463, RFC 2034 §3: all replies but the
 * greeting and the answers to HELO/EHLO, and 3xx are intermediate), including the replies smtp-server makes itself
 * (503 sequence errors, 501 syntax, 500 unknown command, the SIZE refusal), and AUTH before STARTTLS on
 * submission is RFC 3207 §4's "530 5.7.0 Must issue a STARTTLS command first".
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RawSmtp, type SmtpReply } from '../helpers/raw-smtp.ts';
import type { TestServer } from '../helpers/server.ts';
import { JOHN, message, startSmtpTestServer } from './smtp-env.ts';

let server: TestServer;

before(async () => {
  server = await startSmtpTestServer();
});

after(async () => {
  await server.close();
});

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;

/** Each line of a reply starts with the enhanced code of its class (RFC 2034 §4: on every line of a multi-line reply). */
function assertEnhanced(what: string, r: SmtpReply, expected?: string): void {
  for (const line of r.lines) {
    assert.match(line, ENHANCED, `${what}: ${JSON.stringify(r.raw)}`);
    assert.equal(line[0], String(r.code)[0], `${what}: the enhanced class is the reply's class: ${r.raw}`);
  }
  if (expected) assert.ok(r.lines[0].startsWith(`${expected} `), `${what}: expected ${expected}, got ${r.raw}`);
  assert.doesNotMatch(r.lines[0], /^\d\.\d+\.\d+ \d\.\d+\.\d+ /, `${what}: one code, not two: ${r.raw}`);
}

describe('enhanced status codes', () => {
  test('AUTH before STARTTLS on submission is 530 5.7.0 Must issue a STARTTLS command first', async () => {
    const c = await RawSmtp.connect(server.ports.submission);
    try {
      await c.ehlo();
      const r = await c.authPlain(JOHN.user, JOHN.pass);
      assert.equal(r.code, 530, r.raw);
      assert.equal(r.text, '5.7.0 Must issue a STARTTLS command first');
      const login = await c.command('AUTH LOGIN');
      assert.equal(login.code, 530, login.raw);
    } finally {
      c.close();
    }
  });

  test('AUTH on port 25, where it is not offered even inside TLS, is 503 5.5.1', async () => {
    const c = await RawSmtp.connect(server.ports.smtp);
    try {
      await c.ehlo();
      await c.starttls();
      await c.ehlo();
      const r = await c.authPlain(JOHN.user, JOHN.pass);
      assert.equal(r.code, 503, r.raw);
      assertEnhanced('AUTH on 25', r, '5.5.1');
    } finally {
      c.close();
    }
  });

  test('EHLO announces ENHANCEDSTATUSCODES', async () => {
    const c = await RawSmtp.connect(server.ports.smtp);
    try {
      const { keywords } = await c.ehlo();
      assert.ok(keywords.includes('ENHANCEDSTATUSCODES'), keywords.join(','));
    } finally {
      c.close();
    }
  });

  test('every reply of a session on port 25 has one, from smtp-server and from postern', async () => {
    const c = await RawSmtp.connect(server.ports.smtp);
    const size = server.core.settings.get('queue.maxMessageSizeMB') * 1024 * 1024;
    try {
      const steps: [string, number, string?][] = [
        ['MAIL FROM:<sender@outside.example>', 503, '5.5.1'], // before EHLO (smtp-server)
        ['NOOP', 250],
        ['EHLO client.example.net', 250],
        ['RCPT TO:<john@example.com>', 503, '5.5.1'], // need MAIL (smtp-server)
        ['DATA', 503, '5.5.1'],
        ['MAIL FROM:<not an address', 501], // smtp-server's syntax check
        [`MAIL FROM:<sender@outside.example> SIZE=${size + 1}`, 552, '5.3.4'], // RFC 1870 SIZE refusal (smtp-server)
        ['MAIL FROM:<sender@outside.example>', 250, '2.1.0'],
        ['MAIL FROM:<sender@outside.example>', 503, '5.5.1'], // nested MAIL
        ['RCPT TO:<nobody.here@example.com>', 550, '5.1.1'], // postern: unknown local address
        ['RCPT TO:<someone@elsewhere.example>', 554, '5.7.1'], // postern: no relay
        ['RCPT TO:<john@example.com>', 250, '2.1.5'],
        ['RSET', 250],
        ['XYZZY', 500, '5.5.2'], // unknown command (smtp-server)
        ['STARTTLS now', 501], // smtp-server
        ['VRFY john@example.com', 252],
        ['HELP', 214],
      ];
      for (const [line, code, enhanced] of steps) {
        const r = await c.command(line);
        assert.equal(r.code, code, `${line}: ${r.raw}`);
        if (line.startsWith('EHLO')) continue; // RFC 2034 §3: not on the answer to EHLO
        assertEnhanced(line, r, enhanced);
      }
      assert.equal((await c.command('MAIL FROM:<sender@outside.example>')).code, 250);
      assert.equal((await c.command('RCPT TO:<john@example.com>')).code, 250);
      const data = await c.command('DATA');
      assert.equal(data.code, 354, 'intermediate: no enhanced code');
      const done = await c.command(`${message('enhanced codes').replace(/\r\n$/, '')}\r\n.`);
      assert.equal(done.code, 250, done.raw);
      assertEnhanced('end of DATA', done, '2.0.0');
      const quit = await c.command('QUIT');
      assertEnhanced('QUIT', quit, '2.0.0');
    } finally {
      c.close();
    }
  });
});
