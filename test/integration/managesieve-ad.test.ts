/**
 * ManageSieve against the Samba AD DC (CORP.EXAMPLE, fixtures/ad/corp.ldif), issue 15: a whole postern server
 * (in-process, port 0) whose directory is the real AD over LDAPS. An AD user's password is checked by AD itself;
 * the scripts land in the home of the mailbox keyed to the AD object (the directory SMTP delivery fills); disabled,
 * locked, must-change and unknown accounts get one and the same refusal; sieve-connect works as an AD user.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTransport } from 'nodemailer';
import { parseConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/lib/logger.ts';
import { startServer, type Server } from '../../src/server.ts';
import { userOwner } from '../../src/store/types.ts';
import { execChild } from '../harness/children.ts';
import { CLIENT_PACKAGES, ensureDebianPackages } from '../harness/packages.ts';
import { adDirectory, haveAd, ROOT } from '../helpers/cli.ts';
import { literal, RawManageSieve, saslPlain } from '../helpers/raw-managesieve.ts';
import { waitFor } from '../helpers/wait.ts';
import { logCapture } from '../protocol/smtp-env.ts';

const skip = haveAd('AD') ? false : 'needs the Samba DCs: run through test/run.ts';
const PASSWORD = 'Corp!Passw0rd';
const CERT = join(ROOT, 'test/fixtures/tls/localhost.crt');
const KEY = join(ROOT, 'test/fixtures/tls/localhost.key');

describe('ManageSieve with Active Directory logins', { skip, timeout: 300_000 }, () => {
  let server: Server;
  let dataDir: string;
  let lines: Record<string, unknown>[] = [];

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'postern-managesieve-ad-'));
    const capture = logCapture();
    const stream = capture.stream;
    lines = capture.lines;
    const listener = { port: 0, host: '127.0.0.1' };
    const off = false as const;
    const config = parseConfig(
      {
        hostname: 'mx.example.com',
        dataDir,
        directory: adDirectory('AD'),
        tls: { cert: CERT, key: KEY },
        listeners: { smtp: listener, submission: off, smtps: off, imap: off, imaps: off, pop3: off, pop3s: off, admin: off, http: off, https: off, managesieve: listener },
        queue: { retryMinSeconds: 0.2, retryMaxSeconds: 1, scanIntervalSeconds: 0.2 },
        auth: { failureDelayMs: 0 },
      },
      '(test)',
      ROOT,
    );
    server = await startServer(config, createLogger('info', stream));
    server.core.settings.setMany({ 'filter.antivirus': false, 'filter.spam': false });
    for (const name of ['example.com', 'example.org', 'corp.example']) if (!server.core.settings.getDomain(name)) server.core.settings.addDomain({ name, type: 'local' });
  });

  after(async () => {
    await server?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  async function session(): Promise<RawManageSieve> {
    const c = await RawManageSieve.connect(server.ports.managesieve!);
    await c.response();
    await c.starttls();
    return c;
  }

  it('an AD user stores and activates a script in the home of the mailbox SMTP delivers to', async () => {
    const c = await session();
    assert.match((await c.cmd(`AUTHENTICATE "PLAIN" "${saslPlain('john.smith', PASSWORD)}"`)).status, /^OK/);
    const script = 'require ["fileinto"];\r\nif header :contains "Subject" "[list]" { fileinto "Lists"; }\r\n';
    assert.match((await c.cmd(`PUTSCRIPT "lists" ${literal(script)}`)).status, /^OK/);
    assert.match((await c.cmd('SETACTIVE "lists"')).status, /^OK/);
    assert.match((await c.cmd('LOGOUT')).status, /^OK/);
    // Mail for john lands in the Maildir of his AD object (objectGUID, issue 13); the scripts sit beside it.
    const t = createTransport({ host: '127.0.0.1', port: server.ports.smtp!, ignoreTLS: true, name: 'mta.outside.example' });
    try {
      await t.sendMail({ from: 'sender@outside.example', to: 'john@example.com', subject: 'hello', text: 'hi' });
    } finally {
      t.close();
    }
    const john = await server.core.directory.findLogin('john.smith');
    assert.ok(john?.guid, 'AD gives john an objectGUID');
    const maildir = server.store.maildirPath(userOwner(john));
    await waitFor('the message in john\'s Maildir', () => existsSync(join(maildir, 'new')), { timeoutMs: 30_000 });
    const home = dirname(maildir);
    assert.equal(server.store.homePath(userOwner(john)), home);
    assert.equal(readlinkSync(join(home, '.dovecot.sieve')), 'sieve/lists.sieve');
    assert.equal(readFileSync(join(home, 'sieve', 'lists.sieve'), 'utf8'), script);
    const login = lines.find((l) => l.component === 'managesieve' && l.result === 'ok' && l.user === 'john.smith');
    assert.equal(login?.protocol, 'managesieve');
    await waitFor('the logout line', () => lines.find((l) => l.component === 'managesieve' && l.msg === 'logout john.smith'));
  });

  it('wrong password, unknown, disabled, locked and must-change accounts all get the same NO', async () => {
    const c = await session();
    const attempts: [string, string][] = [
      ['john.smith', 'wrong-password'],
      ['no.such.user', PASSWORD],
      ['old.employee', PASSWORD],
    ];
    for (const [login, password] of attempts) {
      assert.equal((await c.cmd(`AUTHENTICATE "PLAIN" "${saslPlain(login, password)}"`)).status, 'NO "Authentication failed"', login);
    }
    // The third failure closes the session; the next ones on a new connection.
    assert.match((await c.response()).status, /^BYE/);
    const d = await session();
    for (const login of ['locked.user', 'new.hire']) {
      assert.equal((await d.cmd(`AUTHENTICATE "PLAIN" "${saslPlain(login, PASSWORD)}"`)).status, 'NO "Authentication failed"', login);
    }
    d.close();
    const refused = lines.filter((l) => l.component === 'managesieve' && typeof l.msg === 'string' && l.msg.endsWith('failed'));
    assert.deepEqual(
      new Map(refused.map((l) => [l.user, l.result])),
      new Map([
        ['john.smith', 'invalid'],
        ['no.such.user', 'invalid'],
        ['old.employee', 'disabled'],
        ['locked.user', 'disabled'],
        ['new.hire', 'disabled'],
      ]),
      'the log tells the admin why; the client was told the same for all',
    );
  });

  it('sieve-connect logs in as an AD user over STARTTLS and uploads, lists and activates', { timeout: 180_000 }, async (t) => {
    await ensureDebianPackages([CLIENT_PACKAGES.sieveConnect]);
    const work = mkdtempSync(join(tmpdir(), 'postern-sieve-connect-ad-'));
    t.after(() => rmSync(work, { recursive: true, force: true }));
    const local = join(work, 'away.sieve');
    writeFileSync(local, 'require ["vacation"];\nvacation :days 1 "Out of office.";\n');
    const base = ['--server', '127.0.0.1', '--port', String(server.ports.managesieve), '--user', 'anna.bianchi', '--passwordfd', '0', '--notlsverify', '--noclearauth'];
    const sc = (...args: string[]) => execChild('sieve-connect', [...base, ...args], { input: `${PASSWORD}\n`, timeout: 60_000 });
    await sc('--upload', '--localsieve', local, '--remotesieve', 'away');
    await sc('--activate', '--remotesieve', 'away');
    assert.match((await sc('--list')).stdout, /away"?\s+ACTIVE/);
    const anna = await server.core.directory.findLogin('anna.bianchi');
    assert.ok(anna);
    assert.equal(readlinkSync(join(server.store.homePath(userOwner(anna)), '.dovecot.sieve')), 'sieve/away.sieve');
  });
});
