/**
 * Runtime settings on PostgreSQL (issue 16): the shared store holds the domains, pseudonyms, users and key/value
 * tables; each node's settings.db keeps a copy of them, which the Settings class reads and validates against as
 * it always has (the resolver asks the settings on every RCPT TO: a lookup must stay an in-memory read, and the
 * store's checks stay in one place).
 *
 * A change (Settings.apply, from the admin API or the CLI) runs under a cluster-wide lock, in one PostgreSQL
 * transaction: pg_advisory_xact_lock, reload the copy from PostgreSQL (so the checks see every node's last
 * change), run the change on settings.db, write the rows it changed back, bump settings_version and NOTIFY
 * postern_settings; apply() resolves after COMMIT. If anything fails the copy is put back as PostgreSQL has it
 * and the caller gets a TempFailure: nothing was changed anywhere.
 *
 * The other nodes LISTEN: a notification makes them reload, so a change made through node A acts on node B as
 * soon as the notification arrives (milliseconds). A node whose LISTEN connection was down reloads when it is back
 * (notifications are not kept for the absent), and a poll of settings_version every few seconds is the backstop.
 *
 * Writes that do not go through apply() (the mailbox registry holding an orphaned account's overrides) mark the
 * copy dirty and are pushed in the background, retried until PostgreSQL takes them.
 */
import type pg from 'pg';
import type { Logger } from '../../lib/logger.js';
import type { SettingsErrorCode } from '../../settings/errors.js';
import type { Settings, SharedSettings } from '../../settings/store.js';
import { toTempFailure, type PgListener, type PgState } from './pool.js';
import { Mutex } from '../../lib/mutex.js';

/** The replicated tables and their primary keys (schema/migrations-postgres/001-settings.sql). */
export const SHARED_SETTINGS_TABLES: Record<string, string[]> = {
  domains: ['name'],
  pseudonyms: ['id'],
  users: ['login_key'],
  settings: ['key'],
};

export const SETTINGS_CHANNEL = 'postern_settings';
/** Key of the advisory lock that serialises settings changes across nodes. */
const SETTINGS_LOCK = 0x706f73745f73;

type Row = Record<string, unknown>;
/** Per table: primary key (JSON) → row. */
type Rows = Map<string, Map<string, Row>>;

interface Queryable {
  query<R extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
}

export interface PgSettingsSyncOptions {
  pg: PgState;
  settings: Settings;
  log: Logger;
  /** This node's id, in the NOTIFY payload (for logs). */
  nodeId: string;
  /** Backstop poll of settings_version; default 5000 ms. */
  pollMs?: number;
}

export class PgSettingsSync implements SharedSettings {
  private readonly pg: PgState;
  private readonly settings: Settings;
  private readonly log: Logger;
  private readonly mutex = new Mutex();
  private readonly columns = new Map<string, string[]>();
  /** The rows as PostgreSQL had them at the last sync: what settings.db is compared with to find a change. */
  private base: Rows = new Map();
  private version = -1;
  private inApply = false;
  private dirty = false;
  private reloadQueued = false;
  private listener: PgListener | undefined;
  private poll: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly opts: PgSettingsSyncOptions) {
    this.pg = opts.pg;
    this.settings = opts.settings;
    this.log = opts.log;
    for (const table of Object.keys(SHARED_SETTINGS_TABLES)) {
      const cols = (this.settings.db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name);
      this.columns.set(table, cols);
    }
  }

  /** The version of the shared settings this node's copy is at (-1 before start). */
  get syncedVersion(): number {
    return this.version;
  }

  /**
   * First sync, then LISTEN and poll. A PostgreSQL that has never had settings (version 0) receives this node's
   * settings.db as its first content: one node moved to a cluster keeps its domains. Otherwise the copy is
   * replaced by PostgreSQL's. Throws TempFailure when PostgreSQL cannot be reached: a node that does not know the
   * domains would refuse their mail as unknown (5xx), so it does not start on a guess.
   */
  async start(): Promise<void> {
    this.settings.attachShared(this);
    await this.mutex.run(() => this.sync({ seed: true }));
    this.listener = this.pg.listen(
      [SETTINGS_CHANNEL],
      (n) => {
        const v = Number(n.payload.split(' ')[0]);
        if (!(v <= this.version)) this.queueReload('notify');
      },
      () => this.queueReload('listen connected'),
    );
    this.poll = setInterval(() => void this.checkVersion(), this.opts.pollMs ?? 5000);
    this.poll.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.poll) clearInterval(this.poll);
    await this.listener?.close();
    await this.mutex.run(async () => undefined);
  }

  apply<T>(fn: () => T): Promise<T> {
    return this.mutex.run(async () => {
      let out!: T;
      await this.sync({ change: () => (out = fn()) });
      return out;
    });
  }

  written(): void {
    if (this.inApply) return;
    this.dirty = true;
    this.queueReload('local write');
  }

  /** A reload (and push of a dirty copy) soon; several asked for meanwhile are one. */
  private queueReload(why: string): void {
    if (this.reloadQueued || this.closed) return;
    this.reloadQueued = true;
    void this.mutex.run(async () => {
      this.reloadQueued = false;
      try {
        await this.sync({});
      } catch (err) {
        this.log.warn({ component: 'state', err: (err as Error).message, why }, 'settings: reload from PostgreSQL failed; retried');
      }
    });
  }

  private async checkVersion(): Promise<void> {
    if (this.closed) return;
    try {
      const r = await this.pg.query<{ version: number }>('SELECT version FROM settings_version');
      if (this.dirty || r.rows[0]?.version !== this.version) this.queueReload('poll');
    } catch {
      /* pool health says why; next poll retries */
    }
  }

  /**
   * One sync in one transaction (the caller holds the mutex): push this process's unpushed writes, load
   * PostgreSQL's rows into settings.db, run `change` and push what it changed.
   *
   * settings.db may be one file for several processes: the CLI and every node whose dataDir is the one shared mount
   * each open it and sync it (the worker processes of a node only read it). So what is pushed is only what this
   * process wrote (`dirty`, or the rows `change` changed), never "the file differs from my last sync": that difference may be
   * another process's copy — one it loaded while a change was still uncommitted — and pushing it deleted that
   * change cluster-wide (a relay domain added through node A vanished when node B's reload overlapped it). The
   * advisory lock orders the file's writers: a change takes it exclusively, a reload shared (reloads of many
   * nodes do not queue behind each other), so a reload never loads the rows while a change is uncommitted and
   * settings.db is written in the order PostgreSQL committed. `change` runs on the reloaded copy inside one SQLite
   * transaction, so no other process writes the file between the reload, the change and the read-back.
   */
  private async sync(opts: { seed?: boolean; change?: () => void }): Promise<void> {
    let pushed = false;
    let fresh: Rows | undefined;
    /** This process's copy as it was before a push of its own writes (put back if the push fails). */
    let mine: Rows | undefined;
    /** The copy loaded under the lock, once `change` has been committed to settings.db on top of it. */
    let changed: Rows | undefined;
    try {
      const version = await this.pg.transaction(async (c) => {
        const locking = opts.seed || opts.change !== undefined || this.dirty;
        await c.query(locking ? 'SELECT pg_advisory_xact_lock($1)' : 'SELECT pg_advisory_xact_lock_shared($1)', [SETTINGS_LOCK]);
        let v = (await c.query<{ version: number }>('SELECT version FROM settings_version')).rows[0].version;
        if (opts.seed ? v === 0 : this.dirty) {
          // The first node on an empty database brings its settings along; a write of this process outside apply()
          // (the mailbox registry moving a renamed account's overrides) is pushed under the exclusive lock.
          mine = this.readLocal();
          if (await this.push(c, opts.seed ? emptyRows() : this.base, mine)) pushed = true;
        }
        const loaded = await this.load(c);
        fresh = loaded;
        if (opts.change) {
          const change = opts.change;
          const after = this.settings.db.transaction(() => {
            this.replaceLocal(loaded);
            this.inApply = true;
            try {
              change();
            } finally {
              this.inApply = false;
            }
            return this.readLocal();
          }).immediate();
          changed = loaded;
          if (await this.push(c, loaded, after)) pushed = true;
          fresh = after;
        } else {
          this.replaceLocal(loaded);
        }
        if (pushed) {
          v = (await c.query<{ version: number }>('UPDATE settings_version SET version = version + 1 RETURNING version')).rows[0].version;
          await c.query('SELECT pg_notify($1, $2)', [SETTINGS_CHANNEL, `${v} ${this.opts.nodeId}`]);
        }
        return v;
      });
      this.base = fresh!;
      this.version = version;
      this.dirty = false;
    } catch (err) {
      // PostgreSQL has none of this transaction (or, if COMMIT's answer was lost, the next reload brings it). A
      // change that threw in `change` was rolled back with its SQLite transaction; one that failed in PostgreSQL
      // after it is taken out of settings.db again (the copy as loaded under the lock). Unpushed writes of this
      // process stay, still dirty.
      if (this.dirty && mine && fresh !== undefined) this.replaceLocal(mine);
      else if (changed) this.replaceLocal(changed);
      this.settings.invalidate();
      if (isSettingsError(err)) throw err;
      throw toTempFailure(err, 'settings');
    }
  }

  /** Writes to PostgreSQL the rows `now` has that `before` has not, or has otherwise; deletes the rows it lost. */
  private async push(c: Queryable, before: Rows, now: Rows): Promise<boolean> {
    let any = false;
    // Deletes first: a pseudonym removed and added back under a new id would otherwise hit the unique address index.
    for (const [table, pk] of Object.entries(SHARED_SETTINGS_TABLES)) {
      const b = before.get(table) ?? new Map();
      const n = now.get(table) ?? new Map();
      for (const [key, row] of b) {
        if (n.has(key)) continue;
        await c.query(`DELETE FROM ${table} WHERE ${pk.map((k, i) => `${k} = $${i + 1}`).join(' AND ')}`, pk.map((k) => row[k]));
        any = true;
      }
    }
    for (const [table, pk] of Object.entries(SHARED_SETTINGS_TABLES)) {
      const cols = this.columns.get(table)!;
      const b = before.get(table) ?? new Map();
      const n = now.get(table) ?? new Map();
      const nonKey = cols.filter((col) => !pk.includes(col));
      const sql =
        `INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')}) ` +
        `ON CONFLICT (${pk.join(', ')}) DO UPDATE SET ${nonKey.map((col) => `${col} = excluded.${col}`).join(', ')}`;
      for (const [key, row] of n) {
        const old = b.get(key);
        if (old && sameRow(old, row)) continue;
        await c.query(sql, cols.map((col) => row[col]));
        any = true;
      }
    }
    return any;
  }

  private async load(c: Queryable): Promise<Rows> {
    const rows: Rows = new Map();
    for (const [table, pk] of Object.entries(SHARED_SETTINGS_TABLES)) {
      const cols = this.columns.get(table)!;
      const r = await c.query<Row>(`SELECT ${cols.join(', ')} FROM ${table}`);
      rows.set(table, new Map(r.rows.map((row) => [keyOf(row, pk), row])));
    }
    return rows;
  }

  private readLocal(): Rows {
    const rows: Rows = new Map();
    for (const [table, pk] of Object.entries(SHARED_SETTINGS_TABLES)) {
      const cols = this.columns.get(table)!;
      const all = this.settings.db.prepare(`SELECT ${cols.join(', ')} FROM ${table}`).all() as Row[];
      rows.set(table, new Map(all.map((row) => [keyOf(row, pk), row])));
    }
    return rows;
  }

  /** Makes the four tables of settings.db hold exactly `rows`, in one SQLite transaction. */
  private replaceLocal(rows: Rows): void {
    const db = this.settings.db;
    db.transaction(() => {
      for (const table of Object.keys(SHARED_SETTINGS_TABLES)) {
        const cols = this.columns.get(table)!;
        db.prepare(`DELETE FROM ${table}`).run();
        const ins = db.prepare(`INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`);
        for (const row of rows.get(table)?.values() ?? []) ins.run(...cols.map((col) => row[col] ?? null));
      }
    }).immediate();
    this.settings.invalidate();
  }
}

function emptyRows(): Rows {
  return new Map(Object.keys(SHARED_SETTINGS_TABLES).map((t) => [t, new Map()]));
}

function keyOf(row: Row, pk: string[]): string {
  return JSON.stringify(pk.map((k) => row[k]));
}

function sameRow(a: Row, b: Row): boolean {
  for (const k of Object.keys(b)) if ((a[k] ?? null) !== (b[k] ?? null)) return false;
  return true;
}

function isSettingsError(err: unknown): err is { code: SettingsErrorCode } {
  return (err as Error | null)?.name === 'SettingsError';
}
