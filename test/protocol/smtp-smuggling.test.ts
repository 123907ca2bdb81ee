/**
 * Protocol safety with raw sockets (issue 3 §3, DESIGN.md §6): SMTP smuggling — a bare LF or CR around the
 * end-of-data dot never ends a message and never lets a second message through; ordinary bare line endings are
 * stored as CRLF; STARTTLS discards whatever was pipelined before the handshake and forgets HELO and MAIL.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RawSmtp, sendRaw } from '../helpers/raw-smtp.ts';
import type { TestServer } from '../helpers/server.ts';
import { JOHN, PASSWORD, queued, rawClient, sleep, startSmtpTestServer } from './smtp-env.ts';

let server: TestServer;

before(async () => {
  server = await startSmtpTestServer();
});

after(async () => {
  await server.close();
});

/**
 * Nothing was queued, and no mailbox got a message with "smuggled" in it. Called once the session has answered a
 * later command, so a smuggled transaction would have been answered (and so spooled) already. A spooled message
 * stays in the spool until it is in the mailbox: looking at the spool first, then the mailboxes, cannot miss it.
 */
async function assertNothingSmuggled(): Promise<void> {
  assert.equal((await queued(server)).length, 0, 'nothing in the queue');
  for (const login of ['john.smith', 'laura.verdi']) {
    assert.ok(!server.inbox(login).some((m) => /smuggled/i.test(m)), `no smuggled message for ${login}`);
  }
}

/** The next reply is the one to NOOP ("250 2.0.0 OK"), not one to a smuggled command. */
async function assertNextIsNoop(c: RawSmtp): Promise<void> {
  const r = await c.command('NOOP');
  assert.equal(r.raw, '250 2.0.0 OK\r\n', `the first reply after the 554 must answer our NOOP, got ${JSON.stringify(r.raw)}`);
}

const SMUGGLED =
  'MAIL FROM:<ceo@example.com>\r\nRCPT TO:<laura.verdi@example.com>\r\nDATA\r\n' +
  'From: ceo@example.com\r\nSubject: smuggled\r\n\r\nPay the invoice.\r\n';

describe('SMTP smuggling', () => {
  const endings: [string, string][] = [
    ['\\n.\\n', '\n.\n'],
    ['\\r.\\r', '\r.\r'],
    ['\\n.\\r\\n', '\n.\r\n'],
    ['\\r\\n.\\n', '\r\n.\n'],
    ['\\r\\n.\\r', '\r\n.\r'],
    ['\\r.\\r\\n', '\r.\r\n'],
    ['\\n.\\r', '\n.\r'],
  ];
  for (const [name, ending] of endings) {
    test(`"${name}" does not end the message, lets no second message through, and is refused with 554 5.5.2`, async () => {
      const c = await rawClient(server, 'smtp', 'mta.outside.example');
      try {
        assert.equal((await c.command('MAIL FROM:<sender@outside.example>')).code, 250);
        assert.equal((await c.command('RCPT TO:<john@example.com>')).code, 250);
        assert.equal((await c.command('DATA')).code, 354);
        // One write: the first message, the fake end, a whole pipelined second transaction, the real end.
        c.write(`From: sender@outside.example\r\nSubject: first\r\n\r\nHello.${ending}${SMUGGLED}.\r\n`);
        const r = await c.reply();
        assert.equal(r.code, 554, r.raw);
        assert.match(r.text, /^5\.5\.2 /);
        // No reply to any smuggled command, and the session is still in order.
        await assertNextIsNoop(c);
      } finally {
        c.close();
      }
      await assertNothingSmuggled();
    });
  }

  test('a fake end split over many writes is refused too', async () => {
    const c = await rawClient(server, 'smtp', 'mta.outside.example');
    try {
      assert.equal((await c.command('MAIL FROM:<sender@outside.example>')).code, 250);
      assert.equal((await c.command('RCPT TO:<john@example.com>')).code, 250);
      assert.equal((await c.command('DATA')).code, 354);
      c.write('Subject: first\r\n\r\nHello.');
      for (const ch of `\n.\n${SMUGGLED}.\r\n`) {
        c.write(ch);
        await sleep(1);
      }
      const r = await c.reply();
      assert.equal(r.code, 554, r.raw);
      await assertNextIsNoop(c);
    } finally {
      c.close();
    }
    await assertNothingSmuggled();
  });

  test('a fake end right at the start of the data is refused', async () => {
    const c = await rawClient(server, 'smtp', 'mta.outside.example');
    try {
      const r = await sendRaw(c, 'sender@outside.example', ['john@example.com'], `.\n${SMUGGLED}.\r\n`, { raw: true });
      assert.equal(r.code, 554, r.raw);
      await assertNextIsNoop(c);
    } finally {
      c.close();
    }
    await assertNothingSmuggled();
  });

  test('from an authenticated user too (587), nothing is queued', async () => {
    const c = await rawClient(server, 'submission');
    try {
      await c.starttls();
      await c.ehlo();
      assert.equal((await c.authPlain(JOHN.user, JOHN.pass)).code, 235);
      const r = await sendRaw(c, 'john@example.com', ['bob@other.example'], `Subject: out\r\n\r\nHi\n.\n${SMUGGLED}.\r\n`, { raw: true });
      assert.equal(r.code, 554, r.raw);
      await assertNextIsNoop(c);
    } finally {
      c.close();
    }
    await assertNothingSmuggled();
  });

  test('a message with ordinary bare LFs and CRs is accepted and stored with CRLF only', async () => {
    const c = await rawClient(server, 'smtp', 'mta.outside.example');
    try {
      const body = 'From: sender@outside.example\nSubject: bare line endings\n\nline one\nline two\rline three\r\n..a stuffed dot\n. a dot and a space\nend\n';
      const r = await sendRaw(c, 'sender@outside.example', ['laura.verdi@example.com'], body);
      assert.equal(r.code, 250, r.raw);
    } finally {
      c.close();
    }
    const mails = await server.waitForMail('laura.verdi');
    const mail = mails.find((m) => m.includes('Subject: bare line endings'));
    assert.ok(mail);
    assert.doesNotMatch(mail, /[^\r]\n/, 'no bare LF');
    assert.doesNotMatch(mail, /\r(?!\n)/, 'no bare CR');
    assert.match(mail, /\r\nline one\r\nline two\r\nline three\r\n\.a stuffed dot\r\n\. a dot and a space\r\nend\r\n\r\n$/, 'sendRaw added CRLF.CRLF after the bare LF');
  });

  test('a proper lone dot inside the data ends the message where it should (RFC 5321 §4.1.1.4)', async () => {
    const c = await rawClient(server, 'smtp', 'mta.outside.example');
    try {
      c.write('MAIL FROM:<sender@outside.example>\r\nRCPT TO:<john@example.com>\r\nDATA\r\n');
      assert.equal((await c.reply()).code, 250);
      assert.equal((await c.reply()).code, 250);
      assert.equal((await c.reply()).code, 354);
      // Pipelined (RFC 2920): the end of data, then a second transaction in the same write. Both are real.
      c.write(
        'Subject: first pipelined\r\n\r\nOne.\r\n.\r\n' +
          'MAIL FROM:<sender@outside.example>\r\nRCPT TO:<john@example.com>\r\nDATA\r\n',
      );
      assert.equal((await c.reply()).code, 250, 'first message');
      assert.equal((await c.reply()).code, 250, 'MAIL');
      assert.equal((await c.reply()).code, 250, 'RCPT');
      assert.equal((await c.reply()).code, 354, 'DATA');
      c.write('Subject: second pipelined\r\n\r\nTwo.\r\n.\r\n');
      assert.equal((await c.reply()).code, 250, 'second message');
    } finally {
      c.close();
    }
    const mails = await server.waitForMail('john.smith', 2);
    assert.ok(mails.some((m) => m.includes('Subject: first pipelined')));
    assert.ok(mails.some((m) => m.includes('Subject: second pipelined')));
  });
});

describe('STARTTLS', () => {
  test('discards a MAIL FROM pipelined with STARTTLS (never answered, never executed)', async () => {
    const c = await rawClient(server, 'smtp', 'mta.outside.example');
    try {
      c.write('STARTTLS\r\nMAIL FROM:<attacker@outside.example>\r\n');
      const r = await c.reply();
      assert.equal(r.code, 220, r.raw);
      assert.equal(await c.noReply(150), '', 'no plaintext answer to the injected MAIL');
      await c.upgrade();
      // The first reply inside TLS must be the one to our EHLO, and there is no transaction.
      const { reply } = await c.ehlo();
      assert.equal(reply.code, 250);
      assert.match(reply.lines[0], /^mx\.example\.com /);
      const rcpt = await c.command('RCPT TO:<john@example.com>');
      assert.equal(rcpt.code, 503, `the injected MAIL must not have started a transaction: ${rcpt.raw}`);
    } finally {
      c.close();
    }
  });

  test('discards an AUTH pipelined with STARTTLS on 587', async () => {
    const c = await rawClient(server, 'submission');
    try {
      c.write(`STARTTLS\r\nAUTH PLAIN ${Buffer.from(`\0john.smith\0${PASSWORD}`).toString('base64')}\r\n`);
      assert.equal((await c.reply()).code, 220);
      assert.equal(await c.noReply(150), '');
      await c.upgrade();
      await c.ehlo();
      const r = await c.command('MAIL FROM:<john@example.com>');
      assert.equal(r.code, 530, `not logged in by the injected AUTH: ${r.raw}`);
    } finally {
      c.close();
    }
  });

  test('forgets HELO and the transaction: the client must EHLO again', async () => {
    const c = await rawClient(server, 'smtp', 'mta.outside.example');
    try {
      assert.equal((await c.command('MAIL FROM:<sender@outside.example>')).code, 250);
      assert.equal((await c.command('RCPT TO:<john@example.com>')).code, 250);
      await c.starttls();
      const mail = await c.command('MAIL FROM:<sender@outside.example>');
      assert.equal(mail.code, 503, `MAIL before EHLO after STARTTLS: ${mail.raw}`);
      await c.ehlo();
      const data = await c.command('DATA');
      assert.equal(data.code, 503, `the pre-TLS recipients are forgotten: ${data.raw}`);
      const r = await sendRaw(c, 'sender@outside.example', ['john@example.com'], 'Subject: after tls\r\n\r\nok\r\n');
      assert.equal(r.code, 250, r.raw);
    } finally {
      c.close();
    }
  });

  test('a second STARTTLS inside TLS is refused', async () => {
    const c = await rawClient(server, 'smtp');
    try {
      await c.starttls();
      await c.ehlo();
      assert.equal((await c.command('STARTTLS')).code, 503);
    } finally {
      c.close();
    }
  });
});

describe('other raw-socket edge cases', () => {
  test('answers an HTTP request with 421 and closes (cross-protocol requests from browsers)', async () => {
    const c = await RawSmtp.connect(server.ports.smtp);
    try {
      const r = await c.command('POST / HTTP/1.1');
      assert.equal(r.code, 421);
      await c.closed(2000);
    } finally {
      c.close();
    }
  });
});
