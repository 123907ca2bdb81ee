/**
 * imap.workers carries a change only where it is listened to (src/imap/workers.ts): the hubs say when a key gets its
 * first and loses its last listener (store/watch.ts onInterest), and the changes not carried are kept a while for a
 * watcher that begins later (ChangeHistory). The processes themselves are tested in test/protocol/imap-workers.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChangeHistory, HISTORY_MS, type BridgedChange } from '../../../src/imap/workers.ts';
import { EventHub } from '../../../src/store/watch.ts';

describe('EventHub.onInterest', () => {
  it('tells the first listener of a key and the last one leaving, once each', () => {
    const hub = new EventHub<number>();
    const seen: [string, boolean][] = [];
    const off = hub.onInterest((key, on) => seen.push([key, on]));
    const a = hub.on('k', () => undefined);
    const b = hub.on('k', () => undefined);
    hub.on('other', () => undefined);
    assert.deepEqual(seen, [['k', true], ['other', true]]);
    a();
    a(); // a second call changes nothing
    assert.deepEqual(seen, [['k', true], ['other', true]]);
    b();
    assert.deepEqual(seen, [['k', true], ['other', true], ['k', false]]);
    assert.deepEqual(hub.watchedKeys(), ['other']);
    off();
    hub.on('k', () => undefined);
    assert.equal(seen.length, 3);
  });
});

describe('ChangeHistory', () => {
  const change = (key: string, uid: number): BridgedChange => ['folder', key, { kind: 'flags', uid, flags: [] }];

  it('gives the changes of one key, oldest first, without those of the process that asks', () => {
    const h = new ChangeHistory();
    h.push(1, change('/a', 1), 1000);
    h.push(2, change('/a', 2), 1001);
    h.push(1, change('/b', 3), 1002);
    h.push(3, change('/a', 4), 1003);
    assert.deepEqual(h.of('folder', '/a', 2, 1004).map((c) => (c[2] as { uid: number }).uid), [1, 4]);
    assert.deepEqual(h.of('folder', '/a', -1, 1004).map((c) => (c[2] as { uid: number }).uid), [1, 2, 4]);
    assert.deepEqual(h.of('list', '/a', -1, 1004), []);
  });

  it('forgets changes older than HISTORY_MS, also across many drops', () => {
    const h = new ChangeHistory();
    for (let i = 0; i < 5000; i++) h.push(1, change('/a', i), i);
    const now = 2000 + HISTORY_MS;
    const kept = h.of('folder', '/a', -1, now).map((c) => (c[2] as { uid: number }).uid);
    assert.equal(kept.length, 3000);
    assert.equal(kept[0], 2000);
    assert.equal(kept.at(-1), 4999);
    h.push(1, change('/a', 5000), now);
    assert.deepEqual(h.of('folder', '/a', -1, now + HISTORY_MS).map((c) => (c[2] as { uid: number }).uid), [5000]);
  });
});
