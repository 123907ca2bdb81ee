/**
 * MailboxAccess (src/store/mailbox.ts) on the Maildir++ store: what IMAP and POP3 read and change.
 *
 * The Maildir is shared with Dovecot: UIDVALIDITY and UIDs come from Dovecot's `dovecot-uidlist`
 * (dovecot-uidlist.ts) and keywords are lowercase letters in the file names, named by `dovecot-keywords`
 * (dovecot-keywords.ts); both are changed only under Dovecot's `dovecot-uidlist.lock` (dotlock.ts). A Maildir
 * moved from Dovecot keeps its UIDs and keywords, and Dovecot opening one postern wrote sees the same.
 *
 * Each folder's Maildir also holds a `postern-index.db` (folder-index.ts): a cache of the above plus MODSEQs, the
 * keywords beyond Dovecot's 26 letters and cached ENVELOPE / BODYSTRUCTURE. Opening a folder syncs it with the
 * directories: files in new/ move to cur/ with an empty `:2,` info; dovecot-uidlist is read (in one pass) only when
 * it changed since the last sync; files it does not know get the next UIDs in file-name time order, appended to it
 * under the lock; rows whose file vanished are dropped, and a file renamed by another program is a flag change.
 * Only directory listings, those two small files and the index are read: never message contents, and no stat() for
 * names that carry `,S=` and a delivery time.
 *
 * System flags live in the file name as the Maildir spec and Dovecot have them (S \Seen, R \Answered,
 * F \Flagged, T \Deleted, D \Draft); letters we do not map (P, lowercase letters dovecot-keywords does not name)
 * are kept untouched.
 *
 * Changes are announced on an in-process hub (watch.ts) to every `watch` listener of the folder, including the
 * session that made them (the contract has no session identity; a session compares with what it already knows).
 * Deliveries by the SMTP side are found by an fs.watch on new/ of watched folders, and, more cheaply and reliably,
 * by `notifyDelivered(owner, folder)` which delivery can call after `store.deliver`.
 */
import { readFileSync, statSync, watch as fsWatch, type FSWatcher, type Stats } from 'node:fs';
import { open, readdir, readFile, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from '../lib/logger.js';
import type { MaildirPgIndex } from '../state/postgres/maildir-pg-index.js';
import type { Settings } from '../settings/store.js';
import { dirsState, markDir, markersWork, settledOrMarked, DIR_SETTLE_MS, type DirsState } from './dir-signature.js';
import { withDotlock } from './dotlock.js';
import { KEYWORDS_FILE, KeywordMap, keywordsSignature, MAX_KEYWORD_LETTERS, readKeywords, writeKeywords } from './dovecot-keywords.js';
import {
  appendUidlist,
  readUidlist,
  uidlistName,
  uidlistSignature,
  uidlistStat,
  UidlistCorrupt,
  UIDLIST_FILE,
  writeUidlist,
  type Uidlist,
  type UidlistRecord,
} from './dovecot-uidlist.js';
import { errorCode } from './fs-util.js';
import { FolderIndex, isCorruption, type IndexRow, type NewRow } from './folder-index.js';
import { searchHeadersOfMessage, type SearchHeaders } from './header-fields.js';
import { KeyedMutex } from './keyed-mutex.js';
import { FolderNotFound, OverQuota, StoreResult, type Flag, type FolderChange, type FolderInfo, type FolderState, type FolderSummary, type MailboxAccess, type MailboxListChange, type MessageFile, type MessageMeta } from './mailbox.js';
import type { MaildirStore } from './maildir.js';
import { decodeMutf7, encodeMutf7 } from './mutf7.js';
import { FOLDER_SEPARATOR, ownerLabel, parseMaildirFileName, SPECIAL_FOLDERS } from './names.js';
import { appendMaildirSize, readMaildirSize, recalculateMaildirSize } from './quota.js';
import { QuotaExceeded, type MailboxOwner } from './types.js';
import { folderEvents, mailboxListEvents, type FolderEvents } from './watch.js';

export class FolderExists extends Error {
  constructor(readonly folder: string) {
    super(`folder exists: ${folder}`);
    this.name = 'FolderExists';
  }
}

/** An operation the folder does not allow (deleting INBOX, renaming onto INBOX). */
export class FolderRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FolderRefused';
  }
}

export class MessageNotFound extends Error {
  constructor(readonly folder: string, readonly uid: number) {
    super(`no message with UID ${uid} in ${folder}`);
    this.name = 'MessageNotFound';
  }
}

/**
 * Dovecot's subscriptions file in the Maildir root, in its version 2 format (src/lib-storage/list/subscription-file.c):
 * a "V\t2\n\n" header, then one folder per line with the hierarchy levels separated by TAB (so the file does not
 * depend on the separator a namespace is configured with), each level a storage name (modified UTF-7, as Dovecot
 * 2.3 writes them), tab-escaped.
 */
export const SUBSCRIPTIONS_FILE = 'subscriptions';
const SUBSCRIPTIONS_V2 = 'V\t2\n\n';

/** Dovecot's str_append_tabescaped: \001 → \0011, TAB → \001t, CR → \001r, LF → \001n. */
function tabEscape(s: string): string {
  return s.replace(/[\u0001\t\r\n]/g, (c) => `\u0001${c === '\u0001' ? '1' : c === '\t' ? 't' : c === '\r' ? 'r' : 'n'}`);
}

function tabUnescape(s: string): string {
  return s.replace(/\u0001([1trn0])/g, (_, c: string) => (c === '1' ? '\u0001' : c === 't' ? '\t' : c === 'r' ? '\r' : c === 'n' ? '\n' : ''));
}

/**
 * A hierarchy level of a subscriptions line. Dovecot writes storage names, modified UTF-7 like the directories
 * ('Entw&APw-rfe'); earlier postern versions wrote UTF-8, which is kept as it is (as is anything not valid mUTF-7).
 */
function storageLevelName(level: string): string {
  if (/[^\x00-\x7f]/.test(level)) return level;
  try {
    return decodeMutf7(level);
  } catch {
    return level;
  }
}

const FLAG_LETTERS: ReadonlyArray<[Flag, string]> = [
  ['\\Draft', 'D'],
  ['\\Flagged', 'F'],
  ['\\Answered', 'R'],
  ['\\Seen', 'S'],
  ['\\Deleted', 'T'],
];
const LETTER_OF = new Map(FLAG_LETTERS.map(([f, l]) => [f.toLowerCase(), l]));
const SYSTEM_LETTERS = new Set(FLAG_LETTERS.map(([, l]) => l));

const EMPTY_MAP = new KeywordMap();

/** See MaildirMailbox.current. */
const CURRENT_CHECK_MS = 250;
/** Messages up to this size are read synchronously (readMessage). */
const SYNC_READ_MAX = 128 * 1024;

/**
 * Flags of a message: system flags from the file name's letters, then the keywords its lowercase letters stand for
 * (by the folder's dovecot-keywords), then the index's unlettered keywords; each keyword once.
 */
export function flagsOf(name: string, keywords: string, map: KeywordMap = EMPTY_MAP): Flag[] {
  const info = name.indexOf(':2,');
  const letters = info < 0 ? '' : name.slice(info + 3);
  const out: Flag[] = [];
  for (const [flag, letter] of FLAG_LETTERS) if (letters.includes(letter)) out.push(flag);
  let seen: Set<string> | undefined;
  for (const l of letters) {
    if (l < 'a' || l > 'z') continue;
    const k = map.keywordOf(l);
    if (k === undefined) continue;
    (seen ??= new Set()).add(k.toLowerCase());
    out.push(k);
  }
  if (keywords) for (const k of keywords.split(' ')) if (!seen?.has(k.toLowerCase())) out.push(k);
  return out;
}

/**
 * flagsOf for the messages openFolder lists, one frozen array per distinct (letters, keywords) under one keyword map:
 * a 100,000-message folder has a handful of flag combinations, and an array per message was a tenth of a cold
 * SELECT's time plus the GC it caused. Frozen because it is shared: a caller changes flags by replacing the array
 * (MessageMeta says copy before changing), and one that pushed into it would throw instead of changing every message.
 */
const sharedFlags = new WeakMap<KeywordMap, Map<string, readonly Flag[]>>();
function sharedFlagsOf(name: string, keywords: string, map: KeywordMap): Flag[] {
  const info = name.indexOf(':2,');
  const key = keywords ? `${info < 0 ? '' : name.slice(info + 3)}\0${keywords}` : info < 0 ? '' : name.slice(info + 3);
  let memo = sharedFlags.get(map);
  if (!memo) sharedFlags.set(map, (memo = new Map()));
  let flags = memo.get(key);
  if (!flags) {
    // Bounded: a folder where nearly every message has its own keywords gains nothing from sharing.
    if (memo.size >= 4096) memo.clear();
    memo.set(key, (flags = Object.freeze(flagsOf(name, keywords, map))));
  }
  return flags as Flag[];
}

/** The keywords (non-system flags) of a message, as flagsOf gives them. */
function keywordsOf(name: string, keywords: string, map: KeywordMap): string[] {
  return flagsOf(name, keywords, map).filter((f) => !f.startsWith('\\'));
}

/** Splits IMAP flags into Maildir letters and keywords (de-duplicated case-insensitively, RFC 3501 §2.3.2). */
function splitFlags(flags: Flag[]): { letters: Set<string>; keywords: string[] } {
  const letters = new Set<string>();
  const keywords: string[] = [];
  const seen = new Set<string>();
  for (const f of flags) {
    const letter = LETTER_OF.get(f.toLowerCase());
    if (letter) letters.add(letter);
    else if (f.startsWith('\\')) continue; // \Recent and unknown system flags are not stored
    else if (!seen.has(f.toLowerCase())) {
      seen.add(f.toLowerCase());
      keywords.push(f);
    }
  }
  return { letters, keywords };
}

/** Keywords → the letters dovecot-keywords gives them, and those without one (kept in the index). */
function keywordLetters(keywords: string[], map: KeywordMap): { letters: string[]; unlettered: string[] } {
  const letters: string[] = [];
  const unlettered: string[] = [];
  for (const k of keywords) {
    const l = map.letterOf(k);
    if (l) letters.push(l);
    else unlettered.push(k);
  }
  return { letters, unlettered };
}

/**
 * The file name with its system-flag and keyword letters replaced; letters we do not manage (P, lowercase ones
 * dovecot-keywords does not name) are kept. Letters in ASCII order, as the Maildir spec requires.
 */
function renameWithLetters(name: string, letters: Iterable<string>, map: KeywordMap | 'all'): string {
  const colon = name.indexOf(':');
  const head = colon < 0 ? name : name.slice(0, colon);
  const managed = (l: string): boolean => l >= 'a' && l <= 'z' && (map === 'all' || map.keywordOf(l) !== undefined);
  const kept = [...parseMaildirFileName(name).flags].filter((l) => !SYSTEM_LETTERS.has(l) && !managed(l));
  return `${head}:2,${[...new Set([...kept, ...letters])].sort().join('')}`;
}

/** The Maildir base name (before ',' and ':'): parseMaildirFileName(name).base without the parsing of the rest. */
function baseOf(name: string): string {
  let end = name.length;
  const comma = name.indexOf(',');
  const colon = name.indexOf(':');
  if (comma >= 0) end = comma;
  if (colon >= 0 && colon < end) end = colon;
  return name.slice(0, end);
}

/** Time order of Maildir names: `<secs>.M<usecs>...` (Dovecot, ours) or `<secs>.<anything>`; unknown names last. */
function timeKey(base: string): [number, number] {
  const m = /^(\d+)\.(?:[^.]*?M(\d+))?/.exec(base);
  if (!m) return [Number.MAX_SAFE_INTEGER, 0];
  return [Number(m[1]), m[2] ? Number(m[2]) : 0];
}

/** The sequence number (index + 1) of `uid` in ascending `uids`; 0 when absent. */
function seqOf(uids: Uint32Array, uid: number): number {
  let lo = 0;
  let hi = uids.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const u = uids[mid]!;
    if (u === uid) return mid + 1;
    if (u < uid) lo = mid + 1;
    else hi = mid - 1;
  }
  return 0;
}

function compareNames(a: string, b: string): number {
  const [as, au] = timeKey(a);
  const [bs, bu] = timeKey(b);
  return as - bs || au - bu || (a < b ? -1 : a > b ? 1 : 0);
}

/**
 * The quota delivery applies (src/delivery/agent.ts), for `quotaBytes`: a user's custom quota or mailbox.quotaMB;
 * a shared folder gets mailbox.quotaMB. 0 = none.
 */
export function quotaFromSettings(settings: Pick<Settings, 'effectiveUser' | 'get'>): (owner: MailboxOwner) => number {
  return (owner) => {
    const mb = owner.kind === 'user' ? settings.effectiveUser(owner.login).quotaMB : settings.get('mailbox.quotaMB');
    return mb > 0 ? mb * 1024 * 1024 : 0;
  };
}

export interface MaildirMailboxOptions {
  store: MaildirStore;
  /** Quota in bytes for an owner (0 = none), e.g. from settings.effectiveUser(login).quotaMB. */
  quotaBytes: (owner: MailboxOwner) => number;
  log: Logger;
  /** Defaults to the process-wide hub, so that all instances over one store hear each other. */
  events?: FolderEvents;
  /** Delay that coalesces bursts of fs.watch events and notifyDelivered calls (default 50 ms). */
  debounceMs?: number;
  /** listFolders creates and subscribes a user's missing Junk, Trash, Sent and Drafts (default true). */
  autocreate?: boolean;
  /**
   * state postgres (issue 16): the shared index of a cluster (state/postgres/maildir-pg-index.ts) is the truth for
   * UIDs, flags, keywords and MODSEQs instead of dovecot-uidlist and postern-index.db. Absent: the single-host store.
   */
  pgIndex?: MaildirPgIndex;
}

interface Watcher {
  fs?: FSWatcher;
  timer?: NodeJS.Timeout;
  owner: MailboxOwner;
  folder: string;
  count: number;
}

// Module-wide: two MaildirMailbox objects in one process must not sync or change one folder at the same time.
const folderLocks = new KeyedMutex();

export class MaildirMailbox implements MailboxAccess {
  private readonly store: MaildirStore;
  private readonly quotaBytesOf: (owner: MailboxOwner) => number;
  private readonly log: Logger;
  private readonly events: FolderEvents;
  private readonly debounceMs: number;
  private readonly autocreate: boolean;
  private readonly indexes = new Map<string, FolderIndex>();
  /**
   * The rows last read from each open index, valid while its modseq is unchanged (every change, by any process,
   * raises it): reopening a big folder then costs one readdir and no index scan.
   */
  private readonly rowCache = new WeakMap<FolderIndex, { modseq: number; rows: IndexRow[] }>();
  /** The messages openFolder last built from a rowCache entry (index branch). */
  private readonly metaCache = new WeakMap<FolderIndex, { rows: IndexRow[]; map: KeywordMap; messages: MessageMeta[] }>();
  /** selectFolder's answer per open index, valid for one UIDVALIDITY, MODSEQ and keyword map. */
  private readonly summaryCache = new WeakMap<FolderIndex, { key: string; map: KeywordMap; uids: Uint32Array; firstUnseen: number; keywords: string[] }>();
  private readonly watchers = new Map<string, Watcher>();
  /** Each folder's dovecot-keywords as last read, with the stat it was read at. */
  private readonly keywordMaps = new Map<string, { map: KeywordMap; signature: string }>();
  /** When each open index was last found still on disk (FolderIndex.isCurrent, a stat). */
  private readonly checkedAt = new WeakMap<FolderIndex, number>();
  private readonly folderPaths = new Map<string, string>();
  /**
   * Per open index: the directories' signature right after this process changed them itself (or marked them after
   * a listing) under the folder's lock, with when that began (see dir-signature.ts). The rows match that state
   * except for a change another process made in the few microseconds between our last stat and the marker: such a
   * change is as concurrent as it gets, and is found by the listing that confirms the state CONFIRM_MS later.
   */
  private readonly ownDirs = new WeakMap<FolderIndex, { signature: string; since: number }>();
  private readonly pg: MaildirPgIndex | undefined;

  constructor(opts: MaildirMailboxOptions) {
    this.pg = opts.pgIndex;
    this.store = opts.store;
    this.quotaBytesOf = opts.quotaBytes;
    this.log = opts.log;
    this.events = opts.events ?? folderEvents;
    this.debounceMs = opts.debounceMs ?? 50;
    this.autocreate = opts.autocreate ?? true;
  }

  /** Closes the index files and fs watchers (the listeners stay registered on the hub until they unsubscribe). */
  close(): void {
    for (const w of this.watchers.values()) {
      w.fs?.close();
      if (w.timer) clearTimeout(w.timer);
    }
    this.watchers.clear();
    for (const idx of this.indexes.values()) idx.close();
    this.indexes.clear();
  }

  // ---- folders --------------------------------------------------------------------------------------------------

  async listFolders(owner: MailboxOwner): Promise<FolderInfo[]> {
    let folders = await this.store.listFolders(owner);
    if (this.autocreate && owner.kind === 'user') {
      // Like Dovecot's `mailbox Sent { auto = subscribe }`: every user has the special-use folders (issue 5 §3).
      const have = new Set(folders.map((f) => f.name.toLowerCase()));
      const missing = Object.values(SPECIAL_FOLDERS).filter((n) => !have.has(n.toLowerCase()));
      if (missing.length) {
        for (const name of missing) {
          await this.store.createFolder(owner, name);
          await this.subscribe(owner, name, true);
        }
        folders = await this.store.listFolders(owner);
      }
    }
    const subs = new Set(await this.readSubscriptions(owner));
    const names = folders.map((f) => f.name);
    return folders.map((f) => ({
      name: f.name,
      ...(f.specialUse ? { specialUse: f.specialUse } : {}),
      subscribed: subs.has(f.name),
      hasChildren: names.some((n) => n.startsWith(f.name + FOLDER_SEPARATOR)),
    }));
  }

  async createFolder(owner: MailboxOwner, name: string): Promise<void> {
    const dir = this.store.folderPath(owner, name);
    if (dir === this.store.maildirPath(owner) || (await isDir(dir))) throw new FolderExists(name);
    await this.store.createFolder(owner, name);
    this.listChanged(owner, { kind: 'created', name });
  }

  watchMailboxes(owner: MailboxOwner, listener: (change: MailboxListChange) => void): () => void {
    return mailboxListEvents.on(this.store.maildirPath(owner), listener);
  }

  private listChanged(owner: MailboxOwner, change: MailboxListChange): void {
    mailboxListEvents.emit(this.store.maildirPath(owner), change);
  }

  async deleteFolder(owner: MailboxOwner, name: string): Promise<void> {
    const dir = this.store.folderPath(owner, name);
    if (dir === this.store.maildirPath(owner)) throw new FolderRefused('INBOX cannot be deleted');
    if (!(await isDir(dir))) throw new FolderNotFound(name);
    await folderLocks.run(dir, async () => {
      this.dropIndex(dir);
      // state postgres: the shared index first, so that a PostgreSQL that cannot be reached leaves the folder as it was.
      await this.pg?.dropped(dir);
      // Children are separate Maildir++ directories ('.A.B' next to '.A') and are kept (RFC 3501 §6.3.4).
      await rm(dir, { recursive: true, force: true });
    });
    this.listChanged(owner, { kind: 'deleted', name });
    await this.recountQuota(owner);
  }

  async renameFolder(owner: MailboxOwner, from: string, to: string): Promise<void> {
    const root = this.store.maildirPath(owner);
    const fromDir = this.store.folderPath(owner, from);
    const toDir = this.store.folderPath(owner, to);
    if (toDir === root) throw new FolderRefused('cannot rename onto INBOX');
    if (await isDir(toDir)) throw new FolderExists(to);
    if (fromDir === root) {
      // RFC 3501 §6.3.5: renaming INBOX moves its messages into the new folder and leaves INBOX empty.
      await this.store.createFolder(owner, to);
      const state = await this.openFolder(owner, 'INBOX');
      if (state.messages.length) await this.copy(owner, 'INBOX', state.messages.map((m) => m.uid), to, { move: true });
      this.listChanged(owner, { kind: 'created', name: to });
      return;
    }
    if (!(await isDir(fromDir))) throw new FolderNotFound(from);
    const folders = await this.store.listFolders(owner);
    const moving = folders.filter((f) => f.name === from || f.name.startsWith(from + FOLDER_SEPARATOR));
    for (const f of moving) {
      const target = this.store.folderPath(owner, to + f.name.slice(from.length));
      await folderLocks.run(f.path, async () => {
        this.dropIndex(f.path);
        // The index moves with the directory: UIDVALIDITY and UIDs are kept (state postgres: its key, first).
        await this.pg?.renamed(f.path, target);
        await rename(f.path, target);
      });
      this.listChanged(owner, { kind: 'renamed', name: to + f.name.slice(from.length), oldName: f.name });
    }
  }

  async subscribe(owner: MailboxOwner, name: string, on: boolean): Promise<void> {
    const root = this.store.maildirPath(owner);
    await folderLocks.run(`${root}\0subscriptions`, async () => {
      const subs = (await this.readSubscriptions(owner)).filter((n) => n !== name);
      if (on) subs.push(name);
      await this.store.createFolder(owner, 'INBOX');
      const tmp = join(root, 'tmp', `subscriptions.${process.pid}.${Date.now()}`);
      const lines = subs.map((s) => `${s.split(FOLDER_SEPARATOR).map((level) => tabEscape(encodeMutf7(level))).join('\t')}\n`);
      await writeFile(tmp, SUBSCRIPTIONS_V2 + lines.join(''), { mode: 0o600 });
      await rename(tmp, join(root, SUBSCRIPTIONS_FILE));
    });
    this.listChanged(owner, { kind: 'subscription', name, subscribed: on });
  }

  subscriptions(owner: MailboxOwner): Promise<string[]> {
    return this.readSubscriptions(owner);
  }

  private async readSubscriptions(owner: MailboxOwner): Promise<string[]> {
    try {
      const text = await readFile(join(this.store.maildirPath(owner), SUBSCRIPTIONS_FILE), 'utf8');
      if (!text.startsWith(SUBSCRIPTIONS_V2)) return text.split('\n').filter((l) => l !== ''); // version 1: plain names
      return text
        .slice(SUBSCRIPTIONS_V2.length)
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => l.split('\t').map((level) => storageLevelName(tabUnescape(level))).join(FOLDER_SEPARATOR));
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return [];
      throw err;
    }
  }

  // ---- messages -------------------------------------------------------------------------------------------------

  async openFolder(owner: MailboxOwner, name: string): Promise<FolderState> {
    const dir = await this.folderDir(owner, name);
    return folderLocks.run(dir, async () => {
      const index = await this.syncedIndex(owner, name, dir);
      const messages = this.metas(dir, index).slice();
      return { uidValidity: index.uidValidity, uidNext: index.uidNext, messages, modseq: index.modseq };
    });
  }

  /**
   * SELECT's view of the folder from the index's summary (FolderIndex.summary: the UIDs in one string, UNSEEN and
   * the keywords kept under the MODSEQ), without a row per message: a 100,000-message folder after a restart
   * read and built 100,000 rows here, most of the SELECT's time. The rows are read when the session first needs
   * one (messages()).
   */
  async selectFolder(owner: MailboxOwner, name: string): Promise<FolderSummary> {
    const dir = await this.folderDir(owner, name);
    return folderLocks.run(dir, async () => {
      const index = await this.syncedIndex(owner, name, dir);
      const map = this.keywordMaps.get(dir)?.map ?? EMPTY_MAP;
      const key = `${index.uidValidity}:${index.modseq}`;
      let s = this.summaryCache.get(index);
      if (s?.key !== key || s.map !== map) {
        const sum = index.summary();
        const keywords = new Set<string>();
        for (const [info, kw] of sum.flagSets) for (const f of flagsOf(`:2,${info}`, kw, map)) if (!f.startsWith('\\')) keywords.add(f);
        s = { key, map, uids: sum.uids, firstUnseen: sum.firstUnseenUid === 0 ? 0 : seqOf(sum.uids, sum.firstUnseenUid), keywords: [...keywords] };
        this.summaryCache.set(index, s);
      }
      return {
        uidValidity: index.uidValidity,
        uidNext: index.uidNext,
        modseq: index.modseq,
        uids: s.uids,
        firstUnseen: s.firstUnseen,
        keywords: s.keywords,
        // The index open now (it may have been replaced since): a sync is not needed, the watchers tell what changed.
        messages: () => this.metas(dir, this.index(dir)).slice(),
      };
    });
  }

  /** The folder synced with the Maildir (syncLocked), rebuilt when found corrupt; under the folder's lock. */
  private async syncedIndex(owner: MailboxOwner, name: string, dir: string): Promise<FolderIndex> {
    try {
      return await this.syncLocked(owner, name, dir);
    } catch (err) {
      if (!isCorruption(err)) throw err;
      // Damaged while open (a disk error, a bad copy): rebuild, as for one found damaged at open.
      this.log.warn({ err, dir }, 'mailbox: folder index corrupt; rebuilding (new UIDVALIDITY)');
      this.dropIndex(dir);
      FolderIndex.discard(dir, this.pg?.cacheFile(dir));
      return this.syncLocked(owner, name, dir);
    }
  }

  /** The messages of the index's rows (shared, not to be changed: FolderState), built once per rows and keyword map. */
  private metas(dir: string, index: FolderIndex): MessageMeta[] {
    const map = this.keywordMaps.get(dir)?.map ?? EMPTY_MAP;
    const rows = this.rows(index);
    // ---- index branch: shared MessageMeta (begin) ----
    // The same rows under the same keyword map give the same messages: a warm SELECT of a big folder reuses them
    // (FolderState says callers copy before changing them).
    let metas = this.metaCache.get(index);
    if (metas?.rows !== rows || metas.map !== map) {
      metas = {
        rows,
        map,
        messages: rows.map((r) => ({
          uid: r.uid,
          size: r.size,
          flags: sharedFlagsOf(r.name, r.keywords, map),
          internalDate: new Date(r.internalDate),
          // RFC 8514 §3: rows indexed before save dates were kept show their internal date.
          saveDate: new Date(r.saveDate ?? r.internalDate),
          modseq: r.modseq,
        })),
      };
      this.metaCache.set(index, metas);
    }
    // ---- index branch: shared MessageMeta (end) ----
    return metas.messages;
  }

  async readMessage(owner: MailboxOwner, folder: string, uid: number): Promise<Buffer> {
    // A small file is read at once: open, fstat, read and close through the thread pool cost more CPU than the
    // read itself, which the page cache usually answers (Dovecot's imap reads synchronously too).
    return this.withMessageFile(owner, folder, uid, (path, row) => (row.size <= SYNC_READ_MAX ? Promise.resolve(readFileSync(path)) : readFile(path)));
  }

  /** Like readMessage, but the file is opened and read in pieces by the caller (see MailboxAccess.openMessage). */
  async openMessage(owner: MailboxOwner, folder: string, uid: number): Promise<MessageFile> {
    return this.withMessageFile(owner, folder, uid, async (path) => {
      const fh = await open(path, 'r');
      try {
        // The open descriptor keeps the content even if the file is renamed (flags) or expunged meanwhile.
        const { size } = await fh.stat();
        return {
          size,
          async read(position: number, length: number): Promise<Buffer> {
            const buf = Buffer.allocUnsafe(Math.max(0, Math.min(length, size - position)));
            let got = 0;
            while (got < buf.length) {
              const { bytesRead } = await fh.read(buf, got, buf.length - got, position + got);
              if (bytesRead === 0) break;
              got += bytesRead;
            }
            return got === buf.length ? buf : buf.subarray(0, got);
          },
          close: () => fh.close(),
        };
      } catch (err) {
        await fh.close().catch(() => undefined);
        throw err;
      }
    });
  }

  /**
   * Runs `use` on the current file of a message. The rows last listed (rowCache) name the file without a query per
   * message. A message file's content never changes, only its name (flags): a stale name is ENOENT, and the index is
   * asked then; if the file was renamed (flags changed by another program) or deleted since, the folder is synced
   * and the index asked once more.
   */
  private async withMessageFile<T>(owner: MailboxOwner, folder: string, uid: number, use: (path: string, row: IndexRow) => Promise<T>): Promise<T> {
    const dir = await this.folderDir(owner, folder);
    let row = this.listedRow(this.index(dir), uid);
    for (let attempt = row ? -1 : 0; ; attempt++) {
      if (attempt >= 0) row = this.index(dir).row(uid);
      if (!row) throw new MessageNotFound(folder, uid);
      try {
        return await use(join(dir, 'cur', row.name), row);
      } catch (err) {
        if (errorCode(err) !== 'ENOENT' || attempt > 0) throw err;
      }
      if (attempt === 0) await folderLocks.run(dir, () => this.syncLocked(owner, folder, dir));
    }
  }

  /** The row of `uid` as the index last listed it (see rows), without a query; undefined when not listed. */
  private listedRow(index: FolderIndex, uid: number): IndexRow | undefined {
    const rows = this.rowCache.get(index)?.rows;
    if (!rows) return undefined;
    let lo = 0;
    let hi = rows.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const u = rows[mid]!.uid;
      if (u === uid) return rows[mid];
      if (u < uid) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  /** The cached ENVELOPE / BODYSTRUCTURE of a message (computed by IMAP on first need), for the IMAP side. */
  async cachedParts(owner: MailboxOwner, folder: string, uid: number): Promise<{ envelope?: unknown; bodystructure?: unknown }> {
    return this.index(await this.folderDir(owner, folder)).cached(uid);
  }

  async setCachedParts(owner: MailboxOwner, folder: string, uid: number, data: { envelope?: unknown; bodystructure?: unknown }): Promise<void> {
    const dir = await this.folderDir(owner, folder);
    await folderLocks.run(dir, async () => this.index(dir).setCached(uid, data));
  }

  // ---- index branch: SEARCH header fields (begin) ----

  /**
   * The cached SEARCH header fields (header-fields.ts) of the messages `uids` (all when omitted) that have them in
   * the folder index; the others (delivered by SMTP, or indexed before the cache) are absent until setSearchHeaders.
   */
  async searchHeaders(owner: MailboxOwner, folder: string, uids?: number[]): Promise<ReadonlyMap<number, SearchHeaders>> {
    const index = this.index(await this.folderDir(owner, folder));
    if (!uids) return index.allSearchHeaders();
    const out = new Map<number, SearchHeaders>();
    for (const uid of uids) {
      const h = index.searchHeaders(uid);
      if (h) out.set(uid, h);
    }
    return out;
  }

  /** Caches the SEARCH header fields of messages whose files were read (IMAP SEARCH fills the cache lazily). */
  async setSearchHeaders(owner: MailboxOwner, folder: string, entries: [number, SearchHeaders][]): Promise<void> {
    const dir = await this.folderDir(owner, folder);
    await folderLocks.run(dir, async () => this.index(dir).setSearchHeaders(entries));
  }

  // ---- index branch: SEARCH header fields (end) ----

  async storeFlags(
    owner: MailboxOwner,
    folder: string,
    uids: number[],
    mode: 'set' | 'add' | 'remove',
    flags: Flag[],
    opts: { unchangedSince?: number } = {},
  ): Promise<StoreResult> {
    const dir = await this.folderDir(owner, folder);
    const given = splitFlags(flags);
    const result = new StoreResult();
    const changes: { uid: number; flags: Flag[] }[] = [];
    let modseq = 0;
    await folderLocks.run(dir, async () => {
      const index = this.index(dir);
      // state postgres: UNCHANGEDSINCE compares with the MODSEQs of the shared index, not an older copy of them; and
      // a shared index that cannot be reached refuses before a file is renamed (NO, and the flags as they were).
      // Without UNCHANGEDSINCE a copy known current will do (MaildirPgIndex.refresh): then a PostgreSQL gone since
      // is found at the write, after the rename, which the next sync records (the file name is the flags' truth).
      if (this.pg) await (opts.unchangedSince === undefined ? this.pg.refresh(dir, index) : this.pg.pull(dir, index));
      // Letters for keywords new to the folder first (one dovecot-keywords write for the whole command).
      const map = mode === 'remove' ? await this.keywordMap(dir) : await this.ensureLetters(dir, given.keywords);
      const updates: { uid: number; name: string; keywords: string }[] = [];
      let own = this.ownWriteStart(index, dir);
      for (const uid of uids) {
        let row = index.row(uid);
        if (!row) continue;
        // imap.workers: another process may have renamed the file (its flags) and not yet recorded the new name.
        for (let attempt = 0; ; attempt++) {
          // RFC 7162 §3.1.3: changed since the client looked: not stored, reported as MODIFIED.
          if (opts.unchangedSince !== undefined && row.modseq > opts.unchangedSince) {
            result.modified.push(uid);
            break;
          }
          const oldLetters = new Set([...parseMaildirFileName(row.name).flags].filter((l) => SYSTEM_LETTERS.has(l)));
          const oldKeywords = keywordsOf(row.name, row.keywords, map);
          let letters: Set<string>;
          let keywords: string[];
          if (mode === 'set') {
            letters = given.letters;
            keywords = given.keywords;
          } else if (mode === 'add') {
            letters = new Set([...oldLetters, ...given.letters]);
            keywords = [...oldKeywords, ...given.keywords.filter((k) => !oldKeywords.some((o) => o.toLowerCase() === k.toLowerCase()))];
          } else {
            letters = new Set([...oldLetters].filter((l) => !given.letters.has(l)));
            const drop = new Set(given.keywords.map((k) => k.toLowerCase()));
            keywords = oldKeywords.filter((k) => !drop.has(k.toLowerCase()));
          }
          const split = keywordLetters(keywords, map);
          const name = renameWithLetters(row.name, [...letters, ...split.letters], map);
          const kw = split.unlettered.join(' ');
          if (name !== row.name) {
            try {
              await rename(join(dir, 'cur', row.name), join(dir, 'cur', name));
            } catch (err) {
              if (errorCode(err) !== 'ENOENT') throw err;
              own = undefined; // someone else changed cur/ meanwhile: the next command lists it
              // Gone, or renamed by another process or program: the file's current name is the truth for its flags.
              const current = attempt < 3 ? (await listDir(join(dir, 'cur'))).find((n) => baseOf(n) === row!.base) : undefined;
              if (current === undefined) break; // expunged meanwhile: the next sync tells
              row = { ...row, name: current };
              continue;
            }
          }
          const newFlags = flagsOf(name, kw, map);
          result.set(uid, newFlags);
          result.modseqs.set(uid, row.modseq);
          if (name !== row.name || kw !== row.keywords) {
            updates.push({ uid, name, keywords: kw });
            changes.push({ uid, flags: newFlags });
          }
          break;
        }
      }
      if (updates.length) {
        // One mod-sequence for the whole command (RFC 7162 §3.1.1 allows it), the one apply() gave the rows.
        modseq = await this.applyIndex(dir, index, { update: updates });
        for (const u of updates) result.modseqs.set(u.uid, modseq);
        this.ownWriteEnd(index, dir, own);
      }
    });
    for (const c of changes) this.events.emit(dir, { kind: 'flags', uid: c.uid, flags: c.flags, modseq });
    return result;
  }

  async expunge(owner: MailboxOwner, folder: string, uids?: number[]): Promise<number[]> {
    const dir = await this.folderDir(owner, folder);
    const removed: IndexRow[] = [];
    let modseq = 0;
    await folderLocks.run(dir, async () => {
      const index = this.index(dir);
      if (this.pg) await this.pg.refresh(dir, index);
      let rows: IndexRow[];
      if (uids) {
        rows = [];
        for (const uid of [...new Set(uids)].sort((a, b) => a - b)) {
          const r = index.row(uid);
          if (r) rows.push(r);
        }
      } else {
        rows = index.rowsWithFlag('T');
      }
      let own = rows.length ? this.ownWriteStart(index, dir) : undefined;
      for (const r of rows) {
        try {
          await unlink(join(dir, 'cur', r.name));
          removed.push(r);
        } catch (err) {
          // Already gone: the message is expunged all the same. Renamed meanwhile: left for the next sync.
          if (errorCode(err) === 'ENOENT') removed.push(r);
          else throw err;
          own = undefined; // changed by someone else meanwhile: the next command lists cur/
        }
      }
      if (removed.length) {
        modseq = await this.applyIndex(dir, index, { remove: removed.map((r) => r.uid) });
        if (!this.pg) await this.dropFromUidlist(dir, index, removed);
        this.ownWriteEnd(index, dir, own);
      }
    });
    if (removed.length) {
      const bytes = removed.reduce((n, r) => n + r.size, 0);
      await appendMaildirSize(this.store.maildirPath(owner), -bytes, -removed.length).catch(() => false);
      this.events.emit(dir, { kind: 'expunge', uids: removed.map((r) => r.uid), modseq });
    }
    return removed.map((r) => r.uid);
  }

  async append(owner: MailboxOwner, folder: string, message: Buffer, flags: Flag[], internalDate?: Date): Promise<{ uidValidity: number; uid: number }> {
    const dir = await this.folderDir(owner, folder);
    const [uid] = await this.deliverAndIndex(owner, folder, dir, [{ message, flags, internalDate }]);
    return { uidValidity: this.index(dir).uidValidity, uid: uid! };
  }

  async copy(
    owner: MailboxOwner,
    from: string,
    uids: number[],
    to: string,
    opts: { move?: boolean; toOwner?: MailboxOwner } = {},
  ): Promise<{ uidValidity: number; mapping: [number, number][] }> {
    const toOwner = opts.toOwner ?? owner;
    const srcDir = await this.folderDir(owner, from);
    const dstDir = await this.folderDir(toOwner, to);
    const src = this.index(srcDir);
    const rows: IndexRow[] = [];
    for (const uid of [...new Set(uids)].sort((a, b) => a - b)) {
      const r = src.row(uid);
      if (r) rows.push(r);
    }
    const sameOwner = this.store.maildirPath(owner) === this.store.maildirPath(toOwner);
    if (rows.length === 0) return { uidValidity: this.index(dstDir).uidValidity, mapping: [] };

    if (opts.move && sameOwner && srcDir !== dstDir) {
      // RFC 6851 MOVE within one Maildir++: a rename keeps the file (and the quota) as it is. Keyword letters are
      // per folder (each has its own dovecot-keywords), so the name gets the target's letters on the way.
      const srcMap = await this.keywordMap(srcDir);
      const flagsByUid = new Map(rows.map((r) => [r.uid, flagsOf(r.name, r.keywords, srcMap)]));
      const dstMap = await folderLocks.run(dstDir, () =>
        this.ensureLetters(dstDir, [...flagsByUid.values()].flatMap((f) => f.filter((k) => !k.startsWith('\\')))),
      );
      const moved: { row: IndexRow; name: string; unlettered: string; headers?: SearchHeaders }[] = [];
      let movedModseq = 0;
      await folderLocks.run(srcDir, async () => {
        let own = this.ownWriteStart(src, srcDir);
        for (const r of rows) {
          const { letters, keywords } = splitFlags(flagsByUid.get(r.uid)!);
          const split = keywordLetters(keywords, dstMap);
          // Keyword letters mean something only in the source folder: all are replaced.
          const name = renameWithLetters(r.name, [...letters, ...split.letters], 'all');
          try {
            const headers = src.searchHeaders(r.uid);
            await rename(join(srcDir, 'cur', r.name), join(dstDir, 'cur', name));
            moved.push({ row: r, name, unlettered: split.unlettered.join(' '), ...(headers ? { headers } : {}) });
          } catch (err) {
            if (errorCode(err) !== 'ENOENT') throw err;
            own = undefined;
          }
        }
        if (moved.length) {
          movedModseq = await this.applyIndex(srcDir, src, { remove: moved.map((m) => m.row.uid) });
          if (!this.pg) await this.dropFromUidlist(srcDir, src, moved.map((m) => m.row));
          this.ownWriteEnd(src, srcDir, own);
        }
      });
      const newUids = await this.indexNew(
        toOwner,
        to,
        dstDir,
        moved.map((m) => {
          // index branch: the moved file keeps its content, so its cached SEARCH header fields move with it.
          const headers = m.headers;
          return { base: m.row.base, name: m.name, size: m.row.size, internalDate: m.row.internalDate, keywords: m.unlettered, ...(headers ? { headers } : {}) };
        }),
      );
      if (moved.length) {
        this.events.emit(srcDir, { kind: 'expunge', uids: moved.map((m) => m.row.uid), modseq: movedModseq });
        this.events.emit(dstDir, { kind: 'exists', uidNext: this.index(dstDir).uidNext });
      }
      return { uidValidity: this.index(dstDir).uidValidity, mapping: moved.map((m, i) => [m.row.uid, newUids[i]!]) };
    }

    // RFC 9208 §4.1.3 / RFC 4315: refuse the whole COPY rather than copy part of it.
    const limit = this.quotaBytesOf(toOwner);
    if (limit > 0) {
      const used = (await this.store.quotaUsage(toOwner)).bytes;
      const total = rows.reduce((n, r) => n + r.size, 0);
      if (used + total > limit) throw new OverQuota();
    }
    const srcMap = await this.keywordMap(srcDir);
    const items: { uid: number; message: Buffer; flags: Flag[]; internalDate: Date }[] = [];
    for (const r of rows) {
      let message: Buffer;
      try {
        message = await readFile(join(srcDir, 'cur', r.name));
      } catch (err) {
        if (errorCode(err) === 'ENOENT') continue;
        throw err;
      }
      items.push({ uid: r.uid, message, flags: flagsOf(r.name, r.keywords, srcMap), internalDate: new Date(r.internalDate) });
    }
    const newUids = await this.deliverAndIndex(toOwner, to, dstDir, items);
    if (opts.move) await this.expunge(owner, from, items.map((i) => i.uid));
    return { uidValidity: this.index(dstDir).uidValidity, mapping: items.map((i, n) => [i.uid, newUids[n]!]) };
  }

  async vanishedSince(owner: MailboxOwner, folder: string, modseq: number): Promise<number[] | undefined> {
    const dir = await this.folderDir(owner, folder);
    if (this.pg) return this.pg.vanishedSince(dir, modseq);
    return folderLocks.run(dir, async () => this.index(dir).vanishedSince(modseq));
  }

  async firstRecentUid(owner: MailboxOwner, folder: string, claimUpTo?: number): Promise<number> {
    const dir = await this.folderDir(owner, folder);
    if (this.pg) return this.pg.firstRecentUid(dir, claimUpTo);
    return folderLocks.run(dir, async () => this.index(dir).firstRecentUid(claimUpTo));
  }

  async quota(owner: MailboxOwner): Promise<{ usedBytes: number; limitBytes: number; messages: number }> {
    const usage = await this.store.quotaUsage(owner);
    return { usedBytes: usage.bytes, limitBytes: this.quotaBytesOf(owner), messages: usage.messages };
  }

  watch(owner: MailboxOwner, folder: string, listener: (change: FolderChange) => void): () => void {
    const dir = this.store.folderPath(owner, folder);
    const off = this.events.on(dir, listener);
    let w = this.watchers.get(dir);
    if (!w) {
      w = { owner, folder, count: 0 };
      try {
        // Deliveries by another process (or a delivery path that does not call notifyDelivered) land in new/.
        w.fs = fsWatch(join(dir, 'new'), { persistent: false }, () => this.notifyDelivered(owner, folder));
        w.fs.on('error', () => undefined);
      } catch (err) {
        this.log.debug({ err, dir }, 'mailbox: no fs.watch on new/; relying on notifyDelivered');
      }
      this.watchers.set(dir, w);
    }
    w.count++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      off();
      const cur = this.watchers.get(dir);
      if (cur && --cur.count === 0) {
        cur.fs?.close();
        if (cur.timer) clearTimeout(cur.timer);
        this.watchers.delete(dir);
      }
    };
  }

  /**
   * Delivery calls this after `store.deliver(owner, …, { folder })`: when a session watches the folder, it is
   * synced (after a short debounce that coalesces bursts) and the watchers hear `exists`. Cheap when nobody
   * watches: the next openFolder finds the message anyway.
   */
  notifyDelivered(owner: MailboxOwner, folder = 'INBOX'): void {
    let dir: string;
    try {
      dir = this.store.folderPath(owner, folder);
    } catch {
      return;
    }
    if (!this.events.has(dir)) return;
    let w = this.watchers.get(dir);
    if (!w) {
      w = { owner, folder, count: 0 };
      this.watchers.set(dir, w);
    }
    if (w.timer) return;
    const entry = w;
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      if (entry.count === 0 && this.watchers.get(dir) === entry) this.watchers.delete(dir);
      folderLocks
        // Forced: a delivery is an outside change that may fall between a stat of ours and our marker.
        .run(dir, () => this.syncLocked(owner, folder, dir, undefined, true))
        .catch((err: unknown) => this.log.warn({ err, owner: ownerLabel(owner), folder }, 'mailbox: sync after delivery failed'));
    }, this.debounceMs);
    entry.timer.unref();
  }

  // ---- internals ------------------------------------------------------------------------------------------------

  /** The folder's Maildir; INBOX is created on first use, any other folder must exist. */
  private async folderDir(owner: MailboxOwner, folder: string): Promise<string> {
    const dir = this.folderPathOf(owner, folder);
    // A folder whose index is open and still on disk exists (the index lives in it and goes with it): no stat of
    // cur/ for each message a FETCH reads.
    const open = this.indexes.get(dir);
    if (open && this.current(open)) return dir;
    if (await isDir(join(dir, 'cur'))) return dir;
    if (dir === this.store.maildirPath(owner)) {
      await this.store.createFolder(owner, 'INBOX');
      return dir;
    }
    throw new FolderNotFound(folder);
  }

  /** store.folderPath, remembered: FETCH asks it for every message (name checks and path joins each time). */
  private folderPathOf(owner: MailboxOwner, folder: string): string {
    // Keyed by the AD object as well as the login: a new account that reuses a login has a mailbox of its own
    // (DESIGN.md §6), and a path remembered for the old one must not open it.
    const key = `${owner.kind === 'user' ? `${owner.guid ?? ''}/${owner.login}` : ownerLabel(owner)}\0${folder}`;
    let dir = this.folderPaths.get(key);
    if (dir === undefined) {
      dir = this.store.folderPath(owner, folder);
      if (this.folderPaths.size >= 10_000) this.folderPaths.clear();
      this.folderPaths.set(key, dir);
    }
    return dir;
  }

  /**
   * Whether an open index is still the file on disk. A positive answer holds for CURRENT_CHECK_MS: the index is
   * replaced only when found corrupt, and a stat for every store call was a tenth of IMAP's CPU under imaptest.
   */
  private current(idx: FolderIndex): boolean {
    const now = Date.now();
    const at = this.checkedAt.get(idx);
    if (at !== undefined && now - at < CURRENT_CHECK_MS) return true;
    if (!idx.isCurrent()) return false;
    this.checkedAt.set(idx, now);
    return true;
  }

  private index(dir: string): FolderIndex {
    let idx = this.indexes.get(dir);
    if (idx && !this.current(idx)) {
      idx.close();
      idx = undefined;
    }
    if (!idx) {
      idx = FolderIndex.open(dir, {
        onRebuild: (reason) => this.log.warn({ dir, reason }, 'mailbox: folder index rebuilt (new UIDVALIDITY)'),
        ...(this.pg ? { file: this.pg.cacheFile(dir) } : {}),
      });
      this.indexes.set(dir, idx);
    }
    return idx;
  }

  private rows(index: FolderIndex): IndexRow[] {
    const modseq = index.modseq;
    const cached = this.rowCache.get(index);
    if (cached?.modseq === modseq) return cached.rows;
    const rows = index.rows();
    this.rowCache.set(index, { modseq, rows });
    return rows;
  }

  private dropIndex(dir: string): void {
    this.indexes.get(dir)?.close();
    this.indexes.delete(dir);
    this.keywordMaps.delete(dir);
  }

  /**
   * Brings the index up to date with new/, cur/ and dovecot-uidlist; runs under the folder's lock. Emits what it
   * finds.
   */
  private async syncLocked(owner: MailboxOwner, folder: string, dir: string, known?: Map<string, NewRow>, force = false): Promise<FolderIndex> {
    if (this.pg) return this.syncPg(owner, folder, dir, known);
    let index = this.index(dir);
    const cur = join(dir, 'cur');

    // ---- index branch: unchanged directories (begin) ----
    // Like Dovecot's maildir sync: when new/ and cur/ have the mtimes they had when the index last matched them, and
    // dovecot-uidlist is the one the index followed, nothing was delivered, renamed or removed behind our back: no
    // readdir of a 100,000-file cur/. See dirsSignature for when a signature is trusted.
    // The stats of this check are synchronous (see statNow): it runs before nearly every command that touches a
    // folder, and answers "nothing new" almost always.
    // A signature is remembered only when trustworthy (see dir-signature.ts and the end of this function), or, for
    // this process's own changes and markers, for CONFIRM_MS.
    const before = dirsState(dir);
    if (!known && !force && before && this.upToDate(index, before.signature)) {
      const st = statNow(join(dir, UIDLIST_FILE));
      if (st && uidlistSignature(st) === index.uidlistSignature) {
        await this.keywordMap(dir);
        return index;
      }
    }
    // ---- index branch: unchanged directories (end) ----

    // Maildir spec: a reader moves new/<name> to cur/<name>:2,<flags>.
    const fresh = (await listDir(join(dir, 'new'))).filter((n) => !n.startsWith('.'));
    for (let i = 0; i < fresh.length; i += 64) {
      await Promise.all(
        fresh.slice(i, i + 64).map((n) =>
          rename(join(dir, 'new', n), join(cur, n.includes(':') ? n : `${n}:2,`)).catch((err: unknown) => {
            if (errorCode(err) !== 'ENOENT') throw err; // another reader moved it first
          }),
        ),
      );
    }

    // imap.workers: the rows indexed before cur/ is listed are the only ones its listing can say are gone. Another
    // process APPENDing (or syncing) indexes files this listing missed while this sync runs; taking those for
    // expunged gave them new UIDs at the next sync (RFC 3501 §2.3.1.1: a message keeps its UID).
    const listedAgainst = new Set(this.rows(index).map((r) => r.base));
    const onDisk = new Map<string, string>();
    for (const n of await listDir(cur)) {
      if (n.startsWith('.')) continue;
      onDisk.set(baseOf(n), n);
    }
    const map = await this.keywordMap(dir);
    const expunged: number[] = [];

    // UIDs: dovecot-uidlist, read only when it changed since the index last followed it.
    const st = await uidlistStat(dir);
    if (!st || uidlistSignature(st) !== index.uidlistSignature) expunged.push(...(await this.adoptUidlist(index, dir, onDisk)));
    const indexed = new Set(this.rows(index).map((r) => r.base));
    const unknown = [...onDisk.entries()].filter(([base]) => !indexed.has(base)).map(([base, name]) => ({ base, name }));
    let added = 0;
    if (unknown.length) {
      // What this process wrote itself (`known`, from indexNew) it describes better than the file name does.
      const described = [
        ...unknown.flatMap((u) => (known?.has(u.base) ? [{ ...known.get(u.base)!, name: u.name }] : [])),
        ...(await this.describe(cur, unknown.filter((u) => !known?.has(u.base)))),
      ];
      // RFC 8514 §3: a file delivered into new/ was saved when it was delivered (the time its name carries), not when
      // a reader first noticed it; one that appeared in cur/ is saved as of now.
      const delivered = new Set(fresh.map(baseOf));
      for (const d of described) if (d.saveDate === undefined && delivered.has(d.base)) d.saveDate = d.internalDate;
      const r = await this.assignLocked(index, dir, described, onDisk);
      expunged.push(...r!.gone);
      added = r!.added;
    }

    const remove: number[] = [];
    const update: { uid: number; name: string; keywords: string }[] = [];
    const flagChanges: FolderChange[] = [];
    let missing = this.rows(index).filter((r) => !onDisk.has(r.base) && listedAgainst.has(r.base));
    if (missing.length) {
      // readdir(3) may miss an entry renamed while it reads (another process's STORE): a file is expunged only when
      // a second listing does not have it either. Rare (expunges by another program), so the cost is too.
      const again = new Map<string, string>();
      for (const n of await listDir(cur)) if (!n.startsWith('.')) again.set(baseOf(n), n);
      missing = missing.filter((r) => !again.has(r.base));
      for (const [base, name] of again) if (!onDisk.has(base) && listedAgainst.has(base)) onDisk.set(base, name);
    }
    const gone = new Set(missing.map((r) => r.uid));
    for (const r of this.rows(index)) {
      const name = onDisk.get(r.base);
      if (name === undefined) {
        if (gone.has(r.uid)) remove.push(r.uid);
      } else if (name !== r.name) {
        update.push({ uid: r.uid, name, keywords: r.keywords });
        flagChanges.push({ kind: 'flags', uid: r.uid, flags: flagsOf(name, r.keywords, map) });
      }
    }
    if (remove.length || update.length) index.apply({ remove, update });
    expunged.push(...remove);
    const modseq = index.modseq;
    if (expunged.length) this.events.emit(dir, { kind: 'expunge', uids: expunged, modseq });
    for (const c of flagChanges) this.events.emit(dir, { ...c, modseq } as FolderChange);
    if (added > 0) this.events.emit(dir, { kind: 'exists', uidNext: index.uidNext });
    if (expunged.length || update.length || added) {
      this.log.debug({ owner: ownerLabel(owner), folder, added, removed: expunged.length, renamed: update.length }, 'mailbox: synced');
    }
    index = this.index(dir);
    this.keepDirsSignature(index, dir, before);
    return index;
  }

  // ---- index branch: unchanged directories (begin) ----
  /**
   * After a listing (syncLocked, syncPg): the rows now match what was listed. The directories' signature is kept
   * only when nothing changed them while they were listed (`before`, the same after) and their last change is old
   * enough that another change within the same timestamp tick cannot have gone unseen. Unsettled, unmarked
   * directories are marked now, so that the next command need not list them again; the change of another process
   * between the stat before and the marker is found by the confirming listing.
   */
  private keepDirsSignature(index: FolderIndex, dir: string, before: DirsState | undefined): void {
    const after = before && dirsState(dir);
    let next = '';
    this.ownDirs.delete(index);
    if (before && after && after.signature === before.signature) {
      const now = Date.now();
      const markers = markersWork(dir);
      const okNew = settledOrMarked(after.new, now, markers);
      const okCur = settledOrMarked(after.cur, now, markers);
      if (okNew && okCur) next = after.signature;
      else if (markers && (okNew || markDir(join(dir, 'new'))) && (okCur || markDir(join(dir, 'cur')))) {
        const marked = dirsState(dir);
        if (marked) this.ownDirs.set(index, { signature: marked.signature, since: now });
      }
    }
    if (next !== index.dirsSignature) index.dirsSignature = next;
  }
  // ---- index branch: unchanged directories (end) ----

  /** Whether the directories' signature `now` is one the rows are known to match (see syncLocked, ownWriteEnd). */
  private upToDate(index: FolderIndex, now: string): boolean {
    const own = this.ownDirs.get(index);
    if (own && own.signature === now && Date.now() - own.since < CONFIRM_MS) return true;
    return now === index.dirsSignature;
  }

  /**
   * Called under the folder's lock before this process renames or removes files in the folder's cur/ (and the rows
   * are updated to match): whether the directories are still as the rows know them, and since when they have been
   * unconfirmed. Without this, our own change would make the next command list cur/ again.
   */
  private ownWriteStart(index: FolderIndex, dir: string): { since: number } | undefined {
    const st = dirsState(dir);
    if (!st || !this.upToDate(index, st.signature) || !markersWork(dir)) return undefined;
    const own = this.ownDirs.get(index);
    return { since: own?.signature === st.signature ? own.since : Date.now() };
  }

  /**
   * After our own change (ownWriteStart): cur/ gets a marker and the rows are taken to match the new state. A
   * change by another process within the same clock tick as ours would leave cur/'s mtime as ours left it; the
   * marker makes every change after it visible, and the confirming listing finds one made before it.
   */
  private ownWriteEnd(index: FolderIndex, dir: string, start: { since: number } | undefined): void {
    if (!start) return;
    if (!markDir(join(dir, 'cur'))) {
      this.ownDirs.delete(index);
      return;
    }
    const st = dirsState(dir);
    if (st) this.ownDirs.set(index, { signature: st.signature, since: start.since });
    else this.ownDirs.delete(index);
  }

  // ---- Dovecot's files ------------------------------------------------------------------------------------------

  private withUidlistLock<T>(dir: string, section: () => Promise<T>): Promise<T> {
    return withDotlock(join(dir, UIDLIST_FILE), section);
  }

  /** The folder's dovecot-keywords, re-read whenever its stat changed. */
  private async keywordMap(dir: string): Promise<KeywordMap> {
    const signature = keywordsSignature(statNow(join(dir, KEYWORDS_FILE)));
    const cached = this.keywordMaps.get(dir);
    if (cached?.signature === signature) return cached.map;
    const read = await readKeywords(dir);
    this.keywordMaps.set(dir, read);
    return read.map;
  }

  /** The keyword map, after giving letters to those of `keywords` that have none (while letters are free). */
  /**
   * The Maildir letters for `keywords` in a folder, naming new ones in its dovecot-keywords (under the uidlist lock,
   * as STORE does), for a message about to be delivered with them (Sieve imap4flags, RFC 5232). A keyword that finds
   * no free letter (26 in use) is left out and logged.
   */
  async keywordLetters(owner: MailboxOwner, folder: string, keywords: string[]): Promise<string> {
    // Delivery creates a folder it files into (fileinto :create, Junk): the keywords file goes into it first.
    const dir = await this.folderDir(owner, folder).catch(async (err: unknown) => {
      if (!(err instanceof FolderNotFound)) throw err;
      return this.store.createFolder(owner, folder);
    });
    const map = await folderLocks.run(dir, () => this.ensureLetters(dir, keywords));
    let letters = '';
    const left: string[] = [];
    for (const k of keywords) {
      const l = map.letterOf(k);
      if (l) letters += l;
      else left.push(k);
    }
    if (left.length) this.log.warn({ dir, keywords: left }, 'mailbox: no free keyword letter in dovecot-keywords; keywords left out');
    return letters;
  }

  private async ensureLetters(dir: string, keywords: string[]): Promise<KeywordMap> {
    const map = await this.keywordMap(dir);
    if (map.size >= MAX_KEYWORD_LETTERS || keywords.every((k) => map.letterOf(k) !== undefined)) return map;
    return this.withUidlistLock(dir, () => this.ensureLettersLocked(dir, keywords));
  }

  /** ensureLetters with the dovecot-uidlist lock held (Dovecot changes dovecot-keywords only under it). */
  private async ensureLettersLocked(dir: string, keywords: string[]): Promise<KeywordMap> {
    const fresh = await readKeywords(dir);
    const next = fresh.map.withKeywords(keywords);
    if (next.size === fresh.map.size) {
      this.keywordMaps.set(dir, fresh);
      return fresh.map;
    }
    const signature = await writeKeywords(dir, next);
    this.keywordMaps.set(dir, { map: next, signature });
    return next;
  }

  private async tryReadUidlist(dir: string): Promise<Awaited<ReturnType<typeof readUidlist>>> {
    try {
      return await readUidlist(dir);
    } catch (err) {
      if (!(err instanceof UidlistCorrupt)) throw err;
      this.log.warn({ dir, reason: err.message }, 'mailbox: dovecot-uidlist is broken; rewriting it from the index');
      return undefined;
    }
  }

  /**
   * Follows a dovecot-uidlist that changed (or appeared, or is missing or broken: then one is written from the
   * index). Returns the UIDs that are no longer there.
   */
  private async adoptUidlist(index: FolderIndex, dir: string, onDisk: Map<string, string>): Promise<number[]> {
    // Under the lock, always: reconcile takes an index row the uidlist does not list for one whose UID was dropped,
    // which holds only when the uidlist read is at least as new as the rows. Read outside the lock, a process
    // assigning UIDs meanwhile (assignLocked: uidlist, then index, both under the lock) left rows newer than the read,
    // and this sync renumbered those messages (imap.workers; RFC 3501 §2.3.1.1).
    return this.withUidlistLock(dir, async () => {
      const st = await uidlistStat(dir);
      if (st && uidlistSignature(st) === index.uidlistSignature) return []; // followed meanwhile by another process
      const again = await this.tryReadUidlist(dir);
      if (!again) {
        await this.migrateToUidlist(index, dir, onDisk);
        return [];
      }
      const gone = await this.reconcile(index, dir, again, onDisk);
      if (again.list.version !== 3 || !again.list.guid) {
        // Dovecot 1.0's version 1, or no mailbox GUID: rewritten as version 3, as Dovecot does.
        index.apply({ uidlistSignature: await writeUidlist(dir, again.list) });
      }
      return gone;
    });
  }

  /**
   * Makes the index agree with dovecot-uidlist: its UIDVALIDITY (another one empties the index) and, for each file
   * it lists, its UID. An index row whose file the uidlist does not list loses its UID: the file is new to the
   * uidlist and gets the next one, as Dovecot would give it. Returns the UIDs that went away.
   */
  private async reconcile(
    index: FolderIndex,
    dir: string,
    read: { list: Uidlist; signature: string },
    onDisk: Map<string, string>,
  ): Promise<number[]> {
    const { list } = read;
    const old = this.rows(index);
    const reset = list.uidValidity !== index.uidValidity;
    const rows = reset ? [] : old;
    const byBase = new Map(rows.map((r) => [r.base, r]));
    const byUid = new Map(rows.map((r) => [r.uid, r]));
    const remove = new Set<number>();
    const kept = new Set<number>();
    const fresh: { uid: number; base: string; name: string; keywords: string }[] = [];
    for (const rec of list.records) {
      const base = baseOf(rec.name);
      const name = onDisk.get(base);
      if (name === undefined) continue; // expunged, or not listed yet
      const row = byBase.get(base);
      if (row?.uid === rec.uid) {
        kept.add(row.uid);
        continue;
      }
      if (row) remove.add(row.uid);
      const other = byUid.get(rec.uid);
      if (other) remove.add(other.uid);
      fresh.push({ uid: rec.uid, base, name, keywords: row?.keywords ?? '' });
    }
    for (const r of rows) if (!kept.has(r.uid) && onDisk.has(r.base)) remove.add(r.uid);
    const add = await this.describe(join(dir, 'cur'), fresh);
    if (reset) this.log.warn({ dir, from: index.uidValidity, to: list.uidValidity }, 'mailbox: dovecot-uidlist has another UIDVALIDITY; following it');
    index.apply({
      ...(reset ? { reset: { uidValidity: list.uidValidity } } : {}),
      remove: [...remove],
      add,
      uidNext: list.nextUid,
      uidlistSignature: read.signature,
    });
    const now = new Set(add.map((r) => r.uid));
    return reset ? old.map((r) => r.uid).filter((u) => !now.has(u)) : [...remove].filter((u) => !now.has(u));
  }

  /**
   * Under the uidlist lock, with no dovecot-uidlist (a folder postern made before it kept one, or a new folder):
   * the index's UIDVALIDITY and UIDs become the uidlist's, and its keywords become letters in the file names, so
   * that Dovecot sees the same.
   */
  private async migrateToUidlist(index: FolderIndex, dir: string, onDisk: Map<string, string>): Promise<void> {
    const rows = this.rows(index).filter((r) => onDisk.has(r.base));
    const withKeywords = rows.filter((r) => r.keywords !== '');
    const update: { uid: number; name: string; keywords: string }[] = [];
    if (withKeywords.length) {
      const map = await this.ensureLettersLocked(dir, [...new Set(withKeywords.flatMap((r) => r.keywords.split(' ')))]);
      for (const r of withKeywords) {
        const current = onDisk.get(r.base)!;
        const { letters, keywords } = splitFlags(flagsOf(current, r.keywords, map));
        const split = keywordLetters(keywords, map);
        const name = renameWithLetters(current, [...letters, ...split.letters], map);
        if (name !== current) {
          try {
            await rename(join(dir, 'cur', current), join(dir, 'cur', name));
          } catch (err) {
            if (errorCode(err) === 'ENOENT') continue;
            throw err;
          }
          onDisk.set(r.base, name);
        }
        update.push({ uid: r.uid, name, keywords: split.unlettered.join(' ') });
      }
    }
    const records: UidlistRecord[] = rows.map((r) => ({ uid: r.uid, name: uidlistName(onDisk.get(r.base)!), ext: '' }));
    const signature = await writeUidlist(dir, { uidValidity: index.uidValidity, nextUid: index.uidNext, guid: '', headerExt: '', records });
    index.apply({ update, uidlistSignature: signature });
    if (rows.length) this.log.info({ dir, messages: rows.length, uidValidity: index.uidValidity }, 'mailbox: wrote dovecot-uidlist from the index');
  }

  /**
   * Index rows for files new to the index, from their names: the size from ',S=', the internal date from the
   * delivery time (`<secs>.M<usecs>…`). Only a name without them (another program wrote it) costs a stat().
   */
  private async describe(cur: string, items: { base: string; name: string; uid?: number; keywords?: string }[]): Promise<NewRow[]> {
    const out: NewRow[] = [];
    const slow: { item: (typeof items)[number]; size: number | undefined; time: number }[] = [];
    const row = (it: (typeof items)[number], size: number, internalDate: number): NewRow => {
      const r: NewRow = { base: it.base, name: it.name, size, internalDate: Math.floor(internalDate), keywords: it.keywords ?? '' };
      if (it.uid !== undefined) r.uid = it.uid;
      return r;
    };
    for (const it of items) {
      const size = parseMaildirFileName(it.name).size;
      const secs = timeKey(it.base)[0];
      if (size !== undefined && secs < Number.MAX_SAFE_INTEGER) out.push(row(it, size, secs * 1000));
      else slow.push({ item: it, size, time: secs });
    }
    for (let i = 0; i < slow.length; i += 64) {
      const chunk = await Promise.all(
        slow.slice(i, i + 64).map(async ({ item, size, time }): Promise<NewRow | undefined> => {
          try {
            const st = await stat(join(cur, item.name));
            return row(item, size ?? st.size, time < Number.MAX_SAFE_INTEGER ? time * 1000 : st.mtimeMs);
          } catch (err) {
            if (errorCode(err) === 'ENOENT') return undefined;
            throw err;
          }
        }),
      );
      for (const r of chunk) if (r) out.push(r);
    }
    return out;
  }

  /**
   * Gives `items` (files in cur/ the index does not have) the next UIDs: appended to dovecot-uidlist under its
   * lock, then indexed. When the uidlist changed since the index last followed it, it is followed first, which
   * needs the cur/ listing: without `onDisk` this returns undefined having done nothing, and the caller syncs.
   */
  private assignLocked(index: FolderIndex, dir: string, items: NewRow[], onDisk?: Map<string, string>): Promise<{ gone: number[]; added: number } | undefined> {
    return this.withUidlistLock(dir, async () => {
      let gone: number[] = [];
      let st = await uidlistStat(dir);
      if (!st || uidlistSignature(st) !== index.uidlistSignature) {
        if (!onDisk) return undefined;
        const read = await this.tryReadUidlist(dir);
        if (read) gone = await this.reconcile(index, dir, read, onDisk);
        else await this.migrateToUidlist(index, dir, onDisk);
        st = await uidlistStat(dir);
      }
      const known = new Set(this.rows(index).map((r) => r.base));
      const todo = items.filter((r) => !known.has(r.base)).sort((a, b) => compareNames(a.base, b.base));
      if (!todo.length) return { gone, added: 0 };
      // Our order for what we deliver ourselves (APPEND, COPY: the order given), Dovecot's for files found.
      const ordered = onDisk ? todo : items.filter((r) => !known.has(r.base));
      let next = index.uidNext;
      const add = ordered.map((r) => ({ ...r, uid: next++ }));
      const records = add.map((r) => ({ uid: r.uid, name: uidlistName(r.name), ext: '' }));
      let signature = st ? await appendUidlist(dir, records, st.size) : undefined;
      if (signature === undefined) {
        const read = await readUidlist(dir);
        const base = read?.list ?? { uidValidity: index.uidValidity, nextUid: 1, guid: '', headerExt: '', records: [] };
        signature = await writeUidlist(dir, { ...base, nextUid: Math.max(base.nextUid, next), records: [...base.records, ...records] });
      }
      index.apply({ add, uidlistSignature: signature });
      return { gone, added: add.length };
    });
  }

  /** Takes expunged (or moved-away) messages out of dovecot-uidlist, so that a file coming back gets a new UID. */
  private async dropFromUidlist(dir: string, index: FolderIndex, rows: IndexRow[]): Promise<void> {
    await this.withUidlistLock(dir, async () => {
      const read = await this.tryReadUidlist(dir);
      if (!read) return; // the next sync writes one from the index
      const drop = new Map(rows.map((r) => [r.base, r.uid]));
      const records = read.list.records.filter((r) => drop.get(baseOf(r.name)) !== r.uid);
      if (records.length === read.list.records.length) return;
      const signature = await writeUidlist(dir, { ...read.list, nextUid: Math.max(read.list.nextUid, index.uidNext), records });
      // Changes someone else made in between are not in the index yet: then the next sync reads the file.
      index.apply({ uidlistSignature: read.signature === index.uidlistSignature ? signature : '' });
    });
  }

  /** Indexes files this object put into the folder's cur/ (APPEND, COPY, MOVE); returns their UIDs in order. */
  private async indexNew(owner: MailboxOwner, folder: string, dir: string, items: NewRow[]): Promise<number[]> {
    if (this.pg) return this.indexNewPg(dir, items);
    let uids: number[] = [];
    await folderLocks.run(dir, async () => {
      let index = this.index(dir);
      const fresh = items.filter((i) => index.uidOfBase(i.base) === undefined);
      if (fresh.length && !(await this.assignLocked(index, dir, fresh))) {
        index = await this.syncLocked(owner, folder, dir, new Map(fresh.map((r) => [r.base, r])));
      }
      // A sync may have indexed some of them already (without unlettered keywords): give them what the caller said.
      const stale = items.filter((i) => i.keywords !== '' && index.row(index.uidOfBase(i.base) ?? 0)?.keywords !== i.keywords);
      if (stale.length) index.apply({ update: stale.map((w) => ({ uid: index.uidOfBase(w.base)!, name: index.row(index.uidOfBase(w.base)!)!.name, keywords: w.keywords })) });
      uids = items.map((w) => index.uidOfBase(w.base) ?? 0);
    });
    if (items.length) this.events.emit(dir, { kind: 'exists', uidNext: this.index(dir).uidNext });
    return uids;
  }

  /** Writes messages through the store (tmp → cur with flags, quota checked) and indexes them; returns their UIDs. */
  private async deliverAndIndex(
    owner: MailboxOwner,
    folder: string,
    dir: string,
    items: { message: Buffer; flags: Flag[]; internalDate?: Date }[],
  ): Promise<number[]> {
    const quotaBytes = this.quotaBytesOf(owner);
    // state postgres: a shared index that cannot be reached refuses before any file is written (NO [UNAVAILABLE]);
    // when the copy is known current (refresh asks nothing), a PostgreSQL gone since fails the UIDs below, and the
    // files written go again.
    if (this.pg) await folderLocks.run(dir, () => this.pg!.refresh(dir, this.index(dir)));
    const split = items.map((i) => splitFlags(i.flags));
    const map = await folderLocks.run(dir, () => this.ensureLetters(dir, split.flatMap((s) => s.keywords)));
    const written: NewRow[] = [];
    for (let n = 0; n < items.length; n++) {
      const item = items[n]!;
      const kw = keywordLetters(split[n]!.keywords, map);
      let path: string;
      let size: number;
      try {
        ({ path, size } = await this.store.deliver(owner, item.message, { folder, flags: [...split[n]!.letters, ...kw.letters].join(''), quotaBytes }));
      } catch (err) {
        if (err instanceof QuotaExceeded) throw new OverQuota(`quota exceeded (${err.usage.bytes} of ${err.quotaBytes} bytes)`);
        throw err;
      }
      const name = basename(path);
      let internalDate = Date.now();
      if (item.internalDate && !Number.isNaN(item.internalDate.getTime())) {
        internalDate = item.internalDate.getTime();
        // Dovecot takes a Maildir message's received date from the file's mtime; keep both views equal.
        await utimes(path, item.internalDate, item.internalDate).catch(() => undefined);
      }
      // index branch: the header fields SEARCH compares, cached now that the message is at hand.
      written.push({ base: parseMaildirFileName(name).base, name, size, internalDate, keywords: kw.unlettered.join(' '), headers: searchHeadersOfMessage(item.message) });
    }
    if (!this.pg) return this.indexNew(owner, folder, dir, written);
    try {
      return await this.indexNew(owner, folder, dir, written);
    } catch (err) {
      // The shared index went away between the write and the UIDs: the client is told NO, so the files go again
      // (left, they would get UIDs at the next sync and the client's retry would make a second copy). One another
      // node already indexed meanwhile stays: its unlink would be an expunge that no index records.
      const listed = await this.pg.listedBases(dir, written.map((w) => w.base)).catch(() => new Set<string>());
      for (const w of written) if (!listed.has(w.base)) await unlink(join(dir, 'cur', w.name)).catch(() => undefined);
      throw err;
    }
  }

  // ---- state postgres: the shared index (begin) ----

  /** Records `changes` in the folder's index (state postgres: the shared one, then its copy); returns their MODSEQ. */
  private async applyIndex(dir: string, index: FolderIndex, changes: Parameters<FolderIndex['apply']>[0]): Promise<number> {
    if (!this.pg) {
      index.apply(changes);
      return index.modseq;
    }
    return (await this.pg.apply(dir, index, changes)).modseq;
  }

  /**
   * syncLocked with state postgres: the copy is brought up to the shared index, new/ moves to cur/ (Maildir spec;
   * another node moving the same file first is ENOENT), and what the directory says that the shared index does not
   * know is recorded there: files without a UID get one (MaildirPgIndex.addNew, once across nodes), vanished files are
   * expunged, renamed ones are flag changes. No dovecot-uidlist (see maildir-pg-index.ts).
   */
  private async syncPg(owner: MailboxOwner, folder: string, dir: string, known?: Map<string, NewRow>): Promise<FolderIndex> {
    const pg = this.pg!;
    const index = this.index(dir);
    const before = dirsState(dir);
    const pulled = await pg.refresh(dir, index);
    const map = await this.keywordMap(dir);
    const expunged = [...pulled.expunged];
    const flagChanges: FolderChange[] = pulled.changed.map((r) => ({ kind: 'flags', uid: r.uid, flags: flagsOf(r.name, r.keywords, map) }) as FolderChange);
    let added = pulled.added;
    let renamed = 0;
    // The directories as they were when the copy last matched them, or as this process's own change left them:
    // nothing to list (see syncLocked). Other nodes' changes of the files are in the shared index (the pull above).
    if (known || !before || !this.upToDate(index, before.signature)) {
      const cur = join(dir, 'cur');
      const fresh = (await listDir(join(dir, 'new'))).filter((n) => !n.startsWith('.'));
      for (let i = 0; i < fresh.length; i += 64) {
        await Promise.all(
          fresh.slice(i, i + 64).map((n) =>
            rename(join(dir, 'new', n), join(cur, n.includes(':') ? n : `${n}:2,`)).catch((err: unknown) => {
              if (errorCode(err) !== 'ENOENT') throw err; // another reader (or node) moved it first
            }),
          ),
        );
      }
      const onDisk = new Map<string, string>();
      for (const n of await listDir(cur)) if (!n.startsWith('.')) onDisk.set(baseOf(n), n);
      const rows = this.rows(index);
      const indexed = new Set(rows.map((r) => r.base));
      const unknown = [...onDisk.entries()].filter(([base]) => !indexed.has(base)).map(([base, name]) => ({ base, name }));
      if (unknown.length) {
        const described = [
          ...unknown.flatMap((u) => (known?.has(u.base) ? [{ ...known.get(u.base)!, name: u.name }] : [])),
          ...(await this.describe(cur, unknown.filter((u) => !known?.has(u.base)))),
        ];
        // RFC 8514 §3: delivered into new/ = saved when delivered (see syncLocked).
        const delivered = new Set(fresh.map(baseOf));
        for (const d of described) if (d.saveDate === undefined && delivered.has(d.base)) d.saveDate = d.internalDate;
        // Dovecot's order for files found: their delivery time.
        described.sort((a, b) => compareNames(a.base, b.base));
        const r = await pg.addNew(dir, index, described);
        expunged.push(...r.pulled.expunged);
        added += r.pulled.added;
      }
      const remove: number[] = [];
      const update: { uid: number; name: string; keywords: string }[] = [];
      for (const r of this.rows(index)) {
        const name = onDisk.get(r.base);
        if (name === undefined) {
          // Listed after the copy was pulled: a file indexed meanwhile by another node is on disk unless expunged.
          if (indexed.has(r.base)) remove.push(r.uid);
        } else if (name !== r.name) {
          update.push({ uid: r.uid, name, keywords: r.keywords });
          flagChanges.push({ kind: 'flags', uid: r.uid, flags: flagsOf(name, r.keywords, map) });
        }
      }
      if (remove.length || update.length) await pg.apply(dir, index, { remove, update });
      expunged.push(...remove);
      renamed = update.length;
      this.keepDirsSignature(index, dir, before);
    }
    const modseq = index.modseq;
    if (expunged.length) this.events.emit(dir, { kind: 'expunge', uids: [...new Set(expunged)], modseq });
    for (const c of flagChanges) this.events.emit(dir, { ...c, modseq } as FolderChange);
    if (added > 0) this.events.emit(dir, { kind: 'exists', uidNext: index.uidNext });
    if (expunged.length || renamed || added) this.log.debug({ owner: ownerLabel(owner), folder, added, removed: expunged.length, renamed }, 'mailbox: synced (shared index)');
    return index;
  }

  /** indexNew with state postgres: UIDs from the shared index, in the order given. */
  private async indexNewPg(dir: string, items: NewRow[]): Promise<number[]> {
    const pg = this.pg!;
    const uids = await folderLocks.run(dir, async () => {
      const index = this.index(dir);
      const { uids } = await pg.addNew(dir, index, items);
      // Indexed first by a sync (here or on another node), without the unlettered keywords the caller gave.
      const stale = items.flatMap((it, i) => {
        const row = index.row(uids[i]!);
        return row && it.keywords !== '' && row.keywords !== it.keywords ? [{ uid: row.uid, name: row.name, keywords: it.keywords }] : [];
      });
      if (stale.length) await pg.apply(dir, index, { update: stale });
      // The header fields SEARCH compares, kept in this node's copy (the shared index has them too).
      const headers = items.flatMap((it, i): [number, SearchHeaders][] => (it.headers && uids[i] ? [[uids[i]!, it.headers]] : []));
      if (headers.length) index.setSearchHeaders(headers);
      return uids;
    });
    if (items.length) this.events.emit(dir, { kind: 'exists', uidNext: this.index(dir).uidNext });
    return uids;
  }

  // ---- state postgres: the shared index (end) ----

  private async recountQuota(owner: MailboxOwner): Promise<void> {
    const maildir = this.store.maildirPath(owner);
    const read = await readMaildirSize(maildir);
    if (!read.ok && read.definition === undefined) return; // none yet: the next check counts
    await recalculateMaildirSize(maildir, read.definition ?? '');
  }
}

/**
 * How long a state this process made itself (ownDirs) is trusted before a listing confirms it: the bound on how
 * late a change another process made in the same microseconds as one of ours is reported.
 */
const CONFIRM_MS = DIR_SETTLE_MS;

/**
 * stat(2) made on the event loop, undefined when the file is missing. A stat of an inode in the cache costs a few
 * microseconds of kernel time and never waits for the disk; the promise version costs a hand-off to libuv's thread
 * pool and back, and under imaptest (logout=0) the four of them before every folder access (this check) took about
 * 5 % of the IMAP process's profile, 0.2 % when synchronous (issue 11; src/lib/durable-fs.ts makes the same choice).
 */
function statNow(path: string): Stats | undefined {
  return statSync(path, { throwIfNoEntry: false });
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (err) {
    if (errorCode(err) === 'ENOENT' || errorCode(err) === 'ENOTDIR') return false;
    throw err;
  }
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return [];
    throw err;
  }
}
