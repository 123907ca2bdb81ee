/**
 * The Maildir++ store (DESIGN.md §3 "Store"), laid out so that Dovecot can be pointed at the same files:
 *
 *   <root>/users/<login>/Maildir/      a user's INBOX: cur/ new/ tmp/, maildirsize
 *   <root>/users/<login>/Maildir/.Junk/            a folder: cur/ new/ tmp/ and an empty maildirfolder file
 *   <root>/users/<login>/Maildir/.Archive.2024/    'Archive/2024'
 *   <root>/shared/<group>/Maildir/     a mail-enabled group's shared folder, same layout
 *
 * Owner and folder names are mapped by names.ts (lower-cased logins, percent-encoded unsafe characters; folder
 * names in modified UTF-7 with Dovecot's listescape for '.'). Dovecot: `mail_location = maildir:<root>/users/%Ln/Maildir`
 * with `quota = maildir` reads the same mail and the same maildirsize.
 *
 * Delivery is the Maildir protocol (cr.yp.to/proto/maildir.html) with Maildir++ sizes in the name:
 * tmp/<unique> → write → fsync → link into new/ (cur/ when flags are given) → fsync the directory. The caller may
 * answer 250 (or mark the recipient delivered) once deliver() resolves: the message and its name are on disk.
 * With `linkFrom` (the queue's spool file, already fsynced, holding prefix + message) the first three steps are
 * already done: the file is linked into new/ directly and the directory fsynced, as for a tmp/ file.
 */
import type { Dirent } from 'node:fs';
import { closeSync, constants, linkSync, renameSync } from 'node:fs';
import { readdir, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { createFilePooled, openPooled, unlinkPooled } from '../lib/durable-fs.js';
import { silentLogger, type Logger } from '../lib/logger.js';
import { errorCode, ensureMaildir, fsyncDirShared, fsyncFd, FILE_MODE, writeAllSync } from './fs-util.js';
import { KeyedMutex } from './keyed-mutex.js';
import {
  folderDirName,
  folderFromDirName,
  maildirHostname,
  normalizeFlags,
  ownerLabel,
  ownerRelativePath,
  specialUseOf,
  FOLDER_SEPARATOR,
  type SpecialUse,
} from './names.js';
import {
  appendMaildirSize,
  quotaDefinition,
  readMaildirSize,
  recalculateMaildirSize,
  maildirSizeIsStale,
  MAILDIRSIZE,
  type MaildirSize,
} from './quota.js';
import { QuotaExceeded, type Delivered, type DeliverOptions, type MailboxOwner, type MailStore, type QuotaUsage } from './types.js';

/** A new tmp/ file: ours alone (O_EXCL). */
const TMP_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;

export interface MaildirStoreOptions {
  /** `${dataDir}/mail`. */
  root: string;
  /** This host's name, part of every message file name (unique across hosts sharing the store). */
  hostname: string;
  log?: Logger;
  /**
   * Where a user's mailbox lives (the directory holding Maildir/), relative to the root: src/lifecycle/registry.ts,
   * the objectGUID → directory table. Without it every owner is placed by ownerRelativePath (by login).
   */
  locate?: (owner: MailboxOwner & { kind: 'user' }) => string;
}

export interface FolderInfo {
  /** IMAP name with '/' as separator; 'INBOX' for the Maildir root. */
  name: string;
  /** The folder's Maildir (the one holding cur/ new/ tmp/). */
  path: string;
  specialUse?: SpecialUse;
}

// Module-wide, so that two store objects in one process never make the same name in the same microsecond.
let deliveries = 0;

export class MaildirStore implements MailStore {
  readonly root: string;
  private readonly host: string;
  private readonly log: Logger;
  private readonly locate?: MaildirStoreOptions['locate'];
  /**
   * Per Maildir: the quota check, and the link + maildirsize append, run one at a time. Writing and fsyncing the
   * message (the slow part) runs outside, so concurrent deliveries to one mailbox still overlap their fsyncs.
   */
  private readonly locks = new KeyedMutex();
  /** Per Maildir: bytes admitted by the quota check but not yet in maildirsize, so parallel deliveries cannot together overshoot. */
  private readonly reserved = new Map<string, number>();

  constructor(options: MaildirStoreOptions) {
    this.root = resolve(options.root);
    this.host = maildirHostname(options.hostname);
    this.log = options.log ?? silentLogger;
    this.locate = options.locate;
  }

  maildirPath(owner: MailboxOwner): string {
    if (owner.kind === 'user' && this.locate) return join(this.root, this.locate(owner), 'Maildir');
    return join(this.root, ownerRelativePath(owner));
  }

  /**
   * The owner's home: the directory holding Maildir/ (and, as with Dovecot's `~`, the Sieve scripts of
   * src/sieve/storage.ts). Not created here.
   */
  homePath(owner: MailboxOwner): string {
    return dirname(this.maildirPath(owner));
  }

  /** The Maildir of one folder ('INBOX' → the Maildir root). Throws InvalidFolderName. */
  folderPath(owner: MailboxOwner, folder = 'INBOX'): string {
    return join(this.maildirPath(owner), folderDirName(folder));
  }

  async deliver(owner: MailboxOwner, message: Buffer | Readable, opts: DeliverOptions & { prefix?: string } = {}): Promise<Delivered> {
    const maildir = this.maildirPath(owner);
    const folder = opts.folder ?? 'INBOX';
    const dir = join(maildir, folderDirName(folder));
    const flags = opts.flags === undefined ? undefined : normalizeFlags(opts.flags);
    const quotaBytes = opts.quotaBytes !== undefined && opts.quotaBytes > 0 ? opts.quotaBytes : 0;
    const prefix = Buffer.from(opts.prefix ?? '', 'utf8');

    if (opts.linkFrom !== undefined && Buffer.isBuffer(message)) {
      const linked = await this.deliverByLink(owner, maildir, dir, opts.linkFrom, prefix.length + message.length, flags, quotaBytes);
      if (linked) return linked;
    }
    const base = uniqueName(this.host);
    const tmpPath = join(dir, 'tmp', base);
    // A descriptor, not a FileHandle. The create of the tmp/ file (and for a buffer its write) goes to the thread pool:
    // creating an inode waits for the journal while other fsyncs hold it. The link and the writes of a stream are
    // synchronous, the fsyncs on the pool (src/lib/durable-fs.ts says why).
    let fd: number | undefined;
    let tmpExists = false;
    let reserved = 0;
    try {
      let size: number;
      if (Buffer.isBuffer(message)) {
        size = prefix.length + message.length;
        // README.maildirquota: check "as soon as the size of the message is known (hopefully before it is written)".
        if (quotaBytes > 0) reserved = await this.reserve(owner, maildir, size, quotaBytes);
        // One write, not two: the prefix (Return-Path, Delivered-To) is a few dozen bytes.
        const data = prefix.length ? Buffer.concat([prefix, message]) : message;
        const file = await this.inTmp(maildir, dir, tmpPath, () => createFilePooled(tmpPath, data, FILE_MODE), () => (tmpExists = true));
        await file.syncAndClose();
      } else {
        fd = await this.inTmp(maildir, dir, tmpPath, () => openPooled(tmpPath, TMP_FLAGS, FILE_MODE), () => (tmpExists = true));
        size = await this.writeStream(fd, prefix, message, quotaBytes);
        if (size < 0) throw new QuotaExceeded(owner, await this.quotaUsage(owner), quotaBytes);
        if (quotaBytes > 0) reserved = await this.reserve(owner, maildir, size, quotaBytes);
        await fsyncFd(fd);
        closeSync(fd);
        fd = undefined;
      }

      const targetDir = join(dir, flags === undefined ? 'new' : 'cur');
      const info = flags === undefined ? '' : `:2,${flags}`;
      const path = await this.locks.run(maildir, async () => {
        const linked = await this.linkIntoPlace(maildir, dir, tmpPath, targetDir, (b) => `${b},S=${size}${info}`, base, true);
        await this.account(maildir, size, quotaBytes);
        this.release(maildir, reserved);
        reserved = 0;
        return linked;
      });
      tmpExists = false;
      // The tmp/ name goes on the pool while the new name is made durable: concurrent deliveries into the same folder
      // share the directory fsync (group commit). A tmp/ file left by a crash is a leftover Dovecot and we clean up.
      const removing = unlinkPooled(tmpPath).catch((err: unknown) => {
        if (errorCode(err) !== 'ENOENT') this.log.warn({ err, path: tmpPath }, 'store: could not remove delivered tmp file');
      });
      await Promise.all([fsyncDirShared(targetDir), removing]);
      this.log.debug({ owner: ownerLabel(owner), folder, path, size }, 'store: delivered');
      return { path, size };
    } catch (err) {
      if (fd !== undefined) closeQuietly(fd);
      if (tmpExists) await unlink(tmpPath).catch(() => {});
      this.release(maildir, reserved);
      throw err;
    }
  }

  /**
   * Delivery by hard link of a durable file that already holds prefix + message (`size` bytes): no write, no file
   * fsync, only the link and the shared directory fsync. Undefined when the link cannot be made (EXDEV, the file
   * gone, a file system without hard links): the caller then writes the message. QuotaExceeded passes through.
   */
  private async deliverByLink(
    owner: MailboxOwner,
    maildir: string,
    dir: string,
    source: string,
    size: number,
    flags: string | undefined,
    quotaBytes: number,
  ): Promise<Delivered | undefined> {
    let reserved = quotaBytes > 0 ? await this.reserve(owner, maildir, size, quotaBytes) : 0;
    const targetDir = join(dir, flags === undefined ? 'new' : 'cur');
    const info = flags === undefined ? '' : `:2,${flags}`;
    let path: string;
    try {
      path = await this.locks.run(maildir, async () => {
        const linked = await this.linkIntoPlace(maildir, dir, source, targetDir, (b) => `${b},S=${size}${info}`, uniqueName(this.host), false);
        await this.account(maildir, size, quotaBytes);
        this.release(maildir, reserved);
        reserved = 0;
        return linked;
      });
    } catch (err) {
      this.log.debug({ err, source }, 'store: cannot link the spooled message, writing it');
      return undefined;
    } finally {
      this.release(maildir, reserved);
    }
    await fsyncDirShared(targetDir);
    this.log.debug({ owner: ownerLabel(owner), path, size }, 'store: delivered (linked)');
    return { path, size };
  }

  async quotaUsage(owner: MailboxOwner): Promise<QuotaUsage> {
    const maildir = this.maildirPath(owner);
    const usage = await this.locks.run(maildir, () => this.readUsage(maildir, undefined));
    return { bytes: usage.bytes, messages: usage.messages };
  }

  /** Creates a folder (and the owner's Maildir) if missing; returns its Maildir. For IMAP CREATE and autocreate. */
  async createFolder(owner: MailboxOwner, folder: string): Promise<string> {
    const maildir = this.maildirPath(owner);
    const dir = join(maildir, folderDirName(folder));
    await this.ensureFolder(maildir, dir);
    return dir;
  }

  /**
   * The owner's folders: INBOX first (always, even before the first delivery), then the others by name. A
   * top-level folder named like a special-use folder (Junk, Trash, Sent, Drafts, Archive and their Outlook/Apple
   * synonyms) carries its RFC 6154 attribute.
   */
  async listFolders(owner: MailboxOwner): Promise<FolderInfo[]> {
    const maildir = this.maildirPath(owner);
    const folders: FolderInfo[] = [];
    let entries: Dirent[];
    try {
      entries = await readdir(maildir, { withFileTypes: true });
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw err;
      entries = [];
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const name = folderFromDirName(e.name);
      if (name === undefined || name === 'INBOX') continue;
      const info: FolderInfo = { name, path: join(maildir, e.name) };
      const specialUse = name.includes(FOLDER_SEPARATOR) ? undefined : specialUseOf(name);
      if (specialUse) info.specialUse = specialUse;
      folders.push(info);
    }
    folders.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return [{ name: 'INBOX', path: maildir }, ...folders];
  }

  // -------------------------------------------------------------------------------------------------------------

  /**
   * Creates tmp/<name> exclusively with `create`; a missing Maildir or folder is created on the first ENOENT (the slow
   * path). `made` is called when a file of ours may exist (to remove on a failure): a create that failed after its
   * open (ENOSPC in the write) leaves one, one that found the name taken (EEXIST) made nothing of ours.
   */
  private async inTmp<T>(maildir: string, dir: string, tmpPath: string, create: () => Promise<T>, made: () => void): Promise<T> {
    const attempt = async (): Promise<T> => {
      try {
        const r = await create();
        made();
        return r;
      } catch (err) {
        const code = errorCode(err);
        if (code !== 'EEXIST' && code !== 'ENOENT') made();
        throw err;
      }
    };
    try {
      return await attempt();
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw err;
    }
    await this.ensureFolder(maildir, dir);
    return attempt();
  }

  private async ensureFolder(maildir: string, dir: string): Promise<void> {
    await ensureMaildir(maildir, false);
    if (dir !== maildir) await ensureMaildir(dir, true);
  }

  /** Returns the stream's size with the prefix, or -1 as soon as that alone exceeds `limit` (then stops reading). */
  private async writeStream(fd: number, prefix: Buffer, stream: Readable, limit: number): Promise<number> {
    let size = prefix.length;
    if (limit > 0 && size > limit) return -1;
    writeAllSync(fd, prefix);
    for await (const chunk of stream) {
      const buf: Uint8Array = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : (chunk as Uint8Array);
      size += buf.length;
      if (limit > 0 && size > limit) return -1;
      writeAllSync(fd, buf);
    }
    return size;
  }

  /**
   * link() rather than rename(), as the Maildir spec says: it can never replace an existing message. EEXIST (a
   * name collision, which the unique name should make impossible) picks a new name; a file system without hard
   * links falls back to rename() — only for our own tmp/ file (`mayRename`), never for a file that is not ours to
   * move (the spool's).
   */
  private async linkIntoPlace(
    maildir: string,
    dir: string,
    tmpPath: string,
    targetDir: string,
    finalName: (base: string) => string,
    base: string,
    mayRename: boolean,
  ): Promise<string> {
    let name = finalName(base);
    for (let attempt = 1; ; attempt++) {
      const target = join(targetDir, name);
      try {
        linkSync(tmpPath, target);
        return target;
      } catch (err) {
        const code = errorCode(err);
        if (attempt >= 3) throw err;
        if (code === 'EEXIST') name = finalName(uniqueName(this.host));
        else if (code === 'ENOENT') await this.ensureFolder(maildir, dir); // new/ or cur/ removed under us
        else if (mayRename && (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EMLINK')) {
          renameSync(tmpPath, target);
          return target;
        } else throw err;
      }
    }
  }

  /**
   * Records a delivered message in maildirsize (runs under the Maildir's lock, right after the link). With a quota
   * and no maildirsize yet, this is where the file is first made: the scan already sees the new message.
   */
  private async account(maildir: string, size: number, quotaBytes: number): Promise<void> {
    try {
      if (await appendMaildirSize(maildir, size, 1)) return;
      if (quotaBytes > 0) await recalculateMaildirSize(maildir, quotaDefinition(quotaBytes));
    } catch (err) {
      // The message is delivered; a stale maildirsize must not undo that. Remove it so the next check recounts.
      this.log.warn({ err, maildir }, 'store: could not update maildirsize');
      await unlink(join(maildir, MAILDIRSIZE)).catch(() => {});
    }
  }

  /** The quota check of README.maildirquota, plus the bytes other deliveries of this process have in flight. */
  private reserve(owner: MailboxOwner, maildir: string, size: number, quotaBytes: number): Promise<number> {
    return this.locks.run(maildir, async () => {
      let usage = await this.readUsage(maildir, quotaBytes);
      const inFlight = this.reserved.get(maildir) ?? 0;
      const over = (u: MaildirSize): boolean => u.bytes + inFlight + size > quotaBytes;
      // "Over quota" from appended lines or an old file may be drift (e.g. messages expunged by a client that does
      // not update maildirsize): recount before refusing.
      if (over(usage) && (usage.lines > 1 || (await maildirSizeIsStale(maildir)))) {
        usage = await this.recalculate(maildir, quotaDefinition(quotaBytes));
      }
      if (over(usage)) {
        throw new QuotaExceeded(owner, { bytes: usage.bytes + inFlight, messages: usage.messages }, quotaBytes);
      }
      this.reserved.set(maildir, inFlight + size);
      return size;
    });
  }

  private release(maildir: string, bytes: number): void {
    if (bytes === 0) return;
    const left = (this.reserved.get(maildir) ?? 0) - bytes;
    if (left > 0) this.reserved.set(maildir, left);
    else this.reserved.delete(maildir);
  }

  /** maildirsize's totals; recalculated when missing, too long, malformed, or when its quota is not `quotaBytes`. */
  private async readUsage(maildir: string, quotaBytes: number | undefined): Promise<MaildirSize> {
    const read = await readMaildirSize(maildir);
    if (read.ok && (quotaBytes === undefined || read.quotaBytes === quotaBytes)) return read;
    const definition = quotaBytes !== undefined ? quotaDefinition(quotaBytes) : (read.definition ?? '');
    return this.recalculate(maildir, definition);
  }

  private async recalculate(maildir: string, definition: string): Promise<MaildirSize> {
    const usage = await recalculateMaildirSize(maildir, definition);
    this.log.debug({ maildir, bytes: usage.bytes, messages: usage.messages }, 'store: recalculated maildirsize');
    return usage;
  }
}


/**
 * `<secs>.M<usecs>P<pid>Q<n>.<host>`, Dovecot's form of the Maildir unique name: time, process and a per-process
 * delivery counter make it unique on this host, the host name across hosts.
 */
function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already failing: the caller's error is the one to report
  }
}

function uniqueName(host: string): string {
  const micros = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  const secs = Math.floor(micros / 1_000_000);
  return `${secs}.M${micros % 1_000_000}P${process.pid}Q${++deliveries}.${host}`;
}
