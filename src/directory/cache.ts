/**
 * The cache in front of every backend (Stalwart's directory cache is the model). Answers are kept for
 * `ttlSeconds` (found) or `negativeTtlSeconds` (not found). While every DC is unreachable:
 *  - a *found* entry fetched within `staleIfErrorSeconds` is still served, so mail to known users keeps flowing
 *    and known users keep logging in (their passwords are still checked against AD, so logins fail temporarily);
 *  - a cached *not found* is never served past its short TTL: the lookup raises TempFailure (451), because an AD
 *    admin may just have created that address (DESIGN.md §6 "temporary beats wrong").
 * Concurrent lookups of the same key share one request to the DC.
 */
import { LRUCache } from 'lru-cache';
import { TempFailure } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { Directory, DirectoryEntry, DirectoryHealth, GroupEntry, PasswordCheck, UserEntry, WatchHealth } from './types.js';
import { loginKey } from './types.js';

export interface CacheOptions {
  ttlSeconds: number;
  negativeTtlSeconds: number;
  max: number;
  staleIfErrorSeconds: number;
}

interface Slot {
  value: unknown;
  fetchedAt: number;
}

export interface CacheStats {
  hits: number;
  misses: number;
  staleServed: number;
  size: number;
}

export class CachedDirectory implements Directory {
  private readonly cache: LRUCache<string, Slot>;
  private readonly inflight = new Map<string, Promise<unknown>>();
  /**
   * Bumped by every change the directory watch applies (watch.ts). A lookup that started before a change may
   * carry the old answer: it is returned to its caller but not stored, so the cache never goes back to the
   * state before the change.
   */
  private generation = 0;
  readonly stats = { hits: 0, misses: 0, staleServed: 0 };
  /** Set by the directory watch (watch.ts) so that `health()` reports it too. */
  watch?: { health(): WatchHealth };

  constructor(
    readonly backend: Directory,
    private readonly opts: CacheOptions,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.cache = new LRUCache<string, Slot>({ max: opts.max });
  }

  private async cached<T>(key: string, fetch: () => Promise<T>): Promise<T> {
    const slot = this.cache.get(key);
    const now = this.now();
    if (slot) {
      const isNegative = slot.value === null || (Array.isArray(slot.value) && slot.value.length === 0);
      const ttl = (isNegative ? this.opts.negativeTtlSeconds : this.opts.ttlSeconds) * 1000;
      if (now - slot.fetchedAt < ttl) {
        this.stats.hits++;
        return slot.value as T;
      }
    }
    this.stats.misses++;
    const generation = this.generation;
    let pending = this.inflight.get(key) as Promise<T> | undefined;
    if (!pending) {
      const p: Promise<T> = fetch().finally(() => {
        if (this.inflight.get(key) === p) this.inflight.delete(key);
      });
      pending = p;
      this.inflight.set(key, p);
    }
    try {
      const value = await pending;
      if (generation === this.generation) this.cache.set(key, { value, fetchedAt: this.now() });
      return value;
    } catch (err) {
      if (
        err instanceof TempFailure &&
        slot &&
        slot.value !== null &&
        now - slot.fetchedAt < this.opts.staleIfErrorSeconds * 1000
      ) {
        this.stats.staleServed++;
        this.log.warn({ component: 'directory', key, ageSeconds: Math.round((now - slot.fetchedAt) / 1000) }, 'directory unreachable, serving cached entry');
        return slot.value as T;
      }
      throw err;
    }
  }

  findAddress(address: string): Promise<DirectoryEntry | null> {
    return this.cached(`a:${loginKey(address.trim())}`, () => this.backend.findAddress(address));
  }

  findLogin(login: string): Promise<UserEntry | null> {
    return this.cached(`l:${loginKey(login.trim())}`, () => this.backend.findLogin(login));
  }

  findGuid(guid: string): Promise<DirectoryEntry | null> {
    return this.cached(`u:${guid.trim().toLowerCase()}`, () => this.backend.findGuid(guid));
  }

  findGroup(name: string): Promise<GroupEntry | null> {
    return this.cached(`g:${loginKey(name.trim())}`, () => this.backend.findGroup(name));
  }

  members(group: GroupEntry): Promise<UserEntry[]> {
    return this.cached(`m:${group.dn.toLowerCase()}`, () => this.backend.members(group));
  }

  groupsOf(user: UserEntry): Promise<GroupEntry[]> {
    return this.cached(`o:${user.dn.toLowerCase()}`, () => this.backend.groupsOf(user));
  }

  listUsers(): Promise<UserEntry[]> {
    return this.backend.listUsers();
  }

  listGroups(): Promise<GroupEntry[]> {
    return this.backend.listGroups();
  }

  /** Never cached: a changed or disabled password takes effect at once. */
  verifyPassword(user: UserEntry, password: string): Promise<PasswordCheck> {
    return this.backend.verifyPassword(user, password);
  }

  async health(): Promise<DirectoryHealth> {
    const h = await this.backend.health();
    return this.watch ? { ...h, watch: this.watch.health() } : h;
  }

  /**
   * Drops every cached answer that is, or contains, an entry matching `match` (a user in a group's member list
   * counts), and returns those entries, each once by DN. Used by the watch for an AD object that changed: only
   * what mentions that object goes, the rest of the cache stays warm.
   */
  dropWhere(match: (entry: DirectoryEntry) => boolean): DirectoryEntry[] {
    this.changed();
    const seen = new Map<string, DirectoryEntry>();
    const drop: string[] = [];
    for (const [key, slot] of this.cache.entries()) {
      const values = Array.isArray(slot.value) ? (slot.value as DirectoryEntry[]) : slot.value ? [slot.value as DirectoryEntry] : [];
      const hits = values.filter((e) => typeof e === 'object' && e !== null && 'dn' in e && match(e));
      if (hits.length === 0) continue;
      drop.push(key);
      // A group's member list names the members, not the group: only single answers are "previous" entries.
      if (!Array.isArray(slot.value)) for (const e of hits) seen.set(e.dn.toLowerCase(), e);
    }
    for (const key of drop) this.cache.delete(key);
    return [...seen.values()];
  }

  /** The distinct users and groups the cache holds as single answers (not member lists), by DN. */
  cachedEntries(): DirectoryEntry[] {
    const out = new Map<string, DirectoryEntry>();
    for (const slot of this.cache.values()) {
      const v = slot.value as DirectoryEntry | null;
      if (v && !Array.isArray(v) && typeof v === 'object' && 'dn' in v && (v.kind === 'user' || v.kind === 'group')) out.set(v.dn.toLowerCase(), v);
    }
    return [...out.values()];
  }

  /** Drops the answers of one kind (`m:` member lists, `o:` groups of a user): nesting makes them depend on any group. */
  dropKind(kind: 'a' | 'l' | 'g' | 'm' | 'o'): number {
    this.changed();
    const drop = [...this.cache.keys()].filter((k) => k.startsWith(`${kind}:`));
    for (const key of drop) this.cache.delete(key);
    return drop.length;
  }

  /** Drops the answers for these keys (`a:addr`, `l:login`, `o:dn` ...). */
  dropKeys(keys: string[]): void {
    this.changed();
    for (const key of keys) this.cache.delete(key);
  }

  /**
   * Stores the entry as the answer for each name it has (logins, addresses), as a fresh lookup would: a change seen
   * by the watch is used at once without a round trip to the DC. The caller has dropped the old answers first.
   */
  prime(entry: DirectoryEntry): void {
    this.changed();
    const slot = { value: entry, fetchedAt: this.now() };
    if (entry.kind === 'user') {
      for (const name of [entry.login, entry.userPrincipalName, entry.primaryAddress]) {
        if (name) this.cache.set(`l:${loginKey(name)}`, slot);
      }
    } else {
      this.cache.set(`g:${loginKey(entry.name)}`, slot);
    }
    for (const address of entry.addresses) this.cache.set(`a:${loginKey(address)}`, slot);
  }

  private changed(): void {
    this.generation++;
    // A lookup in flight may have read AD before the change: later callers must not share its answer.
    this.inflight.clear();
  }

  /** Forgets everything (admin "cache flush"). */
  flush(): void {
    this.cache.clear();
  }

  cacheStats(): CacheStats {
    return { ...this.stats, size: this.cache.size };
  }

  close(): Promise<void> {
    return this.backend.close();
  }
}
