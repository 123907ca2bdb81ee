import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RowBatcher } from '../../../src/state/postgres/batch.ts';

function recorder() {
  const statements: { at: number; items: number[] }[] = [];
  const write = async (items: number[]) => {
    statements.push({ at: Date.now(), items: [...items] });
    return items.map((x) => x * 2);
  };
  return { statements, write };
}

test('RowBatcher: what arrives while a statement runs goes in the next one; each caller gets its own result', async () => {
  const { statements, write } = recorder();
  const b = new RowBatcher(write, { inFlight: 1 });
  const results = await Promise.all([1, 2, 3, 4].map((x) => b.add(x)));
  assert.deepEqual(results, [2, 4, 6, 8]);
  assert.deepEqual(statements.map((s) => s.items), [[1], [2, 3, 4]]);
  assert.equal(b.batches, 2);
  assert.equal(b.items, 4);
});

test('RowBatcher gapMs: a statement starts no sooner than the gap after the one before, with all that came meanwhile', async () => {
  const { statements, write } = recorder();
  const gapMs = 60;
  const b = new RowBatcher(write, { inFlight: 1, gapMs });
  assert.equal(await b.add(1), 2);
  // The first statement has been answered: without the gap the next add would go alone, at once.
  const later = [2, 3, 4, 5, 6].map((x) => b.add(x));
  assert.deepEqual(await Promise.all(later), [4, 6, 8, 10, 12]);
  assert.deepEqual(statements.map((s) => s.items), [[1], [2, 3, 4, 5, 6]]);
  assert.ok(statements[1]!.at - statements[0]!.at >= gapMs - 1, `started ${statements[1]!.at - statements[0]!.at} ms apart`);
});

test('RowBatcher: a failed statement rejects every caller it carried, and the next one runs', async () => {
  let fail = true;
  const b = new RowBatcher(async (items: number[]) => {
    if (fail) throw new Error('connection lost');
    return items;
  });
  const first = Promise.allSettled([b.add(1), b.add(2)]);
  const settled = await first;
  assert.ok(settled.every((s) => s.status === 'rejected'));
  fail = false;
  assert.equal(await b.add(3), 3);
});
