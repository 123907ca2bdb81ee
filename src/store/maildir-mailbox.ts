/**
 * MailboxAccess (src/store/mailbox.ts) on the Maildir++ store: what IMAP and POP3 read and change.
 *
 * Each folder's Maildir holds a `postern-index.db` (folder-index.ts). Opening a folder syncs it with the
 * directories: files in new/ move to cur/ with an empty `:2,` info, unindexed files get the next UIDs in file-name
 * time order, rows whose file vanished are dropped, and a file renamed by another program (Dovecot, a script) is a
 * flag change. Only directory listings and the index are read: never message contents, and no stat() for names
 * that carry `,S=`.
 *
 * System flags live in the file name as the Maildir spec and Dovecot have them (S \Seen, R \Answered, F \Flagged,
 * T \Deleted, D \Draft); letters we do not map (P, Dovecot's lowercase keyword letters) are kept untouched. IMAP
 * keywords live in the index only.
 *
 * Changes are announced on an in-process hub (watch.ts) to every `watch` listener of the folder, including the
 * session that made them (the contract has no session identity; a session compares with what it already knows).
 * Deliveries by the SMTP side are found by an fs.watch on new/ of watched folders, and, more cheaply and reliably,
 * by `notifyDelivered(owner, folder)` which delivery can call after `store.deliver`.
 */
import { watch as fsWatch, type FSWatcher } from 'node:fs';
import { readdir, readFile, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from '../lib/logger.js';
import type { Settings } from '../settings/store.js';
import { errorCode } from './fs-util.js';
import { FolderIndex, isCorruption, type IndexRow, type NewRow } from './folder-index.js';
import { KeyedMutex } from './keyed-mutex.js';
import { FolderNotFound, OverQuota, type Flag, type FolderChange, type FolderInfo, type FolderState, type MailboxAccess, type MessageMeta } from './mailbox.js';
import type { MaildirStore } from './maildir.js';
import { FOLDER_SEPARATOR, ownerLabel, parseMaildirFileName, SPECIAL_FOLDERS } from './names.js';
import { appendMaildirSize, readMaildirSize, recalculateMaildirSize } from './quota.js';
import { QuotaExceeded, type MailboxOwner } from './types.js';
import { folderEvents, type FolderEvents } from './watch.js';

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
 * depend on the separator a namespace is configured with), each level tab-escaped.
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

const FLAG_LETTERS: ReadonlyArray<[Flag, string]> = [
  ['\\Draft', 'D'],
  ['\\Flagged', 'F'],
  ['\\Answered', 'R'],
  ['\\Seen', 'S'],
  ['\\Deleted', 'T'],
];
const LETTER_OF = new Map(FLAG_LETTERS.map(([f, l]) => [f.toLowerCase(), l]));
const SYSTEM_LETTERS = new Set(FLAG_LETTERS.map(([, l]) => l));

/** Flags for a file name's info letters plus the index keywords, system flags first. */
export function flagsOf(name: string, keywords: string): Flag[] {
  const info = name.indexOf(':2,');
  const letters = info < 0 ? '' : name.slice(info + 3);
  const out: Flag[] = [];
  for (const [flag, letter] of FLAG_LETTERS) if (letters.includes(letter)) out.push(flag);
  if (keywords) out.push(...keywords.split(' '));
  return out;
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

/** The file name with its system-flag letters replaced, other info letters kept, in ASCII order. */
function renameWithLetters(name: string, letters: Set<string>): string {
  const colon = name.indexOf(':');
  const head = colon < 0 ? name : name.slice(0, colon);
  const kept = [...parseMaildirFileName(name).flags].filter((l) => !SYSTEM_LETTERS.has(l));
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
  private readonly watchers = new Map<string, Watcher>();

  constructor(opts: MaildirMailboxOptions) {
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
  }

  async deleteFolder(owner: MailboxOwner, name: string): Promise<void> {
    const dir = this.store.folderPath(owner, name);
    if (dir === this.store.maildirPath(owner)) throw new FolderRefused('INBOX cannot be deleted');
    if (!(await isDir(dir))) throw new FolderNotFound(name);
    await folderLocks.run(dir, async () => {
      this.dropIndex(dir);
      // Children are separate Maildir++ directories ('.A.B' next to '.A') and are kept (RFC 3501 §6.3.4).
      await rm(dir, { recursive: true, force: true });
    });
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
      return;
    }
    if (!(await isDir(fromDir))) throw new FolderNotFound(from);
    const folders = await this.store.listFolders(owner);
    const moving = folders.filter((f) => f.name === from || f.name.startsWith(from + FOLDER_SEPARATOR));
    for (const f of moving) {
      const target = this.store.folderPath(owner, to + f.name.slice(from.length));
      await folderLocks.run(f.path, async () => {
        this.dropIndex(f.path);
        // The index moves with the directory: UIDVALIDITY and UIDs are kept.
        await rename(f.path, target);
      });
    }
  }

  async subscribe(owner: MailboxOwner, name: string, on: boolean): Promise<void> {
    const root = this.store.maildirPath(owner);
    await folderLocks.run(`${root}\0subscriptions`, async () => {
      const subs = (await this.readSubscriptions(owner)).filter((n) => n !== name);
      if (on) subs.push(name);
      await this.store.createFolder(owner, 'INBOX');
      const tmp = join(root, 'tmp', `subscriptions.${process.pid}.${Date.now()}`);
      await writeFile(tmp, SUBSCRIPTIONS_V2 + subs.map((s) => `${s.split(FOLDER_SEPARATOR).map(tabEscape).join('\t')}\n`).join(''), { mode: 0o600 });
      await rename(tmp, join(root, SUBSCRIPTIONS_FILE));
    });
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
        .map((l) => l.split('\t').map(tabUnescape).join(FOLDER_SEPARATOR));
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return [];
      throw err;
    }
  }

  // ---- messages -------------------------------------------------------------------------------------------------

  async openFolder(owner: MailboxOwner, name: string): Promise<FolderState> {
    const dir = await this.folderDir(owner, name);
    return folderLocks.run(dir, async () => {
      let index: FolderIndex;
      try {
        index = await this.syncLocked(owner, name, dir);
      } catch (err) {
        if (!isCorruption(err)) throw err;
        // Damaged while open (a disk error, a bad copy): rebuild, as for one found damaged at open.
        this.log.warn({ err, dir }, 'mailbox: folder index corrupt; rebuilding (new UIDVALIDITY)');
        this.dropIndex(dir);
        FolderIndex.discard(dir);
        index = await this.syncLocked(owner, name, dir);
      }
      const messages: MessageMeta[] = this.rows(index).map((r) => ({
        uid: r.uid,
        size: r.size,
        flags: flagsOf(r.name, r.keywords),
        internalDate: new Date(r.internalDate),
      }));
      return { uidValidity: index.uidValidity, uidNext: index.uidNext, messages, modseq: index.modseq };
    });
  }

  async readMessage(owner: MailboxOwner, folder: string, uid: number): Promise<Buffer> {
    const dir = await this.folderDir(owner, folder);
    for (let attempt = 0; ; attempt++) {
      const row = this.index(dir).row(uid);
      if (!row) throw new MessageNotFound(folder, uid);
      try {
        return await readFile(join(dir, 'cur', row.name));
      } catch (err) {
        if (errorCode(err) !== 'ENOENT' || attempt > 0) throw err;
      }
      // Renamed (flags changed by another program) or deleted since: resync and look again.
      await folderLocks.run(dir, () => this.syncLocked(owner, folder, dir));
    }
  }

  /** The cached ENVELOPE / BODYSTRUCTURE of a message (computed by IMAP on first need), for the IMAP side. */
  async cachedParts(owner: MailboxOwner, folder: string, uid: number): Promise<{ envelope?: unknown; bodystructure?: unknown }> {
    return this.index(await this.folderDir(owner, folder)).cached(uid);
  }

  async setCachedParts(owner: MailboxOwner, folder: string, uid: number, data: { envelope?: unknown; bodystructure?: unknown }): Promise<void> {
    const dir = await this.folderDir(owner, folder);
    await folderLocks.run(dir, async () => this.index(dir).setCached(uid, data));
  }

  async storeFlags(owner: MailboxOwner, folder: string, uids: number[], mode: 'set' | 'add' | 'remove', flags: Flag[]): Promise<Map<number, Flag[]>> {
    const dir = await this.folderDir(owner, folder);
    const given = splitFlags(flags);
    const result = new Map<number, Flag[]>();
    const changes: FolderChange[] = [];
    await folderLocks.run(dir, async () => {
      const index = this.index(dir);
      const updates: { uid: number; name: string; keywords: string }[] = [];
      for (const uid of uids) {
        const row = index.row(uid);
        if (!row) continue;
        const oldLetters = new Set([...parseMaildirFileName(row.name).flags].filter((l) => SYSTEM_LETTERS.has(l)));
        const oldKeywords = row.keywords ? row.keywords.split(' ') : [];
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
        const name = renameWithLetters(row.name, letters);
        const kw = keywords.join(' ');
        if (name !== row.name) {
          try {
            await rename(join(dir, 'cur', row.name), join(dir, 'cur', name));
          } catch (err) {
            if (errorCode(err) === 'ENOENT') continue; // gone or renamed by another program: the next sync tells
            throw err;
          }
        }
        const newFlags = flagsOf(name, kw);
        result.set(uid, newFlags);
        if (name !== row.name || kw !== row.keywords) {
          updates.push({ uid, name, keywords: kw });
          changes.push({ kind: 'flags', uid, flags: newFlags });
        }
      }
      if (updates.length) index.apply({ update: updates });
    });
    for (const c of changes) this.events.emit(dir, c);
    return result;
  }

  async expunge(owner: MailboxOwner, folder: string, uids?: number[]): Promise<number[]> {
    const dir = await this.folderDir(owner, folder);
    const removed: IndexRow[] = [];
    await folderLocks.run(dir, async () => {
      const index = this.index(dir);
      let rows: IndexRow[];
      if (uids) {
        rows = [];
        for (const uid of [...new Set(uids)].sort((a, b) => a - b)) {
          const r = index.row(uid);
          if (r) rows.push(r);
        }
      } else {
        rows = index.rows().filter((r) => parseMaildirFileName(r.name).flags.includes('T'));
      }
      for (const r of rows) {
        try {
          await unlink(join(dir, 'cur', r.name));
          removed.push(r);
        } catch (err) {
          // Already gone: the message is expunged all the same. Renamed meanwhile: left for the next sync.
          if (errorCode(err) === 'ENOENT') removed.push(r);
          else throw err;
        }
      }
      if (removed.length) index.apply({ remove: removed.map((r) => r.uid) });
    });
    if (removed.length) {
      const bytes = removed.reduce((n, r) => n + r.size, 0);
      await appendMaildirSize(this.store.maildirPath(owner), -bytes, -removed.length).catch(() => false);
      this.events.emit(dir, { kind: 'expunge', uids: removed.map((r) => r.uid) });
    }
    return removed.map((r) => r.uid);
  }

  async append(owner: MailboxOwner, folder: string, message: Buffer, flags: Flag[], internalDate?: Date): Promise<{ uidValidity: number; uid: number }> {
    const dir = await this.folderDir(owner, folder);
    const { letters, keywords } = splitFlags(flags);
    const [uid] = await this.deliverAndIndex(owner, folder, dir, [{ message, letters: [...letters].join(''), keywords: keywords.join(' '), internalDate }]);
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
      // RFC 6851 MOVE within one Maildir++: a rename keeps the file (and the quota) as it is.
      const moved: IndexRow[] = [];
      await folderLocks.run(srcDir, async () => {
        for (const r of rows) {
          try {
            await rename(join(srcDir, 'cur', r.name), join(dstDir, 'cur', r.name));
            moved.push(r);
          } catch (err) {
            if (errorCode(err) !== 'ENOENT') throw err;
          }
        }
        if (moved.length) src.apply({ remove: moved.map((r) => r.uid) });
      });
      let newUids: number[] = [];
      await folderLocks.run(dstDir, async () => {
        const dst = this.index(dstDir);
        // A sync of the target may have seen the files already; keep the UIDs it gave them.
        const fresh = moved.filter((r) => dst.uidOfBase(r.base) === undefined);
        const seen = moved.filter((r) => !fresh.includes(r) && r.keywords !== '');
        const added = dst.apply({
          add: fresh.map((r) => ({ base: r.base, name: r.name, size: r.size, internalDate: r.internalDate, keywords: r.keywords })),
          update: seen.map((r) => ({ uid: dst.uidOfBase(r.base)!, name: r.name, keywords: r.keywords })),
        });
        const byBase = new Map(fresh.map((r, i) => [r.base, added[i]!]));
        newUids = moved.map((r) => byBase.get(r.base) ?? dst.uidOfBase(r.base)!);
      });
      if (moved.length) {
        this.events.emit(srcDir, { kind: 'expunge', uids: moved.map((r) => r.uid) });
        this.events.emit(dstDir, { kind: 'exists', uidNext: this.index(dstDir).uidNext });
      }
      return { uidValidity: this.index(dstDir).uidValidity, mapping: moved.map((r, i) => [r.uid, newUids[i]!]) };
    }

    // RFC 9208 §4.1.3 / RFC 4315: refuse the whole COPY rather than copy part of it.
    const limit = this.quotaBytesOf(toOwner);
    if (limit > 0) {
      const used = (await this.store.quotaUsage(toOwner)).bytes;
      const total = rows.reduce((n, r) => n + r.size, 0);
      if (used + total > limit) throw new OverQuota();
    }
    const items: { uid: number; message: Buffer; letters: string; keywords: string; internalDate: Date }[] = [];
    for (const r of rows) {
      let message: Buffer;
      try {
        message = await readFile(join(srcDir, 'cur', r.name));
      } catch (err) {
        if (errorCode(err) === 'ENOENT') continue;
        throw err;
      }
      items.push({ uid: r.uid, message, letters: parseMaildirFileName(r.name).flags, keywords: r.keywords, internalDate: new Date(r.internalDate) });
    }
    const newUids = await this.deliverAndIndex(toOwner, to, dstDir, items);
    if (opts.move) await this.expunge(owner, from, items.map((i) => i.uid));
    return { uidValidity: this.index(dstDir).uidValidity, mapping: items.map((i, n) => [i.uid, newUids[n]!]) };
  }

  async firstRecentUid(owner: MailboxOwner, folder: string, claimUpTo?: number): Promise<number> {
    const dir = await this.folderDir(owner, folder);
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
        .run(dir, () => this.syncLocked(owner, folder, dir))
        .catch((err: unknown) => this.log.warn({ err, owner: ownerLabel(owner), folder }, 'mailbox: sync after delivery failed'));
    }, this.debounceMs);
    entry.timer.unref();
  }

  // ---- internals ------------------------------------------------------------------------------------------------

  /** The folder's Maildir; INBOX is created on first use, any other folder must exist. */
  private async folderDir(owner: MailboxOwner, folder: string): Promise<string> {
    const dir = this.store.folderPath(owner, folder);
    if (await isDir(join(dir, 'cur'))) return dir;
    if (dir === this.store.maildirPath(owner)) {
      await this.store.createFolder(owner, 'INBOX');
      return dir;
    }
    throw new FolderNotFound(folder);
  }

  private index(dir: string): FolderIndex {
    let idx = this.indexes.get(dir);
    if (idx && !idx.isCurrent()) {
      idx.close();
      idx = undefined;
    }
    if (!idx) {
      idx = FolderIndex.open(dir, { onRebuild: (reason) => this.log.warn({ dir, reason }, 'mailbox: folder index rebuilt (new UIDVALIDITY)') });
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
  }

  /** Brings the index up to date with new/ and cur/; runs under the folder's lock. Emits what it finds. */
  private async syncLocked(owner: MailboxOwner, folder: string, dir: string): Promise<FolderIndex> {
    const index = this.index(dir);
    const cur = join(dir, 'cur');

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

    const onDisk = new Map<string, string>();
    for (const n of await listDir(cur)) {
      if (n.startsWith('.')) continue;
      onDisk.set(baseOf(n), n);
    }
    const remove: number[] = [];
    const update: { uid: number; name: string; keywords: string }[] = [];
    const flagChanges: FolderChange[] = [];
    for (const r of this.rows(index)) {
      const name = onDisk.get(r.base);
      if (name === undefined) remove.push(r.uid);
      else {
        onDisk.delete(r.base);
        if (name !== r.name) {
          update.push({ uid: r.uid, name, keywords: r.keywords });
          flagChanges.push({ kind: 'flags', uid: r.uid, flags: flagsOf(name, r.keywords) });
        }
      }
    }
    const add: NewRow[] = [];
    for (const base of [...onDisk.keys()].sort(compareNames)) {
      const name = onDisk.get(base)!;
      const parsed = parseMaildirFileName(name);
      let size = parsed.size;
      let internalDate = timeKey(base)[0] * 1000;
      if (size === undefined || internalDate >= Number.MAX_SAFE_INTEGER) {
        // Not a Maildir++ name (another program wrote it): one stat, still no read.
        try {
          const st = await stat(join(cur, name));
          size ??= st.size;
          if (internalDate >= Number.MAX_SAFE_INTEGER) internalDate = st.mtimeMs;
        } catch (err) {
          if (errorCode(err) === 'ENOENT') continue;
          throw err;
        }
      }
      add.push({ base, name, size, internalDate: Math.floor(internalDate), keywords: '' });
    }
    if (remove.length || update.length || add.length) {
      index.apply({ remove, update, add });
      if (remove.length) this.events.emit(dir, { kind: 'expunge', uids: remove });
      for (const c of flagChanges) this.events.emit(dir, c);
      if (add.length) this.events.emit(dir, { kind: 'exists', uidNext: index.uidNext });
      this.log.debug({ owner: ownerLabel(owner), folder, added: add.length, removed: remove.length, renamed: update.length }, 'mailbox: synced');
    }
    return index;
  }

  /** Writes messages through the store (tmp → cur with flags, quota checked) and indexes them; returns their UIDs. */
  private async deliverAndIndex(
    owner: MailboxOwner,
    folder: string,
    dir: string,
    items: { message: Buffer; letters: string; keywords: string; internalDate?: Date }[],
  ): Promise<number[]> {
    const quotaBytes = this.quotaBytesOf(owner);
    const written: NewRow[] = [];
    for (const item of items) {
      let path: string;
      let size: number;
      try {
        ({ path, size } = await this.store.deliver(owner, item.message, { folder, flags: item.letters, quotaBytes }));
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
      written.push({ base: parseMaildirFileName(name).base, name, size, internalDate, keywords: item.keywords });
    }
    let uids: number[] = [];
    await folderLocks.run(dir, async () => {
      const index = this.index(dir);
      const fresh = written.filter((w) => index.uidOfBase(w.base) === undefined);
      index.apply({ add: fresh });
      // A concurrent sync may have indexed some of them already (without keywords): give them what APPEND said.
      const stale = written.filter((w) => !fresh.includes(w) && w.keywords !== '');
      if (stale.length) index.apply({ update: stale.map((w) => ({ uid: index.uidOfBase(w.base)!, name: w.name, keywords: w.keywords })) });
      uids = written.map((w) => index.uidOfBase(w.base)!);
    });
    if (written.length) this.events.emit(dir, { kind: 'exists', uidNext: this.index(dir).uidNext });
    return uids;
  }

  private async recountQuota(owner: MailboxOwner): Promise<void> {
    const maildir = this.store.maildirPath(owner);
    const read = await readMaildirSize(maildir);
    if (!read.ok && read.definition === undefined) return; // none yet: the next check counts
    await recalculateMaildirSize(maildir, read.definition ?? '');
  }
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
