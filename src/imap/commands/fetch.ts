/**
 * FETCH and UID FETCH (RFC 3501 §6.4.5): FLAGS, INTERNALDATE, RFC822.SIZE, UID, ENVELOPE, BODYSTRUCTURE, BODY,
 * BODY[section]<partial>, BODY.PEEK, RFC822, RFC822.HEADER, RFC822.TEXT, and BINARY[part]<partial>, BINARY.PEEK,
 * BINARY.SIZE (RFC 3516, decoding in binary.ts), SAVEDATE (RFC 8514). Reading a body without PEEK sets \Seen
 * (unless EXAMINEd), and the new FLAGS are part of the same response.
 *
 * RFC 7162: the MODSEQ item (§3.1.4.2), the CHANGEDSINCE modifier (§3.1.4.1) and, for UID FETCH with QRESYNC
 * enabled, VANISHED (§3.2.6).
 *
 * A large message (STREAM_MIN and above) asked for whole or by a byte range — BODY[]<partial>, BINARY[]<partial>,
 * RFC822, with items that need no parsing (or whose ENVELOPE/BODYSTRUCTURE are cached) — is not read into memory:
 * its literal is written from the open file in STREAM_CHUNK pieces, each after the socket (or the COMPRESS
 * deflater, or TLS) has taken the one before, so a client fetching 50 MiB costs a chunk, not 50 MiB.
 */
import type { MessageFile, MessageMeta } from '../../store/mailbox.js';
import type { MailboxOwner } from '../../store/types.js';
import { bad, expectArgs, resolveSet, type ImapCommand } from '../command.js';
import type { ImapSession } from '../connection.js';
import { binaryData, encodeBinary, partialOf } from '../binary.js';
import { bodystructure, envelope, filterHeader, findPart, parseMime, type MimeNode } from '../mime.js';
import { splitHeader } from '../../store/header-fields.js';
import { parseFetchAtts, parseSequenceSet, type BodySection, type FetchAtt, type Token } from '../parser.js';
import { encode, encodeString, formatInternalDate } from '../response.js';
import { previewText } from '../preview.js';
import { MessageMemo, messageMemo, type MemoEntry } from '../message-memo.js';
import { condstoreEnabled, enableCondstore, modseqItem, modseqValue, noteModseq, qresyncEnabled, requireModseq, sendVanishedEarlier, vanishedEarlier } from '../condstore.js';

/** Messages from this size on are streamed when the items allow it (see the file comment). */
export const STREAM_MIN = 256 * 1024;
/** Bytes read from the file and written per step of a streamed literal. */
const STREAM_CHUNK = 64 * 1024;

const NEEDS_CONTENT = new Set(['ENVELOPE', 'BODYSTRUCTURE', 'BODY', 'RFC822', 'RFC822.HEADER', 'RFC822.TEXT', 'PREVIEW']);

/**
 * Optional on a MailboxAccess (the Maildir one has it): ENVELOPE and BODYSTRUCTURE kept in the folder index, so a
 * client listing a large folder does not make us read every message again. Values are the encoded IMAP text.
 */
interface PartsCache {
  cachedParts(owner: MailboxOwner, folder: string, uid: number): Promise<{ envelope?: unknown; bodystructure?: unknown }>;
  setCachedParts(owner: MailboxOwner, folder: string, uid: number, data: { envelope?: unknown; bodystructure?: unknown }): Promise<void>;
}

function partsCache(store: object): PartsCache | undefined {
  const c = store as Partial<PartsCache>;
  return typeof c.cachedParts === 'function' && typeof c.setCachedParts === 'function' ? (c as PartsCache) : undefined;
}

export type Cached = { envelope?: Buffer; bodystructure?: Buffer; body?: Buffer };

/**
 * Cached values carry the version of the code that rendered them: values written before section numbering, group
 * syntax and the multipart grammar were fixed are ignored and rendered again.
 */
const CACHE_VERSION = 'v3 ';

function fromCache(v: { envelope?: unknown; bodystructure?: unknown }): Cached {
  const read = (x: unknown) => (typeof x === 'string' && x.startsWith(CACHE_VERSION) ? Buffer.from(x.slice(CACHE_VERSION.length), 'latin1') : undefined);
  return { envelope: read(v.envelope), bodystructure: read(v.bodystructure) };
}

/**
 * The bytes of BODY[section] (RFC 3501 §6.4.5). With a part number, "" is the part's body (for a MESSAGE/RFC822
 * part: the whole encapsulated message), MIME its own header, and HEADER, HEADER.FIELDS[.NOT] and TEXT refer to the
 * message a MESSAGE/RFC822 part holds; other parts have no such sections and give an empty string.
 */
export function sectionData(raw: Buffer, tree: MimeNode, s: BodySection): Buffer {
  let data: Buffer;
  const part = s.path.length ? findPart(tree, s.path) : tree;
  if (!part) data = Buffer.alloc(0);
  else if (s.specifier === '') data = s.path.length ? part.body : raw;
  else if (s.specifier === 'MIME') data = part.header;
  else {
    const target = s.path.length ? part.message : tree;
    if (!target) data = Buffer.alloc(0);
    else if (s.specifier === 'HEADER') data = target.header;
    else if (s.specifier === 'TEXT') data = target.body;
    else data = filterHeader(target.header, s.fields ?? [], s.specifier === 'HEADER.FIELDS.NOT');
  }
  if (s.partial) {
    const start = Math.min(s.partial.start, data.length);
    const end = s.partial.length === undefined ? data.length : Math.min(data.length, start + s.partial.length);
    data = data.subarray(start, end);
  }
  return data;
}

function setsSeen(a: FetchAtt): boolean {
  if (a.kind === 'section' || a.kind === 'binary') return !a.section.peek;
  return a.kind === 'simple' && (a.name === 'RFC822' || a.name === 'RFC822.TEXT');
}

export const fetch: ImapCommand = {
  names: ['FETCH'],
  states: ['selected'],
  uid: true,
  async handle(session, cmd) {
    // RFC 8970 §3.2: "FETCH 1 PREVIEW (LAZY)" has a third argument; RFC 7162 modifiers come last.
    expectArgs(cmd, 2, 4);
    if (cmd.args[0].type !== 'atom') throw bad('Invalid sequence set');
    let args = cmd.args;
    let modifiers: FetchModifiers | undefined;
    const last = args[args.length - 1];
    if (args.length > 2 && isFetchModifiers(last)) {
      modifiers = parseFetchModifiers(last, cmd.uid, qresyncEnabled(session));
      args = args.slice(0, -1);
    }
    if (args.length > 3) throw bad('Wrong number of arguments for FETCH');
    let atts: FetchAtt[];
    try {
      atts = parseFetchAtts(args[1], args[2]);
    } catch (err) {
      throw bad((err as Error).message);
    }
    const wantsModseq = atts.some((a) => a.kind === 'simple' && a.name === 'MODSEQ');
    if (modifiers || wantsModseq) {
      // RFC 7162 §3.1: MODSEQ and CHANGEDSINCE are CONDSTORE enabling; CHANGEDSINCE implies MODSEQ (§3.1.4.1).
      requireModseq(session);
      enableCondstore(session);
      if (modifiers && !wantsModseq) atts.push({ kind: 'simple', name: 'MODSEQ' });
    }
    if (cmd.uid && !atts.some((a) => a.kind === 'simple' && a.name === 'UID')) atts.unshift({ kind: 'simple', name: 'UID' });
    let refs = resolveSet(session, cmd.args[0].value, cmd.uid);
    if (modifiers) {
      const since = modifiers.changedSince;
      if (modifiers.vanished) {
        // §3.2.6: UIDs of the set expunged since CHANGEDSINCE, before the FETCH responses.
        let within;
        try {
          within = parseSequenceSet(cmd.args[0].value);
        } catch {
          throw bad('Invalid sequence set');
        }
        sendVanishedEarlier(session, await vanishedEarlier(session, since, within));
      }
      refs = refs.filter((r) => (r.meta.modseq ?? 0) > since);
    }
    await sendFetch(session, refs, atts);
  },
};

/**
 * `* n FETCH (...)` for each message of the view in `refs`; FETCH, and NOTIFY's MessageNew (RFC 5465 §5.2).
 * `stream: false` for NOTIFY: its unsolicited FETCHes go through the output bound that turns a client that does not
 * read into [NOTIFICATIONOVERFLOW] (RFC 5465 §5.8); a streamed literal would instead wait for that client for good.
 */
export async function sendFetch(session: ImapSession, refs: { seq: number; meta: MessageMeta }[], atts: FetchAtt[], opts: { stream?: boolean } = {}): Promise<void> {
  const sel = session.selected!;
  const needsContent = atts.some((a) => a.kind !== 'simple' || NEEDS_CONTENT.has(a.name));
  const wantsEnvelope = atts.some((a) => a.kind === 'simple' && a.name === 'ENVELOPE');
  const wantsStructure = atts.some((a) => a.kind === 'simple' && a.name === 'BODYSTRUCTURE');
  // Only ENVELOPE / BODYSTRUCTURE among the content items: the cache may spare reading the message.
  const cacheable = needsContent && atts.every((a) => a.kind === 'simple' && (!NEEDS_CONTENT.has(a.name) || a.name === 'ENVELOPE' || a.name === 'BODYSTRUCTURE'));
  const markSeen = !sel.readOnly && atts.some(setsSeen);
  const store = session.deps.mailbox;
  // Every content item is the whole message or a range of it (ENVELOPE/BODYSTRUCTURE only from the cache).
  const streamable =
    opts.stream !== false &&
    needsContent && typeof store.openMessage === 'function' && atts.some(wholeMessageAtt) && atts.every((a) => wholeMessageAtt(a) || (a.kind === 'simple' && (!NEEDS_CONTENT.has(a.name) || a.name === 'ENVELOPE' || a.name === 'BODYSTRUCTURE')));
  const cache = partsCache(store);
  for (const { seq, meta } of refs) {
    if (!needsContent) {
      // Only what the index holds (UID FETCH 1:* FLAGS, the commonest FETCH of all): one string per message, no
      // Buffers per item; nothing here can set \Seen (setsSeen items need content).
      const flags = session.flagsOf(meta);
      session.announceKeywords(meta.flags);
      let line = `* ${seq} FETCH (`;
      for (let i = 0; i < atts.length; i++) line += (i ? ' ' : '') + indexItem((atts[i] as { name: string }).name, meta, flags);
      session.write(line + ')\r\n');
      if (session.mustDrain) await session.drain();
      continue;
    }
    let raw: Buffer | undefined;
    let tree: MimeNode | undefined;
    let cached: Cached = {};
    const memoKey = needsContent ? MessageMemo.key(sel.owner, sel.folder, sel.uidValidity, meta.uid) : '';
    const memo = needsContent ? messageMemo.get(memoKey, meta) : undefined;
    const fromMemo = memo !== undefined && atts.every((a) => memoServes(a, memo));
    if (memo) cached = { envelope: memo.envelope, bodystructure: memo.bodystructure, body: memo.body };
    if (fromMemo) {
      // Everything asked is in the memo: no file, no index row (message-memo.ts).
      tree = headerOnly(memo.header ?? EMPTY);
    } else if (cache && ((wantsEnvelope && !cached.envelope) || (wantsStructure && !cached.bodystructure))) {
      try {
        const row = fromCache(await cache.cachedParts(sel.owner, sel.folder, meta.uid));
        cached = { envelope: cached.envelope ?? row.envelope, bodystructure: cached.bodystructure ?? row.bodystructure, body: cached.body };
      } catch {
        // as if nothing were cached
      }
    }
    const cacheHit = fromMemo || (cacheable && (!wantsEnvelope || cached.envelope) && (!wantsStructure || cached.bodystructure));
    const stream = streamable && meta.size >= STREAM_MIN && (!wantsEnvelope || cached.envelope) && (!wantsStructure || cached.bodystructure);
    if (needsContent && !cacheHit && !stream) {
      try {
        raw = await store.readMessage(sel.owner, sel.folder, meta.uid);
      } catch {
        // Expunged by another session since our view was made: RFC 2180 §4.1.2 lets us omit it.
        continue;
      }
      const fill = cache !== undefined && ((wantsEnvelope && !cached.envelope) || (wantsStructure && !cached.bodystructure));
      tree = contentTree(raw, atts, fill ? {} : cached);
      if (cache && fill) {
        const env = encode(envelope(tree));
        const structure = encode(bodystructure(tree, true));
        cached = { ...cached, envelope: env, bodystructure: structure };
        await cache
          .setCachedParts(sel.owner, sel.folder, meta.uid, { envelope: CACHE_VERSION + env.toString('latin1'), bodystructure: CACHE_VERSION + structure.toString('latin1') })
          .catch((err: unknown) => session.deps.log.debug({ err }, 'imap: could not cache envelope/bodystructure'));
      }
    }
    if (stream) {
      if (!(await streamFetch(session, seq, meta, atts, cached, markSeen))) continue;
      await session.drain();
      continue;
    }
    // RFC 3516 §4.3: a part we cannot decode fails the FETCH before \Seen is set.
    const binary = new Map<string, Buffer>();
    for (const a of atts) {
      if (a.kind !== 'binary' && a.kind !== 'binary-size') continue;
      const path = a.kind === 'binary' ? a.section.path : a.path;
      if (!binary.has(path.join('.'))) binary.set(path.join('.'), binaryData(raw!, tree!, path));
    }
    const seen = markSeen ? await setSeen(session, meta) : undefined;
    const flagsChanged = seen !== undefined;
    const now = seen ?? meta;
    // One buffer per response, built by a single concat: the items were concatenated three times over before.
    const parts: Buffer[] = [Buffer.from(`* ${seq} FETCH (`, 'latin1')];
    const item = (name: string, value: Buffer) => parts.push(Buffer.from(parts.length > 1 ? ` ${name} ` : `${name} `, 'latin1'), value);
    // The session adds \Recent (RFC 3501 §2.3.2), which the store does not keep.
    const shown = { ...now, flags: session.flagsOf(now) };
    session.announceKeywords(now.flags);
    const learnt: MemoEntry = {};
    for (const a of atts) {
      const [name, value] = render(a, shown, raw, tree, cached, binary);
      if (a.kind === 'simple' && a.name === 'ENVELOPE') learnt.envelope = value;
      else if (a.kind === 'simple' && a.name === 'BODYSTRUCTURE') learnt.bodystructure = value;
      else if (a.kind === 'simple' && a.name === 'BODY') learnt.body = value;
      item(name, value);
    }
    if (needsContent && !fromMemo) messageMemo.put(memoKey, meta, { ...learnt, ...(tree ? { header: tree.header } : {}) });
    for (const extra of unaskedItems(session, atts, shown, flagsChanged)) parts.push(parts.length > 1 ? SPACE : EMPTY, extra);
    parts.push(CLOSE);
    session.write(Buffer.concat(parts));
    if (session.mustDrain) await session.drain();
  }
}

const EMPTY = Buffer.alloc(0);
const SPACE = Buffer.from(' ');
const CLOSE = Buffer.from(')\r\n');

/** A MIME tree that has the header block only: for items answered from the memo (memoServes), which read nothing else. */
function headerOnly(header: Buffer): MimeNode {
  return { header, body: EMPTY, headers: [], type: 'text', subtype: 'plain', params: {}, children: [] };
}

/** The item can be answered from the memo's entry: no content, the header block, or a structure it holds. */
function memoServes(a: FetchAtt, e: MemoEntry): boolean {
  if (a.kind === 'section') return a.section.path.length === 0 && a.section.specifier.startsWith('HEADER') && e.header !== undefined;
  if (a.kind !== 'simple') return false;
  if (!NEEDS_CONTENT.has(a.name)) return true;
  if (a.name === 'ENVELOPE') return e.envelope !== undefined;
  if (a.name === 'BODYSTRUCTURE') return e.bodystructure !== undefined;
  if (a.name === 'BODY') return e.body !== undefined;
  if (a.name === 'RFC822.HEADER') return e.header !== undefined;
  return false;
}

/**
 * Items answered from the message's top-level split into header and body alone: the whole message, its header or
 * text (BODY[], BODY[HEADER], BODY[HEADER.FIELDS …], BODY[TEXT], RFC822*), and what needs no content. Parts, BODY,
 * BODYSTRUCTURE, ENVELOPE (unless cached), PREVIEW and BINARY need the MIME tree.
 */
function topLevelOnly(a: FetchAtt, cached: Cached): boolean {
  if (a.kind === 'section') return a.section.path.length === 0;
  if (a.kind !== 'simple') return false;
  if (a.name === 'ENVELOPE') return cached.envelope !== undefined;
  if (a.name === 'BODYSTRUCTURE') return cached.bodystructure !== undefined;
  if (a.name === 'BODY') return cached.body !== undefined;
  return a.name !== 'PREVIEW';
}

/**
 * The MIME tree FETCH renders `atts` from. When every item is top-level (topLevelOnly) it is a node with the message's
 * header and body only (split exactly as parseMime splits them), not the parsed structure: imaptest's FETCHes of
 * header fields and texts spent a fifth of FETCH's time parsing Content-Type parameters and multipart bodies that
 * nothing read (profiled, test/bench/imap-load.ts). Its other fields are empty and must not be read.
 */
export function contentTree(raw: Buffer, atts: FetchAtt[], cached: Cached): MimeNode {
  if (!atts.every((a) => topLevelOnly(a, cached))) return parseMime(raw);
  const { header, body } = splitHeader(raw);
  return { header, body, headers: [], type: 'text', subtype: 'plain', params: {}, children: [] };
}

/**
 * Sets \Seen on a message read without PEEK (RFC 3501 §6.4.5). Returns the message as it is now when its flags
 * changed (the session's own copy, ImapSession.own), undefined when they did not.
 */
async function setSeen(session: ImapSession, meta: MessageMeta): Promise<MessageMeta | undefined> {
  const sel = session.selected!;
  if (meta.flags.includes('\\Seen')) return undefined;
  const result = await session.deps.mailbox.storeFlags(sel.owner, sel.folder, [meta.uid], 'add', ['\\Seen']);
  const now = result.get(meta.uid);
  if (!now) return undefined;
  const m = session.setFlags(meta, now);
  const modseq = 'modseqs' in result ? result.modseqs.get(m.uid) : undefined;
  if (modseq !== undefined) m.modseq = modseq;
  noteModseq(sel, m.modseq);
  return m;
}

/** The new FLAGS when reading changed them, and (RFC 7162 §3.1.4) their MODSEQ once CONDSTORE is on, if not asked. */
function unaskedItems(session: ImapSession, atts: FetchAtt[], shown: MessageMeta, flagsChanged: boolean): Buffer[] {
  if (!flagsChanged) return [];
  const out: Buffer[] = [];
  if (!atts.some((a) => a.kind === 'simple' && a.name === 'FLAGS')) out.push(Buffer.concat([Buffer.from('FLAGS '), flagsValue(shown)]));
  if (condstoreEnabled(session) && !atts.some((a) => a.kind === 'simple' && a.name === 'MODSEQ')) out.push(Buffer.from(modseqItem(shown)));
  return out;
}

/** BODY[]<partial>, BINARY[]<partial>, BINARY.SIZE[] and RFC822: the message's bytes as stored, or a range of them. */
function wholeMessageAtt(a: FetchAtt): boolean {
  if (a.kind === 'section') return a.section.path.length === 0 && a.section.specifier === '';
  if (a.kind === 'binary') return a.section.path.length === 0;
  if (a.kind === 'binary-size') return a.path.length === 0;
  return a.kind === 'simple' && a.name === 'RFC822';
}

/** A byte range of the message file, written as it is read. */
interface FileRange {
  start: number;
  length: number;
}

/**
 * One FETCH response of a large message from its file (see the file comment); false when the message is gone
 * (expunged by another session: RFC 2180 §4.1.2 lets us omit it). A read that fails once the literal's length was
 * sent ends the connection: nothing else can follow a literal that is short.
 */
async function streamFetch(session: ImapSession, seq: number, meta: MessageMeta, atts: FetchAtt[], cached: Cached, markSeen: boolean): Promise<boolean> {
  const sel = session.selected!;
  let file: MessageFile;
  try {
    file = await session.deps.mailbox.openMessage!(sel.owner, sel.folder, meta.uid);
  } catch {
    return false;
  }
  try {
    const seen = markSeen ? await setSeen(session, meta) : undefined;
    const flagsChanged = seen !== undefined;
    const now = seen ?? meta;
    const shown = { ...now, size: file.size, flags: session.flagsOf(now) };
    session.announceKeywords(now.flags);
    const pieces: (Buffer | FileRange)[] = [Buffer.from(`* ${seq} FETCH (`)];
    const item = (name: string, value: (Buffer | FileRange)[]) => {
      if (pieces.length > 1) pieces.push(Buffer.from(' '));
      pieces.push(Buffer.from(name + ' '), ...value);
    };
    for (const a of atts) {
      if (!wholeMessageAtt(a)) {
        const [name, value] = render(a, shown, undefined, undefined, cached, new Map());
        item(name, [value]);
        continue;
      }
      if (a.kind === 'binary-size') {
        item(a.responseName, [Buffer.from(String(file.size))]);
        continue;
      }
      const partial = a.kind === 'section' || a.kind === 'binary' ? a.section.partial : undefined;
      const start = Math.min(partial?.start ?? 0, file.size);
      const length = partial?.length === undefined ? file.size - start : Math.min(file.size - start, partial.length);
      const name = a.kind === 'simple' ? a.name : a.kind === 'section' ? a.section.responseName : a.responseName;
      if (length < STREAM_MIN) {
        // A short range: read just it, and encode it as any small value (it may go quoted).
        const data = await readFully(file, start, length);
        item(name, [a.kind === 'binary' ? encodeBinary(data, encodeString) : encodeString(data)]);
        continue;
      }
      // RFC 3516 §4.3: BINARY content with NUL goes as a literal8; the scan reads the range once more, a chunk at a time.
      const literal8 = a.kind === 'binary' && (await containsNul(file, start, length));
      item(name, [Buffer.from(`${literal8 ? '~' : ''}{${length}}\r\n`), { start, length }]);
    }
    for (const extra of unaskedItems(session, atts, shown, flagsChanged)) item(...splitItem(extra));
    pieces.push(Buffer.from(')\r\n'));
    await writePieces(session, file, pieces);
    return true;
  } finally {
    await file.close().catch(() => undefined);
  }
}

/** `FLAGS (...)` / `MODSEQ (n)` as [name, value] for item(). */
function splitItem(b: Buffer): [string, (Buffer | FileRange)[]] {
  const sp = b.indexOf(0x20);
  return [b.subarray(0, sp).toString('latin1'), [b.subarray(sp + 1)]];
}

async function readFully(file: MessageFile, start: number, length: number): Promise<Buffer> {
  const data = await file.read(start, length);
  if (data.length !== length) throw new Error(`message file shorter than its size (${data.length} of ${length} bytes at ${start})`);
  return data;
}

async function containsNul(file: MessageFile, start: number, length: number): Promise<boolean> {
  for (let pos = start; pos < start + length; pos += STREAM_CHUNK) {
    if ((await readFully(file, pos, Math.min(STREAM_CHUNK, start + length - pos))).includes(0)) return true;
  }
  return false;
}

/**
 * Writes the response: runs of small pieces in one write, file ranges a chunk at a time with back-pressure (drain
 * waits until the socket, the deflater or TLS has taken the chunk: a chunk exceeds their buffers, so each write waits).
 */
async function writePieces(session: ImapSession, file: MessageFile, pieces: (Buffer | FileRange)[]): Promise<void> {
  let pending: Buffer[] = [];
  for (const p of pieces) {
    if (Buffer.isBuffer(p)) {
      pending.push(p);
      continue;
    }
    session.write(Buffer.concat(pending));
    pending = [];
    for (let pos = p.start; pos < p.start + p.length; pos += STREAM_CHUNK) {
      if (session.isClosed) return;
      let chunk: Buffer;
      try {
        chunk = await readFully(file, pos, Math.min(STREAM_CHUNK, p.start + p.length - pos));
      } catch (err) {
        session.abort();
        throw err;
      }
      session.write(chunk);
      await session.drain();
    }
  }
  session.write(Buffer.concat(pending));
}

function flagsValue(meta: MessageMeta): Buffer {
  return Buffer.from(`(${meta.flags.join(' ')})`);
}

/** An item that needs no content, as render() would give it. */
function indexItem(name: string, meta: MessageMeta, flags: string[]): string {
  switch (name) {
    case 'UID':
      return `UID ${meta.uid}`;
    case 'FLAGS':
      return `FLAGS (${flags.join(' ')})`;
    case 'INTERNALDATE':
      return `INTERNALDATE "${formatInternalDate(meta.internalDate)}"`;
    case 'SAVEDATE':
      return `SAVEDATE "${formatInternalDate(meta.saveDate ?? meta.internalDate)}"`;
    case 'RFC822.SIZE':
      return `RFC822.SIZE ${meta.size}`;
    case 'MODSEQ':
      return `MODSEQ (${meta.modseq ?? 0})`;
  }
  throw new Error(`FETCH item ${name} needs the message`);
}

function render(a: FetchAtt, meta: MessageMeta, raw: Buffer | undefined, tree: MimeNode | undefined, cached: Cached, binary: Map<string, Buffer>): [string, Buffer] {
  if (a.kind === 'section') return [a.section.responseName, encodeString(sectionData(raw!, tree!, a.section))];
  if (a.kind === 'binary') return [a.responseName, encodeBinary(partialOf(binary.get(a.section.path.join('.'))!, a.section.partial), encodeString)];
  if (a.kind === 'binary-size') return [a.responseName, Buffer.from(String(binary.get(a.path.join('.'))!.length))];
  switch (a.name) {
    case 'UID':
      return ['UID', Buffer.from(String(meta.uid))];
    case 'FLAGS':
      return ['FLAGS', flagsValue(meta)];
    case 'INTERNALDATE':
      return ['INTERNALDATE', Buffer.from(`"${formatInternalDate(meta.internalDate)}"`)];
    // RFC 8514 §4.2: every folder of ours keeps save dates; one indexed before they were kept shows its internal date.
    case 'SAVEDATE':
      return ['SAVEDATE', Buffer.from(`"${formatInternalDate(meta.saveDate ?? meta.internalDate)}"`)];
    case 'RFC822.SIZE':
      return ['RFC822.SIZE', Buffer.from(String(raw ? raw.length : meta.size))];
    case 'ENVELOPE':
      return ['ENVELOPE', cached.envelope ?? encode(envelope(tree!))];
    case 'BODYSTRUCTURE':
      return ['BODYSTRUCTURE', cached.bodystructure ?? encode(bodystructure(tree!, true))];
    case 'BODY':
      return ['BODY', cached.body ?? encode(bodystructure(tree!, false))];
    case 'RFC822':
      return ['RFC822', encodeString(raw!)];
    case 'RFC822.HEADER':
      return ['RFC822.HEADER', encodeString(tree!.header)];
    case 'RFC822.TEXT':
      return ['RFC822.TEXT', encodeString(tree!.body)];
    case 'PREVIEW':
      return ['PREVIEW', encodeString(previewText(tree!))];
    case 'MODSEQ':
      return ['MODSEQ', Buffer.from(`(${meta.modseq ?? 0})`)];
  }
}

interface FetchModifiers {
  changedSince: number;
  vanished: boolean;
}

function isFetchModifiers(t: Token): boolean {
  if (t.type !== 'list' || !t.items.length) return false;
  const first = t.items[0];
  return first.type === 'atom' && ['CHANGEDSINCE', 'VANISHED'].includes(first.value.toUpperCase());
}

/** `(CHANGEDSINCE n [VANISHED])` (RFC 7162 §3.1.4.1, §3.2.6). */
function parseFetchModifiers(t: Token, uid: boolean, qresync: boolean): FetchModifiers {
  if (t.type !== 'list') throw bad('Invalid FETCH modifiers');
  let changedSince: number | undefined;
  let vanished = false;
  for (let i = 0; i < t.items.length; i++) {
    const it = t.items[i];
    const name = it.type === 'atom' ? it.value.toUpperCase() : '';
    if (name === 'CHANGEDSINCE' && changedSince === undefined) changedSince = modseqValue(t.items[++i], true);
    else if (name === 'VANISHED' && !vanished) vanished = true;
    else throw bad('Invalid FETCH modifier');
  }
  // §3.2.6: VANISHED only in UID FETCH, with CHANGEDSINCE, after ENABLE QRESYNC.
  if (vanished && (!uid || !qresync || changedSince === undefined)) throw bad('VANISHED needs UID FETCH, CHANGEDSINCE and QRESYNC enabled');
  if (changedSince === undefined) throw bad('CHANGEDSINCE missing');
  return { changedSince, vanished };
}
