/**
 * RFC 2221 login referrals: a user whose primary address is on a domain with an IMAP referral (`postern domain set
 * acme.io --imap-referral imap://…/`) gets `NO [REFERRAL imap://<user>;AUTH=*@host/]` from LOGIN and AUTHENTICATE,
 * but only once the password is right; everyone else logs in as before. The listener runs on port 0 with the LDIF
 * directories of corp.example (john.smith@example.com) and acme (…@acme.io), and the real settings store.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Authenticator } from '../../src/auth/authenticator.ts';
import { authSchema } from '../../src/config/schema.ts';
import { LdifDirectory } from '../../src/directory/ldif/ldif-directory.ts';
import { parseLdif } from '../../src/directory/ldif/parse.ts';
import { startImap, type ImapServer } from '../../src/imap/server.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { openSettings, type Settings } from '../../src/settings/store.ts';
import { MaildirMailbox } from '../../src/store/maildir-mailbox.ts';
import { MaildirStore } from '../../src/store/maildir.ts';
import { ROOT } from '../helpers/cli.ts';
import { RawImap } from '../helpers/raw-imap.ts';

const ACME_PASSWORD = 'Acme!Passw0rd';
const CORP_PASSWORD = 'Corp!Passw0rd';
const options: Record<string, unknown> = { 'mailbox.imap': true, 'mailbox.allowUnencrypted': true, 'mailbox.deletedToTrash': false };

let dir: string;
let settings: Settings;
let mailbox: MaildirMailbox;
let server: ImapServer;

const plain = (user: string, pass: string) => Buffer.from(`\0${user}\0${pass}`).toString('base64');

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-imapref-'));
  settings = openSettings(join(dir, 'data'));
  settings.addDomain({ name: 'example.com', type: 'local' });
  // acme.io is still hosted on the old server during the migration: mail is relayed there, IMAP logins referred.
  settings.addDomain({ name: 'acme.io', type: 'relay', nexthop: 'mx.old.example', imapReferral: 'IMAP://Mail.Old.Example:1143' });
  const store = new MaildirStore({ root: join(dir, 'mail'), hostname: 'mail.example.com' });
  mailbox = new MaildirMailbox({ store, quotaBytes: () => 0, log: silentLogger, debounceMs: 10 });
  const ldif = ['corp.ldif', 'other.ldif'].map((f) => readFileSync(join(ROOT, 'fixtures/ad', f), 'utf8')).join('\n');
  const auth = new Authenticator({
    directory: new LdifDirectory(parseLdif(ldif), 'corp.ldif+other.ldif', { userPrincipalNameIsAddress: true }),
    config: authSchema.parse({ failureDelayMs: 0 }),
    masterUserEnabled: () => false,
    log: silentLogger,
  });
  server = await startImap({
    port: 0,
    host: '127.0.0.1',
    secure: false,
    auth,
    mailbox,
    settings: { get: (key) => options[key] },
    imapReferral: (domain) => settings.getDomain(domain)?.imapReferral,
    hostname: 'mail.example.com',
    log: silentLogger,
  });
});

after(async () => {
  await server?.close();
  mailbox?.close();
  settings?.close();
  await rm(dir, { recursive: true, force: true });
});

test('CAPABILITY lists LOGIN-REFERRALS, before and after login', async (t) => {
  const c = await RawImap.connect(server.port);
  t.after(() => c.close());
  assert.match(await c.ok('c1', 'CAPABILITY'), /^\* CAPABILITY .* LOGIN-REFERRALS( |\r\n)/m);
  const r = await c.ok('c2', `LOGIN john.smith "${CORP_PASSWORD}"`);
  assert.match(r, /^c2 OK \[CAPABILITY [^\]]* LOGIN-REFERRALS[ \]]/m);
});

test('LOGIN with the right password of a referred domain\'s user: NO [REFERRAL] with the exact URL, still unauthenticated', async (t) => {
  const c = await RawImap.connect(server.port);
  t.after(() => c.close());
  const r = await c.command('a1', `LOGIN awong "${ACME_PASSWORD}"`);
  assert.match(r, /^a1 NO \[REFERRAL imap:\/\/awong;AUTH=\*@mail\.old\.example:1143\/\] Your mailbox is on another server\r\n/m);
  // The login as typed goes into the URL, percent-encoded (RFC 5092 enc-user).
  const r2 = await c.command('a2', `LOGIN alice@acme.io "${ACME_PASSWORD}"`);
  assert.match(r2, /^a2 NO \[REFERRAL imap:\/\/alice%40acme\.io;AUTH=\*@mail\.old\.example:1143\/\] /m);
  // RFC 2221 §4.1: the session stays in the not-authenticated state.
  assert.match(await c.ok('a3', 'CAPABILITY'), /AUTH=PLAIN/);
  assert.match(await c.command('a4', 'SELECT INBOX'), /^a4 (BAD|NO)/m);
  await c.ok('a5', `LOGIN john.smith "${CORP_PASSWORD}"`);
});

test('LOGIN with a wrong password of a referred domain\'s user: the ordinary failure, no REFERRAL', async (t) => {
  const c = await RawImap.connect(server.port);
  t.after(() => c.close());
  const r = await c.command('b1', 'LOGIN awong "wrong password"');
  assert.match(r, /^b1 NO \[AUTHENTICATIONFAILED\] Invalid credentials\r\n/m);
  assert.doesNotMatch(r, /REFERRAL|old\.example/);
  const unknown = await c.command('b2', 'LOGIN nobody@acme.io "wrong password"');
  assert.equal(unknown.replace('b2', 'b1'), r, 'an unknown user answers exactly like a wrong password');
});

test('AUTHENTICATE PLAIN is referred the same way, and only with the right password', async (t) => {
  const c = await RawImap.connect(server.port);
  t.after(() => c.close());
  const ir = await c.command('p1', `AUTHENTICATE PLAIN ${plain('BJones', ACME_PASSWORD)}`);
  assert.match(ir, /^p1 NO \[REFERRAL imap:\/\/BJones;AUTH=\*@mail\.old\.example:1143\/\] Your mailbox is on another server\r\n/m);
  // Without SASL-IR: the credentials follow the empty challenge.
  c.send('p2 AUTHENTICATE PLAIN\r\n');
  await c.until(/^\+ ?\r\n/m);
  c.send(`${plain('awong', ACME_PASSWORD)}\r\n`);
  assert.match(await c.until(/^p2 (OK|NO|BAD).*\r\n/m), /^p2 NO \[REFERRAL imap:\/\/awong;AUTH=\*@mail\.old\.example:1143\/\] /m);
  const wrong = await c.command('p3', `AUTHENTICATE PLAIN ${plain('BJones', 'wrong')}`);
  assert.match(wrong, /^p3 NO \[AUTHENTICATIONFAILED\] Invalid credentials\r\n/m);
  assert.doesNotMatch(wrong, /REFERRAL/);
});

test('a user of a domain without a referral logs in as before, with LOGIN and AUTHENTICATE', async (t) => {
  const c = await RawImap.connect(server.port);
  t.after(() => c.close());
  await c.ok('n1', `LOGIN john.smith "${CORP_PASSWORD}"`);
  await c.ok('n2', 'SELECT INBOX');
  const d = await RawImap.connect(server.port);
  t.after(() => d.close());
  await d.ok('n3', `AUTHENTICATE PLAIN ${plain('anna.bianchi', CORP_PASSWORD)}`);
});

test('removing the referral lets the domain\'s users log in here', async (t) => {
  settings.updateDomain('acme.io', { imapReferral: null });
  t.after(() => settings.updateDomain('acme.io', { imapReferral: 'imap://mail.old.example:1143/' }));
  const c = await RawImap.connect(server.port);
  t.after(() => c.close());
  await c.ok('r1', `LOGIN awong "${ACME_PASSWORD}"`);
});
