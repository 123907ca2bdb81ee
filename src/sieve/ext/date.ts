/**
 * date and currentdate (RFC 5260 §4, §5) with :zone/:originalzone and the date-parts of §4.2; :index/:last
 * (RFC 5260 §6) on date.
 */
import { indexed } from './core.js';
import { COMPARATOR_TAG, INDEX_TAGS, MATCH_TAGS, numArg, strArg, type Defs, type Node } from '../registry.js';
import type { Runtime } from '../runtime.js';

export const DATE_PARTS = ['year', 'month', 'day', 'date', 'julian', 'hour', 'minute', 'second', 'time', 'iso8601', 'std11', 'zone', 'weekday'];

/** A moment and the zone it is to be shown in (minutes east of UTC). */
export interface ZonedDate {
  utcMs: number;
  offsetMinutes: number;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
// RFC 5322 §4.3 obsolete zones; military zones are "-0000" (unknown).
const NAMED_ZONES: Record<string, number> = { ut: 0, gmt: 0, z: 0, est: -300, edt: -240, cst: -360, cdt: -300, mst: -420, mdt: -360, pst: -480, pdt: -420 };

/** "+hhmm" / "-hhmm" to minutes, or null. */
export function parseZone(z: string): number | null {
  const m = /^([+-])([0-9]{2})([0-9]{2})$/.exec(z.trim());
  if (!m) return null;
  const h = Number(m[2]);
  const mi = Number(m[3]);
  if (h > 23 || mi > 59) return null;
  return (m[1] === '-' ? -1 : 1) * (h * 60 + mi);
}

export function formatZone(minutes: number): string {
  const sign = minutes < 0 ? '-' : '+';
  const a = Math.abs(minutes);
  return `${sign}${String(Math.floor(a / 60)).padStart(2, '0')}${String(a % 60).padStart(2, '0')}`;
}

/** RFC 5322 §3.3 date-time (with the obsolete forms of §4.3), or null when it is not one. */
export function parseDateTime(value: string): ZonedDate | null {
  const v = value.replace(/\([^)]*\)/g, ' ').replace(/\s+/g, ' ').trim();
  const m = /^(?:[A-Za-z]{3},?\s*)?([0-9]{1,2})\s+([A-Za-z]{3})\s+([0-9]{2,4})\s+([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?\s*([+-][0-9]{4}|[A-Za-z]{1,5})?$/.exec(v);
  if (!m) return null;
  const day = Number(m[1]);
  const month = MONTHS.indexOf(m[2].toLowerCase());
  let year = Number(m[3]);
  // RFC 5322 §4.3: two-digit years 00-49 are 2000-2049, 50-99 and three digits add 1900.
  if (m[3].length === 2) year += year < 50 ? 2000 : 1900;
  else if (m[3].length === 3) year += 1900;
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = m[6] ? Number(m[6]) : 0;
  if (month < 0 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return null;
  let offset = 0;
  if (m[7]) {
    const z = parseZone(m[7]);
    if (z !== null) offset = z;
    else offset = NAMED_ZONES[m[7].toLowerCase()] ?? 0;
  }
  // §4: a date the calendar does not have (January 32nd, February 29th of 2023) is not valid.
  const check = new Date(Date.UTC(year, month, day));
  if (check.getUTCMonth() !== month || check.getUTCDate() !== day) return null;
  const utcMs = Date.UTC(year, month, day, hour, minute, Math.min(second, 59)) - offset * 60_000;
  if (Number.isNaN(utcMs)) return null;
  return { utcMs, offsetMinutes: offset };
}

const p2 = (n: number) => String(n).padStart(2, '0');

/** RFC 5260 §4.2 date-part of a zoned date. */
export function datePart(d: ZonedDate, part: string): string {
  const local = new Date(d.utcMs + d.offsetMinutes * 60_000);
  const Y = String(local.getUTCFullYear()).padStart(4, '0');
  const M = p2(local.getUTCMonth() + 1);
  const D = p2(local.getUTCDate());
  const h = p2(local.getUTCHours());
  const mi = p2(local.getUTCMinutes());
  const s = p2(local.getUTCSeconds());
  const zone = formatZone(d.offsetMinutes);
  switch (part) {
    case 'year':
      return Y;
    case 'month':
      return M;
    case 'day':
      return D;
    case 'date':
      return `${Y}-${M}-${D}`;
    case 'julian':
      // §4.2: the Modified Julian Day; 1970-01-01 is MJD 40587.
      return String(Math.floor(Date.UTC(local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate()) / 86_400_000) + 40587);
    case 'hour':
      return h;
    case 'minute':
      return mi;
    case 'second':
      return s;
    case 'time':
      return `${h}:${mi}:${s}`;
    case 'iso8601':
      // §4.2: RFC 3339 date-time, a zero offset written "Z".
      return `${Y}-${M}-${D}T${h}:${mi}:${s}${d.offsetMinutes === 0 ? 'Z' : `${zone.slice(0, 3)}:${zone.slice(3)}`}`;
    case 'std11':
      return `${DAYS[local.getUTCDay()]}, ${D} ${MONTHS[local.getUTCMonth()].replace(/^./, (c) => c.toUpperCase())} ${Y} ${h}:${mi}:${s} ${zone}`;
    case 'zone':
      return zone;
    case 'weekday':
      return String(local.getUTCDay());
    default:
      return '';
  }
}

function checkDatePart(node: Node, ctx: { error(m: string, at: Node): never }, i: number): void {
  const part = strArg(node.pos[i]);
  if (part && !part.value.includes('${') && !DATE_PARTS.includes(part.value.toLowerCase())) ctx.error(`${node.name}: unknown date part '${part.value}'`, node);
  const zone = strArg(node.tags.get('zone'));
  if (zone && !zone.value.includes('${') && parseZone(zone.value) === null) ctx.error(`${node.name}: invalid :zone '${zone.value}' (expected +hhmm or -hhmm)`, node);
  if (node.tags.has('last') && !node.tags.has('index')) ctx.error(':last needs :index (RFC 5260 §6)', node);
  const idx = numArg(node.tags.get('index'));
  if (idx !== undefined && idx < 1) ctx.error(':index counts from 1', node);
}

function targetZone(node: Node, rt: Runtime, original: number | undefined): number {
  const z = strArg(node.tags.get('zone'));
  if (z) {
    const v = parseZone(rt.expand(z));
    if (v === null) rt.error(`invalid :zone '${rt.expand(z)}'`, node);
    return v;
  }
  if (original !== undefined && node.tags.has('originalzone')) return original;
  return parseZone(rt.zone) ?? 0;
}

function compareParts(node: Node, rt: Runtime, values: string[], keys: string[]): boolean {
  if (node.matchType === 'count') return rt.matchCount(node, values.length, keys);
  return rt.match(node, values, keys);
}

export const defs: Defs = {
  date: {
    kind: 'test',
    ext: 'date',
    tags: { ...COMPARATOR_TAG, ...MATCH_TAGS, ...INDEX_TAGS, zone: { value: 'string', group: 'zone' }, originalzone: { group: 'zone' } },
    pos: ['string', 'string', 'stringlist'],
    check: (node, ctx) => checkDatePart(node, ctx, 1),
    test(node, rt) {
      const header = rt.expand(strArg(node.pos[0])!);
      const part = rt.expand(strArg(node.pos[1])!).toLowerCase();
      const values: string[] = [];
      // §4: only the first field of that name, unless :index chooses another (§6).
      const all = rt.headers(header);
      for (const raw of node.tags.has('index') ? indexed(node, all) : all.slice(0, 1)) {
        // §4: the date-time is the whole field (Date:) or what follows its last ";" (Received:).
        const d = parseDateTime(raw) ?? (raw.includes(';') ? parseDateTime(raw.slice(raw.lastIndexOf(';') + 1)) : null);
        // §4: a field that is not a date does not match (and is not counted).
        if (!d) continue;
        values.push(datePart({ utcMs: d.utcMs, offsetMinutes: targetZone(node, rt, d.offsetMinutes) }, part));
      }
      return compareParts(node, rt, values, rt.expandList(node.pos[2]));
    },
  },
  currentdate: {
    kind: 'test',
    ext: 'date',
    tags: { ...COMPARATOR_TAG, ...MATCH_TAGS, zone: { value: 'string', group: 'zone' } },
    pos: ['string', 'stringlist'],
    check: (node, ctx) => checkDatePart(node, ctx, 0),
    test(node, rt) {
      const part = rt.expand(strArg(node.pos[0])!).toLowerCase();
      const value = datePart({ utcMs: rt.now.getTime(), offsetMinutes: targetZone(node, rt, undefined) }, part);
      return compareParts(node, rt, [value], rt.expandList(node.pos[1]));
    },
  },
};
