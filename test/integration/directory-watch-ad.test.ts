/**
 * AD changes reach postern in seconds, with the cache warm (issue 13 item 3), against the Samba AD DCs that
 * test/run.ts starts. A whole postern server (SMTP, IMAPS, POP3S on port 0) follows CORP.EXAMPLE with its cache TTLs
 * set to an hour, so only the directory watch can make a change visible: a user disabled, expired or deleted is
 * refused at RCPT and loses its open IMAP (imapflow) and POP3 sessions; a locked-out user loses its sessions and
 * still receives (DESIGN.md §3); an added proxyAddress is accepted; a group member added and a group's `mail`
 * removed/restored apply to the resolution. Then ACME.TEST (AD2, the DC tests may stop) is restarted mid-watch
 * and a change made while postern reconnects is not lost, and the cache is not flushed.
 *
 * Each case creates its own AD objects (names with a random tag) and never touches the fixture users. The time
 * from the AD change to postern acting is printed (test diagnostics "measured ...") and only bounded by a
 * generous timeout: the machine is shared and loaded.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { ImapFlow } from 'imapflow';
import { Attribute, Change, Client } from 'ldapts';
import { parseConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/lib/logger.ts';
import { startServer, type Server } from '../../src/server.ts';
import { CachedDirectory } from '../../src/directory/cache.ts';
import { LdapDirectory } from '../../src/directory/ldap/ldap-directory.ts';
import type { UserEntry } from '../../src/directory/types.ts';
import { DirectoryWatch, type DirectoryChange } from '../../src/directory/watch.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { controlTestDc } from '../harness/samba.ts';
import { adDirectory, haveAd, ROOT, runCli, writeConfig } from '../helpers/cli.ts';
import { RawSmtp } from '../helpers/raw-smtp.ts';
import { waitFor } from '../helpers/wait.ts';

const skip = haveAd('AD') && haveAd('AD2') ? false : 'needs the Samba DCs: run through test/run.ts';
const CERT = join(ROOT, 'test/fixtures/tls/localhost.crt');
const KEY = join(ROOT, 'test/fixtures/tls/localhost.key');
const PASSWORD = 'Watch!Passw0rd';
/** Generous: a quiet run acts in about a second; the bound is for a loaded machine, not a performance claim. */
const ACT_TIMEOUT_MS = 30_000;
const TEST = { timeout: 180_000 };
const tag = () => randomBytes(3).toString('hex');

type Which = 'AD' | 'AD2';
const env = (which: Which, k: string) => process.env[`POSTERN_TEST_${which}_${k}`]!;

async function adminClient(which: Which): Promise<Client> {
  const c = new Client({ url: env(which, 'URL'), tlsOptions: { ca: readFileSync(env(which, 'CA')) }, timeout: 30_000, connectTimeout: 10_000 });
  await c.bind(env(which, 'ADMIN_DN'), env(which, 'ADMIN_PASSWORD'));
  return c;
}

const replace = (type: string, values: (string | Buffer)[]) => new Change({ operation: 'replace', modification: new Attribute({ type, values: values as string[] }) });
const add = (type: string, values: string[]) => new Change({ operation: 'add', modification: new Attribute({ type, values }) });
const del = (type: string, values: string[]) => new Change({ operation: 'delete', modification: new Attribute({ type, values }) });

/** FILETIME (100 ns since 1601) for accountExpires. */
const filetime = (d: Date) => String((BigInt(d.getTime()) + 11644473600000n) * 10000n);

interface AdUser {
  dn: string;
  login: string;
  address: string;
}

async function createUser(admin: Client, which: Which, name: string, mailDomain: string, extra: Record<string, string[]> = {}): Promise<AdUser> {
  const base = env(which, 'BASE');
  const dn = `CN=${name},CN=Users,${base}`;
  const address = `${name}@${mailDomain}`;
  await admin.add(dn, {
    objectClass: ['top', 'person', 'organizationalPerson', 'user'],
    sAMAccountName: name,
    userPrincipalName: `${name}@${env(which, 'REALM').toLowerCase()}`,
    mail: address,
    ...extra,
  });
  // unicodePwd: the password in double quotes, UTF-16LE (MS-ADTS §3.1.1.3.1.5.2); then enable the account.
  await admin.modify(dn, replace('unicodePwd', [Buffer.from(`"${PASSWORD}"`, 'utf16le')]));
  await admin.modify(dn, replace('userAccountControl', ['512']));
  return { dn, login: name, address };
}

interface Env {
  server: Server;
  changes: DirectoryChange[];
  dataDir: string;
}

async function startPostern(which: Which, directory: Record<string, unknown>): Promise<Env> {
  const dataDir = mkdtempSync(join(tmpdir(), 'postern-watch-'));
  const listener = { port: 0, host: '127.0.0.1' };
  const config = parseConfig(
    {
      hostname: 'mx.example.com',
      dataDir,
      directory: adDirectory(which, {
        // An hour: nothing but the watch makes a change visible within the test.
        cache: { ttlSeconds: 3600, negativeTtlSeconds: 3600 },
        ...directory,
      }),
      tls: { cert: CERT, key: KEY },
      listeners: { smtp: listener, submission: false, smtps: false, imap: false, imaps: listener, pop3: false, pop3s: listener, admin: false, http: false, https: false, managesieve: false },
      auth: { failureDelayMs: 0 },
    },
    '(test)',
    ROOT,
  );
  const server = await startServer(config, createLogger(process.env.POSTERN_TEST_LOG ? 'info' : 'silent'));
  server.core.settings.setMany({ 'filter.antivirus': false, 'filter.spam': false });
  for (const name of ['example.com', 'acme.io']) if (!server.core.settings.getDomain(name)) server.core.settings.addDomain({ name, type: 'local' });
  const changes: DirectoryChange[] = [];
  server.watch!.onChange((c) => changes.push(c));
  await waitFor('the directory watch to follow the DC', () => server.watch!.health().state === 'watching', { timeoutMs: 60_000, intervalMs: 100 });
  return { server, changes, dataDir };
}

/** The SMTP answer to RCPT TO on port 25 from outside (no relay: only local recipients are accepted). */
async function rcpt(server: Server, address: string): Promise<number> {
  const c = await RawSmtp.connect(server.ports.smtp, { timeoutMs: 20_000 });
  try {
    await c.ehlo('client.example.net');
    await c.command('MAIL FROM:<someone@outside.example>');
    return (await c.command(`RCPT TO:<${address}>`)).code;
  } finally {
    await c.command('QUIT').catch(() => undefined);
    c.close();
  }
}

async function openImap(server: Server, login: string): Promise<{ client: ImapFlow; closed: Promise<void> }> {
  const client = new ImapFlow({
    host: '127.0.0.1',
    port: server.ports.imaps,
    secure: true,
    tls: { rejectUnauthorized: false },
    auth: { user: login, pass: PASSWORD },
    logger: false,
  });
  client.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  await client.connect();
  await client.mailboxOpen('INBOX');
  return { client, closed };
}

/** A POP3S session in TRANSACTION state; `ended` resolves with everything the server sent after login. */
async function openPop3(server: Server, login: string): Promise<{ socket: TLSSocket; ended: Promise<string> }> {
  const socket = tlsConnect({ host: '127.0.0.1', port: server.ports.pop3s, rejectUnauthorized: false });
  let buf = '';
  socket.on('data', (d: Buffer) => (buf += d.toString('utf8')));
  socket.on('error', () => undefined);
  const line = (n: number) => waitFor(`POP3 reply ${n}`, () => buf.split('\r\n').length > n && buf, { timeoutMs: 20_000 });
  await line(1);
  socket.write(`USER ${login}\r\n`);
  await line(2);
  socket.write(`PASS ${PASSWORD}\r\n`);
  const got = await line(3);
  assert.match(got.split('\r\n')[2], /^\+OK/, `POP3 login: ${got}`);
  const mark = buf.length;
  const ended = new Promise<string>((resolve) => socket.once('close', () => resolve(buf.slice(mark))));
  return { socket, ended };
}

/** Waits for `condition` after an AD change made at `t0`, and reports the elapsed time. */
async function measure<T>(t: TestContext, what: string, t0: number, condition: () => Promise<T | false | undefined> | T | false | undefined): Promise<number> {
  await waitFor(what, condition, { timeoutMs: ACT_TIMEOUT_MS, intervalMs: 50 });
  const ms = Date.now() - t0;
  t.diagnostic(`measured ${what}: ${ms} ms`);
  return ms;
}

describe('directory watch: AD changes reach postern in seconds (CORP.EXAMPLE)', { skip }, () => {
  let env1: Env;
  let admin: Client;

  before(async () => {
    admin = await adminClient('AD');
    env1 = await startPostern('AD', { watch: { pollIntervalMs: 1000, deletedSweepSeconds: 2 } });
  });
  after(async () => {
    await env1?.server.close();
    await admin?.unbind().catch(() => undefined);
  });

  it('directory health names the mechanism, the last uSN and the invocationId of the watched DC', () => {
    const h = env1.server.watch!.health();
    assert.equal(h.state, 'watching');
    assert.equal(h.dcs[0].mechanism, 'usn-poll');
    assert.equal(h.dcs[0].state, 'watching');
    assert.ok((h.dcs[0].lastUsn ?? 0) > 0);
    assert.match(h.dcs[0].invocationId ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.equal(h.dcs[0].controls?.showDeleted, true);
  });

  it('postern directory health (another process) shows the watch of the serving process, per DC', TEST, async () => {
    const { file } = writeConfig({ dataDir: env1.dataDir, directory: adDirectory('AD') });
    const out = await waitFor('the watch state in directory health', async () => {
      const r = await runCli(['directory', 'health'], { config: file });
      return r.out.includes('watch: watching') && r.out;
    }, { timeoutMs: ACT_TIMEOUT_MS, intervalMs: 200 });
    assert.match(out, /^ldaps:\/\/[^:]+:636: up/m);
    assert.match(out, /^  ldaps:\/\/\S+: watching; mechanism usn-poll; last uSN \d+; invocationId [0-9a-f-]{36}; deletions by sweep; DC offers notification (yes|no), DirSync (yes|no)/m);
  });

  it('a user disabled in AD (userAccountControl 514) is refused at RCPT and loses its IMAP and POP3 sessions', TEST, async (t) => {
    const u = await createUser(admin, 'AD', `w-dis-${tag()}`, 'example.com');
    await waitFor('the new user to be seen', async () => (await rcpt(env1.server, u.address)) === 250, { timeoutMs: ACT_TIMEOUT_MS, intervalMs: 200 });
    const imap = await openImap(env1.server, u.login);
    const pop3 = await openPop3(env1.server, u.login);
    let imapClosedAt = 0;
    void imap.closed.then(() => (imapClosedAt = Date.now()));
    let pop3Closed: string | undefined;
    void pop3.ended.then((s) => (pop3Closed = s));
    const t0 = Date.now();
    await admin.modify(u.dn, replace('userAccountControl', ['514']));
    await measure(t, 'disable → RCPT refused', t0, async () => (await rcpt(env1.server, u.address)) === 550);
    await measure(t, 'disable → IMAP session closed', t0, () => imapClosedAt > 0);
    await measure(t, 'disable → POP3 session closed', t0, () => pop3Closed !== undefined);
    assert.match(pop3Closed!, /^-ERR .*account disabled/);
    const ev = env1.changes.find((c) => c.dn.toLowerCase() === u.dn.toLowerCase() && c.user?.disabled);
    assert.ok(ev, 'a change event with the disabled user');
    assert.match(ev.objectGUID ?? '', /^[0-9a-f-]{36}$/);
    t.diagnostic(`measured disable → watch event: ${ev.seenAt - t0} ms`);
    assert.equal(env1.server.sessions.count(u.login), 0);
  });

  it('a user whose accountExpires passes is refused at RCPT and loses its IMAP session', TEST, async (t) => {
    const u = await createUser(admin, 'AD', `w-exp-${tag()}`, 'example.com');
    await waitFor('the new user to be seen', async () => (await rcpt(env1.server, u.address)) === 250, { timeoutMs: ACT_TIMEOUT_MS, intervalMs: 200 });
    const imap = await openImap(env1.server, u.login);
    let closed = false;
    void imap.closed.then(() => (closed = true));
    const t0 = Date.now();
    await admin.modify(u.dn, replace('accountExpires', [filetime(new Date(Date.now() - 86_400_000))]));
    await measure(t, 'expire → RCPT refused', t0, async () => (await rcpt(env1.server, u.address)) === 550);
    await measure(t, 'expire → IMAP session closed', t0, () => closed);
  });

  it('a user locked out by bad passwords loses its IMAP session and still receives mail', TEST, async (t) => {
    const u = await createUser(admin, 'AD', `w-lock-${tag()}`, 'example.com');
    const base = env('AD', 'BASE');
    const imap = await openImap(env1.server, u.login);
    let closed = false;
    void imap.closed.then(() => (closed = true));
    // A lockout is made the way AD makes it: a domain threshold and that many failed binds (then the old
    // threshold back, so tests trying wrong passwords on other users lock nobody).
    const { searchEntries } = await admin.search(base, { scope: 'base', attributes: ['lockoutThreshold', 'lockoutDuration'] });
    const previous = [String(searchEntries[0].lockoutThreshold ?? '0'), String(searchEntries[0].lockoutDuration)];
    await admin.modify(base, [replace('lockoutThreshold', ['3']), replace('lockoutDuration', ['-9223372036854775808'])]);
    let t0 = 0;
    try {
      for (let i = 0; i < 3; i++) {
        const c = new Client({ url: env('AD', 'URL'), tlsOptions: { ca: readFileSync(env('AD', 'CA')) }, timeout: 30_000 });
        t0 = Date.now();
        await assert.rejects(c.bind(u.dn, `wrong-${i}`));
        await c.unbind().catch(() => undefined);
      }
    } finally {
      await admin.modify(base, [replace('lockoutThreshold', [previous[0]]), replace('lockoutDuration', [previous[1]])]);
    }
    await measure(t, 'lockout → IMAP session closed', t0, () => closed);
    const ev = env1.changes.find((c) => c.dn.toLowerCase() === u.dn.toLowerCase() && c.user?.locked);
    assert.ok(ev, 'a change event with the locked user');
    assert.equal(await rcpt(env1.server, u.address), 250, 'locked accounts still receive (DESIGN.md §3)');
  });

  it('a user deleted in AD (tombstones hidden from the service account: the sweep) is refused at RCPT and loses its session', TEST, async (t) => {
    assert.equal(env1.server.watch!.health().dcs[0].deletions, 'sweep', "AD's default: only administrators read CN=Deleted Objects");
    const u = await createUser(admin, 'AD', `w-del-${tag()}`, 'example.com');
    await waitFor('the new user to be seen', async () => (await rcpt(env1.server, u.address)) === 250, { timeoutMs: ACT_TIMEOUT_MS, intervalMs: 200 });
    const imap = await openImap(env1.server, u.login);
    let closed = false;
    void imap.closed.then(() => (closed = true));
    const t0 = Date.now();
    await admin.del(u.dn);
    await measure(t, 'delete → RCPT refused', t0, async () => (await rcpt(env1.server, u.address)) === 550);
    await measure(t, 'delete → IMAP session closed', t0, () => closed);
    const ev = env1.changes.find((c) => c.deleted && c.name?.toLowerCase() === u.login.toLowerCase());
    assert.ok(ev, 'a deletion event');
    assert.equal(ev.dn.toLowerCase(), u.dn.toLowerCase(), 'the DN the object had');
    assert.equal(ev.previous?.kind === 'user' && ev.previous.login, u.login);
  });

  it('an account that may read tombstones sees a deletion at once, with the objectGUID the object had', TEST, async (t) => {
    // The watch on its own (no server), bound as the domain administrator, who may list CN=Deleted Objects.
    const cfg = parseConfig({ dataDir: tmpdir(), directory: adDirectory('AD', { bindDN: env('AD', 'ADMIN_DN'), bindPassword: env('AD', 'ADMIN_PASSWORD'), watch: { pollIntervalMs: 500 } }) }, '(test)', ROOT).directory;
    const backend = new LdapDirectory(cfg, silentLogger);
    const cache = new CachedDirectory(backend, cfg.cache, silentLogger);
    const watch = new DirectoryWatch(backend, cache, cfg.watch, silentLogger);
    const seen: DirectoryChange[] = [];
    watch.onChange((c) => seen.push(c));
    try {
      await watch.start();
      assert.equal(watch.health().dcs[0].deletions, 'tombstones');
      const u = await createUser(admin, 'AD', `w-tomb-${tag()}`, 'example.com');
      const created = await waitFor('the creation event', () => seen.find((c) => c.user?.login === u.login), { timeoutMs: ACT_TIMEOUT_MS });
      assert.equal(((await cache.findAddress(u.address)) as UserEntry | null)?.dn, u.dn);
      const t0 = Date.now();
      await admin.del(u.dn);
      const ev = await waitFor('the deletion event', () => seen.find((c) => c.deleted && c.name === u.login), { timeoutMs: ACT_TIMEOUT_MS });
      t.diagnostic(`measured delete (tombstone) → watch event: ${ev.seenAt - t0} ms`);
      assert.equal(ev.objectGUID, created.objectGUID);
      assert.equal(ev.dn, u.dn, 'the DN it had, from the cache');
      assert.equal(ev.user, undefined);
    } finally {
      await watch.stop();
      await cache.close();
    }
  });

  it('an address added to proxyAddresses is accepted although "unknown" was cached for an hour', TEST, async (t) => {
    const u = await createUser(admin, 'AD', `w-addr-${tag()}`, 'example.com');
    const alias = `${u.login}-alias@example.com`;
    assert.equal(await rcpt(env1.server, alias), 550, 'not an address yet (and now cached as unknown)');
    const t0 = Date.now();
    await admin.modify(u.dn, add('proxyAddresses', [`smtp:${alias}`]));
    await measure(t, 'proxyAddress added → RCPT accepted', t0, async () => (await rcpt(env1.server, alias)) === 250);
  });

  it('a member added to a group, and the group losing and regaining its mail attribute, apply at once', TEST, async (t) => {
    const a = await createUser(admin, 'AD', `w-ga-${tag()}`, 'example.com');
    const b = await createUser(admin, 'AD', `w-gb-${tag()}`, 'example.com');
    const name = `w-grp-${tag()}`;
    const gdn = `CN=${name},CN=Users,${env('AD', 'BASE')}`;
    const address = `${name}@example.com`;
    // Global distribution group (groupType 2, no security bit).
    await admin.add(gdn, { objectClass: ['top', 'group'], sAMAccountName: name, groupType: '2', mail: address, member: [a.dn] });
    const resolve = () => env1.server.core.resolver.resolve(address, {});
    const members = async () => {
      const r = await resolve();
      return r.kind === 'list' ? r.members.map((m) => m.login).sort() : [];
    };
    await waitFor('the group to resolve', async () => (await members()).length === 1, { timeoutMs: ACT_TIMEOUT_MS });
    let t0 = Date.now();
    await admin.modify(gdn, add('member', [b.dn]));
    await measure(t, 'member added → list expanded', t0, async () => (await members()).length === 2);
    assert.deepEqual(await members(), [a.login, b.login].sort());

    t0 = Date.now();
    await admin.modify(gdn, del('mail', [address]));
    await measure(t, 'group mail removed → RCPT refused', t0, async () => (await rcpt(env1.server, address)) === 550);
    t0 = Date.now();
    await admin.modify(gdn, replace('mail', [address]));
    await measure(t, 'group mail restored → RCPT accepted', t0, async () => (await rcpt(env1.server, address)) === 250);

    // A member disabled in AD leaves the list (the group's cached member list held the enabled entry).
    t0 = Date.now();
    await admin.modify(b.dn, replace('userAccountControl', ['514']));
    await measure(t, 'member disabled → left the list', t0, async () => (await members()).length === 1);
  });
});

describe('directory watch: a DC restarted mid-watch (ACME.TEST)', { skip }, () => {
  let env2: Env;
  let admin: Client;

  before(async () => {
    admin = await adminClient('AD2');
    // retrySeconds long enough that the change below is made while postern is still reconnecting.
    env2 = await startPostern('AD2', { watch: { pollIntervalMs: 1000, retrySeconds: 10 }, dcRetrySeconds: 1 });
  });
  after(async () => {
    await controlTestDc('start').catch(() => undefined);
    await env2?.server.close();
    await admin?.unbind().catch(() => undefined);
  });

  it('resumes from the last uSN on the same DC: a change made while reconnecting is applied, the cache is kept', TEST, async (t) => {
    const { server } = env2;
    const u = await createUser(admin, 'AD2', `w-rs-${tag()}`, 'acme.io');
    await waitFor('the new user to be seen', async () => (await rcpt(server, u.address)) === 250, { timeoutMs: ACT_TIMEOUT_MS, intervalMs: 200 });
    // A fixture user looked up (and so cached) before the restart.
    assert.equal((await server.core.resolver.resolve('alice@acme.io', {})).kind, 'mailbox');
    const before = server.watch!.health().dcs[0];
    await admin.unbind().catch(() => undefined);

    await controlTestDc('stop');
    await waitFor('the watch to notice the DC went away', () => server.watch!.health().dcs[0].state === 'down', { timeoutMs: 60_000, intervalMs: 100 });
    await controlTestDc('start');
    admin = await adminClient('AD2');
    const resumesAtChange = server.watch!.health().dcs[0].resumes;
    const t0 = Date.now();
    await admin.modify(u.dn, replace('userAccountControl', ['514']));
    t.diagnostic(`change made ${resumesAtChange === before.resumes ? 'before' : 'after'} postern reconnected`);
    await measure(t, 'DC restart: disable made while reconnecting → RCPT refused', t0, async () => {
      const r = await server.core.resolver.resolve(u.address, {});
      return r.kind === 'invalid' && r.reason === 'disabled';
    });
    assert.equal(await rcpt(server, u.address), 550);
    const h = server.watch!.health();
    assert.equal(h.dcs[0].invocationId, before.invocationId, 'the same DC database');
    assert.equal(h.dcs[0].resumes, before.resumes + 1, 'resumed from the last uSN');
    assert.equal(h.failovers, 0);
    assert.ok((h.dcs[0].lastUsn ?? 0) > (before.lastUsn ?? 0));
    // Not flushed: the fixture user cached before the restart is still a cache hit.
    const misses = server.core.directory.cacheStats().misses;
    assert.equal((await server.core.resolver.resolve('alice@acme.io', {})).kind, 'mailbox');
    assert.equal(server.core.directory.cacheStats().misses, misses, 'answered from the cache kept across the restart');
  });
});
