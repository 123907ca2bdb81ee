/**
 * addheader and deleteheader (RFC 5293 §4, §5). The edits apply to a working copy of the header that later tests
 * see and that the deliverer writes in place of the original (ExecuteResult.editedHeaders).
 */
import libmime from 'libmime';
import { COMPARATOR_TAG, MATCH_TAGS, numArg, strArg, type Defs } from '../registry.js';

/** RFC 5322 §3.6.8 field-name: printable US-ASCII except ":". */
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

/**
 * RFC 5293 §6 lets an implementation protect fields; deleting these is ignored because trace and loop-prevention
 * fields (Received, RFC 5321 §4.4; Auto-Submitted, RFC 3834 §5) must survive filtering. Adding them is allowed.
 */
export const PROTECTED_FIELDS = new Set(['received', 'auto-submitted']);

function decode(v: string): string {
  try {
    return libmime.decodeWords(v);
  } catch {
    return v;
  }
}

export const defs: Defs = {
  addheader: {
    kind: 'command',
    ext: 'editheader',
    tags: { last: {} },
    pos: ['string', 'string'],
    check(node, ctx) {
      const name = strArg(node.pos[0])!;
      if (!name.value.includes('${') && !FIELD_NAME.test(name.value)) ctx.error(`addheader: invalid header field name '${name.value}'`, name);
    },
    run(node, rt) {
      const name = rt.expand(strArg(node.pos[0])!);
      if (!FIELD_NAME.test(name)) rt.error(`addheader: invalid header field name '${name}'`, node);
      let value = rt.expand(strArg(node.pos[1])!).replace(/\r?\n/g, ' ');
      // §4: a value with non-ASCII characters is encoded as RFC 2047 words.
      if (/[^\x00-\x7f]/.test(value)) value = libmime.encodeWords(value, 'Q', 52);
      const fields = rt.editableHeader();
      // §4: added at the beginning of the header unless :last.
      if (node.tags.has('last')) fields.push({ name, value });
      else fields.unshift({ name, value });
      rt.log(`addheader ${name}`);
    },
  },
  deleteheader: {
    kind: 'command',
    ext: 'editheader',
    tags: { ...COMPARATOR_TAG, ...MATCH_TAGS, index: { value: 'number' }, last: {} },
    pos: ['string', 'stringlist'],
    optional: 1,
    check(node, ctx) {
      const name = strArg(node.pos[0]);
      if (!name) return ctx.error('deleteheader: the field name must be a single string', node);
      if (!name.value.includes('${') && !FIELD_NAME.test(name.value)) ctx.error(`deleteheader: invalid header field name '${name.value}'`, name);
      if (node.tags.has('last') && !node.tags.has('index')) ctx.error('deleteheader: :last needs :index', node);
      const i = numArg(node.tags.get('index'));
      if (i !== undefined && i < 1) ctx.error(':index counts from 1', node);
    },
    run(node, rt) {
      const name = rt.expand(strArg(node.pos[0])!);
      const key = name.toLowerCase();
      if (PROTECTED_FIELDS.has(key)) {
        rt.log(`deleteheader ${name}: protected field, not deleted`);
        return;
      }
      const fields = rt.editableHeader();
      const positions: number[] = [];
      fields.forEach((f, i) => {
        if (f.name.toLowerCase() === key) positions.push(i);
      });
      let chosen = positions;
      const index = numArg(node.tags.get('index'));
      if (index !== undefined) {
        const at = node.tags.has('last') ? positions.length - index : index - 1;
        chosen = at >= 0 && at < positions.length ? [positions[at]] : [];
      }
      if (node.pos.length > 1) {
        // §5: with value-patterns only the occurrences whose (decoded) value matches are deleted.
        const patterns = rt.expandList(node.pos[1]);
        chosen = chosen.filter((i) => rt.match(node, [decode(fields[i].value)], patterns));
      }
      for (const i of [...chosen].sort((a, b) => b - a)) fields.splice(i, 1);
      if (chosen.length > 0) rt.log(`deleteheader ${name}: ${chosen.length} deleted`);
    },
  },
};
