/**
 * The cache operations the directory watch (src/directory/watch.ts) uses, the session registry it drives and the
 * rule for which changes end sessions. The watch itself is tested against Samba AD in
 * test/integration/directory-watch-ad.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CachedDirectory } from '../../../src/directory/cache.ts';
import type { Directory, DirectoryEntry, GroupEntry, UserEntry } from '../../../src/directory/types.ts';
import { endsSessions, formatGuid, generalizedTime, type DirectoryChange } from '../../../src/directory/watch.ts';
import { SessionRegistry } from '../../../src/lib/session-registry.ts';
import { silentLogger } from '../../../src/lib/logger.ts';

const user = (login: string, over: Partial<UserEntry> = {}): UserEntry => ({
  kind: 'user', dn: `CN=${login},DC=x`, login, addresses: [`${login}@example.com`], primaryAddress: `${login}@example.com`,
  disabled: false, expired: false, locked: false, mustChangePassword: false, enabled: true, canLogin: true, memberOf: [], ...over,
});
const staff: GroupEntry = { kind: 'group', dn: 'CN=staff,DC=x', name: 'staff', addresses: ['staff@example.com'], mailEnabled: true };

function backendOf(entries: Map<string, DirectoryEntry>, members: UserEntry[]) {
  const calls = { findAddress: 0, members: 0 };
  const gate: { wait?: Promise<void> } = {};
  const backend = {
    async findAddress(a: string) {
      calls.findAddress++;
      const value = entries.get(a) ?? null;
      await gate.wait;
      return value;
    },
    async findLogin(l: string) {
      return [...entries.values()].find((e): e is UserEntry => e.kind === 'user' && e.login === l) ?? null;
    },
    async members() {
      calls.members++;
      return members;
    },
  } as unknown as Directory;
  return { backend, calls, gate };
}

const opts = { ttlSeconds: 3600, negativeTtlSeconds: 3600, max: 1000, staleIfErrorSeconds: 3600 };

test('dropWhere drops only the answers that mention the object (single entries and member lists)', async () => {
  const ann = user('ann');
  const bob = user('bob');
  const entries = new Map<string, DirectoryEntry>([['ann@example.com', ann], ['bob@example.com', bob], ['staff@example.com', staff]]);
  const { backend, calls } = backendOf(entries, [ann, bob]);
  const cache = new CachedDirectory(backend, opts, silentLogger);
  await cache.findAddress('ann@example.com');
  await cache.findAddress('bob@example.com');
  await cache.findAddress('nobody@example.com');
  await cache.members(staff);
  const dropped = cache.dropWhere((e) => e.dn === ann.dn);
  assert.deepEqual(dropped.map((e) => e.dn), [ann.dn], 'the previous entry, once (the member list is not a previous entry)');
  await cache.findAddress('bob@example.com');
  await cache.findAddress('nobody@example.com');
  assert.equal(calls.findAddress, 3, 'bob and the negative answer stayed cached');
  await cache.findAddress('ann@example.com');
  await cache.members(staff);
  assert.equal(calls.findAddress, 4, 'ann was fetched again');
  assert.equal(calls.members, 2, 'the member list holding ann was fetched again');
});

test('prime answers every name of the new entry without asking the DC, overriding a cached "unknown"', async () => {
  const entries = new Map<string, DirectoryEntry>();
  const { backend, calls } = backendOf(entries, []);
  const cache = new CachedDirectory(backend, opts, silentLogger);
  assert.equal(await cache.findAddress('alias@example.com'), null);
  const ann = user('ann', { addresses: ['ann@example.com', 'alias@example.com'], userPrincipalName: 'ann@corp.example' });
  cache.prime(ann);
  assert.equal((await cache.findAddress('Alias@Example.com'))?.dn, ann.dn);
  assert.equal((await cache.findLogin('ANN'))?.dn, ann.dn);
  assert.equal((await cache.findLogin('ann@corp.example'))?.dn, ann.dn);
  assert.equal(calls.findAddress, 1);
});

test('a lookup that started before a change does not store its (old) answer', async () => {
  const ann = user('ann');
  const entries = new Map<string, DirectoryEntry>([['ann@example.com', ann]]);
  const { backend, calls, gate } = backendOf(entries, []);
  const cache = new CachedDirectory(backend, opts, silentLogger);
  let release!: () => void;
  gate.wait = new Promise((r) => (release = r));
  const inflight = cache.findAddress('ann@example.com');
  await new Promise((r) => setImmediate(r));
  // The watch sees ann disabled while the lookup is in flight.
  const disabled = user('ann', { disabled: true, enabled: false, canLogin: false });
  entries.set('ann@example.com', disabled);
  cache.dropWhere((e) => e.dn === ann.dn);
  release();
  gate.wait = undefined;
  assert.equal(((await inflight) as UserEntry).enabled, true, 'the caller gets what it asked for');
  assert.equal(((await cache.findAddress('ann@example.com')) as UserEntry).enabled, false, 'the cache did not keep the old answer');
  assert.equal(calls.findAddress, 2);
});

test('dropKind drops member lists only', async () => {
  const ann = user('ann');
  const { backend, calls } = backendOf(new Map([['ann@example.com', ann]]), [ann]);
  const cache = new CachedDirectory(backend, opts, silentLogger);
  await cache.findAddress('ann@example.com');
  await cache.members(staff);
  assert.equal(cache.dropKind('m'), 1);
  await cache.findAddress('ann@example.com');
  await cache.members(staff);
  assert.deepEqual(calls, { findAddress: 1, members: 2 });
});

const change = (over: Partial<DirectoryChange>): DirectoryChange => ({ dn: 'CN=ann,DC=x', deleted: false, kind: 'user', dc: 'ldaps://dc', usn: 1, seenAt: 0, ...over });

test('sessions end for disabled, expired, locked and deleted users; not for other changes or groups', () => {
  assert.deepEqual(endsSessions(change({ user: user('ann', { disabled: true, enabled: false, canLogin: false }) })), { login: 'ann', reason: 'account disabled' });
  assert.deepEqual(endsSessions(change({ user: user('ann', { expired: true, enabled: false, canLogin: false }) })), { login: 'ann', reason: 'account expired' });
  assert.deepEqual(endsSessions(change({ user: user('ann', { locked: true, canLogin: false }) })), { login: 'ann', reason: 'account locked out' });
  assert.deepEqual(endsSessions(change({ deleted: true, name: 'ann' })), { login: 'ann', reason: 'account removed from the directory' });
  assert.equal(endsSessions(change({ user: user('ann') })), null);
  assert.equal(endsSessions(change({ user: user('ann', { mustChangePassword: true, canLogin: false }) })), null);
  assert.equal(endsSessions(change({ kind: 'group', deleted: true, name: 'staff' })), null);
});

test('the session registry closes every session of a user, any case, and forgets ended ones', () => {
  const reg = new SessionRegistry();
  const closed: string[] = [];
  const a = reg.add('Ann', { protocol: 'imap', close: (r) => closed.push(`imap1:${r}`) });
  reg.add('ann', { protocol: 'imap', close: (r) => closed.push(`imap2:${r}`) });
  reg.add('ANN', { protocol: 'pop3', close: (r) => closed.push(`pop3:${r}`) });
  reg.add('bob', { protocol: 'imap', close: () => closed.push('bob') });
  a();
  assert.equal(reg.count('ann'), 2);
  assert.deepEqual(reg.logins().sort(), ['ann', 'bob']);
  assert.deepEqual(reg.closeUser('aNN', 'account disabled'), { imap: 1, pop3: 1, managesieve: 0 });
  assert.deepEqual(closed, ['imap2:account disabled', 'pop3:account disabled']);
  assert.equal(reg.count('ann'), 0);
  assert.equal(reg.count('bob'), 1);
});

test('objectGUID and whenChanged formats', () => {
  const b = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  assert.equal(formatGuid(b), '33221100-5544-7766-8899-aabbccddeeff');
  assert.equal(formatGuid(Buffer.alloc(3)), undefined);
  assert.equal(generalizedTime(new Date(Date.UTC(2026, 0, 2, 3, 4, 5))), '20260102030405.0Z');
});

test('health() carries the watch state when a watch is attached', async () => {
  const backend = { health: async () => ({ backend: 'ldap', servers: [] }) } as unknown as Directory;
  const cache = new CachedDirectory(backend, opts, silentLogger);
  assert.equal((await cache.health()).watch, undefined);
  const state = { state: 'watching', pollIntervalMs: 1000, changes: 3, failovers: 0, dcs: [] } as const;
  cache.watch = { health: () => ({ ...state, dcs: [] }) };
  assert.deepEqual((await cache.health()).watch, { ...state, dcs: [] });
});
