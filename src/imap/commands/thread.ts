/**
 * THREAD and UID THREAD (RFC 5256 §3) with the ORDEREDSUBJECT and REFERENCES algorithms (and REFS, see below),
 * over the messages the search criteria match. Dates are sent dates, or the internal date when a message has none (RFC 5256 §3 "sent
 * date"); equal dates keep mailbox order. Where RFC 5256 leaves a choice open (which of two parents a message keeps,
 * the subject table's tie rules) we decide as Dovecot does, so clients see the same threads on either server.
 */
import { bad, type ImapCommand } from '../command.js';
import { checkCharset, searchWithKeys, sentDate, type Sortable } from './sort.js';

interface Container {
  msg?: Sortable;
  parent?: Container;
  children: Container[];
}

/** A thread as it is written: a message (absent for a dummy) and its sorted replies. */
export interface ThreadNode {
  msg?: Sortable;
  children: ThreadNode[];
}

function dateOf(m: Sortable): number {
  return sentDate(m);
}

function byDate(a: Sortable, b: Sortable): number {
  return dateOf(a) - dateOf(b) || a.meta.uid - b.meta.uid;
}

/** RFC 5256 §3 ORDEREDSUBJECT: threads of equal base subject, each its oldest message with the others as replies. */
export function orderedSubject(msgs: Sortable[]): ThreadNode[] {
  const sorted = [...msgs].sort((a, b) => Buffer.compare(a.keys.subject, b.keys.subject) || byDate(a, b));
  const threads: Sortable[][] = [];
  for (const m of sorted) {
    const last = threads[threads.length - 1];
    if (last && last[0].keys.subject.equals(m.keys.subject)) last.push(m);
    else threads.push([m]);
  }
  // "The threads are then sorted by the sent date of the first message in each thread."
  threads.sort((a, b) => byDate(a[0], b[0]));
  return threads.map(([first, ...rest]) => ({ msg: first, children: rest.map((msg) => ({ msg, children: [] })) }));
}

/** Whether `node` is `ancestor` or has it above it. */
function hasAncestor(node: Container, ancestor: Container): boolean {
  for (let n: Container | undefined = node; n; n = n.parent) if (n === ancestor) return true;
  return false;
}

function unlink(child: Container): void {
  const p = child.parent;
  if (!p) return;
  p.children.splice(p.children.indexOf(child), 1);
  child.parent = undefined;
}

/** RFC 5256 §3 REFERENCES (1)(A): link parent to child unless that makes a loop or the child already has a parent. */
function link(parent: Container, child: Container): void {
  if (hasAncestor(parent, child)) return;
  if (child.parent) return;
  child.parent = parent;
  parent.children.push(child);
}

interface Root {
  node: ThreadNode;
  dummy: boolean;
  /** Date and UID the root sorts by (for a dummy: those of its oldest child). */
  first?: Sortable;
  ignore: boolean;
  /** Set by the subject gathering: the root this one merges into (REFERENCES step 5). */
  parentRoot?: Root;
  replyOrForward: boolean;
}

function sortChildren(n: ThreadNode): ThreadNode[] {
  return n.children.sort((a, b) => byDate(a.msg!, b.msg!));
}

/** REFERENCES (4): sort the root set by date; a dummy sorts by its oldest child, and one with a single child is that child. */
function sortRoots(roots: Root[]): void {
  for (const r of roots) {
    if (r.ignore) continue;
    if (r.dummy) {
      const kids = sortChildren(r.node);
      if (!kids.length) {
        r.ignore = true;
        continue;
      }
      if (kids.length === 1) {
        r.node = kids[0];
        r.dummy = false;
      }
      r.first = kids[0].msg;
    } else r.first = r.node.msg;
  }
  roots.sort((a, b) => (a.ignore || b.ignore ? Number(a.ignore) - Number(b.ignore) : byDate(a.first!, b.first!)));
}

/**
 * RFC 5256 §3 REFERENCES, steps (1) to (6); with `refs`, the REFS algorithm of draft-ietf-morg-inthread (as Dovecot
 * has it): the same links, but no grouping by subject, and threads ordered by their newest message.
 */
export function references(msgs: Sortable[], refs = false): ThreadNode[] {
  // (1) Containers by Message-ID; a missing or repeated Message-ID gets a container of its own.
  const byId = new Map<string, Container>();
  const all: Container[] = [];
  const container = (id: string): Container => {
    let c = byId.get(id);
    if (!c) {
      c = { children: [] };
      byId.set(id, c);
      all.push(c);
    }
    return c;
  };
  for (const m of [...msgs].sort((a, b) => a.meta.uid - b.meta.uid)) {
    const id = m.keys.messageId;
    let c: Container;
    if (id !== undefined && !byId.get(id)?.msg) c = container(id);
    else {
      c = { children: [] };
      all.push(c);
    }
    c.msg = m;
    // (1)(A) link the References in order, each the parent of the next.
    const refs = m.keys.references.map(container);
    for (let i = 0; i + 1 < refs.length; i++) link(refs[i], refs[i + 1]);
    // (1)(B) the last reference is this message's parent; a different parent it had (from a truncated References
    // of another message) is dropped first, and no link is made that would create a loop.
    const last = refs[refs.length - 1];
    if (c.parent && c.parent !== last) unlink(c);
    if (last && !c.parent) link(last, c);
  }

  // (2) the root set; (3) dummies go away: a message hangs under its nearest real ancestor, or the topmost dummy.
  const node = new Map<Container, ThreadNode>();
  const nodeOf = (c: Container): ThreadNode => {
    let n = node.get(c);
    if (!n) {
      n = { msg: c.msg, children: [] };
      node.set(c, n);
    }
    return n;
  };
  const roots: Root[] = [];
  for (const c of all) {
    if (!c.parent) {
      roots.push({ node: nodeOf(c), dummy: !c.msg, ignore: false, replyOrForward: false });
      continue;
    }
    if (!c.msg) continue;
    let p = c.parent;
    while (!p.msg && p.parent) p = p.parent;
    nodeOf(p).children.push(nodeOf(c));
  }

  if (refs) return refsOrder(roots);

  // (4) sort the roots, (5) gather roots of equal base subject, (5)(C) merge them, and sort again.
  sortRoots(roots);
  const subjects = new Map<string, Root>();
  for (const r of roots) {
    if (r.ignore) continue;
    const m = r.dummy ? r.node.children[0].msg! : r.node.msg!;
    if (!m.keys.subject.length) continue;
    const key = m.keys.subject.toString('latin1');
    const rf = m.keys.replyOrForward;
    const hit = subjects.get(key);
    if (!hit) subjects.set(key, r);
    else if (!hit.dummy && (r.dummy || (hit.replyOrForward && !rf))) {
      // A dummy, or a message that is not a reply, represents the subject better than the one in the table.
      hit.parentRoot = r;
      subjects.set(key, r);
    } else r.parentRoot = hit;
    r.replyOrForward = rf;
  }
  let merged = false;
  for (let i = 0; i < roots.length; i++) {
    const cur = roots[i];
    if (!cur.parentRoot || cur.ignore) continue;
    merged = true;
    let top = cur.parentRoot;
    while (top.parentRoot) top = top.parentRoot;
    if (cur.dummy) {
      // Both dummies: the children of both become siblings.
      top.node.children.push(...cur.node.children);
      cur.node.children = [];
      cur.ignore = true;
    } else if (top.dummy || (cur.replyOrForward && !top.replyOrForward)) {
      // A real message joins a dummy's children, or a reply goes under the message it replies to.
      top.node.children.push(cur.node);
      cur.ignore = true;
    } else {
      // Otherwise both become children of a new dummy, which takes the place of the one in the subject table.
      const dummy: Root = { node: { children: [top.node, cur.node] }, dummy: true, ignore: false, replyOrForward: false };
      top.parentRoot = dummy;
      top.ignore = true;
      cur.ignore = true;
      roots.push(dummy);
    }
  }
  if (merged) sortRoots(roots);

  // (6) every set of siblings by date.
  const sortAll = (n: ThreadNode) => {
    sortChildren(n);
    n.children.forEach(sortAll);
  };
  const out = roots.filter((r) => !r.ignore).map((r) => r.node);
  out.forEach(sortAll);
  return out;
}

/** REFS: threads by the date of their newest message (then UID, a dummy first), replies by date at every level. */
function refsOrder(roots: Root[]): ThreadNode[] {
  const newest = (n: ThreadNode): number => Math.max(n.msg ? dateOf(n.msg) : -Infinity, ...n.children.map(newest));
  const keyed = roots
    .filter((r) => r.node.msg || r.node.children.length)
    .map((r) => ({ node: r.node.msg || r.node.children.length > 1 ? r.node : r.node.children[0], date: newest(r.node), uid: r.node.msg?.meta.uid ?? 0 }));
  keyed.sort((a, b) => a.date - b.date || a.uid - b.uid);
  const sortAll = (n: ThreadNode) => {
    sortChildren(n);
    n.children.forEach(sortAll);
  };
  const out = keyed.map((k) => k.node);
  out.forEach(sortAll);
  return out;
}

/**
 * RFC 5256 §4: thread-list = "(" (thread-members / thread-nested) ")"; a message with one reply continues the
 * list, one with several replies ends it with a nested list per reply; a dummy is only its nested lists.
 */
export function formatThreads(threads: ThreadNode[], num: (m: Sortable) => number): string {
  const list = (n: ThreadNode): string => {
    const members: number[] = [];
    let cur = n;
    if (cur.msg) {
      members.push(num(cur.msg));
      while (cur.children.length === 1) {
        cur = cur.children[0];
        members.push(num(cur.msg!));
      }
    }
    const nested = cur.children.length > 1 || !cur.msg ? cur.children.map(list).join('') : '';
    return `(${members.join(' ')}${members.length && nested ? ' ' : ''}${nested})`;
  };
  return threads.map(list).join('');
}

export const thread: ImapCommand = {
  names: ['THREAD'],
  states: ['selected'],
  uid: true,
  async handle(session, cmd) {
    if (cmd.args.length < 3) throw bad('Wrong number of arguments for THREAD');
    const alg = cmd.args[0].type === 'atom' ? cmd.args[0].value.toUpperCase() : '';
    if (alg !== 'ORDEREDSUBJECT' && alg !== 'REFERENCES' && alg !== 'REFS') throw bad('Unknown threading algorithm');
    checkCharset(cmd.args[1]);
    const msgs = await searchWithKeys(session, cmd.args.slice(2));
    const threads = alg === 'ORDEREDSUBJECT' ? orderedSubject(msgs) : references(msgs, alg === 'REFS');
    const text = formatThreads(threads, (m) => (cmd.uid ? m.meta.uid : m.seq));
    session.untagged(`THREAD${text ? ' ' + text : ''}`);
  },
};
