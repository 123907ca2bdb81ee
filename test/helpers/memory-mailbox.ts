/**
 * An in-memory MailboxAccess (src/store/mailbox.ts) for the IMAP tests (STYLE.md: "An in-memory store
 * implementation makes the command tests fast"). Every mailbox starts with INBOX, Sent, Drafts, Trash and Junk.
 * `watch` listeners hear every change, including the caller's own: the IMAP session must not report a change twice.
 */
import {
  FolderNotFound,
  OverQuota,
  type Flag,
  type FolderChange,
  type FolderInfo,
  type FolderState,
  type MailboxAccess,
  type MessageMeta,
} from '../../src/store/mailbox.ts';
import type { MailboxOwner } from '../../src/store/types.ts';

interface Folder {
  /** ENVELOPE / BODYSTRUCTURE cached by the IMAP side (the optional cachedParts/setCachedParts the Maildir store has). */
  parts?: Map<number, { envelope?: unknown; bodystructure?: unknown }>;
  uidValidity: number;
  uidNext: number;
  /** RFC 3501 §2.3.2: UIDs below it were claimed as \Recent by a session. */
  firstRecent: number;
  modseq: number;
  subscribed: boolean;
  specialUse?: FolderInfo['specialUse'];
  messages: { meta: MessageMeta; data: Buffer }[];
}

const SPECIAL: [string, FolderInfo['specialUse']][] = [
  ['Sent', '\\Sent'],
  ['Drafts', '\\Drafts'],
  ['Trash', '\\Trash'],
  ['Junk', '\\Junk'],
];

export class MemoryMailbox implements MailboxAccess {
  private readonly owners = new Map<string, Map<string, Folder>>();
  private readonly listeners = new Map<string, Set<(c: FolderChange) => void>>();
  private nextValidity = 1000;
  /** How many times a message was read: tests check that cached ENVELOPEs spare the reads. */
  reads = 0;

  /** `quotaBytes`: one limit for every owner, or a limit per owner (0 = none). */
  constructor(private readonly opts: { quotaBytes?: number | ((owner: MailboxOwner) => number) } = {}) {}

  private limit(owner: MailboxOwner): number {
    const q = this.opts.quotaBytes ?? 0;
    return typeof q === 'function' ? q(owner) : q;
  }

  private key(owner: MailboxOwner): string {
    return owner.kind === 'user' ? `u:${owner.login.toLowerCase()}` : `g:${owner.group.toLowerCase()}`;
  }

  private folders(owner: MailboxOwner): Map<string, Folder> {
    const k = this.key(owner);
    let f = this.owners.get(k);
    if (!f) {
      f = new Map();
      f.set('INBOX', this.newFolder());
      for (const [name, specialUse] of SPECIAL) f.set(name, { ...this.newFolder(), specialUse });
      this.owners.set(k, f);
    }
    return f;
  }

  private newFolder(): Folder {
    return { uidValidity: this.nextValidity++, uidNext: 1, firstRecent: 1, modseq: 1, subscribed: true, messages: [] };
  }

  private folder(owner: MailboxOwner, name: string): Folder {
    const f = this.folders(owner).get(name);
    if (!f) throw new FolderNotFound(name);
    return f;
  }

  private emit(owner: MailboxOwner, folder: string, change: FolderChange) {
    for (const l of this.listeners.get(`${this.key(owner)}\0${folder}`) ?? []) l(change);
  }

  async listFolders(owner: MailboxOwner): Promise<FolderInfo[]> {
    const all = this.folders(owner);
    return [...all.entries()].map(([name, f]) => ({
      name,
      specialUse: f.specialUse,
      subscribed: f.subscribed,
      hasChildren: [...all.keys()].some((n) => n.startsWith(name + '/')),
    }));
  }

  async createFolder(owner: MailboxOwner, name: string): Promise<void> {
    const all = this.folders(owner);
    if (all.has(name)) throw new Error(`folder exists: ${name}`);
    all.set(name, { ...this.newFolder(), subscribed: this.ghostSubs(owner).delete(name) || true });
  }

  async deleteFolder(owner: MailboxOwner, name: string): Promise<void> {
    if (name === 'INBOX') throw new Error('cannot delete INBOX');
    if (this.folder(owner, name).subscribed) this.ghostSubs(owner).add(name);
    this.folders(owner).delete(name);
  }

  async renameFolder(owner: MailboxOwner, from: string, to: string): Promise<void> {
    const all = this.folders(owner);
    const f = this.folder(owner, from);
    if (all.has(to)) throw new Error(`folder exists: ${to}`);
    for (const [name, child] of [...all.entries()]) {
      if (name === from || name.startsWith(from + '/')) {
        all.delete(name);
        all.set(to + name.slice(from.length), name === from ? f : child);
      }
    }
  }

  async subscribe(owner: MailboxOwner, name: string, on: boolean): Promise<void> {
    const f = this.folders(owner).get(name);
    const ghosts = this.ghostSubs(owner);
    if (f) f.subscribed = on;
    else if (on) ghosts.add(name);
    else ghosts.delete(name);
  }

  /** Subscriptions outlive their folder (RFC 3501 §6.3.6); these are the ones whose folder is gone. */
  private readonly ghosts = new Map<string, Set<string>>();
  private ghostSubs(owner: MailboxOwner): Set<string> {
    const k = this.key(owner);
    let g = this.ghosts.get(k);
    if (!g) this.ghosts.set(k, (g = new Set()));
    return g;
  }

  async subscriptions(owner: MailboxOwner): Promise<string[]> {
    const own = [...this.folders(owner).entries()].filter(([, f]) => f.subscribed).map(([n]) => n);
    return [...own, ...this.ghostSubs(owner)];
  }

  async openFolder(owner: MailboxOwner, name: string): Promise<FolderState> {
    const f = this.folder(owner, name);
    return {
      uidValidity: f.uidValidity,
      uidNext: f.uidNext,
      modseq: f.modseq,
      messages: f.messages.map((m) => ({ ...m.meta, flags: [...m.meta.flags] })),
    };
  }

  async readMessage(owner: MailboxOwner, folder: string, uid: number): Promise<Buffer> {
    const m = this.folder(owner, folder).messages.find((x) => x.meta.uid === uid);
    if (!m) throw new Error(`no message ${uid}`);
    this.reads++;
    return m.data;
  }

  async cachedParts(owner: MailboxOwner, folder: string, uid: number): Promise<{ envelope?: unknown; bodystructure?: unknown }> {
    return this.folder(owner, folder).parts?.get(uid) ?? {};
  }

  async setCachedParts(owner: MailboxOwner, folder: string, uid: number, data: { envelope?: unknown; bodystructure?: unknown }): Promise<void> {
    const f = this.folder(owner, folder);
    (f.parts ??= new Map()).set(uid, { ...f.parts?.get(uid), ...data });
  }

  async storeFlags(owner: MailboxOwner, folder: string, uids: number[], mode: 'set' | 'add' | 'remove', flags: Flag[]): Promise<Map<number, Flag[]>> {
    const f = this.folder(owner, folder);
    const out = new Map<number, Flag[]>();
    for (const m of f.messages) {
      if (!uids.includes(m.meta.uid)) continue;
      const cur = new Set(m.meta.flags);
      if (mode === 'set') cur.clear();
      for (const fl of flags) mode === 'remove' ? cur.delete(fl) : cur.add(fl);
      m.meta.flags = [...cur];
      m.meta.modseq = ++f.modseq;
      out.set(m.meta.uid, [...m.meta.flags]);
      this.emit(owner, folder, { kind: 'flags', uid: m.meta.uid, flags: [...m.meta.flags], modseq: f.modseq });
    }
    return out;
  }

  async expunge(owner: MailboxOwner, folder: string, uids?: number[]): Promise<number[]> {
    const f = this.folder(owner, folder);
    const removed = f.messages.filter((m) => m.meta.flags.includes('\\Deleted') && (!uids || uids.includes(m.meta.uid))).map((m) => m.meta.uid);
    f.messages = f.messages.filter((m) => !removed.includes(m.meta.uid));
    if (removed.length) this.emit(owner, folder, { kind: 'expunge', uids: removed, modseq: ++f.modseq });
    return removed;
  }

  async append(owner: MailboxOwner, folder: string, message: Buffer, flags: Flag[], internalDate?: Date): Promise<{ uidValidity: number; uid: number }> {
    const f = this.folder(owner, folder);
    await this.checkQuota(owner, message.length);
    const uid = f.uidNext++;
    f.messages.push({ meta: { uid, size: message.length, flags: [...flags], internalDate: internalDate ?? new Date(), modseq: ++f.modseq, saveDate: new Date() }, data: message });
    this.emit(owner, folder, { kind: 'exists', uidNext: f.uidNext });
    return { uidValidity: f.uidValidity, uid };
  }

  async copy(
    owner: MailboxOwner,
    from: string,
    uids: number[],
    to: string,
    opts: { move?: boolean; toOwner?: MailboxOwner } = {},
  ): Promise<{ uidValidity: number; mapping: [number, number][] }> {
    const src = this.folder(owner, from);
    const dstOwner = opts.toOwner ?? owner;
    const dst = this.folder(dstOwner, to);
    const picked = src.messages.filter((m) => uids.includes(m.meta.uid));
    await this.checkQuota(dstOwner, opts.move && !opts.toOwner ? 0 : picked.reduce((n, m) => n + m.data.length, 0));
    const mapping: [number, number][] = [];
    for (const m of picked) {
      const uid = dst.uidNext++;
      dst.messages.push({ meta: { ...m.meta, uid, flags: [...m.meta.flags], modseq: ++dst.modseq, saveDate: new Date() }, data: m.data });
      mapping.push([m.meta.uid, uid]);
    }
    if (mapping.length) this.emit(dstOwner, to, { kind: 'exists', uidNext: dst.uidNext });
    if (opts.move && picked.length) {
      src.messages = src.messages.filter((m) => !uids.includes(m.meta.uid));
      this.emit(owner, from, { kind: 'expunge', uids: picked.map((m) => m.meta.uid), modseq: ++src.modseq });
    }
    return { uidValidity: dst.uidValidity, mapping };
  }

  async firstRecentUid(owner: MailboxOwner, folder: string, claimUpTo?: number): Promise<number> {
    const f = this.folder(owner, folder);
    const first = f.firstRecent;
    if (claimUpTo !== undefined && claimUpTo > first) f.firstRecent = claimUpTo;
    return first;
  }

  async quota(owner: MailboxOwner): Promise<{ usedBytes: number; limitBytes: number; messages: number }> {
    let usedBytes = 0;
    let messages = 0;
    for (const f of this.folders(owner).values()) {
      for (const m of f.messages) {
        usedBytes += m.data.length;
        messages++;
      }
    }
    return { usedBytes, limitBytes: this.limit(owner), messages };
  }

  watch(owner: MailboxOwner, folder: string, listener: (change: FolderChange) => void): () => void {
    const k = `${this.key(owner)}\0${folder}`;
    let set = this.listeners.get(k);
    if (!set) this.listeners.set(k, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Test helper: what delivery would do (a message arrives in a folder). */
  deliver(owner: MailboxOwner, message: string | Buffer, folder = 'INBOX', flags: Flag[] = []): Promise<{ uidValidity: number; uid: number }> {
    return this.append(owner, folder, Buffer.isBuffer(message) ? message : Buffer.from(message.replace(/\r?\n/g, '\r\n')), flags);
  }

  private async checkQuota(owner: MailboxOwner, adding: number) {
    const limit = this.limit(owner);
    if (!limit) return;
    const { usedBytes } = await this.quota(owner);
    if (usedBytes + adding > limit) throw new OverQuota();
  }
}
