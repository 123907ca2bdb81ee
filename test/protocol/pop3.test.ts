/**
 * POP3 (RFC 1939, STLS RFC 2595, AUTH PLAIN RFC 5034) over raw sockets, implicit TLS, curl and fetchmail, against
 * the users of fixtures/ad/corp.ldif (embedded LDIF directory) and a real Maildir store.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { rawConnect, RawSocketClient } from '../helpers/raw-client.ts';
import { execChild } from '../harness/children.ts';
import { waitFor } from '../helpers/wait.ts';
import { pino } from 'pino';
import { Authenticator } from '../../src/auth/authenticator.ts';
import { FailureDelay } from '../../src/auth/failure-delay.ts';
import { authSchema } from '../../src/config/schema.ts';
import { LdifDirectory } from '../../src/directory/ldif/ldif-directory.ts';
import type { TlsMaterial } from '../../src/lib/tls.ts';
import { startPop3, type Pop3Service } from '../../src/pop3/server.ts';
import { MaildirMailbox } from '../../src/store/maildir-mailbox.ts';
import { MaildirStore } from '../../src/store/maildir.ts';
import type { MailboxOwner } from '../../src/store/types.ts';
import { CLIENT_PACKAGES, ensureDebianPackages } from '../harness/packages.ts';
import { ROOT } from '../helpers/cli.ts';

/** Clients (curl, fetchmail) in their own process group, killed after 60 s (test/harness/children.ts). */
const run = execChild;
const PASSWORD = 'Corp!Passw0rd';
const john: MailboxOwner = { kind: 'user', login: 'john.smith' };
const anna: MailboxOwner = { kind: 'user', login: 'anna.bianchi' };

// ---- a raw POP3 client ----------------------------------------------------------------------------------------

class RawPop3 extends RawSocketClient {
  static async connect(port: number, secure = false): Promise<RawPop3> {
    return new RawPop3(await rawConnect(port, { secure }));
  }

  async line(ms = 5000): Promise<string> {
    return this.physicalLine(Date.now() + ms, 'latin1');
  }

  async cmd(line: string): Promise<string> {
    this.send(`${line}\r\n`);
    return this.line();
  }

  /** A command whose +OK answer is multi-line: returns the first line and the body lines (still dot-stuffed). */
  async multi(line: string): Promise<{ first: string; lines: string[] }> {
    const first = await this.cmd(line);
    const lines: string[] = [];
    if (!first.startsWith('+OK')) return { first, lines };
    for (;;) {
      const l = await this.line();
      if (l === '.') return { first, lines };
      lines.push(l);
    }
  }

  async stls(): Promise<void> {
    const reply = await this.cmd('STLS');
    assert.match(reply, /^\+OK/);
    await this.upgrade();
  }
}

function plain(user: string, pass: string, authz = ''): string {
  return Buffer.from(`${authz}\0${user}\0${pass}`).toString('base64');
}

// ---- the server under test ------------------------------------------------------------------------------------

let dir: string;
let store: MaildirStore;
let mailbox: MaildirMailbox;
let plainPort: Pop3Service;
let securePort: Pop3Service;
let shortIdle: Pop3Service;
const settings = { 'mailbox.pop3': true, 'mailbox.allowUnencrypted': false };
const logLines: Record<string, unknown>[] = [];
const masterUser = { enabled: false };

function message(subject: string, body: string): Buffer {
  return Buffer.from(`From: bob@example.org\r\nTo: john@example.com\r\nSubject: ${subject}\r\n\r\n${body}\r\n`);
}

async function deliver(owner: MailboxOwner, subject: string, body = 'Hello.'): Promise<void> {
  await store.deliver(owner, message(subject, body), { prefix: 'Return-Path: <bob@example.org>\r\n' });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-pop3-'));
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n')) if (l) logLines.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    }),
  );
  const directory = LdifDirectory.fromFile(join(ROOT, 'fixtures/ad/corp.ldif'), { userPrincipalNameIsAddress: true });
  const auth = new Authenticator({
    directory,
    config: authSchema.parse({ failureDelayMs: 0 }),
    masterUserEnabled: () => masterUser.enabled,
    log,
    failureDelay: new FailureDelay({ baseMs: 0, maxMs: 0 }),
  });
  const tls: TlsMaterial = {
    cert: await readFile(join(ROOT, 'test/fixtures/tls/localhost.crt')),
    key: await readFile(join(ROOT, 'test/fixtures/tls/localhost.key')),
    source: 'test',
    selfSigned: true,
  };
  store = new MaildirStore({ root: join(dir, 'mail'), hostname: 'mx.example.com' });
  mailbox = new MaildirMailbox({ store, quotaBytes: () => 0, log });
  const common = { host: '127.0.0.1', tls, auth, mailbox, settings: { get: (k: keyof typeof settings) => settings[k] }, hostname: 'mx.example.com', log };
  plainPort = await startPop3({ ...common, port: 0, secure: false });
  securePort = await startPop3({ ...common, port: 0, secure: true });
  shortIdle = await startPop3({ ...common, port: 0, secure: false, idleTimeoutMs: 200 });
});

after(async () => {
  await Promise.all([plainPort.close(), securePort.close(), shortIdle.close()]);
  mailbox.close();
  await rm(dir, { recursive: true, force: true });
});

/** Deletes every message of an owner's INBOX so each test starts from what it delivers. */
async function emptyInbox(owner: MailboxOwner): Promise<void> {
  await mailbox.openFolder(owner, 'INBOX');
  const state = await mailbox.openFolder(owner, 'INBOX');
  await mailbox.expunge(owner, 'INBOX', state.messages.map((m) => m.uid));
}

async function loggedIn(secure: boolean, login = 'john.smith'): Promise<RawPop3> {
  const c = await RawPop3.connect(secure ? securePort.port : plainPort.port, secure);
  assert.match(await c.line(), /^\+OK/);
  if (!secure) await c.stls();
  assert.match(await c.cmd(`USER ${login}`), /^\+OK/);
  assert.match(await c.cmd(`PASS ${PASSWORD}`), /^\+OK/);
  return c;
}

// ---- tests ----------------------------------------------------------------------------------------------------

test('before STLS the plain port hides and refuses USER and AUTH; after STLS it offers them', async () => {
  const c = await RawPop3.connect(plainPort.port);
  assert.match(await c.line(), /^\+OK mx\.example\.com POP3 ready/);
  let capa = await c.multi('CAPA');
  assert.ok(capa.lines.includes('STLS'));
  assert.ok(!capa.lines.includes('USER'));
  assert.ok(!capa.lines.some((l) => l.startsWith('SASL')));
  assert.match(await c.cmd('USER john.smith'), /^-ERR \[AUTH\]/);
  assert.match(await c.cmd(`PASS ${PASSWORD}`), /^-ERR \[AUTH\]/);
  assert.match(await c.cmd(`AUTH PLAIN ${plain('john.smith', PASSWORD)}`), /^-ERR \[AUTH\]/);
  await c.stls();
  capa = await c.multi('CAPA');
  assert.ok(!capa.lines.includes('STLS'));
  assert.ok(capa.lines.includes('USER'));
  assert.ok(capa.lines.includes('SASL PLAIN'));
  assert.ok(capa.lines.includes('UIDL') && capa.lines.includes('TOP'));
  assert.match(await c.cmd('STLS'), /^-ERR/);
  assert.match(await c.cmd('QUIT'), /^\+OK/);
  await c.waitClosed();
});

test('commands pipelined behind STLS are discarded, not run after the handshake (CVE-2011-0411)', async () => {
  const c = await RawPop3.connect(plainPort.port);
  await c.line();
  c.send('STLS\r\nUSER john.smith\r\n');
  assert.match(await c.line(), /^\+OK/);
  await c.upgrade();
  // Had the injected USER been kept, PASS would log in.
  assert.match(await c.cmd(`PASS ${PASSWORD}`), /^-ERR USER first/);
  c.close();
});

test('a whole session after STLS with AUTH PLAIN (continuation): STAT, LIST, UIDL, TOP, RETR, DELE, RSET, QUIT', async () => {
  await emptyInbox(john);
  await deliver(john, 'one', 'First body.');
  await deliver(john, 'two', '.starts with a dot\r\n.\r\nline after a lone dot');
  await deliver(john, 'three', 'l1\r\nl2\r\nl3\r\nl4');
  const state = await mailbox.openFolder(john, 'INBOX');
  const sizes = state.messages.map((m) => m.size);

  const c = await RawPop3.connect(plainPort.port);
  await c.line();
  await c.stls();
  assert.equal(await c.cmd('AUTH PLAIN'), '+ ');
  assert.match(await c.cmd(plain('john.smith', PASSWORD)), /^\+OK maildrop has 3 messages/);
  assert.equal(await c.cmd('STAT'), `+OK 3 ${sizes[0]! + sizes[1]! + sizes[2]!}`);
  assert.deepEqual((await c.multi('LIST')).lines, sizes.map((s, i) => `${i + 1} ${s}`));
  assert.equal(await c.cmd('LIST 2'), `+OK 2 ${sizes[1]}`);
  assert.match(await c.cmd('LIST 9'), /^-ERR no such message/);
  assert.deepEqual(
    (await c.multi('UIDL')).lines,
    state.messages.map((m, i) => `${i + 1} ${state.uidValidity}.${m.uid}`),
  );
  assert.equal(await c.cmd('UIDL 1'), `+OK 1 ${state.uidValidity}.${state.messages[0]!.uid}`);

  const top = await c.multi('TOP 3 2');
  assert.deepEqual(top.lines.slice(-3), ['', 'l1', 'l2']);
  assert.ok(top.lines.includes('Subject: three'));
  const top0 = await c.multi('TOP 1 0');
  assert.equal(top0.lines.at(-1), '');
  assert.ok(!top0.lines.includes('First body.'));

  const retr = await c.multi('RETR 2');
  assert.equal(retr.first, `+OK ${sizes[1]} octets`);
  assert.deepEqual(retr.lines.slice(-3), ['..starts with a dot', '..', 'line after a lone dot']);
  assert.equal(retr.lines[0], 'Return-Path: <bob@example.org>');

  assert.match(await c.cmd('DELE 1'), /^\+OK/);
  assert.match(await c.cmd('DELE 1'), /^-ERR message 1 already deleted/);
  assert.match(await c.cmd('RETR 1'), /^-ERR/);
  assert.match(await c.cmd('STAT'), /^\+OK 2 /);
  assert.match(await c.cmd('RSET'), /^\+OK/);
  assert.match(await c.cmd('STAT'), /^\+OK 3 /);
  assert.match(await c.cmd('DELE 3'), /^\+OK/);
  assert.equal(await c.cmd('NOOP'), '+OK');
  assert.match(await c.cmd('USER x'), /^-ERR USER is not valid in the TRANSACTION state/);
  assert.match(await c.cmd('QUIT'), /^\+OK .*1 message deleted/);
  await c.waitClosed();

  const afterQuit = await mailbox.openFolder(john, 'INBOX');
  assert.deepEqual(afterQuit.messages.map((m) => m.uid), [state.messages[0]!.uid, state.messages[1]!.uid]);
  // RETR marked message 2 \Seen (what IMAP will show); TOP did not touch message 1.
  assert.deepEqual(afterQuit.messages.map((m) => m.flags), [[], ['\\Seen']]);
});

test('a connection dropped without QUIT deletes nothing (RFC 1939 §6)', async () => {
  await emptyInbox(john);
  await deliver(john, 'keep me');
  const c = await loggedIn(true);
  assert.match(await c.cmd('DELE 1'), /^\+OK/);
  c.close();
  await new Promise((r) => setTimeout(r, 100));
  assert.equal((await mailbox.openFolder(john, 'INBOX')).messages.length, 1);
});

test('implicit TLS (995): USER/PASS, and UIDLs stay the same across sessions', async () => {
  await emptyInbox(anna);
  await deliver(anna, 'a');
  await deliver(anna, 'b');
  const c1 = await loggedIn(true, 'anna.bianchi');
  const first = (await c1.multi('UIDL')).lines;
  assert.match(await c1.cmd('QUIT'), /^\+OK/);
  await deliver(anna, 'c');
  const c2 = await loggedIn(true, 'anna.bianchi');
  const second = (await c2.multi('UIDL')).lines;
  assert.deepEqual(second.slice(0, 2), first);
  assert.equal(second.length, 3);
  assert.match(await c2.cmd('QUIT'), /^\+OK/);
});

test('AUTH PLAIN with an initial response; "*" cancels; another authzid is refused', async () => {
  const c = await RawPop3.connect(securePort.port, true);
  await c.line();
  assert.deepEqual((await c.multi('AUTH')).lines, ['PLAIN']);
  assert.match(await c.cmd('AUTH LOGIN'), /^-ERR unsupported/);
  assert.equal(await c.cmd('AUTH PLAIN'), '+ ');
  assert.match(await c.cmd('*'), /^-ERR authentication cancelled/);
  assert.match(await c.cmd(`AUTH PLAIN ${plain('john.smith', PASSWORD, 'anna.bianchi')}`), /^-ERR \[AUTH\]/);
  assert.match(await c.cmd(`AUTH PLAIN ${plain('john.smith', PASSWORD, 'JOHN.SMITH')}`), /^\+OK/);
  assert.match(await c.cmd('QUIT'), /^\+OK/);
});

test('wrong passwords, unknown and disabled users get one answer; three failures close the connection', async () => {
  const c = await RawPop3.connect(securePort.port, true);
  await c.line();
  await c.cmd('USER john.smith');
  assert.equal(await c.cmd('PASS wrong'), '-ERR [AUTH] authentication failed');
  await c.cmd('USER nobody.here');
  assert.equal(await c.cmd(`PASS ${PASSWORD}`), '-ERR [AUTH] authentication failed');
  await c.cmd('USER old.employee');
  assert.equal(await c.cmd(`PASS ${PASSWORD}`), '-ERR [AUTH] authentication failed');
  assert.match(await c.line(), /^-ERR \[AUTH\] too many failed logins/);
  await c.waitClosed();
});

test('logins and logouts are logged with user, client address, protocol and result (component pop3)', async () => {
  logLines.length = 0;
  const c = await loggedIn(true);
  assert.match(await c.cmd('QUIT'), /^\+OK/);
  await c.waitClosed();
  const bad = await RawPop3.connect(securePort.port, true);
  await bad.line();
  await bad.cmd('USER john.smith');
  await bad.cmd('PASS nope');
  bad.close();
  // The lines are written as the sessions end, which the server learns of asynchronously.
  await waitFor('the logout and the failed login in the log', () => {
    const lines = logLines.filter((l) => l.component === 'pop3');
    return lines.some((l) => l.result === 'quit') && lines.some((l) => l.result === 'invalid');
  });
  const pop3 = logLines.filter((l) => l.component === 'pop3');
  const ok = pop3.find((l) => l.result === 'ok');
  assert.ok(ok, JSON.stringify(pop3));
  assert.equal(ok.user, 'john.smith');
  assert.equal(ok.client, '127.0.0.1');
  assert.equal(ok.protocol, 'pop3');
  assert.ok(pop3.find((l) => l.result === 'quit' && l.user === 'john.smith' && typeof l.msg === 'string' && l.msg.startsWith('logout')));
  assert.ok(pop3.find((l) => l.result === 'invalid' && l.user === 'john.smith' && l.protocol === 'pop3'));
});

test('mailbox.allowUnencrypted lets USER/PASS through on the plain port; mailbox.pop3 off refuses logins', async (t) => {
  t.after(() => {
    settings['mailbox.allowUnencrypted'] = false;
    settings['mailbox.pop3'] = true;
  });
  settings['mailbox.allowUnencrypted'] = true;
  const c = await RawPop3.connect(plainPort.port);
  await c.line();
  assert.ok((await c.multi('CAPA')).lines.includes('USER'));
  assert.match(await c.cmd('USER john.smith'), /^\+OK/);
  assert.match(await c.cmd(`PASS ${PASSWORD}`), /^\+OK/);
  assert.match(await c.cmd('QUIT'), /^\+OK/);

  settings['mailbox.pop3'] = false;
  const d = await RawPop3.connect(securePort.port, true);
  await d.line();
  await d.cmd('USER john.smith');
  assert.match(await d.cmd(`PASS ${PASSWORD}`), /^-ERR \[SYS\/PERM\] POP3 access is disabled/);
  d.close();
});

test('the master user opens another user\'s maildrop as "john.smith*admin" when mailbox.masterUser is on', async (t) => {
  t.after(() => (masterUser.enabled = false));
  await emptyInbox(john);
  await deliver(john, 'for the admin');
  const c = await RawPop3.connect(securePort.port, true);
  await c.line();
  await c.cmd('USER john.smith*admin');
  assert.equal(await c.cmd('PASS Adm1n!Secret'), '-ERR [AUTH] authentication failed');
  masterUser.enabled = true;
  logLines.length = 0;
  await c.cmd('USER john.smith*admin');
  assert.match(await c.cmd('PASS Adm1n!Secret'), /^\+OK maildrop has 1 message/);
  assert.match((await c.multi('RETR 1')).lines.join('\n'), /Subject: for the admin/);
  assert.match(await c.cmd('QUIT'), /^\+OK/);
  const ok = logLines.find((l) => l.component === 'pop3' && l.result === 'ok');
  assert.equal(ok?.user, 'john.smith');
  assert.equal(ok?.master, 'admin');
});

test('a second session on the same maildrop is refused while the first holds it', async () => {
  const a = await loggedIn(true);
  const b = await RawPop3.connect(plainPort.port);
  await b.line();
  await b.stls();
  await b.cmd('USER John.Smith');
  assert.match(await b.cmd(`PASS ${PASSWORD}`), /^-ERR \[IN-USE\]/);
  assert.match(await a.cmd('QUIT'), /^\+OK/);
  await a.waitClosed();
  // The server releases the maildrop as it learns of the close: retry (as a client would) until it has.
  let reply = '';
  for (const deadline = Date.now() + 10_000; !reply.startsWith('+OK') && Date.now() < deadline; ) {
    await b.cmd('USER john.smith');
    reply = await b.cmd(`PASS ${PASSWORD}`);
    if (!reply.startsWith('+OK')) await new Promise((r) => setTimeout(r, 25));
  }
  assert.match(reply, /^\+OK/);
  b.close();
});

test('an over-long line and an idle connection are closed', async () => {
  const c = await RawPop3.connect(plainPort.port);
  await c.line();
  c.send(`NOOP ${'x'.repeat(10_000)}\r\n`);
  assert.equal(await c.line(), '-ERR line too long');
  await c.waitClosed();

  const idle = await RawPop3.connect(shortIdle.port);
  await idle.line();
  assert.match(await idle.line(2000), /^-ERR .*idle timeout/);
  await idle.waitClosed();
});

test('unknown commands get -ERR; commands of the wrong state are refused', async () => {
  const c = await RawPop3.connect(securePort.port, true);
  await c.line();
  assert.equal(await c.cmd('XYZZY'), '-ERR unknown command');
  assert.match(await c.cmd('STAT'), /^-ERR STAT is not valid in the AUTHORIZATION state/);
  assert.match(await c.cmd('PASS x'), /^-ERR USER first/);
  assert.match(await c.cmd('quit'), /^\+OK/);
});

test('curl reads mail over STLS (pop3:// --ssl-reqd) and implicit TLS (pop3s://)', async () => {
  await emptyInbox(john);
  await deliver(john, 'for curl', 'curl body');
  const auth = `john.smith:${PASSWORD}`;
  const listed = await run('curl', ['-s', '--ssl-reqd', '-k', '-u', auth, `pop3://127.0.0.1:${plainPort.port}/`]);
  assert.match(listed.stdout, /^1 \d+\r?\n$/);
  const one = await run('curl', ['-s', '--ssl-reqd', '-k', '-u', auth, `pop3://127.0.0.1:${plainPort.port}/1`]);
  assert.match(one.stdout, /Subject: for curl/);
  assert.match(one.stdout, /curl body/);
  const viaTls = await run('curl', ['-s', '-k', '-u', auth, `pop3s://127.0.0.1:${securePort.port}/1`]);
  assert.match(viaTls.stdout, /Subject: for curl/);
  // Without TLS the server does not accept the login: curl fails.
  await assert.rejects(run('curl', ['-s', '-u', auth, `pop3://127.0.0.1:${plainPort.port}/1`]));
});

test('fetchmail fetches and deletes over STLS and over implicit TLS', async (t) => {
  await ensureDebianPackages([CLIENT_PACKAGES.fetchmail]);
  for (const mode of ['stls', 'ssl'] as const) {
    await emptyInbox(john);
    await deliver(john, `fetch-${mode}-1`);
    await deliver(john, `fetch-${mode}-2`);
    const home = await mkdtemp(join(tmpdir(), 'postern-fetchmail-'));
    t.after(() => rm(home, { recursive: true, force: true }));
    const out = join(home, 'out.bsmtp');
    const port = mode === 'ssl' ? securePort.port : plainPort.port;
    const rc = join(home, 'fetchmailrc');
    await writeFile(
      rc,
      `set no syslog\npoll 127.0.0.1 with proto POP3 port ${port} user "john.smith" there with password "${PASSWORD}" is "local" here options ${
        mode === 'ssl' ? 'ssl' : 'sslproto "TLS1.2+"'
      } no sslcertck\n`,
    );
    await chmod(rc, 0o600);
    const env = { ...process.env, HOME: home, FETCHMAILHOME: home };
    try {
      await run('fetchmail', ['-f', rc, '-N', '--bsmtp', out, '--pidfile', join(home, 'pid')], { env, timeout: 20_000 });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      throw new Error(`fetchmail (${mode}) failed: ${e.stdout ?? ''} ${e.stderr ?? ''}`);
    }
    const got = await readFile(out, 'utf8');
    assert.match(got, new RegExp(`Subject: fetch-${mode}-1`));
    assert.match(got, new RegExp(`Subject: fetch-${mode}-2`));
    assert.equal((await mailbox.openFolder(john, 'INBOX')).messages.length, 0, 'fetchmail deleted what it fetched');
  }
});
