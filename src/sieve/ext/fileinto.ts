/**
 * fileinto (RFC 5228 §4.1) with :copy (RFC 3894 §3), :flags (RFC 5232 §5) and :create (RFC 5490 §3.2).
 */
import { normaliseFlags } from './core.js';
import { strArg, type Defs } from '../registry.js';

export const defs: Defs = {
  fileinto: {
    kind: 'command',
    ext: 'fileinto',
    tags: { copy: { ext: 'copy' }, flags: { value: 'stringlist', ext: 'imap4flags' }, create: { ext: 'mailbox' } },
    pos: ['string'],
    check(node, ctx) {
      const m = strArg(node.pos[0])!;
      if (m.value === '') ctx.error('fileinto: the mailbox name is empty', m);
    },
    run(node, rt) {
      const mailbox = rt.expand(strArg(node.pos[0])!);
      if (mailbox === '') rt.error('fileinto: the mailbox name is empty', node);
      // RFC 5232 §5: without :flags the current value of the internal variable applies.
      const flags = node.tags.has('flags') ? normaliseFlags(rt.expandList(node.tags.get('flags'))) : rt.getFlags();
      const copy = node.tags.has('copy');
      rt.addAction({ type: 'fileinto', mailbox, flags, copy, create: node.tags.has('create') }, node);
      if (!copy) rt.cancelImplicitKeep();
    },
  },
};
