/**
 * Mail flow end to end against the Samba AD DC (CORP.EXAMPLE, fixtures/ad/corp.ldif): an outside MTA on port 25
 * and a user on submission talk to a whole postern server (in-process, port 0) whose directory is the real AD over
 * LDAPS. Every address form of the fixtures ends in the right Maildir; lists, nested lists, pseudonyms and shared
 * folders expand from AD; disabled, expired and unknown recipients are refused at RCPT; relay is refused in every
 * address form.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createTransport } from 'nodemailer';
import { adDirectory, haveAd } from '../helpers/cli.ts';
import { RawSmtp, type SmtpReply } from '../helpers/raw-smtp.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const skip = haveAd('AD') ? false : 'needs the Samba DCs: run through test/run.ts';
const DOMAINS = ['example.com', 'example.org', 'corp.example'];
const PASSWORD = 'Corp!Passw0rd';
const OUTSIDE = 'someone@outside.example';

/** The RCPT TO reply for `rcpt` from an unauthenticated outside client on port 25, on a fresh connection. */
async function rcptReply(port: number, rcpt: string): Promise<SmtpReply> {
  const smtp = await RawSmtp.connect(port, { timeoutMs: 30_000 });
  try {
    assert.equal(smtp.greeting.code, 220, smtp.greeting.text);
    assert.equal((await smtp.command('EHLO mta.outside.example')).code, 250);
    assert.equal((await smtp.command(`MAIL FROM:<${OUTSIDE}>`)).code, 250);
    return await smtp.command(`RCPT TO:<${rcpt}>`);
  } finally {
    smtp.close();
  }
}

// ---- sending with nodemailer and finding the result -----------------------------------------------------------

function message(token: string, to: string, from = OUTSIDE): string {
  return [
    `From: <${from}>`,
    `To: <${to}>`,
    `Subject: mail flow ${token}`,
    `Message-ID: <${token}@outside.example>`,
    `Date: ${new Date().toUTCString()}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    `token ${token}`,
    '',
  ].join('\r\n');
}

/** An outside MTA on port 25: no AUTH; STARTTLS as offered (the self-signed certificate is not checked). */
function mta(server: TestServer) {
  return createTransport({ host: '127.0.0.1', port: server.ports.smtp, secure: false, name: 'mta.outside.example', tls: { rejectUnauthorized: false } });
}

/** Sends one message to `to` on port 25 and returns its token and queue id. */
async function send(server: TestServer, to: string | string[]): Promise<{ token: string; queueId: string }> {
  const token = randomUUID();
  const list = Array.isArray(to) ? to : [to];
  const transport = mta(server);
  try {
    const info = await transport.sendMail({ envelope: { from: OUTSIDE, to: list }, raw: message(token, list[0]) });
    assert.deepEqual(info.rejected, [], `rejected: ${JSON.stringify(info.rejected)}`);
    const queueId = /queued as (\S+)/.exec(info.response)?.[1];
    assert.ok(queueId, `no queue id in "${info.response}"`);
    return { token, queueId };
  } finally {
    transport.close();
  }
}

/** The messages of `owner` (a login or `shared:group`) that carry `token`. */
function withToken(server: TestServer, owner: string, token: string): string[] {
  return server.inbox(owner).filter((m) => m.includes(token));
}

/** Waits until `owner` has a message with `token`; returns the copies found. */
async function arrived(server: TestServer, owner: string, token: string, ms = 20_000): Promise<string[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = withToken(server, owner, token);
    if (found.length) return found;
    if (Date.now() > deadline) throw new Error(`${owner}: no message with token ${token} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Waits until the message has left the queue (every recipient final), so counting copies is meaningful. */
async function settled(server: TestServer, queueId: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (await server.spool.has(queueId)) {
    if (Date.now() > deadline) throw new Error(`${queueId} still queued after ${ms} ms: ${JSON.stringify(await server.spool.read(queueId))}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function header(msg: string, name: string): string[] {
  const head = msg.slice(0, msg.indexOf('\r\n\r\n'));
  return head
    .replace(/\r\n[ \t]+/g, ' ')
    .split('\r\n')
    .filter((l) => l.toLowerCase().startsWith(name.toLowerCase() + ':'))
    .map((l) => l.slice(name.length + 1).trim());
}

/** Every login of corp.ldif with a mailbox: a copy that lands anywhere is found. */
const ALL_LOGINS = [
  'john.smith',
  'anna.bianchi',
  'mario.rossi',
  'Carla.Fermi',
  'laura.verdi',
  'paolo.neri',
  'it.tech',
  'giulia.gallo',
  'admin',
  'old.employee',
  'contractor',
  'new.hire',
  'locked.user',
];

/** Sends to a list address and checks that exactly `expected` got one copy each and nobody else got any. */
async function expectOneCopyEach(server: TestServer, to: string, expected: string[]): Promise<void> {
  const { token, queueId } = await send(server, to);
  for (const login of expected) await arrived(server, login, token);
  await settled(server, queueId);
  const got = Object.fromEntries(ALL_LOGINS.map((l) => [l, withToken(server, l, token).length]).filter(([, n]) => n));
  assert.deepEqual(got, Object.fromEntries(expected.map((l) => [l, 1])));
}

/**
 * Each test sends a message or two and waits for them (arrived(), settled(): 20 s deadlines); 0.1-2 s on a quiet
 * machine. A limit per test, not one for the whole suite (which a busy machine exceeded).
 */
const PER_TEST = { timeout: 60_000 };

describe('mail flow with Active Directory (Samba, CORP.EXAMPLE)', { skip }, () => {
  let server: TestServer;
  let shared: TestServer;

  before(async () => {
    [server, shared] = await Promise.all([
      startTestServer({ directory: adDirectory('AD') }, { domains: DOMAINS }),
      startTestServer({ directory: adDirectory('AD', { groupDelivery: 'shared' }) }, { domains: DOMAINS }),
    ]);
  });
  after(async () => {
    await Promise.all([server?.close(), shared?.close()]);
  });

  describe('every address form of a user reaches the right Maildir from port 25', () => {
    const forms: [string, string, string][] = [
      ['john@example.com', 'john.smith', 'mail'],
      ['js@example.com', 'john.smith', 'otherMailbox smtp:'],
      ['john.smith@example.com', 'john.smith', 'proxyAddresses SMTP: (primary)'],
      ['J.Smith@Example.COM', 'john.smith', 'proxyAddresses smtp: alias, in odd case'],
      ['john.smith@corp.example', 'john.smith', 'userPrincipalName'],
      ['anna@example.com', 'anna.bianchi', 'UPN equal to mail'],
      ['a.bianchi@example.org', 'anna.bianchi', 'second mail domain'],
      ['m.rossi@example.com', 'mario.rossi', '"Smtp:" odd-case prefix'],
      ['carla@example.com', 'Carla.Fermi', 'mixed-case login'],
      ['giulia.gallo@example.com', 'giulia.gallo', 'DN with an escaped comma'],
      ['newhire@example.com', 'new.hire', 'must change password, still receives'],
      ['locked@example.com', 'locked.user', 'locked out, still receives'],
    ];
    for (const [address, login, what] of forms) {
      it(`${address} (${what}) is delivered to ${login}`, PER_TEST, async () => {
        const { token, queueId } = await send(server, address);
        const [copy] = await arrived(server, login, token);
        await settled(server, queueId);
        assert.equal(withToken(server, login, token).length, 1, 'one copy');
        assert.deepEqual(header(copy, 'Delivered-To'), [address.toLowerCase()]);
        assert.deepEqual(header(copy, 'Return-Path'), [`<${OUTSIDE}>`]);
        assert.match(header(copy, 'Received')[0], /by mx\.example\.com \(postern\) with ESMTPS? id /);
      });
    }
  });

  describe('groups from AD', () => {
    it('sales@ (distribution list, nested SalesItaly) gives john.smith, laura.verdi and mario.rossi one copy each; disabled old.employee none', PER_TEST, async () => {
      await expectOneCopyEach(server, 'sales@example.com', ['john.smith', 'laura.verdi', 'mario.rossi']);
    });

    it('all@ (AllStaff, three levels deep, john.smith a member twice) gives each enabled member one copy', PER_TEST, async () => {
      await expectOneCopyEach(server, 'all@example.com', ['admin', 'giulia.gallo', 'it.tech', 'john.smith', 'laura.verdi', 'mario.rossi', 'paolo.neri']);
    });

    it('a list address and one of its members in the same message: the member still gets one copy', PER_TEST, async () => {
      const { token, queueId } = await send(server, ['sales@example.com', 'john@example.com']);
      for (const l of ['john.smith', 'laura.verdi', 'mario.rossi']) await arrived(server, l, token);
      await settled(server, queueId);
      assert.equal(withToken(server, 'john.smith', token).length, 1);
    });

    it('a pseudonym info@<every domain> for the group "SALES" (any case) expands like the list', PER_TEST, async () => {
      server.core.settings.addPseudonym({ localPart: 'info', domains: 'all', target: { kind: 'group', name: 'SALES' }, localNetworkOnly: false });
      await expectOneCopyEach(server, 'info@example.com', ['john.smith', 'laura.verdi', 'mario.rossi']);
      await expectOneCopyEach(server, 'info@example.org', ['john.smith', 'laura.verdi', 'mario.rossi']);
    });

    it('with groupDelivery: shared, support@ and its alias helpdesk@ go into the shared folder, not to the members', PER_TEST, async () => {
      for (const address of ['support@example.com', 'helpdesk@example.com']) {
        const { token, queueId } = await send(shared, address);
        await arrived(shared, 'shared:support', token);
        await settled(shared, queueId);
        assert.equal(withToken(shared, 'shared:support', token).length, 1, address);
        for (const member of ['paolo.neri', 'giulia.gallo']) assert.equal(withToken(shared, member, token).length, 0, `${member} got a personal copy`);
      }
    });
  });

  describe('refused at RCPT time on port 25', () => {
    for (const [address, what] of [
      ['old@example.com', 'disabled account'],
      ['contractor@example.com', 'expired account'],
    ]) {
      it(`${address} (${what}) is refused with 550 5.2.1`, PER_TEST, async () => {
        const r = await rcptReply(server.ports.smtp, address);
        assert.equal(r.code, 550, r.text);
        assert.match(r.text, /^5\.2\.1 /);
      });
    }

    it('an unknown user is refused with 550 5.1.1', PER_TEST, async () => {
      const r = await rcptReply(server.ports.smtp, 'nobody.here@example.com');
      assert.equal(r.code, 550, r.text);
      assert.match(r.text, /^5\.1\.1 /);
    });

    it('nodemailer sees the same refusal, and nothing is queued', PER_TEST, async () => {
      const before = (await server.spool.list()).length;
      const transport = mta(server);
      try {
        await assert.rejects(transport.sendMail({ envelope: { from: OUTSIDE, to: ['old@example.com'] }, raw: message(randomUUID(), 'old@example.com') }), (err: Error & { responseCode?: number; response?: string }) => {
          assert.equal(err.responseCode, 550);
          assert.match(err.response ?? '', /^550 5\.2\.1 /);
          return true;
        });
      } finally {
        transport.close();
      }
      assert.equal((await server.spool.list()).length, before);
    });
  });

  describe('submission (STARTTLS + AUTH against AD)', () => {
    const submit = (user: string, pass: string) =>
      createTransport({
        host: '127.0.0.1',
        port: server.ports.submission,
        secure: false,
        requireTLS: true,
        name: 'laptop.corp.example',
        tls: { rejectUnauthorized: false },
        auth: { user, pass },
      });

    it('john.smith / Corp!Passw0rd sends to anna@example.com, and it arrives', PER_TEST, async () => {
      const transport = submit('john.smith', PASSWORD);
      const token = randomUUID();
      try {
        const info = await transport.sendMail({ envelope: { from: 'john@example.com', to: ['anna@example.com'] }, raw: message(token, 'anna@example.com', 'john@example.com') });
        assert.deepEqual(info.accepted, ['anna@example.com']);
      } finally {
        transport.close();
      }
      const [copy] = await arrived(server, 'anna.bianchi', token);
      // RFC 3848: ESMTPSA = ESMTP with STARTTLS and AUTH.
      assert.match(header(copy, 'Received')[0], / with ESMTPSA id /);
      assert.deepEqual(header(copy, 'Return-Path'), ['<john@example.com>']);
    });

    for (const login of ['old.employee', 'new.hire', 'locked.user']) {
      it(`AUTH as ${login} (right password) fails with 535`, PER_TEST, async () => {
        const transport = submit(login, PASSWORD);
        try {
          await assert.rejects(transport.verify(), (err: Error & { responseCode?: number; code?: string }) => {
            assert.equal(err.code, 'EAUTH', err.message);
            assert.equal(err.responseCode, 535, err.message);
            return true;
          });
        } finally {
          transport.close();
        }
      });
    }
  });

  describe('no relay for an unauthenticated client on port 25, in any address form', () => {
    it('friend@other.example is refused (nodemailer)', PER_TEST, async () => {
      const transport = mta(server);
      try {
        await assert.rejects(transport.sendMail({ envelope: { from: OUTSIDE, to: ['friend@other.example'] }, raw: message(randomUUID(), 'friend@other.example') }), (err: Error & { responseCode?: number; command?: string }) => {
          assert.equal(err.command, 'RCPT TO');
          assert.equal(err.responseCode, 554, err.message);
          return true;
        });
      } finally {
        transport.close();
      }
    });

    const forms: [string, string][] = [
      ['friend@other.example', 'another domain'],
      ['user%other.example@example.com', 'percent hack'],
      ['@example.com:user@other.example', 'source route'],
      ['@example.com,@mx.example.com:user@other.example', 'source route with two hops'],
      ['other.example!user@example.com', 'bang path'],
      ['"user@other.example"@example.com', 'quoted local part'],
      ['user@other.example@example.com', 'two @'],
      ['user@other.example.', 'trailing dot'],
    ];
    for (const [rcpt, what] of forms) {
      it(`refuses relay for "${rcpt}" (${what}) with a 5xx at RCPT`, PER_TEST, async (t) => {
        const before = (await server.spool.list()).length;
        const r = await rcptReply(server.ports.smtp, rcpt);
        t.diagnostic(`${r.code} ${r.text}`);
        assert.ok(r.code >= 500 && r.code < 600, `${rcpt}: ${r.code} ${r.text}`);
        assert.equal((await server.spool.list()).length, before);
      });
    }
  });
});
