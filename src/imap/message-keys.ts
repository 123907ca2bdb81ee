/**
 * What SORT (RFC 5256, RFC 5957) and THREAD (RFC 5256) compare: base subjects, first addresses, sent dates and
 * message IDs, read from the header section of each message. Strings compare with i;unicode-casemap (RFC 5051),
 * the collation RFC 5255 §4.1 makes the default of SORT and THREAD on a server that offers I18NLEVEL=1 (as ours and
 * Dovecot do). On US-ASCII it is the i;ascii-casemap of RFC 5256 §2.2: a-z fold to A-Z.
 */
import libmime from 'libmime';
import { LRUCache } from 'lru-cache';
import type { MessageMeta } from '../store/mailbox.js';
import type { ImapSession } from './connection.js';
import { headerValue, parseAddressList, parseMime, type Address, type MimeNode } from './mime.js';

export interface MessageKeys {
  /** RFC 5256 §2.1 base subject, casemapped. */
  subject: Buffer;
  /** The base subject extraction removed a "Re:", "Fwd:", "(fwd)" or "[fwd: ...]" (RFC 5256 §2.1, §3 REFERENCES 5). */
  replyOrForward: boolean;
  /** addr-mailbox of the first From / To / Cc address (RFC 5256 §3 SORT), casemapped. */
  from: Buffer;
  to: Buffer;
  cc: Buffer;
  /** RFC 5957 §3: display-name of the first address, or its addr-spec; casemapped. */
  displayFrom: Buffer;
  displayTo: Buffer;
  /** Sent date (Date:) in ms; undefined when absent or unparsable (callers fall back to the internal date). */
  sentDate?: number;
  /** The Message-ID, or undefined when the message has none. */
  messageId?: string;
  /** The References (or else the first In-Reply-To) message IDs, oldest first (RFC 5256 §3 REFERENCES 1). */
  references: string[];
}

/** Simple titlecase mappings that differ from the simple uppercase ones (UnicodeData.txt field 14). */
function titlecase(cp: number): number {
  // The Latin digraphs DŽ, LJ, NJ, DZ have a titlecase form of their own.
  if (cp >= 0x1c4 && cp <= 0x1c6) return 0x1c5;
  if (cp >= 0x1c7 && cp <= 0x1c9) return 0x1c8;
  if (cp >= 0x1ca && cp <= 0x1cc) return 0x1cb;
  if (cp >= 0x1f1 && cp <= 0x1f3) return 0x1f2;
  // Greek with ypogegrammeni: titlecase keeps one character (prosgegrammeni) where uppercase makes two.
  if ((cp >= 0x1f80 && cp <= 0x1f87) || (cp >= 0x1f90 && cp <= 0x1f97) || (cp >= 0x1fa0 && cp <= 0x1fa7)) return cp + 8;
  if (cp === 0x1fb3 || cp === 0x1fc3 || cp === 0x1ff3) return cp + 9;
  const upper = String.fromCodePoint(cp).toUpperCase();
  // A full mapping to several characters (ß → SS) has no simple mapping: the character stays.
  return upper.length === 1 || (upper.length === 2 && upper.codePointAt(0)! > 0xffff) ? upper.codePointAt(0)! : cp;
}

/**
 * RFC 5051 i;unicode-casemap: each character to its simple titlecase, then the Unicode decomposition (NFKD); the
 * resulting UTF-8 octets compare. "é" is "E" + U+0301, so it sorts with E, after "e" and before "f".
 */
export function casemap(s: string): Buffer {
  let out = '';
  for (const ch of s) out += String.fromCodePoint(titlecase(ch.codePointAt(0)!));
  return Buffer.from(out.normalize('NFKD'), 'utf8');
}

function decodeWords(raw: string): string {
  const text = Buffer.from(raw, 'latin1').toString('utf8');
  try {
    return libmime.decodeWords(text);
  } catch {
    return text;
  }
}

// RFC 5256 §5 ABNF: subj-blob = "[" *BLOBCHAR "]" *WSP; BLOBCHAR is any CHAR but "[" and "]".
const BLOB = String.raw`\[[\x01-\x5a\x5c\x5e-\x7f]*\][ \t]*`;
// subj-leader = (*subj-blob subj-refwd) / WSP; subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
const LEADER = new RegExp(String.raw`^(?:(?:${BLOB})*(?:re|fwd?)[ \t]*(?:${BLOB})?:|[ \t])`, 'i');
const LEADING_BLOB = new RegExp(`^${BLOB}`);
// subj-trailer = "(fwd)" / WSP
const TRAILER = /(?:\(fwd\)|[ \t])$/i;

/** RFC 5256 §2.1 base subject extraction, steps (1) to (7). */
export function baseSubject(subject: string): { base: string; replyOrForward: boolean } {
  // (1) encoded-words to UTF-8, tabs and continuations to a space, runs of spaces to one.
  let s = decodeWords(subject).replace(/[\r\n\t ]+/g, ' ');
  let replyOrForward = false;
  for (;;) {
    // (2) trailers, repeatedly.
    for (let m = TRAILER.exec(s); m; m = TRAILER.exec(s)) {
      if (m[0].length > 1) replyOrForward = true;
      s = s.slice(0, s.length - m[0].length);
    }
    // (3)-(5) leaders and leading blobs, until neither matches.
    for (;;) {
      const m = LEADER.exec(s);
      if (m) {
        if (m[0].length > 1 || !/^[ \t]$/.test(m[0])) replyOrForward = true;
        s = s.slice(m[0].length);
        continue;
      }
      const b = LEADING_BLOB.exec(s);
      if (b && b[0].length < s.length) {
        s = s.slice(b[0].length);
        continue;
      }
      break;
    }
    // (6) "[fwd: ...]" around the whole subject: unwrap and start again from (2).
    if (/^\[fwd:/i.test(s) && s.endsWith(']')) {
      s = s.slice(5, -1);
      replyOrForward = true;
      continue;
    }
    return { base: s, replyOrForward };
  }
}

function firstAddress(node: MimeNode, key: string): Address | undefined {
  const v = headerValue(node, key);
  return v === undefined ? undefined : parseAddressList(v)[0];
}

/** RFC 5256 §3: the addr-mailbox of the first address; a group's name stands for the group (as in Dovecot). */
function mailboxKey(a: Address | undefined): Buffer {
  if (!a) return Buffer.alloc(0);
  return casemap(a.group ? (a.name ?? '') : a.local);
}

/** RFC 5957 §3: the decoded display-name when there is one, otherwise the addr-spec. */
function displayKey(a: Address | undefined): Buffer {
  if (!a) return Buffer.alloc(0);
  const name = a.name !== null ? decodeWords(a.name).trim() : '';
  if (name) return casemap(name);
  if (a.group) return Buffer.alloc(0);
  return casemap(a.domain ? `${a.local}@${a.domain}` : a.local);
}

function messageIds(v: string | undefined): string[] {
  if (!v) return [];
  // Comments and quoted strings do not hold message IDs; the IDs are the <...> tokens (RFC 5322 §3.6.4).
  const text = v.replace(/\([^()]*\)/g, ' ');
  return [...text.matchAll(/<([^<>]+)>/g)].map((m) => m[1].replace(/\s+/g, '')).filter((id) => id.length > 0);
}

/** RFC 5322 date-time to ms since the epoch (its zone applied); undefined when it cannot be read. */
export function parseSentDate(v: string | undefined): number | undefined {
  if (!v) return undefined;
  const t = Date.parse(v.replace(/\([^()]*\)/g, ' ').trim());
  return Number.isNaN(t) ? undefined : Math.floor(t / 1000) * 1000;
}

export function keysOf(header: MimeNode): MessageKeys {
  const { base, replyOrForward } = baseSubject(headerValue(header, 'subject') ?? '');
  const from = firstAddress(header, 'from');
  const to = firstAddress(header, 'to');
  const references = messageIds(headerValue(header, 'references'));
  return {
    subject: casemap(base),
    replyOrForward,
    from: mailboxKey(from),
    to: mailboxKey(to),
    cc: mailboxKey(firstAddress(header, 'cc')),
    displayFrom: displayKey(from),
    displayTo: displayKey(to),
    sentDate: parseSentDate(headerValue(header, 'date')),
    messageId: messageIds(headerValue(header, 'message-id'))[0],
    references: references.length ? references : messageIds(headerValue(header, 'in-reply-to')).slice(0, 1),
  };
}

/**
 * Keys of messages sorted or threaded recently, across sessions. A message never changes for a given UIDVALIDITY
 * and UID (RFC 3501 §2.3.1.1), so an entry never goes stale; a repeated SORT reads no message again. Made on the
 * first SORT or THREAD: lru-cache allocates its arrays for `max` entries up front (~4 MB an idle server need not hold).
 */
let keyCacheInstance: LRUCache<string, MessageKeys> | undefined;
const keyCache = () => (keyCacheInstance ??= new LRUCache<string, MessageKeys>({ max: 200_000 }));

/** The header section and the blank line that ends it (RFC 5322 §2.1), or the whole message when it has no body. */
function headerSection(message: Buffer): Buffer {
  const end = message.indexOf('\r\n\r\n');
  return end < 0 ? message : message.subarray(0, end + 4);
}

/** Keys of the given messages of the selected folder; a message expunged meanwhile gets empty keys. */
export async function loadKeys(session: ImapSession, msgs: { meta: MessageMeta }[]): Promise<MessageKeys[]> {
  const sel = session.selected!;
  const who = sel.owner.kind === 'user' ? `u:${sel.owner.login}` : `s:${sel.owner.group}`;
  const out: MessageKeys[] = [];
  for (const { meta } of msgs) {
    const key = `${who.toLowerCase()}\0${sel.folder}\0${sel.uidValidity}\0${meta.uid}`;
    let keys = keyCache().get(key);
    if (!keys) {
      let raw: Buffer;
      try {
        raw = await session.deps.mailbox.readMessage(sel.owner, sel.folder, meta.uid);
      } catch {
        out.push(keysOf(parseMime(Buffer.from('\r\n'))));
        continue;
      }
      keys = keysOf(parseMime(Buffer.from(headerSection(raw))));
      keyCache().set(key, keys);
    }
    out.push(keys);
  }
  return out;
}
