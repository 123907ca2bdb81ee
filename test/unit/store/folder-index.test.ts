import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
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

test('a new index starts its MODSEQs above any an earlier index of the folder could have handed out', async (t) => {
  const dir = await tempDir(t);
  const a = FolderIndex.open(dir);
  a.apply({ add: [row('1.a')] });
  for (let i = 0; i < 50; i++) a.apply({ update: [{ uid: 1, name: `1.a,S=10:2,${i % 2 ? 'S' : ''}`, keywords: '' }] });
  const old = a.modseq;
  a.close();
  await unlink(join(dir, INDEX_FILE));
  const b = FolderIndex.open(dir);
  assert.ok(b.modseq > old, `${b.modseq} > ${old}`);
  // RFC 7162 §3.2.5.2: what was expunged before the rebuild is unknown.
  assert.equal(b.vanishedSince(old), undefined);
  assert.deepEqual(b.vanishedSince(b.modseq), []);
  b.close();
});

test('expunged UIDs are remembered with the MODSEQ of their expunge; a re-added UID and a new UIDVALIDITY clear them', async (t) => {
  const dir = await tempDir(t);
  const idx = FolderIndex.open(dir);
  idx.apply({ add: [row('1.a'), row('2.b'), row('3.c')] });
  const m0 = idx.modseq;
  idx.apply({ remove: [2] });
  const m1 = idx.modseq;
  idx.apply({ remove: [1, 3, 99] });
  assert.deepEqual(idx.vanishedSince(m0), [1, 2, 3]);
  assert.deepEqual(idx.vanishedSince(m1), [1, 3]);
  assert.deepEqual(idx.vanishedSince(idx.modseq), []);
  idx.apply({ add: [{ ...row('3.d'), uid: 3 }] });
  assert.deepEqual(idx.vanishedSince(m0), [1, 2]);
  idx.apply({ reset: { uidValidity: idx.uidValidity + 1 } });
  assert.equal(idx.vanishedSince(m0), undefined);
  assert.deepEqual(idx.vanishedSince(idx.modseq), []);
  idx.close();
});

test('the expunge history is bounded: pruning raises the floor below which the answer is "unknown"', async (t) => {
  const dir = await tempDir(t);
  const idx = FolderIndex.open(dir, { historyLimit: 10 });
  idx.apply({ add: Array.from({ length: 20 }, (_, i) => row(`${i + 1}.m`)) });
  const m0 = idx.modseq;
  for (let uid = 1; uid <= 12; uid++) idx.apply({ remove: [uid] });
  // The 11th is one too many: the oldest 2 go (a tenth of the limit more than needed, so pruning is not paid on
  // every expunge); the 12th fits again.
  assert.equal(idx.vanishedSince(m0), undefined);
  assert.deepEqual(idx.vanishedSince(idx.vanishedFloor), [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  idx.close();
});

test('a version 1 index is migrated in place: UIDs and MODSEQs kept, no expunge history before the migration', async (t) => {
  const dir = await tempDir(t);
  const a = FolderIndex.open(dir);
  a.apply({ add: [row('1.a'), row('2.b')] });
  a.apply({ update: [{ uid: 1, name: '1.a,S=10:2,S', keywords: '' }] });
  const validity = a.uidValidity;
  const modseq = a.modseq;
  a.close();
  const Database = createRequire(import.meta.url)('better-sqlite3') as new (f: string) => { exec(s: string): void; pragma(s: string): unknown; close(): void };
  const db = new Database(join(dir, INDEX_FILE));
  db.exec("DROP TABLE expunged; DROP TABLE headers; DELETE FROM meta WHERE key = 'vanishedfloor';");
  db.pragma('user_version = 1');
  db.close();
  const b = FolderIndex.open(dir);
  assert.equal(b.created, false);
  assert.equal(b.uidValidity, validity);
  assert.equal(b.modseq, modseq);
  assert.equal(b.row(1)!.modseq, modseq);
  assert.equal(b.vanishedSince(modseq - 1), undefined);
  b.apply({ remove: [2] });
  assert.deepEqual(b.vanishedSince(modseq), [2]);
  // Version 3's header cache exists after the migration, empty.
  assert.equal(b.searchHeaders(1), undefined);
  b.setSearchHeaders([[1, [['subject', 'x']]]]);
  assert.deepEqual(b.searchHeaders(1), [['subject', 'x']]);
  b.close();
});

// ---- SEARCH header fields (schema version 3) ----

const hdrs = (subject: string): [string, string][] => [
  ['from', 'anna@example.com'],
  ['subject', subject],
];

test('SEARCH header fields: stored with a new row, set later for old ones, dropped with the row and by a new UIDVALIDITY', async (t) => {
  const dir = await tempDir(t);
  const idx = FolderIndex.open(dir);
  idx.apply({ add: [{ ...row('1.a'), headers: hdrs('one') }, row('2.b')] });
  assert.deepEqual(idx.searchHeaders(1), hdrs('one'));
  // Found in the Maildir without passing through APPEND: nothing cached until someone read it.
  assert.equal(idx.searchHeaders(2), undefined);
  idx.setSearchHeaders([
    [2, hdrs('two')],
    [9, hdrs('not indexed')],
  ]);
  assert.deepEqual([...idx.allSearchHeaders().entries()], [
    [1, hdrs('one')],
    [2, hdrs('two')],
  ]);
  // A UID that is not a message of the folder gets nothing (it could be handed out later to another file).
  assert.equal(idx.searchHeaders(9), undefined);
  idx.apply({ remove: [1] });
  assert.equal(idx.searchHeaders(1), undefined);
  idx.apply({ reset: { uidValidity: idx.uidValidity + 1 } });
  assert.equal(idx.allSearchHeaders().size, 0);
  idx.close();
});

test('values with 8-bit bytes and folded text round-trip exactly as mime.ts parsed them', async (t) => {
  const dir = await tempDir(t);
  const a = FolderIndex.open(dir);
  const latin1 = Buffer.from('Ünïcödé subject  with  spaces', 'utf8').toString('latin1');
  a.apply({ add: [{ ...row('1.a'), headers: [['subject', latin1], ['to', '"A, B" <a@b>'], ['to', 'c@d']] }] });
  a.close();
  const b = FolderIndex.open(dir);
  assert.deepEqual(b.searchHeaders(1), [['subject', latin1], ['to', '"A, B" <a@b>'], ['to', 'c@d']]);
  b.close();
});

test('a version 2 index is migrated in place to version 3: UIDs, MODSEQs and history kept, no header fields cached yet', async (t) => {
  const dir = await tempDir(t);
  const a = FolderIndex.open(dir);
  a.apply({ add: [{ ...row('1.a'), headers: hdrs('one') }, row('2.b')] });
  a.apply({ remove: [2] });
  const validity = a.uidValidity;
  const modseq = a.modseq;
  a.close();
  const Database = createRequire(import.meta.url)('better-sqlite3') as new (f: string) => {
    exec(s: string): void;
    pragma(s: string, o?: { simple: boolean }): unknown;
    close(): void;
  };
  const db = new Database(join(dir, INDEX_FILE));
  db.exec('DROP TABLE headers');
  db.pragma('user_version = 2');
  db.close();
  const b = FolderIndex.open(dir);
  assert.equal(b.created, false);
  assert.equal(b.uidValidity, validity);
  assert.equal(b.modseq, modseq);
  assert.deepEqual(b.vanishedSince(modseq - 1), [2]);
  assert.equal(b.searchHeaders(1), undefined);
  b.setSearchHeaders([[1, hdrs('again')]]);
  assert.deepEqual(b.searchHeaders(1), hdrs('again'));
  b.close();
  const check = new Database(join(dir, INDEX_FILE));
  assert.equal(check.pragma('user_version', { simple: true }), 3);
  check.close();
});

test('the directories signature is kept in the index across reopens', async (t) => {
  const dir = await tempDir(t);
  const a = FolderIndex.open(dir);
  assert.equal(a.dirsSignature, '');
  a.dirsSignature = '12.1700000000000000000:13.1700000000000000001';
  a.close();
  const b = FolderIndex.open(dir);
  assert.equal(b.dirsSignature, '12.1700000000000000000:13.1700000000000000001');
  b.dirsSignature = '';
  assert.equal(b.dirsSignature, '');
  b.close();
});

test('allSearchHeaders, kept in memory, follows this object\'s changes and a new UIDVALIDITY set by another one', async (t) => {
  const dir = await tempDir(t);
  const idx = FolderIndex.open(dir);
  idx.apply({ add: [{ ...row('1.a'), headers: hdrs('one') }, row('2.b')] });
  assert.deepEqual([...idx.allSearchHeaders().keys()], [1]);
  idx.setSearchHeaders([[2, hdrs('two')]]);
  idx.apply({ add: [{ ...row('3.c'), headers: hdrs('three') }] });
  assert.deepEqual([...idx.allSearchHeaders().keys()].sort(), [1, 2, 3]);
  idx.apply({ remove: [1] });
  assert.deepEqual([...idx.allSearchHeaders().keys()].sort(), [2, 3]);
  // Another process empties the index under a new UIDVALIDITY and hands UID 2 to another message.
  const other = FolderIndex.open(dir);
  other.apply({ reset: { uidValidity: other.uidValidity + 1 }, add: [{ ...row('9.z'), uid: 2, headers: hdrs('new two') }] });
  other.close();
  assert.deepEqual([...idx.allSearchHeaders().entries()], [[2, hdrs('new two')]]);
  idx.close();
});

test('summary: the UIDs ascending, the first unseen UID and the keyword-bearing flag sets, without a row per message', async (t) => {
  const dir = await tempDir(t);
  const idx = FolderIndex.open(dir);
  const named = (base: string, info: string, keywords = '') => ({ base, name: `${base},S=10:2,${info}`, size: 10, internalDate: 1_700_000_000_000, keywords });
  // Bases sort against UID order (z… first), so an order taken from the base index must be sorted again.
  idx.apply({ add: [named('z.1', 'S'), named('y.2', 'Sa'), named('x.3', ''), named('w.4', 'S', '$Mine'), named('v.5', 'RS')] });
  idx.apply({ remove: [2] });
  const s = idx.summary();
  assert.deepEqual([...s.uids], [1, 3, 4, 5]);
  assert.equal(s.firstUnseenUid, 3);
  assert.deepEqual(s.flagSets, [['S', '$Mine']]);
  idx.apply({ update: [{ uid: 3, name: 'x.3,S=10:2,Sb', keywords: '' }] });
  const after = idx.summary();
  assert.equal(after.firstUnseenUid, 0);
  assert.deepEqual(after.flagSets.map((f) => f.join('|')).sort(), ['Sb|', 'S|$Mine']);
  idx.close();
  assert.deepEqual([...FolderIndex.open(dir).summary().uids], [1, 3, 4, 5]);
});

test('summary: UNSEEN and the flag sets are kept under the MODSEQ, computed again after any change of a row', async (t) => {
  const dir = await tempDir(t);
  const idx = FolderIndex.open(dir);
  idx.apply({ add: [row('1.a'), row('2.b')] });
  assert.equal(idx.summary().firstUnseenUid, 1);
  idx.close();
  // Behind the index's back (no MODSEQ raised): a reopened index still answers what it kept for this MODSEQ.
  const Database = createRequire(import.meta.url)('better-sqlite3') as new (f: string) => { exec(sql: string): void; close(): void };
  const raw = new Database(join(dir, INDEX_FILE));
  raw.exec("UPDATE messages SET name = name || 'S' WHERE uid = 1");
  raw.close();
  const again = FolderIndex.open(dir);
  assert.equal(again.summary().firstUnseenUid, 1);
  // A change through the index raises the MODSEQ: the kept answer no longer applies.
  again.apply({ update: [{ uid: 2, name: '2.b,S=10:2,F', keywords: '' }] });
  assert.equal(again.summary().firstUnseenUid, 2);
  again.close();
});

test('summary: the UIDs are kept as runs under the MODSEQ, so a reopened unchanged index answers without reading them', async (t) => {
  const dir = await tempDir(t);
  const idx = FolderIndex.open(dir);
  idx.apply({ add: ['a', 'b', 'c', 'd', 'e', 'f'].map((b) => row(`1.${b}`)) });
  idx.apply({ remove: [3, 4] });
  assert.deepEqual([...idx.summary().uids], [1, 2, 5, 6]);
  idx.close();
  // Behind the index's back (no MODSEQ raised): the kept runs are what a reopened index answers for this MODSEQ.
  const Database = createRequire(import.meta.url)('better-sqlite3') as new (f: string) => { exec(sql: string): void; close(): void };
  const raw = new Database(join(dir, INDEX_FILE));
  raw.exec('DELETE FROM messages WHERE uid = 6');
  raw.close();
  const again = FolderIndex.open(dir);
  assert.deepEqual([...again.summary().uids], [1, 2, 5, 6]);
  // A change through the index raises the MODSEQ: the UIDs are read from the rows again.
  again.apply({ add: [row('2.g')] });
  assert.deepEqual([...again.summary().uids], [1, 2, 5, 7]);
  again.close();
  assert.deepEqual([...FolderIndex.open(dir).summary().uids], [1, 2, 5, 7]);
});

test('adding rows above stale header fields and expunge records still clears them (the bulk add checks once)', async (t) => {
  const dir = await tempDir(t);
  const idx = FolderIndex.open(dir);
  idx.apply({ add: [row('1.a'), row('1.b')] });
  idx.setSearchHeaders([[2, [['subject', 'old']]]]);
  const before = idx.modseq;
  idx.apply({ remove: [2] });
  assert.deepEqual(idx.vanishedSince(before), [2]);
  // UID 2 given again (dovecot-uidlist says so): its old fields and expunge record must go.
  idx.apply({ add: [{ ...row('1.c'), uid: 2 }] });
  assert.equal(idx.searchHeaders(2), undefined);
  assert.deepEqual(idx.vanishedSince(before), []);
  idx.close();
});

test('rowsWithFlag: exactly the rows whose Maildir info carries the letter, in UID order', async (t) => {
  const dir = await tempDir(t);
  const idx = FolderIndex.open(dir);
  const named = (base: string, info: string) => ({ base, name: `${base},S=10${info}`, size: 10, internalDate: 1_700_000_000_000, keywords: '' });
  idx.apply({
    add: [
      named('1.T', ':2,S'), // a T in the base, not in the flags
      named('2.a', ':2,DST'),
      named('3.b', ':2,'),
      named('4.c', ':2,Ta'), // with a keyword letter
      named('5.d', ''), // new/: no info at all
      named('6.e', ':2,St'), // a keyword 't' is not \Deleted
      named('7.f', ':1,T'), // an experimental info (":1,"): no flags
    ],
  });
  assert.deepEqual(idx.rowsWithFlag('T').map((r) => r.base), ['2.a', '4.c']);
  assert.deepEqual(idx.rowsWithFlag('S').map((r) => r.base), ['1.T', '2.a', '6.e']);
  idx.close();
});
