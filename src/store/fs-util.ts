/** The few file system moves the store makes durable, on the event loop of the SMTP server (see src/lib/durable-fs.ts). */
import { mkdir, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fsyncDir } from '../lib/durable-fs.js';

export { fsyncDir, fsyncFd, linkQuick, renameQuick, unlinkQuick, writeAllSync, writeFileDurable } from '../lib/durable-fs.js';

/** Mail is private: directories 0700, files 0600 (what Dovecot creates with its defaults). */
export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;

export function errorCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/**
 * fsyncDir shared by concurrent callers on the same directory (group commit, as the queue's spool does it): a caller
 * is released only by an fsync that started after it called, so the promise is that of one fsync per caller, while
 * twenty deliveries into one INBOX at once cost one or two directory fsyncs instead of twenty.
 */
export function fsyncDirShared(path: string): Promise<void> {
  let group = syncGroups.get(path);
  if (!group) {
    group = { running: false, waiting: [] };
    syncGroups.set(path, group);
  }
  const g = group;
  return new Promise((resolve, reject) => {
    g.waiting.push({ resolve, reject });
    if (!g.running) void runSyncGroup(path, g);
  });
}

interface SyncGroup {
  running: boolean;
  waiting: { resolve: () => void; reject: (err: unknown) => void }[];
}
const syncGroups = new Map<string, SyncGroup>();

async function runSyncGroup(path: string, g: SyncGroup): Promise<void> {
  g.running = true;
  while (g.waiting.length) {
    const batch = g.waiting;
    g.waiting = [];
    try {
      await fsyncDir(path);
      for (const w of batch) w.resolve();
    } catch (err) {
      for (const w of batch) w.reject(err);
    }
  }
  g.running = false;
  syncGroups.delete(path);
}

/**
 * mkdir -p, fsyncing the parent of every level it reaches. Also fsyncs when the directory already exists: another
 * delivery may have just made it and not yet fsynced its parent, and this one must not return before that is
 * durable. Only called on the slow path (a directory was found missing), so the extra fsyncs cost nothing.
 */
export async function ensureDir(path: string): Promise<void> {
  try {
    await mkdir(path, { mode: DIR_MODE });
  } catch (err) {
    if (errorCode(err) === 'ENOENT') {
      await ensureDir(dirname(path));
      await ensureDir(path);
      return;
    }
    if (errorCode(err) !== 'EEXIST') throw err;
  }
  await fsyncDir(dirname(path));
}

/**
 * A Maildir (cur/ new/ tmp/) at `dir`; for a Maildir++ folder (`folder: true`) also the empty `maildirfolder`
 * file that tells delivery agents it is a folder under a parent Maildir++ (Courier's README.maildirquota).
 */
export async function ensureMaildir(dir: string, folder: boolean): Promise<void> {
  await ensureDir(dir);
  await Promise.all(['cur', 'new', 'tmp'].map((sub) => mkdir(join(dir, sub), { mode: DIR_MODE }).catch(ignoreCode('EEXIST'))));
  if (folder) await writeFile(join(dir, 'maildirfolder'), '', { flag: 'wx', mode: FILE_MODE }).catch(ignoreCode('EEXIST'));
  await fsyncDir(dir);
}

export function ignoreCode(...codes: string[]): (err: unknown) => void {
  return (err) => {
    if (!codes.includes(errorCode(err) ?? '')) throw err;
  };
}

/** FileHandle.write may write less than asked; loop until the whole buffer is out. */
export async function writeAll(fh: FileHandle, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await fh.write(data, offset, data.length - offset);
    offset += bytesWritten;
  }
}
