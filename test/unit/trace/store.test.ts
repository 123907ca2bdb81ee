import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../src/lib/logger.ts';
import { waitFor } from '../../helpers/wait.ts';
import { messageIdOf } from '../../../src/trace/message-id.ts';
import { TraceRetention } from '../../../src/trace/retention.ts';
import { openTraceStore, TraceStore, WORKER_MIN_BATCH } from '../../../src/trace/store.ts';
import { parseTraceTime, TraceTimeError } from '../../../src/trace/time.ts';

const DAY = 86_400_000;
const T0 = Date.parse('2026-11-01T10:00:00Z');

function fresh(t: { after(fn: () => void): void }, opts: ConstructorParameters<typeof TraceStore>[1] = {}): TraceStore {
  const dir = mkdtempSync(join(tmpdir(), 'postern-trace-'));
  const store = openTraceStore(dir, opts);
  t.after(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

/** Three messages: a local delivery, a relay through a list expansion, a bounce with its DSN. */
function fill(store: TraceStore): void {
  store.record({ queueId: 'AAAAAAAAAAAAAAA1', type: 'received', at: T0, from: 'John@Example.com', recipients: ['anna@example.com'], messageId: '<one@example.com>', detail: { listener: 'submission', user: 'john.smith', size: 100 } });
  store.record({ queueId: 'AAAAAAAAAAAAAAA1', type: 'filter', at: T0 + 1, detail: { stage: 'clamav', action: 'accept' } });
  store.record({ queueId: 'AAAAAAAAAAAAAAA1', type: 'queued', at: T0 + 2, from: 'john@example.com', recipients: ['anna@example.com'] });
  store.record({ queueId: 'AAAAAAAAAAAAAAA1', type: 'delivered', at: T0 + 3, rcpt: 'anna@example.com', detail: { mailbox: 'anna.bianchi', folder: 'INBOX' } });
  store.record({ queueId: 'AAAAAAAAAAAAAAA2', type: 'received', at: T0 + DAY, from: 'laura@example.com', recipients: ['sales@example.com'], messageId: 'two@example.com' });
  store.record({ queueId: 'AAAAAAAAAAAAAAA2', type: 'delivered', at: T0 + DAY + 1, rcpt: 'sales@example.com', detail: { reply: '250 2.1.5 expanded to 2 members of sales' } });
  store.record({ queueId: 'AAAAAAAAAAAAAAA2', type: 'relayed', at: T0 + DAY + 2, rcpt: 'Partner@Remote.example', detail: { host: 'mx.remote.example', reply: '250 ok' } });
  store.record({ queueId: 'AAAAAAAAAAAAAAA3', type: 'received', at: T0 + 2 * DAY, from: 'john@example.com', recipients: ['nobody@remote.example'], messageId: 'three@example.com' });
  store.record({ queueId: 'AAAAAAAAAAAAAAA3', type: 'failed', at: T0 + 2 * DAY + 1, rcpt: 'nobody@remote.example', detail: { reply: '550 5.1.1 no such user' } });
  store.record({ queueId: 'AAAAAAAAAAAAAAA3', type: 'bounced', at: T0 + 2 * DAY + 2, detail: { dsnId: 'AAAAAAAAAAAAAAA4' } });
  store.record({ queueId: 'AAAAAAAAAAAAAAA4', type: 'queued', at: T0 + 2 * DAY + 2, from: '', recipients: ['john@example.com'] });
}

test('a query answers whole paths, grouped per message, events in the order recorded', (t) => {
  const store = fresh(t);
  fill(store);
  const [p] = store.query({ queueId: 'aaaaaaaaaaaaaaa1' });
  assert.equal(p.queueId, 'AAAAAAAAAAAAAAA1');
  assert.equal(p.from, 'john@example.com', 'addresses are kept lower-case');
  assert.equal(p.messageId, 'one@example.com', 'Message-IDs without angle brackets');
  assert.deepEqual(p.recipients, ['anna@example.com']);
  assert.deepEqual(p.events.map((e) => e.type), ['received', 'filter', 'queued', 'delivered']);
  assert.deepEqual(p.events[3], { at: new Date(T0 + 3).toISOString(), type: 'delivered', rcpt: 'anna@example.com', detail: { mailbox: 'anna.bianchi', folder: 'INBOX' } });
  assert.equal(p.firstAt, new Date(T0).toISOString());
  assert.equal(p.lastAt, new Date(T0 + 3).toISOString());
});

test('finds messages by sender, recipient (also one reached by expansion), Message-ID and time', (t) => {
  const store = fresh(t);
  fill(store);
  const ids = (q: Parameters<TraceStore['query']>[0]) => store.query(q).map((p) => p.queueId.slice(-1));
  assert.deepEqual(ids({ from: 'JOHN@example.com' }), ['3', '1'], 'the last received first');
  assert.deepEqual(ids({ from: '' }), ['4'], 'the null sender finds the DSN');
  assert.deepEqual(ids({ to: 'partner@remote.example' }), ['2'], 'a recipient of an event counts');
  assert.deepEqual(ids({ to: 'sales@example.com' }), ['2']);
  assert.deepEqual(ids({ messageId: '<two@example.com>' }), ['2']);
  assert.deepEqual(ids({ messageId: 'three@example.com' }), ['3']);
  assert.deepEqual(ids({ since: T0 + DAY + 2 }), ['4', '3', '2'], 'since: any event at or after it');
  assert.deepEqual(ids({ until: T0 + DAY }), ['2', '1'], 'until: first event at or before it');
  assert.deepEqual(ids({ since: T0 + 10, until: T0 + DAY }), ['2']);
  assert.deepEqual(ids({ from: 'john@example.com', to: 'anna@example.com' }), ['1'], 'criteria combine');
  assert.deepEqual(ids({ from: 'john@example.com', limit: 1 }), ['3']);
  assert.deepEqual(ids({ to: 'nobody@example.com' }), []);
  assert.deepEqual(ids({ from: "x' OR 1=1 --" }), [], 'values are bound, never spliced into SQL');
});

test('record() only queues: the events of one batch window are written in one transaction', async (t) => {
  // A window longer than the test: what ends it here is the query (count), which flushes first.
  const store = fresh(t, { batchMs: 600_000 });
  for (let i = 0; i < 50; i++) store.record({ queueId: 'BBBBBBBBBBBBBBB1', type: 'filter', detail: { i } });
  assert.equal(store.stats.batches, 0, 'nothing written synchronously');
  // Events of later turns of the event loop join the same batch (four per message: received … completed).
  await new Promise((r) => setImmediate(r));
  for (let i = 50; i < 100; i++) store.record({ queueId: 'BBBBBBBBBBBBBBB1', type: 'filter', detail: { i } });
  await new Promise((r) => setImmediate(r));
  assert.equal(store.stats.batches, 0, 'still waiting for the window to end');
  assert.equal(store.count().events, 100);
  assert.equal(store.stats.batches, 1);
  assert.equal(store.stats.written, 100);
});

test('a batch is written when its window ends, or at once when it is large', async (t) => {
  const store = fresh(t, { batchMs: 10 });
  store.record({ queueId: 'BBBBBBBBBBBBBBB2', type: 'filter' });
  await waitFor('the window written by its timer', () => store.stats.batches === 1, { timeoutMs: 30_000 });
  const big = fresh(t, { batchMs: 600_000 });
  for (let i = 0; i < 1000; i++) big.record({ queueId: 'BBBBBBBBBBBBBBB3', type: 'filter', detail: { i } });
  assert.equal(big.stats.batches, 1, '1000 pending events are written without waiting');
  assert.equal(big.stats.written, 1000);
});

test('a query sees events recorded just before it (it flushes first)', (t) => {
  const store = fresh(t);
  store.record({ queueId: 'CCCCCCCCCCCCCCC1', type: 'received', from: 'a@example.com', recipients: ['b@example.com'] });
  assert.equal(store.query({ from: 'a@example.com' }).length, 1);
});

test('a trace that cannot be written drops the batch and never throws (mail is not affected)', (t) => {
  const store = fresh(t, { timeout: 20, log: silentLogger });
  store.record({ queueId: 'DDDDDDDDDDDDDDD1', type: 'received' });
  store.flush();
  // Another connection holds the write lock longer than the busy timeout.
  const Database = createRequire(import.meta.url)('better-sqlite3') as new (f: string) => { exec(s: string): void; close(): void };
  const other = new Database(store.file);
  other.exec('BEGIN EXCLUSIVE');
  try {
    store.record({ queueId: 'DDDDDDDDDDDDDDD1', type: 'queued' });
    assert.doesNotThrow(() => store.flush());
    assert.equal(store.stats.dropped, 1);
  } finally {
    other.exec('ROLLBACK');
    other.close();
  }
  store.record({ queueId: 'DDDDDDDDDDDDDDD1', type: 'completed' });
  assert.deepEqual(store.query({ queueId: 'DDDDDDDDDDDDDDD1' })[0].events.map((e) => e.type), ['received', 'completed'], 'writes again once the lock is gone');
});

test('events recorded after close() are ignored; close() writes what was pending', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-trace-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = openTraceStore(dir);
  store.record({ queueId: 'EEEEEEEEEEEEEEE1', type: 'received' });
  store.close();
  assert.doesNotThrow(() => store.record({ queueId: 'EEEEEEEEEEEEEEE1', type: 'queued' }));
  const again = openTraceStore(dir);
  assert.deepEqual(again.query({ queueId: 'EEEEEEEEEEEEEEE1' })[0].events.map((e) => e.type), ['received']);
  again.close();
});

test("writer 'worker': a large batch is written by a thread of its own, the event loop goes on while trace.db is locked", async (t) => {
  // A busy timeout longer than the lock below: the thread waits for it, nothing is dropped.
  const store = fresh(t, { writer: 'worker', timeout: 60_000, batchMs: 600_000 });
  const Database = createRequire(import.meta.url)('better-sqlite3') as new (f: string) => { exec(s: string): void; close(): void };
  const other = new Database(store.file);
  other.exec('BEGIN EXCLUSIVE');
  let released = false;
  try {
    for (let i = 0; i < WORKER_MIN_BATCH; i++) store.record({ queueId: 'FFFFFFFFFFFFFFF1', type: 'filter', detail: { i } });
    // Inline, this flush would wait on the lock for the busy timeout (a minute) and block the loop meanwhile.
    store.flush();
    let turns = 0;
    await waitFor('the event loop turning while the batch waits for the lock', () => ++turns >= 20, { timeoutMs: 30_000 });
    assert.equal(store.stats.written, 0, 'not written while locked');
    assert.equal(store.stats.dropped, 0);
  } finally {
    other.exec('ROLLBACK');
    other.close();
    released = true;
  }
  assert.ok(released);
  await waitFor('the thread wrote the batch once the lock was gone', () => store.stats.written === WORKER_MIN_BATCH, { timeoutMs: 60_000 });
  assert.equal(store.stats.batches, 1);
  assert.equal(store.count().events, WORKER_MIN_BATCH);
});

test("writer 'worker': small batches are written inline until the thread exists; a query sees every event, in order", (t) => {
  const store = fresh(t, { writer: 'worker', batchMs: 600_000 });
  store.record({ queueId: 'FFFFFFFFFFFFFFF2', type: 'received', detail: { i: 0 } });
  store.flush();
  assert.equal(store.stats.batches, 1, 'one event: written here, at once, no thread started for it');
  for (let i = 1; i <= WORKER_MIN_BATCH; i++) store.record({ queueId: 'FFFFFFFFFFFFFFF2', type: 'filter', detail: { i } });
  store.flush();
  // From now on everything goes through the thread, small batches too, so the order stays that of record().
  store.record({ queueId: 'FFFFFFFFFFFFFFF2', type: 'completed', detail: { i: WORKER_MIN_BATCH + 1 } });
  // No flush and no wait: the query hands over what is pending and waits until the thread has written it.
  const [p] = store.query({ queueId: 'FFFFFFFFFFFFFFF2' });
  assert.deepEqual(p.events.map((e) => e.detail.i), Array.from({ length: WORKER_MIN_BATCH + 2 }, (_, i) => i));
  assert.equal(store.stats.written, WORKER_MIN_BATCH + 2);
  assert.equal(store.stats.batches, 3);
});

test("writer 'worker': close() writes what was pending before the thread goes", (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-trace-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = openTraceStore(dir, { writer: 'worker', batchMs: 600_000 });
  for (let i = 0; i < WORKER_MIN_BATCH; i++) store.record({ queueId: 'FFFFFFFFFFFFFFF3', type: 'filter', detail: { i } });
  store.flush();
  store.record({ queueId: 'FFFFFFFFFFFFFFF3', type: 'completed' });
  store.close();
  const again = openTraceStore(dir);
  assert.equal(again.query({ queueId: 'FFFFFFFFFFFFFFF3' })[0].events.length, WORKER_MIN_BATCH + 1);
  again.close();
});

test('retention deletes whole paths whose last event is older than trace.retentionDays; 0 keeps everything', async (t) => {
  const store = fresh(t);
  fill(store);
  let days = 0;
  const now = T0 + 2 * DAY + 10;
  const retention = new TraceRetention({ store, settings: { get: () => days }, log: silentLogger, now: () => now });
  assert.deepEqual(await retention.sweep(), { messages: 0, events: 0 });
  assert.equal(store.count().messages, 4);
  days = 1;
  // Message 2's last event (T0+DAY+2) is older than a day before now (T0+DAY+10): gone with all its events;
  // message 1 too; 3 and 4 stay.
  assert.deepEqual(await retention.sweep(), { messages: 2, events: 7 });
  assert.deepEqual(store.query({}).map((p) => p.queueId.slice(-1)), ['4', '3']);
  assert.deepEqual(store.query({ to: 'anna@example.com' }), [], 'its recipients are gone too');
  await retention.stop();
});

test('deleteBefore works in chunks', async (t) => {
  const store = fresh(t);
  for (let i = 0; i < 25; i++) store.record({ queueId: `F${String(i).padStart(15, '0')}`, type: 'received', at: T0 + i });
  assert.deepEqual(await store.deleteBefore(T0 + 20, 4), { messages: 20, events: 20 });
  assert.equal(store.count().messages, 5);
});

test('parseTraceTime reads ISO dates and times and spans back from now', () => {
  const now = Date.parse('2026-12-01T12:00:00Z');
  assert.equal(parseTraceTime('2h', now), now - 2 * 3_600_000);
  assert.equal(parseTraceTime('90m', now), now - 90 * 60_000);
  assert.equal(parseTraceTime('3d', now), now - 3 * DAY);
  assert.equal(parseTraceTime('1w', now), now - 7 * DAY);
  assert.equal(parseTraceTime('2026-12-01', now), Date.parse('2026-12-01T00:00:00Z'));
  assert.equal(parseTraceTime('2026-12-01T09:30Z', now), Date.parse('2026-12-01T09:30:00Z'));
  assert.equal(parseTraceTime('2026-12-01 09:30:15+01:00', now), Date.parse('2026-12-01T08:30:15Z'));
  for (const bad of ['yesterday', '2h ago', '', '2026-13-45', '-1d']) assert.throws(() => parseTraceTime(bad, now), TraceTimeError, bad);
});

test('messageIdOf reads the Message-ID field, folded or not, without brackets', () => {
  assert.equal(messageIdOf(Buffer.from('Subject: x\r\nMessage-ID: <abc@example.com>\r\n\r\nbody\r\n')), 'abc@example.com');
  assert.equal(messageIdOf(Buffer.from('Message-Id:\r\n <folded@example.com>\r\nSubject: x\r\n\r\n')), 'folded@example.com');
  assert.equal(messageIdOf(Buffer.from('Subject: x\r\n\r\nMessage-ID: <in-body@example.com>\r\n')), undefined, 'not from the body');
  assert.equal(messageIdOf(Buffer.from('Subject: no id\r\n\r\n')), undefined);
});
