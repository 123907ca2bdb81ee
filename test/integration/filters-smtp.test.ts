/**
 * The content filters in the SMTP session, end to end (issue 4): a real server with the real clamd and spamd the
 * driver starts. A refused message is refused to the sender's face (5xx at DATA, nothing queued); marked spam goes
 * to Junk; a daemon that cannot answer is 451, never a silent pass and never a 5xx.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import nodemailer, { type SendMailOptions } from 'nodemailer';
import { EICAR } from '../harness/clamd.ts';
import { GTUBE } from '../harness/spamd.ts';
import { peExecutable } from '../helpers/attachments.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const env = process.env;
const skip = env.POSTERN_TEST_CLAMD_PORT && env.POSTERN_TEST_SPAMD_PORT ? false : 'needs clamd and spamd: run through test/run.ts';

function daemons(over: { clamdPort?: number; spamdPort?: number } = {}) {
  return {
    clamav: { host: env.POSTERN_TEST_CLAMD_HOST ?? '127.0.0.1', port: over.clamdPort ?? Number(env.POSTERN_TEST_CLAMD_PORT), timeoutMs: 5000 },
    spamassassin: { host: env.POSTERN_TEST_SPAMD_HOST ?? '127.0.0.1', port: over.spamdPort ?? Number(env.POSTERN_TEST_SPAMD_PORT), timeoutMs: 20000 },
  };
}

async function send(server: TestServer, mail: SendMailOptions) {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: server.ports.smtp, secure: false, ignoreTLS: true, name: 'mta.outside.example' });
  try {
    return await t.sendMail({ from: 'sender@outside.example', to: 'john@example.com', subject: 'hello', text: 'Hello John, see you tomorrow.', ...mail });
  } finally {
    t.close();
  }
}

describe('content filters in the SMTP session (real clamd and spamd)', { skip }, () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(daemons(), { filters: true });
  });
  after(() => server?.close());

  it('a clean message is accepted, scored, and delivered to the INBOX with X-Spam-Status: No', async () => {
    const info = await send(server, { subject: 'clean', text: 'Meeting moved to 3pm, same room.' });
    assert.match(info.response, /^250 /);
    const [mail] = await server.waitForMail('john.smith', 1, { ms: 20000 });
    assert.match(mail, /^X-Spam-Status: No, score=/m);
  });

  it('spamd scores the message with our Received line on top, as Amavis passes it (no NO_RECEIVED, NO_RELAYS)', async () => {
    const info = await send(server, { to: 'anna@example.com', subject: 'received for spamd', text: 'The minutes of the meeting are attached.' });
    assert.match(info.response, /^250 /);
    const mail = (await server.waitForMail('anna.bianchi', 1, { ms: 20000 })).find((m) => m.includes('Subject: received for spamd'));
    assert.ok(mail);
    // X-Spam-Status lists the rules that hit (tests=...), unfolded here: applyMarks folds long values.
    const status = /^X-Spam-Status: (.*(?:\r\n[ \t].*)*)/m.exec(mail)?.[1].replace(/\r\n[ \t]+/g, ' ');
    assert.ok(status, 'scored');
    assert.doesNotMatch(status, /\bNO_RECEIVED\b/, status);
    assert.doesNotMatch(status, /\bNO_RELAYS\b/, status);
  });

  it('EICAR is refused at DATA with 554 5.7.1 naming the signature, and nothing is queued', async () => {
    await assert.rejects(send(server, { subject: 'virus', text: `${EICAR}\n` }), (err: Error & { responseCode?: number; response?: string }) => {
      assert.equal(err.responseCode, 554);
      assert.match(err.response ?? '', /5\.7\.1 .*virus.*Eicar/i);
      return true;
    });
    assert.deepEqual(await server.spool.list(), []);
  });

  it('GTUBE is refused as spam (score above the deny threshold)', async () => {
    await assert.rejects(send(server, { subject: 'spam', text: `${GTUBE}\n` }), (err: Error & { responseCode?: number; response?: string }) => {
      assert.equal(err.responseCode, 554);
      assert.match(err.response ?? '', /5\.7\.1 .*spam/i);
      return true;
    });
  });

  it('a message over the spam threshold is marked, subject-prefixed, and filed into Junk', async () => {
    server.core.settings.setMany({ 'filter.spam.threshold': -100, 'filter.spam.subjectPrefix': '***SPAM*** ', 'mailbox.moveSpamToJunk': true });
    try {
      await send(server, { to: 'laura.verdi@example.com', subject: 'cheap watches', text: 'Buy now.' });
      const [junk] = await server.waitForMail('laura.verdi', 1, { folder: 'Junk', ms: 20000 });
      assert.match(junk, /^X-Spam-Flag: YES/m);
      assert.match(junk, /^Subject: \*\*\*SPAM\*\*\* cheap watches/m);
      assert.deepEqual(server.inbox('laura.verdi'), []);
    } finally {
      server.core.settings.setMany({ 'filter.spam.threshold': 5, 'filter.spam.subjectPrefix': '' });
    }
  });

  it('a blocked sender is refused at MAIL FROM; an executable attachment at DATA', async () => {
    server.core.settings.setMany({ 'filter.lists.blockFrom': ['outside.example'] });
    try {
      await assert.rejects(send(server, {}), /554.*blocked by policy/);
    } finally {
      server.core.settings.setMany({ 'filter.lists.blockFrom': [] });
    }
    server.core.settings.setMany({ 'filter.attachments.executables': true });
    try {
      await assert.rejects(
        send(server, { attachments: [{ filename: 'invoice.pdf', content: peExecutable() }] }),
        /554 5\.7\.1 Message refused: attachment of blocked type \(executables: exe\)/,
      );
    } finally {
      server.core.settings.setMany({ 'filter.attachments.executables': false });
    }
  });

  it('the discard action accepts an infected message with 250 and keeps nothing', async () => {
    server.core.settings.setMany({ 'filter.antivirus.action': 'discard' });
    try {
      const info = await send(server, { to: 'paolo.neri@example.com', subject: 'virus', text: `${EICAR}\n` });
      assert.match(info.response, /^250 /);
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(await server.spool.list(), []);
      assert.deepEqual(server.inbox('paolo.neri'), []);
    } finally {
      server.core.settings.setMany({ 'filter.antivirus.action': 'reject' });
    }
  });

  it('clamd or spamd unreachable → 451 4.7.1 by default, accepted when its onFailure says accept', async () => {
    const down = await startTestServer(daemons({ clamdPort: 1, spamdPort: 1 }), { filters: true });
    try {
      await assert.rejects(send(down, {}), (err: Error & { responseCode?: number; response?: string }) => {
        assert.equal(err.responseCode, 451);
        assert.match(err.response ?? '', /4\.7\.1 clamav temporarily unavailable/);
        return true;
      });
      down.core.settings.setMany({ 'filter.antivirus.onFailure': 'accept' });
      await assert.rejects(send(down, {}), /451 4\.7\.1 spamassassin temporarily unavailable/);
      down.core.settings.setMany({ 'filter.spam.onFailure': 'accept' });
      assert.match((await send(down, {})).response, /^250 /);
    } finally {
      await down.close();
    }
  });
});
