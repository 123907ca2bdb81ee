/**
 * The duplicate test (RFC 7352 §3): true when the message's id (Message-ID by default, :header or :uniqueid
 * otherwise), under the :handle, was seen within :seconds. The caller records ExecuteResult.duplicateIds after
 * the run completed.
 */
import { createHash } from 'node:crypto';
import { numArg, strArg, type Defs } from '../registry.js';

/** RFC 7352 §3.3: "a default expiration time of around 7 days"; larger :seconds are silently lowered to 30 days. */
export const DUPLICATE_DEFAULT_SECONDS = 7 * 86_400;
export const DUPLICATE_MAX_SECONDS = 30 * 86_400;

const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

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
        // §3.1: an invalid header name is no error, the test is just false.
        if (!FIELD_NAME.test(field)) return false;
        // §3.1: the first occurrence, without surrounding blanks; absent, the test is false.
        value = rt.headers(field)[0]?.trim();
        if (value === undefined || value === '') return false;
      }
      const seconds = Math.min(numArg(node.tags.get('seconds')) ?? DUPLICATE_DEFAULT_SECONDS, DUPLICATE_MAX_SECONDS);
      // §3.3: :seconds 0 makes the test false, and nothing is tracked.
      if (seconds === 0) return false;
      // §3: the id is the handle with the value; hashed so the store keeps fixed-size keys.
      const id = createHash('sha256').update(`${handle}\0${value}`).digest('hex');
      return rt.duplicateCheck(id, seconds, node.tags.has('last'));
    },
  },
};
