/**
 * Follows the changes of Active Directory so that they reach postern in seconds, with the cache warm (issue 13
 * item 3): a user disabled, locked, expired or deleted in AD, an address added, a membership changed.
 *
 * Mechanism: uSNChanged polling. Every `pollIntervalMs` the watched DC's rootDSE is read (one base search) and,
 * when its highestCommittedUSN moved, the users and groups with `lastUsn < uSNChanged <= highestCommittedUSN` are
 * fetched (with the show-deleted control, 1.2.840.113556.1.4.417, so deletions are seen as tombstones) and applied
 * to the cache one object at a time. This is MS-ADTS §3.1.1.3.1.1's "polling for changes with uSNChanged" and
 * works on every DC. The two push mechanisms were weighed and left out openly:
 *  - LDAP_SERVER_NOTIFICATION_OID (1.2.840.113556.1.4.528) is a search that never ends; ldapts resolves a search
 *    only when it is done, so entries could not be streamed without patching ldapts, and AD allows only a few such
 *    searches per connection with base/one-level scope (a subtree needs one per container).
 *  - DirSync (1.2.840.113556.1.4.841) needs "Replicating Directory Changes" on the service account, which a mail
 *    service account should not hold.
 * The rootDSE read costs one round trip per second; `directory health` shows, per DC, what it announces.
 *
 * uSNs are local to one DC database, named by its invocationId (on the NTDS Settings object, dsServiceName):
 *  - reconnecting to a DC with the same invocationId resumes from the last applied uSN, so nothing changed while
 *    the DC restarted (or while postern was reconnecting) is lost;
 *  - a DC with another invocationId (failover, or a DC restored from backup) cannot be resumed by uSN: the objects
 *    it shows changed (whenChanged, which each DC sets when it applies a change, replicated ones too) since shortly
 *    before the last good poll are re-read and applied. The cache is never flushed.
 *
 * Each changed object drops just the cached answers that mention it (by DN and by each login/address it had) and
 * primes the new ones; a group change also drops the member lists and group lists (nesting makes them depend on
 * any group). Listeners get `{ dn, objectGUID, deleted, user | group }` (the server closes the IMAP/POP3 sessions
 * of a user who may no longer log in; deletions go to the mailbox orphan handling).
 */
import { renameSync, writeFileSync } from 'node:fs';
import { Control, type Client, type Entry } from 'ldapts';
import type { DirectoryConfig } from '../config/schema.js';
import type { Logger } from '../lib/logger.js';
import type { CachedDirectory } from './cache.js';
import type { LdapDirectory } from './ldap/ldap-directory.js';
import { escapeFilterValue } from './ldap/filter.js';
import { toRawEntry } from './ldap/ldap-directory.js';
import { ENTRY_ATTRIBUTES, first, type RawEntry } from './mapping.js';
import type { DirectoryEntry, GroupEntry, UserEntry, WatchDcHealth, WatchHealth } from './types.js';
import { loginKey } from './types.js';

export const NOTIFICATION_OID = '1.2.840.113556.1.4.528';
export const DIRSYNC_OID = '1.2.840.113556.1.4.841';
export const SHOW_DELETED_OID = '1.2.840.113556.1.4.417';

export interface DirectoryChange {
  /** The object's DN now (for a deletion: its DN before, when postern knew it, else the tombstone's). */
  dn: string;
  objectGUID?: string;
  deleted: boolean;
  kind: 'user' | 'group';
  user?: UserEntry;
  group?: GroupEntry;
  /** What the cache held for this object before the change, if anything. */
  previous?: DirectoryEntry;
  /** sAMAccountName (kept in a tombstone, so deletions carry it too). */
  name?: string;
  /** The DC it was seen on and its uSNChanged there. */
  dc: string;
  usn: number;
  /** When postern saw it (ms since the epoch): for measuring AD → postern delays. */
  seenAt: number;
}

/** The state file `postern serve` keeps in dataDir for `postern directory health`. */
export const WATCH_STATE_FILE = 'directory-watch.json';

export type ChangeListener = (change: DirectoryChange) => void;

export type WatchConfig = DirectoryConfig['watch'];

interface Dc {
  url: string;
  state: WatchDcHealth['state'];
  mechanism: WatchDcHealth['mechanism'];
  dsServiceName?: string;
  invocationId?: string;
  lastUsn?: number;
  lastPollAt?: number;
  lastChangeAt?: number;
  changes: number;
  resumes: number;
  retryAt: number;
  lastError?: string;
  controls?: WatchDcHealth['controls'];
  deletions?: WatchDcHealth['deletions'];
}

/** The attributes read for each changed object: the mapping's, plus what a change needs. */
const CHANGE_ATTRIBUTES = [...ENTRY_ATTRIBUTES, 'objectGUID', 'isDeleted', 'uSNChanged', 'member', 'lastKnownParent'];

/** objectGUID bytes in the usual string form (the first three groups little-endian, MS-DTYP §2.3.4.2). */
export function formatGuid(b: Buffer | undefined): string | undefined {
  if (!b || b.length !== 16) return undefined;
  const h = (i: number[]) => i.map((n) => b[n].toString(16).padStart(2, '0')).join('');
  return `${h([3, 2, 1, 0])}-${h([5, 4])}-${h([7, 6])}-${h([8, 9])}-${h([10, 11, 12, 13, 14, 15])}`;
}

/** RFC 4517 §3.3.13 GeneralizedTime, as AD writes whenChanged. */
export function generalizedTime(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}.0Z`;
}

export class DirectoryWatch {
  private readonly dcs: Dc[];
  private readonly listeners = new Set<ChangeListener>();
  private current?: { dc: Dc; client: Client };
  /** The DC last followed and when its last poll succeeded: the start of a failover's re-read. */
  private lastFollowed?: { invocationId?: string; at: number };
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = true;
  private changes = 0;
  private failovers = 0;
  private lastSweepAt = 0;

  private stateWrittenAt = 0;
  private stateWritten = '';

  /**
   * `stateFile`: where the serving process keeps its health() for `postern directory health` (another process,
   * which has no watch of its own); rewritten when the state changes, at most every few seconds otherwise.
   */
  constructor(
    private readonly backend: LdapDirectory,
    private readonly cache: CachedDirectory,
    private readonly cfg: WatchConfig,
    private readonly log: Logger,
    private readonly stateFile?: string,
  ) {
    this.dcs = backend.urls.map((url) => ({ url, state: 'standby', mechanism: null, changes: 0, resumes: 0, retryAt: 0 }));
    cache.watch = this;
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Starts following; resolves once the first DC is watched or every DC was tried. */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    const delay = await this.tick();
    this.writeState(true);
    this.schedule(delay);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
    await this.disconnect();
    this.writeState(true);
  }

  /** Best effort (tmp + rename, no fsync): it is a status display, rebuilt by the next write. */
  private writeState(force = false): void {
    if (!this.stateFile) return;
    const h = this.health();
    const key = `${h.state}|${h.dcs.map((d) => d.state).join(',')}`;
    const now = Date.now();
    if (!force && key === this.stateWritten && now - this.stateWrittenAt < 5000) return;
    try {
      const tmp = `${this.stateFile}.tmp`;
      writeFileSync(tmp, JSON.stringify({ ...h, pid: process.pid, writtenAt: new Date(now).toISOString() }, null, 2));
      renameSync(tmp, this.stateFile);
      this.stateWritten = key;
      this.stateWrittenAt = now;
    } catch (err) {
      this.log.debug({ component: 'directory', err }, 'directory watch: could not write the state file');
    }
  }

  health(): WatchHealth {
    const iso = (ms?: number) => (ms ? new Date(ms).toISOString() : undefined);
    const now = Date.now();
    return {
      state: this.stopped ? 'stopped' : this.current ? 'watching' : 'down',
      pollIntervalMs: this.cfg.pollIntervalMs,
      changes: this.changes,
      failovers: this.failovers,
      dcs: this.dcs.map((d) => ({
        url: d.url,
        mechanism: d.mechanism,
        state: d.state,
        ...(d.dsServiceName ? { dsServiceName: d.dsServiceName } : {}),
        ...(d.invocationId ? { invocationId: d.invocationId } : {}),
        ...(d.lastUsn !== undefined ? { lastUsn: d.lastUsn } : {}),
        ...(d.lastPollAt ? { lastPollAt: iso(d.lastPollAt) } : {}),
        ...(d.lastChangeAt ? { lastChangeAt: iso(d.lastChangeAt) } : {}),
        changes: d.changes,
        resumes: d.resumes,
        ...(d.state === 'down' && d.retryAt > now ? { retryAt: iso(d.retryAt) } : {}),
        ...(d.lastError ? { lastError: d.lastError } : {}),
        ...(d.controls ? { controls: d.controls } : {}),
        ...(d.deletions ? { deletions: d.deletions } : {}),
      })),
    };
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    // Unref'd: a watch left running never keeps a process alive on its own.
    this.timer = setTimeout(() => {
      this.running = this.tick()
        .then((next) => {
          this.writeState();
          this.schedule(next);
        })
        .finally(() => (this.running = undefined));
    }, ms);
    this.timer.unref();
  }

  /** One step: connect when needed, then poll. Returns the delay until the next step. */
  private async tick(): Promise<number> {
    if (this.stopped) return this.cfg.pollIntervalMs;
    if (!this.current && !(await this.connectAny())) {
      const next = Math.min(...this.dcs.map((d) => d.retryAt)) - Date.now();
      return Math.max(this.cfg.pollIntervalMs, next);
    }
    const { dc, client } = this.current!;
    try {
      await this.poll(dc, client);
      return this.cfg.pollIntervalMs;
    } catch (err) {
      await this.fail(dc, err);
      // Straight to the next DC (the failed one waits retrySeconds).
      return 0;
    }
  }

  private async fail(dc: Dc, err: unknown): Promise<void> {
    dc.state = 'down';
    dc.lastError = (err as Error)?.message ?? String(err);
    dc.retryAt = Date.now() + this.cfg.retrySeconds * 1000;
    this.log.warn({ component: 'directory', dc: dc.url, err: dc.lastError, retryInSeconds: this.cfg.retrySeconds }, 'directory watch: lost the domain controller');
    if (this.current?.dc === dc) await this.disconnect();
  }

  private async disconnect(): Promise<void> {
    const c = this.current;
    this.current = undefined;
    if (c && c.dc.state === 'watching') c.dc.state = 'standby';
    await c?.client.unbind().catch(() => undefined);
  }

  /** Tries the DCs in configured order (skipping those waiting to be retried) until one is watched. */
  private async connectAny(): Promise<boolean> {
    const now = Date.now();
    for (const dc of this.dcs.filter((d) => d.retryAt <= now)) {
      if (this.stopped) return false;
      let client: Client | undefined;
      try {
        client = await this.backend.openServiceConnection(dc.url);
        await this.attach(dc, client);
        return true;
      } catch (err) {
        await client?.unbind().catch(() => undefined);
        await this.fail(dc, err);
      }
    }
    return false;
  }

  private async rootDse(client: Client, attributes: string[]): Promise<Entry> {
    const { searchEntries } = await client.search('', { scope: 'base', filter: '(objectClass=*)', attributes });
    if (!searchEntries[0]) throw new Error('rootDSE not readable');
    return searchEntries[0];
  }

  /**
   * Starts following a DC just connected: resume from its last uSN if it is the same database, re-read what
   * changed recently if it is another one, or (first start, nothing cached yet) just take its current uSN.
   */
  private async attach(dc: Dc, client: Client): Promise<void> {
    const root = await this.rootDse(client, ['highestCommittedUSN', 'dsServiceName', 'supportedControl', 'defaultNamingContext']);
    const highest = Number(root.highestCommittedUSN);
    if (!Number.isSafeInteger(highest)) throw new Error('rootDSE has no highestCommittedUSN');
    const controls = new Set((Array.isArray(root.supportedControl) ? root.supportedControl : [root.supportedControl]).map(String));
    dc.controls = { notification: controls.has(NOTIFICATION_OID), dirSync: controls.has(DIRSYNC_OID), showDeleted: controls.has(SHOW_DELETED_OID) };
    dc.dsServiceName = String(root.dsServiceName);
    const { searchEntries } = await client.search(dc.dsServiceName, { scope: 'base', attributes: ['invocationId'], explicitBufferAttributes: ['invocationId'] });
    const inv = searchEntries[0]?.invocationId;
    const invocationId = formatGuid(Buffer.isBuffer(inv) ? inv : Array.isArray(inv) && Buffer.isBuffer(inv[0]) ? inv[0] : undefined);
    if (!invocationId) throw new Error(`invocationId of ${dc.dsServiceName} not readable`);

    dc.deletions = (await this.tombstonesVisible(client, String(root.defaultNamingContext ?? this.backend.baseDN))) ? 'tombstones' : 'sweep';

    const sameDatabase = dc.invocationId === invocationId && dc.lastUsn !== undefined;
    const previous = this.lastFollowed;
    dc.mechanism = 'usn-poll';
    if (sameDatabase) {
      // Same DC database: everything after lastUsn is what we missed while away.
      dc.resumes++;
      this.log.info({ component: 'directory', dc: dc.url, fromUsn: dc.lastUsn, highestCommittedUSN: highest }, 'directory watch: resuming on the same domain controller');
      await this.apply(dc, client, `(&(uSNChanged>=${dc.lastUsn! + 1})(uSNChanged<=${highest}))`);
    } else if (previous) {
      // Another database: its uSNs mean nothing to us. Re-read what it applied since shortly before our last poll.
      this.failovers++;
      const since = new Date(previous.at - this.cfg.failoverLookbackSeconds * 1000);
      this.log.warn({ component: 'directory', dc: dc.url, invocationId, since: since.toISOString() }, 'directory watch: another domain controller database, re-reading recent changes (cache kept)');
      await this.apply(dc, client, `(whenChanged>=${escapeFilterValue(generalizedTime(since))})`);
    }
    dc.invocationId = invocationId;
    dc.lastUsn = highest;
    dc.state = 'watching';
    dc.lastError = undefined;
    dc.lastPollAt = Date.now();
    this.current = { dc, client };
    this.lastFollowed = { invocationId, at: dc.lastPollAt };
    this.log.info({ component: 'directory', dc: dc.url, mechanism: dc.mechanism, usn: highest, invocationId, controls: dc.controls }, 'directory watch: following the domain controller');
  }

  /**
   * Whether this account may read tombstones. AD lets only administrators list CN=Deleted Objects by default
   * (a sync account needs "List Contents" and "Read Property" on it); without that, a deleted object is invisible
   * and deletions are found by the sweep instead. The container is named by its well-known GUID (MS-ADTS
   * §6.1.1.4, GUID_DELETED_OBJECTS_CONTAINER_W) because it may be renamed.
   */
  private async tombstonesVisible(client: Client, namingContext: string): Promise<boolean> {
    try {
      const { searchEntries } = await client.search(
        `<WKGUID=18E2EA80684F11D2B9AA00C04F79F805,${namingContext}>`,
        { scope: 'base', attributes: ['objectClass'] },
        new Control(SHOW_DELETED_OID),
      );
      const oc = searchEntries[0]?.objectClass;
      return Array.isArray(oc) ? oc.length > 0 : !!oc;
    } catch {
      return false;
    }
  }

  /**
   * Without read access to tombstones, a deletion is found by asking the DC, every `deletedSweepSeconds`, which of
   * the objects in the cache still exist (by DN, 50 per search). One that is gone is looked for by its
   * sAMAccountName: found elsewhere it was moved or renamed (applied as a change), found nowhere it was deleted.
   */
  private async sweep(dc: Dc, client: Client): Promise<void> {
    const cached = this.cache.cachedEntries();
    for (let i = 0; i < cached.length && !this.stopped; i += 50) {
      const chunk = cached.slice(i, i + 50);
      const { searchEntries } = await client.search(this.backend.baseDN, {
        scope: 'sub',
        filter: `(|${chunk.map((e) => `(distinguishedName=${escapeFilterValue(e.dn)})`).join('')})`,
        attributes: ['distinguishedName'],
      });
      const present = new Set(searchEntries.map((e) => e.dn.toLowerCase()));
      for (const gone of chunk.filter((e) => !present.has(e.dn.toLowerCase()))) {
        const name = gone.kind === 'user' ? gone.login : gone.name;
        const { searchEntries: moved } = await client.search(this.backend.baseDN, {
          scope: 'sub',
          filter: `(&(sAMAccountName=${escapeFilterValue(name)})(objectClass=${gone.kind}))`,
          attributes: CHANGE_ATTRIBUTES,
          explicitBufferAttributes: ['objectGUID'],
        });
        if (moved[0]) {
          this.applyOne(dc, toRawEntry(moved[0]));
          continue;
        }
        this.applyOne(dc, { dn: gone.dn, attrs: { samaccountname: [name], isdeleted: ['TRUE'], objectclass: [gone.kind] }, binary: {} });
      }
    }
  }

  private async poll(dc: Dc, client: Client): Promise<void> {
    const root = await this.rootDse(client, ['highestCommittedUSN']);
    const highest = Number(root.highestCommittedUSN);
    if (!Number.isSafeInteger(highest)) throw new Error('rootDSE has no highestCommittedUSN');
    const last = dc.lastUsn ?? highest;
    // uSN values are integers we read from the DC, not user input: nothing to escape.
    if (highest > last) await this.apply(dc, client, `(&(uSNChanged>=${last + 1})(uSNChanged<=${highest}))`);
    dc.lastUsn = highest;
    dc.lastPollAt = Date.now();
    this.lastFollowed = { invocationId: dc.invocationId, at: dc.lastPollAt };
    if (dc.deletions === 'sweep' && this.cfg.deletedSweepSeconds > 0 && dc.lastPollAt - this.lastSweepAt >= this.cfg.deletedSweepSeconds * 1000) {
      this.lastSweepAt = dc.lastPollAt;
      await this.sweep(dc, client);
    }
  }

  /** Reads the users and groups matching `changed` (deleted ones too) and applies them in uSN order. */
  private async apply(dc: Dc, client: Client, changed: string): Promise<void> {
    const { searchEntries } = await client.search(
      this.backend.baseDN,
      {
        scope: 'sub',
        filter: `(&${changed}(|(objectClass=user)(objectClass=group)))`,
        attributes: CHANGE_ATTRIBUTES,
        explicitBufferAttributes: ['objectGUID'],
        paged: { pageSize: 500 },
      },
      new Control(SHOW_DELETED_OID),
    );
    const raws = searchEntries.map(toRawEntry).sort((a, b) => Number(first(a, 'uSNChanged') ?? 0) - Number(first(b, 'uSNChanged') ?? 0));
    for (const raw of raws) {
      try {
        this.applyOne(dc, raw);
      } catch (err) {
        this.log.error({ component: 'directory', dn: raw.dn, err }, 'directory watch: could not apply a change');
      }
    }
  }

  private applyOne(dc: Dc, raw: RawEntry): void {
    const seenAt = Date.now();
    const deleted = (first(raw, 'isDeleted') ?? '').toUpperCase() === 'TRUE';
    const objectGUID = formatGuid(raw.binary['objectguid']?.[0]);
    const name = first(raw, 'sAMAccountName');
    const classes = (raw.attrs['objectclass'] ?? []).map((c) => c.toLowerCase());
    if (classes.includes('computer')) return;
    const isGroup = classes.includes('group');
    const usn = Number(first(raw, 'uSNChanged') ?? 0);
    const dnKey = raw.dn.toLowerCase();
    const nameKey = name ? loginKey(name) : undefined;
    const entry = deleted ? null : this.backend.mapEntry(raw);
    if (!deleted && !entry) return;
    // The same object as cached: by DN, or by its sAMAccountName (a rename/move changes the DN; a tombstone keeps
    // only the sAMAccountName of what it was).
    const sameObject = (e: DirectoryEntry) =>
      e.dn.toLowerCase() === dnKey ||
      (nameKey !== undefined && e.kind === (isGroup ? 'group' : 'user') && loginKey(e.kind === 'user' ? e.login : e.name) === nameKey);
    const dropped = this.cache.dropWhere(sameObject);
    const previous = dropped.find((e) => e.kind === (isGroup ? 'group' : 'user'));
    const dns = new Set([dnKey, ...dropped.map((e) => e.dn.toLowerCase())]);
    if (isGroup) {
      // Membership is nested: any member list or group list may include this group. The members' own entries
      // carry memberOf, so they go too (the new members by the group's member attribute, the old by memberOf).
      this.cache.dropKind('m');
      this.cache.dropKind('o');
      const members = new Set((raw.attrs['member'] ?? []).map((m) => m.toLowerCase()));
      this.cache.dropWhere((e) => e.kind === 'user' && (members.has(e.dn.toLowerCase()) || e.memberOf.some((g) => dns.has(g.toLowerCase()))));
    } else {
      this.cache.dropKeys([...dns].map((d) => `o:${d}`));
    }
    if (entry) this.cache.prime(entry);
    this.changes++;
    dc.changes++;
    dc.lastChangeAt = seenAt;
    const change: DirectoryChange = {
      dn: deleted ? (previous?.dn ?? raw.dn) : raw.dn,
      ...(objectGUID ? { objectGUID } : {}),
      deleted,
      kind: isGroup ? 'group' : 'user',
      ...(entry?.kind === 'user' ? { user: entry } : {}),
      ...(entry?.kind === 'group' ? { group: entry } : {}),
      ...(previous ? { previous } : {}),
      ...(name ? { name } : {}),
      dc: dc.url,
      usn,
      seenAt,
    };
    this.log.info(
      {
        component: 'directory',
        dn: change.dn,
        objectGUID,
        deleted,
        usn,
        ...(entry?.kind === 'user' ? { enabled: entry.enabled, canLogin: entry.canLogin } : {}),
      },
      'directory watch: object changed',
    );
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (err) {
        this.log.error({ component: 'directory', err, dn: change.dn }, 'directory watch: change listener failed');
      }
    }
  }
}

/**
 * The sessions of a user who may no longer use them: disabled, expired, locked out or deleted in AD. (A
 * must-change-password flag set by an admin does not end open sessions; the next login is refused.)
 */
export function endsSessions(change: DirectoryChange): { login: string; reason: string } | null {
  if (change.kind !== 'user') return null;
  const login = change.user?.login ?? (change.previous?.kind === 'user' ? change.previous.login : undefined) ?? change.name;
  if (!login) return null;
  if (change.deleted) return { login, reason: 'account removed from the directory' };
  const u = change.user;
  if (!u) return null;
  if (u.disabled) return { login, reason: 'account disabled' };
  if (u.expired) return { login, reason: 'account expired' };
  if (u.locked) return { login, reason: 'account locked out' };
  return null;
}
