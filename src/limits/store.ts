/**
 * Where the send-limit counters survive a restart: `${dataDir}/limits.db`, a small SQLite file of its own, one row
 * per key and minute of the last hour.
 *
 * Why not a table of settings.db: the counters change with every message, the settings almost never. Kept apart,
 * the hot writes do not share a WAL and a write lock with `postern settings set` / the admin API, and this file can
 * run with synchronous=NORMAL (WAL commits are not fsynced; a power cut may lose the last seconds of counts, which
 * is a lost count, not lost mail) while settings.db keeps the full fsync its contents deserve. The rows are
 * throwaway by nature: a lost or deleted file means a fresh hour for everyone, nothing worse.
 *
 * The interface is what a state/ backend (DESIGN.md §8, postgres) would implement.
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { SqliteDatabase } from '../settings/db.js';
import type { BucketRow } from './window.js';

export interface CounterStore {
  /** The rows of minutes after `sinceMinute`. */
  load(sinceMinute: number): BucketRow[];
  /** Upserts `rows` (whole values) and deletes rows of minutes up to `dropUpTo`, in one transaction. */
  save(rows: BucketRow[], dropUpTo: number): void;
  close(): void;
}

export const LIMITS_DB_FILE = 'limits.db';

const require = createRequire(import.meta.url);

export class SqliteCounterStore implements CounterStore {
  private readonly db: SqliteDatabase;
  private readonly saveTx: (rows: BucketRow[], dropUpTo: number) => void;
  private readonly selectStmt;

  constructor(file: string) {
    const created = !existsSync(file);
    const Database = require('better-sqlite3') as new (f: string, o?: { timeout?: number }) => SqliteDatabase;
    this.db = new Database(file, { timeout: 5000 });
    if (created) chmodSync(file, 0o600);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`CREATE TABLE IF NOT EXISTS send_counts (
      key        TEXT NOT NULL,     -- "user:<lower-case login>" or "ip:<address or IPv6 /64>"
      minute     INTEGER NOT NULL,  -- minutes since the epoch
      messages   INTEGER NOT NULL,
      recipients INTEGER NOT NULL,
      PRIMARY KEY (key, minute)
    ) WITHOUT ROWID`);
    this.selectStmt = this.db.prepare('SELECT key, minute, messages, recipients FROM send_counts WHERE minute > ?');
    const upsert = this.db.prepare(`INSERT INTO send_counts (key, minute, messages, recipients) VALUES (?, ?, ?, ?)
      ON CONFLICT (key, minute) DO UPDATE SET messages = excluded.messages, recipients = excluded.recipients`);
    const remove = this.db.prepare('DELETE FROM send_counts WHERE key = ? AND minute = ?');
    const drop = this.db.prepare('DELETE FROM send_counts WHERE minute <= ?');
    this.saveTx = this.db.transaction((rows: BucketRow[], dropUpTo: number) => {
      for (const r of rows) {
        if (r.messages === 0 && r.recipients === 0) remove.run(r.key, r.minute);
        else upsert.run(r.key, r.minute, r.messages, r.recipients);
      }
      drop.run(dropUpTo);
    });
  }

  static open(dataDir: string): SqliteCounterStore {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    return new SqliteCounterStore(join(dataDir, LIMITS_DB_FILE));
  }

  load(sinceMinute: number): BucketRow[] {
    return this.selectStmt.all(sinceMinute) as BucketRow[];
  }

  save(rows: BucketRow[], dropUpTo: number): void {
    this.saveTx(rows, dropUpTo);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
