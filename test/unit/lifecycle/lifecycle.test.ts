/**
 * Mailbox identity and lifecycle (issue 13) on the LDIF directory: the objectGUID codec, the registry (legacy
 * mailboxes claimed in place, new ones at users/<guid>), renames, orphaning, the retention, erase and — what a Samba
 * DC without the recycle bin cannot show — an account that comes back with the same objectGUID.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeGuid, encodeGuid, guidFilterValue, isGuid } from '../../../src/directory/guid.ts';
import { LdifDirectory } from '../../../src/directory/ldif/ldif-directory.ts';
import { parseLdif } from '../../../src/directory/ldif/parse.ts';
import type { Directory, UserEntry } from '../../../src/directory/types.ts';
import { TempFailure } from '../../../src/lib/errors.ts';
import { silentLogger } from '../../../src/lib/logger.ts';
import { mailboxEnabled, migrateLoginMailboxes, reconcileMailboxes, type LifecycleDeps } from '../../../src/lifecycle/lifecycle.ts';
import { MailboxRegistry } from '../../../src/lifecycle/registry.ts';
import { Resolver } from '../../../src/resolver/resolver.ts';
import { openSettings, type Settings } from '../../../src/settings/store.ts';
import { MaildirStore } from '../../../src/store/maildir.ts';
import { userOwner } from '../../../src/store/types.ts';

const DAY = 24 * 60 * 60 * 1000;
const G_ALICE = '0f1e2d3c-4b5a-4697-8877-665544332211';
const G_ALICE2 = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
const G_BOB = '11111111-2222-4333-8444-555555555555';

function b64(guid: string): string {
  return encodeGuid(guid).toString('base64');
}

function userLdif(cn: string, login: string, guid: string, mail: string): string {
  return `dn: CN=${cn},OU=Staff,DC=corp,DC=example
objectClass: user
objectGUID:: ${b64(guid)}
sAMAccountName: ${login}
mail: ${mail}
userAccountControl: 512
`;
}

const GROUP = (members: string[]) => `dn: CN=MailUsers,OU=Groups,DC=corp,DC=example
objectClass: group
objectGUID:: ${b64('99999999-8888-4777-8666-555555555555')}
sAMAccountName: MailUsers
${members.map((m) => `member: CN=${m},OU=Staff,DC=corp,DC=example`).join('\n')}
`;

function ldif(...entries: string[]): LdifDirectory {
  return new LdifDirectory(parseLdif(entries.join('\n')), 'test', { userPrincipalNameIsAddress: false });
}

/** A directory the test swaps (an AD admin deleting, renaming, restoring accounts). */
class Swappable {
  constructor(public current: Directory) {}
  findGuid = (g: string) => this.current.findGuid(g);
  findLogin = (l: string) => this.current.findLogin(l);
  findGroup = (n: string) => this.current.findGroup(n);
  groupsOf = (u: UserEntry) => this.current.groupsOf(u);
}

function fixture(t: { after(fn: () => void): void }, initial: Directory) {
  const dir = mkdtempSync(join(tmpdir(), 'postern-lifecycle-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const settings: Settings = openSettings(dir);
  t.after(() => settings.close());
  settings.addDomain({ name: 'example.com', type: 'local' });
  const root = join(dir, 'mail');
  let clock = Date.parse('2026-01-10T12:00:00Z');
  const registry = new MailboxRegistry({ root, settings, now: () => new Date(clock) });
  const store = new MaildirStore({ root, hostname: 'mx.example.com', locate: (o) => registry.locate(o) });
  const directory = new Swappable(initial);
  const deps: LifecycleDeps = { registry, directory, settings, log: silentLogger, now: () => clock };
  return {
    root,
    settings,
    registry,
    store,
    directory,
    deps,
    advance: (ms: number) => (clock += ms),
    async user(login: string): Promise<UserEntry> {
      const u = await directory.current.findLogin(login);
      assert.ok(u, login);
      return u;
    },
  };
}

const msg = (s: string) => Buffer.from(`From: a@b.example\r\nSubject: ${s}\r\n\r\nbody\r\n`);

test('objectGUID: the 16 bytes AD stores ↔ the canonical form, and the filter value escapes every byte', () => {
  // [MS-DTYP] §2.3.4.2: the first three fields little-endian. A value as `samba-tool user show` prints it.
  const bytes = Buffer.from('d87df325b62a494b907bc9d2c56ab49c', 'hex');
  assert.equal(decodeGuid(bytes), '25f37dd8-2ab6-4b49-907b-c9d2c56ab49c');
  assert.deepEqual(encodeGuid('25F37DD8-2AB6-4B49-907B-C9D2C56AB49C'), bytes);
  assert.equal(guidFilterValue('25f37dd8-2ab6-4b49-907b-c9d2c56ab49c'), '\\d8\\7d\\f3\\25\\b6\\2a\\49\\4b\\90\\7b\\c9\\d2\\c5\\6a\\b4\\9c');
  assert.equal(decodeGuid(Buffer.alloc(15)), undefined);
  assert.throws(() => encodeGuid('*)(objectClass=*'), RangeError);
  assert.equal(isGuid('25f37dd8-2ab6-4b49-907b-c9d2c56ab49c'), true);
  assert.equal(isGuid('john.smith'), false);
});

test('the fixture directory carries objectGUIDs, and findGuid finds users and groups by them', async () => {
  const dir = LdifDirectory.fromFile(join(import.meta.dirname, '../../../fixtures/ad/corp.ldif'), { userPrincipalNameIsAddress: true });
  const john = await dir.findLogin('john.smith');
  assert.equal(john?.guid, '25f37dd8-2ab6-4b49-907b-c9d2c56ab49c');
  assert.equal((await dir.findGuid(john!.guid!.toUpperCase()))?.dn, john!.dn);
  const users = await dir.listUsers();
  assert.ok(users.every((u) => u.guid && isGuid(u.guid)), 'every fixture user has an objectGUID');
  assert.equal(new Set(users.map((u) => u.guid)).size, users.length, 'objectGUIDs are unique');
  const sales = await dir.findGroup('Sales');
  assert.ok(sales?.guid && (await dir.findGuid(sales.guid))?.kind === 'group');
  assert.equal(await dir.findGuid('00000000-0000-4000-8000-000000000000'), null);
});

test('a renamed account keeps its mailbox and overrides; a new account with the reused login starts empty', async (t) => {
  const fx = fixture(t, ldif(userLdif('Alice', 'alice', G_ALICE, 'alice@example.com')));
  const alice = await fx.user('alice');
  await fx.store.deliver(userOwner(alice), msg('for the first alice'));
  assert.equal(fx.registry.get(G_ALICE)?.dir, `users/${G_ALICE}`);
  fx.settings.setUser('alice', { quotaMB: 77, forward: 'alice@home.example' });

  // The AD admin renames the account (same objectGUID) and gives the old login to a new person.
  fx.directory.current = ldif(userLdif('Alice', 'alice.old', G_ALICE, 'alice.old@example.com'), userLdif('Alice Two', 'alice', G_ALICE2, 'alice@example.com'));
  const renamed = await fx.user('alice.old');
  assert.equal(await mailboxEnabled(fx.deps, renamed), true);
  assert.equal(fx.registry.get(G_ALICE)?.login, 'alice.old');
  assert.equal(fx.settings.getUser('alice.old')?.quotaMB, 77, 'the overrides follow the rename');
  assert.equal(fx.settings.getUser('alice'), null, 'the reused login has none');
  assert.equal(readdirSync(join(fx.store.maildirPath(userOwner(renamed)), 'new')).length, 1);

  const newcomer = await fx.user('alice');
  assert.equal(await mailboxEnabled(fx.deps, newcomer), true);
  assert.notEqual(fx.store.maildirPath(userOwner(newcomer)), fx.store.maildirPath(userOwner(renamed)));
  assert.equal(existsSync(fx.store.maildirPath(userOwner(newcomer))), false, 'the new account starts empty');
  // A login-only owner (a message queued before the upgrade) is the active account with that login.
  assert.equal(fx.store.maildirPath({ kind: 'user', login: 'ALICE.OLD' }), fx.store.maildirPath(userOwner(renamed)));
});

test('migration: login-keyed mailboxes are claimed in place by their AD object, once; unknown logins are left alone', async (t) => {
  const fx = fixture(t, ldif(userLdif('Alice', 'alice', G_ALICE, 'alice@example.com'), userLdif('Bob', 'bob', G_BOB, 'bob@example.com')));
  const legacy = new MaildirStore({ root: fx.root, hostname: 'mx.example.com' });
  await legacy.deliver({ kind: 'user', login: 'Alice' }, msg('old mail'));
  await legacy.deliver({ kind: 'user', login: 'ghost' }, msg('nobody'));
  const r1 = await migrateLoginMailboxes(fx.deps, fx.root);
  assert.deepEqual(r1, { claimed: 1, unknown: ['ghost'] });
  assert.equal(fx.registry.get(G_ALICE)?.dir, 'users/alice');
  assert.deepEqual(await migrateLoginMailboxes(fx.deps, fx.root), { claimed: 0, unknown: ['ghost'] }, 'idempotent');
  const alice = await fx.user('alice');
  assert.equal(readdirSync(join(fx.store.maildirPath(userOwner(alice)), 'new')).length, 1, 'the old mail is in the mailbox');
  // Bob had no mailbox: his is made under his objectGUID, not his login.
  assert.equal(fx.store.maildirPath(userOwner(await fx.user('bob'))), join(fx.root, 'users', G_BOB, 'Maildir'));
  // A directory that cannot answer stops the migration; nothing is claimed wrongly.
  const down = { ...fx.deps, directory: { ...fx.directory, findLogin: async () => Promise.reject(new TempFailure('AD down')) } };
  await legacy.deliver({ kind: 'user', login: 'carol' }, msg('x'));
  assert.deepEqual(await migrateLoginMailboxes(down, fx.root), { claimed: 0, unknown: [] });
});

test('an account gone from AD: orphaned (overrides held), refused, erased after the retention; one that comes back gets it back', async (t) => {
  const both = () => ldif(userLdif('Alice', 'alice', G_ALICE, 'alice@example.com'), userLdif('Bob', 'bob', G_BOB, 'bob@example.com'));
  const fx = fixture(t, both());
  const alice = await fx.user('alice');
  const bob = await fx.user('bob');
  await fx.store.deliver(userOwner(alice), msg('keep me'));
  await fx.store.deliver(userOwner(bob), msg('bob'));
  fx.settings.setUser('alice', { quotaMB: 5 });
  fx.settings.set('mailbox.deletedAccountRetentionDays', 30);
  const resolver = new Resolver(fx.directory.current, fx.settings, { groupDelivery: 'distribution', mailboxEnabled: (u) => mailboxEnabled(fx.deps, u) });

  fx.directory.current = ldif(userLdif('Bob', 'bob', G_BOB, 'bob@example.com'));
  const r = await reconcileMailboxes(fx.deps);
  assert.deepEqual(r.orphaned, [G_ALICE]);
  assert.equal(fx.registry.listOrphaned()[0]?.login, 'alice');
  assert.equal(fx.settings.getUser('alice'), null, 'held aside: a new "alice" must not inherit them');
  // The cache may still hold the deleted account: the orphan mark refuses it (550 5.1.1 through the resolver).
  assert.equal(await mailboxEnabled(fx.deps, alice), false);
  assert.deepEqual(await resolver.resolve('alice@example.com').then((x) => [x.kind, x.kind === 'invalid' && x.reason]), ['invalid', 'unknown']);
  assert.equal((await resolver.resolve('bob@example.com')).kind, 'mailbox');

  fx.advance(29 * DAY);
  assert.deepEqual((await reconcileMailboxes(fx.deps)).erased, []);
  assert.ok(existsSync(fx.store.maildirPath(userOwner(alice))), 'kept within the retention');

  // AD recycle bin: the same objectGUID comes back (maybe under another name): mailbox and overrides are back.
  fx.directory.current = ldif(userLdif('Alice', 'alice.r', G_ALICE, 'alice@example.com'), userLdif('Bob', 'bob', G_BOB, 'bob@example.com'));
  const back = await fx.user('alice.r');
  assert.equal(await mailboxEnabled(fx.deps, back), true, 'a login checks AD itself and restores at once');
  assert.equal(fx.registry.get(G_ALICE)?.orphanedAt, undefined);
  assert.equal(fx.settings.getUser('alice.r')?.quotaMB, 5);
  assert.equal(readdirSync(join(fx.store.maildirPath(userOwner(back)), 'new')).length, 1);

  // Deleted again, and the retention passes: erased, files and row.
  fx.directory.current = ldif(userLdif('Bob', 'bob', G_BOB, 'bob@example.com'));
  assert.deepEqual((await reconcileMailboxes(fx.deps)).orphaned, [G_ALICE]);
  fx.advance(30 * DAY);
  assert.deepEqual((await reconcileMailboxes(fx.deps)).erased, [G_ALICE]);
  assert.equal(fx.registry.get(G_ALICE), undefined);
  assert.equal(existsSync(join(fx.root, 'users', G_ALICE)), false);
  assert.ok(existsSync(fx.store.maildirPath(userOwner(bob))), 'the others are untouched');
  assert.deepEqual(readdirSync(fx.root).filter((n) => n.startsWith('.erasing')), []);
});

test('retention 0 erases at once (the seed); a directory that cannot answer changes nothing; an empty answer for everyone is not believed', async (t) => {
  const three = [userLdif('A', 'a', G_ALICE, 'a@example.com'), userLdif('B', 'b', G_BOB, 'b@example.com'), userLdif('C', 'c', G_ALICE2, 'c@example.com')];
  const fx = fixture(t, ldif(...three));
  for (const l of ['a', 'b', 'c']) await fx.store.deliver(userOwner(await fx.user(l)), msg(l));
  fx.settings.set('mailbox.deletedAccountRetentionDays', 0);

  fx.directory.current = { ...fx.directory.current, findGuid: async () => Promise.reject(new TempFailure('every DC down')) } as Directory;
  const down = await reconcileMailboxes(fx.deps);
  assert.equal(down.tempFailed, true);
  assert.deepEqual([down.orphaned, fx.registry.listOrphaned()], [[], []]);

  fx.directory.current = ldif();
  const empty = await reconcileMailboxes(fx.deps);
  assert.deepEqual(empty.orphaned, [], 'no account found at all: a wrong base DN, not three deletions');

  fx.directory.current = ldif(three[0]!, three[2]!);
  const one = await reconcileMailboxes(fx.deps);
  assert.deepEqual([one.orphaned, one.erased], [[G_BOB], [G_BOB]]);
  assert.equal(existsSync(join(fx.root, 'users', G_BOB)), false);
});

test('mailbox.enabledGroup: only members (nested) have a mailbox; a group that does not exist gives nobody one', async (t) => {
  const dir = () =>
    ldif(userLdif('Alice', 'alice', G_ALICE, 'alice@example.com'), userLdif('Bob', 'bob', G_BOB, 'bob@example.com'), GROUP(['Alice']));
  const fx = fixture(t, dir());
  const alice = await fx.user('alice');
  const bob = await fx.user('bob');
  assert.equal(await mailboxEnabled(fx.deps, bob), true, "'' = every enabled account");
  fx.settings.set('mailbox.enabledGroup', 'mailusers');
  assert.equal(await mailboxEnabled(fx.deps, alice), true);
  assert.equal(await mailboxEnabled(fx.deps, bob), false);
  const resolver = new Resolver(fx.directory.current, fx.settings, { groupDelivery: 'distribution', mailboxEnabled: (u) => mailboxEnabled(fx.deps, u) });
  const r = await resolver.resolve('bob@example.com');
  assert.equal(r.kind === 'invalid' && r.reason, 'unknown');
  fx.settings.set('mailbox.enabledGroup', 'NoSuchGroup');
  assert.equal(await mailboxEnabled(fx.deps, alice), false);
});
