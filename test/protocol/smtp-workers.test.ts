/**
 * smtp.workers (src/smtp/workers.ts): port-25 sessions served by two worker processes that commit the spool
 * themselves, the main process keeping the listener, the scheduler and delivery. Messages accepted by both workers
 * at once are all delivered, each exactly once; a send limit holds across the workers (one set of counters in the
 * main process); smtp.maxClients counts the sessions of every worker; a worker killed with SIGKILL is replaced and
 * mail goes on.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RawSmtp, sendRaw, type SmtpReply } from '../helpers/raw-smtp.ts';
import type { TestServer } from '../helpers/server.ts';
import { waitFor } from '../helpers/wait.ts';
import { message, PASSWORD, rawClient, startSmtpTestServer, waitForEmptyQueue } from './smtp-env.ts';

/** Replies can be slow on the loaded test machine (fsyncs, two more processes): wait generously. */
const REPLY_MS = 60_000;
const MAX_CLIENTS = 3;

const subjectOf = (mail: string) => /^Subject: (.*)$/m.exec(mail)?.[1]?.trim();

describe('SMTP in two worker processes (smtp.workers: 2)', () => {
  let server: TestServer;
  const workers = () => server.smtpWorkers!;
  const sessions = () => [...workers().byPid().values()].map((w) => w.sessions);
  const total = () => sessions().reduce((a, b) => a + b, 0);

  /** `n` port-25 connections, greeted, spread over the workers (the one with the fewest sessions gets the next). */
  async function connections(n: number, ehlo: string | false = 'client.example.net'): Promise<RawSmtp[]> {
    // The sessions of an earlier test are gone (the worker reports a socket's close on its next turn).
    await waitFor('no sessions left', () => total() === 0, { timeoutMs: REPLY_MS });
    const out: RawSmtp[] = [];
    for (let i = 0; i < n; i++) {
      out.push(await rawClient(server, 'smtp', ehlo, { timeoutMs: REPLY_MS }));
      await waitFor(`${i + 1} sessions counted`, () => total() === i + 1, { timeoutMs: REPLY_MS });
    }
    return out;
  }

  before(async () => {
    server = await startSmtpTestServer({ smtp: { workers: 2, maxClients: MAX_CLIENTS } });
  });
  after(() => server?.close());

  it('starts two workers that serve port 25, the main process keeping the listener', () => {
    assert.ok(server.smtpWorkers);
    assert.equal(workers().pids().length, 2);
    assert.ok(!workers().pids().includes(process.pid));
    assert.ok(server.ports.smtp > 0);
  });

  it('messages accepted by both workers at once are all delivered, each exactly once', { timeout: 300_000 }, async () => {
    const [a, b] = await connections(2);
    assert.deepEqual(sessions(), [1, 1], 'one session on each worker');
    const PER = 8;
    const send = async (c: RawSmtp, tag: string) => {
      const replies: SmtpReply[] = [];
      for (let i = 0; i < PER; i++) replies.push(await sendRaw(c, 'sender@outside.example', ['john@example.com'], message(`${tag} ${i}`)));
      return replies;
    };
    try {
      const replies = (await Promise.all([send(a, 'a'), send(b, 'b')])).flat();
      for (const r of replies) assert.equal(r.code, 250, r.raw);
    } finally {
      a.close();
      b.close();
    }
    const enqueued = [...workers().byPid().values()].map((w) => w.enqueued);
    assert.deepEqual(enqueued, [PER, PER], 'each worker queued its own session’s messages');
    await server.waitForMail('john.smith', 2 * PER, { ms: REPLY_MS });
    await waitForEmptyQueue(server, REPLY_MS);
    const subjects = server.inbox('john.smith').map(subjectOf).sort();
    const expected = ['a', 'b'].flatMap((t) => [...Array(PER).keys()].map((i) => `${t} ${i}`)).sort();
    assert.deepEqual(subjects, expected, 'every message once, none twice');
  });

  it('a send limit holds across the workers: one user’s sessions on both are counted together', { timeout: 300_000 }, async () => {
    server.core.settings.set('smtp.authOnPort25', true);
    server.core.settings.setUser('laura.verdi', { sendLimitMessages: 3 });
    const [a, b] = await connections(2, false);
    try {
      for (const c of [a, b]) {
        assert.equal((await c.command('EHLO client.example.net')).code, 250);
        await c.starttls();
        assert.equal((await c.command('EHLO client.example.net')).code, 250);
        const auth = await c.authPlain('laura.verdi', PASSWORD);
        assert.equal(auth.code, 235, auth.raw);
      }
      const send = (c: RawSmtp, s: string) => sendRaw(c, 'laura.verdi@example.com', ['john@example.com'], message(s));
      assert.equal((await send(a, 'limit 1')).code, 250);
      assert.equal((await send(b, 'limit 2')).code, 250);
      assert.equal((await send(a, 'limit 3')).code, 250);
      const over = await send(b, 'limit 4');
      assert.equal(over.code, 451, over.raw);
      assert.match(over.text, /^4\.7\.1 Sending limit reached \(3 messages per hour\)/);
      const overToo = await send(a, 'limit 5');
      assert.equal(overToo.code, 451, overToo.raw);
    } finally {
      a.close();
      b.close();
      server.core.settings.set('smtp.authOnPort25', false);
    }
    const usage = server.sendLimits.status({ all: true }).users.find((u) => u.name === 'laura.verdi');
    assert.equal(usage?.messages, 3);
  });

  it('smtp.maxClients counts the sessions of every worker: one more gets 421', { timeout: 300_000 }, async () => {
    const open = await connections(MAX_CLIENTS);
    try {
      const extra = await RawSmtp.connect(server.ports.smtp, { timeoutMs: REPLY_MS });
      try {
        assert.equal(extra.greeting.code, 421, extra.greeting.raw);
        assert.match(extra.greeting.text, /^4\.7\.0 /);
        await extra.closed();
      } finally {
        extra.close();
      }
    } finally {
      for (const c of open) c.close();
    }
  });

  it('a worker killed with SIGKILL is replaced, and mail goes on', { timeout: 300_000 }, async () => {
    const before = workers().pids();
    const victim = before[0]!;
    process.kill(victim, 'SIGKILL');
    await waitFor('a new worker', () => workers().restarts >= 1 && workers().pids().length === 2 && !workers().pids().includes(victim), { timeoutMs: REPLY_MS });
    const had = server.inbox('paolo.neri').length;
    // Whichever worker a connection lands on, it is served.
    const [a, b] = await connections(2);
    try {
      assert.equal((await sendRaw(a, 'sender@outside.example', ['paolo.neri@example.com'], message('after the kill a'))).code, 250);
      assert.equal((await sendRaw(b, 'sender@outside.example', ['paolo.neri@example.com'], message('after the kill b'))).code, 250);
    } finally {
      a.close();
      b.close();
    }
    const mails = await server.waitForMail('paolo.neri', had + 2, { ms: REPLY_MS });
    assert.deepEqual(mails.map(subjectOf).filter((s) => s?.startsWith('after the kill')).sort(), ['after the kill a', 'after the kill b']);
  });
});
