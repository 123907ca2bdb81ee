/**
 * The folder index on PostgreSQL (issue 16): what postern-index.db keeps per folder (src/store/folder-index.ts), in
 * tables every node shares (schema/postgres/pgidx-001-mail.sql). Same contract as the SQLite backend
 * (store/folder-index-backend.ts), tested by the same cases. Tables: schema/migrations-postgres/050-mail.sql.
 *
 * One truth across nodes: every change takes the folder's row FOR UPDATE first, computes the next MODSEQ and UIDs
 * from it and writes them back in the same transaction, so concurrent APPENDs through two nodes get distinct,
 * increasing UIDs (RFC 3501 §2.3.1.1) and MODSEQs never repeat (RFC 7162 §3.1.1). An error from PostgreSQL is a
 * TempFailure (IMAP NO [UNAVAILABLE], POP3 -ERR [SYS/TEMP]); the pool reconnects by itself.
 */
import type pg from 'pg';
import { TempFailure } from '../../lib/errors.js';
import { prepared } from './prepared.js';
import type { TxQueryable } from './queryable.js';
import type { FolderIndexBackend, FolderMeta, IndexChanges, IndexRow } from '../../store/folder-index-backend.js';
import { MAX_EXPUNGED_HISTORY, nextUidValidity } from '../../store/folder-index.js';
import type { SearchHeaders } from '../../store/header-fields.js';

type Client = Pick<pg.PoolClient, 'query'> | TxQueryable;

interface FolderRow {
  id: string;
  uidvalidity: string;
  uidnext: string;
  modseq: string;
  vanishedfloor: string;
  firstrecent: string;
  uidlist: string;
  dirs: string;
}

const ROW_COLS = 'uid, base, name, size, internal_date, keywords, modseq, save_date';

function toRow(x: unknown): IndexRow {
  const r = x as Record<string, unknown>;
  return {
    uid: Number(r.uid),
    base: r.base as string,
    name: r.name as string,
    size: Number(r.size),
    internalDate: Number(r.internal_date),
    keywords: r.keywords as string,
    modseq: Number(r.modseq),
    saveDate: r.save_date === null || r.save_date === undefined ? null : Number(r.save_date),
  };
}

function pairs(flat: unknown): SearchHeaders {
  const a = flat as string[];
  const out: SearchHeaders = [];
  for (let i = 0; i + 1 < a.length; i += 2) out.push([a[i]!, a[i + 1]!]);
  return out;
}

/** Runs `fn` and turns what PostgreSQL (or the network to it) throws into a TempFailure. */
async function temp<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof TempFailure) throw err;
    throw new TempFailure('mail index unavailable', { cause: err });
  }
}

/** Whether `changes` holds nothing but `k` (the one-round-trip writes). */
function onlyChange(changes: IndexChanges, k: keyof IndexChanges): boolean {
  return Object.entries(changes).every(([key, v]) => key === k || v === undefined || (Array.isArray(v) && v.length === 0));
}

/** What postern_mail_update2 (081) and postern_mail_remove (082) return: the MODSEQ, the UIDs written, the state before. */
interface FolderWriteRow {
  o_modseq: number;
  o_uids: (number | string)[];
  o_uidnext: number;
  o_uidvalidity: number;
  o_prev_modseq: number;
}

/** The folder's state before and after such a write (neither changes UIDVALIDITY nor UIDNEXT), with what it left. */
function folderWrite(x: FolderWriteRow, what: Pick<IndexWrite, 'rows' | 'removed'>): IndexWrite {
  const uidValidity = Number(x.o_uidvalidity);
  const uidNext = Number(x.o_uidnext);
  return { before: { uidValidity, uidNext, modseq: Number(x.o_prev_modseq) }, after: { uidValidity, uidNext, modseq: Number(x.o_modseq) }, ...what };
}

/** The folder's state just before and just after one write, and the rows the write left (added or changed). */
export interface IndexWrite {
  before: { uidValidity: number; uidNext: number; modseq: number };
  after: { uidValidity: number; uidNext: number; modseq: number };
  rows: IndexRow[];
  /** UIDs the write expunged (at `after.modseq`). */
  removed?: number[];
}

export class PgFolderIndex implements FolderIndexBackend {
  /** The MODSEQ the last apply() of this object gave what it touched (the folder's, when it touched nothing). */
  lastModseq = 0;
  /** A value the folder's firstrecent is known to have reached (it only grows): see firstRecentUid. */
  private recentFloor = 0;

  private constructor(
    private readonly pool: TxQueryable,
    /** The folder's Maildir path relative to the mail root: the same key on every node. */
    readonly key: string,
    private readonly id: string,
    readonly created: boolean,
    private readonly historyLimit: number,
  ) {}

  /** Opens the index of folder `key`, creating it (a new UIDVALIDITY) when no node has yet. */
  static async open(pool: TxQueryable, key: string, opts: { historyLimit?: number } = {}): Promise<PgFolderIndex> {
    return temp(async () => {
      // RFC 7162 §3.1.1: a new index starts its MODSEQs at the clock in microseconds, as the SQLite one does.
      const start = Date.now() * 1000;
      const ins = await pool.query(
        `INSERT INTO mail_folders (key, uidvalidity, uidnext, modseq, vanishedfloor) VALUES ($1, $2, 1, $3, $3)
         ON CONFLICT (key) DO NOTHING RETURNING id`,
        [key, nextUidValidity(), start],
      );
      if (ins.rows[0]) return new PgFolderIndex(pool, key, String((ins.rows[0] as { id: unknown }).id), true, opts.historyLimit ?? MAX_EXPUNGED_HISTORY);
      const sel = await pool.query('SELECT id FROM mail_folders WHERE key = $1', [key]);
      if (!sel.rows[0]) throw new TempFailure(`mail index: folder ${key} vanished while opened`);
      return new PgFolderIndex(pool, key, String((sel.rows[0] as { id: unknown }).id), false, opts.historyLimit ?? MAX_EXPUNGED_HISTORY);
    });
  }

  /** Forgets a folder (deleted): its rows go with it. */
  static async drop(pool: TxQueryable, key: string): Promise<void> {
    await temp(() => pool.query('DELETE FROM mail_folders WHERE key = $1', [key]));
  }

  private async folder(c: Client = this.pool, lock = false): Promise<FolderRow> {
    const r = await c.query(`SELECT * FROM mail_folders WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [this.id]);
    const f = r.rows[0] as FolderRow | undefined;
    if (!f) throw new TempFailure(`mail index: folder ${this.key} is gone`);
    return f;
  }

  private tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return temp(() => this.pool.transaction(fn));
  }

  async meta(): Promise<FolderMeta> {
    const f = await temp(() => this.folder());
    return {
      uidValidity: Number(f.uidvalidity),
      uidNext: Number(f.uidnext),
      modseq: Number(f.modseq),
      vanishedFloor: Number(f.vanishedfloor),
      uidlistSignature: f.uidlist,
      dirsSignature: f.dirs,
    };
  }

  async rows(): Promise<IndexRow[]> {
    const r = await temp(() => this.pool.query(`SELECT ${ROW_COLS} FROM mail_messages WHERE folder = $1 ORDER BY uid`, [this.id]));
    return r.rows.map(toRow);
  }

  async row(uid: number): Promise<IndexRow | undefined> {
    const r = await temp(() => this.pool.query(`SELECT ${ROW_COLS} FROM mail_messages WHERE folder = $1 AND uid = $2`, [this.id, uid]));
    return r.rows[0] ? toRow(r.rows[0]) : undefined;
  }

  /**
   * What a copy of the index that is at (`uidValidity`, `uidNext`, `modseq`) lacks, in one statement (one snapshot,
   * one round trip): the folder's state, and unless that is the copy's, the UIDs expunged and the rows changed after
   * `modseq`. `vanished` is undefined when the history does not reach back that far (or under another UIDVALIDITY):
   * then the copy needs all rows.
   */
  async delta(have: { uidValidity: number; uidNext: number; modseq: number }): Promise<{ meta: FolderMeta; vanished?: number[]; changed: IndexRow[] }> {
    return temp(async () => {
      const r = await this.pool.query(
        prepared(`SELECT f.*, CASE WHEN same THEN NULL ELSE
                (SELECT coalesce(json_agg(json_build_array(${ROW_COLS}) ORDER BY uid), '[]') FROM mail_messages WHERE folder = f.id AND modseq > $2) END AS changed,
                CASE WHEN same THEN NULL ELSE
                (SELECT coalesce(array_agg(uid ORDER BY uid), '{}') FROM mail_expunged WHERE folder = f.id AND modseq > $2) END AS vanished
           FROM (SELECT *, (uidvalidity = $3 AND uidnext = $4 AND modseq = $2) AS same FROM mail_folders WHERE id = $1) f`),
        [this.id, have.modseq, have.uidValidity, have.uidNext],
      );
      const f = r.rows[0] as (FolderRow & { same: boolean; changed: unknown[][] | null; vanished: unknown[] | null }) | undefined;
      if (!f) throw new TempFailure(`mail index: folder ${this.key} is gone`);
      const meta: FolderMeta = {
        uidValidity: Number(f.uidvalidity),
        uidNext: Number(f.uidnext),
        modseq: Number(f.modseq),
        vanishedFloor: Number(f.vanishedfloor),
        uidlistSignature: f.uidlist,
        dirsSignature: f.dirs,
      };
      if (f.same) return { meta, vanished: [], changed: [] };
      const cols = ROW_COLS.split(', ');
      const changed = (f.changed ?? []).map((a) => toRow(Object.fromEntries(cols.map((c, i) => [c, a[i]]))));
      const reaches = meta.uidValidity === have.uidValidity && have.modseq >= meta.vanishedFloor;
      return { meta, ...(reaches ? { vanished: (f.vanished ?? []).map(Number) } : {}), changed };
    });
  }

  /** Rows changed (added or updated) after `modseq`, by UID: what a node's copy of the index has not seen yet. */
  async changedSince(modseq: number): Promise<IndexRow[]> {
    const r = await temp(() => this.pool.query(`SELECT ${ROW_COLS} FROM mail_messages WHERE folder = $1 AND modseq > $2 ORDER BY uid`, [this.id, modseq]));
    return r.rows.map(toRow);
  }

  /** The UIDs of the files `bases` that have one. */
  async uidsOfBases(bases: string[]): Promise<Map<string, number>> {
    const r = await temp(() => this.pool.query('SELECT uid, base FROM mail_messages WHERE folder = $1 AND base = ANY($2::text[])', [this.id, bases]));
    return new Map(r.rows.map((x) => [(x as { base: string }).base, Number((x as { uid: string }).uid)]));
  }

  /** Moves the folder to another key (a renamed folder keeps its UIDVALIDITY and UIDs, RFC 3501 §6.3.5). */
  static async rename(pool: TxQueryable, from: string, to: string): Promise<void> {
    await temp(() =>
      pool.transaction(async (c) => {
        // A stale row under the new name (a folder deleted elsewhere without its index going) gives way.
        await c.query('DELETE FROM mail_folders WHERE key = $1', [to]);
        await c.query('UPDATE mail_folders SET key = $2 WHERE key = $1', [from, to]);
      }),
    );
  }

  async uidOfBase(base: string): Promise<number | undefined> {
    const r = await temp(() => this.pool.query('SELECT uid FROM mail_messages WHERE folder = $1 AND base = $2', [this.id, base]));
    return r.rows[0] ? Number((r.rows[0] as { uid: string }).uid) : undefined;
  }

  /**
   * New files in one round trip (postern_mail_add2, schema/migrations-postgres/081-mail-write-returning.sql): those not
   * yet listed get the next UIDs in the order given under one new MODSEQ, under the folder row's lock. Returns the
   * UID of every base given (one listed before, by another node say, keeps its own) and sets lastModseq.
   */
  async addFresh(items: NonNullable<IndexChanges['add']>): Promise<Map<string, number>> {
    return (await this.addFreshWrite(items)).uids;
  }

  /**
   * addFresh, and what the write did: the folder's state just before and after it and the rows it added, so that a
   * node whose copy is at the state before can bring it up to date without the catch-up query
   * (MaildirPgIndex.fastForward).
   */
  async addFreshWrite(items: NonNullable<IndexChanges['add']>): Promise<{ uids: Map<string, number>; write?: IndexWrite }> {
    const now = Date.now();
    // RFC 8514 §3: the save date is when the message entered this mailbox.
    const saveDates = items.map((x) => Math.floor(x.saveDate ?? now));
    const r = await temp(() =>
      this.pool.query(prepared('SELECT o_base, o_uid, o_modseq, o_uidnext, o_uidvalidity, o_prev_modseq, o_prev_uidnext FROM postern_mail_add2($1, $2, $3, $4, $5, $6, $7, $8)'), [
        this.id,
        items.map((x) => x.base),
        items.map((x) => x.name),
        items.map((x) => x.size),
        items.map((x) => x.internalDate),
        items.map((x) => x.keywords),
        saveDates,
        items.map((x) => (x.headers ? JSON.stringify(x.headers.flat()) : null)),
      ]),
    );
    const rows = r.rows as { o_base: string; o_uid: number; o_modseq: number; o_uidnext: number; o_uidvalidity: number; o_prev_modseq: number; o_prev_uidnext: number }[];
    const uids = new Map(rows.map((x) => [x.o_base, Number(x.o_uid)]));
    const first = rows[0];
    if (!first) return { uids };
    const modseq = Number(first.o_modseq);
    this.lastModseq = modseq;
    const prevNext = Number(first.o_prev_uidnext);
    const added: IndexRow[] = [];
    items.forEach((x, i) => {
      const uid = uids.get(x.base);
      // Listed before this write (below the UIDNEXT it found): a copy at the state before has it already.
      if (uid === undefined || uid < prevNext) return;
      added.push({ uid, base: x.base, name: x.name, size: x.size, internalDate: x.internalDate, keywords: x.keywords, modseq, saveDate: saveDates[i]! });
    });
    const uidValidity = Number(first.o_uidvalidity);
    return {
      uids,
      write: {
        before: { uidValidity, uidNext: prevNext, modseq: Number(first.o_prev_modseq) },
        after: { uidValidity, uidNext: Number(first.o_uidnext), modseq },
        rows: added.sort((a, b) => a.uid - b.uid),
      },
    };
  }

  /**
   * apply(), and for a flag change alone (the one-round-trip path) what the write did (see addFreshWrite): the state
   * before and after, and the rows changed as a copy at the state before must make them.
   */
  async applyWrite(changes: IndexChanges, copy?: (uid: number) => IndexRow | undefined): Promise<{ uids: number[]; write?: IndexWrite }> {
    const only = (k: keyof IndexChanges) => onlyChange(changes, k);
    if (changes.remove?.length && only('remove')) return this.removeWrite(changes.remove);
    if (!(changes.update?.length && only('update'))) return { uids: await this.apply(changes) };
    // A flag change alone (STORE): one round trip (postern_mail_update2, 081), the lock and MODSEQ rule of 080.
    const u = changes.update;
    const r = await temp(() =>
      this.pool.query(prepared('SELECT o_modseq, o_uids, o_uidnext, o_uidvalidity, o_prev_modseq FROM postern_mail_update2($1, $2, $3, $4)'), [
        this.id,
        u.map((x) => x.uid),
        u.map((x) => x.name),
        u.map((x) => x.keywords),
      ]),
    );
    const x = r.rows[0] as FolderWriteRow;
    const modseq = this.wrote(x);
    if (!copy) return { uids: [] };
    const given = new Map(u.map((c) => [c.uid, c]));
    const rows: IndexRow[] = [];
    for (const uid of x.o_uids.map(Number)) {
      const old = copy(uid);
      const c = given.get(uid);
      // The copy lacks a row the shared index has: it is not at the state before; the caller pulls.
      if (!old || !c) return { uids: [] };
      rows.push({ ...old, name: c.name, keywords: c.keywords, modseq });
    }
    return { uids: [], write: folderWrite(x, { rows: rows.sort((a, b) => a.uid - b.uid) }) };
  }

  /**
   * An expunge alone (EXPUNGE, MOVE's source, a file gone from disk) in one round trip (postern_mail_remove,
   * schema/migrations-postgres/082-mail-remove.sql), with the state before and after (see addFreshWrite).
   */
  private async removeWrite(remove: number[]): Promise<{ uids: number[]; write?: IndexWrite }> {
    const r = await temp(() =>
      this.pool.query(prepared('SELECT o_modseq, o_uids, o_uidnext, o_uidvalidity, o_prev_modseq FROM postern_mail_remove($1, $2, $3)'), [this.id, remove, this.historyLimit]),
    );
    const x = r.rows[0] as FolderWriteRow;
    this.wrote(x);
    return { uids: [], write: folderWrite(x, { rows: [], removed: x.o_uids.map(Number) }) };
  }

  /** The MODSEQ a one-round-trip write (postern_mail_update2, postern_mail_remove) gave, kept as lastModseq. */
  private wrote(x: FolderWriteRow): number {
    this.lastModseq = Number(x.o_modseq);
    return this.lastModseq;
  }

  apply(changes: IndexChanges): Promise<number[]> {
    // An expunge alone or a flag change alone: the one-round-trip functions (applyWrite).
    if ((changes.remove?.length && onlyChange(changes, 'remove')) || (changes.update?.length && onlyChange(changes, 'update'))) {
      return this.applyWrite(changes).then((r) => r.uids);
    }
    return this.tx(async (c) => {
      const f = await this.folder(c, true);
      const modseq = Number(f.modseq) + 1;
      let touched = false;
      let next = Number(f.uidnext);
      let uidValidity = Number(f.uidvalidity);
      let floor = Number(f.vanishedfloor);
      if (changes.reset) {
        touched = ((await c.query('DELETE FROM mail_messages WHERE folder = $1', [this.id])).rowCount ?? 0) > 0;
        // RFC 7162 §3.2.5: expunges under the old UIDVALIDITY mean nothing under the new one.
        await c.query('DELETE FROM mail_expunged WHERE folder = $1', [this.id]);
        floor = modseq;
        uidValidity = changes.reset.uidValidity;
        next = 1;
      }
      if (changes.remove?.length) {
        const gone = await c.query('DELETE FROM mail_messages WHERE folder = $1 AND uid = ANY($2::bigint[]) RETURNING uid', [this.id, changes.remove]);
        if (gone.rows.length) {
          touched = true;
          await c.query(
            `INSERT INTO mail_expunged (folder, uid, modseq) SELECT $1, u, $3 FROM unnest($2::bigint[]) AS u
             ON CONFLICT (folder, uid) DO UPDATE SET modseq = excluded.modseq`,
            [this.id, gone.rows.map((r) => (r as { uid: string }).uid), modseq],
          );
          floor = await this.prune(c, floor);
        }
      }
      if (changes.update?.length) {
        const u = changes.update;
        const r = await c.query(
          `UPDATE mail_messages m SET name = x.name, keywords = x.keywords, modseq = $2
           FROM unnest($3::bigint[], $4::text[], $5::text[]) AS x(uid, name, keywords)
           WHERE m.folder = $1 AND m.uid = x.uid`,
          [this.id, modseq, u.map((x) => x.uid), u.map((x) => x.name), u.map((x) => x.keywords)],
        );
        touched = (r.rowCount ?? 0) > 0 || touched;
      }
      const uids: number[] = [];
      if (changes.add?.length) {
        const now = Date.now();
        const cols: { uid: number[]; base: string[]; name: string[]; size: number[]; idate: number[]; kw: string[]; sd: number[]; hd: (string | null)[] } = {
          uid: [], base: [], name: [], size: [], idate: [], kw: [], sd: [], hd: [],
        };
        for (const r of changes.add) {
          const uid = r.uid ?? next;
          uids.push(uid);
          next = Math.max(next, uid + 1);
          cols.uid.push(uid);
          cols.base.push(r.base);
          cols.name.push(r.name);
          cols.size.push(r.size);
          cols.idate.push(r.internalDate);
          cols.kw.push(r.keywords);
          // RFC 8514 §3: the save date is when the message entered this mailbox.
          cols.sd.push(Math.floor(r.saveDate ?? now));
          cols.hd.push(r.headers ? JSON.stringify(r.headers.flat()) : null);
        }
        await c.query(
          `INSERT INTO mail_messages (folder, uid, base, name, size, internal_date, keywords, modseq, save_date, headers)
           SELECT $1, x.uid, x.base, x.name, x.size, x.idate, x.kw, $2, x.sd, x.hd::jsonb
           FROM unnest($3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[], $9::bigint[], $10::text[])
             AS x(uid, base, name, size, idate, kw, sd, hd)`,
          [this.id, modseq, cols.uid, cols.base, cols.name, cols.size, cols.idate, cols.kw, cols.sd, cols.hd],
        );
        await c.query('DELETE FROM mail_expunged WHERE folder = $1 AND uid = ANY($2::bigint[])', [this.id, cols.uid]);
        touched = true;
      }
      next = Math.max(next, changes.uidNext ?? 0);
      this.lastModseq = touched || changes.reset ? modseq : Number(f.modseq);
      await c.query(
        `UPDATE mail_folders SET uidvalidity = $2, uidnext = $3, modseq = $4, vanishedfloor = $5, uidlist = COALESCE($6, uidlist) WHERE id = $1`,
        [this.id, uidValidity, next, touched || changes.reset ? modseq : Number(f.modseq), floor, changes.uidlistSignature ?? null],
      );
      return uids;
    });
  }

  /** Keeps the expunge history bounded; what is dropped raises the floor (RFC 7162 §3.2.5.2 fallback below it). */
  private async prune(c: Client, floor: number): Promise<number> {
    const n = Number(((await c.query('SELECT count(*) AS n FROM mail_expunged WHERE folder = $1', [this.id])).rows[0] as { n: string }).n);
    if (n <= this.historyLimit) return floor;
    const drop = n - this.historyLimit + Math.floor(this.historyLimit / 10);
    const top = Number(
      ((await c.query('SELECT max(modseq) AS m FROM (SELECT modseq FROM mail_expunged WHERE folder = $1 ORDER BY modseq LIMIT $2) t', [this.id, drop])).rows[0] as { m: string }).m,
    );
    await c.query('DELETE FROM mail_expunged WHERE folder = $1 AND modseq <= $2', [this.id, top]);
    return Math.max(top, floor);
  }

  async vanishedSince(modseq: number): Promise<number[] | undefined> {
    return temp(async () => {
      // One statement, one snapshot: the floor and the history agree.
      const r = await this.pool.query(
        `SELECT f.vanishedfloor, e.uid FROM mail_folders f LEFT JOIN mail_expunged e ON e.folder = f.id AND e.modseq > $2
         WHERE f.id = $1 ORDER BY e.uid`,
        [this.id, modseq],
      );
      const rows = r.rows as { vanishedfloor: string; uid: string | null }[];
      if (!rows[0] || modseq < Number(rows[0].vanishedfloor)) return undefined;
      return rows.flatMap((x) => (x.uid === null ? [] : [Number(x.uid)]));
    });
  }

  async allSearchHeaders(): Promise<ReadonlyMap<number, SearchHeaders>> {
    const r = await temp(() => this.pool.query('SELECT uid, headers FROM mail_messages WHERE folder = $1 AND headers IS NOT NULL', [this.id]));
    return new Map(r.rows.map((x) => [Number((x as { uid: string }).uid), pairs((x as { headers: unknown }).headers)]));
  }

  async searchHeaders(uid: number): Promise<SearchHeaders | undefined> {
    const r = await temp(() => this.pool.query('SELECT headers FROM mail_messages WHERE folder = $1 AND uid = $2', [this.id, uid]));
    const h = (r.rows[0] as { headers: unknown } | undefined)?.headers;
    return h === null || h === undefined ? undefined : pairs(h);
  }

  async setSearchHeaders(entries: Iterable<[number, SearchHeaders]>): Promise<void> {
    const list = [...entries];
    if (!list.length) return;
    await temp(() =>
      this.pool.query(
        `UPDATE mail_messages m SET headers = x.h::jsonb FROM unnest($2::bigint[], $3::text[]) AS x(uid, h) WHERE m.folder = $1 AND m.uid = x.uid`,
        [this.id, list.map(([u]) => u), list.map(([, h]) => JSON.stringify(h.flat()))],
      ),
    );
  }

  async setDirsSignature(v: string): Promise<void> {
    await temp(() => this.pool.query('UPDATE mail_folders SET dirs = $2 WHERE id = $1', [this.id, v]));
  }

  async firstRecentUid(claimUpTo?: number): Promise<number> {
    if (claimUpTo === undefined) {
      const v = Number((await temp(() => this.folder())).firstrecent);
      this.recentFloor = Math.max(this.recentFloor, v);
      return v;
    }
    // firstrecent only grows (GREATEST below; nothing lowers it): once it is known to be at or above claimUpTo, the
    // range [firstrecent, claimUpTo) is empty whatever it is now, and no query can say more (a SELECT of a folder
    // without new mail since this node's last claim).
    if (this.recentFloor >= claimUpTo) return this.recentFloor;
    // One statement: the old value, and the claim only when it moves up (two nodes claiming at once get each their own
    // range). The row is locked and written only when the statement's snapshot shows a claim below claimUpTo: every
    // SELECT of a folder without new mail (nearly all of them) used to lock and rewrite the folder row, which costs
    // a transaction id, WAL and a commit flush, and waited for the folder's writers. When the snapshot shows
    // firstrecent >= claimUpTo, the latest value (which only grows) is too, so the session's range
    // [firstrecent, claimUpTo) is empty either way and the snapshot's value is as good an answer. Otherwise the
    // FOR UPDATE reads the latest committed version under the lock, as before.
    const r = await temp(() =>
      this.pool.query(
        prepared(`WITH cur AS (SELECT firstrecent FROM mail_folders WHERE id = $1),
              up AS (UPDATE mail_folders f SET firstrecent = GREATEST(f.firstrecent, $2)
                       FROM (SELECT firstrecent FROM mail_folders WHERE id = $1 AND (SELECT firstrecent FROM cur) < $2 FOR UPDATE) old
                      WHERE f.id = $1 RETURNING old.firstrecent)
         SELECT COALESCE((SELECT firstrecent FROM up), (SELECT firstrecent FROM cur)) AS firstrecent`),
        [this.id, claimUpTo],
      ),
    );
    const v = (r.rows[0] as { firstrecent: string | null } | undefined)?.firstrecent;
    if (v === null || v === undefined) throw new TempFailure(`mail index: folder ${this.key} is gone`);
    this.recentFloor = Math.max(this.recentFloor, Number(v), claimUpTo);
    return Number(v);
  }

  async cached(uid: number): Promise<{ envelope?: unknown; bodystructure?: unknown }> {
    const r = await temp(() => this.pool.query('SELECT envelope, bodystructure FROM mail_messages WHERE folder = $1 AND uid = $2', [this.id, uid]));
    const x = r.rows[0] as { envelope: unknown; bodystructure: unknown } | undefined;
    if (!x) return {};
    return { ...(x.envelope !== null ? { envelope: x.envelope } : {}), ...(x.bodystructure !== null ? { bodystructure: x.bodystructure } : {}) };
  }

  async setCached(uid: number, data: { envelope?: unknown; bodystructure?: unknown }): Promise<void> {
    // Only what is given is replaced (as the SQLite backend does).
    await temp(() =>
      this.pool.query(
        `UPDATE mail_messages SET envelope = COALESCE($3::jsonb, envelope), bodystructure = COALESCE($4::jsonb, bodystructure) WHERE folder = $1 AND uid = $2`,
        [this.id, uid, data.envelope === undefined ? null : JSON.stringify(data.envelope), data.bodystructure === undefined ? null : JSON.stringify(data.bodystructure)],
      ),
    );
  }

  async close(): Promise<void> {
    /* the pool is the caller's */
  }
}
