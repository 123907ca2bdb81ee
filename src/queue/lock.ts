/**
 * One server per spool. Two servers on one dataDir would each deliver every queued message, and worse, the
 * second one's recover() would take a message that the first is committing (its .eml renamed, its envelope not
 * yet) for a crash leftover and delete it, after which the first answers 250 for a message that is gone.
 *
 * The lock is a POSIX record lock held for the life of the server, taken through SQLite (better-sqlite3 is
 * already a dependency; Node has no flock): an open `BEGIN EXCLUSIVE` on `queue/server.lock`. The kernel drops it
 * when the process dies, even by SIGKILL, so there is no stale lock to clean up after a crash, and it holds across
 * containers that share the volume (a pid file does neither). SQLite also refuses a second connection of the same
 * process. The CLI never takes it: list, flush and delete are safe next to a running server.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

interface LockDatabase {
  exec(sql: string): unknown;
  close(): unknown;
}
type LockDatabaseConstructor = new (filename: string, options?: { timeout?: number }) => LockDatabase;

const require = createRequire(import.meta.url);

export const LOCK_FILE = 'server.lock';
export const PID_FILE = 'server.pid';

/** Another process (or another scheduler of this one) runs the queue of this dataDir. */
export class SpoolLockedError extends Error {
  constructor(
    readonly dir: string,
    readonly pid?: number,
  ) {
    super(
      `the queue in ${dir} is already run by another postern server${pid ? ` (pid ${pid})` : ''}; ` +
        'stop it first, or give this one another dataDir',
    );
    this.name = 'SpoolLockedError';
  }
}

export interface SpoolLock {
  release(): void;
}

/** Takes the server lock of the queue directory `dir` (which must exist), or throws SpoolLockedError. */
export function lockQueueDir(dir: string): SpoolLock {
  const Database = require('better-sqlite3') as LockDatabaseConstructor;
  const db = new Database(join(dir, LOCK_FILE), { timeout: 0 });
  try {
    // No -journal file next to the lock: nothing is ever written to this database.
    db.exec('PRAGMA journal_mode = MEMORY');
    db.exec('BEGIN EXCLUSIVE');
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') {
      let pid: number | undefined;
      try {
        pid = Number.parseInt(readFileSync(join(dir, PID_FILE), 'utf8'), 10) || undefined;
      } catch {
        // no pid file: the message just says less
      }
      throw new SpoolLockedError(dir, pid);
    }
    throw err;
  }
  // For the message above and for admins; the lock itself is what counts.
  try {
    writeFileSync(join(dir, PID_FILE), `${process.pid}\n`);
  } catch {
    // best effort
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      db.close(); // closing the connection rolls back the transaction and drops the lock
    },
  };
}
