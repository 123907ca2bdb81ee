/**
 * `Settings`: the runtime settings (DESIGN.md §7) — domains, pseudonyms, per-user overrides and key/value options —
 * kept in SQLite so the admin API and the CLI change them while the server runs.
 *
 * Reads are served from an in-memory snapshot of all four tables: the resolver asks for a domain and a pseudonym on
 * every RCPT TO, so a lookup must not be a query. The snapshot is reloaded when this connection writes, and when
 * `PRAGMA data_version` says another connection (the CLI, another process) committed: that pragma is a counter
 * SQLite keeps in memory, so checking it costs one cheap statement per read and no file I/O.
 */
import type { z } from 'zod';
import { openSettingsDatabase, type OpenOptions, type SqliteDatabase, type Statement } from './db.js';
import { classifySqliteError, invalid, SettingsError } from './errors.js';
import {
  assertSettingKey,
  CROSS_CHECKS,
  parseSettingText,
  SETTING_DEFS,
  SETTING_KEYS,
  type SettingDef,
  type SettingKey,
  type SettingValue,
  type SettingValues,
} from './keys.js';
import {
  loginKey,
  normalizeAddress,
  normalizeDomain,
  normalizeLocalPart,
  normalizeLogin,
  normalizeImapReferral,
  normalizeNexthop,
} from './validate.js';

// ---- Domains ----------------------------------------------------------------------------------------------------

export type DomainType = 'local' | 'relay';

export interface Domain {
  /** Lower-case FQDN (ASCII form for internationalised names). */
  name: string;
  /** local: delivered to mailboxes here; relay: forwarded to `nexthop`. */
  type: DomainType;
  /** `host` or `host:port`, relay domains only. */
  nexthop: string | null;
  /** "Always send a copy (Bcc)": a hidden copy of every message to this domain goes to this address. */
  bcc: string | null;
  /** Markdown text attached to messages sent from this domain. */
  disclaimer: string | null;
  /**
   * `imap://host[:port]/`: the IMAP server that holds this domain's mailboxes (a domain still hosted elsewhere during
   * a migration). Its users are referred there at IMAP login (RFC 2221) instead of logging in here.
   */
  imapReferral: string | null;
}

export interface DomainInput {
  name: string;
  type: DomainType;
  /** host[:port]; required for relay domains, refused for local ones. */
  nexthop?: string | null;
  bcc?: string | null;
  disclaimer?: string | null;
  /** imap://host[:port]/; null or absent: the domain's users log in here. */
  imapReferral?: string | null;
}

/** Fields left undefined are kept; null clears bcc/disclaimer/imapReferral. Changing type to local drops the nexthop. */
export type DomainPatch = Partial<Omit<DomainInput, 'name'>>;

export interface RemovedDomain {
  domain: Domain;
  /** Addresses bound to this domain only: kept, but they match nothing until the domain is added back. */
  inactiveAddresses: Pseudonym[];
}

/** A disclaimer is text for a message part, not a document store. */
const MAX_DISCLAIMER_BYTES = 64 * 1024;

// ---- Pseudonyms -------------------------------------------------------------------------------------------------

export interface PseudonymTarget {
  kind: 'user' | 'group';
  /** sAMAccountName of the user or group, as typed (compare case-insensitively). */
  name: string;
}

export interface Pseudonym {
  /** Lower-case local part. */
  localPart: string;
  /** The one domain this entry applies to, or null for every configured local domain. */
  domain: string | null;
  /** `local@domain`, or `local@*` for an all-domains entry. */
  address: string;
  target: PseudonymTarget;
  /** The seed's "Local network only": mail from outside the organisation is refused. */
  localNetworkOnly: boolean;
}

export interface PseudonymInput {
  localPart: string;
  domains: string[] | 'all';
  target: PseudonymTarget;
  localNetworkOnly?: boolean;
}

/** A pseudonym found for an address: `address` is the address asked about, normalised. */
export interface PseudonymMatch extends Pseudonym {
  matchedAddress: string;
}

// ---- Users ------------------------------------------------------------------------------------------------------

export interface UserSettings {
  /** sAMAccountName as last typed. */
  login: string;
  /** Custom quota in MB (0 = unlimited for this user); null = mailbox.quotaMB applies. */
  quotaMB: number | null;
  /** Custom spam retention in days (0 = keep); null = mailbox.spamRetentionDays applies. */
  spamRetentionDays: number | null;
  /** Forward every message to this address. */
  forward: string | null;
  /** With a forward: keep a copy in the mailbox too. */
  keepCopy: boolean;
  /** Custom send limits per 60 minutes (0 = none for this user); null = smtp.sendLimit.* applies (src/limits). */
  sendLimitMessages: number | null;
  sendLimitRecipients: number | null;
}

/** Fields left undefined are kept; null resets to the global setting (or no forward). */
export interface UserPatch {
  quotaMB?: number | null;
  spamRetentionDays?: number | null;
  forward?: string | null;
  keepCopy?: boolean;
  sendLimitMessages?: number | null;
  sendLimitRecipients?: number | null;
}

/** The values that apply to a user: overrides where set, the global settings otherwise. */
export interface EffectiveUserSettings {
  login: string;
  quotaMB: number;
  quotaCustom: boolean;
  spamRetentionDays: number;
  spamRetentionCustom: boolean;
  forward: string | null;
  keepCopy: boolean;
  /** Messages / recipients per 60 minutes this user may send; 0 = no limit. */
  sendLimitMessages: number;
  sendLimitMessagesCustom: boolean;
  sendLimitRecipients: number;
  sendLimitRecipientsCustom: boolean;
}

// ---- Key/value --------------------------------------------------------------------------------------------------

export interface SettingEntry {
  key: SettingKey;
  value: unknown;
  default: unknown;
  /** A value is stored (even one equal to the default). */
  isSet: boolean;
  /** The stored value no longer passes the key's schema (hand edit, older version); the default is used. */
  invalidStored?: string;
  description: string;
  expect: string;
  page: SettingDef['page'];
  secret: boolean;
}

// ---- Rows and snapshot ------------------------------------------------------------------------------------------

interface DomainRow {
  name: string;
  type: DomainType;
  nexthop: string | null;
  bcc: string | null;
  disclaimer: string | null;
  imap_referral: string | null;
}

interface PseudonymRow {
  local_part: string;
  domain: string | null;
  target_kind: 'user' | 'group';
  target_name: string;
  local_network_only: number;
}

interface UserRow {
  login_key: string;
  login: string;
  quota_mb: number | null;
  spam_retention_days: number | null;
  forward: string | null;
  keep_copy: number;
  send_limit_messages: number | null;
  send_limit_recipients: number | null;
}

interface Snapshot {
  domains: Map<string, Domain>;
  /** local part → (domain or '' for all domains) → entry */
  pseudonyms: Map<string, Map<string, Pseudonym>>;
  users: Map<string, UserSettings>;
  values: Map<SettingKey, { value: unknown; invalid?: string }>;
}

const now = () => new Date().toISOString();

function toDomain(r: DomainRow): Domain {
  return { name: r.name, type: r.type, nexthop: r.nexthop, bcc: r.bcc, disclaimer: r.disclaimer, imapReferral: r.imap_referral };
}

function toPseudonym(r: PseudonymRow): Pseudonym {
  return {
    localPart: r.local_part,
    domain: r.domain,
    address: `${r.local_part}@${r.domain ?? '*'}`,
    target: { kind: r.target_kind, name: r.target_name },
    localNetworkOnly: r.local_network_only === 1,
  };
}

function toUser(r: UserRow): UserSettings {
  return {
    login: r.login,
    quotaMB: r.quota_mb,
    spamRetentionDays: r.spam_retention_days,
    forward: r.forward,
    keepCopy: r.keep_copy === 1,
    sendLimitMessages: r.send_limit_messages,
    sendLimitRecipients: r.send_limit_recipients,
  };
}

function comparePseudonyms(a: Pseudonym, b: Pseudonym): number {
  // All-domains entries first within a local part: they are the broader rule.
  return a.localPart.localeCompare(b.localPart) || (a.domain ?? '').localeCompare(b.domain ?? '');
}

function zodMessage(err: z.ZodError): string {
  return err.issues.map((i) => i.message).join('; ');
}

function optionalText(value: string | null | undefined, fn: (s: string) => string): string | null | undefined {
  if (value === undefined || value === null) return value;
  if (value.trim() === '') return null;
  return fn(value);
}

function checkDisclaimer(text: string | null | undefined): string | null | undefined {
  if (text === undefined || text === null) return text;
  // Stored with LF; the delivery side writes CRLF on the wire (DESIGN.md §6).
  const t = text.replace(/\r\n?/g, '\n');
  if (t.trim() === '') return null;
  if (Buffer.byteLength(t) > MAX_DISCLAIMER_BYTES) throw invalid(`disclaimer is too long: at most ${MAX_DISCLAIMER_BYTES / 1024} KB`);
  if (t.includes('\0')) throw invalid('disclaimer must be text (it contains a NUL byte)');
  return t;
}

function checkCount(value: number | null | undefined, what: string): number | null | undefined {
  if (value === undefined || value === null) return value;
  if (!Number.isInteger(value) || value < 0 || value > Number.MAX_SAFE_INTEGER) {
    throw invalid(`${what} must be a whole number ≥ 0, got ${String(value)}`);
  }
  return value;
}

/** How long a snapshot is used without asking SQLite whether another connection changed the data. */
const SNAPSHOT_CHECK_MS = 1;

/**
 * What keeps this node's settings database in step with a store shared by every node (issue 16,
 * src/state/postgres/settings-sync.ts). Without one, settings.db is the store.
 */
export interface SharedSettings {
  /** Runs `fn` (synchronous writes on this Settings) so that its changes are in the shared store when it resolves. */
  apply<T>(fn: () => T): Promise<T>;
  /** Called after every write committed to settings.db. */
  written(): void;
}

export class Settings {
  private snap: Snapshot | undefined;
  private shared: SharedSettings | undefined;
  private snapVersion = -1;
  /** performance.now() of the last data_version check. */
  private checkedAt = -Infinity;
  private readonly dataVersion: Statement;
  private readonly stmt: Record<string, Statement>;

  constructor(readonly db: SqliteDatabase) {
    this.dataVersion = db.prepare('PRAGMA data_version').pluck();
    const p = (sql: string) => db.prepare(sql);
    this.stmt = {
      domains: p('SELECT name, type, nexthop, bcc, disclaimer, imap_referral FROM domains'),
      pseudonyms: p('SELECT local_part, domain, target_kind, target_name, local_network_only FROM pseudonyms'),
      users: p('SELECT login_key, login, quota_mb, spam_retention_days, forward, keep_copy, send_limit_messages, send_limit_recipients FROM users'),
      values: p('SELECT key, value FROM settings'),
      domainGet: p('SELECT name, type, nexthop, bcc, disclaimer, imap_referral FROM domains WHERE name = ?'),
      domainInsert: p(
        'INSERT INTO domains (name, type, nexthop, bcc, disclaimer, imap_referral, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      domainUpdate: p('UPDATE domains SET type = ?, nexthop = ?, bcc = ?, disclaimer = ?, imap_referral = ?, updated_at = ? WHERE name = ?'),
      domainDelete: p('DELETE FROM domains WHERE name = ?'),
      pseudonymGet: p(
        "SELECT local_part, domain, target_kind, target_name, local_network_only FROM pseudonyms WHERE local_part = ? AND ifnull(domain, '') = ?",
      ),
      pseudonymsOf: p(
        'SELECT local_part, domain, target_kind, target_name, local_network_only FROM pseudonyms WHERE local_part = ?',
      ),
      pseudonymsOnDomain: p(
        'SELECT local_part, domain, target_kind, target_name, local_network_only FROM pseudonyms WHERE domain = ?',
      ),
      pseudonymInsert: p(
        'INSERT INTO pseudonyms (local_part, domain, target_kind, target_name, local_network_only, created_at) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      pseudonymDelete: p("DELETE FROM pseudonyms WHERE local_part = ? AND ifnull(domain, '') = ?"),
      userGet: p('SELECT login_key, login, quota_mb, spam_retention_days, forward, keep_copy, send_limit_messages, send_limit_recipients FROM users WHERE login_key = ?'),
      userUpsert: p(`INSERT INTO users (login_key, login, quota_mb, spam_retention_days, forward, keep_copy, send_limit_messages,
          send_limit_recipients, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (login_key) DO UPDATE SET login = excluded.login, quota_mb = excluded.quota_mb,
          spam_retention_days = excluded.spam_retention_days, forward = excluded.forward,
          keep_copy = excluded.keep_copy, send_limit_messages = excluded.send_limit_messages,
          send_limit_recipients = excluded.send_limit_recipients, updated_at = excluded.updated_at`),
      userDelete: p('DELETE FROM users WHERE login_key = ?'),
      valueUpsert: p(`INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
        ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`),
      valueDelete: p('DELETE FROM settings WHERE key = ?'),
    };
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** Puts settings.db under a shared store: from now on apply() ends only once the shared store has the change. */
  attachShared(shared: SharedSettings): void {
    this.shared = shared;
  }

  /**
   * Runs a change (calls of the write methods below) and resolves once it is durable where every node reads it:
   * at once with settings.db alone (the writes are synchronous and committed), after the PostgreSQL commit with
   * state postgres. The admin API and the CLI write through this; a TempFailure means nothing was changed.
   */
  apply<T>(fn: () => T): Promise<T> {
    if (!this.shared) {
      // One SQLite transaction (the writes inside become savepoints): a change refused half-way leaves nothing.
      try {
        return Promise.resolve(this.db.transaction(fn).immediate());
      } catch (err) {
        return Promise.reject(classifySqliteError(err));
      } finally {
        this.snap = undefined;
      }
    }
    return this.shared.apply(fn);
  }

  /** Forgets the snapshot: the shared store's copy replaced rows of settings.db through this connection. */
  invalidate(): void {
    this.snap = undefined;
  }

  // ---- snapshot ---------------------------------------------------------------------------------------------------

  /**
   * The current snapshot, reloaded when this or another connection changed the database since it was taken.
   * Another process's change is looked for at most once per SNAPSHOT_CHECK_MS: one SMTP message asks the settings
   * some thirty times (filters, policy, resolver, delivery), and a PRAGMA each time was 4 % of the server's CPU
   * under load (issue 11). A change by the CLI reaches the server a millisecond later at worst; this connection's
   * own writes drop the snapshot at once (write()).
   */
  private snapshot(): Snapshot {
    const now = performance.now();
    if (this.snap && now - this.checkedAt < SNAPSHOT_CHECK_MS) return this.snap;
    try {
      this.checkedAt = now;
      const version = this.dataVersion.get() as number;
      if (this.snap && version === this.snapVersion) return this.snap;
      this.snapVersion = version;
      this.snap = this.load();
      return this.snap;
    } catch (err) {
      throw classifySqliteError(err);
    }
  }

  private load(): Snapshot {
    const domains = new Map<string, Domain>();
    for (const r of this.stmt.domains.all() as DomainRow[]) domains.set(r.name, toDomain(r));
    const pseudonyms = new Map<string, Map<string, Pseudonym>>();
    for (const r of this.stmt.pseudonyms.all() as PseudonymRow[]) {
      let byDomain = pseudonyms.get(r.local_part);
      if (!byDomain) pseudonyms.set(r.local_part, (byDomain = new Map()));
      byDomain.set(r.domain ?? '', toPseudonym(r));
    }
    const users = new Map<string, UserSettings>();
    for (const r of this.stmt.users.all() as UserRow[]) users.set(r.login_key, toUser(r));
    const values = new Map<SettingKey, { value: unknown; invalid?: string }>();
    for (const r of this.stmt.values.all() as { key: string; value: string }[]) {
      if (!Object.prototype.hasOwnProperty.call(SETTING_DEFS, r.key)) continue; // a key of a newer version
      const key = r.key as SettingKey;
      const d = SETTING_DEFS[key] as SettingDef;
      let parsed: unknown;
      try {
        parsed = JSON.parse(r.value);
      } catch {
        values.set(key, { value: d.default, invalid: 'not JSON' });
        continue;
      }
      const result = d.schema.safeParse(parsed);
      values.set(key, result.success ? { value: result.data } : { value: d.default, invalid: zodMessage(result.error) });
    }
    return { domains, pseudonyms, users, values };
  }

  /**
   * Runs a write in a BEGIN IMMEDIATE transaction (so checks read what the write will change, even against another
   * process) and drops the snapshot: this connection's own commits do not move data_version.
   */
  private write<T>(fn: () => T): T {
    try {
      const tx = this.db.transaction(() => {
        this.snap = undefined;
        return fn();
      });
      const out = tx.immediate();
      this.shared?.written();
      return out;
    } catch (err) {
      throw classifySqliteError(err);
    } finally {
      this.snap = undefined;
    }
  }

  // ---- domains ----------------------------------------------------------------------------------------------------

  getDomain(name: string): Domain | null {
    const domains = this.snapshot().domains;
    // Fast path for the usual lower-case ASCII name; full normalisation (IDN, trailing dot) only on a miss.
    const hit = domains.get(name.trim().toLowerCase());
    if (hit) return hit;
    try {
      return domains.get(normalizeDomain(name)) ?? null;
    } catch {
      return null;
    }
  }

  listDomains(): Domain[] {
    return [...this.snapshot().domains.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The domain is configured and delivered locally. */
  isLocalDomain(name: string): boolean {
    return this.getDomain(name)?.type === 'local';
  }

  private checkDomainFields(type: DomainType, nexthop: string | null | undefined): string | null {
    if (type !== 'local' && type !== 'relay') throw invalid(`domain type must be local or relay, got ${JSON.stringify(type)}`);
    if (type === 'relay') {
      if (!nexthop || nexthop.trim() === '') throw invalid('a relay domain needs a next hop (HOST[:PORT]) to relay to');
      return normalizeNexthop(nexthop);
    }
    if (nexthop) throw invalid('a local domain has no next hop; use type relay to relay it to another server');
    return null;
  }

  addDomain(input: DomainInput): Domain {
    const name = normalizeDomain(input.name);
    const nexthop = this.checkDomainFields(input.type, input.nexthop);
    const bcc = optionalText(input.bcc, (s) => normalizeAddress(s, 'Bcc address')) ?? null;
    const disclaimer = checkDisclaimer(input.disclaimer) ?? null;
    const imapReferral = optionalText(input.imapReferral, normalizeImapReferral) ?? null;
    return this.write(() => {
      if (this.stmt.domainGet.get(name)) throw new SettingsError('exists', `domain ${name} already exists`);
      const t = now();
      this.stmt.domainInsert.run(name, input.type, nexthop, bcc, disclaimer, imapReferral, t, t);
      return { name, type: input.type, nexthop, bcc, disclaimer, imapReferral };
    });
  }

  updateDomain(name: string, patch: DomainPatch): Domain {
    const key = normalizeDomain(name);
    const bcc = optionalText(patch.bcc, (s) => normalizeAddress(s, 'Bcc address'));
    const disclaimer = checkDisclaimer(patch.disclaimer);
    const imapReferral = optionalText(patch.imapReferral, normalizeImapReferral);
    return this.write(() => {
      const row = this.stmt.domainGet.get(key) as DomainRow | undefined;
      if (!row) throw new SettingsError('not-found', `no domain ${key}`);
      const type = patch.type ?? row.type;
      // Switching relay → local drops the next hop; local → relay needs one.
      const nexthopIn = patch.nexthop !== undefined ? patch.nexthop : type === row.type ? row.nexthop : null;
      const nexthop = this.checkDomainFields(type, nexthopIn);
      const next: Domain = {
        name: key,
        type,
        nexthop,
        bcc: bcc === undefined ? row.bcc : bcc,
        disclaimer: disclaimer === undefined ? row.disclaimer : disclaimer,
        imapReferral: imapReferral === undefined ? row.imap_referral : imapReferral,
      };
      this.stmt.domainUpdate.run(next.type, next.nexthop, next.bcc, next.disclaimer, next.imapReferral, now(), key);
      return next;
    });
  }

  /**
   * Removes the domain's settings row and nothing else. As the seed says, deleting a domain never deletes mail:
   * mailboxes live under the users, not the domain, and messages already received are preserved. Addresses bound
   * to this domain are kept too (inactive until the domain is added back) and reported to the caller.
   */
  removeDomain(name: string): RemovedDomain {
    const key = normalizeDomain(name);
    return this.write(() => {
      const row = this.stmt.domainGet.get(key) as DomainRow | undefined;
      if (!row) throw new SettingsError('not-found', `no domain ${key}`);
      this.stmt.domainDelete.run(key);
      const inactiveAddresses = (this.stmt.pseudonymsOnDomain.all(key) as PseudonymRow[]).map(toPseudonym).sort(comparePseudonyms);
      return { domain: toDomain(row), inactiveAddresses };
    });
  }

  // ---- pseudonyms ---------------------------------------------------------------------------------------------------

  /**
   * Adds `localPart` on every local domain or on each of `domains` (one entry per domain, all or none added).
   * Each domain must be a configured local domain: a relay domain's mail is not ours to deliver.
   */
  addPseudonym(input: PseudonymInput): Pseudonym[] {
    return this.pseudonymPlan(input, true);
  }

  /**
   * Throws what addPseudonym would throw for `input` (syntax, domains, an existing entry), without adding: the front
   * ends check this before asking the directory about the target, so a typo is answered without a round trip to AD.
   */
  validatePseudonym(input: PseudonymInput): void {
    this.pseudonymPlan(input, false);
  }

  private pseudonymPlan(input: PseudonymInput, insert: boolean): Pseudonym[] {
    const localPart = normalizeLocalPart(input.localPart);
    const kind = input.target?.kind;
    if (kind !== 'user' && kind !== 'group') throw invalid(`the target of an address is a user or a group, got ${JSON.stringify(kind)}`);
    const targetName = normalizeLogin(input.target.name, kind === 'user' ? 'user login' : 'group name');
    let domains: (string | null)[];
    if (input.domains === 'all') {
      domains = [null];
    } else {
      if (!Array.isArray(input.domains) || input.domains.length === 0) {
        throw invalid('give the domains of the address, or "all" for every local domain');
      }
      domains = [...new Set(input.domains.map((d) => normalizeDomain(d)))];
    }
    const lno = input.localNetworkOnly ? 1 : 0;
    return this.write(() => {
      const added: Pseudonym[] = [];
      for (const domain of domains) {
        if (domain !== null) {
          const row = this.stmt.domainGet.get(domain) as DomainRow | undefined;
          if (!row) throw invalid(`domain ${domain} is not configured; add it first (postern domain add ${domain})`);
          if (row.type !== 'local') throw invalid(`domain ${domain} is relayed to ${row.nexthop}: it has no local addresses`);
        }
        const existing = this.stmt.pseudonymGet.get(localPart, domain ?? '') as PseudonymRow | undefined;
        if (existing) {
          const p = toPseudonym(existing);
          throw new SettingsError('exists', `address ${p.address} already exists (→ ${p.target.kind} ${p.target.name})`);
        }
        if (insert) this.stmt.pseudonymInsert.run(localPart, domain, kind, targetName, lno, now());
        added.push(toPseudonym({ local_part: localPart, domain, target_kind: kind, target_name: targetName, local_network_only: lno }));
      }
      return added;
    });
  }

  listPseudonyms(): Pseudonym[] {
    const out: Pseudonym[] = [];
    for (const byDomain of this.snapshot().pseudonyms.values()) out.push(...byDomain.values());
    return out.sort(comparePseudonyms);
  }

  /**
   * Removes entries of `localPart`: with a domain, that domain's entry; with 'all', the all-domains entry; without,
   * every entry of the local part. Returns what was removed (empty: nothing matched).
   */
  removePseudonym(localPart: string, domain?: string | 'all'): Pseudonym[] {
    const local = normalizeLocalPart(localPart);
    const d = domain === undefined ? undefined : domain === 'all' || domain === '*' ? '' : normalizeDomain(domain);
    return this.write(() => {
      const rows =
        d === undefined
          ? (this.stmt.pseudonymsOf.all(local) as PseudonymRow[])
          : ([this.stmt.pseudonymGet.get(local, d)].filter(Boolean) as PseudonymRow[]);
      for (const r of rows) this.stmt.pseudonymDelete.run(r.local_part, r.domain ?? '');
      return rows.map(toPseudonym).sort(comparePseudonyms);
    });
  }

  /**
   * The pseudonym for `local@domain`, when `domain` is a configured local domain and an entry exists on that
   * domain or on all domains; the domain-specific entry wins. Case-insensitive. Null for anything else, including
   * addresses that are not syntactically ours.
   */
  findPseudonym(address: string): PseudonymMatch | null {
    const s = address.trim().normalize('NFC').toLowerCase();
    const at = s.lastIndexOf('@');
    if (at <= 0) return null;
    const snap = this.snapshot();
    const byDomain = snap.pseudonyms.get(s.slice(0, at));
    if (!byDomain) return null;
    let domain = s.slice(at + 1).replace(/\.$/, '');
    if (!snap.domains.has(domain)) {
      try {
        domain = normalizeDomain(domain); // an internationalised domain typed in Unicode
      } catch {
        return null;
      }
    }
    if (snap.domains.get(domain)?.type !== 'local') return null;
    const p = byDomain.get(domain) ?? byDomain.get('');
    return p ? { ...p, matchedAddress: `${p.localPart}@${domain}` } : null;
  }

  // ---- users --------------------------------------------------------------------------------------------------------

  /** The overrides of a user (any case of the login), or null when the global settings apply unchanged. */
  getUser(login: string): UserSettings | null {
    return this.snapshot().users.get(loginKey(login.trim())) ?? null;
  }

  listUsers(): UserSettings[] {
    return [...this.snapshot().users.values()].sort((a, b) => loginKey(a.login).localeCompare(loginKey(b.login)));
  }

  /**
   * Changes a user's overrides; returns them, or null when none is left (the row is then deleted, so listUsers
   * shows only users with something custom). Clearing the forward also clears keepCopy, which means nothing alone.
   */
  setUser(login: string, patch: UserPatch): UserSettings | null {
    const display = normalizeLogin(login);
    const key = loginKey(display);
    const quotaMB = checkCount(patch.quotaMB, 'quota (MB)');
    const spamRetentionDays = checkCount(patch.spamRetentionDays, 'spam retention (days)');
    const sendLimitMessages = checkCount(patch.sendLimitMessages, 'send limit (messages per hour)');
    const sendLimitRecipients = checkCount(patch.sendLimitRecipients, 'send limit (recipients per hour)');
    const forward = optionalText(patch.forward, (s) => normalizeAddress(s, 'forward address'));
    if (patch.keepCopy !== undefined && typeof patch.keepCopy !== 'boolean') throw invalid('keepCopy must be true or false');
    return this.write(() => {
      const row = this.stmt.userGet.get(key) as UserRow | undefined;
      const cur: UserSettings = row
        ? toUser(row)
        : { login: display, quotaMB: null, spamRetentionDays: null, forward: null, keepCopy: false, sendLimitMessages: null, sendLimitRecipients: null };
      const next: UserSettings = {
        login: display,
        quotaMB: quotaMB === undefined ? cur.quotaMB : quotaMB,
        spamRetentionDays: spamRetentionDays === undefined ? cur.spamRetentionDays : spamRetentionDays,
        forward: forward === undefined ? cur.forward : forward,
        keepCopy: patch.keepCopy ?? cur.keepCopy,
        sendLimitMessages: sendLimitMessages === undefined ? cur.sendLimitMessages : sendLimitMessages,
        sendLimitRecipients: sendLimitRecipients === undefined ? cur.sendLimitRecipients : sendLimitRecipients,
      };
      if (next.forward === null) {
        if (patch.keepCopy === true) throw invalid('keep a copy only applies with a forward address');
        next.keepCopy = false;
      }
      if (
        next.quotaMB === null &&
        next.spamRetentionDays === null &&
        next.forward === null &&
        next.sendLimitMessages === null &&
        next.sendLimitRecipients === null
      ) {
        this.stmt.userDelete.run(key);
        return null;
      }
      this.stmt.userUpsert.run(
        key,
        next.login,
        next.quotaMB,
        next.spamRetentionDays,
        next.forward,
        next.keepCopy ? 1 : 0,
        next.sendLimitMessages,
        next.sendLimitRecipients,
        now(),
      );
      return next;
    });
  }

  /** What applies to a user: custom values where set, else mailbox.quotaMB and mailbox.spamRetentionDays. */
  effectiveUser(login: string): EffectiveUserSettings {
    const u = this.getUser(login);
    return {
      login: u?.login ?? login.trim(),
      quotaMB: u?.quotaMB ?? this.get('mailbox.quotaMB'),
      quotaCustom: u?.quotaMB != null,
      spamRetentionDays: u?.spamRetentionDays ?? this.get('mailbox.spamRetentionDays'),
      spamRetentionCustom: u?.spamRetentionDays != null,
      forward: u?.forward ?? null,
      keepCopy: u?.keepCopy ?? false,
      sendLimitMessages: u?.sendLimitMessages ?? this.get('smtp.sendLimit.messagesPerHour'),
      sendLimitMessagesCustom: u?.sendLimitMessages != null,
      sendLimitRecipients: u?.sendLimitRecipients ?? this.get('smtp.sendLimit.recipientsPerHour'),
      sendLimitRecipientsCustom: u?.sendLimitRecipients != null,
    };
  }

  // ---- key/value ----------------------------------------------------------------------------------------------------

  /** The value of `key`: the stored one, else the default. Served from the snapshot. */
  get<K extends SettingKey>(key: K): SettingValue<K> {
    const stored = this.snapshot().values.get(key);
    if (stored) return stored.value as SettingValue<K>;
    if (!Object.prototype.hasOwnProperty.call(SETTING_DEFS, key)) assertSettingKey(key);
    return SETTING_DEFS[key].default as SettingValue<K>;
  }

  /** Every key with its current value. */
  all(): SettingValues {
    const out = {} as Record<SettingKey, unknown>;
    for (const k of SETTING_KEYS) out[k] = this.get(k);
    return out as SettingValues;
  }

  /** Every key with value, default, whether it is set, and its description (for `settings list` and the API). */
  entries(): SettingEntry[] {
    const snap = this.snapshot();
    return SETTING_KEYS.map((key) => {
      const d = SETTING_DEFS[key] as SettingDef;
      const stored = snap.values.get(key);
      return {
        key,
        value: stored ? stored.value : d.default,
        default: d.default,
        isSet: stored !== undefined,
        ...(stored?.invalid ? { invalidStored: stored.invalid } : {}),
        description: d.description,
        expect: d.expect,
        page: d.page,
        secret: d.secret ?? false,
      };
    });
  }

  private validate(key: string, value: unknown): { key: SettingKey; value: unknown } {
    assertSettingKey(key);
    const d = SETTING_DEFS[key] as SettingDef;
    const result = d.schema.safeParse(value);
    if (!result.success) {
      const shown = d.secret ? '(hidden)' : JSON.stringify(value);
      throw new SettingsError('invalid', `${key}: ${shown} is not valid (${zodMessage(result.error)}); expected ${d.expect}`, key);
    }
    return { key, value: result.data };
  }

  /** Validates with the key's schema, stores, and returns the value as stored (normalised). */
  set<K extends SettingKey>(key: K, value: unknown): SettingValue<K> {
    return this.setMany({ [key]: value })[key] as SettingValue<K>;
  }

  /**
   * Sets several keys in one transaction, so rules between keys (smarthost.enabled needs smarthost.host, the spam
   * threshold is not above the deny threshold) are checked on the result, whatever the order.
   */
  setMany(values: Record<string, unknown>): Partial<SettingValues> {
    const parsed = Object.entries(values).map(([k, v]) => this.validate(k, v));
    if (parsed.length === 0) return {};
    return this.write(() => {
      const changed = new Set(parsed.map((p) => p.key));
      const next = { ...this.all(), ...Object.fromEntries(parsed.map((p) => [p.key, p.value])) } as SettingValues;
      this.crossCheck(next, changed);
      const t = now();
      for (const p of parsed) this.stmt.valueUpsert.run(p.key, JSON.stringify(p.value), t);
      return Object.fromEntries(parsed.map((p) => [p.key, p.value])) as Partial<SettingValues>;
    });
  }

  /** Parses command-line text for `key` (yes/no, numbers, comma-separated lists, JSON) and sets it. */
  setFromString<K extends SettingKey>(key: K | string, text: string): SettingValue<K> {
    assertSettingKey(key);
    return this.set(key, parseSettingText(key, text)) as SettingValue<K>;
  }

  /** Drops the stored value: the default applies again. Returns the default. */
  unset<K extends SettingKey>(key: K | string): SettingValue<K> {
    assertSettingKey(key);
    const k: SettingKey = key;
    return this.write(() => {
      const next = { ...this.all(), [k]: SETTING_DEFS[k].default } as SettingValues;
      this.crossCheck(next, new Set([k]));
      this.stmt.valueDelete.run(k);
      return SETTING_DEFS[k].default as SettingValue<K>;
    });
  }

  private crossCheck(next: SettingValues, changed: Set<SettingKey>): void {
    for (const c of CROSS_CHECKS) {
      if (!c.keys.some((k) => changed.has(k))) continue;
      const problem = c.check(next);
      if (problem) throw new SettingsError('invalid', problem, c.keys.find((k) => changed.has(k)));
    }
  }
}

/** Opens `${dataDir}/settings.db` (created and migrated as needed). Call close() when done. */
export function openSettings(dataDir: string, opts: OpenOptions = {}): Settings {
  try {
    return new Settings(openSettingsDatabase(dataDir, opts));
  } catch (err) {
    throw classifySqliteError(err);
  }
}
