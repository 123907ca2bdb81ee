/**
 * SORT and UID SORT (RFC 5256 §3), with the DISPLAYFROM and DISPLAYTO keys of SORT=DISPLAY (RFC 5957) and the
 * RETURN (MIN MAX ALL COUNT) options of ESORT (RFC 5267 §3), answered in one ESEARCH response. The
 * messages matched by the search criteria are ordered by the sort keys in turn; REVERSE reverses only the key it
 * precedes, and messages equal on every key keep their mailbox order (RFC 5256 §3: "sorted according to the order
 * in which they appear in the mailbox"). Strings compare with i;unicode-casemap (message-keys.ts).
 */
import { bad, no, type ImapCommand } from '../command.js';
import type { ImapSession } from '../connection.js';
import { loadKeys, type MessageKeys } from '../message-keys.js';
import type { Token } from '../parser.js';
import { tokenText } from '../parser.js';
import type { MessageMeta } from '../../store/mailbox.js';
import { highestModseqOf, parseCriteriaFor, runSearch, usesModseq } from './search.js';

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

export function sortMessages(msgs: Sortable[], criteria: SortCriterion[]): Sortable[] {
  return [...msgs].sort((a, b) => {
    for (const c of criteria) {
      const d = compareBy(c.key, a, b);
      if (d !== 0) return c.reverse ? -d : d;
    }
    return a.seq - b.seq;
  });
}

/** The messages matched by `criteria` tokens, with their sort keys. */
export async function searchWithKeys(session: ImapSession, criteria: Token[]): Promise<Sortable[]> {
  const found = await runSearch(session, parseCriteriaFor(session, criteria));
  const keys = await loadKeys(session, found);
  return found.map((f, i) => ({ seq: f.seq, meta: f.meta, keys: keys[i] }));
}

type ReturnOption = 'MIN' | 'MAX' | 'ALL' | 'COUNT';

/** RFC 5267 §3 / RFC 4731 §3.1: `RETURN (...)`; an empty list means ALL. */
export function parseReturnOptions(t: Token | undefined): Set<ReturnOption> {
  if (!t || t.type !== 'list') throw bad('Expected RETURN options');
  const out = new Set<ReturnOption>();
  for (const i of t.items) {
    const o = i.type === 'atom' ? i.value.toUpperCase() : '';
    if (o !== 'MIN' && o !== 'MAX' && o !== 'ALL' && o !== 'COUNT') throw bad(`Unknown RETURN option ${o || '?'}`);
    out.add(o);
  }
  if (!out.size) out.add('ALL');
  return out;
}

/** RFC 5267 §3.1: ALL keeps the sort order, so only ascending runs of consecutive numbers become ranges. */
export function orderedSet(nums: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < nums.length; ) {
    let j = i;
    while (j + 1 < nums.length && nums[j + 1] === nums[j] + 1) j++;
    parts.push(i === j ? String(nums[i]) : `${nums[i]}:${nums[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/**
 * RFC 5267 §3.1: MIN and MAX are the first and last message in sort order, ALL all of them in that order, COUNT how
 * many; MIN, MAX and ALL are left out when nothing matched (RFC 4731 §3.1).
 */
export function esearchResponse(tag: string, uid: boolean, nums: number[], ret: Set<ReturnOption>): string {
  let out = `ESEARCH (TAG ${JSON.stringify(tag)})${uid ? ' UID' : ''}`;
  if (nums.length && ret.has('MIN')) out += ` MIN ${nums[0]}`;
  if (nums.length && ret.has('MAX')) out += ` MAX ${nums[nums.length - 1]}`;
  if (nums.length && ret.has('ALL')) out += ` ALL ${orderedSet(nums)}`;
  if (ret.has('COUNT')) out += ` COUNT ${nums.length}`;
  return out;
}

export const sort: ImapCommand = {
  names: ['SORT'],
  states: ['selected'],
  uid: true,
  async handle(session, cmd) {
    let args = cmd.args;
    let ret: Set<ReturnOption> | undefined;
    if (args[0]?.type === 'atom' && args[0].value.toUpperCase() === 'RETURN') {
      ret = parseReturnOptions(args[1]);
      args = args.slice(2);
    }
    if (args.length < 3) throw bad('Wrong number of arguments for SORT');
    const criteria = parseSortCriteria(args[0]);
    checkCharset(args[1]);
    const sorted = sortMessages(await searchWithKeys(session, args.slice(2)), criteria);
    const nums = sorted.map((m) => (cmd.uid ? m.meta.uid : m.seq));
    // RFC 7162 §3.1.9: a SORT with a MODSEQ criterion ends with the highest MODSEQ of the matches.
    const modseq = sorted.length && usesModseq(parseCriteriaFor(session, args.slice(2))) ? highestModseqOf(sorted) : 0;
    if (ret) session.untagged(esearchResponse(cmd.tag, cmd.uid, nums, ret) + (modseq ? ` MODSEQ ${modseq}` : ''));
    else session.untagged(`SORT${nums.length ? ' ' + nums.join(' ') : ''}${modseq ? ` (MODSEQ ${modseq})` : ''}`);
  },
};
