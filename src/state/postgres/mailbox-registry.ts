/**
 * The mailbox registry on PostgreSQL (issue 16): which directory of the shared store holds the mailbox of which AD
 * object, orphaned or not, decided once for the cluster (schema/migrations-postgres/062-mailboxes.sql).
 *
 * The store asks the registry on every lookup, synchronously (src/lifecycle/registry.ts), so each node keeps a copy
 * in its settings.db, as the runtime settings do (settings-sync.ts):
 * - every write is one transaction here under an advisory lock, whose WHERE clause is the decision (orphan only
 *   what is not orphaned, restore only an orphan nobody erases, erase only an orphan nobody else claimed), so of two
 *   nodes doing the same thing at once one changes the row and the other is told it did not; the row as PostgreSQL
 *   then has it goes into this node's copy before the call resolves;
 * - each change gets the next `rev` (taken under the lock, so revs are in commit order) and a NOTIFY on
 *   postern_mailboxes: the other nodes re-read the rows above the last rev they applied, within milliseconds;
 * - an erased row stays as a tombstone (erased_at) so that re-read sees it go;
 * - after a (re)connect of the LISTEN connection the copy is re-read whole (notifications sent meanwhile are
 *   lost), and a poll of max(rev) every few seconds is the backstop.
 * PostgreSQL down: writes throw TempFailure (nothing changed anywhere), the copy keeps answering reads.
 */
import type pg from 'pg';
import type { Logger } from '../../lib/logger.js';
import type { MailboxRegistry, RegistryRow, SharedRegistry } from '../../lifecycle/registry.js';
import { toTempFailure, type PgListener, type PgState } from './pool.js';
import { Mutex } from '../../lib/mutex.js';

export const MAILBOXES_CHANNEL = 'postern_mailboxes';
/** Key of the advisory lock that serialises registry writes across nodes ("mbxreg"). */
const REGISTRY_LOCK = 0x6d6278726567;
/** A node killed mid-erase leaves its claim; after this another node may finish the erase. */
const ERASE_CLAIM_S = 600;

interface PgRow extends RegistryRow {
  rev: string | number;
  erased_at: Date | string | null;
}

const COLS = 'guid, dir, login, created_at, seen_at, orphaned_at, held_settings, rev, erased_at';

function plain(r: PgRow): RegistryRow {
  return { guid: r.guid, dir: r.dir, login: r.login, created_at: r.created_at, seen_at: r.seen_at, orphaned_at: r.orphaned_at, held_settings: r.held_settings };
}

export interface PgMailboxRegistryOptions {
  pg: PgState;
  /** The registry whose copy (settings.db) this keeps. */
  registry: MailboxRegistry;
  log: Logger;
  nodeId: string;
  /** Backstop poll of max(rev); default 5000 ms. */
  pollMs?: number;
}

export class PgMailboxRegistry implements SharedRegistry {
  private readonly pg: PgState;
  private readonly mutex = new Mutex();
  /** The highest rev the copy has from a re-read (writes of this node do not move it: revs of others may lie below). */
  private rev = -1;
  private listener: PgListener | undefined;
  private poll: NodeJS.Timeout | undefined;
  private queued: 'rows' | 'all' | undefined;
  private closed = false;

  constructor(private readonly opts: PgMailboxRegistryOptions) {
    this.pg = opts.pg;
  }

  /** The rev of the last re-read (-1 before start). */
  get syncedRev(): number {
    return this.rev;
  }

  /**
   * First sync, then LISTEN and poll. A PostgreSQL registry that has never had a row receives this node's copy
   * (one node moved to a cluster keeps its mailboxes where they are); otherwise the copy becomes PostgreSQL's.
   * Throws TempFailure when PostgreSQL cannot be reached. Needs the migrations applied (StateStore.start).
   */
  async start(): Promise<void> {
    await this.mutex.run(() => this.seedOrLoad());
    this.listener = this.pg.listen(
      [MAILBOXES_CHANNEL],
      (n) => {
        const rev = Number(n.payload.split(' ')[0]);
        if (!(rev <= this.rev)) this.queue('rows', 'notify');
      },
      () => this.queue('all', 'listen connected'),
    );
    this.poll = setInterval(() => void this.checkRev(), this.opts.pollMs ?? 5000);
    this.poll.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.poll) clearInterval(this.poll);
    await this.listener?.close();
    await this.mutex.run(async () => undefined);
  }

  /** Re-reads what changed since the last re-read (or everything), now; for a CLI that is not a node, and tests. */
  refresh(all = false): Promise<void> {
    return this.mutex.run(() => this.reload(all));
  }

  // ---- SharedRegistry: one decision each ----

  register(row: RegistryRow, fallbackDir: string): Promise<{ row: RegistryRow; changed: boolean }> {
    return this.write<{ row: RegistryRow; changed: boolean }>(async (c) => {
      // The directory chosen (a login-keyed mailbox claimed in place) may belong to another GUID already.
      const taken = await c.query('SELECT 1 FROM mailboxes WHERE dir = $1 AND erased_at IS NULL AND guid <> $2', [row.dir, row.guid]);
      const dir = taken.rowCount ? fallbackDir : row.dir;
      // A tombstone (erased) is registered anew; a live row stays as it is, whoever made it.
      const ins = await c.query<PgRow>(
        `INSERT INTO mailboxes (guid, dir, login, created_at, seen_at, rev) VALUES ($1, $2, $3, $4, $5, nextval('mailboxes_rev'))
         ON CONFLICT (guid) DO UPDATE SET dir = excluded.dir, login = excluded.login, created_at = excluded.created_at,
                seen_at = excluded.seen_at, orphaned_at = NULL, held_settings = NULL, rev = excluded.rev,
                erasing_by = NULL, erasing_at = NULL, erased_at = NULL
          WHERE mailboxes.erased_at IS NOT NULL
         RETURNING ${COLS}`,
        [row.guid, dir, row.login, row.created_at, row.seen_at],
      );
      if (ins.rows[0]) return { rows: ins.rows, changed: true, out: { row: plain(ins.rows[0]), changed: true } };
      const cur = (await c.query<PgRow>(`SELECT ${COLS} FROM mailboxes WHERE guid = $1`, [row.guid])).rows;
      return { rows: cur, changed: false, out: { row: plain(cur[0]!), changed: false } };
    });
  }

  rename(guid: string, login: string, at: string): Promise<{ row: RegistryRow | undefined; changed: boolean }> {
    return this.update(
      guid,
      `UPDATE mailboxes SET login = $2, seen_at = $3, rev = nextval('mailboxes_rev')
        WHERE guid = $1 AND erased_at IS NULL AND orphaned_at IS NULL AND login <> $2 RETURNING ${COLS}`,
      [guid, login, at],
    );
  }

  async touch(guid: string, at: string): Promise<void> {
    await this.update(guid, `UPDATE mailboxes SET seen_at = $2, rev = nextval('mailboxes_rev') WHERE guid = $1 AND erased_at IS NULL RETURNING ${COLS}`, [guid, at]);
  }

  orphan(guid: string, at: string, heldSettings: string | null): Promise<{ row: RegistryRow | undefined; changed: boolean }> {
    return this.update(
      guid,
      `UPDATE mailboxes SET orphaned_at = $2, held_settings = $3, rev = nextval('mailboxes_rev')
        WHERE guid = $1 AND erased_at IS NULL AND orphaned_at IS NULL RETURNING ${COLS}`,
      [guid, at, heldSettings],
    );
  }

  restore(guid: string, login: string, at: string): Promise<{ changed: boolean; held: string | null }> {
    return this.write<{ changed: boolean; held: string | null }>(async (c) => {
      // The FROM reads the row before the update: what orphan() held aside, handed back to the caller.
      const r = await c.query<PgRow & { held: string | null }>(
        `UPDATE mailboxes m SET orphaned_at = NULL, held_settings = NULL, login = $2, seen_at = $3, rev = nextval('mailboxes_rev')
           FROM (SELECT guid, held_settings AS held FROM mailboxes WHERE guid = $1) o
          WHERE m.guid = o.guid AND m.erased_at IS NULL AND m.orphaned_at IS NOT NULL AND m.erasing_by IS NULL
          RETURNING ${COLS.split(', ').map((col) => `m.${col}`).join(', ')}, o.held`,
        [guid, login, at],
      );
      if (r.rows[0]) return { rows: r.rows, changed: true, out: { changed: true, held: r.rows[0].held } };
      const cur = (await c.query<PgRow>(`SELECT ${COLS} FROM mailboxes WHERE guid = $1`, [guid])).rows;
      return { rows: cur, changed: false, out: { changed: false, held: null } };
    });
  }

  beginErase(guid: string): Promise<RegistryRow | undefined> {
    return this.write(async (c) => {
      // No rev: the copies do not hold the claim; restore() reads it here.
      const r = await c.query<PgRow>(
        `UPDATE mailboxes SET erasing_by = $2, erasing_at = now()
          WHERE guid = $1 AND erased_at IS NULL AND orphaned_at IS NOT NULL
            AND (erasing_by IS NULL OR erasing_at < now() - make_interval(secs => $3))
          RETURNING ${COLS}`,
        [guid, this.opts.nodeId, ERASE_CLAIM_S],
      );
      if (r.rows[0]) return { rows: [], changed: false, out: plain(r.rows[0]) };
      const cur = (await c.query<PgRow>(`SELECT ${COLS} FROM mailboxes WHERE guid = $1`, [guid])).rows;
      return { rows: cur, changed: false, out: undefined };
    });
  }

  async endErase(guid: string): Promise<void> {
    await this.write(async (c) => {
      const r = await c.query<PgRow>(
        `UPDATE mailboxes SET erased_at = now(), erasing_by = NULL, erasing_at = NULL, orphaned_at = NULL, held_settings = NULL,
                rev = nextval('mailboxes_rev')
          WHERE guid = $1 AND erasing_by = $2 RETURNING ${COLS}`,
        [guid, this.opts.nodeId],
      );
      return { rows: r.rows, changed: r.rows.length > 0, out: undefined };
    });
  }

  // ---- the machinery ----

  /** An UPDATE that is the decision; when it changed nothing the row as it is comes into the copy instead. */
  private update(guid: string, sql: string, params: unknown[]): Promise<{ row: RegistryRow | undefined; changed: boolean }> {
    return this.write<{ row: RegistryRow | undefined; changed: boolean }>(async (c) => {
      const r = await c.query<PgRow>(sql, params);
      if (r.rows[0]) return { rows: r.rows, changed: true, out: { row: plain(r.rows[0]), changed: true } };
      const cur = (await c.query<PgRow>(`SELECT ${COLS} FROM mailboxes WHERE guid = $1`, [guid])).rows;
      return { rows: cur, changed: false, out: { row: cur[0] && !cur[0].erased_at ? plain(cur[0]) : undefined, changed: false } };
    });
  }

  /**
   * One write: the transaction under the registry lock, NOTIFY when it changed a row, then (after COMMIT) the rows
   * it returned into the copy. A row that did not change comes into the copy too: this node acted on a stale copy.
   */
  private async write<T>(fn: (c: pg.PoolClient) => Promise<{ rows: PgRow[]; changed: boolean; out: T }>): Promise<T> {
    let res: { rows: PgRow[]; changed: boolean; out: T };
    try {
      res = await this.pg.transaction(async (c) => {
        await c.query('SELECT pg_advisory_xact_lock($1)', [REGISTRY_LOCK]);
        const r = await fn(c);
        if (r.changed) await c.query('SELECT pg_notify($1, $2)', [MAILBOXES_CHANNEL, `${r.rows[0]!.rev} ${this.opts.nodeId}`]);
        return r;
      });
    } catch (err) {
      throw toTempFailure(err, 'mailbox registry');
    }
    // Only rows newer than the last re-read: one that read a row before another node's change to it (an erase claim
    // lost to the other node) is applied after the re-read that the other node's NOTIFY queued, and would bring the
    // old row back into the copy for good (the re-read's rev is past it, so no later re-read fetches the row again).
    // A re-read that covered a row's rev applied that version or a newer one.
    if (res.rows.length) {
      await this.mutex.run(() => {
        const newer = res.rows.filter((r) => Number(r.rev) > this.rev);
        if (newer.length) this.apply(newer, false);
      });
    }
    return res.out;
  }

  private apply(rows: PgRow[], all: boolean): void {
    const live = rows.filter((r) => !r.erased_at).map(plain);
    const erased = rows.filter((r) => r.erased_at).map((r) => r.guid);
    this.opts.registry.applyShared(live, erased, all);
  }

  private async seedOrLoad(): Promise<void> {
    const local = this.opts.registry.localRows();
    try {
      await this.pg.transaction(async (c) => {
        await c.query('SELECT pg_advisory_xact_lock($1)', [REGISTRY_LOCK]);
        const any = await c.query('SELECT 1 FROM mailboxes LIMIT 1');
        if (any.rowCount || !local.length) return;
        for (const r of local) {
          await c.query(
            `INSERT INTO mailboxes (guid, dir, login, created_at, seen_at, orphaned_at, held_settings, rev)
             VALUES ($1, $2, $3, $4, $5, $6, $7, nextval('mailboxes_rev'))`,
            [r.guid, r.dir, r.login, r.created_at, r.seen_at, r.orphaned_at, r.held_settings],
          );
        }
        this.opts.log.info({ component: 'state', mailboxes: local.length }, 'mailbox registry: this node seeded the empty shared registry');
      });
    } catch (err) {
      throw toTempFailure(err, 'mailbox registry');
    }
    await this.reload(true);
  }

  /** Re-reads the rows above the last rev (or all of them, making the copy exactly PostgreSQL's). */
  private async reload(all: boolean): Promise<void> {
    if (this.rev < 0) all = true;
    let got: { rows: PgRow[]; max: number };
    try {
      // One snapshot (REPEATABLE READ) for the rows and max(rev): nothing committed in between is skipped.
      got = await this.pg.transaction(async (c) => {
        const rows = all
          ? (await c.query<PgRow>(`SELECT ${COLS} FROM mailboxes WHERE erased_at IS NULL ORDER BY rev`)).rows
          : (await c.query<PgRow>(`SELECT ${COLS} FROM mailboxes WHERE rev > $1 ORDER BY rev`, [this.rev])).rows;
        const max = Number((await c.query<{ rev: string }>('SELECT coalesce(max(rev), 0) AS rev FROM mailboxes')).rows[0]!.rev);
        return { rows, max };
      }, 'REPEATABLE READ');
    } catch (err) {
      throw toTempFailure(err, 'mailbox registry');
    }
    if (got.rows.length || all) this.apply(got.rows, all);
    this.rev = Math.max(all ? 0 : this.rev, got.max);
  }

  private queue(kind: 'rows' | 'all', why: string): void {
    if (this.closed) return;
    if (this.queued) {
      if (kind === 'all') this.queued = 'all';
      return;
    }
    this.queued = kind;
    void this.mutex.run(async () => {
      const all = this.queued === 'all';
      this.queued = undefined;
      try {
        await this.reload(all);
      } catch (err) {
        this.opts.log.warn({ component: 'state', err: (err as Error).message, why }, 'mailbox registry: re-read from PostgreSQL failed; retried');
        // The poll tries again; a failed full re-read stays due (rev -1 makes the next re-read a full one).
        if (all) this.rev = -1;
      }
    });
  }

  private async checkRev(): Promise<void> {
    if (this.closed) return;
    try {
      const r = await this.pg.query<{ rev: string | null }>('SELECT max(rev) AS rev FROM mailboxes');
      const max = Number(r.rows[0]?.rev ?? 0);
      if (this.rev < 0) this.queue('all', 'poll');
      else if (max > this.rev) this.queue('rows', 'poll');
    } catch {
      /* pool health says why; the next poll retries */
    }
  }
}
