/**
 * SEARCH and UID SEARCH (RFC 3501 §6.4.4), CHARSET UTF-8 / US-ASCII. Criteria are parsed into a tree first, so a
 * syntax error is BAD before anything is read, and message contents are read only when a text criterion needs them.
 * Text matching is a substring test under i;unicode-casemap (RFC 5051, I18NLEVEL=1) on decoded headers and text parts.
 * RFC 7162 §3.1.5: the MODSEQ criterion, and the highest MODSEQ of the matches in the answer (§3.1.6, ESEARCH §3.1.10).
 */
import type { MessageMeta } from '../../store/mailbox.js';
import type { MailboxOwner } from '../../store/types.js';
import { SEARCH_HEADER_FIELDS, searchHeadersOf, type SearchHeaders } from '../../store/header-fields.js';
import { bad, no, normalizeFlag, type ImapCommand } from '../command.js';
import type { ImapSession } from '../connection.js';
import { decodedHeader, headerValue, parseMime, searchableText, type MimeNode } from '../mime.js';
import { inSequenceSet, parseSequenceSet, tokenText, type SeqRange, type Token } from '../parser.js';
import { esearchResponse, parseReturn, wantsData, type ReturnOptions } from '../search-return.js';
import { parseImapDate } from '../response.js';
import { addressSearchText, casemapContains, sentDay } from '../search-match.js';
import { LRUCache } from 'lru-cache';
import { enableCondstore, modseqValue, requireModseq } from '../condstore.js';

/**
 * Parsed header sections of messages searched recently, across sessions. A message's content never changes for a
 * given UIDVALIDITY and UID (RFC 3501 §2.3.1.1), so an entry never goes stale; the cache is bounded by bytes.
 * Header-only SEARCH (SUBJECT, FROM, HEADER, SENT*) then reads each file once instead of once per SEARCH.
 */
const headerCache = new LRUCache<string, { tree: MimeNode; bytes: number }>({
  maxSize: 64 * 1024 * 1024,
  sizeCalculation: (v) => v.bytes + 256,
});

export type Criterion =
  | { op: 'all' }
  | { op: 'flag'; flag: string; set: boolean }
  | { op: 'none' }
  | { op: 'recent' }
  | { op: 'saved' }
  | { op: 'age'; cmp: 'older' | 'younger'; seconds: number }
  | { op: 'header'; field: string; value: string }
  | { op: 'address'; field: string; value: string }
  | { op: 'body'; value: string; withHeaders: boolean }
  | { op: 'date'; cmp: 'before' | 'on' | 'since'; date: Date; sent: boolean; saved?: true }
  | { op: 'size'; cmp: 'larger' | 'smaller'; n: number }
  | { op: 'modseq'; min: number }
  | { op: 'set'; set: SeqRange[]; uid: boolean }
  | { op: 'not'; c: Criterion }
  | { op: 'or'; a: Criterion; b: Criterion }
  | { op: 'and'; list: Criterion[] };

const FLAG_KEYS: Record<string, [string, boolean]> = {
  ANSWERED: ['\\Answered', true],
  DELETED: ['\\Deleted', true],
  DRAFT: ['\\Draft', true],
  FLAGGED: ['\\Flagged', true],
  SEEN: ['\\Seen', true],
  UNANSWERED: ['\\Answered', false],
  UNDELETED: ['\\Deleted', false],
  UNDRAFT: ['\\Draft', false],
  UNFLAGGED: ['\\Flagged', false],
  UNSEEN: ['\\Seen', false],
};

/** `rev2`: RFC 9051 §6.4.4 has no RECENT, NEW or OLD (there is no \Recent in IMAP4rev2): BAD like any unknown key. */
export function parseCriteria(tokens: Token[], opts: { rev2?: boolean } = {}): Criterion {
  let i = 0;
  const text = (what: string): string => {
    const t = tokens[i++];
    const s = tokenText(t);
    if (s === undefined) throw bad(`Expected ${what}`);
    return s;
  };
  const one = (): Criterion => {
    const t = tokens[i++];
    if (!t) throw bad('Missing search criterion');
    if (t.type === 'list') {
      if (!t.items.length) throw bad('Empty search list');
      return { op: 'and', list: parseList(t.items) };
    }
    if (t.type !== 'atom') throw bad('Invalid search criterion');
    const key = t.value.toUpperCase();
    if (/^[\d*:,]+$/.test(key)) return { op: 'set', set: seqSet(key), uid: false };
    // RFC 5182 §2.1: "$" is the result saved by SEARCH RETURN (SAVE).
    if (key === '$') return { op: 'saved' };
    if (FLAG_KEYS[key]) return { op: 'flag', flag: FLAG_KEYS[key][0], set: FLAG_KEYS[key][1] };
    if (opts.rev2 && (key === 'RECENT' || key === 'NEW' || key === 'OLD')) throw bad(`Unknown search key ${key} in IMAP4rev2`);
    switch (key) {
      case 'ALL':
        return { op: 'all' };
      // RFC 3501 §6.4.4: NEW is "RECENT UNSEEN", OLD is "NOT RECENT".
      case 'RECENT':
        return { op: 'recent' };
      case 'OLD':
        return { op: 'not', c: { op: 'recent' } };
      case 'NEW':
        return { op: 'and', list: [{ op: 'recent' }, { op: 'flag', flag: '\\Seen', set: false }] };
      case 'KEYWORD':
        return { op: 'flag', flag: normalizeFlag(text('keyword')), set: true };
      case 'UNKEYWORD':
        return { op: 'flag', flag: normalizeFlag(text('keyword')), set: false };
      case 'FROM':
      case 'TO':
      case 'CC':
      case 'BCC':
        return { op: 'address', field: key.toLowerCase(), value: text('string') };
      case 'SUBJECT':
        return { op: 'header', field: key.toLowerCase(), value: text('string') };
      case 'HEADER': {
        const field = text('header name').toLowerCase();
        return { op: 'header', field, value: text('string') };
      }
      case 'BODY':
        return { op: 'body', value: text('string'), withHeaders: false };
      case 'TEXT':
        return { op: 'body', value: text('string'), withHeaders: true };
      case 'BEFORE':
      case 'ON':
      case 'SINCE':
      case 'SENTBEFORE':
      case 'SENTON':
      case 'SENTSINCE': {
        const date = parseImapDate(text('date'), false);
        if (!date) throw bad('Invalid date');
        const sent = key.startsWith('SENT');
        return { op: 'date', cmp: key.replace('SENT', '').toLowerCase() as 'before' | 'on' | 'since', date, sent };
      }
      // RFC 8514 §4.3: the save date, compared by day like the internal date.
      case 'SAVEDBEFORE':
      case 'SAVEDON':
      case 'SAVEDSINCE': {
        const date = parseImapDate(text('date'), false);
        if (!date) throw bad('Invalid date');
        return { op: 'date', cmp: key.replace('SAVED', '').toLowerCase() as 'before' | 'on' | 'since', date, sent: false, saved: true };
      }
      // RFC 8514 §4.3: every message of a mailbox that keeps save dates, and all of ours do.
      case 'SAVEDATESUPPORTED':
        return { op: 'all' };
      case 'LARGER':
      case 'SMALLER': {
        const n = Number(text('number'));
        if (!Number.isInteger(n) || n < 0) throw bad('Invalid number');
        return { op: 'size', cmp: key.toLowerCase() as 'larger' | 'smaller', n };
      }
      case 'UID': {
        const set = text('UID set');
        return set === '$' ? { op: 'saved' } : { op: 'set', set: seqSet(set), uid: true };
      }
      // RFC 5032 WITHIN: the internal date's age in seconds, relative to now.
      case 'OLDER':
      case 'YOUNGER': {
        const n = Number(text('interval'));
        if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) throw bad('Invalid interval');
        return { op: 'age', cmp: key === 'OLDER' ? 'older' : 'younger', seconds: n };
      }
      // RFC 7162 §3.1.5: MODSEQ [entry-name entry-type] value. We keep one MODSEQ per message, not one per flag,
      // so the entry (a flag's name, priv/shared/all) narrows nothing: the message's MODSEQ is the one compared.
      case 'MODSEQ': {
        const next = tokens[i];
        if (next?.type === 'string' || (next?.type === 'atom' && !/^\d+$/.test(next.value))) {
          i++;
          const type = tokens[i++];
          if (type?.type !== 'atom' || !['PRIV', 'SHARED', 'ALL'].includes(type.value.toUpperCase())) throw bad('Invalid MODSEQ entry type');
        }
        return { op: 'modseq', min: modseqValue(tokens[i++], true) };
      }
      case 'NOT':
        return { op: 'not', c: one() };
      case 'OR': {
        const a = one();
        return { op: 'or', a, b: one() };
      }
      default:
        throw bad(`Unknown search criterion ${key}`);
    }
  };
  const parseList = (items: Token[]): Criterion[] => {
    const saved = { tokens, i };
    tokens = items;
    i = 0;
    const out: Criterion[] = [];
    while (i < tokens.length) out.push(one());
    tokens = saved.tokens;
    i = saved.i;
    return out;
  };
  const list: Criterion[] = [];
  while (i < tokens.length) list.push(one());
  if (!list.length) throw bad('Missing search criteria');
  return list.length === 1 ? list[0] : { op: 'and', list };
}

function seqSet(text: string): SeqRange[] {
  try {
    return parseSequenceSet(text);
  } catch {
    throw bad('Invalid sequence set');
  }
}

/** Whether a criterion compares MODSEQs (RFC 7162 §3.1.6: then the answer carries the highest one). */
export function usesModseq(c: Criterion): boolean {
  switch (c.op) {
    case 'modseq':
      return true;
    case 'not':
      return usesModseq(c.c);
    case 'or':
      return usesModseq(c.a) || usesModseq(c.b);
    case 'and':
      return c.list.some(usesModseq);
    default:
      return false;
  }
}

/** The highest MODSEQ of some messages (RFC 7162 §3.1.6). */
export function highestModseqOf(found: { meta: MessageMeta }[]): number {
  return found.reduce((n, f) => Math.max(n, f.meta.modseq ?? 0), 0);
}

/**
 * Parses criteria and, for MODSEQ ones, makes sure the folder has MODSEQs and enables CONDSTORE (RFC 7162 §3.1:
 * SEARCH MODSEQ is an enabling command).
 */
export function parseCriteriaFor(session: ImapSession, tokens: Token[]): Criterion {
  const c = parseCriteria(tokens, { rev2: session.rev2 });
  if (usesModseq(c)) {
    requireModseq(session);
    enableCondstore(session);
  }
  return c;
}

/** Whether a criterion looks past the header section (BODY, TEXT): otherwise only the header is parsed. */
function needsBody(c: Criterion): boolean {
  switch (c.op) {
    case 'body':
      return true;
    case 'not':
      return needsBody(c.c);
    case 'or':
      return needsBody(c.a) || needsBody(c.b);
    case 'and':
      return c.list.some(needsBody);
    default:
      return false;
  }
}

/** The header section and the blank line that ends it (RFC 5322 §2.1), or the whole message when it has no body. */
function headerSection(message: Buffer): Buffer {
  const end = message.indexOf('\r\n\r\n');
  return end < 0 ? message : message.subarray(0, end + 4);
}

function needsContent(c: Criterion): boolean {
  switch (c.op) {
    case 'header':
    case 'address':
    case 'body':
      return true;
    case 'date':
      return c.sent;
    case 'not':
      return needsContent(c.c);
    case 'or':
      return needsContent(c.a) || needsContent(c.b);
    case 'and':
      return c.list.some(needsContent);
    default:
      return false;
  }
}

interface Candidate {
  seq: number;
  meta: MessageMeta;
  count: number;
  maxUid: number;
  /** \Recent in this session (RFC 3501 §2.3.2). */
  recent?: boolean;
  /** UIDs of the saved search result (RFC 5182). */
  saved?: Set<number>;
  /** "Now" for OLDER/YOUNGER, in ms. */
  now?: number;
  tree?: MimeNode;
}

function dayOf(d: Date): number {
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
}

/** Header values are kept as latin1 strings of the raw bytes; 8-bit headers are UTF-8 in practice (RFC 6532). */
function utf8(latin1: string): string {
  return Buffer.from(latin1, 'latin1').toString('utf8');
}

/**
 * addressSearchText of raw header values, remembered: a folder's senders and recipients repeat, and parsing the
 * address list was most of the time of SEARCH FROM over a big folder answered from the index. Bounded by entries.
 */
const addressTexts = new Map<string, string>();
function addressText(raw: string): string {
  let t = addressTexts.get(raw);
  if (t === undefined) {
    t = addressSearchText(utf8(raw));
    if (addressTexts.size >= 20_000) addressTexts.clear();
    addressTexts.set(raw, t);
  }
  return t;
}

/** RFC 5255 §4.3 (I18NLEVEL=1): SEARCH compares with i;unicode-casemap (RFC 5051), substring-wise. */
function contains(haystack: string, needle: string): boolean {
  return casemapContains(haystack, needle);
}

export function matches(c: Criterion, m: Candidate): boolean {
  switch (c.op) {
    case 'all':
      return true;
    case 'none':
      return false;
    case 'recent':
      return m.recent === true;
    case 'saved':
      return m.saved?.has(m.meta.uid) === true;
    case 'age': {
      // RFC 5032 §3: OLDER is "at least n seconds old", YOUNGER the rest, so NOT OLDER n is YOUNGER n.
      const age = ((m.now ?? Date.now()) - m.meta.internalDate.getTime()) / 1000;
      return c.cmp === 'older' ? age >= c.seconds : age < c.seconds;
    }
    case 'flag':
      return m.meta.flags.includes(c.flag) === c.set;
    case 'size':
      return c.cmp === 'larger' ? m.meta.size > c.n : m.meta.size < c.n;
    case 'modseq':
      return (m.meta.modseq ?? 0) >= c.min;
    case 'set':
      return c.uid ? inSequenceSet(c.set, m.meta.uid, m.maxUid) : inSequenceSet(c.set, m.seq, m.count);
    case 'not':
      return !matches(c.c, m);
    case 'or':
      return matches(c.a, m) || matches(c.b, m);
    case 'and':
      return c.list.every((x) => matches(x, m));
    case 'header': {
      const values = decodedHeader(m.tree!, c.field);
      // RFC 3501: HEADER with an empty string matches every message that has the field.
      return values.some((v) => contains(v, c.value));
    }
    case 'address':
      // RFC 3501 §6.4.4: the address fields are matched as addresses, not as header text (search-match.ts).
      return m.tree!.headers.some((h) => h.key === c.field && contains(addressText(h.value), c.value));
    case 'body': {
      const tree = m.tree!;
      if (contains(searchableText(tree), c.value)) return true;
      return c.withHeaders && tree.headers.some((h) => decodedHeader(tree, h.key).some((v) => contains(v, c.value)));
    }
    case 'date': {
      let t: number;
      if (c.sent) {
        const hdr = headerValue(m.tree!, 'date');
        const day = hdr === undefined ? undefined : sentDay(hdr);
        if (day === undefined) return false;
        t = day;
      } else t = dayOf(c.saved ? (m.meta.saveDate ?? m.meta.internalDate) : m.meta.internalDate);
      const d = c.date.getTime();
      return c.cmp === 'before' ? t < d : c.cmp === 'on' ? t === d : t >= d;
    }
  }
}

export async function runSearch(session: ImapSession, criteria: Criterion): Promise<{ seq: number; meta: MessageMeta }[]> {
  const msgs = session.selected!.messages;
  const found = await matchAt(session, criteria, msgs.map((_, i) => i));
  return found.map((i) => ({ seq: i + 1, meta: msgs[i] }));
}

/**
 * The view indexes (sequence number - 1) among `indexes` whose messages match, ascending. SEARCH runs it on the
 * whole view; an updating search (RFC 5267 §4.3) on the messages that arrived or changed flags since.
 */
export async function matchAt(session: ImapSession, criteria: Criterion, indexes: number[]): Promise<number[]> {
  const sel = session.selected!;
  const msgs = sel.messages;
  const maxUid = msgs.length ? msgs[msgs.length - 1].uid : 0;
  const content = needsContent(criteria);
  // SUBJECT/FROM/HEADER/SENT* need the header only: parsing whole messages (attachments included) made a header
  // SEARCH cost as much as a full-text one (test/bench/imap.bench.ts).
  const body = content && needsBody(criteria);
  // index branch: header fields the store caches are compared without reading the files.
  const cache = !content || body ? undefined : headerStore(session, criteria);
  let cached: ReadonlyMap<number, SearchHeaders> | undefined;
  const fill: [number, SearchHeaders][] = [];
  if (cache) {
    try {
      // The whole folder in one query, or the few messages an updating search (RFC 5267) looks at again.
      cached = await cache.searchHeaders(sel.owner, sel.folder, indexes.length > 64 ? undefined : indexes.map((i) => msgs[i].uid));
    } catch {
      cached = new Map();
    }
  }
  const out: number[] = [];
  const now = Date.now();
  for (const i of indexes) {
    const meta = msgs[i];
    const cand: Candidate = { seq: i + 1, meta, count: msgs.length, maxUid, recent: sel.recent.has(meta.uid), saved: sel.saved, now };
    const hit = cached?.get(meta.uid);
    if (hit) {
      cand.tree = headerNode(hit);
      if (matches(criteria, cand)) out.push(i);
      continue;
    }
    if (content) {
      try {
        if (body) {
          cand.tree = parseMime(await session.deps.mailbox.readMessage(sel.owner, sel.folder, meta.uid));
        } else {
          const who = sel.owner.kind === 'user' ? `u:${sel.owner.login}` : `s:${sel.owner.group}`;
          const key = `${who.toLowerCase()}\0${sel.folder}\0${sel.uidValidity}\0${meta.uid}`;
          let hit = headerCache.get(key);
          if (!hit) {
            // A copy: a subarray would keep the whole message (attachments included) alive in the cache.
            const header = Buffer.from(headerSection(await session.deps.mailbox.readMessage(sel.owner, sel.folder, meta.uid)));
            hit = { tree: parseMime(header), bytes: header.length };
            headerCache.set(key, hit);
          }
          cand.tree = hit.tree;
          if (cache) fill.push([meta.uid, searchHeadersOf(hit.tree.headers)]);
        }
      } catch {
        continue;
      }
      // Reading may have waited: the view is the one the caller's indexes refer to only if it is still selected.
      if (session.selected !== sel || msgs[i] !== meta) continue;
    }
    if (matches(criteria, cand)) out.push(i);
  }
  // The messages read this time (delivered by SMTP, or indexed before the cache) are answered from the index next time.
  if (cache && fill.length) await cache.setSearchHeaders(sel.owner, sel.folder, fill).catch(() => undefined);
  return out;
}

// ---- index branch: SEARCH from the folder index's cached header fields (begin) ----

/** A store that caches the SEARCH header fields of its messages (MaildirMailbox); the in-memory one does not. */
interface HeaderStore {
  searchHeaders(owner: MailboxOwner, folder: string, uids?: number[]): Promise<ReadonlyMap<number, SearchHeaders>>;
  setSearchHeaders(owner: MailboxOwner, folder: string, entries: [number, SearchHeaders][]): Promise<void>;
}

/** The header fields a criterion compares; undefined when it compares more than header fields. */
function headerFields(c: Criterion, into: Set<string>): Set<string> | undefined {
  switch (c.op) {
    case 'header':
    case 'address':
      into.add(c.field);
      return into;
    case 'date':
      if (c.sent) into.add('date');
      return into;
    case 'body':
      return undefined;
    case 'not':
      return headerFields(c.c, into);
    case 'or':
      return headerFields(c.a, into) && headerFields(c.b, into);
    case 'and':
      for (const x of c.list) if (!headerFields(x, into)) return undefined;
      return into;
    default:
      return into;
  }
}

/** The store's header cache when every field the criteria compare is among the cached ones (SEARCH_HEADER_FIELDS). */
function headerStore(session: ImapSession, criteria: Criterion): HeaderStore | undefined {
  const store = session.deps.mailbox as unknown as Partial<HeaderStore>;
  if (typeof store.searchHeaders !== 'function' || typeof store.setSearchHeaders !== 'function') return undefined;
  const fields = headerFields(criteria, new Set());
  if (!fields || ![...fields].every((f) => SEARCH_HEADER_FIELDS.has(f))) return undefined;
  return store as HeaderStore;
}

const EMPTY = Buffer.alloc(0);

/** A MIME node holding just the cached header fields: all that matches() reads for header criteria. */
function headerNode(h: SearchHeaders): MimeNode {
  return { header: EMPTY, body: EMPTY, headers: h.map(([key, value]) => ({ key, value })), type: 'text', subtype: 'plain', params: {}, children: [] };
}

// ---- index branch (end) ----

export const search: ImapCommand = {
  names: ['SEARCH'],
  states: ['selected'],
  uid: true,
  async handle(session, cmd) {
    const sel = session.selected!;
    let args = cmd.args;
    let ret: ReturnOptions | undefined;
    try {
      if (args[0]?.type === 'atom' && args[0].value.toUpperCase() === 'RETURN') {
        ret = parseReturn(args[1], true);
        args = args.slice(2);
      }
      if (args[0]?.type === 'atom' && args[0].value.toUpperCase() === 'CHARSET') {
        // RFC 6855 §3: after ENABLE UTF8=ACCEPT every string is UTF-8, and a CHARSET would contradict that.
        if (session.enabled.has('UTF8=ACCEPT')) throw bad('No CHARSET after ENABLE UTF8=ACCEPT');
        const charset = (tokenText(args[1]) ?? '').toUpperCase();
        if (charset !== 'UTF-8' && charset !== 'US-ASCII') throw no('Unsupported charset', 'BADCHARSET (UTF-8 US-ASCII)');
        args = args.slice(2);
      }
      const criteria = parseCriteriaFor(session, args);
      const withModseq = usesModseq(criteria);
      // RFC 9051 §6.4.4 / §7.3.4: IMAP4rev2 answers every SEARCH with ESEARCH; no RETURN is RETURN (ALL).
      if (!ret && session.rev2) ret = { min: false, max: false, all: true, count: false, save: false, update: false };
      const found = await runSearch(session, criteria);
      const nums = found.map((f) => (cmd.uid ? f.meta.uid : f.seq));
      if (!ret) {
        // RFC 7162 §3.1.6: "(MODSEQ n)" only when something matched.
        const tail = withModseq && found.length ? ` (MODSEQ ${highestModseqOf(found)})` : '';
        session.untagged(`SEARCH${nums.length ? ' ' + nums.join(' ') : ''}${tail}`);
        return;
      }
      if (ret.save) {
        // RFC 5182 §2.4: with only MIN and/or MAX beside SAVE, only those messages are saved.
        const onlyEnds = !ret.all && !ret.count && !ret.partial && (ret.min || ret.max);
        const kept = onlyEnds ? [...new Set([ret.min ? found[0] : undefined, ret.max ? found[found.length - 1] : undefined])].filter((f) => f !== undefined) : found;
        sel.saved = new Set(kept.map((f) => f.meta.uid));
      }
      // RFC 5182 §2.4: SAVE alone returns no ESEARCH. UPDATE alone returns one without data (RFC 5267 §4.3: the
      // client asked to hear of changes only), as Dovecot answers.
      if (ret.update || wantsData(ret)) {
        let out = esearchResponse(cmd.tag, cmd.uid, nums, ret, false);
        if (withModseq && found.length) {
          // RFC 7162 §3.1.10: with only MIN and/or MAX, the highest MODSEQ of the messages returned; otherwise of all
          // that matched.
          const onlyEnds = !ret.all && !ret.count && !ret.partial;
          const of = onlyEnds ? [ret.min ? found[0] : undefined, ret.max ? found[found.length - 1] : undefined].filter((f) => f !== undefined) : found;
          if (of.length) out += ` MODSEQ ${highestModseqOf(of)}`;
        }
        session.untagged(out);
      }
      if (ret.update) session.addSearchContext({ tag: cmd.tag, uid: cmd.uid, criteria, result: found.map((f) => f.meta.uid) });
    } catch (err) {
      // RFC 5182 §2.1: a SEARCH ... SAVE that fails leaves the saved result empty.
      if (ret?.save || cmd.args.some((a) => a.type === 'list' && a.items.some((i) => i.type === 'atom' && i.value.toUpperCase() === 'SAVE'))) sel.saved = new Set();
      throw err;
    }
  },
};
