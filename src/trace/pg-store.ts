/**
 * The message trace on PostgreSQL (issue 16, `state.type: postgres`): the same store as trace.db (store.ts) —
 * record() into memory, one statement (one transaction) per batch `batchMs` (50 ms) after the first event, the same queries and
 * retention — in the tables of schema/migrations-postgres/030-trace.sql, so that a search on any node finds the
 * paths of messages every node received, queued and delivered.
 *
 * PostgreSQL down, decided: mail never waits for or fails because of the trace (the SMTP 250 waits for the
 * queue's fsyncs, not for this; store.ts says why the trace is a diagnostic record). A batch that cannot be
 * written is kept and tried again with the next one, up to MAX_HELD events; past that the oldest are dropped,
 * counted in `stats.dropped` and logged once per outage. So an
 * outage of a few seconds to minutes loses nothing; a long one under load loses the oldest events, never mail.
 * A query while PostgreSQL is down is a TempFailure (the admin API answers 503, the CLI exits 75).
 */
import type { Logger } from '../lib/logger.js';
import { silentLogger } from '../lib/logger.js';
import { prepared, type PgState } from '../state/postgres/pool.js';
import { assemblePaths, normalizeMessageId, type TraceStats } from './store.js';
import { DEFAULT_TRACE_LIMIT, MAX_TRACE_LIMIT, type TraceEvent, type TraceEventType, type TracePath, type TraceQuery, type TraceRecorder } from './types.js';

/** Pending events past which a batch is written without waiting for batchMs (as store.ts). */
const MAX_BATCH = 1000;
/** Events kept in memory while PostgreSQL cannot be written; past this the oldest are dropped. */
export const MAX_HELD = 50_000;
/** Pause before writing again after a failed batch. */
const RETRY_MS = 1000;

export interface PgTraceStoreOptions {
  log?: Logger;
  now?: () => number;
  batchMs?: number;
  /** Events held while PostgreSQL is down (default MAX_HELD). */
  maxHeld?: number;
}

interface MessageRow {
  queue_id: string;
  message_id: string | null;
  sender: string | null;
  first_at: number;
  last_at: number;
}

export class PgTraceStore implements TraceRecorder {
  readonly stats: TraceStats = { written: 0, dropped: 0, batches: 0 };
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly batchMs: number;
  private readonly maxHeld: number;
  private pending: TraceEvent[] = [];
  private scheduled: NodeJS.Timeout | undefined;
  /** The write in progress: batches go one at a time, in order (a retried batch before newer events). */
  private writing: Promise<void> | undefined;
  private closed = false;
  private failing = false;
  /** The drop of this outage was logged (once per outage, not per batch). */
  private dropLogged = false;

  constructor(
    private readonly pg: Pick<PgState, 'query' | 'transaction'>,
    opts: PgTraceStoreOptions = {},
  ) {
    this.log = (opts.log ?? silentLogger).child({ component: 'trace' });
    this.now = opts.now ?? Date.now;
    this.batchMs = opts.batchMs ?? 50;
    this.maxHeld = opts.maxHeld ?? MAX_HELD;
  }

  /** Queues one event for the next batch. Cheap, synchronous, never throws. */
  record(event: TraceEvent): void {
    if (this.closed) return;
    this.pending.push(event.at === undefined ? { ...event, at: this.now() } : event);
    this.trim();
    if (this.pending.length >= MAX_BATCH && !this.writing && !this.failing) return void this.flush();
    this.schedule(this.failing ? RETRY_MS : this.batchMs);
  }

  private schedule(ms: number): void {
    if (this.scheduled !== undefined || this.closed) return;
    this.scheduled = setTimeout(() => void this.flush(), ms);
    this.scheduled.unref();
  }

  /** Writes what is pending; resolves when it is written or kept for the next try (never rejects). */
  flush(): Promise<void> {
    if (this.scheduled) clearTimeout(this.scheduled);
    this.scheduled = undefined;
    // One write at a time, in order: a flush during a write waits for it, then writes what came meanwhile.
    if (this.writing) return this.writing.then(() => (this.pending.length && !this.failing ? this.flush() : undefined));
    if (this.pending.length === 0) return Promise.resolve();
    const batch = this.pending.splice(0, MAX_BATCH);
    this.writing = this.write(batch).then(
      () => {
        this.writing = undefined;
        this.stats.written += batch.length;
        this.stats.batches++;
        if (this.failing) {
          this.failing = false;
          this.dropLogged = false;
          this.log.info({ held: this.pending.length }, 'trace events written again');
        }
        if (this.pending.length) this.schedule(this.pending.length >= MAX_BATCH ? 0 : this.batchMs);
      },
      (err: unknown) => {
        this.writing = undefined;
        // Kept, in front of what came meanwhile; the oldest go past maxHeld.
        this.pending.unshift(...batch);
        this.trim();
        if (!this.failing) {
          this.failing = true;
          this.log.warn({ err: (err as Error).message, held: this.pending.length }, 'trace events not written to PostgreSQL, kept to retry (mail is not affected)');
        }
        // Retried after a pause, not at once: PostgreSQL is down or refusing.
        this.schedule(Math.max(this.batchMs, RETRY_MS));
      },
    );
    return this.writing;
  }

  private trim(): void {
    if (this.pending.length <= this.maxHeld) return;
    const over = this.pending.length - this.maxHeld;
    this.pending.splice(0, over);
    if (!this.dropLogged) this.log.warn({ dropped: over }, 'trace events dropped: PostgreSQL unwritable for too long (mail is not affected)');
    this.dropLogged = true;
    this.stats.dropped += over;
  }

  private async write(events: TraceEvent[]): Promise<void> {
    const messages = new Map<string, { messageId: string | null; from: string | null; first: number; last: number }>();
    const rq: string[] = [];
    const ra: string[] = [];
    const eq: string[] = [];
    const eat: number[] = [];
    const etype: string[] = [];
    const ercpt: (string | null)[] = [];
    const edetail: (string | null)[] = [];
    for (const e of events) {
      const at = e.at ?? this.now();
      const messageId = e.messageId ? normalizeMessageId(e.messageId) || null : null;
      const from = e.from === undefined ? null : e.from.toLowerCase();
      const m = messages.get(e.queueId);
      if (!m) messages.set(e.queueId, { messageId, from, first: at, last: at });
      else {
        m.messageId ??= messageId;
        m.from ??= from;
        m.first = Math.min(m.first, at);
        m.last = Math.max(m.last, at);
      }
      for (const r of [...(e.recipients ?? []), ...(e.rcpt ? [e.rcpt] : [])]) {
        rq.push(e.queueId);
        ra.push(r.toLowerCase());
      }
      eq.push(e.queueId);
      eat.push(at);
      etype.push(e.type);
      ercpt.push(e.rcpt ?? null);
      edetail.push(e.detail && Object.keys(e.detail).length ? JSON.stringify(e.detail) : null);
    }
    // Sorted by queue id: two nodes upserting the same messages lock their rows in one order (no deadlock).
    const ids = [...messages.keys()].sort();
    // One statement (writable CTEs): the three inserts in one round trip and one commit, where a transaction of
    // them cost five (BEGIN, three INSERTs, COMMIT), each a wait on a loaded machine. Still all or nothing: one
    // statement is one transaction. The CTEs of one statement text run in one order on every node, and the rows
    // within each are sorted, so two nodes writing the same messages still lock them in one order.
    await this.pg.query(
      prepared(`WITH ev AS (
         INSERT INTO trace_events (queue_id, at, type, rcpt, detail)
         SELECT q, a, ty, r, d FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::jsonb[]) WITH ORDINALITY AS t(q, a, ty, r, d, n)
         ORDER BY n
       ), rc AS (
         INSERT INTO trace_recipients (address, queue_id) SELECT DISTINCT a, q FROM unnest($6::text[], $7::text[]) AS t(a, q)
         ORDER BY 1, 2 ON CONFLICT DO NOTHING
       )
       INSERT INTO trace_messages (queue_id, message_id, sender, first_at, last_at)
       SELECT * FROM unnest($8::text[], $9::text[], $10::text[], $11::bigint[], $12::bigint[])
       ON CONFLICT (queue_id) DO UPDATE SET
         message_id = coalesce(trace_messages.message_id, excluded.message_id),
         sender = coalesce(trace_messages.sender, excluded.sender),
         first_at = least(trace_messages.first_at, excluded.first_at),
         last_at = greatest(trace_messages.last_at, excluded.last_at)`),
      [
        eq, eat, etype, ercpt, edetail, ra, rq,
        ids, ids.map((i) => messages.get(i)!.messageId), ids.map((i) => messages.get(i)!.from), ids.map((i) => messages.get(i)!.first), ids.map((i) => messages.get(i)!.last),
      ],
    );
  }

  /** The messages matching every given criterion, the last received first, each with its whole path. TempFailure. */
  async query(q: TraceQuery = {}): Promise<TracePath[]> {
    await this.flush();
    const where: string[] = [];
    const params: unknown[] = [];
    const p = (v: unknown) => `$${params.push(v)}`;
    if (q.queueId !== undefined) where.push(`m.queue_id = ${p(q.queueId.toUpperCase())}`);
    if (q.messageId !== undefined) where.push(`m.message_id = ${p(normalizeMessageId(q.messageId))}`);
    if (q.from !== undefined) where.push(`m.sender = ${p(q.from.toLowerCase())}`);
    if (q.to !== undefined) where.push(`m.queue_id IN (SELECT queue_id FROM trace_recipients WHERE address = ${p(q.to.toLowerCase())})`);
    if (q.since !== undefined) where.push(`m.last_at >= ${p(q.since)}`);
    if (q.until !== undefined) where.push(`m.first_at <= ${p(q.until)}`);
    const limit = Math.max(1, Math.min(MAX_TRACE_LIMIT, Math.floor(q.limit ?? DEFAULT_TRACE_LIMIT)));
    const rows = (
      await this.pg.query<MessageRow>(
        `SELECT m.queue_id, m.message_id, m.sender, m.first_at, m.last_at FROM trace_messages m
         ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY m.first_at DESC, m.queue_id DESC LIMIT ${limit}`,
        params,
      )
    ).rows;
    if (rows.length === 0) return [];
    const ids = rows.map((m) => m.queue_id);
    const [events, rcpts] = await Promise.all([
      this.pg.query<{ queue_id: string; at: number; type: TraceEventType; rcpt: string | null; detail: Record<string, unknown> | null }>(
        'SELECT queue_id, at, type, rcpt, detail FROM trace_events WHERE queue_id = ANY($1) ORDER BY seq',
        [ids],
      ),
      this.pg.query<{ queue_id: string; address: string }>('SELECT queue_id, address FROM trace_recipients WHERE queue_id = ANY($1)', [ids]),
    ]);
    return assemblePaths(rows, rcpts.rows, events.rows);
  }

  async count(): Promise<{ events: number; messages: number }> {
    await this.flush();
    const r = await this.pg.query<{ events: number; messages: number }>(
      'SELECT (SELECT count(*) FROM trace_events) AS events, (SELECT count(*) FROM trace_messages) AS messages',
    );
    return r.rows[0]!;
  }

  /**
   * Deletes the paths whose last event is older than `before`, in chunks of one transaction each (store.ts). With
   * state postgres the server runs it through the cluster's run-once gate: one node per interval.
   */
  async deleteBefore(before: number, chunk = 2000, stopped: () => boolean = () => false): Promise<{ messages: number; events: number }> {
    await this.flush();
    const removed = { messages: 0, events: 0 };
    while (!stopped() && !this.closed) {
      const n = await this.pg.transaction(async (c) => {
        const ids = (await c.query<{ queue_id: string }>('SELECT queue_id FROM trace_messages WHERE last_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED', [before, chunk])).rows.map((r) => r.queue_id);
        if (ids.length === 0) return 0;
        removed.events += (await c.query('DELETE FROM trace_events WHERE queue_id = ANY($1)', [ids])).rowCount ?? 0;
        await c.query('DELETE FROM trace_recipients WHERE queue_id = ANY($1)', [ids]);
        removed.messages += (await c.query('DELETE FROM trace_messages WHERE queue_id = ANY($1)', [ids])).rowCount ?? 0;
        return ids.length;
      });
      if (n < chunk) break;
    }
    return removed;
  }

  /** Writes what is pending (once; what PostgreSQL refuses now is lost, and logged) and stops recording. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    if (this.scheduled) clearTimeout(this.scheduled);
    if (this.pending.length) {
      this.stats.dropped += this.pending.length;
      this.log.warn({ events: this.pending.length }, 'trace events not written to PostgreSQL before shutdown (dropped)');
      this.pending = [];
    }
  }
}
