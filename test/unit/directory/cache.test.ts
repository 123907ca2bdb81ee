import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CachedDirectory } from '../../../src/directory/cache.ts';
import type { Directory, DirectoryEntry, UserEntry } from '../../../src/directory/types.ts';
import { TempFailure } from '../../../src/lib/errors.ts';
import { silentLogger } from '../../../src/lib/logger.ts';

const ann: UserEntry = {
  kind: 'user', dn: 'CN=Ann', login: 'ann', addresses: ['ann@example.com'], primaryAddress: 'ann@example.com',
  disabled: false, expired: false, locked: false, mustChangePassword: false, enabled: true, canLogin: true, memberOf: [],
};

function fakeBackend() {
  const state = { down: false, calls: 0, entries: new Map<string, DirectoryEntry>([['ann@example.com', ann]]) };
  const backend = {
    async findAddress(a: string) {
      state.calls++;
      if (state.down) throw new TempFailure('DC down');
      return state.entries.get(a) ?? null;
    },
  } as unknown as Directory;
  return { state, backend };
}

test('positive answers are cached for ttl, negative ones for the shorter negative ttl', async () => {
  let now = 0;
  const { state, backend } = fakeBackend();
  const cache = new CachedDirectory(backend, { ttlSeconds: 60, negativeTtlSeconds: 10, max: 100, staleIfErrorSeconds: 3600 }, silentLogger, () => now);
  await cache.findAddress('ann@example.com');
  await cache.findAddress('nobody@example.com');
  now = 5_000;
  await cache.findAddress('ann@example.com');
  await cache.findAddress('nobody@example.com');
  assert.equal(state.calls, 2);
  now = 11_000; // negative expired, positive not
  await cache.findAddress('ann@example.com');
  await cache.findAddress('nobody@example.com');
  assert.equal(state.calls, 3);
  state.entries.set('nobody@example.com', { ...ann, addresses: ['nobody@example.com'] });
  now = 22_000;
  assert.ok(await cache.findAddress('nobody@example.com'), 'a new AD address is seen after the negative ttl');
});

test('while AD is down a cached positive entry is served stale, a cached negative raises TempFailure', async () => {
  let now = 0;
  const { state, backend } = fakeBackend();
  const cache = new CachedDirectory(backend, { ttlSeconds: 60, negativeTtlSeconds: 10, max: 100, staleIfErrorSeconds: 3600 }, silentLogger, () => now);
  await cache.findAddress('ann@example.com');
  await cache.findAddress('nobody@example.com');
  state.down = true;
  now = 120_000;
  assert.equal((await cache.findAddress('ann@example.com'))?.dn, 'CN=Ann');
  await assert.rejects(cache.findAddress('nobody@example.com'), TempFailure);
  await assert.rejects(cache.findAddress('never-seen@example.com'), TempFailure);
  now = 4_000_000; // past staleIfErrorSeconds
  await assert.rejects(cache.findAddress('ann@example.com'), TempFailure);
  assert.equal(cache.cacheStats().staleServed, 1);
});

test('concurrent lookups of one key make one request; the bound evicts the least recently used', async () => {
  const { state, backend } = fakeBackend();
  const cache = new CachedDirectory(backend, { ttlSeconds: 60, negativeTtlSeconds: 10, max: 2, staleIfErrorSeconds: 0 }, silentLogger);
  await Promise.all([cache.findAddress('ann@example.com'), cache.findAddress('ann@example.com'), cache.findAddress('ANN@example.com')]);
  assert.equal(state.calls, 1);
  await cache.findAddress('b@example.com');
  await cache.findAddress('c@example.com');
  assert.equal(cache.cacheStats().size, 2);
  await cache.findAddress('ann@example.com');
  assert.equal(state.calls, 4, 'ann was evicted');
});
