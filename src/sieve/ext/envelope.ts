/**
 * The envelope test (RFC 5228 §5.4): "from", "to" and (as Pigeonhole and RFC 5228's registry allow) "auth".
 */
import { addressPart } from '../address.js';
import { ADDRESS_PART_TAGS, COMPARATOR_TAG, MATCH_TAGS, listArg, type Defs } from '../registry.js';

export const ENVELOPE_PARTS = ['from', 'to', 'auth'];

export const defs: Defs = {
  envelope: {
    kind: 'test',
    ext: 'envelope',
    tags: { ...COMPARATOR_TAG, ...ADDRESS_PART_TAGS, ...MATCH_TAGS },
    pos: ['stringlist', 'stringlist'],
    check(node, ctx) {
      // §5.4: an envelope-part the implementation does not support is an error.
      for (const p of listArg(node.pos[0])) {
        if (!p.value.includes('${') && !ENVELOPE_PARTS.includes(p.value.toLowerCase())) ctx.error(`envelope: unknown envelope part '${p.value}'`, p);
      }
    },
    test(node, rt) {
      const parts: string[] = [];
      let count = 0;
      for (const name of rt.expandList(node.pos[0])) {
        const key = name.toLowerCase();
        const v = key === 'from' ? rt.msg.envelope.from : key === 'to' ? rt.msg.envelope.to : key === 'auth' ? rt.msg.envelope.auth : undefined;
        if (v === undefined) continue;
        count++;
        // §5.4: the null reverse-path is the empty string, whose localpart and domain are empty too.
        const p = v === '' ? '' : addressPart(v, node.addressPart);
        if (p !== null) parts.push(p);
      }
      const keys = rt.expandList(node.pos[1]);
      if (node.matchType === 'count') return rt.matchCount(node, count, keys);
      return rt.match(node, parts, keys);
    },
  },
};
