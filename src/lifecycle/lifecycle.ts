/**
 * Account lifecycle (issue 13, the seed: "Deleting a user or group account erases the associated mailbox", made
 * safer the way Exchange keeps a disconnected mailbox): when an account leaves AD (deleted, or moved out of the
 * configured base) its mailbox is marked orphaned, refused for delivery and login, listed for the admin, and erased
 * after `mailbox.deletedAccountRetentionDays` (0 = at once, the seed's behaviour). An account that comes back with
 * the same objectGUID (AD recycle bin) gets its mailbox back.
 *
 * `reconcileMailboxes()` is the one function that decides; it runs at start and periodically (MailboxLifecycle),
 * and can be called for one GUID (AD change notification: "object deleted/changed").
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isGuid } from '../directory/guid.js';
import type { Directory, UserEntry } from '../directory/types.js';
import { loginKey } from '../directory/types.js';
import { TempFailure } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { PeriodicJob } from '../lib/periodic.js';
import type { Settings } from '../settings/store.js';
import { ownerDirName } from '../store/names.js';
import type { MailboxRegistry } from './registry.js';

const DAY_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_RECONCILE_INTERVAL_MS = 60 * 60 * 1000;

export interface LifecycleDeps {
  registry: MailboxRegistry;
  /** Asked directly, not through the cache: a cached entry must not keep a deleted account's mailbox alive. */
  directory: Pick<Directory, 'findGuid' | 'findLogin' | 'findGroup' | 'groupsOf'>;
  settings: Pick<Settings, 'get'>;
  log: Logger;
  /** The clock (default Date.now); tests move it forward. */
  now?: () => number;
}

export interface ReconcileResult {
  checked: number;
  orphaned: string[];
  restored: string[];
  erased: string[];
  /** True when the directory could not answer: nothing was changed after that point. */
  tempFailed: boolean;
}

/**
 * Brings the registry in line with AD, for every registered mailbox or for one GUID. A directory that cannot answer
 * stops the run with nothing decided (TempFailure is never "gone"). As a guard against a misconfigured base DN or
 * a DC answering from an empty replica, a run over all mailboxes that finds none of three or more active accounts
 * orphans nothing and says so.
 */
export async function reconcileMailboxes(deps: LifecycleDeps, opts: { guid?: string } = {}): Promise<ReconcileResult> {
  const now = deps.now ?? Date.now;
  const result: ReconcileResult = { checked: 0, orphaned: [], restored: [], erased: [], tempFailed: false };
  const records = opts.guid ? [deps.registry.get(opts.guid)].filter((r) => r !== undefined) : deps.registry.list();
  const found = new Map<string, UserEntry | null>();
  try {
    for (const rec of records) {
      const entry = await deps.directory.findGuid(rec.guid);
      found.set(rec.guid, entry?.kind === 'user' ? entry : null);
      result.checked++;
    }
  } catch (err) {
    if (!(err instanceof TempFailure)) throw err;
    deps.log.warn({ component: 'mailbox', err: err.message }, 'mailbox reconcile: directory unavailable, nothing changed');
    return { ...result, tempFailed: true };
  }
  const active = records.filter((r) => !r.orphanedAt);
  const gone = active.filter((r) => found.get(r.guid) === null);
  const suspicious = !opts.guid && active.length >= 3 && gone.length === active.length;
  if (suspicious) {
    deps.log.error({ component: 'mailbox', mailboxes: active.length }, 'mailbox reconcile: no registered account found in AD at all; check directory.baseDN; nothing orphaned');
  }
  for (const rec of records) {
    const user = found.get(rec.guid);
    if (user) {
      if (rec.orphanedAt) {
        if (await deps.registry.restore({ login: user.login, guid: rec.guid })) result.restored.push(rec.guid);
      } else {
        await deps.registry.seen({ login: user.login, guid: rec.guid }, { touch: true });
      }
      continue;
    }
    if (!rec.orphanedAt && !suspicious && (await deps.registry.markOrphaned(rec.guid, new Date(now())))) result.orphaned.push(rec.guid);
  }
  const days = deps.settings.get('mailbox.deletedAccountRetentionDays');
  for (const rec of deps.registry.listOrphaned()) {
    if (opts.guid && rec.guid !== opts.guid.toLowerCase()) continue;
    if (Date.parse(rec.orphanedAt!) + days * DAY_MS <= now()) {
      if (await deps.registry.erase(rec.guid)) result.erased.push(rec.guid);
    }
  }
  if (result.orphaned.length || result.restored.length || result.erased.length) {
    deps.log.info({ component: 'mailbox', ...result }, 'mailbox reconcile done');
  }
  return result;
}

/**
 * Whether this account has a mailbox now — delivery (550 5.1.1 otherwise, through the resolver) and IMAP/POP3 login
 * ask it. The seed's Services tab: every enabled account, or only members of `mailbox.enabledGroup` (nested
 * membership) when set; an orphaned mailbox is refused unless AD itself (uncached) has the account again, in which
 * case it is restored on the spot. Also follows a rename (settings move to the new login).
 */
export async function mailboxEnabled(deps: LifecycleDeps, user: UserEntry): Promise<boolean> {
  if (!user.enabled) return false;
  const groupName = deps.settings.get('mailbox.enabledGroup');
  if (groupName) {
    const group = await deps.directory.findGroup(groupName);
    if (!group) {
      // Fail closed: a misspelt group must not give everyone a mailbox. Logged so the admin sees why.
      deps.log.warn({ component: 'mailbox', group: groupName }, 'mailbox.enabledGroup names no AD group: no account has a mailbox');
      return false;
    }
    const groups = await deps.directory.groupsOf(user);
    if (!groups.some((g) => g.dn.toLowerCase() === group.dn.toLowerCase())) return false;
  }
  if (!user.guid) return true;
  let rec = deps.registry.get(user.guid);
  if (!rec && deps.registry.isShared) {
    // state postgres: registered now, while the caller can still wait (and answer 4xx if PostgreSQL is down), so
    // the store's synchronous lookup at delivery finds it; another node may have it already, orphaned or not.
    await deps.registry.register({ login: user.login, guid: user.guid });
    rec = deps.registry.get(user.guid);
  }
  if (!rec) return true;
  if (rec.orphanedAt) {
    const again = await reconcileMailboxes(deps, { guid: user.guid });
    return again.restored.includes(rec.guid);
  }
  if (loginKey(rec.login) !== loginKey(user.login)) await deps.registry.seen({ login: user.login, guid: user.guid });
  return true;
}

/**
 * The one-time migration to AD-object identity: every mailbox still keyed by login (users/<login>) whose account
 * AD knows is registered to that account's objectGUID, in place (nothing is moved, so a crash cannot lose or split
 * anything, and running it again does nothing). A login AD does not know is left alone and logged: it is claimed
 * later if the account appears (registry.dirFor). Returns how many were claimed.
 */
export async function migrateLoginMailboxes(deps: Pick<LifecycleDeps, 'registry' | 'directory' | 'log'>, root: string): Promise<{ claimed: number; unknown: string[] }> {
  let names: string[];
  try {
    names = (await readdir(join(root, 'users'), { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { claimed: 0, unknown: [] };
    throw err;
  }
  let claimed = 0;
  const unknown: string[] = [];
  for (const name of names.sort()) {
    if (isGuid(name) || name.startsWith('.') || deps.registry.byDirName(name)) continue;
    const login = name.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    let user: UserEntry | null;
    try {
      user = await deps.directory.findLogin(login);
    } catch (err) {
      if (!(err instanceof TempFailure)) throw err;
      deps.log.warn({ component: 'mailbox', err: err.message }, 'mailbox migration: directory unavailable; mailboxes are claimed on first use instead');
      break;
    }
    // findLogin also matches a UPN or mail; only the account whose sAMAccountName is this directory's name owns it.
    if (!user?.guid || ownerDirName(user.login) !== name) {
      unknown.push(name);
      continue;
    }
    if ((await deps.registry.register({ login: user.login, guid: user.guid })) === `users/${name}`) claimed++;
  }
  if (claimed || unknown.length) deps.log.info({ component: 'mailbox', claimed, unknown }, 'mailbox migration: login-keyed mailboxes registered to their AD objects');
  return { claimed, unknown };
}

/** The name of the sweep in cluster_jobs (state postgres). */
export const MAILBOX_RECONCILE_JOB = 'mailbox-reconcile';

/**
 * Runs reconcileMailboxes at start and then every interval (like the junk retention sweep). With state postgres
 * (`gate`, src/cluster/run-once.ts) a timer's sweep runs on one node per interval: the registry is the cluster's,
 * so one sweep decides for all. What makes an erase happen exactly once is not the gate but the registry's claim
 * (a per-GUID reconcile on a directory change, an admin's reconcile or erase run on any node at any time).
 */
export class MailboxLifecycle {
  private readonly job: PeriodicJob<ReconcileResult>;

  constructor(
    private readonly deps: LifecycleDeps,
    intervalMs = DEFAULT_RECONCILE_INTERVAL_MS,
    gate?: { claim(name: string, intervalMs: number): Promise<boolean>; done(name: string): Promise<void> },
  ) {
    this.job = new PeriodicJob(
      () => reconcileMailboxes(this.deps),
      (err) => this.failed(err),
      intervalMs,
      gate ? { name: MAILBOX_RECONCILE_JOB, claim: (n, ms) => gate.claim(n, ms), done: (n) => gate.done(n) } : undefined,
    );
  }

  start(): void {
    this.job.start();
  }

  stop(): Promise<void> {
    return this.job.stop();
  }

  /** One pass (joined if one is running, unless for one GUID). Never rejects. */
  reconcile(guid?: string): Promise<ReconcileResult> {
    if (!guid) return this.job.run();
    return reconcileMailboxes(this.deps, { guid }).catch((err: unknown) => this.failed(err));
  }

  private failed(err: unknown): ReconcileResult {
    this.deps.log.warn({ component: 'mailbox', err }, 'mailbox reconcile failed');
    return { checked: 0, orphaned: [], restored: [], erased: [], tempFailed: true };
  }

  mailboxEnabled(user: UserEntry): Promise<boolean> {
    return mailboxEnabled(this.deps, user);
  }
}
