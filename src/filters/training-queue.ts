/**
 * The Bayes training queue (issue 16): a message a user moved into or out of Junk is queued for spamd TELL
 * (src/filters/spamassassin.ts SpamLearner) instead of being told at once, so that a spamd that is down or slow
 * delays the lesson instead of losing it, and so that in a cluster every lesson is told once, by one node.
 *
 * Backends behind one interface, chosen by `state.type`: `${dataDir}/training.db` (SQLite, the embedded default:
 * the node's IMAP processes add, its main process tells) and the `spam_training` table on PostgreSQL
 * (src/state/postgres/training-queue.ts), where every node adds and a node takes a job with FOR UPDATE SKIP LOCKED
 * and a lease, so two nodes never tell one lesson twice and the lessons of a node that died are told by another.
 *
 * What is queued is the message itself (not a folder and UID): the user may move, delete or expunge it before the
 * lesson is told, and spamd must learn what the user judged.
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { StateConfig } from '../config/schema.js';
import type { Logger } from '../lib/logger.js';
import type { SqliteDatabase } from '../settings/db.js';
import type { PgState } from '../state/postgres/pool.js';
import { PgTrainingQueue } from '../state/postgres/training-queue.js';

const require = createRequire(import.meta.url);

export const TRAINING_DB_FILE = 'training.db';

export interface TrainingLesson {
  /** sAMAccountName of the user who moved the message (spamd's log says who taught it). */
  login: string;
  kind: 'spam' | 'ham';
  message: Buffer;
}

export interface TrainingJob extends TrainingLesson {
  id: number;
  attempts: number;
}

export interface TrainingQueue {
  /** Queues lessons (one transaction). Throws TempFailure when the store cannot take them. */
  add(lessons: TrainingLesson[]): Promise<void>;
  /** Up to `max` due jobs, each held by `holder` for `leaseMs` (not given to anyone else meanwhile). */
  take(holder: string, max: number, leaseMs: number): Promise<TrainingJob[]>;
  /** The job was told (or needs no telling): gone. */
  done(id: number): Promise<void>;
  /** The job could not be told: due again after `delayMs`, one attempt more. */
  retry(id: number, delayMs: number): Promise<void>;
  /** Jobs queued and not yet told. */
  pending(): Promise<number>;
  close(): Promise<void>;
}

/** `${dataDir}/training.db`: the embedded default. WAL, so IMAP worker processes add while the main process takes. */
export class SqliteTrainingQueue implements TrainingQueue {
  private readonly db: SqliteDatabase;
  private readonly takeTx: (holder: string, max: number, leaseMs: number, now: number) => TrainingJob[];

  constructor(file: string) {
    const created = !existsSync(file);
    const Database = require('better-sqlite3') as new (f: string, o?: { timeout?: number }) => SqliteDatabase;
    this.db = new Database(file, { timeout: 5000 });
    if (created) chmodSync(file, 0o600);
    this.db.pragma('journal_mode = WAL');
    // FULL: a lesson the IMAP client was told about (its MOVE answered) survives a power cut.
    this.db.pragma('synchronous = FULL');
    this.db.exec(`CREATE TABLE IF NOT EXISTS spam_training (
      id           INTEGER PRIMARY KEY AUTOINCREMENT,
      login        TEXT NOT NULL,
      kind         TEXT NOT NULL CHECK (kind IN ('spam', 'ham')),
      message      BLOB NOT NULL,
      queued_at    INTEGER NOT NULL,
      due_at       INTEGER NOT NULL,
      attempts     INTEGER NOT NULL DEFAULT 0,
      holder       TEXT,
      lease_until  INTEGER
    );
    CREATE INDEX IF NOT EXISTS spam_training_due ON spam_training (due_at)`);
    const select = this.db.prepare(
      'SELECT id, login, kind, message, attempts FROM spam_training WHERE due_at <= ? AND (lease_until IS NULL OR lease_until < ?) ORDER BY due_at, id LIMIT ?',
    );
    const hold = this.db.prepare('UPDATE spam_training SET holder = ?, lease_until = ? WHERE id = ?');
    this.takeTx = this.db.transaction((holder: string, max: number, leaseMs: number, now: number) => {
      const rows = select.all(now, now, max) as { id: number; login: string; kind: 'spam' | 'ham'; message: Buffer; attempts: number }[];
      for (const r of rows) hold.run(holder, now + leaseMs, r.id);
      return rows.map((r) => ({ ...r, message: Buffer.from(r.message) }));
    });
  }

  static open(dataDir: string): SqliteTrainingQueue {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    return new SqliteTrainingQueue(join(dataDir, TRAINING_DB_FILE));
  }

  async add(lessons: TrainingLesson[]): Promise<void> {
    const ins = this.db.prepare('INSERT INTO spam_training (login, kind, message, queued_at, due_at) VALUES (?, ?, ?, ?, ?)');
    const now = Date.now();
    this.db.transaction(() => {
      for (const l of lessons) ins.run(l.login, l.kind, l.message, now, now);
    })();
  }

  async take(holder: string, max: number, leaseMs: number): Promise<TrainingJob[]> {
    return this.takeTx(holder, max, leaseMs, Date.now());
  }

  async done(id: number): Promise<void> {
    this.db.prepare('DELETE FROM spam_training WHERE id = ?').run(id);
  }

  async retry(id: number, delayMs: number): Promise<void> {
    this.db.prepare('UPDATE spam_training SET attempts = attempts + 1, due_at = ?, holder = NULL, lease_until = NULL WHERE id = ?').run(Date.now() + delayMs, id);
  }

  async pending(): Promise<number> {
    return (this.db.prepare('SELECT count(*) AS n FROM spam_training').get() as { n: number }).n;
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

export function openTrainingQueue(config: { dataDir: string; state: StateConfig }, pg: PgState | undefined): TrainingQueue {
  if (config.state.type === 'postgres') {
    if (!pg) throw new Error('state postgres: the training queue needs the state store pool');
    return new PgTrainingQueue(pg);
  }
  return SqliteTrainingQueue.open(config.dataDir);
}

/** Back-off of a lesson spamd could not take: 10 s doubling to 10 min. */
export function retryDelayMs(attempts: number): number {
  return Math.min(10_000 * 2 ** attempts, 600_000);
}

/** A lesson spamd has refused for this long is dropped (logged): the Bayes database has moved on without it. */
export const MAX_TRAINING_AGE_ATTEMPTS = 12;

export interface SpamTrainerOptions {
  queue: TrainingQueue;
  /** Tells spamd (SpamLearner.learn): true learned, false nothing new; throws when spamd cannot answer. */
  tell(lesson: TrainingLesson): Promise<boolean>;
  /** This node (the holder of the jobs it takes). */
  node: string;
  log: Logger;
  intervalMs?: number;
  leaseMs?: number;
}

/**
 * Tells the queued lessons, one at a time (spamd learns serially anyway), on a timer and when kicked. Runs in the
 * main process of each node; with PostgreSQL the nodes share the work.
 */
export class SpamTrainer {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(private readonly opts: SpamTrainerOptions) {}

  start(): void {
    const every = this.opts.intervalMs ?? 5000;
    this.timer = setInterval(() => this.kick(), every);
    this.timer.unref();
    this.kick();
  }

  /** Runs a pass now (or right after the one running). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.drain()
      .catch((err: unknown) => this.opts.log.warn({ component: 'filter', err: (err as Error).message }, 'spam training: queue unavailable; retrying later'))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Resolves once no pass is running (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.idle();
  }

  private async drain(): Promise<void> {
    const { queue, log } = this.opts;
    const leaseMs = this.opts.leaseMs ?? 120_000;
    for (;;) {
      if (this.stopped) return;
      const jobs = await queue.take(this.opts.node, 10, leaseMs);
      if (!jobs.length) return;
      for (const job of jobs) {
        let learned: boolean;
        try {
          learned = await this.opts.tell(job);
        } catch (err) {
          if (job.attempts + 1 >= MAX_TRAINING_AGE_ATTEMPTS) {
            log.warn({ component: 'filter', user: job.login, kind: job.kind, attempts: job.attempts + 1, err: (err as Error).message }, 'spam training: lesson dropped after repeated failures');
            await queue.done(job.id);
          } else {
            log.warn({ component: 'filter', user: job.login, kind: job.kind, err: (err as Error).message }, 'spam training: spamd unavailable; the lesson is kept');
            await queue.retry(job.id, retryDelayMs(job.attempts));
          }
          // spamd is away: the other jobs taken wait for their leases rather than fail one by one.
          return;
        }
        await queue.done(job.id);
        log.info({ component: 'filter', user: job.login, kind: job.kind, learned }, learned ? `spam training: taught ${job.kind}` : `spam training: already known as ${job.kind}`);
      }
    }
  }
}
