/**
 * What SEARCH compares, apart from the command (pure functions, unit-tested): the addresses of FROM/TO/CC/BCC and
 * the day of the Date: header for SENTBEFORE/SENTON/SENTSINCE.
 */
import libmime from 'libmime';
import { addressTokens, type AddrToken } from './mime.js';

// ---- Addresses ------------------------------------------------------------------------------------------------

export interface SearchMailbox {
  name: string | null;
  local: string;
  domain: string;
}

export type SearchAddress = SearchMailbox | { group: string; members: SearchMailbox[] };

type Tok = AddrToken;

/** SEARCH splits atoms at dots too (the name's words are joined back without a space after one: see phrase()). */
const tokenize = (text: string): Tok[] => addressTokens(text, '.)]\\');

/** A display name: its words separated by single spaces (obs-phrase allows '.'), encoded-words decoded. */
function phrase(toks: Tok[]): string | null {
  let s = '';
  for (const t of toks) {
    if (t.kind === 'comment') continue;
    if (t.kind === 'special') s += t.text;
    else s += (s && !s.endsWith('.') ? ' ' : '') + t.text;
  }
  s = s.trim();
  return s ? decodeWords(s) : null;
}

function decodeWords(s: string): string {
  try {
    return libmime.decodeWords(s);
  } catch {
    return s;
  }
}

/** An addr-spec without its comments and folding: local-part "@" domain. */
function addrSpec(toks: Tok[]): { local: string; domain: string } {
  const s = toks.filter((t) => t.kind !== 'comment').map((t) => t.text).join('');
  const at = s.lastIndexOf('@');
  return at < 0 ? { local: s, domain: '' } : { local: s.slice(0, at), domain: s.slice(at + 1) };
}

function mailbox(seg: Tok[]): SearchMailbox | undefined {
  if (!seg.some((t) => t.kind !== 'comment')) return undefined;
  const lt = seg.findIndex((t) => t.kind === 'special' && t.text === '<');
  if (lt >= 0) {
    let gt = seg.findIndex((t, i) => i > lt && t.kind === 'special' && t.text === '>');
    if (gt < 0) gt = seg.length;
    let inner = seg.slice(lt + 1, gt);
    // obs-route "<@a,@b:user@host>": the route is dropped (RFC 5322 §4.4).
    const colon = inner.findIndex((t) => t.kind === 'special' && t.text === ':');
    if (colon >= 0) inner = inner.slice(colon + 1);
    return { name: phrase(seg.slice(0, lt)), ...addrSpec(inner) };
  }
  // "user@host (Real Name)": the old style's comment is the name.
  const comments = seg.filter((t) => t.kind === 'comment' && t.text);
  return { name: comments.length ? decodeWords(comments[comments.length - 1].text) : null, ...addrSpec(seg) };
}

/** Parses an address-list header value (RFC 5322 §3.4): mailboxes and groups, comments dropped from addresses. */
export function parseSearchAddresses(value: string): SearchAddress[] {
  const out: SearchAddress[] = [];
  let seg: Tok[] = [];
  let angle = false;
  let group: { group: string; members: SearchMailbox[] } | undefined;
  const finish = () => {
    const m = mailbox(seg);
    seg = [];
    if (!m) return;
    if (group) group.members.push(m);
    else out.push(m);
  };
  for (const t of tokenize(value)) {
    if (t.kind === 'special' && !angle) {
      if (t.text === '<') angle = true;
      else if (t.text === ',') {
        finish();
        continue;
      } else if (t.text === ':' && !group && !seg.some((s) => s.kind === 'special' && s.text === '@')) {
        group = { group: phrase(seg) ?? '', members: [] };
        seg = [];
        continue;
      } else if (t.text === ';' && group) {
        finish();
        out.push(group);
        group = undefined;
        continue;
      }
    } else if (t.kind === 'special' && t.text === '>') angle = false;
    seg.push(t);
  }
  finish();
  if (group) out.push(group);
  return out;
}

function mailboxText(m: SearchMailbox): string {
  const addr = m.domain ? `${m.local}@${m.domain}` : m.local;
  return m.name ? `${m.name} <${addr}>` : `<${addr}>`;
}

/**
 * The text FROM/TO/CC/BCC look in (RFC 3501 §6.4.4 "contains the specified string in the envelope structure's
 * field"): the parsed addresses written canonically, "Name <local@domain>", groups as "group: a, b;". Comments and
 * folding inside an address do not hide it, and an old-style "user@host (Name)" comment counts as the name, as in
 * Dovecot.
 */
export function addressSearchText(value: string): string {
  const list = parseSearchAddresses(value);
  if (!list.length) return decodeWords(value);
  return list.map((a) => ('group' in a ? `${a.group}: ${a.members.map(mailboxText).join(', ')};` : mailboxText(a))).join(', ');
}

// ---- Dates ----------------------------------------------------------------------------------------------------

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/**
 * The day a Date: header names, as ms since the epoch at 00:00 UTC of that calendar day. RFC 3501 §6.4.4: SENT*
 * compare "disregarding time and timezone", so "Sun, 25 Mar 2007 00:00:00 +0200" is 25 Mar 2007 although it is the
 * 24th in UTC. Two- and three-digit years follow RFC 5322 §4.3. Undefined when the value is not a date.
 */
export function sentDay(value: string): number | undefined {
  const text = value.replace(/\([^()]*\)/g, ' ').trim();
  const m = /^(?:[A-Za-z]+\s*,?\s*)?(\d{1,2})\s*[- ]?\s*([A-Za-z]{3})[A-Za-z]*\.?\s*[- ]?\s*(\d{2,4})\b/.exec(text);
  if (!m) return undefined;
  const month = MONTHS.indexOf(m[2].toLowerCase());
  if (month < 0) return undefined;
  const day = Number(m[1]);
  if (day < 1 || day > 31) return undefined;
  let year = Number(m[3]);
  if (m[3].length === 2) year += year < 50 ? 2000 : 1900;
  else if (m[3].length === 3) year += 1900;
  return Date.UTC(year, month, day);
}

// ---- i;unicode-casemap (RFC 5051), the SEARCH comparator of I18NLEVEL=1 (RFC 5255 §4.3) ------------------------

/** The Latin digraphs whose titlecase is neither their upper- nor lowercase form (UnicodeData.txt field 14). */
const TITLE_DIGRAPHS: Readonly<Record<string, string>> = {
  '\u01C4': '\u01C5', '\u01C5': '\u01C5', '\u01C6': '\u01C5',
  '\u01C7': '\u01C8', '\u01C8': '\u01C8', '\u01C9': '\u01C8',
  '\u01CA': '\u01CB', '\u01CB': '\u01CB', '\u01CC': '\u01CB',
  '\u01F1': '\u01F2', '\u01F2': '\u01F2', '\u01F3': '\u01F2',
};

const titleCache = new Map<string, string>();

/**
 * RFC 5051 §2 step 2: a character's simple titlecase mapping. JavaScript has only full uppercase mappings: they
 * agree with the simple titlecase ones except for the digraphs above, Georgian Mkhedruli (whose titlecase is
 * itself), and characters whose full mapping has several characters (ß → SS), which simple mapping leaves alone.
 */
function titlecase(ch: string): string {
  const digraph = TITLE_DIGRAPHS[ch];
  if (digraph) return digraph;
  let t = titleCache.get(ch);
  if (t !== undefined) return t;
  const cp = ch.codePointAt(0)!;
  const up = ch.toUpperCase();
  t = (cp >= 0x10d0 && cp <= 0x10ff) || [...up].length !== 1 ? ch : up;
  if (titleCache.size < 65536) titleCache.set(ch, t);
  return t;
}

/**
 * The titlecased canonical form of RFC 5051 §2: each character titlecased, then fully decomposed (canonical and
 * compatibility mappings, as NFKD does; Hangul syllables into their jamo, as Dovecot does). The decomposition is not
 * titlecased again, so the "ﬁ" ligature becomes "fi", as in RFC 5051 and Dovecot.
 */
export function unicodeCasemap(s: string): string {
  // US-ASCII: titlecase is uppercase and nothing decomposes.
  if (/^[\x00-\x7f]*$/.test(s)) return s.toUpperCase();
  let out = '';
  for (const ch of s) out += ch.charCodeAt(0) < 0x80 ? ch.toUpperCase() : titlecase(ch).normalize('NFKD');
  return out;
}

/** RFC 5051 §3 substring operation: `needle` within `haystack` under i;unicode-casemap. */
export function casemapContains(haystack: string, needle: string): boolean {
  return unicodeCasemap(haystack).includes(unicodeCasemap(needle));
}
