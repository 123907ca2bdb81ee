/**
 * The body test (RFC 5173): body [COMPARATOR] [MATCH-TYPE] [:raw / :content <types> / :text] <key-list>.
 */
import { COMPARATOR_TAG, MATCH_TAGS, type Defs } from '../registry.js';

export const defs: Defs = {
  body: {
    kind: 'test',
    ext: 'body',
    tags: {
      ...COMPARATOR_TAG,
      ...MATCH_TAGS,
      raw: { group: 'transform' },
      content: { value: 'stringlist', group: 'transform' },
      text: { group: 'transform' },
    },
    pos: ['stringlist'],
    check(node, ctx) {
      // RFC 5173 §5: :count makes no sense for bodies; Pigeonhole refuses it too.
      if (node.matchType === 'count') ctx.error('body: :count is not allowed', node);
    },
    async test(node, rt) {
      const transform = node.tags.has('raw') ? 'raw' : node.tags.has('content') ? 'content' : 'text';
      const types = transform === 'content' ? rt.expandList(node.tags.get('content')) : undefined;
      const parts = await rt.msg.body(transform, types);
      return rt.match(node, parts, rt.expandList(node.pos[0]));
    },
  },
};
