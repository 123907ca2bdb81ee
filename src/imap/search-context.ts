/**
 * Updating searches of CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4.3): a SEARCH or SORT with RETURN (UPDATE) keeps
 * its result, and the session tells the client how it changes — `ESEARCH (TAG "t") ADDTO (...)` when a message
 * arrives or changes so that it matches, `REMOVEFROM (...)` when it no longer matches or is expunged — until
 * CANCELUPDATE or until the mailbox is deselected.
 *
 * Changes are evaluated per message: a message that arrived or whose flags changed is matched again; the others keep
 * their membership (the criteria are not re-run over the whole folder at every command). REMOVEFROM of an expunged
 * message is sent before its EXPUNGE, while its sequence number is still valid (connection.ts reportExpunge).
 *
 * Positions: a SEARCH result has no order beyond the numbers themselves, so its ADDTO/REMOVEFROM carry position 0
 * (as Dovecot sends). A SORT result is ordered (§4.3 "context-position"): ADDTO pairs give the 1-based position each
 * run of messages has in the updated result, in ascending order, so a client inserting them one pair after the
 * other gets the server's order; REMOVEFROM pairs give the positions the messages had, in descending order, so
 * removing them one pair after the other never shifts a position still to come.
 */
import type { ImapSession } from './connection.js';
import { matchAt, type Criterion } from './commands/search.js';
import { compareSortable, sortableOf, type Sortable, type SortCriterion } from './commands/sort.js';
import type { MessageKeys } from './message-keys.js';
import { formatSequenceSet } from './parser.js';
import { orderedSet } from './search-return.js';

export interface SearchContext {
  /** The tag of the command that made it: the name CANCELUPDATE and every ESEARCH update use. */
  tag: string;
  /** Whether numbers are UIDs (UID SEARCH / UID SORT) or sequence numbers. */
  uid: boolean;
  criteria: Criterion;
  /** The sort criteria of a SORT context; absent for SEARCH. */
  sort?: SortCriterion[];
  /** UIDs of the result: ascending for SEARCH, in sort order for SORT. */
  result: number[];
  /** Sort keys of the members (SORT only), to place arriving messages without reading the others again. */
  keys?: Map<number, MessageKeys>;
}

/**
 * RFC 5267 §4.3 lets a server refuse to keep a result up to date ("NOUPDATE"). Each context costs a match of every
 * arriving or changed message (a read of its header or body for text criteria), so a session keeps at most this many.
 */
export const MAX_SEARCH_CONTEXTS = 16;

function numberOf(session: ImapSession, ctx: SearchContext, uid: number): number {
  return ctx.uid ? uid : session.indexOfUid(uid) + 1;
}

function head(ctx: SearchContext): string {
  return `ESEARCH (TAG ${JSON.stringify(ctx.tag)})${ctx.uid ? ' UID' : ''}`;
}

/**
 * Runs of `entries` (position, number), sorted by position, where positions are consecutive and numbers ascend: each
 * run is one "position set" pair of a SORT context.
 */
function runs(entries: { pos: number; num: number }[]): { pos: number; nums: number[] }[] {
  const out: { pos: number; nums: number[] }[] = [];
  for (const e of entries) {
    const last = out[out.length - 1];
    if (last && e.pos === last.pos + last.nums.length && e.num > last.nums[last.nums.length - 1]) last.nums.push(e.num);
    else out.push({ pos: e.pos, nums: [e.num] });
  }
  return out;
}

/** Drops `uids` (members of the result) and sends REMOVEFROM; sequence numbers are those of the current view. */
export function removeFromContext(session: ImapSession, ctx: SearchContext, uids: number[]): void {
  const gone = new Set(uids);
  if (!ctx.sort) {
    const nums = uids.map((u) => numberOf(session, ctx, u)).sort((a, b) => a - b);
    ctx.result = ctx.result.filter((u) => !gone.has(u));
    session.untagged(`${head(ctx)} REMOVEFROM (0 ${formatSequenceSet(nums)})`);
    return;
  }
  const entries: { pos: number; num: number }[] = [];
  ctx.result.forEach((u, i) => {
    if (gone.has(u)) entries.push({ pos: i + 1, num: numberOf(session, ctx, u) });
  });
  ctx.result = ctx.result.filter((u) => !gone.has(u));
  for (const u of uids) ctx.keys?.delete(u);
  const pairs = runs(entries).reverse();
  session.untagged(`${head(ctx)} REMOVEFROM (${pairs.map((p) => `${p.pos} ${orderedSet(p.nums)}`).join(' ')})`);
}

/** Adds `uids` (in the view, not yet members) to the result and sends ADDTO. */
async function addToContext(session: ImapSession, ctx: SearchContext, uids: number[]): Promise<void> {
  const sel = session.selected!;
  if (!ctx.sort) {
    const all = new Set([...ctx.result, ...uids]);
    ctx.result = [...all].sort((a, b) => a - b);
    const nums = uids.map((u) => numberOf(session, ctx, u)).sort((a, b) => a - b);
    session.untagged(`${head(ctx)} ADDTO (0 ${formatSequenceSet(nums)})`);
    return;
  }
  const criteria = ctx.sort;
  const keys = (ctx.keys ??= new Map());
  const fresh = await sortableOf(
    session,
    uids.map((u) => {
      const i = session.indexOfUid(u);
      return { seq: i + 1, meta: sel.messages[i] };
    }),
  );
  if (session.selected !== sel) return;
  for (const f of fresh) keys.set(f.meta.uid, f.keys);
  const sortable = (uid: number): Sortable => ({ seq: 0, meta: sel.messages[session.indexOfUid(uid)], keys: keys.get(uid)! });
  const result = ctx.result.map(sortable);
  for (const f of fresh) {
    // Binary search for the first member that sorts after the new one.
    let lo = 0;
    let hi = result.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareSortable(criteria, result[mid], f) <= 0) lo = mid + 1;
      else hi = mid;
    }
    result.splice(lo, 0, f);
  }
  ctx.result = result.map((s) => s.meta.uid);
  const added = new Set(uids);
  const entries: { pos: number; num: number }[] = [];
  ctx.result.forEach((u, i) => {
    if (added.has(u)) entries.push({ pos: i + 1, num: numberOf(session, ctx, u) });
  });
  session.untagged(`${head(ctx)} ADDTO (${runs(entries).map((p) => `${p.pos} ${orderedSet(p.nums)}`).join(' ')})`);
}

/** Matches the messages in `changed` (UIDs that arrived or changed flags) again and reports what moved in or out. */
export async function updateContexts(session: ImapSession, changed: Iterable<number>): Promise<void> {
  const sel = session.selected;
  if (!sel) return;
  const indexes = [...changed]
    .map((u) => session.indexOfUid(u))
    .filter((i) => i >= 0)
    .sort((a, b) => a - b);
  if (!indexes.length) return;
  for (const ctx of [...sel.contexts.values()]) {
    const matched = new Set((await matchAt(session, ctx.criteria, indexes)).map((i) => sel.messages[i].uid));
    if (session.selected !== sel || sel.contexts.get(ctx.tag) !== ctx) continue;
    const members = new Set(ctx.result);
    const candidates = indexes.map((i) => sel.messages[i]?.uid).filter((u): u is number => u !== undefined);
    const removed = candidates.filter((u) => members.has(u) && !matched.has(u));
    const added = candidates.filter((u) => matched.has(u) && !members.has(u));
    if (removed.length) removeFromContext(session, ctx, removed);
    if (added.length) await addToContext(session, ctx, added);
  }
}
