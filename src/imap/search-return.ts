/**
 * The RETURN options of SEARCH (ESEARCH, RFC 4731 §3.1; SEARCHRES, RFC 5182 §2.4) and SORT (ESORT, RFC 5267 §3),
 * with PARTIAL and UPDATE of CONTEXT=SEARCH / CONTEXT=SORT (RFC 5267 §4.3, §4.4), and the ESEARCH response they ask for.
 */
import { bad } from './command.js';
import { formatSequenceSet, type Token } from './parser.js';

export interface ReturnOptions {
  min: boolean;
  max: boolean;
  all: boolean;
  count: boolean;
  /** RFC 5182 SEARCHRES (SEARCH only). */
  save: boolean;
  /** RFC 5267 §4.3: keep the result and report ADDTO / REMOVEFROM as it changes. */
  update: boolean;
  /** RFC 5267 §4.4: positions low..high (1-based, low <= high) of the result. */
  partial?: [number, number];
}

const MAX_NZ = 0xffffffff;

/**
 * RFC 5267 §4.4 partial-range = nz-number ":" nz-number; "*" and a single number are not ranges. A range given high
 * to low means the same positions (Dovecot answers "4:2" as "2:4").
 */
function parsePartial(t: Token | undefined): [number, number] {
  const m = t?.type === 'atom' ? /^(\d+):(\d+)$/.exec(t.value) : null;
  if (!m) throw bad('PARTIAL needs a range low:high');
  const a = Number(m[1]);
  const b = Number(m[2]);
  if (a < 1 || b < 1 || a > MAX_NZ || b > MAX_NZ) throw bad('Invalid PARTIAL range');
  return a <= b ? [a, b] : [b, a];
}

/** `RETURN (...)`: an empty list means ALL (RFC 4731 §3.1). `allowSave` is false for SORT. */
export function parseReturn(t: Token | undefined, allowSave: boolean): ReturnOptions {
  if (!t || t.type !== 'list') throw bad('Expected RETURN options');
  const out: ReturnOptions = { min: false, max: false, all: false, count: false, save: false, update: false };
  const items = t.items;
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    const o = it.type === 'atom' ? it.value.toUpperCase() : '';
    if (o === 'MIN') out.min = true;
    else if (o === 'MAX') out.max = true;
    else if (o === 'ALL') out.all = true;
    else if (o === 'COUNT') out.count = true;
    else if (o === 'SAVE' && allowSave) out.save = true;
    else if (o === 'UPDATE') out.update = true;
    else if (o === 'PARTIAL') {
      if (out.partial) throw bad('PARTIAL given twice');
      out.partial = parsePartial(items[++i]);
    } else throw bad(`Unknown RETURN option ${o || '?'}`);
  }
  // RFC 5267 §4.4: PARTIAL is a part of what ALL would return; asking for both is a contradiction (Dovecot: BAD).
  if (out.partial && out.all) throw bad('PARTIAL conflicts with ALL');
  if (!items.length) out.all = true;
  return out;
}

/** Whether the options ask for anything in the ESEARCH response (UPDATE and SAVE alone do not). */
export function wantsData(r: ReturnOptions): boolean {
  return r.min || r.max || r.all || r.count || r.partial !== undefined;
}

/** RFC 5267 §3.1: ALL of SORT keeps the sort order, so only ascending runs of consecutive numbers become ranges. */
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
 * One ESEARCH response (RFC 4731 §3.1, RFC 5267 §3.1, §4.4) for `nums` in result order (ascending for SEARCH, sort
 * order for SORT). MIN, MAX, ALL are left out when nothing matched; COUNT is always there; PARTIAL answers NIL for
 * positions past the end.
 */
export function esearchResponse(tag: string, uid: boolean, nums: number[], ret: ReturnOptions, sorted: boolean): string {
  const set = sorted ? orderedSet : formatSequenceSet;
  let out = `ESEARCH (TAG ${JSON.stringify(tag)})${uid ? ' UID' : ''}`;
  if (nums.length && ret.min) out += ` MIN ${nums[0]}`;
  if (nums.length && ret.max) out += ` MAX ${nums[nums.length - 1]}`;
  if (nums.length && ret.all) out += ` ALL ${set(nums)}`;
  if (ret.partial) {
    const [lo, hi] = ret.partial;
    const part = nums.slice(lo - 1, hi);
    out += ` PARTIAL (${lo}:${hi} ${part.length ? set(part) : 'NIL'})`;
  }
  if (ret.count) out += ` COUNT ${nums.length}`;
  return out;
}
