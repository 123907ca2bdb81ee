/**
 * resolveSet (src/imap/command.ts) walks index ranges of the view instead of testing every message: its answer must
 * be what testing every message against the set (inSequenceSet, RFC 3501 §9 sequence-set with "*") gives, for
 * sequence numbers and UIDs, overlapping and reversed ranges, "*" beyond the last UID, and sparse UIDs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveSet } from '../../../src/imap/command.ts';
import type { ImapSession } from '../../../src/imap/connection.ts';
import { inSequenceSet, parseSequenceSet } from '../../../src/imap/parser.ts';
import type { MessageMeta } from '../../../src/store/mailbox.ts';

function view(uids: number[]): ImapSession {
  const messages = uids.map((uid) => ({ uid, flags: [], size: 1, internalDate: new Date(0) }) as unknown as MessageMeta);
  return { selected: { messages, saved: new Set<number>() } } as unknown as ImapSession;
}

/** The definition: every message of the view tested against the set. */
function reference(session: ImapSession, text: string, uid: boolean): number[] {
  const msgs = session.selected!.messages;
  const set = parseSequenceSet(text);
  const max = uid ? (msgs.at(-1)?.uid ?? 0) : msgs.length;
  return msgs.flatMap((m, i) => (inSequenceSet(set, uid ? m.uid : i + 1, max) ? [i + 1] : []));
}

const seqs = (session: ImapSession, text: string, uid: boolean) => resolveSet(session, text, uid).map((r) => r.seq);

test('spelled-out sets: sequence numbers and UIDs, overlaps, reversed ranges, * past the end', () => {
  const s = view([3, 4, 7, 10, 11, 20]);
  assert.deepEqual(seqs(s, '1:3', false), [1, 2, 3]);
  assert.deepEqual(seqs(s, '5:*,2,1:2', false), [1, 2, 5, 6]);
  assert.deepEqual(seqs(s, '9:7', false), []);
  assert.deepEqual(seqs(s, '4:10', true), [2, 3, 4]);
  assert.deepEqual(seqs(s, '25:*', true), [6], 'RFC 3501 §6.4.8: n:* with n past the last UID is the last message');
  assert.deepEqual(seqs(s, '1,5:6,8:9,21', true), []);
  assert.deepEqual(seqs(s, '*', false), [6]);
  assert.deepEqual(seqs(view([]), '1:*', true), []);
  assert.deepEqual(resolveSet(s, '2', false)[0]!.meta.uid, 4);
});

test('random sets give what testing every message gives', () => {
  let seed = 42;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let round = 0; round < 500; round++) {
    const uids: number[] = [];
    let u = 0;
    for (let i = rnd(40); i > 0; i--) uids.push((u += 1 + rnd(5)));
    const s = view(uids);
    const parts: string[] = [];
    for (let i = 1 + rnd(4); i > 0; i--) {
      const a = rnd(3) === 0 ? '*' : String(1 + rnd(60));
      parts.push(rnd(2) ? a : `${a}:${rnd(4) === 0 ? '*' : String(1 + rnd(60))}`);
    }
    const text = parts.join(',');
    for (const uid of [false, true]) assert.deepEqual(seqs(s, text, uid), reference(s, text, uid), `${uid ? 'UID ' : ''}${text} over ${uids.join(',')}`);
  }
});
