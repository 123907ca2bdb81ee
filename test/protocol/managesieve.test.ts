/**
 * ManageSieve (RFC 5804) over raw sockets and with Debian's sieve-connect, against the users of fixtures/ad/corp.ldif
 * (embedded LDIF directory), the real interpreter's compile() and scripts stored in Pigeonhole's layout.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readlink, rm, writeFile, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Authenticator } from '../../src/auth/authenticator.ts';
import { FailureDelay } from '../../src/auth/failure-delay.ts';
import { authSchema } from '../../src/config/schema.ts';
import { LdifDirectory } from '../../src/directory/ldif/ldif-directory.ts';
import { TempFailure } from '../../src/lib/errors.ts';
import { SessionRegistry } from '../../src/lib/session-registry.ts';
import type { TlsMaterial } from '../../src/lib/tls.ts';
import { startManageSieve, type ManageSieveService } from '../../src/managesieve/server.ts';
import { interpreterChecker } from '../../src/managesieve/sieve-checker.ts';
import { SIEVE_EXTENSIONS } from '../../src/sieve/index.ts';
import { SieveScriptStore } from '../../src/sieve/storage.ts';
import { MaildirStore } from '../../src/store/maildir.ts';
import { userOwner } from '../../src/store/types.ts';
import { execChild } from '../harness/children.ts';
import { CLIENT_PACKAGES, ensureDebianPackages } from '../harness/packages.ts';
import { ROOT } from '../helpers/cli.ts';
import { literal, RawManageSieve, saslPlain } from '../helpers/raw-managesieve.ts';

const PASSWORD = 'Corp!Passw0rd';

let dir: string;
let store: MaildirStore;
let main: ManageSieveService;
let small: ManageSieveService;
let shortIdle: ManageSieveService;
const settings = { 'mailbox.allowUnencrypted': false };
const masterUser = { enabled: false };
/** While on, every directory lookup fails as when no DC answers. */
const adDown = { on: false };
const logLines: Record<string, unknown>[] = [];
/** The failure delays the authenticator asked for (its sleep is recorded, not waited: no timing in tests). */
const delays: number[] = [];
const sessions = new SessionRegistry();

const home = (login: string) => store.homePath(userOwner({ login }));

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-managesieve-'));
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
  const flaky = Object.create(directory, {
    findLogin: {
      value: async (login: string) => {
        if (adDown.on) throw new TempFailure('no DC answers');
        return directory.findLogin(login);
      },
    },
  }) as typeof directory;
  const auth = new Authenticator({
    directory: flaky,
    config: authSchema.parse({}),
    masterUserEnabled: () => masterUser.enabled,
    log,
    failureDelay: new FailureDelay({
      baseMs: 2000,
      maxMs: 15000,
      sleep: async (ms) => {
        delays.push(ms);
      },
    }),
  });
  const tls: TlsMaterial = {
    cert: await readFile(join(ROOT, 'test/fixtures/tls/localhost.crt')),
    key: await readFile(join(ROOT, 'test/fixtures/tls/localhost.key')),
    source: 'test',
    selfSigned: true,
  };
  store = new MaildirStore({ root: join(dir, 'mail'), hostname: 'mx.example.com' });
  const common = {
    port: 0,
    host: '127.0.0.1',
    tls,
    auth,
    settings: { get: (k: keyof typeof settings) => settings[k] },
    home: (u: { login: string; guid?: string }) => store.homePath(userOwner(u)),
    sieve: interpreterChecker(),
    hostname: 'mx.example.com',
    log,
    sessions,
  };
  main = await startManageSieve({ ...common, scripts: new SieveScriptStore() });
  small = await startManageSieve({ ...common, scripts: new SieveScriptStore({ quota: { maxScripts: 2, maxScriptBytes: 100, maxStorageBytes: 150 } }) });
  shortIdle = await startManageSieve({ ...common, scripts: new SieveScriptStore(), idleTimeoutMs: 300 });
});

after(async () => {
  await Promise.all([main.close(), small.close(), shortIdle.close()]);
  await rm(dir, { recursive: true, force: true });
});

/** A session through STARTTLS and AUTHENTICATE PLAIN. */
async function loggedIn(port = main.port, login = 'john.smith', password = PASSWORD): Promise<RawManageSieve> {
  const c = await RawManageSieve.connect(port);
  await c.response();
  await c.starttls();
  const r = await c.cmd(`AUTHENTICATE "PLAIN" "${saslPlain(login, password)}"`);
  assert.match(r.status, /^OK/, r.status);
  return c;
}

async function clearScripts(login: string): Promise<void> {
  await rm(join(home(login), 'sieve'), { recursive: true, force: true });
  await rm(join(home(login), '.dovecot.sieve'), { force: true });
}

const GOOD = 'require ["fileinto"];\r\nif header :contains "Subject" "invoice" {\r\n  fileinto "Accounts";\r\n}\r\n';

test('before STARTTLS: capabilities with STARTTLS and an empty SASL list, AUTHENTICATE refused with ENCRYPT-NEEDED', async () => {
  const c = await RawManageSieve.connect(main.port);
  const greeting = await c.response();
  assert.match(greeting.status, /^OK "mx\.example\.com ManageSieve ready"$/);
  assert.ok(greeting.lines.includes('"IMPLEMENTATION" "postern"'));
  assert.ok(greeting.lines.includes('"STARTTLS"'));
  assert.ok(greeting.lines.includes('"SASL" ""'), greeting.lines.join('\n'));
  assert.ok(greeting.lines.includes('"VERSION" "1.0"'));
  assert.ok(greeting.lines.includes(`"SIEVE" "${SIEVE_EXTENSIONS.join(' ')}"`), 'SIEVE lists the interpreter\'s extensions');
  assert.ok(greeting.lines.includes('"MAXREDIRECTS" "4"'));
  assert.ok(!greeting.lines.some((l) => l.startsWith('"NOTIFY"')), 'no enotify, so no NOTIFY');
  assert.ok(!greeting.lines.some((l) => l.startsWith('"OWNER"')));
  const refused = await c.cmd(`AUTHENTICATE "PLAIN" "${saslPlain('john.smith', PASSWORD)}"`);
  assert.match(refused.status, /^NO \(ENCRYPT-NEEDED\)/);
  assert.equal(delays.length, 0, 'refused before the authenticator: nothing was checked');
  assert.match((await c.cmd('LISTSCRIPTS')).status, /^NO "LISTSCRIPTS needs authentication"/);
  // After STARTTLS the capabilities come again unasked (§2.2), now with the mechanisms and without STARTTLS.
  const again = await c.starttls();
  assert.match(again.status, /^OK/);
  assert.ok(again.lines.includes('"SASL" "PLAIN LOGIN"'), again.lines.join('\n'));
  assert.ok(!again.lines.includes('"STARTTLS"'));
  assert.match((await c.cmd('STARTTLS')).status, /^NO/, 'STARTTLS once only');
  assert.match((await c.cmd(`AUTHENTICATE "PLAIN" "${saslPlain('john.smith', PASSWORD)}"`)).status, /^OK "Logged in"/);
  const caps = await c.cmd('CAPABILITY');
  assert.ok(caps.lines.includes('"OWNER" "john.smith"'), caps.lines.join('\n'));
  assert.ok(caps.lines.includes('"SASL" ""'), 'no mechanisms once authenticated');
  assert.match((await c.cmd('LOGOUT')).status, /^OK/);
  await c.waitClosed();
});

test('mailbox.allowUnencrypted lets AUTHENTICATE through without TLS, as IMAP does', async (t) => {
  settings['mailbox.allowUnencrypted'] = true;
  t.after(() => (settings['mailbox.allowUnencrypted'] = false));
  const c = await RawManageSieve.connect(main.port);
  const greeting = await c.response();
  assert.ok(greeting.lines.includes('"SASL" "PLAIN LOGIN"'));
  assert.ok(greeting.lines.includes('"STARTTLS"'), 'STARTTLS still offered');
  assert.match((await c.cmd(`AUTHENTICATE "PLAIN" "${saslPlain('john.smith', PASSWORD)}"`)).status, /^OK/);
  c.close();
});

test('STARTTLS drops what the client pipelined behind it (CVE-2011-0411)', async () => {
  const c = await RawManageSieve.connect(main.port);
  await c.response();
  logLines.length = 0;
  c.send(`STARTTLS\r\nAUTHENTICATE "PLAIN" "${saslPlain('john.smith', PASSWORD)}"\r\nPUTSCRIPT "smuggled" {5+}\r\nkeep;\r\n`);
  assert.match((await c.response()).status, /^OK "Begin TLS/);
  await c.upgrade();
  const caps = await c.response();
  assert.match(caps.status, /^OK/);
  // Still not authenticated: the pipelined AUTHENTICATE was never read.
  assert.match((await c.cmd('LISTSCRIPTS')).status, /^NO "LISTSCRIPTS needs authentication"/);
  assert.ok(!logLines.some((l) => l.component === 'managesieve' && l.result === 'ok'));
  c.close();
});

test('PUTSCRIPT refuses a script that does not compile with the line and column of the error, and stores nothing', async () => {
  await clearScripts('john.smith');
  const c = await loggedIn();
  const bad = 'require "fileinto";\r\nif true {\r\n    fileinot "x";\r\n}\r\n';
  const r = await c.cmd(`PUTSCRIPT "broken" ${literal(bad)}`);
  assert.equal(r.status, `NO "line 3, column 5: unknown command 'fileinot'"`);
  assert.deepEqual((await c.cmd('LISTSCRIPTS')).lines, []);
  await assert.rejects(lstat(join(home('john.smith'), 'sieve', 'broken.sieve')), { code: 'ENOENT' });
  // CHECKSCRIPT gives the same verdict without a name, and OK for a good script.
  assert.equal((await c.cmd(`CHECKSCRIPT ${literal(bad)}`)).status, `NO "line 3, column 5: unknown command 'fileinot'"`);
  assert.match((await c.cmd(`CHECKSCRIPT ${literal(GOOD)}`)).status, /^OK/);
  // A missing require is an error of the script too.
  assert.match((await c.cmd(`PUTSCRIPT "noreq" ${literal('fileinto "x";\r\n')}`)).status, /^NO "line 1, column \d+: /);
  c.close();
});

test('PUTSCRIPT, LISTSCRIPTS, SETACTIVE (.dovecot.sieve → sieve/NAME.sieve), GETSCRIPT byte for byte', async () => {
  await clearScripts('john.smith');
  const c = await loggedIn();
  assert.match((await c.cmd(`PUTSCRIPT "work" ${literal(GOOD)}`)).status, /^OK/);
  assert.match((await c.cmd(`PUTSCRIPT "spare" ${literal('keep;\r\n')}`)).status, /^OK/);
  assert.equal(await readFile(join(home('john.smith'), 'sieve', 'work.sieve'), 'utf8'), GOOD);
  assert.deepEqual((await c.cmd('LISTSCRIPTS')).lines, ['"spare"', '"work"']);
  assert.match((await c.cmd('SETACTIVE "work"')).status, /^OK/);
  assert.equal(await readlink(join(home('john.smith'), '.dovecot.sieve')), 'sieve/work.sieve');
  assert.deepEqual((await c.cmd('LISTSCRIPTS')).lines, ['"spare"', '"work" ACTIVE']);
  const got = await c.cmd('GETSCRIPT "work"');
  assert.deepEqual(got.lines, [GOOD], 'the literal carries the script exactly, CRLFs included');
  assert.match(got.status, /^OK/);
  assert.match((await c.cmd('GETSCRIPT "nope"')).status, /^NO \(NONEXISTENT\)/);
  assert.match((await c.cmd('SETACTIVE "nope"')).status, /^NO \(NONEXISTENT\)/);
  assert.equal(await readlink(join(home('john.smith'), '.dovecot.sieve')), 'sieve/work.sieve', 'a refused SETACTIVE changes nothing');
  // Replacing the active script keeps it active.
  assert.match((await c.cmd(`PUTSCRIPT "work" ${literal('discard;\r\n')}`)).status, /^OK/);
  assert.deepEqual((await c.cmd('GETSCRIPT "work"')).lines, ['discard;\r\n']);
  assert.deepEqual((await c.cmd('LISTSCRIPTS')).lines, ['"spare"', '"work" ACTIVE']);
  c.close();
});

test('DELETESCRIPT refuses the active script (ACTIVE) and an unknown one (NONEXISTENT); RENAMESCRIPT keeps it active', async () => {
  await clearScripts('john.smith');
  const c = await loggedIn();
  await c.cmd(`PUTSCRIPT "a" ${literal('keep;\r\n')}`);
  await c.cmd(`PUTSCRIPT "b" ${literal('keep;\r\n')}`);
  await c.cmd('SETACTIVE "a"');
  assert.match((await c.cmd('DELETESCRIPT "a"')).status, /^NO \(ACTIVE\)/);
  assert.match((await c.cmd('DELETESCRIPT "zz"')).status, /^NO \(NONEXISTENT\)/);
  assert.match((await c.cmd('RENAMESCRIPT "a" "b"')).status, /^NO \(ALREADYEXISTS\)/);
  assert.match((await c.cmd('RENAMESCRIPT "zz" "y"')).status, /^NO \(NONEXISTENT\)/);
  assert.match((await c.cmd('RENAMESCRIPT "a" "main"')).status, /^OK/);
  assert.equal(await readlink(join(home('john.smith'), '.dovecot.sieve')), 'sieve/main.sieve');
  assert.deepEqual((await c.cmd('LISTSCRIPTS')).lines, ['"b"', '"main" ACTIVE']);
  assert.match((await c.cmd('DELETESCRIPT "b"')).status, /^OK/);
  // SETACTIVE "" deactivates (§2.8); then the former active script can go.
  assert.match((await c.cmd('SETACTIVE ""')).status, /^OK/);
  await assert.rejects(lstat(join(home('john.smith'), '.dovecot.sieve')), { code: 'ENOENT' });
  assert.match((await c.cmd('DELETESCRIPT "main"')).status, /^OK/);
  assert.deepEqual((await c.cmd('LISTSCRIPTS')).lines, []);
  c.close();
});

test('quotas: HAVESPACE and PUTSCRIPT answer QUOTA/MAXSIZE, QUOTA/MAXSCRIPTS and QUOTA', async () => {
  await clearScripts('anna.bianchi');
  const c = await loggedIn(small.port, 'anna.bianchi');
  assert.match((await c.cmd('HAVESPACE "x" 100')).status, /^OK/);
  assert.match((await c.cmd('HAVESPACE "x" 101')).status, /^NO \(QUOTA\/MAXSIZE\)/);
  assert.match((await c.cmd(`PUTSCRIPT "big" ${literal(`# ${'x'.repeat(100)}\r\nkeep;\r\n`)}`)).status, /^NO \(QUOTA\/MAXSIZE\)/);
  assert.match((await c.cmd(`PUTSCRIPT "one" ${literal(`# ${'x'.repeat(80)}\r\nkeep;\r\n`)}`)).status, /^OK/);
  assert.match((await c.cmd('HAVESPACE "two" 80')).status, /^NO \(QUOTA\) /, '91 + 80 > 150');
  assert.match((await c.cmd(`PUTSCRIPT "two" ${literal('keep;\r\n')}`)).status, /^OK/);
  assert.match((await c.cmd('HAVESPACE "three" 1')).status, /^NO \(QUOTA\/MAXSCRIPTS\)/);
  assert.match((await c.cmd(`PUTSCRIPT "three" ${literal('keep;\r\n')}`)).status, /^NO \(QUOTA\/MAXSCRIPTS\)/);
  assert.match((await c.cmd('HAVESPACE "two" 50')).status, /^OK/, 'replacing a script counts its new size only');
  // A literal past the size limit is read and dropped: the answer is MAXSIZE and the session stays in step.
  const huge = 'x'.repeat(5000);
  assert.match((await c.cmd(`PUTSCRIPT "huge" ${literal(huge)}`)).status, /^NO \(QUOTA\/MAXSIZE\)/);
  assert.match((await c.cmd('NOOP')).status, /^OK/);
  assert.deepEqual((await c.cmd('LISTSCRIPTS')).lines, ['"one"', '"two"']);
  c.close();
});

test('literals {N+} and {N}, quoted strings with escapes, UTF-8 names; invalid UTF-8 is refused', async () => {
  await clearScripts('john.smith');
  const c = await loggedIn();
  assert.match((await c.cmd(`PUTSCRIPT {6+}\r\nFerien "keep;"`)).status, /^OK/, 'name as a literal, script quoted');
  assert.match((await c.cmd(`PUTSCRIPT "sync" {7}\r\nstop;\r\n`)).status, /^OK/, 'a synchronising literal is read at once');
  assert.match((await c.cmd(`PUTSCRIPT "qu\\"ote\\\\d" ${literal('keep;\r\n')}`)).status, /^OK/);
  assert.match((await c.cmd(`PUTSCRIPT "Été ü" ${literal('keep;\r\n')}`)).status, /^OK/);
  assert.deepEqual((await c.cmd('LISTSCRIPTS')).lines, ['"Ferien"', '"qu\\"ote\\\\d"', '"sync"', '"Été ü"']);
  assert.deepEqual((await c.cmd('GETSCRIPT "sync"')).lines, ['stop;\r\n']);
  assert.equal(await readFile(join(home('john.smith'), 'sieve', 'qu"ote\\d.sieve'), 'utf8'), 'keep;\r\n');
  // Invalid UTF-8 in a name and in a script; a name with a '/', a control character, not in NFC.
  assert.match((await c.cmd(Buffer.concat([Buffer.from('PUTSCRIPT "bad'), Buffer.from([0xff]), Buffer.from('" "keep;"')]))).status, /^NO .*UTF-8/);
  assert.match((await c.cmd(Buffer.concat([Buffer.from('PUTSCRIPT "s" {2+}\r\n'), Buffer.from([0xc3, 0x28])]))).status, /^NO "The script is not valid UTF-8"/);
  assert.match((await c.cmd(`PUTSCRIPT "a/b" "keep;"`)).status, /^NO "Script name contains '\/'"/);
  assert.match((await c.cmd(`PUTSCRIPT {3+}\r\na\tb "keep;"`)).status, /^NO "Script name contains a control character"/);
  assert.match((await c.cmd(`PUTSCRIPT "e\u0301" "keep;"`)).status, /^NO "Script name is not in Unicode NFC/);
  c.close();
});

test('bad input: unknown commands, wrong arguments and broken syntax are NO; ten of them end the session with BYE', async () => {
  const c = await loggedIn();
  assert.match((await c.cmd('FROBNICATE')).status, /^NO "Unknown command FROBNICATE"/);
  assert.match((await c.cmd('GETSCRIPT')).status, /^NO "Too few arguments"/);
  assert.match((await c.cmd('GETSCRIPT "a" "b"')).status, /^NO "Too many arguments"/);
  assert.match((await c.cmd('GETSCRIPT 12')).status, /^NO "Expected the script name as a string"/);
  assert.match((await c.cmd('HAVESPACE "a" "b"')).status, /^NO "Expected the script size as a number"/);
  assert.match((await c.cmd('HAVESPACE "a" 99999999999')).status, /^NO "Syntax error: number too large"/);
  assert.match((await c.cmd('GETSCRIPT "unterminated')).status, /^NO "Syntax error: unterminated quoted string"/);
  assert.match((await c.cmd('GETSCRIPT  "two spaces"')).status, /^NO "Syntax error/);
  assert.match((await c.cmd('"quoted" command')).status, /^NO "Expected a command name"/);
  assert.match((await c.cmd('AUTHENTICATE "PLAIN"')).status, /^NO "AUTHENTICATE is not valid after authentication"/);
  const bye = await c.response().catch(() => null);
  assert.match(bye?.status ?? '', /^BYE "Too many invalid commands"/);
  await c.waitClosed();
});

test('NOOP with a tag echoes it in a TAG response code; commands are case-insensitive', async () => {
  const c = await loggedIn();
  assert.equal((await c.cmd('NOOP "STARTTLS-SYNC-42"')).status, 'OK (TAG "STARTTLS-SYNC-42") "Done"');
  assert.match((await c.cmd('noop')).status, /^OK/);
  assert.match((await c.cmd('ListScripts')).status, /^OK/);
  c.close();
});

test('AUTHENTICATE: PLAIN with a continuation, LOGIN, "*" cancels, UNAUTHENTICATE and a login as someone else', async () => {
  const c = await RawManageSieve.connect(main.port);
  await c.response();
  await c.starttls();
  assert.equal(await (c.send('AUTHENTICATE "PLAIN"\r\n'), c.line()), '""', 'an empty challenge');
  assert.match((await c.cmd('"*"')).status, /^NO "Authentication cancelled"/);
  assert.equal(await (c.send('AUTHENTICATE "PLAIN"\r\n'), c.line()), '""');
  assert.match((await c.cmd(literal(saslPlain('john.smith', PASSWORD)))).status, /^OK/, 'the response may be a literal');
  assert.match((await c.cmd('UNAUTHENTICATE')).status, /^OK/);
  assert.match((await c.cmd('LISTSCRIPTS')).status, /^NO "LISTSCRIPTS needs authentication"/);
  assert.equal(await (c.send('AUTHENTICATE "LOGIN"\r\n'), c.line()), `"${Buffer.from('Username:').toString('base64')}"`);
  assert.equal(await (c.send(`"${Buffer.from('anna.bianchi').toString('base64')}"\r\n`), c.line()), `"${Buffer.from('Password:').toString('base64')}"`);
  assert.match((await c.cmd(`"${Buffer.from(PASSWORD).toString('base64')}"`)).status, /^OK/);
  assert.ok((await c.cmd('CAPABILITY')).lines.includes('"OWNER" "anna.bianchi"'));
  assert.match((await c.cmd('AUTHENTICATE "DIGEST-MD5"')).status, /^NO/);
  c.close();
});

test('failed logins: one answer for unknown user and wrong password, the failure delay doubling, BYE after three', async () => {
  const c = await RawManageSieve.connect(main.port);
  await c.response();
  await c.starttls();
  delays.length = 0;
  logLines.length = 0;
  assert.equal((await c.cmd(`AUTHENTICATE "PLAIN" "${saslPlain('john.smith', 'wrong')}"`)).status, 'NO "Authentication failed"');
  assert.equal((await c.cmd(`AUTHENTICATE "PLAIN" "${saslPlain('nobody.here', 'wrong')}"`)).status, 'NO "Authentication failed"');
  // A PLAIN authorization identity other than the user is refused like a wrong password.
  c.send(`AUTHENTICATE "PLAIN" "${saslPlain('john.smith', PASSWORD, 'anna.bianchi')}"\r\n`);
  assert.equal((await c.response()).status, 'NO "Authentication failed"');
  assert.match((await c.response()).status, /^BYE "Too many failed logins"/);
  await c.waitClosed();
  assert.deepEqual(delays, [2000, 4000, 8000], 'the authenticator delayed each failure, doubling per client');
  assert.ok(logLines.some((l) => l.component === 'managesieve' && l.user === 'john.smith' && l.result === 'invalid'));
  // A success resets the delay for the address.
  const ok = await loggedIn();
  ok.close();
  delays.length = 0;
  const d = await RawManageSieve.connect(main.port);
  await d.response();
  await d.starttls();
  await d.cmd(`AUTHENTICATE "PLAIN" "${saslPlain('john.smith', 'wrong')}"`);
  assert.deepEqual(delays, [2000]);
  d.close();
});

test('AD unreachable at login is NO (TRYLATER), not "authentication failed", and costs no failure delay', async (t) => {
  t.after(() => (adDown.on = false));
  const c = await RawManageSieve.connect(main.port);
  await c.response();
  await c.starttls();
  delays.length = 0;
  adDown.on = true;
  assert.match((await c.cmd(`AUTHENTICATE "PLAIN" "${saslPlain('john.smith', PASSWORD)}"`)).status, /^NO \(TRYLATER\) /);
  assert.deepEqual(delays, []);
  adDown.on = false;
  assert.match((await c.cmd(`AUTHENTICATE "PLAIN" "${saslPlain('john.smith', PASSWORD)}"`)).status, /^OK/);
  c.close();
});

test('the master user opens another user\'s scripts as "john.smith*admin" when mailbox.masterUser is on', async (t) => {
  t.after(() => (masterUser.enabled = false));
  await clearScripts('john.smith');
  await new SieveScriptStore().put(home('john.smith'), 'johns', 'keep;\r\n');
  const c = await RawManageSieve.connect(main.port);
  await c.response();
  await c.starttls();
  assert.equal((await c.cmd(`AUTHENTICATE "PLAIN" "${saslPlain('john.smith*admin', 'Adm1n!Secret')}"`)).status, 'NO "Authentication failed"');
  masterUser.enabled = true;
  logLines.length = 0;
  assert.match((await c.cmd(`AUTHENTICATE "PLAIN" "${saslPlain('john.smith*admin', 'Adm1n!Secret')}"`)).status, /^OK/);
  assert.deepEqual((await c.cmd('LISTSCRIPTS')).lines, ['"johns"']);
  const line = logLines.find((l) => l.component === 'managesieve' && l.result === 'ok');
  assert.equal(line?.user, 'john.smith');
  assert.equal(line?.master, 'admin');
  assert.equal(line?.msg, 'login master admin as user john.smith');
  c.close();
});

test('logins and logouts are logged with component managesieve; the session registry can end a session', async () => {
  logLines.length = 0;
  const c = await loggedIn(main.port, 'anna.bianchi');
  assert.equal(sessions.count('anna.bianchi'), 1);
  const closed = sessions.closeUser('Anna.Bianchi', 'account disabled');
  assert.equal(closed.managesieve, 1);
  assert.match((await c.response()).status, /^BYE "account disabled"/);
  await c.waitClosed();
  const login = logLines.find((l) => l.component === 'managesieve' && l.msg === 'login anna.bianchi');
  assert.equal(login?.protocol, 'managesieve');
  assert.equal(login?.tls, true);
  const { waitFor } = await import('../helpers/wait.ts');
  await waitFor('the logout line', () => logLines.find((l) => l.component === 'managesieve' && l.msg === 'logout anna.bianchi' && l.result === 'account disabled'));
  assert.equal(sessions.count('anna.bianchi'), 0);
});

test('an idle session is closed with BYE', async () => {
  const c = await RawManageSieve.connect(shortIdle.port);
  await c.response();
  assert.match((await c.response()).status, /^BYE \(TRYLATER\) "Disconnected for inactivity"/);
  await c.waitClosed();
});

test('a regular-file .dovecot.sieve left by hand: not listed, kept as "dovecot.orig" at the first SETACTIVE', async () => {
  await clearScripts('john.smith');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(home('john.smith'), { recursive: true });
  await writeFile(join(home('john.smith'), '.dovecot.sieve'), 'discard;\n');
  const c = await loggedIn();
  assert.deepEqual((await c.cmd('LISTSCRIPTS')).lines, []);
  await c.cmd(`PUTSCRIPT "new" ${literal('keep;\r\n')}`);
  assert.match((await c.cmd('SETACTIVE "new"')).status, /^OK/);
  assert.deepEqual((await c.cmd('LISTSCRIPTS')).lines, ['"dovecot.orig"', '"new" ACTIVE']);
  assert.deepEqual((await c.cmd('GETSCRIPT "dovecot.orig"')).lines, ['discard;\n']);
  c.close();
});

// ---- sieve-connect, a real client -----------------------------------------------------------------------------

test('sieve-connect (Debian) over STARTTLS: upload, list, activate, download, check, deactivate, delete', { timeout: 180_000 }, async (t) => {
  await ensureDebianPackages([CLIENT_PACKAGES.sieveConnect]);
  await clearScripts('mario.rossi');
  const work = await mkdtemp(join(tmpdir(), 'postern-sieve-connect-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  const local = join(work, 'vacation.sieve');
  const script = 'require ["vacation"];\nvacation :days 3 :subject "Away" "I am away until Monday.";\n';
  await writeFile(local, script);
  // --notlsverify: the test certificate is self-signed; the password comes on stdin (fd 0), never on argv.
  const base = ['--server', '127.0.0.1', '--port', String(main.port), '--user', 'mario.rossi', '--passwordfd', '0', '--notlsverify', '--noclearauth'];
  const sc = (...args: string[]) => execChild('sieve-connect', [...base, ...args], { input: `${PASSWORD}\n`, timeout: 60_000 });
  await sc('--upload', '--localsieve', local, '--remotesieve', 'vacation');
  assert.equal(await readFile(join(home('mario.rossi'), 'sieve', 'vacation.sieve'), 'utf8'), script);
  let listed = (await sc('--list')).stdout;
  assert.match(listed, /^"?vacation"?\s*$/m);
  assert.doesNotMatch(listed, /ACTIVE/);
  await sc('--activate', '--remotesieve', 'vacation');
  assert.equal(await readlink(join(home('mario.rossi'), '.dovecot.sieve')), 'sieve/vacation.sieve');
  listed = (await sc('--list')).stdout;
  assert.match(listed, /vacation"?\s+ACTIVE/);
  const copy = join(work, 'copy.sieve');
  await sc('--download', '--remotesieve', 'vacation', '--localsieve', copy);
  assert.equal(await readFile(copy, 'utf8'), script);
  const broken = join(work, 'broken.sieve');
  await writeFile(broken, 'require "fileinto";\nfileinot "x";\n');
  const refused = await sc('--upload', '--localsieve', broken, '--remotesieve', 'broken').then(
    () => null,
    (err: Error & { stdout?: string; stderr?: string }) => `${err.stdout ?? ''}${err.stderr ?? ''}`,
  );
  assert.ok(refused !== null, 'sieve-connect reports the refused upload');
  assert.match(refused, /line 2, column 1: unknown command 'fileinot'/);
  await assert.rejects(lstat(join(home('mario.rossi'), 'sieve', 'broken.sieve')), { code: 'ENOENT' });
  await sc('--deactivate');
  await assert.rejects(lstat(join(home('mario.rossi'), '.dovecot.sieve')), { code: 'ENOENT' });
  await sc('--delete', '--remotesieve', 'vacation');
  await assert.rejects(lstat(join(home('mario.rossi'), 'sieve', 'vacation.sieve')), { code: 'ENOENT' });
  assert.doesNotMatch((await sc('--list')).stdout, /vacation/);
});

// ---- the whole server -----------------------------------------------------------------------------------------

test('postern serve starts ManageSieve on listeners.managesieve with the mailbox authenticator and the store\'s homes', { timeout: 120_000 }, async (t) => {
  const { startTestServer } = await import('../helpers/server.ts');
  const server = await startTestServer({ managesieve: { maxScripts: 1 } });
  t.after(() => server.close());
  assert.ok(server.ports.managesieve! > 0);
  const c = await RawManageSieve.connect(server.ports.managesieve!);
  const greeting = await c.response();
  assert.ok(greeting.lines.includes('"STARTTLS"'));
  await c.starttls();
  assert.match((await c.cmd(`AUTHENTICATE "PLAIN" "${saslPlain('john.smith', PASSWORD)}"`)).status, /^OK/);
  assert.match((await c.cmd(`PUTSCRIPT "one" ${literal(GOOD)}`)).status, /^OK/);
  assert.match((await c.cmd(`PUTSCRIPT "two" ${literal(GOOD)}`)).status, /^NO \(QUOTA\/MAXSCRIPTS\)/, 'managesieve.maxScripts from the config');
  assert.match((await c.cmd('SETACTIVE "one"')).status, /^OK/);
  const john = await server.core.directory.findLogin('john.smith');
  assert.ok(john);
  const homeDir = server.store.homePath(userOwner(john));
  assert.equal(await readlink(join(homeDir, '.dovecot.sieve')), 'sieve/one.sieve');
  assert.equal(await readFile(join(homeDir, 'sieve', 'one.sieve'), 'utf8'), GOOD);
  // An account the directory watch or an admin takes away loses its session (the shared registry).
  assert.equal(server.sessions.closeUser('john.smith', 'account disabled').managesieve, 1);
  assert.match((await c.response()).status, /^BYE "account disabled"/);
  c.close();
});
