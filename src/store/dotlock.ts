/**
 * Dovecot's dot-lock protocol (src/lib/file-dotlock.c, with `dotlock_use_excl = yes`, its default), so that postern
 * and Dovecot can take turns on one Maildir: `<file>.lock` is created with O_CREAT|O_EXCL and holds "<pid>:<host>".
 *
 * A lock another process holds is waited for. It is taken over ("overridden") as Dovecot does it:
 * - at once when it names a process of this host that no longer exists (checked only for locks older than 2 s, as
 *   a lock just created may not have its PID written yet);
 * - otherwise when neither the lock nor the file it protects changed for `staleMs` (Dovecot: 120 s for
 *   dovecot-uidlist and dovecot-keywords).
 * Releasing removes the lock only if it is still ours (same inode): one overridden meanwhile belongs to someone else.
 */
import { closeSync, constants, fstatSync, lstatSync } from 'node:fs';
import { lstat, readFile, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { openPooled, unlinkPooled, writeAllSync } from '../lib/durable-fs.js';
import { errorCode } from './fs-util.js';

/** Dovecot's MAILDIR_UIDLIST_LOCK_STALE_TIMEOUT and KEYWORDS_LOCK_STALE_TIMEOUT. */
export const DOTLOCK_STALE_MS = 120_000;
/** file-dotlock.c STALE_PID_CHECK_SECS. */
const PID_CHECK_AGE_MS = 2_000;

export class DotlockTimeout extends Error {
  constructor(readonly path: string) {
    super(`timed out waiting for ${path}.lock`);
    this.name = 'DotlockTimeout';
  }
}

export interface DotlockOptions {
  /** Give up after this long (default: staleMs + 2 s, as Dovecot's mail_storage_get_lock_timeout does). */
  timeoutMs?: number;
  staleMs?: number;
}

export interface Dotlock {
  readonly lockPath: string;
  /** Removes the lock file if it is still ours; returns false when someone overrode it meanwhile. */
  release(): Promise<boolean>;
}

interface Seen {
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
}

/** Takes `<path>.lock`; waits (polling with a growing delay, up to 1 s) while another live process holds it. */
export async function acquireDotlock(path: string, opts: DotlockOptions = {}): Promise<Dotlock> {
  const staleMs = opts.staleMs ?? DOTLOCK_STALE_MS;
  const deadline = Date.now() + (opts.timeoutMs ?? staleMs + 2_000);
  const lockPath = `${path}.lock`;
  const content = `${process.pid}:${hostname()}`;
  let lastLock: Seen | undefined;
  let lastFile: Seen | undefined;
  let lastChange = Date.now();
  let wait = 10;
  for (;;) {
    try {
      // The create on the pool (a new inode waits for the journal under load), the rest synchronous: a few bytes into
      // the page cache, an fstat and a close cost microseconds, where the promise API cost a FileHandle and a
      // hand-over to the pool each (issue 11: ~3 % of the process under IMAP load, for every APPEND and EXPUNGE).
      const fd = await openPooled(lockPath, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
      let ino: number;
      try {
        writeAllSync(fd, Buffer.from(content));
        ino = fstatSync(fd).ino;
      } finally {
        closeSync(fd);
      }
      return { lockPath, release: () => releaseIfOurs(lockPath, ino) };
    } catch (err) {
      if (errorCode(err) !== 'EEXIST') throw err;
    }

    // Held: stale, or wait.
    const lockSt = await lstat(lockPath).catch((err: unknown) => {
      if (errorCode(err) === 'ENOENT') return undefined;
      throw err;
    });
    if (!lockSt) continue; // released meanwhile
    const now = Date.now();
    const seenLock: Seen = { ino: lockSt.ino, size: lockSt.size, mtimeMs: lockSt.mtimeMs, ctimeMs: lockSt.ctimeMs };
    if (!sameSeen(seenLock, lastLock)) {
      // First sight counts from the lock's own time (Dovecot's update_change_info), later changes from now.
      lastChange = lastLock === undefined ? Math.min(now, Math.max(lockSt.mtimeMs, lockSt.ctimeMs)) : now;
      lastLock = seenLock;
    }
    if (now - lockSt.mtimeMs >= PID_CHECK_AGE_MS) {
      const pid = await localPid(lockPath);
      if (pid !== undefined && (pid === process.pid || !processExists(pid))) {
        // A dead holder on this host (or a leftover of an earlier process with our PID: within this process the
        // callers serialise on a mutex before they lock).
        if (await overrideIfUnchanged(lockPath, seenLock)) continue;
      }
    }
    if (now - lastChange > staleMs) {
      const fileSt = await stat(path).catch(() => undefined);
      if (fileSt) {
        const seenFile: Seen = { ino: fileSt.ino, size: fileSt.size, mtimeMs: fileSt.mtimeMs, ctimeMs: fileSt.ctimeMs };
        if (!sameSeen(seenFile, lastFile)) {
          if (lastFile !== undefined) lastChange = now;
          lastFile = seenFile;
        }
      }
      if (now - lastChange > staleMs && (await overrideIfUnchanged(lockPath, seenLock))) continue;
    }
    if (now >= deadline) throw new DotlockTimeout(path);
    await new Promise((r) => setTimeout(r, Math.min(wait, Math.max(1, deadline - now))));
    wait = Math.min(wait * 2, 1_000);
  }
}

/** Runs `section` holding `<path>.lock`. */
export async function withDotlock<T>(path: string, section: () => Promise<T>, opts?: DotlockOptions): Promise<T> {
  const lock = await acquireDotlock(path, opts);
  try {
    return await section();
  } finally {
    await lock.release();
  }
}

function sameSeen(a: Seen, b: Seen | undefined): boolean {
  return b !== undefined && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}

async function releaseIfOurs(lockPath: string, ino: number): Promise<boolean> {
  try {
    if (lstatSync(lockPath).ino !== ino) return false;
    await unlinkPooled(lockPath);
    return true;
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return false;
    throw err;
  }
}

/** The PID in a lock written by a process of this host ("<pid>:<host>"); undefined for other hosts or garbage. */
async function localPid(lockPath: string): Promise<number | undefined> {
  let text: string;
  try {
    text = (await readFile(lockPath, 'utf8')).replace(/\n$/, '');
  } catch {
    return undefined;
  }
  const colon = text.indexOf(':');
  if (colon < 0 || text.slice(colon + 1) !== hostname()) return undefined;
  const pid = Number(text.slice(0, colon));
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errorCode(err) !== 'ESRCH';
  }
}

/** Removes a stale lock unless it changed since it was judged (someone else may have just overridden it). */
async function overrideIfUnchanged(lockPath: string, judged: Seen): Promise<boolean> {
  const st = await lstat(lockPath).catch(() => undefined);
  if (!st) return true;
  if (st.ino !== judged.ino || st.mtimeMs !== judged.mtimeMs || st.size !== judged.size) return false;
  await unlink(lockPath).catch((err: unknown) => {
    if (errorCode(err) !== 'ENOENT') throw err;
  });
  // Dovecot sleeps 100-200 ms after an override so that two overriders do not remove each other's new lock.
  await new Promise((r) => setTimeout(r, 100 + Math.floor(Math.random() * 100)));
  return true;
}
