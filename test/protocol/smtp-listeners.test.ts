/**
 * The three SMTP listeners (issue 3, "Mail flow" §1): 25 for other servers, 587 submission with STARTTLS required
 * before AUTH and AUTH before MAIL, 465 with implicit TLS; AUTH PLAIN/LOGIN through the authenticator (master user,
 * failure delay); the sender an authenticated user may use; the TLS certificate.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { connect as tlsConnect } from 'node:tls';
import { CLIENT_PACKAGES, ensureDebianPackages, findBinary } from '../harness/packages.ts';
import { runChild } from '../harness/children.ts';
import { RawSmtp, sendRaw } from '../helpers/raw-smtp.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import {
  ADMIN_PASSWORD,
  JOHN,
  PASSWORD,
  message,
  queueIdOf,
  rawClient,
  startSmtpTestServer,
  submissionClient,
  transport,
} from './smtp-env.ts';

let server: TestServer;

before(async () => {
  server = await startSmtpTestServer();
});

after(async () => {
  await server.close();
});

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** swaks (Debian package) when installed: a second, independent client. Async: the server runs in this process. */
const swaksPath = () => findBinary('swaks') ?? 'swaks';
async function swaks(args: string[]): Promise<{ code: number; out: string }> {
  // About 0.3 s quiet; its own process group, killed after 45 s (test/harness/children.ts).
  const r = await runChild(swaksPath(), args, { timeoutMs: 45_000 });
  return { code: r.code ?? 1, out: r.stdout + r.stderr };
}

describe('port 25 (other servers)', () => {
  test('greets with the configured hostname and offers STARTTLS and SIZE but not AUTH', async () => {
    const c = await RawSmtp.connect(server.ports.smtp);
    try {
      assert.equal(c.greeting.code, 220);
      assert.match(c.greeting.text, /^mx\.example\.com ESMTP\b/);
      const { reply, keywords } = await c.ehlo();
      assert.match(reply.lines[0], /^mx\.example\.com\b/);
      assert.ok(keywords.includes('STARTTLS'), keywords.join(','));
      assert.ok(keywords.some((k) => /^SIZE \d+$/.test(k)), keywords.join(','));
      assert.ok(!keywords.some((k) => k.startsWith('AUTH')), keywords.join(','));
      await c.starttls();
      const again = await c.ehlo();
      assert.ok(!again.keywords.some((k) => k.startsWith('AUTH')), 'no AUTH after STARTTLS either');
      const auth = await c.authPlain(JOHN.user, JOHN.pass);
      assert.ok(auth.code >= 500, `AUTH on port 25 must be refused, got ${auth.raw}`);
    } finally {
      c.close();
    }
  });

  test('offers AUTH after STARTTLS when smtp.authOnPort25 is on, from the next connection', async (t) => {
    server.core.settings.set('smtp.authOnPort25', true);
    t.after(() => server.core.settings.set('smtp.authOnPort25', false));
    const c = await RawSmtp.connect(server.ports.smtp);
    try {
      const clear = await c.ehlo();
      assert.ok(!clear.keywords.some((k) => k.startsWith('AUTH')), `not in clear text: ${clear.keywords.join(',')}`);
      await c.starttls();
      const { keywords } = await c.ehlo();
      assert.ok(keywords.includes('AUTH PLAIN LOGIN'), keywords.join(','));
      assert.equal((await c.authPlain(JOHN.user, JOHN.pass)).code, 235);
      assert.equal((await c.command('MAIL FROM:<john@example.com>')).code, 250);
      assert.equal((await c.command('RCPT TO:<bob@other.example>')).code, 250, 'an authenticated client may relay');
    } finally {
      c.close();
    }
  });

  test('takes mail for a local user from an unauthenticated server, over STARTTLS', async () => {
    const info = await transport(server, 'smtp').sendMail({
      envelope: { from: 'someone@outside.example', to: ['carla@example.com'] },
      raw: message('from outside'),
    });
    assert.match(info.response, /^250 2\.0\.0 Ok: queued as [0-9A-Z]+$/);
    const [mail] = await server.waitForMail('Carla.Fermi');
    assert.match(mail, /^Subject: from outside\r$/m);
    assert.match(mail, /with ESMTPS id /, 'the Received field records TLS');
  });
});

describe('port 587 (submission)', () => {
  test('offers STARTTLS and no AUTH before TLS, and refuses AUTH in clear text', async () => {
    const c = await RawSmtp.connect(server.ports.submission);
    try {
      const { keywords } = await c.ehlo();
      assert.ok(keywords.includes('STARTTLS'));
      assert.ok(!keywords.some((k) => k.startsWith('AUTH')), keywords.join(','));
      const r = await c.authPlain(JOHN.user, JOHN.pass);
      assert.ok(r.code >= 500, `AUTH before STARTTLS must be refused, got ${r.raw}`);
    } finally {
      c.close();
    }
  });

  test('requires AUTH before MAIL, before and after STARTTLS', async () => {
    const c = await RawSmtp.connect(server.ports.submission);
    try {
      await c.ehlo();
      const before = await c.command('MAIL FROM:<john@example.com>');
      assert.equal(before.code, 530, before.raw);
      assert.match(before.text, /^5\.7\.0 Must issue a STARTTLS command first/);
      assert.equal((await c.command('RCPT TO:<laura.verdi@example.com>')).code, 503, 'no transaction without MAIL');
      await c.starttls();
      const { keywords } = await c.ehlo();
      assert.ok(keywords.includes('AUTH PLAIN LOGIN'), keywords.join(','));
      const afterTls = await c.command('MAIL FROM:<john@example.com>');
      assert.equal(afterTls.code, 530, afterTls.raw);
      assert.match(afterTls.text, /5\.7\.0 Authentication required/);
    } finally {
      c.close();
    }
  });

  test('accepts a message from an authenticated user and names the queue id in the 250', async () => {
    const info = await transport(server, 'submission', JOHN).sendMail({
      from: 'john@example.com',
      to: 'laura.verdi@example.com',
      subject: 'submitted on 587',
      text: 'Hi Laura',
    });
    const id = queueIdOf(info.response);
    const [mail] = await server.waitForMail('laura.verdi');
    assert.match(mail, /^Subject: submitted on 587\r$/m);
    assert.match(mail, new RegExp(`with ESMTPSA id ${id}\\b`), 'the Received field names the same queue id');
  });

  test('AUTH PLAIN and AUTH LOGIN both log in', async () => {
    const c = await rawClient(server, 'submission');
    try {
      await c.starttls();
      await c.ehlo();
      assert.equal((await c.command('AUTH LOGIN')).code, 334);
      assert.equal((await c.command(b64('laura.verdi'))).code, 334);
      const r = await c.command(b64(PASSWORD));
      assert.equal(r.code, 235, r.raw);
      assert.equal((await c.command('MAIL FROM:<laura.verdi@example.com>')).code, 250);
    } finally {
      c.close();
    }
    const p = await submissionClient(server, { user: 'laura.verdi', pass: PASSWORD });
    p.close();
  });

  test('refuses a wrong password, an empty password, an account that may not log in and a wildcard with 535 5.7.8', async () => {
    const c = await rawClient(server, 'submission');
    try {
      await c.starttls();
      await c.ehlo();
      for (const [user, pass] of [
        ['john.smith', 'wrong'],
        ['john.smith', ''],
        ['old.employee', PASSWORD],
        ['contractor', PASSWORD],
        ['locked.user', PASSWORD],
        ['new.hire', PASSWORD],
        ['nobody', PASSWORD],
        ['*', PASSWORD],
      ]) {
        const r = await c.command(`AUTH PLAIN ${b64(`\0${user}\0${pass}`)}`);
        assert.equal(r.code, 535, `${user}: ${r.raw}`);
        assert.match(r.text, /^5\.7\.8 /);
      }
    } finally {
      c.close();
    }
  });

  test('refuses an authorization identity other than the login (no second way to act as someone else)', async () => {
    const c = await rawClient(server, 'submission');
    try {
      await c.starttls();
      await c.ehlo();
      const r = await c.authPlain('john.smith', PASSWORD, 'laura.verdi');
      assert.equal(r.code, 535, r.raw);
    } finally {
      c.close();
    }
  });

  test('refuses the master login "john.smith*admin" on SMTP AUTH while mailbox.masterUser is on but smtp.masterUserAuth is off', async (t) => {
    server.core.settings.set('mailbox.masterUser', true);
    t.after(() => server.core.settings.set('mailbox.masterUser', false));
    assert.equal(server.core.settings.get('smtp.masterUserAuth'), false, 'off by default');
    for (const listener of ['submission', 'smtps'] as const) {
      const c = await rawClient(server, listener);
      try {
        if (listener === 'submission') {
          await c.starttls();
          await c.ehlo();
        }
        assert.equal((await c.authPlain('john.smith*admin', ADMIN_PASSWORD)).code, 535, listener);
        // The ordinary logins still work on the same connection.
        assert.equal((await c.authPlain('john.smith', PASSWORD)).code, 235, listener);
      } finally {
        c.close();
      }
    }
  });

  test('the master login "john.smith*admin" works only while mailbox.masterUser and smtp.masterUserAuth are on, and acts as john.smith', async (t) => {
    const master = { user: 'john.smith*admin', pass: ADMIN_PASSWORD };
    server.core.settings.set('smtp.masterUserAuth', true);
    t.after(() => server.core.settings.set('smtp.masterUserAuth', false));
    const off = await rawClient(server, 'submission');
    try {
      await off.starttls();
      await off.ehlo();
      assert.equal((await off.authPlain(master.user, master.pass)).code, 535);
    } finally {
      off.close();
    }
    server.core.settings.set('mailbox.masterUser', true);
    t.after(() => server.core.settings.set('mailbox.masterUser', false));
    const refused = await rawClient(server, 'submission');
    try {
      await refused.starttls();
      await refused.ehlo();
      // Not as itself, not into a disabled mailbox, not with a wrong password.
      for (const [user, pass] of [['admin*admin', ADMIN_PASSWORD], ['old.employee*admin', ADMIN_PASSWORD], ['john.smith*admin', PASSWORD]]) {
        assert.equal((await refused.authPlain(user, pass)).code, 535, user);
      }
    } finally {
      refused.close();
    }
    const c = await submissionClient(server, master);
    try {
      // The session is john.smith: his address is allowed, the admin's is not.
      assert.equal((await c.command('MAIL FROM:<admin@example.com>')).code, 553);
      assert.equal((await c.command('MAIL FROM:<john@example.com>')).code, 250);
    } finally {
      c.close();
    }
  });

  test('delays the answer to a failed login (auth.failureDelayMs)', async () => {
    const slow = await startSmtpTestServer({ auth: { failureDelayMs: 600, failureDelayMaxMs: 600 } });
    try {
      const c = await rawClient(slow, 'submission');
      await c.starttls();
      await c.ehlo();
      const t0 = Date.now();
      const r = await c.authPlain('john.smith', 'wrong');
      const waited = Date.now() - t0;
      assert.equal(r.code, 535);
      assert.ok(waited >= 580, `answered after ${waited} ms`);
      const t1 = Date.now();
      assert.equal((await c.authPlain('john.smith', PASSWORD)).code, 235);
      assert.ok(Date.now() - t1 < 500, 'a good password is not delayed');
      c.close();
    } finally {
      await slow.close();
    }
  });
});

describe('port 465 (implicit TLS)', () => {
  test('speaks TLS from the first byte and greets with the hostname', async () => {
    const c = await RawSmtp.connect(server.ports.smtps, { tls: true });
    try {
      assert.match(c.greeting.text, /^mx\.example\.com ESMTP\b/);
      const { keywords } = await c.ehlo();
      assert.ok(!keywords.includes('STARTTLS'), 'no STARTTLS inside TLS');
      assert.ok(keywords.includes('AUTH PLAIN LOGIN'));
      assert.equal((await c.command('STARTTLS')).code, 503);
      assert.equal((await c.command('MAIL FROM:<john@example.com>')).code, 530);
    } finally {
      c.close();
    }
  });

  test('refuses a client that does not start with TLS', async () => {
    const c = await new Promise<string>((resolve) => {
      // A plain-text client sees no greeting: the server waits for a ClientHello and drops the connection.
      const s = tlsConnect({ host: '127.0.0.1', port: server.ports.smtps, rejectUnauthorized: false });
      s.on('secureConnect', () => {
        resolve('tls');
        s.destroy();
      });
      s.on('error', () => resolve('error'));
    });
    assert.equal(c, 'tls', 'sanity: TLS works');
    const plain = await RawSmtp.connect(server.ports.smtps, { timeoutMs: 300 }).then(
      () => 'greeted',
      () => 'no greeting',
    );
    assert.equal(plain, 'no greeting');
  });

  test('accepts a message from an authenticated user (nodemailer secure: true)', async () => {
    const info = await transport(server, 'smtps', { user: 'mario.rossi', pass: PASSWORD }).sendMail({
      from: 'mario@example.com',
      to: 'anna@example.com',
      subject: 'over 465',
      text: 'implicit TLS',
    });
    queueIdOf(info.response);
    const [mail] = await server.waitForMail('anna.bianchi');
    assert.match(mail, /^Subject: over 465\r$/m);
  });
});

describe('the sender of an authenticated user (smtp.senderMustMatchLogin)', () => {
  test('allows the own addresses and those of the groups the user belongs to', async () => {
    const c = await submissionClient(server);
    try {
      for (const from of ['john@example.com', 'js@example.com', 'john.smith@example.com', 'J.Smith@Example.COM', 'sales@example.com', 'all@example.com']) {
        const r = await c.command(`MAIL FROM:<${from}>`);
        assert.equal(r.code, 250, `${from}: ${r.raw}`);
        assert.equal((await c.command('RSET')).code, 250);
      }
      // The null reverse-path (bounces, receipts) is not an address anyone owns.
      assert.equal((await c.command('MAIL FROM:<>')).code, 250);
    } finally {
      c.close();
    }
  });

  test("refuses another user's address, a group the user is not in and a remote address with 553 5.7.1", async () => {
    const c = await submissionClient(server);
    try {
      for (const from of ['laura.verdi@example.com', 'support@example.com', 'it@example.com', 'boss@other.example', 'nobody@example.com']) {
        const r = await c.command(`MAIL FROM:<${from}>`);
        assert.equal(r.code, 553, `${from}: ${r.raw}`);
        assert.match(r.text, /^5\.7\.1 /);
      }
    } finally {
      c.close();
    }
  });

  test('allows a pseudonym of the user (postern address add), and refuses it to anyone else', async (t) => {
    const { settings } = server.core;
    settings.addPseudonym({ localPart: 'director', domains: ['example.com'], target: { kind: 'user', name: 'john.smith' } });
    t.after(() => settings.removePseudonym('director'));
    const john = await submissionClient(server);
    try {
      assert.equal((await john.command('MAIL FROM:<director@example.com>')).code, 250);
    } finally {
      john.close();
    }
    const laura = await submissionClient(server, { user: 'laura.verdi', pass: PASSWORD });
    try {
      assert.equal((await laura.command('MAIL FROM:<director@example.com>')).code, 553);
    } finally {
      laura.close();
    }
  });

  test('allows any sender when smtp.senderMustMatchLogin is off', async (t) => {
    server.core.settings.set('smtp.senderMustMatchLogin', false);
    t.after(() => server.core.settings.set('smtp.senderMustMatchLogin', true));
    const c = await submissionClient(server);
    try {
      const r = await sendRaw(c, 'boss@other.example', ['paolo.neri@example.com'], message('any sender'));
      assert.equal(r.code, 250, r.raw);
    } finally {
      c.close();
    }
    const [mail] = await server.waitForMail('paolo.neri');
    assert.match(mail, /^Return-Path: <boss@other\.example>\r$/m);
  });
});

describe('TLS certificate', () => {
  test('uses the configured certificate', async () => {
    const cert = await new Promise<X509Certificate>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: server.ports.smtps, rejectUnauthorized: false }, () => {
        resolve(s.getPeerX509Certificate()!);
        s.destroy();
      });
      s.on('error', reject);
    });
    const configured = new X509Certificate(readFileSync(join(import.meta.dirname, '../fixtures/tls/localhost.crt')));
    assert.equal(cert.fingerprint256, configured.fingerprint256);
  });

  test('makes a self-signed certificate for the hostname when none is configured, and keeps it across restarts', async () => {
    const peerCert = async (port: number) =>
      new Promise<X509Certificate>((resolve, reject) => {
        const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
          resolve(s.getPeerX509Certificate()!);
          s.destroy();
        });
        s.on('error', reject);
      });
    const first = await startTestServer({ listeners: { smtp: false, submission: false, smtps: { port: 0, host: '127.0.0.1' }, imap: false, imaps: false, pop3: false, pop3s: false, admin: false, http: false, https: false, managesieve: false } });
    let fingerprint: string;
    try {
      const cert = await peerCert(first.ports.smtps);
      assert.match(cert.subject, /CN=mx\.example\.com/);
      assert.equal(cert.issuer, cert.subject, 'self-signed');
      assert.ok(existsSync(join(first.dataDir, 'tls', 'selfsigned-cert.pem')));
      fingerprint = cert.fingerprint256;
    } finally {
      await first.close();
    }
    const second = await startTestServer({
      dataDir: first.dataDir,
      listeners: { smtp: false, submission: false, smtps: { port: 0, host: '127.0.0.1' }, imap: false, imaps: false, pop3: false, pop3s: false, admin: false, http: false, https: false, managesieve: false },
    });
    try {
      assert.equal((await peerCert(second.ports.smtps)).fingerprint256, fingerprint, 'the same pair after a restart');
    } finally {
      await second.close();
    }
  });
});

describe('swaks', () => {
  // swaks is what `npm start` tells the user to send with: a machine without it fails here, naming the package.
  before(() => ensureDebianPackages([CLIENT_PACKAGES.swaks]));
  const common = (port: number) => ['--server', '127.0.0.1', '--port', String(port), '--helo', 'client.example.net', '--from', 'john@example.com'];

  test('submits on 587 with STARTTLS and AUTH LOGIN', async () => {
    const r = await swaks([
      ...common(server.ports.submission),
      '--to', 'it.tech@example.com', '--tls', '--auth', 'LOGIN', '--auth-user', 'john.smith', '--auth-password', PASSWORD,
      '--header', 'Subject: swaks on 587',
    ]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /<~\s+250 2\.0\.0 Ok: queued as [0-9A-Z]+/);
    const mails = await server.waitForMail('it.tech');
    assert.ok(mails.some((m) => m.includes('Subject: swaks on 587')));
  });

  test('submits on 465 with implicit TLS and AUTH PLAIN', async () => {
    const r = await swaks([
      ...common(server.ports.smtps),
      '--to', 'it.tech@example.com', '--tls-on-connect', '--auth', 'PLAIN', '--auth-user', 'john.smith', '--auth-password', PASSWORD,
      '--header', 'Subject: swaks on 465',
    ]);
    assert.equal(r.code, 0, r.out);
    await server.waitForMail('it.tech', 2);
  });

  test('cannot authenticate on 587 without TLS', async () => {
    const r = await swaks([...common(server.ports.submission), '--to', 'it.tech@example.com', '--auth', 'LOGIN', '--auth-user', 'john.smith', '--auth-password', PASSWORD]);
    assert.notEqual(r.code, 0, r.out);
  });
});
