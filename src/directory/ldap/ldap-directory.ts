/**
 * Active Directory backend (ldapts). One long-lived connection per DC bound as the service account, DCs tried in
 * order with a health mark so that a dead DC is skipped for `dcRetrySeconds`, and every failure to get an answer
 * turned into TempFailure — never into "no such user".
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { AndFilter, Client, EqualityFilter, FilterParser, InvalidCredentialsError, NoSuchObjectError, type Entry, type Filter } from 'ldapts';
import { TempFailure } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { DirectoryConfig } from '../../config/schema.js';
import { BINARY_ATTRIBUTES, ENTRY_ATTRIBUTES, mapGroup, mapUser, normalizeAddress, type MappingOptions, type RawEntry } from '../mapping.js';
import type { Directory, DirectoryEntry, DirectoryHealth, GroupEntry, PasswordCheck, UserEntry } from '../types.js';
import { encodeGuid, isGuid } from '../guid.js';
import { and, eq, GROUP_FILTER, inChain, or, USER_FILTER } from './filter.js';

interface Server {
  url: string;
  client?: Client;
  connecting?: Promise<Client>;
  downUntil: number;
  lastError?: string;
}

/** Converts an ldapts entry to the backend-neutral RawEntry (lower-case names, string arrays). */
export function toRawEntry(entry: Entry): RawEntry {
  const raw: RawEntry = { dn: entry.dn, attrs: {}, binary: {} };
  for (const [name, value] of Object.entries(entry)) {
    if (name === 'dn') continue;
    const values = Array.isArray(value) ? value : [value];
    const key = name.toLowerCase();
    raw.binary[key] = values.map((v) => (Buffer.isBuffer(v) ? v : Buffer.from(String(v), 'utf8')));
    raw.attrs[key] = values.map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v)));
  }
  return raw;
}

export class LdapDirectory implements Directory {
  private readonly servers: Server[];
  private readonly tlsOptions: ConnectionOptions;
  private readonly bindPassword: string;
  private readonly mapping: MappingOptions;

  constructor(
    private readonly cfg: DirectoryConfig,
    private readonly log: Logger,
  ) {
    if (!cfg.urls?.length || !cfg.baseDN || !cfg.bindDN) throw new Error('directory: urls, baseDN and bindDN are required');
    this.servers = cfg.urls.map((url) => ({ url, downUntil: 0 }));
    this.tlsOptions = {
      rejectUnauthorized: cfg.tls.rejectUnauthorized,
      ...(cfg.tls.caFile ? { ca: readFileSync(cfg.tls.caFile) } : {}),
      ...(cfg.tls.servername ? { servername: cfg.tls.servername } : {}),
      minVersion: 'TLSv1.2',
    };
    this.bindPassword = cfg.bindPassword ?? readFileSync(cfg.bindPasswordFile!, 'utf8').split(/\r?\n/)[0];
    this.mapping = { userPrincipalNameIsAddress: cfg.userPrincipalNameIsAddress };
  }

  private newClient(url: string): Client {
    return new Client({
      url,
      timeout: this.cfg.timeoutMs,
      connectTimeout: this.cfg.connectTimeoutMs,
      // Only for ldaps://. Given for an ldap:// URL, ldapts upsets the later StartTLS (the DC resets the connection).
      ...(url.startsWith('ldaps://') ? { tlsOptions: this.tlsOptions } : {}),
      strictDN: false,
    });
  }

  /**
   * Opens a connection and secures it: LDAPS, or StartTLS on ldap:// when configured. AD refuses simple binds in
   * clear text ("Transport encryption required"), and a password must never cross the network unencrypted anyway.
   */
  private async connect(url: string, bindDN: string, password: string): Promise<Client> {
    const client = this.newClient(url);
    try {
      if (url.startsWith('ldap://') && this.cfg.startTls) await client.startTLS(this.tlsOptions);
      await client.bind(bindDN, password);
      return client;
    } catch (err) {
      await client.unbind().catch(() => undefined);
      throw err;
    }
  }

  private async serviceClient(server: Server): Promise<Client> {
    if (server.client?.isConnected) return server.client;
    server.client = undefined;
    server.connecting ??= this.connect(server.url, this.cfg.bindDN!, this.bindPassword).finally(() => {
      server.connecting = undefined;
    });
    server.client = await server.connecting;
    return server.client;
  }

  private markDown(server: Server, err: unknown): void {
    server.downUntil = Date.now() + this.cfg.dcRetrySeconds * 1000;
    server.lastError = (err as Error)?.message ?? String(err);
    const client = server.client;
    server.client = undefined;
    client?.unbind().catch(() => undefined);
    this.log.warn({ component: 'directory', dc: server.url, err: server.lastError, retryInSeconds: this.cfg.dcRetrySeconds }, 'domain controller unreachable, skipping it');
  }

  /** Servers to try now: the healthy ones in configured order. */
  private candidates(): Server[] {
    const now = Date.now();
    return this.servers.filter((s) => s.downUntil <= now);
  }

  /**
   * Runs an operation on the first DC that answers. A reused connection may have been closed by the DC (AD drops
   * idle connections after MaxConnIdleTime), so a failure on it is retried once on a fresh connection before the
   * DC is marked down. LDAP result errors other than "no such object" also count as the DC failing (busy,
   * unavailable, unwilling).
   */
  private async withServer<T>(op: (client: Client) => Promise<T>): Promise<T> {
    const candidates = this.candidates();
    let lastErr: unknown;
    for (const server of candidates) {
      for (let attempt = 0; attempt < 2; attempt++) {
        const reused = attempt === 0 && server.client?.isConnected === true;
        try {
          const client = await this.serviceClient(server);
          return await op(client);
        } catch (err) {
          if (err instanceof NoSuchObjectError) throw new TempFailure(`directory: base DN not found on ${server.url}`, { cause: err });
          lastErr = err;
          if (reused) {
            server.client?.unbind().catch(() => undefined);
            server.client = undefined;
            continue;
          }
          this.markDown(server, err);
          break;
        }
      }
    }
    const detail = candidates.length === 0 ? 'every domain controller is marked down' : (lastErr as Error)?.message;
    throw new TempFailure(`directory unavailable: ${detail}`, { cause: lastErr });
  }

  private async search(filter: string | Filter, opts: { paged?: boolean; sizeLimit?: number } = {}): Promise<RawEntry[]> {
    return this.withServer(async (client) => {
      const { searchEntries } = await client.search(this.cfg.baseDN!, {
        scope: 'sub',
        filter,
        attributes: [...ENTRY_ATTRIBUTES],
        explicitBufferAttributes: [...BINARY_ATTRIBUTES],
        ...(opts.paged ? { paged: { pageSize: this.cfg.pageSize } } : {}),
        ...(opts.sizeLimit ? { sizeLimit: opts.sizeLimit } : {}),
      });
      return searchEntries.map(toRawEntry);
    });
  }

  /** The configured DC URLs, in failover order (for the change watch). */
  get urls(): string[] {
    return this.servers.map((s) => s.url);
  }

  get baseDN(): string {
    return this.cfg.baseDN!;
  }

  /**
   * A connection of its own to one DC, secured and bound as the service account: the change watch (watch.ts)
   * polls on it, so its searches never queue behind lookups or share their failure marks.
   */
  openServiceConnection(url: string): Promise<Client> {
    return this.connect(url, this.cfg.bindDN!, this.bindPassword);
  }

  /** Maps a raw entry by the AD rules: a user, a group, or null (computers, anything else). */
  mapEntry(entry: RawEntry): DirectoryEntry | null {
    return this.map(entry);
  }

  private map(entry: RawEntry): DirectoryEntry | null {
    const classes = (entry.attrs['objectclass'] ?? []).map((c) => c.toLowerCase());
    if (classes.includes('group')) return mapGroup(entry, this.mapping);
    if (classes.includes('user') && !classes.includes('computer')) return mapUser(entry, this.mapping);
    return null;
  }

  async findAddress(address: string): Promise<DirectoryEntry | null> {
    const a = normalizeAddress(address);
    if (!a) return null;
    const terms = [eq('mail', a), eq('proxyAddresses', `smtp:${a}`), eq('otherMailbox', `smtp:${a}`)];
    if (this.cfg.userPrincipalNameIsAddress) terms.push(eq('userPrincipalName', a));
    const entries = await this.search(and(or(USER_FILTER, GROUP_FILTER), or(...terms)), { sizeLimit: 10 });
    // The DC matched case-insensitively; the mapping decides what really is an address (prefixes, UPN switch).
    const matches = entries.map((e) => this.map(e)).filter((e): e is DirectoryEntry => e !== null && e.addresses.includes(a));
    if (matches.length > 1) {
      this.log.warn({ component: 'directory', address: a, dns: matches.map((m) => m.dn) }, 'address owned by more than one AD object; using the first');
    }
    return matches.find((m) => m.kind === 'user') ?? matches[0] ?? null;
  }

  async findLogin(login: string): Promise<UserEntry | null> {
    const l = login.trim();
    if (!l || l.length > 256) return null;
    const filter = l.includes('@')
      ? or(eq('userPrincipalName', l), eq('mail', l), eq('proxyAddresses', `SMTP:${l}`))
      : eq('sAMAccountName', l);
    const entries = await this.search(and(USER_FILTER, filter), { sizeLimit: 10 });
    const lower = l.toLowerCase();
    const users = entries.map((e) => mapUser(e, this.mapping));
    // `proxyAddresses=SMTP:x` also matches a non-primary `smtp:x` (case-insensitive match): keep primary only.
    return (
      users.find(
        (u) =>
          u.login.toLowerCase() === lower ||
          u.userPrincipalName?.toLowerCase() === lower ||
          u.primaryAddress === lower ||
          (entries.find((e) => e.dn === u.dn)?.attrs['mail']?.[0] ?? '').toLowerCase() === lower,
      ) ?? null
    );
  }

  async findGuid(guid: string): Promise<DirectoryEntry | null> {
    const g = guid.trim().toLowerCase();
    if (!isGuid(g)) return null;
    // The assertion value is the 16 raw bytes (RFC 4515 §3 would write them `\xx` each, guid.ts guidFilterValue),
    // given as a filter object: ldapts parses a filter string's `\xx` escapes into a JS string and sends it as
    // UTF-8, which turns every byte above 0x7f into two and so never matches a binary attribute.
    const filter = new AndFilter({
      filters: [FilterParser.parseString(or(USER_FILTER, GROUP_FILTER)), new EqualityFilter({ attribute: 'objectGUID', value: encodeGuid(g) })],
    });
    const entries = await this.search(filter, { sizeLimit: 2 });
    return entries.map((e) => this.map(e)).find((e): e is DirectoryEntry => e !== null && e.guid === g) ?? null;
  }

  async findGroup(name: string): Promise<GroupEntry | null> {
    const n = name.trim();
    if (!n) return null;
    const entries = await this.search(and(GROUP_FILTER, or(eq('sAMAccountName', n), eq('cn', n))), { sizeLimit: 10 });
    return entries.map((e) => mapGroup(e, this.mapping))[0] ?? null;
  }

  async members(group: GroupEntry): Promise<UserEntry[]> {
    const entries = await this.search(and(USER_FILTER, inChain('memberOf', group.dn)), { paged: true });
    return entries.map((e) => mapUser(e, this.mapping));
  }

  async groupsOf(user: UserEntry): Promise<GroupEntry[]> {
    const entries = await this.search(and(GROUP_FILTER, inChain('member', user.dn)), { paged: true });
    return entries.map((e) => mapGroup(e, this.mapping));
  }

  async listUsers(): Promise<UserEntry[]> {
    return (await this.search(USER_FILTER, { paged: true })).map((e) => mapUser(e, this.mapping));
  }

  async listGroups(): Promise<GroupEntry[]> {
    return (await this.search(GROUP_FILTER, { paged: true })).map((e) => mapGroup(e, this.mapping));
  }

  /**
   * Binds as the user on a connection of its own (a bind changes the identity of a connection). The caller has
   * already refused empty passwords: in AD an empty-password simple bind is an unauthenticated bind and succeeds
   * (RFC 4513 §5.1.2), and we refuse it here again so no path can forget it.
   */
  async verifyPassword(user: UserEntry, password: string): Promise<PasswordCheck> {
    if (password === '') return 'invalid';
    let lastErr: unknown;
    for (const server of this.candidates()) {
      try {
        const client = await this.connect(server.url, user.dn, password);
        await client.unbind().catch(() => undefined);
        return 'ok';
      } catch (err) {
        if (err instanceof InvalidCredentialsError) return 'invalid';
        lastErr = err;
        this.markDown(server, err);
      }
    }
    throw new TempFailure(`directory unavailable for password check: ${(lastErr as Error)?.message ?? 'every domain controller is marked down'}`, { cause: lastErr });
  }

  async health(): Promise<DirectoryHealth> {
    const now = Date.now();
    return {
      backend: 'ldap',
      servers: this.servers.map((s) => ({
        url: s.url,
        up: s.downUntil <= now,
        ...(s.downUntil > now ? { downUntil: new Date(s.downUntil).toISOString() } : {}),
        ...(s.lastError ? { lastError: s.lastError } : {}),
      })),
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.client?.unbind().catch(() => undefined)));
    for (const s of this.servers) s.client = undefined;
  }
}
