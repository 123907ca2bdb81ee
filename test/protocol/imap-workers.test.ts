/**
 * imap.workers (src/imap/workers.ts): IMAP sessions served by two worker processes over one Maildir store, the
 * primary keeping the listeners, the queue and delivery. Sessions on different workers see each other's changes in
 * IDLE; concurrent APPENDs from both get distinct increasing UIDs; a delivery made by the primary wakes an IDLE in
 * a worker; a worker killed with SIGKILL is replaced and its clients can reconnect.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { waitFor } from '../helpers/wait.ts';

const PASS = 'Corp!Passw0rd';

function client(server: TestServer, user = 'john.smith') {
  return new ImapFlow({ host: '127.0.0.1', port: server.ports.imap, secure: false, doSTARTTLS: true, tls: { rejectUnauthorized: false }, auth: { user, pass: PASS }, logger: false });
}

/** Connected clients, each on another worker: the primary gives a connection to the worker with fewest sessions. */
async function onTwoWorkers(server: TestServer, user = 'john.smith'): Promise<[ImapFlow, ImapFlow]> {
  const workers = server.imapWorkers!;
  const total = () => [...workers.sessionsByPid().values()].reduce((x, y) => x + y, 0);
  // The sessions of an earlier test are gone (their LOGOUT is answered before the worker sees the socket close).
  await waitFor('no sessions left', () => total() === 0, { timeoutMs: 30_000 });
  const a = client(server, user);
  await a.connect();
  await waitFor('the first session counted', () => total() === 1, { timeoutMs: 30_000 });
  const b = client(server, user);
  await b.connect();
  const counts = [...workers.sessionsByPid().values()];
  assert.equal(counts.length, 2);
  assert.ok(counts.every((n) => n >= 1), `a session on each worker: ${counts.join(', ')}`);
  return [a, b];
}

const message = (subject: string) => `From: anna@example.com\r\nTo: john@example.com\r\nSubject: ${subject}\r\n\r\nbody of ${subject}\r\n`;

describe('IMAP in two worker processes (imap.workers: 2)', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ imap: { workers: 2 } });
  });
  after(() => server?.close());

  it('starts two workers that serve IMAP, the primary keeping the listener', async () => {
    assert.ok(server.imapWorkers);
    assert.equal(server.imapWorkers.pids().length, 2);
    assert.ok(!server.imapWorkers.pids().includes(process.pid));
  });

  it('an APPEND, a STORE and an EXPUNGE in one worker reach an IDLE session in the other', async () => {
    const [a, b] = await onTwoWorkers(server);
    try {
      await a.mailboxOpen('INBOX');
      await b.mailboxOpen('INBOX');
      const exists = new Promise<number>((resolve) => a.on('exists', (d: { count: number }) => resolve(d.count)));
      const flags = new Promise<Set<string>>((resolve) => a.on('flags', (d: { flags: Set<string> }) => resolve(d.flags)));
      const expunge = new Promise<number>((resolve) => a.on('expunge', (d: { seq: number }) => resolve(d.seq)));
      const idle = a.idle();
      const appended = await b.append('INBOX', message('from the other worker'));
      assert.ok(appended && appended.uid);
      assert.equal(await exists, 1);
      await b.messageFlagsAdd({ uid: appended.uid }, ['\\Flagged'], { uid: true });
      assert.ok((await flags).has('\\Flagged'));
      await b.messageDelete({ uid: appended.uid }, { uid: true });
      assert.equal(await expunge, 1);
      await a.noop();
      await idle.catch(() => undefined);
    } finally {
      await Promise.all([a.logout(), b.logout()]);
    }
  });

  it('concurrent APPENDs from two workers get distinct, increasing UIDs', async () => {
    const [a, b] = await onTwoWorkers(server, 'laura.verdi');
    try {
      const run = async (c: ImapFlow, tag: string) => {
        const uids: number[] = [];
        for (let i = 0; i < 15; i++) {
          const r = await c.append('INBOX', message(`${tag} ${i}`));
          assert.ok(r && r.uid, 'APPENDUID');
          uids.push(r.uid);
        }
        return uids;
      };
      const [ua, ub] = await Promise.all([run(a, 'a'), run(b, 'b')]);
      for (const u of [ua, ub]) for (let i = 1; i < u.length; i++) assert.ok(u[i]! > u[i - 1]!, `increasing: ${u.join(',')}`);
      const all = [...ua, ...ub].sort((x, y) => x - y);
      assert.equal(new Set(all).size, 30, `distinct: ${all.join(',')}`);
      const box = await a.mailboxOpen('INBOX');
      assert.equal(box.exists, 30);
      const listed: number[] = [];
      for await (const m of a.fetch('1:*', { uid: true })) listed.push(m.uid);
      assert.deepEqual(listed, all);
    } finally {
      await Promise.all([a.logout(), b.logout()]);
    }
  });

  it('a delivery by the primary wakes an IDLE session in a worker', async () => {
    const c = client(server, 'paolo.neri');
    await c.connect();
    try {
      await c.mailboxOpen('INBOX');
      const exists = new Promise<number>((resolve) => c.on('exists', (d: { count: number }) => resolve(d.count)));
      const idle = c.idle();
      const t = nodemailer.createTransport({ host: '127.0.0.1', port: server.ports.smtp, ignoreTLS: true, name: 'mta.outside.example' });
      await t.sendMail({ from: 'sender@outside.example', to: 'paolo.neri@example.com', subject: 'wake up', text: 'hello' });
      t.close();
      assert.equal(await exists, 1);
      await c.noop();
      await idle.catch(() => undefined);
    } finally {
      await c.logout();
    }
  });

  it('a change is carried to the other worker only once a session there watches its folder', async () => {
    const workers = server.imapWorkers!;
    const [a, b] = await onTwoWorkers(server, 'mario.rossi');
    try {
      await a.mailboxOpen('INBOX');
      // b watches another folder of the same mailbox: its NOOP's settle makes the primary pass on what it has.
      await b.mailboxOpen('Sent');
      const before = workers.carried;
      const first = await a.append('INBOX', message('nobody else watches'));
      assert.ok(first && first.uid);
      await a.messageFlagsAdd({ uid: first.uid }, ['\\Seen'], { uid: true });
      await b.noop();
      assert.equal(workers.carried, before, 'nothing carried for a folder only its own worker watches');
      // Now b watches INBOX too: a's changes reach it (and the primary carries them).
      const box = await b.mailboxOpen('INBOX');
      assert.equal(box.exists, 1);
      const flags = new Promise<Set<string>>((resolve) => b.on('flags', (d: { flags: Set<string> }) => resolve(d.flags)));
      const idle = b.idle();
      await a.messageFlagsAdd({ uid: first.uid }, ['\\Flagged'], { uid: true });
      assert.ok((await flags).has('\\Flagged'));
      assert.ok(workers.carried > before, 'the change was carried');
      await b.noop();
      await idle.catch(() => undefined);
      // And back: b leaves INBOX, a's later changes are no longer carried.
      await b.mailboxOpen('Sent');
      await waitFor('the primary heard that b left INBOX', async () => {
        const n = workers.carried;
        await a.messageFlagsAdd({ uid: first.uid }, ['\\Answered'], { uid: true });
        await a.messageFlagsRemove({ uid: first.uid }, ['\\Answered'], { uid: true });
        await b.noop();
        return workers.carried === n;
      }, { timeoutMs: 30_000 });
    } finally {
      await Promise.all([a.logout(), b.logout()]);
    }
  });

  it('a worker killed with SIGKILL is replaced, and its client can reconnect', async () => {
    const workers = server.imapWorkers!;
    const [a, b] = await onTwoWorkers(server);
    const victim = workers.pids()[0]!;
    const closed = new Promise<void>((resolve) => {
      let n = 0;
      const one = () => (++n === 1 ? resolve() : undefined);
      a.once('close', one);
      b.once('close', one);
    });
    const restarts = workers.restarts;
    process.kill(victim, 'SIGKILL');
    await closed;
    await waitFor('a replacement worker', () => workers.restarts === restarts + 1 && workers.pids().length === 2 && !workers.pids().includes(victim), { timeoutMs: 60_000 });
    for (const c of [a, b]) if (c.usable) await c.logout();
    // Every new session works, on whichever worker it lands.
    const [c, d] = await onTwoWorkers(server);
    try {
      // imapflow updates the object it returned as EXISTS responses come: the count is copied now.
      const had = (await c.mailboxOpen('INBOX')).exists;
      await d.mailboxOpen('INBOX');
      const appended = await d.append('INBOX', message('after the restart'));
      assert.ok(appended && appended.uid! > 0);
      const st = await c.status('INBOX', { messages: true });
      assert.ok(st);
      assert.equal(st.messages, had + 1);
    } finally {
      await Promise.all([c.logout(), d.logout()]);
    }
  });
});
