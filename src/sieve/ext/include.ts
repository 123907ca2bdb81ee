/**
 * include, return and global (RFC 6609 §3.2–§3.4).
 */
import { listArg, strArg, type Defs } from '../registry.js';
import { VARIABLE_NAME } from './variables.js';

export const defs: Defs = {
  include: {
    kind: 'command',
    ext: 'include',
    tags: { personal: { group: 'location' }, global: { group: 'location' }, once: {}, optional: {} },
    pos: ['string'],
    check(node, ctx) {
      const name = strArg(node.pos[0])!;
      // §3.2: the script name is a constant (it names a stored script, not a path).
      if (name.value.includes('${')) ctx.error('include: the script name cannot contain variables', name);
      if (name.value === '' || name.value.includes('/') || /[\x00-\x1f\x7f]/.test(name.value)) ctx.error(`include: invalid script name '${name.value}'`, name);
    },
    async run(node, rt) {
      const location = node.tags.has('global') ? 'global' : 'personal';
      await rt.include(strArg(node.pos[0])!.value, location, node.tags.has('once'), node.tags.has('optional'), node);
    },
  },
  return: {
    kind: 'command',
    ext: 'include',
    pos: [],
    run: (_n, rt) => rt.stop('return'),
  },
  global: {
    kind: 'command',
    ext: 'include',
    pos: ['stringlist'],
    check(node, ctx) {
      // §3.3: global needs the variables extension too.
      if (!ctx.has('variables')) ctx.error('global: needs require "variables" as well as "include"', node);
      for (const v of listArg(node.pos[0])) if (!VARIABLE_NAME.test(v.value)) ctx.error(`global: invalid variable name '${v.value}'`, v);
    },
    run(node, rt) {
      for (const v of listArg(node.pos[0])) rt.declareGlobal(v.value, v);
    },
  },
};
