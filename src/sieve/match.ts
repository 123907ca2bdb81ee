/**
 * Comparators (RFC 4790 §9, RFC 5228 §2.7.3), match types :is/:contains/:matches (RFC 5228 §2.7.1) and the
 * relational :value/:count (RFC 5231).
 */

export const COMPARATORS = ['i;octet', 'i;ascii-casemap', 'i;ascii-numeric'] as const;
export const RELATIONS = ['gt', 'ge', 'lt', 'le', 'eq', 'ne'] as const;

/** RFC 4790 §9.2: i;ascii-casemap folds only a–z. */
function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

function fold(comparator: string, s: string): string {
  return comparator === 'i;ascii-casemap' ? asciiLower(s) : s;
}

/**
 * RFC 4790 §9.1 i;ascii-numeric: the value of the leading digits; a string that does not start with a digit is
 * "positive infinity" (equal to any other such string).
 */
function numericValue(s: string): bigint | null {
  const m = /^[0-9]+/.exec(s);
  return m ? BigInt(m[0]) : null;
}

/** Ordering of a and b by the comparator: <0, 0, >0. */
export function compare(comparator: string, a: string, b: string): number {
  if (comparator === 'i;ascii-numeric') {
    const x = numericValue(a);
    const y = numericValue(b);
    if (x === null) return y === null ? 0 : 1;
    if (y === null) return -1;
    return x < y ? -1 : x > y ? 1 : 0;
  }
  const x = fold(comparator, a);
  const y = fold(comparator, b);
  // i;octet and i;ascii-casemap order by octets (RFC 4790 §9.3, §9.2): compare the UTF-8 bytes.
  return Buffer.compare(Buffer.from(x, 'utf8'), Buffer.from(y, 'utf8'));
}

export function relationHolds(relation: string, cmp: number): boolean {
  switch (relation) {
    case 'gt':
      return cmp > 0;
    case 'ge':
      return cmp >= 0;
    case 'lt':
      return cmp < 0;
    case 'le':
      return cmp <= 0;
    case 'eq':
      return cmp === 0;
    case 'ne':
      return cmp !== 0;
    default:
      return false;
  }
}

export class MatchBudgetExceeded extends Error {}

/**
 * RFC 5228 §2.7.1 :matches: "*" any sequence, "?" one character, "\" quotes the next character. Returns the
 * match variables (RFC 5229 §3.2: ${0} the whole value, ${1}... each wildcard, leftmost wildcards matching as
 * little as possible), or null. Failed (pattern, text) positions are memoised so a pattern of many "*" cannot take
 * exponential time; `budget` bounds the work further.
 */
export function globMatch(comparator: string, pattern: string, value: string, budget: { steps: number }): string[] | null {
  type P = { t: 'lit'; c: string } | { t: 'any' } | { t: 'star' };
  const pat: P[] = [];
  const pchars = Array.from(pattern);
  for (let i = 0; i < pchars.length; i++) {
    const c = pchars[i];
    if (c === '\\' && i + 1 < pchars.length) pat.push({ t: 'lit', c: pchars[++i] });
    else if (c === '*') pat.push({ t: 'star' });
    else if (c === '?') pat.push({ t: 'any' });
    else pat.push({ t: 'lit', c });
  }
  const text = Array.from(value);
  const eq = (a: string, b: string) => (comparator === 'i;ascii-casemap' ? asciiLower(a) === asciiLower(b) : a === b);
  const failed = new Set<number>();
  const width = text.length + 1;
  // Captures as [start, end) positions; the strings are made once, at the end.
  const caps: number[] = [];
  const go = (pi: number, ti: number): boolean => {
    if (--budget.steps < 0) throw new MatchBudgetExceeded();
    const key = pi * width + ti;
    if (failed.has(key)) return false;
    let ok = false;
    if (pi === pat.length) ok = ti === text.length;
    else {
      const p = pat[pi];
      if (p.t === 'lit') ok = ti < text.length && eq(p.c, text[ti]) && go(pi + 1, ti + 1);
      else if (p.t === 'any') {
        caps.push(ti, ti + 1);
        ok = ti < text.length && go(pi + 1, ti + 1);
        if (!ok) caps.length -= 2;
      } else {
        for (let k = ti; k <= text.length && !ok; k++) {
          caps.push(ti, k);
          ok = go(pi + 1, k);
          if (!ok) caps.length -= 2;
        }
      }
    }
    if (!ok) failed.add(key);
    return ok;
  };
  if (!go(0, 0)) return null;
  const out = [value];
  for (let i = 0; i < caps.length; i += 2) out.push(text.slice(caps[i], caps[i + 1]).join(''));
  return out;
}

/** :is and :contains by a comparator (i;ascii-numeric has no substring operation, validate.ts refuses it). */
export function isMatch(comparator: string, value: string, key: string): boolean {
  if (comparator === 'i;ascii-numeric') return compare(comparator, value, key) === 0;
  return fold(comparator, value) === fold(comparator, key);
}

export function containsMatch(comparator: string, value: string, key: string): boolean {
  return fold(comparator, value).includes(fold(comparator, key));
}
