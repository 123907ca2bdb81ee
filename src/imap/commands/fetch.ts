/**
 * FETCH and UID FETCH (RFC 3501 §6.4.5): FLAGS, INTERNALDATE, RFC822.SIZE, UID, ENVELOPE, BODYSTRUCTURE, BODY,
 * BODY[section]<partial>, BODY.PEEK, RFC822, RFC822.HEADER, RFC822.TEXT, and BINARY[part]<partial>, BINARY.PEEK,
 * BINARY.SIZE (RFC 3516, decoding in binary.ts), SAVEDATE (RFC 8514). Reading a body without PEEK sets \Seen
 * (unless EXAMINEd), and the new FLAGS are part of the same response.
 *
 * RFC 7162: the MODSEQ item (§3.1.4.2), the CHANGEDSINCE modifier (§3.1.4.1) and, for UID FETCH with QRESYNC
 * enabled, VANISHED (§3.2.6).
 */
import type { MessageMeta } from '../../store/mailbox.js';
import type { MailboxOwner } from '../../store/types.js';
import { bad, expectArgs, resolveSet, type ImapCommand } from '../command.js';
import type { ImapSession } from '../connection.js';
import { binaryData, encodeBinary, partialOf } from '../binary.js';
import { bodystructure, envelope, filterHeader, findPart, parseMime, type MimeNode } from '../mime.js';
import { parseFetchAtts, parseSequenceSet, type BodySection, type FetchAtt, type Token } from '../parser.js';
import { encode, encodeString, formatInternalDate } from '../response.js';
import { previewText } from '../preview.js';
import { condstoreEnabled, enableCondstore, modseqItem, modseqValue, noteModseq, qresyncEnabled, requireModseq, sendVanishedEarlier, vanishedEarlier } from '../condstore.js';

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

type Cached = { envelope?: Buffer; bodystructure?: Buffer };

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

/** `* n FETCH (...)` for each message of the view in `refs`; FETCH, and NOTIFY's MessageNew (RFC 5465 §5.2). */
export async function sendFetch(session: ImapSession, refs: { seq: number; meta: MessageMeta }[], atts: FetchAtt[]): Promise<void> {
  const sel = session.selected!;
  const needsContent = atts.some((a) => a.kind !== 'simple' || NEEDS_CONTENT.has(a.name));
  const wantsEnvelope = atts.some((a) => a.kind === 'simple' && a.name === 'ENVELOPE');
  const wantsStructure = atts.some((a) => a.kind === 'simple' && a.name === 'BODYSTRUCTURE');
  // Only ENVELOPE / BODYSTRUCTURE among the content items: the cache may spare reading the message.
  const cacheable = needsContent && atts.every((a) => a.kind === 'simple' && (!NEEDS_CONTENT.has(a.name) || a.name === 'ENVELOPE' || a.name === 'BODYSTRUCTURE'));
  const markSeen = !sel.readOnly && atts.some(setsSeen);
  const store = session.deps.mailbox;
  const cache = partsCache(store);
  for (const { seq, meta } of refs) {
    let raw: Buffer | undefined;
    let tree: MimeNode | undefined;
    let cached: Cached = {};
    if (cache && (wantsEnvelope || wantsStructure)) {
      try {
        cached = fromCache(await cache.cachedParts(sel.owner, sel.folder, meta.uid));
      } catch {
        cached = {};
      }
    }
    const cacheHit = cacheable && (!wantsEnvelope || cached.envelope) && (!wantsStructure || cached.bodystructure);
    if (needsContent && !cacheHit) {
      try {
        raw = await store.readMessage(sel.owner, sel.folder, meta.uid);
      } catch {
        // Expunged by another session since our view was made: RFC 2180 §4.1.2 lets us omit it.
        continue;
      }
      tree = parseMime(raw);
      if (cache && ((wantsEnvelope && !cached.envelope) || (wantsStructure && !cached.bodystructure))) {
        const env = encode(envelope(tree));
        const structure = encode(bodystructure(tree, true));
        cached = { envelope: env, bodystructure: structure };
        await cache
          .setCachedParts(sel.owner, sel.folder, meta.uid, { envelope: CACHE_VERSION + env.toString('latin1'), bodystructure: CACHE_VERSION + structure.toString('latin1') })
          .catch((err: unknown) => session.deps.log.debug({ err }, 'imap: could not cache envelope/bodystructure'));
      }
    }
    // RFC 3516 §4.3: a part we cannot decode fails the FETCH before \Seen is set.
    const binary = new Map<string, Buffer>();
    for (const a of atts) {
      if (a.kind !== 'binary' && a.kind !== 'binary-size') continue;
      const path = a.kind === 'binary' ? a.section.path : a.path;
      if (!binary.has(path.join('.'))) binary.set(path.join('.'), binaryData(raw!, tree!, path));
    }
    let flagsChanged = false;
    if (markSeen && !meta.flags.includes('\\Seen')) {
      const result = await store.storeFlags(sel.owner, sel.folder, [meta.uid], 'add', ['\\Seen']);
      const now = result.get(meta.uid);
      if (now) {
        session.setFlags(meta, now);
        const modseq = 'modseqs' in result ? result.modseqs.get(meta.uid) : undefined;
        if (modseq !== undefined) meta.modseq = modseq;
        noteModseq(sel, meta.modseq);
        flagsChanged = true;
      }
    }
    const parts: Buffer[] = [];
    const item = (name: string, value: Buffer) => parts.push(Buffer.concat([Buffer.from(name + ' '), value]));
    // The session adds \Recent (RFC 3501 §2.3.2), which the store does not keep.
    const shown = { ...meta, flags: session.flagsOf(meta) };
    session.announceKeywords(meta.flags);
    for (const a of atts) item(...render(a, shown, raw, tree, cached, binary));
    if (flagsChanged && !atts.some((a) => a.kind === 'simple' && a.name === 'FLAGS')) item('FLAGS', flagsValue(shown));
    // RFC 7162 §3.1.4: a flag change the client did not ask about carries its MODSEQ once CONDSTORE is on.
    if (flagsChanged && condstoreEnabled(session) && !atts.some((a) => a.kind === 'simple' && a.name === 'MODSEQ')) parts.push(Buffer.from(modseqItem(meta)));
    const body = Buffer.concat(parts.flatMap((p, i) => (i ? [Buffer.from(' '), p] : [p])));
    session.write(Buffer.concat([Buffer.from(`* ${seq} FETCH (`), body, Buffer.from(')\r\n')]));
    await session.drain();
  }
}

function flagsValue(meta: MessageMeta): Buffer {
  return Buffer.from(`(${meta.flags.join(' ')})`);
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
      return ['BODY', encode(bodystructure(tree!, false))];
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
