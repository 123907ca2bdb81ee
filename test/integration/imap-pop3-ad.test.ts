/**
 * IMAP and POP3 with real clients against the Samba AD DC (CORP.EXAMPLE, fixtures/ad/corp.ldif), issue 5 "Done
 * means": a whole postern server (in-process, port 0, the test certificate test/fixtures/tls/localhost.crt) whose
 * directory is the real AD over LDAPS, groupDelivery shared. Mail goes in over SMTP and comes out with
 *   - mbsync (isync): john.smith's INBOX into a local Maildir, over STARTTLS and over implicit TLS;
 *   - fetchmail: anna's mail over POP3 with STLS and over POP3S;
 *   - curl: a message over imap:// with --ssl-reqd and imaps://, the `support` shared folder as paolo.neri, the
 *     master user (john.smith*admin) reading john's INBOX, a disabled AD user refused (IMAP NO, POP3 -ERR);
 *   - raw sockets: LOGIN / USER before STARTTLS / STLS refused;
 *   - imapflow: moving into Junk teaches spamd only for members of `spamtrainers` (when the driver's spamd runs).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { createTransport } from 'nodemailer';
import { parseConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/lib/logger.ts';
import { startServer, type Server } from '../../src/server.ts';
import { CLIENT_PACKAGES, ensureDebianPackages } from '../harness/packages.ts';
import { runChild } from '../harness/children.ts';
import { adDirectory, haveAd, ROOT } from '../helpers/cli.ts';
import { LineClient } from '../helpers/line-client.ts';
import { logCapture } from '../protocol/smtp-env.ts';

const skip = haveAd('AD') ? false : 'needs the Samba DCs: run through test/run.ts';
const DOMAINS = ['example.com', 'example.org', 'corp.example'];
const PASSWORD = 'Corp!Passw0rd';
const CERT = join(ROOT, 'test/fixtures/tls/localhost.crt');
const KEY = join(ROOT, 'test/fixtures/tls/localhost.key');
const SPAMD_PORT = process.env.POSTERN_TEST_SPAMD_PORT;
const SPAMD_HOST = process.env.POSTERN_TEST_SPAMD_HOST ?? '127.0.0.1';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- the server, with its log lines captured ------------------------------------------------------------------

interface Env {
  server: Server;
  dataDir: string;
  work: string;
  lines: Record<string, unknown>[];
}

async function start(): Promise<Env> {
  const dataDir = mkdtempSync(join(tmpdir(), 'postern-imap-ad-'));
  const work = mkdtempSync(join(tmpdir(), 'postern-clients-'));
  const { stream, lines } = logCapture();
  const listener = { port: 0, host: '127.0.0.1' };
  const config = parseConfig(
    {
      hostname: 'mx.example.com',
      dataDir,
      directory: adDirectory('AD', { groupDelivery: 'shared' }),
      tls: { cert: CERT, key: KEY },
      listeners: { smtp: listener, submission: listener, smtps: listener, imap: listener, imaps: listener, pop3: listener, pop3s: listener, admin: false, http: false, https: false, managesieve: false },
      queue: { retryMinSeconds: 0.2, retryMaxSeconds: 1, scanIntervalSeconds: 0.2 },
      auth: { failureDelayMs: 0 },
      ...(SPAMD_PORT ? { spamassassin: { host: SPAMD_HOST, port: Number(SPAMD_PORT) } } : {}),
    },
    '(test)',
    ROOT,
  );
  const server = await startServer(config, createLogger('info', stream));
  // Filters off (as startTestServer has it): this file is about reading mail, not scanning it.
  server.core.settings.setMany({ 'filter.antivirus': false, 'filter.spam': false });
  for (const name of DOMAINS) if (!server.core.settings.getDomain(name)) server.core.settings.addDomain({ name, type: 'local' });
  return { server, dataDir, work, lines };
}

async function send(env: Env, to: string, subject: string, body = `body of ${subject}`): Promise<void> {
  const t = createTransport({ host: '127.0.0.1', port: env.server.ports.smtp!, ignoreTLS: true, name: 'mta.outside.example' });
  try {
    await t.sendMail({ from: 'sender@outside.example', to, subject, text: body });
  } finally {
    t.close();
  }
}

/** Waits until the owner's folder holds a message with this subject (in new/ or cur/). */
async function waitForSubject(env: Env, owner: string, subject: string, folder = 'INBOX', ms = 10_000): Promise<void> {
  const o = owner.startsWith('shared:') ? ({ kind: 'shared', group: owner.slice(7) } as const) : ({ kind: 'user', login: owner } as const);
  const deadline = Date.now() + ms;
  for (;;) {
    // Asked each time: a user's mailbox directory is named at its first delivery (the mailbox registry, by
    // objectGUID), which may come after this wait began; before it, folderPath names the login's directory.
    const dir = env.server.store.folderPath(o, folder);
    for (const sub of ['new', 'cur']) {
      const d = join(dir, sub);
      if (!existsSync(d)) continue;
      for (const f of readdirSync(d)) if (readFileSync(join(d, f), 'utf8').includes(`\r\nSubject: ${subject}\r\n`)) return;
    }
    if (Date.now() > deadline) throw new Error(`${owner}/${folder}: no message "${subject}" after ${ms} ms`);
    await sleep(25);
  }
}

async function waitForLine(env: Env, pred: (l: Record<string, unknown>) => boolean, what: string, ms = 15_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const hit = env.lines.find(pred);
    if (hit) return hit;
    if (Date.now() > deadline) throw new Error(`log line not seen within ${ms} ms: ${what}`);
    await sleep(50);
  }
}

// ---- running the real clients ---------------------------------------------------------------------------------

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** A client (curl, mbsync, fetchmail) in its own process group, killed after timeoutMs (test/harness/children.ts). */
async function run(cmd: string, args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<Run> {
  const r = await runChild(cmd, args, { env: { ...process.env, ...opts.env }, timeoutMs: opts.timeoutMs ?? 60_000 });
  return { code: r.code ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function curl(args: string[]): Promise<Run> {
  return run('curl', ['--silent', '--show-error', '--max-time', '20', '--cacert', CERT, ...args]);
}

/** Files of a local Maildir folder (new/ and cur/), read as text. */
function localMaildir(dir: string): string[] {
  const out: string[] = [];
  for (const sub of ['new', 'cur']) {
    const d = join(dir, sub);
    if (existsSync(d)) for (const f of readdirSync(d)) out.push(readFileSync(join(d, f), 'utf8'));
  }
  return out;
}

// ---- the tests ------------------------------------------------------------------------------------------------

describe('IMAP and POP3 with real clients, users from the Samba AD', { skip }, () => {
  let env: Env;
  before(async () => {
    // The real clients this file drives; missing ones fail here with the package named, never a skip.
    await ensureDebianPackages([CLIENT_PACKAGES.mbsync, CLIENT_PACKAGES.fetchmail, CLIENT_PACKAGES.curl]);
    env = await start();
  });
  after(async () => {
    await env?.server.close();
    if (env) {
      rmSync(env.dataDir, { recursive: true, force: true });
      rmSync(env.work, { recursive: true, force: true });
    }
  });

  describe('mbsync', () => {
    for (const mode of ['STARTTLS', 'IMAPS'] as const) {
      it(`syncs john.smith's INBOX into a local Maildir (${mode})`, async () => {
        const subject = `mbsync ${mode} ${randomUUID()}`;
        await send(env, 'john@example.com', subject);
        await waitForSubject(env, 'john.smith', subject);
        const dir = join(env.work, `mbsync-${mode}`);
        mkdirSync(join(dir, 'local'), { recursive: true });
        const rc = join(dir, 'mbsyncrc');
        writeFileSync(
          rc,
          [
            'IMAPAccount john',
            // isync 1.4 matches the certificate's DNS names only (not its IP SAN): connect by name.
            'Host localhost',
            `Port ${mode === 'IMAPS' ? env.server.ports.imaps : env.server.ports.imap}`,
            'User john.smith',
            `Pass "${PASSWORD}"`,
            `SSLType ${mode}`, // isync 1.4 (Debian 12) spells it SSLType; 1.5 renamed it TLSType
            'SystemCertificates no',
            `CertificateFile ${CERT}`,
            '',
            'IMAPStore john-remote',
            'Account john',
            '',
            'MaildirStore john-local',
            `Path ${join(dir, 'local')}/`,
            `Inbox ${join(dir, 'local', 'INBOX')}`,
            '',
            'Channel john',
            'Far :john-remote:',
            'Near :john-local:',
            'Patterns INBOX',
            'Create Near',
            'Sync Pull',
            `SyncState ${join(dir, 'state')}/`,
            '',
          ].join('\n'),
        );
        mkdirSync(join(dir, 'state'));
        chmodSync(rc, 0o600);
        const r = await run('mbsync', ['-c', rc, '-V', 'john'], { env: { HOME: dir } });
        assert.equal(r.code, 0, `mbsync failed:\n${r.stdout}\n${r.stderr}`);
        const mails = localMaildir(join(dir, 'local', 'INBOX'));
        assert.ok(
          mails.some((m) => m.includes(`Subject: ${subject}`)),
          `the message is in the local Maildir (${mails.length} files)\n${r.stdout}`,
        );
        assert.ok(mails.every((m) => /^Return-Path: /m.test(m) || /^Delivered-To: /m.test(m)), 'whole messages with the delivery headers');
      });
    }
  });

  describe('fetchmail over POP3', () => {
    for (const mode of ['STLS', 'POP3S'] as const) {
      it(`fetches anna's message (${mode})`, async () => {
        const subject = `fetchmail ${mode} ${randomUUID()}`;
        await send(env, 'anna@example.com', subject);
        await waitForSubject(env, 'anna.bianchi', subject);
        const dir = join(env.work, `fetchmail-${mode}`);
        mkdirSync(dir, { recursive: true });
        const out = join(dir, 'mbox');
        const rc = join(dir, 'fetchmailrc');
        writeFileSync(
          rc,
          [
            'set no syslog',
            `poll 127.0.0.1 with proto POP3 service ${mode === 'POP3S' ? env.server.ports.pop3s : env.server.ports.pop3}`,
            // `ssl` = implicit TLS; sslproto without ssl = STLS, and fetchmail then refuses to go on without it.
            `  user "anna.bianchi" there with password "${PASSWORD}" is "anna" here`,
            mode === 'POP3S' ? '  ssl sslproto "tls1.2+"' : '  sslproto "tls1.2+"',
            '  no sslcertck',
            '  fetchall',
            `  mda "cat >> ${out}"`,
            '',
          ].join('\n'),
        );
        chmodSync(rc, 0o600);
        const r = await run('fetchmail', ['-f', rc, '-v', '--nodetach', '--pidfile', join(dir, 'pid')], { env: { HOME: dir, FETCHMAILHOME: dir } });
        assert.equal(r.code, 0, `fetchmail failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
        const log = r.stdout + r.stderr;
        if (mode === 'STLS') assert.match(log, /STLS/, 'fetchmail upgraded with STLS');
        assert.ok(existsSync(out), `the MDA got mail\n${log}`);
        assert.match(readFileSync(out, 'utf8'), new RegExp(`Subject: ${subject}`));
        // Fetched without `keep`: DELE, then QUIT removed it from the server.
        const inbox = await env.server.mailbox.openFolder({ kind: 'user', login: 'anna.bianchi' }, 'INBOX');
        assert.equal(inbox.messages.length, 0, 'deleted on the server after the fetch');
      });
    }
  });

  describe('curl', () => {
    it('fetches a message over imap:// with --ssl-reqd (STARTTLS) and over imaps://', async () => {
      const subject = `curl ${randomUUID()}`;
      await send(env, 'laura.verdi@example.com', subject);
      await waitForSubject(env, 'laura.verdi', subject);
      const uid = (await env.server.mailbox.openFolder({ kind: 'user', login: 'laura.verdi' }, 'INBOX')).messages.at(-1)!.uid;
      const user = `laura.verdi:${PASSWORD}`;
      const plain = await curl(['--ssl-reqd', '-u', user, `imap://127.0.0.1:${env.server.ports.imap}/INBOX;UID=${uid}`]);
      assert.equal(plain.code, 0, plain.stderr);
      assert.match(plain.stdout, new RegExp(`Subject: ${subject}`));
      const secure = await curl(['-u', user, `imaps://127.0.0.1:${env.server.ports.imaps}/INBOX;UID=${uid}`]);
      assert.equal(secure.code, 0, secure.stderr);
      assert.equal(secure.stdout, plain.stdout, 'the same bytes both ways');
      // And the folder list (LIST "" *) with the special-use folders.
      const list = await curl(['-u', user, `imaps://127.0.0.1:${env.server.ports.imaps}/`]);
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, /\\Junk/);
    });

    it("lists and reads the support group's shared folder as paolo.neri (member)", async () => {
      const subject = `ticket ${randomUUID()}`;
      await send(env, 'support@example.com', subject);
      await waitForSubject(env, 'shared:support', subject);
      const user = `paolo.neri:${PASSWORD}`;
      const list = await curl(['-u', user, `imaps://127.0.0.1:${env.server.ports.imaps}/`]);
      assert.equal(list.code, 0, list.stderr);
      const line = list.stdout.split(/\r?\n/).find((l) => /Shared.support"?$/i.test(l));
      assert.ok(line, `Shared/support listed:\n${list.stdout}`);
      const search = await curl(['-u', user, '-X', `UID SEARCH SUBJECT "${subject}"`, `imaps://127.0.0.1:${env.server.ports.imaps}/Shared/support`]);
      assert.equal(search.code, 0, search.stderr);
      const uid = /\* SEARCH (\d+)/.exec(search.stdout)?.[1];
      assert.ok(uid, `found in the shared folder: ${search.stdout}`);
      const fetched = await curl(['--ssl-reqd', '-u', user, `imap://127.0.0.1:${env.server.ports.imap}/Shared/support;UID=${uid}`]);
      assert.equal(fetched.code, 0, fetched.stderr);
      assert.match(fetched.stdout, new RegExp(`Subject: ${subject}`));
      // laura.verdi is not in support: no shared folder of it.
      const other = await curl(['-u', `laura.verdi:${PASSWORD}`, `imaps://127.0.0.1:${env.server.ports.imaps}/`]);
      assert.equal(other.code, 0, other.stderr);
      assert.doesNotMatch(other.stdout, /Shared.support/i);
    });

    it("the master user john.smith*admin reads john's INBOX (when mailbox.masterUser is on)", async () => {
      const subject = `master ${randomUUID()}`;
      await send(env, 'john@example.com', subject);
      await waitForSubject(env, 'john.smith', subject);
      const url = `imaps://127.0.0.1:${env.server.ports.imaps}/INBOX`;
      const master = 'john.smith*admin:Adm1n!Secret';
      env.server.core.settings.set('mailbox.masterUser', false);
      const off = await curl(['-u', master, '-X', `UID SEARCH SUBJECT "${subject}"`, url]);
      assert.equal(off.code, 67, `refused while the option is off: ${off.code} ${off.stderr}`);
      env.server.core.settings.set('mailbox.masterUser', true);
      try {
        const search = await curl(['-u', master, '-X', `UID SEARCH SUBJECT "${subject}"`, url]);
        assert.equal(search.code, 0, search.stderr);
        const uid = /\* SEARCH (\d+)/.exec(search.stdout)?.[1];
        assert.ok(uid, `john's message found by the master user: ${search.stdout}`);
        const fetched = await curl(['-u', master, `${url};UID=${uid}`]);
        assert.equal(fetched.code, 0, fetched.stderr);
        assert.match(fetched.stdout, new RegExp(`Subject: ${subject}`));
        assert.match(fetched.stdout, /^Delivered-To: john@example.com\r$/m);
        // A wrong admin password is still a wrong password.
        const wrong = await curl(['-u', 'john.smith*admin:nope', url]);
        assert.equal(wrong.code, 67);
      } finally {
        env.server.core.settings.set('mailbox.masterUser', false);
      }
    });

    it('a disabled AD user (old.employee) cannot log in: IMAP NO, POP3 -ERR', async () => {
      const user = `old.employee:${PASSWORD}`;
      const imap = await curl(['-v', '-u', user, `imaps://127.0.0.1:${env.server.ports.imaps}/INBOX`]);
      assert.equal(imap.code, 67, `curl: login denied (${imap.code})`);
      assert.match(imap.stderr, /^< \S+ NO /m, imap.stderr);
      const pop = await curl(['-v', '-u', user, `pop3s://127.0.0.1:${env.server.ports.pop3s}/`]);
      assert.equal(pop.code, 67, `curl: login denied (${pop.code})`);
      assert.match(pop.stderr, /^< -ERR/m, pop.stderr);
      // The same user's password is right: the account state, not the password, is what refuses.
      const fine = await curl(['-u', `paolo.neri:${PASSWORD}`, `pop3s://127.0.0.1:${env.server.ports.pop3s}/`]);
      assert.equal(fine.code, 0, fine.stderr);
    });
  });

  describe('cleartext', () => {
    it('IMAP LOGIN before STARTTLS is refused (LOGINDISABLED)', async () => {
      const c = await LineClient.open(env.server.ports.imap!);
      try {
        const greeting = await c.until(/^\* OK/);
        assert.match(greeting.join('\n'), /LOGINDISABLED|STARTTLS/);
        c.send('a1 CAPABILITY');
        const caps = await c.until(/^a1 /);
        assert.match(caps.join('\n'), /LOGINDISABLED/);
        assert.match(caps.join('\n'), /STARTTLS/);
        c.send(`a2 LOGIN john.smith "${PASSWORD}"`);
        const [reply] = (await c.until(/^a2 /)).slice(-1);
        assert.match(reply!, /^a2 NO \[PRIVACYREQUIRED\]/);
        c.send('a3 AUTHENTICATE PLAIN ' + Buffer.from(`\0john.smith\0${PASSWORD}`).toString('base64'));
        const [auth] = (await c.until(/^a3 /)).slice(-1);
        assert.match(auth!, /^a3 (NO|BAD)/);
      } finally {
        c.close();
      }
    });

    it('POP3 USER/PASS before STLS is refused', async () => {
      const c = await LineClient.open(env.server.ports.pop3!);
      try {
        await c.until(/^\+OK/);
        c.send('CAPA');
        const caps = await c.until(/^\.$/);
        assert.ok(caps.includes('STLS'));
        c.send('USER anna.bianchi');
        const [reply] = await c.until(/^[-+]/);
        assert.match(reply!, /^-ERR/);
      } finally {
        c.close();
      }
    });
  });

  it("Junk retention: spam older than the user's hold period is expunged, and an IMAP session on Junk hears it", async () => {
    const owner = { kind: 'user', login: 'mario.rossi' } as const;
    const settings = env.server.core.settings;
    settings.set('mailbox.spamRetentionDays', 30);
    settings.setUser('mario.rossi', { spamRetentionDays: 5 }); // the per-user override wins over the global 30
    const c = new ImapFlow({ host: '127.0.0.1', port: env.server.ports.imaps!, secure: true, tls: { ca: readFileSync(CERT) }, auth: { user: 'mario.rossi', pass: PASSWORD }, logger: false });
    await c.connect();
    try {
      await c.list();
      const raw = (s: string) => Buffer.from(`From: spammer@outside.example\r\nTo: mario@example.com\r\nSubject: ${s}\r\n\r\nspam\r\n`);
      const old = await c.append('Junk', raw('ten days old'), [], new Date(Date.now() - 10 * 24 * 3600 * 1000));
      await c.append('Junk', raw('two days old'), [], new Date(Date.now() - 2 * 24 * 3600 * 1000));
      assert.ok(old && old.uid);
      await c.mailboxOpen('Junk');
      const expunged = new Promise<void>((resolve) => c.on('expunge', () => resolve()));
      const result = await env.server.retention.sweep();
      assert.deepEqual(
        result.removed.filter((r) => r.owner === 'mario.rossi').map((r) => [r.folder, r.uids]),
        [['Junk', [old.uid]]],
      );
      await c.noop();
      await Promise.race([expunged, sleep(5000).then(() => assert.fail('no EXPUNGE reached the session'))]);
      const left = await env.server.mailbox.openFolder(owner, 'Junk');
      assert.equal(left.messages.length, 1);
      const line = env.lines.find((l) => l.owner === 'mario.rossi' && l.msg === 'junk retention: expunged spam older than the hold period');
      assert.ok(line);
      assert.equal(line.component, 'store');
      assert.equal(line.retentionDays, 5);
    } finally {
      settings.setUser('mario.rossi', { spamRetentionDays: null });
      await c.logout();
    }
  });

  describe('spam training by moving into Junk', { skip: SPAMD_PORT ? false : 'POSTERN_TEST_SPAMD_PORT not set' }, () => {
    function imap(user: string) {
      return new ImapFlow({
        host: '127.0.0.1',
        port: env.server.ports.imaps!,
        secure: true,
        tls: { ca: readFileSync(CERT) },
        auth: { user, pass: PASSWORD },
        logger: false,
      });
    }

    async function moveToJunk(login: string, address: string, subject: string): Promise<void> {
      // A body of its own so that spamd's Bayes has never seen it.
      await send(env, address, subject, `Cheap watches ${randomUUID()} ${randomUUID()}\nlimited offer, click now ${randomUUID()}`);
      await waitForSubject(env, login, subject);
      const c = imap(login);
      await c.connect();
      try {
        await c.list(); // LIST creates the special-use folders of a new mailbox (Junk among them)
        await c.mailboxOpen('INBOX');
        const uids = await c.search({ subject }, { uid: true });
        assert.ok(uids && uids.length === 1, `one message "${subject}"`);
        const moved = await c.messageMove(uids, 'Junk', { uid: true });
        assert.ok(moved, 'moved');
      } finally {
        await c.logout();
      }
      await waitForSubject(env, login, subject, 'Junk');
    }

    it('john.smith (member of spamtrainers) teaches spamd', async () => {
      await moveToJunk('john.smith', 'john@example.com', `train ${randomUUID()}`);
      const line = await waitForLine(env, (l) => l.by === 'john.smith' && (l.msg === 'learned as spam' || l.msg === 'already known as spam'), 'john learned as spam');
      assert.equal(line.msg, 'learned as spam');
      assert.equal(line.learned, true);
    });

    it('laura.verdi (not a trainer) moving into Junk teaches nothing', async () => {
      await moveToJunk('laura.verdi', 'laura.verdi@example.com', `no train ${randomUUID()}`);
      // The learn hook drops it for a non-member, and the log says so instead of "taught spam".
      await waitForLine(env, (l) => l.user === 'laura.verdi' && l.msg === 'imap: not taught spam: not a member of spamtrainers', 'laura move noticed');
      assert.ok(!env.lines.some((l) => l.user === 'laura.verdi' && l.msg === 'imap: taught spam'), 'not logged as taught');
      assert.ok(!env.lines.some((l) => l.by === 'laura.verdi' && /spam/.test(String(l.msg))), 'no learn by laura.verdi');
      assert.ok(!env.lines.some((l) => l.user === 'laura.verdi' && l.msg === 'imap: spam training failed'));
    });
  });
});
