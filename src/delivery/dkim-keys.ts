/**
 * Where the DKIM signing keys live (issue 16): one interface, two backends chosen by `state.type`.
 *
 * - `sqlite` (the embedded default, one node): the key files of `${dataDir}/dkim/` exactly as before
 *   (src/delivery/dkim.ts: generateDkimKey, listDkimKeys …); nothing changes for a single node.
 * - `postgres`: the `dkim_keys` table every node reads (src/state/postgres/dkim-keys.ts), so a key added or rotated
 *   through any node's admin API or CLI signs the mail sent through every node from its next message on.
 *
 * A store that cannot answer throws TempFailure. The signer lets it through: the DATA hook answers 451 4.3.0 and
 * the client sends again later, so a message of a domain that has a key never leaves unsigned because PostgreSQL
 * was away (nor is it lost: nothing was acknowledged).
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { StateConfig } from '../config/schema.js';
import type { PgState } from '../state/postgres/pool.js';
import { PgDkimKeys } from '../state/postgres/dkim-keys.js';
import { normalizeDomain } from '../settings/validate.js';
import {
  defaultSelector,
  dkimDir,
  dkimRecordFor,
  findDkimKey,
  generateDkimKey,
  listDkimKeys,
  normalizeSelector,
  type DkimRecord,
  type GenerateOptions,
} from './dkim.js';

/** A key as listed: `path` only for a key file (sqlite); the table's keys have none. */
export interface StoredDkimKey {
  domain: string;
  selector: string;
  bits: number;
  created: Date;
  path?: string;
}

export interface NewDkimKey extends DkimRecord {
  /** Selectors of the keys this one replaced (force, rotate). */
  replaced: string[];
  path?: string;
}

/** What the signer needs: the key to sign with. */
export interface DkimKeySource {
  /**
   * The key of the first of `domains` (the From domain, then its parents: relaxed alignment) that has one, or
   * null when none has. Throws TempFailure when the store cannot answer.
   */
  signingKey(domains: string[]): Promise<{ domain: string; selector: string; pem: string } | null>;
}

/** The signer's source plus what the CLI and the admin API do with keys. */
export interface DkimKeyStore extends DkimKeySource {
  readonly kind: 'files' | 'postgres';
  /** Every domain's key, by domain. */
  list(): Promise<StoredDkimKey[]>;
  /** The record to publish for the domain's key, or null. */
  record(domain: string): Promise<(DkimRecord & { path?: string }) | null>;
  /** Makes a key; DkimKeyError('exists') when the domain has one and `force` is not set. */
  generate(domain: string, opts?: GenerateOptions): Promise<NewDkimKey>;
  /** Removes the domain's key(s); the selectors removed ([] when it had none). */
  remove(domain: string): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * The selector of a rotation: today's default, or with `-2`, `-3` … when a current key already has it (a key
 * rotated twice on one day must still get a selector of its own, so that no resolver pairs a cached record with
 * the new key).
 */
export function rotationSelector(current: string[], now = new Date()): string {
  const base = defaultSelector(now);
  if (!current.includes(base)) return base;
  for (let i = 2; ; i++) if (!current.includes(`${base}-${i}`)) return `${base}-${i}`;
}

/** The key files of `${dataDir}/dkim/`: the embedded default, unchanged. */
export class FileDkimKeys implements DkimKeyStore {
  readonly kind = 'files' as const;

  constructor(private readonly dataDir: string) {}

  async signingKey(domains: string[]): Promise<{ domain: string; selector: string; pem: string } | null> {
    for (const domain of domains) {
      const key = await findDkimKey(this.dataDir, domain).catch(() => null);
      if (key) return { domain: key.domain, selector: key.selector, pem: key.privateKey };
    }
    return null;
  }

  list(): Promise<StoredDkimKey[]> {
    return listDkimKeys(this.dataDir);
  }

  record(domain: string): Promise<(DkimRecord & { path?: string }) | null> {
    return dkimRecordFor(this.dataDir, domain);
  }

  generate(domain: string, opts: GenerateOptions = {}): Promise<NewDkimKey> {
    return generateDkimKey(this.dataDir, domain, opts);
  }

  async remove(domainInput: string): Promise<string[]> {
    const domain = normalizeDomain(domainInput);
    const dir = dkimDir(this.dataDir);
    let files: string[];
    try {
      files = await fsp.readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const removed: string[] = [];
    for (const f of files) {
      if (!f.startsWith(`${domain}.`) || !f.endsWith('.key')) continue;
      const selector = f.slice(domain.length + 1, -'.key'.length);
      try {
        normalizeSelector(selector);
      } catch {
        continue; // a file of a longer domain name (sub.corp.example.x.key) or not a key file
      }
      if (selector.includes('.')) continue;
      await fsp.unlink(join(dir, f)).catch(() => undefined);
      removed.push(selector);
    }
    return removed.sort();
  }

  async close(): Promise<void> {}
}

/**
 * The key store of the configuration. With state postgres the pool is the caller's (the server's state store, or
 * the CLI's own): closing the key store leaves it open.
 */
export function openDkimKeys(config: { dataDir: string; state: StateConfig }, pg: PgState | undefined): DkimKeyStore {
  if (config.state.type === 'postgres') {
    if (!pg) throw new Error('state postgres: the DKIM keys need the state store pool');
    return new PgDkimKeys(pg);
  }
  return new FileDkimKeys(config.dataDir);
}
