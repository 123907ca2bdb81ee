/**
 * The queue on PostgreSQL (issue 16): the spool of src/queue/spool.ts with its metadata in the state store, so that
 * several nodes run one queue on one shared queue directory.
 *
 * What lies where:
 *   queue/<id>.eml            the message, as with the default (the same spoolPrefix, the same hard link into the
 *                             Maildir); on the shared file system every node mounts
 *   queue_messages (010)      one row per message: its envelope (jsonb, what <id>.json holds in the default), next
 *                             attempt, attempts, and the claim: claimed_by (node id) and lease_until
 * There is no <id>.json: the row is the envelope, and its INSERT is the commit point.
 *
 * Commit (enqueue): the message is created directly in queue/ under its id (O_EXCL: the create refuses a name that
 * exists, so two nodes can never put two messages under one name even if their ids collided), the file and queue/
 * are fsynced at the same time (queue/'s fsync shared among concurrent enqueues, as in the default), and then the row
 * is inserted. A file without its row is not queued for anybody: a crash before the INSERT leaves a leftover that
 * recover() removes once it is orphanAgeMs old. (An earlier version wrote tmp/<id>.eml and linked it into queue/:
 * the same promise for three more metadata calls.)
 * Only when PostgreSQL has committed the row does enqueue resolve and SMTP answer 250. When PostgreSQL
 * cannot take the row the message file is removed again and enqueue rejects with a TempFailure: SMTP answers
 * `451 4.3.0` (src/smtp/on-data.ts), never 250 for what it could not store. No local file lock is relied on:
 * claims are rows, and file names are unique (the queue id carries a tag of the node, src/queue/id.ts).
 *
 * Claims (QueueClaims): `claimDue` takes due messages not claimed by a live lease, with `FOR UPDATE SKIP LOCKED`
 * so that two nodes claiming at once take different messages without waiting for each other; the claim is a lease
 * of `leaseSeconds`, renewed every third of it while the delivery runs. update() (the outcome of an attempt) ends
 * the claim; an update by a node whose lease ran out and whose message another node has claimed since is refused
 * (returns false, as for a message deleted meanwhile): the other node's attempt wins. A node killed mid-delivery
 * renews nothing, its lease runs out, and another node takes the message: at-least-once, a delivery may repeat
 * after a crash, none is lost.
 *
 * Claimed at insert: a message this node has just accepted is due now, and this node's scheduler is told of it at
 * once (the 'enqueued' event), so — once a scheduler takes this spool's messages (it has called claimDue) — its row is inserted with this node's claim already set (up to PRECLAIM_MAX such
 * messages waiting for a delivery slot) and claimDue hands it out without a statement. That was an UPDATE … FOR
 * UPDATE SKIP LOCKED (and its commit) per pump for what this node knew it would take. The claim is a lease like any
 * other: renewed while held, given back at stop(), and taken over by another node when this one dies. So that
 * retries and the messages of other nodes are still claimed under a stream of local ones, claimDue queries as well
 * whenever its last query is CLAIM_QUERY_MS old (or nothing local is waiting).
 */
import { readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  LAZY_SYNC_MS,
  checkEnvelope,
  diskFailure,
  errno,
  NotQueuedError,
  ignoreMissing,
  Spool,
  type NewEnvelope,
  type RecoverResult,
  type ScanResult,
  type SpoolOptions,
} from '../../queue/spool.js';
import type { QueueClaims, QueueEnvelope } from '../../queue/types.js';
import { TempFailure } from '../../lib/errors.js';
import { RowBatcher } from './batch.js';
import { isUniqueViolation, prepared, type PgState } from './pool.js';

export interface PgSpoolOptions extends SpoolOptions {
  pg: PgState;
  /** This node's id (the registry's): who claims. */
  nodeId: string;
  /** Length of a claim; renewed every third of it while a delivery runs. Default 60. */
  leaseSeconds?: number;
  /**
   * How old a file without a row must be before recover() takes it for a leftover of a crash (another node may be
   * between its link and its INSERT right now). Default one hour.
   */
  orphanAgeMs?: number;
}

interface Row {
  envelope: QueueEnvelope;
}

/** Messages claimed at insert and waiting for a delivery slot, at most (the rest are inserted unclaimed). */
const PRECLAIM_MAX = 100;
/** With claimed-at-insert messages to hand out, claimDue still queries for others' due messages this often. */
const CLAIM_QUERY_MS = 1000;

/** Removals (DELETEs of delivered messages' rows) start at least this far apart (see the constructor). */
const REMOVE_GAP_MS = 20;

/** An enqueue's row, as the batched INSERT takes it (the envelope as JSON text). */
interface NewRow {
  id: string;
  envelope: string;
  receivedAt: string;
  nextAttemptAt: string;
  attempts: number;
  /** Inserted with this node's claim (claimed at insert). */
  claim: boolean;
}

/** An attempt's outcome, as the batched UPDATE takes it. */
interface OutcomeRow {
  id: string;
  envelope: string;
  nextAttemptAt: string;
  attempts: number;
}

/**
 * Runs `write` over `items` in rounds in which no key repeats: one UPDATE … FROM or DELETE cannot tell two
 * changes of one row apart (the second would be lost or reported as the first's), so a repeated id waits for
 * the next round, which keeps the order of the calls. Results come back in the order of `items`.
 */
async function byRounds<T, R>(items: T[], key: (t: T) => string, write: (round: T[]) => Promise<R[]>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let left = items.map((item, i) => ({ item, i }));
  while (left.length) {
    const seen = new Set<string>();
    const round: typeof left = [];
    const later: typeof left = [];
    for (const x of left) {
      const k = key(x.item);
      if (seen.has(k)) later.push(x);
      else {
        seen.add(k);
        round.push(x);
      }
    }
    const results = await write(round.map((x) => x.item));
    round.forEach((x, j) => (out[x.i] = results[j]!));
    left = later;
  }
  return out;
}

export class PgSpool extends Spool implements QueueClaims {
  override readonly claims: QueueClaims = this;
  private readonly pg: PgState;
  readonly nodeId: string;
  readonly leaseSeconds: number;
  private readonly orphanAgeMs: number;
  /** Messages this node has claimed and not yet given back: their leases are renewed. */
  private readonly held = new Set<string>();
  /** Rows whose file this node could not find (readMessage), with when it may claim them again. */
  private readonly notHere = new Map<string, number>();
  private renewTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** A scheduler takes this spool's messages (claimDue was called): only then is a message claimed at insert. */
  private consuming = false;
  /** Claimed at insert, not yet handed out by claimDue (oldest first), and how many such inserts are on their way. */
  private preclaimed: QueueEnvelope[] = [];
  private preclaiming = 0;
  private lastClaimQuery = 0;
  /** The last claim query found as many due messages as it asked for (there may be more). */
  private lastQueryFull = true;
  /** claimDue calls answered without a statement (bench, tests). */
  claimsSaved = 0;
  /**
   * Group commit of the rows (batch.ts): concurrent enqueues share one INSERT, concurrent outcomes one UPDATE,
   * concurrent removals one DELETE. Each is one autocommitted statement, so a caller hears "done" only once its
   * own row is committed, and a failed statement fails every caller it carried.
   */
  private readonly inserts: RowBatcher<NewRow, boolean>;
  private readonly updates: RowBatcher<OutcomeRow, boolean>;
  private readonly removals: RowBatcher<string, boolean>;

  constructor(dataDir: string, options: PgSpoolOptions) {
    super(dataDir, options);
    this.pg = options.pg;
    this.nodeId = options.nodeId;
    this.leaseSeconds = options.leaseSeconds ?? 60;
    this.orphanAgeMs = options.orphanAgeMs ?? 3_600_000;
    // Two statements in flight: while one batch waits for its commit the next one fills, and goes as soon as a
    // connection is free, instead of a burst waiting for one round trip at a time.
    const opts = { inFlight: 2, maxBatch: 200 };
    this.inserts = new RowBatcher((rows) => this.insertRows(rows), opts);
    this.updates = new RowBatcher((rows) => byRounds(rows, (r) => r.id, (round) => this.updateRows(round)), opts);
    // Removals one statement at a time, and no sooner than REMOVE_GAP_MS after the one before: nobody waits for them
    // but the delivery slot (a crash before the DELETE delivers the message again, never loses it), and deliveries a
    // few milliseconds apart each made a DELETE and a commit of their own (0.73 per message, 0.92 with two in flight).
    this.removals = new RowBatcher((ids) => byRounds(ids, (id) => id, (round) => this.deleteRows(round)), { ...opts, inFlight: 1, gapMs: REMOVE_GAP_MS });
  }

  /** Rows per statement so far, for the bench and the tests: statements vs rows of enqueue, update and remove. */
  batchStats(): { inserts: { batches: number; items: number }; updates: { batches: number; items: number }; removals: { batches: number; items: number } } {
    const s = (b: { batches: number; items: number }) => ({ batches: b.batches, items: b.items });
    return { inserts: s(this.inserts), updates: s(this.updates), removals: s(this.removals) };
  }

  /**
   * One INSERT for the rows of concurrent enqueues. ON CONFLICT DO NOTHING: an id already taken (ids carry the
   * node's tag, so only a collision of random parts) fails that enqueue alone, not the others of its batch.
   */
  private async insertRows(rows: NewRow[]): Promise<boolean[]> {
    const r = await this.pg.query<{ id: string }>(
      prepared(`INSERT INTO queue_messages (id, envelope, received_at, next_attempt_at, attempts, queued_by, claimed_by, lease_until)
       SELECT x.id, x.e::jsonb, x.r::timestamptz, x.n::timestamptz, x.a, $6,
              CASE WHEN x.c THEN $6 END, CASE WHEN x.c THEN now() + make_interval(secs => $8) END
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $7::bool[]) AS x(id, e, r, n, a, c)
       ON CONFLICT (id) DO NOTHING
       RETURNING id`),
      [
        rows.map((x) => x.id),
        rows.map((x) => x.envelope),
        rows.map((x) => x.receivedAt),
        rows.map((x) => x.nextAttemptAt),
        rows.map((x) => x.attempts),
        this.nodeId,
        rows.map((x) => x.claim),
        this.leaseSeconds,
      ],
    );
    const stored = new Set(r.rows.map((x) => x.id));
    return rows.map((x) => stored.has(x.id));
  }

  /** One UPDATE for the outcomes of concurrent attempts; each is refused alone when another node holds its message. */
  private async updateRows(rows: OutcomeRow[]): Promise<boolean[]> {
    const r = await this.pg.query<{ id: string }>(
      prepared(`UPDATE queue_messages q SET envelope = x.e::jsonb, next_attempt_at = x.n::timestamptz, attempts = x.a, claimed_by = NULL, lease_until = NULL
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS x(id, e, n, a)
        WHERE q.id = x.id AND (q.claimed_by IS NULL OR q.claimed_by = $5 OR q.lease_until < now())
       RETURNING q.id`),
      [rows.map((x) => x.id), rows.map((x) => x.envelope), rows.map((x) => x.nextAttemptAt), rows.map((x) => x.attempts), this.nodeId],
    );
    const done = new Set(r.rows.map((x) => x.id));
    return rows.map((x) => done.has(x.id));
  }

  private async deleteRows(ids: string[]): Promise<boolean[]> {
    const r = await this.pg.query<{ id: string }>(prepared('DELETE FROM queue_messages WHERE id = ANY($1::text[]) RETURNING id'), [ids]);
    const gone = new Set(r.rows.map((x) => x.id));
    return ids.map((id) => gone.has(id));
  }

  /** Nothing to lock: claims are rows (several servers run this spool). */
  override async lock(): Promise<void> {
    await this.init();
  }

  override unlock(): void {}

  override async enqueue(message: Buffer, input: NewEnvelope): Promise<string> {
    const { id, envelope, file } = this.newEntry(message, input);
    const finalMessage = this.messagePath(id);
    let made = false;
    try {
      // On the thread pool, as the default spool's commit (nothing here blocks the event loop: the synchronous open,
      // link and unlink of a tmp/ file were 24 % of the node's event loop under SMTP load). O_EXCL refuses a name
      // that exists, on NFSv3+ as locally, so no message is ever written over another's.
      let created;
      try {
        created = await this.fs.create(finalMessage, file);
        made = true;
      } catch (err) {
        // A create that failed after open(2) (ENOSPC in write) leaves its file; one that found the name taken made
        // nothing of ours.
        made = errno(err) !== 'EEXIST';
        throw err;
      }
      // syncAndClose closes the file whatever the fsync says.
      for (const w of await Promise.allSettled([created.syncAndClose(), this.dirSync.sync()])) if (w.status === 'rejected') throw w.reason;
    } catch (err) {
      if (made) await this.fs.unlink(finalMessage).catch(() => undefined);
      const failure = diskFailure('cannot queue the message', err);
      this.log.error({ queueId: id, err }, failure.message);
      throw failure;
    }
    const json = JSON.stringify(envelope);
    // Claimed at insert when due now and few are waiting already (see the header).
    const claim = this.consuming && !this.stopped && Date.parse(envelope.nextAttemptAt) <= Date.now() && this.preclaimed.length + this.preclaiming < PRECLAIM_MAX;
    if (claim) this.preclaiming++;
    try {
      // Group commit: this row shares one INSERT (one round trip, one commit) with the enqueues running at once;
      // the promise resolves only after PostgreSQL has answered that statement, i.e. committed it (autocommit).
      let stored: boolean;
      try {
        stored = await this.inserts.add({ id, envelope: json, receivedAt: envelope.receivedAt, nextAttemptAt: envelope.nextAttemptAt, attempts: envelope.attempts, claim });
      } finally {
        if (claim) this.preclaiming--;
      }
      if (!stored) throw new TempFailure(`cannot queue the message: queue id ${id} is taken`);
    } catch (err) {
      // Not acknowledged, so not queued: the file goes again. (Should PostgreSQL have committed the row and only the
      // answer been lost, the scheduler finds a row without its file and drops it: the sender was told 451 and
      // sends again.)
      await this.fs.unlink(finalMessage).catch(() => undefined);
      const failure = isUniqueViolation(err)
        ? new TempFailure(`cannot queue the message: queue id ${id} is taken`, { cause: err })
        : err instanceof TempFailure
          ? new TempFailure(err.message.startsWith('cannot queue') ? err.message : `cannot queue the message: ${err.message}`, { cause: err })
          : diskFailure('cannot queue the message', err);
      this.log.error({ queueId: id, err }, failure.message);
      throw failure;
    }
    this.enqueued++;
    this.keepFresh(id, message, json);
    if (!claim) this.lastQueryFull = true;
    if (claim) {
      this.held.add(id);
      this.preclaimed.push(checkEnvelope(JSON.parse(json), id));
      this.startRenewing();
    }
    this.log.info(
      { queueId: id, from: envelope.from, nrcpt: envelope.recipients.length, size: envelope.size, client: envelope.client.address },
      'queued',
    );
    this.trace?.record({
      queueId: id,
      type: 'queued',
      from: envelope.from,
      recipients: envelope.recipients.map((r) => r.address),
      detail: { size: envelope.size, listener: envelope.client.listener },
    });
    this.emit('enqueued', envelope);
    return id;
  }

  override async read(id: string): Promise<QueueEnvelope | null> {
    const r = await this.pg.query<Row>('SELECT envelope FROM queue_messages WHERE id = $1', [this.checkId(id)]);
    return r.rows[0] ? checkEnvelope(r.rows[0].envelope, id) : null;
  }

  override readForAttempt(id: string): Promise<QueueEnvelope | null> {
    return this.read(id);
  }

  override async has(id: string): Promise<boolean> {
    const r = await this.pg.query('SELECT 1 FROM queue_messages WHERE id = $1', [this.checkId(id)]);
    return (r.rowCount ?? 0) > 0;
  }

  /** The whole cluster's queue, oldest first. */
  override async list(): Promise<QueueEnvelope[]> {
    const r = await this.pg.query<Row & { id: string }>('SELECT id, envelope FROM queue_messages ORDER BY id');
    return r.rows.map((row) => checkEnvelope(row.envelope, row.id));
  }

  override async scan(): Promise<ScanResult> {
    const envelopes = await this.list();
    return { ids: envelopes.map((e) => e.id), envelopes };
  }

  /**
   * The outcome of an attempt: the envelope written and this node's claim ended. Refused (false) when the message
   * is gone, or when another node holds it now (this node's lease ran out and it was taken over).
   */
  override async update(envelope: QueueEnvelope): Promise<boolean> {
    const id = this.checkId(envelope.id);
    const kept = this.fresh.get(id);
    if (kept) kept.envelope = undefined;
    const done = await this.updates.add({ id, envelope: JSON.stringify(envelope), nextAttemptAt: envelope.nextAttemptAt, attempts: envelope.attempts });
    this.held.delete(id);
    return done;
  }

  /**
   * An admin's change (flush): the envelope edited under a row lock, the claim left as it is (a delivery under way
   * on some node writes its outcome over it, as a CLI flush racing an attempt does in the default).
   */
  override async modify(id: string, change: (e: QueueEnvelope) => void): Promise<QueueEnvelope | null> {
    this.checkId(id);
    return this.pg.transaction(async (c) => {
      const r = await c.query<Row>('SELECT envelope FROM queue_messages WHERE id = $1 FOR UPDATE', [id]);
      if (!r.rows[0]) return null;
      const e = checkEnvelope(r.rows[0].envelope, id);
      change(e);
      await c.query('UPDATE queue_messages SET envelope = $2, next_attempt_at = $3 WHERE id = $1', [id, JSON.stringify(e), e.nextAttemptAt]);
      return e;
    });
  }

  /**
   * A claimed row whose file this node cannot find. The file is linked (and its directory fsynced) before the row is
   * inserted, and remove() deletes the row before the file, so a row without its file means this node does not see
   * the queue directory the others write: dataDir/queue not shared. Dropping the row, as the default spool does for
   * a stray envelope, would lose mail another node answered 250 for; the attempt fails instead, the claim is given
   * back (Scheduler.launch), and a node that sees the file delivers it. A row really removed meanwhile is still
   * NotQueuedError.
   */
  override async readMessage(id: string, spoolPrefix?: string): Promise<Buffer> {
    try {
      return await super.readMessage(id, spoolPrefix);
    } catch (err) {
      if (!(err instanceof NotQueuedError)) throw err;
      const r = await this.pg.query('SELECT 1 FROM queue_messages WHERE id = $1', [id]);
      if (!r.rowCount) throw err;
      // Not claimed again by this node for a lease's length, so that a node that sees the file gets it: otherwise the
      // node whose timer fires first at the retry could take it every time.
      this.notHere.set(id, Date.now() + this.leaseSeconds * 1000);
      throw new TempFailure(
        `queued message ${id} has no file in ${this.dir}: is dataDir/queue the directory every node shares? (left queued for a node that sees it)`,
      );
    }
  }

  /**
   * Row first (from then on it is not queued, on any node), then the file. The row's DELETE is the removal (from its commit on, no node takes the message); the file goes after it. `lazy`
   * (the scheduler's removal of a finished message, as Spool.remove): the unlink runs on the thread pool and the
   * directory fsync is not waited for. Nothing depends on it here: a file whose row is gone is a leftover that
   * recover() removes, never a message brought back. An admin's delete (`by`) still waits for it.
   */
  override async remove(id: string, by?: string, opts: { lazy?: boolean } = {}): Promise<boolean> {
    this.dropFresh(this.checkId(id));
    this.preclaimed = this.preclaimed.filter((e) => e.id !== id);
    const found = await this.removals.add(id);
    this.held.delete(id);
    const lazy = opts.lazy === true && by === undefined;
    try {
      if (lazy) {
        await this.fs.unlinkPooled(this.messagePath(id));
        this.dirSync.soon(LAZY_SYNC_MS);
      } else {
        await this.fs.unlink(this.messagePath(id));
        await this.dirSync.sync();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException)?.code !== 'ENOENT') throw diskFailure(`cannot remove queue file of ${id}`, err);
    }
    if (found) {
      this.log.info({ queueId: id, ...(by ? { by } : {}) }, 'removed');
      if (by) this.trace?.record({ queueId: id, type: 'deleted', detail: { by } });
    }
    return found;
  }

  /**
   * At server start. Other nodes run: a file in tmp/ or in queue/ without its row may be one they are committing
   * right now, so only what is older than orphanAgeMs is taken for a crash's leftover (never acknowledged: the row
   * comes last). A row whose file is not here is left queued (readMessage): another node may see the file.
   */
  override async recover(): Promise<RecoverResult> {
    await this.init();
    const result: RecoverResult = { messages: 0, removedTmp: 0, removedOrphans: [] };
    const cutoff = Date.now() - this.orphanAgeMs;
    const old = async (path: string) => ((await ignoreMissing(stat(path)))?.mtimeMs ?? Infinity) < cutoff;
    for (const name of await readdir(this.tmpDir)) {
      const path = join(this.tmpDir, name);
      if (!(await old(path))) continue;
      await ignoreMissing(unlink(path));
      result.removedTmp++;
    }
    const rows = new Set((await this.pg.query<{ id: string }>('SELECT id FROM queue_messages')).rows.map((r) => r.id));
    for (const name of await readdir(this.dir)) {
      const m = /^(.+)\.eml$/.exec(name);
      if (!m) continue;
      if (rows.has(m[1])) {
        result.messages++;
        continue;
      }
      const path = join(this.dir, name);
      if (!(await old(path))) continue;
      // Checked again: the row may have been committed between the SELECT and now.
      if (await this.has(m[1]).catch(() => true)) continue;
      await ignoreMissing(unlink(path));
      result.removedOrphans.push(m[1]);
      this.log.warn({ queueId: m[1] }, 'removed a queue file without its row (never acknowledged, or delivered and removed just before a crash)');
    }
    if (result.removedOrphans.length) await this.dirSync.sync();
    return result;
  }

  async claimDue(limit: number): Promise<QueueEnvelope[]> {
    this.consuming = true;
    if (limit <= 0) return [];
    const now = Date.now();
    const local = this.preclaimed.splice(0, limit);
    // No statement when what this node claimed at insert fills the slots, or when the last query, less than
    // CLAIM_QUERY_MS ago, found fewer due messages than it asked for: what can have become due since (a retry, a
    // lease that ran out, another node's message over its PRECLAIM_MAX) waits at most that long.
    const recent = now - this.lastClaimQuery < CLAIM_QUERY_MS;
    if (local.length === limit || (recent && (local.length || !this.lastQueryFull))) {
      if (local.length) this.claimsSaved++;
      return local;
    }
    this.lastClaimQuery = now;
    for (const [id, until] of this.notHere) if (until <= now) this.notHere.delete(id);
    let r;
    try {
      r = await this.pg.query<Row & { id: string }>(
      prepared(`UPDATE queue_messages q SET claimed_by = $1, lease_until = now() + make_interval(secs => $2)
         FROM (SELECT id FROM queue_messages
                WHERE next_attempt_at <= now() AND (claimed_by IS NULL OR lease_until < now())
                  AND NOT (id = ANY($4::text[]))
                ORDER BY next_attempt_at LIMIT $3
                FOR UPDATE SKIP LOCKED) due
        WHERE q.id = due.id
       RETURNING q.id, q.envelope`),
        [this.nodeId, this.leaseSeconds, limit - local.length, [...this.notHere.keys()]],
      );
    } catch (err) {
      // Ours already: handed out all the same (the pump's failure path would drop them).
      this.lastQueryFull = true;
      if (local.length) return local;
      throw err;
    }
    this.lastQueryFull = r.rows.length >= limit - local.length;
    const out: QueueEnvelope[] = [...local];
    for (const row of r.rows) {
      this.held.add(row.id);
      out.push(checkEnvelope(row.envelope, row.id));
    }
    if (this.held.size) this.startRenewing();
    return out;
  }

  async release(id: string, nextAttemptAt: string): Promise<void> {
    this.held.delete(id);
    await this.pg.query(
      'UPDATE queue_messages SET claimed_by = NULL, lease_until = NULL, next_attempt_at = $3 WHERE id = $1 AND claimed_by = $2',
      [id, this.nodeId, nextAttemptAt],
    );
  }

  private startRenewing(): void {
    if (this.renewTimer) return;
    this.renewTimer = setInterval(() => void this.renew(), (this.leaseSeconds * 1000) / 3);
    this.renewTimer.unref();
  }

  /** One statement for every message this node is delivering. A failure is retried at the next tick. */
  private async renew(): Promise<void> {
    if (this.held.size === 0) return;
    try {
      await this.pg.query(
        prepared('UPDATE queue_messages SET lease_until = now() + make_interval(secs => $3) WHERE claimed_by = $1 AND id = ANY($2)'),
        [this.nodeId, [...this.held], this.leaseSeconds],
      );
    } catch (err) {
      this.log.warn({ err, held: this.held.size }, 'cannot renew the queue leases; will try again');
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.renewTimer);
    this.renewTimer = undefined;
    // Claimed at insert and never started: given back, due now, for another node (or this one's next start).
    const ids = this.preclaimed.map((e) => e.id);
    this.preclaimed = [];
    for (const id of ids) this.held.delete(id);
    if (ids.length) {
      await this.pg
        .query('UPDATE queue_messages SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = $1 AND id = ANY($2::text[])', [this.nodeId, ids])
        .catch((err: unknown) => this.log.warn({ err, messages: ids.length }, 'cannot give back the claims taken at insert; their leases run out'));
    }
  }
}
