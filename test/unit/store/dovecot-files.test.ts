import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../src/lib/logger.ts';
import { acquireDotlock, DotlockTimeout } from '../../../src/store/dotlock.ts';
import { KeywordMap, parseKeywords, readKeywords, serializeKeywords, writeKeywords } from '../../../src/store/dovecot-keywords.ts';
import { appendUidlist, parseUidlist, readUidlist, serializeUidlist, UidlistCorrupt, writeUidlist } from '../../../src/store/dovecot-uidlist.ts';
import { FolderIndex } from '../../../src/store/folder-index.ts';
import { MaildirMailbox } from '../../../src/store/maildir-mailbox.ts';
import { MaildirStore } from '../../../src/store/maildir.ts';
import type { MailboxOwner } from '../../../src/store/types.ts';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'postern-dovecot-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

// Written by Dovecot 2.3.19.1 (Debian 12) after three APPENDs and an EXPUNGE of UID 1: the header's N is not
// rewritten by appends, and the expunged record stays until Dovecot next recreates the file.
const DOVECOT_UIDLIST = `3 V1796118903 N3 G413f171e75990e6b8a48000083ecc375
1 :1796118901.M556287P18570.vm,S=15,W=18
2 :1796118901.M591011P18570.vm,S=15,W=18
3 :1796118901.M613727P18570.vm,S=15,W=18
`;
const DOVECOT_KEYWORDS = '0 $Forwarded\n1 Work\n2 NonJunk\n';

test('parses a dovecot-uidlist Dovecot wrote: UIDVALIDITY, next UID past the last record, names up to ":"', () => {
  const list = parseUidlist(DOVECOT_UIDLIST);
  assert.equal(list.version, 3);
  assert.equal(list.uidValidity, 1796118903);
  assert.equal(list.nextUid, 4, 'N3 in the header, but UID 3 is taken');
  assert.equal(list.guid, '413f171e75990e6b8a48000083ecc375');
  assert.deepEqual(
    list.records.map((r) => [r.uid, r.name]),
    [
      [1, '1796118901.M556287P18570.vm,S=15,W=18'],
      [2, '1796118901.M591011P18570.vm,S=15,W=18'],
      [3, '1796118901.M613727P18570.vm,S=15,W=18'],
    ],
  );
  // Written back as Dovecot recreates it: the same, with the header's N brought up to date.
  assert.equal(serializeUidlist(list), DOVECOT_UIDLIST.replace(' N3 ', ' N4 '));
});

test('keeps extension fields and unknown header fields, and reads version 1 files', () => {
  const text = '3 V5 N10 G0123456789abcdef0123456789abcdef Zfuture\n4 GAbc W100 :1.M1P1.h,S=90\n7 :2.M2P2.h\n';
  const list = parseUidlist(text);
  assert.equal(list.headerExt, 'Zfuture');
  assert.equal(list.records[0]!.ext, 'GAbc W100');
  assert.equal(list.nextUid, 10);
  assert.equal(serializeUidlist(list), text);
  const v1 = parseUidlist('1 1700000000 5\n1 1.M1P1.h:2,S\n3 2.M2P2.h\n');
  assert.equal(v1.version, 1);
  assert.equal(v1.uidValidity, 1700000000);
  assert.equal(v1.nextUid, 5);
  assert.deepEqual(v1.records.map((r) => [r.uid, r.name]), [[1, '1.M1P1.h'], [3, '2.M2P2.h']]);
  assert.equal(v1.guid, '');
});

test('a file name listed again further down takes the later UID (Dovecot: duplicate file entry)', () => {
  const list = parseUidlist('3 V1 N1 G0123456789abcdef0123456789abcdef\n1 :a\n2 :b\n3 :a\n');
  assert.deepEqual(list.records.map((r) => [r.uid, r.name]), [[2, 'b'], [3, 'a']]);
});

test('refuses what Dovecot calls broken, and ignores a last line still being appended', () => {
  for (const bad of ['', 'x V1 N1\n', '3 V0 N1\n', '3 V1 N1\n2 :a\n1 :b\n', '3 V1 N1\n1 a\n', '3 V1 N1\n1 :a/b\n', '2 1 1\n']) {
    assert.throws(() => parseUidlist(bad), UidlistCorrupt, JSON.stringify(bad));
  }
  const partial = parseUidlist('3 V1 N1 G0123456789abcdef0123456789abcdef\n1 :a\n2 :b');
  assert.deepEqual(partial.records.map((r) => r.uid), [1]);
});

test('appends to the file it read, and refuses to append to another one', async (t) => {
  const dir = await tempDir(t);
  const sig1 = await writeUidlist(dir, { uidValidity: 7, nextUid: 1, guid: '', headerExt: '', records: [{ uid: 1, name: 'a,S=1:2,S', ext: '' }] });
  const read = (await readUidlist(dir))!;
  assert.equal(read.signature, sig1);
  assert.match(read.list.guid, /^[0-9a-f]{32}$/, 'a GUID is made for a new file');
  assert.equal(await appendUidlist(dir, [{ uid: 5, name: 'b', ext: '' }], read.size + 1), undefined);
  const sig2 = await appendUidlist(dir, [{ uid: 5, name: 'b', ext: '' }], read.size);
  assert.notEqual(sig2, sig1);
  const again = (await readUidlist(dir))!;
  assert.equal(again.signature, sig2);
  assert.deepEqual(again.list.records.map((r) => [r.uid, r.name]), [[1, 'a,S=1'], [5, 'b']]);
  assert.equal(again.list.nextUid, 6);
  assert.deepEqual(await readdir(dir), ['dovecot-uidlist'], 'no .tmp left behind');
});

test('dovecot-keywords: letters a..z by index, names case-insensitive, garbage ignored', async (t) => {
  const list = parseKeywords(DOVECOT_KEYWORDS + 'junk\n30 TooFar\n4 \n5 work\n');
  const map = new KeywordMap(list);
  assert.equal(map.letterOf('$Forwarded'), 'a');
  assert.equal(map.letterOf('work'), 'b');
  assert.equal(map.letterOf('NONJUNK'), 'c');
  assert.equal(map.keywordOf('c'), 'NonJunk');
  assert.equal(map.keywordOf('d'), undefined);
  assert.equal(serializeKeywords(list), DOVECOT_KEYWORDS);
  const more = map.withKeywords(['Work', '$Label1']);
  assert.equal(more.letterOf('$Label1'), 'd');
  assert.equal(more.size, 4);
  const full = new KeywordMap().withKeywords(Array.from({ length: 30 }, (_, i) => `k${i}`));
  assert.equal(full.size, 26);
  assert.equal(full.letterOf('k25'), 'z');
  assert.equal(full.letterOf('k26'), undefined);

  const dir = await tempDir(t);
  await writeFile(join(dir, 'dovecot-keywords'), DOVECOT_KEYWORDS);
  const future = new Date(Date.now() + 60_000);
  await utimes(join(dir, 'dovecot-keywords'), future, future);
  await writeKeywords(dir, more);
  assert.equal(await readFile(join(dir, 'dovecot-keywords'), 'utf8'), DOVECOT_KEYWORDS + '3 $Label1\n');
  const st = await stat(join(dir, 'dovecot-keywords'));
  assert.ok(Math.floor(st.mtimeMs / 1000) > Math.floor(future.getTime() / 1000), 'the mtime grew, as Dovecot needs to notice');
  assert.equal((await readKeywords(dir)).map.letterOf('$label1'), 'd');
});

test('the dotlock is O_EXCL with "<pid>:<host>", waits for a live holder and overrides a dead one', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'dovecot-uidlist');
  const lock = await acquireDotlock(file);
  assert.equal(await readFile(`${file}.lock`, 'utf8'), `${process.pid}:${hostname()}`);
  await assert.rejects(acquireDotlock(file, { timeoutMs: 150 }), DotlockTimeout);
  assert.equal(await lock.release(), true);

  // A lock of a live process on this host is respected even when old; a dead one's is taken over.
  const sleeper = spawn('sleep', ['30']);
  t.after(() => void sleeper.kill('SIGKILL'));
  const old = new Date(Date.now() - 10_000);
  await writeFile(`${file}.lock`, `${sleeper.pid}:${hostname()}`);
  await utimes(`${file}.lock`, old, old);
  await assert.rejects(acquireDotlock(file, { timeoutMs: 300 }), DotlockTimeout);
  sleeper.kill('SIGKILL');
  await new Promise((r) => sleeper.once('exit', r));
  const taken = await acquireDotlock(file, { timeoutMs: 2000 });
  assert.equal(await readFile(`${file}.lock`, 'utf8'), `${process.pid}:${hostname()}`);
  await taken.release();

  // Another host's lock: only time without change of the lock or the file tells (Dovecot: 120 s).
  await writeFile(`${file}.lock`, '1:some-other-host');
  const t0 = Date.now();
  const stale = await acquireDotlock(file, { timeoutMs: 2000, staleMs: 300 });
  assert.ok(Date.now() - t0 >= 300, 'overridden only once stale');
  await stale.release();
  await writeFile(`${file}.lock`, '1:some-other-host');
  await assert.rejects(acquireDotlock(file, { timeoutMs: 300, staleMs: 5_000 }), DotlockTimeout);
});

test('a lock released after someone overrode it is left alone', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'f');
  const lock = await acquireDotlock(file);
  // Overridden: a new file (a new inode) in its place.
  await writeFile(join(dir, 'other'), 'someone else');
  await rename(join(dir, 'other'), `${file}.lock`);
  assert.equal(await lock.release(), false);
  assert.equal(await readFile(`${file}.lock`, 'utf8'), 'someone else');
});

// ---- the mailbox on Dovecot's files -----------------------------------------------------------------------------

const alice: MailboxOwner = { kind: 'user', login: 'alice' };
const msg = (s: string) => Buffer.from(`Subject: ${s}\r\n\r\nbody\r\n`);

async function mailbox(t: { after(fn: () => Promise<void> | void): void }) {
  const dir = await tempDir(t);
  const store = new MaildirStore({ root: join(dir, 'mail'), hostname: 'mx' });
  const made: MaildirMailbox[] = [];
  t.after(() => made.forEach((m) => m.close()));
  const open = () => {
    const m = new MaildirMailbox({ store, quotaBytes: () => 0, log: silentLogger, autocreate: false });
    made.push(m);
    return m;
  };
  return { store, open, inbox: store.folderPath(alice, 'INBOX') };
}

test('a Maildir Dovecot made keeps its UIDVALIDITY, UIDs and keywords', async (t) => {
  const { open, inbox } = await mailbox(t);
  await mkdir(join(inbox, 'cur'), { recursive: true });
  await mkdir(join(inbox, 'new'));
  await mkdir(join(inbox, 'tmp'));
  await writeFile(join(inbox, 'dovecot-uidlist'), DOVECOT_UIDLIST);
  await writeFile(join(inbox, 'dovecot-keywords'), DOVECOT_KEYWORDS);
  await writeFile(join(inbox, 'cur', '1796118901.M591011P18570.vm,S=15,W=18:2,c'), 'Subject: b\r\n\r\n');
  await writeFile(join(inbox, 'cur', '1796118901.M613727P18570.vm,S=15,W=18:2,Sb'), 'Subject: c\r\n\r\n');
  const mb = open();
  const state = await mb.openFolder(alice, 'INBOX');
  assert.equal(state.uidValidity, 1796118903);
  assert.equal(state.uidNext, 4);
  assert.deepEqual(
    state.messages.map((m) => [m.uid, m.flags]),
    [
      [2, ['NonJunk']],
      [3, ['\\Seen', 'Work']],
    ],
  );
  // The next message continues Dovecot's numbering, and Dovecot's letters are reused for known keywords.
  const { uid } = await mb.append(alice, 'INBOX', msg('d'), ['$Forwarded', 'work', '$New']);
  assert.equal(uid, 4);
  const names = await readdir(join(inbox, 'cur'));
  assert.ok(names.some((n) => n.endsWith(':2,abd')), names.join(' '));
  assert.equal(await readFile(join(inbox, 'dovecot-keywords'), 'utf8'), DOVECOT_KEYWORDS + '3 $New\n');
  const list = parseUidlist(await readFile(join(inbox, 'dovecot-uidlist'), 'utf8'));
  assert.deepEqual(list.records.map((r) => r.uid), [1, 2, 3, 4], 'appended, Dovecot-style');
  assert.equal(list.uidValidity, 1796118903);
});

test('an index from before dovecot-uidlist is migrated with the same UIDVALIDITY, UIDs and keywords', async (t) => {
  const { store, open, inbox } = await mailbox(t);
  for (const s of ['a', 'b', 'c']) await store.deliver(alice, msg(s));
  const mb = open();
  const before = await mb.openFolder(alice, 'INBOX');
  await mb.expunge(alice, 'INBOX', [1]);
  mb.close();
  // What an earlier postern left: the index with UIDs 2 and 3, keywords in the index only, no Dovecot files.
  await rm(join(inbox, 'dovecot-uidlist'));
  await rm(join(inbox, 'dovecot-keywords'), { force: true });
  const idx = FolderIndex.open(inbox);
  const rows = idx.rows();
  idx.apply({ update: [{ uid: 3, name: rows[1]!.name, keywords: '$Junk Project' }], uidlistSignature: '' });
  idx.close();

  const after = await open().openFolder(alice, 'INBOX');
  assert.equal(after.uidValidity, before.uidValidity);
  assert.deepEqual(after.messages.map((m) => [m.uid, m.flags]), [[2, []], [3, ['$Junk', 'Project']]]);
  assert.equal(after.uidNext, 4);
  const list = parseUidlist(await readFile(join(inbox, 'dovecot-uidlist'), 'utf8'));
  assert.equal(list.uidValidity, before.uidValidity);
  assert.equal(list.nextUid, 4);
  assert.deepEqual(list.records.map((r) => r.uid), [2, 3]);
  assert.equal(await readFile(join(inbox, 'dovecot-keywords'), 'utf8'), '0 $Junk\n1 Project\n');
  assert.ok((await readdir(join(inbox, 'cur'))).some((n) => n.endsWith(':2,ab')), 'the keywords moved into the file name');
});

test('UIDs assigned by another program between two syncs are taken from dovecot-uidlist', async (t) => {
  const { store, open, inbox } = await mailbox(t);
  await store.deliver(alice, msg('a'));
  const mb = open();
  await mb.openFolder(alice, 'INBOX');
  // "Dovecot" delivers a message and gives it UID 10 (as after its own expunges), under the lock.
  const lock = await acquireDotlock(join(inbox, 'dovecot-uidlist'));
  const name = '1800000000.M1P99.other,S=20';
  await writeFile(join(inbox, 'cur', `${name}:2,S`), 'Subject: x\r\n\r\nbody\r\n');
  const read = (await readUidlist(inbox))!;
  await writeUidlist(inbox, { ...read.list, nextUid: 10, records: [...read.list.records, { uid: 10, name, ext: '' }] });
  // postern waits for the lock and sees UID 10 from the file, not its own next UID 2.
  const opening = mb.openFolder(alice, 'INBOX');
  await new Promise((r) => setTimeout(r, 50));
  await lock.release();
  const state = await opening;
  assert.deepEqual(state.messages.map((m) => m.uid), [1, 10]);
  assert.equal((await mb.append(alice, 'INBOX', msg('b'), [])).uid, 11);
});

test('expunged messages leave dovecot-uidlist, so a file moved back gets a new UID', async (t) => {
  const { store, open, inbox } = await mailbox(t);
  for (const s of ['a', 'b']) await store.deliver(alice, msg(s));
  const mb = open();
  await mb.openFolder(alice, 'INBOX');
  const names = await readdir(join(inbox, 'cur'));
  const saved = await Promise.all(names.map((n) => readFile(join(inbox, 'cur', n))));
  await mb.expunge(alice, 'INBOX', [1]);
  const left = await readdir(join(inbox, 'cur'));
  const i = names.findIndex((n) => !left.includes(n));
  const first = names[i];
  assert.deepEqual(parseUidlist(await readFile(join(inbox, 'dovecot-uidlist'), 'utf8')).records.map((r) => r.uid), [2]);
  await writeFile(join(inbox, 'cur', first!), saved[i]!);
  const state = await mb.openFolder(alice, 'INBOX');
  assert.deepEqual(state.messages.map((m) => m.uid), [2, 3]);
});

test('a MOVE gives the keywords the target folder\'s letters', async (t) => {
  const { store, open, inbox } = await mailbox(t);
  const mb = open();
  await store.createFolder(alice, 'Archive');
  const archive = store.folderPath(alice, 'Archive');
  await mb.openFolder(alice, 'Archive');
  await mb.append(alice, 'Archive', msg('x'), ['Other']); // Archive: a = Other
  await mb.append(alice, 'INBOX', msg('y'), ['$Junk', 'Work']); // INBOX: a = $Junk, b = Work
  const moved = await mb.copy(alice, 'INBOX', [1], 'Archive', { move: true });
  assert.deepEqual(moved.mapping, [[1, 2]]);
  const state = await mb.openFolder(alice, 'Archive');
  assert.deepEqual(state.messages.map((m) => m.flags), [['Other'], ['$Junk', 'Work']]);
  assert.equal(await readFile(join(archive, 'dovecot-keywords'), 'utf8'), '0 Other\n1 $Junk\n2 Work\n');
  assert.ok((await readdir(join(archive, 'cur'))).some((n) => n.endsWith(':2,bc')));
  assert.deepEqual(parseUidlist(await readFile(join(inbox, 'dovecot-uidlist'), 'utf8')).records, []);
});
