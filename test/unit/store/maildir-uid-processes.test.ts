/**
 * imap.workers: two processes work on one folder at once, each APPENDing (or delivering into new/, as SMTP/LMTP do)
 * while it and the other keep syncing the folder. RFC 3501 §2.3.1.1: UIDs are strictly ascending and a UID, once
 * given to a message, is never given to another and the message keeps it within one UIDVALIDITY. The last
 * fresh-clone CI saw three APPENDed messages get new UIDs after their APPENDUID was answered: a sync in the other
 * process took rows the appender indexed after that sync had listed cur/ for expunged ones (and a sync that read
 * dovecot-uidlist outside its lock could do the same with rows indexed after that read).
 *
 * Every message has a size of its own, so that each observation (an APPENDUID, a message listed by openFolder in
 * either process, and the folder at the end) is a (message, UID) pair; the test fails when a message is seen with
 * two UIDs or a UID with two messages.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { silentLogger } from '../../../src/lib/logger.ts';
import { MaildirMailbox } from '../../../src/store/maildir-mailbox.ts';
import { MaildirStore } from '../../../src/store/maildir.ts';
import { spawnChild } from '../../harness/children.ts';
import { ROOT } from '../../helpers/cli.ts';

const WORKER = `
import { silentLogger } from ${JSON.stringify(join(ROOT, 'src/lib/logger.ts'))};
import { MaildirMailbox } from ${JSON.stringify(join(ROOT, 'src/store/maildir-mailbox.ts'))};
import { MaildirStore } from ${JSON.stringify(join(ROOT, 'src/store/maildir.ts'))};
const [root, mode, first, count, at] = process.argv.slice(-5);
const store = new MaildirStore({ root, hostname: 'mail.corp.example' });
const mailbox = new MaildirMailbox({ store, quotaBytes: () => 0, log: silentLogger, autocreate: false });
const owner = { kind: 'user', login: 'alice' };
// Both processes start at the agreed moment, so that their loops overlap from the first message.
while (Date.now() < Number(at));
const seen = new Set();
let done = false;
const syncing = (async () => {
  while (!done) {
    const state = await mailbox.openFolder(owner, 'INBOX');
    for (const m of state.messages) seen.add(m.size + ':' + m.uid);
    // A session's commands come through the event loop: an open that finds nothing to list completes in
    // microtasks, and a loop of them alone would starve this process's own APPENDs of their I/O.
    await new Promise((r) => setImmediate(r));
  }
})();
const appended = [];
for (let i = 0; i < Number(count); i++) {
  const size = Number(first) + i;
  const head = 'From: a@example.org\\r\\nSubject: ' + size + '\\r\\n\\r\\n';
  const message = Buffer.from(head + 'x'.repeat(size - head.length - 2) + '\\r\\n');
  if (mode === 'append') appended.push([size, (await mailbox.append(owner, 'INBOX', message, [])).uid]);
  else if (mode === 'deliver') await store.deliver(owner, message);
  else {
    // MOVE (a rename into INBOX's cur/) or COPY (a new file) from a folder of this process's own.
    const from = 'Src' + first;
    if (i === 0) await mailbox.createFolder(owner, from);
    const { uid } = await mailbox.append(owner, from, message, []);
    const r = await mailbox.copy(owner, from, [uid], 'INBOX', { move: mode === 'move' });
    appended.push([size, r.mapping[0][1]]);
  }
}
done = true;
await syncing;
const state = await mailbox.openFolder(owner, 'INBOX');
for (const m of state.messages) seen.add(m.size + ':' + m.uid);
mailbox.close();
process.stdout.write(JSON.stringify({ appended, seen: [...seen].map((p) => p.split(':').map(Number)), uidValidity: state.uidValidity }));
`;

interface Report {
  appended: [number, number][];
  seen: [number, number][];
  uidValidity: number;
}

async function runWorkers(t: { after(fn: () => unknown): void }, root: string, workers: { mode: 'append' | 'deliver' | 'move' | 'copy'; first: number; count: number }[]): Promise<Report[]> {
  const at = Date.now() + 2000;
  return Promise.all(
    workers.map(async (w) => {
      const c = spawnChild(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', WORKER, root, w.mode, String(w.first), String(w.count), String(at)], {
        owner: t,
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      c.process.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      c.process.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      const exit = await c.exited;
      assert.equal(exit.code, 0, err);
      return JSON.parse(out) as Report;
    }),
  );
}

/** Fails when one message (size) was seen with two UIDs, or one UID with two messages. */
function assertStable(pairs: [number, number][], label: string): void {
  const uidOf = new Map<number, number>();
  const sizeOf = new Map<number, number>();
  const problems: string[] = [];
  for (const [size, uid] of pairs) {
    const u = uidOf.get(size);
    if (u === undefined) uidOf.set(size, uid);
    else if (u !== uid) problems.push(`message ${size} had UID ${u}, then ${uid}`);
    const s = sizeOf.get(uid);
    if (s === undefined) sizeOf.set(uid, size);
    else if (s !== size) problems.push(`UID ${uid} was message ${s}, then ${size}`);
  }
  assert.deepEqual([...new Set(problems)].slice(0, 20), [], `${label}: UIDs changed`);
}

const ROUNDS = Number(process.env.POSTERN_UID_RACE_ROUNDS ?? 1);

/** INBOX as a fresh process finds it once both workers have ended: [size, UID] per message. */
async function finalListing(root: string): Promise<[number, number][]> {
  const mailbox = new MaildirMailbox({ store: new MaildirStore({ root, hostname: 'mail.corp.example' }), quotaBytes: () => 0, log: silentLogger, autocreate: false });
  const final = await mailbox.openFolder({ kind: 'user', login: 'alice' }, 'INBOX');
  mailbox.close();
  return final.messages.map((m): [number, number] => [m.size, m.uid]);
}

it('APPENDs in two processes that both keep syncing the folder: every message keeps the UID it was given', { timeout: 600_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'postern-uid-race-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (let round = 0; round < ROUNDS; round++) {
    const root = join(dir, `r${round}`);
    const reports = await runWorkers(t, root, [
      { mode: 'append', first: 1000, count: 100 },
      { mode: 'append', first: 5000, count: 100 },
    ]);
    const appended = reports.flatMap((r) => r.appended);
    for (const r of reports) {
      const uids = r.appended.map(([, uid]) => uid);
      for (let i = 1; i < uids.length; i++) assert.ok(uids[i]! > uids[i - 1]!, `APPENDUIDs ascending: ${uids.join(',')}`);
    }
    assert.equal(new Set(appended.map(([, uid]) => uid)).size, 200, 'distinct APPENDUIDs');
    assert.equal(new Set(reports.map((r) => r.uidValidity)).size, 1);

    const listed = await finalListing(root);
    assert.equal(listed.length, 200);
    // The APPENDUIDs first: what a client was told is what the folder says, and what either process listed.
    assertStable([...appended, ...listed, ...reports.flatMap((r) => r.seen)], `round ${round}`);
    assert.deepEqual(listed.map(([, uid]) => uid), appended.map(([, uid]) => uid).sort((a, b) => a - b));
  }
});

it('deliveries into new/ while two processes sync the folder: every message keeps the UID it was first listed with', { timeout: 600_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'postern-uid-race-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (let round = 0; round < ROUNDS; round++) {
    const root = join(dir, `r${round}`);
    const reports = await runWorkers(t, root, [
      { mode: 'deliver', first: 1000, count: 100 },
      { mode: 'append', first: 5000, count: 100 },
    ]);
    const listed = await finalListing(root);
    assert.equal(listed.length, 200);
    assertStable([...reports.flatMap((r) => r.appended), ...listed, ...reports.flatMap((r) => r.seen)], `round ${round}`);
    const uids = listed.map(([, uid]) => uid);
    for (let i = 1; i < uids.length; i++) assert.ok(uids[i]! > uids[i - 1]!);
  }
});

it('MOVEs and COPYs into a folder in two processes that both keep syncing it: every message keeps the UID it was given', { timeout: 600_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'postern-uid-race-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (let round = 0; round < ROUNDS; round++) {
    const root = join(dir, `r${round}`);
    const reports = await runWorkers(t, root, [
      { mode: 'move', first: 1000, count: 100 },
      { mode: 'copy', first: 5000, count: 100 },
    ]);
    const appended = reports.flatMap((r) => r.appended);
    for (const r of reports) {
      const uids = r.appended.map(([, uid]) => uid);
      for (let i = 1; i < uids.length; i++) assert.ok(uids[i]! > uids[i - 1]!, `COPYUIDs ascending: ${uids.join(',')}`);
    }
    const listed = await finalListing(root);
    assert.equal(listed.length, 200);
    assertStable([...appended, ...listed, ...reports.flatMap((r) => r.seen)], `round ${round}`);
    assert.deepEqual(listed.map(([, uid]) => uid), appended.map(([, uid]) => uid).sort((a, b) => a - b));
  }
});
