/**
 * Junk retention (issue 5 §4, the seed's "Spam messages are expunged automatically after the Hold for period has
 * elapsed"): a sweeper that walks every mailbox under `<dataDir>/mail/users` and `<dataDir>/mail/shared` and
 * expunges the messages of its Junk folder(s) whose internal date is older than the hold period.
 *
 * - The hold period is `mailbox.spamRetentionDays`, or the user's custom value (`settings.effectiveUser(login)`);
 *   shared folders use the global value. 0 = keep forever. Read at every sweep, so a change applies at the next one.
 * - The internal date is what the folder index holds: the delivery time from the Maildir file name (`<secs>.M…`),
 *   the APPEND date, or the file's mtime for names without a time. A MOVE into Junk keeps the file and its name, so
 *   the clock starts at delivery, as with the seed's Dovecot `expire` on the received date.
 * - Junk folders are the top-level folders with the \Junk special use (Junk, Spam, "Junk E-mail").
 * - Messages go through MailboxAccess.expunge: IMAP sessions on the folder get EXPUNGE, the index and maildirsize
 *   stay right. Nothing is created: a mailbox without a Junk folder is skipped.
 *
 * Runs once at start, then every hour (`intervalMs` for tests); one sweep at a time.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../lib/logger.js';
import { PeriodicJob } from '../lib/periodic.js';
import type { Settings } from '../settings/store.js';
import { errorCode } from './fs-util.js';
import type { MailboxAccess } from './mailbox.js';
import type { MaildirStore } from './maildir.js';
import { ownerLabel } from './names.js';
import type { MailboxOwner } from './types.js';

const DAY_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_RETENTION_INTERVAL_MS = 60 * 60 * 1000;

export interface JunkRetentionOptions {
  store: Pick<MaildirStore, 'root' | 'listFolders'>;
  mailbox: Pick<MailboxAccess, 'openFolder' | 'expunge'>;
  settings: Pick<Settings, 'get' | 'effectiveUser'>;
  log: Logger;
  /** The owner of a directory under users/ when a registry knows it (login and objectGUID); else it is the login. */
  userOwner?: (dirName: string) => MailboxOwner | undefined;
  /** Time between sweeps (default one hour). */
  intervalMs?: number;
  /**
   * state postgres (issue 16): the nodes share one Maildir, so a timer's sweep runs on the one node the gate gives
   * it to per interval (src/cluster/run-once.ts), not on each; sweep() called directly is not gated.
   */
  gate?: { claim(name: string, intervalMs: number): Promise<boolean>; done(name: string): Promise<void> };
  /** The clock (default Date.now); tests move it forward. */
  now?: () => number;
}

export interface SweepResult {
  /** Messages expunged, by owner label ('john.smith', 'shared:support') and folder. */
  removed: { owner: string; folder: string; uids: number[] }[];
  /** Mailboxes that could not be swept (logged, the next sweep tries again). */
  errors: number;
}

/** The reverse of names.ts ownerDirName: '%2E' → '.' (names are already lower-cased there). */
function ownerFromDirName(name: string): string {
  return name.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

async function listDirs(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return [];
    throw err;
  }
}

/** The junk sweep's row in cluster_jobs. */
export const JUNK_RETENTION_JOB = 'junk-retention';

export class JunkRetention {
  private readonly opts: JunkRetentionOptions;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly job: PeriodicJob<SweepResult>;

  constructor(opts: JunkRetentionOptions) {
    this.opts = opts;
    this.log = opts.log.child({ component: 'store' });
    this.now = opts.now ?? Date.now;
    this.job = new PeriodicJob(
      () => this.sweepAll(),
      (err): SweepResult => {
        this.log.warn({ err }, 'junk retention: sweep failed');
        return { removed: [], errors: 1 };
      },
      opts.intervalMs ?? DEFAULT_RETENTION_INTERVAL_MS,
      opts.gate ? { name: JUNK_RETENTION_JOB, claim: (n, ms) => opts.gate!.claim(n, ms), done: (n) => opts.gate!.done(n) } : undefined,
    );
  }

  /** Sweeps now (in the background) and then every interval. */
  start(): void {
    this.job.start();
  }

  /** Stops the timer and waits for a sweep in progress (it stops between mailboxes). */
  stop(): Promise<void> {
    return this.job.stop();
  }

  /** One pass over every mailbox; a pass already running is joined rather than doubled. Never rejects. */
  sweep(): Promise<SweepResult> {
    return this.job.run();
  }

  /** The hold period in days for an owner (0 = keep forever). */
  retentionDays(owner: MailboxOwner): number {
    return owner.kind === 'user' ? this.opts.settings.effectiveUser(owner.login).spamRetentionDays : this.opts.settings.get('mailbox.spamRetentionDays');
  }

  private async sweepAll(): Promise<SweepResult> {
    const result: SweepResult = { removed: [], errors: 0 };
    const root = this.opts.store.root;
    const owners: MailboxOwner[] = [
      ...(await listDirs(join(root, 'users')))
        .filter((d) => !d.startsWith('.'))
        .map((d): MailboxOwner => this.opts.userOwner?.(d) ?? { kind: 'user', login: ownerFromDirName(d) }),
      ...(await listDirs(join(root, 'shared'))).map((d): MailboxOwner => ({ kind: 'shared', group: ownerFromDirName(d) })),
    ];
    for (const owner of owners) {
      if (this.job.stopped) break;
      try {
        await this.sweepOwner(owner, result);
      } catch (err) {
        result.errors++;
        this.log.warn({ err, owner: ownerLabel(owner) }, 'junk retention: mailbox not swept');
      }
    }
    const total = result.removed.reduce((n, r) => n + r.uids.length, 0);
    this.log.debug({ mailboxes: owners.length, removed: total, errors: result.errors }, 'junk retention: sweep done');
    return result;
  }

  private async sweepOwner(owner: MailboxOwner, result: SweepResult): Promise<void> {
    const days = this.retentionDays(owner);
    if (!(days > 0)) return;
    const cutoff = this.now() - days * DAY_MS;
    const folders = (await this.opts.store.listFolders(owner)).filter((f) => f.specialUse === '\\Junk');
    for (const f of folders) {
      const state = await this.opts.mailbox.openFolder(owner, f.name);
      const old = state.messages.filter((m) => m.internalDate.getTime() < cutoff).map((m) => m.uid);
      if (old.length === 0) continue;
      const uids = await this.opts.mailbox.expunge(owner, f.name, old);
      if (uids.length === 0) continue;
      result.removed.push({ owner: ownerLabel(owner), folder: f.name, uids });
      this.log.info(
        { owner: ownerLabel(owner), folder: f.name, expunged: uids.length, uids, retentionDays: days, before: new Date(cutoff).toISOString() },
        'junk retention: expunged spam older than the hold period',
      );
    }
  }
}
