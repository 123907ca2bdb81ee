/**
 * Limits and protocol safety (issue 3 §3): the message size (advertised, enforced, changed at runtime), recipients
 * per message, command line length, clients at once over all listeners, and errors before a disconnect.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RawSmtp, sendRaw } from '../helpers/raw-smtp.ts';
import type { TestServer } from '../helpers/server.ts';
import { message, queued, rawClient, sleep, startSmtpTestServer, submissionClient, transport, JOHN } from './smtp-env.ts';

let server: TestServer;

before(async () => {
  server = await startSmtpTestServer({ smtp: { maxRecipients: 3, maxLineLength: 1000, errorLimit: 3 } });
});

after(async () => {
  await server.close();
});

describe('message size (queue.maxMessageSizeMB)', () => {
  test('is advertised in EHLO SIZE, 20 MB by default', async () => {
    const c = await RawSmtp.connect(server.ports.smtp);
    try {
      const { keywords } = await c.ehlo();
      assert.ok(keywords.includes(`SIZE ${20 * 1024 * 1024}`), keywords.join(','));
    } finally {
      c.close();
    }
  });

  test('a change applies to the next connection without a restart, and an oversized message is refused with 552 and not queued', async (t) => {
    server.core.settings.set('queue.maxMessageSizeMB', 1);
    t.after(() => server.core.settings.set('queue.maxMessageSizeMB', 20));
    const c = await RawSmtp.connect(server.ports.smtp);
    try {
      const { keywords } = await c.ehlo('mta.outside.example');
      assert.ok(keywords.includes(`SIZE ${1024 * 1024}`), keywords.join(','));
      // RFC 1870 §6.1: a declared size over the limit is refused at MAIL FROM.
      const declared = await c.command('MAIL FROM:<sender@outside.example> SIZE=2000000');
      assert.equal(declared.code, 552, declared.raw);

      const big = message('too big', `${'x'.repeat(998)}\r\n`.repeat(1100));
      const r = await sendRaw(c, 'sender@outside.example', ['john@example.com'], big);
      assert.equal(r.code, 552, r.raw);
      assert.match(r.text, /^5\.3\.4 /);
      assert.equal((await queued(server)).length, 0, 'nothing kept in the queue');

      // The session goes on: a message under the limit on the same connection is taken.
      const small = await sendRaw(c, 'sender@outside.example', ['john@example.com'], message('small enough'));
      assert.equal(small.code, 250, small.raw);
    } finally {
      c.close();
    }
    await server.waitForMail('john.smith');
    assert.ok(!server.inbox('john.smith').some((m) => m.includes('Subject: too big')));
  });

  test('nodemailer gets the 552 for a message over the limit', async (t) => {
    server.core.settings.set('queue.maxMessageSizeMB', 1);
    t.after(() => server.core.settings.set('queue.maxMessageSizeMB', 20));
    await assert.rejects(
      transport(server, 'submission', JOHN).sendMail({
        from: 'john@example.com',
        to: 'laura.verdi@example.com',
        subject: 'attachment',
        text: 'see attached',
        attachments: [{ filename: 'big.bin', content: Buffer.alloc(1200 * 1024, 7) }],
      }),
      (err: Error & { responseCode?: number }) => err.responseCode === 552,
    );
    assert.equal((await queued(server)).length, 0);
  });
});

describe('recipients per message (smtp.maxRecipients)', () => {
  test('answers 452 past the limit and delivers to the recipients taken', async () => {
    const c = await rawClient(server, 'smtp', 'mta.outside.example');
    try {
      assert.equal((await c.command('MAIL FROM:<sender@outside.example>')).code, 250);
      for (const to of ['john@example.com', 'laura.verdi@example.com', 'mario@example.com']) {
        assert.equal((await c.command(`RCPT TO:<${to}>`)).code, 250, to);
      }
      const fourth = await c.command('RCPT TO:<carla@example.com>');
      assert.equal(fourth.code, 452, fourth.raw);
      assert.equal((await c.command('DATA')).code, 354);
      c.write(`${message('three recipients')}.\r\n`);
      assert.equal((await c.reply()).code, 250);
    } finally {
      c.close();
    }
    for (const login of ['laura.verdi', 'mario.rossi']) {
      const mails = await server.waitForMail(login);
      assert.ok(mails.some((m) => m.includes('Subject: three recipients')), login);
    }
    assert.ok(!server.inbox('Carla.Fermi').some((m) => m.includes('Subject: three recipients')));
  });
});

describe('command line length (smtp.maxLineLength)', () => {
  test('takes a line of exactly the limit', async () => {
    const c = await rawClient(server, 'smtp');
    try {
      const line = `NOOP ${'x'.repeat(1000 - 5)}`;
      assert.equal(line.length, 1000);
      assert.equal((await c.command(line)).code, 250);
    } finally {
      c.close();
    }
  });

  test('closes the connection on a longer line, and on a line that never ends', async () => {
    for (const bytes of [`NOOP ${'x'.repeat(1000)}\r\n`, `MAIL FROM:<${'a'.repeat(6000)}`]) {
      const c = await rawClient(server, 'smtp');
      try {
        c.write(bytes);
        const r = await c.reply();
        assert.equal(r.code, 421, r.raw);
        await c.closed(2000);
      } finally {
        c.close();
      }
    }
  });
});

describe('errors before a disconnect (smtp.errorLimit)', () => {
  test('answers 421 and closes the connection at the limit (a dictionary attack costs a reconnect)', async () => {
    const c = await rawClient(server, 'smtp', 'mta.outside.example');
    try {
      assert.equal((await c.command('MAIL FROM:<sender@outside.example>')).code, 250);
      assert.equal((await c.command('RCPT TO:<alice@example.com>')).code, 550);
      assert.equal((await c.command('RCPT TO:<bob@other.example>')).code, 554);
      const third = await c.command('RCPT TO:<carol@example.com>');
      assert.equal(third.code, 421, third.raw);
      assert.match(third.text, /too many errors/);
      await c.closed(2000);
    } finally {
      c.close();
    }
  });

  test('counts per session: a new connection starts again', async () => {
    const c = await rawClient(server, 'smtp', 'mta.outside.example');
    try {
      assert.equal((await c.command('MAIL FROM:<sender@outside.example>')).code, 250);
      assert.equal((await c.command('RCPT TO:<alice@example.com>')).code, 550);
      assert.equal((await c.command('RCPT TO:<john@example.com>')).code, 250);
    } finally {
      c.close();
    }
  });

  test('counts failed logins on submission', async () => {
    const c = await rawClient(server, 'submission');
    try {
      await c.starttls();
      await c.ehlo();
      assert.equal((await c.authPlain('john.smith', 'wrong1')).code, 535);
      assert.equal((await c.authPlain('john.smith', 'wrong2')).code, 535);
      assert.equal((await c.authPlain('john.smith', 'wrong3')).code, 421);
      await c.closed(2000);
    } finally {
      c.close();
    }
    // The limit is per connection, not a lockout.
    (await submissionClient(server)).close();
  });
});

describe('clients at once (smtp.maxClients)', () => {
  let small: TestServer;
  before(async () => {
    small = await startSmtpTestServer({ smtp: { maxClients: 2 } });
  });
  after(async () => {
    await small.close();
  });

  test('counts all listeners together, refuses the next with 421, and lets a client in once one leaves', async () => {
    const a = await RawSmtp.connect(small.ports.smtp);
    const b = await RawSmtp.connect(small.ports.submission);
    const open: RawSmtp[] = [a, b];
    try {
      for (const listener of ['smtps', 'smtp', 'smtp'] as const) {
        // Several refusals in a row: a refused connection must not free a place when it closes.
        const refused = await RawSmtp.connect(small.ports[listener], { tls: listener === 'smtps' });
        assert.equal(refused.greeting.code, 421, `${listener}: ${refused.greeting.raw}`);
        await refused.closed(2000);
        await sleep(50);
      }
      a.close();
      // The server learns of the close asynchronously: try for a while.
      let c = await RawSmtp.connect(small.ports.smtp);
      for (const deadline = Date.now() + 10_000; c.greeting.code === 421 && Date.now() < deadline; ) {
        c.close();
        await sleep(50);
        c = await RawSmtp.connect(small.ports.smtp);
      }
      open.push(c);
      assert.equal(c.greeting.code, 220, c.greeting.raw);
      assert.equal((await c.command('NOOP')).code, 250);
    } finally {
      for (const c of open) c.close();
    }
  });
});
