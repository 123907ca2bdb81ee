/**
 * The mailbox registry (issue 13): which directory of the store holds the mailbox of which AD object (objectGUID),
 * the login last seen for it, and whether the account is gone from AD (orphaned). Rows live in the settings
 * database (schema/migrations/003-mailbox-owners.sql).
 *
 * Why a table and not simply `users/<guid>/`: mailboxes that existed before (keyed by login) are claimed where they
 * are, so the migration moves nothing (no window in which a crash could leave mail in two places, nothing for
 * Dovecot or a backup script pointed at users/<login> to lose), and a new mailbox is made at users/<guid>, which no
 * later login can collide with. The store asks synchronously (better-sqlite3), once per GUID per process.
 *
 * With state postgres (issue 16) the truth is the cluster's (src/state/postgres/mailbox-registry.ts, attached as
 * `shared`): the mailboxes table of settings.db becomes this node's copy of it, still read synchronously, and every
 * write goes to PostgreSQL first, in one statement whose condition decides (so of two nodes orphaning, restoring or
 * erasing the same mailbox exactly one does it), then into the copy. PostgreSQL down: the write throws TempFailure
 * and nothing changed anywhere; reads go on from the copy.
 */
import { existsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Statement } from '../settings/db.js';
import { TempFailure } from '../lib/errors.js';
import { isGuid } from '../directory/guid.js';
import { loginKey } from '../directory/types.js';
import { silentLogger, type Logger } from '../lib/logger.js';
import { ownerDirName } from '../store/names.js';
import type { Settings, UserSettings } from '../settings/store.js';
import { fsyncDir } from '../store/fs-util.js';

/** Back-off of an overrides change that failed after its registry decision was committed (settingsChange). */
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 60_000;

export interface MailboxRecord {
  guid: string;
  /** Relative to the store root, without the trailing /Maildir: `users/<guid>` or `users/<login>` (legacy). */
  dir: string;
  login: string;
  createdAt: string;
  seenAt: string;
  /** ISO time the account was found gone from AD; undefined while it exists. */
  orphanedAt?: string;
}

/** A row as the copy (settings.db) and PostgreSQL both hold it. */
export interface RegistryRow {
  guid: string;
  dir: string;
  login: string;
  created_at: string;
  seen_at: string;
  orphaned_at: string | null;
  held_settings: string | null;
}

function toRecord(r: RegistryRow): MailboxRecord {
  return { guid: r.guid, dir: r.dir, login: r.login, createdAt: r.created_at, seenAt: r.seen_at, ...(r.orphaned_at ? { orphanedAt: r.orphaned_at } : {}) };
}

type Row = RegistryRow;

/**
 * The cluster's registry (state postgres). Each method is one decision taken in PostgreSQL, whose result is then
 * in this node's copy when it resolves; `changed` says whether this call made it (only the caller that did moves
 * the settings that go with it). Every method throws TempFailure when PostgreSQL cannot answer.
 */
export interface SharedRegistry {
  /** Registers `row` unless the GUID has a mailbox (then that one); `fallbackDir` when `row.dir` is another's. */
  register(row: RegistryRow, fallbackDir: string): Promise<{ row: RegistryRow; changed: boolean }>;
  rename(guid: string, login: string, at: string): Promise<{ row: RegistryRow | undefined; changed: boolean }>;
  touch(guid: string, at: string): Promise<void>;
  orphan(guid: string, at: string, heldSettings: string | null): Promise<{ row: RegistryRow | undefined; changed: boolean }>;
  /** Gives an orphan back (not one being erased); `held` is what orphan() held aside. */
  restore(guid: string, login: string, at: string): Promise<{ changed: boolean; held: string | null }>;
  /** Claims the erase of an orphan: the row as claimed, or undefined when it is not an orphan or another node erases it. */
  beginErase(guid: string): Promise<RegistryRow | undefined>;
  /** The claimed erase is done: the row goes (a tombstone in PostgreSQL), here and on every node. */
  endErase(guid: string): Promise<void>;
}

export interface RegistryOptions {
  /** The store root (`${dataDir}/mail`). */
  root: string;
  settings: Pick<Settings, 'db' | 'getUser' | 'setUser' | 'apply'>;
  log?: Logger;
  now?: () => Date;
}

export class MailboxRegistry {
  private readonly stmt: Record<'get' | 'byDir' | 'byLogin' | 'insert' | 'setLogin' | 'seen' | 'orphan' | 'restore' | 'delete' | 'orphans' | 'all', Statement>;
  private readonly dirs = new Map<string, string>();
  private readonly log: Logger;
  private readonly now: () => Date;
  private shared: SharedRegistry | undefined;

  constructor(private readonly opts: RegistryOptions) {
    const p = (sql: string) => opts.settings.db.prepare(sql);
    this.stmt = {
      get: p('SELECT * FROM mailboxes WHERE guid = ?'),
      byDir: p('SELECT * FROM mailboxes WHERE dir = ?'),
      byLogin: p('SELECT * FROM mailboxes WHERE lower(login) = ? AND orphaned_at IS NULL'),
      insert: p('INSERT INTO mailboxes (guid, dir, login, created_at, seen_at) VALUES (?, ?, ?, ?, ?)'),
      setLogin: p('UPDATE mailboxes SET login = ?, seen_at = ? WHERE guid = ?'),
      seen: p('UPDATE mailboxes SET seen_at = ? WHERE guid = ?'),
      orphan: p('UPDATE mailboxes SET orphaned_at = ?, held_settings = ? WHERE guid = ? AND orphaned_at IS NULL'),
      restore: p('UPDATE mailboxes SET orphaned_at = NULL, held_settings = NULL, login = ?, seen_at = ? WHERE guid = ?'),
      delete: p('DELETE FROM mailboxes WHERE guid = ?'),
      orphans: p('SELECT * FROM mailboxes WHERE orphaned_at IS NOT NULL ORDER BY orphaned_at, guid'),
      all: p('SELECT * FROM mailboxes ORDER BY guid'),
    };
    this.log = opts.log ?? silentLogger;
    this.now = opts.now ?? (() => new Date());
  }

  /** state postgres: writes go to the cluster's registry first (src/state/postgres/mailbox-registry.ts). */
  attachShared(shared: SharedRegistry): void {
    this.shared = shared;
  }

  get isShared(): boolean {
    return this.shared !== undefined;
  }

  /** The rows of the copy as they are (the shared registry's first sync seeds an empty PostgreSQL from them). */
  localRows(): RegistryRow[] {
    return this.stmt.all.all() as Row[];
  }

  /**
   * Writes rows of the cluster's registry into the copy (INSERT OR REPLACE: a row of the copy that holds the same
   * directory under another GUID is stale and goes), and drops the erased GUIDs; `all` makes the copy exactly `rows`.
   */
  applyShared(rows: RegistryRow[], erased: string[] = [], all = false): void {
    const db = this.opts.settings.db;
    const put = db.prepare('INSERT OR REPLACE INTO mailboxes (guid, dir, login, created_at, seen_at, orphaned_at, held_settings) VALUES (?, ?, ?, ?, ?, ?, ?)');
    db.transaction(() => {
      if (all) db.prepare('DELETE FROM mailboxes').run();
      for (const guid of erased) this.stmt.delete.run(guid);
      for (const r of rows) put.run(r.guid, r.dir, r.login, r.created_at, r.seen_at, r.orphaned_at, r.held_settings);
    }).immediate();
    if (all) this.dirs.clear();
    for (const guid of erased) this.dirs.delete(guid);
    for (const r of rows) if (this.dirs.get(r.guid) !== r.dir) this.dirs.delete(r.guid);
  }

  get(guid: string): MailboxRecord | undefined {
    const r = this.stmt.get.get(guid.toLowerCase()) as Row | undefined;
    return r ? toRecord(r) : undefined;
  }

  list(): MailboxRecord[] {
    return (this.stmt.all.all() as Row[]).map(toRecord);
  }

  listOrphaned(): MailboxRecord[] {
    return (this.stmt.orphans.all() as Row[]).map(toRecord);
  }

  /** The registered owner of a store directory name under users/ (for the junk retention sweep). */
  byDirName(name: string): MailboxRecord | undefined {
    const r = this.stmt.byDir.get(`users/${name}`) as Row | undefined;
    return r ? toRecord(r) : undefined;
  }

  /**
   * The store's question (MaildirStore `locate`): the directory of a user's mailbox. With the objectGUID it is
   * dirFor(). An owner known only by login (a message queued before the upgrade, a tool) gets the mailbox of the
   * active account with that login, else the login's own directory if no other account has claimed it. A
   * directory that belongs to another account (the login was renamed away or its account deleted) is refused:
   * delivery fails temporarily rather than into the wrong mailbox.
   */
  locate(owner: { login: string; guid?: string }): string {
    if (owner.guid) return this.dirFor({ login: owner.login, guid: owner.guid });
    const row = this.stmt.byLogin.get(loginKey(owner.login)) as Row | undefined;
    if (row) return row.dir;
    const legacy = `users/${ownerDirName(owner.login)}`;
    const holder = this.stmt.byDir.get(legacy) as Row | undefined;
    if (holder) throw new Error(`the mailbox directory ${legacy} belongs to another account (${holder.guid}, now ${holder.login})`);
    return legacy;
  }

  /**
   * The directory of this AD object's mailbox, registering it on first use: a mailbox that already exists under
   * the login (the layout before issue 13) and belongs to nobody yet is claimed in place (the one-time migration,
   * also run eagerly at start by migrateLoginMailboxes); otherwise a new one is `users/<guid>`, so a new account
   * that reuses the login of a renamed or deleted one starts empty.
   */
  dirFor(owner: { login: string; guid: string }): string {
    const guid = owner.guid.toLowerCase();
    const known = this.known(guid);
    if (known) return known;
    if (!isGuid(guid)) throw new RangeError(`not a GUID: ${owner.guid}`);
    if (this.shared) {
      // The store asks synchronously and the cluster's registry answers asynchronously: registered now in the
      // background, and this delivery is retried (4xx) rather than written where another node may decide otherwise.
      // RCPT TO and logins register before they get here (mailboxEnabled), so this is a message queued without one.
      this.register(owner).catch((err: unknown) => this.log.warn({ component: 'mailbox', guid, err: (err as Error).message }, 'mailbox registration failed'));
      throw new TempFailure(`the mailbox of ${guid} is not registered on this node yet`);
    }
    const { dir, claimed } = this.choose(owner, guid);
    const at = this.now().toISOString();
    this.stmt.insert.run(guid, dir, owner.login, at, at);
    this.registered(guid, owner.login, dir, claimed);
    return dir;
  }

  /**
   * dirFor() that may wait for the cluster's registry: with state postgres the mailbox is registered there (or
   * found there, registered by another node) and in the copy when this resolves; throws TempFailure when
   * PostgreSQL cannot answer. With sqlite it is dirFor().
   */
  async register(owner: { login: string; guid: string }): Promise<string> {
    if (!this.shared) return this.dirFor(owner);
    const guid = owner.guid.toLowerCase();
    const known = this.known(guid);
    if (known) return known;
    if (!isGuid(guid)) throw new RangeError(`not a GUID: ${owner.guid}`);
    const { dir, claimed } = this.choose(owner, guid);
    const at = this.now().toISOString();
    const r = await this.shared.register({ guid, dir, login: owner.login, created_at: at, seen_at: at, orphaned_at: null, held_settings: null }, `users/${guid}`);
    if (r.changed) this.registered(guid, owner.login, r.row.dir, r.row.dir === dir && claimed);
    this.dirs.set(guid, r.row.dir);
    return r.row.dir;
  }

  private known(guid: string): string | undefined {
    const cached = this.dirs.get(guid);
    if (cached) return cached;
    const row = this.stmt.get.get(guid) as Row | undefined;
    if (row) this.dirs.set(guid, row.dir);
    return row?.dir;
  }

  private choose(owner: { login: string }, guid: string): { dir: string; claimed: boolean } {
    const legacy = `users/${ownerDirName(owner.login)}`;
    const claimed = existsSync(join(this.opts.root, legacy, 'Maildir')) && !this.stmt.byDir.get(legacy) && !isGuid(ownerDirName(owner.login));
    return { dir: claimed ? legacy : `users/${guid}`, claimed };
  }

  private registered(guid: string, login: string, dir: string, claimed: boolean): void {
    this.dirs.set(guid, dir);
    this.log.info({ component: 'mailbox', guid, login, dir }, claimed ? 'mailbox keyed by login now belongs to its AD object' : 'mailbox registered');
  }

  /**
   * The account was found in AD: note the time and follow a rename of its sAMAccountName (the Users > Services
   * overrides move to the new login, so quota, forward and retention stay with the mailbox). Returns the record.
   */
  async seen(user: { login: string; guid: string }, opts: { touch?: boolean } = {}): Promise<MailboxRecord | undefined> {
    const guid = user.guid.toLowerCase();
    const row = this.stmt.get.get(guid) as Row | undefined;
    if (!row) return undefined;
    const at = this.now().toISOString();
    if (row.orphaned_at) return toRecord(row); // only restore() brings an orphan back, after checking AD itself
    if (loginKey(row.login) !== loginKey(user.login)) {
      if (this.shared) {
        // Of the nodes that see the rename, the one whose update changed the row moves the settings.
        const r = await this.shared.rename(guid, user.login, at);
        if (r.changed && r.row) await this.settingsChange(guid, 'rename', () => this.renamed(guid, row.login, user.login), (now) => now !== undefined && now.login === user.login);
      } else {
        this.opts.settings.db.transaction(() => {
          this.stmt.setLogin.run(user.login, at, guid);
          this.renamed(guid, row.login, user.login);
        })();
      }
    } else if (opts.touch) {
      // Only the periodic reconcile writes the time: the per-RCPT check must not write to the database each time.
      if (this.shared) await this.shared.touch(guid, at);
      else this.stmt.seen.run(at, guid);
    }
    return this.get(guid);
  }

  private renamed(guid: string, from: string, to: string): void {
    this.moveSettings(from, to);
    this.log.info({ component: 'mailbox', guid, from, to }, 'account renamed in AD: mailbox and settings follow it');
  }

  /**
   * The account is gone from AD: marked orphaned at `at`, its overrides held aside (a new account with the same
   * login must start with the defaults). False when it was already orphaned or is unknown.
   */
  async markOrphaned(guid: string, at = this.now()): Promise<boolean> {
    const row = this.stmt.get.get(guid.toLowerCase()) as Row | undefined;
    if (!row || row.orphaned_at) return false;
    const held = this.opts.settings.getUser(row.login);
    // Asked again when it runs: with state postgres inside apply(), on the copy just re-read.
    const clear = () => {
      if (this.opts.settings.getUser(row.login)) this.opts.settings.setUser(row.login, { quotaMB: null, spamRetentionDays: null, forward: null, keepCopy: false });
    };
    if (this.shared) {
      // Only the node whose update orphaned the row holds the settings aside (they are the cluster's, synced).
      const r = await this.shared.orphan(row.guid, at.toISOString(), held ? JSON.stringify(held) : null);
      if (!r.changed) return false;
      await this.settingsChange(row.guid, 'orphan', clear, (now) => !!now?.orphaned_at);
    } else {
      this.opts.settings.db.transaction(() => {
        this.stmt.orphan.run(at.toISOString(), held ? JSON.stringify(held) : null, row.guid);
        clear();
      })();
    }
    this.log.warn({ component: 'mailbox', guid: row.guid, login: row.login, orphanedAt: at.toISOString() }, 'account gone from AD: mailbox orphaned');
    return true;
  }

  /** The account is back in AD (recycle bin restore keeps the objectGUID): its mailbox and overrides with it. */
  async restore(user: { login: string; guid: string }): Promise<boolean> {
    const row = this.stmt.get.get(user.guid.toLowerCase()) as Row | undefined;
    if (!row?.orphaned_at) return false;
    const give = (heldJson: string | null) => {
      const held = heldJson ? (JSON.parse(heldJson) as UserSettings) : undefined;
      // Overrides set meanwhile on the login (for a new account that reused it) win over the held ones.
      if (held && !this.opts.settings.getUser(user.login)) {
        this.opts.settings.setUser(user.login, { quotaMB: held.quotaMB, spamRetentionDays: held.spamRetentionDays, forward: held.forward, keepCopy: held.keepCopy });
      }
    };
    if (this.shared) {
      // Refused while a node erases it: an erase that has begun is finished, never raced by a restore.
      const r = await this.shared.restore(row.guid, user.login, this.now().toISOString());
      if (!r.changed) return false;
      await this.settingsChange(row.guid, 'restore', () => give(r.held), (now) => now !== undefined && !now.orphaned_at && now.login === user.login, r.held);
    } else {
      this.opts.settings.db.transaction(() => {
        this.stmt.restore.run(user.login, this.now().toISOString(), row.guid);
        give(row.held_settings);
      })();
    }
    this.log.info({ component: 'mailbox', guid: row.guid, login: user.login }, 'account back in AD: mailbox restored');
    return true;
  }

  /**
   * Erases the mailbox: the directory is first renamed out of users/ (one atomic step, so a crash never leaves a
   * half-deleted mailbox that could be delivered to), then the row goes, then the files. With state postgres only
   * an orphan is erased, by the one node whose claim on it succeeded (false on the others).
   */
  async erase(guid: string): Promise<boolean> {
    let row = this.stmt.get.get(guid.toLowerCase()) as Row | undefined;
    if (!row) return false;
    if (this.shared) {
      row = await this.shared.beginErase(row.guid);
      if (!row) return false;
    }
    const from = join(this.opts.root, row.dir);
    const trash = join(this.opts.root, `.erasing-${row.guid}-${Date.now()}`);
    let moved = false;
    try {
      await rename(from, trash);
      moved = true;
      await fsyncDir(this.opts.root).catch(() => undefined);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    let mine = true;
    try {
      if (this.shared) await this.shared.endErase(row.guid);
      // Two erases of one mailbox at once in one settings.db (the sweep and an admin's erase): the one whose DELETE
      // removed the row reports it; the other found the directory already moved (ENOENT) or moved it itself.
      else mine = this.stmt.delete.run(row.guid).changes > 0;
      this.dirs.delete(row.guid);
    } finally {
      // Out of users/ it is gone for good either way: a claimed erase is never restored, only finished (again).
      if (moved) await rm(trash, { recursive: true, force: true });
    }
    if (!mine) return false;
    this.log.warn({ component: 'mailbox', guid: row.guid, login: row.login, dir: row.dir }, 'mailbox erased');
    return true;
  }

  /** The absolute path of the Maildir of a registered mailbox. */
  maildirOf(record: MailboxRecord): string {
    return join(this.opts.root, record.dir, 'Maildir');
  }

  /**
   * state postgres: the overrides that go with a registry decision, changed through Settings.apply, which first
   * re-reads the cluster's settings (the copy may not have another node's last change yet: a restore that read a
   * stale copy would skip giving the held overrides back, then lose them to the clear arriving after). The decision
   * is already committed: if PostgreSQL fails in between, the change is retried in the background (1 s, doubling
   * to 60 s) for as long as `holds` says the decision is still the registry's (an orphan clear is not run on an
   * account restored meanwhile). The retries live in this process: a node that dies meanwhile leaves them undone,
   * which the error log says with what was held.
   */
  private async settingsChange(guid: string, what: string, fn: () => void, holds: (row: Row | undefined) => boolean, held?: string | null): Promise<void> {
    const attempt = async (delayMs: number): Promise<void> => {
      const row = () => this.stmt.get.get(guid) as Row | undefined;
      if (!holds(row())) {
        if (delayMs > RETRY_FIRST_MS) this.log.info({ component: 'mailbox', guid, what }, 'mailbox: the registry has decided otherwise meanwhile; the overrides change is dropped');
        return;
      }
      try {
        await this.opts.settings.apply(() => {
          if (holds(row())) fn();
        });
        if (delayMs > RETRY_FIRST_MS) this.log.info({ component: 'mailbox', guid, what }, 'mailbox: the account\'s overrides followed the registry after all');
      } catch (err) {
        if (!(err instanceof TempFailure)) {
          this.log.error({ component: 'mailbox', guid, what, held, err: (err as Error).message }, 'mailbox: the registry changed but the account\'s overrides could not follow (set them again with postern user set)');
          return;
        }
        this.log.warn({ component: 'mailbox', guid, what, held, err: err.message, retryInMs: delayMs }, 'mailbox: the registry changed but the account\'s overrides could not follow yet; retried');
        setTimeout(() => void attempt(Math.min(delayMs * 2, RETRY_MAX_MS)), delayMs).unref();
      }
    };
    await attempt(RETRY_FIRST_MS);
  }

  private moveSettings(from: string, to: string): void {
    const old = this.opts.settings.getUser(from);
    if (!old || this.opts.settings.getUser(to)) return;
    this.opts.settings.db.transaction(() => {
      this.opts.settings.setUser(to, { quotaMB: old.quotaMB, spamRetentionDays: old.spamRetentionDays, forward: old.forward, keepCopy: old.keepCopy });
      this.opts.settings.setUser(from, { quotaMB: null, spamRetentionDays: null, forward: null, keepCopy: false });
    })();
  }
}
