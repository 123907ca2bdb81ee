/**
 * Send limits on the real listeners (issue 13 §5, src/limits): a stolen account sending 10,000 messages stops at
 * its hourly limit, everything past it gets 451 4.7.1 and nothing past it is queued; per-user overrides (settings,
 * admin API); the recipient limit at RCPT TO; counters that survive a restart; one alert line; what the admin API,
 * the dashboard and /metrics show.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { adminRequest } from '../helpers/admin-call.ts';
import { RawSmtp, sendRaw, type SmtpReply } from '../helpers/raw-smtp.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { flood, JOHN, logCapture, message, PASSWORD, queued, startSmtpTestServer, submissionClient, TLS_FILES } from './smtp-env.ts';

/** Replies can be slow on the loaded test machine (fsync per accepted message): wait generously. */
const REPLY_MS = 60_000;

function submission(server: TestServer, auth: { user: string; pass: string }, listener: 'submission' | 'smtps' = 'submission'): Promise<RawSmtp> {
  return submissionClient(server, auth, { listener, timeoutMs: REPLY_MS });
}

/** One message attempt: the final reply (250 after DATA, or the first refusal). */
function attempt(c: RawSmtp, from: string, to: string[], subject: string): Promise<SmtpReply> {
  return sendRaw(c, from, to, message(subject));
}

describe('a stolen account sending 10,000 messages', () => {
  let server: TestServer;
  const capture = logCapture();

  before(async () => {
    server = await startTestServer({ tls: TLS_FILES }, { logStream: capture.stream });
    // The queue is held still, so what it holds after the flood is exactly what was accepted.
    await server.scheduler.stop();
  });
  after(async () => {
    await server?.close();
  });

  test('stops at the default limit (500 per hour): the rest get 451 4.7.1, the queue holds exactly 500', { timeout: 600_000 }, async () => {
    assert.equal(server.core.settings.get('smtp.sendLimit.messagesPerHour'), 500);
    const TOTAL = 10_000;
    // Several connections at once, as a spam script would: the limit holds across them (reservations).
    const replies = await flood(server, JOHN, { total: TOTAL, connections: 4, from: 'john@example.com', to: ['laura.verdi@example.com'], timeoutMs: REPLY_MS });
    const accepted = replies.filter((r) => r.code === 250);
    const refused = replies.filter((r) => r.code === 451);
    assert.equal(replies.length, TOTAL);
    assert.equal(accepted.length, 500);
    assert.equal(refused.length, TOTAL - 500);
    for (const r of refused) assert.match(r.text, /^4\.7\.1 Sending limit reached \(500 messages per hour\)/);
    const q = await queued(server);
    assert.equal(q.length, 500, 'nothing past the limit is queued');
    assert.ok(q.every((e) => e.client?.user === 'john.smith'));
    assert.equal(server.spool.stats.enqueued, 500);

    // One alert for the whole flood, in the submission log, naming the user.
    const alerts = capture.lines.filter((l) => l.event === 'send-limit');
    assert.equal(alerts.length, 1, JSON.stringify(alerts));
    assert.equal(alerts[0].component, 'submission/smtpd');
    assert.equal(alerts[0].user, 'john.smith');
    assert.equal(alerts[0].alert, true);
    assert.equal(alerts[0].level, 40);

    // The admin sees it: GET /api/limits, the dashboard, /metrics.
    const limits = await adminRequest(server, 'GET', '/api/limits');
    assert.equal(limits.status, 200, limits.text);
    const john = limits.json.users.find((u: { name: string }) => u.name === 'john.smith');
    assert.deepEqual(
      { messages: john.messages, recipients: john.recipients, messageLimit: john.messageLimit, overLimit: john.overLimit },
      { messages: 500, recipients: 500, messageLimit: 500, overLimit: true },
    );
    assert.equal(limits.json.alerts.length, 1);
    assert.equal(limits.json.alerts[0].reason, 'user_messages');
    // The client address (127.0.0.1) sent 500 of its 1000: at 50%, not listed unless all=true.
    assert.equal(limits.json.ips.length, 0);
    const all = await adminRequest(server, 'GET', '/api/limits?all=true');
    assert.deepEqual(
      all.json.ips.map((u: { name: string; messages: number; messageLimit: number }) => [u.name, u.messages, u.messageLimit]),
      [['127.0.0.1', 500, 1000]],
    );
    const dash = await adminRequest(server, 'GET', '/api/dashboard');
    assert.equal(dash.status, 200, dash.text);
    assert.deepEqual(
      dash.json.sendLimits.overLimit.map((u: { name: string }) => u.name),
      ['john.smith'],
    );
    const metrics = await adminRequest(server, 'GET', '/metrics');
    assert.match(metrics.text, /^postern_send_limit_refusals_total\{reason="user_messages"\} 9500$/m);
    assert.match(metrics.text, /^postern_send_limit_users_over_limit 1$/m);
    assert.match(metrics.text, /^postern_smtp_rejected_total\{stage="mail",code="451",enhanced="4\.7\.1"\} 9500$/m);

    // Another user is not affected by john's flood.
    const c = await submission(server, { user: 'anna.bianchi', pass: PASSWORD }, 'smtps');
    try {
      assert.equal((await attempt(c, 'anna@example.com', ['laura.verdi@example.com'], 'anna')).code, 250);
    } finally {
      c.close();
    }

    // The admin deals with it (password changed): a reset lets john send again.
    const reset = await adminRequest(server, 'DELETE', '/api/limits/users/John.Smith');
    assert.deepEqual(reset.json, { login: 'john.smith', reset: true });
    const again = await submission(server, JOHN);
    try {
      assert.equal((await attempt(again, 'john@example.com', ['laura.verdi@example.com'], 'after reset')).code, 250);
    } finally {
      again.close();
    }
  });
});

describe('per-user limits, recipients, restart', () => {
  let server: TestServer;
  let dataDir: string;

  before(async () => {
    server = await startSmtpTestServer();
    dataDir = server.dataDir;
  });
  after(async () => {
    await server?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('a per-user override set through the admin API applies at the next MAIL FROM', async () => {
    const patch = await adminRequest(server, 'PATCH', '/api/users/laura.verdi', { body: { sendLimitMessages: 2, sendLimitRecipients: 100 } });
    assert.equal(patch.status, 200, patch.text);
    assert.equal(patch.json.sendLimitMessages, 2);
    assert.equal(patch.json.sendLimitMessagesCustom, true);
    const c = await submission(server, { user: 'laura.verdi', pass: PASSWORD });
    try {
      assert.equal((await attempt(c, 'laura.verdi@example.com', ['john@example.com'], 'one')).code, 250);
      assert.equal((await attempt(c, 'laura.verdi@example.com', ['john@example.com'], 'two')).code, 250);
      const third = await attempt(c, 'laura.verdi@example.com', ['john@example.com'], 'three');
      assert.equal(third.code, 451, third.raw);
      assert.match(third.text, /^4\.7\.1 Sending limit reached \(2 messages per hour\)/);
      // Raised by the admin: the same connection may go on.
      server.core.settings.setUser('laura.verdi', { sendLimitMessages: 3 });
      assert.equal((await attempt(c, 'laura.verdi@example.com', ['john@example.com'], 'three again')).code, 250);
    } finally {
      c.close();
    }
  });

  test('the recipient limit is applied at RCPT TO; a message whose DATA is refused does not count', async () => {
    server.core.settings.setUser('paolo.neri', { sendLimitRecipients: 4 });
    const c = await submission(server, { user: 'paolo.neri', pass: PASSWORD });
    try {
      assert.equal((await attempt(c, 'paolo.neri@example.com', ['john@example.com', 'laura.verdi@example.com', 'anna@example.com'], 'three')).code, 250);
      // A message refused at DATA (a smuggling shape, 554) gives back what it reserved.
      assert.equal((await c.command('MAIL FROM:<paolo.neri@example.com>')).code, 250);
      assert.equal((await c.command('RCPT TO:<john@example.com>')).code, 250);
      assert.equal((await c.command('DATA')).code, 354);
      c.write('Subject: smuggle\r\n\r\nx\n.\nMAIL FROM:<x@y>\r\n.\r\n');
      assert.equal((await c.reply()).code, 554);
      // One recipient left: the first RCPT is taken, the second refused with 451 4.7.1 and the message goes to one.
      assert.equal((await c.command('MAIL FROM:<paolo.neri@example.com>')).code, 250);
      assert.equal((await c.command('RCPT TO:<john@example.com>')).code, 250);
      const over = await c.command('RCPT TO:<anna@example.com>');
      assert.equal(over.code, 451, over.raw);
      assert.match(over.text, /^4\.7\.1 Sending limit reached \(4 recipients per hour\)/);
      assert.equal((await c.command('DATA')).code, 354);
      c.write(message('four'));
      c.write('.\r\n');
      assert.equal((await c.reply()).code, 250);
      const next = await c.command('MAIL FROM:<paolo.neri@example.com>');
      assert.equal(next.code, 250, 'messages are under their limit');
      assert.equal((await c.command('RCPT TO:<john@example.com>')).code, 451);
      await c.command('RSET');
    } finally {
      c.close();
    }
    const usage = (await adminRequest(server, 'GET', '/api/limits?all=true')).json.users.find((u: { name: string }) => u.name === 'paolo.neri');
    assert.deepEqual([usage.messages, usage.recipients, usage.overLimit, usage.custom], [2, 4, true, true]);
  });

  test('a restart keeps the counters (dataDir/limits.db)', async () => {
    server.core.settings.setUser('giulia.gallo', { sendLimitMessages: 2 });
    const c = await submission(server, { user: 'giulia.gallo', pass: PASSWORD });
    try {
      assert.equal((await attempt(c, 'giulia.gallo@example.com', ['john@example.com'], 'a')).code, 250);
      assert.equal((await attempt(c, 'giulia.gallo@example.com', ['john@example.com'], 'b')).code, 250);
    } finally {
      c.close();
    }
    await server.close();
    server = await startSmtpTestServer({ dataDir });
    const again = await submission(server, { user: 'giulia.gallo', pass: PASSWORD });
    try {
      const r = await attempt(again, 'giulia.gallo@example.com', ['john@example.com'], 'c');
      assert.equal(r.code, 451, r.raw);
      assert.match(r.text, /^4\.7\.1 /);
    } finally {
      again.close();
    }
    // Nothing extra reached the mailbox: the two messages from before the restart, none after.
    const mails = await server.waitForMail('john.smith', 1, { ms: 30_000 });
    assert.ok(!mails.some((m) => m.includes('Subject: c\r\n')));
  });

  test('unauthenticated mail on port 25 is not counted', async () => {
    server.core.settings.set('smtp.sendLimit.ipMessagesPerHour', 1);
    try {
      const c = await RawSmtp.connect(server.ports.smtp, { timeoutMs: REPLY_MS });
      try {
        await c.command('EHLO mta.outside.example');
        for (let i = 0; i < 3; i++) assert.equal((await attempt(c, 'someone@outside.example', ['john@example.com'], `inbound ${i}`)).code, 250);
      } finally {
        c.close();
      }
    } finally {
      server.core.settings.set('smtp.sendLimit.ipMessagesPerHour', 1000);
    }
  });
});
