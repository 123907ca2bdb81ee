/**
 * The message trace store: `${dataDir}/trace.db`, its own SQLite file (not settings.db: a busy mail server writes
 * many events a second, and the settings' readers and writers must not wait behind them), in WAL mode.
 *
 * Three tables:
 *   messages    one row per queue id: Message-ID, sender, first and last event time (indexed on each)
 *   recipients  (address, queue id): the envelope recipients and every address reached by expansion
 *   events      the path: (queue id, seq) with the time, the type, the recipient and the rest as JSON
 * A query finds messages by the first two (all indexed) and then reads their events by queue id, so it costs the
 * same over a thousand events as over millions (test/bench/trace.bench.ts measures it).
 *
 * The hot path: record() only pushes the event into an array; the array is written in one transaction `batchMs`
 * (50 ms) after its first event, or at once past MAX_BATCH events, so the many events of one busy second share a
 * few commits. Flushing at the next turn of the event loop instead made a transaction of one or two events for
 * each step of a message (received, queued, delivered, completed: four commits per message), 1–1.5 ms of the event
 * loop per message on this machine (issue 11). The database
 * runs with synchronous=NORMAL: in WAL mode a commit is then not fsynced (only checkpoints are). That is on
 * purpose. Mail is durable — the SMTP 250 waits for the queue's own fsyncs (DESIGN.md §3) — but a trace event may
 * be lost in a crash (the events of the last moments before a power cut): the trace is a diagnostic record, and an
 * fsync per SMTP message on top of the queue's would halve what the server can accept (DESIGN.md §6 "fsync is the
 * budget"). For the same reason a trace that cannot be written (disk full, database locked by another process for
 * too long) drops the batch with a warning in the log and never fails, delays or refuses mail.
 *
 * Several processes may write (the server, and `postern queue delete` recording who deleted what); SQLite's lock
 * and the busy timeout serialise them. Queries flush this process's pending events first.
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../lib/logger.js';
import { silentLogger } from '../lib/logger.js';
import type { SqliteDatabase, Statement } from '../settings/db.js';
import {
  DEFAULT_TRACE_LIMIT,
  MAX_TRACE_LIMIT,
  type TraceEvent,
  type TraceEventType,
  type TracePath,
  type TraceQuery,
  type TraceRecorder,
} from './types.js';
import type { WriterData, WriterMessage } from './writer-worker.js';

export const TRACE_DB_FILE = 'trace.db';

/** Bumped when the tables change; a database of another version is refused rather than misread. */
const SCHEMA_VERSION = 1;

/** Below this many messages with an event since `since`, they are found by last_at and sorted (see query()). */
const FEW = 5000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS messages (
  queue_id   TEXT PRIMARY KEY,
  message_id TEXT,
  sender     TEXT,
  first_at   INTEGER NOT NULL,
  last_at    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_message_id ON messages (message_id);
CREATE INDEX IF NOT EXISTS messages_sender ON messages (sender, first_at);
CREATE INDEX IF NOT EXISTS messages_last_at ON messages (last_at);
CREATE INDEX IF NOT EXISTS messages_first_at ON messages (first_at);
CREATE TABLE IF NOT EXISTS recipients (
  address  TEXT NOT NULL,
  queue_id TEXT NOT NULL,
  PRIMARY KEY (address, queue_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS recipients_queue_id ON recipients (queue_id);
CREATE TABLE IF NOT EXISTS events (
  seq      INTEGER PRIMARY KEY,
  queue_id TEXT NOT NULL,
  at       INTEGER NOT NULL,
  type     TEXT NOT NULL,
  rcpt     TEXT,
  detail   TEXT
);
CREATE INDEX IF NOT EXISTS events_queue_id ON events (queue_id, seq);
`;

type DatabaseConstructor = new (filename: string, options?: { timeout?: number; readonly?: boolean; fileMustExist?: boolean }) => SqliteDatabase;
const require = createRequire(import.meta.url);

/** Message-IDs are stored and searched without the angle brackets (RFC 5322 §3.6.4 msg-id). */
export function normalizeMessageId(id: string): string {
  return id.trim().replace(/^<+/, '').replace(/>+$/, '').trim();
}

export interface TraceStoreOptions {
  log?: Logger;
  /** Busy timeout in milliseconds (default 2000): how long a write waits for another process's transaction. */
  timeout?: number;
  /** The clock (default Date.now), for tests of retention. */
  now?: () => number;
  /** How long events wait to share a transaction (default 50 ms; queries and close() flush first). */
  batchMs?: number;
  /**
   * Where the batches are written: 'inline' (default) on the calling thread; 'worker' in a thread of its own
   * (src/trace/writer-worker.ts), started at the first batch of WORKER_MIN_BATCH events or more — the server's
   * choice, so that its event loop neither runs the inserts nor waits on a WAL checkpoint's fsync. Queries still
   * see every event recorded before them: they wait until the thread has written what was posted.
   */
  writer?: 'inline' | 'worker';
}

/**
 * Batches smaller than this are written inline even with `writer: 'worker'` until the thread exists: a quiet
 * server (a few messages a minute) never pays for the thread's heap (~10 MB of RSS, counted in issue 11's
 * 10,000-IDLE budget), a busy one moves its writes off the loop from its first busy moment on.
 */
export const WORKER_MIN_BATCH = 32;

/** How long a query or close() waits for the writer thread before reading without its last batches. */
const DRAIN_MS = 5000;

/** Pending events past which a batch is written without waiting for batchMs. */
const MAX_BATCH = 1000;

export interface TraceStats {
  /** Events written. */
  written: number;
  /** Events dropped because the database could not be written. */
  dropped: number;
  /** Transactions that wrote them. */
  batches: number;
}

export interface MessageRow {
  queue_id: string;
  message_id: string | null;
  sender: string | null;
  first_at: number;
  last_at: number;
}

export interface EventRow {
  queue_id: string;
  at: number;
  type: TraceEventType;
  rcpt: string | null;
  detail: string | null;
}

export class TraceStore implements TraceRecorder {
  readonly file: string;
  /** What this thread wrote itself (the writer thread's share is in `counters`). */
  private readonly own: TraceStats = { written: 0, dropped: 0, batches: 0 };
  private readonly db: SqliteDatabase;
  private readonly log: Logger;
  private readonly now: () => number;
  private pending: TraceEvent[] = [];
  private scheduled: NodeJS.Timeout | undefined;
  private readonly batchMs: number;
  private readonly timeout: number;
  private readonly writer: 'inline' | 'worker';
  private worker: Worker | undefined;
  /** Shared with the writer thread: [0] last batch written, [1] events written, [2] dropped, [3] batches. */
  private counters: Int32Array | undefined;
  /** Sequence number of the last batch posted to the writer thread. */
  private posted = 0;
  private closed = false;
  private readonly upsertMessage: Statement;
  private readonly insertRecipient: Statement;
  private readonly insertEvent: Statement;
  private readonly writeBatch: (events: TraceEvent[]) => void;

  constructor(file: string, opts: TraceStoreOptions = {}) {
    this.file = file;
    this.log = (opts.log ?? silentLogger).child({ component: 'trace' });
    this.now = opts.now ?? Date.now;
    this.batchMs = opts.batchMs ?? 50;
    this.timeout = opts.timeout ?? 2000;
    this.writer = opts.writer ?? 'inline';
    const created = !existsSync(file);
    const Database = require('better-sqlite3') as DatabaseConstructor;
    this.db = new Database(file, { timeout: this.timeout });
    try {
      // Addresses and client details are personal data: readable by the server's user only, like settings.db.
      if (created) chmodSync(file, 0o600);
      this.db.pragma('journal_mode = WAL');
      // No fsync per commit (see the file comment): a trace event may be lost in a crash, mail may not.
      this.db.pragma('synchronous = NORMAL');
      const version = this.db.pragma('user_version', { simple: true }) as number;
      if (version !== 0 && version !== SCHEMA_VERSION) {
        throw new Error(`${file}: trace schema version ${version}, this postern knows ${SCHEMA_VERSION}`);
      }
      this.db.exec(SCHEMA);
      if (version === 0) this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
    } catch (err) {
      this.db.close();
      throw err;
    }
    this.upsertMessage = this.db.prepare(
      `INSERT INTO messages (queue_id, message_id, sender, first_at, last_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (queue_id) DO UPDATE SET
         message_id = coalesce(excluded.message_id, message_id),
         sender = coalesce(excluded.sender, sender),
         first_at = min(first_at, excluded.first_at),
         last_at = max(last_at, excluded.last_at)`,
    );
    this.insertRecipient = this.db.prepare('INSERT OR IGNORE INTO recipients (address, queue_id) VALUES (?, ?)');
    this.insertEvent = this.db.prepare('INSERT INTO events (queue_id, at, type, rcpt, detail) VALUES (?, ?, ?, ?, ?)');
    this.writeBatch = this.db.transaction((events: TraceEvent[]) => {
      // One upsert per message per batch (the several events of one message in one tick share it).
      const messages = new Map<string, { messageId: string | null; from: string | null; first: number; last: number }>();
      for (const e of events) {
        const at = e.at ?? this.now();
        const m = messages.get(e.queueId);
        const messageId = e.messageId ? normalizeMessageId(e.messageId) || null : null;
        const from = e.from === undefined ? null : e.from.toLowerCase();
        if (!m) messages.set(e.queueId, { messageId, from, first: at, last: at });
        else {
          m.messageId ??= messageId;
          m.from ??= from;
          m.first = Math.min(m.first, at);
          m.last = Math.max(m.last, at);
        }
        for (const r of e.recipients ?? []) this.insertRecipient.run(r.toLowerCase(), e.queueId);
        if (e.rcpt) this.insertRecipient.run(e.rcpt.toLowerCase(), e.queueId);
        const detail = e.detail && Object.keys(e.detail).length ? JSON.stringify(e.detail) : null;
        this.insertEvent.run(e.queueId, at, e.type, e.rcpt ?? null, detail);
      }
      for (const [id, m] of messages) this.upsertMessage.run(id, m.messageId, m.from, m.first, m.last);
    });
  }

  /** Queues one event for the next batch. Cheap, synchronous, never throws. */
  record(event: TraceEvent): void {
    if (this.closed) return;
    this.pending.push(event.at === undefined ? { ...event, at: this.now() } : event);
    if (this.pending.length >= MAX_BATCH) return this.flush();
    if (this.scheduled === undefined) {
      this.scheduled = setTimeout(() => this.flush(), this.batchMs);
      // A pending batch does not keep a process alive: close() writes it.
      this.scheduled.unref();
    }
  }

  /** Events written, dropped, and the transactions that wrote them (this thread's and the writer thread's). */
  get stats(): TraceStats {
    const c = this.counters;
    if (!c) return { ...this.own };
    return { written: this.own.written + Atomics.load(c, 1), dropped: this.own.dropped + Atomics.load(c, 2), batches: this.own.batches + Atomics.load(c, 3) };
  }

  /**
   * Writes the pending events now, in one transaction: here, or (writer 'worker') handed to the writer thread,
   * which writes them in the order posted; drain() waits for that.
   */
  flush(): void {
    if (this.scheduled) clearTimeout(this.scheduled);
    this.scheduled = undefined;
    if (this.pending.length === 0 || !this.db.open) return;
    const batch = this.pending;
    this.pending = [];
    if (this.writer === 'worker' && !this.closed && (this.worker || batch.length >= WORKER_MIN_BATCH)) {
      const w = this.worker ?? this.startWorker();
      if (w) {
        w.postMessage({ seq: ++this.posted, events: batch } satisfies WriterMessage);
        return;
      }
    }
    const err = this.writeNow(batch);
    if (err) this.log.warn({ err, events: batch.length }, 'trace events not written (mail is not affected)');
  }

  /** Writes one batch in one transaction on this thread; the error when it could not be written (then dropped). */
  writeNow(batch: TraceEvent[]): Error | undefined {
    try {
      this.writeBatch(batch);
      this.own.written += batch.length;
      this.own.batches++;
      return undefined;
    } catch (err) {
      this.own.dropped += batch.length;
      return err as Error;
    }
  }

  /** Flushes, then waits (blocking, at most DRAIN_MS) until the writer thread has committed every batch posted. */
  private drain(): void {
    this.flush();
    const c = this.counters;
    if (!c || !this.worker) return;
    const deadline = Date.now() + DRAIN_MS;
    for (let done = Atomics.load(c, 0); done < this.posted; done = Atomics.load(c, 0)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        this.log.warn({ posted: this.posted, written: done }, 'trace writer thread is behind; reading without its last batches');
        return;
      }
      Atomics.wait(c, 0, done, left);
    }
  }

  private startWorker(): Worker | undefined {
    const counters = new SharedArrayBuffer(4 * Int32Array.BYTES_PER_ELEMENT);
    const workerData: WriterData = { file: this.file, timeout: this.timeout, counters };
    let w: Worker;
    try {
      if (import.meta.url.endsWith('.ts')) {
        // Running the sources through tsx (development, tests): Node 20 does not carry the main thread's module
        // hooks into a worker, so the thread registers tsx itself before loading its TypeScript file.
        const tsx = import.meta.resolve('tsx/esm/api');
        const file = new URL('./writer-worker.ts', import.meta.url).href;
        w = new Worker(`import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(file)}); });`, { eval: true, workerData });
      } else {
        w = new Worker(new URL('./writer-worker.js', import.meta.url), { workerData });
      }
    } catch (err) {
      this.log.warn({ err }, 'trace writer thread not started; writing on the event loop');
      return undefined;
    }
    // Never what keeps a process alive: close() drains it first.
    w.unref();
    w.on('message', (m: { warn?: string; events?: number }) => {
      if (m.warn) this.log.warn({ err: m.warn, events: m.events }, 'trace events not written (mail is not affected)');
    });
    const gone = (err?: unknown) => {
      if (this.worker !== w) return;
      this.worker = undefined;
      if (!this.closed) this.log.warn({ err }, 'trace writer thread ended; writing on the event loop');
    };
    w.on('error', gone);
    w.on('exit', () => gone());
    this.worker = w;
    this.counters = new Int32Array(counters);
    return w;
  }

  /** The messages matching every given criterion, the last received first, each with its whole path. */
  query(q: TraceQuery = {}): TracePath[] {
    this.drain();
    const where: string[] = [];
    const params: unknown[] = [];
    if (q.queueId !== undefined) {
      where.push('m.queue_id = ?');
      params.push(q.queueId.toUpperCase());
    }
    if (q.messageId !== undefined) {
      where.push('m.message_id = ?');
      params.push(normalizeMessageId(q.messageId));
    }
    if (q.from !== undefined) {
      where.push('m.sender = ?');
      params.push(q.from.toLowerCase());
    }
    if (q.to !== undefined) {
      where.push('m.queue_id IN (SELECT queue_id FROM recipients WHERE address = ?)');
      params.push(q.to.toLowerCase());
    }
    if (q.since !== undefined) {
      where.push('m.last_at >= ?');
      params.push(q.since);
    }
    if (q.until !== undefined) {
      where.push('m.first_at <= ?');
      params.push(q.until);
    }
    const limit = Math.max(1, Math.min(MAX_TRACE_LIMIT, Math.floor(q.limit ?? DEFAULT_TRACE_LIMIT)));
    // Newest first by arrival: the first_at index (alone, or after the sender in messages_sender) gives the order,
    // so a query reads its `limit` rows and stops, whatever the size of the store; rowid breaks ties the same way.
    // One case walks far: a recent `since` alone (few messages that recent, and everything older is read to find
    // that nothing else matches). Then the few are taken by the last_at index and sorted, when they are few.
    let order = 'm.first_at DESC, m.rowid DESC';
    if (q.since !== undefined && q.queueId === undefined && q.messageId === undefined && q.from === undefined && q.to === undefined) {
      const few = (this.db.prepare('SELECT count(*) FROM (SELECT 1 FROM messages WHERE last_at >= ? LIMIT ?)').pluck().get(q.since, FEW) as number) < FEW;
      if (few) {
        where.push('m.rowid IN (SELECT rowid FROM messages INDEXED BY messages_last_at WHERE last_at >= ?)');
        params.push(q.since);
        order = '+m.first_at DESC, m.rowid DESC';
      }
    }
    const sql = `SELECT m.queue_id, m.message_id, m.sender, m.first_at, m.last_at FROM messages m
      ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY ${order} LIMIT ${limit}`;
    const rows = this.db.prepare(sql).all(...params) as MessageRow[];
    if (rows.length === 0) return [];
    const ids = rows.map((m) => m.queue_id);
    const marks = ids.map(() => '?').join(',');
    // Two reads for the whole page (limit ≤ 1000 stays under SQLite's 32766 bound parameters).
    const events = this.db.prepare(`SELECT queue_id, at, type, rcpt, detail FROM events WHERE queue_id IN (${marks}) ORDER BY seq`).all(...ids) as EventRow[];
    const rcpts = this.db.prepare(`SELECT queue_id, address FROM recipients WHERE queue_id IN (${marks})`).all(...ids) as { queue_id: string; address: string }[];
    return assemblePaths(rows, rcpts, events);
  }

  /** How many events and messages the store holds (for tests, the bench and the log). */
  count(): { events: number; messages: number } {
    this.drain();
    return {
      events: this.db.prepare('SELECT count(*) FROM events').pluck().get() as number,
      messages: this.db.prepare('SELECT count(*) FROM messages').pluck().get() as number,
    };
  }

  /**
   * Deletes the messages whose last event is older than `before` (epoch ms), with their events and recipients:
   * whole paths, never the first half of one. In chunks of `chunk` messages, one transaction each, so the server's
   * event loop (better-sqlite3 is synchronous) and other writers are held up for a short moment at a time.
   * Returns the number of messages and events removed.
   */
  async deleteBefore(before: number, chunk = 2000, stopped: () => boolean = () => false): Promise<{ messages: number; events: number }> {
    this.drain();
    const pick = this.db.prepare('SELECT queue_id FROM messages WHERE last_at < ? LIMIT ?').pluck();
    const delEvents = this.db.prepare('DELETE FROM events WHERE queue_id = ?');
    const delRecipients = this.db.prepare('DELETE FROM recipients WHERE queue_id = ?');
    const delMessage = this.db.prepare('DELETE FROM messages WHERE queue_id = ?');
    const removed = { messages: 0, events: 0 };
    const step = this.db.transaction((ids: string[]) => {
      for (const id of ids) {
        removed.events += delEvents.run(id).changes;
        delRecipients.run(id);
        removed.messages += delMessage.run(id).changes;
      }
    });
    while (!stopped() && this.db.open) {
      const ids = pick.all(before, chunk) as string[];
      if (ids.length === 0) break;
      step(ids);
      if (ids.length < chunk) break;
      await new Promise((r) => setImmediate(r));
    }
    return removed;
  }

  /** Writes what is pending and closes the database; later record() calls are ignored. */
  close(): void {
    if (this.closed) return;
    this.drain();
    this.closed = true;
    this.worker?.postMessage({ close: true } satisfies WriterMessage);
    this.db.close();
  }
}

/** Opens `${dataDir}/trace.db`, creating dataDir (0700) when it does not exist yet. */
export function openTraceStore(dataDir: string, opts: TraceStoreOptions = {}): TraceStore {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return new TraceStore(join(dataDir, TRACE_DB_FILE), opts);
}

/** The paths of a page of messages, in the messages' order, events in record order, recipients sorted. */
export function assemblePaths(
  messages: MessageRow[],
  recipients: { queue_id: string; address: string }[],
  // `detail` is JSON text from SQLite, already parsed from PostgreSQL's jsonb.
  events: (Omit<EventRow, 'detail'> & { detail: string | Record<string, unknown> | null })[],
): TracePath[] {
  const paths = new Map<string, TracePath>(
    messages.map((m) => [
      m.queue_id,
      {
        queueId: m.queue_id,
        messageId: m.message_id,
        from: m.sender,
        recipients: [],
        firstAt: new Date(m.first_at).toISOString(),
        lastAt: new Date(m.last_at).toISOString(),
        events: [],
      },
    ]),
  );
  for (const r of recipients) paths.get(r.queue_id)!.recipients.push(r.address);
  for (const e of events) {
    const detail = typeof e.detail === 'string' ? (JSON.parse(e.detail) as Record<string, unknown>) : (e.detail ?? {});
    paths.get(e.queue_id)!.events.push({ at: new Date(e.at).toISOString(), type: e.type, ...(e.rcpt ? { rcpt: e.rcpt } : {}), detail });
  }
  for (const p of paths.values()) p.recipients.sort();
  return [...paths.values()];
}
