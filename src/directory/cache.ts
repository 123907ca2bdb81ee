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
import type { Directory, DirectoryEntry, DirectoryHealth, GroupEntry, PasswordCheck, UserEntry } from './types.js';
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
  readonly stats = { hits: 0, misses: 0, staleServed: 0 };

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
    let pending = this.inflight.get(key) as Promise<T> | undefined;
    if (!pending) {
      pending = fetch().finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    try {
      const value = await pending;
      this.cache.set(key, { value, fetchedAt: this.now() });
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

  health(): Promise<DirectoryHealth> {
    return this.backend.health();
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
