/**
 * The connection to the PostgreSQL state store (issue 16, DESIGN.md §8 `state/`): one pool per node, the
 * migrations of schema/migrations-postgres, and a LISTEN connection that comes back by itself.
 *
 * What "PostgreSQL went away" means here:
 * - every failure of a query or of getting a connection is a TempFailure (callers map it to SMTP 451 4.3.0, IMAP
 *   NO [UNAVAILABLE], CLI exit 75): a store that cannot answer never becomes a 5xx or a silent success;
 * - nothing has to be restarted when it comes back: pg.Pool drops a connection the server closed (a restart sends
 *   57P01 admin_shutdown to every session) and opens a new one for the next query, and the listener reconnects with
 *   a back-off and tells its owner, which reloads what it may have missed (NOTIFY is not queued for the absent);
 * - `health()` says why, for /readyz.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { PACKAGE_ROOT } from '../../config/load.js';
import type { PostgresStateConfig } from '../../config/schema.js';
import { TempFailure } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { preparedName } from './prepared.js';

export { prepared } from './prepared.js';

/** schema/migrations-postgres of the package (next to the SQLite ones in schema/migrations). */
export const PG_MIGRATIONS_DIR = resolve(PACKAGE_ROOT, 'schema', 'migrations-postgres');

/**
 * int8 (count(*), bigint ids and MODSEQs) as a JS number instead of pg's default string: every value we store fits
 * in 2^53. Per pool, so another user of `pg` in the process keeps the default.
 */
const types = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/** SQLSTATE of an error from the server, if it is one. */
export function pgCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** A unique_violation: callers that insert-if-absent turn it into "exists". */
export const isUniqueViolation = (err: unknown) => pgCode(err) === '23505' || pgCode((err as { cause?: unknown })?.cause) === '23505';

/** Wraps what PostgreSQL or the network threw: already a TempFailure stays one; the rest becomes one, with the cause. */
export function toTempFailure(err: unknown, what: string): TempFailure {
  if (err instanceof TempFailure) return err;
  const code = pgCode(err);
  return new TempFailure(`state store (PostgreSQL) ${what}: ${(err as Error)?.message ?? String(err)}${code ? ` [${code}]` : ''}`, { cause: err });
}

export interface PgHealth {
  ok: boolean;
  /** Why not, when not ok: the last error. */
  error?: string;
  /** Since when (ISO time) in the current state. */
  since: string;
}

export interface Notification {
  channel: string;
  payload: string;
}

export interface PgListener {
  close(): Promise<void>;
}

export class PgState {
  readonly pool: pg.Pool;
  private state: PgHealth = { ok: true, since: new Date().toISOString() };
  private readonly listeners = new Set<{ close(): Promise<void> }>();
  private closed = false;

  constructor(
    readonly config: Pick<PostgresStateConfig, 'url' | 'poolSize' | 'connectTimeoutMs' | 'statementTimeoutMs'>,
    private readonly log: Logger,
    private readonly name = 'postern',
  ) {
    this.pool = new pg.Pool({
      connectionString: config.url,
      max: config.poolSize,
      connectionTimeoutMillis: config.connectTimeoutMs,
      idleTimeoutMillis: 30_000,
      statement_timeout: config.statementTimeoutMs,
      // A node that hangs mid-transaction (SIGSTOP, a lost network) must not hold row locks and claims for good.
      idle_in_transaction_session_timeout: Math.max(config.statementTimeoutMs * 2, 30_000),
      application_name: name,
      keepAlive: true,
      types,
    });
    // An idle connection the server closed (restart, admin_shutdown) is reported here and dropped by the pool;
    // without a listener it would be an uncaught exception.
    this.pool.on('error', (err) => this.failed(err));
  }

  health(): PgHealth {
    return this.state;
  }

  private failed(err: unknown): void {
    const error = `${(err as Error)?.message ?? String(err)}${pgCode(err) ? ` [${pgCode(err)}]` : ''}`;
    if (this.state.ok) {
      this.state = { ok: false, error, since: new Date().toISOString() };
      this.log.warn({ component: 'state', err: error }, 'PostgreSQL state store unreachable');
    } else this.state = { ...this.state, error };
  }

  private succeeded(): void {
    if (this.state.ok) return;
    this.log.info({ component: 'state', down_since: this.state.since }, 'PostgreSQL state store reachable again');
    this.state = { ok: true, since: new Date().toISOString() };
  }

  /** One statement on any pooled connection. Throws TempFailure. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    const name = preparedName(sql);
    try {
      let r: pg.QueryResult<R>;
      try {
        r = await (name ? this.pool.query<R>({ name, text: sql, values: params }) : this.pool.query<R>(sql, params));
      } catch (err) {
        // 0A000 "cached plan must not change result type": a migration (another node's, in a rolling upgrade)
        // changed a table under a prepared statement. The pool dropped that connection (pg-pool destroys a client
        // whose query failed); once more, unprepared.
        if (!name || pgCode(err) !== '0A000') throw err;
        r = await this.pool.query<R>(sql, params);
      }
      this.succeeded();
      return r;
    } catch (err) {
      if (isConnectionLevel(err)) this.failed(err);
      throw toTempFailure(err, 'query');
    }
  }

  /**
   * Runs `fn` in a transaction on one connection: COMMIT when it resolves, ROLLBACK when it throws. A failure of
   * the connection or of COMMIT is a TempFailure; an error `fn` throws itself is rethrown as it is (a refusal of
   * the caller's own, e.g. a SettingsError).
   */
  async transaction<T>(fn: (c: pg.PoolClient) => Promise<T>, isolation: 'READ COMMITTED' | 'REPEATABLE READ' | 'SERIALIZABLE' = 'READ COMMITTED'): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      this.failed(err);
      throw toTempFailure(err, 'connect');
    }
    let broken = false;
    // A checked-out client whose connection dies (PostgreSQL restarted, the database dropped) emits 'error' besides
    // failing its query; the pool listens only to idle clients, and an 'error' event nobody listens to ends the
    // process. The failed query reports it to the caller; this only marks the connection broken.
    const onError = (err: Error) => {
      broken = true;
      this.failed(err);
    };
    client.on('error', onError);
    try {
      await client.query(`BEGIN ISOLATION LEVEL ${isolation}`);
      const out = await fn(client);
      await client.query('COMMIT');
      this.succeeded();
      return out;
    } catch (err) {
      broken = isConnectionLevel(err);
      if (broken) this.failed(err);
      await client.query('ROLLBACK').catch(() => (broken = true));
      if (pgCode(err) || broken || err instanceof pg.DatabaseError) throw toTempFailure(err, 'transaction');
      throw err;
    } finally {
      client.off('error', onError);
      // A connection that failed is not given back: the next user would inherit its broken state.
      client.release(broken ? true : undefined);
    }
  }

  /** SELECT 1: for /readyz and for tests waiting for the store to come back. */
  async ping(): Promise<PgHealth> {
    try {
      await this.query('SELECT 1');
    } catch {
      /* recorded in state */
    }
    return this.health();
  }

  /**
   * Applies the migrations of `dir` not yet applied, each in its own transaction with its bookkeeping row. A
   * transaction-level advisory lock serialises nodes starting at once: the second waits, then sees the first
   * one's rows and applies nothing. Returns the versions it applied.
   */
  async migrate(dir = PG_MIGRATIONS_DIR): Promise<number[]> {
    const migrations = readdirSync(dir)
      .map((f) => /^(\d{3})-([a-z0-9-]+)\.sql$/.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ version: Number(m[1]), name: m[2], file: join(dir, m[0]) }))
      .sort((a, b) => a.version - b.version);
    const done: number[] = [];
    await this.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`).catch(async (err) => {
      // Two nodes creating the table at once: one of them loses the race on the catalog; the table is there.
      if (pgCode((err as TempFailure).cause) !== '23505') throw err;
    });
    const known = new Set(migrations.map((m) => m.version));
    const applied = (await this.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version);
    const unknown = applied.filter((v) => !known.has(v));
    if (unknown.length) {
      // A newer postern migrated this database: an older one could misread its tables.
      throw new Error(`state store: has migration ${unknown.join(', ')} that this postern does not know (written by a newer version)`);
    }
    for (const m of migrations) {
      const sql = readFileSync(m.file, 'utf8');
      const did = await this.transaction(async (c) => {
        await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
        const has = await c.query('SELECT 1 FROM schema_migrations WHERE version = $1', [m.version]);
        if (has.rowCount) return false;
        await c.query(sql);
        await c.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
        return true;
      });
      if (did) done.push(m.version);
    }
    if (done.length) this.log.info({ component: 'state', applied: done }, 'PostgreSQL state store migrated');
    return done;
  }

  /**
   * LISTEN on `channels` on a connection of its own (a pooled one would be handed to others). When that connection
   * is lost it is opened again (back-off 100 ms doubling to 2 s) and `onConnect` runs after each (re)LISTEN, the
   * first included: NOTIFYs sent meanwhile are lost, so the owner reloads what they would have said.
   */
  listen(channels: string[], onNotify: (n: Notification) => void, onConnect: () => void): PgListener {
    let client: pg.Client | undefined;
    let stopped = false;
    let delay = 100;
    let timer: NodeJS.Timeout | undefined;
    const connect = async () => {
      if (stopped || this.closed) return;
      const c = new pg.Client({
        connectionString: this.config.url,
        connectionTimeoutMillis: this.config.connectTimeoutMs,
        application_name: `${this.name} listen`,
        keepAlive: true,
        types,
      });
      let lost = false;
      const retry = (err: unknown) => {
        if (lost) return;
        lost = true;
        client = undefined;
        void c.end().catch(() => {});
        if (stopped || this.closed) return;
        this.failed(err);
        timer = setTimeout(() => void connect(), delay);
        timer.unref();
        delay = Math.min(delay * 2, 2000);
      };
      c.on('error', retry);
      c.on('end', () => retry(new Error('LISTEN connection closed')));
      c.on('notification', (n) => onNotify({ channel: n.channel, payload: n.payload ?? '' }));
      try {
        await c.connect();
        for (const ch of channels) await c.query(`LISTEN ${quoteIdent(ch)}`);
      } catch (err) {
        retry(err);
        return;
      }
      if (stopped) {
        await c.end().catch(() => {});
        return;
      }
      client = c;
      delay = 100;
      this.succeeded();
      try {
        onConnect();
      } catch (err) {
        this.log.error({ component: 'state', err }, 'LISTEN reconnect handler failed');
      }
    };
    void connect();
    const handle = {
      close: async () => {
        stopped = true;
        if (timer) clearTimeout(timer);
        this.listeners.delete(handle);
        await client?.end().catch(() => {});
      },
    };
    this.listeners.add(handle);
    return handle;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.listeners].map((l) => l.close()));
    await this.pool.end().catch(() => {});
  }
}

/** Key of the migration lock (pg_advisory_xact_lock takes a bigint): "postern" in ASCII. */
const MIGRATION_LOCK = 0x706f737465726e;

/** Errors that say the connection or the server is gone, rather than that one statement was refused. */
function isConnectionLevel(err: unknown): boolean {
  const code = pgCode(err);
  if (code) return /^(08|53|57P|58)/.test(code);
  return isNetworkError(err);
}

/**
 * What the network or pg's client throws when there is no usable connection: Node socket errors (ECONNREFUSED,
 * ECONNRESET: they carry `syscall`), "Connection terminated", the pool's connect timeout. Not an error of the
 * caller's own code (a SettingsError thrown inside a transaction), which goes back to the caller unchanged.
 */
function isNetworkError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (typeof (err as { syscall?: unknown }).syscall === 'string') return true;
  return /connection terminated|timeout exceeded when trying to connect|connection error|not queryable|connection ended|Connection terminated/i.test(err.message);
}

/** A channel name as an SQL identifier (LISTEN takes no parameters). */
function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
