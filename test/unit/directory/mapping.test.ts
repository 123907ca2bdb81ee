import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accountExpired, mapGroup, mapUser, normalizeAddress, parseProxyAddress, toFiletime, type RawEntry } from '../../../src/directory/mapping.ts';

function raw(dn: string, attrs: Record<string, string | string[]>): RawEntry {
  const e: RawEntry = { dn, attrs: {}, binary: {} };
  for (const [k, v] of Object.entries(attrs)) {
    e.attrs[k.toLowerCase()] = Array.isArray(v) ? v : [v];
    e.binary[k.toLowerCase()] = e.attrs[k.toLowerCase()].map((x) => Buffer.from(x));
  }
  return e;
}

const opts = { userPrincipalNameIsAddress: true, now: () => new Date('2026-06-01T00:00:00Z') };

test('addresses come from mail, smtp: otherMailbox and proxyAddresses, and the UPN; SMTP: is primary', () => {
  const u = mapUser(
    raw('CN=John Smith,OU=Staff,DC=corp,DC=example', {
      objectClass: ['top', 'person', 'organizationalPerson', 'user'],
      sAMAccountName: 'john.smith',
      userPrincipalName: 'john.smith@corp.example',
      mail: 'John@Example.com',
      otherMailbox: ['smtp:js@example.com', 'not-an-address'],
      proxyAddresses: ['SMTP:john.smith@example.com', 'smtp:j.smith@example.com', 'X500:/o=Corp/cn=js', 'sip:john@example.com'],
      userAccountControl: '512',
    }),
    opts,
  );
  assert.equal(u.primaryAddress, 'john.smith@example.com');
  assert.deepEqual(u.addresses, ['john.smith@example.com', 'j.smith@example.com', 'john@example.com', 'js@example.com', 'john.smith@corp.example']);
  assert.equal(u.enabled, true);
  assert.equal(u.canLogin, true);
});

test('the UPN is not an address when userPrincipalNameIsAddress is false', () => {
  const u = mapUser(raw('CN=a,DC=x', { objectClass: 'user', sAMAccountName: 'a', userPrincipalName: 'a@corp.example', mail: 'a@example.com' }), {
    ...opts,
    userPrincipalNameIsAddress: false,
  });
  assert.deepEqual(u.addresses, ['a@example.com']);
});

test('a prefix of any case counts; only upper-case SMTP: is primary', () => {
  assert.deepEqual(parseProxyAddress('Smtp:M.Rossi@Example.com'), { address: 'm.rossi@example.com', primary: false });
  assert.deepEqual(parseProxyAddress('SMTP:a@b.c'), { address: 'a@b.c', primary: true });
  assert.equal(parseProxyAddress('x500:/o=a'), null);
  assert.equal(parseProxyAddress('a@b.c'), null);
});

test('account state: disabled and expired receive no mail; locked and must-change receive but cannot log in', () => {
  const base = { objectClass: 'user', sAMAccountName: 'x', mail: 'x@example.com' };
  const disabled = mapUser(raw('CN=d', { ...base, userAccountControl: '514' }), opts);
  assert.equal(disabled.enabled, false);
  assert.equal(disabled.canLogin, false);
  const expired = mapUser(raw('CN=e', { ...base, userAccountControl: '512', accountExpires: toFiletime(new Date('2024-01-01')) }), opts);
  assert.equal(expired.expired, true);
  assert.equal(expired.enabled, false);
  const locked = mapUser(raw('CN=l', { ...base, userAccountControl: '512', 'msDS-User-Account-Control-Computed': '16' }), opts);
  assert.deepEqual([locked.enabled, locked.locked, locked.canLogin], [true, true, false]);
  const mustChange = mapUser(raw('CN=m', { ...base, userAccountControl: '512', pwdLastSet: '0' }), opts);
  assert.deepEqual([mustChange.enabled, mustChange.mustChangePassword, mustChange.canLogin], [true, true, false]);
  const never = mapUser(raw('CN=n', { ...base, userAccountControl: '66048', accountExpires: '9223372036854775807', pwdLastSet: '133000000000000000' }), opts);
  assert.deepEqual([never.enabled, never.canLogin], [true, true]);
});

test('accountExpires: 0 and 2^63-1 never expire; a future date is not expired', () => {
  const now = new Date('2026-06-01T00:00:00Z');
  assert.equal(accountExpired('0', now), false);
  assert.equal(accountExpired('9223372036854775807', now), false);
  assert.equal(accountExpired(toFiletime(new Date('2027-01-01')), now), false);
  assert.equal(accountExpired(toFiletime(new Date('2026-05-31')), now), true);
});

test('a group is mail-enabled only with a mail attribute; its name keeps its case', () => {
  const g = mapGroup(raw('CN=Sales,OU=Groups,DC=corp,DC=example', { objectClass: 'group', sAMAccountName: 'Sales', mail: 'sales@example.com', proxyAddresses: 'smtp:vendite@example.com' }), opts);
  assert.deepEqual([g.name, g.mailEnabled, g.primaryAddress], ['Sales', true, 'sales@example.com']);
  assert.deepEqual(g.addresses, ['sales@example.com', 'vendite@example.com']);
  const sec = mapGroup(raw('CN=spamtrainers', { objectClass: 'group', sAMAccountName: 'spamtrainers' }), opts);
  assert.equal(sec.mailEnabled, false);
});

test('address normalisation refuses relay tricks', () => {
  assert.equal(normalizeAddress(' John@Example.COM '), 'john@example.com');
  for (const bad of ['"a b"@example.com', 'user%other@example.com', 'host!user@example.com', '@a,@b:user@example.com', 'a@b@example.com', 'noat', 'a..b@example.com', '.a@example.com', 'a@-x.com']) {
    assert.equal(normalizeAddress(bad), null, bad);
  }
});
