import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, unlink, utimes, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { MaildirStore } from '../../../src/store/maildir.ts';
import { QuotaExceeded, type MailboxOwner } from '../../../src/store/types.ts';

const alice: MailboxOwner = { kind: 'user', login: 'alice' };
const PREFIX = 'Return-Path: <bob@example.org>\r\nDelivered-To: alice@corp.example\r\n';

function message(body = 'Hello.', subject = 'test'): Buffer {
  return Buffer.from(`From: bob@example.org\r\nTo: alice@corp.example\r\nSubject: ${subject}\r\n\r\n${body}\r\n`);
}

async function tempStore(t: { after(fn: () => Promise<void>): void }, hostname = 'mail.corp.example'): Promise<{ root: string; store: MaildirStore }> {
  const dir = await mkdtemp(join(tmpdir(), 'postern-maildir-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const root = join(dir, 'mail');
  return { root, store: new MaildirStore({ root, hostname }) };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Every regular file under `dir`, relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  if (!(await exists(dir))) return [];
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name)));
}

function sizeInName(path: string): number {
  const m = /,S=(\d+)(?::2,|$)/.exec(basename(path));
  assert.ok(m, `no ,S= in ${basename(path)}`);
  return Number(m[1]);
}

test('delivers to INBOX: new/, Dovecot-style unique name with ,S=, content is prefix + message byte for byte', async (t) => {
  const { root, store } = await tempStore(t, 'mx/1:a');
  const msg = message();
  const d = await store.deliver(alice, msg, { prefix: PREFIX });
  const maildir = store.maildirPath(alice);
  assert.equal(maildir, join(root, 'users', 'alice', 'Maildir'));
  assert.equal(dirname(d.path), join(maildir, 'new'));
  assert.match(basename(d.path), /^\d+\.M\d+P\d+Q\d+\.mx\\0571\\072a,S=\d+$/);
  const expected = Buffer.concat([Buffer.from(PREFIX), msg]);
  assert.equal(d.size, expected.length);
  assert.equal(sizeInName(d.path), expected.length);
  assert.deepEqual(await readFile(d.path), expected);
  assert.equal((await stat(d.path)).mode & 0o777, 0o600);
  for (const sub of ['cur', 'new', 'tmp']) assert.ok((await stat(join(maildir, sub))).isDirectory(), sub);
  assert.deepEqual(await readdir(join(maildir, 'tmp')), []);
  assert.equal(await exists(join(maildir, 'maildirfolder')), false, 'the root is not a folder');
});

test('delivers to Junk and to a nested folder as Maildir++ .Name directories with maildirfolder', async (t) => {
  const { store } = await tempStore(t);
  const maildir = store.maildirPath(alice);
  const junk = await store.deliver(alice, message(), { folder: 'Junk' });
  const nested = await store.deliver(alice, message(), { folder: 'Archive/2024' });
  assert.equal(dirname(junk.path), join(maildir, '.Junk', 'new'));
  assert.equal(dirname(nested.path), join(maildir, '.Archive.2024', 'new'));
  for (const folder of ['.Junk', '.Archive.2024']) {
    assert.equal((await stat(join(maildir, folder, 'maildirfolder'))).size, 0);
    for (const sub of ['cur', 'new', 'tmp']) assert.ok(await exists(join(maildir, folder, sub)), `${folder}/${sub}`);
    assert.deepEqual(await readdir(join(maildir, folder, 'tmp')), []);
  }
  const folders = await store.listFolders(alice);
  assert.deepEqual(
    folders.map((f) => [f.name, f.specialUse]),
    [
      ['INBOX', undefined],
      ['Archive/2024', undefined],
      ['Junk', '\\Junk'],
    ],
  );
  assert.equal(folders[2]!.path, join(maildir, '.Junk'));
});

test('folder names are stored as Dovecot stores them: modified UTF-7, listescape for "." and a leading "~"', async (t) => {
  const { store } = await tempStore(t);
  const maildir = store.maildirPath(alice);
  assert.equal(store.folderPath(alice, 'inbox'), maildir);
  assert.equal(store.folderPath(alice, 'Entwürfe'), join(maildir, '.Entw&APw-rfe'));
  assert.equal(store.folderPath(alice, 'R&D/v1.2'), join(maildir, '.R&-D.v1\\2e2'));
  assert.equal(store.folderPath(alice, '~home'), join(maildir, '.\\7ehome'));
  assert.equal(store.folderPath(alice, 'Inbox/Sub'), join(maildir, '.INBOX.Sub'));
  assert.throws(() => store.folderPath(alice, 'a//b'), { name: 'InvalidFolderName' });
  assert.throws(() => store.folderPath(alice, 'bad\nname'), { name: 'InvalidFolderName' });
  for (const name of ['Entwürfe', 'R&D/v1.2', '~home', '..', 'Sent Items']) await store.createFolder(alice, name);
  const names = (await store.listFolders(alice)).map((f) => f.name);
  assert.deepEqual(names, ['INBOX', '..', 'Entwürfe', 'R&D/v1.2', 'Sent Items', '~home']);
  assert.equal((await store.listFolders(alice)).find((f) => f.name === 'Sent Items')?.specialUse, '\\Sent');
});

test('a delivery with flags lands in cur/ with :2,<flags> in ASCII order', async (t) => {
  const { store } = await tempStore(t);
  const seen = await store.deliver(alice, message(), { flags: 'S' });
  assert.equal(dirname(seen.path), join(store.maildirPath(alice), 'cur'));
  assert.match(basename(seen.path), /,S=\d+:2,S$/);
  const several = await store.deliver(alice, message(), { flags: 'SFS', folder: 'Sent' });
  assert.equal(dirname(several.path), join(store.maildirPath(alice), '.Sent', 'cur'));
  assert.match(basename(several.path), /:2,FS$/);
  await assert.rejects(store.deliver(alice, message(), { flags: 'S:x' }), RangeError);
  assert.deepEqual(await readdir(join(store.maildirPath(alice), 'tmp')), []);
});

test('a Readable stream is delivered like a Buffer, with its size counted while streaming', async (t) => {
  const { store } = await tempStore(t);
  const chunks = [Buffer.from('From: a@b\r\n'), 'Subject: streamed\r\n\r\n', Buffer.alloc(100_000, 'x'), Buffer.from('\r\n')];
  const d = await store.deliver(alice, Readable.from(chunks), { prefix: PREFIX });
  const expected = Buffer.concat([Buffer.from(PREFIX), ...chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c))]);
  assert.equal(d.size, expected.length);
  assert.equal(sizeInName(d.path), expected.length);
  assert.deepEqual(await readFile(d.path), expected);
  assert.deepEqual(await readdir(join(store.maildirPath(alice), 'tmp')), []);
});

test('quota: under quota delivers and appends to maildirsize; over quota throws QuotaExceeded and writes nothing', async (t) => {
  const { store } = await tempStore(t);
  const maildir = store.maildirPath(alice);
  const msg = message('x'.repeat(400));
  const first = await store.deliver(alice, msg, { quotaBytes: 1000 });
  // The first delivery with a quota creates maildirsize by recounting (which sees the message just linked).
  assert.equal(await readFile(join(maildir, 'maildirsize'), 'utf8'), `1000S\n${first.size} 1\n`);
  const second = await store.deliver(alice, msg, { quotaBytes: 1000 });
  assert.equal(await readFile(join(maildir, 'maildirsize'), 'utf8'), `1000S\n${first.size} 1\n${second.size} 1\n`);
  assert.deepEqual(await store.quotaUsage(alice), { bytes: first.size + second.size, messages: 2 });

  const before = await filesUnder(maildir);
  await assert.rejects(store.deliver(alice, msg, { quotaBytes: 1000 }), (err: unknown) => {
    assert.ok(err instanceof QuotaExceeded);
    assert.deepEqual(err.owner, alice);
    assert.equal(err.quotaBytes, 1000);
    assert.equal(err.usage.bytes, first.size + second.size);
    return true;
  });
  // The same with a stream, whose size is only known once read.
  await assert.rejects(store.deliver(alice, Readable.from([msg]), { quotaBytes: 1000 }), QuotaExceeded);
  assert.deepEqual(await filesUnder(maildir), before, 'no message, no tmp file, no maildirsize line');
  assert.deepEqual(await readdir(join(maildir, 'tmp')), []);

  // Without a quota the same message is accepted, and still counted.
  const third = await store.deliver(alice, msg);
  assert.deepEqual(await store.quotaUsage(alice), { bytes: first.size + second.size + third.size, messages: 3 });
});

test('quota: a message larger than the whole quota is refused and no file is written', async (t) => {
  const { root, store } = await tempStore(t);
  await assert.rejects(store.deliver(alice, message('y'.repeat(2000)), { quotaBytes: 1000 }), QuotaExceeded);
  assert.deepEqual(await filesUnder(root), [], 'a Buffer is measured before anything is created');
  await assert.rejects(store.deliver(alice, Readable.from([message('y'.repeat(2000))]), { quotaBytes: 1000 }), QuotaExceeded);
  // A stream is only measured while written to tmp/ (the Maildir is created for that); the tmp file is removed.
  assert.deepEqual(await filesUnder(root), ['users/alice/Maildir/maildirsize']);
  assert.deepEqual(await store.quotaUsage(alice), { bytes: 0, messages: 0 });
});

test('quota: maildirsize is recalculated from ,S= sizes when deleted, when too long, and when the quota changes', async (t) => {
  const { store } = await tempStore(t);
  const maildir = store.maildirPath(alice);
  const path = join(maildir, 'maildirsize');
  let total = 0;
  for (const folder of ['INBOX', 'Junk', 'Trash', 'A/B']) total += (await store.deliver(alice, message(), { folder, quotaBytes: 1_000_000 })).size;
  total += (await store.deliver(alice, message(), { flags: 'S', quotaBytes: 1_000_000 })).size;

  await unlink(path);
  assert.deepEqual(await store.quotaUsage(alice), { bytes: total, messages: 5 });
  assert.equal(await readFile(path, 'utf8'), `\n${total} 5\n`, 'recreated; no quota definition known to quotaUsage');

  // A delivery with a quota rewrites a definition that differs, counting everything again.
  const d = await store.deliver(alice, message(), { quotaBytes: 2_000_000 });
  total += d.size;
  assert.equal(await readFile(path, 'utf8'), `2000000S\n${total - d.size} 5\n${d.size} 1\n`);

  // Drift (a client removed a message without a negative line) is repaired once the file reaches 5120 bytes.
  await unlink(d.path);
  total -= d.size;
  await writeFile(path, `2000000S\n${total + d.size} 6\n` + '0 0\n'.repeat(1300));
  assert.deepEqual(await store.quotaUsage(alice), { bytes: total, messages: 5 });
  assert.equal(await readFile(path, 'utf8'), `2000000S\n${total} 5\n`);

  // A message file without ,S= (another writer) is measured with stat().
  await writeFile(join(maildir, 'new', '1.foreign.host'), 'abc');
  await unlink(path);
  assert.deepEqual(await store.quotaUsage(alice), { bytes: total + 3, messages: 6 });
});

test('quota: an over-quota maildirsize with appended lines is recounted before refusing (drift from expunges)', async (t) => {
  const { store } = await tempStore(t);
  const maildir = store.maildirPath(alice);
  const deliver = (body: string) => store.deliver(alice, message(body.repeat(230)), { quotaBytes: 1000 });
  const a = await deliver('a');
  const b = await deliver('b');
  const c = await deliver('c');
  assert.ok(a.size * 3 <= 1000 && a.size * 4 > 1000);
  // A client expunges b without appending "-size -1": maildirsize still says three messages.
  await unlink(b.path);
  const d = await deliver('d');
  assert.deepEqual(await store.quotaUsage(alice), { bytes: a.size + c.size + d.size, messages: 3 });
  assert.equal(await readFile(join(maildir, 'maildirsize'), 'utf8'), `1000S\n${a.size + c.size} 2\n${d.size} 1\n`);
});

test('quota: a one-line maildirsize saying "over" is trusted while fresh and recounted once 15 minutes old', async (t) => {
  const { store } = await tempStore(t);
  const path = join(store.maildirPath(alice), 'maildirsize');
  const a = await store.deliver(alice, message(), { quotaBytes: 1000 });
  await writeFile(path, '1000S\n990 1\n'); // wrong, e.g. written by another server
  await assert.rejects(store.deliver(alice, message(), { quotaBytes: 1000 }), QuotaExceeded);
  const old = new Date(Date.now() - 16 * 60 * 1000);
  await utimes(path, old, old);
  const b = await store.deliver(alice, message(), { quotaBytes: 1000 });
  assert.equal(await readFile(path, 'utf8'), `1000S\n${a.size} 1\n${b.size} 1\n`);
});

test('owner names: case-insensitive, and "../", "/", "%" and control characters never leave the root', async (t) => {
  const { root, store } = await tempStore(t);
  const users = join(root, 'users');
  assert.equal(store.maildirPath({ kind: 'user', login: 'Alice' }), store.maildirPath({ kind: 'user', login: 'ALICE' }));
  assert.equal(store.maildirPath({ kind: 'user', login: 'Alice' }), join(users, 'alice', 'Maildir'));
  assert.equal(store.maildirPath({ kind: 'user', login: '../../etc' }), join(users, '%2E.%2F..%2Fetc', 'Maildir'));
  assert.equal(store.maildirPath({ kind: 'user', login: '..' }), join(users, '%2E.', 'Maildir'));
  assert.equal(store.maildirPath({ kind: 'user', login: '/abs' }), join(users, '%2Fabs', 'Maildir'));
  assert.equal(store.maildirPath({ kind: 'user', login: 'a%2Fb' }), join(users, 'a%252fb', 'Maildir'), "'%' is encoded too: no two logins share a directory");
  assert.equal(store.maildirPath({ kind: 'user', login: 'x\u0000y\n' }), join(users, 'x%00y%0A', 'Maildir'));
  assert.throws(() => store.maildirPath({ kind: 'user', login: '' }), RangeError);

  for (const login of ['../../escape', '/etc/passwd', '..', '.hidden', 'Mixed.Case']) {
    const d = await store.deliver({ kind: 'user', login }, message());
    const rel = relative(users, d.path).split('/');
    assert.equal(rel.length, 4, d.path);
    assert.deepEqual(rel.slice(1, 3), ['Maildir', 'new']);
  }
  const m1 = await store.deliver({ kind: 'user', login: 'MiXeD.cAsE' }, message());
  assert.equal(dirname(m1.path), join(users, 'mixed.case', 'Maildir', 'new'));
  assert.deepEqual((await readdir(root)).sort(), ['users']);
  assert.deepEqual((await readdir(users)).sort(), ['%2E.', '%2E.%2F..%2Fescape', '%2Ehidden', '%2Fetc%2Fpasswd', 'mixed.case']);
  assert.equal((await readdir(join(users, 'mixed.case', 'Maildir', 'new'))).length, 2);
});

test('a shared folder of a group lives under shared/<group>/Maildir, apart from a user of the same name', async (t) => {
  const { root, store } = await tempStore(t);
  const sales: MailboxOwner = { kind: 'shared', group: 'Sales' };
  assert.equal(store.maildirPath(sales), join(root, 'shared', 'sales', 'Maildir'));
  assert.equal(store.maildirPath({ kind: 'shared', group: 'SALES' }), store.maildirPath(sales));
  const d = await store.deliver(sales, message(), { prefix: PREFIX });
  assert.equal(dirname(d.path), join(root, 'shared', 'sales', 'Maildir', 'new'));
  const u = await store.deliver({ kind: 'user', login: 'sales' }, message());
  assert.equal(dirname(u.path), join(root, 'users', 'sales', 'Maildir', 'new'));
  assert.deepEqual(await store.quotaUsage(sales), { bytes: d.size, messages: 1 });
});

test('50 concurrent deliveries to one mailbox all land with unique names and maildirsize adds up', async (t) => {
  const { store } = await tempStore(t);
  const maildir = store.maildirPath(alice);
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) => store.deliver(alice, message(`body ${i} `.repeat(i + 1), `m${i}`), { prefix: PREFIX, quotaBytes: 10_000_000 })),
  );
  const names = new Set(results.map((r) => basename(r.path)));
  assert.equal(names.size, 50);
  assert.deepEqual(new Set(await readdir(join(maildir, 'new'))), names);
  assert.deepEqual(await readdir(join(maildir, 'tmp')), []);
  const total = results.reduce((sum, r) => sum + r.size, 0);
  const [definition, ...counts] = (await readFile(join(maildir, 'maildirsize'), 'utf8')).trimEnd().split('\n');
  assert.equal(definition, '10000000S');
  const summed = counts.map((l) => l.split(' ').map(Number)).reduce(([b, m], [lb, lm]) => [b! + lb!, m! + lm!], [0, 0]);
  assert.deepEqual(summed, [total, 50], 'maildirsize lines add up');
  assert.deepEqual(await store.quotaUsage(alice), { bytes: total, messages: 50 });
  await unlink(join(maildir, 'maildirsize'));
  assert.deepEqual(await store.quotaUsage(alice), { bytes: total, messages: 50 }, 'recalculated');
  for (const r of results) assert.equal((await stat(r.path)).size, r.size);
});

test('concurrent deliveries cannot overshoot the quota together: exactly those that fit are accepted', async (t) => {
  const { store } = await tempStore(t);
  const maildir = store.maildirPath(alice);
  const msg = message('z'.repeat(900)); // ~1000 bytes each
  const size = msg.length;
  const quota = size * 10 + 5;
  const outcomes = await Promise.allSettled(Array.from({ length: 30 }, () => store.deliver(alice, msg, { quotaBytes: quota })));
  const accepted = outcomes.filter((o) => o.status === 'fulfilled');
  const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
  assert.equal(accepted.length, 10);
  assert.ok(refused.every((o) => o.reason instanceof QuotaExceeded));
  assert.equal((await readdir(join(maildir, 'new'))).length, 10);
  assert.deepEqual(await readdir(join(maildir, 'tmp')), []);
  assert.deepEqual(await store.quotaUsage(alice), { bytes: size * 10, messages: 10 });
});

test('a missing new/ or folder is recreated on the next delivery', async (t) => {
  const { store } = await tempStore(t);
  const maildir = store.maildirPath(alice);
  await store.deliver(alice, message());
  await rm(join(maildir, 'new'), { recursive: true });
  const d = await store.deliver(alice, message());
  assert.equal(dirname(d.path), join(maildir, 'new'));
  await mkdir(join(maildir, '.Old'));
  const f = await store.deliver(alice, message(), { folder: 'Old' });
  assert.equal(dirname(f.path), join(maildir, '.Old', 'new'));
});

test('listFolders of an owner without a Maildir is just INBOX', async (t) => {
  const { store } = await tempStore(t);
  assert.deepEqual(await store.listFolders({ kind: 'user', login: 'nobody' }), [{ name: 'INBOX', path: store.maildirPath({ kind: 'user', login: 'nobody' }) }]);
  assert.deepEqual(await store.quotaUsage({ kind: 'user', login: 'nobody' }), { bytes: 0, messages: 0 });
});

test('linkFrom: a durable file holding prefix + message is hard-linked into new/, not written again', async (t) => {
  const { root, store } = await tempStore(t);
  const msg = message('linked');
  const source = join(root, '..', 'spooled.eml');
  await writeFile(source, Buffer.concat([Buffer.from(PREFIX), msg]), { mode: 0o600 });
  const d = await store.deliver(alice, msg, { prefix: PREFIX, linkFrom: source, quotaBytes: 1_000_000 });
  assert.equal(dirname(d.path), join(store.maildirPath(alice), 'new'));
  assert.equal(d.size, PREFIX.length + msg.length);
  assert.equal(sizeInName(d.path), d.size);
  assert.equal((await stat(d.path)).ino, (await stat(source)).ino, 'the same file, linked');
  assert.equal((await stat(source)).nlink, 2);
  assert.deepEqual(await readdir(join(store.maildirPath(alice), 'tmp')), []);
  assert.deepEqual(await store.quotaUsage(alice), { bytes: d.size, messages: 1 }, 'counted in maildirsize like a written one');
  // The source's name goes (the queue removes it); the Maildir keeps the message.
  await unlink(source);
  assert.deepEqual(await readFile(d.path), Buffer.concat([Buffer.from(PREFIX), msg]));
});

test('linkFrom: a source that cannot be linked (gone) is written as usual; over quota is refused as usual', async (t) => {
  const { root, store } = await tempStore(t);
  const msg = message('fallback');
  const d = await store.deliver(alice, msg, { prefix: PREFIX, linkFrom: join(root, '..', 'gone.eml') });
  assert.deepEqual(await readFile(d.path), Buffer.concat([Buffer.from(PREFIX), msg]));
  assert.equal((await stat(d.path)).nlink, 1);
  const source = join(root, '..', 'big.eml');
  await writeFile(source, Buffer.concat([Buffer.from(PREFIX), msg]));
  await assert.rejects(store.deliver(alice, msg, { prefix: PREFIX, linkFrom: source, quotaBytes: d.size + 10 }), QuotaExceeded);
  assert.equal((await stat(source)).nlink, 1, 'nothing linked');
  assert.equal((await readdir(join(store.maildirPath(alice), 'new'))).length, 1);
});
