/**
 * The spool: the queue on disk, which is the truth (DESIGN.md §3 "Queue", STYLE.md "The queue file is the truth").
 *
 * Layout under `${dataDir}/queue/`, as src/queue/types.ts describes it:
 *   <id>.eml   the message (CRLF), written once, never changed; for a single recipient, preceded by the
 *              envelope's spoolPrefix (the lines local delivery adds), so that delivery can hard-link this file
 *              into the Maildir: the message is written and fsynced once on its way from DATA to the mailbox
 *   <id>.json  its envelope, replaced atomically as delivery proceeds; its appearance is the commit point
 *   tmp/       envelopes being written; anything left here after a crash was never acknowledged
 *
 * Why two files and not one (issue 11 asked for "one spool file per message"): the message file is hard-linked
 * into the recipient's Maildir, so it must hold nothing but the lines delivery adds and the message. An envelope
 * block inside it would end up in the mailbox (with the client's address, other recipients, Bcc); one after the
 * message would as well. Writing the envelope into the message file would save one open, write, fsync, close and
 * rename here, and cost delivery a second write and fsync of the whole message: more than it saves. An xattr is
 * not an option (NFS, the shared queue of the PostgreSQL state). So the files stay as they were, and the cost is
 * taken out of the commit protocol instead; a queue written by an older version is read as it is.
 *
 * Commit protocol (enqueue), one round of fsyncs:
 *   1. create `<id>.eml` directly in queue/ and write it; create tmp/<id>.json and write it (both at once);
 *   2. rename the envelope into queue/ (the message is already there: an envelope in queue/ always has its
 *      message next to it);
 *   3. fsync the message, fsync the envelope and fsync queue/ (group commit, below), all at the same time;
 *   4. resolve only when all three are done; only then does SMTP answer 250.
 * The chain the client waits for is four hand-overs to the pool: open, write, rename, fsync. queue/ is fsynced
 * through a descriptor the spool keeps open (HeldDir; its open and close were two more), and a file's close(2)
 * follows its fsync without being waited for (one more).
 * All of it on libuv's thread pool (durable-fs.ts createFilePooled): nothing here blocks the event loop.
 * The older protocol fsynced the files before the rename and queue/ after it: two rounds of fsyncs, each a journal
 * commit the client waits for. Here the names may reach the disk before the data does; what a crash before the
 * answer can then leave is a complete-looking name with missing data, which was never acknowledged, and recover()
 * tells it by its content: an envelope that does not parse, or a message file whose length is not the envelope's
 * `size` plus its prefix, or whose bytes do not have the envelope's `sha1` (a file system without a journal, or
 * with data=writeback, can leave the file at its full length but zero-filled). A message without an envelope (a crash before the rename) is dropped as before.
 * An acknowledged message never looks like that (all three fsyncs were done), and update() keeps fsync-then-rename,
 * so a replaced envelope is never torn.
 *
 * The envelope is visible in queue/ a moment before the answer: a scan by the scheduler in that moment may start
 * delivery before the 250. That is harmless unless the fsync then fails: the client is told 451 and sends again,
 * and the message may arrive twice (at-least-once, DESIGN.md §3), never lost.
 *
 * Envelope updates (attempts, per-recipient outcomes) are written only when an attempt leaves recipients pending
 * (the scheduler's retry path) or when a DSN cannot be queued; a message delivered at the first attempt is removed
 * without any update. They keep the full protocol (tmp + fsync + rename + directory fsync): they are rare (one
 * per failed attempt, minutes apart), and the envelope they replace is the only record of the message's state.
 *
 * Group commit (DESIGN.md §6 "fsync is the budget"): the directory fsync is shared. While one directory fsync
 * runs, every enqueue that has done its renames waits for the *next* one, which then covers all of them. A
 * waiter is only released by an fsync that started after its renames, so the promise is exactly as strong as one
 * fsync per message, for a fraction of the fsyncs. The files' own fsyncs are made concurrently on the pool, where
 * the file system folds them into shared journal commits.
 *
 * Several processes use the spool at once: the server (enqueue, scheduler) and the CLI (list, flush, delete).
 * Everything is written with unique names and atomic renames, and every reader copes with files that vanish.
 * Only the server calls recover(), at start, before it accepts mail, and only while it holds the server lock
 * (lock(); one server per spool).
 */
import { EventEmitter } from 'node:events';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { TempFailure } from '../lib/errors.js';
import { createFilePooled, fsyncDirPooled, HeldDir, renamePooled, unlinkPooled, unlinkQuick, writeFileDurable, type PendingFile } from '../lib/durable-fs.js';
import { silentLogger, type Logger } from '../lib/logger.js';
import { InvalidQueueIdError, isQueueId, newQueueId } from './id.js';
import { lockQueueDir, type SpoolLock } from './lock.js';
import type { QueueClaims, QueueEnvelope, SpooledFile } from './types.js';
import type { TraceRecorder } from '../trace/types.js';

/** What the spool fills in when the caller leaves it out. */
type Filled = 'id' | 'attempts' | 'nextAttemptAt' | 'size' | 'receivedAt';

/**
 * The envelope given to enqueue(): `size` and `attempts` are computed, `receivedAt` and `nextAttemptAt` default
 * to now, `id` to a new one (pass one from newQueueId() when the id is needed before the commit, e.g. in Received).
 */
export type NewEnvelope = Omit<QueueEnvelope, Filled> & Partial<Pick<QueueEnvelope, Filled>>;

/** The file operations the spool's promises rest on; replaceable so tests can make the disk fail. */
export interface SpoolFs {
  /**
   * Creates `path` (it must not exist) and writes `data`, without fsync: the file stays open for its fsync, which
   * enqueue makes together with the others of the commit.
   */
  create(path: string, data: Buffer): Promise<PendingFile>;
  /** Creates `path` (it must not exist), writes `data`, fsyncs and closes it. */
  writeFileDurable(path: string, data: Buffer | string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /**
   * unlink(2) on the thread pool, for the removal of delivered messages (Spool.remove with `lazy`): freeing an
   * inode waits for the journal when the disk is busy with other fsyncs (issue 11 measured the synchronous unlink
   * of the finished message at ~4 ms of blocked event loop per message on the loaded machine), which stalls every
   * SMTP session of the process; off the loop it only delays the removal.
   */
  unlinkPooled(path: string): Promise<void>;
  /**
   * fsyncs a directory, making the renames and unlinks in it durable. Left out of `SpoolOptions.fs`, the spool
   * fsyncs queue/ through a descriptor it keeps open (HeldDir): one pool call per group commit instead of three.
   */
  syncDir(path: string): Promise<void>;
}

/**
 * The real file system. What enqueue and the directory fsync call (create, rename, syncDir) runs on the thread
 * pool: it is on the path of every SMTP answer, and the synchronous open(2) of a new file was measured blocking the
 * loop for ~2 ms under load (issue 11). update() (rare, after a failed attempt) writes its envelope with
 * writeFileDurable, whose open/write are synchronous, and the unlinks of recover and of an admin's delete are
 * synchronous (src/store/fs-util.ts says why cheap calls are).
 */
export const nodeSpoolFs: SpoolFs = {
  create: (path, data) => createFilePooled(path, data, 0o600),
  writeFileDurable: (path, data) => writeFileDurable(path, data, 0o600),
  rename: renamePooled,
  unlink: unlinkQuick,
  unlinkPooled,
  syncDir: fsyncDirPooled,
};

export interface SpoolOptions {
  log?: Logger;
  fs?: Partial<SpoolFs>;
  /**
   * What to write ahead of a new message in `<id>.eml` (recorded as the envelope's spoolPrefix): the server passes
   * the lines local delivery would add, for single-recipient mail. Nothing when absent or when it returns undefined.
   */
  prefixFor?: (envelope: QueueEnvelope) => string | undefined;
  /** Message trace (src/trace): queued (after the commit), deleted by an admin (remove with `by`). */
  trace?: TraceRecorder;
  /**
   * Keep just-committed messages in memory for their first delivery attempt (default true). False in a process
   * that enqueues but does not deliver (an SMTP worker, src/smtp/workers.ts): nobody there would ever take them.
   */
  keepFresh?: boolean;
}

export interface SpoolStats {
  /** Messages committed by enqueue(). */
  enqueued: number;
  /** fsyncs of the queue directory, all callers together (enqueue, update, remove, recover). */
  dirSyncs: number;
  /** Callers served by those fsyncs: dirSyncs / dirSyncRequests is the group-commit ratio. */
  dirSyncRequests: number;
}

export interface RecoverResult {
  /** Committed messages kept. */
  messages: number;
  /** Files removed from tmp/ (never acknowledged). */
  removedTmp: number;
  /** Messages without an envelope (never acknowledged), or envelopes whose message is gone (half removed). */
  removedOrphans: string[];
}

/** A message that is not (or no longer) in the queue. */
export class NotQueuedError extends Error {
  constructor(readonly id: string) {
    super(`no message ${id} in the queue`);
    this.name = 'NotQueuedError';
  }
}

/** Shares one fsync of a directory among all callers waiting for it (group commit). */
export class DirSyncer {
  private running = false;
  private waiting: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  /** A lazy request (soon()) not yet covered by an fsync: the fsync it will get at the latest. */
  private lazy: NodeJS.Timeout | undefined;
  syncs = 0;
  requests = 0;

  constructor(
    private readonly doSync: () => Promise<void>,
    private readonly onLazyError: (err: unknown) => void = () => undefined,
  ) {}

  /**
   * Asks for an fsync without waiting for it: the next fsync that starts (anyone's: an enqueue's group commit, an
   * update's) covers this request, and if none starts within `ms`, one is made then. For what may be lost in a crash
   * without losing mail: the removal of a delivered message (a crash before it is durable redelivers it, which
   * at-least-once delivery allows, DESIGN.md §3; Postfix does not fsync the removal of a queue file at all).
   */
  soon(ms: number): void {
    if (this.lazy) return;
    this.lazy = setTimeout(() => {
      this.lazy = undefined;
      this.sync().catch(this.onLazyError);
    }, ms);
    this.lazy.unref();
  }

  /** Makes the lazy requests durable now (at a clean stop), if no fsync has covered them yet. */
  async settle(): Promise<void> {
    if (!this.lazy) return;
    clearTimeout(this.lazy);
    this.lazy = undefined;
    await this.sync();
  }

  /** Resolves after an fsync of the directory that started after this call. */
  sync(): Promise<void> {
    this.requests++;
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      if (!this.running) void this.run();
    });
  }

  private async run(): Promise<void> {
    this.running = true;
    while (this.waiting.length) {
      const batch = this.waiting;
      this.waiting = [];
      this.syncs++;
      // This fsync starts after every lazy request made so far, so it covers them.
      if (this.lazy) {
        clearTimeout(this.lazy);
        this.lazy = undefined;
      }
      try {
        await this.doSync();
        for (const w of batch) w.resolve();
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    this.running = false;
  }
}

export function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

export async function ignoreMissing<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (errno(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** What a person or the SMTP client's 4xx text should say about a disk error; the cause keeps the detail. */
export function diskFailure(what: string, err: unknown): TempFailure {
  const code = errno(err);
  const reason =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? 'the queue file system is full'
      : code === 'EROFS'
        ? 'the queue file system is read-only'
        : `${(err as Error)?.message ?? String(err)}`;
  return new TempFailure(`${what}: ${reason}`, { cause: err });
}

/** The digest recorded in the envelope (QueueEnvelope.sha1): SHA-1 of the whole `<id>.eml`, hex. */
export function fileDigest(file: Buffer): string {
  return createHash('sha1').update(file).digest('hex');
}

/** What a file name in queue/ is: `<id>.eml`, `<id>.json`, or not ours (null). */
function queueFile(name: string): { id: string; kind: 'message' | 'envelope' } | null {
  const m = /^(.+)\.(eml|json)$/.exec(name);
  if (!m || !isQueueId(m[1])) return null;
  return { id: m[1], kind: m[2] === 'eml' ? 'message' : 'envelope' };
}

export function checkEnvelope(value: unknown, id: string): QueueEnvelope {
  const e = value as QueueEnvelope;
  if (!e || typeof e !== 'object' || e.id !== id || typeof e.from !== 'string' || !Array.isArray(e.recipients)) {
    throw new Error(`queue envelope ${id} is not valid`);
  }
  return e;
}

/** What the scheduler's periodic scan gets back from Spool.scan(). */
export interface ScanResult {
  /** Every queued id (envelope and message present), sorted. */
  ids: string[];
  /** The envelopes that were read: those whose file changed since the last scan, and those asked for. */
  envelopes: QueueEnvelope[];
}

/** Messages kept in memory between enqueue and their first delivery attempt, at most this many bytes together. */
const FRESH_BYTES = 32 * 1024 * 1024;
/** The longest a lazy removal (remove with `lazy`) waits for an fsync of queue/ that covers it. */
export const LAZY_SYNC_MS = 1000;
/** How long after the commit the envelope kept in memory may stand in for the file (see readForAttempt). */
const FRESH_ENVELOPE_MS = 1000;

interface Fresh {
  message: Buffer;
  /** The envelope as written, until the first attempt takes it or an update makes it stale. */
  envelope: string | undefined;
  /** performance.now() of the commit. */
  at: number;
}

/**
 * Events: `enqueued` once a message is committed (just before enqueue resolves and SMTP answers 250);
 * `committing` when an enqueue starts waiting for its fsyncs — the event loop has nothing to do for that commit
 * until the disk answers, so the scheduler starts the deliveries it was holding back then (issue 11).
 */
export class Spool extends EventEmitter<{ enqueued: [QueueEnvelope]; committing: [] }> {
  readonly dir: string;
  readonly tmpDir: string;
  protected readonly log: Logger;
  protected readonly fs: SpoolFs;
  protected readonly dirSync: DirSyncer;
  protected readonly prefixFor: SpoolOptions['prefixFor'];
  protected readonly trace: TraceRecorder | undefined;
  protected readonly keepsFresh: boolean;
  protected enqueued = 0;
  /**
   * Set by a spool whose metadata lives in a shared store (state postgres, src/state/postgres/queue.ts): the
   * scheduler then claims due messages from it instead of tracking the directory itself. Undefined here.
   */
  readonly claims: QueueClaims | undefined = undefined;
  private serverLock: SpoolLock | undefined;
  /** queue/ held open for its fsyncs (unless the caller gave its own syncDir). */
  private readonly heldDir: HeldDir | undefined;
  /**
   * The bytes of messages just committed, for the first delivery attempt, which follows within milliseconds: the
   * message file is never changed, so these are its contents, and reading it back is one open/fstat/read/close
   * saved per message. Oldest first (Map order), bounded by FRESH_BYTES.
   */
  protected readonly fresh = new Map<string, Fresh>();
  protected freshBytes = 0;
  /** Envelope file stamps (inode, mtime, size) as scan() last read them. */
  private readonly stamps = new Map<string, string>();

  constructor(dataDir: string, options: SpoolOptions = {}) {
    super();
    this.dir = join(dataDir, 'queue');
    this.tmpDir = join(this.dir, 'tmp');
    this.log = (options.log ?? silentLogger).child({ component: 'queue' });
    this.fs = { ...nodeSpoolFs, ...options.fs };
    const held = options.fs?.syncDir ? undefined : new HeldDir(this.dir);
    this.heldDir = held;
    this.dirSync = new DirSyncer(
      held ? () => held.sync() : () => this.fs.syncDir(this.dir),
      (err) => this.log.warn({ err }, 'cannot fsync the queue directory after removing delivered messages'),
    );
    this.prefixFor = options.prefixFor;
    this.trace = options.trace;
    this.keepsFresh = options.keepFresh ?? true;
  }

  /** Creates the queue directories (the server does this at start; the CLI only reads what exists). */
  async init(): Promise<void> {
    try {
      await mkdir(this.tmpDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw diskFailure(`cannot create the queue directory ${this.dir}`, err);
    }
  }

  /**
   * Takes the server's exclusive lock on this spool (see lock.ts); throws SpoolLockedError when another server
   * holds it. The scheduler takes it before recover(); the CLI never does.
   */
  async lock(): Promise<void> {
    if (this.serverLock) return;
    await this.init();
    this.serverLock = lockQueueDir(this.dir);
  }

  unlock(): void {
    this.heldDir?.close();
    this.serverLock?.release();
    this.serverLock = undefined;
  }

  get stats(): SpoolStats {
    return { enqueued: this.enqueued, dirSyncs: this.dirSync.syncs, dirSyncRequests: this.dirSync.requests };
  }

  /** The id checked, so nothing but an id ever becomes part of a path. */
  protected checkId(id: string): string {
    if (!isQueueId(id)) throw new InvalidQueueIdError(id);
    return id;
  }

  messagePath(id: string): string {
    return join(this.dir, `${this.checkId(id)}.eml`);
  }

  envelopePath(id: string): string {
    return join(this.dir, `${this.checkId(id)}.json`);
  }

  /** The envelope of a message being queued, with its id, and the bytes of its file (the spool prefix first). */
  protected newEntry(message: Buffer, input: NewEnvelope): { id: string; envelope: QueueEnvelope; file: Buffer } {
    if (!Array.isArray(input.recipients) || input.recipients.length === 0) throw new Error('enqueue: a message needs recipients');
    const id = input.id === undefined ? newQueueId() : this.checkId(input.id);
    const receivedAt = input.receivedAt ?? new Date().toISOString();
    const envelope: QueueEnvelope = {
      ...input,
      id,
      recipients: input.recipients.map((r) => ({ ...r })),
      receivedAt,
      size: message.length,
      attempts: input.attempts ?? 0,
      nextAttemptAt: input.nextAttemptAt ?? receivedAt,
    };
    const prefix = this.prefixFor?.(envelope);
    if (prefix) envelope.spoolPrefix = prefix;
    const file = prefix ? Buffer.concat([Buffer.from(prefix, 'utf8'), message]) : message;
    // What recover() checks the file against (committed()): ~15 µs for 10 KiB, against a torn commit delivered.
    envelope.sha1 = fileDigest(file);
    return { id, envelope, file };
  }

  /**
   * Commits a message and its envelope; resolves once both are durable (the caller may then answer 250).
   * Rejects with TempFailure when the disk fails (ENOSPC, EIO, …), leaving nothing in the queue.
   */
  async enqueue(message: Buffer, input: NewEnvelope): Promise<string> {
    const { id, envelope, file } = this.newEntry(message, input);
    const finalMessage = this.messagePath(id);
    const tmpEnvelope = join(this.tmpDir, `${id}.json`);
    const finalEnvelope = this.envelopePath(id);
    const envelopeText = JSON.stringify(envelope) + '\n';
    // Files created so far (to take back on a failure) and those still open (to close).
    const created: string[] = [];
    const open: PendingFile[] = [];
    let renamed = false;
    try {
      // Step 1 (see the file comment). The message goes straight into queue/: without its envelope it is not
      // queued for any reader, and recover() drops it after a crash; this saves a rename per message.
      const files = await Promise.allSettled([this.fs.create(finalMessage, file), this.fs.create(tmpEnvelope, Buffer.from(envelopeText, 'utf8'))]);
      files.forEach((f, i) => {
        if (f.status === 'fulfilled') open.push(f.value);
        // A create that failed after open(2) (ENOSPC in write) leaves its file; one that found the name taken
        // (EEXIST: O_EXCL) made nothing of ours.
        if (f.status === 'fulfilled' || errno(f.reason) !== 'EEXIST') created.push(i === 0 ? finalMessage : tmpEnvelope);
      });
      for (const f of files) if (f.status === 'rejected') throw f.reason;
      // Step 2: the commit point, once it is durable.
      await this.fs.rename(tmpEnvelope, finalEnvelope);
      renamed = true;
      // Step 3: the three fsyncs at once; the directory fsync starts after the rename (DirSyncer.sync).
      const syncing = Promise.allSettled([...open.splice(0).map((f) => f.syncAndClose()), this.dirSync.sync()]);
      this.emit('committing');
      const synced = await syncing;
      for (const w of synced) if (w.status === 'rejected') throw w.reason;
    } catch (err) {
      // Not acknowledged, so not queued: take back whatever was made (envelope first, as in remove()).
      await Promise.all(open.map((f) => f.close()));
      const undo = renamed ? [finalEnvelope, ...created.filter((p) => p !== tmpEnvelope)] : created;
      for (const p of undo) await this.fs.unlink(p).catch(() => undefined);
      const failure = diskFailure('cannot queue the message', err);
      this.log.error({ queueId: id, err }, failure.message);
      throw failure;
    }
    this.enqueued++;
    this.keepFresh(id, message, envelopeText);
    this.log.info(
      { queueId: id, from: envelope.from, nrcpt: envelope.recipients.length, size: envelope.size, client: envelope.client.address },
      'queued',
    );
    this.trace?.record({
      queueId: id,
      type: 'queued',
      from: envelope.from,
      recipients: envelope.recipients.map((r) => r.address),
      detail: { size: envelope.size, listener: envelope.client.listener },
    });
    this.emit('enqueued', envelope);
    return id;
  }

  /** The envelope of `id`, or null when it is not in the queue. */
  async read(id: string): Promise<QueueEnvelope | null> {
    const text = await ignoreMissing(readFile(this.envelopePath(id), 'utf8'));
    if (text === undefined) return null;
    return checkEnvelope(JSON.parse(text), id);
  }

  protected keepFresh(id: string, message: Buffer, envelope: string): void {
    if (!this.keepsFresh || message.length > FRESH_BYTES / 4) return;
    this.fresh.set(id, { message, envelope, at: performance.now() });
    this.freshBytes += message.length;
    for (const [old, kept] of this.fresh) {
      if (this.freshBytes <= FRESH_BYTES) break;
      this.fresh.delete(old);
      this.freshBytes -= kept.message.length;
    }
  }

  protected dropFresh(id: string): void {
    const kept = this.fresh.get(id);
    if (kept === undefined) return;
    this.fresh.delete(id);
    this.freshBytes -= kept.message.length;
  }

  /**
   * The envelope for a delivery attempt. For the first one, within FRESH_ENVELOPE_MS of the commit, the envelope
   * this process just wrote stands in for the file: reading it back is an open/fstat/read/close per message on the
   * event loop (issue 11). Only the CLI could have changed the file in that second: a flush means nothing to a
   * message about to be tried, and a delete in that window is indistinguishable from one that loses the race to an
   * attempt already under way (the scheduler's scans catch deletes later than that). Otherwise read().
   */
  async readForAttempt(id: string): Promise<QueueEnvelope | null> {
    const kept = this.fresh.get(this.checkId(id));
    if (kept?.envelope !== undefined) {
      const text = kept.envelope;
      kept.envelope = undefined;
      if (performance.now() - kept.at < FRESH_ENVELOPE_MS) return checkEnvelope(JSON.parse(text), id);
    }
    return this.read(id);
  }

  /** Where the message of `envelope` lies, with what precedes it in the file (for a hard link into a Maildir). */
  spooledFile(envelope: QueueEnvelope): SpooledFile | undefined {
    return envelope.spoolPrefix ? { path: this.messagePath(envelope.id), prefix: envelope.spoolPrefix } : undefined;
  }

  /**
   * The message bytes (without the envelope's spoolPrefix: pass it); throws NotQueuedError when the message is
   * gone (deleted meanwhile).
   */
  async readMessage(id: string, spoolPrefix?: string): Promise<Buffer> {
    const kept = this.fresh.get(this.checkId(id));
    if (kept !== undefined) {
      // Only for the first attempt: after it the message is either gone or waits for a retry minutes away.
      // The scheduler has just read the envelope (from disk, or the fresh one of readForAttempt), which is the
      // check that the message is still queued (a CLI delete takes the envelope first); the file would say no more.
      this.dropFresh(id);
      return kept.message;
    }
    const data = await ignoreMissing(readFile(this.messagePath(id)));
    if (data === undefined) throw new NotQueuedError(id);
    return spoolPrefix ? data.subarray(Buffer.byteLength(spoolPrefix, 'utf8')) : data;
  }

  /** Whether `id` is queued (its envelope and its message are there). */
  async has(id: string): Promise<boolean> {
    const [e, m] = await Promise.all([ignoreMissing(stat(this.envelopePath(id))), ignoreMissing(stat(this.messagePath(id)))]);
    return e !== undefined && m !== undefined;
  }

  /**
   * Every queued message's envelope, oldest first. An envelope whose message is missing (a delete under way) is
   * left out, and so is one that vanishes or cannot be parsed while it is read (logged).
   */
  async list(): Promise<QueueEnvelope[]> {
    const names = (await ignoreMissing(readdir(this.dir))) ?? [];
    const messages = new Set<string>();
    const envelopes: string[] = [];
    for (const name of names) {
      const f = queueFile(name);
      if (f?.kind === 'message') messages.add(f.id);
      else if (f?.kind === 'envelope') envelopes.push(f.id);
    }
    const ids = envelopes.filter((id) => messages.has(id)).sort();
    const out: QueueEnvelope[] = [];
    // A bounded number of reads at once: a queue of 100,000 messages must not open 100,000 files together.
    const width = 32;
    for (let i = 0; i < ids.length; i += width) {
      const chunk = await Promise.all(
        ids.slice(i, i + width).map(async (id) => {
          try {
            return await this.read(id);
          } catch (err) {
            this.log.warn({ queueId: id, err }, 'unreadable queue envelope skipped');
            return null;
          }
        }),
      );
      for (const e of chunk) if (e) out.push(e);
    }
    return out;
  }

  /**
   * The scheduler's periodic re-read, made cheap for a deep queue: every queued id, and the envelopes whose file
   * changed since the previous scan (a stat instead of open, read, close and JSON.parse for each unchanged one).
   * The CLI's flush and the server's update() replace the envelope by rename, so a change gives a new inode; mtime
   * and size catch the rest. `need(id)` asks for an envelope whatever its stamp (one the caller does not know).
   */
  async scan(need: (id: string) => boolean): Promise<ScanResult> {
    const names = (await ignoreMissing(readdir(this.dir))) ?? [];
    const messages = new Set<string>();
    const envelopeIds: string[] = [];
    for (const name of names) {
      const f = queueFile(name);
      if (f?.kind === 'message') messages.add(f.id);
      else if (f?.kind === 'envelope') envelopeIds.push(f.id);
    }
    const ids = envelopeIds.filter((id) => messages.has(id)).sort();
    const present = new Set(ids);
    for (const id of this.stamps.keys()) if (!present.has(id)) this.stamps.delete(id);
    const envelopes: QueueEnvelope[] = [];
    const width = 32;
    for (let i = 0; i < ids.length; i += width) {
      const chunk = await Promise.all(
        ids.slice(i, i + width).map(async (id) => {
          try {
            const st = await ignoreMissing(stat(this.envelopePath(id)));
            if (!st) return null;
            const stamp = `${st.ino}:${st.mtimeMs}:${st.size}`;
            if (this.stamps.get(id) === stamp && !need(id)) return null;
            const e = await this.read(id);
            if (e) this.stamps.set(id, stamp);
            return e;
          } catch (err) {
            this.log.warn({ queueId: id, err }, 'unreadable queue envelope skipped');
            return null;
          }
        }),
      );
      for (const e of chunk) if (e) envelopes.push(e);
    }
    return { ids, envelopes };
  }

  /**
   * Replaces the envelope of a queued message atomically and durably (tmp + fsync + rename + directory fsync).
   * Returns false, writing nothing, when the message is no longer queued (deleted by the CLI meanwhile).
   */
  async update(envelope: QueueEnvelope): Promise<boolean> {
    const id = this.checkId(envelope.id);
    const kept = this.fresh.get(id);
    if (kept) kept.envelope = undefined; // stale from now on
    if (!(await this.has(id))) return false;
    // A unique tmp name: the server and the CLI may update the same envelope at the same moment.
    const tmp = join(this.tmpDir, `${id}.${randomBytes(6).toString('hex')}.json`);
    try {
      await this.fs.writeFileDurable(tmp, JSON.stringify(envelope) + '\n');
      await this.fs.rename(tmp, this.envelopePath(id));
      await this.dirSync.sync();
    } catch (err) {
      await this.fs.unlink(tmp).catch(() => undefined);
      throw diskFailure(`cannot update queue envelope ${id}`, err);
    }
    return true;
  }

  /**
   * Reads the envelope, lets `change` edit it, writes it back. Returns the envelope written, or null when the
   * message is not queued. (The CLI's flush; the read-to-write window is short, and a lost race costs at worst one
   * more delivery attempt: delivery is at-least-once.)
   */
  async modify(id: string, change: (e: QueueEnvelope) => void): Promise<QueueEnvelope | null> {
    const e = await this.read(id);
    if (!e) return null;
    change(e);
    return (await this.update(e)) ? e : null;
  }

  /**
   * Removes a message: envelope first (from then on it is not queued), then the message, then a directory fsync
   * so a crash does not bring back a message that was delivered. Returns false when there was nothing to remove.
   *
   * `lazy` (the scheduler's removal of a message every recipient of which is final): the unlinks run on the thread
   * pool and the directory fsync is not waited for — the next fsync of queue/ (the next enqueue's group commit),
   * or one LAZY_SYNC_MS later, makes the removal durable. A crash before then brings the message back and it is
   * delivered again: at-least-once (DESIGN.md §3), never lost. An admin's delete (`by`) is never lazy.
   */
  async remove(id: string, by?: string, opts: { lazy?: boolean } = {}): Promise<boolean> {
    this.dropFresh(this.checkId(id));
    const lazy = opts.lazy === true && by === undefined;
    let found = false;
    for (const path of [this.envelopePath(id), this.messagePath(id)]) {
      try {
        await (lazy ? this.fs.unlinkPooled(path) : this.fs.unlink(path));
        found = true;
      } catch (err) {
        if (errno(err) !== 'ENOENT') throw diskFailure(`cannot remove queue file ${path}`, err);
      }
    }
    if (found) {
      if (lazy) this.dirSync.soon(LAZY_SYNC_MS);
      else {
        try {
          await this.dirSync.sync();
        } catch (err) {
          throw diskFailure(`cannot remove ${id}`, err);
        }
      }
      this.log.info({ queueId: id, ...(by ? { by } : {}) }, 'removed');
      // An admin's delete (API or CLI) is the end of the message's path; the scheduler's own removal of a finished
      // message is traced by the scheduler as `completed`.
      if (by) this.trace?.record({ queueId: id, type: 'deleted', detail: { by } });
    }
    return found;
  }

  /** Makes lazy removals durable now (the scheduler's stop). */
  settle(): Promise<void> {
    return this.dirSync.settle();
  }

  /**
   * Whether the two files of `id` are what a finished commit leaves: an envelope that parses, and a message file
   * as long as the envelope says (its `size` and its spoolPrefix) whose bytes have the envelope's digest (`sha1`;
   * the whole file is read and hashed at start, ~25 µs per 10 KiB message from the page cache). enqueue fsyncs the files and the directory at
   * the same time (see the file comment), so a crash before its answer may leave the names on disk without all of
   * the data: such a message was never acknowledged. A file that cannot be read for another reason than its
   * content (EIO, EACCES) is not judged: recover() then fails, and the server does not start on a queue it cannot
   * read, rather than dropping mail.
   */
  private async committed(id: string): Promise<boolean> {
    const [text, st] = await Promise.all([ignoreMissing(readFile(this.envelopePath(id), 'utf8')), ignoreMissing(stat(this.messagePath(id)))]);
    if (text === undefined || st === undefined) return false;
    let e: QueueEnvelope;
    try {
      e = checkEnvelope(JSON.parse(text), id);
    } catch {
      return false;
    }
    // An envelope without a size (none written by this code) is not judged by it.
    if (typeof e.size === 'number' && st.size !== e.size + (e.spoolPrefix ? Buffer.byteLength(e.spoolPrefix, 'utf8') : 0)) return false;
    // The right length is not enough: without a journal (or with data=writeback) the size can reach the disk before
    // the blocks, which then read back as zeros. The digest taken when it was written tells (QueueEnvelope.sha1);
    // an envelope from before the digest is judged by its length alone.
    if (typeof e.sha1 !== 'string') return true;
    const data = await ignoreMissing(readFile(this.messagePath(id)));
    return data !== undefined && fileDigest(data) === e.sha1;
  }

  /**
   * At server start, before anything is enqueued: drops what a crash left behind and was never acknowledged (tmp
   * files; a message without its envelope) and what a delete left half done (an envelope without its message:
   * remove() takes the envelope first, so this can only come from a crash between enqueue's two renames or from
   * a delete racing an update), and a commit a crash cut short (committed()). Keeps every message that has both
   * files, complete.
   */
  async recover(): Promise<RecoverResult> {
    await this.init();
    const result: RecoverResult = { messages: 0, removedTmp: 0, removedOrphans: [] };
    for (const name of await readdir(this.tmpDir)) {
      await ignoreMissing(this.fs.unlink(join(this.tmpDir, name)));
      result.removedTmp++;
    }
    const messages = new Set<string>();
    const envelopes = new Set<string>();
    for (const name of await readdir(this.dir)) {
      const f = queueFile(name);
      if (f?.kind === 'message') messages.add(f.id);
      else if (f?.kind === 'envelope') envelopes.add(f.id);
    }
    const both = [...messages].filter((id) => envelopes.has(id));
    const torn: string[] = [];
    // A bounded number of files at once, as in list().
    const width = 32;
    for (let i = 0; i < both.length; i += width) {
      const chunk = both.slice(i, i + width);
      const checked = await Promise.all(chunk.map((id) => this.committed(id)));
      chunk.forEach((id, j) => (checked[j] ? result.messages++ : torn.push(id)));
    }
    for (const id of torn) {
      // Envelope first, as in remove(): from then on the message is not queued.
      await ignoreMissing(this.fs.unlink(this.envelopePath(id)));
      await ignoreMissing(this.fs.unlink(this.messagePath(id)));
      result.removedOrphans.push(id);
      this.log.warn({ queueId: id }, 'removed a message whose files a crash left incomplete (never acknowledged)');
    }
    for (const id of messages) {
      if (envelopes.has(id)) continue;
      await ignoreMissing(this.fs.unlink(this.messagePath(id)));
      result.removedOrphans.push(id);
      this.log.warn({ queueId: id }, 'removed a message without envelope (never acknowledged)');
    }
    for (const id of envelopes) {
      if (messages.has(id)) continue;
      await ignoreMissing(this.fs.unlink(this.envelopePath(id)));
      result.removedOrphans.push(id);
      this.log.warn({ queueId: id }, 'removed an envelope without message');
    }
    if (result.removedOrphans.length) await this.dirSync.sync();
    if (result.removedTmp || result.removedOrphans.length) {
      this.log.info({ removedTmp: result.removedTmp, removedOrphans: result.removedOrphans.length }, 'queue recovered');
    }
    return result;
  }
}
