/**
 * Mailbox identity and account lifecycle against the real Samba AD DC (issue 13 items 1 and 2): the mailbox belongs
 * to the account's objectGUID. A renamed sAMAccountName keeps its mail; a new account with the reused login starts
 * empty; a deleted account's mailbox is orphaned (550 5.1.1 at RCPT, login refused, listed) and, when the DC
 * reanimates the tombstone (same objectGUID), comes back; `mailbox.enabledGroup` restricts who has a mailbox.
 *
 * Every account here is made by this test (as Administrator, with a random suffix): the fixture users other tests
 * rely on are not touched.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { Attribute, Change, Client, Control, EqualityFilter } from 'ldapts';
import { parseConfig } from '../../src/config/load.ts';
import { encodeGuid } from '../../src/directory/guid.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { startServer, type Server } from '../../src/server.ts';
import { adAdminClient, addAdUser, guidOf, probeRcpt, sendFromOutside, SHOW_DELETED } from '../helpers/ad-accounts.ts';
import { adDirectory, haveAd, ROOT } from '../helpers/cli.ts';
import { imapLogin, pop3Login } from '../helpers/logins.ts';
import { waitFor } from '../helpers/wait.ts';

const skip = haveAd('AD') ? false : 'needs the Samba DCs: run through test/run.ts';
const env = process.env;
const PASSWORD = 'Lifecycle!Pass1';
const SUFFIX = randomBytes(3).toString('hex');
const BASE = env.POSTERN_TEST_AD_BASE ?? 'DC=corp,DC=example';
const OU = `OU=Lifecycle ${SUFFIX},${BASE}`;

const dnOf = (cn: string) => `CN=${cn},${OU}`;
const addUser = (ldap: Client, cn: string, login: string, mail: string) => addAdUser(ldap, dnOf(cn), login, PASSWORD, mail);
const rcpt = async (port: number, to: string): Promise<number> => (await probeRcpt(port, to, 30_000)).code;
const send = (port: number, to: string, subject: string) => sendFromOutside(port, to, subject, 30_000);

async function inboxCount(port: number, user: string): Promise<number> {
  const c = new ImapFlow({ host: '127.0.0.1', port, secure: true, tls: { rejectUnauthorized: false }, auth: { user, pass: PASSWORD }, logger: false });
  c.on('error', () => undefined);
  await c.connect();
  try {
    const st = await c.status('INBOX', { messages: true });
    return st ? (st.messages ?? -1) : -1;
  } finally {
    await c.logout().catch(() => c.close());
  }
}

describe('mailbox identity and lifecycle against Samba AD', { skip, timeout: 600_000 }, () => {
  let server: Server;
  let ldap: Client;
  let dataDir: string;
  const mail = (l: string) => `${l}@example.com`;
  const A = `lca${SUFFIX}`; // renamed to A2, then its login reused by a new account
  const A2 = `lcb${SUFFIX}`;
  const M = `lcm${SUFFIX}`; // member of the mailbox group
  const N = `lcn${SUFFIX}`; // not a member
  const GROUP = `LcMail${SUFFIX}`;

  before(async () => {
    ldap = adAdminClient();
    await ldap.bind(env.POSTERN_TEST_AD_ADMIN_DN!, env.POSTERN_TEST_AD_ADMIN_PASSWORD!);
    await ldap.add(OU, [new Attribute({ type: 'objectClass', values: ['top', 'organizationalUnit'] })]);
    dataDir = mkdtempSync(join(tmpdir(), 'postern-lifecycle-ad-'));
    const listener = { port: 0, host: '127.0.0.1' };
    const config = parseConfig(
      {
        hostname: 'mx.example.com',
        dataDir,
        // A short cache so that group changes show; the orphan refusal must not depend on it (tested below).
        directory: adDirectory('AD', { cache: { ttlSeconds: 1, negativeTtlSeconds: 1 } }),
        tls: { cert: join(ROOT, 'test/fixtures/tls/localhost.crt'), key: join(ROOT, 'test/fixtures/tls/localhost.key') },
        listeners: { smtp: listener, submission: false, smtps: false, imap: false, imaps: listener, pop3: false, pop3s: listener, admin: false, http: false, https: false, managesieve: false },
        auth: { failureDelayMs: 0 },
      },
      '(test)',
      ROOT,
    );
    server = await startServer(config, silentLogger);
    server.core.settings.addDomain({ name: 'example.com', type: 'local' });
    server.core.settings.set('filter.antivirus', false);
    server.core.settings.set('filter.spam', false);
  });

  after(async () => {
    await server?.close();
    if (ldap) {
      // Leave the DC as we found it: our accounts and OU (leaves first).
      for (const cn of ['A', 'A new', 'M', 'N', GROUP]) await ldap.del(dnOf(cn)).catch(() => undefined);
      await ldap.del(OU).catch(() => undefined);
      await ldap.unbind().catch(() => undefined);
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('the mailbox is keyed by the objectGUID read from AD; a rename keeps it; a new account with the reused login starts empty', async () => {
    await addUser(ldap, 'A', A, mail(A));
    const guid = await guidOf(ldap, dnOf('A'));
    await send(server.ports.smtp!, mail(A), 'before the rename');
    const rec = await waitFor('the mailbox registered to the objectGUID', () => server.core.registry.get(guid));
    assert.equal(rec.dir, `users/${guid}`);
    await waitFor('the delivery', () => existsSync(join(dataDir, 'mail', rec.dir, 'Maildir/new')) && readdirSync(join(dataDir, 'mail', rec.dir, 'Maildir/new')).length === 1, { timeoutMs: 60_000 });
    server.core.settings.setUser(A, { quotaMB: 42 });

    // The AD admin renames the account and its address.
    await ldap.modify(dnOf('A'), [
      new Change({ operation: 'replace', modification: new Attribute({ type: 'sAMAccountName', values: [A2] }) }),
      new Change({ operation: 'replace', modification: new Attribute({ type: 'mail', values: [mail(A2)] }) }),
    ]);
    assert.equal(await inboxCount(server.ports.imaps!, A2), 1, 'the renamed account logs in and sees its mail');
    assert.equal(server.core.registry.get(guid)?.login, A2);
    assert.equal(server.core.settings.getUser(A2)?.quotaMB, 42, 'its overrides follow the rename');
    assert.equal(await rcpt(server.ports.smtp!, mail(A2)), 250);

    // A new person gets the old login and address: a mailbox of their own, empty, without the old overrides.
    await addUser(ldap, 'A new', A, mail(A));
    const newGuid = await guidOf(ldap, dnOf('A new'));
    assert.notEqual(newGuid, guid);
    assert.equal(await inboxCount(server.ports.imaps!, A), 0);
    assert.equal(server.core.settings.getUser(A), null);
    assert.equal(server.core.registry.get(newGuid)?.dir, `users/${newGuid}`);
  });

  it('a deleted account: orphaned, 550 5.1.1 at RCPT, logins refused, listed; a reanimated tombstone gets it back', async () => {
    const untilReconciled = (what: string, done: () => boolean) =>
      waitFor(what, async () => (await server.core.lifecycle.reconcile(), done()) || undefined, { timeoutMs: 60_000 });
    const guid = await guidOf(ldap, dnOf('A'));
    assert.equal(await rcpt(server.ports.smtp!, mail(A2)), 250, 'warms the cache with the account');
    await ldap.del(dnOf('A'));
    // Two paths act on the change: the server's directory watch reconciles the account's objectGUID as soon as it
    // sees the deletion (src/server.ts), and this test's reconcile. Whichever runs first does it, so the test waits
    // for the state, not for its own run to be the one that changed it.
    await untilReconciled('the deleted account orphaned', () => server.core.registry.get(guid)?.orphanedAt !== undefined);
    assert.deepEqual(
      server.core.registry.listOrphaned().map((o) => [o.guid, o.login]),
      [[guid, A2]],
    );
    assert.equal(await rcpt(server.ports.smtp!, mail(A2)), 550);
    assert.notEqual(await imapLogin(server.ports.imaps!, A2, PASSWORD), true);
    assert.notEqual(await pop3Login(server.ports.pop3s!, A2, PASSWORD), true);
    assert.equal(await inboxCount(server.ports.imaps!, A), 0, 'the account that reuses the login is unaffected');
    const maildir = join(dataDir, 'mail', `users/${guid}`, 'Maildir');
    assert.ok(existsSync(maildir), 'kept for the retention (30 days by default)');

    // Samba keeps the objectGUID in the tombstone; reanimating it ([MS-ADTS] §3.1.1.5.3.7.2: remove isDeleted,
    // give a DN back, with the show-deleted control) is what an AD recycle-bin restore does for our purpose.
    const { searchEntries } = await ldap.search(BASE, {
      scope: 'sub',
      filter: new EqualityFilter({ attribute: 'objectGUID', value: encodeGuid(guid) }),
      attributes: ['distinguishedName'],
    }, new Control(SHOW_DELETED));
    const tombstone = searchEntries[0]?.dn;
    assert.ok(tombstone, 'the tombstone is visible with the show-deleted control');
    await ldap.modify(
      tombstone,
      [
        new Change({ operation: 'delete', modification: new Attribute({ type: 'isDeleted' }) }),
        new Change({ operation: 'replace', modification: new Attribute({ type: 'distinguishedName', values: [dnOf('A')] }) }),
      ],
      new Control(SHOW_DELETED),
    );
    assert.equal(await guidOf(ldap, dnOf('A')), guid, 'same objectGUID after reanimation');
    await untilReconciled('the reanimated account restored', () => server.core.registry.get(guid)?.orphanedAt === undefined);
    assert.equal(server.core.registry.get(guid)?.orphanedAt, undefined);
    assert.equal(readdirSync(join(maildir, 'new')).length + readdirSync(join(maildir, 'cur')).length, 1, 'the mail is still there');

    // Deleted again with a retention of 0 days (the seed): erased at once.
    await ldap.del(dnOf('A'));
    server.core.settings.set('mailbox.deletedAccountRetentionDays', 0);
    await untilReconciled('the mailbox erased', () => server.core.registry.get(guid) === undefined && !existsSync(maildir));
    server.core.settings.set('mailbox.deletedAccountRetentionDays', 30);
  });

  it('mailbox.enabledGroup: only members get mail and log in; adding a member gives them a mailbox', async () => {
    await addUser(ldap, 'M', M, mail(M));
    await addUser(ldap, 'N', N, mail(N));
    await ldap.add(dnOf(GROUP), [
      new Attribute({ type: 'objectClass', values: ['top', 'group'] }),
      new Attribute({ type: 'sAMAccountName', values: [GROUP] }),
      new Attribute({ type: 'member', values: [dnOf('M')] }),
    ]);
    server.core.settings.set('mailbox.enabledGroup', GROUP);
    try {
      assert.equal(await rcpt(server.ports.smtp!, mail(M)), 250);
      assert.equal(await rcpt(server.ports.smtp!, mail(N)), 550);
      assert.equal(await imapLogin(server.ports.imaps!, M, PASSWORD), true);
      assert.notEqual(await imapLogin(server.ports.imaps!, N, PASSWORD), true);
      await ldap.modify(dnOf(GROUP), [new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [dnOf('N')] }) })]);
      await waitFor('N to be a member (cache TTL 1 s)', async () => (await rcpt(server.ports.smtp!, mail(N))) === 250, { timeoutMs: 60_000, intervalMs: 500 });
      assert.equal(await imapLogin(server.ports.imaps!, N, PASSWORD), true);
    } finally {
      server.core.settings.set('mailbox.enabledGroup', '');
    }
  });
});
