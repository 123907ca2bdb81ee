import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, silentLogger } from '../../../src/lib/logger.ts';
import type { FolderChange } from '../../../src/store/mailbox.ts';
import { MaildirMailbox } from '../../../src/store/maildir-mailbox.ts';
import { MaildirStore } from '../../../src/store/maildir.ts';
import { JunkRetention } from '../../../src/store/retention.ts';
import type { MailboxOwner } from '../../../src/store/types.ts';
import { waitFor } from '../../helpers/wait.ts';

const DAY = 24 * 60 * 60 * 1000;
const john: MailboxOwner = { kind: 'user', login: 'john.smith' };
const laura: MailboxOwner = { kind: 'user', login: 'laura.verdi' };
const support: MailboxOwner = { kind: 'shared', group: 'support' };

function message(subject: string): Buffer {
  return Buffer.from(`From: spammer@outside.example\r\nTo: john@example.com\r\nSubject: ${subject}\r\n\r\nBuy now.\r\n`);
}

/** Settings with the global value and per-user overrides, as Settings.effectiveUser gives them. */
function fakeSettings(global: number, perUser: Record<string, number> = {}) {
  const s = {
    global,
    perUser,
    get: ((key: string) => {
      assert.equal(key, 'mailbox.spamRetentionDays');
      return s.global;
    }) as never,
    effectiveUser: ((login: string) => ({ spamRetentionDays: s.perUser[login] ?? s.global })) as never,
  };
  return s;
}

async function fixture(t: { after(fn: () => Promise<void> | void): void }) {
  const dir = await mkdtemp(join(tmpdir(), 'postern-retention-'));
  const store = new MaildirStore({ root: join(dir, 'mail'), hostname: 'mx.example.com' });
  const mailbox = new MaildirMailbox({ store, quotaBytes: () => 0, log: silentLogger, debounceMs: 10 });
  t.after(async () => {
    mailbox.close();
    await rm(dir, { recursive: true, force: true });
  });
  /** Drops a message into new/ of a folder under a Maildir name dated `ageDays` ago (as another MDA would). */
  const dropOld = async (owner: MailboxOwner, folder: string, subject: string, ageDays: number, now = Date.now()) => {
    await store.createFolder(owner, folder);
    const secs = Math.floor((now - ageDays * DAY) / 1000);
    const body = message(subject);
    const name = `${secs}.M${Math.floor(Math.random() * 1e6)}P1.mx.example.com,S=${body.length}`;
    await writeFile(join(store.folderPath(owner, folder), 'new', name), body);
  };
  const subjects = async (owner: MailboxOwner, folder: string) => {
    const state = await mailbox.openFolder(owner, folder);
    const out: string[] = [];
    for (const m of state.messages) out.push(/Subject: (.*)\r/.exec((await mailbox.readMessage(owner, folder, m.uid)).toString())![1]!);
    return out.sort();
  };
  return { dir, store, mailbox, dropOld, subjects };
}

function logLines() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: createLogger('info', stream), lines };
}

test('Junk messages older than the hold period are expunged, newer ones and other folders are kept', async (t) => {
  const f = await fixture(t);
  await f.dropOld(john, 'Junk', 'old spam', 20);
  await f.dropOld(john, 'Junk', 'fresh spam', 3);
  await f.dropOld(john, 'INBOX', 'old ham', 400);
  await f.dropOld(john, 'Archive', 'old archive', 400);
  const { log, lines } = logLines();
  const r = new JunkRetention({ store: f.store, mailbox: f.mailbox, settings: fakeSettings(15), log });
  const result = await r.sweep();
  assert.equal(result.errors, 0);
  assert.deepEqual(result.removed.map((x) => [x.owner, x.folder, x.uids.length]), [['john.smith', 'Junk', 1]]);
  assert.deepEqual(await f.subjects(john, 'Junk'), ['fresh spam']);
  assert.deepEqual(await f.subjects(john, 'INBOX'), ['old ham']);
  assert.deepEqual(await f.subjects(john, 'Archive'), ['old archive']);
  const line = lines.find((l) => l.msg === 'junk retention: expunged spam older than the hold period');
  assert.ok(line, 'the expunge is logged');
  assert.equal(line.component, 'store');
  assert.equal(line.owner, 'john.smith');
  assert.equal(line.folder, 'Junk');
  assert.equal(line.expunged, 1);
  assert.equal(line.retentionDays, 15);
  // The file is gone from disk, not just from the index.
  const dir = f.store.folderPath(john, 'Junk');
  const files = [...(await readdir(join(dir, 'cur'))), ...(await readdir(join(dir, 'new')))];
  assert.equal(files.length, 1);
});

test('the clock decides: nothing is old today, everything 16 days later (fake clock)', async (t) => {
  const f = await fixture(t);
  await f.dropOld(john, 'Junk', 'a', 0);
  // APPEND with an internal date: the index's date, not the file name, is what counts.
  await f.mailbox.append(john, 'Junk', message('b'), [], new Date());
  let now = Date.now();
  const r = new JunkRetention({ store: f.store, mailbox: f.mailbox, settings: fakeSettings(15), log: silentLogger, now: () => now });
  assert.deepEqual((await r.sweep()).removed, []);
  now += 14 * DAY;
  assert.deepEqual((await r.sweep()).removed, []);
  now += 2 * DAY;
  const result = await r.sweep();
  assert.equal(result.removed[0]?.uids.length, 2);
  assert.deepEqual(await f.subjects(john, 'Junk'), []);
});

test('an APPEND with an old internal date counts as old', async (t) => {
  const f = await fixture(t);
  await f.store.createFolder(john, 'Junk');
  await f.mailbox.append(john, 'Junk', message('backdated'), ['\\Seen'], new Date(Date.now() - 30 * DAY));
  await f.mailbox.append(john, 'Junk', message('today'), ['\\Seen']);
  const r = new JunkRetention({ store: f.store, mailbox: f.mailbox, settings: fakeSettings(15), log: silentLogger });
  await r.sweep();
  assert.deepEqual(await f.subjects(john, 'Junk'), ['today']);
});

test('per-user override, 0 = keep forever, and shared folders use the global value', async (t) => {
  const f = await fixture(t);
  for (const o of [john, laura, support]) {
    await f.dropOld(o, 'Junk', 'ten days', 10);
    await f.dropOld(o, 'Junk', 'forty days', 40);
  }
  // john keeps spam 5 days, laura forever; the global 30 applies to the shared folder.
  const settings = fakeSettings(30, { 'john.smith': 5, 'laura.verdi': 0 });
  const r = new JunkRetention({ store: f.store, mailbox: f.mailbox, settings, log: silentLogger });
  await r.sweep();
  assert.deepEqual(await f.subjects(john, 'Junk'), []);
  assert.deepEqual(await f.subjects(laura, 'Junk'), ['forty days', 'ten days']);
  assert.deepEqual(await f.subjects(support, 'Junk'), ['ten days']);
  // The global setting is read at each sweep; 0 turns the sweeper off for everyone without an override.
  settings.global = 0;
  settings.perUser['laura.verdi'] = 7;
  await r.sweep();
  assert.deepEqual(await f.subjects(laura, 'Junk'), []);
  assert.deepEqual(await f.subjects(support, 'Junk'), ['ten days']);
});

test('other \\Junk-named folders are swept; a mailbox without Junk is left alone and gets no folder', async (t) => {
  const f = await fixture(t);
  await f.dropOld(john, 'Spam', 'old', 20);
  await f.dropOld(laura, 'INBOX', 'old', 20);
  const r = new JunkRetention({ store: f.store, mailbox: f.mailbox, settings: fakeSettings(15), log: silentLogger });
  const result = await r.sweep();
  assert.deepEqual(result.removed.map((x) => [x.owner, x.folder]), [['john.smith', 'Spam']]);
  assert.deepEqual((await f.store.listFolders(laura)).map((x) => x.name), ['INBOX']);
});

test('sessions watching Junk hear the EXPUNGE; the index keeps the other UIDs', async (t) => {
  const f = await fixture(t);
  await f.dropOld(john, 'Junk', 'old', 20);
  await f.dropOld(john, 'Junk', 'new', 1);
  const before = await f.mailbox.openFolder(john, 'Junk');
  assert.equal(before.messages.length, 2);
  const heard: FolderChange[] = [];
  const off = f.mailbox.watch(john, 'Junk', (c) => heard.push(c));
  t.after(off);
  const r = new JunkRetention({ store: f.store, mailbox: f.mailbox, settings: fakeSettings(15), log: silentLogger });
  const result = await r.sweep();
  const oldUid = before.messages[0]!.uid;
  assert.deepEqual(result.removed[0]?.uids, [oldUid]);
  // The expunge carries the folder's MODSEQ after it (RFC 7162), above the one before.
  assert.deepEqual(heard, [{ kind: 'expunge', uids: [oldUid], modseq: before.modseq + 1 }]);
  const after = await f.mailbox.openFolder(john, 'Junk');
  assert.equal(after.uidValidity, before.uidValidity);
  assert.deepEqual(after.messages.map((m) => m.uid), [before.messages[1]!.uid]);
});

test('start sweeps at once and then on the interval; stop ends it; concurrent sweeps are joined', async (t) => {
  const f = await fixture(t);
  await f.dropOld(john, 'Junk', 'first', 20);
  const r = new JunkRetention({ store: f.store, mailbox: f.mailbox, settings: fakeSettings(15), log: silentLogger, intervalMs: 50 });
  t.after(() => r.stop());
  r.start();
  // Count only: reading a message the running sweep is expunging would race it (MessageNotFound).
  const emptied = async () => (await f.mailbox.openFolder(john, 'Junk')).messages.length === 0;
  // Two sweeps 50 ms apart take well under a second; the timeout only bounds a failure.
  await waitFor('the sweep at start', emptied, { timeoutMs: 15_000 });
  await f.dropOld(john, 'Junk', 'second', 20);
  await waitFor('a sweep on the interval', emptied, { timeoutMs: 15_000 });
  await r.stop();
  await f.dropOld(john, 'Junk', 'third', 20);
  await new Promise((res) => setTimeout(res, 200));
  assert.deepEqual(await f.subjects(john, 'Junk'), ['third'], 'no sweep after stop');
  const a = r.sweep();
  const b = r.sweep();
  assert.equal(a, b, 'a second sweep while one runs joins it');
  await a;
});

test('a broken mailbox is logged and skipped; the others are still swept', async (t) => {
  const f = await fixture(t);
  await f.dropOld(laura, 'Junk', 'old', 20);
  await f.dropOld(john, 'Junk', 'old', 20);
  const { log, lines } = logLines();
  const mailbox = {
    openFolder: (owner: MailboxOwner, name: string) => {
      if (owner.kind === 'user' && owner.login === 'john.smith') return Promise.reject(new Error('disk on fire'));
      return f.mailbox.openFolder(owner, name);
    },
    expunge: f.mailbox.expunge.bind(f.mailbox),
  };
  const r = new JunkRetention({ store: f.store, mailbox, settings: fakeSettings(15), log });
  const result = await r.sweep();
  assert.equal(result.errors, 1);
  assert.deepEqual(result.removed.map((x) => x.owner), ['laura.verdi']);
  assert.ok(lines.some((l) => l.level === 40 && l.owner === 'john.smith' && l.component === 'store'));
});
