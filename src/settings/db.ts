/**
 * The runtime settings database (`${dataDir}/settings.db`, DESIGN.md §7): opening it and applying the SQL migrations
 * of schema/migrations in order.
 *
 * better-sqlite3 ships no type declarations and @types/better-sqlite3 is not a dependency, so the few methods used
 * here are typed locally and the module is loaded through createRequire. That keeps the declaration private to this
 * file instead of an ambient `declare module` that could clash with another component's.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { PACKAGE_ROOT } from '../config/load.js';

export interface RunResult {
  changes: number;
  lastInsertRowid: number | bigint;
}

export interface Statement {
  run(...params: unknown[]): RunResult;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  /** Return only the first column of each row. */
  pluck(toggle?: boolean): this;
  /** Return each row as an array of its columns (no object built per row). */
  raw(toggle?: boolean): this;
}

type Transaction<F extends (...args: never[]) => unknown> = F & { deferred: F; immediate: F; exclusive: F };

export interface SqliteDatabase {
  readonly name: string;
  readonly open: boolean;
  readonly inTransaction: boolean;
  prepare(sql: string): Statement;
  exec(sql: string): this;
  pragma(source: string, options?: { simple?: boolean }): unknown;
  transaction<F extends (...args: never[]) => unknown>(fn: F): Transaction<F>;
  close(): this;
}

interface DatabaseOptions {
  readonly?: boolean;
  fileMustExist?: boolean;
  /** Milliseconds to wait for a lock held by another connection (better-sqlite3's busy timeout). */
  timeout?: number;
}

type DatabaseConstructor = new (filename: string, options?: DatabaseOptions) => SqliteDatabase;

const require = createRequire(import.meta.url);
let Database: DatabaseConstructor | undefined;
function driver(): DatabaseConstructor {
  Database ??= require('better-sqlite3') as DatabaseConstructor;
  return Database;
}

/** schema/migrations of the package, found from this file so postern works from any working directory. */
export const MIGRATIONS_DIR = resolve(PACKAGE_ROOT, 'schema', 'migrations');

export const SETTINGS_DB_FILE = 'settings.db';

export interface Migration {
  version: number;
  name: string;
  file: string;
}

const MIGRATION_FILE = /^(\d{3})-([a-z0-9][a-z0-9-]*)\.sql$/;

/** The migration files of `dir`, in order. Two files with one number are a packaging bug, reported as such. */
export function listMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const found: Migration[] = [];
  for (const entry of readdirSync(dir)) {
    const m = MIGRATION_FILE.exec(entry);
    if (!m) continue;
    found.push({ version: Number(m[1]), name: m[2], file: join(dir, entry) });
  }
  found.sort((a, b) => a.version - b.version);
  for (let i = 1; i < found.length; i++) {
    if (found[i].version === found[i - 1].version) {
      throw new Error(`${dir}: two migrations numbered ${String(found[i].version).padStart(3, '0')}`);
    }
  }
  return found;
}

/**
 * Applies the migrations not yet applied, each in its own transaction with its bookkeeping row, so a failed
 * migration leaves the database at the previous version. BEGIN IMMEDIATE serialises two processes starting at
 * once (the server and a CLI command): the second sees the first one's rows and applies nothing.
 * Migration files must not contain BEGIN/COMMIT themselves.
 */
export function migrate(db: SqliteDatabase, dir = MIGRATIONS_DIR): number[] {
  const migrations = listMigrations(dir);
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
  )`);
  const appliedStmt = db.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck();
  const applied = () => new Set(appliedStmt.all() as number[]);

  const known = new Set(migrations.map((m) => m.version));
  const unknown = [...applied()].filter((v) => !known.has(v));
  if (unknown.length) {
    // A newer postern wrote this database; running an older one on it could misread its tables.
    throw new Error(
      `${db.name}: has migration ${unknown.map((v) => String(v).padStart(3, '0')).join(', ')} that this postern does not know (written by a newer version)`,
    );
  }

  const done: number[] = [];
  const insert = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  for (const m of migrations) {
    if (applied().has(m.version)) continue;
    const sql = readFileSync(m.file, 'utf8');
    const step = db.transaction(() => {
      if (applied().has(m.version)) return false; // another process applied it while we waited for the lock
      db.exec(sql);
      insert.run(m.version, m.name, new Date().toISOString());
      db.pragma(`user_version = ${m.version}`);
      return true;
    });
    try {
      if (step.immediate()) done.push(m.version);
    } catch (err) {
      throw new Error(`${db.name}: migration ${m.file} failed: ${(err as Error).message}`, { cause: err });
    }
  }
  return done;
}

export interface OpenOptions {
  migrationsDir?: string;
  /** Busy timeout in milliseconds (default 5000). */
  timeout?: number;
}

/**
 * Opens (creating if needed) a settings database file: WAL so the server's readers never wait for a CLI writer,
 * foreign keys enforced, migrations applied. The file holds the smarthost password, so it is made 0600.
 */
export function openDatabase(file: string, opts: OpenOptions = {}): SqliteDatabase {
  const created = !existsSync(file);
  const db = new (driver())(file, { timeout: opts.timeout ?? 5000 });
  try {
    if (created) chmodSync(file, 0o600);
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    migrate(db, opts.migrationsDir);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/** Opens `${dataDir}/settings.db`, creating dataDir (0700) when it does not exist yet. */
export function openSettingsDatabase(dataDir: string, opts: OpenOptions = {}): SqliteDatabase {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return openDatabase(join(dataDir, SETTINGS_DB_FILE), opts);
}
