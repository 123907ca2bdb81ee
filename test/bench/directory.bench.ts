/**
 * Directory benchmark (issue: foundation): resolve() latency, cached and uncached, against a real Samba AD DC,
 * side by side with the raw LDAPS round trip of the same search on an already bound connection (the floor any
 * AD-backed resolver pays on a miss). Printed as ratios.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from 'ldapts';
import { readFileSync } from 'node:fs';
import { directorySchema } from '../../src/config/schema.ts';
import { CachedDirectory } from '../../src/directory/cache.ts';
import { LdapDirectory } from '../../src/directory/ldap/ldap-directory.ts';
import { and, eq, GROUP_FILTER, or, USER_FILTER } from '../../src/directory/ldap/filter.ts';
import { ENTRY_ATTRIBUTES } from '../../src/directory/mapping.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { Resolver } from '../../src/resolver/resolver.ts';
import { openSettings } from '../../src/settings/store.ts';
import { loadLdif } from '../../fixtures/ad/load.ts';
import { startSambaDc } from '../harness/samba.ts';
import { measure, table, us } from './lib.ts';

export async function benchDirectory(root: string): Promise<string> {
  const dc = await startSambaDc({ realm: 'CORP.EXAMPLE', domain: 'CORP', adminPassword: 'Samba!Adm1n-2026', host: '127.0.0.1' });
  const dataDir = mkdtempSync(join(tmpdir(), 'postern-bench-'));
  try {
    await loadLdif({ url: dc.ldapsUrl, bindDN: dc.adminDN, password: dc.adminPassword, ldifFile: resolve(root, 'fixtures/ad/corp.ldif'), baseDN: dc.baseDN, caFile: dc.caFile });
    const bindDN = 'CN=svc-mail,OU=Service Accounts,OU=Staff,DC=corp,DC=example';
    const bindPassword = 'Svc!Mail2026';
    const cfg = directorySchema.parse({ type: 'ldap', urls: [dc.ldapsUrl], tls: { caFile: dc.caFile }, baseDN: dc.baseDN, bindDN, bindPassword });
    const settings = openSettings(dataDir);
    settings.addDomain({ name: 'example.com', type: 'local' });
    const addresses = ['john@example.com', 'anna@example.com', 'm.rossi@example.com', 'carla@example.com', 'laura.verdi@example.com'];

    // Raw: the same filter the LDAP backend sends for findAddress, on one bound LDAPS connection.
    const raw = new Client({ url: dc.ldapsUrl, tlsOptions: { ca: readFileSync(dc.caFile!) } });
    await raw.bind(bindDN, bindPassword);
    const filterFor = (a: string) =>
      and(or(USER_FILTER, GROUP_FILTER), or(eq('mail', a), eq('proxyAddresses', `smtp:${a}`), eq('otherMailbox', `smtp:${a}`), eq('userPrincipalName', a)));
    const rawStats = await measure(1000, (i) => raw.search(dc.baseDN, { scope: 'sub', filter: filterFor(addresses[i % 5]), attributes: [...ENTRY_ATTRIBUTES], sizeLimit: 10 }));
    await raw.unbind();

    const ldap = new LdapDirectory(cfg, silentLogger);
    const uncached = new Resolver(ldap, settings, { groupDelivery: 'distribution' });
    const uncachedStats = await measure(1000, (i) => uncached.resolve(addresses[i % 5]));

    const cachedDir = new CachedDirectory(ldap, cfg.cache, silentLogger);
    const cached = new Resolver(cachedDir, settings, { groupDelivery: 'distribution' });
    const cachedStats = await measure(100_000, (i) => cached.resolve(addresses[i % 5]));
    const listStats = await measure(500, () => uncached.resolve('sales@example.com'));
    await ldap.close();
    settings.close();

    return [
      'Directory: resolve() against Samba AD 4.17 over LDAPS (loopback), 5 addresses in rotation',
      table([
        ['what', 'n', 'p50', 'p99', 'p50 ratio to raw LDAPS'],
        ['raw LDAPS search (ldapts, bound connection)', String(rawStats.n), us(rawStats.p50), us(rawStats.p99), '1.00'],
        ['resolve() uncached (LDAP backend)', String(uncachedStats.n), us(uncachedStats.p50), us(uncachedStats.p99), (uncachedStats.p50 / rawStats.p50).toFixed(2)],
        ['resolve() cached (lru-cache in front)', String(cachedStats.n), us(cachedStats.p50), us(cachedStats.p99), (cachedStats.p50 / rawStats.p50).toFixed(4)],
        ['resolve() of a nested list, uncached (2 searches)', String(listStats.n), us(listStats.p50), us(listStats.p99), (listStats.p50 / rawStats.p50).toFixed(2)],
      ]),
    ].join('\n');
  } finally {
    await dc.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
