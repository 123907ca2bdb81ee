/**
 * The Maildir store on the PostgreSQL index (issue 16, state postgres): what the nodes of a cluster sharing one
 * mail directory (NFS, CephFS) must agree on — UIDVALIDITY, UIDNEXT, the UID of each file, flags and keywords,
 * MODSEQs and expunges — is kept in PostgreSQL (mail-index.ts), not in dovecot-uidlist nor in a SQLite file beside
 * the messages.
 *
 * Why not the single-host way: there, UIDs are handed out under Dovecot's dovecot-uidlist dot-lock and cached in
 * postern-index.db in the folder. On a shared mount neither is safe across hosts: a dot-lock is taken over after
 * 120 s of no change (a slow node loses it mid-write), NFS attribute caching makes a node trust a uidlist another
 * node has already appended to, and SQLite's POSIX locks are not reliable over NFS (two writers corrupt the file).
 * PostgreSQL allocates each UID once, under the folder row's lock (mail-index.ts), whichever node asks.
 *
 * What each node keeps: a copy of the shared index in a SQLite file of its own (cacheDir, node-local disk, one per
 * folder), which MaildirMailbox reads synchronously as it reads postern-index.db on one host. `pull` brings the copy
 * up to the shared index (one query when nothing changed: the folder's MODSEQ; otherwise the rows changed and the
 * UIDs expunged since the copy's MODSEQ), with the shared MODSEQs, so both nodes report the same MODSEQ for a
 * message (RFC 7162 §3.1). Every change goes to PostgreSQL first and is then pulled, so the copy never holds what the
 * shared index does not.
 *
 * The files: message files are written as on one host (tmp/ → new/ or cur/ by rename, names `<secs>.M<usecs>P<pid>
 * Q<n>.<host>`, unique per node as Dovecot's, maildir.ts); a file seen on disk that the shared index does not list
 * is given a UID by `addNew` (two nodes finding one file at once: the second finds it listed). dovecot-uidlist is
 * neither read nor written with state postgres: it would be a second truth for UIDs that two hosts update under a
 * lock NFS does not make safe. A folder Dovecot (or the sqlite state) used keeps its Maildir files and flags; its
 * UIDs are assigned anew (a new UIDVALIDITY) the first time a node opens it on PostgreSQL.
 *
 * An error from PostgreSQL is a TempFailure (IMAP NO [UNAVAILABLE]); nothing is changed on disk for a change the
 * shared index could not take, except a flag rename, which the next sync then records (the file name is the truth
 * for flags, as on one host).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, unlinkSync } from 'node:fs';
import { isAbsolute, join, relative, sep } from 'node:path';
import type { FolderIndex, IndexRow, NewRow } from '../../store/folder-index.js';
import type { IndexChanges } from '../../store/folder-index-backend.js';
import { PgFolderIndex, type IndexWrite } from './mail-index.js';
import type { TxQueryable } from './queryable.js';

/** What a pull changed in the node's copy: for the events a sync emits. */
export interface Pulled {
  expunged: number[];
  /** Rows that were in the copy before with another name or keywords (a flag change elsewhere). */
  changed: IndexRow[];
  added: number;
}

const NOTHING: Pulled = { expunged: [], changed: [], added: 0 };

/**
 * How long a copy is taken for current without asking PostgreSQL, when nothing said it is not (see `current`):
 * the bound on how late a change whose notification was lost is seen (issue 16: "within 1 s").
 */
export const TRUST_MS = 1000;

/** What tells this node that another one changed a folder: the LISTEN connection and the change hub it feeds. */
export interface ChangeFeed {
  /** A number that changes each time the LISTEN connection is made again; undefined while it is down. */
  generation(): number | undefined;
  /**
   * Whether the hub hears of every foreign change, of folders watched here or not: true in a process that serves
   * IMAP itself (no imap.workers), where PgMailEvents hands every change of another node to the hub. False where
   * another process passes on only the changes of keys watched here (imap.workers: workers.ts keeps the others back).
   */
  hearsAll: boolean;
  /** The folder hub: changes of other nodes and processes arrive through its emitLocal. */
  hub: { onForeign(cb: (key: string) => void): () => void; onInterest(cb: (key: string, watched: boolean) => void): () => void; has(key: string): boolean };
}

interface Mark {
  epoch: number;
  generation: number;
  at: number;
}

export class MaildirPgIndex {
  private readonly folders = new Map<string, Promise<PgFolderIndex>>();
  /** Writes after which the node's copy was brought up to date without the catch-up query (tests, bench). */
  fastForwards = 0;
  /** Pulls not made because the copy was known current (`current`; tests, bench). */
  trustedPulls = 0;
  private feed: ChangeFeed | undefined;
  /** Per folder directory: how many foreign changes were heard of (a mark taken before one is void). */
  private readonly epochs = new Map<string, number>();
  /** Per folder directory: when the copy was last brought up to the shared index, and under which epoch. */
  private readonly marks = new Map<string, Mark>();

  constructor(
    private readonly opts: {
      db: TxQueryable;
      /** The store root (dataDir/mail): folder keys are Maildir paths relative to it, the same on every node. */
      mailRoot: string;
      /** Node-local directory for the copies (dataDir/index-cache). */
      cacheDir: string;
    },
  ) {
    mkdirSync(opts.cacheDir, { recursive: true, mode: 0o700 });
  }

  /** The folder's key in mail_folders: its path under the mail root, '/'-separated. */
  key(dir: string): string {
    const rel = relative(this.opts.mailRoot, dir);
    if (rel.startsWith('..') || isAbsolute(rel)) return dir;
    return rel.split(sep).join('/');
  }

  /** The node's copy of the folder's index (FolderIndex.open's `file`). */
  cacheFile(dir: string): string {
    return join(this.opts.cacheDir, `${createHash('sha256').update(this.key(dir)).digest('hex').slice(0, 40)}.db`);
  }

  private folder(dir: string): Promise<PgFolderIndex> {
    const key = this.key(dir);
    let f = this.folders.get(key);
    if (!f) {
      f = PgFolderIndex.open(this.opts.db, key);
      // A failed open (PostgreSQL down) is not remembered: the next call tries again.
      f.catch(() => this.folders.delete(key));
      this.folders.set(key, f);
    }
    return f;
  }

  /**
   * Lets the copies be trusted between changes (issue 16, the cost of the shared engine): every command that reads a
   * folder pulled — one round trip to PostgreSQL, most of them saying "nothing changed". Every change of the shared
   * index is made by a node through this class and told to the other nodes after it committed (mail-events.ts:
   * NOTIFY to every node that listens, and to its own IMAP workers); what this process writes it brings into the
   * copy itself. So a copy brought up to the shared index at time t is still current while, since t: the LISTEN
   * connection stayed up (one generation), no change of another node or process was heard of for the folder (and,
   * where only the changes of watched folders are passed on, a session here kept watching it), and less than
   * TRUST_MS passed (a notification lost after its commit — PostgreSQL gone in between — is made up for by the next
   * pull after that). Without a feed (IMAP worker processes, tests) every read pulls, as before.
   */
  trustChanges(feed: ChangeFeed): () => void {
    this.feed = feed;
    const bump = (key: string) => {
      this.epochs.set(key, (this.epochs.get(key) ?? 0) + 1);
      this.marks.delete(key);
    };
    const offs = [feed.hub.onForeign(bump)];
    // Watched here from now on, or no longer: what was not passed on meanwhile may have been missed.
    if (!feed.hearsAll) offs.push(feed.hub.onInterest((key) => bump(key)));
    return () => {
      for (const off of offs) off();
      if (this.feed === feed) this.feed = undefined;
      this.marks.clear();
    };
  }

  /** Whether the copy of `dir` is known to be the shared index now (see trustChanges). */
  current(dir: string): boolean {
    const m = this.marks.get(dir);
    const feed = this.feed;
    if (!m || !feed) return false;
    if (m.generation !== feed.generation() || m.epoch !== (this.epochs.get(dir) ?? 0) || (!feed.hearsAll && !feed.hub.has(dir))) return false;
    return Date.now() - m.at < TRUST_MS;
  }

  /** `pull`, unless the copy is known current (`current`): for reads and for writes that do not compare MODSEQs. */
  async refresh(dir: string, local: FolderIndex): Promise<Pulled> {
    if (this.current(dir)) {
      this.trustedPulls++;
      return NOTHING;
    }
    return this.pull(dir, local);
  }

  /** Taken before a query whose result brings the copy up to the shared index. */
  private markStart(dir: string): Mark | undefined {
    const generation = this.feed?.generation();
    if (generation === undefined) return undefined;
    return { epoch: this.epochs.get(dir) ?? 0, generation, at: Date.now() };
  }

  /** The query begun at `mark` brought the copy up: trusted, unless a foreign change was heard of meanwhile. */
  private trusted(dir: string, mark: Mark | undefined): void {
    if (mark && mark.epoch === (this.epochs.get(dir) ?? 0)) this.marks.set(dir, mark);
    else this.marks.delete(dir);
  }

  /** Brings the node's copy `local` up to the shared index. */
  async pull(dir: string, local: FolderIndex): Promise<Pulled> {
    const mark = this.markStart(dir);
    this.marks.delete(dir);
    const pulled = await this.pullOnce(dir, local);
    this.trusted(dir, mark);
    return pulled;
  }

  private async pullOnce(dir: string, local: FolderIndex): Promise<Pulled> {
    const pg = await this.folder(dir);
    // One statement, one snapshot: the folder's MODSEQ and the rows and expunges up to it agree (a change moves
    // the MODSEQ under the folder row's lock, in its own transaction).
    const d = await pg.delta({ uidValidity: local.uidValidity, uidNext: local.uidNext, modseq: local.modseq });
    const meta = d.meta;
    if (meta.uidValidity === local.uidValidity && meta.modseq === local.modseq && meta.uidNext === local.uidNext) return NOTHING;
    const full = meta.uidValidity !== local.uidValidity || local.modseq > meta.modseq || d.vanished === undefined;
    let rows: IndexRow[] = [];
    let remove: number[] = [];
    if (!full) {
      remove = d.vanished!.filter((u) => local.row(u) !== undefined);
      rows = d.changed;
    }
    const before = new Map<number, IndexRow>();
    if (full) {
      rows = await pg.rows();
      const now = new Set(rows.map((r) => r.uid));
      for (const r of local.rows()) {
        before.set(r.uid, r);
        if (!now.has(r.uid)) remove.push(r.uid);
      }
    } else {
      for (const r of rows) {
        const old = local.row(r.uid);
        if (old) before.set(r.uid, old);
      }
    }
    const reset = meta.uidValidity !== local.uidValidity;
    local.mirror({ reset, uidValidity: meta.uidValidity, uidNext: meta.uidNext, modseq: meta.modseq, remove, rows });
    if (reset) return { expunged: [...before.keys()], changed: [], added: rows.length };
    const changed: IndexRow[] = [];
    let added = 0;
    for (const r of rows) {
      const old = before.get(r.uid);
      if (!old || old.base !== r.base) added++;
      else if (old.name !== r.name || old.keywords !== r.keywords) changed.push(r);
    }
    return { expunged: remove, changed, added };
  }

  /**
   * Makes `changes` in the shared index, then pulls. Returns the UIDs of `changes.add` and the MODSEQ the change
   * was given (RFC 7162 §3.1.1: one for the whole command).
   */
  async apply(dir: string, local: FolderIndex, changes: IndexChanges): Promise<{ uids: number[]; modseq: number }> {
    const pg = await this.folder(dir);
    const mark = this.markStart(dir);
    // Until the copy is up again: a write that fails half-way (its reply lost) leaves it behind the shared index.
    this.marks.delete(dir);
    const { uids, write } = await pg.applyWrite(changes, (uid) => local.row(uid));
    const modseq = pg.lastModseq;
    if (this.fastForward(local, write)) this.trusted(dir, mark);
    else await this.pull(dir, local);
    return { uids, modseq };
  }

  /**
   * The catch-up after a write, without a query when the write was all that happened: a copy at the folder's state
   * just before the write (UIDVALIDITY, UIDNEXT and MODSEQ all equal; every change of the shared index moves the
   * MODSEQ or UIDNEXT under the folder row's lock, which the write held) lacks exactly the rows the write
   * returned, which are written into it as a pull would. Otherwise (another node or session changed the folder
   * since the copy was pulled) undefined, and the caller pulls.
   */
  private fastForward(local: FolderIndex, write: IndexWrite | undefined): Pulled | undefined {
    if (!write) return undefined;
    const b = write.before;
    if (local.uidValidity !== b.uidValidity || local.uidNext !== b.uidNext || local.modseq !== b.modseq) return undefined;
    const changed: IndexRow[] = [];
    let added = 0;
    for (const r of write.rows) {
      const old = local.row(r.uid);
      if (!old || old.base !== r.base) added++;
      else if (old.name !== r.name || old.keywords !== r.keywords) changed.push(r);
    }
    const removed = (write.removed ?? []).filter((uid) => local.row(uid) !== undefined);
    local.mirror({ reset: false, uidValidity: write.after.uidValidity, uidNext: write.after.uidNext, modseq: write.after.modseq, remove: removed, rows: write.rows });
    this.fastForwards++;
    return { expunged: removed, changed, added };
  }

  /**
   * Gives UIDs to files new to the folder, in the order given (APPEND, COPY: the caller's order; files found on
   * disk: their delivery time), once across nodes: a file another node listed meanwhile keeps its UID. Returns the
   * UID of each, in order, and what the pull brought.
   */
  async addNew(dir: string, local: FolderIndex, items: NewRow[]): Promise<{ uids: number[]; pulled: Pulled }> {
    const pg = await this.folder(dir);
    const mark = this.markStart(dir);
    this.marks.delete(dir);
    // One round trip (PgFolderIndex.addFresh): the look-up of what is listed and the insert of the rest happen under
    // the folder row's lock, so a file another node listed meanwhile is found there, not inserted twice.
    const r = items.length ? await pg.addFreshWrite(items.map(({ uid: _ignored, ...x }) => x)) : { uids: new Map<string, number>(), write: undefined as IndexWrite | undefined };
    let pulled = this.fastForward(local, r.write);
    if (pulled) this.trusted(dir, mark);
    else pulled = await this.pull(dir, local);
    return { uids: items.map((i) => r.uids.get(i.base) ?? 0), pulled };
  }

  /** Which of the files `bases` the shared index lists. */
  async listedBases(dir: string, bases: string[]): Promise<Set<string>> {
    return new Set((await (await this.folder(dir)).uidsOfBases(bases)).keys());
  }

  vanishedSince(dir: string, modseq: number): Promise<number[] | undefined> {
    return this.folder(dir).then((f) => f.vanishedSince(modseq));
  }

  firstRecentUid(dir: string, claimUpTo?: number): Promise<number> {
    return this.folder(dir).then((f) => f.firstRecentUid(claimUpTo));
  }

  /** The folder was deleted: its shared index and this node's copy go. */
  async dropped(dir: string): Promise<void> {
    const key = this.key(dir);
    this.marks.delete(dir);
    this.folders.delete(key);
    await PgFolderIndex.drop(this.opts.db, key);
    this.discardCopy(dir);
  }

  /** The folder was renamed: the shared index follows it (same UIDVALIDITY and UIDs). */
  async renamed(fromDir: string, toDir: string): Promise<void> {
    this.folders.delete(this.key(fromDir));
    this.folders.delete(this.key(toDir));
    this.marks.delete(fromDir);
    this.marks.delete(toDir);
    await PgFolderIndex.rename(this.opts.db, this.key(fromDir), this.key(toDir));
    this.discardCopy(fromDir);
    this.discardCopy(toDir);
  }

  private discardCopy(dir: string): void {
    const file = this.cacheFile(dir);
    for (const f of [file, `${file}-wal`, `${file}-shm`]) {
      try {
        unlinkSync(f);
      } catch {
        /* absent */
      }
    }
  }
}
