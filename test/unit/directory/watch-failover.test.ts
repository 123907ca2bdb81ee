/**
 * The DC-switching logic of the directory watch with scripted DCs (the LDAP client replaced by a fake that answers
 * the rootDSE, the NTDS Settings object and the change searches). The test DCs of test/run.ts are two separate
 * domains, so the move to a DC with another invocationId can only be driven here; resuming on the same DC is also
 * tested against Samba (test/integration/directory-watch-ad.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from 'ldapts';
import { parseConfig } from '../../../src/config/load.ts';
import { CachedDirectory } from '../../../src/directory/cache.ts';
import { LdapDirectory } from '../../../src/directory/ldap/ldap-directory.ts';
import type { DirectoryEntry, UserEntry } from '../../../src/directory/types.ts';
import { DirectoryWatch, type DirectoryChange } from '../../../src/directory/watch.ts';
import { silentLogger } from '../../../src/lib/logger.ts';
import { waitFor } from '../../helpers/wait.ts';

interface FakeDc {
  up: boolean;
  invocation: Buffer;
  usn: number;
  /** Objects by DN: attributes as ldapts returns them. */
  objects: Map<string, Record<string, unknown>>;
  filters: string[];
}

const guid = (n: number) => Buffer.alloc(16, n);
const ann = (over: Record<string, unknown>) => ({
  dn: 'CN=ann,DC=x',
  objectClass: ['top', 'person', 'user'],
  sAMAccountName: 'ann',
  mail: 'ann@example.com',
  userAccountControl: '512',
  objectGUID: guid(7),
  ...over,
});

function fakeClient(dc: FakeDc): Client {
  const fail = () => {
    if (!dc.up) throw new Error('connection refused');
  };
  return {
    async search(base: string, opts: { filter?: string }) {
      fail();
      if (base === '') return { searchEntries: [{ dn: '', highestCommittedUSN: String(dc.usn), dsServiceName: 'CN=NTDS Settings,DC=x', supportedControl: ['1.2.840.113556.1.4.417'], defaultNamingContext: 'DC=x' }], searchReferences: [] };
      if (base.startsWith('<WKGUID=')) return { searchEntries: [], searchReferences: [] };
      if (base === 'CN=NTDS Settings,DC=x') return { searchEntries: [{ dn: base, invocationId: dc.invocation }], searchReferences: [] };
      const filter = opts.filter ?? '';
      dc.filters.push(filter);
      const from = /uSNChanged>=(\d+)/.exec(filter);
      const entries = [...dc.objects.values()].filter((o) => !from || Number(o.uSNChanged) >= Number(from[1]));
      return { searchEntries: entries, searchReferences: [] };
    },
    async unbind() {},
  } as unknown as Client;
}

function setup() {
  const cfg = parseConfig(
    { dataDir: '/tmp', directory: { type: 'ldap', urls: ['ldaps://dc1', 'ldaps://dc2'], baseDN: 'DC=x', bindDN: 'CN=svc,DC=x', bindPassword: 'x', watch: { pollIntervalMs: 100, retrySeconds: 1, deletedSweepSeconds: 0 } } },
    '(test)',
    '/tmp',
  ).directory;
  const dcs: Record<string, FakeDc> = {
    'ldaps://dc1': { up: true, invocation: guid(1), usn: 100, objects: new Map(), filters: [] },
    'ldaps://dc2': { up: true, invocation: guid(2), usn: 5000, objects: new Map(), filters: [] },
  };
  const backend = new LdapDirectory(cfg, silentLogger);
  backend.openServiceConnection = async (url: string) => {
    if (!dcs[url].up) throw new Error('connection refused');
    return fakeClient(dcs[url]);
  };
  let fetches = 0;
  // Lookups come from a fixed answer; the watch is what changes the cache.
  backend.findAddress = async (address: string) => {
    fetches++;
    const login = address.split('@')[0];
    return { kind: 'user', dn: `CN=${login},DC=x`, login, addresses: [address], primaryAddress: address, disabled: false, expired: false, locked: false, mustChangePassword: false, enabled: true, canLogin: true, memberOf: [] } satisfies UserEntry;
  };
  const cache = new CachedDirectory(backend, cfg.cache, silentLogger);
  const watch = new DirectoryWatch(backend, cache, cfg.watch, silentLogger);
  const changes: DirectoryChange[] = [];
  watch.onChange((c) => changes.push(c));
  return { dcs, cache, watch, changes, fetches: () => fetches };
}

test('same DC back after a failure: resumes from the last uSN, the change made meanwhile is applied', async (t) => {
  const { dcs, cache, watch, changes } = setup();
  t.after(() => watch.stop());
  dcs['ldaps://dc2'].up = false;
  await watch.start();
  assert.equal(watch.health().dcs[0].state, 'watching');
  assert.equal(watch.health().dcs[0].lastUsn, 100);
  await cache.findAddress('ann@example.com');
  dcs['ldaps://dc1'].up = false;
  await waitFor('dc1 marked down', () => watch.health().dcs[0].state === 'down', { timeoutMs: 10_000 });
  // The change happens while nobody watches; dc1 comes back with the same database.
  dcs['ldaps://dc1'].objects.set('CN=ann,DC=x', ann({ userAccountControl: '514', uSNChanged: '101' }));
  dcs['ldaps://dc1'].usn = 101;
  dcs['ldaps://dc1'].up = true;
  await waitFor('the change applied', () => changes.find((c) => c.user?.disabled), { timeoutMs: 10_000 });
  const h = watch.health();
  assert.equal(h.dcs[0].resumes, 1);
  assert.equal(h.failovers, 0);
  assert.ok(dcs['ldaps://dc1'].filters.some((f) => f.includes('(uSNChanged>=101)(uSNChanged<=101)')), dcs['ldaps://dc1'].filters.join(' '));
  assert.equal(((await cache.findAddress('ann@example.com')) as DirectoryEntry & { enabled: boolean }).enabled, false);
});

test('failover to a DC with another invocationId: recent changes re-read by whenChanged, the cache kept', async (t) => {
  const { dcs, cache, watch, changes, fetches } = setup();
  t.after(() => watch.stop());
  await watch.start();
  await cache.findAddress('ann@example.com');
  await cache.findAddress('bob@example.com');
  assert.equal(fetches(), 2);
  // dc1 dies; dc2 (another database, other uSNs) already has ann disabled, replicated from elsewhere.
  dcs['ldaps://dc1'].up = false;
  dcs['ldaps://dc2'].objects.set('CN=ann,DC=x', ann({ userAccountControl: '514', uSNChanged: '4000', whenChanged: '20990101000000.0Z' }));
  await waitFor('the change applied on dc2', () => changes.find((c) => c.user?.disabled && c.dc === 'ldaps://dc2'), { timeoutMs: 10_000 });
  const h = watch.health();
  assert.equal(h.failovers, 1);
  assert.equal(h.dcs[1].state, 'watching');
  assert.equal(h.dcs[1].lastUsn, 5000, "dc2's own uSN, not dc1's");
  assert.ok(dcs['ldaps://dc2'].filters.some((f) => /\(whenChanged>=\d{14}\.0Z\)/.test(f)), dcs['ldaps://dc2'].filters.join(' '));
  assert.equal(((await cache.findAddress('ann@example.com')) as UserEntry).enabled, false, 'primed by the watch');
  await cache.findAddress('bob@example.com');
  assert.equal(fetches(), 2, 'bob still answered from the cache: not flushed');
});
