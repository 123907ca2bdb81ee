import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FolderIndex, INDEX_FILE } from '../../../src/store/folder-index.ts';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'postern-index-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const row = (base: string, size = 10) => ({ base, name: `${base},S=${size}:2,`, size, internalDate: 1_700_000_000_000, keywords: '' });

test('a new index starts at UID 1 and hands out ascending UIDs that survive a reopen', async (t) => {
  const dir = await tempDir(t);
  const a = FolderIndex.open(dir);
  assert.equal(a.created, true);
  assert.equal(a.uidNext, 1);
  assert.deepEqual(a.apply({ add: [row('1.a'), row('2.b')] }), [1, 2]);
  const validity = a.uidValidity;
  a.close();
  const b = FolderIndex.open(dir);
  assert.equal(b.created, false);
  assert.equal(b.uidValidity, validity);
  assert.equal(b.uidNext, 3);
  assert.deepEqual(
    b.rows().map((r) => [r.uid, r.base]),
    [
      [1, '1.a'],
      [2, '2.b'],
    ],
  );
  b.close();
});

test('UIDs are never reused after the highest message is removed', async (t) => {
  const dir = await tempDir(t);
  const idx = FolderIndex.open(dir);
  idx.apply({ add: [row('1.a'), row('2.b')] });
  idx.apply({ remove: [2] });
  assert.deepEqual(idx.apply({ add: [row('3.c')] }), [3]);
  idx.close();
});

test('every change raises the modseq; the touched rows carry it', async (t) => {
  const dir = await tempDir(t);
  const idx = FolderIndex.open(dir);
  const m0 = idx.modseq;
  idx.apply({ add: [row('1.a')] });
  idx.apply({ update: [{ uid: 1, name: '1.a,S=10:2,S', keywords: '$Junk' }] });
  assert.equal(idx.modseq, m0 + 2);
  assert.equal(idx.row(1)!.modseq, m0 + 2);
  assert.equal(idx.row(1)!.keywords, '$Junk');
  idx.close();
});

test('a deleted index is rebuilt empty with a new UIDVALIDITY', async (t) => {
  const dir = await tempDir(t);
  const a = FolderIndex.open(dir);
  a.apply({ add: [row('1.a')] });
  const validity = a.uidValidity;
  a.close();
  await unlink(join(dir, INDEX_FILE));
  const b = FolderIndex.open(dir);
  assert.equal(b.created, true);
  assert.notEqual(b.uidValidity, validity);
  assert.equal(b.rows().length, 0);
  b.close();
});

test('a corrupt index file is rebuilt, and the rebuild is reported', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, INDEX_FILE), 'this is not an SQLite database, just some bytes '.repeat(100));
  const reasons: string[] = [];
  const idx = FolderIndex.open(dir, { onRebuild: (r) => reasons.push(r) });
  assert.equal(idx.created, true);
  assert.equal(reasons.length, 1);
  assert.equal(idx.uidNext, 1);
  idx.close();
});

test('isCurrent turns false once the file is deleted under an open index', async (t) => {
  const dir = await tempDir(t);
  const idx = FolderIndex.open(dir);
  assert.equal(idx.isCurrent(), true);
  await unlink(join(dir, INDEX_FILE));
  assert.equal(idx.isCurrent(), false);
  idx.close();
});

test('cached ENVELOPE and BODYSTRUCTURE round-trip as JSON', async (t) => {
  const dir = await tempDir(t);
  const idx = FolderIndex.open(dir);
  idx.apply({ add: [row('1.a')] });
  assert.deepEqual(idx.cached(1), {});
  idx.setCached(1, { envelope: ['date', 'subject'] });
  idx.setCached(1, { bodystructure: { type: 'text' } });
  assert.deepEqual(idx.cached(1), { envelope: ['date', 'subject'], bodystructure: { type: 'text' } });
  idx.close();
});
