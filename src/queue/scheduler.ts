/**
 * The queue manager (Postfix's qmgr): decides when each queued message is tried, hands it to the delivery agent,
 * writes the outcome back to the spool, retries temporary failures with a growing delay until the queue lifetime,
 * and returns what failed to the sender in a DSN.
 *
 * The spool is the truth (STYLE.md): in memory the scheduler keeps only each message's id and due time, and it
 * reads the envelope from disk before every attempt (except a first one within a second of the commit, which uses
 * the envelope just written: Spool.readForAttempt). It re-reads the spool every scanIntervalSeconds, so what the
 * CLI does to the files (flush: nextAttemptAt = now; delete: the files go) reaches a running server without any
 * other channel, and any file may vanish at any step.
 *
 * Delivery is at-least-once (DESIGN.md §3): a crash, or a CLI command racing an attempt, may repeat a delivery,
 * never lose one.
 *
 * Claim mode (state postgres, issue 16; the spool has `claims`, src/state/postgres/queue.ts): several nodes run one
 * queue, so no node may keep its own idea of what is due. The scheduler then keeps only its running deliveries: at
 * each pump (a message queued here, a delivery ended, every scanIntervalSeconds) it claims as many due messages as
 * it has free slots, with a lease; the attempt's update() or remove() ends the claim. Retries, flushes made on other
 * nodes and the messages of a dead node whose lease ran out are found by the periodic pump. Expiry and the DSN
 * are decided by the one node that holds the claim, so they happen once cluster-wide.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from '../lib/logger.js';
import { buildDsn, failedRecipients } from './dsn.js';
import { retryDelayMs, type QueueConfig } from './retry.js';
import { NotQueuedError, type Spool } from './spool.js';
import type { QueueClaims, QueueEnvelope, QueueRecipient, SpooledFile } from './types.js';
import type { TraceRecorder } from '../trace/types.js';

/**
 * Delivers one message; returns the recipient list with states set (it may add expanded recipients). `spooled`,
 * when given, is the spool file holding the message behind the envelope's spoolPrefix: local delivery may
 * hard-link it into a Maildir instead of writing the message again. It may vanish (a CLI delete) at any time.
 */
export interface DeliveryAgent {
  deliver(envelope: QueueEnvelope, message: Buffer, spooled?: SpooledFile): Promise<QueueRecipient[]>;
}

/** What the scheduler reads from the runtime settings (src/settings/store.ts `Settings` fits). */
export interface QueueSettings {
  get(key: 'queue.lifetimeHours'): number;
}

export interface SchedulerOptions {
  spool: Spool;
  settings: QueueSettings;
  config: QueueConfig;
  /** Our FQDN, for DSNs. */
  hostname: string;
  log: Logger;
  agent: DeliveryAgent;
  /**
   * The queue lifetime in milliseconds, asked at each decision. Default: queue.lifetimeHours from the settings,
   * which only holds whole hours (1 to 2160); tests pass a few hundred milliseconds here.
   */
  lifetimeMs?: () => number;
  /** Message trace: deferred (agent failure), expired, bounced (the DSN's queue id), completed. */
  trace?: TraceRecorder;
}

export interface FinishedEvent {
  id: string;
  /** done: every recipient reached a final state and the message was removed; vanished: deleted by someone else. */
  reason: 'done' | 'vanished';
  /** The final envelope (reason done). */
  envelope?: QueueEnvelope;
  /** The queue id of the DSN sent to the sender, if one was. */
  dsnId?: string;
}

export interface AttemptEvent {
  id: string;
  /** The envelope as written after the attempt (pending recipients remain; nextAttemptAt is set). */
  envelope: QueueEnvelope;
}

interface Entry {
  id: string;
  /** Epoch ms of the next attempt. */
  due: number;
  running: boolean;
  /** Sequence number of the last local change, so that a scan read before it does not undo it. */
  touched: number;
  /** A flush arrived during an attempt: try again right after it. */
  flushAgain: boolean;
}

const TIMER_MAX = 2 ** 31 - 1;
/** The longest a new message's first delivery attempt waits for another commit to start it (see onEnqueued). */
const FRESH_ATTEMPT_DELAY_MS = 10;

function time(iso: string | undefined, fallback: number): number {
  const t = iso === undefined ? NaN : Date.parse(iso);
  return Number.isFinite(t) ? t : fallback;
}

/**
 * The `n` entries due first, earliest first. A backlog (SMTP accepting faster than delivery) makes `due` thousands
 * long while `n` is at most the concurrency, and pump() runs after every delivery: sorting all of it each time was
 * O(backlog · log backlog) per message (issue 11). A bounded insertion keeps it O(backlog · n) at worst, O(backlog)
 * when the entries come in due order (the Map's insertion order, as new mail arrives).
 */
export function earliest<T extends { due: number }>(due: T[], n: number): T[] {
  if (n === 0) return [];
  if (due.length <= n) return due.sort((a, b) => a.due - b.due);
  const best: T[] = [];
  for (const e of due) {
    if (best.length === n && e.due >= best[n - 1].due) continue;
    let i = best.length === n ? n - 1 : best.length;
    if (best.length === n) best.pop();
    while (i > 0 && best[i - 1].due > e.due) i--;
    best.splice(i, 0, e);
  }
  return best;
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim().slice(0, 500);
}

function recipientKey(r: QueueRecipient): string {
  return `${r.address}\u0000${r.parent ?? ''}`;
}

export class Scheduler extends EventEmitter<{ finished: [FinishedEvent]; attempted: [AttemptEvent] }> {
  private readonly spool: Spool;
  private readonly settings: QueueSettings;
  private readonly config: QueueConfig;
  private readonly hostname: string;
  private readonly log: Logger;
  private readonly agent: DeliveryAgent;
  private readonly lifetime: () => number;
  private readonly trace: TraceRecorder | undefined;

  private readonly entries = new Map<string, Entry>();
  /** Ids that left the queue here, with the sequence number of that moment: a scan read before must not revive them. */
  private readonly gone = new Map<string, number>();
  private readonly inFlight = new Set<Promise<void>>();
  private seq = 0;
  private stopped = true;
  private timer: NodeJS.Timeout | undefined;
  private scanTimer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private pumpQueued = false;
  /** The timer of a delayed pump (schedulePump with a delay), while one is queued. */
  private pumpDelay: NodeJS.Timeout | undefined;
  /** Claim mode: a claim is under way; another was asked for meanwhile. */
  private claiming = false;
  private claimAgain = false;
  private claimFailing = false;

  private readonly onEnqueued = (e: QueueEnvelope) => {
    // A scan can find the files first (they are in queue/ before the directory fsync ends and this event comes):
    // never replace its entry, which may be running (two attempts at once deliver twice), nor revive a finished one.
    if (this.spool.claims && !this.stopped) return this.schedulePump();
    if (this.stopped || this.entries.has(e.id) || this.gone.has(e.id)) return;
    this.entries.set(e.id, { id: e.id, due: time(e.nextAttemptAt, Date.now()), running: false, touched: ++this.seq, flushAgain: false });
    // The first attempt is held back until the loop would wait anyway: this event comes just before the SMTP
    // session's 250 is written, and started at once (setImmediate) the delivery ran on the event loop before the
    // client's next command could be read (issue 11: QUIT read ~0.8 ms after the 250 with one session). It starts
    // when the next enqueue waits for its fsyncs (onCommitting), or after FRESH_ATTEMPT_DELAY_MS when none comes.
    this.schedulePump(FRESH_ATTEMPT_DELAY_MS);
  };

  /** An enqueue waits for the disk: the deliveries held back by onEnqueued start now, during that wait. */
  private readonly onCommitting = () => {
    if (this.pumpDelay !== undefined) this.schedulePump();
  };

  constructor(options: SchedulerOptions) {
    super();
    this.spool = options.spool;
    this.settings = options.settings;
    this.config = options.config;
    this.hostname = options.hostname;
    this.log = options.log.child({ component: 'queue' });
    this.agent = options.agent;
    this.trace = options.trace;
    this.lifetime = options.lifetimeMs ?? (() => this.settings.get('queue.lifetimeHours') * 3_600_000);
  }

  /** Messages known to the scheduler, and how many are being delivered now. */
  get size(): { queued: number; active: number } {
    return { queued: this.entries.size, active: this.inFlight.size };
  }

  /**
   * Takes the spool's server lock (SpoolLockedError when another server runs this queue), cleans the spool after
   * a crash, loads every queued message and starts delivering.
   */
  async start(): Promise<void> {
    if (!this.stopped) return;
    await this.spool.lock();
    let recovered: Awaited<ReturnType<Spool['recover']>>;
    try {
      recovered = await this.spool.recover();
    } catch (err) {
      this.spool.unlock();
      throw err;
    }
    this.stopped = false;
    this.spool.on('enqueued', this.onEnqueued);
    this.spool.on('committing', this.onCommitting);
    if (this.spool.claims) {
      this.log.info({ messages: recovered.messages, removedOrphans: recovered.removedOrphans.length, mode: 'claims' }, 'queue started');
      this.pump();
      this.scanTimer = setInterval(() => this.pump(), this.config.scanIntervalSeconds * 1000);
      return;
    }
    await this.scan();
    this.log.info({ messages: recovered.messages, removedOrphans: recovered.removedOrphans.length }, 'queue started');
    this.scanTimer = setInterval(() => void this.scan(), this.config.scanIntervalSeconds * 1000);
  }

  /** Stops starting deliveries and waits for the running ones to end (their outcome is written). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.spool.off('enqueued', this.onEnqueued);
    this.spool.off('committing', this.onCommitting);
    clearInterval(this.scanTimer);
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pumpDelay !== undefined) {
      clearTimeout(this.pumpDelay);
      this.pumpDelay = undefined;
      this.pumpQueued = false;
    }
    await this.scanning;
    await Promise.allSettled([...this.inFlight]);
    await this.spool.settle().catch((err: unknown) => this.log.warn({ err }, 'cannot fsync the queue directory at stop'));
    await this.spool.claims?.stop();
    this.spool.unlock();
  }

  /**
   * Makes messages due now (all when `ids` is absent), on disk and here: `postern queue flush` does the disk part
   * from another process and the next scan does the rest. Returns the ids flushed and those not in the queue.
   */
  async flush(ids?: string[]): Promise<{ flushed: string[]; unknown: string[] }> {
    const targets = ids ?? (await this.spool.list()).map((e) => e.id);
    const flushed: string[] = [];
    const unknown: string[] = [];
    for (const id of targets) {
      const now = Date.now();
      const e = await this.spool.modify(id, (env) => {
        env.nextAttemptAt = new Date(now).toISOString();
      });
      if (!e) {
        unknown.push(id);
        continue;
      }
      flushed.push(id);
      if (this.stopped) continue;
      if (this.spool.claims) {
        // The row is due now for every node; the pump below (or another node's) claims it.
        this.log.info({ queueId: id }, 'flushed');
        continue;
      }
      let entry = this.entries.get(id);
      if (!entry) {
        entry = { id, due: now, running: false, touched: 0, flushAgain: false };
        this.entries.set(id, entry);
      }
      entry.touched = ++this.seq;
      if (entry.running) entry.flushAgain = true;
      else entry.due = now;
      this.log.info({ queueId: id }, 'flushed');
    }
    this.schedulePump();
    return { flushed, unknown };
  }

  /** Re-reads the spool: picks up messages and schedule changes made outside, and forgets deleted messages. */
  scan(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.spool.claims) {
      this.pump();
      return Promise.resolve();
    }
    this.scanning ??= this.doScan().finally(() => {
      this.scanning = undefined;
    });
    return this.scanning;
  }

  private async doScan(): Promise<void> {
    const start = ++this.seq;
    let scanned: Awaited<ReturnType<Spool['scan']>>;
    try {
      // Envelopes that did not change since the last scan are not read again (a deep queue costs stats, not reads).
      scanned = await this.spool.scan((id) => !this.entries.has(id));
    } catch (err) {
      this.log.error({ err }, 'cannot read the queue directory');
      return;
    }
    if (this.stopped) return;
    const seen = new Set<string>(scanned.ids);
    for (const env of scanned.envelopes) {
      const due = time(env.nextAttemptAt, Date.now());
      const e = this.entries.get(env.id);
      if (!e) {
        if ((this.gone.get(env.id) ?? -1) > start) continue; // it finished while the spool was being read
        this.entries.set(env.id, { id: env.id, due, running: false, touched: start, flushAgain: false });
      } else if (!e.running && e.touched < start) {
        e.due = due;
      }
    }
    for (const e of [...this.entries.values()]) {
      if (!seen.has(e.id) && !e.running && e.touched < start) this.vanished(e);
    }
    for (const [id, at] of this.gone) if (at < start) this.gone.delete(id);
    this.pump();
  }

  /**
   * Runs pump() soon: at the end of this turn of the event loop, or after `delayMs`. A pump already on its way
   * covers this request, unless it is a later one and this one is sooner (then the sooner one is made).
   */
  private schedulePump(delayMs = 0): void {
    if (this.stopped) return;
    if (this.pumpQueued && (delayMs > 0 || this.pumpDelay === undefined)) return;
    if (this.pumpDelay !== undefined) clearTimeout(this.pumpDelay);
    this.pumpDelay = undefined;
    this.pumpQueued = true;
    const run = () => {
      this.pumpQueued = false;
      this.pumpDelay = undefined;
      this.pump();
    };
    if (delayMs > 0) this.pumpDelay = setTimeout(run, delayMs);
    else setImmediate(run);
  }

  /** Starts the due messages that fit in `concurrency`, earliest due first, and sets the timer for the next one. */
  private pump(): void {
    if (this.stopped) return;
    if (this.spool.claims) return this.pumpClaims(this.spool.claims);
    const now = Date.now();
    const due: Entry[] = [];
    let next = Infinity;
    for (const e of this.entries.values()) {
      if (e.running) continue;
      if (e.due <= now) due.push(e);
      else if (e.due < next) next = e.due;
    }
    const free = this.config.concurrency - this.inFlight.size;
    for (const e of earliest(due, Math.max(0, free))) this.launch(e);
    // Due messages left waiting for a slot are started when a delivery ends (launch → schedulePump).
    clearTimeout(this.timer);
    this.timer = next === Infinity ? undefined : setTimeout(() => this.pump(), Math.min(Math.max(0, next - Date.now()), TIMER_MAX));
  }

  /** Claim mode: claims due messages for the free slots and starts them. */
  private pumpClaims(claims: QueueClaims): void {
    if (this.claiming) {
      this.claimAgain = true;
      return;
    }
    const free = this.config.concurrency - this.inFlight.size;
    if (free <= 0) return;
    this.claiming = true;
    claims
      .claimDue(free)
      .then(
        (envelopes) => {
          if (this.claimFailing) this.log.info('claiming due messages again');
          this.claimFailing = false;
          for (const env of envelopes) {
            if (this.stopped) {
              void claims.release(env.id, env.nextAttemptAt).catch(() => undefined);
              continue;
            }
            const e: Entry = { id: env.id, due: 0, running: false, touched: ++this.seq, flushAgain: false };
            this.entries.set(env.id, e);
            this.launch(e, env);
          }
        },
        (err: unknown) => {
          // PostgreSQL away: nothing is claimed; the periodic pump tries again (logged once per outage).
          if (!this.claimFailing) this.log.error({ err }, 'cannot claim due messages; will try again');
          this.claimFailing = true;
        },
      )
      .finally(() => {
        this.claiming = false;
        if (this.claimAgain) {
          this.claimAgain = false;
          this.schedulePump();
        }
      });
  }

  private launch(e: Entry, claimed?: QueueEnvelope): void {
    e.running = true;
    const claims = claimed ? this.spool.claims : undefined;
    const p = this.attempt(e, claimed)
      .catch((err: unknown) => {
        // attempt() handles what it expects; this is a bug or a disk failure. Retry later rather than spin.
        this.log.error({ queueId: e.id, err }, 'queue attempt failed');
        e.due = Date.now() + this.config.retryMinSeconds * 1000;
        // A claim is given back with that delay (if PostgreSQL is what failed, its lease runs out instead).
        if (claims) return claims.release(e.id, new Date(e.due).toISOString()).catch(() => undefined);
      })
      .finally(() => {
        this.inFlight.delete(p);
        if (claims) this.entries.delete(e.id);
        e.running = false;
        e.touched = ++this.seq;
        if (e.flushAgain) {
          e.flushAgain = false;
          e.due = Date.now();
        }
        this.schedulePump();
      });
    this.inFlight.add(p);
  }

  /** The message left the queue without us (CLI delete), or its files are gone. */
  private vanished(e: Entry): void {
    this.entries.delete(e.id);
    if (!this.spool.claims) this.gone.set(e.id, ++this.seq);
    this.log.info({ queueId: e.id }, 'message left the queue (deleted)');
    this.emit('finished', { id: e.id, reason: 'vanished' });
  }

  private async attempt(e: Entry, claimed?: QueueEnvelope): Promise<void> {
    const id = e.id;
    const log = this.log.child({ queueId: id });
    const env = claimed ?? await this.spool.readForAttempt(id).catch((err: unknown) => {
      log.error({ err }, 'cannot read the envelope; will try again');
      e.due = Date.now() + this.config.retryMaxSeconds * 1000;
      return undefined;
    });
    if (env === undefined) return;
    if (env === null) return this.vanished(e);
    const started = Date.now();
    const onDisk = time(env.nextAttemptAt, started);
    if (!claimed && onDisk > started) {
      e.due = onDisk; // rescheduled elsewhere (another process's update): the file wins
      return;
    }

    let message: Buffer | undefined;
    if (env.recipients.some((r) => r.state === 'pending')) {
      try {
        message = await this.spool.readMessage(id, env.spoolPrefix);
      } catch (err) {
        if (err instanceof NotQueuedError) {
          await this.spool.remove(id); // a stray envelope from a delete that raced an update
          return this.vanished(e);
        }
        throw err;
      }
      const before = env.recipients;
      // The agent gets a copy: one that throws half-way must not leave half-changed states behind.
      const input = structuredClone(env);
      env.attempts += 1;
      env.lastAttemptAt = new Date(started).toISOString();
      try {
        const result = await this.agent.deliver(input, message, this.spool.spooledFile(env));
        if (!Array.isArray(result)) throw new TypeError('the delivery agent returned no recipient list');
        env.recipients = result;
      } catch (err) {
        log.error({ err }, 'delivery agent failed: every pending recipient is deferred');
        const reason = `451 4.3.0 delivery failed: ${oneLine((err as Error)?.message ?? String(err))}`;
        env.recipients = before.map((r) =>
          r.state === 'pending' ? { ...r, attempts: r.attempts + 1, lastResult: reason, status: '4.3.0' } : r,
        );
        for (const r of env.recipients) if (r.state === 'pending') this.trace?.record({ queueId: id, type: 'deferred', rcpt: r.address, detail: { reply: reason } });
      }
      this.logOutcome(log, before, env.recipients, started);
    }

    // Expiry is decided after an attempt, so a message is always tried once more after a long outage.
    const pending = env.recipients.filter((r) => r.state === 'pending');
    const arrived = time(env.receivedAt, started);
    const lifetime = this.lifetime();
    if (pending.length && Date.now() - arrived >= lifetime) {
      for (const r of pending) {
        r.state = 'failed';
        r.status = '4.4.7'; // RFC 3463: delivery time expired
        log.info({ to: r.address, status: '4.4.7', result: r.lastResult }, 'expired');
        this.trace?.record({ queueId: id, type: 'expired', rcpt: r.address, detail: { status: '4.4.7', lastReply: r.lastResult } });
      }
      pending.length = 0;
    }

    if (pending.length) {
      const now = Date.now();
      // The last attempt is at the end of the lifetime, not a full backoff past it.
      const next = e.flushAgain ? now : Math.max(now, Math.min(now + retryDelayMs(env.attempts, this.config), arrived + lifetime));
      env.nextAttemptAt = new Date(next).toISOString();
      if (!(await this.spool.update(env))) return this.vanished(e);
      e.due = next;
      this.emit('attempted', { id, envelope: env });
      return;
    }
    await this.finish(e, env, message, log);
  }

  /** Every recipient is final: report the failures to the sender, then take the message out of the queue. */
  private async finish(e: Entry, env: QueueEnvelope, message: Buffer | undefined, log: Logger): Promise<void> {
    const failed = failedRecipients(env);
    let dsnId: string | undefined;
    if (failed.length && env.from === '') {
      // RFC 5321 §6.1, RFC 3464 §2: never report on a message with the null reverse-path.
      log.info({ failed: failed.length }, 'no DSN: the sender is <>');
    } else if (failed.length) {
      try {
        message ??= await this.spool.readMessage(env.id, env.spoolPrefix);
      } catch (err) {
        if (err instanceof NotQueuedError) return this.vanished(e);
        throw err;
      }
      const dsn = buildDsn({ hostname: this.hostname, envelope: env, recipients: failed, message });
      try {
        dsnId = await this.spool.enqueue(dsn, {
          from: '',
          recipients: [{ address: env.from, origin: 'rcpt', state: 'pending', attempts: 0 }],
          client: { address: '127.0.0.1', listener: 'local' },
        });
      } catch (err) {
        // The disk is failing: keep the message (states written) and try the report again later.
        log.error({ err }, 'cannot queue the DSN; will try again');
        const next = Date.now() + retryDelayMs(env.attempts, this.config);
        env.nextAttemptAt = new Date(next).toISOString();
        if (!(await this.spool.update(env).catch(() => true))) return this.vanished(e);
        e.due = next;
        return;
      }
      log.info({ dsnId, to: env.from, failed: failed.length }, 'sender non-delivery notification');
      this.trace?.record({ queueId: env.id, type: 'bounced', detail: { dsnId, to: env.from, failed: failed.map((r) => r.address) } });
    }
    // Lazily durable (Spool.remove): a crash in the next second may deliver the message again, never lose it.
    await this.spool.remove(env.id, undefined, { lazy: true });
    this.trace?.record({
      queueId: env.id,
      type: 'completed',
      detail: { delivered: env.recipients.filter((r) => r.state === 'delivered').length, failed: failed.length },
    });
    this.entries.delete(env.id);
    if (!this.spool.claims) this.gone.set(env.id, ++this.seq);
    this.emit('finished', { id: env.id, reason: 'done', envelope: env, dsnId });
  }

  /** One line per recipient whose state this attempt decided (Postfix's "status=sent|deferred|bounced"). */
  private logOutcome(log: Logger, before: QueueRecipient[], after: QueueRecipient[], started: number): void {
    const wasFinal = new Set(before.filter((r) => r.state !== 'pending').map(recipientKey));
    const delay = (Date.now() - started) / 1000;
    for (const r of after) {
      if (wasFinal.has(recipientKey(r))) continue;
      const status = r.state === 'delivered' ? 'sent' : r.state === 'failed' ? 'bounced' : 'deferred';
      log[r.state === 'delivered' ? 'info' : 'warn'](
        {
          to: r.address,
          ...(r.parent ? { origTo: r.parent } : {}),
          relay: r.remoteMta,
          delay,
          dsn: r.status,
          status,
          result: r.lastResult,
        },
        status,
      );
    }
  }
}
