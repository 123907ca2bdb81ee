/**
 * The integration harness works: the Samba DCs started by test/run.ts hold fixtures/ad/*.ldif with every state the
 * AD mapping rules need (disabled, expired, must-change, locked, nested groups), LDAPS verifies with the CA file,
 * plain LDAP refuses simple binds, Kerberos answers, (stopping AD2 is exercised by test/integration/directory-ad2.test.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, type Entry } from 'ldapts';
import { accountExpired, mapUser, type RawEntry } from '../../src/directory/mapping.js';
import { CLIENT_PACKAGES, ensureDebianPackages, findBinary } from '../harness/packages.js';

const env = process.env;
const skip = env.POSTERN_TEST_AD_URL ? false : 'needs the Samba DCs: run through node --import tsx test/run.ts';

function client(prefix: 'AD' | 'AD2' = 'AD'): Client {
  const ca = env[`POSTERN_TEST_${prefix}_CA`];
  return new Client({
    url: env[`POSTERN_TEST_${prefix}_URL`]!,
    connectTimeout: 5000,
    timeout: 10_000,
    // The certificate has IP:<host> in subjectAltName, so the CA alone verifies it.
    tlsOptions: ca ? { ca: readFileSync(ca), rejectUnauthorized: true } : { rejectUnauthorized: false },
  });
}

function values(e: Entry, name: string): string[] {
  const key = Object.keys(e).find((k) => k.toLowerCase() === name.toLowerCase());
  const v = key ? e[key] : undefined;
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : String(x)));
}

function raw(e: Entry): RawEntry {
  const attrs: Record<string, string[]> = {};
  for (const k of Object.keys(e)) if (k !== 'dn') attrs[k.toLowerCase()] = values(e, k);
  return { dn: e.dn, attrs, binary: {} };
}

const ATTRS = [
  'objectClass', 'sAMAccountName', 'userPrincipalName', 'displayName', 'cn', 'mail', 'otherMailbox', 'proxyAddresses',
  'userAccountControl', 'msDS-User-Account-Control-Computed', 'accountExpires', 'pwdLastSet', 'memberOf',
];

describe('Samba AD fixture (CORP.EXAMPLE)', { skip }, () => {
  let ldap: Client;
  const base = env.POSTERN_TEST_AD_BASE!;

  async function one(filter: string, attributes = ATTRS): Promise<Entry> {
    const { searchEntries } = await ldap.search(base, { scope: 'sub', filter, attributes });
    assert.equal(searchEntries.length, 1, `${filter}: ${searchEntries.map((e) => e.dn).join('; ')}`);
    return searchEntries[0];
  }
  const bySam = (sam: string) => one(`(sAMAccountName=${sam})`);

  before(async () => {
    ldap = client();
    await ldap.bind(env.POSTERN_TEST_AD_BIND_DN!, env.POSTERN_TEST_AD_BIND_PASSWORD!);
  });
  after(async () => {
    await ldap?.unbind();
  });

  it('the service account binds over LDAPS and finds john.smith by a secondary smtp: proxyAddress', async () => {
    const e = await one('(proxyAddresses=smtp:j.smith@example.com)');
    assert.deepEqual(values(e, 'sAMAccountName'), ['john.smith']);
    assert.ok(values(e, 'proxyAddresses').includes('SMTP:john.smith@example.com'));
  });

  it('proxyAddresses equality ignores case, the smtp:/SMTP: prefix included', async () => {
    const e = await one('(proxyAddresses=smtp:JOHN.SMITH@example.com)');
    assert.deepEqual(values(e, 'sAMAccountName'), ['john.smith']);
  });

  it('john.smith maps to every address source and ignores X500:/sip:', async () => {
    const u = mapUser(raw(await bySam('john.smith')), { userPrincipalNameIsAddress: true });
    assert.equal(u.primaryAddress, 'john.smith@example.com');
    assert.deepEqual([...u.addresses].sort(), [
      'j.smith@example.com', 'john.smith@corp.example', 'john.smith@example.com', 'john@example.com', 'js@example.com',
    ]);
    assert.equal(u.canLogin, true);
  });

  it('sAMAccountName matches in any case (Carla.Fermi)', async () => {
    const e = await bySam('carla.fermi');
    assert.deepEqual(values(e, 'sAMAccountName'), ['Carla.Fermi']);
  });

  it('old.employee is disabled (userAccountControl has 0x2)', async () => {
    const e = await bySam('old.employee');
    assert.equal(Number(values(e, 'userAccountControl')[0]) & 0x2, 0x2);
  });

  it('contractor has accountExpires in the past', async () => {
    const e = await bySam('contractor');
    const v = values(e, 'accountExpires')[0];
    assert.equal(v, '133485408000000000');
    assert.equal(accountExpired(v, new Date()), true);
  });

  it('new.hire must change the password (pwdLastSet 0)', async () => {
    const e = await bySam('new.hire');
    assert.deepEqual(values(e, 'pwdLastSet'), ['0']);
  });

  it('locked.user is locked: msDS-User-Account-Control-Computed has 0x10 and the right password is refused', async () => {
    const e = await bySam('locked.user');
    assert.equal(Number(values(e, 'msDS-User-Account-Control-Computed')[0]) & 0x10, 0x10);
    assert.equal(Number(values(e, 'userAccountControl')[0]) & 0x10, 0, 'AD never shows the lockout in userAccountControl');
    const c = client();
    try {
      await assert.rejects(c.bind(e.dn, 'Corp!Passw0rd'), /data 775/);
    } finally {
      await c.unbind();
    }
  });

  it('an ordinary user binds with the fixture password', async () => {
    const e = await bySam('laura.verdi');
    const c = client();
    try {
      await c.bind(e.dn, 'Corp!Passw0rd');
    } finally {
      await c.unbind();
    }
  });

  it('admin is in Domain Admins and ITStaff', async () => {
    const e = await bySam('admin');
    const groups = values(e, 'memberOf').map((g) => g.toLowerCase());
    assert.ok(groups.includes(`cn=domain admins,cn=users,${base}`.toLowerCase()), groups.join('; '));
    assert.ok(groups.includes(`cn=itstaff,ou=groups,${base}`.toLowerCase()), groups.join('; '));
  });

  it('the in-chain matching rule expands nested groups, each user once', async () => {
    const filter = `(&(objectClass=user)(memberOf:1.2.840.113556.1.4.1941:=CN=AllStaff,OU=Groups,${base}))`;
    const { searchEntries } = await ldap.search(base, { scope: 'sub', filter, attributes: ['sAMAccountName'] });
    const names = searchEntries.map((e) => values(e, 'sAMAccountName')[0]).sort();
    // The disabled old.employee is still a member: filtering is the consumer's job.
    assert.deepEqual(names, ['admin', 'giulia.gallo', 'it.tech', 'john.smith', 'laura.verdi', 'mario.rossi', 'old.employee', 'paolo.neri']);
  });

  it('a member DN with an escaped comma round-trips (CN=Gallo\\, Giulia)', async () => {
    const g = await one('(&(objectClass=group)(sAMAccountName=support))', ['member']);
    assert.ok(values(g, 'member').includes(`CN=Gallo\\, Giulia,OU=Support,OU=Staff,${base}`), values(g, 'member').join('; '));
  });

  it('a simple bind over plain LDAP (389, no TLS) is refused', async () => {
    const c = new Client({ url: env.POSTERN_TEST_AD_LDAP_URL!, connectTimeout: 5000, timeout: 10_000 });
    try {
      await assert.rejects(c.bind(env.POSTERN_TEST_AD_BIND_DN!, env.POSTERN_TEST_AD_BIND_PASSWORD!), (err: Error & { code?: number }) => {
        assert.equal(err.code, 8, `${err.name}: ${err.message}`); // strongerAuthRequired
        return true;
      });
    } finally {
      await c.unbind().catch(() => {});
    }
  });

  it('Kerberos: kinit john.smith works with the harness krb5.conf, a wrong password does not', async () => {
    await ensureDebianPackages([CLIENT_PACKAGES.kinit]);
    const dir = mkdtempSync(join(tmpdir(), 'postern-kinit-'));
    try {
      const kinit = (password: string) =>
        spawnSync(findBinary('kinit')!, [`john.smith@${env.POSTERN_TEST_AD_REALM}`], {
          input: `${password}\n`,
          encoding: 'utf8',
          timeout: 15_000,
          env: { ...env, KRB5_CONFIG: env.POSTERN_TEST_KRB5_CONF, KRB5CCNAME: `FILE:${join(dir, 'cc')}` },
        });
      const ok = kinit('Corp!Passw0rd');
      assert.equal(ok.status, 0, ok.stderr);
      const bad = kinit('wrong-password');
      assert.notEqual(bad.status, 0);
      assert.match(bad.stderr, /incorrect|failed/i);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Samba AD fixture (ACME.TEST, the DC tests may stop)', { skip }, () => {
  const base = env.POSTERN_TEST_AD2_BASE!;

  async function findBob(): Promise<Entry[]> {
    const c = client('AD2');
    try {
      await c.bind(env.POSTERN_TEST_AD2_BIND_DN!, env.POSTERN_TEST_AD2_BIND_PASSWORD!);
      const { searchEntries } = await c.search(base, { scope: 'sub', filter: '(proxyAddresses=smtp:bob@acme.io)', attributes: ['sAMAccountName', 'mail'] });
      return searchEntries;
    } finally {
      await c.unbind().catch(() => {});
    }
  }

  it('holds other.ldif: a user with only proxyAddresses', async () => {
    const found = await findBob();
    assert.deepEqual(found.map((e) => values(e, 'sAMAccountName')[0]), ['BJones']);
    assert.deepEqual(values(found[0], 'mail'), []);
  });
});
