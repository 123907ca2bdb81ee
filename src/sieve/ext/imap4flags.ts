/**
 * imap4flags (RFC 5232): setflag/addflag/removeflag on the internal variable or (with "variables") a named one,
 * the hasflag test; :flags on keep and fileinto is declared there.
 */
import { normaliseFlags } from './core.js';
import { COMPARATOR_TAG, MATCH_TAGS, listArg, type Def, type Defs, type Node } from '../registry.js';
import type { Runtime } from '../runtime.js';
import { VARIABLE_NAME } from './variables.js';

/** §3: the optional first argument is a variable name; with one argument it is the flag list. */
function checkVariableArg(node: Node, ctx: { has(e: string): boolean; error(m: string, at: Node): never }): void {
  if (node.pos.length === 2) {
    if (!ctx.has('variables')) ctx.error(`${node.name}: a variable name argument needs require "variables"`, node);
    const v = node.pos[0];
    if (v.kind !== 'string' && !(v.kind === 'list' && v.items.length === 1)) ctx.error(`${node.name}: the variable name must be a single string`, node);
    const name = v.kind === 'string' ? v.value : v.kind === 'list' ? v.items[0].value : '';
    if (!VARIABLE_NAME.test(name) && !/^global\.[A-Za-z_][A-Za-z0-9_]*$/i.test(name)) ctx.error(`${node.name}: invalid variable name '${name}'`, node);
  }
}

function variableOf(node: Node): string | undefined {
  return node.pos.length === 2 ? listArg(node.pos[0])[0].value : undefined;
}

function flagsOf(node: Node, rt: Runtime): string[] {
  return normaliseFlags(rt.expandList(node.pos[node.pos.length - 1]));
}

function action(op: 'set' | 'add' | 'remove'): Def {
  return {
    kind: 'command',
    ext: 'imap4flags',
    pos: ['stringlist', 'stringlist'],
    optional: 1,
    leadingOptional: true,
    check: checkVariableArg,
    run(node, rt) {
      const variable = variableOf(node);
      const given = flagsOf(node, rt);
      const current = rt.getFlags(variable);
      let next: string[];
      if (op === 'set') next = given;
      else if (op === 'add') next = normaliseFlags([...current, ...given]);
      else {
        const drop = new Set(given.map((f) => f.toLowerCase()));
        next = current.filter((f) => !drop.has(f.toLowerCase()));
      }
      rt.setFlags(next, variable);
    },
  };
}

export const defs: Defs = {
  setflag: action('set'),
  addflag: action('add'),
  removeflag: action('remove'),
  hasflag: {
    kind: 'test',
    ext: 'imap4flags',
    tags: { ...COMPARATOR_TAG, ...MATCH_TAGS },
    pos: ['stringlist', 'stringlist'],
    optional: 1,
    leadingOptional: true,
    check(node, ctx) {
      if (node.pos.length === 2 && !ctx.has('variables')) ctx.error('hasflag: a variable list needs require "variables"', node);
    },
    test(node, rt) {
      const vars = node.pos.length === 2 ? rt.expandList(node.pos[0]) : [undefined];
      const flags: string[] = [];
      for (const v of vars) flags.push(...rt.getFlags(v));
      const keys = rt.expandList(node.pos[node.pos.length - 1]);
      // §4: :count counts the flags; otherwise each flag of the variables against each key (split on spaces).
      if (node.matchType === 'count') return rt.matchCount(node, normaliseFlags(flags).length, keys);
      // §4: the keys are flag lists too ("b A" is the flags b and A).
      return rt.match(node, normaliseFlags(flags), normaliseFlags(keys));
    },
  },
};
