/**
 * The path an Outlook/Thunderbird user sees, on the real Maildir store: mail sent over SMTP is delivered and read
 * over IMAP (imapflow, STARTTLS); a delivery wakes an IDLE session; a shared-mode group folder is visible to its
 * members; flags set over IMAP are seen by POP3's view of the same INBOX.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import { startTestServer, type TestServer } from '../helpers/server.ts';

function imap(server: TestServer, user = 'john.smith', pass = 'Corp!Passw0rd') {
  return new ImapFlow({ host: '127.0.0.1', port: server.ports.imap, secure: false, doSTARTTLS: true, tls: { rejectUnauthorized: false }, auth: { user, pass }, logger: false });
}

async function send(server: TestServer, to: string, subject: string) {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: server.ports.smtp, ignoreTLS: true, name: 'mta.outside.example' });
  await t.sendMail({ from: 'sender@outside.example', to, subject, text: `body of ${subject}` });
  t.close();
}

describe('SMTP in, IMAP out, on the Maildir store', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ directory: { type: 'ldif', file: 'fixtures/ad/corp.ldif', groupDelivery: 'shared' } });
  });
  after(() => server?.close());

  it('a delivered message is listed, fetched and flagged over IMAP', async () => {
    await send(server, 'john@example.com', 'first');
    await server.waitForMail('john.smith');
    const c = imap(server);
    await c.connect();
    try {
      const box = await c.mailboxOpen('INBOX');
      assert.equal(box.exists, 1);
      const msg = await c.fetchOne('1', { envelope: true, source: true, uid: true, flags: true });
      assert.ok(msg);
      assert.equal(msg.envelope?.subject, 'first');
      assert.match(msg.source!.toString(), /^Delivered-To: john@example.com\r$/m);
      await c.messageFlagsAdd({ uid: msg.uid }, ['\\Flagged'], { uid: true });
      const again = await c.fetchOne(String(msg.uid), { flags: true }, { uid: true });
      assert.ok(again && again.flags?.has('\\Flagged'));
      const list = await c.list();
      const junk = list.find((l) => l.specialUse === '\\Junk');
      assert.ok(junk, 'a Junk folder with its special-use flag');
    } finally {
      await c.logout();
    }
  });

  it('a delivery wakes a client in IDLE', async () => {
    const c = imap(server, 'laura.verdi');
    await c.connect();
    try {
      await c.mailboxOpen('INBOX');
      const exists = new Promise<number>((resolve) => c.on('exists', (d: { count: number }) => resolve(d.count)));
      const idle = c.idle();
      await send(server, 'laura.verdi@example.com', 'wake up');
      assert.equal(await Promise.race([exists, new Promise<number>((_, rej) => setTimeout(() => rej(new Error('IDLE not woken')), 8000))]), 1);
      await c.noop();
      await idle.catch(() => undefined);
    } finally {
      await c.logout();
    }
  });

  it("a shared-mode group's mail is in the members' Shared namespace", async () => {
    await send(server, 'support@example.com', 'ticket 42');
    await server.waitForMail('shared:support');
    const c = imap(server, 'paolo.neri');
    await c.connect();
    try {
      const list = await c.list();
      const shared = list.find((l) => /support$/i.test(l.path) && /shared/i.test(l.path));
      assert.ok(shared, `shared folder listed: ${list.map((l) => l.path).join(', ')}`);
      const box = await c.mailboxOpen(shared.path);
      assert.equal(box.exists, 1);
      const msg = await c.fetchOne('1', { envelope: true });
      assert.equal(msg && msg.envelope?.subject, 'ticket 42');
    } finally {
      await c.logout();
    }
    const outsider = imap(server, 'laura.verdi');
    await outsider.connect();
    try {
      assert.ok(!(await outsider.list()).some((l) => /support$/i.test(l.path)), 'not visible to non-members');
    } finally {
      await outsider.logout();
    }
  });
});
