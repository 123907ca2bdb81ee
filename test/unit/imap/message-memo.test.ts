/**
 * The FETCH memo (src/imap/message-memo.ts): entries are found by owner, folder, UIDVALIDITY and UID, ignored when
 * the message's size or internal date differ, keep a copy of the header (never the message buffer it was cut from),
 * skip oversized headers, and stay within their byte bound by dropping the least recently used first.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_HEADER, MessageMemo } from '../../../src/imap/message-memo.ts';
import type { MessageMeta } from '../../../src/store/mailbox.ts';

const meta = (uid: number, size = 100, t = 1_700_000_000_000): MessageMeta => ({ uid, size, flags: [], internalDate: new Date(t) }) as MessageMeta;
const john = { kind: 'user' as const, login: 'John.Smith' };

describe('MessageMemo', () => {
  test('keys separate owners, folders, UIDVALIDITY and UIDs; a login is case-insensitive, a GUID wins over it', () => {
    const k = MessageMemo.key;
    const keys = [
      k(john, 'INBOX', 1, 1),
      k(john, 'INBOX', 1, 2),
      k(john, 'INBOX', 2, 1),
      k(john, 'Sent', 1, 1),
      k({ kind: 'shared', group: 'Sales' }, 'INBOX', 1, 1),
      k({ kind: 'user', login: 'john.smith', guid: 'abc' }, 'INBOX', 1, 1),
    ];
    assert.equal(new Set(keys).size, keys.length);
    assert.equal(k(john, 'INBOX', 1, 1), k({ kind: 'user', login: 'john.smith' }, 'INBOX', 1, 1));
  });

  test('answers only for the same size and internal date', () => {
    const memo = new MessageMemo();
    const key = MessageMemo.key(john, 'INBOX', 7, 1);
    memo.put(key, meta(1), { envelope: Buffer.from('(NIL)') });
    assert.equal(memo.get(key, meta(1))?.envelope?.toString(), '(NIL)');
    assert.equal(memo.get(key, meta(1, 101)), undefined);
    // The mismatch dropped the entry.
    assert.equal(memo.get(key, meta(1)), undefined);
    memo.put(key, meta(1), { body: Buffer.from('("TEXT")') });
    assert.equal(memo.get(key, meta(1, 100, 1)), undefined);
    assert.equal(memo.size, 0);
    assert.equal(memo.usedBytes, 0);
  });

  test('adds to an entry, copies what it keeps into memory of its own, and does not keep an oversized header', () => {
    const memo = new MessageMemo();
    const key = MessageMemo.key(john, 'INBOX', 7, 1);
    const raw = Buffer.from('Subject: x\r\n\r\nbody');
    memo.put(key, meta(1), { header: raw.subarray(0, 14) });
    memo.put(key, meta(1), { bodystructure: Buffer.from('(B)') });
    const e = memo.get(key, meta(1))!;
    assert.equal(e.header?.toString(), 'Subject: x\r\n\r\n');
    assert.equal(e.bodystructure?.toString(), '(B)');
    assert.notEqual(e.header!.buffer, raw.buffer, 'a copy, not a view of the message');
    // Not a slice of Node's shared pool either, which it would keep alive.
    assert.equal(e.header!.buffer.byteLength, e.header!.length);
    raw.fill(0);
    assert.equal(e.header?.toString(), 'Subject: x\r\n\r\n');

    const big = MessageMemo.key(john, 'INBOX', 7, 2);
    memo.put(big, meta(2), { header: Buffer.alloc(MAX_HEADER + 1, 0x61), envelope: Buffer.from('(E)') });
    assert.equal(memo.get(big, meta(2))?.header, undefined);
    assert.equal(memo.get(big, meta(2))?.envelope?.toString(), '(E)');
  });

  test('stays within its bound, dropping the least recently used first', () => {
    const memo = new MessageMemo(10_000);
    const key = (uid: number) => MessageMemo.key(john, 'INBOX', 7, uid);
    for (let uid = 1; uid <= 5; uid++) memo.put(key(uid), meta(uid), { header: Buffer.alloc(1000) });
    assert.ok(memo.get(key(1), meta(1)), 'touched: now the most recent');
    for (let uid = 6; uid <= 20; uid++) memo.put(key(uid), meta(uid), { header: Buffer.alloc(1000) });
    assert.ok(memo.usedBytes <= 10_000);
    assert.ok(memo.size >= 5 && memo.size < 20);
    assert.equal(memo.get(key(2), meta(2)), undefined, 'the oldest untouched one went first');
    assert.ok(memo.get(key(20), meta(20)));
  });

  test('a memo with a zero bound keeps nothing', () => {
    const memo = new MessageMemo(0);
    memo.put('k', meta(1), { envelope: Buffer.from('(E)') });
    assert.equal(memo.size, 0);
  });
});
