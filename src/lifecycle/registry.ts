/**
 * The mailbox registry (issue 13): which directory of the store holds the mailbox of which AD object (objectGUID),
 * the login last seen for it, and whether the account is gone from AD (orphaned). Rows live in the settings
 * database (schema/migrations/003-mailbox-owners.sql).
 *
 * Why a table and not simply `users/<guid>/`: mailboxes that existed before (keyed by login) are claimed where they
 * are, so the migration moves nothing (no window in which a crash could leave mail in two places, nothing for
 * Dovecot or a backup script pointed at users/<login> to lose), and a new mailbox is made at users/<guid>, which no
 * later login can collide with. The store asks synchronously (better-sqlite3), once per GUID per process.
 */
import { existsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Statement } from '../settings/db.js';
import { isGuid } from '../directory/guid.js';
import { loginKey } from '../directory/types.js';
import { silentLogger, type Logger } from '../lib/logger.js';
import { ownerDirName } from '../store/names.js';
import type { Settings, UserSettings } from '../settings/store.js';
import { fsyncDir } from '../store/fs-util.js';

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

interface Row {
  guid: string;
  dir: string;
  login: string;
  created_at: string;
  seen_at: string;
  orphaned_at: string | null;
  held_settings: string | null;
}

function toRecord(r: Row): MailboxRecord {
  return { guid: r.guid, dir: r.dir, login: r.login, createdAt: r.created_at, seenAt: r.seen_at, ...(r.orphaned_at ? { orphanedAt: r.orphaned_at } : {}) };
}

export interface RegistryOptions {
  /** The store root (`${dataDir}/mail`). */
  root: string;
  settings: Pick<Settings, 'db' | 'getUser' | 'setUser'>;
  log?: Logger;
  now?: () => Date;
}

export class MailboxRegistry {
  private readonly stmt: Record<'get' | 'byDir' | 'byLogin' | 'insert' | 'setLogin' | 'seen' | 'orphan' | 'restore' | 'delete' | 'orphans' | 'all', Statement>;
  private readonly dirs = new Map<string, string>();
  private readonly log: Logger;
  private readonly now: () => Date;

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
    const cached = this.dirs.get(guid);
    if (cached) return cached;
    if (!isGuid(guid)) throw new RangeError(`not a GUID: ${owner.guid}`);
    const row = this.stmt.get.get(guid) as Row | undefined;
    let dir = row?.dir;
    if (!dir) {
      const legacy = `users/${ownerDirName(owner.login)}`;
      const claimable = existsSync(join(this.opts.root, legacy, 'Maildir')) && !this.stmt.byDir.get(legacy) && !isGuid(ownerDirName(owner.login));
      dir = claimable ? legacy : `users/${guid}`;
      const at = this.now().toISOString();
      this.stmt.insert.run(guid, dir, owner.login, at, at);
      this.log.info({ component: 'mailbox', guid, login: owner.login, dir }, claimable ? 'mailbox keyed by login now belongs to its AD object' : 'mailbox registered');
    }
    this.dirs.set(guid, dir);
    return dir;
  }

  /**
   * The account was found in AD: note the time and follow a rename of its sAMAccountName (the Users > Services
   * overrides move to the new login, so quota, forward and retention stay with the mailbox). Returns the record.
   */
  seen(user: { login: string; guid: string }, opts: { touch?: boolean } = {}): MailboxRecord | undefined {
    const guid = user.guid.toLowerCase();
    const row = this.stmt.get.get(guid) as Row | undefined;
    if (!row) return undefined;
    const at = this.now().toISOString();
    if (row.orphaned_at) return toRecord(row); // only restore() brings an orphan back, after checking AD itself
    if (loginKey(row.login) !== loginKey(user.login)) {
      this.moveSettings(row.login, user.login);
      this.stmt.setLogin.run(user.login, at, guid);
      this.log.info({ component: 'mailbox', guid, from: row.login, to: user.login }, 'account renamed in AD: mailbox and settings follow it');
    } else if (opts.touch) {
      // Only the periodic reconcile writes the time: the per-RCPT check must not write to the database each time.
      this.stmt.seen.run(at, guid);
    }
    return this.get(guid);
  }

  /**
   * The account is gone from AD: marked orphaned at `at`, its overrides held aside (a new account with the same
   * login must start with the defaults). False when it was already orphaned or is unknown.
   */
  markOrphaned(guid: string, at = this.now()): boolean {
    const row = this.stmt.get.get(guid.toLowerCase()) as Row | undefined;
    if (!row || row.orphaned_at) return false;
    const held = this.opts.settings.getUser(row.login);
    const tx = this.opts.settings.db.transaction(() => {
      this.stmt.orphan.run(at.toISOString(), held ? JSON.stringify(held) : null, row.guid);
      if (held) this.opts.settings.setUser(row.login, { quotaMB: null, spamRetentionDays: null, forward: null, keepCopy: false });
    });
    tx();
    this.log.warn({ component: 'mailbox', guid: row.guid, login: row.login, orphanedAt: at.toISOString() }, 'account gone from AD: mailbox orphaned');
    return true;
  }

  /** The account is back in AD (recycle bin restore keeps the objectGUID): its mailbox and overrides with it. */
  restore(user: { login: string; guid: string }): boolean {
    const row = this.stmt.get.get(user.guid.toLowerCase()) as Row | undefined;
    if (!row?.orphaned_at) return false;
    const held = row.held_settings ? (JSON.parse(row.held_settings) as UserSettings) : undefined;
    const tx = this.opts.settings.db.transaction(() => {
      this.stmt.restore.run(user.login, this.now().toISOString(), row.guid);
      // Overrides set meanwhile on the login (for a new account that reused it) win over the held ones.
      if (held && !this.opts.settings.getUser(user.login)) {
        this.opts.settings.setUser(user.login, { quotaMB: held.quotaMB, spamRetentionDays: held.spamRetentionDays, forward: held.forward, keepCopy: held.keepCopy });
      }
    });
    tx();
    this.log.info({ component: 'mailbox', guid: row.guid, login: user.login }, 'account back in AD: mailbox restored');
    return true;
  }

  /**
   * Erases the mailbox: the directory is first renamed out of users/ (one atomic step, so a crash never leaves a
   * half-deleted mailbox that could be delivered to), then the row goes, then the files.
   */
  async erase(guid: string): Promise<boolean> {
    const row = this.stmt.get.get(guid.toLowerCase()) as Row | undefined;
    if (!row) return false;
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
    this.stmt.delete.run(row.guid);
    this.dirs.delete(row.guid);
    if (moved) await rm(trash, { recursive: true, force: true });
    this.log.warn({ component: 'mailbox', guid: row.guid, login: row.login, dir: row.dir }, 'mailbox erased');
    return true;
  }

  /** The absolute path of the Maildir of a registered mailbox. */
  maildirOf(record: MailboxRecord): string {
    return join(this.opts.root, record.dir, 'Maildir');
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
