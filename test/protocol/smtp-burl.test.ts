/**
 * BURL (RFC 4468) end to end on a whole server: a draft saved over IMAP, a "submit+" URL made for it with
 * GENURLAUTH, and the submission listener (465) sending it with `BURL <url> LAST`, so the message reaches the
 * recipient without the client uploading it again. URLs not for the submitting user, and mixing BURL with DATA,
 * are refused; port 25 does not offer BURL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RawImap } from '../helpers/raw-imap.ts';
import { RawSmtp } from '../helpers/raw-smtp.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const PASS = 'Corp!Passw0rd';
const DRAFT = 'From: john@example.com\r\nTo: laura.verdi@example.com\r\nSubject: saved draft\r\n\r\nThe body the client saved in Drafts.\r\n';

let server: TestServer;
let imap: RawImap;
let uid: number;

before(async () => {
  server = await startTestServer();
  server.core.settings.set('mailbox.allowUnencrypted', true);
  imap = await RawImap.login(server.ports.imap, 'john.smith', PASS);
  imap.send(`a1 APPEND Drafts {${Buffer.byteLength(DRAFT)}+}\r\n${DRAFT}\r\n`);
  const r = await imap.until(/^a1 (OK|NO|BAD).*\r\n/m);
  uid = Number(/APPENDUID \d+ (\d+)/.exec(r)![1]);
});

after(async () => {
  imap?.close();
  await server?.close();
});

async function genUrl(rest: string, user = 'john.smith'): Promise<string> {
  const r = await imap.ok('g', `GENURLAUTH "imap://${user}@${server.hostname}/Drafts/;UID=${uid}${rest}" INTERNAL`);
  return /^\* GENURLAUTH "([^"]+)"/m.exec(r)![1];
}

async function submission(user = 'john.smith'): Promise<RawSmtp> {
  const c = await RawSmtp.connect(server.ports.smtps, { tls: true });
  const { keywords } = await c.ehlo();
  assert.ok(keywords.includes('BURL imap'), keywords.join(','));
  assert.equal((await c.authPlain(user, PASS)).code, 235);
  return c;
}

describe('BURL on the submission listener', () => {
  test('BURL <submit+ URL> LAST sends the saved draft to the recipient', async () => {
    const url = await genUrl(';URLAUTH=submit+john.smith');
    const c = await submission();
    try {
      assert.equal((await c.command('MAIL FROM:<john@example.com>')).code, 250);
      assert.equal((await c.command('RCPT TO:<laura.verdi@example.com>')).code, 250);
      const r = await c.command(`BURL ${url} LAST`);
      assert.equal(r.code, 250, r.raw);
      assert.match(r.text, /queued as/);
    } finally {
      c.close();
    }
    const [mail] = await server.waitForMail('laura.verdi');
    assert.match(mail!, /^Subject: saved draft\r$/m);
    assert.match(mail!, /The body the client saved in Drafts\./);
  });

  test('several BURLs are joined in order (a header from one URL section, the text from another)', async () => {
    const header = await genUrl('/;SECTION=HEADER;URLAUTH=submit+john.smith');
    const text = await genUrl('/;SECTION=TEXT;URLAUTH=submit+john.smith');
    const c = await submission();
    try {
      await c.command('MAIL FROM:<john@example.com>');
      await c.command('RCPT TO:<paolo.neri@example.com>');
      const first = await c.command(`BURL ${header}`);
      assert.equal(first.code, 250, first.raw);
      assert.match(first.text, /octets appended/);
      assert.equal((await c.command('DATA')).code, 503, 'no DATA after a BURL of the same message');
      assert.equal((await c.command(`BURL ${text} LAST`)).code, 250);
    } finally {
      c.close();
    }
    const [mail] = await server.waitForMail('paolo.neri');
    assert.match(mail!, /Subject: saved draft\r\n(?:[^\r\n]+\r\n)*\r\nThe body the client saved in Drafts\./);
  });

  test('a URL that is not for submission by this user is 554 5.6.6, and the transaction is dropped', async () => {
    const forImap = await genUrl(';URLAUTH=user+john.smith');
    const forJohn = await genUrl(';URLAUTH=submit+john.smith');
    const c = await submission('anna.bianchi');
    try {
      await c.command('MAIL FROM:<anna@example.com>');
      await c.command('RCPT TO:<laura.verdi@example.com>');
      const r = await c.command(`BURL ${forJohn} LAST`);
      assert.equal(r.code, 554, r.raw);
      assert.match(r.text, /^5\.6\.6 /);
      // The transaction is gone: a further BURL has no recipients.
      assert.equal((await c.command(`BURL ${forJohn} LAST`)).code, 503);
    } finally {
      c.close();
    }
    const d = await submission();
    try {
      await d.command('MAIL FROM:<john@example.com>');
      await d.command('RCPT TO:<laura.verdi@example.com>');
      assert.equal((await d.command(`BURL ${forImap} LAST`)).code, 554, 'a user+ URL is for IMAP, not for submission');
      await d.command('MAIL FROM:<john@example.com>');
      await d.command('RCPT TO:<laura.verdi@example.com>');
      const tampered = forJohn.slice(0, -1) + (forJohn.endsWith('0') ? '1' : '0');
      assert.equal((await d.command(`BURL ${tampered} LAST`)).code, 554);
      assert.equal((await d.command('BURL')).code, 501);
      assert.equal((await d.command(`BURL ${forJohn} FIRST`)).code, 501);
    } finally {
      d.close();
    }
  });

  test('BURL needs AUTH and a recipient; port 25 does not offer it', async () => {
    const url = await genUrl(';URLAUTH=submit+john.smith');
    const c = await submission();
    try {
      await c.command('MAIL FROM:<john@example.com>');
      assert.equal((await c.command(`BURL ${url} LAST`)).code, 503);
    } finally {
      c.close();
    }
    const anon = await RawSmtp.connect(server.ports.smtps, { tls: true });
    try {
      await anon.ehlo();
      assert.equal((await anon.command(`BURL ${url} LAST`)).code, 530);
    } finally {
      anon.close();
    }
    const mx = await RawSmtp.connect(server.ports.smtp);
    try {
      const { keywords } = await mx.ehlo();
      assert.ok(!keywords.some((k) => k.startsWith('BURL')), keywords.join(','));
      assert.equal((await mx.command(`BURL ${url} LAST`)).code, 500);
    } finally {
      mx.close();
    }
  });
});
