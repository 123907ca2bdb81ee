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
 *
 * The exception is the spool's accept path (createFilePooled and below): there the synchronous open(2) of a new
 * file was measured blocking the loop for milliseconds under load, so those calls go to the pool, by callback.
 */
import { close, closeSync, constants, fdatasync, fsync, linkSync, open, openSync, rename, renameSync, unlink, unlinkSync, write, writeSync } from 'node:fs';

/** Mail is private: files 0600. */
const FILE_MODE = 0o600;

/** fsync(2) of an open descriptor on the thread pool (the callback API: no FileHandle, one promise). */
export function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
}

/** fdatasync(2) of an open descriptor on the thread pool. */
export function fdatasyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

/**
 * open(2) on the thread pool (the callback API), for opens that create a file: creating an inode waits for the
 * journal while other fsyncs hold it (issue 11 measured the synchronous open of an APPEND's tmp/ file at 0.37 ms
 * of blocked event loop per message under IMAP load, 4.4 % of the process).
 */
export function openPooled(path: string, flags: number, mode = FILE_MODE): Promise<number> {
  return new Promise((resolve, reject) => open(path, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
}

/** unlink(2) on the thread pool (the callback API): freeing an inode waits for the journal as creating one does. */
export function unlinkPooled(path: string): Promise<void> {
  return new Promise((resolve, reject) => unlink(path, (err) => (err ? reject(err) : resolve())));
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


/**
 * A file created and written but not yet durable; its descriptor stays open for the fsync, so that the caller can
 * make other changes (a rename, a directory fsync) while the data goes to disk, and wait for all of them at once.
 */
export interface PendingFile {
  /** fsync(2), then close(2); closes even when the fsync fails. */
  syncAndClose(): Promise<void>;
  /** close(2) without fsync, for a commit abandoned before its fsync. */
  close(): Promise<void>;
}

function pendingFile(fd: number): PendingFile {
  let closed = false;
  const closeOnce = (): Promise<void> =>
    new Promise((resolve) => {
      if (closed) return resolve();
      closed = true;
      close(fd, () => resolve());
    });
  return {
    // Resolves with the fsync: the close(2) after it goes to the pool too but is not waited for, one hand-over less
    // between the data being durable and the 250 (a close after a successful fsync has nothing left to report on a
    // local file system).
    syncAndClose: () =>
      new Promise((resolve, reject) => {
        fsync(fd, (err) => {
          void closeOnce();
          if (err) reject(err);
          else resolve();
        });
      }),
    close: closeOnce,
  };
}

/**
 * The accept path's file calls, all on libuv's thread pool through the callback API (issue 11: the synchronous
 * open(2) of a new queue file measured ~2 ms of blocked event loop per message on the loaded machine: creating an
 * inode waits for the journal while other fsyncs hold it). The callback API is one request object and one callback
 * per call, none of the FileHandle and promise machinery that made the promise API expensive (see the file comment).
 *
 * Creates `path` (O_EXCL: it must not exist) and writes `data`; resolves with the open file, not yet fsynced.
 * On a failure the descriptor is closed; the caller removes the file.
 */
export function createFilePooled(path: string, data: Uint8Array, mode = FILE_MODE): Promise<PendingFile> {
  return new Promise((resolve, reject) => {
    open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode, (err, fd) => {
      if (err) return reject(err);
      let offset = 0;
      // write(2) may write less than asked: go on from where it stopped.
      const next = (): void => {
        if (offset >= data.length) return resolve(pendingFile(fd));
        write(fd, data, offset, data.length - offset, null, (werr, n) => {
          if (werr) return close(fd, () => reject(werr));
          offset += n;
          next();
        });
      };
      next();
    });
  });
}

/** rename(2) on the thread pool. */
export function renamePooled(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) => rename(from, to, (err) => (err ? reject(err) : resolve())));
}

/**
 * A directory kept open for its fsyncs (the spool's queue/, fsynced for every commit): fsync(2) of the held
 * descriptor is one hand-over to the pool, where fsyncDirPooled's open, fsync and close are three in a row on the
 * path of every 250 (issue 11). The descriptor is opened on the first sync. After a failed fsync it is closed and
 * the next sync opens the directory again (an fsync error may not be reported twice on the same descriptor).
 */
export class HeldDir {
  private fd: Promise<number> | undefined;
  /** fsyncs under way on the held descriptor: close(2) waits for them (a reused number must never be fsynced). */
  private using = 0;
  private closing = false;
  private readonly dropped: Promise<number>[] = [];

  constructor(readonly path: string) {}

  async sync(): Promise<void> {
    if (this.closing) return fsyncDirPooled(this.path);
    this.fd ??= new Promise<number>((resolve, reject) => open(this.path, constants.O_RDONLY | constants.O_DIRECTORY, (err, fd) => (err ? reject(err) : resolve(fd))));
    const held = this.fd;
    this.using++;
    try {
      let fd: number;
      try {
        fd = await held;
      } catch (err) {
        if (this.fd === held) this.fd = undefined;
        throw err;
      }
      try {
        await fsyncFd(fd);
      } catch (err) {
        // Drop it (closed once unused): the next sync opens the directory again.
        if (this.fd === held) {
          this.fd = undefined;
          this.dropped.push(held);
        }
        throw err;
      }
    } finally {
      this.using--;
      this.release();
    }
  }

  /** Closes the descriptor once no fsync uses it; later syncs open and close the directory each time. */
  close(): void {
    this.closing = true;
    this.release();
  }

  /** Closes the descriptors no longer held (dropped after an error, or at close) once no fsync uses them. */
  private release(): void {
    if (this.closing && this.fd) {
      this.dropped.push(this.fd);
      this.fd = undefined;
    }
    if (this.using > 0) return;
    for (const p of this.dropped.splice(0)) void p.then((fd) => close(fd, () => undefined), () => undefined);
  }
}

/** fsyncDir with the open and close on the thread pool too. */
export function fsyncDirPooled(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    open(path, constants.O_RDONLY | constants.O_DIRECTORY, (err, fd) => {
      if (err) return reject(err);
      fsync(fd, (serr) => close(fd, () => (serr ? reject(serr) : resolve())));
    });
  });
}
