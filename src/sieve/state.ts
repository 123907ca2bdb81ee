/**
 * What Sieve at delivery remembers between messages, in `${dataDir}/sieve.db` (schema/sieve-migrations):
 * vacation replies sent (RFC 5230 §4.2: one per sender per :days), duplicate ids (RFC 7352) and the out-of-office
 * IT sets for a user (admin API / CLI).
 *
 * A file of its own, like limits.db: the rows change with mail traffic, settings.db almost never, and the server
 * and the CLI both open it (WAL: a CLI write never blocks delivery for long). Expired rows are dropped as new ones
 * are written, so the tables stay the size of the traffic inside the longest window.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PACKAGE_ROOT } from '../config/load.js';
import { openDatabase, type SqliteDatabase, type Statement } from '../settings/db.js';

export const SIEVE_DB_FILE = 'sieve.db';
export const SIEVE_MIGRATIONS_DIR = resolve(PACKAGE_ROOT, 'schema', 'sieve-migrations');

/** An out-of-office as IT sets it (times are ISO 8601). */
export interface OutOfOffice {
  login: string;
  start?: string;
  end?: string;
  subject?: string;
  text: string;
  /** Days between two replies to one sender (RFC 5230 §4.1 :days). */
  days: number;
  updatedAt: string;
  updatedBy?: string;
}

interface OooRow {
  user: string;
  start_at: string | null;
  end_at: string | null;
  subject: string | null;
  body: string;
  days: number;
  updated_at: string;
  updated_by: string | null;
}

const key = (s: string) => s.trim().toLowerCase();

export class SieveState {
  private readonly db: SqliteDatabase;
  private lastPurge = 0;
  /**
   * Statements every delivery runs, prepared once: better-sqlite3's prepare() compiles the SQL each time, and the
   * out-of-office lookup of each Sieve delivery spent more in prepare() than in the query (issue 11 profile).
   */
  private readonly stmts = new Map<string, Statement>();

  constructor(file: string) {
    this.db = openDatabase(file, { migrationsDir: SIEVE_MIGRATIONS_DIR });
  }

  private prepared(sql: string): Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  static open(dataDir: string): SieveState {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    return new SieveState(join(dataDir, SIEVE_DB_FILE));
  }

  /** Whether `user` answered `sender` under `handle` and the window has not passed yet. */
  vacationRecent(user: string, sender: string, handle: string, now: number): boolean {
    const row = this.prepared('SELECT expires_at FROM vacation_replies WHERE user = ? AND sender = ? AND handle = ?').get(key(user), key(sender), handle) as
      | { expires_at: number }
      | undefined;
    return row !== undefined && row.expires_at > now;
  }

  /** Records a reply sent now; no other to this sender under this handle for `seconds`. */
  recordVacation(user: string, sender: string, handle: string, seconds: number, now: number): void {
    this.db
      .prepare(
        `INSERT INTO vacation_replies (user, sender, handle, sent_at, expires_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (user, sender, handle) DO UPDATE SET sent_at = excluded.sent_at, expires_at = excluded.expires_at`,
      )
      .run(key(user), key(sender), handle, now, now + seconds * 1000);
    this.purge(now);
  }

  /** RFC 7352 §3: whether `id` was recorded for `user` and has not expired. */
  duplicateSeen(user: string, id: string, now: number): boolean {
    const row = this.prepared('SELECT expires_at FROM duplicate_ids WHERE user = ? AND id = ?').get(key(user), id) as { expires_at: number } | undefined;
    return row !== undefined && row.expires_at > now;
  }

  /** RFC 7352 §3: recorded only once the script ran to its end and the message was delivered. */
  recordDuplicate(user: string, id: string, seconds: number, now: number): void {
    this.db
      .prepare('INSERT INTO duplicate_ids (user, id, expires_at) VALUES (?, ?, ?) ON CONFLICT (user, id) DO UPDATE SET expires_at = excluded.expires_at')
      .run(key(user), id, now + seconds * 1000);
    this.purge(now);
  }

  getOutOfOffice(login: string): OutOfOffice | undefined {
    const row = this.prepared('SELECT * FROM out_of_office WHERE user = ?').get(key(login)) as OooRow | undefined;
    return row ? fromRow(row) : undefined;
  }

  listOutOfOffice(): OutOfOffice[] {
    return (this.db.prepare('SELECT * FROM out_of_office ORDER BY user').all() as OooRow[]).map(fromRow);
  }

  /**
   * Sets (replaces) a user's out-of-office. Its vacation handle is a hash of subject and text (src/sieve/vacation.ts),
   * so a new text is news to people already answered and they get it once, as with Pigeonhole's default handle.
   */
  setOutOfOffice(o: Omit<OutOfOffice, 'updatedAt'> & { updatedAt?: string }): OutOfOffice {
    const updatedAt = o.updatedAt ?? new Date().toISOString();
    this.db
      .prepare(
        `INSERT INTO out_of_office (user, start_at, end_at, subject, body, days, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (user) DO UPDATE SET start_at = excluded.start_at, end_at = excluded.end_at, subject = excluded.subject,
           body = excluded.body, days = excluded.days, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
      )
      .run(key(o.login), o.start ?? null, o.end ?? null, o.subject ?? null, o.text, o.days, updatedAt, o.updatedBy ?? null);
    return this.getOutOfOffice(o.login)!;
  }

  /** Clears a user's out-of-office; false when there was none. */
  clearOutOfOffice(login: string): boolean {
    return this.db.prepare('DELETE FROM out_of_office WHERE user = ?').run(key(login)).changes > 0;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** Drops expired rows, at most once a minute. */
  private purge(now: number): void {
    if (now - this.lastPurge < 60_000) return;
    this.lastPurge = now;
    this.db.prepare('DELETE FROM vacation_replies WHERE expires_at <= ?').run(now);
    this.db.prepare('DELETE FROM duplicate_ids WHERE expires_at <= ?').run(now);
  }
}

function fromRow(r: OooRow): OutOfOffice {
  return {
    login: r.user,
    ...(r.start_at ? { start: r.start_at } : {}),
    ...(r.end_at ? { end: r.end_at } : {}),
    ...(r.subject !== null ? { subject: r.subject } : {}),
    text: r.body,
    days: r.days,
    updatedAt: r.updated_at,
    ...(r.updated_by ? { updatedBy: r.updated_by } : {}),
  };
}
