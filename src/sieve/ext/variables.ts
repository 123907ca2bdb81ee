/**
 * Variables (RFC 5229): set with its modifiers (§4), the string test (§5). ${...} expansion is in
 * interpreter.ts; match variables are set by matching (match.ts).
 */
import { COMPARATOR_TAG, MATCH_TAGS, strArg, type Defs } from '../registry.js';

/** §4.1: the precedence of each modifier; the highest is applied first, two of one precedence is an error. */
export const MODIFIERS: Record<string, number> = {
  lower: 40,
  upper: 40,
  lowerfirst: 30,
  upperfirst: 30,
  quotewildcard: 20,
  length: 10,
};

export const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function applyModifier(m: string, v: string): string {
  switch (m) {
    // §4.1.3: the case modifiers change US-ASCII letters only.
    case 'lower':
      return v.replace(/[A-Z]/g, (c) => c.toLowerCase());
    case 'upper':
      return v.replace(/[a-z]/g, (c) => c.toUpperCase());
    case 'lowerfirst':
      return v.replace(/^[A-Z]/, (c) => c.toLowerCase());
    case 'upperfirst':
      return v.replace(/^[a-z]/, (c) => c.toUpperCase());
    case 'quotewildcard':
      // §4.1.3: "*", "?" and "\" get a backslash so the value matches itself literally in :matches.
      return v.replace(/[*?\\]/g, (c) => '\\' + c);
    case 'length':
      // §4.1.4: the length in characters.
      return String(Array.from(v).length);
    default:
      return v;
  }
}

export const defs: Defs = {
  set: {
    kind: 'command',
    ext: 'variables',
    tags: Object.fromEntries(Object.keys(MODIFIERS).map((m) => [m, {}])),
    pos: ['string', 'string'],
    check(node, ctx) {
      const name = strArg(node.pos[0])!;
      // §4: the name must be a variable-name (not a match variable, no namespace we do not have).
      if (!VARIABLE_NAME.test(name.value) && !/^global\.[A-Za-z_][A-Za-z0-9_]*$/i.test(name.value)) ctx.error(`set: invalid variable name '${name.value}'`, name);
      if (/^global\./i.test(name.value) && !ctx.has('include')) ctx.error('set: the "global." namespace needs require "include"', name);
      const seen = new Map<number, string>();
      for (const m of node.tags.keys()) {
        const p = MODIFIERS[m];
        const other = seen.get(p);
        if (other !== undefined) ctx.error(`set: modifiers :${other} and :${m} cannot be used together`, node.tagPos.get(m)!);
        seen.set(p, m);
      }
    },
    run(node, rt) {
      let v = rt.expand(strArg(node.pos[1])!);
      const mods = [...node.tags.keys()].sort((a, b) => MODIFIERS[b] - MODIFIERS[a]);
      for (const m of mods) v = applyModifier(m, v);
      rt.setVar(strArg(node.pos[0])!.value, v, node);
    },
  },
  string: {
    kind: 'test',
    ext: 'variables',
    tags: { ...COMPARATOR_TAG, ...MATCH_TAGS },
    pos: ['stringlist', 'stringlist'],
    test(node, rt) {
      const source = rt.expandList(node.pos[0]);
      const keys = rt.expandList(node.pos[1]);
      // §5: :count counts the source strings that are not empty.
      if (node.matchType === 'count') return rt.matchCount(node, source.filter((s) => s !== '').length, keys);
      return rt.match(node, source, keys);
    },
  },
};
