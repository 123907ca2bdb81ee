/**
 * File calls for the durable writes of the queue (src/queue/spool.ts) and the store (src/store/maildir.ts), made on
 * the event loop of the SMTP server.
 *
 * Only fsync goes to libuv's thread pool: it waits for the disk (milliseconds), and concurrent fsyncs there share
 * the journal commits. The cheap calls around it (open, write into the page cache, close, link, rename, unlink)
 * are made synchronously, as Postfix and Dovecot make them: each costs microseconds of kernel time, while a
 * promise-returning fs call costs a hand-off to the pool and back, a FileHandle and several promises — issue 11
 * measured the async file calls at ~2.9 ms of the event loop per SMTP message. A sync call does not wait for the
 * disk: ext4 (and every journalling file system) records the metadata change in memory and writes it out at the
 * next commit, which the fsync we do wait for forces.
 */
import { closeSync, constants, fsync, linkSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';

/** Mail is private: files 0600. */
const FILE_MODE = 0o600;

/** fsync(2) of an open descriptor on the thread pool (the callback API: no FileHandle, one promise). */
export function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
}

/** A new directory entry (file, link, rename) survives a crash only once its directory is fsynced. */
export async function fsyncDir(path: string): Promise<void> {
  const fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}

/** writeSync may write less than asked; loop until the whole buffer is out. */
export function writeAllSync(fd: number, data: Uint8Array): void {
  let offset = 0;
  while (offset < data.length) offset += writeSync(fd, data, offset, data.length - offset);
}

/**
 * Creates `path` (it must not exist: O_EXCL), writes `data`, fsyncs and closes it. Resolves once the contents are
 * durable (not yet the name: that takes an fsync of the directory after the rename or link that places it).
 */
export async function writeFileDurable(path: string, data: Uint8Array | string, mode = FILE_MODE): Promise<void> {
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    writeAllSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}

/** Synchronous link/rename/unlink behind the promise signatures their callers expect (see the file comment). */
export async function linkQuick(from: string, to: string): Promise<void> {
  linkSync(from, to);
}
export async function renameQuick(from: string, to: string): Promise<void> {
  renameSync(from, to);
}
export async function unlinkQuick(path: string): Promise<void> {
  unlinkSync(path);
}

