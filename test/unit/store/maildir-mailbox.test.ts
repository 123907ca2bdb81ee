import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { execChild, runChild } from '../../harness/children.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../src/lib/logger.ts';
import { INDEX_FILE } from '../../../src/store/folder-index.ts';
import { FolderNotFound, OverQuota, type FolderChange } from '../../../src/store/mailbox.ts';
import { FolderExists, FolderRefused, MaildirMailbox, quotaFromSettings } from '../../../src/store/maildir-mailbox.ts';
import { MaildirStore } from '../../../src/store/maildir.ts';
import type { MailboxOwner } from '../../../src/store/types.ts';

const run = execChild;
const alice: MailboxOwner = { kind: 'user', login: 'alice' };
const bob: MailboxOwner = { kind: 'user', login: 'bob' };
const sales: MailboxOwner = { kind: 'shared', group: 'Sales' };

function message(subject = 'test', body = 'Hello.'): Buffer {
  return Buffer.from(`From: bob@example.org\r\nTo: alice@corp.example\r\nSubject: ${subject}\r\n\r\n${body}\r\n`);
}

interface Fixture {
  store: MaildirStore;
  root: string;
  quota: Map<string, number>;
  mailbox(opts?: { autocreate?: boolean }): MaildirMailbox;
}

async function fixture(t: { after(fn: () => Promise<void> | void): void }): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'postern-mbox-'));
  const root = join(dir, 'mail');
  const store = new MaildirStore({ root, hostname: 'mail.corp.example' });
  const quota = new Map<string, number>();
  const opened: MaildirMailbox[] = [];
  t.after(async () => {
    for (const m of opened) m.close();
    await rm(dir, { recursive: true, force: true });
  });
  return {
    store,
    root,
    quota,
    mailbox(opts = {}) {
      const m = new MaildirMailbox({
        ...opts,
        store,
        quotaBytes: (o) => quota.get(o.kind === 'user' ? o.login : o.group) ?? 0,
        log: silentLogger,
        debounceMs: 10,
      });
      opened.push(m);
      return m;
    },
  };
}

function waitFor<T>(list: T[], pred: (x: T) => boolean, ms = 3000): Promise<T> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => {
      const hit = list.find(pred);
      if (hit !== undefined) return resolve(hit);
      if (Date.now() > deadline) return reject(new Error(`not seen within ${ms} ms: ${JSON.stringify(list)}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

test('delivered messages get ascending UIDs that stay the same for a new instance', async (t) => {
  const f = await fixture(t);
  for (let i = 0; i < 3; i++) await f.store.deliver(alice, message(`m${i}`));
  const first = await f.mailbox().openFolder(alice, 'INBOX');
  assert.deepEqual(first.messages.map((m) => m.uid), [1, 2, 3]);
  assert.equal(first.uidNext, 4);
  const again = await f.mailbox().openFolder(alice, 'INBOX');
  assert.equal(again.uidValidity, first.uidValidity);
  assert.deepEqual(again.messages.map((m) => m.uid), [1, 2, 3]);
  // Opening moved new/ to cur/ with an empty info part, as the Maildir spec asks.
  const inbox = f.store.folderPath(alice);
  assert.deepEqual(await readdir(join(inbox, 'new')), []);
  assert.ok((await readdir(join(inbox, 'cur'))).every((n) => n.endsWith(':2,')));
  assert.equal((await f.mailbox().readMessage(alice, 'INBOX', 2)).toString().includes('Subject: m1'), true);
});

test('sizes come from ,S= and internal dates from the file name', async (t) => {
  const f = await fixture(t);
  const d = await f.store.deliver(alice, message('x'));
  const [m] = (await f.mailbox().openFolder(alice, 'INBOX')).messages;
  assert.equal(m!.size, d.size);
  assert.ok(Math.abs(m!.internalDate.getTime() - Date.now()) < 5000);
});

test('a file dropped into new/ by another program shows up with the next UID; a deleted one disappears', async (t) => {
  const f = await fixture(t);
  const mb = f.mailbox();
  await f.store.deliver(alice, message('a'));
  await f.store.deliver(alice, message('b'));
  const before = await mb.openFolder(alice, 'INBOX');
  const inbox = f.store.folderPath(alice);
  // Another MDA (procmail, a script): a name without ,S= and a time part in the past.
  await writeFile(join(inbox, 'new', '1000000000.12345_1.otherhost'), message('dropped'));
  // The file of message 1 ("a"); names do not sort by time as text (the microseconds are not zero-padded).
  const cur = await readdir(join(inbox, 'cur'));
  const first = [];
  for (const n of cur) if ((await readFile(join(inbox, 'cur', n), 'utf8')).includes('Subject: a')) first.push(n);
  assert.equal(first.length, 1);
  await unlink(join(inbox, 'cur', first[0]!));
  const after = await mb.openFolder(alice, 'INBOX');
  assert.equal(after.uidValidity, before.uidValidity);
  assert.deepEqual(after.messages.map((m) => m.uid), [2, 3]);
  assert.equal(after.messages[1]!.size, message('dropped').length);
  assert.match((await mb.readMessage(alice, 'INBOX', 3)).toString(), /Subject: dropped/);
});

test('several new files get UIDs in the time order of their names', async (t) => {
  const f = await fixture(t);
  const inbox = await f.store.createFolder(alice, 'INBOX');
  await writeFile(join(inbox, 'new', '1700000003.M5P1Q1.h,S=3'), 'ccc');
  await writeFile(join(inbox, 'new', '1700000001.M900000P1Q1.h,S=3'), 'aaa');
  await writeFile(join(inbox, 'new', '1700000002.M1P1Q1.h,S=3'), 'bbb');
  const mb = f.mailbox();
  await mb.openFolder(alice, 'INBOX');
  const bodies = await Promise.all([1, 2, 3].map(async (uid) => (await mb.readMessage(alice, 'INBOX', uid)).toString()));
  assert.deepEqual(bodies, ['aaa', 'bbb', 'ccc']);
});

test('a deleted or corrupt index is rebuilt from dovecot-uidlist with the same UIDVALIDITY and UIDs', async (t) => {
  const f = await fixture(t);
  for (let i = 0; i < 3; i++) await f.store.deliver(alice, message(`m${i}`));
  const mb = f.mailbox();
  const first = await mb.openFolder(alice, 'INBOX');
  await mb.expunge(alice, 'INBOX', [2]);
  await unlink(join(f.store.folderPath(alice), INDEX_FILE));
  const second = await mb.openFolder(alice, 'INBOX');
  assert.equal(second.uidValidity, first.uidValidity);
  assert.deepEqual(second.messages.map((m) => m.uid), [1, 3]);
  assert.equal(second.uidNext, 4);
  mb.close();
  await writeFile(join(f.store.folderPath(alice), INDEX_FILE), Buffer.alloc(8192, 0x41));
  const third = await f.mailbox().openFolder(alice, 'INBOX');
  assert.equal(third.uidValidity, first.uidValidity);
  assert.deepEqual(third.messages.map((m) => m.uid), [1, 3]);
});

test('with both the index and dovecot-uidlist gone, the folder gets a new UIDVALIDITY', async (t) => {
  const f = await fixture(t);
  await f.store.deliver(alice, message());
  const mb = f.mailbox();
  const first = await mb.openFolder(alice, 'INBOX');
  mb.close();
  await unlink(join(f.store.folderPath(alice), INDEX_FILE));
  await unlink(join(f.store.folderPath(alice), 'dovecot-uidlist'));
  const second = await f.mailbox().openFolder(alice, 'INBOX');
  assert.notEqual(second.uidValidity, first.uidValidity);
  assert.deepEqual(second.messages.map((m) => m.uid), [1]);
});

test('flags and keywords round-trip through the file name, keywords as dovecot-keywords letters', async (t) => {
  const f = await fixture(t);
  await f.store.deliver(alice, message());
  const mb = f.mailbox();
  await mb.openFolder(alice, 'INBOX');
  let r = await mb.storeFlags(alice, 'INBOX', [1], 'add', ['\\Seen', '\\Flagged', '$Junk']);
  assert.deepEqual(r.get(1), ['\\Flagged', '\\Seen', '$Junk']);
  const cur = join(f.store.folderPath(alice), 'cur');
  assert.match((await readdir(cur))[0]!, /:2,FSa$/);
  assert.equal(await readFile(join(f.store.folderPath(alice), 'dovecot-keywords'), 'utf8'), '0 $Junk\n');
  r = await mb.storeFlags(alice, 'INBOX', [1], 'remove', ['\\Flagged', '$junk']);
  assert.deepEqual(r.get(1), ['\\Seen']);
  r = await mb.storeFlags(alice, 'INBOX', [1], 'set', ['\\Answered', '\\Deleted', '\\Draft', 'Work']);
  assert.deepEqual(r.get(1), ['\\Draft', '\\Answered', '\\Deleted', 'Work']);
  assert.match((await readdir(cur))[0]!, /:2,DRTb$/);
  assert.equal(await readFile(join(f.store.folderPath(alice), 'dovecot-keywords'), 'utf8'), '0 $Junk\n1 Work\n');
  // A new instance reads the same flags back from the name and dovecot-keywords.
  const [m] = (await f.mailbox().openFolder(alice, 'INBOX')).messages;
  assert.deepEqual(m!.flags, ['\\Draft', '\\Answered', '\\Deleted', 'Work']);
});

test('messages with the same flags share one frozen flags array, and a keyword given a letter later shows up', async (t) => {
  const f = await fixture(t);
  for (let i = 0; i < 4; i++) await f.store.deliver(alice, message(`m${i}`));
  const mb = f.mailbox();
  await mb.openFolder(alice, 'INBOX');
  await mb.storeFlags(alice, 'INBOX', [1, 3], 'add', ['\\Seen', 'Work']);
  const { messages } = await mb.openFolder(alice, 'INBOX');
  assert.deepEqual(messages.map((m) => m.flags), [['\\Seen', 'Work'], [], ['\\Seen', 'Work'], []]);
  assert.equal(messages[0]!.flags, messages[2]!.flags);
  assert.equal(messages[1]!.flags, messages[3]!.flags);
  // Shared, so not to be changed in place (MessageMeta: copy before changing); strict mode makes that an error.
  assert.ok(Object.isFrozen(messages[0]!.flags));
  assert.throws(() => (messages[0]!.flags as string[]).push('\\Flagged'), TypeError);
  // Another program gives one message without flags the letter b and names b in dovecot-keywords: the letter is read
  // as that keyword (a new keyword map, so nothing shared under the old one is reused), the others keep their flags.
  const cur = join(f.store.folderPath(alice), 'cur');
  const plain = (await readdir(cur)).find((n) => n.endsWith(':2,'))!;
  await rename(join(cur, plain), join(cur, `${plain}b`));
  const kwFile = join(f.store.folderPath(alice), 'dovecot-keywords');
  await writeFile(kwFile, `${await readFile(kwFile, 'utf8')}1 Later\n`);
  const after = (await f.mailbox().openFolder(alice, 'INBOX')).messages.map((m) => m.flags);
  assert.deepEqual(after.filter((fl) => fl.includes('Later')), [['Later']]);
  assert.deepEqual(after.filter((fl) => fl.includes('Work')), [['\\Seen', 'Work'], ['\\Seen', 'Work']]);
});

test('flags changed by another program (a rename in cur/) are picked up, and unknown info letters are kept', async (t) => {
  const f = await fixture(t);
  await f.store.deliver(alice, message());
  const mb = f.mailbox();
  await mb.openFolder(alice, 'INBOX');
  const cur = join(f.store.folderPath(alice), 'cur');
  const [name] = await readdir(cur);
  await rename(join(cur, name!), join(cur, name!.replace(/:2,.*$/, ':2,PSa')));
  const [m] = (await mb.openFolder(alice, 'INBOX')).messages;
  assert.deepEqual(m!.flags, ['\\Seen']);
  await mb.storeFlags(alice, 'INBOX', [1], 'add', ['\\Flagged']);
  assert.match((await readdir(cur))[0]!, /:2,FPSa$/);
});

test('append stores flags, keywords and the internal date and returns APPENDUID data', async (t) => {
  const f = await fixture(t);
  await f.store.createFolder(alice, 'Drafts');
  const mb = f.mailbox();
  const when = new Date('2024-02-03T04:05:06Z');
  const res = await mb.append(alice, 'Drafts', message('draft'), ['\\Draft', '\\Seen', '$Label1'], when);
  assert.equal(res.uid, 1);
  const state = await mb.openFolder(alice, 'Drafts');
  assert.equal(state.uidValidity, res.uidValidity);
  assert.deepEqual(state.messages[0]!.flags, ['\\Draft', '\\Seen', '$Label1']);
  assert.equal(state.messages[0]!.internalDate.getTime(), when.getTime());
  assert.equal((await mb.append(alice, 'Drafts', message('2'), [])).uid, 2);
  await assert.rejects(mb.append(alice, 'Nope', message(), []), FolderNotFound);
});

test('copy gives COPYUID mappings and keeps flags; move renames within one owner', async (t) => {
  const f = await fixture(t);
  await f.store.createFolder(alice, 'Archive');
  const mb = f.mailbox();
  for (let i = 0; i < 3; i++) await f.store.deliver(alice, message(`m${i}`));
  await mb.openFolder(alice, 'INBOX');
  await mb.storeFlags(alice, 'INBOX', [2], 'add', ['\\Seen', 'Work']);
  const copied = await mb.copy(alice, 'INBOX', [2, 3], 'Archive');
  assert.deepEqual(copied.mapping, [
    [2, 1],
    [3, 2],
  ]);
  const archive = await mb.openFolder(alice, 'Archive');
  assert.equal(archive.uidValidity, copied.uidValidity);
  assert.deepEqual(archive.messages[0]!.flags, ['\\Seen', 'Work']);
  assert.equal((await mb.openFolder(alice, 'INBOX')).messages.length, 3);

  const usage = await mb.quota(alice);
  const moved = await mb.copy(alice, 'INBOX', [1], 'Archive', { move: true });
  assert.deepEqual(moved.mapping, [[1, 3]]);
  assert.deepEqual((await mb.openFolder(alice, 'INBOX')).messages.map((m) => m.uid), [2, 3]);
  assert.match((await mb.readMessage(alice, 'Archive', 3)).toString(), /Subject: m0/);
  assert.equal((await mb.quota(alice)).usedBytes, usage.usedBytes, 'a move inside one Maildir does not change the quota');
});

test('copy and move to another owner (a shared folder) write through the store', async (t) => {
  const f = await fixture(t);
  const mb = f.mailbox();
  await f.store.deliver(alice, message('to share'));
  await f.store.createFolder(sales, 'INBOX');
  await mb.openFolder(alice, 'INBOX');
  const res = await mb.copy(alice, 'INBOX', [1], 'INBOX', { move: true, toOwner: sales });
  assert.deepEqual(res.mapping, [[1, 1]]);
  assert.equal((await mb.openFolder(alice, 'INBOX')).messages.length, 0);
  assert.match((await mb.readMessage(sales, 'INBOX', 1)).toString(), /Subject: to share/);
  assert.equal((await mb.quota(sales)).messages, 1);
});

test('expunge removes \\Deleted messages (or the given UIDs) and updates maildirsize', async (t) => {
  const f = await fixture(t);
  const mb = f.mailbox();
  for (let i = 0; i < 4; i++) await f.store.deliver(alice, message(`m${i}`));
  await mb.openFolder(alice, 'INBOX');
  const before = await mb.quota(alice);
  await mb.storeFlags(alice, 'INBOX', [1, 3], 'add', ['\\Deleted']);
  assert.deepEqual(await mb.expunge(alice, 'INBOX'), [1, 3]);
  assert.deepEqual(await mb.expunge(alice, 'INBOX', [4, 99]), [4]);
  assert.deepEqual((await mb.openFolder(alice, 'INBOX')).messages.map((m) => m.uid), [2]);
  assert.equal((await readdir(join(f.store.folderPath(alice), 'cur'))).length, 1);
  const after = await mb.quota(alice);
  assert.equal(after.messages, before.messages - 3);
  assert.equal(after.usedBytes, before.usedBytes - 3 * message('m0').length);
});

test('append and copy throw OverQuota when the quota would be exceeded, writing nothing', async (t) => {
  const f = await fixture(t);
  const mb = f.mailbox();
  f.quota.set('alice', 300);
  await mb.append(alice, 'INBOX', message('one'), []);
  await assert.rejects(mb.append(alice, 'INBOX', message('big', 'x'.repeat(400)), []), OverQuota);
  await f.store.createFolder(alice, 'Copy');
  await mb.append(alice, 'INBOX', message('two'), []);
  await mb.append(alice, 'INBOX', message('three'), []);
  await assert.rejects(mb.copy(alice, 'INBOX', [1, 2, 3], 'Copy'), OverQuota);
  assert.equal((await mb.openFolder(alice, 'Copy')).messages.length, 0);
  const q = await mb.quota(alice);
  assert.equal(q.limitBytes, 300);
  assert.equal(q.messages, 3);
});

test('changes by one instance reach the watchers of another; so do deliveries', async (t) => {
  const f = await fixture(t);
  const a = f.mailbox();
  const b = f.mailbox();
  await f.store.deliver(alice, message('first'));
  await a.openFolder(alice, 'INBOX');
  const seen: FolderChange[] = [];
  const stop = b.watch(alice, 'INBOX', (c) => seen.push(c));
  t.after(stop);

  await a.storeFlags(alice, 'INBOX', [1], 'add', ['\\Seen']);
  await waitFor(seen, (c) => c.kind === 'flags' && c.uid === 1 && c.flags.includes('\\Seen'));
  await a.append(alice, 'INBOX', message('appended'), []);
  await waitFor(seen, (c) => c.kind === 'exists' && c.uidNext === 3);
  await a.expunge(alice, 'INBOX', [1]);
  await waitFor(seen, (c) => c.kind === 'expunge' && c.uids.includes(1));

  // Delivery through the store: notifyDelivered (the lead's hook) and fs.watch on new/ both lead to a sync.
  await f.store.deliver(alice, message('delivered'));
  a.notifyDelivered(alice, 'INBOX');
  await waitFor(seen, (c) => c.kind === 'exists' && c.uidNext === 4);
  await f.store.deliver(alice, message('delivered by another process'));
  await waitFor(seen, (c) => c.kind === 'exists' && c.uidNext === 5);
  stop();
  const count = seen.length;
  await a.append(alice, 'INBOX', message('unheard'), []);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(seen.length, count, 'no events after unsubscribing');
});

test('a user\'s first LIST creates and subscribes Junk, Trash, Sent and Drafts; a shared folder gets only INBOX', async (t) => {
  const f = await fixture(t);
  const mb = f.mailbox();
  const list = await mb.listFolders(alice);
  assert.deepEqual(
    list.map((x) => [x.name, x.specialUse ?? null, x.subscribed]),
    [
      ['INBOX', null, false],
      ['Drafts', '\\Drafts', true],
      ['Junk', '\\Junk', true],
      ['Sent', '\\Sent', true],
      ['Trash', '\\Trash', true],
    ],
  );
  assert.deepEqual((await mb.listFolders(sales)).map((x) => x.name), ['INBOX']);
});

test('folders: create, list with subscriptions and children, rename with children, delete', async (t) => {
  const f = await fixture(t);
  const mb = f.mailbox({ autocreate: false });
  await mb.createFolder(alice, 'Projects');
  await mb.createFolder(alice, 'Projects/2024');
  await mb.createFolder(alice, 'Junk');
  await assert.rejects(mb.createFolder(alice, 'Projects'), FolderExists);
  await assert.rejects(mb.createFolder(alice, 'inbox'), FolderExists);
  await mb.subscribe(alice, 'Projects', true);
  await mb.subscribe(alice, 'Junk', true);
  await mb.subscribe(alice, 'Junk', false);
  let list = await mb.listFolders(alice);
  assert.deepEqual(
    list.map((x) => [x.name, x.subscribed, x.hasChildren, x.specialUse ?? null]),
    [
      ['INBOX', false, false, null],
      ['Junk', false, false, '\\Junk'],
      ['Projects', true, true, null],
      ['Projects/2024', false, false, null],
    ],
  );
  // Dovecot's version 2 subscriptions format: hierarchy levels separated by TAB.
  await mb.subscribe(alice, 'Projects/2024', true);
  assert.equal(await readFile(join(f.store.maildirPath(alice), 'subscriptions'), 'utf8'), 'V\t2\n\nProjects\nProjects\t2024\n');
  assert.deepEqual((await mb.listFolders(alice)).filter((x) => x.subscribed).map((x) => x.name), ['Projects', 'Projects/2024']);
  await mb.subscribe(alice, 'Projects/2024', false);

  await mb.append(alice, 'Projects/2024', message('kept'), ['\\Seen']);
  const validity = (await mb.openFolder(alice, 'Projects/2024')).uidValidity;
  await mb.renameFolder(alice, 'Projects', 'Work');
  list = await mb.listFolders(alice);
  assert.deepEqual(list.map((x) => x.name), ['INBOX', 'Junk', 'Work', 'Work/2024']);
  const moved = await mb.openFolder(alice, 'Work/2024');
  assert.equal(moved.uidValidity, validity, 'a renamed folder keeps its UIDs');
  assert.deepEqual(moved.messages.map((m) => m.flags), [['\\Seen']]);
  await assert.rejects(mb.openFolder(alice, 'Projects'), FolderNotFound);

  await assert.rejects(mb.deleteFolder(alice, 'INBOX'), FolderRefused);
  await mb.deleteFolder(alice, 'Work');
  assert.deepEqual((await mb.listFolders(alice)).map((x) => x.name), ['INBOX', 'Junk', 'Work/2024']);
  await assert.rejects(mb.deleteFolder(alice, 'Work'), FolderNotFound);
});

test('renaming INBOX moves its messages into the new folder and leaves INBOX empty', async (t) => {
  const f = await fixture(t);
  const mb = f.mailbox();
  await f.store.deliver(alice, message('old'));
  await mb.renameFolder(alice, 'INBOX', 'Old');
  assert.equal((await mb.openFolder(alice, 'INBOX')).messages.length, 0);
  assert.equal((await mb.openFolder(alice, 'Old')).messages.length, 1);
});

test('owners are separate: bob does not see alice', async (t) => {
  const f = await fixture(t);
  const mb = f.mailbox();
  await f.store.deliver(alice, message());
  assert.equal((await mb.openFolder(bob, 'INBOX')).messages.length, 0);
});

test('opening a folder of 20,000 messages reads only directory listings and the index', async (t) => {
  const f = await fixture(t);
  const inbox = await f.store.createFolder(alice, 'INBOX');
  // Dangling symlinks: listing them works, but any read or stat of a message would fail with ENOENT, and the
  // sync would then drop the message. So 20,000 messages with the sizes from their names prove neither happened.
  const N = 20_000;
  const t0 = performance.now();
  const made: Promise<void>[] = [];
  for (let i = 0; i < N; i++) {
    const sub = i % 10 === 0 ? 'new' : 'cur';
    const name = `${1_700_000_000 + i}.M${i}P1Q${i}.host,S=${100 + (i % 7)}${sub === 'cur' ? ':2,S' : ''}`;
    made.push(symlink(join(inbox, 'no-such-target'), join(inbox, sub, name)));
    if (made.length >= 500) await Promise.all(made.splice(0));
  }
  await Promise.all(made);
  const tCreate = performance.now() - t0;

  const mb = f.mailbox();
  const t1 = performance.now();
  const state = await mb.openFolder(alice, 'INBOX');
  const tFirst = performance.now() - t1;
  assert.equal(state.messages.length, N);
  assert.equal(state.messages[0]!.uid, 1);
  assert.equal(state.messages[N - 1]!.uid, N);
  assert.equal(state.messages[N - 1]!.size, 100 + ((N - 1) % 7));
  assert.deepEqual(state.messages[1]!.flags, ['\\Seen']);
  assert.deepEqual(state.messages[0]!.flags, []); // came from new/

  const t2 = performance.now();
  const again = await f.mailbox().openFolder(alice, 'INBOX');
  const tReopen = performance.now() - t2;
  assert.equal(again.messages.length, N);
  console.log(
    `# 20,000 messages: created in ${tCreate.toFixed(0)} ms; first open (index + 2,000 new/ → cur/ renames) ${tFirst.toFixed(0)} ms; reopen by a new instance ${tReopen.toFixed(0)} ms`,
  );
});

test('quotaFromSettings gives the same bytes delivery uses: custom quota per user, mailbox.quotaMB otherwise', () => {
  const settings = {
    effectiveUser: (login: string) => ({ quotaMB: login === 'alice' ? 2 : 0 }),
    get: () => 5,
  } as unknown as Parameters<typeof quotaFromSettings>[0];
  const quota = quotaFromSettings(settings);
  assert.equal(quota(alice), 2 * 1024 * 1024);
  assert.equal(quota(bob), 0);
  assert.equal(quota(sales), 5 * 1024 * 1024);
});

test('Dovecot pointed at the same Maildir sees the same flags, internal date, folders and subscriptions', async (t) => {
  const imapBin = '/usr/lib/dovecot/imap';
  if (!existsSync(imapBin) || process.getuid?.() !== 0) {
    t.skip('needs Dovecot (/usr/lib/dovecot/imap) and root (Dovecot refuses to read mail as root, so it runs as nobody)');
    return;
  }
  const f = await fixture(t);
  const mb = f.mailbox({ autocreate: false });
  for (let i = 0; i < 3; i++) await f.store.deliver(alice, message(`m${i}`));
  await mb.openFolder(alice, 'INBOX');
  await mb.storeFlags(alice, 'INBOX', [1], 'add', ['\\Seen', '\\Flagged']);
  await mb.storeFlags(alice, 'INBOX', [2], 'add', ['\\Answered', '\\Deleted', '\\Draft']);
  await mb.createFolder(alice, 'Archive/2024');
  await mb.subscribe(alice, 'Archive/2024', true);
  await mb.append(alice, 'Archive/2024', message('archived'), ['\\Seen'], new Date('2024-05-01T10:00:00Z'));

  const base = join(f.root, '..');
  const conf = join(base, 'dovecot.conf');
  await writeFile(
    conf,
    [
      `mail_location = maildir:${join(f.root, 'users/%Ln/Maildir')}`,
      `base_dir = ${join(base, 'dovecot-run')}`,
      `log_path = ${join(base, 'dovecot.log')}`,
      'ssl = no',
      'namespace inbox {',
      '  inbox = yes',
      '  separator = /',
      '}',
      '',
    ].join('\n'),
  );
  await mkdir(join(base, 'home'), { recursive: true });
  await run('chown', ['-R', 'nobody', base]);
  await chmod(base, 0o755);
  const script = [
    'a LSUB "" "*"',
    'b SELECT INBOX',
    'c FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])',
    'd SELECT Archive/2024',
    'e FETCH 1:* (FLAGS INTERNALDATE)',
    'f LOGOUT',
    '',
  ].join('\r\n');
  // Dovecot's imap answers in well under a second; the group is killed after 30 s.
  const { stdout: out } = await runChild(
    'runuser',
    ['-u', 'nobody', '--', 'env', 'USER=alice', `HOME=${join(base, 'home')}`, imapBin, '-c', conf],
    { input: script, timeoutMs: 30_000 },
  );
  assert.match(out, /\* LSUB \(\) "\/" Archive\/2024/);
  assert.match(out, /\* 1 FETCH \(FLAGS \(\\Flagged \\Seen\) BODY\[HEADER\.FIELDS \(SUBJECT\)\] \{\d+\}\r\nSubject: m0/);
  // No \Recent: the messages are not new to Dovecot, dovecot-uidlist already lists them.
  assert.match(out, /\* 2 FETCH \(FLAGS \(\\Answered \\Deleted \\Draft\)/);
  assert.match(out, /\* 3 FETCH \(FLAGS \(\)/);
  assert.match(out, /\* 1 FETCH \(FLAGS \(\\Seen\) INTERNALDATE "01-May-2024 10:00:00 \+0000"\)/);
});

// ---- index branch: unchanged directories are not listed; SEARCH header fields ----

/** Sets new/ and cur/ of a folder to an mtime a minute ago: a signature taken now is old enough to be trusted. */
async function settle(dir: string, at = new Date(Date.now() - 60_000)): Promise<Date> {
  await utimes(join(dir, 'new'), at, at);
  await utimes(join(dir, 'cur'), at, at);
  return at;
}

test('a folder whose new/ and cur/ are unchanged since the last sync is opened without listing them; any change is seen', async (t) => {
  const f = await fixture(t);
  await f.store.deliver(alice, message('a'));
  await f.store.deliver(alice, message('b'));
  const inbox = f.store.folderPath(alice);
  // First open: new/ → cur/ moves the files (the directories changed during the sync: no signature kept).
  assert.equal((await f.mailbox().openFolder(alice, 'INBOX')).messages.length, 2);
  const at = await settle(inbox);
  // This sync lists the settled directories and keeps their signature.
  assert.equal((await f.mailbox().openFolder(alice, 'INBOX')).messages.length, 2);

  // A file slipped into cur/ with the directory's mtime put back: the ctime (in the signature too, and not
  // settable) still changed, so the directory is listed and the file seen. That the readdir is skipped when nothing
  // changed is counted in maildir-own-writes.test.ts.
  await writeFile(join(inbox, 'cur', '1700000000.M1P1Q1.other,S=3:2,'), 'abc');
  await settle(inbox, at);
  const restarted = f.mailbox();
  assert.equal((await restarted.openFolder(alice, 'INBOX')).messages.length, 3);

  // An ordinary change behind our back sets the mtime: the next open lists the directories and finds it all.
  await writeFile(join(inbox, 'new', '1700000001.M1P1Q1.other,S=3'), 'def');
  const seen = await restarted.openFolder(alice, 'INBOX');
  assert.deepEqual(seen.messages.map((m) => m.size).slice(2).sort(), [3, 3]);
  assert.equal(seen.messages.length, 4);

  // A flag change by another program (a rename in cur/) and a removal are seen the same way, by a new instance.
  await settle(inbox);
  await f.mailbox().openFolder(alice, 'INBOX');
  const names = (await readdir(join(inbox, 'cur'))).sort();
  await rename(join(inbox, 'cur', names[0]!), join(inbox, 'cur', names[0]!.replace(/:2,.*$/, ':2,S')));
  await unlink(join(inbox, 'cur', names[1]!));
  const after = await f.mailbox().openFolder(alice, 'INBOX');
  assert.equal(after.messages.length, 3);
  assert.ok(after.messages.some((m) => m.flags.includes('\\Seen')));
});

test('a change within the last second is not trusted: the next open lists the directories again', async (t) => {
  const f = await fixture(t);
  const mb = f.mailbox();
  await mb.append(alice, 'INBOX', message('a'), []);
  await mb.openFolder(alice, 'INBOX');
  // cur/ changed just now (the APPEND): whatever lands in it during the same tick must still be found.
  await writeFile(join(f.store.folderPath(alice), 'cur', '1700000000.M1P1Q1.other,S=3:2,'), 'abc');
  assert.equal((await f.mailbox().openFolder(alice, 'INBOX')).messages.length, 2);
});

test('APPEND, COPY and MOVE cache the SEARCH header fields; a delivered message has none until they are set', async (t) => {
  const f = await fixture(t);
  const mb = f.mailbox({ autocreate: false });
  await mb.createFolder(alice, 'Archive');
  await mb.createFolder(alice, 'Old');
  const text = 'From: Anna <anna@example.com>\r\nTo: a@x, b@y\r\nX-Other: not cached\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n Folded\r\n\r\nbody\r\n';
  const { uid } = await mb.append(alice, 'INBOX', Buffer.from(text), []);
  const expected = [
    ['from', 'Anna <anna@example.com>'],
    ['to', 'a@x, b@y'],
    ['subject', '=?utf-8?q?caf=C3=A9?= Folded'],
  ];
  assert.deepEqual((await mb.searchHeaders(alice, 'INBOX')).get(uid), expected);
  const copied = await mb.copy(alice, 'INBOX', [uid], 'Archive');
  assert.deepEqual((await mb.searchHeaders(alice, 'Archive', [copied.mapping[0]![1]])).get(copied.mapping[0]![1]), expected);
  const moved = await mb.copy(alice, 'Archive', [copied.mapping[0]![1]], 'Old', { move: true });
  assert.deepEqual((await mb.searchHeaders(alice, 'Old')).get(moved.mapping[0]![1]), expected);
  assert.equal((await mb.searchHeaders(alice, 'Archive')).size, 0);

  await f.store.deliver(alice, message('delivered'));
  const state = await mb.openFolder(alice, 'INBOX');
  const delivered = state.messages[state.messages.length - 1]!.uid;
  assert.equal((await mb.searchHeaders(alice, 'INBOX')).has(delivered), false);
  await mb.setSearchHeaders(alice, 'INBOX', [[delivered, [['subject', 'delivered']]]]);
  assert.deepEqual((await mb.searchHeaders(alice, 'INBOX', [delivered])).get(delivered), [['subject', 'delivered']]);
  // Expunged with its message.
  await mb.expunge(alice, 'INBOX', [delivered]);
  assert.equal((await mb.searchHeaders(alice, 'INBOX')).has(delivered), false);
});
