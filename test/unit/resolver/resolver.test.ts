import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LdifDirectory } from '../../../src/directory/ldif/ldif-directory.ts';
import { parseLdif } from '../../../src/directory/ldif/parse.ts';
import type { Directory } from '../../../src/directory/types.ts';
import { TempFailure } from '../../../src/lib/errors.ts';
import { Resolver, type ResolverSettings } from '../../../src/resolver/resolver.ts';
import { group, user } from '../../helpers/ldif.ts';

const S = 'OU=Staff,DC=corp,DC=example';
const G = 'OU=Groups,DC=corp,DC=example';
const dir = new LdifDirectory(
  parseLdif(
    [
      user(`CN=John,${S}`, { sAMAccountName: 'john', mail: 'john@example.com', userPrincipalName: 'john@corp.example', userAccountControl: '512' }),
      user(`CN=Ann,${S}`, { sAMAccountName: 'ann', mail: 'ann@example.com', userAccountControl: '512', pwdLastSet: '0' }),
      user(`CN=Old,${S}`, { sAMAccountName: 'old', mail: 'old@example.com', userAccountControl: '514' }),
      group(`CN=Sales,${G}`, { sAMAccountName: 'Sales', mail: 'sales@example.com', member: [`CN=John,${S}`, `CN=Old,${S}`, `CN=Team,${G}`] }),
      group(`CN=Team,${G}`, { sAMAccountName: 'team', mail: 'team@example.com', member: [`CN=John,${S}`, `CN=Ann,${S}`] }),
      group(`CN=NoMail,${G}`, { sAMAccountName: 'nomail', proxyAddresses: 'smtp:nomail@example.com', member: [`CN=John,${S}`] }),
    ].join('\n\n'),
  ),
  'inline',
  { userPrincipalNameIsAddress: true },
);

function settings(over: Partial<{ bcc: string; globalBcc: string }> = {}): ResolverSettings {
  const domains: Record<string, { name: string; type: 'local' | 'relay'; nexthop?: string; bcc?: string }> = {
    'example.com': { name: 'example.com', type: 'local', bcc: over.bcc },
    'corp.example': { name: 'corp.example', type: 'local' },
    'branch.example': { name: 'branch.example', type: 'relay', nexthop: 'mx.branch.example:2525' },
  };
  const pseudonyms: Record<string, { target: { kind: 'user' | 'group'; name: string }; localNetworkOnly: boolean }> = {
    'info@example.com': { target: { kind: 'group', name: 'SALES' }, localNetworkOnly: false },
    'boss@example.com': { target: { kind: 'user', name: 'JOHN' }, localNetworkOnly: true },
    'gone@example.com': { target: { kind: 'user', name: 'nobody' }, localNetworkOnly: false },
  };
  return {
    getDomain: (n) => domains[n],
    findPseudonym: (a) => pseudonyms[a],
    getUser: (l) => (l === 'john' ? { forward: 'john@gmail.example', keepCopy: true } : undefined),
    get: () => over.globalBcc ?? null,
  };
}

test('a user address on a local domain is a mailbox with its forward', async () => {
  const r = await new Resolver(dir, settings(), { groupDelivery: 'distribution' }).resolve('John@Example.com');
  assert.equal(r.kind, 'mailbox');
  assert.equal(r.kind === 'mailbox' && r.user.login, 'john');
  assert.deepEqual(r.kind === 'mailbox' && r.forward, { address: 'john@gmail.example', keepCopy: true });
  const upn = await new Resolver(dir, settings(), { groupDelivery: 'distribution' }).resolve('john@corp.example');
  assert.equal(upn.kind, 'mailbox');
});

test('a distribution list expands nested groups, skips disabled members, no duplicates', async () => {
  const r = await new Resolver(dir, settings(), { groupDelivery: 'distribution' }).resolve('sales@example.com');
  assert.equal(r.kind, 'list');
  assert.deepEqual(r.kind === 'list' && r.members.map((m) => m.login), ['ann', 'john']);
});

test('in shared mode a mail-enabled group is a shared folder', async () => {
  const r = await new Resolver(dir, settings(), { groupDelivery: 'shared' }).resolve('team@example.com');
  assert.equal(r.kind, 'shared');
  assert.equal(r.kind === 'shared' && r.group.name, 'team');
});

test('a group without a mail attribute receives nothing', async () => {
  const r = await new Resolver(dir, settings(), { groupDelivery: 'distribution' }).resolve('nomail@example.com');
  assert.deepEqual([r.kind, r.kind === 'invalid' && r.reason], ['invalid', 'unknown']);
});

test('disabled users are invalid/disabled; unknown and malformed addresses are invalid', async () => {
  const res = new Resolver(dir, settings(), { groupDelivery: 'distribution' });
  const old = await res.resolve('old@example.com');
  assert.deepEqual([old.kind, old.kind === 'invalid' && old.reason], ['invalid', 'disabled']);
  const unknown = await res.resolve('ghost@example.com');
  assert.deepEqual([unknown.kind, unknown.kind === 'invalid' && unknown.reason], ['invalid', 'unknown']);
  for (const bad of ['john%example.com@example.com', '"john"@example.com', 'x!john@example.com']) {
    const r = await res.resolve(bad);
    assert.deepEqual([r.kind, r.kind === 'invalid' && r.reason], ['invalid', 'syntax'], bad);
  }
  const pseudoToNobody = await res.resolve('gone@example.com');
  assert.equal(pseudoToNobody.kind, 'invalid');
});

test('must-change users still receive mail', async () => {
  const r = await new Resolver(dir, settings(), { groupDelivery: 'distribution' }).resolve('ann@example.com');
  assert.equal(r.kind, 'mailbox');
});

test('pseudonyms point at users or groups (any case); local-network-only is enforced when the context says outside', async () => {
  const res = new Resolver(dir, settings(), { groupDelivery: 'distribution' });
  const info = await res.resolve('info@example.com');
  assert.deepEqual([info.kind, info.kind === 'list' && info.via], ['list', 'pseudonym']);
  const boss = await res.resolve('boss@example.com');
  assert.deepEqual([boss.kind, boss.localNetworkOnly], ['mailbox', true]);
  assert.equal((await res.resolve('boss@example.com', { fromLocalNetwork: true })).kind, 'mailbox');
  const outside = await res.resolve('boss@example.com', { fromLocalNetwork: false });
  assert.deepEqual([outside.kind, outside.kind === 'invalid' && outside.reason], ['invalid', 'local-network-only']);
});

test('relay and external domains; Bcc from the domain and the global setting', async () => {
  const res = new Resolver(dir, settings({ bcc: 'archive@example.com', globalBcc: 'Audit@example.com' }), { groupDelivery: 'distribution' });
  const relay = await res.resolve('someone@branch.example');
  assert.deepEqual([relay.kind, relay.kind === 'relay' && relay.nexthop], ['relay', 'mx.branch.example:2525']);
  const ext = await res.resolve('friend@elsewhere.example');
  assert.deepEqual([ext.kind, ext.bcc], ['external', ['audit@example.com']]);
  const john = await res.resolve('john@example.com');
  assert.deepEqual(john.bcc, ['archive@example.com', 'audit@example.com']);
});

test('a directory that cannot answer raises TempFailure', async () => {
  const down = { findAddress: async () => { throw new TempFailure('down'); } } as unknown as Directory;
  await assert.rejects(new Resolver(down, settings(), { groupDelivery: 'distribution' }).resolve('john@example.com'), TempFailure);
});
