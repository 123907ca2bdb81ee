/**
 * SORT and UID SORT (RFC 5256 §3), with the DISPLAYFROM and DISPLAYTO keys of SORT=DISPLAY (RFC 5957) and the
 * RETURN (MIN MAX ALL COUNT) options of ESORT (RFC 5267 §3), answered in one ESEARCH response, with PARTIAL and
 * UPDATE of CONTEXT=SORT (RFC 5267 §4.3, §4.4; the updates are in search-context.ts). The messages matched by the
 * search criteria are ordered by the sort keys in turn; REVERSE reverses only the key it precedes, and messages equal
 * on every key keep their mailbox order (RFC 5256 §3: "sorted according to the order in which they appear in the
 * mailbox"). Strings compare with i;unicode-casemap (message-keys.ts).
 */
import { bad, no, type ImapCommand } from '../command.js';
import type { ImapSession } from '../connection.js';
import { loadKeys, type MessageKeys } from '../message-keys.js';
import type { Token } from '../parser.js';
import { tokenText } from '../parser.js';
import type { MessageMeta } from '../../store/mailbox.js';
import { highestModseqOf, parseCriteriaFor, runSearch, usesModseq } from './search.js';
import { esearchResponse, parseReturn, wantsData, type ReturnOptions } from '../search-return.js';

export type SortKey = 'ARRIVAL' | 'CC' | 'DATE' | 'FROM' | 'SIZE' | 'SUBJECT' | 'TO' | 'DISPLAYFROM' | 'DISPLAYTO';

export interface SortCriterion {
  key: SortKey;
  reverse: boolean;
}

const KEYS = new Set<string>(['ARRIVAL', 'CC', 'DATE', 'FROM', 'SIZE', 'SUBJECT', 'TO', 'DISPLAYFROM', 'DISPLAYTO']);

/** sort-criteria = "(" sort-criterion *(SP sort-criterion) ")"; sort-criterion = ["REVERSE" SP] sort-key. */
export function parseSortCriteria(t: Token | undefined): SortCriterion[] {
  if (!t || t.type !== 'list' || !t.items.length) throw bad('Expected a list of sort criteria');
  const out: SortCriterion[] = [];
  let reverse = false;
  for (const item of t.items) {
    if (item.type !== 'atom') throw bad('Invalid sort criterion');
    const key = item.value.toUpperCase();
    if (key === 'REVERSE') {
      if (reverse) throw bad('REVERSE must be followed by a sort key');
      reverse = true;
      continue;
    }
    if (!KEYS.has(key)) throw bad(`Unknown sort key ${item.value}`);
    out.push({ key: key as SortKey, reverse });
    reverse = false;
  }
  if (reverse) throw bad('REVERSE must be followed by a sort key');
  return out;
}

/** The charset argument of SORT and THREAD (RFC 5256 §3): US-ASCII and UTF-8 are the ones we match text in. */
export function checkCharset(t: Token | undefined): void {
  const charset = tokenText(t)?.toUpperCase();
  if (charset === undefined) throw bad('Expected a charset');
  if (charset !== 'UTF-8' && charset !== 'US-ASCII') throw no('Unsupported charset', 'BADCHARSET (UTF-8 US-ASCII)');
}

export interface Sortable {
  seq: number;
  meta: MessageMeta;
  keys: MessageKeys;
}

/** RFC 5256 §3 DATE: the sent date; "If the sent date cannot be determined, use the internal date." */
export function sentDate(m: { meta: MessageMeta; keys: MessageKeys }): number {
  return m.keys.sentDate ?? Math.floor(m.meta.internalDate.getTime() / 1000) * 1000;
}

function compareBy(key: SortKey, a: Sortable, b: Sortable): number {
  switch (key) {
    case 'ARRIVAL':
      return a.meta.internalDate.getTime() - b.meta.internalDate.getTime();
    case 'DATE':
      return sentDate(a) - sentDate(b);
    case 'SIZE':
      return a.meta.size - b.meta.size;
    case 'SUBJECT':
      return Buffer.compare(a.keys.subject, b.keys.subject);
    case 'FROM':
      return Buffer.compare(a.keys.from, b.keys.from);
    case 'TO':
      return Buffer.compare(a.keys.to, b.keys.to);
    case 'CC':
      return Buffer.compare(a.keys.cc, b.keys.cc);
    case 'DISPLAYFROM':
      return Buffer.compare(a.keys.displayFrom, b.keys.displayFrom);
    case 'DISPLAYTO':
      return Buffer.compare(a.keys.displayTo, b.keys.displayTo);
  }
}

/** The order of SORT: each key in turn, then mailbox order (RFC 5256 §3), which is UID order as well. */
export function compareSortable(criteria: SortCriterion[], a: Sortable, b: Sortable): number {
  for (const c of criteria) {
    const d = compareBy(c.key, a, b);
    if (d !== 0) return c.reverse ? -d : d;
  }
  return a.meta.uid - b.meta.uid;
}

export function sortMessages(msgs: Sortable[], criteria: SortCriterion[]): Sortable[] {
  return [...msgs].sort((a, b) => compareSortable(criteria, a, b));
}

/** The messages matched by `criteria` tokens, with their sort keys. */
export async function searchWithKeys(session: ImapSession, criteria: Token[]): Promise<Sortable[]> {
  return sortableOf(session, await runSearch(session, parseCriteriaFor(session, criteria)));
}

/** Messages of the view with their sort keys. */
export async function sortableOf(session: ImapSession, found: { seq: number; meta: MessageMeta }[]): Promise<Sortable[]> {
  const keys = await loadKeys(session, found);
  return found.map((f, i) => ({ seq: f.seq, meta: f.meta, keys: keys[i] }));
}

export const sort: ImapCommand = {
  names: ['SORT'],
  states: ['selected'],
  uid: true,
  async handle(session, cmd) {
    let args = cmd.args;
    let ret: ReturnOptions | undefined;
    if (args[0]?.type === 'atom' && args[0].value.toUpperCase() === 'RETURN') {
      ret = parseReturn(args[1], false);
      args = args.slice(2);
    }
    if (args.length < 3) throw bad('Wrong number of arguments for SORT');
    const criteria = parseSortCriteria(args[0]);
    checkCharset(args[1]);
    const search = parseCriteriaFor(session, args.slice(2));
    const sorted = sortMessages(await sortableOf(session, await runSearch(session, search)), criteria);
    const nums = sorted.map((m) => (cmd.uid ? m.meta.uid : m.seq));
    // RFC 7162 §3.1.9: a SORT with a MODSEQ criterion ends with the highest MODSEQ of the matches.
    const modseq = sorted.length && usesModseq(search) ? highestModseqOf(sorted) : 0;
    if (!ret) {
      session.untagged(`SORT${nums.length ? ' ' + nums.join(' ') : ''}${modseq ? ` (MODSEQ ${modseq})` : ''}`);
      return;
    }
    // RFC 5267 §4.3: UPDATE alone answers without data; the changes follow as ADDTO / REMOVEFROM with positions.
    if (ret.update || wantsData(ret)) session.untagged(esearchResponse(cmd.tag, cmd.uid, nums, ret, true) + (modseq ? ` MODSEQ ${modseq}` : ''));
    if (ret.update) {
      session.addSearchContext({
        tag: cmd.tag,
        uid: cmd.uid,
        criteria: search,
        sort: criteria,
        result: sorted.map((m) => m.meta.uid),
        keys: new Map(sorted.map((m) => [m.meta.uid, m.keys])),
      });
    }
  },
};
