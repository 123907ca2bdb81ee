/**
 * mailboxexists (RFC 5490 §3.1); fileinto :create is declared with fileinto.
 */
import type { Defs } from '../registry.js';

export const defs: Defs = {
  mailboxexists: {
    kind: 'test',
    ext: 'mailbox',
    pos: ['stringlist'],
    // §3.1: true only if every named mailbox exists (and could be filed into).
    async test(node, rt) {
      for (const name of rt.expandList(node.pos[0])) if (!(await rt.env.mailboxExists(name))) return false;
      return true;
    },
  },
};
