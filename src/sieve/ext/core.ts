/**
 * The base language, RFC 5228 §3 (control), §4 (actions), §5 (tests), with the tags other extensions add to them:
 * :copy (RFC 3894), :flags (RFC 5232), :index/:last (RFC 5260 §6), :count/:value (RFC 5231), :user/:detail
 * (RFC 5233).
 */
import { addressPart, isValidAddress, parseAddressList } from '../address.js';
import { ADDRESS_PART_TAGS, COMPARATOR_TAG, INDEX_TAGS, MATCH_TAGS, listArg, numArg, strArg, type Defs, type Node } from '../registry.js';
import type { Runtime } from '../runtime.js';

/** RFC 5260 §6: the header values a test looks at, narrowed by :index (1-based, from the end with :last). */
export function indexed<T>(node: Node, values: T[]): T[] {
  const index = numArg(node.tags.get('index'));
  if (index === undefined) return values;
  const i = node.tags.has('last') ? values.length - index : index - 1;
  return i >= 0 && i < values.length ? [values[i]] : [];
}

function checkIndex(node: Node, ctx: { error(m: string, at: Node): never }): void {
  if (node.tags.has('last') && !node.tags.has('index')) ctx.error(':last needs :index (RFC 5260 §6)', node);
  const i = numArg(node.tags.get('index'));
  if (i !== undefined && i < 1) ctx.error(':index counts from 1', node);
}

/** Values of the named headers' addresses, then the address part of each (null parts dropped). */
export function addressValues(rt: Runtime, node: Node, fields: string[]): { parts: string[]; count: number } {
  const parts: string[] = [];
  let count = 0;
  // RFC 5260 §6: :index counts the fields of all the named headers together, in the order of the list.
  for (const raw of indexed(node, fields.flatMap((f) => rt.headers(f)))) {
    const addrs = parseAddressList(raw);
    // RFC 5228 §2.7.4: a value that is not an address list is compared whole by :all only.
    const list = addrs.length > 0 ? addrs : raw.trim() === '' ? [] : [raw.trim()];
    for (const a of list) {
      count++;
      const p = addrs.length > 0 ? addressPart(a, node.addressPart) : node.addressPart === 'all' ? a : null;
      if (p !== null) parts.push(p);
    }
  }
  return { parts, count };
}

/**
 * RFC 5228 §5.1: the address test is restricted to headers that hold addresses (at least From, To, Cc, Bcc,
 * Sender, Resent-From, Resent-To). The same set Pigeonhole accepts, plus Disposition-Notification-To (RFC 8098),
 * so a script that worked on Dovecot compiles here; Return-Path and Envelope-To are the envelope test's.
 */
export const ADDRESS_HEADERS = new Set([
  'from', 'to', 'cc', 'bcc', 'sender', 'resent-from', 'resent-to', 'reply-to', 'resent-reply-to', 'resent-sender',
  'resent-cc', 'resent-bcc', 'for-approval', 'for-handling', 'for-comment', 'apparently-to', 'errors-to',
  'delivered-to', 'return-receipt-to', 'x-admin', 'read-receipt-to', 'x-confirm-reading-to',
  'return-receipt-requested', 'registered-mail-reply-requested-by', 'mail-followup-to', 'mail-reply-to',
  'abuse-reports-to', 'x-complaints-to', 'x-report-abuse-to', 'x-beenthere', 'x-original-from', 'x-original-to',
  'disposition-notification-to',
]);

export const defs: Defs = {
  require: { kind: 'command', pos: ['stringlist'] },
  if: { kind: 'command', pos: [], tests: 'one', block: true },
  elsif: { kind: 'command', pos: [], tests: 'one', block: true },
  else: { kind: 'command', pos: [], block: true },
  stop: {
    kind: 'command',
    pos: [],
    run: (_n, rt) => rt.stop('stop'),
  },
  keep: {
    kind: 'command',
    tags: { flags: { value: 'stringlist', ext: 'imap4flags' } },
    pos: [],
    run(node, rt) {
      const flags = node.tags.has('flags') ? normaliseFlags(rt.expandList(node.tags.get('flags'))) : rt.getFlags();
      rt.addAction({ type: 'keep', flags }, node);
      rt.cancelImplicitKeep();
    },
  },
  discard: {
    kind: 'command',
    pos: [],
    run(node, rt) {
      rt.addAction({ type: 'discard' }, node);
      rt.cancelImplicitKeep();
    },
  },
  redirect: {
    kind: 'command',
    tags: { copy: { ext: 'copy' } },
    pos: ['string'],
    check(node, ctx) {
      const a = strArg(node.pos[0]);
      // RFC 5228 §4.2: a syntactically invalid address is an error (checked now when it is a constant).
      if (a && !a.value.includes('${') && !isValidAddress(stripAngle(a.value))) ctx.error(`redirect: invalid address '${a.value}'`, a);
    },
    run(node, rt) {
      const address = stripAngle(rt.expand(strArg(node.pos[0])!));
      if (!isValidAddress(address)) rt.error(`redirect: invalid address '${address}'`, node);
      const copy = node.tags.has('copy');
      rt.addAction({ type: 'redirect', address, copy }, node);
      if (!copy) rt.cancelImplicitKeep();
    },
  },
  address: {
    kind: 'test',
    tags: { ...COMPARATOR_TAG, ...ADDRESS_PART_TAGS, ...MATCH_TAGS, ...INDEX_TAGS },
    pos: ['stringlist', 'stringlist'],
    check(node, ctx) {
      checkIndex(node, ctx);
      for (const h of listArg(node.pos[0])) {
        if (!h.value.includes('${') && !ADDRESS_HEADERS.has(h.value.toLowerCase())) ctx.error(`address: header '${h.value}' does not hold addresses (use the header test)`, h);
      }
    },
    test(node, rt) {
      const { parts, count } = addressValues(rt, node, rt.expandList(node.pos[0]));
      const keys = rt.expandList(node.pos[1]);
      if (node.matchType === 'count') return rt.matchCount(node, count, keys);
      return rt.match(node, parts, keys);
    },
  },
  allof: {
    kind: 'test',
    pos: [],
    tests: 'list',
    // the interpreter evaluates these (it needs to await the subtests in order, short-circuiting)
  },
  anyof: { kind: 'test', pos: [], tests: 'list' },
  not: { kind: 'test', pos: [], tests: 'one' },
  true: { kind: 'test', pos: [], test: () => true },
  false: { kind: 'test', pos: [], test: () => false },
  exists: {
    kind: 'test',
    pos: ['stringlist'],
    // RFC 5228 §5.5: true if every named header exists.
    test: (node, rt) => rt.expandList(node.pos[0]).every((h) => rt.rawHeaders(h).length > 0),
  },
  header: {
    kind: 'test',
    tags: { ...COMPARATOR_TAG, ...MATCH_TAGS, ...INDEX_TAGS },
    pos: ['stringlist', 'stringlist'],
    check: checkIndex,
    test(node, rt) {
      // RFC 5260 §6: :index counts the fields of all the named headers together.
      const values = indexed(node, rt.expandList(node.pos[0]).flatMap((h) => rt.headers(h)));
      const keys = rt.expandList(node.pos[1]);
      if (node.matchType === 'count') return rt.matchCount(node, values.length, keys);
      return rt.match(node, values, keys);
    },
  },
  size: {
    kind: 'test',
    tags: { over: { group: 'size' }, under: { group: 'size' } },
    pos: ['number'],
    check(node, ctx) {
      if (!node.tags.has('over') && !node.tags.has('under')) ctx.error('size needs :over or :under', node);
    },
    test(node, rt) {
      const limit = numArg(node.pos[0])!;
      // RFC 5228 §5.9: neither :over nor :under is true when the size equals the limit.
      return node.tags.has('over') ? rt.msg.size > limit : rt.msg.size < limit;
    },
  },
};

function stripAngle(a: string): string {
  const t = a.trim();
  return t.startsWith('<') && t.endsWith('>') ? t.slice(1, -1) : t;
}

/** RFC 5232 §3: a flag list is a set of space-separated flags; duplicates (case-insensitive) collapse. */
export function normaliseFlags(values: string[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const v of values) {
    for (const f of v.split(/\s+/)) {
      if (f === '') continue;
      const k = f.toLowerCase();
      if (seen.has(k)) continue;
      seen.add(k);
      out.push(f);
    }
  }
  return out;
}
