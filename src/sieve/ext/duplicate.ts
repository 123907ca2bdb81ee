/**
 * The duplicate test (RFC 7352 §3): true when the message's id (Message-ID by default, :header or :uniqueid
 * otherwise), under the :handle, was seen within :seconds. The caller records ExecuteResult.duplicateIds after
 * the run completed.
 */
import { createHash } from 'node:crypto';
import { numArg, strArg, type Defs } from '../registry.js';

/** Pigeonhole's sieve_duplicate_default_period (12 hours); :seconds above the maximum is lowered to it (2 days). */
export const DUPLICATE_DEFAULT_SECONDS = 12 * 3600;
export const DUPLICATE_MAX_SECONDS = 2 * 86_400;

export const defs: Defs = {
  duplicate: {
    kind: 'test',
    ext: 'duplicate',
    tags: {
      handle: { value: 'string' },
      header: { value: 'string', group: 'key' },
      uniqueid: { value: 'string', group: 'key' },
      seconds: { value: 'number' },
      last: {},
    },
    pos: [],
    async test(node, rt) {
      const handleArg = strArg(node.tags.get('handle'));
      const handle = handleArg ? rt.expand(handleArg) : '';
      let value: string | undefined;
      const uid = strArg(node.tags.get('uniqueid'));
      if (uid) value = rt.expand(uid);
      else {
        const h = strArg(node.tags.get('header'));
        const field = h ? rt.expand(h) : 'message-id';
        // §3.1: the first occurrence, without surrounding blanks; absent, the test is false.
        value = rt.headers(field)[0]?.trim();
        if (value === undefined || value === '') return false;
        // §3.1: Message-ID compares case-insensitively on its right side; unfolded, so whitespace inside is kept.
      }
      const seconds = Math.min(numArg(node.tags.get('seconds')) ?? DUPLICATE_DEFAULT_SECONDS, DUPLICATE_MAX_SECONDS);
      // §3: the id is the handle with the value; hashed so the store keeps fixed-size keys.
      const id = createHash('sha256').update(`${handle}\0${value}`).digest('hex');
      return rt.duplicateCheck(id, seconds, node.tags.has('last'));
    },
  },
};
